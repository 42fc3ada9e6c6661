/// The kernels around the convolutions that run as cuBLAS GEMMs (Note
/// [Convolution paths], ConvolutionGEMM.swift): each builds or unpacks one
/// GEMM operand, and every one of them is a pure copy (no arithmetic), so a
/// bf16 value moves bit for bit.
///
/// - `gather_pixels_<U>`: the strided input pixels of a 1x1 convolution,
///   x[n, p*stride, q*stride, :] -> X̂[(n*P + p)*Q + q, :], a [N*P*Q, C] matrix.
/// - `scatter_pixels_<U>`: the inverse for the data gradient, writing every
///   element of dx once: a sampled pixel gets its row of dX̂, every other pixel 0.
/// - `im2col` / `im2col_bf16`: the [N*P*Q, ld] matrix of a k x k convolution,
///   column j = (c*k + r)*k + s (OIHW's order within a filter, so the OIHW
///   weight is the other operand as it stands) holding
///   x[n, p*stride - pad + r, q*stride - pad + s, c], 0 outside the image and
///   in the columns j >= C*k*k that pad a row to ld (a multiple of 8).
/// - `copy_columns` / `copy_columns_bf16`: a [rows, dstCols] matrix from the
///   first columns of a [rows, srcLd] one, 0 past srcCols: pads the OIHW
///   weight [K, C*k*k] to [K, ld] and narrows the [K, ld] weight gradient back.
///
/// The pixel kernels move units of U bytes whatever the dtype: 16 (`bf16x8`,
/// eight bf16 or four float32; one 16-byte access per thread, Note [Vector
/// bf16 access]) when a pixel's row of C elements is a multiple of 16 bytes
/// and both pointers are 16-byte aligned (every ResNet-18 shortcut: C = 64,
/// 128, 256), else 4 (`unsigned int`) or 2 (`unsigned short`) bytes. The
/// host picks U (`CUDABackend.pixelUnitBytes`).
///
/// Indices are 32-bit unsigned: the host sends a geometry here only when every
/// tensor and matrix involved has fewer than 2^31 elements
/// (`ConvolutionGEMMPlan.fitsIn32BitIndices`), so no product below overflows,
/// and the grid-stride loop's `i + stride` stays below 2^32 (Kernels.elementwise
/// launches at most 16 blocks of 256 threads per SM). Launch shape:
/// `Kernels.elementwise` over the units (pixel kernels), the 8-column chunks
/// (im2col) or the elements (copy_columns).
extension KernelSource {
    static let convolutionGEMM = KernelSource(name: "convolution_gemm", source: kernelPrelude + #"""
#define GRID_STRIDE_32(i, n) for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

// dst [pixels = N*P*Q][rowUnits] <- src [N][H][W][rowUnits] at rows p*stride, columns q*stride.
template <typename U> __device__ __forceinline__ void gather_pixels_body(
        U* dst, const U* src, unsigned pixels, unsigned rowUnits, unsigned H, unsigned W, unsigned P, unsigned Q,
        unsigned stride) {
    GRID_STRIDE_32(i, pixels * rowUnits) {
        unsigned pixel = i / rowUnits, u = i - pixel * rowUnits;
        unsigned q = pixel % Q, t = pixel / Q;
        unsigned p = t % P, n = t / P;
        dst[i] = src[((n * H + p * stride) * W + q * stride) * rowUnits + u];
    }
}

// dst [pixels = N*H*W][rowUnits] <- src [N][P][Q][rowUnits] where h and w are multiples of stride, else 0.
// One pass, each destination unit written once (no memset first).
template <typename U> __device__ __forceinline__ void scatter_pixels_body(
        U* dst, const U* src, unsigned pixels, unsigned rowUnits, unsigned H, unsigned W, unsigned P, unsigned Q,
        unsigned stride) {
    GRID_STRIDE_32(i, pixels * rowUnits) {
        unsigned pixel = i / rowUnits, u = i - pixel * rowUnits;
        unsigned w = pixel % W, t = pixel / W;
        unsigned h = t % H, n = t / H;
        U value{};  // zero bits: +0.0 in float32 and bf16
        if (h % stride == 0 && w % stride == 0)
            value = src[((n * P + h / stride) * Q + w / stride) * rowUnits + u];
        dst[i] = value;
    }
}

// One kernel per unit: 16 bytes (bf16x8), 4 (unsigned int), 2 (unsigned short).
extern "C" __global__ void gather_pixels_16(bf16x8* dst, const bf16x8* src, int pixels, int rowUnits,
                                            int H, int W, int P, int Q, int stride) {
    grid_dependency_wait();
    gather_pixels_body(dst, src, pixels, rowUnits, H, W, P, Q, stride);
}
extern "C" __global__ void scatter_pixels_16(bf16x8* dst, const bf16x8* src, int pixels, int rowUnits,
                                             int H, int W, int P, int Q, int stride) {
    grid_dependency_wait();
    scatter_pixels_body(dst, src, pixels, rowUnits, H, W, P, Q, stride);
}
extern "C" __global__ void gather_pixels_4(unsigned int* dst, const unsigned int* src, int pixels, int rowUnits,
                                           int H, int W, int P, int Q, int stride) {
    grid_dependency_wait();
    gather_pixels_body(dst, src, pixels, rowUnits, H, W, P, Q, stride);
}
extern "C" __global__ void scatter_pixels_4(unsigned int* dst, const unsigned int* src, int pixels, int rowUnits,
                                            int H, int W, int P, int Q, int stride) {
    grid_dependency_wait();
    scatter_pixels_body(dst, src, pixels, rowUnits, H, W, P, Q, stride);
}
extern "C" __global__ void gather_pixels_2(unsigned short* dst, const unsigned short* src, int pixels, int rowUnits,
                                           int H, int W, int P, int Q, int stride) {
    grid_dependency_wait();
    gather_pixels_body(dst, src, pixels, rowUnits, H, W, P, Q, stride);
}
extern "C" __global__ void scatter_pixels_2(unsigned short* dst, const unsigned short* src, int pixels, int rowUnits,
                                            int H, int W, int P, int Q, int stride) {
    grid_dependency_wait();
    scatter_pixels_body(dst, src, pixels, rowUnits, H, W, P, Q, stride);
}

// Eight consecutive columns of one row of the im2col matrix, stored as one unit
// (16 bytes in bf16, 32 in float32: ld % 8 == 0 and a 16-byte aligned matrix keep it aligned).
template <typename T> struct alignas(16) Columns8 { T v[8]; };

// cols [rows = N*P*Q][ld] from x [N][H][W][C]; one thread per 8 columns of a row, walking (c, r, s)
// in the columns' order, so the divisions happen once per eight values.
template <typename T> __device__ __forceinline__ void im2col_body(
        T* cols, const T* x, unsigned rows, unsigned ld, int C, int H, int W, unsigned P, unsigned Q, int k,
        int stride, int pad) {
    unsigned chunks = ld / 8;
    GRID_STRIDE_32(i, rows * chunks) {
        unsigned m = i / chunks, j = (i - m * chunks) * 8;
        unsigned q = m % Q, t = m / Q;
        unsigned p = t % P, n = t / P;
        int h0 = (int)p * stride - pad, w0 = (int)q * stride - pad;
        int taps = k * k;
        int c = (int)j / taps, tap = (int)j % taps;
        int r = tap / k, s = tap % k;
        Columns8<T> out;
#pragma unroll
        for (int e = 0; e < 8; e++) {
            int h = h0 + r, w = w0 + s;
            bool inside = c < C && h >= 0 && h < H && w >= 0 && w < W;
            out.v[e] = inside ? x[(((int)n * H + h) * W + w) * C + c] : (T)0;
            if (++s == k) { s = 0; if (++r == k) { r = 0; c++; } }
        }
        *(Columns8<T>*)(cols + m * ld + j) = out;
    }
}
extern "C" __global__ void im2col(float* cols, const float* x, int rows, int ld, int C, int H, int W, int P, int Q,
                                  int k, int stride, int pad) {
    grid_dependency_wait();
    im2col_body(cols, x, rows, ld, C, H, W, P, Q, k, stride, pad);
}
extern "C" __global__ void im2col_bf16(bf16* cols, const bf16* x, int rows, int ld, int C, int H, int W, int P, int Q,
                                       int k, int stride, int pad) {
    grid_dependency_wait();
    im2col_body(cols, x, rows, ld, C, H, W, P, Q, k, stride, pad);
}

// dst [rows][dstCols] <- src [rows][srcLd] column for column, 0 in columns >= srcCols.
template <typename T> __device__ __forceinline__ void copy_columns_body(
        T* dst, const T* src, unsigned rows, unsigned dstCols, unsigned srcCols, unsigned srcLd) {
    GRID_STRIDE_32(i, rows * dstCols) {
        unsigned row = i / dstCols, column = i - row * dstCols;
        dst[i] = column < srcCols ? src[row * srcLd + column] : (T)0;
    }
}
extern "C" __global__ void copy_columns(float* dst, const float* src, int rows, int dstCols, int srcCols, int srcLd) {
    grid_dependency_wait();
    copy_columns_body(dst, src, rows, dstCols, srcCols, srcLd);
}
extern "C" __global__ void copy_columns_bf16(bf16* dst, const bf16* src, int rows, int dstCols, int srcCols, int srcLd) {
    grid_dependency_wait();
    copy_columns_body(dst, src, rows, dstCols, srcCols, srcLd);
}
"""#)
}
