/*
 * The transformers against the reference: both fixture checkpoints
 * (tiny-clip-hf: Hugging Face layout, F32, quick-GELU; tiny-clip-openclip:
 * OpenCLIP layout, F16, exact GELU) must reproduce every golden image
 * embedding from the reference crops' pixels and every golden text
 * embedding to cosine >= 0.99999; batches, chunks, thread counts, shards
 * and misaligned files must not change the result, nor must the file
 * cache of the packed weights, which is used only while it matches.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "golden_fixture.h"
#include "sft_fixture.h"

#include "clip.h"
#include "gemm.h"
#include "internal.h"
#include "model.h"

#define HF_DIR TEST_DATA_DIR "/tiny-clip-hf"
#define OC_DIR TEST_DATA_DIR "/tiny-clip-openclip"
#define COS_BOUND 0.99999

static char *tmp;

/* Largest |a - b| relative to the largest |b| of two n-vectors. */
static double rel_diff(const float *a, const float *b, size_t n)
{
	double d = 0, m = 0;
	for (size_t i = 0; i < n; i++) {
		d = fmax(d, fabs((double)a[i] - b[i]));
		m = fmax(m, fabs((double)b[i]));
	}
	return m > 0 ? d / m : d;
}

static clip_model *load(const char *dir)
{
	clip_model *m = NULL;
	clip_error err = { 0 };
	struct clip_params p = clip_default_params();
	if (clip_model_load(dir, &p, &m, &err) != 0)
		fprintf(stderr, "  load %s: %s\n", dir, err.msg);
	return m;
}

/* Every golden image and text, as one batch each, to the bound. */
static void check_goldens(const char *dir, const char *layout, int threads)
{
	struct golden g = { 0 };
	REQUIRE(golden_load(dir, &g) == 0);
	clip_model *m = load(dir);
	clip_ctx *ctx = NULL;
	clip_error err = { 0 };
	float *px = NULL, *out = NULL;
	const char **texts = NULL;
	if (!m)
		goto fail;
	CHECK_EQ_STR(clip_model_layout(m), layout);
	CHECK_EQ_INT(clip_model_dim(m), g.dim);
	CHECK_NEAR(clip_model_logit_scale(m), g.logit_scale, 1e-5 * g.logit_scale);
	if (clip_ctx_new(m, threads, &ctx, &err) != 0 || !(px = golden_pixels(m, &g)) ||
	    !(texts = golden_texts(&g)))
		goto fail;
	size_t n_out = (g.n_images > g.n_texts ? g.n_images : g.n_texts) * g.dim;
	out = malloc(n_out * sizeof *out);
	if (!out)
		goto fail;

	CHECK_EQ_INT(clip_encode_images(ctx, px, g.n_images, out, n_out, &err), 0);
	double worst = 1;
	for (size_t i = 0; i < g.n_images; i++) {
		const cJSON *im = cJSON_GetArrayItem(g.images, (int)i);
		double c = cosine_json(out + i * g.dim, cJSON_GetObjectItem(im, "embedding"), g.dim);
		if (c < COS_BOUND)
			HARNESS_FAIL("%s: image %s: cosine %.7f", dir, cJSON_GetObjectItem(im, "crop")->valuestring, c);
		worst = fmin(worst, c);
	}
	printf("     %s, %d thread(s), %zu images: min cosine 1 - %.2g\n", layout, threads, g.n_images, 1 - worst);

	CHECK_EQ_INT(clip_encode_texts(ctx, texts, g.n_texts, out, n_out, &err), 0);
	worst = 1;
	for (size_t i = 0; i < g.n_texts; i++) {
		double c = cosine_json(out + i * g.dim,
				       cJSON_GetObjectItem(cJSON_GetArrayItem(g.texts, (int)i), "embedding"), g.dim);
		if (c < COS_BOUND)
			HARNESS_FAIL("%s: text %zu \"%.40s\": cosine %.7f", dir, i, texts[i], c);
		worst = fmin(worst, c);
	}
	printf("     %s, %d thread(s), %zu texts: min cosine 1 - %.2g\n", layout, threads, g.n_texts, 1 - worst);
	goto done;
fail:
	HARNESS_FAIL("setup failed for %s: %s", dir, err.msg);
done:
	free(out);
	free(texts);
	free(px);
	clip_ctx_free(ctx);
	clip_model_free(m);
	cJSON_Delete(g.root);
}

static void test_hf_goldens(void)
{
	check_goldens(HF_DIR, "hf", 1);
}

static void test_openclip_goldens(void)
{
	check_goldens(OC_DIR, "openclip", 1);
}

static void test_goldens_with_two_threads(void)
{
	check_goldens(HF_DIR, "hf", 2);
	check_goldens(OC_DIR, "openclip", 2);
}

/*
 * One at a time, in a batch, in a batch large enough to be cut into
 * chunks, with 1 and with 3 threads: the same vectors (to float rounding:
 * BLAS may block a GEMM of another shape differently).
 */
static void check_batch_invariance(const char *dir)
{
	struct golden g = { 0 };
	REQUIRE(golden_load(dir, &g) == 0);
	clip_model *m = load(dir);
	clip_ctx *one = NULL, *three = NULL;
	clip_error err = { 0 };
	float *px = NULL, *single = NULL, *batch = NULL, *big_px = NULL;
	const char **texts = NULL, **big_texts = NULL;
	REQUIRE(m);
	size_t dim = g.dim, per = clip_model_input_floats(m);
	/* enough images and texts for several chunks of CLIP_CHUNK_ROWS rows */
	size_t n_big = 2 * 1024 / (size_t)((224 / 16) * (224 / 16) + 1) + 3;  /* OpenCLIP's 197 rows */
	if (n_big < 45)
		n_big = 45;  /* HF: 50 rows an image, 20 a chunk */
	size_t n_big_texts = 4 * g.n_texts;
	REQUIRE(clip_ctx_new(m, 1, &one, &err) == 0);
	REQUIRE(clip_ctx_new(m, 3, &three, &err) == 0);
	REQUIRE((px = golden_pixels(m, &g)) && (texts = golden_texts(&g)));
	size_t n_max = n_big_texts > n_big ? n_big_texts : n_big;
	single = malloc(n_max * dim * sizeof *single);
	batch = malloc(n_max * dim * sizeof *batch);
	big_px = malloc(n_big * per * sizeof *big_px);
	big_texts = malloc(n_big_texts * sizeof *big_texts);
	REQUIRE(single && batch && big_px && big_texts);
	for (size_t i = 0; i < n_big; i++)
		memcpy(big_px + i * per, px + (i % g.n_images) * per, per * sizeof *px);
	for (size_t i = 0; i < n_big_texts; i++)
		big_texts[i] = texts[(i * 7) % g.n_texts];

	for (size_t i = 0; i < g.n_images; i++)
		REQUIRE(clip_encode_images(one, px + i * per, 1, single + i * dim, dim, &err) == 0);
	REQUIRE(clip_encode_images(three, big_px, n_big, batch, n_big * dim, &err) == 0);
	double worst = 0;
	for (size_t i = 0; i < n_big; i++)
		worst = fmax(worst, rel_diff(batch + i * dim, single + (i % g.n_images) * dim, dim));
	if (worst > 1e-5)
		HARNESS_FAIL("%s: %zu images in a batch, 3 threads: relative difference %g from one by one", dir,
			     n_big, worst);

	for (size_t i = 0; i < n_big_texts; i++)
		REQUIRE(clip_encode_texts(one, &big_texts[i], 1, single + i * dim, dim, &err) == 0);
	REQUIRE(clip_encode_texts(three, big_texts, n_big_texts, batch, n_big_texts * dim, &err) == 0);
	worst = 0;
	for (size_t i = 0; i < n_big_texts; i++)
		worst = fmax(worst, rel_diff(batch + i * dim, single + i * dim, dim));
	if (worst > 1e-5)
		HARNESS_FAIL("%s: %zu texts in a batch, 3 threads: relative difference %g from one by one", dir,
			     n_big_texts, worst);

	struct clip_ctx_stats st;
	clip_ctx_get_stats(three, &st);
	CHECK_EQ_INT(st.image_batches, 1);
	CHECK_EQ_INT(st.images, n_big);
	CHECK_EQ_INT(st.max_image_batch, n_big);
	CHECK_EQ_INT(st.text_batches, 1);
	CHECK_EQ_INT(st.texts, n_big_texts);
	free(big_texts);
	free(big_px);
	free(batch);
	free(single);
	free(texts);
	free(px);
	clip_ctx_free(three);
	clip_ctx_free(one);
	clip_model_free(m);
	cJSON_Delete(g.root);
}

static void test_batches_chunks_threads_agree(void)
{
	check_batch_invariance(HF_DIR);
	check_batch_invariance(OC_DIR);
}

/* Texts that start with the start token skip their first row (its key and
 * value are cached at load); a chunk with a text that does not start so is
 * computed whole. Both give the same vectors. */
static void check_prefix_paths(const char *dir)
{
	clip_model *m = load(dir);
	clip_ctx *ctx = NULL;
	clip_error err = { 0 };
	REQUIRE(m != NULL);
	REQUIRE(clip_ctx_new(m, 2, &ctx, &err) == 0);
	const clip_tokenizer *tok = clip_model_tokenizer(m);
	size_t dim = clip_model_dim(m);
	int32_t a[77], b[77];
	size_t na = 0, nb = 0;
	REQUIRE(clip_tokenize(tok, "a photo of a red bicycle", 24, a, 77, &na, &err) == 0);
	REQUIRE(clip_tokenize(tok, "two dogs", 8, b + 1, 76, &nb, &err) == 0);
	b[0] = b[2];   /* starts with a word, not the start token */
	nb++;
	float *alone = malloc(dim * sizeof *alone), *mixed = malloc(2 * dim * sizeof *mixed);
	REQUIRE(alone && mixed);
	const int32_t *one[1] = { a }, *two[2] = { a, b };
	size_t n1[1] = { na }, n2[2] = { na, nb };
	CHECK(clip_encode_tokens(ctx, one, n1, 1, alone, dim, &err) == 0);
	CHECK(clip_encode_tokens(ctx, two, n2, 2, mixed, 2 * dim, &err) == 0);
	double dot = 0, aa = 0, mm = 0;
	for (size_t i = 0; i < dim; i++) {
		dot += (double)alone[i] * mixed[i];
		aa += (double)alone[i] * alone[i];
		mm += (double)mixed[i] * mixed[i];
	}
	CHECK(dot / sqrt(aa * mm) >= 1 - 1e-9);
	/* and the text that does not start with the start token is not the same as with it */
	float *with = malloc(dim * sizeof *with);
	REQUIRE(with != NULL);
	b[0] = a[0];
	const int32_t *wb[1] = { b };
	CHECK(clip_encode_tokens(ctx, wb, &nb, 1, with, dim, &err) == 0);
	double diff = 0;
	for (size_t i = 0; i < dim; i++)
		diff += fabs((double)with[i] - mixed[dim + i]);
	CHECK(diff > 1e-3);
	free(alone);
	free(mixed);
	free(with);
	clip_ctx_free(ctx);
	clip_model_free(m);
}

static void test_cached_first_row_matches_full_pass(void)
{
	check_prefix_paths(HF_DIR);
	check_prefix_paths(OC_DIR);
}

/* Encode the first golden images and texts with the model in dir. */
static int encode_model(clip_model *m, const char *dir, float *out, size_t n)
{
	struct golden g = { 0 };
	clip_ctx *ctx = NULL;
	clip_error err = { 0 };
	float *px = NULL;
	const char *texts[3] = { "a photo of a cat", "", "red bicycle" };
	int rc = -1;
	if (!m || golden_load(HF_DIR, &g) != 0 || clip_ctx_new(m, 2, &ctx, &err) != 0 ||
	    !(px = golden_pixels(m, &g)))
		goto out;
	size_t dim = clip_model_dim(m);
	if (n < 6 * dim || clip_encode_images(ctx, px, 3, out, 3 * dim, &err) != 0 ||
	    clip_encode_texts(ctx, texts, 3, out + 3 * dim, 3 * dim, &err) != 0)
		goto out;
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "  %s: %s\n", dir, err.msg);
	free(px);
	clip_ctx_free(ctx);
	cJSON_Delete(g.root);
	return rc;
}

static int encode_some(const char *dir, float *out, size_t n)
{
	clip_model *m = load(dir);
	int rc = encode_model(m, dir, out, n);
	clip_model_free(m);
	return rc;
}

/* Load dir with the packed-weights cache in cache_dir (and the kernel cpu,
 * NULL: the CPU's best) and encode; *mapped says whether the packed
 * weights came from the cache file. */
static int encode_cached_cpu(const char *dir, const char *cache_dir, const char *cpu, float *out, size_t n,
			     int *mapped)
{
	clip_model *m = NULL;
	clip_error err = { 0 };
	struct clip_params p = clip_default_params();
	p.weights_cache = cache_dir;
	p.cpu = cpu;
	if (clip_model_load(dir, &p, &m, &err) != 0) {
		fprintf(stderr, "  load %s: %s\n", dir, err.msg);
		return -1;
	}
	*mapped = m->pack_map != NULL;
	int rc = encode_model(m, dir, out, n);
	clip_model_free(m);
	return rc;
}

static int encode_cached(const char *dir, const char *cache_dir, float *out, size_t n, int *mapped)
{
	return encode_cached_cpu(dir, cache_dir, NULL, out, n, mapped);
}

/* Files named packed-* in dir. */
static int packed_files(const char *dir)
{
	DIR *d = opendir(dir);
	int files = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		files += !strncmp(e->d_name, "packed-", 7);
	if (d)
		closedir(d);
	return files;
}

static void test_packed_weights_cache(void)
{
	char dir[1024], cache[1024], file[1400], weights[1200];
	snprintf(dir, sizeof dir, "%s/cached-model", tmp);
	snprintf(cache, sizeof cache, "%s/cache/clipd", tmp);   /* created on the first load */
	snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
	REQUIRE(sft_copy_model(HF_DIR, dir, "model.safetensors", NULL, 0) == 0);
	float ref[6 * 48], got[6 * 48];
	int mapped = -1, native = clip_gemm_detect() != CLIP_KERNEL_BLAS;
	REQUIRE(encode_some(dir, ref, 6 * 48) == 0);

	/* first load packs and writes the file; the second maps it */
	REQUIRE(encode_cached(dir, cache, got, 6 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 0);
	CHECK(memcmp(ref, got, sizeof ref) == 0);
	REQUIRE(encode_cached(dir, cache, got, 6 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, native);
	CHECK(memcmp(ref, got, sizeof ref) == 0);
	if (!native)
		return;   /* nothing is packed without the kernel */

	/* the one file there */
	DIR *d = opendir(cache);
	REQUIRE(d);
	int files = 0;
	for (struct dirent *e; (e = readdir(d));)
		if (!strncmp(e->d_name, "packed-", 7) && ++files == 1)
			snprintf(file, sizeof file, "%s/%s", cache, e->d_name);
	closedir(d);
	CHECK_EQ_INT(files, 1);

	/* weights newer than the cache: packed afresh, the file rewritten */
	struct timespec t[2] = { { 1700000000, 0 }, { 1700000000, 0 } };
	REQUIRE(utimensat(AT_FDCWD, weights, t, 0) == 0);
	REQUIRE(encode_cached(dir, cache, got, 6 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 0);
	REQUIRE(encode_cached(dir, cache, got, 6 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 1);
	CHECK(memcmp(ref, got, sizeof ref) == 0);

	/* a cut-short file is not used (and is replaced) */
	struct stat st;
	REQUIRE(stat(file, &st) == 0);
	REQUIRE(truncate(file, st.st_size - 4096) == 0);
	REQUIRE(encode_cached(dir, cache, got, 6 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 0);
	CHECK(memcmp(ref, got, sizeof ref) == 0);
	REQUIRE(stat(file, &st) == 0 && encode_cached(dir, cache, got, 6 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 1);

	/* an unwritable cache directory only costs the repacking */
	REQUIRE(encode_cached(dir, "/proc/clipd-no-such-cache", got, 6 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 0);
	CHECK(memcmp(ref, got, sizeof ref) == 0);

	/* The AVX2 kernel's panels (16 columns, not 32) have a file of their
	 * own beside the AVX-512 kernel's: each kernel maps its own, and
	 * neither is taken for the other nor rewritten by it. */
	if (clip_gemm_detect() < CLIP_KERNEL_AVX512)
		return;
	float ref2[6 * 48];
	REQUIRE(encode_cached_cpu(dir, NULL, "avx2", ref2, 6 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 0);
	REQUIRE(encode_cached_cpu(dir, cache, "avx2", got, 6 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 0);
	CHECK(memcmp(ref2, got, sizeof ref2) == 0);
	CHECK_EQ_INT(packed_files(cache), 2);
	REQUIRE(encode_cached_cpu(dir, cache, "avx2", got, 6 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 1);
	CHECK(memcmp(ref2, got, sizeof ref2) == 0);
	REQUIRE(encode_cached(dir, cache, got, 6 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 1);
	CHECK(memcmp(ref, got, sizeof ref) == 0);
}

static void test_misaligned_weights_give_same_vectors(void)
{
	/* every tensor starts 2 bytes off a float boundary: the loader copies */
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/misaligned", tmp);
	REQUIRE(sft_copy_model(HF_DIR, dir, "model.safetensors", NULL, 2) == 0);
	float a[6 * 48], b[6 * 48];
	REQUIRE(encode_some(HF_DIR, a, 6 * 48) == 0);
	REQUIRE(encode_some(dir, b, 6 * 48) == 0);
	CHECK(memcmp(a, b, sizeof a) == 0);
}

/* Keep either the first half of the tensors (by name) or the rest. */
static int shard_half;
static void keep_half(cJSON *h, unsigned char *extra, size_t *extra_len, size_t data_len)
{
	(void)extra, (void)extra_len, (void)data_len;
	int i = 0, n = cJSON_GetArraySize(h);
	for (cJSON *t = h->child, *next; t; t = next, i++) {
		next = t->next;
		if (!strcmp(t->string, "__metadata__"))
			continue;
		if ((i < n / 2) != (shard_half == 0))
			cJSON_Delete(cJSON_DetachItemViaPointer(h, t));
	}
}

static void test_sharded_checkpoint(void)
{
	char dir[512], path[1024];
	snprintf(dir, sizeof dir, "%s/sharded", tmp);
	mkdir(dir, 0755);
	/* model.safetensors split in two (each shard keeps the whole data
	 * block; only the headers differ), plus the index */
	const char *names[2] = { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" };
	cJSON *index = cJSON_CreateObject(), *map = cJSON_AddObjectToObject(index, "weight_map");
	for (shard_half = 0; shard_half < 2; shard_half++) {
		char sub[512];
		snprintf(sub, sizeof sub, "%s/shard%d", tmp, shard_half);
		REQUIRE(sft_copy_model(HF_DIR, sub, "model.safetensors", keep_half, 0) == 0);
		snprintf(path, sizeof path, "%s/model.safetensors", sub);
		char to[1024];
		snprintf(to, sizeof to, "%s/%s", dir, names[shard_half]);
		REQUIRE(rename(path, to) == 0);
		unsigned char *data;
		size_t len;
		cJSON *h = sft_read(to, &data, &len);
		REQUIRE(h);
		for (const cJSON *t = h->child; t; t = t->next)
			if (strcmp(t->string, "__metadata__"))
				cJSON_AddStringToObject(map, t->string, names[shard_half]);
		cJSON_Delete(h);
		free(data);
	}
	snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
	char *json = cJSON_Print(index);
	FILE *f = fopen(path, "w");
	REQUIRE(f && json);
	fputs(json, f);
	fclose(f);
	cJSON_free(json);
	cJSON_Delete(index);
	sft_link_model_files(HF_DIR, dir);

	clip_model *m = load(dir);
	REQUIRE(m);
	size_t n_files = 0, shards = 0;
	for (const char *const *p = clip_model_files(m); *p; p++, n_files++)
		shards += strstr(*p, "-of-00002.safetensors") != NULL;
	CHECK_EQ_INT(shards, 2);
	clip_model_free(m);
	float a[6 * 48], b[6 * 48];
	REQUIRE(encode_some(HF_DIR, a, 6 * 48) == 0);
	REQUIRE(encode_some(dir, b, 6 * 48) == 0);
	CHECK(memcmp(a, b, sizeof a) == 0);

	/* a shard name that leaves the directory is refused */
	f = fopen(path, "w");
	REQUIRE(f);
	fputs("{\"weight_map\": {\"logit_scale\": \"../model.safetensors\"}}", f);
	fclose(f);
	clip_model *bad = NULL;
	clip_error err = { 0 };
	struct clip_params p = clip_default_params();
	CHECK_EQ_INT(clip_model_load(dir, &p, &bad, &err), CLIP_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "is not a plain file name");
}

static void test_model_metadata(void)
{
	clip_model *m = load(HF_DIR);
	REQUIRE(m);
	CHECK_EQ_INT(clip_model_image_size(m), 224);
	CHECK_EQ_INT(clip_model_input_floats(m), 3 * 224 * 224);
	CHECK_EQ_INT(clip_model_context_length(m), 77);
	CHECK_EQ_INT(clip_model_weight_bytes(m), 15203660);
	CHECK(clip_model_tokenizer(m) != NULL);
	CHECK_NEAR(clip_model_mean(m)[0], 0.48145466, 1e-7);
	CHECK_NEAR(clip_model_std(m)[2], 0.27577711, 1e-7);
	int cfg = 0, weights = 0, vocab = 0;
	for (const char *const *p = clip_model_files(m); *p; p++) {
		cfg += strstr(*p, "/config.json") != NULL;
		weights += strstr(*p, "/model.safetensors") != NULL;
		vocab += strstr(*p, "/vocab.json") != NULL;
	}
	CHECK(cfg == 1 && weights == 1 && vocab == 1);
	clip_model_free(m);

	m = load(OC_DIR);
	REQUIRE(m);
	CHECK_EQ_STR(clip_model_layout(m), "openclip");
	CHECK_EQ_INT(clip_model_dim(m), 64);
	CHECK(clip_model_tokenizer(m) != NULL);  /* the bundled vocabulary */
	clip_model_free(m);
}

static void test_bad_arguments_refused(void)
{
	clip_model *m = load(HF_DIR);
	REQUIRE(m);
	clip_ctx *ctx = NULL;
	clip_error err = { 0 };
	REQUIRE(clip_ctx_new(m, 2, &ctx, &err) == 0);
	float out[2 * 48];
	int32_t ok_ids[3] = { 49406, 320, 49407 }, bad_ids[3] = { 49406, 49408, 49407 };
	const int32_t *rows[2] = { ok_ids, bad_ids };
	size_t lens[2] = { 3, 3 };
	CHECK_EQ_INT(clip_encode_tokens(ctx, rows, lens, 2, out, 2 * 48, &err), CLIP_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "text 1: id 49408 at 1 outside the vocabulary");
	size_t long_len[1] = { 78 };
	CHECK_EQ_INT(clip_encode_tokens(ctx, rows, long_len, 1, out, 48, &err), CLIP_ERR_INVALID);
	CHECK_EQ_INT(clip_encode_tokens(ctx, rows, lens, 1, out, 47, &err), CLIP_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "output holds 47 floats, 48 needed");
	CHECK_EQ_INT(clip_encode_images(ctx, out, CLIP_MAX_BATCH + 1, out, 2 * 48, &err), CLIP_ERR_INVALID);
	/* the good text still encodes, and ids after the end token are ignored */
	int32_t tail[5] = { 49406, 320, 49407, 1000, 2000 };
	const int32_t *r2[2] = { ok_ids, tail };
	size_t l2[2] = { 3, 5 };
	CHECK_EQ_INT(clip_encode_tokens(ctx, r2, l2, 2, out, 2 * 48, &err), 0);
	CHECK(rel_diff(out, out + 48, 48) < 1e-6);
	/* zero inputs is a no-op */
	CHECK_EQ_INT(clip_encode_images(ctx, NULL, 0, NULL, 0, &err), 0);
	clip_ctx_free(ctx);
	clip_model_free(m);
}

static void test_l2_normalize(void)
{
	float v[3] = { 3, 0, 4 }, z[2] = { 0, 0 };
	clip_l2_normalize(v, 3);
	CHECK_NEAR(v[0], 0.6, 1e-7);
	CHECK_NEAR(v[2], 0.8, 1e-7);
	clip_l2_normalize(z, 2);
	CHECK(z[0] == 0 && z[1] == 0);
	CHECK(strncmp(clip_blas_name(), "OpenBLAS", 8) == 0);
	CHECK(clip_blas_core() && *clip_blas_core());
}

int main(void)
{
	tmp = strdup(harness_tmpdir());
	RUN(test_hf_goldens);
	RUN(test_openclip_goldens);
	RUN(test_goldens_with_two_threads);
	RUN(test_batches_chunks_threads_agree);
	RUN(test_cached_first_row_matches_full_pass);
	RUN(test_misaligned_weights_give_same_vectors);
	RUN(test_packed_weights_cache);
	RUN(test_sharded_checkpoint);
	RUN(test_model_metadata);
	RUN(test_bad_arguments_refused);
	RUN(test_l2_normalize);
	free(tmp);
	return harness_done();
}
