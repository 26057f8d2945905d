/*
 * gemm.c - the linear layers' product, y = beta * y + x w^T (gemm.h).
 *
 * clip_gemm_tn's AVX-512 kernel: a tile of MR rows of x against NR rows of
 * w keeps MR x NR accumulators of 16 lanes in registers while it walks K,
 * loading each x and w vector once per tile and step (MR + NR loads for
 * MR x NR fused multiply-adds); at the end of the walk each row's NR
 * accumulators fold into NR sums with one transposing reduction. K goes
 * in chunks of KC, so the NR weight rows of a tile sit in L1 while every
 * row of x passes them (from L2: at most NATIVE_MAX_ROWS rows come here).
 * Any K: the last step of a walk loads under a mask. Any M and N: the
 * edge tiles are the same code with smaller MR, NR constants.
 *
 * clip_gemm_packed's kernel: a tile of up to PMR rows against one panel
 * of 32 columns, 2 x PMR accumulators, one broadcast x value per row and
 * step, no reduction at the end; panels outside the caller's columns are
 * masked at the store.
 *
 * The AVX2 + FMA kernel (gemm_avx2.c, a translation unit compiled for
 * AVX2 alone) has panels of 16 columns, for tiles of 6 rows x 16.
 *
 * The bf16 kernel is the AVX-512 packed kernel with k taken two at a
 * time: vdpbf16ps multiplies each 32-bit lane's pair of bf16 weights by a
 * broadcast pair of bf16 activations and adds both products to a float32
 * accumulator, twice the multiply-adds of an fp32 step from the same
 * registers, and the weights take half the bytes.
 */
#include "gemm.h"

#include <cblas.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_X86_KERNELS 1
#include <immintrin.h>
#else
#define HAVE_X86_KERNELS 0
#endif
/* The kernels below are compiled for their instruction sets whatever the
 * build's -march, and used only where clip_gemm_detect found them. */

#define MR 6      /* rows of x per tile */
#define NR 4      /* rows of w per tile: 24 accumulators + 4 x vectors + 1 w vector of 32 registers */
#define KC 768    /* K per chunk: NR weight rows = 12 KiB (L1); 768 = a ViT-B row in one chunk */
#define NATIVE_MAX_ROWS 160  /* more rows: OpenBLAS packs once for enough of them to pay (images) */
#define NC 64    /* rows of w per block: NC x KC floats = 256 KiB (L2) */

/* The packed layout and kernel: panels of PNR columns, tiles of at most
 * PMR rows (2 x 12 accumulators + 2 weight vectors + a broadcast of 32
 * registers), K in chunks of PKC. Measured (batch-8 images, text query):
 * chunks of 128 to 768, which keep a panel's chunk in L1, were all slower
 * than one pass over the whole K of every CLIP up to ViT-L (the panel
 * streams from L2, and each tile's sums are stored once). */
#define PNR CLIP_GEMM_PANEL
#define PMR 12
#define PKC 4096
/* The first tile of each panel, which brings the panel in from memory
 * (the tiles after it find it in L2), asks for its lines PPF steps of k
 * ahead: a text query's product is one tile of a few rows, whose loads
 * wait on memory. Alternating `clipd bench` runs with the kernel without
 * it (2026-12-06): bf16 text queries in 6-12% less time (medians of five
 * to eight pairs), 16 and 64 steps ahead did less; images/s unchanged
 * within the noise. */
#define PPF 32

#if HAVE_X86_KERNELS

#define TARGET __attribute__((target("avx512f")))

/* (sum a, sum b, sum c, sum d) */
static inline TARGET __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d)
{
	/* per 128-bit lane: (a0+a2, b0+b2, a1+a3, b1+b3), the same for c, d */
	__m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
	__m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
	/* per lane: (a, b, c, d) */
	__m512 s = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
				 _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
	__m256 h = _mm256_add_ps(_mm512_castps512_ps256(s),
				 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)));
	return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* y[mr, nr] (=, or += when add) x[mr, kc] w[nr, kc]^T; mr, nr constant after inlining */
static inline TARGET __attribute__((always_inline)) void tile(const int mr, const int nr, size_t kc,
							      const float *x, size_t ldx, const float *w,
							      size_t ldw, const float *bias, float *y, size_t ldy,
							      int add)
{
	__m512 acc[MR][NR];
#pragma GCC unroll 8
	for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
		for (int j = 0; j < nr; j++)
			acc[i][j] = _mm512_setzero_ps();
	size_t k = 0;
	for (; k + 16 <= kc; k += 16) {
		__m512 xv[MR];
#pragma GCC unroll 8
		for (int i = 0; i < mr; i++) {
			xv[i] = _mm512_loadu_ps(x + (size_t)i * ldx + k);
			/* keep it in a register: folded into each FMA as a memory
			 * operand (GCC 12 with -march=native does) it is loaded NR times */
			__asm__("" : "+v"(xv[i]));
		}
#pragma GCC unroll 8
		for (int j = 0; j < nr; j++) {
			__m512 wv = _mm512_loadu_ps(w + (size_t)j * ldw + k);
#pragma GCC unroll 8
			for (int i = 0; i < mr; i++)
				acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
		}
	}
	if (k < kc) {
		__mmask16 m = (__mmask16)((1u << (kc - k)) - 1);
		__m512 xv[MR];
#pragma GCC unroll 8
		for (int i = 0; i < mr; i++)
			xv[i] = _mm512_maskz_loadu_ps(m, x + (size_t)i * ldx + k);
#pragma GCC unroll 8
		for (int j = 0; j < nr; j++) {
			__m512 wv = _mm512_maskz_loadu_ps(m, w + (size_t)j * ldw + k);
#pragma GCC unroll 8
			for (int i = 0; i < mr; i++)
				acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
		}
	}
	__m512 zero = _mm512_setzero_ps();
	float bt[4] = { 0, 0, 0, 0 };
	if (bias)
		for (int j = 0; j < nr; j++)
			bt[j] = bias[j];
	__m128 bv = _mm_loadu_ps(bt);
#pragma GCC unroll 8
	for (int i = 0; i < mr; i++) {
		__m128 r = _mm_add_ps(hsum4(acc[i][0], nr > 1 ? acc[i][1] : zero, nr > 2 ? acc[i][2] : zero,
					    nr > 3 ? acc[i][3] : zero), bv);
		float *yi = y + (size_t)i * ldy;
		if (nr == 4) {
			if (add)
				r = _mm_add_ps(r, _mm_loadu_ps(yi));
			_mm_storeu_ps(yi, r);
		} else {
			float t[4];
			_mm_storeu_ps(t, r);
			for (int j = 0; j < nr; j++)
				yi[j] = add ? yi[j] + t[j] : t[j];
		}
	}
}

#define TILE_CASE(a, b)                                                      \
	case (a) * 8 + (b):                                                  \
		tile(a, b, kc, x, ldx, w, ldw, bias, y, ldy, add);           \
		break
#define TILE_ROW(a) TILE_CASE(a, 1); TILE_CASE(a, 2); TILE_CASE(a, 3); TILE_CASE(a, 4)

static TARGET void tile_any(int mr, int nr, size_t kc, const float *x, size_t ldx, const float *w, size_t ldw,
			    const float *bias, float *y, size_t ldy, int add)
{
	switch (mr * 8 + nr) {
		TILE_ROW(1);
		TILE_ROW(2);
		TILE_ROW(3);
		TILE_ROW(4);
		TILE_ROW(5);
		TILE_ROW(6);
	default:
		break;
	}
}

/* Software prefetch of the weight block that comes next, spread over the
 * tiles of the current one, so that its trip from memory overlaps
 * arithmetic instead of stalling the first tiles that read it. */
struct pf {
	const char *base;   /* first byte of the block's first row chunk */
	size_t row_bytes;   /* bytes per row chunk */
	size_t stride;      /* bytes between rows */
	size_t rows, row, off;
};

static inline TARGET void pf_step(struct pf *p, size_t lines)
{
	while (lines-- && p->row < p->rows) {
		_mm_prefetch(p->base + p->row * p->stride + p->off, _MM_HINT_T1);
		p->off += 64;
		if (p->off >= p->row_bytes) {
			p->off = 0;
			p->row++;
		}
	}
}

/* The weight block to prefetch while block (k0, n0) runs: the next in the
 * loop order k0, n0. */
static struct pf next_block(size_t N, size_t K, const float *w, size_t ldw, size_t k0, size_t n0)
{
	struct pf p = { 0 };
	if (n0 + NC < N) {
		n0 += NC;
	} else if (k0 + KC < K) {
		n0 = 0;
		k0 += KC;
	} else {
		return p;
	}
	size_t kc = K - k0 < KC ? K - k0 : KC;
	p.base = (const char *)(w + n0 * ldw + k0);
	p.row_bytes = kc * sizeof *w;
	p.stride = ldw * sizeof *w;
	p.rows = N - n0 < NC ? N - n0 : NC;
	return p;
}

static TARGET void gemm_avx512(size_t M, size_t N, size_t K, const float *x, size_t ldx, const float *w,
			       size_t ldw, const float *bias, float *y, size_t ldy, float beta)
{
	size_t m_tiles = (M + MR - 1) / MR;
	for (size_t k0 = 0; k0 < K; k0 += KC) {
		size_t kc = K - k0 < KC ? K - k0 : KC;
		int add = beta != 0.0f || k0 > 0;
		for (size_t n0 = 0; n0 < N; n0 += NC) {
			size_t nc = N - n0 < NC ? N - n0 : NC;
			struct pf next = next_block(N, K, w, ldw, k0, n0);
			size_t tiles = m_tiles * ((nc + NR - 1) / NR);
			size_t per_tile = (next.rows * ((next.row_bytes + 63) / 64) + tiles - 1) / tiles;
			for (size_t i0 = 0; i0 < M; i0 += MR) {
				int mr = M - i0 < MR ? (int)(M - i0) : MR;
				const float *xb = x + i0 * ldx + k0;
				for (size_t j0 = n0; j0 < n0 + nc; j0 += NR) {
					int nr = n0 + nc - j0 < NR ? (int)(n0 + nc - j0) : NR;
					const float *wb = w + j0 * ldw + k0;
					float *yb = y + i0 * ldy + j0;
					const float *bb = bias && k0 == 0 ? bias + j0 : NULL;
					pf_step(&next, per_tile);
					if (mr == MR && nr == NR)
						tile(MR, NR, kc, xb, ldx, wb, ldw, bb, yb, ldy, add);
					else
						tile_any(mr, nr, kc, xb, ldx, wb, ldw, bb, yb, ldy, add);
				}
			}
		}
	}
}

/* The end of a packed tile: y[mr rows, 32 columns] (=, or += when add)
 * the accumulators a0 (columns 0-15) and a1 (16-31) + bias (NULL: none),
 * under the masks m0 and m1. */
static inline TARGET __attribute__((always_inline)) void store_tile(const int mr, const __m512 *a0, const __m512 *a1,
								    const float *bias, float *y, size_t ldy,
								    int add, __mmask16 m0, __mmask16 m1)
{
	__m512 b0 = _mm512_setzero_ps(), b1 = b0;
	if (bias) {
		b0 = _mm512_maskz_loadu_ps(m0, bias);
		b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
	}
#pragma GCC unroll 16
	for (int i = 0; i < mr; i++) {
		float *yi = y + (size_t)i * ldy;
		__m512 r0 = _mm512_add_ps(a0[i], b0), r1 = _mm512_add_ps(a1[i], b1);
		if (add) {
			r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, yi));
			r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, yi + 16));
		}
		_mm512_mask_storeu_ps(yi, m0, r0);
		_mm512_mask_storeu_ps(yi + 16, m1, r1);
	}
}

/*
 * The packed kernel: y[mr rows, one panel of 32 columns] (=, or += when
 * add) x[mr, kc] times the panel's kc x 32 block, + bias on the last
 * block. 2 x mr accumulators; each step loads the panel's 32 weights of
 * one k once and broadcasts one x value per row. m0 and m1 mask the
 * panel's two halves to the columns this call owns; fetch: prefetch the
 * panel (PPF).
 */
static inline TARGET __attribute__((always_inline)) void ptile(const int mr, size_t kc, const float *x, size_t ldx,
							       const float *p, const float *bias, float *y,
							       size_t ldy, int add, int fetch, __mmask16 m0, __mmask16 m1)
{
	__m512 a0[PMR], a1[PMR];
#pragma GCC unroll 16
	for (int i = 0; i < mr; i++)
		a0[i] = a1[i] = _mm512_setzero_ps();
	for (size_t k = 0; k < kc; k++) {
		__m512 w0 = _mm512_load_ps(p + k * PNR), w1 = _mm512_load_ps(p + k * PNR + 16);
		if (fetch && k + PPF < kc) {
			_mm_prefetch((const char *)(p + (k + PPF) * PNR), _MM_HINT_T0);
			_mm_prefetch((const char *)(p + (k + PPF) * PNR + 16), _MM_HINT_T0);
		}
#pragma GCC unroll 16
		for (int i = 0; i < mr; i++) {
			__m512 b = _mm512_set1_ps(x[(size_t)i * ldx + k]);
			a0[i] = _mm512_fmadd_ps(b, w0, a0[i]);
			a1[i] = _mm512_fmadd_ps(b, w1, a1[i]);
		}
	}
	store_tile(mr, a0, a1, bias, y, ldy, add, m0, m1);
}

#define PTILE_CASE(n)                                                        \
	case n:                                                              \
		ptile(n, kc, x, ldx, p, bias, y, ldy, add, fetch, m0, m1);   \
		break

static TARGET void ptile_any(int mr, size_t kc, const float *x, size_t ldx, const float *p, const float *bias,
			     float *y, size_t ldy, int add, int fetch, __mmask16 m0, __mmask16 m1)
{
	switch (mr) {
		PTILE_CASE(1); PTILE_CASE(2); PTILE_CASE(3); PTILE_CASE(4);
		PTILE_CASE(5); PTILE_CASE(6); PTILE_CASE(7); PTILE_CASE(8);
		PTILE_CASE(9); PTILE_CASE(10); PTILE_CASE(11); PTILE_CASE(12);
	default:
		break;
	}
}

static __mmask16 lanes(size_t lo, size_t hi)
{
	unsigned m = 0;
	for (size_t j = lo; j < hi; j++)
		m |= 1u << j;
	return (__mmask16)m;
}

/* ---- AVX-512 BF16: vdpbf16ps on bf16 panels ------------------------------- */

#define BTARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* As ptile, with kq pairs of k: x holds bf16 pairs, p a bf16 panel's block. */
static inline BTARGET __attribute__((always_inline)) void btile(const int mr, size_t kq, const uint16_t *x,
								size_t ldx, const uint16_t *p, const float *bias,
								float *y, size_t ldy, int add, int fetch,
								__mmask16 m0, __mmask16 m1)
{
	__m512 a0[PMR], a1[PMR];
#pragma GCC unroll 16
	for (int i = 0; i < mr; i++)
		a0[i] = a1[i] = _mm512_setzero_ps();
	for (size_t q = 0; q < kq; q++) {
		__m512bh w0 = (__m512bh)_mm512_load_si512(p + q * 2 * PNR);
		__m512bh w1 = (__m512bh)_mm512_load_si512(p + q * 2 * PNR + PNR);
		if (fetch && q + PPF < kq) {
			_mm_prefetch((const char *)(p + (q + PPF) * 2 * PNR), _MM_HINT_T0);
			_mm_prefetch((const char *)(p + (q + PPF) * 2 * PNR + PNR), _MM_HINT_T0);
		}
#pragma GCC unroll 16
		for (int i = 0; i < mr; i++) {
			int32_t pair;
			memcpy(&pair, x + (size_t)i * ldx + 2 * q, sizeof pair);
			__m512bh b = (__m512bh)_mm512_set1_epi32(pair);
			a0[i] = _mm512_dpbf16_ps(a0[i], b, w0);
			a1[i] = _mm512_dpbf16_ps(a1[i], b, w1);
		}
	}
	store_tile(mr, a0, a1, bias, y, ldy, add, m0, m1);
}

#define BTILE_CASE(n)                                                        \
	case n:                                                              \
		btile(n, kq, x, ldx, p, bias, y, ldy, add, fetch, m0, m1);   \
		break

static BTARGET void btile_any(int mr, size_t kq, const uint16_t *x, size_t ldx, const uint16_t *p,
			      const float *bias, float *y, size_t ldy, int add, int fetch, __mmask16 m0, __mmask16 m1)
{
	switch (mr) {
		BTILE_CASE(1); BTILE_CASE(2); BTILE_CASE(3); BTILE_CASE(4);
		BTILE_CASE(5); BTILE_CASE(6); BTILE_CASE(7); BTILE_CASE(8);
		BTILE_CASE(9); BTILE_CASE(10); BTILE_CASE(11); BTILE_CASE(12);
	default:
		break;
	}
}

/*
 * The packed products' loops, over float32 panels (bf16 = 0: x is M rows
 * of K floats) or bf16 ones (x: rows of bf16 pairs, K taken as
 * clip_bf16_row(K)): K in chunks of PKC, the panels that hold [n0, n1)
 * with their columns masked, and in each tiles of balanced heights, at
 * most PMR rows.
 */
static TARGET void packed_loops(int bf16, size_t M, size_t K, const void *x, size_t ldx, const void *p,
				const float *bias, float *y, size_t ldy, size_t n0, size_t n1, float beta)
{
	size_t tiles = (M + PMR - 1) / PMR, Kp = bf16 ? clip_bf16_row(K) : K;
	for (size_t k0 = 0; k0 < Kp; k0 += PKC) {
		size_t kc = Kp - k0 < PKC ? Kp - k0 : PKC;
		int add = beta != 0.0f || k0 > 0, last = k0 + kc == Kp;
		for (size_t c = n0 / PNR * PNR; c < n1; c += PNR) {
			/* the columns of this panel in [n0, n1), relative to c */
			size_t lo = n0 > c ? n0 - c : 0, hi = n1 - c < PNR ? n1 - c : PNR;
			__mmask16 m0 = lanes(lo < 16 ? lo : 16, hi < 16 ? hi : 16);
			__mmask16 m1 = lanes(lo > 16 ? lo - 16 : 0, hi > 16 ? hi - 16 : 0);
			size_t pb = c * Kp + k0 * PNR;   /* the block's first element */
			const float *bb = bias && last ? bias + c : NULL;
			for (size_t t = 0, i0 = 0; t < tiles; t++) {
				size_t i1 = M * (t + 1) / tiles, xo = i0 * ldx + k0;
				float *yt = y + i0 * ldy + c;
				if (bf16)
					btile_any((int)(i1 - i0), kc / 2, (const uint16_t *)x + xo, ldx,
						  (const uint16_t *)p + pb, bb, yt, ldy, add, t == 0, m0, m1);
				else
					ptile_any((int)(i1 - i0), kc, (const float *)x + xo, ldx, (const float *)p + pb, bb,
						  yt, ldy, add, t == 0, m0, m1);
				i0 = i1;
			}
		}
	}
}

#endif

/* ---- packing, bf16 rounding, dispatch ------------------------------------- */

size_t clip_gemm_panel(enum clip_kernel kernel)
{
	return kernel == CLIP_KERNEL_AVX2 ? CLIP_GEMM_PANEL_AVX2 : CLIP_GEMM_PANEL;
}

size_t clip_gemm_packed_floats(enum clip_kernel kernel, size_t N, size_t K)
{
	size_t pn = clip_gemm_panel(kernel);
	return (N + pn - 1) / pn * pn * K;
}

void clip_gemm_pack(enum clip_kernel kernel, size_t N, size_t K, const float *w, size_t ldw, float *p)
{
	size_t pn = clip_gemm_panel(kernel);
	for (size_t c = 0; c < N; c += pn) {
		float *panel = p + c * K;
		for (size_t j = 0; j < pn; j++) {
			if (c + j < N) {
				const float *row = w + (c + j) * ldw;
				for (size_t k = 0; k < K; k++)
					panel[k * pn + j] = row[k];
			} else {
				for (size_t k = 0; k < K; k++)
					panel[k * pn + j] = 0.0f;
			}
		}
	}
}

void clip_gemm_packed(enum clip_kernel kernel, size_t M, size_t K, const float *x, size_t ldx, const float *p,
		      const float *bias, float *y, size_t ldy, size_t n0, size_t n1, float beta)
{
	if (M == 0 || n1 <= n0)
		return;
#if HAVE_X86_KERNELS
	if (kernel >= CLIP_KERNEL_AVX512) {
		packed_loops(0, M, K, x, ldx, p, bias, y, ldy, n0, n1, beta);
		return;
	}
	if (kernel == CLIP_KERNEL_AVX2) {
		clip_gemm_packed_avx2(M, K, x, ldx, p, bias, y, ldy, n0, n1, beta);
		return;
	}
#endif
	size_t pn = clip_gemm_panel(kernel);
	for (size_t r = 0; r < M; r++) {
		for (size_t j = n0; j < n1; j++) {
			const float *col = p + j / pn * pn * K + j % pn;
			float s = 0.0f;
			for (size_t k = 0; k < K; k++)
				s += x[r * ldx + k] * col[k * pn];
			float *yr = y + r * ldy + j;
			*yr = (beta != 0.0f ? *yr : 0.0f) + s + (bias ? bias[j] : 0.0f);
		}
	}
}

static inline uint16_t bf16_of(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)(u >> 16 | 0x40);   /* a NaN stays a (quiet) NaN */
	u += 0x7fffu + (u >> 16 & 1);            /* to nearest, ties to even */
	return (uint16_t)(u >> 16);
}

/* bf16_of on 16 lanes at a time, bit for bit (the integer rounding
 * above, not the conversion instruction, which flushes subnormals). */
static BTARGET void bf16_round_avx512(const float *x, size_t n, uint16_t *out)
{
	const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
	const __m512i half = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
	const __m512i quiet = _mm512_set1_epi32(0x40);
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512i u = _mm512_loadu_si512((const void *)(x + i));
		__mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
		__m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
		__m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(half, lsb)), 16);
		r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), quiet);
		_mm256_storeu_si256((__m256i *)(void *)(out + i), _mm512_cvtepi32_epi16(r));
	}
	for (; i < n; i++)
		out[i] = bf16_of(x[i]);
}

void clip_bf16_round(const float *x, size_t n, uint16_t *out)
{
	if (__builtin_cpu_supports("avx512f")) {
		bf16_round_avx512(x, n, out);
		return;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = bf16_of(x[i]);
}

void clip_bf16_round_rows(size_t M, size_t K, const float *x, size_t ldx, uint16_t *out, size_t ldo)
{
	for (size_t r = 0; r < M; r++) {
		clip_bf16_round(x + r * ldx, K, out + r * ldo);
		if (K % 2)
			out[r * ldo + K] = 0;
	}
}

size_t clip_gemm_packed_bf16_elems(size_t N, size_t K)
{
	return (N + PNR - 1) / PNR * PNR * clip_bf16_row(K);
}

void clip_gemm_pack_bf16(size_t N, size_t K, const float *w, const uint16_t *wb, size_t ldw, uint16_t *p)
{
	size_t Kp = clip_bf16_row(K);
	for (size_t c = 0; c < N; c += PNR) {
		uint16_t *panel = p + c * Kp;
		for (size_t j = 0; j < PNR; j++) {
			for (size_t k = 0; k < Kp; k++) {
				uint16_t v = 0;
				if (c + j < N && k < K)
					v = wb ? wb[(c + j) * ldw + k] : bf16_of(w[(c + j) * ldw + k]);
				panel[(k / 2 * PNR + j) * 2 + k % 2] = v;
			}
		}
	}
}

void clip_gemm_packed_bf16(size_t M, size_t K, const uint16_t *x, size_t ldx, const uint16_t *p,
			   const float *bias, float *y, size_t ldy, size_t n0, size_t n1, float beta)
{
	if (M == 0 || n1 <= n0)
		return;
#if HAVE_X86_KERNELS
	packed_loops(1, M, K, x, ldx, p, bias, y, ldy, n0, n1, beta);
#else
	(void)K, (void)x, (void)ldx, (void)p, (void)bias, (void)y, (void)ldy, (void)beta;
#endif
}

enum clip_kernel clip_gemm_detect(void)
{
#if HAVE_X86_KERNELS
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw")
			       ? CLIP_KERNEL_AVX512_BF16 : CLIP_KERNEL_AVX512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return CLIP_KERNEL_AVX2;
#endif
	return CLIP_KERNEL_BLAS;
}

static const char *const kernel_names[] = { "openblas", "avx2", "avx512", "avx512-bf16" };

const char *clip_kernel_name(enum clip_kernel k)
{
	return (unsigned)k < sizeof kernel_names / sizeof kernel_names[0] ? kernel_names[k] : "unknown";
}

int clip_kernel_parse(const char *s, enum clip_kernel *out)
{
	if (!s)
		return -1;
	for (unsigned i = 0; i < sizeof kernel_names / sizeof kernel_names[0]; i++)
		if (!strcmp(s, kernel_names[i])) {
			*out = (enum clip_kernel)i;
			return 0;
		}
	if (!strcmp(s, "blas")) {
		*out = CLIP_KERNEL_BLAS;
		return 0;
	}
	return -1;
}

void clip_gemm_tn(enum clip_kernel kernel, size_t M, size_t N, size_t K, const float *x, size_t ldx,
		  const float *w, size_t ldw, const float *bias, float *y, size_t ldy, float beta)
{
	if (M == 0 || N == 0)
		return;
#if HAVE_X86_KERNELS
	if (M <= NATIVE_MAX_ROWS && kernel >= CLIP_KERNEL_AVX512) {
		gemm_avx512(M, N, K, x, ldx, w, ldw, bias, y, ldy, beta);
		return;
	}
#else
	(void)kernel;
#endif
	/* the bias goes in first and the GEMM adds to it (with beta 1
	 * OpenBLAS skips its own pass over y) */
	if (bias) {
		for (size_t r = 0; r < M; r++) {
			float *yr = y + r * ldy;
			if (beta == 0.0f)
				memcpy(yr, bias, N * sizeof *yr);
			else
				cblas_saxpy((int)N, 1.0f, bias, 1, yr, 1);
		}
		beta = 1.0f;
	}
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, x, (int)ldx, w,
		    (int)ldw, beta, y, (int)ldy);
}
