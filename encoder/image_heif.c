/*
 * image_heif.c - HEIC and AVIF through libheif: the primary image, with the
 * container's own transforms (clean aperture, rotation irot, mirror imir)
 * applied by libheif, so EXIF orientation is not applied on top
 * (self_oriented). The EXIF block still gives the capture time.
 *
 * The size is the primary image's as the file states it (ispe, after the
 * transforms), checked against the pixel limit before heif_decode_image;
 * libheif's own limit on either side is set as well, and the decoded image
 * must have the size the header stated. Tiles decode on the calling thread.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libheif/heif.h>

#include "exif.h"
#include "image_internal.h"

/* The EXIF blocks larger than this are ignored. */
#define HEIF_MAX_EXIF (1u << 20)

static const char *heif_name(enum clip_image_type t)
{
	return t == CLIP_IMAGE_AVIF ? "AVIF" : "HEIC";
}

/* libheif's error as a status and message: its security limits (a size
 * or an item over what it allows) are CLIP_ERR_TOO_LARGE, any other
 * allocation failure CLIP_ERR_NOMEM, the rest CLIP_ERR_UNDECODABLE. */
static int heif_failure(enum clip_image_type t, const char *what, struct heif_error he,
			clip_error *err)
{
	char why[200];
	snprintf(why, sizeof why, "%s", he.message && *he.message ? he.message : "no reason given");
	size_t n = strlen(why);
	while (n > 0 && (why[n - 1] == '\n' || why[n - 1] == ' '))
		why[--n] = '\0';
	if (he.subcode == heif_suberror_Security_limit_exceeded)
		return clip_fail(err, CLIP_ERR_TOO_LARGE, "%s over libheif's limits: %s",
				 heif_name(t), why);
	if (he.code == heif_error_Memory_allocation_error)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory decoding the %s: %s",
				 heif_name(t), why);
	return clip_fail(err, CLIP_ERR_UNDECODABLE, "corrupt or truncated %s: %s: %s",
			 heif_name(t), what, why);
}

static pthread_once_t heif_once = PTHREAD_ONCE_INIT;

/* libheif's plugins (the decoders) are loaded by heif_init, once for the
 * process (it is reference-counted and never undone here), before any
 * thread's first context: its implicit initialisation is not thread-safe. */
static void heif_setup(void)
{
	heif_init(NULL);
}

/* The primary image's handle of the bytes in a new context. */
static int open_primary(enum clip_image_type t, const unsigned char *p, size_t len,
			struct heif_context **ctx, struct heif_image_handle **handle,
			clip_error *err)
{
	pthread_once(&heif_once, heif_setup);
	*ctx = heif_context_alloc();
	*handle = NULL;
	if (!*ctx)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory for the %s decoder", heif_name(t));
	heif_context_set_maximum_image_size_limit(*ctx, CLIP_IMAGE_MAX_SIDE);
	heif_context_set_max_decoding_threads(*ctx, 0);
	struct heif_error he = heif_context_read_from_memory_without_copy(*ctx, p, len, NULL);
	if (he.code != heif_error_Ok)
		return heif_failure(t, "cannot read the file", he, err);
	he = heif_context_get_primary_image_handle(*ctx, handle);
	if (he.code != heif_error_Ok)
		return heif_failure(t, "no primary image", he, err);
	return 0;
}

static void close_primary(struct heif_context *ctx, struct heif_image_handle *handle)
{
	if (handle)
		heif_image_handle_release(handle);
	if (ctx)
		heif_context_free(ctx);
}

int clip_probe_heif(enum clip_image_type t, const unsigned char *p, size_t len, uint32_t *w,
		    uint32_t *h, clip_error *err)
{
	struct heif_context *ctx = NULL;
	struct heif_image_handle *handle = NULL;
	int rc = open_primary(t, p, len, &ctx, &handle, err);

	if (rc == 0) {
		int hw = heif_image_handle_get_width(handle), hh = heif_image_handle_get_height(handle);
		*w = hw > 0 ? (uint32_t)hw : 0;
		*h = hh > 0 ? (uint32_t)hh : 0;
	}
	close_primary(ctx, handle);
	return rc;
}

/* The capture time from the primary image's EXIF block, if any: a 4-byte
 * big-endian offset, then the TIFF structure. */
static void heif_taken_at(const struct heif_image_handle *handle, char *taken_at)
{
	heif_item_id id;
	struct clip_exif ex;

	taken_at[0] = '\0';
	if (heif_image_handle_get_list_of_metadata_block_IDs(handle, "Exif", &id, 1) != 1)
		return;
	size_t n = heif_image_handle_get_metadata_size(handle, id);
	if (n < 4 + 8 || n > HEIF_MAX_EXIF)
		return;
	unsigned char *buf = malloc(n);
	if (!buf)
		return;
	struct heif_error he = heif_image_handle_get_metadata(handle, id, buf);
	if (he.code == heif_error_Ok) {
		uint32_t off = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
			       (uint32_t)buf[2] << 8 | buf[3];
		if (off < n - 4) {
			clip_exif_parse(buf + 4 + off, n - 4 - off, &ex);
			memcpy(taken_at, ex.taken_at, CLIP_TAKEN_AT_LEN);
		}
	}
	free(buf);
}

int clip_decode_heif(enum clip_image_type t, const unsigned char *p, size_t len,
		     const struct clip_dec_req *rq, struct clip_dec_out *out, clip_error *err)
{
	struct heif_context *ctx = NULL;
	struct heif_image_handle *handle = NULL;
	struct heif_decoding_options *opt = NULL;
	struct heif_image *img = NULL;
	unsigned char *rgb = NULL, *alpha = NULL;
	int rc = open_primary(t, p, len, &ctx, &handle, err);

	if (rc)
		goto out;
	const int w = heif_image_handle_get_width(handle), h = heif_image_handle_get_height(handle);
	rc = clip_check_pixels(heif_name(t), w > 0 ? (uint64_t)w : 0, h > 0 ? (uint64_t)h : 0,
			       rq->max_pixels, err);
	if (rc)
		goto out;
	const int has_alpha = rq->keep_alpha && heif_image_handle_has_alpha_channel(handle);
	opt = heif_decoding_options_alloc();
	if (!opt) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory for the %s decoder", heif_name(t));
		goto out;
	}
	opt->convert_hdr_to_8bit = 1;
	/* AV1 through libaom rather than dav1d (libheif's first choice):
	 * dav1d logs corrupt streams to stderr, and the library never prints.
	 * AV1 decoding is bit-exact, so the pixels are the same. */
	if (t == CLIP_IMAGE_AVIF)
		opt->decoder_id = "aom";
	struct heif_error he = heif_decode_image(handle, &img, heif_colorspace_RGB,
						 has_alpha ? heif_chroma_interleaved_RGBA
						 : heif_chroma_interleaved_RGB, opt);
	if (he.code != heif_error_Ok) {
		rc = heif_failure(t, "cannot decode the image", he, err);
		goto out;
	}
	int stride = 0;
	const uint8_t *plane = heif_image_get_plane_readonly(img, heif_channel_interleaved, &stride);
	const int iw = heif_image_get_width(img, heif_channel_interleaved);
	const int ih = heif_image_get_height(img, heif_channel_interleaved);
	const int bpp = has_alpha ? 4 : 3;
	if (!plane || iw != w || ih != h || stride < w * bpp ||
	    heif_image_get_bits_per_pixel_range(img, heif_channel_interleaved) != 8) {
		rc = clip_fail(err, CLIP_ERR_UNDECODABLE,
			       "corrupt %s: decoded %d x %d, the header states %d x %d",
			       heif_name(t), iw, ih, w, h);
		goto out;
	}
	const size_t n = (size_t)w * (size_t)h;
	rgb = malloc(n * 3);
	alpha = has_alpha ? malloc(n) : NULL;
	if (!rgb || (has_alpha && !alpha)) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory for a %d x %d %s", w, h,
			       heif_name(t));
		goto out;
	}
	for (int y = 0; y < h; y++) {
		const uint8_t *row = plane + (size_t)y * (size_t)stride;
		unsigned char *o = rgb + (size_t)y * (size_t)w * 3;
		if (!has_alpha) {
			memcpy(o, row, (size_t)w * 3);
			continue;
		}
		for (int x = 0; x < w; x++) {
			o[3 * x] = row[4 * x];
			o[3 * x + 1] = row[4 * x + 1];
			o[3 * x + 2] = row[4 * x + 2];
			alpha[(size_t)y * (size_t)w + (size_t)x] = row[4 * x + 3];
		}
	}
	heif_taken_at(handle, out->taken_at);
	out->width = out->full_width = w;
	out->height = out->full_height = h;
	out->scale_denom = 1;
	out->self_oriented = 1;
	out->rgb = rgb;
	out->alpha = alpha;
	rgb = alpha = NULL;
	rc = 0;
out:
	free(rgb);
	free(alpha);
	if (img)
		heif_image_release(img);
	heif_decoding_options_free(opt);
	close_primary(ctx, handle);
	return rc;
}
