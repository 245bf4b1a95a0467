#include "descent_mpi.h"
#include <limits.h>
#include <mpi.h>

int descent_mpi_init(void) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return MPI_SUCCESS;
    int result = MPI_Init(NULL, NULL);
    // Errors stay fatal (the default): a rank whose peer died aborts the job instead of hanging.
    return result;
}

int descent_mpi_rank(void) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

int descent_mpi_size(void) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
}

// MPI counts are ints: larger buffers go in chunks.
#define CHUNK ((size_t)INT_MAX / 2)

int descent_mpi_allreduce_sum_float(float *buffer, size_t count) {
    for (size_t start = 0; start < count; start += CHUNK) {
        size_t n = count - start < CHUNK ? count - start : CHUNK;
        int result = MPI_Allreduce(MPI_IN_PLACE, buffer + start, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (result != MPI_SUCCESS) return result;
    }
    return MPI_SUCCESS;
}

int descent_mpi_allreduce_sum_double(double *buffer, size_t count) {
    for (size_t start = 0; start < count; start += CHUNK) {
        size_t n = count - start < CHUNK ? count - start : CHUNK;
        int result = MPI_Allreduce(MPI_IN_PLACE, buffer + start, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (result != MPI_SUCCESS) return result;
    }
    return MPI_SUCCESS;
}

int descent_mpi_bcast_float(float *buffer, size_t count, int root) {
    for (size_t start = 0; start < count; start += CHUNK) {
        size_t n = count - start < CHUNK ? count - start : CHUNK;
        int result = MPI_Bcast(buffer + start, (int)n, MPI_FLOAT, root, MPI_COMM_WORLD);
        if (result != MPI_SUCCESS) return result;
    }
    return MPI_SUCCESS;
}

int descent_mpi_bcast_double(double *buffer, size_t count, int root) {
    for (size_t start = 0; start < count; start += CHUNK) {
        size_t n = count - start < CHUNK ? count - start : CHUNK;
        int result = MPI_Bcast(buffer + start, (int)n, MPI_DOUBLE, root, MPI_COMM_WORLD);
        if (result != MPI_SUCCESS) return result;
    }
    return MPI_SUCCESS;
}

int descent_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

int descent_mpi_finalize(void) { return MPI_Finalize(); }

void descent_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
