// Loads the NVIDIA libraries with dlopen; see include/CCUDA.h.
#include "CCUDA.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { ERROR_LENGTH = 1024 };

/// Opens the first of `names` (NULL-terminated) that dlopen finds. On
/// failure writes every name tried with dlerror's reason into `error`.
static void *cohort_cuda_open(const char *const *names, const char **opened, char *error) {
    size_t used = 0;
    error[0] = 0;
    for (const char *const *name = names; *name; name++) {
        void *library = dlopen(*name, RTLD_NOW | RTLD_LOCAL);
        if (library) {
            *opened = *name;
            error[0] = 0;
            return library;
        }
        const char *reason = dlerror();
        if (used < ERROR_LENGTH) {
            int written = snprintf(error + used, ERROR_LENGTH - used, "%sdlopen(%s): %s", used ? "; " : "", *name,
                                   reason ? reason : "not found");
            if (written > 0) used += (size_t)written;
        }
    }
    return NULL;
}

// Looks `name` up into table.name; a missing symbol names itself and the library.
#define LOOKUP(name)                                                                               \
    do {                                                                                           \
        table.name = (__typeof__(table.name))dlsym(library, #name);                               \
        if (!table.name) {                                                                         \
            snprintf(loadError, ERROR_LENGTH, "%s lacks the symbol %s (%s)", opened, #name, tooOld); \
            return;                                                                                \
        }                                                                                          \
    } while (0)
#define LOOKUP_OPTIONAL(name) table.name = (__typeof__(table.name))dlsym(library, #name)

// One loader per library: a table, a pthread_once, and the error it left.
#define LOADER(function, Table, accessor, body)                                                    \
    static Table function##_table;                                                                 \
    static pthread_once_t function##_once = PTHREAD_ONCE_INIT;                                     \
    static char function##_error[ERROR_LENGTH];                                                    \
    static void function##_run(void) {                                                             \
        Table table;                                                                               \
        char *loadError = function##_error;                                                        \
        memset(&table, 0, sizeof table);                                                           \
        body                                                                                       \
        function##_table = table;                                                                  \
    }                                                                                              \
    int function(char *error, size_t errorLength) {                                                \
        pthread_once(&function##_once, function##_run);                                            \
        if (function##_error[0] == 0) return 0;                                                    \
        if (error && errorLength > 0) snprintf(error, errorLength, "%s", function##_error);         \
        return -1;                                                                                 \
    }                                                                                              \
    const Table *accessor(void) { return &function##_table; }

// Opens one of `names...` or records why not.
#define OPEN(...)                                                                                  \
    static const char *const names[] = {__VA_ARGS__, NULL};                                        \
    const char *opened = "";                                                                       \
    void *library = cohort_cuda_open(names, &opened, loadError);                                   \
    if (!library) return;

LOADER(cohort_cuda_load_driver, CohortCUDADriver, cohort_cuda_driver, {
    // libcuda.so (unversioned) ships only with the driver's development files.
    OPEN("libcuda.so.1", "libcuda.so")
    const char *tooOld = "NVIDIA driver older than CUDA 11?";
    LOOKUP(cuInit);
    LOOKUP(cuDriverGetVersion);
    LOOKUP(cuGetErrorName);
    LOOKUP(cuGetErrorString);
    LOOKUP(cuDeviceGetCount);
    LOOKUP(cuDeviceGet);
    LOOKUP(cuDeviceGetName);
    LOOKUP(cuDeviceGetAttribute);
    LOOKUP(cuDeviceTotalMem_v2);
    LOOKUP(cuDevicePrimaryCtxRetain);
    LOOKUP(cuCtxSetCurrent);
    LOOKUP(cuMemAlloc_v2);
    LOOKUP(cuMemFree_v2);
    LOOKUP(cuMemGetInfo_v2);
    LOOKUP(cuMemcpyHtoDAsync_v2);
    LOOKUP(cuMemcpyDtoHAsync_v2);
    LOOKUP(cuMemcpyDtoDAsync_v2);
    LOOKUP(cuMemsetD32Async);
    LOOKUP(cuMemsetD16Async);
    LOOKUP(cuStreamCreate);
    LOOKUP(cuStreamSynchronize);
    LOOKUP(cuStreamDestroy_v2);
    LOOKUP(cuModuleLoadData);
    LOOKUP(cuModuleGetFunction);
    LOOKUP(cuLaunchKernel);
    LOOKUP_OPTIONAL(cuStreamBeginCapture_v2);
    LOOKUP_OPTIONAL(cuStreamWaitEvent);
    LOOKUP_OPTIONAL(cuDevicePrimaryCtxSetFlags_v2);
    LOOKUP_OPTIONAL(cuEventQuery);
    LOOKUP_OPTIONAL(cuEventElapsedTime);
    LOOKUP_OPTIONAL(cuStreamCreateWithPriority);
    LOOKUP_OPTIONAL(cuCtxGetStreamPriorityRange);
    LOOKUP_OPTIONAL(cuStreamEndCapture);
    LOOKUP_OPTIONAL(cuStreamIsCapturing);
    LOOKUP_OPTIONAL(cuGraphGetNodes);
    LOOKUP_OPTIONAL(cuGraphInstantiateWithFlags);
    LOOKUP_OPTIONAL(cuGraphUpload);
    LOOKUP_OPTIONAL(cuGraphLaunch);
    LOOKUP_OPTIONAL(cuGraphExecDestroy);
    LOOKUP_OPTIONAL(cuGraphDestroy);
    LOOKUP_OPTIONAL(cuGraphDebugDotPrint);
    LOOKUP_OPTIONAL(cuFuncSetAttribute);
    LOOKUP_OPTIONAL(cuMemcpyDtoH_v2);
    LOOKUP_OPTIONAL(cuMemHostAlloc);
    LOOKUP_OPTIONAL(cuMemFreeHost);
    LOOKUP_OPTIONAL(cuEventCreate);
    LOOKUP_OPTIONAL(cuEventRecord);
    LOOKUP_OPTIONAL(cuEventRecordWithFlags);
    LOOKUP_OPTIONAL(cuEventSynchronize);
    LOOKUP_OPTIONAL(cuEventDestroy_v2);
    LOOKUP_OPTIONAL(cuEventElapsedTime_v2);
    LOOKUP_OPTIONAL(cuOccupancyMaxActiveBlocksPerMultiprocessor);
    LOOKUP_OPTIONAL(cuGraphNodeGetType);
    LOOKUP_OPTIONAL(cuGraphMemsetNodeGetParams);
    LOOKUP_OPTIONAL(cuGraphNodeGetDependencies);
    LOOKUP_OPTIONAL(cuGraphNodeGetDependentNodes);
    LOOKUP_OPTIONAL(cuGraphAddKernelNode_v2);
    LOOKUP_OPTIONAL(cuGraphAddDependencies);
    LOOKUP_OPTIONAL(cuGraphDestroyNode);
    LOOKUP_OPTIONAL(cuStreamWaitValue32_v2);
    LOOKUP_OPTIONAL(cuLaunchKernelEx);
    LOOKUP_OPTIONAL(cuStreamWriteValue32_v2);
})

LOADER(cohort_cuda_load_nvrtc, CohortNVRTC, cohort_nvrtc, {
    // NVRTC 12 also builds sm_90 CUBINs that a CUDA 13 driver loads.
    OPEN("libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so")
    const char *tooOld = "NVRTC older than CUDA 11.1?";
    LOOKUP(nvrtcVersion);
    LOOKUP(nvrtcGetErrorString);
    LOOKUP(nvrtcCreateProgram);
    LOOKUP(nvrtcCompileProgram);
    LOOKUP(nvrtcGetProgramLogSize);
    LOOKUP(nvrtcGetProgramLog);
    LOOKUP(nvrtcGetCUBINSize);
    LOOKUP(nvrtcGetCUBIN);
    LOOKUP(nvrtcDestroyProgram);
})

LOADER(cohort_cuda_load_cublas, CohortCUBLAS, cohort_cublas, {
    // cuBLAS 12 needs libcudart.so.12 beside it; it is tried only when 13 is absent.
    OPEN("libcublas.so.13", "libcublas.so.12", "libcublas.so")
    const char *tooOld = "cuBLAS older than 11?";
    LOOKUP(cublasCreate_v2);
    LOOKUP(cublasGetVersion_v2);
    LOOKUP(cublasSetStream_v2);
    LOOKUP(cublasSetWorkspace_v2);
    LOOKUP(cublasGemmEx);
    LOOKUP_OPTIONAL(cublasGetStatusName);
    LOOKUP_OPTIONAL(cublasGetStatusString);
})

LOADER(cohort_cuda_load_cudnn, CohortCUDNN, cohort_cudnn, {
    // libcudnn.so.9 loads libcudnn_graph/ops/cnn.so.9 by bare name at first use.
    OPEN("libcudnn.so.9", "libcudnn.so")
    const char *tooOld = "cuDNN older than 9, or built without the legacy API?";
    LOOKUP(cudnnGetVersion);
    LOOKUP(cudnnGetErrorString);
    LOOKUP_OPTIONAL(cudnnGetLastErrorString);
    LOOKUP(cudnnCreate);
    LOOKUP(cudnnSetStream);
    LOOKUP(cudnnCreateTensorDescriptor);
    LOOKUP(cudnnDestroyTensorDescriptor);
    LOOKUP(cudnnSetTensor4dDescriptor);
    LOOKUP(cudnnCreateFilterDescriptor);
    LOOKUP(cudnnDestroyFilterDescriptor);
    LOOKUP(cudnnSetFilter4dDescriptor);
    LOOKUP(cudnnCreateConvolutionDescriptor);
    LOOKUP(cudnnDestroyConvolutionDescriptor);
    LOOKUP(cudnnSetConvolution2dDescriptor);
    LOOKUP(cudnnSetConvolutionMathType);
    LOOKUP(cudnnFindConvolutionForwardAlgorithmEx);
    LOOKUP(cudnnFindConvolutionBackwardDataAlgorithmEx);
    LOOKUP(cudnnFindConvolutionBackwardFilterAlgorithmEx);
    LOOKUP(cudnnConvolutionForward);
    LOOKUP(cudnnConvolutionBackwardData);
    LOOKUP(cudnnConvolutionBackwardFilter);
    LOOKUP_OPTIONAL(cudnnGetConvolutionForwardWorkspaceSize);
    LOOKUP_OPTIONAL(cudnnGetConvolutionBackwardDataWorkspaceSize);
    LOOKUP_OPTIONAL(cudnnGetConvolutionBackwardFilterWorkspaceSize);
})

LOADER(cohort_nccl_load, CohortNCCL, cohort_nccl, {
    // NVIDIA's libnccl2 package (or pip's nvidia-nccl-cu13) installs libnccl.so.2.
    OPEN("libnccl.so.2", "libnccl.so")
    const char *tooOld = "NCCL older than 2.10?";
    LOOKUP(ncclGetVersion);
    LOOKUP(ncclGetUniqueId);
    LOOKUP(ncclCommInitRank);
    LOOKUP(ncclAllReduce);
    LOOKUP(ncclBroadcast);
    LOOKUP(ncclAllGather);
    LOOKUP(ncclCommGetAsyncError);
    LOOKUP(ncclCommAbort);
    LOOKUP(ncclCommDestroy);
    LOOKUP(ncclGetErrorString);
    LOOKUP(ncclGroupStart);
    LOOKUP(ncclGroupEnd);
    LOOKUP(ncclCommInitAll);
    LOOKUP_OPTIONAL(ncclGetLastError);
    LOOKUP_OPTIONAL(ncclMemAlloc);
    LOOKUP_OPTIONAL(ncclMemFree);
    LOOKUP_OPTIONAL(ncclCommWindowRegister);
    LOOKUP_OPTIONAL(ncclCommWindowDeregister);
})

ncclResult_t cohort_nccl_comm_init_rank(ncclComm_t *comm, int nranks, const CohortNCCLUniqueId *uniqueId, int rank) {
    return cohort_nccl_load_table.ncclCommInitRank(comm, nranks, *uniqueId, rank);
}
