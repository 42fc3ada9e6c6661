// Runs the bf16 batch-norm and elementwise kernels on the CPU (KernelEmulation.h)
// with launch shapes the Swift host code computed, and checks them: the vector
// kernels (Note [Vector batch norm]) against double-precision sums and against
// the scalar kernels the GPU self-test has proven (same arithmetic: identical
// bf16 results for normalise and dx), outputs poisoned with NaN first.
//
// Input, one case per line (KernelEmulationTests writes them):
//   bn <rows> <C> <relu> <seed> <mean offset> <unroll-8 launch> <unroll-4 launch> <scalar slices> <scalar rows per slice>
//      where a launch is <columns> <rows per block> <column groups> <slices> <rows per slice>
//   ew <units of 8> <blocks>
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
        }
    }
    printf("%d failed\n", failures);
    return failures;
}
