// CCUDA: the NVIDIA driver, NVRTC, cuBLAS, cuDNN and NCCL reached through dlopen,
// so the binary builds without the CUDA toolkit and starts on machines
// without a GPU (where CUDABackend.init then throws CUDAUnavailable).
//
// No CUDA header is included: the handle types are declared opaque here and
// every prototype is written out from the public headers (CUDA 13.0, cuDNN
// 9.x; see docs/cuda-backend.md and shared CUDA-NOTES). Enums are passed as
// int, which is their C ABI. Each library has a table of function pointers
// filled by its loader; members are _Nonnull where the loader requires the
// symbol, _Nullable where it is optional (checked before use).
//
// To add a library: declare its table and loader below and reuse
// cohort_cuda_open()/LOOKUP in CCUDA.c. NCCL (multi-GPU collectives) is the
// last one; it is loaded only by multi-rank GPU runs.
#ifndef COHORT_CCUDA_H
#define COHORT_CCUDA_H

#include <stddef.h>
#include <stdint.h>

// MARK: Driver API (libcuda.so.1)

typedef int CUresult;
typedef int CUdevice;
typedef uint64_t CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUstream_st *CUstream;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUgraph_st *CUgraph;
typedef struct CUgraphNode_st *CUgraphNode;
typedef struct CUgraphExec_st *CUgraphExec;
typedef struct CUevent_st *CUevent;

// CUDA_MEMSET_NODE_PARAMS: a memset node's target and value (cuGraphMemsetNodeGetParams).
typedef struct CohortMemsetNodeParams {
    CUdeviceptr dst;
    size_t pitch;              // bytes between rows (height > 1)
    unsigned int value;
    unsigned int elementSize;  // 1, 2 or 4 bytes
    size_t width;              // elements per row
    size_t height;             // rows
} CohortMemsetNodeParams;

// CUDA_KERNEL_NODE_PARAMS_v2 (cuGraphAddKernelNode_v2): kern and ctx may be NULL (func, current context).
typedef struct CohortKernelNodeParams {
    CUfunction _Nullable func;
    unsigned int gridDimX, gridDimY, gridDimZ;
    unsigned int blockDimX, blockDimY, blockDimZ;
    unsigned int sharedMemBytes;
    void *_Nullable *_Nullable kernelParams;
    void *_Nullable *_Nullable extra;
    void *_Nullable kern;
    CUcontext _Nullable ctx;
} CohortKernelNodeParams;

// CUlaunchAttribute and CUlaunchConfig (cuLaunchKernelEx): an attribute is its
// id, 4 bytes of padding and a 64-byte union; only ids whose value is one int
// are used here (Note [Programmatic dependent launch] in KernelLauncher.swift).
typedef struct CohortLaunchAttribute {
    int id;
    char padding[4];
    union { char bytes[64]; int intValue; } value;
} CohortLaunchAttribute;
typedef struct CohortLaunchConfig {
    unsigned int gridDimX, gridDimY, gridDimZ;
    unsigned int blockDimX, blockDimY, blockDimZ;
    unsigned int sharedMemBytes;
    CUstream _Nullable hStream;
    CohortLaunchAttribute *_Nullable attrs;
    unsigned int numAttrs;
} CohortLaunchConfig;
enum { COHORT_CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6 };

typedef struct CohortCUDADriver {
    CUresult (*_Nonnull cuInit)(unsigned int flags);
    CUresult (*_Nonnull cuDriverGetVersion)(int *_Nonnull version);
    CUresult (*_Nonnull cuGetErrorName)(CUresult error, const char *_Nullable *_Nonnull name);
    CUresult (*_Nonnull cuGetErrorString)(CUresult error, const char *_Nullable *_Nonnull message);
    // Devices and the primary context
    CUresult (*_Nonnull cuDeviceGetCount)(int *_Nonnull count);
    CUresult (*_Nonnull cuDeviceGet)(CUdevice *_Nonnull device, int ordinal);
    CUresult (*_Nonnull cuDeviceGetName)(char *_Nonnull name, int length, CUdevice device);
    CUresult (*_Nonnull cuDeviceGetAttribute)(int *_Nonnull value, int attribute, CUdevice device);
    CUresult (*_Nonnull cuDeviceTotalMem_v2)(size_t *_Nonnull bytes, CUdevice device);
    CUresult (*_Nonnull cuDevicePrimaryCtxRetain)(CUcontext _Nullable *_Nonnull context, CUdevice device);
    CUresult (*_Nonnull cuCtxSetCurrent)(CUcontext _Nullable context);
    // Memory
    CUresult (*_Nonnull cuMemAlloc_v2)(CUdeviceptr *_Nonnull pointer, size_t bytes);
    CUresult (*_Nonnull cuMemFree_v2)(CUdeviceptr pointer);
    CUresult (*_Nonnull cuMemGetInfo_v2)(size_t *_Nonnull freeBytes, size_t *_Nonnull totalBytes);
    CUresult (*_Nonnull cuMemcpyHtoDAsync_v2)(CUdeviceptr destination, const void *_Nonnull source, size_t bytes,
                                             CUstream _Nullable stream);
    CUresult (*_Nonnull cuMemcpyDtoHAsync_v2)(void *_Nonnull destination, CUdeviceptr source, size_t bytes,
                                             CUstream _Nullable stream);
    CUresult (*_Nonnull cuMemcpyDtoDAsync_v2)(CUdeviceptr destination, CUdeviceptr source, size_t bytes,
                                             CUstream _Nullable stream);
    CUresult (*_Nonnull cuMemsetD32Async)(CUdeviceptr destination, unsigned int value, size_t count,
                                          CUstream _Nullable stream);
    CUresult (*_Nonnull cuMemsetD16Async)(CUdeviceptr destination, unsigned short value, size_t count,
                                          CUstream _Nullable stream);
    // Streams
    CUresult (*_Nonnull cuStreamCreate)(CUstream _Nullable *_Nonnull stream, unsigned int flags);
    CUresult (*_Nonnull cuStreamSynchronize)(CUstream _Nullable stream);
    CUresult (*_Nonnull cuStreamDestroy_v2)(CUstream _Nullable stream);
    // Modules and kernels
    CUresult (*_Nonnull cuModuleLoadData)(CUmodule _Nullable *_Nonnull module, const void *_Nonnull image);
    CUresult (*_Nonnull cuModuleGetFunction)(CUfunction _Nullable *_Nonnull function, CUmodule _Nonnull module,
                                             const char *_Nonnull name);
    CUresult (*_Nonnull cuLaunchKernel)(CUfunction _Nonnull function,
                                        unsigned int gridX, unsigned int gridY, unsigned int gridZ,
                                        unsigned int blockX, unsigned int blockY, unsigned int blockZ,
                                        unsigned int sharedBytes, CUstream _Nullable stream,
                                        void *_Nullable *_Nullable parameters, void *_Nullable *_Nullable extra);
    // Graphs, pinned host memory and events (optional: a driver without them
    // runs every step eagerly and uploads from pageable memory; see
    // Note [Graph capture] in docs/design.md).
    CUresult (*_Nullable cuStreamBeginCapture_v2)(CUstream _Nonnull stream, int mode);
    CUresult (*_Nullable cuStreamEndCapture)(CUstream _Nonnull stream, CUgraph _Nullable *_Nonnull graph);
    CUresult (*_Nullable cuStreamIsCapturing)(CUstream _Nonnull stream, int *_Nonnull status);
    CUresult (*_Nullable cuGraphGetNodes)(CUgraph _Nonnull graph, CUgraphNode _Nullable *_Nullable nodes,
                                          size_t *_Nonnull count);
    CUresult (*_Nullable cuGraphInstantiateWithFlags)(CUgraphExec _Nullable *_Nonnull exec, CUgraph _Nonnull graph,
                                                      unsigned long long flags);
    CUresult (*_Nullable cuGraphUpload)(CUgraphExec _Nonnull exec, CUstream _Nonnull stream);
    CUresult (*_Nullable cuGraphLaunch)(CUgraphExec _Nonnull exec, CUstream _Nonnull stream);
    CUresult (*_Nullable cuGraphExecDestroy)(CUgraphExec _Nonnull exec);
    CUresult (*_Nullable cuGraphDestroy)(CUgraph _Nonnull graph);
    // CUDA 11.3+: writes a graph as Graphviz text (COHORT_GRAPH_DOT, a diagnostic).
    // A synchronous download on the legacy stream, which does not wait for the
    // non-blocking streams Cohort uses (Backend.download(_:after:)).
    CUresult (*_Nullable cuMemcpyDtoH_v2)(void *_Nonnull destination, CUdeviceptr source, size_t bytes);
    // Per-kernel attributes (COHORT_KERNEL_CARVEOUT: the preferred shared-memory carveout, an experiment).
    CUresult (*_Nullable cuFuncSetAttribute)(CUfunction _Nonnull function, int attribute, int value);
    CUresult (*_Nullable cuGraphDebugDotPrint)(CUgraph _Nonnull graph, const char *_Nonnull path, unsigned int flags);
    CUresult (*_Nullable cuMemHostAlloc)(void *_Nullable *_Nonnull pointer, size_t bytes, unsigned int flags);
    CUresult (*_Nullable cuMemFreeHost)(void *_Nonnull pointer);
    CUresult (*_Nullable cuEventCreate)(CUevent _Nullable *_Nonnull event, unsigned int flags);
    CUresult (*_Nullable cuEventRecord)(CUevent _Nonnull event, CUstream _Nullable stream);
    // CUDA 11.1+: with COHORT_CU_EVENT_RECORD_EXTERNAL a capture records an
    // event-record node (a timestamp every replay) instead of an edge
    // (Note [Timing inside graphs] in CUDAEvent.swift).
    CUresult (*_Nullable cuEventRecordWithFlags)(CUevent _Nonnull event, CUstream _Nullable stream, unsigned int flags);
    CUresult (*_Nullable cuEventSynchronize)(CUevent _Nonnull event);
    CUresult (*_Nullable cuEventDestroy_v2)(CUevent _Nonnull event);
    // A second stream for collectives, ordered against the compute stream by
    // events, and device timing (optional: without them NCCL runs on the
    // compute stream and step phases are timed on the host; see
    // Note [Communication stream] in NCCLCommunicator.swift).
    CUresult (*_Nullable cuStreamWaitEvent)(CUstream _Nullable stream, CUevent _Nonnull event, unsigned int flags);
    CUresult (*_Nullable cuEventQuery)(CUevent _Nonnull event);
    CUresult (*_Nullable cuEventElapsedTime)(float *_Nonnull milliseconds, CUevent _Nonnull start, CUevent _Nonnull end);
    CUresult (*_Nullable cuStreamCreateWithPriority)(CUstream _Nullable *_Nonnull stream, unsigned int flags,
                                                     int priority);
    CUresult (*_Nullable cuCtxGetStreamPriorityRange)(int *_Nullable leastPriority, int *_Nullable greatestPriority);
    // How a host thread waits for the device (spin, yield, block): COHORT_CUDA_SCHEDULE in CUDAContext.swift.
    CUresult (*_Nullable cuDevicePrimaryCtxSetFlags_v2)(CUdevice device, unsigned int flags);
    // Timing between two events recorded without COHORT_CU_EVENT_DISABLE_TIMING (`cohort bench convs`):
    // CUDA 12.8 added the _v2 name and CUDA 13 keeps only it; older drivers have the plain one.
    CUresult (*_Nullable cuEventElapsedTime_v2)(float *_Nonnull milliseconds, CUevent _Nonnull start,
                                                CUevent _Nonnull end);
    // How many blocks of `function` fit on one SM at once (registers, shared memory, threads): sizes the
    // grids of the one-wave kernels (Note [Vector batch norm]); without it they assume two.
    CUresult (*_Nullable cuOccupancyMaxActiveBlocksPerMultiprocessor)(int *_Nonnull blocks, CUfunction _Nonnull function,
                                                                      int blockSize, size_t dynamicSharedBytes);
    // Graph editing before instantiation: memset nodes become kernel nodes (Note [Memset nodes as
    // kernels] in CUDABackend+Graph.swift). The dependency queries are the CUDA 11 entry points, which a
    // driver keeps for older binaries; they return CUDA_ERROR_LOSSY_QUERY where an edge carries data
    // (a programmatic edge), and the graph is then left as captured.
    CUresult (*_Nullable cuGraphNodeGetType)(CUgraphNode _Nonnull node, int *_Nonnull type);
    CUresult (*_Nullable cuGraphMemsetNodeGetParams)(CUgraphNode _Nonnull node, CohortMemsetNodeParams *_Nonnull params);
    CUresult (*_Nullable cuGraphNodeGetDependencies)(CUgraphNode _Nonnull node, CUgraphNode _Nullable *_Nullable dependencies,
                                                     size_t *_Nonnull count);
    CUresult (*_Nullable cuGraphNodeGetDependentNodes)(CUgraphNode _Nonnull node, CUgraphNode _Nullable *_Nullable dependents,
                                                       size_t *_Nonnull count);
    CUresult (*_Nullable cuGraphAddKernelNode_v2)(CUgraphNode _Nullable *_Nonnull node, CUgraph _Nonnull graph,
                                                  const CUgraphNode _Nullable *_Nullable dependencies, size_t count,
                                                  const CohortKernelNodeParams *_Nonnull params);
    CUresult (*_Nullable cuGraphAddDependencies)(CUgraph _Nonnull graph, const CUgraphNode _Nullable *_Nullable from,
                                                 const CUgraphNode _Nullable *_Nullable to, size_t count);
    CUresult (*_Nullable cuGraphDestroyNode)(CUgraphNode _Nonnull node);
    // CUDA 12.0+ launches with attributes (programmatic dependent launch).
    CUresult (*_Nullable cuLaunchKernelEx)(const CohortLaunchConfig *_Nonnull config, CUfunction _Nonnull function,
                                           void *_Nullable *_Nullable parameters, void *_Nullable *_Nullable extra);
    // CUDA 11.7+ stream memory operations (a diagnostic's waits without events: COHORT_SIDE_WORK=kernel-value).
    CUresult (*_Nullable cuStreamWaitValue32_v2)(CUstream _Nullable stream, CUdeviceptr address, unsigned int value,
                                                 unsigned int flags);
    CUresult (*_Nullable cuStreamWriteValue32_v2)(CUstream _Nullable stream, CUdeviceptr address, unsigned int value,
                                                  unsigned int flags);
} CohortCUDADriver;

// cuStreamWaitValue32 flag: wait until (int32_t)(*address - value) >= 0.
enum { COHORT_CU_STREAM_WAIT_VALUE_GEQ = 0 };

// CUgraphNodeType values used.
enum { COHORT_CU_GRAPH_NODE_TYPE_KERNEL = 0, COHORT_CU_GRAPH_NODE_TYPE_MEMSET = 2 };

// cuDeviceGetAttribute attributes used (CUdevice_attribute values).
enum {
    COHORT_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
    COHORT_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    COHORT_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
};
// cuStreamCreate flag: no implicit synchronisation with the legacy default stream.
enum { COHORT_CU_STREAM_NON_BLOCKING = 1 };
// cuStreamBeginCapture_v2 modes (CUstreamCaptureMode) and cuStreamIsCapturing
// statuses (CUstreamCaptureStatus).
enum {
    COHORT_CU_STREAM_CAPTURE_MODE_GLOBAL = 0,
    COHORT_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1,
    COHORT_CU_STREAM_CAPTURE_MODE_RELAXED = 2,
};
enum {
    COHORT_CU_STREAM_CAPTURE_STATUS_NONE = 0,
    COHORT_CU_STREAM_CAPTURE_STATUS_ACTIVE = 1,
    COHORT_CU_STREAM_CAPTURE_STATUS_INVALIDATED = 2,
};
// cuMemHostAlloc flag: pinned for every context; cuEventCreate flag: no timing.
enum { COHORT_CU_MEMHOSTALLOC_PORTABLE = 1, COHORT_CU_EVENT_DISABLE_TIMING = 2 };
// cuEventRecordWithFlags flag: captured as an event-record node, not an edge.
enum { COHORT_CU_EVENT_RECORD_EXTERNAL = 1 };
// cuGraphInstantiateWithFlags: run each kernel node at its own priority (the
// stream it was captured from) rather than the launch stream's.
enum { COHORT_CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY = 8 };
// cuGraphDebugDotPrint: every node's parameters.
enum { COHORT_CU_GRAPH_DEBUG_DOT_FLAGS_VERBOSE = 1 };
// cuFuncSetAttribute: CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT (percent of the
// unified L1/shared memory to give shared memory; -1 = no preference).
enum { COHORT_CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT = 9 };
// cuEventQuery's answer while the work before the event is still running.
enum { COHORT_CUDA_ERROR_NOT_READY = 600 };
// A dependency query that cannot describe the graph's edges without their data (a programmatic edge).
enum { COHORT_CUDA_ERROR_LOSSY_QUERY = 222 };

// MARK: NVRTC (libnvrtc.so.13)

typedef int nvrtcResult;
typedef struct _nvrtcProgram *nvrtcProgram;

typedef struct CohortNVRTC {
    nvrtcResult (*_Nonnull nvrtcVersion)(int *_Nonnull major, int *_Nonnull minor);
    const char *_Nonnull (*_Nonnull nvrtcGetErrorString)(nvrtcResult result);
    nvrtcResult (*_Nonnull nvrtcCreateProgram)(nvrtcProgram _Nullable *_Nonnull program, const char *_Nonnull source,
                                               const char *_Nullable name, int headerCount,
                                               const char *_Nullable const *_Nullable headers,
                                               const char *_Nullable const *_Nullable includeNames);
    nvrtcResult (*_Nonnull nvrtcCompileProgram)(nvrtcProgram _Nonnull program, int optionCount,
                                                const char *_Nullable const *_Nullable options);
    nvrtcResult (*_Nonnull nvrtcGetProgramLogSize)(nvrtcProgram _Nonnull program, size_t *_Nonnull bytes);
    nvrtcResult (*_Nonnull nvrtcGetProgramLog)(nvrtcProgram _Nonnull program, char *_Nonnull log);
    nvrtcResult (*_Nonnull nvrtcGetCUBINSize)(nvrtcProgram _Nonnull program, size_t *_Nonnull bytes);
    nvrtcResult (*_Nonnull nvrtcGetCUBIN)(nvrtcProgram _Nonnull program, char *_Nonnull cubin);
    nvrtcResult (*_Nonnull nvrtcDestroyProgram)(nvrtcProgram _Nullable *_Nonnull program);
} CohortNVRTC;

// MARK: cuBLAS (libcublas.so.13)

typedef int cublasStatus_t;
typedef struct cublasContext *cublasHandle_t;

typedef struct CohortCUBLAS {
    cublasStatus_t (*_Nonnull cublasCreate_v2)(cublasHandle_t _Nullable *_Nonnull handle);
    cublasStatus_t (*_Nonnull cublasGetVersion_v2)(cublasHandle_t _Nonnull handle, int *_Nonnull version);
    cublasStatus_t (*_Nonnull cublasSetStream_v2)(cublasHandle_t _Nonnull handle, CUstream _Nullable stream);
    cublasStatus_t (*_Nonnull cublasSetWorkspace_v2)(cublasHandle_t _Nonnull handle, void *_Nullable workspace,
                                                     size_t bytes);
    // All pointers are device pointers except alpha and beta (host, the default pointer mode).
    cublasStatus_t (*_Nonnull cublasGemmEx)(cublasHandle_t _Nonnull handle, int transA, int transB,
                                            int m, int n, int k, const void *_Nonnull alpha,
                                            const void *_Nonnull a, int aType, int lda,
                                            const void *_Nonnull b, int bType, int ldb,
                                            const void *_Nonnull beta, void *_Nonnull c, int cType, int ldc,
                                            int computeType, int algorithm);
    // Since cuBLAS 11.4; optional.
    const char *_Nullable (*_Nullable cublasGetStatusName)(cublasStatus_t status);
    const char *_Nullable (*_Nullable cublasGetStatusString)(cublasStatus_t status);
} CohortCUBLAS;

enum {
    COHORT_CUBLAS_OP_N = 0,
    COHORT_CUBLAS_OP_T = 1,
    COHORT_CUDA_R_32F = 0,
    COHORT_CUDA_R_16BF = 14,
    COHORT_CUBLAS_COMPUTE_32F = 68,
    COHORT_CUBLAS_COMPUTE_32F_FAST_TF32 = 77,  // float32 data, TF32 tensor-core products, float32 sums
    COHORT_CUBLAS_GEMM_DEFAULT = -1,
};

// MARK: cuDNN (libcudnn.so.9), the legacy convolution API

typedef int cudnnStatus_t;
typedef struct cudnnContext *cudnnHandle_t;
typedef struct cudnnTensorStruct *cudnnTensorDescriptor_t;
typedef struct cudnnFilterStruct *cudnnFilterDescriptor_t;
typedef struct cudnnConvolutionStruct *cudnnConvolutionDescriptor_t;

/// cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionBwdDataAlgoPerf_t and
/// cudnnConvolutionBwdFilterAlgoPerf_t share this layout.
typedef struct CohortCUDNNConvolutionPerf {
    int algorithm;
    cudnnStatus_t status;
    float time;          // milliseconds
    size_t memory;       // workspace bytes
    int determinism;
    int mathType;
    int reserved[3];
} CohortCUDNNConvolutionPerf;
_Static_assert(sizeof(CohortCUDNNConvolutionPerf) == 48, "cuDNN's conv perf structs are 48 bytes");
_Static_assert(offsetof(CohortCUDNNConvolutionPerf, memory) == 16, "memory follows a 4-byte pad");

typedef struct CohortCUDNN {
    size_t (*_Nonnull cudnnGetVersion)(void);
    const char *_Nonnull (*_Nonnull cudnnGetErrorString)(cudnnStatus_t status);
    // cuDNN 9: the last error's detail; optional.
    void (*_Nullable cudnnGetLastErrorString)(char *_Nonnull message, size_t length);
    cudnnStatus_t (*_Nonnull cudnnCreate)(cudnnHandle_t _Nullable *_Nonnull handle);
    cudnnStatus_t (*_Nonnull cudnnSetStream)(cudnnHandle_t _Nonnull handle, CUstream _Nullable stream);
    // Descriptors
    cudnnStatus_t (*_Nonnull cudnnCreateTensorDescriptor)(cudnnTensorDescriptor_t _Nullable *_Nonnull descriptor);
    cudnnStatus_t (*_Nonnull cudnnDestroyTensorDescriptor)(cudnnTensorDescriptor_t _Nonnull descriptor);
    cudnnStatus_t (*_Nonnull cudnnSetTensor4dDescriptor)(cudnnTensorDescriptor_t _Nonnull descriptor, int format,
                                                         int dataType, int n, int c, int h, int w);
    cudnnStatus_t (*_Nonnull cudnnCreateFilterDescriptor)(cudnnFilterDescriptor_t _Nullable *_Nonnull descriptor);
    cudnnStatus_t (*_Nonnull cudnnDestroyFilterDescriptor)(cudnnFilterDescriptor_t _Nonnull descriptor);
    // Note the order: data type before format (unlike the tensor descriptor).
    cudnnStatus_t (*_Nonnull cudnnSetFilter4dDescriptor)(cudnnFilterDescriptor_t _Nonnull descriptor, int dataType,
                                                         int format, int k, int c, int h, int w);
    cudnnStatus_t (*_Nonnull cudnnCreateConvolutionDescriptor)(
        cudnnConvolutionDescriptor_t _Nullable *_Nonnull descriptor);
    cudnnStatus_t (*_Nonnull cudnnDestroyConvolutionDescriptor)(cudnnConvolutionDescriptor_t _Nonnull descriptor);
    cudnnStatus_t (*_Nonnull cudnnSetConvolution2dDescriptor)(cudnnConvolutionDescriptor_t _Nonnull descriptor,
                                                              int padH, int padW, int strideH, int strideW,
                                                              int dilationH, int dilationW, int mode,
                                                              int computeType);
    cudnnStatus_t (*_Nonnull cudnnSetConvolutionMathType)(cudnnConvolutionDescriptor_t _Nonnull descriptor,
                                                          int mathType);
    // Algorithm search (times real kernels and overwrites its output argument)
    cudnnStatus_t (*_Nonnull cudnnFindConvolutionForwardAlgorithmEx)(
        cudnnHandle_t _Nonnull handle, cudnnTensorDescriptor_t _Nonnull xDesc, const void *_Nonnull x,
        cudnnFilterDescriptor_t _Nonnull wDesc, const void *_Nonnull w,
        cudnnConvolutionDescriptor_t _Nonnull convDesc, cudnnTensorDescriptor_t _Nonnull yDesc, void *_Nonnull y,
        int requestedCount, int *_Nonnull returnedCount, CohortCUDNNConvolutionPerf *_Nonnull results,
        void *_Nullable workspace, size_t workspaceBytes);
    cudnnStatus_t (*_Nonnull cudnnFindConvolutionBackwardDataAlgorithmEx)(
        cudnnHandle_t _Nonnull handle, cudnnFilterDescriptor_t _Nonnull wDesc, const void *_Nonnull w,
        cudnnTensorDescriptor_t _Nonnull dyDesc, const void *_Nonnull dy,
        cudnnConvolutionDescriptor_t _Nonnull convDesc, cudnnTensorDescriptor_t _Nonnull dxDesc, void *_Nonnull dx,
        int requestedCount, int *_Nonnull returnedCount, CohortCUDNNConvolutionPerf *_Nonnull results,
        void *_Nullable workspace, size_t workspaceBytes);
    cudnnStatus_t (*_Nonnull cudnnFindConvolutionBackwardFilterAlgorithmEx)(
        cudnnHandle_t _Nonnull handle, cudnnTensorDescriptor_t _Nonnull xDesc, const void *_Nonnull x,
        cudnnTensorDescriptor_t _Nonnull dyDesc, const void *_Nonnull dy,
        cudnnConvolutionDescriptor_t _Nonnull convDesc, cudnnFilterDescriptor_t _Nonnull dwDesc, void *_Nonnull dw,
        int requestedCount, int *_Nonnull returnedCount, CohortCUDNNConvolutionPerf *_Nonnull results,
        void *_Nullable workspace, size_t workspaceBytes);
    // Execution (alpha and beta are host floats for float data)
    cudnnStatus_t (*_Nonnull cudnnConvolutionForward)(
        cudnnHandle_t _Nonnull handle, const void *_Nonnull alpha, cudnnTensorDescriptor_t _Nonnull xDesc,
        const void *_Nonnull x, cudnnFilterDescriptor_t _Nonnull wDesc, const void *_Nonnull w,
        cudnnConvolutionDescriptor_t _Nonnull convDesc, int algorithm, void *_Nullable workspace,
        size_t workspaceBytes, const void *_Nonnull beta, cudnnTensorDescriptor_t _Nonnull yDesc, void *_Nonnull y);
    cudnnStatus_t (*_Nonnull cudnnConvolutionBackwardData)(
        cudnnHandle_t _Nonnull handle, const void *_Nonnull alpha, cudnnFilterDescriptor_t _Nonnull wDesc,
        const void *_Nonnull w, cudnnTensorDescriptor_t _Nonnull dyDesc, const void *_Nonnull dy,
        cudnnConvolutionDescriptor_t _Nonnull convDesc, int algorithm, void *_Nullable workspace,
        size_t workspaceBytes, const void *_Nonnull beta, cudnnTensorDescriptor_t _Nonnull dxDesc, void *_Nonnull dx);
    cudnnStatus_t (*_Nonnull cudnnConvolutionBackwardFilter)(
        cudnnHandle_t _Nonnull handle, const void *_Nonnull alpha, cudnnTensorDescriptor_t _Nonnull xDesc,
        const void *_Nonnull x, cudnnTensorDescriptor_t _Nonnull dyDesc, const void *_Nonnull dy,
        cudnnConvolutionDescriptor_t _Nonnull convDesc, int algorithm, void *_Nullable workspace,
        size_t workspaceBytes, const void *_Nonnull beta, cudnnFilterDescriptor_t _Nonnull dwDesc, void *_Nonnull dw);
    // The workspace a known algorithm needs (optional): checks an algorithm read back from
    // the on-disk cache of earlier searches (Note [Convolution algorithm cache]).
    cudnnStatus_t (*_Nullable cudnnGetConvolutionForwardWorkspaceSize)(
        cudnnHandle_t _Nonnull handle, cudnnTensorDescriptor_t _Nonnull xDesc, cudnnFilterDescriptor_t _Nonnull wDesc,
        cudnnConvolutionDescriptor_t _Nonnull convDesc, cudnnTensorDescriptor_t _Nonnull yDesc, int algorithm,
        size_t *_Nonnull bytes);
    cudnnStatus_t (*_Nullable cudnnGetConvolutionBackwardDataWorkspaceSize)(
        cudnnHandle_t _Nonnull handle, cudnnFilterDescriptor_t _Nonnull wDesc, cudnnTensorDescriptor_t _Nonnull dyDesc,
        cudnnConvolutionDescriptor_t _Nonnull convDesc, cudnnTensorDescriptor_t _Nonnull dxDesc, int algorithm,
        size_t *_Nonnull bytes);
    cudnnStatus_t (*_Nullable cudnnGetConvolutionBackwardFilterWorkspaceSize)(
        cudnnHandle_t _Nonnull handle, cudnnTensorDescriptor_t _Nonnull xDesc, cudnnTensorDescriptor_t _Nonnull dyDesc,
        cudnnConvolutionDescriptor_t _Nonnull convDesc, cudnnFilterDescriptor_t _Nonnull dwDesc, int algorithm,
        size_t *_Nonnull bytes);
} CohortCUDNN;

enum {
    COHORT_CUDNN_DATA_FLOAT = 0,
    COHORT_CUDNN_DATA_BFLOAT16 = 9,
    COHORT_CUDNN_TENSOR_NCHW = 0,
    COHORT_CUDNN_TENSOR_NHWC = 1,
    COHORT_CUDNN_CROSS_CORRELATION = 1,
    COHORT_CUDNN_DEFAULT_MATH = 0,
    COHORT_CUDNN_TENSOR_OP_MATH = 1,
    COHORT_CUDNN_FMA_MATH = 3,
};

// MARK: NCCL (libnccl.so.2)

typedef int ncclResult_t;
typedef struct ncclComm *ncclComm_t;

/// ncclUniqueId: 128 opaque bytes made by rank 0 and handed to every rank.
/// ncclCommInitRank takes it BY VALUE, which a Swift `@convention(c)` call
/// cannot pass: call `cohort_nccl_comm_init_rank` (a pointer) instead.
typedef struct CohortNCCLUniqueId {
    char internal[128];
} CohortNCCLUniqueId;
_Static_assert(sizeof(CohortNCCLUniqueId) == 128, "ncclUniqueId is 128 bytes (NCCL_UNIQUE_ID_BYTES)");

typedef struct CohortNCCL {
    ncclResult_t (*_Nonnull ncclGetVersion)(int *_Nonnull version);
    ncclResult_t (*_Nonnull ncclGetUniqueId)(CohortNCCLUniqueId *_Nonnull uniqueId);
    // By value: use cohort_nccl_comm_init_rank from Swift.
    ncclResult_t (*_Nonnull ncclCommInitRank)(ncclComm_t _Nullable *_Nonnull comm, int nranks,
                                              CohortNCCLUniqueId uniqueId, int rank);
    ncclResult_t (*_Nonnull ncclAllReduce)(const void *_Nonnull sendBuffer, void *_Nonnull receiveBuffer, size_t count,
                                           int dataType, int op, ncclComm_t _Nonnull comm, CUstream _Nullable stream);
    ncclResult_t (*_Nonnull ncclBroadcast)(const void *_Nonnull sendBuffer, void *_Nonnull receiveBuffer, size_t count,
                                           int dataType, int root, ncclComm_t _Nonnull comm, CUstream _Nullable stream);
    ncclResult_t (*_Nonnull ncclAllGather)(const void *_Nonnull sendBuffer, void *_Nonnull receiveBuffer,
                                           size_t sendCount, int dataType, ncclComm_t _Nonnull comm,
                                           CUstream _Nullable stream);
    ncclResult_t (*_Nonnull ncclCommGetAsyncError)(ncclComm_t _Nonnull comm, ncclResult_t *_Nonnull asyncError);
    ncclResult_t (*_Nonnull ncclCommAbort)(ncclComm_t _Nonnull comm);
    ncclResult_t (*_Nonnull ncclCommDestroy)(ncclComm_t _Nonnull comm);
    const char *_Nonnull (*_Nonnull ncclGetErrorString)(ncclResult_t result);
    ncclResult_t (*_Nonnull ncclGroupStart)(void);
    ncclResult_t (*_Nonnull ncclGroupEnd)(void);
    /// One process, several GPUs: `ndev` communicators, comm i on CUDA device devlist[i] (rank i).
    ncclResult_t (*_Nonnull ncclCommInitAll)(ncclComm_t _Nullable *_Nonnull comms, int ndev,
                                             const int *_Nonnull devlist);
    // Since NCCL 2.13: the last error's detail; optional.
    const char *_Nullable (*_Nullable ncclGetLastError)(ncclComm_t _Nullable comm);
    // Since NCCL 2.19 (ncclMemAlloc/Free) and 2.27 (windows): memory every rank
    // registers as a symmetric window (NCCL_WIN_COLL_SYMMETRIC), which NCCL's
    // symmetric kernels reduce in place; optional. ncclWindow_t is opaque.
    ncclResult_t (*_Nullable ncclMemAlloc)(void *_Nullable *_Nonnull pointer, size_t size);
    ncclResult_t (*_Nullable ncclMemFree)(void *_Nonnull pointer);
    ncclResult_t (*_Nullable ncclCommWindowRegister)(ncclComm_t _Nonnull comm, void *_Nonnull buffer, size_t size,
                                                     void *_Nullable *_Nonnull window, int windowFlags);
    ncclResult_t (*_Nullable ncclCommWindowDeregister)(ncclComm_t _Nonnull comm, void *_Nonnull window);
} CohortNCCL;

enum {
    COHORT_NCCL_SUCCESS = 0,
    COHORT_NCCL_IN_PROGRESS = 7,
    COHORT_NCCL_FLOAT16 = 6,
    COHORT_NCCL_FLOAT32 = 7,
    COHORT_NCCL_BFLOAT16 = 9,
    COHORT_NCCL_SUM = 0,
    COHORT_NCCL_AVG = 4,
    COHORT_NCCL_WIN_COLL_SYMMETRIC = 1,
};

/// ncclCommInitRank with the id passed through a pointer (see CohortNCCLUniqueId).
/// Valid only after cohort_nccl_load returned 0.
ncclResult_t cohort_nccl_comm_init_rank(ncclComm_t _Nullable *_Nonnull comm, int nranks,
                                        const CohortNCCLUniqueId *_Nonnull uniqueId, int rank);

// MARK: Loaders

/// Each loads its library (trying the names listed in CCUDA.c in order) and
/// every required symbol, once. Returns 0 on success; otherwise writes which
/// library or symbol is missing into `error` and returns -1 (the same error
/// on every later call). Thread-safe.
int cohort_cuda_load_driver(char *_Nullable error, size_t errorLength);
int cohort_cuda_load_nvrtc(char *_Nullable error, size_t errorLength);
int cohort_cuda_load_cublas(char *_Nullable error, size_t errorLength);
int cohort_cuda_load_cudnn(char *_Nullable error, size_t errorLength);
int cohort_nccl_load(char *_Nullable error, size_t errorLength);

/// The tables; valid only after the matching loader returned 0.
const CohortCUDADriver *_Nonnull cohort_cuda_driver(void);
const CohortNVRTC *_Nonnull cohort_nvrtc(void);
const CohortCUBLAS *_Nonnull cohort_cublas(void);
const CohortCUDNN *_Nonnull cohort_cudnn(void);
const CohortNCCL *_Nonnull cohort_nccl(void);

#endif
