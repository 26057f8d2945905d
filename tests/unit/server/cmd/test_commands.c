/*
 * clipd check, clipd index stats|rebuild and clipd reembed, run as the
 * real binary ($CLIPD_BIN) on a data directory filled with real images
 * encoded by the real encoder with one test checkpoint; reembed moves it to
 * the other checkpoint (a different model: another fingerprint and
 * dimension), first stopped part-way, then to the end.
 */
#include <sys/wait.h>

#include "catalog_fixture.h"
#include "clip.h"

#define MODEL_A TEST_DATA_DIR "/tiny-clip-hf"
#define MODEL_B TEST_DATA_DIR "/tiny-clip-openclip"

static const char *const images[] = {
	"astronaut.png", "camera.png", "chelsea.png", "coffee.png", "horse.png", "palette_color.png",
	"rocket.jpg", "hubble_deep_field.jpg", "no_time_for_that_tiny.gif", "small_50x40.bmp", NULL,
};

static const char *bin;
static char data[700], errfile[700];

/* Run clipd with args; stdout into out (may be NULL). Returns the exit status. */
static int clipd(char *out, size_t out_len, const char *args)
{
	char cmd[2600];
	snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s'", bin, args, errfile);
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	size_t n = 0;
	char sink[4096];
	if (!out) {
		out = sink;
		out_len = sizeof sink;
	}
	while (n + 1 < out_len && fgets(out + n, (int)(out_len - n), p))
		n += strlen(out + n);
	out[n] = 0;
	int status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void last_stderr(char *buf, size_t len)
{
	size_t n = 0;
	unsigned char *b = harness_read_file(errfile, &n);
	snprintf(buf, len, "%s", b ? (char *)b : "");
	free(b);
}

/* The normalised embedding of an image file under model m. */
static int embed(clip_model *m, clip_ctx *ctx, const char *file, float *out)
{
	char path[600];
	snprintf(path, sizeof path, "%s/images/%s", TEST_DATA_DIR, file);
	size_t len = 0;
	unsigned char *bytes = harness_read_file(path, &len);
	clip_image img = { 0 };
	clip_error ce;
	size_t nf = clip_model_input_floats(m);
	float *px = malloc(nf * sizeof *px);
	int rc = -1;
	if (bytes && px && clip_image_decode(bytes, len, 1 << 26, &img, &ce) == 0 &&
	    clip_image_preprocess(m, &img, px, nf, &ce) == 0 &&
	    clip_encode_images(ctx, px, 1, out, clip_model_dim(m), &ce) == 0) {
		clip_l2_normalize(out, clip_model_dim(m));
		rc = 0;
	}
	clip_image_free(&img);
	free(px);
	free(bytes);
	return rc;
}

static catalog *open_with(clip_model *m, const char *dir, store_error *err)
{
	struct catalog_params p = catalog_default_params();
	p.data_dir = data;
	p.model_files = clip_model_files(m);
	p.model_dir = dir;
	p.model_layout = clip_model_layout(m);
	p.index.dim = clip_model_dim(m);
	catalog *c = NULL;
	return catalog_open(&p, &c, NULL, err) == 0 ? c : NULL;
}

static int64_t ids[16];

static void test_fill_with_model_a(void)
{
	struct clip_params cp = clip_default_params();
	clip_model *m = NULL;
	clip_ctx *ctx = NULL;
	clip_error ce;
	REQUIRE(clip_model_load(MODEL_A, &cp, &m, &ce) == 0);
	REQUIRE(clip_ctx_new(m, 1, &ctx, &ce) == 0);
	store_error err = { 0 };
	catalog *c = open_with(m, MODEL_A, &err);
	REQUIRE(c);
	size_t dim = clip_model_dim(m);
	float *v = malloc(dim * sizeof *v);
	for (int i = 0; images[i]; i++) {
		char path[600];
		snprintf(path, sizeof path, "%s/images/%s", TEST_DATA_DIR, images[i]);
		size_t len = 0;
		unsigned char *bytes = harness_read_file(path, &len);
		REQUIRE(bytes && embed(m, ctx, images[i], v) == 0);
		struct catalog_new_image in = { .data = bytes, .len = len, .mime = "image/png", .width = 1,
						.height = 1, .filename = images[i], .vec = v, .dim = dim };
		struct store_image img;
		CHECK(catalog_add(c, &in, &img, NULL, &err) == 0);
		ids[i] = img.id;
		store_image_clear(&img);
		free(bytes);
	}
	free(v);
	catalog_close(c);
	clip_ctx_free(ctx);
	clip_model_free(m);
}

static void test_check_and_stats(void)
{
	char out[8192], errbuf[2048];
	char args[1000];
	snprintf(args, sizeof args, "check --data '%s'", data);
	CHECK_EQ_INT(clipd(out, sizeof out, args), 0);
	CHECK_EQ_STR(out, "");
	last_stderr(errbuf, sizeof errbuf);
	CHECK_CONTAINS(errbuf, "consistent");

	snprintf(args, sizeof args, "index stats --data '%s'", data);
	CHECK_EQ_INT(clipd(out, sizeof out, args), 0);
	CHECK_CONTAINS(out, "\"count\":10,");
	CHECK_CONTAINS(out, "\"images\":10,");
	CHECK_CONTAINS(out, "\"type\":\"Flat\"");
	CHECK_CONTAINS(out, "\"name\":\"tiny-clip-hf\"");
	CHECK_CONTAINS(out, "\"dim\":48");
	CHECK_CONTAINS(out, "\"size_on_disk\":");
	CHECK_CONTAINS(out, "\"sequence\":10");

	/* A missing original: one line, exit status 1. */
	store_error err = { 0 };
	struct catalog_params p = catalog_default_params();
	p.data_dir = data;
	p.readonly = 1;
	p.no_index = 1;
	catalog *c = NULL;
	REQUIRE(catalog_open(&p, &c, NULL, &err) == 0);
	struct store_image img;
	REQUIRE(catalog_get(c, ids[2], &img, &err) == 0);
	char blob[1000], moved[1100];
	catalog_blob_path(c, img.sha256, blob, sizeof blob, &err);
	store_image_clear(&img);
	catalog_close(c);
	snprintf(moved, sizeof moved, "%s.away", blob);
	REQUIRE(rename(blob, moved) == 0);
	snprintf(args, sizeof args, "check --data '%s'", data);
	CHECK_EQ_INT(clipd(out, sizeof out, args), 1);
	CHECK_CONTAINS(out, "is missing");
	CHECK(strchr(out, '\n') == out + strlen(out) - 1);   /* exactly one line */
	REQUIRE(rename(moved, blob) == 0);
	CHECK_EQ_INT(clipd(out, sizeof out, args), 0);

	/* Not a data directory: one line, exit 1. */
	snprintf(args, sizeof args, "check --data '%s/nowhere'", data);
	CHECK_EQ_INT(clipd(out, sizeof out, args), 1);
	CHECK_CONTAINS(out, "not a clipd data directory");
	CHECK_EQ_INT(clipd(out, sizeof out, "check"), 2);
	CHECK_EQ_INT(clipd(out, sizeof out, "index sideways --data x"), 2);
}

static void test_rebuild_and_lock(void)
{
	char out[4096], errbuf[2048], args[1000];
	snprintf(args, sizeof args, "index rebuild --data '%s'", data);
	CHECK_EQ_INT(clipd(out, sizeof out, args), 0);
	CHECK_CONTAINS(out, "10 vectors");
	/* While another process holds the directory, rebuild and reembed refuse. */
	struct clip_params cp = clip_default_params();
	clip_model *m = NULL;
	clip_error ce;
	REQUIRE(clip_model_load(MODEL_A, &cp, &m, &ce) == 0);
	store_error err = { 0 };
	catalog *c = open_with(m, MODEL_A, &err);
	REQUIRE(c);
	CHECK_EQ_INT(clipd(out, sizeof out, args), 1);
	last_stderr(errbuf, sizeof errbuf);
	CHECK_CONTAINS(errbuf, "in use by another clipd process");
	snprintf(args, sizeof args, "reembed --model '%s' --data '%s'", MODEL_B, data);
	CHECK_EQ_INT(clipd(out, sizeof out, args), 1);
	last_stderr(errbuf, sizeof errbuf);
	CHECK_CONTAINS(errbuf, "in use");
	/* check and stats only read: they run beside it. */
	snprintf(args, sizeof args, "check --data '%s'", data);
	CHECK_EQ_INT(clipd(out, sizeof out, args), 0);
	catalog_close(c);
	clip_model_free(m);
}

static void test_reembed_resumes_and_switches(void)
{
	char out[4096], errbuf[4096], args[1000];
	/* Stopped after 4 images: exit 3, the old model still serves. */
	snprintf(args, sizeof args, "reembed --model '%s' --data '%s' --batch 3 --max-images 4", MODEL_B, data);
	CHECK_EQ_INT(clipd(out, sizeof out, args), 3);
	last_stderr(errbuf, sizeof errbuf);
	CHECK_CONTAINS(errbuf, "6 remain");

	struct clip_params cp = clip_default_params();
	clip_model *a = NULL, *b = NULL;
	clip_ctx *ctx = NULL;
	clip_error ce;
	store_error err = { 0 };
	REQUIRE(clip_model_load(MODEL_A, &cp, &a, &ce) == 0);
	REQUIRE(clip_model_load(MODEL_B, &cp, &b, &ce) == 0);
	catalog *c = open_with(a, MODEL_A, &err);
	REQUIRE(c);
	catalog_close(c);
	c = open_with(b, MODEL_B, &err);
	CHECK(c == NULL);
	CHECK_EQ_INT(err.code, STORE_ERR_MODEL);

	/* The rest, then the switch. */
	snprintf(args, sizeof args, "reembed --model '%s' --data '%s' --batch 4", MODEL_B, data);
	CHECK_EQ_INT(clipd(out, sizeof out, args), 0);
	last_stderr(errbuf, sizeof errbuf);
	CHECK_CONTAINS(errbuf, "4 already done");
	CHECK_CONTAINS(errbuf, "now holds vectors of tiny-clip-openclip");

	/* Now model A is the foreign one, with the way out in the message. */
	c = open_with(a, MODEL_A, &err);
	CHECK(c == NULL);
	CHECK_EQ_INT(err.code, STORE_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "tiny-clip-openclip");
	CHECK_CONTAINS(err.msg, "tiny-clip-hf");
	CHECK_CONTAINS(err.msg, "clipd reembed --model");

	struct catalog_open_report rep;
	struct catalog_params p = catalog_default_params();
	p.data_dir = data;
	p.model_files = clip_model_files(b);
	p.index.dim = clip_model_dim(b);
	c = NULL;
	REQUIRE(catalog_open(&p, &c, &rep, &err) == 0);
	CHECK(rep.index_loaded);   /* reembed saved the new index */
	CHECK_EQ_INT(catalog_dim(c), 64);
	REQUIRE(clip_ctx_new(b, 1, &ctx, &ce) == 0);
	float v[64];
	for (int i = 0; images[i]; i++) {
		REQUIRE(embed(b, ctx, images[i], v) == 0);
		struct catalog_query q = catalog_default_query();
		q.vec = v;
		q.dim = 64;
		q.k = 1;
		struct catalog_results r;
		REQUIRE(catalog_search(c, &q, &r, &err) == 0);
		CHECK_EQ_INT(r.n ? r.hits[0].image.id : 0, ids[i]);
		CHECK(r.n && r.hits[0].score > 0.9999f);
		catalog_results_free(&r);
	}
	int problems = 0;
	CHECK_EQ_INT(catalog_check(c, fx_count_problem, &problems, &err), 0);
	catalog_close(c);

	/* Again with the same model: nothing to do. */
	CHECK_EQ_INT(clipd(out, sizeof out, args), 0);
	last_stderr(errbuf, sizeof errbuf);
	CHECK_CONTAINS(errbuf, "nothing to do");
	clip_ctx_free(ctx);
	clip_model_free(a);
	clip_model_free(b);
}

int main(void)
{
	bin = getenv("CLIPD_BIN");
	if (!bin || access(bin, X_OK) != 0) {
		printf("# skipped: CLIPD_BIN is not set to the clipd binary\n");
		return 77;
	}
	const char *tmp = harness_tmpdir();
	snprintf(data, sizeof data, "%s/data", tmp);
	snprintf(errfile, sizeof errfile, "%s/stderr", tmp);
	RUN(test_fill_with_model_a);
	RUN(test_check_and_stats);
	RUN(test_rebuild_and_lock);
	RUN(test_reembed_resumes_and_switches);
	return harness_done();
}
