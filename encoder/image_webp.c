/*
 * image_webp.c - WebP through libwebp: a still image with WebPDecode into
 * a buffer of our own; the first frame of an animation through
 * libwebpdemux's WebPAnimDecoder (the frame drawn on its canvas, as
 * Pillow gets it). The canvas size comes from the header (WebPGetFeatures)
 * and is checked against the pixel limit before either allocates.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

#include "image_internal.h"

static const char *status_text(VP8StatusCode st)
{
	switch (st) {
	case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
	case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
	case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
	case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
	case VP8_STATUS_SUSPENDED: return "suspended";
	case VP8_STATUS_USER_ABORT: return "aborted";
	case VP8_STATUS_NOT_ENOUGH_DATA: return "the data ends early (truncated)";
	default: return "unknown error";
	}
}

static int features(const unsigned char *p, size_t len, WebPBitstreamFeatures *f, clip_error *err)
{
	VP8StatusCode st = WebPGetFeatures(p, len, f);

	if (st != VP8_STATUS_OK)
		return clip_fail(err, st == VP8_STATUS_OUT_OF_MEMORY ? CLIP_ERR_NOMEM
				 : CLIP_ERR_UNDECODABLE,
				 "corrupt or truncated WebP header: %s", status_text(st));
	return 0;
}

int clip_probe_webp(const unsigned char *p, size_t len, uint32_t *w, uint32_t *h, clip_error *err)
{
	WebPBitstreamFeatures f;
	int rc = features(p, len, &f, err);

	if (rc)
		return rc;
	*w = f.width > 0 ? (uint32_t)f.width : 0;
	*h = f.height > 0 ? (uint32_t)f.height : 0;
	return 0;
}

/* The first frame of an animation, RGBA on the canvas. */
static int first_frame(const unsigned char *p, size_t len, int w, int h, unsigned char *rgba,
		       clip_error *err)
{
	WebPAnimDecoderOptions opt;
	WebPAnimDecoder *dec = NULL;
	WebPAnimInfo info;
	uint8_t *frame = NULL;
	int ts = 0, rc;

	if (!WebPAnimDecoderOptionsInit(&opt))
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "libwebp version mismatch");
	opt.color_mode = MODE_RGBA;
	opt.use_threads = 0;
	const WebPData data = { p, len };
	dec = WebPAnimDecoderNew(&data, &opt);
	if (!dec)
		return clip_fail(err, CLIP_ERR_UNDECODABLE,
				 "corrupt or truncated animated WebP: its frames cannot be read");
	if (!WebPAnimDecoderGetInfo(dec, &info) || (int)info.canvas_width != w ||
	    (int)info.canvas_height != h) {
		rc = clip_fail(err, CLIP_ERR_UNDECODABLE, "corrupt animated WebP: canvas size");
		goto out;
	}
	if (!WebPAnimDecoderGetNext(dec, &frame, &ts) || !frame) {
		rc = clip_fail(err, CLIP_ERR_UNDECODABLE,
			       "corrupt or truncated animated WebP: the first frame cannot be decoded");
		goto out;
	}
	memcpy(rgba, frame, (size_t)w * (size_t)h * 4);
	rc = 0;
out:
	WebPAnimDecoderDelete(dec);
	return rc;
}

int clip_decode_webp(const unsigned char *p, size_t len, const struct clip_dec_req *rq,
		     struct clip_dec_out *out, clip_error *err)
{
	WebPBitstreamFeatures f;
	unsigned char *px = NULL, *alpha = NULL;
	int rc = features(p, len, &f, err);

	if (rc)
		return rc;
	rc = clip_check_pixels("WebP", f.width > 0 ? (uint64_t)f.width : 0,
			       f.height > 0 ? (uint64_t)f.height : 0, rq->max_pixels, err);
	if (rc)
		return rc;
	const int w = f.width, h = f.height;
	const size_t n = (size_t)w * (size_t)h;
	const int rgba = f.has_animation || (f.has_alpha && rq->keep_alpha);

	px = malloc(n * (rgba ? 4 : 3));
	if (rgba && rq->keep_alpha)
		alpha = malloc(n);
	if (!px || (rgba && rq->keep_alpha && !alpha)) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory for a %d x %d WebP", w, h);
		goto out;
	}
	if (f.has_animation) {
		rc = first_frame(p, len, w, h, px, err);
		if (rc)
			goto out;
	} else {
		WebPDecoderConfig cfg;
		if (!WebPInitDecoderConfig(&cfg)) {
			rc = clip_fail(err, CLIP_ERR_UNDECODABLE, "libwebp version mismatch");
			goto out;
		}
		cfg.output.colorspace = rgba ? MODE_RGBA : MODE_RGB;
		cfg.output.is_external_memory = 1;
		cfg.output.u.RGBA.rgba = px;
		cfg.output.u.RGBA.stride = w * (rgba ? 4 : 3);
		cfg.output.u.RGBA.size = n * (rgba ? 4 : 3);
		VP8StatusCode st = WebPDecode(p, len, &cfg);
		WebPFreeDecBuffer(&cfg.output);  /* external memory: frees nothing of ours */
		if (st != VP8_STATUS_OK) {
			rc = clip_fail(err, st == VP8_STATUS_OUT_OF_MEMORY ? CLIP_ERR_NOMEM
				       : CLIP_ERR_UNDECODABLE,
				       "corrupt or truncated WebP: %s", status_text(st));
			goto out;
		}
	}
	if (rgba) {
		unsigned char *a = alpha;
		if (!a) {
			/* the alpha of an animation's canvas, not wanted: drop it */
			a = malloc(n);
			if (!a) {
				rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory for a %d x %d WebP", w, h);
				goto out;
			}
		}
		clip_split_rgba(px, n, px, a);
		if (a != alpha)
			free(a);
		unsigned char *shrunk = realloc(px, n * 3);
		if (shrunk)
			px = shrunk;
	}
	out->width = out->full_width = w;
	out->height = out->full_height = h;
	out->scale_denom = 1;
	out->rgb = px;
	out->alpha = alpha;
	px = alpha = NULL;
	rc = 0;
out:
	free(px);
	free(alpha);
	return rc;
}
