// Loads oneDNN with dlopen; see include/CDNNL.h.
#include "CDNNL.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static CohortDNNL table;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char loadError[1024];

#define LOOKUP(name)                                                              \
    do {                                                                          \
        table.name = (__typeof__(table.name))dlsym(library, #name);              \
        if (!table.name) {                                                        \
            snprintf(loadError, sizeof loadError, "%s lacks %s (oneDNN older than 2.6?)", \
                     libraryName, #name);                                         \
            return;                                                               \
        }                                                                         \
    } while (0)

static void load(void) {
    const char *libraryName = "libdnnl.so.2";
    void *library = dlopen(libraryName, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        // dlerror's text is overwritten by the next dlopen: keep the first.
        char firstError[240];
        const char *reason = dlerror();
        snprintf(firstError, sizeof firstError, "%s", reason ? reason : "not found");
        libraryName = "libdnnl.so";
        library = dlopen(libraryName, RTLD_NOW | RTLD_LOCAL);
        if (!library) {
            reason = dlerror();
            snprintf(loadError, sizeof loadError, "dlopen(libdnnl.so.2): %s; dlopen(libdnnl.so): %s",
                     firstError, reason ? reason : "not found");
            return;
        }
    }
    LOOKUP(dnnl_version);
    LOOKUP(dnnl_status2str);
    LOOKUP(dnnl_get_effective_cpu_isa);
    LOOKUP(dnnl_cpu_isa2str);
    LOOKUP(dnnl_engine_create);
    LOOKUP(dnnl_engine_destroy);
    LOOKUP(dnnl_stream_create);
    LOOKUP(dnnl_stream_wait);
    LOOKUP(dnnl_stream_destroy);
    LOOKUP(dnnl_memory_desc_init_by_tag);
    LOOKUP(dnnl_memory_desc_equal);
    LOOKUP(dnnl_memory_desc_get_size);
    LOOKUP(dnnl_memory_create);
    LOOKUP(dnnl_memory_set_data_handle);
    LOOKUP(dnnl_memory_destroy);
    LOOKUP(dnnl_primitive_desc_create);
    LOOKUP(dnnl_primitive_desc_query);
    LOOKUP(dnnl_primitive_desc_query_md);
    LOOKUP(dnnl_primitive_desc_destroy);
    LOOKUP(dnnl_primitive_create);
    LOOKUP(dnnl_primitive_execute);
    LOOKUP(dnnl_primitive_destroy);
    LOOKUP(dnnl_primitive_attr_create);
    LOOKUP(dnnl_primitive_attr_set_post_ops);
    LOOKUP(dnnl_primitive_attr_destroy);
    LOOKUP(dnnl_post_ops_create);
    LOOKUP(dnnl_post_ops_append_eltwise);
    LOOKUP(dnnl_post_ops_destroy);
    LOOKUP(dnnl_reorder_primitive_desc_create);
    LOOKUP(dnnl_convolution_forward_desc_init);
    LOOKUP(dnnl_convolution_backward_data_desc_init);
    LOOKUP(dnnl_convolution_backward_weights_desc_init);
    LOOKUP(dnnl_batch_normalization_forward_desc_init);
    LOOKUP(dnnl_batch_normalization_backward_desc_init);
    LOOKUP(dnnl_eltwise_forward_desc_init);
    LOOKUP(dnnl_eltwise_backward_desc_init);
    LOOKUP(dnnl_binary_desc_init);
    LOOKUP(dnnl_inner_product_forward_desc_init);
    LOOKUP(dnnl_inner_product_backward_data_desc_init);
    LOOKUP(dnnl_inner_product_backward_weights_desc_init);
    // Optional: libdnnl pulls in libgomp, whose symbols dlsym finds through it.
    table.omp_get_max_threads = (int (*)(void))dlsym(library, "omp_get_max_threads");
    table.omp_set_num_threads = (void (*)(int))dlsym(library, "omp_set_num_threads");
}

int cohort_dnnl_load(char *error, size_t errorLength) {
    pthread_once(&once, load);
    if (loadError[0] == 0) return 0;
    if (error && errorLength > 0) snprintf(error, errorLength, "%s", loadError);
    return -1;
}

const CohortDNNL *cohort_dnnl(void) { return &table; }
