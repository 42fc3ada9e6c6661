// CDNNL: oneDNN's C API reached through dlopen, so a binary that never
// uses the CPU backend (or is built with --static-swift-stdlib and run on a
// machine without oneDNN) starts without libdnnl installed.
//
// The headers (libdnnl-dev) are needed at build time only, for the types and
// prototypes; nothing links against libdnnl. Every function the backend calls
// is looked up once by cohort_dnnl_load() into CohortDNNL, each pointer typed
// with the real prototype so a signature mismatch is a compile error.
#ifndef COHORT_CDNNL_H
#define COHORT_CDNNL_H

#include <stddef.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

// The backend uses 2.x's operation descriptors (dnnl_*_desc_init), which
// oneDNN 3.0 removed along with the soname libdnnl.so.2.
_Static_assert(DNNL_VERSION_MAJOR == 2, "CDNNL needs the oneDNN 2.x headers (libdnnl-dev 2.x)");

// _Nonnull: after a successful load every entry is set, so Swift sees plain
// (non-optional) function types.
#define COHORT_DNNL_FUNCTION(name) __typeof__(&name) _Nonnull name

typedef struct CohortDNNL {
    // Library information
    COHORT_DNNL_FUNCTION(dnnl_version);
    COHORT_DNNL_FUNCTION(dnnl_status2str);
    COHORT_DNNL_FUNCTION(dnnl_get_effective_cpu_isa);
    COHORT_DNNL_FUNCTION(dnnl_cpu_isa2str);
    // Engine and stream
    COHORT_DNNL_FUNCTION(dnnl_engine_create);
    COHORT_DNNL_FUNCTION(dnnl_engine_destroy);
    COHORT_DNNL_FUNCTION(dnnl_stream_create);
    COHORT_DNNL_FUNCTION(dnnl_stream_wait);
    COHORT_DNNL_FUNCTION(dnnl_stream_destroy);
    // Memory
    COHORT_DNNL_FUNCTION(dnnl_memory_desc_init_by_tag);
    COHORT_DNNL_FUNCTION(dnnl_memory_desc_equal);
    COHORT_DNNL_FUNCTION(dnnl_memory_desc_get_size);
    COHORT_DNNL_FUNCTION(dnnl_memory_create);
    COHORT_DNNL_FUNCTION(dnnl_memory_set_data_handle);
    COHORT_DNNL_FUNCTION(dnnl_memory_destroy);
    // Primitives
    COHORT_DNNL_FUNCTION(dnnl_primitive_desc_create);
    COHORT_DNNL_FUNCTION(dnnl_primitive_desc_query);
    COHORT_DNNL_FUNCTION(dnnl_primitive_desc_query_md);
    COHORT_DNNL_FUNCTION(dnnl_primitive_desc_destroy);
    COHORT_DNNL_FUNCTION(dnnl_primitive_create);
    COHORT_DNNL_FUNCTION(dnnl_primitive_execute);
    COHORT_DNNL_FUNCTION(dnnl_primitive_destroy);
    COHORT_DNNL_FUNCTION(dnnl_primitive_attr_create);
    COHORT_DNNL_FUNCTION(dnnl_primitive_attr_set_post_ops);
    COHORT_DNNL_FUNCTION(dnnl_primitive_attr_destroy);
    COHORT_DNNL_FUNCTION(dnnl_post_ops_create);
    COHORT_DNNL_FUNCTION(dnnl_post_ops_append_eltwise);
    COHORT_DNNL_FUNCTION(dnnl_post_ops_destroy);
    // Operation descriptors
    COHORT_DNNL_FUNCTION(dnnl_reorder_primitive_desc_create);
    COHORT_DNNL_FUNCTION(dnnl_convolution_forward_desc_init);
    COHORT_DNNL_FUNCTION(dnnl_convolution_backward_data_desc_init);
    COHORT_DNNL_FUNCTION(dnnl_convolution_backward_weights_desc_init);
    COHORT_DNNL_FUNCTION(dnnl_batch_normalization_forward_desc_init);
    COHORT_DNNL_FUNCTION(dnnl_batch_normalization_backward_desc_init);
    COHORT_DNNL_FUNCTION(dnnl_eltwise_forward_desc_init);
    COHORT_DNNL_FUNCTION(dnnl_eltwise_backward_desc_init);
    COHORT_DNNL_FUNCTION(dnnl_binary_desc_init);
    COHORT_DNNL_FUNCTION(dnnl_inner_product_forward_desc_init);
    COHORT_DNNL_FUNCTION(dnnl_inner_product_backward_data_desc_init);
    COHORT_DNNL_FUNCTION(dnnl_inner_product_backward_weights_desc_init);
    /// OpenMP's omp_get_max_threads from the runtime libdnnl was built with;
    /// NULL when that runtime is not OpenMP.
    int (*_Nullable omp_get_max_threads)(void);
    /// OpenMP's omp_set_num_threads: sets the calling thread's team size
    /// (replica threads of one process split the cores); NULL as above.
    void (*_Nullable omp_set_num_threads)(int);
} CohortDNNL;

/// Loads libdnnl.so.2 (else libdnnl.so) and every function in CohortDNNL.
/// Returns 0 on success; otherwise writes what failed into `error` and
/// returns -1. Safe to call more than once and from several threads.
int cohort_dnnl_load(char *_Nullable error, size_t errorLength);

/// The function table; valid only after cohort_dnnl_load() returned 0.
const CohortDNNL *_Nonnull cohort_dnnl(void);

#endif
