/// Elementwise kernels, layout conversions and small reductions: memory ops
/// (dtype conversion), ReLU, residual addition, global average pooling, the
/// linear layer's bias, and the OIHW <-> KRSC weight transposes around cuDNN.
///
/// Launch shapes: grid-stride kernels use `Kernels.elementwise` (256 threads,
/// at most 16 blocks per SM), the `*_bf16x8` ones `Kernels.vectorElementwise`
/// (256 threads, one wave: as many blocks as the GPU holds). The column reductions (`global_average_pool`,
/// `column_sums`) use 32 x 8 blocks: the 32 threads of a warp take 32
/// consecutive channels (one 128-byte transaction per row, coalesced) and the
/// 8 warps split the rows, then combine in shared memory in a fixed order
/// (deterministic).
///
/// Note [Vector bf16 access]: these kernels are memory-bound, and a warp of
/// scalar bf16 accesses moves 64 bytes per instruction, half what the
/// float32 kernels move; the `*_bf16x8` kernels move eight bf16 (16 bytes)
/// per thread per access, 512 bytes per warp instruction, the width Hopper's
/// memory system is best fed with (HOPPER.md: 16-byte accesses per thread).
/// The host takes them when the element count is a multiple of 8 and every
/// pointer is 16-byte aligned (`CUDABackend.vectorizable`): always for
/// ResNet-18's activations (C a multiple of 64, tensors from the caching
/// allocator); views at odd offsets and odd shapes use the scalar `*_bf16`
/// kernel. Each thread takes four units per pass, all loaded before any is
/// stored (64 bytes per input in flight per thread: one 16-byte load each,
/// about 32 KB per SM at full occupancy, is just what Little's law asks for
/// at 4.8 TB/s, with no margin). The batch-norm `x8` kernels
/// (Note [Vector batch norm]) also need C % 8 == 0, so the eight elements
/// share one row and take channels c..c+7. Measured: `cohort bench convs`
/// prints each kernel's GB/s.
extension KernelSource {
    static let elementwise = KernelSource(name: "elementwise", source: kernelPrelude + #"""
extern "C" __global__ void convert_f32_to_bf16(bf16* y, const float* x, long long n) {
    grid_dependency_wait();
    GRID_STRIDE(i, n) y[i] = float_to_bf16(x[i]);
}

extern "C" __global__ void convert_bf16_to_f32(float* y, const bf16* x, long long n) {
    grid_dependency_wait();
    GRID_STRIDE(i, n) y[i] = bf16_to_float(x[i]);
}

// Widening with a factor: a summed bf16 all-reduce made an average (1 / ranks).
extern "C" __global__ void convert_bf16_to_f32_scaled(float* y, const bf16* x, float scale, long long n) {
    grid_dependency_wait();
    GRID_STRIDE(i, n) y[i] = bf16_to_float(x[i]) * scale;
}

// A captured memset node's work as a kernel node (Note [Memset nodes as kernels] in
// CUDABackend+Graph.swift): the low elementSize bytes of value into each of the width elements
// of height rows, pitch bytes apart.
extern "C" __global__ void graph_memset(unsigned char* dst, long long pitch, unsigned int value, int elementSize,
                                        long long width, long long height) {
    grid_dependency_wait();
    GRID_STRIDE(i, width * height) {
        unsigned char* p = dst + (i / width) * pitch + (i % width) * elementSize;
        if (elementSize == 4) *(unsigned int*)p = value;
        else if (elementSize == 2) *(unsigned short*)p = (unsigned short)value;
        else *p = (unsigned char)value;
    }
}

// Each op below is one template body over the element type T (float or bf16:
// compute in float, a bf16 result rounded once), instantiated as `<name>` for
// float32 and `<name>_bf16` for bfloat16; `<name>_bf16x8` kernels take eight
// bf16 per thread in 16-byte accesses (Note [Vector bf16 access]).

// The *_bf16x8 loop: grid-stride over n8 units, four per thread per pass (units base + k * stride,
// k < 4, each k one coalesced sweep of the grid), every unit of a pass loaded before any is
// stored, so each thread keeps four independent 16-byte loads per input in flight. Outputs may
// alias inputs: each unit is read and then written by the same thread. Launched as one wave
// (Kernels.vectorElementwise).
#define VECTOR_PASSES(base, stride, n8) \
    for (long long stride = (long long)blockDim.x * gridDim.x, base = (long long)blockIdx.x * blockDim.x + threadIdx.x; \
         base < (n8); base += 4 * stride)

// max(0, x) as the reference's max(0, x): NaN gives 0.
template <typename T> __device__ __forceinline__ void relu_forward_body(T* y, const T* x, long long n) {
    GRID_STRIDE(i, n) { float v = load_element(x, i); store_element(y, i, v > 0.0f ? v : 0.0f); }
}
extern "C" __global__ void relu_forward(float* y, const float* x, long long n) { grid_dependency_wait(); relu_forward_body(y, x, n); }
extern "C" __global__ void relu_forward_bf16(bf16* y, const bf16* x, long long n) { grid_dependency_wait(); relu_forward_body(y, x, n); }
extern "C" __global__ void relu_forward_bf16x8(bf16x8* y, const bf16x8* x, long long n8) {
    grid_dependency_wait();
    VECTOR_PASSES(base, stride, n8) {
        bf16x8 in[4];
#pragma unroll
        for (int k = 0; k < 4; k++) if (base + k * stride < n8) in[k] = x[base + k * stride];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            if (base + k * stride >= n8) break;
            float v[8];
            unpack_bf16x8(in[k], v);
#pragma unroll
            for (int j = 0; j < 8; j++) v[j] = v[j] > 0.0f ? v[j] : 0.0f;
            y[base + k * stride] = pack_bf16x8(v);
        }
    }
}

// ReLU'(0) = 0. dx may alias dy.
// Bytes (bf16x8, ResNet-18's largest activation [512, 32, 32, 64], 67.1 MB per tensor): reads dy and y,
// writes dx: 201 MB, 42 us at 4.8 TB/s.
template <typename T> __device__ __forceinline__ void relu_backward_body(T* dx, const T* dy, const T* y, long long n) {
    GRID_STRIDE(i, n) store_element(dx, i, load_element(y, i) > 0.0f ? load_element(dy, i) : 0.0f);
}
extern "C" __global__ void relu_backward(float* dx, const float* dy, const float* y, long long n) {
    grid_dependency_wait();
    relu_backward_body(dx, dy, y, n);
}
extern "C" __global__ void relu_backward_bf16(bf16* dx, const bf16* dy, const bf16* y, long long n) {
    grid_dependency_wait();
    relu_backward_body(dx, dy, y, n);
}
extern "C" __global__ void relu_backward_bf16x8(bf16x8* dx, const bf16x8* dy, const bf16x8* y, long long n8) {
    grid_dependency_wait();
    VECTOR_PASSES(base, stride, n8) {
        bf16x8 gradient[4], output[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            if (base + k * stride < n8) { gradient[k] = dy[base + k * stride]; output[k] = y[base + k * stride]; }
        }
#pragma unroll
        for (int k = 0; k < 4; k++) {
            if (base + k * stride >= n8) break;
            float g[8], v[8];
            unpack_bf16x8(gradient[k], g);
            unpack_bf16x8(output[k], v);
#pragma unroll
            for (int j = 0; j < 8; j++) g[j] = v[j] > 0.0f ? g[j] : 0.0f;
            dx[base + k * stride] = pack_bf16x8(g);
        }
    }
}

// y = a + b (then max(0, .) if relu); y may alias a or b (each element is read before it is written).
// Bytes (bf16x8, [512, 32, 32, 64]): reads a and b, writes y: 201 MB, 42 us at 4.8 TB/s.
template <typename T> __device__ __forceinline__ void residual_add_body(T* y, const T* a, const T* b, long long n, int relu) {
    GRID_STRIDE(i, n) {
        float v = load_element(a, i) + load_element(b, i);
        store_element(y, i, relu ? (v > 0.0f ? v : 0.0f) : v);
    }
}
extern "C" __global__ void residual_add(float* y, const float* a, const float* b, long long n, int relu) {
    grid_dependency_wait();
    residual_add_body(y, a, b, n, relu);
}
extern "C" __global__ void residual_add_bf16(bf16* y, const bf16* a, const bf16* b, long long n, int relu) {
    grid_dependency_wait();
    residual_add_body(y, a, b, n, relu);
}
extern "C" __global__ void residual_add_bf16x8(bf16x8* y, const bf16x8* a, const bf16x8* b, long long n8, int relu) {
    grid_dependency_wait();
    VECTOR_PASSES(base, stride, n8) {
        bf16x8 first[4], second[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            if (base + k * stride < n8) { first[k] = a[base + k * stride]; second[k] = b[base + k * stride]; }
        }
#pragma unroll
        for (int k = 0; k < 4; k++) {
            if (base + k * stride >= n8) break;
            float u[8], v[8];
            unpack_bf16x8(first[k], u);
            unpack_bf16x8(second[k], v);
#pragma unroll
            for (int j = 0; j < 8; j++) {
                float s = u[j] + v[j];
                u[j] = relu ? (s > 0.0f ? s : 0.0f) : s;
            }
            y[base + k * stride] = pack_bf16x8(u);
        }
    }
}

// y[n, c] = mean over the HW pixels of x[n, :, :, c]. Grid (N, ceil(C/32)), block (32, 8).
template <typename T> __device__ __forceinline__ void global_average_pool_body(T* y, const T* x, int pixels, int C) {
    __shared__ float partial[8][32];
    int c = blockIdx.y * 32 + threadIdx.x;
    long long base = (long long)blockIdx.x * pixels * C;
    float sum = 0.0f;
    if (c < C) for (int p = threadIdx.y; p < pixels; p += 8) sum += load_element(x, base + (long long)p * C + c);
    partial[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float total = 0.0f;
        for (int k = 0; k < 8; k++) total += partial[k][threadIdx.x];
        store_element(y, (long long)blockIdx.x * C + c, total / (float)pixels);
    }
}
extern "C" __global__ void __launch_bounds__(256) global_average_pool(float* y, const float* x, int pixels, int C) {
    grid_dependency_wait();
    global_average_pool_body(y, x, pixels, C);
}
extern "C" __global__ void __launch_bounds__(256) global_average_pool_bf16(bf16* y, const bf16* x, int pixels, int C) {
    grid_dependency_wait();
    global_average_pool_body(y, x, pixels, C);
}

// dx[n, h, w, c] = dy[n, c] * scale (scale = 1 / HW).
template <typename T> __device__ __forceinline__ void global_average_pool_backward_body(
        T* dx, const T* dy, long long n, int pixels, int C, float scale) {
    GRID_STRIDE(i, n) {
        long long image = i / ((long long)pixels * C);
        int c = (int)(i % C);
        store_element(dx, i, load_element(dy, image * C + c) * scale);
    }
}
extern "C" __global__ void global_average_pool_backward(float* dx, const float* dy, long long n, int pixels, int C, float scale) {
    grid_dependency_wait();
    global_average_pool_backward_body(dx, dy, n, pixels, C, scale);
}
extern "C" __global__ void global_average_pool_backward_bf16(bf16* dx, const bf16* dy, long long n, int pixels, int C, float scale) {
    grid_dependency_wait();
    global_average_pool_backward_body(dx, dy, n, pixels, C, scale);
}

// y[r, c] = b[c] for a [rows, cols] y: the linear layer's bias, before its GEMM accumulates (beta = 1).
// float32 only: in bf16 mode the GEMM accumulates into a float32 scratch (CUDABackend+Linear.swift).
extern "C" __global__ void broadcast_rows(float* y, const float* b, long long n, int cols) {
    grid_dependency_wait();
    GRID_STRIDE(i, n) y[i] = b[i % cols];
}

// out[c] = sum over rows of x[r, c], in double (out is float32 for either x). Grid ceil(cols/32), block (32, 8).
template <typename T> __device__ __forceinline__ void column_sums_body(float* out, const T* x, int rows, int cols) {
    __shared__ double partial[8][32];
    int c = blockIdx.x * 32 + threadIdx.x;
    double sum = 0.0;
    if (c < cols) for (int r = threadIdx.y; r < rows; r += 8) sum += (double)load_element(x, (long long)r * cols + c);
    partial[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        double total = 0.0;
        for (int k = 0; k < 8; k++) total += partial[k][threadIdx.x];
        out[c] = (float)total;
    }
}
extern "C" __global__ void __launch_bounds__(256) column_sums(float* out, const float* x, int rows, int cols) {
    grid_dependency_wait();
    column_sums_body(out, x, rows, cols);
}
extern "C" __global__ void __launch_bounds__(256) column_sums_bf16(float* out, const bf16* x, int rows, int cols) {
    grid_dependency_wait();
    column_sums_body(out, x, rows, cols);
}

// KRSC [O][kh][kw][I] from OIHW [O][I][kh][kw]; one thread per destination element (coalesced writes).
// A pure permutation: T is the element type (float, or bf16 moved as its bits).
template <typename T> __device__ __forceinline__ void oihw_to_krsc_body(T* dst, const T* src, int O, int I, int taps) {
    long long n = (long long)O * I * taps;
    GRID_STRIDE(j, n) {
        long long o = j / ((long long)taps * I);
        int rest = (int)(j % ((long long)taps * I));
        int tap = rest / I, i = rest % I;
        dst[j] = src[(o * I + i) * taps + tap];
    }
}
extern "C" __global__ void oihw_to_krsc(float* dst, const float* src, int O, int I, int taps) {
    grid_dependency_wait();
    oihw_to_krsc_body(dst, src, O, I, taps);
}
extern "C" __global__ void oihw_to_krsc_bf16(bf16* dst, const bf16* src, int O, int I, int taps) {
    grid_dependency_wait();
    oihw_to_krsc_body(dst, src, O, I, taps);
}

// OIHW from KRSC, the inverse of oihw_to_krsc; S is the source's element type, the destination is
// float32 (the weight gradient's contract), so the bf16 version also widens cuDNN's bf16 gradient.
template <typename S> __device__ __forceinline__ void krsc_to_oihw_body(float* dst, const S* src, int O, int I, int taps) {
    long long n = (long long)O * I * taps;
    GRID_STRIDE(j, n) {
        long long o = j / ((long long)I * taps);
        int rest = (int)(j % ((long long)I * taps));
        int i = rest / taps, tap = rest % taps;
        dst[j] = load_element(src, (o * taps + tap) * I + i);
    }
}
extern "C" __global__ void krsc_to_oihw(float* dst, const float* src, int O, int I, int taps) {
    grid_dependency_wait();
    krsc_to_oihw_body(dst, src, O, I, taps);
}
extern "C" __global__ void krsc_bf16_to_oihw_f32(float* dst, const bf16* src, int O, int I, int taps) {
    grid_dependency_wait();
    krsc_to_oihw_body(dst, src, O, I, taps);
}
"""#)
}
