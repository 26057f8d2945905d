/*
 * clip_gemm_tn and clip_gemm_packed (after clip_gemm_pack) against a
 * double-precision product: every tile edge (M and N not multiples of the
 * tile or panel), K not a multiple of the vector width or of the K chunk,
 * row strides wider than the rows, pointers off 64-byte alignment
 * (mmapped safetensors are), beta 0 and 1, with and without a bias, the
 * padding between rows of y left alone, and for the packed product column
 * ranges that start and end inside panels, with the columns outside them
 * untouched. Each kernel this CPU runs is tested (AVX-512, AVX2 + FMA, the
 * portable fallback), and the bf16 kernel (clip_gemm_packed_bf16) against
 * the double-precision product of the bf16-rounded operands, from float32
 * and from bf16 weights, odd K included.
 */
#include "harness.h"

#include <stdint.h>

#include "gemm.h"

/* The kernels the product under test uses (check_product). */
static enum clip_kernel kernel;
#define MODE_TN 0
#define MODE_PACKED 1
#define MODE_BF16 2

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((double)(rng >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
}

#define SENTINEL 12345.0f

static float bf16_value(float f)
{
	uint16_t h;
	clip_bf16_round(&f, 1, &h);
	uint32_t u = (uint32_t)h << 16;
	memcpy(&f, &u, sizeof f);
	return f;
}

/* One product of the given shape, columns [n0, n1) (all of them for
 * clip_gemm_tn), with `kernel`; 0 if every output is within tolerance and
 * every other value of y, padding included, is untouched. */
static int check_product(int mode, size_t M, size_t N, size_t K, int beta, int with_bias, size_t off, size_t n0,
			 size_t n1)
{
	size_t ldx = K + 3, ldw = K + 1, ldy = N + 2;
	float *xs = malloc((M * ldx + off) * sizeof *xs);
	float *ws = malloc((N * ldw + off) * sizeof *ws);
	float *y = malloc(M * ldy * sizeof *y), *y0 = malloc(M * ldy * sizeof *y0);
	float *bias = malloc(N * sizeof *bias);
	if (!xs || !ws || !y || !y0 || !bias) {
		HARNESS_FAIL("out of memory");
		return -1;
	}
	float *x = xs + off, *w = ws + off;   /* off floats past the allocation's alignment */
	for (size_t i = 0; i < M * ldx; i++)
		x[i] = frand();
	for (size_t i = 0; i < N * ldw; i++)
		w[i] = frand();
	for (size_t j = 0; j < N; j++)
		bias[j] = frand();
	for (size_t r = 0; r < M; r++)
		for (size_t j = 0; j < ldy; j++)
			y[r * ldy + j] = y0[r * ldy + j] = j < N ? frand() : SENTINEL;
	if (mode == MODE_PACKED) {
		float *p = aligned_alloc(64, clip_gemm_packed_floats(kernel, N, K) * sizeof *p);
		if (!p) {
			HARNESS_FAIL("out of memory");
			return -1;
		}
		clip_gemm_pack(kernel, N, K, w, ldw, p);
		clip_gemm_packed(kernel, M, K, x, ldx, p, with_bias ? bias : NULL, y, ldy, n0, n1, beta ? 1.0f : 0.0f);
		free(p);
	} else if (mode == MODE_BF16) {
		/* x in bf16 rows; the weights packed from float32 (rounded) and,
		 * for odd M, from their bf16 values: the same panels */
		size_t Kb = clip_bf16_row(K), ldxb = Kb + 2, elems = clip_gemm_packed_bf16_elems(N, K);
		uint16_t *xb = malloc(M * ldxb * sizeof *xb), *wb = malloc(N * ldw * sizeof *wb);
		uint16_t *p = aligned_alloc(64, elems * sizeof *p), *p2 = aligned_alloc(64, elems * sizeof *p2);
		if (!xb || !wb || !p || !p2) {
			HARNESS_FAIL("out of memory");
			return -1;
		}
		for (size_t i = 0; i < M * ldxb; i++)
			xb[i] = 0x7fc0;   /* NaN: the pad must be written, the gap never read */
		clip_bf16_round_rows(M, K, x, ldx, xb, ldxb);
		clip_bf16_round(w, N * ldw, wb);
		clip_gemm_pack_bf16(N, K, w, NULL, ldw, p);
		clip_gemm_pack_bf16(N, K, NULL, wb, ldw, p2);
		if (memcmp(p, p2, elems * sizeof *p) != 0)
			HARNESS_FAIL("N=%zu K=%zu: packing bf16 weights differs from packing their floats", N, K);
		clip_gemm_packed_bf16(M, K, xb, ldxb, M % 2 ? p2 : p, with_bias ? bias : NULL, y, ldy, n0, n1,
				      beta ? 1.0f : 0.0f);
		free(xb);
		free(wb);
		free(p);
		free(p2);
		/* the reference below multiplies the rounded values */
		for (size_t i = 0; i < M * ldx; i++)
			x[i] = bf16_value(x[i]);
		for (size_t i = 0; i < N * ldw; i++)
			w[i] = bf16_value(w[i]);
	} else {
		clip_gemm_tn(kernel, M, N, K, x, ldx, w, ldw, with_bias ? bias : NULL, y, ldy, beta ? 1.0f : 0.0f);
	}
	int bad = 0;
	for (size_t r = 0; r < M && !bad; r++) {
		for (size_t j = 0; j < N; j++) {
			if (j < n0 || j >= n1) {
				if (y[r * ldy + j] != y0[r * ldy + j]) {
					HARNESS_FAIL("M=%zu N=%zu K=%zu [%zu, %zu): column %zu of row %zu was written",
						     M, N, K, n0, n1, j, r);
					bad = 1;
					break;
				}
				continue;
			}
			double ref = beta ? y0[r * ldy + j] : 0.0, mag = fabs(ref);
			if (with_bias) {
				ref += bias[j];
				mag += fabs(bias[j]);
			}
			for (size_t k = 0; k < K; k++) {
				double p = (double)x[r * ldx + k] * w[j * ldw + k];
				ref += p;
				mag += fabs(p);
			}
			double got = y[r * ldy + j];
			if (!(fabs(got - ref) <= 1e-6 * mag + 1e-6)) {
				HARNESS_FAIL("%s %s M=%zu N=%zu K=%zu beta=%d bias=%d off=%zu: y[%zu,%zu] = %.9g, "
					     "expected %.9g", clip_kernel_name(kernel),
					     mode == MODE_PACKED ? "packed" : mode == MODE_BF16 ? "bf16" : "tn", M, N, K,
					     beta, with_bias, off, r, j, got, ref);
				bad = 1;
				break;
			}
		}
		for (size_t j = N; j < ldy; j++) {
			if (y[r * ldy + j] != SENTINEL) {
				HARNESS_FAIL("M=%zu N=%zu K=%zu: the padding of row %zu was written", M, N, K, r);
				bad = 1;
				break;
			}
		}
	}
	free(xs);
	free(ws);
	free(y);
	free(y0);
	free(bias);
	return bad;
}

static int check_case(size_t M, size_t N, size_t K, int beta, int with_bias, size_t off)
{
	return check_product(MODE_TN, M, N, K, beta, with_bias, off, 0, N);
}

static int packed_mode = MODE_PACKED;

static int check_packed(size_t M, size_t N, size_t K, int beta, int with_bias, size_t n0, size_t n1)
{
	return check_product(packed_mode, M, N, K, beta, with_bias, (M + K) % 3, n0, n1);
}

/* The best kernel is the CPU's: the one tested first. */
static void test_kernel_detection(void)
{
	enum clip_kernel k;
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	enum clip_kernel want = !__builtin_cpu_supports("avx512f")
					? __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? CLIP_KERNEL_AVX2
													   : CLIP_KERNEL_BLAS
				: __builtin_cpu_supports("avx512bf16") ? CLIP_KERNEL_AVX512_BF16 : CLIP_KERNEL_AVX512;
	CHECK_EQ_INT(clip_gemm_detect(), want);
#else
	CHECK_EQ_INT(clip_gemm_detect(), CLIP_KERNEL_BLAS);
#endif
	CHECK_EQ_STR(clip_kernel_name(CLIP_KERNEL_AVX512_BF16), "avx512-bf16");
	CHECK(clip_kernel_parse("avx2", &k) == 0 && k == CLIP_KERNEL_AVX2);
	CHECK(clip_kernel_parse("openblas", &k) == 0 && k == CLIP_KERNEL_BLAS);
	CHECK(clip_kernel_parse("avx512", &k) == 0 && k == CLIP_KERNEL_AVX512);
	CHECK(clip_kernel_parse("sse2", &k) == -1);
}

/* Round to nearest, ties to even; NaN stays NaN; the pad of odd rows is zero. */
static void test_bf16_rounding(void)
{
	const uint32_t in[] = { 0x3f800000u, 0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x3f807fffu, 0xbf808001u,
				0x7f7fffffu, 0x7fc00001u, 0x00000001u };
	const uint16_t want[] = { 0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x3f80, 0xbf81, 0x7f80, 0x7fc0, 0x0000 };
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
		float f;
		uint16_t h;
		memcpy(&f, &in[i], sizeof f);
		clip_bf16_round(&f, 1, &h);
		if (h != want[i])
			HARNESS_FAIL("bf16(0x%08x) = 0x%04x, expected 0x%04x", in[i], h, want[i]);
	}
	/* Many at once (16 lanes at a time where the CPU has AVX-512, then
	 * the rest one by one): the same bits as one at a time. */
	enum { NV = 53 };
	uint32_t bits[NV];
	float v[NV];
	uint16_t many[NV];
	uint64_t seed = 12345;
	for (size_t i = 0; i < NV; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		bits[i] = i % 3 == 0 ? in[(i / 3) % (sizeof in / sizeof in[0])] : (uint32_t)(seed >> 32);
		memcpy(&v[i], &bits[i], sizeof v[i]);
	}
	clip_bf16_round(v, NV, many);
	for (size_t i = 0; i < NV; i++) {
		uint16_t one;
		clip_bf16_round(&v[i], 1, &one);
		if (many[i] != one)
			HARNESS_FAIL("bf16(0x%08x) at %zu of %d = 0x%04x, one at a time 0x%04x", bits[i], i, NV,
				     many[i], one);
		if (i % 3 == 0 && i / 3 < sizeof in / sizeof in[0] && many[i] != want[i / 3])
			HARNESS_FAIL("bf16(0x%08x) = 0x%04x, expected 0x%04x", bits[i], many[i], want[i / 3]);
	}
	float x[6] = { 1, 2, 3, 4, 5, 6 };
	uint16_t out[8] = { 9, 9, 9, 9, 9, 9, 9, 9 };
	clip_bf16_round_rows(2, 3, x, 3, out, 4);
	CHECK(out[0] == 0x3f80 && out[2] == 0x4040 && out[3] == 0 && out[4] == 0x4080 && out[7] == 0);
	CHECK_EQ_INT(clip_bf16_row(3), 4);
	CHECK_EQ_INT(clip_bf16_row(768), 768);
}

static void test_tile_edges(void)
{
	static const size_t Ms[] = { 1, 2, 5, 6, 7, 11, 12, 13, 25 };
	static const size_t Ns[] = { 1, 3, 4, 5, 8, 9, 67 };
	static const size_t Ks[] = { 1, 15, 16, 17, 64 };
	for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
		for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++)
			for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++)
				if (check_case(Ms[a], Ns[b], Ks[c], (int)((a + b + c) % 2), (int)((a + c) % 2),
					       (a + b) % 3))
					return;
}

/* K past one chunk of the kernel's K loop (768), with a ragged end. */
static void test_long_k(void)
{
	static const size_t Ks[] = { 511, 767, 768, 769, 1100, 3072 };
	for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++) {
		if (check_case(13, 21, Ks[c], 0, 1, 1) || check_case(6, 4, Ks[c], 1, 1, 0)
		    || check_case(7, 130, Ks[c], 1, 0, 2))
			return;
	}
}

/* Shapes of a text batch (the kernel's use), and rows past its limit (BLAS). */
static void test_model_shapes(void)
{
	CHECK(check_case(97, 256, 512, 0, 1, 1) == 0);
	CHECK(check_case(60, 128, 2048, 1, 1, 3) == 0);
	CHECK(check_case(160, 70, 96, 1, 1, 0) == 0);
	CHECK(check_case(161, 70, 96, 0, 1, 1) == 0);
	CHECK(check_case(400, 33, 80, 1, 0, 0) == 0);
}

/* Every tile height (1 to 12 rows and balanced splits of more), panel
 * edges, ragged K, whole and partial column ranges. */
static void test_packed_edges(void)
{
	static const size_t Ms[] = { 1, 2, 7, 12, 13, 25, 50 };
	static const size_t Ns[] = { 1, 16, 17, 32, 33, 70 };
	static const size_t Ks[] = { 1, 9, 255, 256, 257, 600 };
	for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
		for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++)
			for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++) {
				size_t M = Ms[a], N = Ns[b], K = Ks[c];
				int beta = (int)((a + b + c) % 2), bias = (int)((a + c) % 2);
				if (check_packed(M, N, K, beta, bias, 0, N) ||
				    check_packed(M, N, K, !beta, !bias, N / 3, N - N / 4))
					return;
			}
}

/* Shapes of the model's layers, split between two threads at 32 columns
 * (the forward pass's split) and elsewhere. */
static void test_packed_model_shapes(void)
{
	CHECK(check_packed(400, 768, 768, 1, 1, 0, 384) == 0);
	CHECK(check_packed(400, 768, 768, 0, 1, 384, 768) == 0);
	CHECK(check_packed(11, 256, 1024, 1, 1, 0, 256) == 0);
	CHECK(check_packed(49, 96, 3072, 1, 0, 40, 85) == 0);
	CHECK(check_packed(170, 64, 300, 0, 1, 5, 64) == 0);
}

/* K past the kernel's chunk (4096), ragged, with y accumulated across chunks. */
static void test_packed_long_k(void)
{
	static const size_t Ks[] = { 4095, 4096, 4097, 9000 };
	for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++)
		if (check_packed(13, 40, Ks[c], 1, 1, 0, 40) || check_packed(3, 33, Ks[c], 0, 1, 1, 30))
			return;
}

/* Each kernel's panels as gemm.h lays them out: panel c of width P holds
 * w[c + j][k] at [k][j], the last one zero-padded; 16 columns for AVX2,
 * 32 for AVX-512 (and for BLAS, whose portable loop reads them). */
static void test_packed_layout(void)
{
	enum { N = 37, K = 5, LDW = 7 };
	static const struct {
		enum clip_kernel kernel;
		size_t panel;
	} ks[] = { { CLIP_KERNEL_BLAS, 32 }, { CLIP_KERNEL_AVX2, 16 }, { CLIP_KERNEL_AVX512, 32 } };
	float w[N * LDW];
	for (size_t i = 0; i < N * LDW; i++)
		w[i] = (float)i + 1.0f;
	for (size_t t = 0; t < sizeof ks / sizeof *ks; t++) {
		size_t P = ks[t].panel, panels = (N + P - 1) / P;
		CHECK(clip_gemm_panel(ks[t].kernel) == P);
		CHECK(clip_gemm_packed_floats(ks[t].kernel, N, K) == panels * P * K);
		float *p = aligned_alloc(64, (panels * P * K * sizeof *p + 63) / 64 * 64);
		if (!p) {
			HARNESS_FAIL("out of memory");
			return;
		}
		clip_gemm_pack(ks[t].kernel, N, K, w, LDW, p);
		int bad = 0;
		for (size_t n = 0; n < panels * P; n++)
			for (size_t k = 0; k < K; k++)
				bad += p[n / P * P * K + k * P + n % P] != (n < N ? w[n * LDW + k] : 0.0f);
		if (bad)
			HARNESS_FAIL("%s: %d floats out of place", clip_kernel_name(ks[t].kernel), bad);
		free(p);
	}
}

static void test_empty_is_a_no_op(void)
{
	float y[4] = { 1, 2, 3, 4 };
	clip_gemm_tn(clip_gemm_detect(), 0, 4, 8, NULL, 8, NULL, 8, NULL, y, 4, 0.0f);
	clip_gemm_tn(clip_gemm_detect(), 1, 0, 8, NULL, 8, NULL, 8, NULL, y, 4, 0.0f);
	CHECK(y[0] == 1 && y[3] == 4);
}

/* The products with every kernel the CPU runs: clip_gemm_tn has its own
 * tiles from AVX-512 up (BLAS below), clip_gemm_packed a kernel for
 * AVX2, one for AVX-512 and a portable loop. */
static void test_every_kernel(void)
{
	enum clip_kernel best = clip_gemm_detect();
	for (int k = CLIP_KERNEL_BLAS; k <= (int)best && k <= CLIP_KERNEL_AVX512; k++) {
		kernel = (enum clip_kernel)k;
		printf("     kernel %s\n", clip_kernel_name(kernel));
		if (k != CLIP_KERNEL_AVX2) {   /* tn: BLAS below AVX-512 */
			test_tile_edges();
			test_long_k();
			test_model_shapes();
		}
		packed_mode = MODE_PACKED;
		test_packed_edges();
		test_packed_model_shapes();
		test_packed_long_k();
	}
}

/* bf16 panels and activations, vdpbf16ps with float32 accumulation: the
 * packed tests' shapes, odd K among them. */
static void test_bf16_kernel(void)
{
	if (clip_gemm_detect() < CLIP_KERNEL_AVX512_BF16) {
		printf("     this CPU has no AVX512_BF16: the bf16 kernel is refused at load, not tested here\n");
		return;
	}
	kernel = CLIP_KERNEL_AVX512_BF16;
	packed_mode = MODE_BF16;
	test_packed_edges();
	test_packed_model_shapes();
	test_packed_long_k();
	packed_mode = MODE_PACKED;
}

int main(void)
{
	RUN(test_kernel_detection);
	RUN(test_bf16_rounding);
	RUN(test_every_kernel);
	RUN(test_bf16_kernel);
	RUN(test_packed_layout);
	RUN(test_empty_is_a_no_op);
	return harness_done();
}
