/// Softmax cross-entropy with label smoothing (see the reference's
/// `softmaxCrossEntropyForward` for the formula).
///
/// Forward in two kernels so the mean is deterministic: `softmax_xent_rows`
/// gives each row one warp (K = 10 classes for CIFAR: one load per lane;
/// larger K loops), 8 warps per 256-thread block; warp reductions use the
/// xor butterfly, which leaves the same bits in every lane. It writes the
/// probabilities, the row's loss and whether its arg-max hit the label.
/// `softmax_xent_reduce` is one 1024-thread block summing the rows in double
/// in a fixed tree order and writing loss = mean and correct = count.
/// A label outside 0..<K makes that row's loss NaN (the reference traps;
/// a kernel cannot report it, so the loss shows it).
extension KernelSource {
    static let loss = KernelSource(name: "loss", source: kernelPrelude + #"""
// T is the logits' type (float or bf16); probabilities and losses are float32 for either.
template <typename T> __device__ __forceinline__ void softmax_xent_rows_body(
        float* prob, float* rowLoss, float* rowCorrect, const T* z, const int* labels,
        int N, int K, float smoothing) {
    int lane = threadIdx.x & 31;
    int row = blockIdx.x * 8 + (threadIdx.x >> 5);
    if (row >= N) return;  // whole warps leave together: row depends only on the warp
    const T* zr = z + (long long)row * K;
    float* pr = prob + (long long)row * K;
    // Arg-max with ties to the lowest index.
    float best = -__int_as_float(0x7f800000);  // -inf (NVRTC defines no INFINITY without <cmath>)
    int bestIndex = 0x7fffffff;
    for (int k = lane; k < K; k += 32) {
        float v = load_element(zr, k);
        if (bestIndex == 0x7fffffff || v > best) { best = v; bestIndex = k; }
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        float v = __shfl_xor_sync(0xffffffffu, best, offset);
        int index = __shfl_xor_sync(0xffffffffu, bestIndex, offset);
        if (v > best || (v == best && index < bestIndex)) { best = v; bestIndex = index; }
    }
    float maximum = best;
    float expSum = 0.0f;
    for (int k = lane; k < K; k += 32) expSum += expf(load_element(zr, k) - maximum);
    for (int offset = 16; offset > 0; offset >>= 1) expSum += __shfl_xor_sync(0xffffffffu, expSum, offset);
    float logNormaliser = maximum + logf(expSum);
    float logProbabilitySum = 0.0f;
    for (int k = lane; k < K; k += 32) {
        float logProbability = load_element(zr, k) - logNormaliser;
        logProbabilitySum += logProbability;
        pr[k] = expf(logProbability);
    }
    for (int offset = 16; offset > 0; offset >>= 1)
        logProbabilitySum += __shfl_xor_sync(0xffffffffu, logProbabilitySum, offset);
    if (lane == 0) {
        int target = labels[row];
        if (target < 0 || target >= K) {
            rowLoss[row] = __int_as_float(0x7fc00000);  // NaN: the label is out of range
            rowCorrect[row] = 0.0f;
        } else {
            float targetLogProbability = load_element(zr, target) - logNormaliser;
            rowLoss[row] = -((1.0f - smoothing) * targetLogProbability + smoothing / (float)K * logProbabilitySum);
            rowCorrect[row] = bestIndex == target ? 1.0f : 0.0f;
        }
    }
}

extern "C" __global__ void __launch_bounds__(256) softmax_xent_rows(
        float* prob, float* rowLoss, float* rowCorrect, const float* z, const int* labels,
        int N, int K, float smoothing) {
    grid_dependency_wait();
    softmax_xent_rows_body(prob, rowLoss, rowCorrect, z, labels, N, K, smoothing);
}
extern "C" __global__ void __launch_bounds__(256) softmax_xent_rows_bf16(
        float* prob, float* rowLoss, float* rowCorrect, const bf16* z, const int* labels,
        int N, int K, float smoothing) {
    grid_dependency_wait();
    softmax_xent_rows_body(prob, rowLoss, rowCorrect, z, labels, N, K, smoothing);
}

// One block of 1024 threads: loss[0] = mean of rowLoss, correct[0] = sum of rowCorrect.
extern "C" __global__ void __launch_bounds__(1024) softmax_xent_reduce(
        float* loss, float* correct, const float* rowLoss, const float* rowCorrect, int N) {
    grid_dependency_wait();
    __shared__ double losses[1024];
    __shared__ double hits[1024];
    double l = 0.0, h = 0.0;
    for (int i = threadIdx.x; i < N; i += 1024) { l += (double)rowLoss[i]; h += (double)rowCorrect[i]; }
    losses[threadIdx.x] = l;
    hits[threadIdx.x] = h;
    __syncthreads();
    for (int stride = 512; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) {
            losses[threadIdx.x] += losses[threadIdx.x + stride];
            hits[threadIdx.x] += hits[threadIdx.x + stride];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        loss[0] = (float)(losses[0] / (double)N);
        correct[0] = (float)hits[0];
    }
}

// dz = (p - target) * inverseBatch, target = onTarget at the label, offTarget elsewhere.
// T is dz's type (float, or bf16 in mixed precision: rounded once); prob is float32 for either.
template <typename T> __device__ __forceinline__ void softmax_xent_backward_body(
        T* dz, const float* prob, const int* labels, long long n, int K,
        float onTarget, float offTarget, float inverseBatch) {
    GRID_STRIDE(i, n) {
        long long row = i / K;
        int k = (int)(i % K);
        store_element(dz, i, (prob[i] - (k == labels[row] ? onTarget : offTarget)) * inverseBatch);
    }
}
extern "C" __global__ void softmax_xent_backward(
        float* dz, const float* prob, const int* labels, long long n, int K,
        float onTarget, float offTarget, float inverseBatch) {
    grid_dependency_wait();
    softmax_xent_backward_body(dz, prob, labels, n, K, onTarget, offTarget, inverseBatch);
}
extern "C" __global__ void softmax_xent_backward_bf16(
        bf16* dz, const float* prob, const int* labels, long long n, int K,
        float onTarget, float offTarget, float inverseBatch) {
    grid_dependency_wait();
    softmax_xent_backward_body(dz, prob, labels, n, K, onTarget, offTarget, inverseBatch);
}
"""#)
}
