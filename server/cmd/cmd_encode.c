/*
 * clipd encode --model DIR [--image FILE]... [--text TEXT]... [--threads N]
 *
 * Prints one JSON object per input, images first, then texts, each in
 * argument order:
 *
 *     {"kind": "image", "input": "cat.jpg", "embedding": [0.0123, ...]}
 *     {"kind": "text", "input": "a cat", "error": {"code": "...", "message": "..."}}
 *
 * Embeddings are L2-normalised and printed with %.9g (float32 round-trips).
 * Exit status: 0 every input encoded, 1 some input failed (after all were
 * tried), 2 usage or the model could not be loaded (then nothing is
 * printed on stdout and the reason goes to stderr).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clip.h"
#include "files.h"
#include "commands.h"

/* The largest image file encode reads (stb_image takes an int length). */
#define ENCODE_MAX_FILE_BYTES ((size_t)1 << 30)
/* Inputs encoded per call: bounds the pixels held at once. */
#define ENCODE_GROUP 16

/* A JSON string of len bytes: escapes, and U+FFFD for invalid UTF-8. */
static void put_json_string(FILE *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	fputc('"', out);
	while (p < end) {
		unsigned c = *p;
		if (c == '"' || c == '\\') {
			fputc('\\', out);
			fputc((int)c, out);
			p++;
		} else if (c < 0x20) {
			switch (c) {
			case '\n': fputs("\\n", out); break;
			case '\r': fputs("\\r", out); break;
			case '\t': fputs("\\t", out); break;
			default: fprintf(out, "\\u%04x", c); break;
			}
			p++;
		} else if (c < 0x80) {
			fputc((int)c, out);
			p++;
		} else {
			/* a well-formed UTF-8 sequence (no overlongs, surrogates or
			 * values past U+10FFFF) is copied; anything else is U+FFFD */
			size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
			int ok = n && (size_t)(end - p) >= n;
			for (size_t i = 1; ok && i < n; i++)
				ok = (p[i] & 0xc0) == 0x80;
			if (ok && n == 3)
				ok = !(c == 0xe0 && p[1] < 0xa0) && !(c == 0xed && p[1] >= 0xa0);
			if (ok && n == 4)
				ok = !(c == 0xf0 && p[1] < 0x90) && !(c == 0xf4 && p[1] >= 0x90);
			/* U+0085, U+2028 and U+2029 end a line for some readers
			 * (Python's splitlines): escaped, so one object stays one line */
			if (ok && ((n == 2 && c == 0xc2 && p[1] == 0x85) ||
				   (n == 3 && c == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)))) {
				fprintf(out, "\\u%04x", n == 2 ? 0x85u : 0x2000u + (p[2] - 0x80u));
				p += n;
			} else if (ok) {
				fwrite(p, 1, n, out);
				p += n;
			} else {
				fputs("\xef\xbf\xbd", out);
				p++;
			}
		}
	}
	fputc('"', out);
}

static void print_embedding(const char *kind, const char *input, float *v, size_t dim)
{
	clip_l2_normalize(v, dim);
	printf("{\"kind\":\"%s\",\"input\":", kind);
	put_json_string(stdout, input, strlen(input));
	fputs(",\"embedding\":[", stdout);
	for (size_t i = 0; i < dim; i++)
		printf(i ? ",%.9g" : "%.9g", (double)v[i]);
	fputs("]}\n", stdout);
}

static void print_error(const char *kind, const char *input, const char *code, const char *msg)
{
	printf("{\"kind\":\"%s\",\"input\":", kind);
	put_json_string(stdout, input, strlen(input));
	fputs(",\"error\":{\"code\":", stdout);
	put_json_string(stdout, code, strlen(code));
	fputs(",\"message\":", stdout);
	put_json_string(stdout, msg, strlen(msg));
	fputs("}}\n", stdout);
}

static int all_finite(const float *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return 0;
	return 1;
}

static int set_error(clip_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_error(clip_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	err->code = code;
	return code;
}

/* Read an image file and preprocess it into px; fills err on failure. */
static int load_image(const clip_model *model, const char *path, const struct clip_decode_params *dp,
		      float *px, size_t n_px, clip_error *err)
{
	unsigned char *bytes = NULL;
	size_t len = 0;
	clip_image img = { 0 };
	char msg[FILES_MSG_MAX];
	int rc = files_read_all(path, ENCODE_MAX_FILE_BYTES, &bytes, &len, msg, sizeof msg);
	if (rc != FILES_OK) {
		rc = set_error(err, rc == FILES_ERR_TOO_LARGE ? CLIP_ERR_TOO_LARGE
				    : rc == FILES_ERR_NOMEM ? CLIP_ERR_NOMEM : CLIP_ERR_IO, "%s", msg);
		goto out;
	}
	if ((rc = clip_image_decode_with(bytes, len, dp, &img, err)))
		goto out;
	rc = clip_image_preprocess(model, &img, px, n_px, err);
out:
	clip_image_free(&img);
	free(bytes);
	return rc;
}

/* Encode and print the images, ENCODE_GROUP at a time; returns failures. */
static size_t encode_images(const clip_model *model, clip_ctx *ctx, const struct clip_decode_params *dp,
			    char **paths, size_t n)
{
	size_t per = clip_model_input_floats(model), dim = clip_model_dim(model), failed = 0;
	float *px = malloc(ENCODE_GROUP * per * sizeof *px);
	float *out = malloc(ENCODE_GROUP * dim * sizeof *out);
	clip_error errs[ENCODE_GROUP];
	size_t slot[ENCODE_GROUP];
	if (!px || !out) {
		for (size_t i = 0; i < n; i++)
			print_error("image", paths[i], clip_status_name(CLIP_ERR_NOMEM), "out of memory");
		failed = n;
		goto out;
	}
	for (size_t g = 0; g < n; g += ENCODE_GROUP) {
		size_t m = n - g < ENCODE_GROUP ? n - g : ENCODE_GROUP, ok = 0;
		for (size_t i = 0; i < m; i++) {
			memset(&errs[i], 0, sizeof errs[i]);
			slot[i] = SIZE_MAX;
			if (load_image(model, paths[g + i], dp, px + ok * per, per, &errs[i]) == 0)
				slot[i] = ok++;
		}
		clip_error batch_err = { 0 };
		int rc = ok ? clip_encode_images(ctx, px, ok, out, ok * dim, &batch_err) : 0;
		for (size_t i = 0; i < m; i++) {
			const char *path = paths[g + i];
			if (slot[i] == SIZE_MAX) {
				print_error("image", path, clip_status_name(errs[i].code), errs[i].msg);
				failed++;
			} else if (rc) {
				print_error("image", path, clip_status_name(batch_err.code), batch_err.msg);
				failed++;
			} else if (!all_finite(out + slot[i] * dim, dim)) {
				print_error("image", path, clip_status_name(CLIP_ERR_MODEL), "the model produced a non-finite value");
				failed++;
			} else {
				print_embedding("image", path, out + slot[i] * dim, dim);
			}
		}
	}
out:
	free(px);
	free(out);
	return failed;
}

static size_t encode_texts(const clip_model *model, clip_ctx *ctx, char **texts, size_t n)
{
	size_t dim = clip_model_dim(model), failed = 0;
	float *out = malloc(ENCODE_GROUP * dim * sizeof *out);
	for (size_t g = 0; g < n; g += ENCODE_GROUP) {
		size_t m = n - g < ENCODE_GROUP ? n - g : ENCODE_GROUP;
		clip_error err = { 0 };
		int rc = out ? clip_encode_texts(ctx, (const char *const *)&texts[g], m, out, m * dim, &err)
			     : set_error(&err, CLIP_ERR_NOMEM, "out of memory");
		for (size_t i = 0; i < m; i++) {
			if (rc) {
				print_error("text", texts[g + i], clip_status_name(err.code), err.msg);
				failed++;
			} else if (!all_finite(out + i * dim, dim)) {
				print_error("text", texts[g + i], clip_status_name(CLIP_ERR_MODEL),
					    "the model produced a non-finite value");
				failed++;
			} else {
				print_embedding("text", texts[g + i], out + i * dim, dim);
			}
		}
	}
	free(out);
	return failed;
}

static int run_encode(const struct cli_command *info, int argc, char **argv)
{
	char *model_dir = NULL, *precision_arg = NULL;
	struct cli_list images = { 0 }, texts = { 0 };
	long long threads = 0;
	int precision = CLIP_PRECISION_FP32;
	int exact_decode = 0;
	const struct cli_option opts[] = {
		{ "model", CLI_STRING, &model_dir, "DIR", "model directory", 0, 0 },
		{ "precision", CLI_STRING, &precision_arg, "P", CMD_PRECISION_HELP, 0, 0 },
		{ "image", CLI_LIST, &images, "FILE", "an image to encode (repeatable)", 0, 0 },
		{ "text", CLI_LIST, &texts, "TEXT", "a text to encode (repeatable)", 0, 0 },
		{ "threads", CLI_INT, &threads, "N", "encoder threads (0: one per CPU)", 0, 256 },
		{ "exact-decode", CLI_FLAG, &exact_decode, NULL, "decode JPEGs at full size, bit-faithful to Pillow (off: large JPEGs DCT-scaled)", 0, 0 },
		{ 0 },
	};
	struct cli_args args;
	clip_model *model = NULL;
	clip_ctx *ctx = NULL;
	clip_error err = { 0 };
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
	if (cmd_precision(info, precision_arg, &precision) != 0)
		goto out;
	struct clip_params params = clip_default_params();
	if (cmd_model_load(model_dir, NULL, params.max_pixels, precision, &model, &err) != 0) {
		fprintf(stderr, "clipd encode: cannot load model %s: %s\n", model_dir, err.msg);
		goto out;
	}
	if (clip_ctx_new(model, (int)threads, &ctx, &err) != 0) {
		fprintf(stderr, "clipd encode: %s\n", err.msg);
		goto out;
	}
	struct clip_decode_params dp = clip_model_decode_params(model, params.max_pixels, exact_decode);
	size_t failed = encode_images(model, ctx, &dp, images.items, images.n);
	failed += encode_texts(model, ctx, texts.items, texts.n);
	fflush(stdout);
	status = failed ? 1 : 0;
out:
	clip_ctx_free(ctx);
	clip_model_free(model);
	cli_args_free(&args);
	cli_list_free(&images);
	cli_list_free(&texts);
	return status;
}

const struct clipd_command cmd_encode = {
	{ "encode", "print CLIP embeddings of images and texts",
	  "--model DIR [--precision fp32|bf16] [--image FILE]... [--text TEXT]... [--exact-decode]",
	  "Prints one JSON object per input, images first, then texts, each in argument "
	  "order: {\"kind\", \"input\", \"embedding\"} with the L2-normalised embedding, or "
	  "{\"kind\", \"input\", \"error\": {\"code\", \"message\"}} for an input that fails. "
	  "Exit status 1 if any input failed, 2 if the model cannot be loaded." },
	run_encode };
