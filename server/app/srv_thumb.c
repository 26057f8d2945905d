#include "srv_thumb.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_jpeg.h"

const int srv_thumb_sizes[3] = { 128, 256, 512 };

int srv_thumb_size_ok(long long size)
{
	for (size_t i = 0; i < 3; i++)
		if (size == srv_thumb_sizes[i])
			return 1;
	return 0;
}

/* One axis of an area-average resampler: for each output index, the
 * source range it covers and the weights of its end pixels. */
struct span {
	int first, last;
	float w_first, w_last;
};

/* dst spans over the box [a0, a0 + len) of src pixels. */
static struct span *make_spans(int src, double a0, double len, int dst)
{
	struct span *s = malloc((size_t)dst * sizeof *s);
	if (!s)
		return NULL;
	double scale = len / dst;   /* >= 1: thumbnails only shrink */
	for (int i = 0; i < dst; i++) {
		double a = a0 + i * scale, b = a0 + (i + 1) * scale;
		if (b > src)
			b = src;
		int first = (int)a, last = (int)ceil(b) - 1;
		if (last >= src)
			last = src - 1;
		if (last < first)
			last = first;
		s[i].first = first;
		s[i].last = last;
		/* Each end pixel counts for the part of it the span covers. */
		s[i].w_first = (float)((first + 1 < b ? first + 1 : b) - a);
		s[i].w_last = (float)(b - (last > a ? last : a));
	}
	return s;
}

static void resize(const unsigned char *in, int w, unsigned char *out, int ow, int oh,
		   const struct span *sx, const struct span *sy, float *row)
{
	for (int oy = 0; oy < oh; oy++) {
		/* Vertical pass into row (w x 3 floats). */
		memset(row, 0, (size_t)w * 3 * sizeof *row);
		float wsum_y = 0;
		for (int y = sy[oy].first; y <= sy[oy].last; y++) {
			float wy = y == sy[oy].first ? sy[oy].w_first : y == sy[oy].last ? sy[oy].w_last : 1.0f;
			wsum_y += wy;
			const unsigned char *src = in + (size_t)y * (size_t)w * 3;
			for (int x = 0; x < w * 3; x++)
				row[x] += wy * src[x];
		}
		for (int ox = 0; ox < ow; ox++) {
			float acc[3] = { 0, 0, 0 }, wsum = 0;
			for (int x = sx[ox].first; x <= sx[ox].last; x++) {
				float wx = x == sx[ox].first ? sx[ox].w_first : x == sx[ox].last ? sx[ox].w_last : 1.0f;
				wsum += wx;
				for (int c = 0; c < 3; c++)
					acc[c] += wx * row[x * 3 + c];
			}
			float norm = wsum * wsum_y;
			for (int c = 0; c < 3; c++) {
				float v = norm > 0 ? acc[c] / norm : 0;
				out[((size_t)oy * (size_t)ow + (size_t)ox) * 3 + (size_t)c] =
					(unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
			}
		}
	}
}

int srv_thumb_make(const clip_image *img, int side, unsigned char **jpeg, size_t *len)
{
	int rc = -1;
	const unsigned char *rgb = img->rgb;
	const int w = img->width, h = img->height;
	/* The picture's own size: a DCT-scaled decode stands for the full
	 * one, from its box (its last pixel may stand for part of d). */
	double box[4];
	int pw, ph;
	clip_image_box(img, box, &pw, &ph);
	int ow = pw, oh = ph;
	if (pw > side || ph > side) {
		if (pw >= ph) {
			ow = side;
			oh = (int)((double)ph * side / pw + 0.5);
		} else {
			oh = side;
			ow = (int)((double)pw * side / ph + 0.5);
		}
		if (ow < 1)
			ow = 1;
		if (oh < 1)
			oh = 1;
	}
	struct span *sx = NULL, *sy = NULL;
	float *row = NULL;
	unsigned char *small = NULL;
	const unsigned char *src = rgb;
	if (ow != w || oh != h || box[0] != 0 || box[1] != 0 || box[2] != w || box[3] != h) {
		sx = make_spans(w, box[0], box[2], ow);
		sy = make_spans(h, box[1], box[3], oh);
		row = malloc((size_t)w * 3 * sizeof *row);
		small = malloc((size_t)ow * (size_t)oh * 3);
		if (!sx || !sy || !row || !small)
			goto out;
		resize(rgb, w, small, ow, oh, sx, sy, row);
		src = small;
	}
	rc = srv_jpeg_encode(src, ow, oh, SRV_THUMB_QUALITY, jpeg, len);
out:
	free(sx);
	free(sy);
	free(row);
	free(small);
	return rc;
}
