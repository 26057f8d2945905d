/*
 * clipd reembed --model DIR --data DIR [--precision P] [--batch N] [--threads N] [--max-images N]
 *
 * Moves a collection to another model: re-encodes every stored original
 * with the model in DIR (with the JPEG fast path unless --exact-decode),
 * stores the new vectors beside the old ones (a transaction per batch)
 * and each image's capture time as its original states it, and when every image has one, makes the new
 * model the data directory's model in one transaction, drops the old
 * vectors and rebuilds and saves the index. clipd serve then takes the new
 * model (and refuses the old one). The precision is part of the model:
 * reembed --precision bf16 with the same model directory converts a
 * collection to bf16 vectors (and --precision fp32 back).
 *
 * Resumable: an interrupted run keeps the batches it committed, and the
 * next run encodes only the images still missing a vector. Until the
 * switch the old model keeps serving (when reembed is not running: it
 * holds the data directory's lock). Progress goes to stderr, redrawn on a
 * terminal, a line per tenth otherwise.
 *
 * Exit status: 0 switched (or already on that model), 1 failed, 2 usage,
 * 3 stopped early by --max-images (run it again to continue).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "files.h"
#include "clock.h"
#include "clip.h"
#include "commands.h"
#include "srv_json.h"

#define REEMBED_MAX_BATCH 256

struct progress {
	int tty;
	int64_t total, done_at_start;
	double t0, last_draw;
	int last_tenth;
};

static void progress_show(struct progress *p, int64_t done, int final)
{
	double now = clock_mono_s();
	int64_t this_run = done - p->done_at_start;
	double rate = now > p->t0 ? this_run / (now - p->t0) : 0;
	double pct = p->total ? 100.0 * (double)done / (double)p->total : 100.0;
	if (p->tty) {
		if (!final && now - p->last_draw < 0.2)
			return;
		p->last_draw = now;
		double eta = rate > 0 ? (double)(p->total - done) / rate : 0;
		fprintf(stderr, "\rclipd reembed: %lld/%lld images (%.1f%%), %.1f images/s, %d min %02d s left ",
			(long long)done, (long long)p->total, pct, rate, (int)(eta / 60), (int)fmod(eta, 60));
		if (final)
			fputc('\n', stderr);
	} else {
		int tenth = (int)(pct / 10);
		if (!final && tenth == p->last_tenth)
			return;
		p->last_tenth = tenth;
		fprintf(stderr, "clipd reembed: %lld/%lld images (%.0f%%), %.1f images/s\n",
			(long long)done, (long long)p->total, pct, rate);
	}
}

/* Encode one batch of images (ids) and store their vectors under fp; the
 * capture time read from each original is stored first (a run stopped
 * between the two redoes the batch). */
static int encode_batch(catalog *c, clip_model *m, clip_ctx *ctx, const struct clip_decode_params *dp,
			const char *fp, const int64_t *ids, size_t n, float *pixels, float *vecs,
			struct store_taken_at *taken)
{
	size_t nf = clip_model_input_floats(m), dim = clip_model_dim(m);
	store_error err = { 0 };
	clip_error ce;
	for (size_t i = 0; i < n; i++) {
		struct store_image img;
		unsigned char *bytes = NULL;
		size_t len = 0;
		if (cmd_read_original(c, ids[i], &img, &bytes, &len, &err) != 0) {
			fprintf(stderr, "\nclipd reembed: image %lld: %s; restore the file or delete the image, "
				"then run clipd reembed again\n", (long long)ids[i], err.msg);
			return -1;
		}
		clip_image decoded = { 0 };
		int rc = clip_image_decode_with(bytes, len, dp, &decoded, &ce);
		free(bytes);
		if (rc == 0)
			rc = clip_image_preprocess(m, &decoded, pixels + i * nf, nf, &ce);
		srv_taken_at(decoded.taken_at, &taken[i]);
		clip_image_free(&decoded);
		if (rc != 0) {
			fprintf(stderr, "\nclipd reembed: image %lld (%s): %s; delete the image, then run clipd "
				"reembed again\n", (long long)ids[i], img.sha256, ce.msg);
			store_image_clear(&img);
			return -1;
		}
		store_image_clear(&img);
	}
	if (clip_encode_images(ctx, pixels, n, vecs, n * dim, &ce) != 0) {
		fprintf(stderr, "\nclipd reembed: encoding failed: %s\n", ce.msg);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		clip_l2_normalize(vecs + i * dim, dim);
	if (catalog_set_taken_at(c, ids, taken, n, NULL, &err) != 0 ||
	    catalog_put_vectors(c, ids, n, fp, vecs, dim, &err) != 0) {
		fprintf(stderr, "\nclipd reembed: storing vectors: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int reembed(const char *model_dir, const char *data_dir, int precision, size_t batch, int threads,
		   long long max_images, int exact_decode)
{
	struct catalog_params p = catalog_default_params();
	struct clip_params cp = clip_default_params();
	catalog *c = NULL;
	clip_model *m = NULL;
	clip_ctx *ctx = NULL;
	store_error err = { 0 };
	clip_error ce;
	int64_t *ids = NULL;
	float *pixels = NULL, *vecs = NULL;
	struct store_taken_at *taken = NULL;
	int rc = 1;

	p.data_dir = data_dir;
	p.no_index = 1;   /* built once, after the switch */
	if (catalog_open(&p, &c, NULL, &err) != 0) {
		fprintf(stderr, "clipd reembed: %s\n", err.msg);
		return 1;
	}
	if (cmd_model_load(model_dir, NULL, cp.max_pixels, precision, &m, &ce) != 0) {
		fprintf(stderr, "clipd reembed: %s: %s\n", model_dir, ce.msg);
		goto out;
	}
	struct store_model target;
	memset(&target, 0, sizeof target);
	double hash_ms = 0;
	if (catalog_fingerprint(c, clip_model_files(m), clip_model_precision(m), target.fingerprint, &hash_ms,
				&err) != 0) {
		fprintf(stderr, "clipd reembed: %s\n", err.msg);
		goto out;
	}
	files_base_name(model_dir, target.name, sizeof target.name);
	snprintf(target.layout, sizeof target.layout, "%s", clip_model_layout(m));
	target.dim = clip_model_dim(m);
	const struct store_model *current = catalog_model(c);
	if (!strcmp(current->fingerprint, target.fingerprint)) {
		fprintf(stderr, "clipd reembed: %s already holds vectors of %s (%.12s): nothing to do\n",
			data_dir, current->name, current->fingerprint);
		rc = 0;
		goto out;
	}
	if (catalog_put_model(c, &target, &err) != 0) {
		fprintf(stderr, "clipd reembed: %s\n", err.msg);
		goto out;
	}
	int64_t total = 0, done = 0;
	if (catalog_count(c, &total, &err) != 0 ||
	    catalog_count_vectors(c, target.fingerprint, &done, &err) != 0) {
		fprintf(stderr, "clipd reembed: %s\n", err.msg);
		goto out;
	}
	fprintf(stderr, "clipd reembed: %s: from %s (%.12s) to %s (%.12s): %lld images, %lld already done\n",
		data_dir, current->name, current->fingerprint, target.name, target.fingerprint,
		(long long)total, (long long)done);
	if (clip_ctx_new(m, threads, &ctx, &ce) != 0) {
		fprintf(stderr, "clipd reembed: %s\n", ce.msg);
		goto out;
	}
	size_t nf = clip_model_input_floats(m);
	struct clip_decode_params dp = clip_model_decode_params(m, cp.max_pixels, exact_decode);
	ids = malloc(batch * sizeof *ids);
	pixels = malloc(batch * nf * sizeof *pixels);
	vecs = malloc(batch * target.dim * sizeof *vecs);
	taken = malloc(batch * sizeof *taken);
	if (!ids || !pixels || !vecs || !taken) {
		fprintf(stderr, "clipd reembed: out of memory\n");
		goto out;
	}
	struct progress pr = { .tty = isatty(2), .total = total, .done_at_start = done, .t0 = clock_mono_s(),
			       .last_tenth = -1 };
	int64_t after = 0, this_run = 0;
	for (;;) {
		size_t want = batch, n = 0;
		if (max_images > 0 && this_run + (int64_t)want > max_images)
			want = (size_t)(max_images - this_run);
		if (want == 0)
			break;
		if (catalog_missing_vectors(c, target.fingerprint, after, ids, want, &n, &err) != 0) {
			fprintf(stderr, "\nclipd reembed: %s\n", err.msg);
			goto out;
		}
		if (n == 0)
			break;
		if (encode_batch(c, m, ctx, &dp, target.fingerprint, ids, n, pixels, vecs, taken) != 0)
			goto out;
		after = ids[n - 1];
		done += (int64_t)n;
		this_run += (int64_t)n;
		progress_show(&pr, done, 0);
	}
	progress_show(&pr, done, 1);

	size_t missing = 0;
	if (catalog_missing_vectors(c, target.fingerprint, 0, ids, 1, &missing, &err) != 0) {
		fprintf(stderr, "clipd reembed: %s\n", err.msg);
		goto out;
	}
	if (missing) {
		int64_t left = 0;
		catalog_count_vectors(c, target.fingerprint, &done, NULL);
		catalog_count(c, &left, NULL);
		fprintf(stderr, "clipd reembed: stopped after %lld images; %lld remain: run clipd reembed "
			"again to continue (%s still serves)\n", (long long)this_run, (long long)(left - done),
			current->name);
		rc = 3;
		goto out;
	}
	double t0 = clock_mono_s();
	if (catalog_switch_model(c, target.fingerprint, &err) != 0) {
		fprintf(stderr, "clipd reembed: switching to the new model: %s\n", err.msg);
		goto out;
	}
	fprintf(stderr, "clipd reembed: %s now holds vectors of %s (%.12s) only; index rebuilt in %.1f s. "
		"Start clipd serve --model %s --precision %s\n", data_dir, target.name, target.fingerprint,
		clock_mono_s() - t0, model_dir, clip_model_precision(m));
	rc = 0;
out:
	free(ids);
	free(pixels);
	free(vecs);
	free(taken);
	clip_ctx_free(ctx);
	clip_model_free(m);
	catalog_close(c);
	return rc;
}

static int run_reembed(const struct cli_command *info, int argc, char **argv)
{
	char *model_dir = NULL, *data_dir = NULL, *precision_arg = NULL;
	long long batch = 16, threads = 0, max_images = 0;
	int precision = CLIP_PRECISION_FP32;
	int exact_decode = 0;
	const struct cli_option opts[] = {
		{ "model", CLI_STRING, &model_dir, "DIR", "the new model's directory", 0, 0 },
		{ "precision", CLI_STRING, &precision_arg, "P", "the new vectors' precision: " CMD_PRECISION_HELP, 0, 0 },
		{ "data", CLI_STRING, &data_dir, "DIR", "the data directory", 0, 0 },
		{ "batch", CLI_INT, &batch, "N", "images encoded (and committed) together", 1, REEMBED_MAX_BATCH },
		{ "threads", CLI_INT, &threads, "N", "encoder threads (0: one per CPU)", 0, 256 },
		{ "max-images", CLI_INT, &max_images, "N", "stop after N images (0: all); run again to continue",
		  0, 1LL << 40 },
		{ "exact-decode", CLI_FLAG, &exact_decode, NULL, "decode JPEGs at full size, bit-faithful to Pillow (off: large JPEGs DCT-scaled)", 0, 0 },
		{ 0 },
	};
	struct cli_args args;
	int rc = cli_parse(info, opts, argc, argv, &args);
	if (rc != CLI_OK)
		return rc == CLI_HELP ? 0 : 2;
	rc = 2;
	if (args.n_positional)
		cli_usage_error(info, "unexpected argument '%s'", args.positional[0]);
	else if (!model_dir || !data_dir)
		cli_usage_error(info, "--model and --data are required");
	else if (cmd_precision(info, precision_arg, &precision) == 0)
		rc = reembed(model_dir, data_dir, precision, (size_t)batch, (int)threads, max_images, exact_decode);
	cli_args_free(&args);
	return rc;
}

const struct clipd_command cmd_reembed = {
	{ "reembed", "re-encode every stored image with a new model", "--model DIR --data DIR [--precision fp32|bf16]",
	  "Stores the new vectors beside the old ones, a batch at a time (an interrupted run resumes "
	  "where it stopped), and each image's capture time (taken_at) as its original states it, then switches the data directory to the new model and rebuilds its index. "
	  "The same model at another --precision is another model: reembed converts between them. "
	  "Exit status 3: stopped early by --max-images." },
	run_reembed };
