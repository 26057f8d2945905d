/*
 * gemm_avx2.c - clip_gemm_packed's AVX2 + FMA kernel (gemm.h), for CPUs
 * without AVX-512.
 *
 * A translation unit of its own, compiled with -mavx2 -mfma -mno-avx512f
 * whatever the build's -march: what runs here when CLIPD_CPU=avx2 forces it
 * on an AVX-512 machine is the instruction stream an AVX2-only CPU runs
 * (16 vector registers, VEX encodings), not AVX-512 code that only looks
 * like it. Called only where clip_gemm_detect found AVX2 and FMA.
 *
 * The kernel reads panels of 16 columns (CLIP_GEMM_PANEL_AVX2: two 8-lane
 * vectors, one cache line, per step of k; clip_gemm_pack lays them out for
 * this kernel), in tiles of up to AMR = 6 rows: 12 accumulators, 2 weight
 * vectors and a broadcast of the 16 registers; each step of k loads two
 * weight vectors and six x values for twelve multiply-adds, the shape of
 * OpenBLAS's own Haswell kernel, without its copy of the weights on every
 * call. The first tile of each panel, which brings the panel in from
 * memory, asks for its lines APF steps ahead itself rather than leave it
 * to the hardware prefetcher (the tiles after it find the panel in L2): in
 * a timing outside the tree, 11% less time for one image's 50 rows and 29%
 * for a text query's 10 than no prefetch, and at 400 rows 3% less than
 * prefetching in every tile (five runs of seven).
 *
 * Rows go in blocks of ABT tiles, each block against every panel of the
 * call's columns before the next block: a block's x then comes from L2
 * for all but the first panel, where taking every tile against one panel
 * before the next streamed all of x from L3 or memory again for each
 * panel (1.2 MB at K = 768 and 400 rows, 4.9 MB at 3072; L2 is 1 MB on
 * this machine). In the same timing, up to 8% less time at 400 rows
 * (median 3%, twelve runs in the machine's quiet and busy spells), and
 * 1% more at 50, none at 10.
 */
#include "gemm.h"

#if defined(__x86_64__) && defined(__GNUC__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#define PNR CLIP_GEMM_PANEL_AVX2
#define AMR 6     /* rows of a tile */
#define AKC 4096  /* K per chunk (as the AVX-512 kernel's: one pass over any CLIP's K) */
#define APF 64    /* steps of k the prefetch runs ahead */
#define ABT 8     /* tiles of a row block: 48 rows, at most 576 KiB of x at K = 3072 (L2) */

/* Lanes [lo, hi) of 8 as a maskload/maskstore mask. */
static inline __m256i alanes(size_t lo, size_t hi)
{
	int m[8];
	for (size_t j = 0; j < 8; j++)
		m[j] = j >= lo && j < hi ? -1 : 0;
	return _mm256_loadu_si256((const __m256i *)(const void *)m);
}

/*
 * y[mr rows, 16 columns] (=, or += when add) x[mr, kc] times a panel's
 * kc x 16 block (p: its first weight), + bias on the last block. full:
 * all 16 columns are the caller's (plain loads and stores); otherwise m0
 * and m1 mask the two 8-column halves. fetch: prefetch the panel APF
 * steps ahead.
 */
static inline __attribute__((always_inline)) void atile(const int mr, size_t kc, const float *x, size_t ldx,
							const float *p, const float *bias, float *y, size_t ldy,
							int add, int full, int fetch, __m256i m0, __m256i m1)
{
	__m256 a0[AMR], a1[AMR];
#pragma GCC unroll 8
	for (int i = 0; i < mr; i++)
		a0[i] = a1[i] = _mm256_setzero_ps();
	for (size_t k = 0; k < kc; k++) {
		__m256 w0 = _mm256_load_ps(p + k * PNR), w1 = _mm256_load_ps(p + k * PNR + 8);
		if (fetch && k + APF < kc)
			_mm_prefetch((const char *)(p + (k + APF) * PNR), _MM_HINT_T0);
#pragma GCC unroll 8
		for (int i = 0; i < mr; i++) {
			__m256 b = _mm256_broadcast_ss(x + (size_t)i * ldx + k);
			a0[i] = _mm256_fmadd_ps(b, w0, a0[i]);
			a1[i] = _mm256_fmadd_ps(b, w1, a1[i]);
		}
	}
	__m256 b0 = _mm256_setzero_ps(), b1 = b0;
	if (bias) {
		b0 = full ? _mm256_loadu_ps(bias) : _mm256_maskload_ps(bias, m0);
		b1 = full ? _mm256_loadu_ps(bias + 8) : _mm256_maskload_ps(bias + 8, m1);
	}
#pragma GCC unroll 8
	for (int i = 0; i < mr; i++) {
		float *yi = y + (size_t)i * ldy;
		__m256 r0 = _mm256_add_ps(a0[i], b0), r1 = _mm256_add_ps(a1[i], b1);
		if (full) {
			if (add) {
				r0 = _mm256_add_ps(r0, _mm256_loadu_ps(yi));
				r1 = _mm256_add_ps(r1, _mm256_loadu_ps(yi + 8));
			}
			_mm256_storeu_ps(yi, r0);
			_mm256_storeu_ps(yi + 8, r1);
		} else {
			if (add) {
				r0 = _mm256_add_ps(r0, _mm256_maskload_ps(yi, m0));
				r1 = _mm256_add_ps(r1, _mm256_maskload_ps(yi + 8, m1));
			}
			_mm256_maskstore_ps(yi, m0, r0);
			_mm256_maskstore_ps(yi + 8, m1, r1);
		}
	}
}

#define ATILE_CASE(n)                                                                    \
	case n:                                                                          \
		if (full)                                                                \
			atile(n, kc, x, ldx, p, bias, y, ldy, add, 1, fetch, m0, m1);    \
		else                                                                     \
			atile(n, kc, x, ldx, p, bias, y, ldy, add, 0, fetch, m0, m1);    \
		break

static void atile_any(int mr, size_t kc, const float *x, size_t ldx, const float *p, const float *bias, float *y,
		      size_t ldy, int add, int full, int fetch, __m256i m0, __m256i m1)
{
	switch (mr) {
		ATILE_CASE(1); ATILE_CASE(2); ATILE_CASE(3);
		ATILE_CASE(4); ATILE_CASE(5); ATILE_CASE(6);
	default:
		break;
	}
}

void clip_gemm_packed_avx2(size_t M, size_t K, const float *x, size_t ldx, const float *p, const float *bias,
			   float *y, size_t ldy, size_t n0, size_t n1, float beta)
{
	size_t tiles = (M + AMR - 1) / AMR;
	for (size_t k0 = 0; k0 < K; k0 += AKC) {
		size_t kc = K - k0 < AKC ? K - k0 : AKC;
		int add = beta != 0.0f || k0 > 0, last = k0 + kc == K;
		for (size_t t0 = 0; t0 < tiles; t0 += ABT) {
			size_t t1 = t0 + ABT < tiles ? t0 + ABT : tiles;
			for (size_t c = n0 / PNR * PNR; c < n1; c += PNR) {
				/* a panel: columns [c, c + 16), of which [lo, hi) are ours */
				size_t lo = n0 > c ? n0 - c : 0, hi = n1 - c < PNR ? n1 - c : PNR;
				__m256i m0 = alanes(lo < 8 ? lo : 8, hi < 8 ? hi : 8);
				__m256i m1 = alanes(lo > 8 ? lo - 8 : 0, hi > 8 ? hi - 8 : 0);
				const float *pb = p + (c * K + k0 * PNR);
				const float *bb = bias && last ? bias + c : NULL;
				for (size_t t = t0; t < t1; t++) {
					size_t i0 = M * t / tiles, i1 = M * (t + 1) / tiles;
					atile_any((int)(i1 - i0), kc, x + i0 * ldx + k0, ldx, pb, bb, y + i0 * ldy + c,
						  ldy, add, lo == 0 && hi == PNR, t == 0, m0, m1);
				}
			}
		}
	}
}

#endif
