// Open MPI's C API (Debian: libopenmpi-dev puts mpi.h under /usr/lib/x86_64-linux-gnu/openmpi/include,
// which pkg-config's ompi-c names). Only MPIShim includes it: MPI_COMM_WORLD and friends are macros Swift cannot import.
#include <mpi.h>
