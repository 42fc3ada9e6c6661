// A CUPTI injection library (CUDA_INJECTION64_PATH): records every kernel's
// device start and end (CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL, which does not
// serialise kernels), graph kernels included, into
// $KERNEL_TRACE_DIR/kernels-<pid>.csv at exit. A diagnostic for the GPU
// machine, where there is no Nsight Systems: scripts/kernel-trace/build.sh
// compiles it there against the CUDA toolkit's CUPTI.
#include <cupti.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef KERNEL_RECORD
#define KERNEL_RECORD CUpti_ActivityKernel9
#endif
enum { bufferBytes = 16 << 20 };
static FILE *out;

static void CUPTIAPI bufferRequested(uint8_t **buffer, size_t *size, size_t *maxRecords) {
    *buffer = aligned_alloc(8, bufferBytes);
    *size = bufferBytes;
    *maxRecords = 0;
}

static void CUPTIAPI bufferCompleted(CUcontext context, uint32_t streamId, uint8_t *buffer, size_t size, size_t valid) {
    CUpti_Activity *record = NULL;
    while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
        if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL && record->kind != CUPTI_ACTIVITY_KIND_KERNEL) continue;
        const KERNEL_RECORD *k = (const KERNEL_RECORD *)record;
        if (out) fprintf(out, "%llu,%llu,%u,%u,%u,%llu,%u,%d,%s\n", (unsigned long long)k->start, (unsigned long long)k->end,
                         k->deviceId, k->streamId, k->correlationId, (unsigned long long)k->graphNodeId, k->graphId,
                         k->gridX * k->gridY * k->gridZ, k->name);
    }
    free(buffer);
}

static void flushAtExit(void) {
    cuptiActivityFlushAll(1);
    if (out) fclose(out);
    out = NULL;
}

int InitializeInjection(void) {
    const char *folder = getenv("KERNEL_TRACE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/kernels-%d.csv", folder ? folder : ".", (int)getpid());
    out = fopen(path, "w");
    if (!out) return 0;
    fprintf(out, "start,end,device,stream,correlation,node,graph,blocks,name\n");
    if (cuptiActivityRegisterCallbacks(bufferRequested, bufferCompleted) != CUPTI_SUCCESS) return 0;
    if (cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) != CUPTI_SUCCESS) return 0;
    atexit(flushAtExit);
    return 1;
}
