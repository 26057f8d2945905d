/*
 * image_internal.h - the decoders behind clip_image_decode_with (image.c),
 * one file each: image_jpeg.c (libjpeg-turbo), image_stb.c (PNG, GIF, BMP
 * through stb_image), image_webp.c (libwebp), image_heif.c (libheif),
 * image_tiff.c (libtiff). Not part of the public API.
 *
 * A decoder gets the bytes, already sniffed as its type, and a request;
 * it reads the size from the header, refuses an image over max_pixels
 * before it allocates pixels (clip_check_pixels), and fills a
 * clip_dec_out with the pixels as stored: image.c applies the
 * orientation, unless the decoder did (oriented: the JPEG decoder writes
 * its rows to their upright places as it decodes them). On failure it frees what it allocated, leaves *out zeroed
 * and returns a status with its own reason in *err.
 */
#ifndef CLIP_IMAGE_INTERNAL_H
#define CLIP_IMAGE_INTERNAL_H

#include <stdint.h>

#include "internal.h"

struct clip_dec_req {
	int orientation;  /* 1..8: a decoder may apply it itself (and say so) */
	size_t max_pixels;
	int min_short_side, min_long_side;  /* JPEG DCT scaling; 0: full size */
	int keep_alpha;
};

struct clip_dec_out {
	int width, height;           /* of rgb (and alpha) */
	unsigned char *rgb;          /* width * height * 3, malloc'd */
	unsigned char *alpha;        /* width * height or NULL, malloc'd */
	int full_width, full_height; /* the stored image, before DCT scaling */
	int scale_denom;             /* 1, 2, 4, 8 */
	int orientation;             /* 1..8 to apply; 0: none stated */
	int oriented;                /* the decoder applied the request's orientation */
	int self_oriented;           /* the decoder applied the container's own transforms */
	char taken_at[CLIP_TAKEN_AT_LEN];
};

void clip_dec_out_free(struct clip_dec_out *o);

/* CLIP_ERR_TOO_LARGE when w x h is over max_pixels or a side over
 * CLIP_IMAGE_MAX_SIDE, CLIP_ERR_EMPTY when either is 0; else 0. */
int clip_check_pixels(const char *what, uint64_t w, uint64_t h, size_t max_pixels,
		      clip_error *err);

/* Rows [y0, y0 + n) of a stored w x h RGB image (rows holds just those)
 * to their places in the upright image dst under EXIF orientation o. */
void clip_orient_rows(const unsigned char *rows, int y0, int n, unsigned char *dst, int w, int h,
		      int o);

/* Split an interleaved RGBA buffer (n pixels) into rgb (3 a pixel, may be
 * the same memory as rgba: it is compacted in place) and alpha (NULL:
 * dropped). */
void clip_split_rgba(unsigned char *rgba, size_t n, unsigned char *rgb, unsigned char *alpha);
/* Turn a decoder's whole output upright for EXIF orientation 1..8 (others:
 * nothing to do): new buffers, the old ones freed, sizes swapped for 5..8. */
int clip_apply_orientation(struct clip_dec_out *o, int orient, clip_error *err);

int clip_decode_jpeg(const unsigned char *p, size_t len, const struct clip_dec_req *rq,
		     struct clip_dec_out *out, clip_error *err);
int clip_decode_stb(enum clip_image_type t, const unsigned char *p, size_t len,
		    const struct clip_dec_req *rq, struct clip_dec_out *out, clip_error *err);
int clip_decode_webp(const unsigned char *p, size_t len, const struct clip_dec_req *rq,
		     struct clip_dec_out *out, clip_error *err);
int clip_decode_heif(enum clip_image_type t, const unsigned char *p, size_t len,
		     const struct clip_dec_req *rq, struct clip_dec_out *out, clip_error *err);
int clip_decode_tiff(const unsigned char *p, size_t len, const struct clip_dec_req *rq,
		     struct clip_dec_out *out, clip_error *err);

/* Stored width and height from the header alone (no pixels decoded). */
int clip_probe_jpeg(const unsigned char *p, size_t len, uint32_t *w, uint32_t *h, clip_error *err);
int clip_probe_stb(enum clip_image_type t, const unsigned char *p, size_t len, uint32_t *w,
		   uint32_t *h, clip_error *err);
int clip_probe_webp(const unsigned char *p, size_t len, uint32_t *w, uint32_t *h, clip_error *err);
int clip_probe_heif(enum clip_image_type t, const unsigned char *p, size_t len, uint32_t *w,
		    uint32_t *h, clip_error *err);
int clip_probe_tiff(const unsigned char *p, size_t len, uint32_t *w, uint32_t *h, clip_error *err);

/* The JPEG DCT scale denominator (1, 2, 4, 8) for a stored w x h and a
 * request: the largest whose scaled sides still meet both minimums. */
int clip_jpeg_scale_denom(uint32_t w, uint32_t h, int min_short_side, int min_long_side);

#endif
