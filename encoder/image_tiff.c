/*
 * image_tiff.c - TIFF through libtiff, reading from memory: the first page
 * (directory). The layouts Pillow reads itself are converted here, as
 * Pillow converts them: interleaved 8- and 16-bit RGB and RGBA (16-bit
 * samples keep their high byte), 1-, 2-, 4-, 8- and 16-bit greyscale
 * (black or white is zero; 16 bits keep the high byte where Pillow would
 * clip at 255: the same accepted difference as 16-bit PNGs), with or
 * without alpha, and 1- to 8-bit palettes (16-bit colour map entries keep
 * their high byte); an extra sample of unspecified data is skipped, not
 * taken as alpha (Pillow's RGBX); associated alpha is divided out of the
 * colour (Pillow's RGBa); samples in separate planes (8 or 16
 * bits) are interleaved here, since TIFFRGBAImage premultiplies an
 * unassociated alpha into the colour. Anything else libtiff can convert
 * (YCbCr, CMYK, bit-packed separate planes, JPEG-compressed, ...) goes
 * through TIFFRGBAImage.
 *
 * The orientation tag is not applied here: image.c reads it (a TIFF file is
 * its own EXIF structure) and applies it, as Pillow 9.4 does on load.
 *
 * libtiff never prints: its errors and warnings go to per-handle handlers
 * (TIFFOpenOptions, libtiff 4.5) that keep the first error for the
 * message. Its single allocations are capped from the size the header
 * states, which is checked against the pixel limit before anything the size
 * of the image is allocated.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

#include "image_internal.h"

struct tiff_src {
	const unsigned char *p;
	size_t len, pos;
	char msg[160];  /* libtiff's first error */
};

static tmsize_t src_read(thandle_t h, void *buf, tmsize_t n)
{
	struct tiff_src *s = h;

	if (n <= 0 || s->pos >= s->len)
		return 0;
	size_t k = s->len - s->pos < (size_t)n ? s->len - s->pos : (size_t)n;
	memcpy(buf, s->p + s->pos, k);
	s->pos += k;
	return (tmsize_t)k;
}

static tmsize_t src_write(thandle_t h, void *buf, tmsize_t n)
{
	(void)h;
	(void)buf;
	(void)n;
	return -1;
}

static toff_t src_seek(thandle_t h, toff_t off, int whence)
{
	struct tiff_src *s = h;
	uint64_t base = whence == SEEK_CUR ? s->pos : whence == SEEK_END ? s->len : 0;

	if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END)
		return (toff_t)-1;
	if (off > UINT64_MAX - base || base + off > s->len)
		return (toff_t)-1;
	s->pos = (size_t)(base + off);
	return s->pos;
}

static int src_close(thandle_t h)
{
	(void)h;
	return 0;
}

static toff_t src_size(thandle_t h)
{
	return ((struct tiff_src *)h)->len;
}

static int src_map(thandle_t h, void **base, toff_t *size)
{
	(void)h;
	(void)base;
	(void)size;
	return 0;  /* no mapping: libtiff reads */
}

static void src_unmap(thandle_t h, void *base, toff_t size)
{
	(void)h;
	(void)base;
	(void)size;
}

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
	struct tiff_src *s = user;

	(void)tif;
	(void)module;
	if (!s->msg[0])
		vsnprintf(s->msg, sizeof s->msg, fmt, ap);
	return 1;  /* handled: the global handler (stderr) is not called */
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
	(void)tif;
	(void)user;
	(void)module;
	(void)fmt;
	(void)ap;
	return 1;
}

static TIFF *open_mem(struct tiff_src *s, const unsigned char *p, size_t len, tmsize_t max_alloc)
{
	TIFFOpenOptions *opt = TIFFOpenOptionsAlloc();
	TIFF *tif;

	memset(s, 0, sizeof *s);
	s->p = p;
	s->len = len;
	if (!opt)
		return NULL;
	TIFFOpenOptionsSetErrorHandlerExtR(opt, on_error, s);
	TIFFOpenOptionsSetWarningHandlerExtR(opt, on_warning, s);
	TIFFOpenOptionsSetMaxSingleMemAlloc(opt, max_alloc);
	/* "m": no memory mapping; "h": read the header only, directories
	 * on demand (the first is read by TIFFClientOpen) */
	tif = TIFFClientOpenExt("memory", "rm", s, src_read, src_write, src_seek, src_close,
				src_size, src_map, src_unmap, opt);
	TIFFOpenOptionsFree(opt);
	return tif;
}

static int tiff_failure(const struct tiff_src *s, const char *what, clip_error *err)
{
	return clip_fail(err, CLIP_ERR_UNDECODABLE, "corrupt or truncated TIFF: %s%s%s", what,
			 s->msg[0] ? ": " : "", s->msg);
}

int clip_probe_tiff(const unsigned char *p, size_t len, uint32_t *w, uint32_t *h, clip_error *err)
{
	struct tiff_src s;
	TIFF *tif = open_mem(&s, p, len, (tmsize_t)64 << 20);
	uint32_t tw = 0, th = 0;

	if (!tif)
		return tiff_failure(&s, "cannot read the first directory", err);
	int ok = TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &tw) && TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &th);
	TIFFClose(tif);
	if (!ok)
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "corrupt TIFF: no image size");
	*w = tw;
	*h = th;
	return 0;
}

/* ---- the layouts converted here ----------------------------------------- */

struct layout {
	uint16_t photometric, spp, bits;
	int separate;       /* PLANARCONFIG_SEPARATE: one plane per sample (8 or 16 bits) */
	uint16_t *cmap[3];  /* palette: 1 << bits entries each, owned by libtiff */
	int alpha;          /* an extra sample is alpha (the one after the colour) */
	int premultiplied;  /* that alpha is associated: the colour is multiplied by it */
};

/* Sample i of a row of `bits`-bit samples (MSB first below 8 bits;
 * 16-bit samples in host order, as libtiff returns them), as 8 bits. */
static unsigned sample(const unsigned char *row, unsigned bits, size_t i, int scale)
{
	switch (bits) {
	case 8:
		return row[i];
	case 16: {
		uint16_t v;
		memcpy(&v, row + 2 * i, 2);
		return v >> 8;
	}
	default: {
		size_t bit = i * bits;
		unsigned v = (row[bit / 8] >> (8 - bits - bit % 8)) & ((1u << bits) - 1);
		return scale ? v * 255u / ((1u << bits) - 1) : v;
	}
	}
}

static void convert_row(const struct layout *l, const unsigned char *row, int w,
			unsigned char *rgb, unsigned char *alpha)
{
	const unsigned spp = l->spp, bits = l->bits;

	for (int x = 0; x < w; x++) {
		size_t i = (size_t)x * spp;
		unsigned r, g, b, a = 255;
		if (l->photometric == PHOTOMETRIC_RGB) {
			r = sample(row, bits, i, 1);
			g = sample(row, bits, i + 1, 1);
			b = sample(row, bits, i + 2, 1);
			if (l->alpha)
				a = sample(row, bits, i + 3, 1);
		} else if (l->photometric == PHOTOMETRIC_PALETTE) {
			unsigned k = sample(row, bits, i, 0);
			r = l->cmap[0][k] >> 8;
			g = l->cmap[1][k] >> 8;
			b = l->cmap[2][k] >> 8;
		} else {
			unsigned v = sample(row, bits, i, 1);
			if (l->photometric == PHOTOMETRIC_MINISWHITE)
				v = 255 - v;
			r = g = b = v;
			if (l->alpha)
				a = sample(row, bits, i + 1, 1);
		}
		if (l->premultiplied && a < 255) {
			/* Pillow's "RGBa" unpacking: the colour divided by alpha */
			r = a ? (r * 255u / a > 255 ? 255 : r * 255u / a) : 0;
			g = a ? (g * 255u / a > 255 ? 255 : g * 255u / a) : 0;
			b = a ? (b * 255u / a > 255 ? 255 : b * 255u / a) : 0;
		}
		rgb[3 * x] = (unsigned char)r;
		rgb[3 * x + 1] = (unsigned char)g;
		rgb[3 * x + 2] = (unsigned char)b;
		if (alpha)
			alpha[x] = (unsigned char)a;
	}
}

/* 1 if this directory is one of the layouts converted here. */
static int own_layout(TIFF *tif, struct layout *l)
{
	uint16_t planar = PLANARCONFIG_CONTIG, format = SAMPLEFORMAT_UINT, nextra = 0;
	uint16_t *extra = NULL;

	memset(l, 0, sizeof *l);
	if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &l->photometric))
		return 0;
	TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &l->spp);
	TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &l->bits);
	TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
	TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
	TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, &nextra, &extra);
	if ((planar != PLANARCONFIG_CONTIG && planar != PLANARCONFIG_SEPARATE) ||
	    format != SAMPLEFORMAT_UINT)
		return 0;
	/* separate planes of whole bytes are interleaved here (TIFFRGBAImage
	 * would premultiply an unassociated alpha into the colour) */
	l->separate = planar == PLANARCONFIG_SEPARATE;
	if (l->separate && l->bits != 8 && l->bits != 16)
		return 0;
	const unsigned colour = l->photometric == PHOTOMETRIC_RGB ? 3 : 1;
	if (l->spp < colour || l->spp > colour + 1)
		return 0;
	/* an extra sample of unspecified data is not alpha (Pillow's "RGBX";
	 * TIFFRGBAImage would take it as premultiplied alpha): skipped */
	const int unspecified = l->spp == colour + 1 && nextra >= 1 && extra &&
				extra[0] == EXTRASAMPLE_UNSPECIFIED;
	l->alpha = l->spp == colour + 1 && nextra >= 1 && extra && !unspecified;
	/* associated (premultiplied) alpha: the colour is divided by it, as
	 * Pillow reads it ("RGBa"), where TIFFRGBAImage would keep it
	 * premultiplied (darker where partly transparent) */
	l->premultiplied = l->alpha && extra[0] == EXTRASAMPLE_ASSOCALPHA;
	if (l->spp == colour + 1 && !l->alpha && !unspecified)
		return 0;  /* an extra sample without ExtraSamples: TIFFRGBAImage's job */
	switch (l->photometric) {
	case PHOTOMETRIC_RGB:
		return l->bits == 8 || l->bits == 16;
	case PHOTOMETRIC_MINISBLACK:
	case PHOTOMETRIC_MINISWHITE:
		return l->bits == 1 || l->bits == 2 || l->bits == 4 || l->bits == 8 || l->bits == 16;
	case PHOTOMETRIC_PALETTE:
		return (l->bits == 1 || l->bits == 2 || l->bits == 4 || l->bits == 8) &&
		       l->spp == 1 &&
		       TIFFGetField(tif, TIFFTAG_COLORMAP, &l->cmap[0], &l->cmap[1], &l->cmap[2]);
	default:
		return 0;
	}
}

/* The whole first page's raw rows (scanline bytes each) into raw: of
 * plane `sample` when the samples are in separate planes, else of all. */
static int read_raw(TIFF *tif, const struct tiff_src *s, uint32_t w, uint32_t h, size_t line,
		    uint16_t sample, unsigned char *raw, clip_error *err)
{
	if (!TIFFIsTiled(tif)) {
		uint32_t rps = 0;
		TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
		if (rps == 0 || rps > h)
			rps = h;
		uint32_t strips = TIFFNumberOfStrips(tif);
		const uint32_t per_plane = h / rps + (h % rps != 0);
		for (uint32_t y = 0, k = (uint32_t)sample * per_plane; y < h; y += rps, k++) {
			uint32_t rows = h - y < rps ? h - y : rps;
			if (k >= strips ||
			    TIFFReadEncodedStrip(tif, k, raw + (size_t)y * line,
						 (tmsize_t)((size_t)rows * line)) < 0)
				return tiff_failure(s, "a strip cannot be read", err);
		}
		return 0;
	}
	uint32_t tw = 0, th = 0;
	TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
	TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
	tmsize_t tsize = TIFFTileSize(tif);
	if (tw == 0 || th == 0 || tsize <= 0 || tw > 65536 || th > 65536)
		return tiff_failure(s, "bad tile size", err);
	const size_t tline = line / w * tw;  /* bytes per tile row; bits % 8 == 0 here */
	unsigned char *tile = malloc((size_t)tsize);
	if (!tile)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory for a TIFF tile");
	int rc = 0;
	for (uint32_t ty = 0; ty < h && !rc; ty += th) {
		for (uint32_t tx = 0; tx < w && !rc; tx += tw) {
			if (TIFFReadTile(tif, tile, tx, ty, 0, sample) < 0) {
				rc = tiff_failure(s, "a tile cannot be read", err);
				break;
			}
			const uint32_t rows = h - ty < th ? h - ty : th;
			const size_t bytes = (size_t)(w - tx < tw ? w - tx : tw) * (line / w);
			for (uint32_t r = 0; r < rows; r++)
				memcpy(raw + (size_t)(ty + r) * line + (size_t)tx * (line / w),
				       tile + (size_t)r * tline, bytes);
		}
	}
	free(tile);
	return rc;
}

/* Separate planes (8 or 16 bits) read one at a time into *raw, whose
 * plane_line x h bytes are replaced by the interleaved rows (w x spp
 * samples each); 0, or an error. */
static int interleave_planes(TIFF *tif, const struct tiff_src *s, const struct layout *l,
			     uint32_t w, uint32_t h, size_t plane_line, unsigned char **raw,
			     clip_error *err)
{
	const size_t bps = l->bits / 8, line = (size_t)w * l->spp * bps;
	unsigned char *rows = malloc(line * h);
	if (!rows)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory for a %u x %u TIFF", w, h);
	for (uint16_t k = 0; k < l->spp; k++) {
		int rc = read_raw(tif, s, w, h, plane_line, k, *raw, err);
		if (rc) {
			free(rows);
			return rc;
		}
		for (uint32_t y = 0; y < h; y++) {
			const unsigned char *in = *raw + (size_t)y * plane_line;
			unsigned char *o = rows + (size_t)y * line + (size_t)k * bps;
			for (uint32_t x = 0; x < w; x++, in += bps, o += (size_t)l->spp * bps)
				memcpy(o, in, bps);
		}
	}
	free(*raw);
	*raw = rows;
	return 0;
}

int clip_decode_tiff(const unsigned char *p, size_t len, const struct clip_dec_req *rq,
		     struct clip_dec_out *out, clip_error *err)
{
	struct tiff_src s;
	unsigned char *rgb = NULL, *alpha = NULL, *raw = NULL;
	uint32_t *rgba = NULL;
	uint32_t w = 0, h = 0;
	struct layout l;
	int rc;

	/* the header's size is checked first, with a small allocation cap */
	rc = clip_probe_tiff(p, len, &w, &h, err);
	if (rc)
		return rc;
	rc = clip_check_pixels("TIFF", w, h, rq->max_pixels, err);
	if (rc)
		return rc;
	const size_t n = (size_t)w * h;
	TIFF *tif = open_mem(&s, p, len, (tmsize_t)(8 * n + (16u << 20)));
	if (!tif)
		return tiff_failure(&s, "cannot read the first directory", err);

	rgb = malloc(n * 3);
	if (!rgb) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory for a %u x %u TIFF", w, h);
		goto out;
	}
	if (own_layout(tif, &l)) {
		/* a plane's scanline when the samples are separate */
		const unsigned per_line = l.separate ? 1 : l.spp;
		tmsize_t line = TIFFScanlineSize(tif);
		if (line <= 0 || (size_t)line < ((size_t)w * per_line * l.bits + 7) / 8 ||
		    (size_t)line > ((size_t)w * per_line * l.bits + 7) / 8 + 16) {
			rc = tiff_failure(&s, "bad scanline size", err);
			goto out;
		}
		if (TIFFIsTiled(tif) && l.bits < 8) {
			/* bit-packed tiles: TIFFRGBAImage's job */
			goto generic;
		}
		raw = malloc((size_t)line * h);
		if (l.alpha && rq->keep_alpha)
			alpha = malloc(n);
		if (!raw || (l.alpha && rq->keep_alpha && !alpha)) {
			rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory for a %u x %u TIFF", w, h);
			goto out;
		}
		if (l.separate) {
			rc = interleave_planes(tif, &s, &l, w, h, (size_t)line, &raw, err);
			line = (tmsize_t)((size_t)w * l.spp * (l.bits / 8));
		} else {
			rc = read_raw(tif, &s, w, h, (size_t)line, 0, raw, err);
		}
		if (rc)
			goto out;
		for (uint32_t y = 0; y < h; y++)
			convert_row(&l, raw + (size_t)y * (size_t)line, (int)w, rgb + (size_t)y * w * 3,
				    alpha ? alpha + (size_t)y * w : NULL);
		goto done;
	}
generic:;
	char emsg[1024] = "";
	if (!TIFFRGBAImageOK(tif, emsg)) {
		rc = clip_fail(err, CLIP_ERR_UNDECODABLE, "TIFF layout not supported: %s", emsg);
		goto out;
	}
	/* the orientation is image.c's: keep TIFFRGBAImage from flipping */
	TIFFSetField(tif, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT);
	rgba = malloc(n * sizeof *rgba);
	if (!rgba) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory for a %u x %u TIFF", w, h);
		goto out;
	}
	if (!TIFFReadRGBAImageOriented(tif, w, h, rgba, ORIENTATION_TOPLEFT, 0)) {
		rc = tiff_failure(&s, "the image cannot be read", err);
		goto out;
	}
	if (rq->keep_alpha) {
		alpha = malloc(n);
		if (!alpha) {
			rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory for a %u x %u TIFF", w, h);
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		rgb[3 * i] = (unsigned char)TIFFGetR(rgba[i]);
		rgb[3 * i + 1] = (unsigned char)TIFFGetG(rgba[i]);
		rgb[3 * i + 2] = (unsigned char)TIFFGetB(rgba[i]);
		if (alpha)
			alpha[i] = (unsigned char)TIFFGetA(rgba[i]);
	}
done:
	if (alpha) {
		int opaque = 1;
		for (size_t i = 0; i < n && opaque; i++)
			opaque = alpha[i] == 255;
		if (opaque) {
			free(alpha);
			alpha = NULL;
		}
	}
	out->width = out->full_width = (int)w;
	out->height = out->full_height = (int)h;
	out->scale_denom = 1;
	out->rgb = rgb;
	out->alpha = alpha;
	rgb = alpha = NULL;
	rc = 0;
out:
	TIFFClose(tif);
	free(rgb);
	free(alpha);
	free(raw);
	free(rgba);
	return rc;
}
