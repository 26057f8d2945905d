/*
 * image.c - decoding: the type decided by magic bytes, the header probe,
 * one decoder per format (image_internal.h), then the EXIF orientation, so
 * that every caller gets the upright image; and the alpha helpers.
 *
 * Each decoder reads the width and height from the header itself and
 * checks them against the pixel limit before a pixel buffer exists, so an
 * image over the limit is refused without a single pixel allocated.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exif.h"
#include "image_internal.h"

static const char *const accepted_mime[] = {
	"image/jpeg", "image/png", "image/gif", "image/bmp", "image/webp",
	"image/heic", "image/avif", "image/tiff", NULL,
};
static const char supported_types[] = "JPEG, PNG, GIF, BMP, WebP, HEIC, AVIF or TIFF";

const char *const *clip_image_types(void)
{
	return accepted_mime;
}

const char *clip_image_types_text(void)
{
	return supported_types;
}

/* ---- sniffing ----------------------------------------------------------- */

static uint32_t rd_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t rd_le32(const unsigned char *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* The BMP info-header sizes stb_image decodes: OS/2 1.x (12), Windows
 * BITMAPINFOHEADER (40), its Adobe v3 extension (56), V4 (108), V5 (124). */
static int bmp_header_size_ok(uint32_t hsz)
{
	return hsz == 12 || hsz == 40 || hsz == 56 || hsz == 108 || hsz == 124;
}

static int brand_in(const unsigned char *b, const char *const *list)
{
	for (; *list; list++)
		if (!memcmp(b, *list, 4))
			return 1;
	return 0;
}

/*
 * An ISO media file's ftyp box: HEIC when the major brand is a HEIC one
 * (heic, heix, heim, heis), AVIF when it is avif; a generic major brand
 * (mif1, msf1, miaf, or an image-sequence brand) is decided by the
 * compatible brands, avif before the HEIC ones. A generic still-image
 * brand without either is taken as HEIC (libheif decides the codec).
 */
static enum clip_image_type sniff_ftyp(const unsigned char *p, size_t len)
{
	static const char *const heic[] = { "heic", "heix", "heim", "heis", NULL };
	static const char *const still[] = { "mif1", "miaf", NULL };
	static const char *const seq[] = { "msf1", "avis", "hevc", "hevx", NULL };

	if (len < 16 || memcmp(p + 4, "ftyp", 4))
		return CLIP_IMAGE_UNKNOWN;
	uint32_t box = rd_be32(p);
	if (box < 16 || box > 4096)
		return CLIP_IMAGE_UNKNOWN;
	const unsigned char *major = p + 8;
	if (brand_in(major, heic))
		return CLIP_IMAGE_HEIC;
	if (!memcmp(major, "avif", 4))
		return CLIP_IMAGE_AVIF;
	if (!brand_in(major, still) && !brand_in(major, seq))
		return CLIP_IMAGE_UNKNOWN;
	size_t end = box < len ? box : len;
	int has_avif = 0, has_heic = 0;
	for (size_t at = 16; at + 4 <= end; at += 4) {
		has_avif |= !memcmp(p + at, "avif", 4);
		has_heic |= brand_in(p + at, heic);
	}
	if (has_avif)
		return CLIP_IMAGE_AVIF;
	if (has_heic || brand_in(major, still))
		return CLIP_IMAGE_HEIC;
	return CLIP_IMAGE_UNKNOWN;
}

enum clip_image_type clip_image_sniff(const void *bytes, size_t len)
{
	static const unsigned char png_sig[8] = { 0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a };
	const unsigned char *p = bytes;

	if (!p)
		return CLIP_IMAGE_UNKNOWN;
	if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
		return CLIP_IMAGE_JPEG;
	if (len >= 8 && !memcmp(p, png_sig, 8))
		return CLIP_IMAGE_PNG;
	if (len >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6)))
		return CLIP_IMAGE_GIF;
	/* "BM" alone starts plenty of text; require a known info header. */
	if (len >= 26 && p[0] == 'B' && p[1] == 'M' && bmp_header_size_ok(rd_le32(p + 14)))
		return CLIP_IMAGE_BMP;
	if (len >= 16 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4) &&
	    (!memcmp(p + 12, "VP8 ", 4) || !memcmp(p + 12, "VP8L", 4) || !memcmp(p + 12, "VP8X", 4)))
		return CLIP_IMAGE_WEBP;
	if (len >= 8 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4)))
		return CLIP_IMAGE_TIFF;
	return sniff_ftyp(p, len);
}

const char *clip_image_mime(enum clip_image_type type)
{
	switch (type) {
	case CLIP_IMAGE_JPEG: return "image/jpeg";
	case CLIP_IMAGE_PNG: return "image/png";
	case CLIP_IMAGE_GIF: return "image/gif";
	case CLIP_IMAGE_BMP: return "image/bmp";
	case CLIP_IMAGE_WEBP: return "image/webp";
	case CLIP_IMAGE_HEIC: return "image/heic";
	case CLIP_IMAGE_AVIF: return "image/avif";
	case CLIP_IMAGE_TIFF: return "image/tiff";
	default: return NULL;
	}
}

static const char *type_name(enum clip_image_type type)
{
	switch (type) {
	case CLIP_IMAGE_JPEG: return "JPEG";
	case CLIP_IMAGE_PNG: return "PNG";
	case CLIP_IMAGE_GIF: return "GIF";
	case CLIP_IMAGE_BMP: return "BMP";
	case CLIP_IMAGE_WEBP: return "WebP";
	case CLIP_IMAGE_HEIC: return "HEIC";
	case CLIP_IMAGE_AVIF: return "AVIF";
	case CLIP_IMAGE_TIFF: return "TIFF";
	default: return "image";
	}
}

/* A name for a few well-known formats clipd does not take, for the message. */
static const char *guess_unsupported(const unsigned char *p, size_t len)
{
	if (len >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
		return "a WebP variant";
	if (len >= 12 && !memcmp(p + 4, "ftyp", 4)) {
		if (!memcmp(p + 8, "avis", 4) || !memcmp(p + 8, "msf1", 4) ||
		    !memcmp(p + 8, "hevc", 4) || !memcmp(p + 8, "hevx", 4))
			return "an image sequence";
		return "an ISO media file";
	}
	if (len >= 12 && !memcmp(p, "\0\0\0\x0cjP  ", 8))
		return "JPEG 2000";
	if (len >= 4 && p[0] == 0xff && p[1] == 0x0a)
		return "JPEG XL";
	if (len >= 4 && !memcmp(p, "8BPS", 4))
		return "PSD";
	if (len >= 5 && (!memcmp(p, "<?xml", 5) || !memcmp(p, "<svg", 4)))
		return "SVG/XML";
	if (len >= 4 && !memcmp(p, "%PDF", 4))
		return "PDF";
	size_t n = len < 256 ? len : 256, printable = 0;
	for (size_t i = 0; i < n; i++)
		printable += (p[i] >= 0x20 && p[i] < 0x7f) || p[i] == '\t' || p[i] == '\n' ||
			     p[i] == '\r';
	if (n > 0 && printable == n)
		return "text";
	if (len >= 2 && p[0] == 'B' && p[1] == 'M')
		return "a BMP variant";
	return NULL;
}

static int unsupported(const unsigned char *p, size_t len, clip_error *err)
{
	const char *what = guess_unsupported(p, len);

	if (what && !strcmp(what, "text"))
		return clip_fail(err, CLIP_ERR_UNSUPPORTED,
				 "not an image: the data is text; supported types are %s",
				 supported_types);
	if (what)
		return clip_fail(err, CLIP_ERR_UNSUPPORTED,
				 "unsupported image type (%s); supported types are %s",
				 what, supported_types);
	return clip_fail(err, CLIP_ERR_UNSUPPORTED,
			 "not a supported image: no %s signature in the first bytes", supported_types);
}

/* The EXIF of a file of type t (a TIFF file is its own EXIF structure:
 * its first directory's Orientation, its Exif directory's date). */
static void find_exif(enum clip_image_type t, const unsigned char *p, size_t len,
		      struct clip_exif *ex)
{
	const unsigned char *block = NULL;
	size_t n = 0;
	int rc = -1;

	memset(ex, 0, sizeof *ex);
	switch (t) {
	case CLIP_IMAGE_JPEG: rc = clip_exif_find_jpeg(p, len, &block, &n); break;
	case CLIP_IMAGE_PNG: rc = clip_exif_find_png(p, len, &block, &n); break;
	case CLIP_IMAGE_WEBP: rc = clip_exif_find_webp(p, len, &block, &n); break;
	case CLIP_IMAGE_TIFF: block = p; n = len; rc = 0; break;
	default: break;
	}
	if (rc == 0)
		clip_exif_parse(block, n, ex);
}

/* ---- probe and decode ---------------------------------------------------- */

int clip_image_probe(const void *bytes, size_t len, enum clip_image_type *type,
		     int *width, int *height, clip_error *err)
{
	const unsigned char *p = bytes;
	uint32_t w = 0, h = 0;
	int rc;

	if (type)
		*type = CLIP_IMAGE_UNKNOWN;
	if (width)
		*width = 0;
	if (height)
		*height = 0;
	if (len == 0)
		return clip_fail(err, CLIP_ERR_EMPTY, "empty image: zero bytes");
	if (!p)
		return clip_fail(err, CLIP_ERR_INVALID, "image bytes are NULL");

	enum clip_image_type t = clip_image_sniff(p, len);
	switch (t) {
	case CLIP_IMAGE_JPEG: rc = clip_probe_jpeg(p, len, &w, &h, err); break;
	case CLIP_IMAGE_PNG:
	case CLIP_IMAGE_GIF:
	case CLIP_IMAGE_BMP: rc = clip_probe_stb(t, p, len, &w, &h, err); break;
	case CLIP_IMAGE_WEBP: rc = clip_probe_webp(p, len, &w, &h, err); break;
	case CLIP_IMAGE_HEIC:
	case CLIP_IMAGE_AVIF: rc = clip_probe_heif(t, p, len, &w, &h, err); break;
	case CLIP_IMAGE_TIFF: rc = clip_probe_tiff(p, len, &w, &h, err); break;
	default:
		return unsupported(p, len, err);
	}
	if (type)
		*type = t;
	if (rc)
		return rc;
	if (w == 0 || h == 0)
		return clip_fail(err, CLIP_ERR_EMPTY, "empty %s: the header states %u x %u pixels",
				 type_name(t), (unsigned)w, (unsigned)h);
	if (w > INT_MAX || h > INT_MAX)
		return clip_fail(err, CLIP_ERR_TOO_LARGE, "%s header states %u x %u pixels",
				 type_name(t), (unsigned)w, (unsigned)h);
	struct clip_exif ex;
	find_exif(t, p, len, &ex);
	if (ex.orientation >= 5) {
		uint32_t s = w;
		w = h;
		h = s;
	}
	if (width)
		*width = (int)w;
	if (height)
		*height = (int)h;
	return 0;
}

struct clip_decode_params clip_decode_default_params(void)
{
	struct clip_decode_params p = {
		.max_pixels = (size_t)64 * 1000 * 1000,
		.min_short_side = 0,
		.min_long_side = 0,
		.keep_alpha = 0,
		.ignore_orientation = 0,
	};
	return p;
}

int clip_image_decode_with(const void *bytes, size_t len, const struct clip_decode_params *params,
			   clip_image *out, clip_error *err)
{
	const unsigned char *p = bytes;
	struct clip_dec_out o = { 0 };
	int rc;

	if (!out)
		return clip_fail(err, CLIP_ERR_INVALID, "no output image");
	memset(out, 0, sizeof *out);
	if (!params)
		return clip_fail(err, CLIP_ERR_INVALID, "no decode parameters");
	if (len == 0)
		return clip_fail(err, CLIP_ERR_EMPTY, "empty image: zero bytes");
	if (!p)
		return clip_fail(err, CLIP_ERR_INVALID, "image bytes are NULL");

	/* The orientation before decoding: the JPEG decoder writes its rows
	 * straight to their upright places (a second full-size buffer and a
	 * pass over it cost a 12-megapixel photo more than its crop). */
	enum clip_image_type t = clip_image_sniff(p, len);
	struct clip_exif ex = { 0 };
	if (t != CLIP_IMAGE_HEIC && t != CLIP_IMAGE_AVIF)
		find_exif(t, p, len, &ex);
	int orient = ex.orientation && !params->ignore_orientation ? ex.orientation : 1;
	const struct clip_dec_req rq = {
		.orientation = orient,
		.max_pixels = params->max_pixels,
		.min_short_side = params->min_short_side > 0 ? params->min_short_side : 0,
		.min_long_side = params->min_long_side > 0 ? params->min_long_side : 0,
		.keep_alpha = params->keep_alpha != 0,
	};
	switch (t) {
	case CLIP_IMAGE_JPEG: rc = clip_decode_jpeg(p, len, &rq, &o, err); break;
	case CLIP_IMAGE_PNG:
	case CLIP_IMAGE_GIF:
	case CLIP_IMAGE_BMP: rc = clip_decode_stb(t, p, len, &rq, &o, err); break;
	case CLIP_IMAGE_WEBP: rc = clip_decode_webp(p, len, &rq, &o, err); break;
	case CLIP_IMAGE_HEIC:
	case CLIP_IMAGE_AVIF: rc = clip_decode_heif(t, p, len, &rq, &o, err); break;
	case CLIP_IMAGE_TIFF: rc = clip_decode_tiff(p, len, &rq, &o, err); break;
	default:
		return unsupported(p, len, err);
	}
	if (rc)
		goto out;
	if (!o.rgb || o.width <= 0 || o.height <= 0) {
		rc = clip_fail(err, CLIP_ERR_UNDECODABLE, "%s decoder returned no pixels",
			       type_name(t));
		goto out;
	}
	if (!rq.keep_alpha) {
		free(o.alpha);
		o.alpha = NULL;
	}

	if (o.self_oriented) {
		orient = 1;  /* HEIF: the container's own transforms, applied by libheif */
	} else {
		memcpy(o.taken_at, ex.taken_at, sizeof o.taken_at);
		if (!o.oriented) {
			rc = clip_apply_orientation(&o, orient, err);
			if (rc)
				goto out;
		}
	}

	out->width = o.width;
	out->height = o.height;
	out->rgb = o.rgb;
	out->alpha = o.alpha;
	out->full_width = o.full_width;
	out->full_height = o.full_height;
	out->scale_denom = o.scale_denom > 0 ? o.scale_denom : 1;
	out->orientation = orient;
	out->type = t;
	memcpy(out->taken_at, o.taken_at, sizeof out->taken_at);
	out->taken_at[sizeof out->taken_at - 1] = '\0';
	o.rgb = o.alpha = NULL;  /* owned by *out now */
	rc = 0;
out:
	clip_dec_out_free(&o);
	return rc;
}

int clip_image_decode(const void *bytes, size_t len, size_t max_pixels,
		      clip_image *out, clip_error *err)
{
	struct clip_decode_params params = clip_decode_default_params();

	params.max_pixels = max_pixels;
	return clip_image_decode_with(bytes, len, &params, out, err);
}

void clip_image_free(clip_image *img)
{
	if (!img)
		return;
	free(img->rgb);
	free(img->alpha);
	memset(img, 0, sizeof *img);
}

void clip_image_flatten(clip_image *img)
{
	if (!img || !img->alpha || !img->rgb)
		return;
	const size_t n = (size_t)img->width * (size_t)img->height;
	for (size_t i = 0; i < n; i++) {
		const unsigned a = img->alpha[i];
		for (int c = 0; c < 3; c++) {
			unsigned v = img->rgb[3 * i + (size_t)c] * a + 255u * (255u - a);
			img->rgb[3 * i + (size_t)c] = (unsigned char)((v + 127) / 255);
		}
	}
	free(img->alpha);
	img->alpha = NULL;
}
