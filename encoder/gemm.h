/*
 * gemm.h - y = beta * y + x w^T for a linear layer, w read in place.
 *
 * The weights of nn.Linear are [N, K] row-major: every output is the dot
 * product of a row of x with a row of w, both contiguous. On CPUs with
 * AVX-512 clip_gemm_tn computes those dot products in register tiles
 * straight from the memory-mapped weights (no copy of them, ever), which
 * beats OpenBLAS 0.3.21 where a forward pass spends its time: OpenBLAS
 * packs the whole weight matrix into a buffer on every call, a second pass
 * over memory that costs as much as the arithmetic when a text batch has
 * a hundred rows (README, "Encoder"). For more than 160 rows (image batches,
where OpenBLAS's packing pays for itself) and elsewhere it calls
cblas_sgemm.
 */
#ifndef CLIPD_GEMM_H
#define CLIPD_GEMM_H

#include <stddef.h>

/* 1 if clip_gemm_tn has its own kernel on this CPU (else it calls BLAS). */
int clip_gemm_native(void);

/*
 * y[M, N] (row stride ldy) = beta * y + x[M, K] (row stride ldx) times
 * w[N, K]^T (row stride ldw) + bias[N] (NULL: none); beta is 0 or 1
 * (with 0, y is not read).
 */
void clip_gemm_tn(size_t M, size_t N, size_t K, const float *x, size_t ldx, const float *w, size_t ldw,
		  const float *bias, float *y, size_t ldy, float beta);

#endif
