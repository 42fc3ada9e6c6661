// Runs the bf16 batch-norm and elementwise kernels on the CPU (KernelEmulation.h)
// with launch shapes the Swift host code computed, and checks them: the vector
// kernels (Note [Vector batch norm]) against double-precision sums and against
// the scalar kernels the GPU self-test has proven (same arithmetic: identical
// bf16 results for normalise and dx), outputs poisoned with NaN first. Then the
// convolution GEMM operand kernels (Note [Convolution paths]), which only move
// values, bit for bit against the definitions of X̂, dx and the padded matrices.
//
// Input, one case per line (KernelEmulationTests writes them):
//   bn <rows> <C> <relu> <seed> <mean offset> <unroll-8 launch> <unroll-4 launch> <scalar slices> <scalar rows per slice>
//      where a launch is <columns> <rows per block> <column groups> <slices> <rows per slice>
//   ew <units of 8> <blocks>
//   px <N> <H> <W> <C> <stride> <element bytes> <unit bytes> <blocks>     gather_pixels and scatter_pixels
//   im <N> <H> <W> <C> <k> <stride> <pad> <ld> <element bytes> <blocks>  im2col
//   cc <rows> <dst columns> <src columns> <src stride> <element bytes> <blocks>  copy_columns
// Prints one line per check; exits with the number of failures.
#include "KernelEmulation.h"
#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
std::barrier<>* emulatedBarrier;

typedef unsigned short bf16;
struct alignas(16) bf16x8 { unsigned int w[4]; };
extern "C" {
void bn_statistics_partials_bf16x8(double*, const bf16x8*, long long, int, long long);
void bn_normalize_bf16x8(bf16x8*, const bf16x8*, const float*, const float*, const float*, const float*, long long, int,
                         long long, int);
void bn_backward_partials_bf16x8(double*, const bf16x8*, const bf16x8*, const bf16x8*, const float*, const float*, long long,
                                 int, long long, int);
void bn_backward_data_bf16x8(bf16x8*, const bf16x8*, const bf16x8*, const bf16x8*, const float*, const float*, const float*,
                             const float*, const float*, long long, int, long long, int);
void bn_statistics_partials_bf16(double*, const bf16*, long long, int, long long);
void bn_statistics_finalize_bf16(float*, float*, float*, float*, const double*, const bf16*, int, long long, int, float, float);
void bn_backward_partials_bf16(double*, const bf16*, const bf16*, const bf16*, const float*, const float*, long long, int,
                               long long, int);
void bn_backward_finalize(float*, float*, const double*, int, int);
void bn_normalize_bf16(bf16*, const bf16*, const float*, const float*, const float*, const float*, long long, int, int);
void bn_backward_data_bf16(bf16*, const bf16*, const bf16*, const bf16*, const float*, const float*, const float*,
                           const float*, const float*, long long, int, long long, int);
void residual_add_bf16x8(bf16x8*, const bf16x8*, const bf16x8*, long long, int);
void relu_backward_bf16x8(bf16x8*, const bf16x8*, const bf16x8*, long long);
void relu_forward_bf16x8(bf16x8*, const bf16x8*, long long);
void gather_pixels_16(bf16x8*, const bf16x8*, int, int, int, int, int, int, int);
void scatter_pixels_16(bf16x8*, const bf16x8*, int, int, int, int, int, int, int);
void gather_pixels_4(unsigned*, const unsigned*, int, int, int, int, int, int, int);
void scatter_pixels_4(unsigned*, const unsigned*, int, int, int, int, int, int, int);
void gather_pixels_2(unsigned short*, const unsigned short*, int, int, int, int, int, int, int);
void scatter_pixels_2(unsigned short*, const unsigned short*, int, int, int, int, int, int, int);
void im2col(float*, const float*, int, int, int, int, int, int, int, int, int, int);
void im2col_bf16(bf16*, const bf16*, int, int, int, int, int, int, int, int, int, int);
void copy_columns(float*, const float*, int, int, int, int);
void copy_columns_bf16(bf16*, const bf16*, int, int, int, int);
}

// Every block of `grid`, one after another; each as block.x * block.y host threads.
static void launch(dim3 grid, dim3 block, const std::function<void()>& kernel) {
    gridDim = grid;
    blockDim = block;
    int threads = block.x * block.y * block.z;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                std::barrier<> barrier(threads);
                emulatedBarrier = &barrier;
                std::vector<std::thread> running;
                for (int t = 0; t < threads; t++)
                    running.emplace_back([&, t] {
                        blockIdx = {x, y, z};
                        threadIdx = {t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                        kernel();
                    });
                for (auto& thread : running) thread.join();
            }
}

struct Launch {
    unsigned columns, rowsPerBlock, groups, slices;
    long long rowsPerSlice;
    dim3 grid() const { return {slices, groups, 1}; }
    dim3 block() const { return {columns, rowsPerBlock, 1}; }
};

static float widen(bf16 h) { return __uint_as_float((unsigned)h << 16); }
static const bf16x8 poison = {{0x7fc07fc0u, 0x7fc07fc0u, 0x7fc07fc0u, 0x7fc07fc0u}};  // bf16 NaNs
static int failures = 0;

static void check(const std::string& what, double error, double bound) {
    bool ok = error <= bound;  // false for NaN
    failures += !ok;
    printf("  %-48s %10.3e  (bound %.0e) %s\n", what.c_str(), error, bound, ok ? "ok" : "FAIL");
}

// max |actual - expected| / max |expected|.
template <typename A> static double error(const std::vector<A>& actual, const std::vector<double>& expected) {
    double difference = 0, largest = 0;
    for (size_t i = 0; i < expected.size(); i++) {
        double d = std::fabs((double)actual[i] - expected[i]);
        difference = std::isnan(d) ? NAN : std::max(difference, d);
        largest = std::max(largest, std::fabs(expected[i]));
    }
    return difference / (largest > 0 ? largest : 1);
}

static long long differing(const std::vector<bf16x8>& a, const std::vector<bf16x8>& b) {
    long long count = 0;
    for (size_t i = 0; i < a.size(); i++)
        for (int k = 0; k < 4; k++) {
            unsigned p = a[i].w[k], q = b[i].w[k];
            count += (p & 0xffff) != (q & 0xffff) || std::isnan(widen(p & 0xffff));
            count += (p >> 16) != (q >> 16) || std::isnan(widen(p >> 16));
        }
    return count;
}

static void batchNorm(long long rows, int C, int relu, unsigned seed, float offset, Launch s8, Launch s4, int scalarSlices,
                      long long scalarRowsPerSlice) {
    printf("batch norm: %lld rows, C %d, relu %d, mean offset %g, statistics grid %u x %u of %u x %u, others %u x %u\n",
           rows, C, relu, offset, s8.slices, s8.groups, s8.columns, s8.rowsPerBlock, s4.slices, s4.groups);
    std::mt19937 random(seed);
    std::uniform_real_distribution<float> wide(-1, 2), unit(-1, 1), around1(0.5f, 1.5f);
    long long n = rows * C, units = n / 8;
    std::vector<bf16x8> x(units), dy(units), y(units, poison), dx(units, poison), yScalar(units, poison), dxScalar(units, poison);
    bf16 *xs = (bf16*)x.data(), *dys = (bf16*)dy.data();
    for (long long i = 0; i < n; i++) {
        xs[i] = host_float_to_bf16(wide(random) + offset);
        dys[i] = host_float_to_bf16(unit(random));
    }
    std::vector<float> scale(C), shift(C), mean(C), invStd(C), runningMean(C, 0), runningVar(C, 1);
    std::vector<float> mean2(C), invStd2(C), runningMean2(C, 0), runningVar2(C, 1);
    for (int c = 0; c < C; c++) { scale[c] = around1(random); shift[c] = unit(random) / 2; }
    dim3 finalizeGrid = {(unsigned)(C + 31) / 32, 1, 1}, reductionBlock = {32, 8, 1};

    // Statistics: vector partials and finalize; the scalar partials and finalize on the same x.
    std::vector<double> partial((size_t)s8.slices * 2 * C, NAN), partial2((size_t)scalarSlices * 2 * C, NAN);
    launch(s8.grid(), s8.block(), [&] { bn_statistics_partials_bf16x8(partial.data(), x.data(), rows, C / 8, s8.rowsPerSlice); });
    launch(finalizeGrid, reductionBlock, [&] {
        bn_statistics_finalize_bf16(mean.data(), invStd.data(), runningMean.data(), runningVar.data(), partial.data(), xs,
                                    s8.slices, rows, C, 0.1f, 1e-5f);
    });
    launch({(unsigned)(C + 31) / 32, (unsigned)scalarSlices, 1}, reductionBlock,
           [&] { bn_statistics_partials_bf16(partial2.data(), xs, rows, C, scalarRowsPerSlice); });
    launch(finalizeGrid, reductionBlock, [&] {
        bn_statistics_finalize_bf16(mean2.data(), invStd2.data(), runningMean2.data(), runningVar2.data(), partial2.data(), xs,
                                    scalarSlices, rows, C, 0.1f, 1e-5f);
    });
    std::vector<double> m(C, 0), var(C, 0), is(C), rv(C);
    for (long long i = 0; i < n; i++) m[i % C] += widen(xs[i]);
    for (int c = 0; c < C; c++) m[c] /= rows;
    for (long long i = 0; i < n; i++) var[i % C] += (widen(xs[i]) - m[i % C]) * (widen(xs[i]) - m[i % C]);
    for (int c = 0; c < C; c++) {
        var[c] /= rows;
        is[c] = 1 / std::sqrt(var[c] + 1e-5);
        rv[c] = 0.9 + 0.1 * var[c] * rows / (rows - 1);
    }
    // The self-test's tolerance is 1e-5; a float32 result carries 6e-8 of rounding.
    check("mean (vector kernels) vs double", error(mean, m), 1e-6);
    check("invStd (vector kernels) vs double", error(invStd, is), 1e-6);
    check("runningVar (vector kernels) vs double", error(runningVar, rv), 1e-6);
    check("mean (scalar kernels) vs double", error(mean2, m), 1e-6);
    check("invStd (scalar kernels) vs double", error(invStd2, is), 1e-6);

    // Normalise: the same arithmetic as the scalar kernel, so the same bf16 bits.
    launch(s4.grid(), s4.block(), [&] {
        bn_normalize_bf16x8(y.data(), x.data(), scale.data(), shift.data(), mean.data(), invStd.data(), rows, C / 8,
                            s4.rowsPerSlice, relu);
    });
    launch({3, 1, 1}, {256, 1, 1}, [&] {
        bn_normalize_bf16((bf16*)yScalar.data(), xs, scale.data(), shift.data(), mean.data(), invStd.data(), n, C, relu);
    });
    check("normalise: elements unlike the scalar kernel's", (double)differing(y, yScalar), 0);

    // Backward sums (vector and scalar) against double, then dx against the scalar kernel.
    const bf16x8* output = relu ? y.data() : dy.data();
    std::vector<double> sums((size_t)s4.slices * 2 * C, NAN), sums2((size_t)scalarSlices * 2 * C, NAN);
    std::vector<float> dScale(C), dShift(C), dScale2(C), dShift2(C);
    launch(s4.grid(), s4.block(), [&] {
        bn_backward_partials_bf16x8(sums.data(), dy.data(), x.data(), output, mean.data(), invStd.data(), rows, C / 8,
                                    s4.rowsPerSlice, relu);
    });
    launch(finalizeGrid, reductionBlock, [&] { bn_backward_finalize(dScale.data(), dShift.data(), sums.data(), s4.slices, C); });
    launch({(unsigned)(C + 31) / 32, (unsigned)scalarSlices, 1}, reductionBlock, [&] {
        bn_backward_partials_bf16(sums2.data(), dys, xs, (const bf16*)output, mean.data(), invStd.data(), rows, C,
                                  scalarRowsPerSlice, relu);
    });
    launch(finalizeGrid, reductionBlock, [&] { bn_backward_finalize(dScale2.data(), dShift2.data(), sums2.data(), scalarSlices, C); });
    std::vector<double> g(C, 0), gx(C, 0);
    for (long long i = 0; i < n; i++) {
        int c = i % C;
        double gradient = relu && widen(((const bf16*)output)[i]) <= 0 ? 0 : widen(dys[i]);
        g[c] += gradient;
        gx[c] += gradient * ((widen(xs[i]) - mean[c]) * (double)invStd[c]);
    }
    check("dScale (vector kernels) vs double", error(dScale, gx), 1e-6);
    check("dShift (vector kernels) vs double", error(dShift, g), 1e-6);
    check("dScale (scalar kernels) vs double", error(dScale2, gx), 1e-6);
    check("dShift (scalar kernels) vs double", error(dShift2, g), 1e-6);
    launch(s4.grid(), s4.block(), [&] {
        bn_backward_data_bf16x8(dx.data(), dy.data(), x.data(), output, scale.data(), mean.data(), invStd.data(), dScale.data(),
                                dShift.data(), rows, C / 8, s4.rowsPerSlice, relu);
    });
    launch({3, 1, 1}, {256, 1, 1}, [&] {
        bn_backward_data_bf16((bf16*)dxScalar.data(), dys, xs, (const bf16*)output, scale.data(), mean.data(), invStd.data(),
                              dScale.data(), dShift.data(), n, C, rows, relu);
    });
    check("dx: elements unlike the scalar kernel's", (double)differing(dx, dxScalar), 0);
}

// add(+ReLU) into a new tensor and in place, ReLU and its backward, against the exact host result.
static void elementwise(long long units, unsigned blocks) {
    printf("elementwise: %lld units of 8, %u blocks of 256 threads\n", units, blocks);
    std::mt19937 random(units);
    std::uniform_real_distribution<float> unit(-1, 1);
    long long n = units * 8;
    std::vector<bf16x8> a(units), b(units), y(units), expected(units);
    bf16 *as = (bf16*)a.data(), *bs = (bf16*)b.data(), *ys = (bf16*)y.data(), *es = (bf16*)expected.data();
    for (long long i = 0; i < n; i++) { as[i] = host_float_to_bf16(unit(random)); bs[i] = host_float_to_bf16(unit(random)); }
    for (int relu = 0; relu < 2; relu++) {
        std::fill(y.begin(), y.end(), poison);
        launch({blocks, 1, 1}, {256, 1, 1}, [&] { residual_add_bf16x8(y.data(), a.data(), b.data(), units, relu); });
        for (long long i = 0; i < n; i++) {
            float sum = widen(as[i]) + widen(bs[i]);
            es[i] = host_float_to_bf16(relu && !(sum > 0) ? 0 : sum);
        }
        check(relu ? "add+relu: wrong elements" : "add: wrong elements", (double)differing(y, expected), 0);
    }
    std::vector<bf16x8> original = a;
    launch({blocks, 1, 1}, {256, 1, 1}, [&] { residual_add_bf16x8(a.data(), a.data(), b.data(), units, 0); });
    for (long long i = 0; i < n; i++) es[i] = host_float_to_bf16(widen(((bf16*)original.data())[i]) + widen(bs[i]));
    check("add in place: wrong elements", (double)differing(a, expected), 0);
    std::fill(y.begin(), y.end(), poison);
    launch({blocks, 1, 1}, {256, 1, 1}, [&] { relu_backward_bf16x8(y.data(), b.data(), original.data(), units); });
    for (long long i = 0; i < n; i++) es[i] = widen(((bf16*)original.data())[i]) > 0 ? bs[i] : 0;
    check("reluBackward: wrong elements", (double)differing(y, expected), 0);
    std::fill(y.begin(), y.end(), poison);
    launch({blocks, 1, 1}, {256, 1, 1}, [&] { relu_forward_bf16x8(y.data(), b.data(), units); });
    for (long long i = 0; i < n; i++) es[i] = widen(bs[i]) > 0 ? bs[i] : 0;
    check("relu: wrong elements", (double)differing(y, expected), 0);
    (void)ys;
}


// MARK: Convolution GEMM operands

// A buffer of `count` elements of `bytes` bytes each (2: bf16, 4: float32), 16-byte aligned, every
// element's bits random (finite bf16 and float values: the kernels copy bits, whatever they mean).
struct Elements {
    int bytes;
    std::vector<bf16x8> storage;
    Elements(long long count, int bytes) : bytes(bytes), storage((count * bytes + 15) / 16 + 1) {}
    void* data() { return storage.data(); }
    unsigned get(long long i) const {
        const unsigned char* p = (const unsigned char*)storage.data() + i * bytes;
        return bytes == 2 ? *(const unsigned short*)p : *(const unsigned*)p;
    }
    void set(long long i, unsigned v) {
        unsigned char* p = (unsigned char*)storage.data() + i * bytes;
        if (bytes == 2) *(unsigned short*)p = (unsigned short)v; else *(unsigned*)p = v;
    }
    void randomize(std::mt19937& random) {  // values in +-[1, 2): no zero, so an element left 0 shows
        for (long long i = 0; i < (long long)(storage.size() * 16 / bytes); i++) {
            unsigned sign = random() & 1, mantissa = random() & 0x7fffffu;
            unsigned f = (sign << 31) | (127u << 23) | mantissa;
            set(i, bytes == 2 ? (f >> 16) | 0x0001 : f);
        }
    }
    void poison() { std::fill(storage.begin(), storage.end(), ::poison); }
};

// Elements of `actual` (first `count`) whose bits differ from `expected`.
static long long mismatches(const Elements& actual, const std::vector<unsigned>& expected) {
    long long count = 0;
    for (size_t i = 0; i < expected.size(); i++) count += actual.get(i) != expected[i];
    return count;
}

// Pixels (n, p*s, q*s) of [N, H, W, C] into [N*P*Q, C], and back into [N, H, W, C] with zeros elsewhere,
// moved in units of `unit` bytes as CUDABackend.pixelUnitBytes chose.
static void pixels(int N, int H, int W, int C, int s, int bytes, int unit, unsigned blocks) {
    int P = (H - 1) / s + 1, Q = (W - 1) / s + 1;
    printf("1x1 pixels: [%d, %d, %d, %d] stride %d (P %d, Q %d), %d-byte elements in %d-byte units, %u blocks\n", N, H, W,
           C, s, P, Q, bytes, unit, blocks);
    std::mt19937 random(N * 1000 + H * 100 + C + s);
    long long inPixels = (long long)N * H * W, outPixels = (long long)N * P * Q;
    int rowUnits = C * bytes / unit;
    Elements x(inPixels * C, bytes), gathered(outPixels * C, bytes), dx(inPixels * C, bytes);
    x.randomize(random);
    gathered.poison();
    std::vector<unsigned> expected(outPixels * C), expectedDx(inPixels * C, 0);
    for (int n = 0; n < N; n++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++)
                for (int c = 0; c < C; c++) {
                    long long row = ((long long)n * P + p) * Q + q, pixel = ((long long)n * H + p * s) * W + q * s;
                    expected[row * C + c] = x.get(pixel * C + c);
                    expectedDx[pixel * C + c] = x.get(pixel * C + c);  // scattering the gather back restores x there
                }
    auto run = [&](bool gather, void* dst, const void* src) {
        int count = (int)(gather ? outPixels : inPixels);
        launch({blocks, 1, 1}, {256, 1, 1}, [&] {
            if (unit == 16) (gather ? gather_pixels_16 : scatter_pixels_16)((bf16x8*)dst, (const bf16x8*)src, count, rowUnits, H, W, P, Q, s);
            else if (unit == 4) (gather ? gather_pixels_4 : scatter_pixels_4)((unsigned*)dst, (const unsigned*)src, count, rowUnits, H, W, P, Q, s);
            else (gather ? gather_pixels_2 : scatter_pixels_2)((unsigned short*)dst, (const unsigned short*)src, count, rowUnits, H, W, P, Q, s);
        });
    };
    run(true, gathered.data(), x.data());
    check("gather: elements unlike x's sampled pixels", (double)mismatches(gathered, expected), 0);
    dx.poison();
    run(false, dx.data(), gathered.data());
    check("scatter: elements unlike dX^ or 0", (double)mismatches(dx, expectedDx), 0);
}

// The im2col matrix [N*P*Q, ld]: column j = (c*k + r)*k + s holds x[n, p*stride - pad + r, q*stride - pad + s, c],
// 0 outside the image and for j >= C*k*k.
static void im2colCase(int N, int H, int W, int C, int k, int stride, int pad, int ld, int bytes, unsigned blocks) {
    int P = (H + 2 * pad - k) / stride + 1, Q = (W + 2 * pad - k) / stride + 1;
    printf("im2col: [%d, %d, %d, %d] k %d stride %d pad %d (P %d, Q %d), ld %d, %d-byte elements, %u blocks\n", N, H, W, C, k,
           stride, pad, P, Q, ld, bytes, blocks);
    std::mt19937 random(N * 7 + C * 3 + k + ld);
    long long rows = (long long)N * P * Q;
    Elements x((long long)N * H * W * C, bytes), cols(rows * ld, bytes);
    x.randomize(random);
    cols.poison();
    std::vector<unsigned> expected(rows * ld, 0);
    for (int n = 0; n < N; n++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++)
                for (int c = 0; c < C; c++)
                    for (int r = 0; r < k; r++)
                        for (int t = 0; t < k; t++) {
                            int h = p * stride - pad + r, w = q * stride - pad + t;
                            if (h < 0 || h >= H || w < 0 || w >= W) continue;
                            long long row = ((long long)n * P + p) * Q + q;
                            expected[row * ld + (c * k + r) * k + t] = x.get((((long long)n * H + h) * W + w) * C + c);
                        }
    launch({blocks, 1, 1}, {256, 1, 1}, [&] {
        if (bytes == 2) im2col_bf16((bf16*)cols.data(), (const bf16*)x.data(), (int)rows, ld, C, H, W, P, Q, k, stride, pad);
        else im2col((float*)cols.data(), (const float*)x.data(), (int)rows, ld, C, H, W, P, Q, k, stride, pad);
    });
    check("im2col: elements unlike the definition", (double)mismatches(cols, expected), 0);
}

// dst [rows, dstColumns] from src [rows, srcStride]: column j < srcColumns copied, else 0.
static void copyColumnsCase(int rows, int dstColumns, int srcColumns, int srcStride, int bytes, unsigned blocks) {
    printf("copy_columns: %d rows, %d columns from %d of a %d-column matrix, %d-byte elements, %u blocks\n", rows, dstColumns,
           srcColumns, srcStride, bytes, blocks);
    std::mt19937 random(rows + dstColumns + srcStride);
    Elements src((long long)rows * srcStride, bytes), dst((long long)rows * dstColumns, bytes);
    src.randomize(random);
    dst.poison();
    std::vector<unsigned> expected((long long)rows * dstColumns, 0);
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < dstColumns && j < srcColumns; j++) expected[(long long)r * dstColumns + j] = src.get((long long)r * srcStride + j);
    launch({blocks, 1, 1}, {256, 1, 1}, [&] {
        if (bytes == 2) copy_columns_bf16((bf16*)dst.data(), (const bf16*)src.data(), rows, dstColumns, srcColumns, srcStride);
        else copy_columns((float*)dst.data(), (const float*)src.data(), rows, dstColumns, srcColumns, srcStride);
    });
    check("copy_columns: elements unlike the definition", (double)mismatches(dst, expected), 0);
}

int main() {
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream fields(line);
        std::string kind;
        fields >> kind;
        if (kind == "bn") {
            long long rows, scalarRowsPerSlice;
            int C, relu, scalarSlices;
            unsigned seed;
            float offset;
            Launch s8, s4;
            fields >> rows >> C >> relu >> seed >> offset;
            for (Launch* l : {&s8, &s4}) fields >> l->columns >> l->rowsPerBlock >> l->groups >> l->slices >> l->rowsPerSlice;
            fields >> scalarSlices >> scalarRowsPerSlice;
            batchNorm(rows, C, relu, seed, offset, s8, s4, scalarSlices, scalarRowsPerSlice);
        } else if (kind == "ew") {
            long long units;
            unsigned blocks;
            fields >> units >> blocks;
            elementwise(units, blocks);
        } else if (kind == "px") {
            int N, H, W, C, stride, bytes, unit;
            unsigned blocks;
            fields >> N >> H >> W >> C >> stride >> bytes >> unit >> blocks;
            pixels(N, H, W, C, stride, bytes, unit, blocks);
        } else if (kind == "im") {
            int N, H, W, C, k, stride, pad, ld, bytes;
            unsigned blocks;
            fields >> N >> H >> W >> C >> k >> stride >> pad >> ld >> bytes >> blocks;
            im2colCase(N, H, W, C, k, stride, pad, ld, bytes, blocks);
        } else if (kind == "cc") {
            int rows, dstColumns, srcColumns, srcStride, bytes;
            unsigned blocks;
            fields >> rows >> dstColumns >> srcColumns >> srcStride >> bytes >> blocks;
            copyColumnsCase(rows, dstColumns, srcColumns, srcStride, bytes, blocks);
        } else if (!kind.empty()) {
            printf("unknown case %s\n", kind.c_str());
            failures++;
        }
    }
    printf("%d failed\n", failures);
    return failures;
}
