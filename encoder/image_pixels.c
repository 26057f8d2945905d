/*
 * image_pixels.c - what every decoder shares once it has pixels (or just a
 * header): the pixel limit, splitting RGBA into RGB and alpha, the decoder
 * output's release, and EXIF orientation applied to rows or whole images.
 * Used by image.c and the per-format decoders (image_internal.h); calls
 * none of them.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

/* ---- shared helpers for the decoders ------------------------------------ */

int clip_check_pixels(const char *what, uint64_t w, uint64_t h, size_t max_pixels,
		      clip_error *err)
{
	if (w == 0 || h == 0)
		return clip_fail(err, CLIP_ERR_EMPTY, "empty %s: the header states %llu x %llu pixels",
				 what, (unsigned long long)w, (unsigned long long)h);
	if (w > CLIP_IMAGE_MAX_SIDE || h > CLIP_IMAGE_MAX_SIDE) {
		if (w * h > max_pixels)  /* both < 2^32: no overflow */
			return clip_fail(err, CLIP_ERR_TOO_LARGE,
					 "image too large: %llu x %llu = %.1f megapixels, over the "
					 "limit of %.1f megapixels", (unsigned long long)w,
					 (unsigned long long)h, (double)(w * h) / 1e6, max_pixels / 1e6);
		return clip_fail(err, CLIP_ERR_TOO_LARGE,
				 "image too large: %llu x %llu, a side over %d pixels",
				 (unsigned long long)w, (unsigned long long)h, CLIP_IMAGE_MAX_SIDE);
	}
	if (w * h > max_pixels)
		return clip_fail(err, CLIP_ERR_TOO_LARGE,
				 "image too large: %llu x %llu = %.1f megapixels, over the limit "
				 "of %.1f megapixels", (unsigned long long)w, (unsigned long long)h,
				 (double)(w * h) / 1e6, max_pixels / 1e6);
	return 0;
}

void clip_split_rgba(unsigned char *rgba, size_t n, unsigned char *rgb, unsigned char *alpha)
{
	/* forwards: pixel i's 3 bytes land at or before where they were read */
	for (size_t i = 0; i < n; i++) {
		unsigned char r = rgba[4 * i], g = rgba[4 * i + 1], b = rgba[4 * i + 2];
		if (alpha)
			alpha[i] = rgba[4 * i + 3];
		rgb[3 * i] = r;
		rgb[3 * i + 1] = g;
		rgb[3 * i + 2] = b;
	}
}

void clip_dec_out_free(struct clip_dec_out *o)
{
	if (!o)
		return;
	free(o->rgb);
	free(o->alpha);
	memset(o, 0, sizeof *o);
}

/* ---- orientation -------------------------------------------------------- */

/*
 * EXIF orientation o (1..8) of a w x h image, as a map from a stored
 * pixel (sx, sy) to its place in the upright image: d0 + sx*dx + sy*dy.
 * 1 as stored, 2 mirrored left-right, 3 turned 180 degrees, 4 mirrored top
 * to bottom, 5 transposed, 6 turned 90 degrees clockwise, 7 transversed,
 * 8 turned 90 degrees anticlockwise (Pillow's exif_transpose: none,
 * FLIP_LEFT_RIGHT, ROTATE_180, FLIP_TOP_BOTTOM, TRANSPOSE, ROTATE_270,
 * TRANSVERSE, ROTATE_90).
 */
static void orientation_map(int o, ptrdiff_t w, ptrdiff_t h, ptrdiff_t *d0, ptrdiff_t *dx,
			    ptrdiff_t *dy)
{
	switch (o) {
	case 2: *d0 = w - 1; *dx = -1; *dy = w; break;
	case 3: *d0 = w * h - 1; *dx = -1; *dy = -w; break;
	case 4: *d0 = (h - 1) * w; *dx = 1; *dy = -w; break;
	case 5: *d0 = 0; *dx = h; *dy = 1; break;
	case 6: *d0 = h - 1; *dx = h; *dy = -1; break;
	case 7: *d0 = w * h - 1; *dx = -h; *dy = -1; break;
	case 8: *d0 = (w - 1) * h; *dx = -h; *dy = 1; break;
	default: *d0 = 0; *dx = 1; *dy = w; break;
	}
}

/* In tiles of 64 x 64 stored pixels: a turn writes each tile's columns as
 * upright rows, which stay in cache (a row at a time would touch a
 * different cache line for every pixel of a 12-megapixel photo). */
#define REMAP_TILE 64

/* Rows [y0, y0 + rows) of a stored w x h image (band holds just those
 * rows, bpp bytes a pixel) to their upright places in dst. */
static void remap_band(const unsigned char *band, int y0, int rows, unsigned char *dst, int bpp,
		       int w, int h, int o)
{
	ptrdiff_t d0, dx, dy;

	orientation_map(o, w, h, &d0, &dx, &dy);
	for (int tx = 0; tx < w; tx += REMAP_TILE) {
		const int x1 = tx + REMAP_TILE < w ? tx + REMAP_TILE : w;
		for (int y = 0; y < rows; y++) {
			const unsigned char *s = band + ((size_t)y * (size_t)w + (size_t)tx) * (size_t)bpp;
			ptrdiff_t d = d0 + (ptrdiff_t)(y0 + y) * dy + (ptrdiff_t)tx * dx;
			if (bpp == 3) {
				for (int x = tx; x < x1; x++, s += 3, d += dx) {
					unsigned char *o3 = dst + d * 3;
					o3[0] = s[0];
					o3[1] = s[1];
					o3[2] = s[2];
				}
			} else {
				for (int x = tx; x < x1; x++, s++, d += dx)
					dst[d] = *s;
			}
		}
	}
}

void clip_orient_rows(const unsigned char *rows, int y0, int n, unsigned char *dst, int w, int h,
		      int o)
{
	remap_band(rows, y0, n, dst, 3, w, h, o);
}

static void remap(const unsigned char *src, unsigned char *dst, int bpp, int w, int h, int o)
{
	for (int y = 0; y < h; y += REMAP_TILE) {
		const int rows = y + REMAP_TILE < h ? REMAP_TILE : h - y;
		remap_band(src + (size_t)y * (size_t)w * (size_t)bpp, y, rows, dst, bpp, w, h, o);
	}
}

/* Turn the decoder's pixels upright: new buffers, the old ones freed. */
int clip_apply_orientation(struct clip_dec_out *o, int orient, clip_error *err)
{
	if (orient <= 1 || orient > 8)
		return 0;
	const size_t n = (size_t)o->width * (size_t)o->height;
	unsigned char *rgb = malloc(n * 3);
	unsigned char *alpha = o->alpha ? malloc(n) : NULL;
	if (!rgb || (o->alpha && !alpha)) {
		free(rgb);
		free(alpha);
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory turning a %d x %d image upright",
				 o->width, o->height);
	}
	remap(o->rgb, rgb, 3, o->width, o->height, orient);
	if (alpha)
		remap(o->alpha, alpha, 1, o->width, o->height, orient);
	free(o->rgb);
	free(o->alpha);
	o->rgb = rgb;
	o->alpha = alpha;
	if (orient >= 5) {
		int t = o->width;
		o->width = o->height;
		o->height = t;
		t = o->full_width;
		o->full_width = o->full_height;
		o->full_height = t;
	}
	return 0;
}
