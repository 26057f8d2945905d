/*
 * gemm.h - y = beta * y + x w^T for a linear layer, two ways.
 *
 * clip_gemm_packed: the model's weights, repacked once at load into
 * panels (below). Each step of the kernel then loads a panel's weights
 * for one k as two vectors and broadcasts x into 2 x 12 register
 * accumulators, and the weights stream from memory once per pass in
 * order. OpenBLAS 0.3.21 instead copies the whole weight matrix into a
 * packed buffer on every call, which at a text query's ten rows costs
 * more than the arithmetic, and at an image batch's 400 about a tenth of
 * it (README, "Encoder").
 *
 * clip_gemm_tn: w [N, K] read where it lies, for products whose "weights"
 * are activations (attention scores) and for models loaded without the
 * packed kernel: on CPUs with AVX-512 dot-product register tiles for up
 * to 160 rows, cblas_sgemm otherwise.
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

/*
 * Weights packed once (at model load) for clip_gemm_packed: w [N, K] cut
 * into panels of CLIP_GEMM_PANEL output columns, each stored K-major
 * (panel c holds w[c + j][k] at [k][j]), the last panel zero-padded. A
 * step of the product then reads the panel's weights for one k as two
 * contiguous vectors, and the whole matrix as one sequential stream.
 */
#define CLIP_GEMM_PANEL 32

/* Floats that clip_gemm_pack writes for w [N, K]. */
size_t clip_gemm_packed_floats(size_t N, size_t K);

/* p (64-byte aligned, clip_gemm_packed_floats(N, K) floats) = w packed. */
void clip_gemm_pack(size_t N, size_t K, const float *w, size_t ldw, float *p);

/*
 * Columns [n0, n1) of y[M, N] (row stride ldy) = beta * y + x[M, K] times
 * the packed w^T + bias[N] (NULL: none); beta is 0 or 1. Columns outside
 * [n0, n1) are not touched, so threads may split the columns anywhere.
 */
void clip_gemm_packed(size_t M, size_t K, const float *x, size_t ldx, const float *p, const float *bias, float *y,
		      size_t ldy, size_t n0, size_t n1, float beta);

#endif
