// Loads Open MPI with dlopen; see include/CMPI.h.
#include "CMPI.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static CohortMPI table;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static char loadError[1024];

#define LOOKUP_AS(field, symbol)                                                  \
    do {                                                                          \
        table.field = (__typeof__(table.field))dlsym(library, symbol);           \
        if (!table.field) {                                                       \
            snprintf(loadError, sizeof loadError, "%s lacks %s (not Open MPI?)",  \
                     libraryName, symbol);                                        \
            return;                                                               \
        }                                                                         \
    } while (0)
#define LOOKUP(name) LOOKUP_AS(name, #name)

static void load(void) {
    const char *libraryName = "libmpi.so.40";
    // RTLD_GLOBAL: Open MPI dlopens its own components (mca_*.so), which
    // resolve symbols from libmpi/libopen-pal in the global scope.
    void *library = dlopen(libraryName, RTLD_NOW | RTLD_GLOBAL);
    if (!library) {
        // dlerror's text is overwritten by the next dlopen: keep the first.
        char firstError[240];
        const char *reason = dlerror();
        snprintf(firstError, sizeof firstError, "%s", reason ? reason : "not found");
        libraryName = "libmpi.so";
        library = dlopen(libraryName, RTLD_NOW | RTLD_GLOBAL);
        if (!library) {
            reason = dlerror();
            snprintf(loadError, sizeof loadError, "dlopen(libmpi.so.40): %s; dlopen(libmpi.so): %s",
                     firstError, reason ? reason : "not found");
            return;
        }
    }
    LOOKUP(MPI_Init_thread);
    LOOKUP(MPI_Initialized);
    LOOKUP(MPI_Finalized);
    LOOKUP(MPI_Finalize);
    LOOKUP(MPI_Abort);
    LOOKUP(MPI_Comm_rank);
    LOOKUP(MPI_Comm_size);
    LOOKUP(MPI_Comm_set_errhandler);
    LOOKUP(MPI_Allreduce);
    LOOKUP(MPI_Bcast);
    LOOKUP(MPI_Allgather);
    LOOKUP(MPI_Barrier);
    LOOKUP(MPI_Error_string);
    LOOKUP(MPI_Get_library_version);
    // MPI_COMM_WORLD is &ompi_mpi_comm_world: dlsym returns that address.
    LOOKUP_AS(commWorld, "ompi_mpi_comm_world");
    LOOKUP_AS(floatType, "ompi_mpi_float");
    LOOKUP_AS(byteType, "ompi_mpi_byte");
    LOOKUP_AS(sumOp, "ompi_mpi_op_sum");
    LOOKUP_AS(errorsReturn, "ompi_mpi_errors_return");
}

int cohort_mpi_load(char *error, size_t errorLength) {
    pthread_once(&once, load);
    if (loadError[0] == 0) return 0;
    if (error && errorLength > 0) snprintf(error, errorLength, "%s", loadError);
    return -1;
}

const CohortMPI *cohort_mpi(void) { return &table; }
