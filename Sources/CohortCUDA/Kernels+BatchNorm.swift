/// Batch normalisation of an NHWC tensor viewed as `[rows, C]`, rows = N*H*W
/// (see Note [Own batch-norm kernels] in CUDABackend+BatchNorm.swift).
///
/// Reductions are two-stage and deterministic: `bn_*_partials` runs on a
/// grid (ceil(C/32) channel groups, S row slices) of 32 x 8 blocks: a warp
/// covers 32 consecutive channels of one row (a coalesced 128-byte read),
/// the 8 warps stride through the slice's rows, each thread accumulates in
/// double, and the block combines its 8 partials in shared memory into
/// `partial[slice][k][c]`. The `*_finalize` kernels then take 32 x 8 blocks:
/// 8 threads per channel each sum every eighth slice, and the block adds
/// their 8 sums in order (fixed, so deterministic; 8 loads in flight per
/// channel instead of one chain of S). S is chosen on the host so that
/// about four blocks run per SM. bf16 with C % 8 == 0 takes the vector
/// kernels instead (Kernels+BatchNormVector.swift, Note [Vector batch
/// norm]), which write the same partials for the same finalize kernels.
///
/// Statistics use the shifted-data algorithm: sums of (x - K) and (x - K)^2
/// with K = the channel's value in row 0, in double, so the variance
/// E[(x-K)^2] - E[x-K]^2 does not cancel catastrophically even when the
/// mean is large against the spread (one pass over x instead of two).
extension KernelSource {
    static let batchNorm = KernelSource(name: "batch_norm", source: kernelPrelude + #"""
// Each kernel is one template body over the activation type T (float or bf16;
// scale, shift and statistics are always float32, sums in double as before),
// instantiated as `<name>` and `<name>_bf16`.

// Sums partial[s][kind][c] over the S slices for kind 0 and 1: thread (x, y) of a 32 x 8 block adds slices
// y, y + 8, ... of channel c = blockIdx.x * 32 + x, then row y == 0 adds the 8 lanes in order. Every thread
// of the block must call it (it synchronises); the totals are valid on threadIdx.y == 0 with c < C.
__device__ __forceinline__ void sum_slices(double* first, double* second, const double* partial, int slices, int C, int c) {
    __shared__ double lanes[2][8][32];
    double a = 0.0, b = 0.0;
    if (c < C) {
        for (int s = threadIdx.y; s < slices; s += 8) {
            a += partial[((long long)s * 2) * C + c];
            b += partial[((long long)s * 2 + 1) * C + c];
        }
    }
    lanes[0][threadIdx.y][threadIdx.x] = a;
    lanes[1][threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    a = 0.0;
    b = 0.0;
    for (int k = 0; k < 8; k++) { a += lanes[0][k][threadIdx.x]; b += lanes[1][k][threadIdx.x]; }
    *first = a;
    *second = b;
}

// partial[slice][0][c] = sum (x - x[0, c]), partial[slice][1][c] = sum (x - x[0, c])^2 over the slice's rows.
template <typename T> __device__ __forceinline__ void bn_statistics_partials_body(
        double* partial, const T* x, long long rows, int C, long long rowsPerSlice) {
    __shared__ double sums[2][8][32];
    int c = blockIdx.x * 32 + threadIdx.x;
    long long begin = (long long)blockIdx.y * rowsPerSlice;
    long long end = begin + rowsPerSlice < rows ? begin + rowsPerSlice : rows;
    double sum = 0.0, squares = 0.0;
    if (c < C) {
        double pivot = (double)load_element(x, c);
        for (long long r = begin + threadIdx.y; r < end; r += 8) {
            double d = (double)load_element(x, r * C + c) - pivot;
            sum += d;
            squares += d * d;
        }
    }
    sums[0][threadIdx.y][threadIdx.x] = sum;
    sums[1][threadIdx.y][threadIdx.x] = squares;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        double s = 0.0, q = 0.0;
        for (int k = 0; k < 8; k++) { s += sums[0][k][threadIdx.x]; q += sums[1][k][threadIdx.x]; }
        partial[((long long)blockIdx.y * 2) * C + c] = s;
        partial[((long long)blockIdx.y * 2 + 1) * C + c] = q;
    }
}
extern "C" __global__ void __launch_bounds__(256) bn_statistics_partials(
        double* partial, const float* x, long long rows, int C, long long rowsPerSlice) {
    grid_dependency_wait();
    bn_statistics_partials_body(partial, x, rows, C, rowsPerSlice);
}
extern "C" __global__ void __launch_bounds__(256) bn_statistics_partials_bf16(
        double* partial, const bf16* x, long long rows, int C, long long rowsPerSlice) {
    grid_dependency_wait();
    bn_statistics_partials_body(partial, x, rows, C, rowsPerSlice);
}

// 32 x 8 blocks, 32 channels each (sum_slices): mean, biased variance, saved statistics and PyTorch's
// running update (running = (1 - momentum) * running + momentum * stat, the unbiased variance for runningVar).
template <typename T> __device__ __forceinline__ void bn_statistics_finalize_body(
        float* savedMean, float* savedInvStd, float* runningMean, float* runningVar,
        const double* partial, const T* x, int slices, long long rows, int C, float momentum, float epsilon) {
    int c = blockIdx.x * 32 + threadIdx.x;
    double sum, squares;
    sum_slices(&sum, &squares, partial, slices, C, c);
    if (threadIdx.y != 0 || c >= C) return;
    double n = (double)rows;
    double shiftedMean = sum / n;
    double variance = squares / n - shiftedMean * shiftedMean;
    if (variance < 0.0) variance = 0.0;
    double mean = (double)load_element(x, c) + shiftedMean;
    savedMean[c] = (float)mean;
    savedInvStd[c] = (float)(1.0 / sqrt(variance + (double)epsilon));
    runningMean[c] = (1.0f - momentum) * runningMean[c] + momentum * (float)mean;
    runningVar[c] = (1.0f - momentum) * runningVar[c] + momentum * (float)(variance * n / (n - 1.0));
}
extern "C" __global__ void __launch_bounds__(256) bn_statistics_finalize(
        float* savedMean, float* savedInvStd, float* runningMean, float* runningVar,
        const double* partial, const float* x, int slices, long long rows, int C, float momentum, float epsilon) {
    grid_dependency_wait();
    bn_statistics_finalize_body(savedMean, savedInvStd, runningMean, runningVar, partial, x, slices, rows, C, momentum, epsilon);
}
extern "C" __global__ void __launch_bounds__(256) bn_statistics_finalize_bf16(
        float* savedMean, float* savedInvStd, float* runningMean, float* runningVar,
        const double* partial, const bf16* x, int slices, long long rows, int C, float momentum, float epsilon) {
    grid_dependency_wait();
    bn_statistics_finalize_body(savedMean, savedInvStd, runningMean, runningVar, partial, x, slices, rows, C, momentum, epsilon);
}

// y = scale * (x - mean) * invStd + shift (then max(0, .) if relu), as the reference orders it.
__device__ __forceinline__ float bn_affine(float x, const float* scale, const float* shift,
                                           const float* mean, const float* invStd, int c, int relu) {
    float v = scale[c] * (x - mean[c]) * invStd[c] + shift[c];
    return relu ? (v > 0.0f ? v : 0.0f) : v;
}
template <typename T> __device__ __forceinline__ void bn_normalize_body(
        T* y, const T* x, const float* scale, const float* shift,
        const float* mean, const float* invStd, long long n, int C, int relu) {
    GRID_STRIDE(i, n) store_element(y, i, bn_affine(load_element(x, i), scale, shift, mean, invStd, (int)(i % C), relu));
}
extern "C" __global__ void bn_normalize(
        float* y, const float* x, const float* scale, const float* shift,
        const float* mean, const float* invStd, long long n, int C, int relu) {
    grid_dependency_wait();
    bn_normalize_body(y, x, scale, shift, mean, invStd, n, C, relu);
}
extern "C" __global__ void bn_normalize_bf16(
        bf16* y, const bf16* x, const float* scale, const float* shift,
        const float* mean, const float* invStd, long long n, int C, int relu) {
    grid_dependency_wait();
    bn_normalize_body(y, x, scale, shift, mean, invStd, n, C, relu);
}
// Evaluation mode: invStd = 1 / sqrt(runningVar + epsilon) (IEEE sqrt and division: no fast math).
template <typename T> __device__ __forceinline__ void bn_inference_body(
        T* y, const T* x, const float* scale, const float* shift,
        const float* runningMean, const float* runningVar, float epsilon, long long n, int C, int relu) {
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        float invStd = 1.0f / sqrtf(runningVar[c] + epsilon);
        float v = scale[c] * (load_element(x, i) - runningMean[c]) * invStd + shift[c];
        store_element(y, i, relu ? (v > 0.0f ? v : 0.0f) : v);
    }
}
extern "C" __global__ void bn_inference(
        float* y, const float* x, const float* scale, const float* shift,
        const float* runningMean, const float* runningVar, float epsilon, long long n, int C, int relu) {
    grid_dependency_wait();
    bn_inference_body(y, x, scale, shift, runningMean, runningVar, epsilon, n, C, relu);
}
extern "C" __global__ void bn_inference_bf16(
        bf16* y, const bf16* x, const float* scale, const float* shift,
        const float* runningMean, const float* runningVar, float epsilon, long long n, int C, int relu) {
    grid_dependency_wait();
    bn_inference_body(y, x, scale, shift, runningMean, runningVar, epsilon, n, C, relu);
}

// g = dy, masked to 0 where the fused ReLU's output y <= 0.
template <typename T> __device__ __forceinline__ float bn_gradient(const T* dy, const T* y, long long i, int relu) {
    return (relu && load_element(y, i) <= 0.0f) ? 0.0f : load_element(dy, i);
}

// partial[slice][0][c] = sum g, partial[slice][1][c] = sum g * xhat, xhat = (x - mean) * invStd.
template <typename T> __device__ __forceinline__ void bn_backward_partials_body(
        double* partial, const T* dy, const T* x, const T* y,
        const float* mean, const float* invStd, long long rows, int C, long long rowsPerSlice, int relu) {
    __shared__ double sums[2][8][32];
    int c = blockIdx.x * 32 + threadIdx.x;
    long long begin = (long long)blockIdx.y * rowsPerSlice;
    long long end = begin + rowsPerSlice < rows ? begin + rowsPerSlice : rows;
    double sumG = 0.0, sumGX = 0.0;
    if (c < C) {
        float m = mean[c], s = invStd[c];
        for (long long r = begin + threadIdx.y; r < end; r += 8) {
            long long i = r * C + c;
            double g = (double)bn_gradient(dy, y, i, relu);
            sumG += g;
            sumGX += g * (double)((load_element(x, i) - m) * s);
        }
    }
    sums[0][threadIdx.y][threadIdx.x] = sumG;
    sums[1][threadIdx.y][threadIdx.x] = sumGX;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        double a = 0.0, b = 0.0;
        for (int k = 0; k < 8; k++) { a += sums[0][k][threadIdx.x]; b += sums[1][k][threadIdx.x]; }
        partial[((long long)blockIdx.y * 2) * C + c] = a;
        partial[((long long)blockIdx.y * 2 + 1) * C + c] = b;
    }
}
extern "C" __global__ void __launch_bounds__(256) bn_backward_partials(
        double* partial, const float* dy, const float* x, const float* y,
        const float* mean, const float* invStd, long long rows, int C, long long rowsPerSlice, int relu) {
    grid_dependency_wait();
    bn_backward_partials_body(partial, dy, x, y, mean, invStd, rows, C, rowsPerSlice, relu);
}
extern "C" __global__ void __launch_bounds__(256) bn_backward_partials_bf16(
        double* partial, const bf16* dy, const bf16* x, const bf16* y,
        const float* mean, const float* invStd, long long rows, int C, long long rowsPerSlice, int relu) {
    grid_dependency_wait();
    bn_backward_partials_body(partial, dy, x, y, mean, invStd, rows, C, rowsPerSlice, relu);
}

// dShift = sum g, dScale = sum g * xhat; 32 x 8 blocks, 32 channels each (sum_slices; float32 for either activation type).
extern "C" __global__ void __launch_bounds__(256) bn_backward_finalize(
        float* dScale, float* dShift, const double* partial, int slices, int C) {
    grid_dependency_wait();
    int c = blockIdx.x * 32 + threadIdx.x;
    double sumG, sumGX;
    sum_slices(&sumG, &sumGX, partial, slices, C, c);
    if (threadIdx.y != 0 || c >= C) return;
    dShift[c] = (float)sumG;
    dScale[c] = (float)sumGX;
}

// dx = scale * invStd * (g - dShift / rows - xhat * dScale / rows).
__device__ __forceinline__ float bn_input_gradient(float g, float x, int c, const float* scale, const float* mean,
                                                   const float* invStd, const float* dScale, const float* dShift,
                                                   float inverseRows) {
    float s = invStd[c];
    float xhat = (x - mean[c]) * s;
    return scale[c] * s * (g - dShift[c] * inverseRows - xhat * dScale[c] * inverseRows);
}
template <typename T> __device__ __forceinline__ void bn_backward_data_body(
        T* dx, const T* dy, const T* x, const T* y, const float* scale,
        const float* mean, const float* invStd, const float* dScale, const float* dShift,
        long long n, int C, long long rows, int relu) {
    float inverseRows = 1.0f / (float)rows;
    GRID_STRIDE(i, n) {
        float g = bn_gradient(dy, y, i, relu);
        store_element(dx, i, bn_input_gradient(g, load_element(x, i), (int)(i % C), scale, mean, invStd, dScale, dShift,
                                               inverseRows));
    }
}
extern "C" __global__ void bn_backward_data(
        float* dx, const float* dy, const float* x, const float* y, const float* scale,
        const float* mean, const float* invStd, const float* dScale, const float* dShift,
        long long n, int C, long long rows, int relu) {
    grid_dependency_wait();
    bn_backward_data_body(dx, dy, x, y, scale, mean, invStd, dScale, dShift, n, C, rows, relu);
}
extern "C" __global__ void bn_backward_data_bf16(
        bf16* dx, const bf16* dy, const bf16* x, const bf16* y, const float* scale,
        const float* mean, const float* invStd, const float* dScale, const float* dShift,
        long long n, int C, long long rows, int relu) {
    grid_dependency_wait();
    bn_backward_data_body(dx, dy, x, y, scale, mean, invStd, dScale, dShift, n, C, rows, relu);
}
"""#)
}
