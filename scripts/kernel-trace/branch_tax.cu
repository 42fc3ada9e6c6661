// Microbenchmark: what makes a CUDA graph's kernel chain launch its kernels
// further apart when a second stream is involved (the data-parallel step's
// fixed extra time, docs/results/2026-11-28-graph-gaps). A chain of `chain`
// small kernels on stream s0, captured as one graph, timed per replay in
// these settings:
//   single    the chain alone (one stream)
//   empty     + a fork onto s1 and a join with nothing on s1
//   branch    + 6 one-block kernels on s1 between the fork (kernel 150) and the join (kernel 290)
//   early     + the same 6 kernels forked at kernel 1 and joined at kernel 10 (branch done before most of the chain)
//   blocked   the single-stream graph, while s1 holds work waiting (cuStreamWaitValue32) for the chain's end
//   spinning  the single-stream graph, while a one-block kernel on s1 spins until the chain's end
//   twograph  the single-stream graph, then a second graph of 6 kernels launched on s0 (stream order)
//   extevent  the single-stream chain with an external event recorded at kernel 150 (an event record node)
//   sixforks  + 6 forks (kernels 130-270), each 2 kernels of 132 blocks on s1, one join at kernel 295 (the step's shape)
//   sixlow    sixforks with s1 at the default priority
//   memsets   the single-stream chain with a 4-byte cudaMemsetAsync before every 14th kernel (what cuDNN enqueues)
//   memfork   memsets + sixforks' branch
//   memkern   memfork with each memset done by a one-block kernel instead
//   distinct  the single-stream chain cycling through 40 different kernels (a real step has about 40)
//   distfork  distinct + sixforks' branch
//   distsplit distinct, its first half a single-stream graph, its second half (with the forks) a second graph
//   distmem   distinct as one single-stream graph, the branch's kernels in a graph of their own on s1, ordered
//             by cuStreamWriteValue32/cuStreamWaitValue32 nodes in both graphs instead of events
//   memops    the single-stream chain with a satisfied cuStreamWaitValue32 and a cuStreamWriteValue32 at kernel 150
//   extnojoin the single-stream graph; after each launch a one-block kernel on s1, which s0 never waits for
//   extjoin   the same, and s0 waits for that kernel (an event) before the next launch: on one GPU with
//             the real step (COHORT_SIDE_WORK=kernel-join, docs/results/2026-11-28-host-launch) this wait
//             made every later kernel start ~0.4 us later, in 5 processes of 6
// Build and run (on the GPU machine): nvcc -O2 -arch=sm_90 branch_tax.cu -lcuda -o /tmp/branch_tax && /tmp/branch_tax
#include <cuda.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s (line %d)\n", #x, cudaGetErrorString(e), __LINE__); exit(1); } } while (0)
#define CHECKD(x) do { CUresult e = (x); if (e != CUDA_SUCCESS) { printf("%s: %d (line %d)\n", #x, (int)e, __LINE__); exit(1); } } while (0)

__global__ void work(float *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { float v = x[i]; for (int k = 0; k < 8; k++) v = v * 0.999f + 0.001f; x[i] = v; }
}
__global__ void tiny(float *x) { if (threadIdx.x == 0) x[0] += 1.0f; }
__global__ void bump(unsigned *counter) { if (threadIdx.x == 0 && blockIdx.x == 0) { __threadfence_system(); atomicAdd(counter, 1u); } }
__global__ void spin(volatile unsigned *counter, unsigned target) { if (threadIdx.x == 0) while (*counter < target) {} }

static const int chain = 300, n = 132 * 256 * 8;
static float *x, *y;
static unsigned *counter;

static unsigned *flag;

// Ends the capture on `stream` and instantiates what it recorded.
static cudaGraphExec_t endCapture(cudaStream_t stream) {
    cudaGraph_t graph;
    CHECK(cudaStreamEndCapture(stream, &graph));
    cudaGraphExec_t exec;
    CHECK(cudaGraphInstantiate(&exec, graph, 0));
    return exec;
}
__global__ void wide(float *x, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) x[i] = x[i] * 0.5f + 1.0f; }

template <int K> __global__ void workK(float *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { float v = x[i]; for (int k = 0; k < 8; k++) v = v * 0.999f + 0.001f * K; x[i] = v; }
}
typedef void (*WorkKernel)(float *, int);
template <int K> struct Table { static void fill(WorkKernel *t) { t[K - 1] = workK<K>; Table<K - 1>::fill(t); } };
template <> struct Table<0> { static void fill(WorkKernel *) {} };
static WorkKernel distinctKernels[40];

// A chain of kernels [from, to) cycling through distinctKernels, with sixforks' forks where they fall in it;
// mode 0: events (fork/join in this graph), 1: no branch, 2: memops (flag[f] = 1 at fork f; before kernel 295
// wait for flag[6] == 1 and reset it; the branch graph waits for each flag[f] == 1, resets it, runs its two
// kernels, and at its end sets flag[6] = 1: one-shot handshakes, so replays cannot overtake each other).
static cudaGraphExec_t captureDistinct(cudaStream_t s0, cudaStream_t s1, int from, int to, int mode) {
    cudaEvent_t forks[6], join;
    for (int f = 0; f < 6; f++) CHECK(cudaEventCreateWithFlags(&forks[f], cudaEventDisableTiming));
    CHECK(cudaEventCreateWithFlags(&join, cudaEventDisableTiming));
    const int at[6] = {130, 150, 170, 190, 230, 270};
    CHECK(cudaStreamBeginCapture(s0, cudaStreamCaptureModeGlobal));
    for (int k = from, f = 0; k < to; k++) {
        while (f < 6 && at[f] < k) f++;
        if (mode == 0 && f < 6 && k == at[f]) {
            CHECK(cudaEventRecord(forks[f], s0));
            CHECK(cudaStreamWaitEvent(s1, forks[f], 0));
            wide<<<132, 256, 0, s1>>>(y + 256, 132 * 256);
            wide<<<132, 256, 0, s1>>>(y + 256, 132 * 256);
        }
        if (mode == 2 && f < 6 && k == at[f]) CHECKD(cuStreamWriteValue32((CUstream)s0, (CUdeviceptr)(flag + f), 1, CU_STREAM_WRITE_VALUE_DEFAULT));
        if (mode == 0 && k == 295 && from <= 130) { CHECK(cudaEventRecord(join, s1)); CHECK(cudaStreamWaitEvent(s0, join, 0)); }
        if (mode == 2 && k == 295) {
            CHECKD(cuStreamWaitValue32((CUstream)s0, (CUdeviceptr)(flag + 6), 1, CU_STREAM_WAIT_VALUE_EQ));
            CHECKD(cuStreamWriteValue32((CUstream)s0, (CUdeviceptr)(flag + 6), 0, CU_STREAM_WRITE_VALUE_DEFAULT));
        }
        distinctKernels[k % 40]<<<(n + 255) / 256, 256, 0, s0>>>(x, n);
    }
    return endCapture(s0);
}

// The branch of distmem (captureDistinct's mode 2).
static cudaGraphExec_t captureBranch(cudaStream_t s1) {
    CHECK(cudaStreamBeginCapture(s1, cudaStreamCaptureModeGlobal));
    for (int f = 0; f < 6; f++) {
        CHECKD(cuStreamWaitValue32((CUstream)s1, (CUdeviceptr)(flag + f), 1, CU_STREAM_WAIT_VALUE_EQ));
        CHECKD(cuStreamWriteValue32((CUstream)s1, (CUdeviceptr)(flag + f), 0, CU_STREAM_WRITE_VALUE_DEFAULT));
        wide<<<132, 256, 0, s1>>>(y + 256, 132 * 256);
        wide<<<132, 256, 0, s1>>>(y + 256, 132 * 256);
    }
    CHECKD(cuStreamWriteValue32((CUstream)s1, (CUdeviceptr)(flag + 6), 1, CU_STREAM_WRITE_VALUE_DEFAULT));
    return endCapture(s1);
}

__global__ void zero4(unsigned *p) { if (threadIdx.x == 0) *p = 0; }

// memsets: 0 none, 1 cudaMemsetAsync nodes, 2 kernels instead; fork: whether the six forks run.
static cudaGraphExec_t captureSixForks(cudaStream_t s0, cudaStream_t s1, int memsets = 0, bool fork = true) {
    cudaEvent_t forks[6], join;
    for (int f = 0; f < 6; f++) CHECK(cudaEventCreateWithFlags(&forks[f], cudaEventDisableTiming));
    CHECK(cudaEventCreateWithFlags(&join, cudaEventDisableTiming));
    const int at[6] = {130, 150, 170, 190, 230, 270};
    CHECK(cudaStreamBeginCapture(s0, cudaStreamCaptureModeGlobal));
    for (int k = 0, f = 0; k < chain; k++) {
        if (memsets == 1 && k % 14 == 0) CHECK(cudaMemsetAsync(flag + 7, 0, 4, s0));
        if (memsets == 2 && k % 14 == 0) zero4<<<1, 32, 0, s0>>>(flag + 7);
        if (fork && f < 6 && k == at[f]) {
            CHECK(cudaEventRecord(forks[f], s0));
            CHECK(cudaStreamWaitEvent(s1, forks[f], 0));
            wide<<<132, 256, 0, s1>>>(y + 256, 132 * 256);
            wide<<<132, 256, 0, s1>>>(y + 256, 132 * 256);
            f++;
        }
        if (fork && k == 295) { CHECK(cudaEventRecord(join, s1)); CHECK(cudaStreamWaitEvent(s0, join, 0)); }
        work<<<(n + 255) / 256, 256, 0, s0>>>(x, n);
    }
    bump<<<1, 32, 0, s0>>>(counter);
    return endCapture(s0);
}

static cudaGraphExec_t capture(cudaStream_t s0, cudaStream_t s1, int forkAt, int joinAt, int branchKernels, bool bumpAtEnd,
                               int extra = 0) {
    cudaEvent_t external;
    CHECK(cudaEventCreateWithFlags(&external, cudaEventDisableTiming));
    cudaEvent_t fork, join;
    CHECK(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming));
    CHECK(cudaEventCreateWithFlags(&join, cudaEventDisableTiming));
    CHECK(cudaStreamBeginCapture(s0, cudaStreamCaptureModeGlobal));
    for (int k = 0; k < chain; k++) {
        if (k == forkAt) {
            CHECK(cudaEventRecord(fork, s0));
            CHECK(cudaStreamWaitEvent(s1, fork, 0));
            for (int b = 0; b < branchKernels; b++) tiny<<<1, 32, 0, s1>>>(y);
            CHECK(cudaEventRecord(join, s1));
        }
        if (k == joinAt) CHECK(cudaStreamWaitEvent(s0, join, 0));
        if (k == 150 && extra == 1) CHECK(cudaEventRecordWithFlags(external, s0, cudaEventRecordExternal));
        if (k == 150 && extra == 2) {
            CHECKD(cuStreamWaitValue32((CUstream)s0, (CUdeviceptr)flag, 0, CU_STREAM_WAIT_VALUE_GEQ));
            CHECKD(cuStreamWriteValue32((CUstream)s0, (CUdeviceptr)flag, 1, CU_STREAM_WRITE_VALUE_DEFAULT));
        }
        work<<<(n + 255) / 256, 256, 0, s0>>>(x, n);
    }
    if (bumpAtEnd) bump<<<1, 32, 0, s0>>>(counter);
    return endCapture(s0);
}

static cudaGraphExec_t captureSmall(cudaStream_t s0) {
    CHECK(cudaStreamBeginCapture(s0, cudaStreamCaptureModeGlobal));
    for (int b = 0; b < 6; b++) tiny<<<1, 32, 0, s0>>>(y);
    return endCapture(s0);
}

int main() {
    CHECK(cudaMalloc(&x, n * sizeof(float)));
    CHECK(cudaMalloc(&y, (132 * 256 + 512) * sizeof(float)));
    CHECK(cudaMalloc(&counter, sizeof(unsigned)));
    CHECK(cudaMalloc(&flag, 8 * sizeof(unsigned)));
    CHECK(cudaMemset(x, 0, n * sizeof(float)));
    cudaStream_t s0, s1;
    int lo, hi;
    CHECK(cudaDeviceGetStreamPriorityRange(&lo, &hi));
    CHECK(cudaStreamCreateWithFlags(&s0, cudaStreamNonBlocking));
    CHECK(cudaStreamCreateWithPriority(&s1, cudaStreamNonBlocking, hi));
    cudaEvent_t start, stop;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    const char *names[] = {"single", "empty", "branch", "early", "blocked", "spinning", "twograph", "extevent", "memops", "sixforks", "sixlow", "memsets", "memfork", "memkern", "distinct", "distfork", "distsplit", "distmem", "extnojoin", "extjoin"};
    Table<40>::fill(distinctKernels);
    cudaGraphExec_t single = capture(s0, s1, -1, -1, 0, true);
    cudaGraphExec_t graphs[] = {single, capture(s0, s1, 150, 290, 0, true), capture(s0, s1, 150, 290, 6, true),
                                capture(s0, s1, 1, 10, 6, true), single, single, single,
                                capture(s0, s1, -1, -1, 0, true, 1), capture(s0, s1, -1, -1, 0, true, 2),
                                captureSixForks(s0, s1), nullptr, captureSixForks(s0, s1, 1, false),
                                captureSixForks(s0, s1, 1, true), captureSixForks(s0, s1, 2, true),
                                nullptr, nullptr, nullptr, nullptr, single, single};
    CHECK(cudaMemset(flag, 0, 8 * sizeof(unsigned)));
    graphs[14] = captureDistinct(s0, s1, 0, chain, 1);
    graphs[15] = captureDistinct(s0, s1, 0, chain, 0);
    graphs[16] = captureDistinct(s0, s1, 0, 120, 1);
    cudaGraphExec_t secondHalf = captureDistinct(s0, s1, 120, chain, 0);
    graphs[17] = captureDistinct(s0, s1, 0, chain, 2);
    cudaGraphExec_t branchGraph = captureBranch(s1);
    cudaStream_t s2;
    CHECK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    graphs[10] = captureSixForks(s0, s2);
    cudaGraphExec_t small = captureSmall(s0);
    const int replays = 200;
    for (int round = 0; round < 2; round++)
    cudaEvent_t sideDone;
    CHECK(cudaEventCreateWithFlags(&sideDone, cudaEventDisableTiming));
    for (int v = 0; v < 20; v++) {
        CHECK(cudaMemset(counter, 0, sizeof(unsigned)));
        CHECK(cudaMemset(flag, 0, 8 * sizeof(unsigned)));
        CHECK(cudaDeviceSynchronize());
        unsigned launched = 0;
        float total = 0;
        for (int rep = -20; rep < replays; rep++) {
            if (rep == 0) CHECK(cudaEventRecord(start, s0));
            if (v == 4) CHECKD(cuStreamWaitValue32((CUstream)s1, (CUdeviceptr)counter, launched + 1, CU_STREAM_WAIT_VALUE_GEQ));
            if (v == 5) spin<<<1, 32, 0, s1>>>(counter, launched + 1);
            if (v == 4) tiny<<<1, 32, 0, s1>>>(y);
            CHECK(cudaGraphLaunch(graphs[v], s0));
            if (v == 6) CHECK(cudaGraphLaunch(small, s0));
            if (v == 16) CHECK(cudaGraphLaunch(secondHalf, s0));
            if (v == 17) CHECK(cudaGraphLaunch(branchGraph, s1));
            if (v == 18 || v == 19) tiny<<<1, 32, 0, s1>>>(y);
            if (v == 19) { CHECK(cudaEventRecord(sideDone, s1)); CHECK(cudaStreamWaitEvent(s0, sideDone, 0)); }
            launched++;
        }
        CHECK(cudaEventRecord(stop, s0));
        CHECK(cudaDeviceSynchronize());
        CHECK(cudaEventElapsedTime(&total, start, stop));
        if (round == 1) printf("%-9s %8.2f us per replay, %.3f us per chain kernel\n", names[v], total * 1000 / replays, total * 1000 / replays / chain);
    }
    return 0;
}
