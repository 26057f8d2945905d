/*
 * gemm-avx2 - the AVX2 kernel's products against this CPU's AVX2 + FMA
 * peak and against OpenBLAS, without the rest of the encoder.
 *
 *   build/deploy/bench/gemm-avx2 [ROWS [ROUNDS]]
 *
 * ROWS: rows of x, 400 (a batch of eight ViT-B/32 images, the default) or
 * 50 (one image). Prints one JSON line:
 *
 *   peak_gflops   one core's AVX2 + FMA peak, both cores running it at
 *                 once: 12 independent vfmadd231ps chains in registers
 *                 (VEX-encoded: ymm0-15 only), the best of five
 *   avx2, blas    the 72 linear products of 12 distinct ViT-B layers (q, k,
 *                 v, out, fc1, fc2), as the encoder runs them: 2 threads
 *                 taking 64 output columns at a time from a shared counter,
 *                 a barrier after each product; avx2 through
 *                 clip_gemm_packed(CLIP_KERNEL_AVX2) on packed weights,
 *                 blas through clip_gemm_tn(CLIP_KERNEL_BLAS) (cblas_sgemm,
 *                 as CLIPD_CPU=openblas). Each: the median and the best
 *                 pass in ms, GFLOP/s per thread (median) and its share of
 *                 the peak. The two alternate, ROUNDS passes each (9).
 *   blas_over_avx2  the ratio of the medians
 *   max_abs_diff  the largest difference between the two's results on the
 *                 last layer's fc2 (a kernel that is fast and wrong shows)
 *
 * Run it as deploy/bench/encoder.sh runs clipd (OpenBLAS on its Haswell
 * kernel, the machine otherwise quiet):
 *   env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell build/deploy/bench/gemm-avx2 400
 * It allocates about 700 MB (the weights as they are and packed).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

#include "gemm.h"

#if defined(__x86_64__) && defined(__GNUC__)

#define LAYERS 12
#define PRODUCTS 6
#define CHUNK 64   /* columns a thread takes at a time (forward.c's CHUNK) */
#define MAX_ROUNDS 64

static const size_t prod_k[PRODUCTS] = { 768, 768, 768, 768, 768, 3072 };
static const size_t prod_n[PRODUCTS] = { 768, 768, 768, 768, 3072, 768 };

struct bench {
	size_t M;
	int blas;                       /* this pass: OpenBLAS (1) or the AVX2 kernel */
	float *w[LAYERS][PRODUCTS], *p[LAYERS][PRODUCTS], *bias, *x, *y;
	atomic_size_t next;
	pthread_barrier_t bar;
};

static double now(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* GFLOP/s of this thread's FMA units: 12 chains of 8-lane FMAs. */
static void *peak(void *arg)
{
	double *out = arg, best = 1e30;
	const long n = 20000000;
	for (int r = 0; r < 5; r++) {
		__attribute__((aligned(32))) float one[8] = { 1e-9f, 1e-9f, 1e-9f, 1e-9f, 1e-9f, 1e-9f, 1e-9f, 1e-9f };
		double t0 = now(CLOCK_THREAD_CPUTIME_ID);
		__asm__ volatile("vmovaps %0, %%ymm14\n\tvmovaps %0, %%ymm15\n\t"
				 "vxorps %%ymm0, %%ymm0, %%ymm0\n\tvmovaps %%ymm0, %%ymm1\n\tvmovaps %%ymm0, %%ymm2\n\t"
				 "vmovaps %%ymm0, %%ymm3\n\tvmovaps %%ymm0, %%ymm4\n\tvmovaps %%ymm0, %%ymm5\n\t"
				 "vmovaps %%ymm0, %%ymm6\n\tvmovaps %%ymm0, %%ymm7\n\tvmovaps %%ymm0, %%ymm8\n\t"
				 "vmovaps %%ymm0, %%ymm9\n\tvmovaps %%ymm0, %%ymm10\n\tvmovaps %%ymm0, %%ymm11\n\t"
				 "mov %1, %%rcx\n"
				 "1:\n\t"
				 "vfmadd231ps %%ymm14, %%ymm15, %%ymm0\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm1\n\t"
				 "vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm3\n\t"
				 "vfmadd231ps %%ymm14, %%ymm15, %%ymm4\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm5\n\t"
				 "vfmadd231ps %%ymm14, %%ymm15, %%ymm6\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm7\n\t"
				 "vfmadd231ps %%ymm14, %%ymm15, %%ymm8\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm9\n\t"
				 "vfmadd231ps %%ymm14, %%ymm15, %%ymm10\n\tvfmadd231ps %%ymm14, %%ymm15, %%ymm11\n\t"
				 "dec %%rcx\n\tjnz 1b\n\t"
				 "vzeroupper"
				 :
				 : "m"(one), "r"(n)
				 : "rcx", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
				   "xmm10", "xmm11", "xmm14", "xmm15", "cc");
		double t = now(CLOCK_THREAD_CPUTIME_ID) - t0;
		if (t < best)
			best = t;
	}
	*out = (double)n * 12 * 16 / best / 1e9;
	return NULL;
}

/* One thread's share of a pass over every product. */
static void *pass(void *arg)
{
	struct bench *b = arg;
	for (int l = 0; l < LAYERS; l++) {
		for (int s = 0; s < PRODUCTS; s++) {
			size_t K = prod_k[s], N = prod_n[s];
			for (size_t c; (c = atomic_fetch_add(&b->next, CHUNK)) < N;) {
				size_t c1 = c + CHUNK < N ? c + CHUNK : N;
				if (b->blas)
					clip_gemm_tn(CLIP_KERNEL_BLAS, b->M, c1 - c, K, b->x, K, b->w[l][s] + c * K, K,
						     b->bias + c, b->y + c, N, 0.0f);
				else
					clip_gemm_packed(CLIP_KERNEL_AVX2, b->M, K, b->x, K, b->p[l][s], b->bias, b->y, N, c,
							 c1, 0.0f);
			}
			/* everyone past the product before the counter restarts */
			if (pthread_barrier_wait(&b->bar) == PTHREAD_BARRIER_SERIAL_THREAD)
				atomic_store(&b->next, 0);
			pthread_barrier_wait(&b->bar);
		}
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double u = *(const double *)a, v = *(const double *)b;
	return u < v ? -1 : u > v;
}

static float *floats(size_t n)
{
	float *f = aligned_alloc(64, (n * sizeof *f + 63) / 64 * 64);
	if (!f) {
		fprintf(stderr, "gemm-avx2: out of memory\n");
		exit(1);
	}
	return f;
}

int main(int argc, char **argv)
{
	struct bench b = { .M = argc > 1 ? strtoul(argv[1], NULL, 10) : 400 };
	int rounds = argc > 2 ? atoi(argv[2]) : 9;
	if (b.M < 1 || b.M > 4096 || rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "usage: gemm-avx2 [ROWS (1-4096) [ROUNDS (1-%d)]]\n", MAX_ROUNDS);
		return 2;
	}
	if (clip_gemm_detect() < CLIP_KERNEL_AVX2) {
		fprintf(stderr, "gemm-avx2: this CPU has no AVX2 and FMA\n");
		return 2;
	}
	/* OpenBLAS one thread per call: the two threads here drive it, as the
	 * encoder's do (clip_model_load sets the same) */
	openblas_set_num_threads(1);
	double pk[2];
	pthread_t th;
	pthread_create(&th, NULL, peak, &pk[1]);
	peak(&pk[0]);
	pthread_join(th, NULL);
	double peak_gf = (pk[0] + pk[1]) / 2;

	uint32_t seed = 12345;
	b.x = floats(b.M * 3072);
	b.y = floats(b.M * 3072);
	b.bias = floats(3072);
	for (size_t i = 0; i < b.M * 3072; i++)
		b.x[i] = (float)((seed = seed * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
	for (size_t i = 0; i < 3072; i++)
		b.bias[i] = 0.01f * (float)(i % 7);
	double flops = 0;
	for (int l = 0; l < LAYERS; l++) {
		for (int s = 0; s < PRODUCTS; s++) {
			size_t K = prod_k[s], N = prod_n[s];
			flops += 2.0 * (double)b.M * (double)N * (double)K;
			b.w[l][s] = floats(N * K);
			for (size_t i = 0; i < N * K; i++)
				b.w[l][s][i] = ((float)((seed = seed * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f) * 0.05f;
			b.p[l][s] = floats(clip_gemm_packed_floats(CLIP_KERNEL_AVX2, N, K));
			clip_gemm_pack(CLIP_KERNEL_AVX2, N, K, b.w[l][s], K, b.p[l][s]);
		}
	}
	pthread_barrier_init(&b.bar, NULL, 2);

	double t[2][MAX_ROUNDS];
	for (int r = 0; r < rounds; r++) {
		for (int v = 0; v < 2; v++) {
			b.blas = v;
			atomic_store(&b.next, 0);
			double t0 = now(CLOCK_MONOTONIC);
			pthread_create(&th, NULL, pass, &b);
			pass(&b);
			pthread_join(th, NULL);
			t[v][r] = now(CLOCK_MONOTONIC) - t0;
		}
	}
	printf("{\"rows\":%zu,\"rounds\":%d,\"peak_gflops\":%.1f", b.M, rounds, peak_gf);
	double med[2];
	for (int v = 0; v < 2; v++) {
		qsort(t[v], (size_t)rounds, sizeof t[v][0], cmp_double);
		med[v] = t[v][rounds / 2];
		double gf = flops / med[v] / 2 / 1e9;
		printf(",\"%s\":{\"median_ms\":%.1f,\"best_ms\":%.1f,\"gflops_per_thread\":%.1f,\"of_peak\":%.3f}",
		       v ? "blas" : "avx2", med[v] * 1e3, t[v][0] * 1e3, gf, gf / peak_gf);
	}
	/* the same product both ways: fc2 of the last layer */
	size_t K = prod_k[PRODUCTS - 1], N = prod_n[PRODUCTS - 1];
	float *ya = floats(b.M * N);
	clip_gemm_packed(CLIP_KERNEL_AVX2, b.M, K, b.x, K, b.p[LAYERS - 1][PRODUCTS - 1], b.bias, ya, N, 0, N, 0.0f);
	clip_gemm_tn(CLIP_KERNEL_BLAS, b.M, N, K, b.x, K, b.w[LAYERS - 1][PRODUCTS - 1], K, b.bias, b.y, N, 0.0f);
	double diff = 0;
	for (size_t i = 0; i < b.M * N; i++)
		diff = fmax(diff, fabs((double)ya[i] - (double)b.y[i]));
	printf(",\"blas_over_avx2\":%.3f,\"max_abs_diff\":%.2g}\n", med[1] / med[0], diff);
	return 0;
}

#else

int main(void)
{
	fprintf(stderr, "gemm-avx2: x86-64 only\n");
	return 2;
}

#endif
