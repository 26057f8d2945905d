/*
 * The encoder's precisions and kernels on both fixture checkpoints:
 *
 *  - bf16 against the reference goldens: every image and text embedding
 *    at cosine >= 0.998, and zero-shot classification of the golden
 *    images over the fixture labels (the golden texts that name things)
 *    picks the same top label as fp32;
 *  - the AVX2 kernel, forced on (clip_params.cpu), and the OpenBLAS path
 *    (what ARM64 runs): every golden at cosine >= 0.99999, and the same
 *    vectors as the CPU's own kernel to that bound;
 *  - bf16 refused, with the feature named, on a CPU without AVX512_BF16
 *    (simulated with the same override);
 *  - a BF16 checkpoint at bf16 precision: its layers' weights are packed
 *    from the file's bf16 values, never widened to float32;
 *  - the packed weights' cache holds a file per precision.
 */
#include <dirent.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "golden_fixture.h"
#include "sft_fixture.h"

#include "clip.h"
#include "gemm.h"
#include "model.h"

#define HF_DIR TEST_DATA_DIR "/tiny-clip-hf"
#define OC_DIR TEST_DATA_DIR "/tiny-clip-openclip"
#define BF16_BOUND 0.998
#define KERNEL_BOUND 0.99999
/* The golden texts that name a thing ("a photo of a cat" ... "a horse"):
 * the labels of the zero-shot check. */
#define N_LABELS 11

static char *tmp;

static clip_model *load_with(const char *dir, int precision, const char *cpu, const char *cache, clip_error *err)
{
	struct clip_params p = clip_default_params();
	clip_model *m = NULL;
	p.precision = precision;
	p.cpu = cpu;
	p.weights_cache = cache;
	if (clip_model_load(dir, &p, &m, err) != 0)
		return NULL;
	return m;
}

static double cosine(const float *a, const float *b, size_t n)
{
	double dot = 0, aa = 0, bb = 0;
	for (size_t i = 0; i < n; i++) {
		dot += (double)a[i] * b[i];
		aa += (double)a[i] * a[i];
		bb += (double)b[i] * b[i];
	}
	return dot / sqrt(aa * bb);
}

/* Every golden image, then every golden text, of g encoded by m into
 * *out ((n_images + n_texts) x dim floats, the caller frees); 0 or -1. */
static int encode_goldens(const clip_model *m, const struct golden *g, float **out)
{
	clip_ctx *ctx = NULL;
	clip_error err = { 0 };
	float *px = golden_pixels(m, g);
	const char **texts = golden_texts(g);
	int rc = -1;
	*out = malloc((g->n_images + g->n_texts) * g->dim * sizeof **out);
	if (px && texts && *out && clip_ctx_new(m, 2, &ctx, &err) == 0 &&
	    clip_encode_images(ctx, px, g->n_images, *out, g->n_images * g->dim, &err) == 0 &&
	    clip_encode_texts(ctx, texts, g->n_texts, *out + g->n_images * g->dim, g->n_texts * g->dim, &err) == 0)
		rc = 0;
	else
		HARNESS_FAIL("encoding the goldens: %s", err.msg);
	clip_ctx_free(ctx);
	free(px);
	free(texts);
	return rc;
}

/* The worst cosine of the vectors in v with the golden embeddings; every
 * one below bound fails, named. */
static double against_goldens(const char *what, const struct golden *g, const float *v, double bound)
{
	double worst = 1;
	for (size_t i = 0; i < g->n_images + g->n_texts; i++) {
		int image = i < g->n_images;
		const cJSON *item = cJSON_GetArrayItem(image ? g->images : g->texts,
						       (int)(image ? i : i - g->n_images));
		double c = cosine_json(v + i * g->dim, cJSON_GetObjectItem(item, "embedding"), g->dim);
		if (!(c >= bound))
			HARNESS_FAIL("%s: %s \"%.40s\": cosine %.7f < %g", what, image ? "image" : "text",
				     cJSON_GetObjectItem(item, image ? "file" : "text")->valuestring, c, bound);
		worst = fmin(worst, c);
	}
	return worst;
}

/* The index of the label whose text vector is nearest image i's (v holds
 * the images, then the texts, the first N_LABELS of which are the labels);
 * *margin: its lead over the second. */
static size_t top_label(const struct golden *g, const float *v, size_t i, double *margin)
{
	double best = -2, second = -2;
	size_t arg = 0;
	for (size_t l = 0; l < N_LABELS; l++) {
		double c = cosine(v + i * g->dim, v + (g->n_images + l) * g->dim, g->dim);
		if (c > best) {
			second = best;
			best = c;
			arg = l;
		} else if (c > second) {
			second = c;
		}
	}
	*margin = best - second;
	return arg;
}

static void check_bf16_fidelity(const char *dir)
{
	struct golden g = { 0 };
	clip_error err = { 0 };
	float *v32 = NULL, *v16 = NULL;
	REQUIRE(golden_load(dir, &g) == 0);
	clip_model *m32 = load_with(dir, CLIP_PRECISION_FP32, NULL, NULL, &err);
	clip_model *m16 = load_with(dir, CLIP_PRECISION_BF16, NULL, NULL, &err);
	REQUIRE(m32 && m16);
	CHECK_EQ_STR(clip_model_precision(m16), "bf16");
	CHECK_EQ_STR(clip_model_kernel(m16), "avx512-bf16");
	CHECK_EQ_STR(clip_model_precision(m32), "fp32");
	REQUIRE(encode_goldens(m32, &g, &v32) == 0 && encode_goldens(m16, &g, &v16) == 0);
	double worst = against_goldens(dir, &g, v16, BF16_BOUND);
	double worst_img = 1;
	for (size_t i = 0; i < g.n_images; i++)
		worst_img = fmin(worst_img, cosine_json(v16 + i * g.dim,
							cJSON_GetObjectItem(cJSON_GetArrayItem(g.images, (int)i),
									    "embedding"), g.dim));
	printf("     %s bf16: worst cosine with the goldens %.6f (images %.6f), %zu images, %zu texts\n",
	       clip_model_layout(m16), worst, worst_img, g.n_images, g.n_texts);
	/* and the same zero-shot answers */
	double least = 1;
	for (size_t i = 0; i < g.n_images; i++) {
		double m32_margin, m16_margin;
		size_t a = top_label(&g, v32, i, &m32_margin), b = top_label(&g, v16, i, &m16_margin);
		if (a != b)
			HARNESS_FAIL("%s: image %zu: top label \"%s\" at fp32, \"%s\" at bf16", dir, i,
				     cJSON_GetObjectItem(cJSON_GetArrayItem(g.texts, (int)a), "text")->valuestring,
				     cJSON_GetObjectItem(cJSON_GetArrayItem(g.texts, (int)b), "text")->valuestring);
		least = fmin(least, m32_margin);
	}
	printf("     %s: zero-shot over %d labels, %zu images: the same top labels (smallest fp32 lead %.4f)\n",
	       clip_model_layout(m16), N_LABELS, g.n_images, least);
	free(v32);
	free(v16);
	clip_model_free(m32);
	clip_model_free(m16);
	cJSON_Delete(g.root);
}

static int have_bf16(void)
{
	if (clip_gemm_detect() >= CLIP_KERNEL_AVX512_BF16)
		return 1;
	printf("     this CPU has no AVX512_BF16: bf16 is refused (test_bf16_refused_without_the_feature)\n");
	return 0;
}

static void test_bf16_fidelity(void)
{
	if (!have_bf16())
		return;
	check_bf16_fidelity(HF_DIR);
	check_bf16_fidelity(OC_DIR);
}

/* The forced kernel against the goldens and against the CPU's own. */
static void check_forced_kernel(const char *dir, const char *cpu)
{
	struct golden g = { 0 };
	clip_error err = { 0 };
	float *own = NULL, *forced = NULL;
	REQUIRE(golden_load(dir, &g) == 0);
	clip_model *a = load_with(dir, CLIP_PRECISION_FP32, NULL, NULL, &err);
	clip_model *b = load_with(dir, CLIP_PRECISION_FP32, cpu, NULL, &err);
	REQUIRE(a && b);
	CHECK_EQ_STR(clip_model_kernel(b), cpu);
	REQUIRE(encode_goldens(a, &g, &own) == 0 && encode_goldens(b, &g, &forced) == 0);
	char what[1200];
	snprintf(what, sizeof what, "%s, kernel %s", dir, cpu);
	double worst = against_goldens(what, &g, forced, KERNEL_BOUND), same = 1;
	for (size_t i = 0; i < g.n_images + g.n_texts; i++)
		same = fmin(same, cosine(own + i * g.dim, forced + i * g.dim, g.dim));
	if (!(same >= KERNEL_BOUND))
		HARNESS_FAIL("%s: cosine %.9f with kernel %s's vectors", what, same, clip_model_kernel(a));
	printf("     %s %s: worst cosine with the goldens 1 - %.2g, with %s's vectors 1 - %.2g\n",
	       clip_model_layout(b), cpu, 1 - worst, clip_model_kernel(a), 1 - same);
	free(own);
	free(forced);
	clip_model_free(a);
	clip_model_free(b);
	cJSON_Delete(g.root);
}

static void test_forced_avx2_kernel(void)
{
	if (clip_gemm_detect() < CLIP_KERNEL_AVX2) {
		printf("     this CPU has no AVX2 and FMA: the AVX2 kernel cannot be forced\n");
		return;
	}
	check_forced_kernel(HF_DIR, "avx2");
	check_forced_kernel(OC_DIR, "avx2");
}

static void test_openblas_path(void)
{
	check_forced_kernel(HF_DIR, "openblas");
	check_forced_kernel(OC_DIR, "openblas");
}

static void test_bf16_refused_without_the_feature(void)
{
	static const char *const lesser[] = { "avx512", "avx2", "openblas" };
	for (size_t i = 0; i < sizeof lesser / sizeof lesser[0]; i++) {
		clip_error err = { 0 };
		struct clip_params p = clip_default_params();
		p.precision = CLIP_PRECISION_BF16;
		p.cpu = lesser[i];
		CHECK_EQ_INT(clip_precision_check(&p, &err), CLIP_ERR_INVALID);
		CHECK_CONTAINS(err.msg, "AVX512_BF16");
		memset(&err, 0, sizeof err);
		clip_model *m = (clip_model *)1;
		CHECK_EQ_INT(clip_model_load(HF_DIR, &p, &m, &err), CLIP_ERR_INVALID);
		CHECK(m == NULL);
		CHECK_CONTAINS(err.msg, "bf16 precision needs a CPU with AVX512_BF16");
	}
	/* without the override, as the CPU is */
	clip_error err = { 0 };
	struct clip_params p = clip_default_params();
	p.precision = CLIP_PRECISION_BF16;
	CHECK_EQ_INT(clip_precision_check(&p, &err), clip_gemm_detect() >= CLIP_KERNEL_AVX512_BF16 ? 0 : CLIP_ERR_INVALID);
	/* fp32 runs on anything; an unknown override or precision is refused */
	p.precision = CLIP_PRECISION_FP32;
	p.cpu = "openblas";
	CHECK_EQ_INT(clip_precision_check(&p, &err), 0);
	p.cpu = "pentium";
	CHECK_EQ_INT(clip_precision_check(&p, &err), CLIP_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "CPU override \"pentium\"");
	p.cpu = NULL;
	p.precision = 7;
	CHECK_EQ_INT(clip_precision_check(&p, &err), CLIP_ERR_INVALID);
	int prec = -1;
	CHECK(clip_precision_parse("bf16", &prec) == 0 && prec == CLIP_PRECISION_BF16);
	CHECK(clip_precision_parse("fp32", &prec) == 0 && prec == CLIP_PRECISION_FP32);
	CHECK(clip_precision_parse("fp16", &prec) == -1 && clip_precision_parse(NULL, &prec) == -1);
}

/* The tiny HF checkpoint with every F32 tensor rounded to BF16. */
static int write_bf16_checkpoint(const char *dst)
{
	char path[1024];
	unsigned char *data = NULL;
	size_t len = 0, off = 0;
	snprintf(path, sizeof path, "%s/model.safetensors", HF_DIR);
	cJSON *h = sft_read(path, &data, &len);
	uint16_t *out = malloc(len);
	int rc = -1;
	if (!h || !out)
		goto done;
	for (cJSON *t = h->child; t; t = t->next) {
		if (!strcmp(t->string, "__metadata__"))
			continue;
		cJSON *offs = cJSON_GetObjectItem(t, "data_offsets");
		size_t a = (size_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
		size_t b = (size_t)cJSON_GetArrayItem(offs, 1)->valuedouble, n = (b - a) / 4;
		float *f = malloc(n * sizeof *f + 1);
		if (!f || strcmp(cJSON_GetObjectItem(t, "dtype")->valuestring, "F32")) {
			free(f);
			goto done;
		}
		memcpy(f, data + a, n * sizeof *f);
		clip_bf16_round(f, n, out + off);
		free(f);
		cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString("BF16"));
		cJSON_ReplaceItemInArray(offs, 0, cJSON_CreateNumber((double)(off * 2)));
		cJSON_ReplaceItemInArray(offs, 1, cJSON_CreateNumber((double)((off + n) * 2)));
		off += n;
	}
	mkdir(dst, 0755);
	sft_link_model_files(HF_DIR, dst);
	snprintf(path, sizeof path, "%s/model.safetensors", dst);
	rc = sft_write_json(path, h, (const unsigned char *)out, off * 2, 0);
done:
	cJSON_Delete(h);
	free(data);
	free(out);
	return rc;
}

/* Converted tensors the model keeps (freed ones included: packed weights). */
static size_t converted(const clip_model *m)
{
	return m->n_owned;
}

static void test_bf16_checkpoint_not_widened(void)
{
	if (!have_bf16())
		return;
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/bf16-model", tmp);
	REQUIRE(write_bf16_checkpoint(dir) == 0);
	clip_error err = { 0 };
	clip_model *m32 = load_with(dir, CLIP_PRECISION_FP32, NULL, NULL, &err);
	clip_model *m16 = load_with(dir, CLIP_PRECISION_BF16, NULL, NULL, &err);
	REQUIRE(m32 && m16);
	/* at fp32 every tensor is converted; at bf16 all but the products'
	 * weights (6 per layer and the patch embedding), packed as they are */
	size_t weights = (size_t)(m16->arch.vision.layers + m16->arch.text.layers) * 6 + 1;
	CHECK_EQ_INT(converted(m32) - converted(m16), weights);
	CHECK(m16->vis_layers[0].q.packed != NULL && m16->patch.packed != NULL);
	struct golden g = { 0 };
	float *a = NULL, *b = NULL;
	REQUIRE(golden_load(HF_DIR, &g) == 0);
	REQUIRE(encode_goldens(m32, &g, &a) == 0 && encode_goldens(m16, &g, &b) == 0);
	double worst = 1;
	for (size_t i = 0; i < g.n_images + g.n_texts; i++)
		worst = fmin(worst, cosine(a + i * g.dim, b + i * g.dim, g.dim));
	CHECK(worst >= BF16_BOUND);
	printf("     BF16 checkpoint: bf16 against fp32 precision, worst cosine %.6f\n", worst);
	free(a);
	free(b);
	cJSON_Delete(g.root);
	clip_model_free(m32);
	clip_model_free(m16);
}

/* Encode the first golden texts with a model loaded through cache. */
static int encode_cached(int precision, const char *cache, float *out, size_t n, int *mapped)
{
	clip_error err = { 0 };
	clip_ctx *ctx = NULL;
	const char *texts[3] = { "a photo of a cat", "", "red bicycle" };
	clip_model *m = load_with(HF_DIR, precision, NULL, cache, &err);
	int rc = -1;
	if (m && clip_ctx_new(m, 1, &ctx, &err) == 0 && clip_encode_texts(ctx, texts, 3, out, n, &err) == 0)
		rc = 0;
	*mapped = m && m->pack_map != NULL;
	clip_ctx_free(ctx);
	clip_model_free(m);
	return rc;
}

static void test_weights_cache_per_precision(void)
{
	if (!have_bf16())
		return;
	char cache[1024];
	float a32[3 * 48], b32[3 * 48], a16[3 * 48], b16[3 * 48];
	int mapped = -1;
	snprintf(cache, sizeof cache, "%s/cache", tmp);
	REQUIRE(encode_cached(CLIP_PRECISION_FP32, cache, a32, 3 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 0);
	REQUIRE(encode_cached(CLIP_PRECISION_BF16, cache, a16, 3 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 0);   /* not the fp32 file */
	REQUIRE(encode_cached(CLIP_PRECISION_BF16, cache, b16, 3 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 1);
	CHECK(memcmp(a16, b16, sizeof a16) == 0);
	REQUIRE(encode_cached(CLIP_PRECISION_FP32, cache, b32, 3 * 48, &mapped) == 0);
	CHECK_EQ_INT(mapped, 1);
	CHECK(memcmp(a32, b32, sizeof a32) == 0);
	CHECK(memcmp(a32, a16, sizeof a32) != 0);
	int files = 0, bf16 = 0;
	DIR *d = opendir(cache);
	REQUIRE(d);
	for (struct dirent *e; (e = readdir(d));) {
		files += !strncmp(e->d_name, "packed-", 7);
		bf16 += strstr(e->d_name, "-bf16.bin") != NULL;
	}
	closedir(d);
	CHECK_EQ_INT(files, 2);
	CHECK_EQ_INT(bf16, 1);
}

int main(void)
{
	tmp = strdup(harness_tmpdir());
	RUN(test_bf16_fidelity);
	RUN(test_forced_avx2_kernel);
	RUN(test_openblas_path);
	RUN(test_bf16_refused_without_the_feature);
	RUN(test_bf16_checkpoint_not_widened);
	RUN(test_weights_cache_per_precision);
	free(tmp);
	return harness_done();
}
