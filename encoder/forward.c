/*
 * forward.c - the CLIP vision and text transformers: the linear layers
 * through clip_gemm_packed (weights packed at load, on AVX2 and AVX-512)
 * or else cblas_sgemm / clip_gemm_tn (gemm.h), LayerNorm, softmax and the
 * activations in float32 with vector kernels of our own, each step split
 * across the ctx's team.
 *
 * At bf16 precision every linear layer's input is also kept rounded to
 * bf16 (next to its float32 rows, written by the step that makes it: the
 * LayerNorm, the attention of a head, the MLP's activation, the patch
 * unfolding), and clip_gemm_packed_bf16 reads that; everything else is
 * the float32 code, unchanged.
 *
 * Rows are tokens: an image is 1 + grid^2 rows (class token first), a text
 * is its ids up to and including the end token (the causal mask makes
 * later positions irrelevant to the pooled output, so they are never
 * computed). A chunk of images or texts is one matrix of rows, so every
 * linear layer is one GEMM over the whole chunk; attention runs per
 * sequence and head.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "forward.h"
#include "gemm.h"
#include "internal.h"

/* ---- vector kernels ---------------------------------------------------- */

/* GCC/Clang vector extensions, as wide as the target's registers (the
 * build uses -march=native): 16 floats with AVX-512, 8 with AVX, 4 with
 * SSE. Loads and stores go through memcpy, so no pointer needs any
 * alignment. */
#if defined(__AVX512F__)
#define VL 16
#elif defined(__AVX__)
#define VL 8
#else
#define VL 4
#endif
typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VL * sizeof(int32_t))));

#define KERNEL static inline __attribute__((always_inline))

KERNEL vf vld(const float *p)
{
	vf v;
	memcpy(&v, p, sizeof v);
	return v;
}

KERNEL void vst(float *p, vf v)
{
	memcpy(p, &v, sizeof v);
}

KERNEL vf vld_n(const float *p, size_t n, float fill)
{
	vf v = (vf){ 0 } + fill;
	memcpy(&v, p, n * sizeof *p);
	return v;
}

KERNEL void vst_n(float *p, vf v, size_t n)
{
	memcpy(p, &v, n * sizeof *p);
}

KERNEL float vsum(vf v)
{
	float s = 0;
	for (int i = 0; i < VL; i++)
		s += v[i];
	return s;
}

KERNEL float vmax_lane(vf v)
{
	float m = v[0];
	for (int i = 1; i < VL; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

KERNEL vf vsel(vi mask, vf a, vf b)
{
	return (vf)(((vi)a & mask) | ((vi)b & ~mask));
}

KERNEL vf vmax(vf a, vf b)
{
	return vsel(a > b, a, b);
}

KERNEL vf vmin(vf a, vf b)
{
	return vsel(a < b, a, b);
}

KERNEL vf vabs(vf x)
{
	return (vf)((vi)x & 0x7fffffff);
}

/*
 * e^x, relative error about 2e-7 over the float range: x = n ln2 + f with
 * |f| <= ln2/2 (n by round-to-nearest through the 1.5 * 2^23 trick, ln2 in
 * two parts), e^f by its degree-7 Taylor polynomial (remainder below 6e-9),
 * times 2^n built in the exponent bits. Inputs are clamped to
 * [-87.3, 88]: below, the result is the smallest normal float instead of
 * a denormal or zero, which no caller can tell from zero.
 */
KERNEL vf vexp(vf x)
{
	x = vmin(vmax(x, (vf){ 0 } - 87.3f), (vf){ 0 } + 88.0f);
	vf t = x * 1.44269504088896341f;
	vf r = (t + 12582912.0f) - 12582912.0f;
	vf f = x - r * 0.693145751953125f;
	f = f - r * 1.42860682030941723e-6f;
	vf p = (vf){ 0 } + 1.0f / 5040;
	p = p * f + 1.0f / 720;
	p = p * f + 1.0f / 120;
	p = p * f + 1.0f / 24;
	p = p * f + 1.0f / 6;
	p = p * f + 0.5f;
	p = p * f + 1.0f;
	p = p * f + 1.0f;
	vi n = __builtin_convertvector(r, vi);
	vf scale = (vf)((n + 127) << 23);
	return p * scale;
}

/* QuickGELU: x * sigmoid(1.702 x). */
KERNEL vf vquick_gelu(vf x)
{
	return x / (1.0f + vexp(x * -1.702f));
}

/*
 * Exact GELU, x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2, through erfc(z) for
 * z = |x| / sqrt 2 by the Chebyshev-fitted form t exp(-z^2 + P(t)),
 * t = 1 / (1 + z/2), whose relative error is below 1.2e-7 for every z >= 0
 * (Numerical Recipes' erfcc): x >= 0 gives x (1 - erfc/2), x < 0 gives
 * x erfc/2, both without cancellation.
 */
KERNEL vf vgelu(vf x)
{
	vf z = vabs(x) * 0.70710678118654752f;
	vf t = 1.0f / (1.0f + 0.5f * z);
	vf p = (vf){ 0 } + 0.17087277f;
	p = p * t - 0.82215223f;
	p = p * t + 1.48851587f;
	p = p * t - 1.13520398f;
	p = p * t + 0.27886807f;
	p = p * t - 0.18628806f;
	p = p * t + 0.09678418f;
	p = p * t + 0.37409196f;
	p = p * t + 1.00002368f;
	p = p * t - 1.26551223f;
	vf half_erfc = 0.5f * t * vexp(p - z * z);
	return x * vsel(x >= 0, 1.0f - half_erfc, half_erfc);
}

enum act { ACT_NONE, ACT_QUICK_GELU, ACT_GELU };

/* y[i] = act(y[i] + b[i]) for i < n. */
static void bias_act(float *y, const float *b, size_t n, enum act act)
{
	size_t i = 0;
	switch (act) {
	case ACT_NONE:
		for (; i + VL <= n; i += VL)
			vst(y + i, vld(y + i) + vld(b + i));
		break;
	case ACT_QUICK_GELU:
		for (; i + VL <= n; i += VL)
			vst(y + i, vquick_gelu(vld(y + i) + vld(b + i)));
		break;
	case ACT_GELU:
		for (; i + VL <= n; i += VL)
			vst(y + i, vgelu(vld(y + i) + vld(b + i)));
		break;
	}
	if (i < n) {
		size_t r = n - i;
		vf v = vld_n(y + i, r, 0) + vld_n(b + i, r, 0);
		if (act == ACT_QUICK_GELU)
			v = vquick_gelu(v);
		else if (act == ACT_GELU)
			v = vgelu(v);
		vst_n(y + i, v, r);
	}
}

/* y[i] = act(y[i]) for i < n. */
static void act_only(float *y, size_t n, enum act act)
{
	size_t i = 0;
	if (act == ACT_QUICK_GELU)
		for (; i + VL <= n; i += VL)
			vst(y + i, vquick_gelu(vld(y + i)));
	else if (act == ACT_GELU)
		for (; i + VL <= n; i += VL)
			vst(y + i, vgelu(vld(y + i)));
	else
		return;
	if (i < n) {
		size_t r = n - i;
		vf v = vld_n(y + i, r, 0);
		vst_n(y + i, act == ACT_QUICK_GELU ? vquick_gelu(v) : vgelu(v), r);
	}
}

/* y = (x - mean) / sqrt(var + eps) * w + b over n floats; x may equal y. */
static void layer_norm(const float *x, float *y, size_t n, const float *w, const float *b, float eps)
{
	size_t i;
	vf acc = { 0 };
	for (i = 0; i + VL <= n; i += VL)
		acc += vld(x + i);
	if (i < n)
		acc += vld_n(x + i, n - i, 0);
	float mean = vsum(acc) / (float)n;
	vf acc2 = { 0 };
	for (i = 0; i + VL <= n; i += VL) {
		vf d = vld(x + i) - mean;
		acc2 += d * d;
	}
	if (i < n) {
		vf d = vld_n(x + i, n - i, mean) - mean;
		acc2 += d * d;
	}
	float rstd = 1.0f / sqrtf(vsum(acc2) / (float)n + eps);
	for (i = 0; i + VL <= n; i += VL)
		vst(y + i, (vld(x + i) - mean) * rstd * vld(w + i) + vld(b + i));
	if (i < n) {
		size_t r = n - i;
		vst_n(y + i, (vld_n(x + i, r, 0) - mean) * rstd * vld_n(w + i, r, 0) + vld_n(b + i, r, 0), r);
	}
}

/* In place softmax of scale times the first n of row[0..len), zeroing row[n..len). */
static void softmax(float *row, size_t n, size_t len, float scale)
{
	size_t i;
	vf m = (vf){ 0 } - INFINITY;
	for (i = 0; i + VL <= n; i += VL)
		m = vmax(m, vld(row + i));
	if (i < n)
		m = vmax(m, vld_n(row + i, n - i, -INFINITY));
	float mx = vmax_lane(m);
	vf acc = { 0 };
	for (i = 0; i + VL <= n; i += VL) {
		vf e = vexp((vld(row + i) - mx) * scale);
		vst(row + i, e);
		acc += e;
	}
	if (i < n) {
		vf e = vexp((vld_n(row + i, n - i, mx) - mx) * scale);
		/* lanes past n were filled with mx: exp(0) = 1, not counted */
		vst_n(row + i, e, n - i);
		for (size_t j = 0; j < n - i; j++)
			acc[j] += e[j];
	}
	float inv = 1.0f / vsum(acc);
	for (i = 0; i + VL <= n; i += VL)
		vst(row + i, vld(row + i) * inv);
	if (i < n)
		vst_n(row + i, vld_n(row + i, n - i, 0) * inv, n - i);
	if (len > n)
		memset(row + n, 0, (len - n) * sizeof *row);
}

/* ---- work splitting ----------------------------------------------------- */

#define COL_ALIGN 16  /* OpenBLAS small-kernel column blocks: whole vectors */

/* [*lo, *hi) of n items for thread idx of nth, in blocks of `align`. */
static void split(size_t n, int idx, int nth, size_t align, size_t *lo, size_t *hi)
{
	size_t chunk = (n + (size_t)nth - 1) / (size_t)nth;
	chunk = (chunk + align - 1) / align * align;
	*lo = (size_t)idx * chunk < n ? (size_t)idx * chunk : n;
	*hi = *lo + chunk < n ? *lo + chunk : n;
}

/*
 * Few rows (a text query): OpenBLAS's packed GEMM copies the whole weight
 * matrix for a handful of uses of each element, so the product is cut
 * into column blocks small enough for its direct "small matrix" kernel,
 * which reads the weights once, in place (OpenBLAS 0.3.17+ on AVX-512
 * allows it for this transposition while rows x columns <= 1200 and
 * rows x columns x K <= 10^6). Each block is computed transposed,
 * W[block] x^T, which is the same kernel with the few rows as its short
 * side: on 0.3.21 "Cooperlake" it streams the weights about 20% faster
 * (short queries on one thread: 10.3 ms instead of 12.9).
 */
#define SMALL_ROWS 24
#define SMALL_MN 1200
#define SMALL_MNK 1000000

static size_t column_block(size_t M, size_t K)
{
	if (M > SMALL_ROWS)
		return SIZE_MAX;
	size_t nc = SMALL_MN / M;
	if (nc * M * K > SMALL_MNK)
		nc = SMALL_MNK / (M * K);
	nc = nc / COL_ALIGN * COL_ALIGN;
	return nc ? nc : SIZE_MAX;
}

/*
 * The input of a product: M rows of K floats (f, row stride ld), and at
 * bf16 precision the same rows rounded to bf16 (b, row stride
 * clip_bf16_row(K)), which the product then reads instead; b is NULL at
 * float32.
 */
struct opnd {
	const float *f;
	size_t ld;
	const uint16_t *b;
};

/* yb[M rows, columns [n0, n1)] = y's rounded to bf16; rows of y are ldy
 * floats apart, of yb clip_bf16_row(ldy); an odd row's pad is zeroed by
 * the columns that end there. */
static void round_cols(size_t M, const float *y, size_t ldy, uint16_t *yb, size_t n0, size_t n1)
{
	size_t ldb = clip_bf16_row(ldy);
	for (size_t r = 0; r < M; r++) {
		clip_bf16_round(y + r * ldy + n0, n1 - n0, yb + r * ldb + n0);
		if (n1 == ldy && ldy % 2)
			yb[r * ldb + ldy] = 0;
	}
}

/*
 * Columns [n0, n1) of y[M, N] (row stride ldy) = beta * y + x[M, K] W^T + b,
 * W being [N, K] row-major (nn.Linear), then the activation; beta is 0 or 1.
 * With W packed at load (gemm.h) the packed kernel computes it, in bf16
 * when x has its bf16 rows. yb (NULL: none) receives the result's columns
 * rounded to bf16 too, for the product that reads them next.
 */
static void linear_cols(enum clip_kernel kernel, size_t M, size_t K, struct opnd x, const struct clip_weight *w,
			const float *b, float *y, size_t ldy, size_t n0, size_t n1, float beta, enum act act,
			uint16_t *yb)
{
	if (n1 <= n0 || M == 0)
		return;
	if (w->packed) {
		if (x.b)
			clip_gemm_packed_bf16(M, K, x.b, clip_bf16_row(K), w->packed, b, y, ldy, n0, n1, beta);
		else
			clip_gemm_packed(kernel, M, K, x.f, x.ld, w->packed, b, y, ldy, n0, n1, beta);
		if (act != ACT_NONE)
			for (size_t r = 0; r < M; r++)
				act_only(y + r * ldy + n0, n1 - n0, act);
		if (yb)
			round_cols(M, y, ldy, yb, n0, n1);
		return;
	}
	/* (nothing is packed only at float32: bf16 needs the bf16 kernel) */
	size_t ldx = x.ld;
	const float *xf = x.f, *wf = w->f;
	size_t nc = column_block(M, K);
	if (nc == SIZE_MAX) {
		clip_gemm_tn(kernel, M, n1 - n0, K, xf, ldx, wf + n0 * K, K, b + n0, y + n0, ldy, beta);
		if (act != ACT_NONE)
			for (size_t r = 0; r < M; r++)
				act_only(y + r * ldy + n0, n1 - n0, act);
		return;
	}
	for (size_t c0 = n0; c0 < n1;) {
		size_t c1 = n1 - c0 > nc ? c0 + nc : n1, nb = c1 - c0;
		/* t[nb, M] = W[c0..c1) x^T, then into y */
		float t[SMALL_MN];
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)M, (int)K, 1.0f, wf + c0 * K,
			    (int)K, xf, (int)ldx, 0.0f, t, (int)M);
		for (size_t r = 0; r < M; r++) {
			float *yr = y + r * ldy + c0;
			if (beta == 0.0f)
				for (size_t j = 0; j < nb; j++)
					yr[j] = t[j * M + r];
			else
				for (size_t j = 0; j < nb; j++)
					yr[j] += t[j * M + r];
		}
		c0 = c1;
	}
	for (size_t r = 0; r < M; r++)
		bias_act(y + r * ldy + n0, b + n0, n1 - n0, act);
}

/* ---- one transformer tower over a chunk of rows --------------------------- */

struct pass {
	const struct clip_tower_arch *A;
	const struct clip_layer *l;
	enum clip_kernel kernel;
	size_t M;                       /* rows */
	float *x, *h, *q, *k, *v, *a, *f;
	/* at bf16 precision, h, a and f rounded to bf16 (rows of
	 * clip_bf16_row(W or F) elements): the products' inputs; else NULL */
	uint16_t *hb, *ab, *fb;
	/* few rows: per thread M x W floats, where each thread normalises
	 * every row itself inside the GEMM task that follows (no LayerNorm
	 * step and its barrier), and their bf16 copies (hsb); NULL otherwise */
	float *hs;
	uint16_t *hsb;
	size_t next;                    /* the next unit of the running task (see take_cols) */
	/* sequences: n_seq runs of rows, seq_off[i] .. + seq_len[i] */
	size_t n_seq;
	const int *seq_off, *seq_len;
	const int *pool_row;            /* per sequence: the row its output is read from */
	struct pass *pool;              /* the last layer past attention: pooled rows only */
	int causal;
	/* texts whose first row is cached (clip_model.prefix_kv): [layers][2][W];
	 * the current layer's cached key and value; NULL otherwise */
	const float *prefix_kv;
	const float *prefix_k, *prefix_v;
	float *scores;                  /* per thread: scores_stride floats */
	size_t scores_stride;
	/* LayerNorm task parameters */
	const float *ln_w, *ln_b;
	const float *ln_in;
	float *ln_out;
	uint16_t *ln_outb;              /* the output rounded to bf16, or NULL */
	size_t ln_stride;               /* rows are ln_stride floats apart */
};

static void task_ln(void *arg, int i, int n)
{
	struct pass *p = arg;
	size_t W = (size_t)p->A->width, lo, hi;
	split(p->M, i, n, 1, &lo, &hi);
	for (size_t r = lo; r < hi; r++)
		layer_norm(p->ln_in + r * p->ln_stride, p->ln_out + r * p->ln_stride, W, p->ln_w, p->ln_b,
			   p->A->eps);
	if (p->ln_outb && hi > lo)
		clip_bf16_round_rows(hi - lo, W, p->ln_out + lo * p->ln_stride, p->ln_stride,
				     p->ln_outb + lo * clip_bf16_row(W), clip_bf16_row(W));
}

/* The LayerNorm of x that the GEMMs of thread i read: p->h (a LayerNorm
 * step filled it), or with few rows the thread's own copy, made here. */
static struct opnd norm_in(struct pass *p, int i, const float *w, const float *b)
{
	size_t W = (size_t)p->A->width, Wb = clip_bf16_row(W);
	if (!p->hs)
		return (struct opnd){ p->h, W, p->hb };
	float *h = p->hs + (size_t)i * p->M * W;
	uint16_t *hb = p->hsb ? p->hsb + (size_t)i * p->M * Wb : NULL;
	for (size_t r = 0; r < p->M; r++)
		layer_norm(p->x + r * W, h + r * W, W, w, b, p->A->eps);
	if (hb)
		clip_bf16_round_rows(p->M, W, h, W, hb, Wb);
	return (struct opnd){ h, W, hb };
}

/* Attention of sequence s, head `head`: a[rows of s, head's columns]. */
static void attn_unit(struct pass *p, float *S, size_t s, size_t head)
{
	size_t W = (size_t)p->A->width, H = (size_t)p->A->heads, d = W / H;
	float scale = 1.0f / sqrtf((float)d);
	size_t off = (size_t)p->seq_off[s], L = (size_t)p->seq_len[s];
	const float *Q = p->q + off * W + head * d;
	const float *K = p->k + off * W + head * d;
	const float *V = p->v + off * W + head * d;
	float *O = p->a + off * W + head * d;
	/* S = Q K^T (the scale goes into the softmax); with a cached first
	 * row (pre = 1) its key is column 0 and the sequence's own rows follow */
	size_t pre = p->prefix_k ? 1 : 0, ls = L + pre;
	if (pre)
		clip_gemm_tn(p->kernel, L, 1, d, Q, W, p->prefix_k + head * d, d, NULL, S, ls, 0.0f);
	clip_gemm_tn(p->kernel, L, L, d, Q, W, K, W, NULL, S + pre, ls, 0.0f);
	for (size_t r = 0; r < L; r++)
		softmax(S + r * ls, p->causal ? r + 1 + pre : ls, ls, scale);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)L, (int)d, (int)L, 1.0f, S + pre, (int)ls, V,
		    (int)W, 0.0f, O, (int)W);
	if (pre)
		for (size_t r = 0; r < L; r++)
			cblas_saxpy((int)d, S[r * ls], p->prefix_v + head * d, 1, O + r * W, 1);
	if (p->ab)
		round_cols(L, p->a + off * W, W, p->ab + off * clip_bf16_row(W), head * d, head * d + d);
}

/*
 * Work is handed out a unit at a time (a chunk of a product's columns, a
 * head) to whichever thread of the team asks first, not split in fixed
 * shares: on two cores shared with HTTP and decoding threads, a thread
 * the scheduler puts aside for a few milliseconds would otherwise hold
 * every other at the task's end.
 */
#define CHUNK 64  /* columns taken at a time: two packed panels */

static size_t next_unit(size_t *counter)
{
	return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/* The next chunk of `parts` products of n columns each: which product and
 * its columns [lo, hi); 0 when all are taken. */
static int take_cols(size_t *counter, size_t parts, size_t n, size_t *part, size_t *lo, size_t *hi)
{
	size_t per = (n + CHUNK - 1) / CHUNK, c = next_unit(counter);
	if (c >= parts * per)
		return 0;
	*part = c / per;
	*lo = c % per * CHUNK;
	*hi = *lo + CHUNK < n ? *lo + CHUNK : n;
	return 1;
}

/* Q, K and V a head at a time, then that head's attention in every
 * sequence, with no barrier between (the head's columns are all it reads). */
static void task_qkv_attn(void *arg, int i, int n)
{
	struct pass *p = arg;
	const struct clip_layer *l = p->l;
	size_t W = (size_t)p->A->width, H = (size_t)p->A->heads, d = W / H;
	float *S = p->scores + (size_t)i * p->scores_stride;
	struct opnd h = norm_in(p, i, l->ln1_w, l->ln1_b);
	(void)n;
	for (size_t head; (head = next_unit(&p->next)) < H;) {
		size_t lo = head * d, hi = lo + d;
		linear_cols(p->kernel, p->M, W, h, &l->q, l->q_b, p->q, W, lo, hi, 0.0f, ACT_NONE, NULL);
		linear_cols(p->kernel, p->M, W, h, &l->k, l->k_b, p->k, W, lo, hi, 0.0f, ACT_NONE, NULL);
		linear_cols(p->kernel, p->M, W, h, &l->v, l->v_b, p->v, W, lo, hi, 0.0f, ACT_NONE, NULL);
		for (size_t s = 0; s < p->n_seq; s++)
			attn_unit(p, S, s, head);
	}
}

static void task_out(void *arg, int i, int n)
{
	struct pass *p = arg;
	size_t W = (size_t)p->A->width, part, lo, hi;
	(void)i, (void)n;
	while (take_cols(&p->next, 1, W, &part, &lo, &hi))
		linear_cols(p->kernel, p->M, W, (struct opnd){ p->a, W, p->ab }, &p->l->o, p->l->o_b, p->x, W, lo, hi,
			    1.0f, ACT_NONE, NULL);
}

static void task_fc1(void *arg, int i, int n)
{
	struct pass *p = arg;
	size_t W = (size_t)p->A->width, F = (size_t)p->A->mlp, part, lo, hi;
	struct opnd h = norm_in(p, i, p->l->ln2_w, p->l->ln2_b);
	(void)n;
	while (take_cols(&p->next, 1, F, &part, &lo, &hi))
		linear_cols(p->kernel, p->M, W, h, &p->l->fc1, p->l->fc1_b, p->f, F, lo, hi, 0.0f,
			    p->A->quick_gelu ? ACT_QUICK_GELU : ACT_GELU, p->fb);
}

static void task_fc2(void *arg, int i, int n)
{
	struct pass *p = arg;
	size_t W = (size_t)p->A->width, F = (size_t)p->A->mlp, part, lo, hi;
	(void)i, (void)n;
	while (take_cols(&p->next, 1, W, &part, &lo, &hi))
		linear_cols(p->kernel, p->M, F, (struct opnd){ p->f, F, p->fb }, &p->l->fc2, p->l->fc2_b, p->x, W, lo,
			    hi, 1.0f, ACT_NONE, NULL);
}

/* Last layer: K and V for every row, Q only for the pooled rows. */
static void task_kv_q(void *arg, int i, int n)
{
	struct pass *p = arg, *pp = p->pool;
	const struct clip_layer *l = p->l;
	size_t W = (size_t)p->A->width, part, lo, hi;
	struct opnd h = { p->h, W, p->hb }, ph = { pp->h, W, pp->hb };
	(void)i, (void)n;
	while (take_cols(&p->next, 3, W, &part, &lo, &hi)) {
		if (part == 0)
			linear_cols(p->kernel, p->M, W, h, &l->k, l->k_b, p->k, W, lo, hi, 0.0f, ACT_NONE, NULL);
		else if (part == 1)
			linear_cols(p->kernel, p->M, W, h, &l->v, l->v_b, p->v, W, lo, hi, 0.0f, ACT_NONE, NULL);
		else
			linear_cols(p->kernel, pp->M, W, ph, &l->q, l->q_b, pp->q, W, lo, hi, 0.0f, ACT_NONE, NULL);
	}
}

/* Last layer: attention of each sequence's pooled row over all its rows
 * (the pooled row is the class token or the end token, the last row of a
 * text, so the causal mask hides nothing from it). */
static void task_attn_pool(void *arg, int i, int n)
{
	struct pass *p = arg, *pp = p->pool;
	size_t W = (size_t)p->A->width, H = (size_t)p->A->heads, d = W / H, lo, hi;
	float scale = 1.0f / sqrtf((float)d);
	float *S = p->scores + (size_t)i * p->scores_stride;
	split(p->n_seq * H, i, n, 1, &lo, &hi);
	for (size_t u = lo; u < hi; u++) {
		size_t s = u / H, head = u % H;
		size_t off = (size_t)p->seq_off[s], L = (size_t)p->seq_len[s], pre = p->prefix_k ? 1 : 0;
		const float *q = pp->q + s * W + head * d;
		float *o = pp->a + s * W + head * d;
		if (pre)
			clip_gemm_tn(p->kernel, 1, 1, d, q, W, p->prefix_k + head * d, d, NULL, S, 1, 0.0f);
		clip_gemm_tn(p->kernel, 1, L, d, q, W, p->k + off * W + head * d, W, NULL, S + pre, L + pre, 0.0f);
		softmax(S, L + pre, L + pre, scale);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, (int)d, (int)L, 1.0f, S + pre, (int)L,
			    p->v + off * W + head * d, (int)W, 0.0f, o, (int)W);
		if (pre)
			cblas_saxpy((int)d, S[0], p->prefix_v + head * d, 1, o, 1);
		if (pp->ab)
			round_cols(1, pp->a + s * W, W, pp->ab + s * clip_bf16_row(W), head * d, head * d + d);
	}
}

static void run_ln(struct clip_team *team, struct pass *p, const float *in, float *out, uint16_t *outb,
		   const float *w, const float *b)
{
	p->ln_in = in;
	p->ln_out = out;
	p->ln_outb = outb;
	p->ln_w = w;
	p->ln_b = b;
	p->ln_stride = (size_t)p->A->width;
	clip_team_run(team, task_ln, p);
}

/* A task whose units the threads take from p->next. */
static void run_units(struct clip_team *team, clip_task_fn fn, struct pass *p)
{
	p->next = 0;
	clip_team_run(team, fn, p);
}

static void set_prefix(struct pass *p, int li)
{
	size_t W = (size_t)p->A->width;
	p->prefix_k = p->prefix_kv ? p->prefix_kv + (size_t)li * 2 * W : NULL;
	p->prefix_v = p->prefix_kv ? p->prefix_k + W : NULL;
}

/*
 * The tower's layers over p->M rows of p->x. The last layer computes past
 * its attention only the pooled rows (one per sequence), into p->pool: its
 * x holds them afterwards.
 */
static void run_layers(struct clip_team *team, struct pass *p, const struct clip_layer *layers)
{
	struct pass *pp = p->pool;
	size_t W = (size_t)p->A->width;
	int last = p->A->layers - 1;
	for (int li = 0; li < last; li++) {
		p->l = &layers[li];
		set_prefix(p, li);
		if (!p->hs)
			run_ln(team, p, p->x, p->h, p->hb, p->l->ln1_w, p->l->ln1_b);
		run_units(team, task_qkv_attn, p);
		run_units(team, task_out, p);
		if (!p->hs)
			run_ln(team, p, p->x, p->h, p->hb, p->l->ln2_w, p->l->ln2_b);
		run_units(team, task_fc1, p);
		run_units(team, task_fc2, p);
	}
	p->l = pp->l = &layers[last];
	set_prefix(p, last);
	run_ln(team, p, p->x, p->h, p->hb, p->l->ln1_w, p->l->ln1_b);
	for (size_t s = 0; s < p->n_seq; s++) {
		size_t r = (size_t)p->pool_row[s], Wb = clip_bf16_row(W);
		memcpy(pp->x + s * W, p->x + r * W, W * sizeof *pp->x);
		memcpy(pp->h + s * W, p->h + r * W, W * sizeof *pp->h);
		if (p->hb)
			memcpy(pp->hb + s * Wb, p->hb + r * Wb, Wb * sizeof *pp->hb);
	}
	run_units(team, task_kv_q, p);
	clip_team_run(team, task_attn_pool, p);
	run_units(team, task_out, pp);
	run_ln(team, pp, pp->x, pp->h, pp->hb, pp->l->ln2_w, pp->l->ln2_b);
	run_units(team, task_fc1, pp);
	run_units(team, task_fc2, pp);
}

/* ---- scratch ----------------------------------------------------------- */

void clip_work_free(struct clip_work *w)
{
	if (!w)
		return;
	free(w->buf);
	free(w->ints);
	memset(w, 0, sizeof *w);
}

#define ALIGN_FLOATS 16  /* 64 bytes */

static size_t round_up(size_t n)
{
	return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

static int work_reserve(struct clip_work *w, size_t floats, size_t ints, clip_error *err)
{
	if (floats > w->cap) {
		float *b = NULL;
		if (posix_memalign((void **)&b, 64, floats * sizeof *b) != 0)
			return clip_fail(err, CLIP_ERR_NOMEM, "out of memory for %zu MB of scratch",
					 floats * sizeof *b >> 20);
		free(w->buf);
		w->buf = b;
		w->cap = floats;
	}
	if (ints > w->cap_ints) {
		int *p = malloc(ints * sizeof *p);
		if (!p)
			return clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
		free(w->ints);
		w->ints = p;
		w->cap_ints = ints;
	}
	return 0;
}

/* Floats that hold n bf16 values, rounded up to whole 64-byte blocks. */
static size_t bf16_floats(size_t n)
{
	return round_up((n + 1) / 2);
}

/*
 * Carve the buffers of pass p (M rows) and of its pooled pass pp (n rows)
 * out of base; returns the floats needed (and assigns pointers only when
 * base is not NULL). With fb_elems (bf16 precision: the bf16 elements of
 * p->fb) the bf16 copies too.
 */
static size_t layout(struct pass *p, struct pass *pp, float *base, size_t M, size_t n, size_t W, size_t F,
		     size_t f_floats, size_t fb_elems, size_t scores, int nth)
{
	size_t off = 0;
	float **bufs[] = { &p->x, &p->h, &p->q, &p->k, &p->v, &p->a, &pp->x, &pp->h, &pp->q, &pp->a };
	size_t sizes[] = { M * W, M * W, M * W, M * W, M * W, M * W, n * W, n * W, n * W, n * W };
	for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
		if (base)
			*bufs[i] = base + off;
		off += round_up(sizes[i]);
	}
	if (base)
		p->f = base + off;
	off += round_up(f_floats);
	if (base)
		pp->f = base + off;
	off += round_up(n * F);
	if (base)
		p->scores = base + off;
	p->scores_stride = round_up(scores);
	off += p->scores_stride * (size_t)nth;
	p->hs = NULL;
	if (M <= SMALL_ROWS) {
		if (base)
			p->hs = base + off;
		off += round_up(M * W) * (size_t)nth;
	}
	p->hb = p->ab = p->fb = p->hsb = pp->hb = pp->ab = pp->fb = NULL;
	if (fb_elems) {
		size_t Wb = clip_bf16_row(W), Fb = clip_bf16_row(F);
		uint16_t **bbufs[] = { &p->hb, &p->ab, &p->fb, &pp->hb, &pp->ab, &pp->fb, &p->hsb };
		size_t elems[] = { M * Wb, M * Wb, fb_elems, n * Wb, n * Wb, n * Fb,
				   M <= SMALL_ROWS ? M * Wb * (size_t)nth : 0 };
		for (size_t i = 0; i < sizeof bbufs / sizeof bbufs[0]; i++) {
			if (base && elems[i])
				*bbufs[i] = (uint16_t *)(void *)(base + off);
			off += bf16_floats(elems[i]);
		}
	}
	*pp = (struct pass){ .A = p->A, .kernel = p->kernel, .M = n, .x = pp->x, .h = pp->h, .q = pp->q,
			     .a = pp->a, .f = pp->f, .hb = pp->hb, .ab = pp->ab, .fb = pp->fb };
	p->pool = pp;
	return off;
}

/* out[n, E] = pooled[n, W] * proj, proj [W, E] (t = 0) or [E, W] (t = 1). */
static void project(const float *pooled, size_t n, size_t W, const float *proj, int t, size_t E, float *out)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, t ? CblasTrans : CblasNoTrans, (int)n, (int)E, (int)W, 1.0f,
		    pooled, (int)W, proj, t ? (int)W : (int)E, 0.0f, out, (int)E);
}

/* ---- vision ------------------------------------------------------------ */

struct vis_embed {
	const clip_model *m;
	const float *pixels;    /* the chunk's images */
	size_t B, grid, T;
	float *patches;         /* [B * grid^2, 3 P P] */
	uint16_t *patches_b;    /* the same in bf16 (rows of clip_bf16_row(3 P P)), or NULL */
	float *x;               /* [B * T, W] */
	size_t next;            /* the patch GEMM's next unit (take_cols) */
};

/* Unfold each image into grid^2 rows of (channel, dy, dx) values, the
 * order of the conv weight [W, 3, P, P]; prefill x with the positional
 * embedding (and the class token). Split by image rows. */
static void task_unfold(void *arg, int i, int n)
{
	struct vis_embed *e = arg;
	const struct clip_arch *a = &e->m->arch;
	size_t S = (size_t)a->image_size, P = (size_t)a->patch_size, G = e->grid, W = (size_t)a->vision.width;
	size_t K = 3 * P * P, lo, hi;
	split(e->B * G, i, n, 1, &lo, &hi);
	for (size_t bg = lo; bg < hi; bg++) {
		size_t b = bg / G, gy = bg % G;
		const float *img = e->pixels + b * 3 * S * S;
		for (size_t gx = 0; gx < G; gx++) {
			float *row = e->patches + ((b * G + gy) * G + gx) * K;
			for (size_t c = 0; c < 3; c++)
				for (size_t dy = 0; dy < P; dy++)
					memcpy(row + (c * P + dy) * P, img + (c * S + gy * P + dy) * S + gx * P,
					       P * sizeof *row);
		}
		if (e->patches_b)
			clip_bf16_round_rows(G, K, e->patches + (b * G + gy) * G * K, K,
					     e->patches_b + (b * G + gy) * G * clip_bf16_row(K), clip_bf16_row(K));
	}
	/* positional embedding rows, split by image */
	split(e->B, i, n, 1, &lo, &hi);
	for (size_t b = lo; b < hi; b++) {
		float *x = e->x + b * e->T * W;
		memcpy(x, e->m->vis_pos, e->T * W * sizeof *x);
		for (size_t c = 0; c < W; c++)
			x[c] += e->m->class_emb[c];
	}
}

/* x[b, 1 + p, cols] += patches[b, p] . patch_w[cols]^T */
static void task_patch_gemm(void *arg, int i, int n)
{
	struct vis_embed *e = arg;
	const struct clip_arch *a = &e->m->arch;
	size_t P = (size_t)a->patch_size, W = (size_t)a->vision.width, K = 3 * P * P, G2 = e->grid * e->grid;
	size_t b, lo, hi;
	(void)i, (void)n;
	while (take_cols(&e->next, e->B, W, &b, &lo, &hi)) {
		float *y = e->x + (b * e->T + 1) * W;
		const struct clip_weight *pw = &e->m->patch;
		if (e->patches_b)
			clip_gemm_packed_bf16(G2, K, e->patches_b + b * G2 * clip_bf16_row(K), clip_bf16_row(K),
					      pw->packed, NULL, y, W, lo, hi, 1.0f);
		else if (pw->packed)
			clip_gemm_packed(e->m->kernel, G2, K, e->patches + b * G2 * K, K, pw->packed, NULL, y, W, lo,
					 hi, 1.0f);
		else
			clip_gemm_tn(e->m->kernel, G2, hi - lo, K, e->patches + b * G2 * K, K, pw->f + lo * K, K,
				     NULL, y + lo, W, 1.0f);
	}
}

static void vision_chunk(const clip_model *m, struct clip_team *team, struct clip_work *w, const float *pixels,
			 size_t B, float *out, clip_error *err, int *rc)
{
	const struct clip_arch *a = &m->arch;
	size_t W = (size_t)a->vision.width, F = (size_t)a->vision.mlp, P = (size_t)a->patch_size;
	size_t G = (size_t)(a->image_size / a->patch_size), T = G * G + 1, M = B * T;
	size_t patch_floats = B * G * G * 3 * P * P;
	size_t f_floats = M * F > patch_floats ? M * F : patch_floats, fb_elems = 0;
	if (m->precision == CLIP_PRECISION_BF16) {
		size_t patch_elems = B * G * G * clip_bf16_row(3 * P * P), fc = M * clip_bf16_row(F);
		fb_elems = fc > patch_elems ? fc : patch_elems;
	}
	int nth = clip_team_size(team);
	struct pass p = { .A = &a->vision, .kernel = m->kernel, .M = M, .n_seq = B, .causal = 0 }, pp = { 0 };
	size_t need = layout(&p, &pp, NULL, M, B, W, F, f_floats, fb_elems, T * T, nth);
	if ((*rc = work_reserve(w, need, 3 * B, err)))
		return;
	layout(&p, &pp, w->buf, M, B, W, F, f_floats, fb_elems, T * T, nth);
	int *off = w->ints, *len = w->ints + B, *pool = w->ints + 2 * B;
	for (size_t b = 0; b < B; b++) {
		off[b] = (int)(b * T);
		len[b] = (int)T;
		pool[b] = off[b];  /* the class token */
	}
	p.seq_off = off;
	p.seq_len = len;
	p.pool_row = pool;

	struct vis_embed e = { .m = m, .pixels = pixels, .B = B, .grid = G, .T = T, .patches = p.f,
			       .patches_b = p.fb, .x = p.x };
	clip_team_run(team, task_unfold, &e);
	clip_team_run(team, task_patch_gemm, &e);
	run_ln(team, &p, p.x, p.x, NULL, m->ln_pre_w, m->ln_pre_b);
	run_layers(team, &p, m->vis_layers);
	for (size_t b = 0; b < B; b++)
		layer_norm(pp.x + b * W, pp.h + b * W, W, m->ln_post_w, m->ln_post_b, a->vision.eps);
	project(pp.h, B, W, m->vis_proj, m->vis_proj_t, (size_t)a->embed_dim, out);
}

int clip_forward_images(const clip_model *m, struct clip_team *team, struct clip_work *w, const float *pixels,
			size_t n, float *out, clip_error *err)
{
	const struct clip_arch *a = &m->arch;
	size_t G = (size_t)(a->image_size / a->patch_size), T = G * G + 1;
	size_t per = CLIP_CHUNK_ROWS / T ? CLIP_CHUNK_ROWS / T : 1;
	size_t in_floats = 3 * (size_t)a->image_size * (size_t)a->image_size, E = (size_t)a->embed_dim;
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i += per) {
		size_t B = n - i < per ? n - i : per;
		vision_chunk(m, team, w, pixels + i * in_floats, B, out + i * E, err, &rc);
	}
	return rc;
}

/* ---- text -------------------------------------------------------------- */

struct txt_embed {
	const clip_model *m;
	const int32_t *const *ids;
	const int *off, *len;
	size_t n, skip;   /* rows of a text start at its token `skip` */
	float *x;
};

static void task_tok_embed(void *arg, int i, int n)
{
	struct txt_embed *e = arg;
	size_t W = (size_t)e->m->arch.text.width, lo, hi;
	split(e->n, i, n, 1, &lo, &hi);
	for (size_t s = lo; s < hi; s++) {
		for (size_t j = 0; j < (size_t)e->len[s]; j++) {
			float *x = e->x + ((size_t)e->off[s] + j) * W;
			const float *tok = e->m->tok_emb + (size_t)e->ids[s][j + e->skip] * W;
			const float *pos = e->m->txt_pos + (j + e->skip) * W;
			for (size_t c = 0; c < W; c++)
				x[c] = tok[c] + pos[c];
		}
	}
}

/* Texts [0, n) whose rows (lens already cut at the end token) sum to M. */
static void text_chunk(const clip_model *m, struct clip_team *team, struct clip_work *w,
		       const int32_t *const *ids, const int *lens, size_t n, size_t M, float *out,
		       clip_error *err, int *rc)
{
	const struct clip_arch *a = &m->arch;
	size_t W = (size_t)a->text.width, F = (size_t)a->text.mlp, Lmax = 0;
	int nth = clip_team_size(team);
	/* texts that all start with the cached first row skip it */
	size_t skip = m->prefix_kv ? 1 : 0;
	for (size_t s = 0; s < n && skip; s++)
		if (lens[s] < 2 || ids[s][0] != m->prefix_id)
			skip = 0;
	M -= skip * n;
	for (size_t s = 0; s < n; s++)
		Lmax = (size_t)lens[s] - skip > Lmax ? (size_t)lens[s] - skip : Lmax;
	struct pass p = { .A = &a->text, .kernel = m->kernel, .M = M, .n_seq = n, .causal = 1 }, pp = { 0 };
	size_t scores = Lmax * (Lmax + skip);
	size_t fb_elems = m->precision == CLIP_PRECISION_BF16 ? M * clip_bf16_row(F) : 0;
	size_t need = layout(&p, &pp, NULL, M, n, W, F, M * F, fb_elems, scores, nth);
	if ((*rc = work_reserve(w, need, 3 * n, err)))
		return;
	layout(&p, &pp, w->buf, M, n, W, F, M * F, fb_elems, scores, nth);
	p.prefix_kv = skip ? m->prefix_kv : NULL;
	int *off = w->ints, *len = w->ints + n, *pool = w->ints + 2 * n;
	size_t r = 0;
	for (size_t s = 0; s < n; s++) {
		off[s] = (int)r;
		len[s] = lens[s] - (int)skip;
		r += (size_t)len[s];
		pool[s] = (int)r - 1;  /* the end token, the text's last row */
	}
	p.seq_off = off;
	p.seq_len = len;
	p.pool_row = pool;
	struct txt_embed e = { .m = m, .ids = ids, .off = off, .len = len, .n = n, .skip = skip, .x = p.x };
	clip_team_run(team, task_tok_embed, &e);
	run_layers(team, &p, m->txt_layers);
	for (size_t s = 0; s < n; s++)
		layer_norm(pp.x + s * W, pp.h + s * W, W, m->ln_final_w, m->ln_final_b, a->text.eps);
	project(pp.h, n, W, m->txt_proj, m->txt_proj_t, (size_t)a->embed_dim, out);
}

/*
 * The first row of a text that starts with token id: at position 0 under
 * the causal mask it attends to itself alone (its attention output is its
 * value), so it is the same in every such text. Its key and value at each
 * layer, for text_chunk to use instead of computing the row again.
 */
int clip_forward_prefix(clip_model *m, int32_t id, clip_error *err)
{
	const struct clip_tower_arch *A = &m->arch.text;
	size_t W = (size_t)A->width, F = (size_t)A->mlp, L = (size_t)A->layers;
	enum act act = A->quick_gelu ? ACT_QUICK_GELU : ACT_GELU;
	if (id < 0 || id >= m->arch.vocab_size || L == 0)
		return clip_fail(err, CLIP_ERR_INVALID, "prefix token %d outside the vocabulary", (int)id);
	size_t Wb = clip_bf16_row(W), Fb = clip_bf16_row(F);
	int bf16 = m->precision == CLIP_PRECISION_BF16;
	float *kv = malloc(L * 2 * W * sizeof *kv), *x = malloc((2 * W + F) * sizeof *x);
	/* at bf16, the products' inputs: h, the value (the row's attention output) and f */
	uint16_t *hb = bf16 ? malloc((2 * Wb + Fb) * sizeof *hb) : NULL;
	if (!kv || !x || (bf16 && !hb)) {
		free(kv);
		free(x);
		free(hb);
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
	}
	float *h = x + W, *f = h + W;
	uint16_t *vb = hb ? hb + Wb : NULL, *fb = hb ? vb + Wb : NULL;
	struct opnd hx = { h, W, hb }, vx = { NULL, W, vb }, fx = { f, F, fb };
	for (size_t c = 0; c < W; c++)
		x[c] = m->tok_emb[(size_t)id * W + c] + m->txt_pos[c];
	for (size_t li = 0; li < L; li++) {
		const struct clip_layer *l = &m->txt_layers[li];
		float *k = kv + li * 2 * W, *v = k + W;
		layer_norm(x, h, W, l->ln1_w, l->ln1_b, A->eps);
		if (hb)
			clip_bf16_round_rows(1, W, h, W, hb, Wb);
		linear_cols(m->kernel, 1, W, hx, &l->k, l->k_b, k, W, 0, W, 0.0f, ACT_NONE, NULL);
		linear_cols(m->kernel, 1, W, hx, &l->v, l->v_b, v, W, 0, W, 0.0f, ACT_NONE, vb);
		if (li + 1 == L)
			break;
		vx.f = v;
		linear_cols(m->kernel, 1, W, vx, &l->o, l->o_b, x, W, 0, W, 1.0f, ACT_NONE, NULL);
		layer_norm(x, h, W, l->ln2_w, l->ln2_b, A->eps);
		if (hb)
			clip_bf16_round_rows(1, W, h, W, hb, Wb);
		linear_cols(m->kernel, 1, W, hx, &l->fc1, l->fc1_b, f, F, 0, F, 0.0f, act, fb);
		linear_cols(m->kernel, 1, F, fx, &l->fc2, l->fc2_b, x, W, 0, W, 1.0f, ACT_NONE, NULL);
	}
	free(x);
	free(hb);
	m->prefix_kv = kv;
	m->prefix_id = id;
	return 0;
}

int clip_forward_tokens(const clip_model *m, struct clip_team *team, struct clip_work *w,
			const int32_t *const *ids, const size_t *lens, size_t n, float *out, clip_error *err)
{
	const struct clip_arch *a = &m->arch;
	size_t E = (size_t)a->embed_dim;
	int rc = 0;
	int *cut = malloc((n ? n : 1) * sizeof *cut);
	if (!cut)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
	/* Validate everything first: a bad text fails the call before any
	 * work. Each text is computed up to its first largest id. */
	for (size_t s = 0; s < n; s++) {
		if (!ids[s] || lens[s] < 1 || lens[s] > (size_t)a->context_length) {
			rc = clip_fail(err, CLIP_ERR_INVALID, "text %zu: %zu ids, expected 1 to %d", s, lens[s],
				       a->context_length);
			goto out;
		}
		size_t best = 0;
		for (size_t j = 0; j < lens[s]; j++) {
			if (ids[s][j] < 0 || ids[s][j] >= a->vocab_size) {
				rc = clip_fail(err, CLIP_ERR_INVALID, "text %zu: id %d at %zu outside the vocabulary", s,
					       (int)ids[s][j], j);
				goto out;
			}
			if (ids[s][j] > ids[s][best])
				best = j;
		}
		cut[s] = (int)best + 1;
	}
	for (size_t s0 = 0; s0 < n && !rc;) {
		size_t s1 = s0, M = 0;
		while (s1 < n && (s1 == s0 || M + (size_t)cut[s1] <= CLIP_CHUNK_ROWS))
			M += (size_t)cut[s1++];
		text_chunk(m, team, w, ids + s0, cut + s0, s1 - s0, M, out + s0 * E, err, &rc);
		s0 = s1;
	}
out:
	free(cut);
	return rc;
}
