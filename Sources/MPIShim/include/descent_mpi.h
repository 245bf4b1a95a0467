#ifndef DESCENT_MPI_H
#define DESCENT_MPI_H

#include <stddef.h>

// The few MPI calls a training rank makes, on MPI_COMM_WORLD, as plain C functions: Swift cannot
// import MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM or MPI_IN_PLACE (macros around Open MPI's globals).
// Every function returns MPI_SUCCESS (0) or an MPI error code.

int descent_mpi_init(void);
int descent_mpi_rank(void);
int descent_mpi_size(void);
/// In place: buffer[i] = the sum over ranks of buffer[i].
int descent_mpi_allreduce_sum_float(float *buffer, size_t count);
int descent_mpi_allreduce_sum_double(double *buffer, size_t count);
/// In place: every rank's buffer becomes root's.
int descent_mpi_bcast_float(float *buffer, size_t count, int root);
int descent_mpi_bcast_double(double *buffer, size_t count, int root);
int descent_mpi_barrier(void);
int descent_mpi_finalize(void);
/// Ends every rank of the job (mpirun exits with `code`).
void descent_mpi_abort(int code);

#endif
