/*
 * clipd preprocess --model DIR --image FILE --out OUT.png
 *
 * Writes the model's input crop of an image (decode, PIL-exact bicubic
 * resize of the shorter side, centre crop; before normalisation) as an
 * 8-bit RGB PNG, for debugging the image pipeline against a reference.
 * Exit status: 0 written, 1 the image or the output failed, 2 usage or the
 * model could not be loaded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>  /* declarations; compiled in encoder/stb_impl.c */

#include "clip.h"
#include "files.h"
#include "commands.h"

/* The largest image file the command reads (stb_image takes an int length). */
#define PREPROCESS_MAX_FILE_BYTES ((size_t)1 << 30)

struct png_sink {
	FILE *f;
	int failed;
};

static void png_write(void *ctx, void *data, int size)
{
	struct png_sink *s = ctx;

	if (size > 0 && !s->failed && fwrite(data, 1, (size_t)size, s->f) != (size_t)size)
		s->failed = 1;
}

/* Write side x side RGB as a PNG at path, through a temporary file renamed
 * into place. Returns 0, or -1 after saying why on stderr. */
static int write_png(const char *path, const unsigned char *rgb, int side)
{
	char tmp[4096];
	int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);

	if (n < 0 || (size_t)n >= sizeof tmp) {
		fprintf(stderr, "clipd preprocess: output path too long\n");
		return -1;
	}
	struct png_sink sink = { fopen(tmp, "wb"), 0 };
	if (!sink.f) {
		fprintf(stderr, "clipd preprocess: cannot create %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	int ok = stbi_write_png_to_func(png_write, &sink, side, side, 3, rgb, side * 3);
	int closed = fclose(sink.f);
	if (!ok || sink.failed || closed != 0) {
		fprintf(stderr, "clipd preprocess: cannot write %s: %s\n", tmp,
			!ok ? "PNG encoder failed" : strerror(errno));
		remove(tmp);
		return -1;
	}
	if (rename(tmp, path) != 0) {
		fprintf(stderr, "clipd preprocess: cannot rename %s to %s: %s\n", tmp, path,
			strerror(errno));
		remove(tmp);
		return -1;
	}
	return 0;
}

static int run_preprocess(const struct cli_command *info, int argc, char **argv)
{
	char *model_dir = NULL, *image_path = NULL, *out_path = NULL;
	int exact_decode = 0;
	const struct cli_option opts[] = {
		{ "model", CLI_STRING, &model_dir, "DIR", "model directory (for its input size)", 0, 0 },
		{ "image", CLI_STRING, &image_path, "FILE", "a JPEG, PNG, GIF, BMP, WebP, HEIC, AVIF or TIFF image", 0, 0 },
		{ "out", CLI_STRING, &out_path, "OUT.png", "where to write the crop", 0, 0 },
		{ "exact-decode", CLI_FLAG, &exact_decode, NULL, "decode JPEGs at full size, bit-faithful to Pillow (off: large JPEGs DCT-scaled)", 0, 0 },
		{ 0 },
	};
	struct cli_args args;
	clip_model *model = NULL;
	clip_image img = { 0 };
	unsigned char *bytes = NULL, *crop = NULL;
	size_t len = 0;
	clip_error err = { 0 };
	int status = 1;

	int rc = cli_parse(info, opts, argc, argv, &args);
	if (rc != CLI_OK)
		return rc == CLI_HELP ? 0 : 2;
	if (args.n_positional) {
		cli_usage_error(info, "unexpected argument '%s'", args.positional[0]);
		cli_args_free(&args);
		return 2;
	}
	cli_args_free(&args);
	if (!model_dir || !image_path || !out_path) {
		cli_usage_error(info, "--model, --image and --out are required");
		return 2;
	}

	struct clip_params params = clip_default_params();
	if (cmd_model_load(model_dir, NULL, params.max_pixels, CLIP_PRECISION_FP32, &model, &err) != 0) {
		fprintf(stderr, "clipd preprocess: cannot load model %s: %s\n", model_dir, err.msg);
		return 2;
	}
	const int side = clip_model_image_size(model);

	char msg[FILES_MSG_MAX];
	if (files_read_all(image_path, PREPROCESS_MAX_FILE_BYTES, &bytes, &len, msg, sizeof msg) != 0) {
		fprintf(stderr, "clipd preprocess: %s\n", msg);
		goto out;
	}
	struct clip_decode_params dp = clip_model_decode_params(model, params.max_pixels, exact_decode);
	if (clip_image_decode_with(bytes, len, &dp, &img, &err) != 0) {
		fprintf(stderr, "clipd preprocess: %s: %s (%s)\n", image_path, err.msg,
			clip_status_name(err.code));
		goto out;
	}
	const size_t crop_len = (size_t)side * (size_t)side * 3;
	crop = malloc(crop_len);
	if (!crop) {
		fprintf(stderr, "clipd preprocess: out of memory\n");
		goto out;
	}
	if (clip_image_crop(&img, side, crop, crop_len, &err) != 0) {
		fprintf(stderr, "clipd preprocess: %s: %s (%s)\n", image_path, err.msg,
			clip_status_name(err.code));
		goto out;
	}
	if (write_png(out_path, crop, side) != 0)
		goto out;
	status = 0;
out:
	free(crop);
	clip_image_free(&img);
	free(bytes);
	clip_model_free(model);
	return status;
}

const struct clipd_command cmd_preprocess = {
	{ "preprocess", "write the model's input crop of an image as PNG",
	  "--model DIR --image FILE --out OUT.png [--exact-decode]",
	  "Decodes the image (JPEG, PNG, GIF, BMP, WebP, HEIC, AVIF or TIFF; the first\n"
	  "frame or page), turns it upright by its EXIF orientation, resizes its shorter\n"
	  "side to the model's input size with Pillow's bicubic filter and writes the\n"
	  "centre crop, before normalisation, as an 8-bit RGB PNG. A JPEG whose shorter\n"
	  "side is at least 4 x the input side is decoded DCT-scaled (to at least twice\n"
	  "the input side) unless --exact-decode. Exit status 1 when the image cannot be\n"
	  "used, 2 when the model cannot be loaded." },
	run_preprocess };
