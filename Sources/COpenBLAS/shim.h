#ifndef DESCENT_COPENBLAS_SHIM_H
#define DESCENT_COPENBLAS_SHIM_H
#include <stddef.h>
#include <cblas.h>

// LAPACK routines exported by libopenblas (Fortran calling convention).
void ssysv_(const char *uplo, const int *n, const int *nrhs, float *a, const int *lda, int *ipiv,
            float *b, const int *ldb, float *work, const int *lwork, int *info);
void sgesv_(const int *n, const int *nrhs, float *a, const int *lda, int *ipiv, float *b,
            const int *ldb, int *info);
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info);

// Double precision, for the second-order optimizers (Sources/Tensors/LAPACK.swift). The trailing
// size_t is gfortran's hidden length of the CHARACTER argument `uplo`: reference-LAPACK routines
// compiled from Fortran (dposv_ is one in libopenblas) expect it, and passing it is harmless otherwise.
void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b,
            const int *ldb, int *info, size_t uplo_len);
#endif
