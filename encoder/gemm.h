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
 *
 * Kernels. Every call names the kernel it may use, the model's (chosen
 * once at load, from what the CPU has and what the caller allows, so a
 * test or a benchmark can run an AVX-512 machine as an AVX2 one):
 *
 *   CLIP_KERNEL_BLAS         nothing packed; products through cblas_sgemm
 *                            (ARM64, x86-64 without AVX2 and FMA)
 *   CLIP_KERNEL_AVX2         fp32 packed panels of 16 columns, AVX2 + FMA
 *                            tiles of 6 rows x 16; clip_gemm_tn is BLAS
 *   CLIP_KERNEL_AVX512       fp32 packed panels, AVX-512 tiles of 12 x 32,
 *                            and clip_gemm_tn's own tiles
 *   CLIP_KERNEL_AVX512_BF16  the above, and bf16 panels multiplied by bf16
 *                            activations with vdpbf16ps (clip_gemm_packed_bf16)
 */
#ifndef CLIPD_GEMM_H
#define CLIPD_GEMM_H

#include <stddef.h>
#include <stdint.h>

enum clip_kernel {
	CLIP_KERNEL_BLAS = 0,
	CLIP_KERNEL_AVX2 = 1,
	CLIP_KERNEL_AVX512 = 2,
	CLIP_KERNEL_AVX512_BF16 = 3,
};

/* The best kernel this CPU runs (__builtin_cpu_supports). */
enum clip_kernel clip_gemm_detect(void);
/* "openblas", "avx2", "avx512", "avx512-bf16". */
const char *clip_kernel_name(enum clip_kernel k);
/* The kernel named s (the names above; "blas" too): 0, or -1 if none is. */
int clip_kernel_parse(const char *s, enum clip_kernel *out);

/*
 * y[M, N] (row stride ldy) = beta * y + x[M, K] (row stride ldx) times
 * w[N, K]^T (row stride ldw) + bias[N] (NULL: none); beta is 0 or 1
 * (with 0, y is not read).
 */
void clip_gemm_tn(enum clip_kernel kernel, size_t M, size_t N, size_t K, const float *x, size_t ldx, const float *w, size_t ldw,
		  const float *bias, float *y, size_t ldy, float beta);

/*
 * Weights packed once (at model load) for clip_gemm_packed: w [N, K] cut
 * into panels of P output columns, each stored K-major (panel c holds
 * w[c + j][k] at [k][j]), the last panel zero-padded. A step of the
 * product then reads the panel's weights for one k as two contiguous
 * vectors (one cache line each with AVX-512, one line for both with
 * AVX2), and a panel as one sequential stream. P is the kernel's:
 * CLIP_GEMM_PANEL (32) for the AVX-512 kernels, CLIP_GEMM_PANEL_AVX2 (16)
 * for the AVX2 one. A half of a 32-column panel, as the AVX2 kernel read
 * until 2026-12-06, is every other cache line: in a timing of the 72
 * ViT-B products outside the tree, alternating pass by pass, the AVX2
 * kernel took up to 7% less time on panels of 16 with 400 rows (median
 * 3%), 9-16% less with 50 and a quarter less with 10 (README, "Encoder
 * benchmark").
 */
#define CLIP_GEMM_PANEL 32
#define CLIP_GEMM_PANEL_AVX2 16

/* The panel width of kernel's packed layout (CLIP_GEMM_PANEL for BLAS,
 * which packs nothing). */
size_t clip_gemm_panel(enum clip_kernel kernel);

/* Floats that clip_gemm_pack writes for w [N, K] in kernel's layout. */
size_t clip_gemm_packed_floats(enum clip_kernel kernel, size_t N, size_t K);

/* p (64-byte aligned, clip_gemm_packed_floats(kernel, N, K) floats) = w
 * packed for kernel. */
void clip_gemm_pack(enum clip_kernel kernel, size_t N, size_t K, const float *w, size_t ldw, float *p);

/*
 * Columns [n0, n1) of y[M, N] (row stride ldy) = beta * y + x[M, K] times
 * the w^T packed for the same kernel + bias[N] (NULL: none); beta is 0 or
 * 1. Columns outside [n0, n1) are not touched, so threads may split the
 * columns anywhere.
 */
void clip_gemm_packed(enum clip_kernel kernel, size_t M, size_t K, const float *x, size_t ldx, const float *p, const float *bias, float *y,
		      size_t ldy, size_t n0, size_t n1, float beta);

/* clip_gemm_packed's CLIP_KERNEL_AVX2 kernel (gemm_avx2.c, x86-64 only):
 * call through clip_gemm_packed. */
void clip_gemm_packed_avx2(size_t M, size_t K, const float *x, size_t ldx, const float *p, const float *bias,
			   float *y, size_t ldy, size_t n0, size_t n1, float beta);

/*
 * bf16 (CLIP_KERNEL_AVX512_BF16 only). A bf16 value is the upper half of a
 * float32's bits; rounding is to nearest, ties to even. Operands have an
 * even number of elements per row, K rounded up (clip_bf16_row), the last
 * one zero when K is odd, since vdpbf16ps multiplies pairs of k.
 *
 * The packed layout: panels of CLIP_GEMM_PANEL columns as for float32,
 * each holding for every pair of k the panel's 32 columns' two weights
 * side by side (panel c: w[c + j][2q + t] at [q][j][t]), so that one step
 * loads the panel's 64 weights of two k as two vectors and broadcasts a
 * row's pair of activations as one 32-bit value.
 */
#define clip_bf16_row(K) (((K) + 1) & ~(size_t)1)

/* out[i] = x[i] rounded to bf16, i < n. */
void clip_bf16_round(const float *x, size_t n, uint16_t *out);

/* M rows of K floats (row stride ldx) to bf16 rows of clip_bf16_row(K)
 * elements (row stride ldo), the odd K's pad zeroed. */
void clip_bf16_round_rows(size_t M, size_t K, const float *x, size_t ldx, uint16_t *out, size_t ldo);

/* bf16 elements that clip_gemm_pack_bf16 writes for w [N, K]. */
size_t clip_gemm_packed_bf16_elems(size_t N, size_t K);

/* p (64-byte aligned, clip_gemm_packed_bf16_elems(N, K) elements) = w
 * packed, from float32 weights (w, rounded) or from bf16 ones (wb, as they
 * are: a bf16 checkpoint is never widened); exactly one is non-NULL. */
void clip_gemm_pack_bf16(size_t N, size_t K, const float *w, const uint16_t *wb, size_t ldw, uint16_t *p);

/*
 * Columns [n0, n1) of y[M, N] (float32, row stride ldy) = beta * y +
 * x[M, K] (bf16, row stride ldx >= clip_bf16_row(K)) times the packed
 * bf16 w^T + bias[N] (NULL: none), accumulated in float32 (vdpbf16ps).
 * As clip_gemm_packed otherwise.
 */
void clip_gemm_packed_bf16(size_t M, size_t K, const uint16_t *x, size_t ldx, const uint16_t *p,
			   const float *bias, float *y, size_t ldy, size_t n0, size_t n1, float beta);

#endif
