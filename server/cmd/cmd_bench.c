/*
 * clipd bench --model DIR [--batch N] [--threads N] [--seconds S]
 *             [--image FILE]... [--exact-decode]
 *
 * Measures the encoder and prints one JSON line:
 *
 *   images_per_s        batches of N random images, steady state: N over
 *                       the median batch time (after one warm-up batch)
 *   text_query_ms       median over distinct short queries (5 to 8 words),
 *                       each tokenised and encoded alone, no cache
 *   load_ms             clip_model_load
 *   first_embedding_ms  from process start to the first image embedding,
 *                       weights paged in on the way
 *   peak_rss_mb         the process's peak resident set
 *   precision           fp32 or bf16 (--precision)
 *   kernel              the matrix kernel: avx512-bf16, avx512, avx2 or
 *                       openblas ($CLIPD_CPU=avx2 runs an AVX-512 CPU's
 *                       products as an AVX2 one's)
 *   batch, threads, blas, blas_core, and weights_mb for comparison
 *   decode_ms           with --image: the median CPU time of one image's
 *                       decode and preprocessing (this thread, the file
 *                       already read), with the JPEG fast path unless
 *                       --exact-decode; the batches are then made of
 *                       those images' pixels (null without --image)
 *
 * OpenBLAS reads OPENBLAS_CORETYPE and friends before main; unset them on
 * the command line when measuring (env -u OPENBLAS_CORETYPE ...).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include "clip.h"
#include "clock.h"
#include "commands.h"
#include "files.h"

#define BENCH_QUERIES 41        /* measured text queries (odd: a true median) */
#define BENCH_WARM_QUERIES 3
#define BENCH_MIN_BATCHES 3
#define BENCH_MAX_BATCHES 100000
#define BENCH_MAX_FILE ((size_t)1 << 30)

/* Milliseconds since this process started (from /proc, 10 ms ticks), or
 * -1 when /proc says nothing. */
static double since_process_start_ms(void)
{
	FILE *f = fopen("/proc/self/stat", "r");
	char buf[1024];
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	/* field 22, counted after the ")" that ends the command name */
	char *p = strrchr(buf, ')');
	unsigned long long start = 0;
	int field = 2;
	for (; p && *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (!p || sscanf(p, "%llu", &start) != 1)
		return -1;
	return clock_boot_s() * 1e3 - (double)start * 1e3 / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static const char *const words[] = {
	"red", "blue", "green", "small", "large", "old", "young", "happy", "wooden", "shiny", "dark",
	"bright", "cat", "dog", "bicycle", "car", "house", "tree", "mountain", "river", "beach", "city",
	"street", "woman", "man", "child", "horse", "bird", "flower", "table", "chair", "window", "boat",
	"train", "sky", "cloud", "snow", "rain", "sunset", "night", "photo", "painting", "drawing",
	"sitting", "running", "standing", "near", "under", "on", "with", "in", "the", "a", "of",
};
#define N_WORDS (sizeof words / sizeof words[0])

/* Query i: 5 to 8 words; the word choice is seeded by i, so queries differ. */
static void make_query(size_t i, char *buf, size_t len)
{
	uint64_t s = 0x9e3779b97f4a7c15ULL * (i + 1);
	size_t n_words = 5 + i % 4, pos = 0;
	for (size_t w = 0; w < n_words; w++) {
		const char *word = words[rng_next(&s) % N_WORDS];
		size_t n = strlen(word);
		if (pos + n + 2 > len)
			break;
		if (w)
			buf[pos++] = ' ';
		memcpy(buf + pos, word, n);
		pos += n;
	}
	buf[pos] = 0;
}

/* Decode and preprocess each image file into px (cycled to fill n
 * inputs); *decode_ms the median CPU time of one. 0, or -1 after saying why. */
static int load_images(const clip_model *model, const struct clip_decode_params *dp, char **paths,
		       size_t n_paths, float *px, size_t n, double *decode_ms)
{
	size_t per = clip_model_input_floats(model);
	double *times = malloc(n_paths * sizeof *times);
	int rc = -1;
	if (!times) {
		fprintf(stderr, "clipd bench: out of memory\n");
		return -1;
	}
	for (size_t i = 0; i < n_paths; i++) {
		unsigned char *bytes = NULL;
		size_t len = 0;
		char msg[FILES_MSG_MAX];
		if (files_read_all(paths[i], BENCH_MAX_FILE, &bytes, &len, msg, sizeof msg) != 0) {
			fprintf(stderr, "clipd bench: %s\n", msg);
			goto out;
		}
		clip_image img = { 0 };
		clip_error err = { 0 };
		double t0 = clock_thread_cpu_s();
		int r = clip_image_decode_with(bytes, len, dp, &img, &err);
		if (r == 0)
			r = clip_image_preprocess(model, &img, px + (i % n) * per, per, &err);
		times[i] = (clock_thread_cpu_s() - t0) * 1e3;
		clip_image_free(&img);
		free(bytes);
		if (r != 0) {
			fprintf(stderr, "clipd bench: %s: %s\n", paths[i], err.msg);
			goto out;
		}
	}
	for (size_t i = n_paths; i < n; i++)
		memcpy(px + i * per, px + (i % n_paths) * per, per * sizeof *px);
	*decode_ms = median(times, n_paths);
	rc = 0;
out:
	free(times);
	return rc;
}

static int run_bench(const struct cli_command *info, int argc, char **argv)
{
	char *model_dir = NULL, *precision_arg = NULL;
	long long batch = 8, threads = 0;
	double seconds = 10;
	int precision = CLIP_PRECISION_FP32;
	struct cli_list images = { 0 };
	int exact_decode = 0;
	const struct cli_option opts[] = {
		{ "model", CLI_STRING, &model_dir, "DIR", "model directory", 0, 0 },
		{ "precision", CLI_STRING, &precision_arg, "P", CMD_PRECISION_HELP, 0, 0 },
		{ "batch", CLI_INT, &batch, "N", "images per batch (default 8)", 1, 256 },
		{ "threads", CLI_INT, &threads, "N", "encoder threads (default 0: one per CPU)", 0, 256 },
		{ "seconds", CLI_DOUBLE, &seconds, "S", "time for the image measurement (default 10)", 0, 0 },
		{ "image", CLI_LIST, &images, "FILE", "an image whose decode is timed and whose pixels fill the batches (repeatable; default: random pixels)", 0, 0 },
		{ "exact-decode", CLI_FLAG, &exact_decode, NULL, "with --image: decode JPEGs at full size (off: large JPEGs DCT-scaled)", 0, 0 },
		{ 0 },
	};
	struct cli_args args;
	clip_model *model = NULL;
	clip_ctx *img_ctx = NULL, *txt_ctx = NULL;
	clip_error err = { 0 };
	float *px = NULL, *out = NULL;
	double *times = NULL;
	int status = 2;

	int rc = cli_parse(info, opts, argc, argv, &args);
	if (rc != CLI_OK)
		return rc == CLI_HELP ? 0 : 2;
	if (args.n_positional) {
		cli_usage_error(info, "unexpected argument '%s'", args.positional[0]);
		goto out;
	}
	if (!model_dir) {
		cli_usage_error(info, "--model is required");
		goto out;
	}
	if (!(seconds > 0 && seconds <= 3600)) {
		cli_usage_error(info, "--seconds must be in (0, 3600]");
		goto out;
	}
	if (cmd_precision(info, precision_arg, &precision) != 0)
		goto out;
	if (threads == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		threads = cpus > 0 ? cpus : 1;
	}

	double t0 = (clock_mono_s() * 1e3);
	if (cmd_model_load(model_dir, NULL, 0, precision, &model, &err) != 0) {
		fprintf(stderr, "clipd bench: cannot load model %s: %s\n", model_dir, err.msg);
		goto out;
	}
	double load_ms = (clock_mono_s() * 1e3) - t0;
	status = 1;
	size_t per = clip_model_input_floats(model), dim = clip_model_dim(model), B = (size_t)batch;
	if (clip_ctx_new(model, (int)threads, &img_ctx, &err) != 0 ||
	    clip_ctx_new(model, (int)threads, &txt_ctx, &err) != 0) {
		fprintf(stderr, "clipd bench: %s\n", err.msg);
		goto out;
	}
	px = malloc(B * per * sizeof *px);
	out = malloc(B * dim * sizeof *out);
	times = malloc(BENCH_MAX_BATCHES * sizeof *times);
	if (!px || !out || !times) {
		fprintf(stderr, "clipd bench: out of memory\n");
		goto out;
	}
	uint64_t s = 42;
	for (size_t i = 0; i < B * per; i++)
		px[i] = (float)((double)(rng_next(&s) >> 11) / 9007199254740992.0 * 4.0 - 2.0);
	double decode_ms = -1;
	if (images.n) {
		struct clip_decode_params dp = clip_model_decode_params(model, 0, exact_decode);
		if (load_images(model, &dp, images.items, images.n, px, B, &decode_ms) != 0)
			goto out;
	}
	char decode_json[320] = "null";   /* room for any double %.2f prints */
	if (decode_ms >= 0)
		snprintf(decode_json, sizeof decode_json, "%.2f", decode_ms);

	/* the first embedding: one image, the weights paged in on the way */
	if (clip_encode_images(img_ctx, px, 1, out, dim, &err) != 0)
		goto fail;
	double first_ms = since_process_start_ms();
	double first_since_load = (clock_mono_s() * 1e3) - t0;
	if (first_ms < 0)
		first_ms = first_since_load;

	/* images: one warm-up batch, then batches until the time is up */
	if (clip_encode_images(img_ctx, px, B, out, B * dim, &err) != 0)
		goto fail;
	size_t n_batches = 0;
	double start = (clock_mono_s() * 1e3);
	while (n_batches < BENCH_MAX_BATCHES &&
	       (n_batches < BENCH_MIN_BATCHES || (clock_mono_s() * 1e3) - start < seconds * 1e3)) {
		double b0 = (clock_mono_s() * 1e3);
		if (clip_encode_images(img_ctx, px, B, out, B * dim, &err) != 0)
			goto fail;
		times[n_batches++] = (clock_mono_s() * 1e3) - b0;
	}
	double total_ms = (clock_mono_s() * 1e3) - start;
	double batch_ms = median(times, n_batches);

	/* text queries: a few warm-up ones, then distinct ones, timed alone */
	char q[256];
	for (size_t i = 0; i < BENCH_WARM_QUERIES; i++) {
		make_query(1000 + i, q, sizeof q);
		const char *qp = q;
		if (clip_encode_texts(txt_ctx, &qp, 1, out, dim, &err) != 0)
			goto fail;
	}
	for (size_t i = 0; i < BENCH_QUERIES; i++) {
		make_query(i, q, sizeof q);
		const char *qp = q;
		double q0 = (clock_mono_s() * 1e3);
		if (clip_encode_texts(txt_ctx, &qp, 1, out, dim, &err) != 0)
			goto fail;
		times[i] = (clock_mono_s() * 1e3) - q0;
	}
	double query_ms = median(times, BENCH_QUERIES);

	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"images_per_s\":%.2f,\"images_per_s_mean\":%.2f,\"text_query_ms\":%.3f,\"load_ms\":%.1f,"
	       "\"first_embedding_ms\":%.1f,\"peak_rss_mb\":%.1f,\"weights_mb\":%.1f,\"batch\":%zu,"
	       "\"threads\":%lld,\"image_batches\":%zu,\"precision\":\"%s\",\"kernel\":\"%s\",\"blas\":\"%s\","
	       "\"blas_core\":\"%s\",\"decode_ms\":%s,\"exact_decode\":%s}\n",
	       (double)B * 1e3 / batch_ms, (double)B * (double)n_batches * 1e3 / total_ms, query_ms, load_ms,
	       first_ms, (double)ru.ru_maxrss / 1024.0, (double)clip_model_weight_bytes(model) / (1 << 20), B,
	       threads, n_batches, clip_model_precision(model), clip_model_kernel(model), clip_blas_name(),
	       clip_blas_core(), decode_json, exact_decode ? "true" : "false");
	status = 0;
	goto out;
fail:
	fprintf(stderr, "clipd bench: %s\n", err.msg);
out:
	free(times);
	free(out);
	free(px);
	clip_ctx_free(txt_ctx);
	clip_ctx_free(img_ctx);
	clip_model_free(model);
	cli_args_free(&args);
	cli_list_free(&images);
	return status;
}

const struct clipd_command cmd_bench = {
	{ "bench", "measure encoder speed and memory",
	  "--model DIR [--precision fp32|bf16] [--batch N] [--threads N] [--seconds S] [--image FILE]... "
	  "[--exact-decode]",
	  "Prints one JSON line: images_per_s (batches of N random images, steady state), "
	  "text_query_ms (median over distinct short queries), load_ms, first_embedding_ms "
	  "(from process start), peak_rss_mb, batch, threads, precision, kernel (CLIPD_CPU=avx2 "
	  "forces the AVX2 one), blas and blas_core; with --image, "
	  "decode_ms (CPU time of one image's decode and preprocessing, the JPEG fast path unless "
	  "--exact-decode) and batches of those images' pixels. Unset "
	  "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for the command when measuring." },
	run_bench };
