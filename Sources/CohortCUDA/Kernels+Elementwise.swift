/// Elementwise kernels, layout conversions and small reductions: memory ops
/// (dtype conversion), ReLU, residual addition, global average pooling, the
/// linear layer's bias, and the OIHW <-> KRSC weight transposes around cuDNN.
///
/// Launch shapes: grid-stride kernels use `Kernels.elementwise` (256 threads,
/// at most 16 blocks per SM). The column reductions (`global_average_pool`,
/// `column_sums`) use 32 x 8 blocks: the 32 threads of a warp take 32
/// consecutive channels (one 128-byte transaction per row, coalesced) and the
/// 8 warps split the rows, then combine in shared memory in a fixed order
/// (deterministic).
extension KernelSource {
    static let elementwise = KernelSource(name: "elementwise", source: kernelPrelude + #"""
extern "C" __global__ void convert_f32_to_bf16(bf16* y, const float* x, long long n) {
    GRID_STRIDE(i, n) y[i] = float_to_bf16(x[i]);
}

extern "C" __global__ void convert_bf16_to_f32(float* y, const bf16* x, long long n) {
    GRID_STRIDE(i, n) y[i] = bf16_to_float(x[i]);
}

// max(0, x) as the reference's max(0, x): NaN gives 0.
extern "C" __global__ void relu_forward(float* y, const float* x, long long n) {
    GRID_STRIDE(i, n) { float v = x[i]; y[i] = v > 0.0f ? v : 0.0f; }
}

// ReLU'(0) = 0. dx may alias dy.
extern "C" __global__ void relu_backward(float* dx, const float* dy, const float* y, long long n) {
    GRID_STRIDE(i, n) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// y = a + b (then max(0, .) if relu); y may alias a or b (each element is read before it is written).
extern "C" __global__ void residual_add(float* y, const float* a, const float* b, long long n, int relu) {
    GRID_STRIDE(i, n) {
        float v = a[i] + b[i];
        y[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
}

// y[n, c] = mean over the HW pixels of x[n, :, :, c]. Grid (N, ceil(C/32)), block (32, 8).
extern "C" __global__ void __launch_bounds__(256) global_average_pool(float* y, const float* x, int pixels, int C) {
    __shared__ float partial[8][32];
    int c = blockIdx.y * 32 + threadIdx.x;
    long long base = (long long)blockIdx.x * pixels * C;
    float sum = 0.0f;
    if (c < C) for (int p = threadIdx.y; p < pixels; p += 8) sum += x[base + (long long)p * C + c];
    partial[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float total = 0.0f;
        for (int k = 0; k < 8; k++) total += partial[k][threadIdx.x];
        y[(long long)blockIdx.x * C + c] = total / (float)pixels;
    }
}

// dx[n, h, w, c] = dy[n, c] * scale (scale = 1 / HW).
extern "C" __global__ void global_average_pool_backward(float* dx, const float* dy, long long n, int pixels, int C, float scale) {
    GRID_STRIDE(i, n) {
        long long image = i / ((long long)pixels * C);
        int c = (int)(i % C);
        dx[i] = dy[image * C + c] * scale;
    }
}

// y[r, c] = b[c] for a [rows, cols] y: the linear layer's bias, before its GEMM accumulates (beta = 1).
extern "C" __global__ void broadcast_rows(float* y, const float* b, long long n, int cols) {
    GRID_STRIDE(i, n) y[i] = b[i % cols];
}

// out[c] = sum over rows of x[r, c], in double. Grid ceil(cols/32), block (32, 8).
extern "C" __global__ void __launch_bounds__(256) column_sums(float* out, const float* x, int rows, int cols) {
    __shared__ double partial[8][32];
    int c = blockIdx.x * 32 + threadIdx.x;
    double sum = 0.0;
    if (c < cols) for (int r = threadIdx.y; r < rows; r += 8) sum += (double)x[(long long)r * cols + c];
    partial[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        double total = 0.0;
        for (int k = 0; k < 8; k++) total += partial[k][threadIdx.x];
        out[c] = (float)total;
    }
}

// KRSC [O][kh][kw][I] from OIHW [O][I][kh][kw]; one thread per destination element (coalesced writes).
extern "C" __global__ void oihw_to_krsc(float* dst, const float* src, int O, int I, int taps) {
    long long n = (long long)O * I * taps;
    GRID_STRIDE(j, n) {
        long long o = j / ((long long)taps * I);
        int rest = (int)(j % ((long long)taps * I));
        int tap = rest / I, i = rest % I;
        dst[j] = src[(o * I + i) * taps + tap];
    }
}

// OIHW from KRSC, the inverse of oihw_to_krsc.
extern "C" __global__ void krsc_to_oihw(float* dst, const float* src, int O, int I, int taps) {
    long long n = (long long)O * I * taps;
    GRID_STRIDE(j, n) {
        long long o = j / ((long long)I * taps);
        int rest = (int)(j % ((long long)I * taps));
        int i = rest / taps, tap = rest % taps;
        dst[j] = src[(o * taps + tap) * I + i];
    }
}
"""#)
}
