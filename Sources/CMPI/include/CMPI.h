// CMPI: Open MPI reached through dlopen, so the cohort binary (even one built
// with --static-swift-stdlib) starts where Open MPI is not installed and only
// a run that asks for the MPI communicator needs it.
//
// No mpi.h: it is not on the default include path (Debian keeps it under
// /usr/lib/x86_64-linux-gnu/openmpi/include) and the build must not need it.
// The few types are declared here with Open MPI's ABI, which is stable across
// the libmpi.so.40 soname (Open MPI 3.x-5.x): handles are pointers to opaque
// structs, and each predefined handle (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM,
// MPI_ERRORS_RETURN) is the address of an exported global, e.g.
// MPI_COMM_WORLD == &ompi_mpi_comm_world. MPICH's ABI is different (integer
// handles); only Open MPI is supported.
#ifndef COHORT_CMPI_H
#define COHORT_CMPI_H

#include <stddef.h>

typedef struct ompi_communicator_t *CohortMPIComm;
typedef struct ompi_datatype_t *CohortMPIDatatype;
typedef struct ompi_op_t *CohortMPIOp;
typedef struct ompi_errhandler_t *CohortMPIErrhandler;

// Values from Open MPI's mpi.h.
enum {
    COHORT_MPI_SUCCESS = 0,
    COHORT_MPI_THREAD_SERIALIZED = 2,
    COHORT_MPI_MAX_ERROR_STRING = 256,
};
/// MPI_IN_PLACE, ((void *) 1) in Open MPI.
static inline void *_Nonnull cohort_mpi_in_place(void) { return (void *)1; }

typedef struct CohortMPI {
    int (*_Nonnull MPI_Init_thread)(int *_Nullable argc, char *_Nullable *_Nullable *_Nullable argv,
                                    int required, int *_Nonnull provided);
    int (*_Nonnull MPI_Initialized)(int *_Nonnull flag);
    int (*_Nonnull MPI_Finalized)(int *_Nonnull flag);
    int (*_Nonnull MPI_Finalize)(void);
    int (*_Nonnull MPI_Abort)(CohortMPIComm _Nonnull comm, int errorcode);
    int (*_Nonnull MPI_Comm_rank)(CohortMPIComm _Nonnull comm, int *_Nonnull rank);
    int (*_Nonnull MPI_Comm_size)(CohortMPIComm _Nonnull comm, int *_Nonnull size);
    int (*_Nonnull MPI_Comm_set_errhandler)(CohortMPIComm _Nonnull comm, CohortMPIErrhandler _Nonnull handler);
    int (*_Nonnull MPI_Allreduce)(const void *_Nonnull sendbuf, void *_Nonnull recvbuf, int count,
                                  CohortMPIDatatype _Nonnull datatype, CohortMPIOp _Nonnull op,
                                  CohortMPIComm _Nonnull comm);
    int (*_Nonnull MPI_Bcast)(void *_Nonnull buffer, int count, CohortMPIDatatype _Nonnull datatype, int root,
                              CohortMPIComm _Nonnull comm);
    int (*_Nonnull MPI_Allgather)(const void *_Nonnull sendbuf, int sendcount, CohortMPIDatatype _Nonnull sendtype,
                                  void *_Nonnull recvbuf, int recvcount, CohortMPIDatatype _Nonnull recvtype,
                                  CohortMPIComm _Nonnull comm);
    int (*_Nonnull MPI_Barrier)(CohortMPIComm _Nonnull comm);
    int (*_Nonnull MPI_Error_string)(int errorcode, char *_Nonnull string, int *_Nonnull resultlen);
    int (*_Nonnull MPI_Get_library_version)(char *_Nonnull version, int *_Nonnull resultlen);
    // Predefined handles: addresses of Open MPI's globals.
    CohortMPIComm _Nonnull commWorld;
    CohortMPIDatatype _Nonnull floatType;
    CohortMPIDatatype _Nonnull byteType;
    CohortMPIOp _Nonnull sumOp;
    CohortMPIErrhandler _Nonnull errorsReturn;
} CohortMPI;

/// Loads libmpi.so.40 (else libmpi.so) and every entry of CohortMPI.
/// Returns 0 on success; otherwise writes what failed into `error` and
/// returns -1. Safe to call more than once and from several threads.
int cohort_mpi_load(char *_Nullable error, size_t errorLength);

/// The function table; valid only after cohort_mpi_load() returned 0.
const CohortMPI *_Nonnull cohort_mpi(void);

#endif
