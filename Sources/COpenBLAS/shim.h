#ifndef DESCENT_COPENBLAS_SHIM_H
#define DESCENT_COPENBLAS_SHIM_H
#include <cblas.h>

// LAPACK routines exported by libopenblas (Fortran calling convention).
void ssysv_(const char *uplo, const int *n, const int *nrhs, float *a, const int *lda, int *ipiv,
            float *b, const int *ldb, float *work, const int *lwork, int *info);
void sgesv_(const int *n, const int *nrhs, float *a, const int *lda, int *ipiv, float *b,
            const int *ldb, int *info);
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info);
#endif
