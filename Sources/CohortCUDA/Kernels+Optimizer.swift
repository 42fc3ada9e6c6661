/// The fused optimiser step over the flat parameter buffer (see Note
/// [Fused optimiser step] in CUDABackend+Optimizer.swift for the tables).
///
/// Launch shapes: one 256-thread block per chunk (at most
/// `SegmentTable.chunkSize` = 8192 elements of one segment, 32 per thread),
/// so a block never straddles two segments and reads its segment's flags
/// and trust ratio once. ResNet-18's 11.2 M parameters make about 1,400
/// chunks, ten blocks per SM on an H100. `lars_trust` is one thread per
/// segment (62 for ResNet-18).
extension KernelSource {
    static let optimizer = KernelSource(name: "optimizer", source: kernelPrelude + #"""
// chunks: [chunk][4] int64 = start, end, segment, 0. segments: [segment][4] int64 = flags, firstChunk, chunkCount, 0.
// flags: 1 = weight decay applies, 2 = LARS layer adaptation applies.

// Each gradient as the step reads it: gradientScale * g, g float32 or bf16 (an all-reduce's bf16 sums
// read in place, Note [Widening in the optimizer]). mul.rn keeps the product rounded on its own (an
// explicit rounding mode is never contracted into an FMA), as the widening kernel's product was
// stored: with a float32 g and scale 1 the step is the one it was.
template <typename G>
__device__ __forceinline__ float scaled_gradient(const G* g, long long i, float gradientScale) {
    float product;
    asm("mul.rn.f32 %0, %1, %2;" : "=f"(product) : "f"(gradientScale), "f"(load_element(g, i)));
    return product;
}

// partial[chunk][0] = sum w^2, partial[chunk][1] = sum g^2 over the chunk, in double.
template <typename G>
__device__ __forceinline__ void lars_chunk_norms_body(
        double* partial, const float* w, const G* g, float gradientScale, const long long* chunks) {
    __shared__ double sums[2][256];
    long long start = chunks[blockIdx.x * 4], end = chunks[blockIdx.x * 4 + 1];
    double ww = 0.0, gg = 0.0;
    for (long long i = start + threadIdx.x; i < end; i += 256) {
        double a = (double)w[i], b = (double)scaled_gradient(g, i, gradientScale);
        ww += a * a;
        gg += b * b;
    }
    sums[0][threadIdx.x] = ww;
    sums[1][threadIdx.x] = gg;
    __syncthreads();
    for (int stride = 128; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) {
            sums[0][threadIdx.x] += sums[0][threadIdx.x + stride];
            sums[1][threadIdx.x] += sums[1][threadIdx.x + stride];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        partial[blockIdx.x * 2] = sums[0][0];
        partial[blockIdx.x * 2 + 1] = sums[1][0];
    }
}
extern "C" __global__ void __launch_bounds__(256) lars_chunk_norms(
        double* partial, const float* w, const float* g, float gradientScale, const long long* chunks) {
    grid_dependency_wait();
    lars_chunk_norms_body(partial, w, g, gradientScale, chunks);
}
extern "C" __global__ void __launch_bounds__(256) lars_chunk_norms_bf16_gradients(
        double* partial, const float* w, const bf16* g, float gradientScale, const long long* chunks) {
    grid_dependency_wait();
    lars_chunk_norms_body(partial, w, g, gradientScale, chunks);
}

// trust[s] = eta * |w| / (|g| + weightDecay * |w| + eps) for LARS segments with both norms non-zero, else 1.
extern "C" __global__ void lars_trust(
        float* trust, const double* partial, const long long* segments, int segmentCount,
        float eta, float weightDecay, float epsilon) {
    grid_dependency_wait();
    int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= segmentCount) return;
    long long flags = segments[s * 4], first = segments[s * 4 + 1], count = segments[s * 4 + 2];
    double ww = 0.0, gg = 0.0;
    for (long long k = first; k < first + count; k++) { ww += partial[k * 2]; gg += partial[k * 2 + 1]; }
    double wNorm = sqrt(ww), gNorm = sqrt(gg);
    double decay = (flags & 1) ? (double)weightDecay : 0.0;
    float t = 1.0f;
    if ((flags & 2) && wNorm > 0.0 && gNorm > 0.0)
        t = (float)((double)eta * wNorm / (gNorm + decay * wNorm + (double)epsilon));
    trust[s] = t;
}

// The SGD update of the reference, element by element (useTrust: read trust[segment], else 1).
// The learning rate is *learningRateOnDevice when that is not null (a captured graph reads the
// value written before each replay, Note [Graph capture]), else the argument.
template <typename G>
__device__ __forceinline__ void sgd_update_body(
        float* w, const G* g, float gradientScale, float* buffer, const long long* chunks, const long long* segments,
        const float* trust, int useTrust, float learningRateArgument, const float* learningRateOnDevice,
        float momentum, float dampening, float weightDecay, int nesterov, int firstStep) {
    float learningRate = learningRateOnDevice ? *learningRateOnDevice : learningRateArgument;
    long long start = chunks[blockIdx.x * 4], end = chunks[blockIdx.x * 4 + 1];
    long long segment = chunks[blockIdx.x * 4 + 2];
    long long flags = segments[segment * 4];
    float decay = (flags & 1) ? weightDecay : 0.0f;
    float ratio = useTrust ? trust[segment] : 1.0f;
    for (long long i = start + threadIdx.x; i < end; i += 256) {
        float step = (scaled_gradient(g, i, gradientScale) + decay * w[i]) * ratio;
        if (momentum != 0.0f) {
            float b = firstStep ? step : momentum * buffer[i] + (1.0f - dampening) * step;
            buffer[i] = b;
            step = nesterov ? step + momentum * b : b;
        }
        w[i] -= learningRate * step;
    }
}
extern "C" __global__ void __launch_bounds__(256) sgd_update(
        float* w, const float* g, float gradientScale, float* buffer, const long long* chunks, const long long* segments,
        const float* trust, int useTrust, float learningRateArgument, const float* learningRateOnDevice,
        float momentum, float dampening, float weightDecay, int nesterov, int firstStep) {
    grid_dependency_wait();
    sgd_update_body(w, g, gradientScale, buffer, chunks, segments, trust, useTrust, learningRateArgument,
                    learningRateOnDevice, momentum, dampening, weightDecay, nesterov, firstStep);
}
extern "C" __global__ void __launch_bounds__(256) sgd_update_bf16_gradients(
        float* w, const bf16* g, float gradientScale, float* buffer, const long long* chunks, const long long* segments,
        const float* trust, int useTrust, float learningRateArgument, const float* learningRateOnDevice,
        float momentum, float dampening, float weightDecay, int nesterov, int firstStep) {
    grid_dependency_wait();
    sgd_update_body(w, g, gradientScale, buffer, chunks, segments, trust, useTrust, learningRateArgument,
                    learningRateOnDevice, momentum, dampening, weightDecay, nesterov, firstStep);
}
"""#)
}
