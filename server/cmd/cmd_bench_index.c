/*
 * clipd bench-index --n N --dim D [--queries Q] [--index FACTORY] [--seed S]
 *
 * Measures the index clipd would choose for N vectors on synthetic data
 * shaped like CLIP embeddings, and prints one JSON line:
 *
 *   {"index", "n", "dim", "adds_per_s", "exact_p50_ms", "bytes_per_vector",
 *    "image": {"recall_at_10", "p50_ms", "p99_ms"}, "text": {...}}
 *
 * The data: 1,000 cluster centres drawn from N(0, I/D); each stored vector
 * a random centre plus N(0, I/D) noise, L2-normalised; image-like queries
 * drawn the same way (not stored); text-like queries a centre plus
 * N(0, 2.5^2 I/D) noise, normalised, so their best match has a cosine of
 * about 0.3, as a text query's has with images. Everything comes from one
 * seeded generator of our own (xoshiro256** and Box-Muller): the same
 * --seed gives the same vectors on every machine.
 *
 *   recall_at_10      |top 10 ∩ exact top 10| / 10, averaged over Q queries
 *                     of each kind (exact: FAISS's flat inner product)
 *   p50_ms, p99_ms    idx_search, one query at a time, one thread
 *   exact_p50_ms      the same for the exact index at N (on up to 50 queries)
 *   adds_per_s        idx_add in batches of 100 into the index at N (the
 *                     last min(N/10, 10,000) vectors removed and added back)
 *   bytes_per_vector  the size of idx_save's file over N
 *
 * Details go to stderr as a second JSON line (nprobe, build, ground-truth
 * and generation times, the load average, and each latency's median in
 * the thread's CPU time: these machines are shared, and a query that waits
 * for a core shows in wall time only), and
 * --curve P1,P2,... adds one stderr line per nprobe value with the recall
 * and latency of that setting on the same index.
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>

#include "commands.h"
#include "clock.h"
#include "idx.h"

#define BENCH_MAX_N 20000000LL
#define BENCH_MAX_FLOATS ((size_t)3 << 30)    /* 12 GiB of vectors: refuse beyond */
#define BENCH_MAX_QUERIES 100000
#define BENCH_CENTRES 1000
#define BENCH_K 10
#define BENCH_EXACT_QUERIES 50
#define BENCH_ADD_BATCH 100
#define BENCH_MAX_ADDS 10000
#define BENCH_MAX_CURVE 32
#define TEXT_SIGMA 2.5

/* ---- the generator ------------------------------------------------------ */

struct rng {
	uint64_t s[4];
	int has_spare;
	double spare;
};

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* A generator per (seed, stream, row), so rows come out the same whichever
 * thread makes them. */
static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream, uint64_t row)
{
	uint64_t x = seed ^ (stream * UINT64_C(0xd1342543de82ef95)) ^ (row * UINT64_C(0x2545f4914f6cdd1d));
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&x);
	r->has_spare = 0;
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)   /* xoshiro256** */
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

static double rng_uniform(struct rng *r)   /* in (0, 1) */
{
	return ((double)(rng_next(r) >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(struct rng *r)    /* Box-Muller, both values used */
{
	if (r->has_spare) {
		r->has_spare = 0;
		return r->spare;
	}
	double u = rng_uniform(r), v = rng_uniform(r);
	double m = sqrt(-2.0 * log(u));
	r->spare = m * sin(2.0 * M_PI * v);
	r->has_spare = 1;
	return m * cos(2.0 * M_PI * v);
}

enum { STREAM_CENTRES, STREAM_DATA, STREAM_IMAGE, STREAM_TEXT };

struct gen_job {
	const float *centres;
	size_t dim;
	uint64_t seed, stream;
	double sigma;
	float *out;
	size_t first, last;   /* rows [first, last) */
};

static void *gen_rows(void *arg)
{
	struct gen_job *j = arg;
	double sd = j->sigma / sqrt((double)j->dim);
	for (size_t i = j->first; i < j->last; i++) {
		struct rng r;
		rng_seed(&r, j->seed, j->stream, i);
		size_t c = (size_t)(rng_uniform(&r) * BENCH_CENTRES);
		if (c >= BENCH_CENTRES)
			c = BENCH_CENTRES - 1;
		const float *ctr = j->centres + c * j->dim;
		float *v = j->out + i * j->dim;
		double norm = 0;
		for (size_t d = 0; d < j->dim; d++) {
			v[d] = (float)(ctr[d] + rng_normal(&r) * sd);
			norm += (double)v[d] * v[d];
		}
		float inv = (float)(1.0 / sqrt(norm));
		for (size_t d = 0; d < j->dim; d++)
			v[d] *= inv;
	}
	return NULL;
}

/* n rows of centre + N(0, sigma^2 I/D), normalised, on two threads. */
static void gen_vectors(const float *centres, size_t dim, uint64_t seed, uint64_t stream, double sigma,
			float *out, size_t n)
{
	struct gen_job jobs[2];
	pthread_t th;
	for (int t = 0; t < 2; t++)
		jobs[t] = (struct gen_job){ centres, dim, seed, stream, sigma, out, n * (size_t)t / 2,
					    n * (size_t)(t + 1) / 2 };
	int threaded = pthread_create(&th, NULL, gen_rows, &jobs[1]) == 0;
	gen_rows(&jobs[0]);
	if (threaded)
		pthread_join(th, NULL);
	else
		gen_rows(&jobs[1]);
}

/* ---- measuring ------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The value at quantile q of sorted v (nearest rank). */
static double quantile(const double *v, size_t n, double q)
{
	size_t i = (size_t)ceil(q * (double)n);
	return v[i ? i - 1 : 0];
}

struct kind_result {
	double recall, p50, p99;
	double cpu_p50;   /* the thread's CPU time: steadier than wall time on a shared machine */
};

/* Q single queries through idx_search, one thread; recall against gt (Q x 10). */
static int measure(idx *ix, const float *queries, size_t q, size_t dim, const int64_t *gt,
		   struct kind_result *res, idx_error *err)
{
	double *lat = malloc(q * sizeof *lat), *cpu = malloc(q * sizeof *cpu);
	if (!lat || !cpu) {
		free(lat);
		free(cpu);
		return -1;
	}
	double hits = 0;
	for (size_t i = 0; i < q; i++) {
		float scores[BENCH_K];
		int64_t ids[BENCH_K];
		size_t n = 0;
		double c0 = (clock_thread_cpu_s() * 1e3), t0 = (clock_mono_s() * 1e3);
		int rc = idx_search(ix, queries + i * dim, BENCH_K, scores, ids, &n, err);
		lat[i] = (clock_mono_s() * 1e3) - t0;
		cpu[i] = (clock_thread_cpu_s() * 1e3) - c0;
		if (rc) {
			free(lat);
			free(cpu);
			return rc;
		}
		if (!gt)
			continue;
		for (size_t a = 0; a < n; a++)
			for (size_t b = 0; b < BENCH_K; b++)
				if (ids[a] == gt[i * BENCH_K + b]) {
					hits++;
					break;
				}
	}
	qsort(lat, q, sizeof *lat, cmp_double);
	res->recall = hits / ((double)q * BENCH_K);
	res->p50 = quantile(lat, q, 0.5);
	res->p99 = quantile(lat, q, 0.99);
	qsort(cpu, q, sizeof *cpu, cmp_double);
	res->cpu_p50 = quantile(cpu, q, 0.5);
	free(lat);
	free(cpu);
	return 0;
}

/* Exact top 10 of every query, batched on FAISS's flat inner-product index
 * (BLAS, all threads): the reference the recall is measured against. */
static int ground_truth(const float *x, size_t n, size_t dim, const float *queries, size_t q, int64_t *gt)
{
	FaissIndexFlatIP *flat = NULL;
	float *dist = malloc(q * BENCH_K * sizeof *dist);
	int rc = -1;
	if (!dist)
		goto out;
	if (faiss_IndexFlatIP_new_with(&flat, (idx_t)dim) || faiss_Index_add(flat, (idx_t)n, x) ||
	    faiss_Index_search(flat, (idx_t)q, queries, BENCH_K, dist, gt)) {
		fprintf(stderr, "clipd bench-index: ground truth: %s\n", faiss_get_last_error());
		goto out;
	}
	rc = 0;
out:
	if (flat)
		faiss_Index_free(flat);
	free(dist);
	return rc;
}

static void loadavg(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");
	buf[0] = 0;
	if (f) {
		if (fgets(buf, (int)len, f)) {
			char *p = buf;
			for (int fields = 0; *p; p++)   /* keep the three averages */
				if (*p == ' ' && ++fields == 3)
					break;
			*p = 0;
		}
		fclose(f);
	}
}

/* "1,2,4" -> values; -1 on a malformed list. */
static int parse_curve(const char *s, int *out, int max)
{
	int n = 0;
	while (s && *s) {
		char *end;
		errno = 0;
		long v = strtol(s, &end, 10);
		if (errno || end == s || v < 1 || v > IDX_MAX_NPROBE || n == max || (*end && *end != ','))
			return -1;
		out[n++] = (int)v;
		s = *end ? end + 1 : end;
	}
	return n;
}

static void print_kind(FILE *f, const char *name, const struct kind_result *r, int cpu)
{
	fprintf(f, "\"%s\": {\"recall_at_10\": %.4f, \"p50_ms\": %.3f, \"p99_ms\": %.3f", name, r->recall, r->p50,
		r->p99);
	if (cpu)
		fprintf(f, ", \"cpu_p50_ms\": %.3f", r->cpu_p50);
	fputc('}', f);
}

static int run(const struct cli_command *info, int argc, char **argv)
{
	long long n_opt = 0, dim_opt = 0, q_opt = 1000, seed = 1, nprobe = 0, threshold = 0;
	char *factory = NULL, *curve_opt = NULL;
	const struct cli_option opts[] = {
		{ "n", CLI_INT, &n_opt, "N", "vectors in the index", 1, BENCH_MAX_N },
		{ "dim", CLI_INT, &dim_opt, "D", "dimension", 2, IDX_MAX_DIM },
		{ "queries", CLI_INT, &q_opt, "Q", "queries of each kind (default 1000)", 1, BENCH_MAX_QUERIES },
		{ "index", CLI_STRING, &factory, "FACTORY", "index family past the threshold (default: clipd's choice)", 0, 0 },
		{ "seed", CLI_INT, &seed, "S", "seed of the synthetic data (default 1)", 0, 0 },
		{ "nprobe", CLI_INT, &nprobe, "N", "IVF lists searched (default: clipd's)", 1, IDX_MAX_NPROBE },
		{ "ivf-threshold", CLI_INT, &threshold, "N", "exact search below N vectors (default: clipd's)", 1, BENCH_MAX_N },
		{ "curve", CLI_STRING, &curve_opt, "P1,P2,...", "also measure these nprobe values (stderr)", 0, 0 },
		{ 0 },
	};
	struct cli_args args;
	int rc = cli_parse(info, opts, argc, argv, &args);
	if (rc != CLI_OK)
		return rc == CLI_HELP ? 0 : 2;
	cli_args_free(&args);
	if (!n_opt || !dim_opt) {
		cli_usage_error(info, "--n and --dim are required");
		return 2;
	}
	idx_error err;
	if (factory && idx_check_factory(factory, &err)) {
		cli_usage_error(info, "--index: %s", err.msg);
		return 2;
	}
	int curve[BENCH_MAX_CURVE], n_curve = 0;
	if (curve_opt && (n_curve = parse_curve(curve_opt, curve, BENCH_MAX_CURVE)) < 0) {
		cli_usage_error(info, "--curve: a comma-separated list of 1 to %d nprobe values", BENCH_MAX_CURVE);
		return 2;
	}
	size_t n = (size_t)n_opt, dim = (size_t)dim_opt, q = (size_t)q_opt;
	if (n > BENCH_MAX_FLOATS / dim) {
		cli_usage_error(info, "--n %zu x --dim %zu is more than this benchmark holds in memory", n, dim);
		return 2;
	}

	int status = 1;
	float *centres = NULL, *x = NULL, *queries = NULL;
	int64_t *ids = NULL, *gt = NULL;
	idx *ix = NULL;
	char path[512] = "";
	struct idx_params p = idx_default_params();
	p.dim = dim;   /* nprobe 0: clipd's automatic choice */
	p.factory = factory;
	if (nprobe)
		p.nprobe = (int)nprobe;
	if (threshold)
		p.ivf_threshold = (size_t)threshold;

	centres = malloc(BENCH_CENTRES * dim * sizeof *centres);
	x = malloc(n * dim * sizeof *x);
	queries = malloc(2 * q * dim * sizeof *queries);   /* image-like, then text-like */
	ids = malloc(n * sizeof *ids);
	gt = malloc(2 * q * BENCH_K * sizeof *gt);
	if (!centres || !x || !queries || !ids || !gt) {
		fprintf(stderr, "clipd bench-index: out of memory for %zu x %zu vectors\n", n, dim);
		goto out;
	}

	/* The data. */
	double t0 = (clock_mono_s() * 1e3);
	struct rng r;
	rng_seed(&r, (uint64_t)seed, STREAM_CENTRES, 0);
	for (size_t i = 0; i < BENCH_CENTRES * dim; i++)
		centres[i] = (float)(rng_normal(&r) / sqrt((double)dim));
	gen_vectors(centres, dim, (uint64_t)seed, STREAM_DATA, 1.0, x, n);
	gen_vectors(centres, dim, (uint64_t)seed, STREAM_IMAGE, 1.0, queries, q);
	gen_vectors(centres, dim, (uint64_t)seed, STREAM_TEXT, TEXT_SIGMA, queries + q * dim, q);
	for (size_t i = 0; i < n; i++)
		ids[i] = (int64_t)i + 1;   /* rowids start at 1 */
	double gen_ms = (clock_mono_s() * 1e3) - t0;

	t0 = (clock_mono_s() * 1e3);
	if (ground_truth(x, n, dim, queries, 2 * q, gt))
		goto out;
	for (size_t i = 0; i < 2 * q * BENCH_K; i++)
		gt[i] = gt[i] < 0 ? -1 : gt[i] + 1;   /* rows to ids */
	double gt_ms = (clock_mono_s() * 1e3) - t0;

	/* The exact index at n, for exact_p50_ms. */
	struct idx_params pe = p;
	pe.factory = "Flat";
	struct kind_result exact_res;
	int max_threads = omp_get_max_threads();
	if (idx_build(&pe, ids, x, n, 0, &ix, &err)) {
		fprintf(stderr, "clipd bench-index: exact index: %s\n", err.msg);
		goto out;
	}
	omp_set_num_threads(1);
	rc = measure(ix, queries, q < BENCH_EXACT_QUERIES ? q : BENCH_EXACT_QUERIES, dim, NULL, &exact_res, &err);
	omp_set_num_threads(max_threads);
	idx_free(ix);
	ix = NULL;
	if (rc) {
		fprintf(stderr, "clipd bench-index: exact search: %s\n", err.msg);
		goto out;
	}

	/* The index clipd chooses at n. */
	t0 = (clock_mono_s() * 1e3);
	if (idx_build(&p, ids, x, n, 0, &ix, &err)) {
		fprintf(stderr, "clipd bench-index: build: %s\n", err.msg);
		goto out;
	}
	double build_ms = (clock_mono_s() * 1e3) - t0;

	/* Adds: the last vectors out, then back in batches. */
	size_t adds = n / 10 < BENCH_MAX_ADDS ? n / 10 : BENCH_MAX_ADDS;
	if (!adds)
		adds = n;
	uint64_t seq = 1;
	if (idx_remove(ix, ids + (n - adds), adds, seq++, &err)) {
		fprintf(stderr, "clipd bench-index: remove: %s\n", err.msg);
		goto out;
	}
	t0 = (clock_mono_s() * 1e3);
	for (size_t i = n - adds; i < n; i += BENCH_ADD_BATCH) {
		size_t m = n - i < BENCH_ADD_BATCH ? n - i : BENCH_ADD_BATCH;
		if (idx_add(ix, ids + i, x + i * dim, m, seq++, &err)) {
			fprintf(stderr, "clipd bench-index: add: %s\n", err.msg);
			goto out;
		}
	}
	double adds_per_s = (double)adds / (((clock_mono_s() * 1e3) - t0) / 1e3);

	struct kind_result img, txt;
	omp_set_num_threads(1);
	rc = measure(ix, queries, q, dim, gt, &img, &err);
	if (!rc)
		rc = measure(ix, queries + q * dim, q, dim, gt + q * BENCH_K, &txt, &err);
	omp_set_num_threads(max_threads);
	if (rc) {
		fprintf(stderr, "clipd bench-index: search: %s\n", err.msg);
		goto out;
	}

	const char *tmp = getenv("TMPDIR");
	snprintf(path, sizeof path, "%s/clipd-bench-index-%ld.idx", tmp && *tmp ? tmp : "/tmp", (long)getpid());
	if (idx_save(ix, path, "bench", &err)) {
		fprintf(stderr, "clipd bench-index: save: %s\n", err.msg);
		path[0] = 0;
		goto out;
	}
	FILE *f = fopen(path, "rb");
	long long bytes = -1;
	if (f && fseek(f, 0, SEEK_END) == 0)
		bytes = ftell(f);
	if (f)
		fclose(f);

	printf("{\"index\": \"%s\", \"n\": %zu, \"dim\": %zu, \"adds_per_s\": %.0f, \"exact_p50_ms\": %.3f, "
	       "\"bytes_per_vector\": %.1f, ",
	       idx_type(ix), n, dim, adds_per_s, exact_res.p50, (double)bytes / (double)n);
	print_kind(stdout, "image", &img, 0);
	printf(", ");
	print_kind(stdout, "text", &txt, 0);
	printf("}\n");
	fflush(stdout);

	char load[64];
	loadavg(load, sizeof load);
	fprintf(stderr, "{\"nprobe\": %d, \"ivf_threshold\": %zu, \"gen_s\": %.1f, \"ground_truth_s\": %.1f, "
		"\"build_s\": %.1f, \"exact_queries\": %zu, \"exact_cpu_p50_ms\": %.3f, \"add_batch\": %d, "
		"\"threads\": %d, \"loadavg\": \"%s\", ",
		idx_nprobe(ix), p.ivf_threshold, gen_ms / 1e3, gt_ms / 1e3, build_ms / 1e3,
		q < BENCH_EXACT_QUERIES ? q : BENCH_EXACT_QUERIES, exact_res.cpu_p50, BENCH_ADD_BATCH, max_threads, load);
	print_kind(stderr, "image", &img, 1);
	fprintf(stderr, ", ");
	print_kind(stderr, "text", &txt, 1);
	fprintf(stderr, "}\n");

	/* The curve: the same index, loaded with each nprobe. */
	for (int c = 0; c < n_curve && !idx_is_exact(ix); c++) {
		struct idx_params pc = p;
		pc.nprobe = curve[c];
		idx *ic = NULL;
		if (idx_load(path, &pc, "bench", &ic, &err)) {
			fprintf(stderr, "clipd bench-index: curve: %s\n", err.msg);
			goto out;
		}
		omp_set_num_threads(1);
		rc = measure(ic, queries, q, dim, gt, &img, &err);
		if (!rc)
			rc = measure(ic, queries + q * dim, q, dim, gt + q * BENCH_K, &txt, &err);
		omp_set_num_threads(max_threads);
		idx_free(ic);
		if (rc) {
			fprintf(stderr, "clipd bench-index: curve: %s\n", err.msg);
			goto out;
		}
		loadavg(load, sizeof load);
		fprintf(stderr, "{\"nprobe\": %d, ", curve[c]);
		print_kind(stderr, "image", &img, 1);
		fprintf(stderr, ", ");
		print_kind(stderr, "text", &txt, 1);
		fprintf(stderr, ", \"loadavg\": \"%s\"}\n", load);
	}
	status = 0;
out:
	if (path[0])
		unlink(path);
	idx_free(ix);
	free(centres);
	free(x);
	free(queries);
	free(ids);
	free(gt);
	return status;
}

const struct clipd_command cmd_bench_index = {
	{ "bench-index", "measure the vector index on synthetic CLIP-like data",
	  "--n N --dim D [--queries Q] [--index FACTORY] [--seed S]",
	  "Builds the index clipd would choose for N vectors (1,000 clusters, CLIP-like) and prints "
	  "one JSON line: recall@10 and single-query latency for image-like and text-like queries, "
	  "add throughput, exact-search latency and bytes per vector. Unset OPENBLAS_CORETYPE and "
	  "OPENBLAS_L2_SIZE when measuring." },
	run
};
