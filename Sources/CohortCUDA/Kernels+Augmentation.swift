/// The GPU half of the input pipeline: random crop (zero padding), flip and
/// normalisation of uint8 NHWC images, `Backend.augmentImages`. The host
/// draws each image's crop and flip (deterministic per sample, `Note
/// [Augmentation randomness]`) and uploads them with the raw bytes, a quarter
/// of the float32 images' size; the normalised value of every byte comes from
/// the same 256-entry-per-channel table the CPU path uses, so both give
/// identical floats.
///
/// Launch: one thread per output element (grid-stride), the table in shared
/// memory (3 KB for RGB): each output is one byte load and one shared load,
/// bandwidth-bound on the output write.
extension KernelSource {
    static let augmentation = KernelSource(name: "augmentation", source: kernelPrelude + #"""
template <typename T> __device__ __forceinline__ T store_value(float v);
template <> __device__ __forceinline__ float store_value<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 store_value<bf16>(float v) { return float_to_bf16(v); }

template <typename T>
__device__ void augment(T* y, const unsigned char* x, const int* crops, const float* table,
                        long long n, int H, int W, int C, int padding) {
    extern __shared__ float lookup[];
    for (int i = threadIdx.x; i < C * 256; i += blockDim.x) lookup[i] = table[i];
    __syncthreads();
    GRID_STRIDE(i, n) {
        int c = (int)(i % C);
        long long pixel = i / C;
        int xo = (int)(pixel % W);
        long long row = pixel / W;
        int yo = (int)(row % H);
        long long image = row / H;
        int top = crops[3 * image] - padding, left = crops[3 * image + 1] - padding, flip = crops[3 * image + 2];
        int sy = yo + top, sx = (flip ? W - 1 - xo : xo) + left;
        int v = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? x[((image * H + sy) * W + sx) * C + c] : 0;
        y[i] = store_value<T>(lookup[c * 256 + v]);
    }
}

extern "C" __global__ void augment_f32(float* y, const unsigned char* x, const int* crops, const float* table,
                                       long long n, int H, int W, int C, int padding) {
    grid_dependency_wait();
    augment<float>(y, x, crops, table, n, H, W, C, padding);
}

extern "C" __global__ void augment_bf16(bf16* y, const unsigned char* x, const int* crops, const float* table,
                                        long long n, int H, int W, int C, int padding) {
    grid_dependency_wait();
    augment<bf16>(y, x, crops, table, n, H, W, C, padding);
}
"""#)
}
