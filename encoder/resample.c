/*
 * resample.c - the resize and centre crop of CLIP's preprocessing,
 * reproducing Pillow's BICUBIC resample bit for bit, and the
 * normalisation.
 *
 * The resize follows Pillow's libImaging/Resample.c (ImagingResample with
 * the BICUBIC filter, a = -0.5): per output index, a window of input indices
 * and weights computed in double, normalised to sum 1, converted to fixed
 * point with 22 fractional bits (PRECISION_BITS = 32 - 8 - 2) rounding away
 * from zero; a horizontal pass then a vertical pass, each accumulating from
 * 0.5 (1 << 21), shifted right and clamped to 0..255. A pass whose size does
 * not change is skipped, as Pillow skips it. Only the pixels inside the
 * centre crop are computed: every output pixel depends on its own window
 * alone, so the result is identical to resizing everything and cropping.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "internal.h"

/* The largest crop side clip_image_crop accepts (models state at most
 * CLIP_MAX_IMAGE_SIZE; this is a sanity bound for any caller). */
#define CLIP_CROP_MAX_SIDE 8192

#define RESAMPLE_BITS 22  /* Pillow's PRECISION_BITS */

/* ---- Pillow's bicubic resample --------------------------------------- */

static double bicubic(double x)
{
	const double a = -0.5;

	if (x < 0.0)
		x = -x;
	if (x < 1.0)
		return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
	if (x < 2.0)
		return (((x - 5) * x + 8) * x - 4) * a;
	return 0.0;
}

/* The fixed-point windows of n consecutive output indices, starting at
 * `first`, of a resize from in_size to out_size. */
struct windows {
	int n, ksize;
	int *start, *count;  /* n each: first input index, number of taps */
	int32_t *k;          /* n * ksize weights, 22 fractional bits */
	/* For the horizontal pass over RGB rows (windows_interleave): each
	 * window's weights in chunks of 8 taps, each tap's weight three times
	 * over (one per byte of its pixel), zero past the window's count. */
	int chunks;          /* ceil(ksize / 8) */
	int32_t *k3;         /* n * chunks * 24 */
};

static void windows_free(struct windows *win)
{
	free(win->start);
	free(win->count);
	free(win->k);
	free(win->k3);
	memset(win, 0, sizeof *win);
}

static int windows_interleave(struct windows *win, clip_error *err)
{
	win->chunks = (win->ksize + 7) / 8;
	const size_t per = (size_t)win->chunks * 24;
	win->k3 = calloc((size_t)win->n * per, sizeof *win->k3);
	if (!win->k3)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory for resize weights");
	for (int i = 0; i < win->n; i++) {
		const int32_t *k = win->k + (size_t)i * (size_t)win->ksize;
		int32_t *k3 = win->k3 + (size_t)i * per;
		for (int x = 0; x < win->count[i]; x++)
			k3[3 * x] = k3[3 * x + 1] = k3[3 * x + 2] = k[x];
	}
	return 0;
}

/*
 * in_size pixels, of which the box [box0, box0 + box_len) is resized to
 * out_size (Pillow's resize with a box; the whole image: 0, in_size).
 */
static int windows_init(struct windows *win, int64_t in_size, double box0, double box_len,
			int64_t out_size, int64_t first, int n, clip_error *err)
{
	double *tmp = NULL;
	int rc = CLIP_ERR_NOMEM;

	memset(win, 0, sizeof *win);
	/* Pillow passes the box as floats and subtracts them as floats: for
	 * the whole image (double)(float)in_size. */
	const float in0 = (float)box0, in1 = (float)(box0 + box_len);
	double scale = (double)(in1 - in0) / (double)out_size;
	double filterscale = scale < 1.0 ? 1.0 : scale;
	double support = 2.0 * filterscale;  /* BICUBIC support 2, widened when shrinking */
	double ksize_d = ceil(support) * 2 + 1;
	if (ksize_d > 1 << 20)
		return clip_fail(err, CLIP_ERR_TOO_LARGE, "resize factor too large: %.0f", scale);
	int ksize = (int)ksize_d;

	win->n = n;
	win->ksize = ksize;
	win->start = malloc((size_t)n * sizeof *win->start);
	win->count = malloc((size_t)n * sizeof *win->count);
	win->k = calloc((size_t)n * (size_t)ksize, sizeof *win->k);
	tmp = malloc((size_t)ksize * sizeof *tmp);
	if (!win->start || !win->count || !win->k || !tmp) {
		clip_fail(err, rc, "out of memory for resize weights");
		goto out;
	}

	for (int i = 0; i < n; i++) {
		double center = (double)in0 + ((double)(first + i) + 0.5) * scale;
		double ss = 1.0 / filterscale;
		/* Pillow rounds with a truncating cast, then clamps. */
		int64_t lo = (int64_t)(center - support + 0.5);
		int64_t hi = (int64_t)(center + support + 0.5);
		if (lo < 0)
			lo = 0;
		if (hi > in_size)
			hi = in_size;
		int64_t cnt = hi - lo;
		if (cnt < 0)
			cnt = 0;
		if (cnt > ksize)
			cnt = ksize;  /* cannot happen: the window is at most 2*ceil(support) wide */

		double ww = 0.0;
		for (int64_t x = 0; x < cnt; x++) {
			double wgt = bicubic(((double)(x + lo) - center + 0.5) * ss);
			tmp[x] = wgt;
			ww += wgt;
		}
		int32_t *k = win->k + (size_t)i * (size_t)ksize;
		int64_t sum_abs = 0;
		for (int64_t x = 0; x < cnt; x++) {
			double v = ww != 0.0 ? tmp[x] / ww : tmp[x];
			v *= (double)(1 << RESAMPLE_BITS);
			k[x] = (int32_t)(v < 0 ? v - 0.5 : v + 0.5);
			sum_abs += k[x] < 0 ? -(int64_t)k[x] : k[x];
		}
		/* The passes accumulate in int32, as Pillow does: safe while
		 * 255 * sum|k| + 0.5 fits. Bicubic's lobes keep sum|k| under
		 * 1.7 (in units of 1 << 22), well below the 2.0 this allows. */
		if (255 * sum_abs + ((int64_t)1 << (RESAMPLE_BITS - 1)) > INT32_MAX) {
			rc = clip_fail(err, CLIP_ERR_INVALID, "resize weights out of range");
			goto out;
		}
		win->start[i] = (int)lo;
		win->count[i] = (int)cnt;
	}
	rc = 0;
out:
	free(tmp);
	if (rc)
		windows_free(win);
	return rc;
}

/* Pillow's clip8: the accumulator shifted right, clamped to 0..255. */
static unsigned char clip8(int32_t acc)
{
	if (acc < 0)
		return 0;
	acc >>= RESAMPLE_BITS;
	return acc > 255 ? 255 : (unsigned char)acc;
}

/*
 * The passes in vectors of eight 32-bit lanes (GCC's and clang's vector
 * extensions: AVX2 or AVX-512 with -march=native, SSE or NEON otherwise).
 * The sums are the same integers in another order, and none of them can
 * overflow (windows_init bounds 255 * sum|k|), so the result is Pillow's
 * bit for bit whatever the order.
 */
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint8_t v8b __attribute__((vector_size(8)));

/* 8 bytes widened to 8 lanes (GCC lowers the generic conversion byte by
 * byte, so AVX2's own instruction where there is one) */
static inline v8i load8(const unsigned char *p)
{
#if defined(__AVX2__)
	return (v8i)_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
#else
	v8b b;
	memcpy(&b, p, sizeof b);
	return __builtin_convertvector(b, v8i);
#endif
}

static inline int32_t hsum8(v8i v)
{
	typedef int32_t v4i __attribute__((vector_size(16)));
	v4i a = { v[0], v[1], v[2], v[3] }, b = { v[4], v[5], v[6], v[7] };
	a += b;
	return a[0] + a[1] + a[2] + a[3];
}

static inline v8i load8i(const int32_t *p)
{
	v8i v;
	memcpy(&v, p, sizeof v);
	return v;
}

/*
 * Horizontal pass: rows [0, rows) of src (3 bytes a pixel, src_stride bytes
 * a row, src_width pixels) through the windows of win (interleaved), into
 * dst (win->n pixels a row, packed).
 *
 * A window is read 8 pixels (24 bytes, three vectors) at a time against
 * k3; lane j of the three vectors holds channel j % 3, (j + 2) % 3 and
 * (j + 1) % 3. A window whose last chunk would read past the row's end is
 * summed tap by tap.
 */
static void resample_rows(const unsigned char *src, size_t src_stride, int src_width, int rows,
			  const struct windows *win, unsigned char *dst)
{
	const int32_t half = 1 << (RESAMPLE_BITS - 1);
	const size_t per = (size_t)win->chunks * 24;

	for (int y = 0; y < rows; y++) {
		const unsigned char *row = src + (size_t)y * src_stride;
		unsigned char *o = dst + (size_t)y * (size_t)win->n * 3;
		for (int i = 0; i < win->n; i++) {
			const unsigned char *p = row + (size_t)win->start[i] * 3;
			int32_t s0 = half, s1 = half, s2 = half;
			if ((int64_t)win->start[i] + 8 * (int64_t)win->chunks <= src_width) {
				const int32_t *kk = win->k3 + (size_t)i * per;
				v8i a0 = { 0 }, a1 = { 0 }, a2 = { 0 };
				for (int c = 0; c < win->chunks; c++, p += 24, kk += 24) {
					a0 += load8(p) * load8i(kk);
					a1 += load8(p + 8) * load8i(kk + 8);
					a2 += load8(p + 16) * load8i(kk + 16);
				}
				/* lanes of channel 0, 1, 2 in each vector */
				const v8i m0 = { -1, 0, 0, -1, 0, 0, -1, 0 };
				const v8i m1 = { 0, -1, 0, 0, -1, 0, 0, -1 };
				const v8i m2 = { 0, 0, -1, 0, 0, -1, 0, 0 };
				v8i r0 = (a0 & m0) + (a1 & m1) + (a2 & m2);
				v8i r1 = (a0 & m1) + (a1 & m2) + (a2 & m0);
				v8i r2 = (a0 & m2) + (a1 & m0) + (a2 & m1);
				s0 += hsum8(r0);
				s1 += hsum8(r1);
				s2 += hsum8(r2);
			} else {
				const int32_t *k = win->k + (size_t)i * (size_t)win->ksize;
				for (int x = 0; x < win->count[i]; x++) {
					s0 += p[3 * x + 0] * k[x];
					s1 += p[3 * x + 1] * k[x];
					s2 += p[3 * x + 2] * k[x];
				}
			}
			o[3 * i + 0] = clip8(s0);
			o[3 * i + 1] = clip8(s1);
			o[3 * i + 2] = clip8(s2);
		}
	}
}

/*
 * Vertical pass: output row i of dst (cols pixels, packed) is the window
 * win->start[i] - row0 .. of src's rows (3 bytes a pixel, src_stride a
 * row). acc holds cols * 3 accumulators.
 */
static void resample_cols(const unsigned char *src, size_t src_stride, int row0, int cols,
			  const struct windows *win, unsigned char *dst, int32_t *acc)
{
	const int32_t half = 1 << (RESAMPLE_BITS - 1);
	const size_t m = (size_t)cols * 3, m8 = m & ~(size_t)7;

	for (int i = 0; i < win->n; i++) {
		const int32_t *k = win->k + (size_t)i * (size_t)win->ksize;
		for (size_t j = 0; j < m; j++)
			acc[j] = half;
		for (int y = 0; y < win->count[i]; y++) {
			const unsigned char *row = src + (size_t)(win->start[i] - row0 + y) * src_stride;
			const int32_t kv = k[y];
			size_t j = 0;
			for (; j < m8; j += 8) {
				v8i a = load8i(acc + j) + load8(row + j) * kv;
				memcpy(acc + j, &a, sizeof a);
			}
			for (; j < m; j++)
				acc[j] += row[j] * kv;
		}
		unsigned char *o = dst + (size_t)i * m;
		for (size_t j = 0; j < m; j++)
			o[j] = clip8(acc[j]);
	}
}

int clip_image_box(const clip_image *img, double box[4], int *pw, int *ph)
{
	*pw = img ? img->width : 0;
	*ph = img ? img->height : 0;
	box[0] = box[1] = 0;
	box[2] = *pw;
	box[3] = *ph;
	if (!img || img->scale_denom <= 1 || img->full_width <= 0 || img->full_height <= 0)
		return 0;
	const double d = img->scale_denom, w = img->width, h = img->height;
	const double fw = img->full_width / d, fh = img->full_height / d;
	if (!(fw > w - 1 && fw <= w && fh > h - 1 && fh <= h))
		return 0;  /* not sizes a 1/d decode gives: the pixels as they are */
	const int o = img->orientation;
	box[0] = o == 2 || o == 3 || o == 6 || o == 7 ? w - fw : 0;
	box[1] = o == 3 || o == 4 || o == 7 || o == 8 ? h - fh : 0;
	box[2] = fw;
	box[3] = fh;
	*pw = img->full_width;
	*ph = img->full_height;
	return 1;
}

/* Python's int(round(d / 2.0)) for an integer d >= 0: halves to even. */
static int64_t half_round_even(int64_t d)
{
	int64_t q = d / 2;

	if (d % 2 && q % 2)
		q++;
	return q;
}

int clip_image_crop(const clip_image *img, int side, unsigned char *out_rgb,
		    size_t out_len, clip_error *err)
{
	struct windows hw = { 0 }, vw = { 0 };
	unsigned char *tmp = NULL;
	int32_t *acc = NULL;
	int rc;

	if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
		return clip_fail(err, CLIP_ERR_INVALID, "no image to crop");
	if (side <= 0 || side > CLIP_CROP_MAX_SIDE)
		return clip_fail(err, CLIP_ERR_INVALID, "crop side %d outside 1..%d",
				 side, CLIP_CROP_MAX_SIDE);
	const size_t need = (size_t)side * (size_t)side * 3;
	if (!out_rgb || out_len < need)
		return clip_fail(err, CLIP_ERR_INVALID, "crop buffer holds %zu bytes, %zu needed",
				 out_rgb ? out_len : 0, need);

	const int64_t w = img->width, h = img->height;
	/* The picture the crop is of: a DCT-scaled decode stands for the
	 * full-size one, so the crop samples the places the full-size
	 * decode's crop samples whatever the sizes' remainder. */
	double box[4];
	int pw, ph;
	clip_image_box(img, box, &pw, &ph);
	const int64_t gw = pw, gh = ph;
	const double bx = box[0], by = box[1], bw = box[2], bh = box[3];
	/* torchvision's Resize(side): the shorter side becomes side, the
	 * longer int(side * long / short), in double as Python computes it. */
	int64_t nw, nh;
	if (gw <= gh) {
		nw = side;
		nh = (int64_t)((double)(side * gh) / (double)gw);
	} else {
		nh = side;
		nw = (int64_t)((double)(side * gw) / (double)gh);
	}
	if (nw > INT_MAX || nh > INT_MAX)
		return clip_fail(err, CLIP_ERR_TOO_LARGE, "image %lld x %lld too elongated to resize",
				 (long long)w, (long long)h);
	/* CenterCrop: offsets int(round((size - side) / 2.0)). */
	const int64_t left = half_round_even(nw - side), top = half_round_even(nh - side);
	const size_t stride = (size_t)w * 3;
	/* Pillow skips a pass whose size and box do not change */
	const int need_h = nw != w || bx != 0 || bw != (double)w;
	const int need_v = nh != h || by != 0 || bh != (double)h;

	if (need_h) {
		rc = windows_init(&hw, w, bx, bw, nw, left, side, err);
		if (!rc)
			rc = windows_interleave(&hw, err);
		if (rc)
			goto out;
	}
	if (need_v) {
		rc = windows_init(&vw, h, by, bh, nh, top, side, err);
		if (rc)
			goto out;
		acc = malloc(need * sizeof *acc);
		if (!acc) {
			rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory for the resize");
			goto out;
		}
	}

	if (need_h && need_v) {
		/* The input rows the vertical windows touch, through the
		 * horizontal pass into tmp, then the vertical pass. */
		int y0 = vw.start[0];
		int y1 = vw.start[side - 1] + vw.count[side - 1];
		for (int i = 0; i < side; i++) {
			if (vw.start[i] < y0)
				y0 = vw.start[i];
			if (vw.start[i] + vw.count[i] > y1)
				y1 = vw.start[i] + vw.count[i];
		}
		if (y1 <= y0)
			y1 = y0 + 1;  /* cannot happen: every window has a tap */
		tmp = malloc((size_t)(y1 - y0) * (size_t)side * 3);
		if (!tmp) {
			rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory for the resize");
			goto out;
		}
		resample_rows(img->rgb + (size_t)y0 * stride, stride, (int)w, y1 - y0, &hw, tmp);
		resample_cols(tmp, (size_t)side * 3, y0, side, &vw, out_rgb, acc);
	} else if (need_h) {
		/* nh == h == side */
		resample_rows(img->rgb + (size_t)top * stride, stride, (int)w, side, &hw, out_rgb);
	} else if (need_v) {
		resample_cols(img->rgb + (size_t)left * 3, stride, 0, side, &vw, out_rgb, acc);
	} else {
		for (int y = 0; y < side; y++)
			memcpy(out_rgb + (size_t)y * side * 3,
			       img->rgb + (size_t)(top + y) * stride + (size_t)left * 3,
			       (size_t)side * 3);
	}
	rc = 0;
out:
	windows_free(&hw);
	windows_free(&vw);
	free(tmp);
	free(acc);
	return rc;
}

/* ---- normalisation -------------------------------------------------- */

int clip_image_normalize(const unsigned char *rgb, int side, const float mean[3],
			 const float std[3], float *out, size_t out_len, clip_error *err)
{
	if (!rgb || !mean || !std || !out)
		return clip_fail(err, CLIP_ERR_INVALID, "NULL argument to clip_image_normalize");
	if (side <= 0 || side > CLIP_CROP_MAX_SIDE)
		return clip_fail(err, CLIP_ERR_INVALID, "image side %d outside 1..%d",
				 side, CLIP_CROP_MAX_SIDE);
	const size_t plane = (size_t)side * (size_t)side;
	if (out_len < 3 * plane)
		return clip_fail(err, CLIP_ERR_INVALID, "output holds %zu floats, %zu needed",
				 out_len, 3 * plane);
	for (int c = 0; c < 3; c++) {
		if (!(std[c] > 0.0f) || !isfinite(mean[c]))
			return clip_fail(err, CLIP_ERR_INVALID, "bad mean/std for channel %d", c);
	}

	/* torchvision, in float32: ToTensor divides by 255, Normalize
	 * subtracts the mean and divides by the std. */
	for (int c = 0; c < 3; c++) {
		float *o = out + (size_t)c * plane;
		const float m = mean[c], s = std[c];
		for (size_t i = 0; i < plane; i++)
			o[i] = ((float)rgb[3 * i + (size_t)c] / 255.0f - m) / s;
	}
	return 0;
}
