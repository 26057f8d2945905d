/*
 * image.c - decoding (stb_image, restricted to JPEG, PNG, GIF and BMP,
 * decided by magic bytes) and the resize and centre crop of CLIP's
 * preprocessing, reproducing Pillow's BICUBIC resample bit for bit.
 *
 * Decoding reads the width and height from the header itself, before stb
 * sees the bytes, so that an image over the pixel limit is refused without a
 * single pixel allocated (stb_image alone would happily decode 100
 * megapixels, and its own info call cannot say "too large" apart from
 * "corrupt").
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

#include <stb/stb_image.h>

#include "internal.h"

/* The largest crop side clip_image_crop accepts (models state at most
 * CLIP_MAX_IMAGE_SIZE; this is a sanity bound for any caller). */
#define CLIP_CROP_MAX_SIDE 8192

#define RESAMPLE_BITS 22  /* Pillow's PRECISION_BITS */

static const char supported_types[] = "JPEG, PNG, GIF or BMP";

/* ---- header parsing ------------------------------------------------- */

static uint32_t rd_be16(const unsigned char *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t rd_le16(const unsigned char *p) { return (uint32_t)p[1] << 8 | p[0]; }
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
	return CLIP_IMAGE_UNKNOWN;
}

const char *clip_image_mime(enum clip_image_type type)
{
	switch (type) {
	case CLIP_IMAGE_JPEG: return "image/jpeg";
	case CLIP_IMAGE_PNG: return "image/png";
	case CLIP_IMAGE_GIF: return "image/gif";
	case CLIP_IMAGE_BMP: return "image/bmp";
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
	default: return "image";
	}
}

/* A name for a few well-known formats clipd does not take, for the message. */
static const char *guess_unsupported(const unsigned char *p, size_t len)
{
	if (len >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
		return "WebP";
	if (len >= 12 && !memcmp(p + 4, "ftyp", 4)) {
		if (!memcmp(p + 8, "avif", 4) || !memcmp(p + 8, "avis", 4))
			return "AVIF";
		if (!memcmp(p + 8, "hei", 3) || !memcmp(p + 8, "hev", 3) ||
		    !memcmp(p + 8, "mif1", 4) || !memcmp(p + 8, "msf1", 4))
			return "HEIF/HEIC";
		return "an ISO media file";
	}
	if (len >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4)))
		return "TIFF";
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

/*
 * Huffman tables of a DHT segment whose length field is at p[pos], read
 * exactly as stb_image reads them (past the segment's end if the tables say
 * so; zeros past the data's end). stb_image 2.27, Debian's, writes past its
 * 256-entry arrays when a table states more than 256 codes (fixed upstream
 * after 2.27, stb issue #1289): refuse those before stb sees them.
 */
static int jpeg_check_dht(const unsigned char *p, size_t len, size_t pos, clip_error *err)
{
	long remaining = (long)rd_be16(p + pos) - 2;
	size_t q = pos + 2;

	while (remaining > 0) {
		unsigned tbl = q < len ? p[q] : 0;
		if ((tbl >> 4) > 1 || (tbl & 15) > 3)
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "corrupt JPEG: bad Huffman table header 0x%02X", tbl);
		unsigned codes = 0;
		for (int i = 1; i <= 16; i++)
			codes += q + i < len ? p[q + i] : 0;
		if (codes > 256)
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "corrupt JPEG: a Huffman table of %u codes (256 at most)", codes);
		q += 17 + codes;
		remaining -= 17 + (long)codes;
	}
	return 0;
}

/*
 * JPEG: walk the marker segments from SOI the way stb_image does (bytes
 * between segments are skipped up to the next 0xFF; fill bytes 0xFF are
 * skipped) and read the height and width of the first frame header. With
 * full, go on through every segment and scan to the end of the image:
 * refuse a header cut short (stb_image gives no reason for some of those)
 * and any Huffman table stb_image would overflow on.
 */
static int jpeg_walk(const unsigned char *p, size_t len, uint32_t *w, uint32_t *h,
		     int full, clip_error *err)
{
	size_t pos = 2;
	int have_frame = 0, have_scan = 0;

	for (;;) {
		while (pos < len && p[pos] != 0xff)
			pos++;
		while (pos < len && p[pos] == 0xff)
			pos++;
		if (pos >= len) {
			if (have_scan)
				return 0;  /* no end-of-image marker: stb_image says so */
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "truncated JPEG: the data ends before the %s",
					 have_frame ? "image data" : "frame header");
		}
		unsigned m = p[pos++];
		if (m == 0x01 || (m >= 0xd0 && m <= 0xd8))
			continue;  /* standalone markers */
		if (m == 0xd9) {
			if (have_scan)
				return 0;
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "corrupt JPEG: end of image before the image data");
		}
		if (m == 0xda && !have_frame)
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "corrupt JPEG: image data before the frame header");
		if (pos + 2 > len)
			return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated JPEG header");
		uint32_t seg = rd_be16(p + pos);
		if (seg < 2)
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "corrupt JPEG: segment length %u", (unsigned)seg);
		if (!have_frame && m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
			if (m > 0xc2)
				return clip_fail(err, CLIP_ERR_UNDECODABLE,
						 "JPEG variant not supported (SOF%u: lossless, hierarchical "
						 "or arithmetic-coded); baseline and progressive are",
						 m - 0xc0);
			if (seg < 7 || pos + 7 > len)
				return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated JPEG frame header");
			*h = rd_be16(p + pos + 3);
			*w = rd_be16(p + pos + 5);
			have_frame = 1;
			if (!full)
				return 0;
		}
		if (m == 0xc4) {
			int rc = jpeg_check_dht(p, len, pos, err);
			if (rc)
				return rc;
		}
		if (seg > len - pos)
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "truncated JPEG: a segment (marker 0x%02X) of %u bytes runs "
					 "past the end of the data", m, (unsigned)seg);
		pos += seg;
		if (m == 0xda) {
			/* entropy-coded data: up to the next marker, stuffed
			 * zeros, restart markers and fill bytes being data */
			have_scan = 1;
			while (pos + 1 < len) {
				if (p[pos] == 0xff && p[pos + 1] != 0 && p[pos + 1] != 0xff &&
				    !(p[pos + 1] >= 0xd0 && p[pos + 1] <= 0xd7))
					break;
				pos++;
			}
			if (pos + 1 >= len)
				return 0;  /* no end-of-image marker: stb_image says so */
		}
	}
}

/* PNG: the IHDR chunk, which must come first (after Apple's CgBI, which
 * stb_image also accepts). */
static int png_dims(const unsigned char *p, size_t len, uint32_t *w, uint32_t *h,
		    clip_error *err)
{
	size_t pos = 8;

	for (int chunk = 0; chunk < 2; chunk++) {
		if (len < pos + 8)
			break;
		uint32_t clen = rd_be32(p + pos);
		if (!memcmp(p + pos + 4, "IHDR", 4)) {
			if (clen != 13)
				return clip_fail(err, CLIP_ERR_UNDECODABLE,
						 "corrupt PNG: IHDR length %u", (unsigned)clen);
			if (len < pos + 16)
				break;
			*w = rd_be32(p + pos + 8);
			*h = rd_be32(p + pos + 12);
			return 0;
		}
		if (memcmp(p + pos + 4, "CgBI", 4) || clen > len)
			return clip_fail(err, CLIP_ERR_UNDECODABLE, "corrupt PNG: first chunk is not IHDR");
		pos += 12 + (size_t)clen;
	}
	return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated PNG header");
}

/*
 * PNG: every chunk whole within the data, up to IEND (stb_image grows its
 * buffer to a chunk's stated length before reading it, and fails without
 * IEND). Also the bytes of the filtered image the IHDR states, which bound
 * what the zlib stream may inflate to.
 */
static int png_check_chunks(const unsigned char *p, size_t len, uint64_t *raw_bytes,
			    clip_error *err)
{
	size_t pos = 8;

	*raw_bytes = 0;
	while (pos <= len && len - pos >= 12) {
		uint32_t clen = rd_be32(p + pos);
		const unsigned char *type = p + pos + 4;
		char name[5];
		for (int i = 0; i < 4; i++)
			name[i] = (type[i] >= 'A' && type[i] <= 'Z') || (type[i] >= 'a' && type[i] <= 'z')
				  ? (char)type[i] : '?';
		name[4] = '\0';
		if (clen > len - pos - 12)
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "truncated PNG: a %s chunk of %u bytes runs past the end of the data",
					 name, (unsigned)clen);
		if (!memcmp(type, "IHDR", 4) && clen >= 13 && !*raw_bytes) {
			uint64_t w = rd_be32(p + pos + 8), h = rd_be32(p + pos + 12);
			unsigned depth = p[pos + 16], ctype = p[pos + 17];
			unsigned channels = ctype == 2 ? 3 : ctype == 4 ? 2 : ctype == 6 ? 4 : 1;
			/* the first IHDR, whose sides clip_image_decode has bounded
			 * by CLIP_IMAGE_MAX_SIDE; stb_image refuses other depths */
			if (w <= CLIP_IMAGE_MAX_SIDE && h <= CLIP_IMAGE_MAX_SIDE && depth <= 16)
				*raw_bytes = h * (1 + (w * channels * depth + 7) / 8);
		}
		if (!memcmp(type, "IEND", 4))
			return 0;
		pos += 12 + (size_t)clen;
	}
	return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated PNG: the data ends before IEND");
}

/* BMP: the info header; a negative height means top-down rows. */
static int bmp_dims(const unsigned char *p, size_t len, uint32_t *w, uint32_t *h,
		    clip_error *err)
{
	uint32_t hsz = rd_le32(p + 14);

	if (hsz == 12) {
		*w = rd_le16(p + 18);
		*h = rd_le16(p + 20);
		return 0;
	}
	if (len < 26)
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated BMP header");
	int32_t sw = (int32_t)rd_le32(p + 18), sh = (int32_t)rd_le32(p + 22);
	if (sw < 0 || sh == INT32_MIN)
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "corrupt BMP header: size %d x %d",
				 (int)sw, (int)sh);
	*w = (uint32_t)sw;
	*h = (uint32_t)(sh < 0 ? -sh : sh);
	return 0;
}

/*
 * stb_image reads past the end of a BMP as zeros and returns black rows;
 * Pillow refuses a truncated BMP. For the uncompressed and bit-field kinds,
 * check that the pixel array the header describes fits in the data.
 */
static int bmp_check_length(const unsigned char *p, size_t len, uint64_t w, uint64_t h,
			    clip_error *err)
{
	uint32_t hsz = rd_le32(p + 14);
	uint32_t offset = rd_le32(p + 10);
	uint32_t bpp, compression = 0;

	if (hsz == 12) {
		bpp = rd_le16(p + 24);
	} else {
		if (len < 34)
			return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated BMP header");
		bpp = rd_le16(p + 28);
		compression = rd_le32(p + 30);
	}
	if (compression != 0 && compression != 3)
		return 0;  /* stb refuses RLE itself */
	if (bpp == 0 || bpp > 32)
		return 0;  /* stb refuses these itself */
	uint64_t row = (w * bpp + 31) / 32 * 4;  /* w < 2^32, bpp <= 32: no overflow */
	if (row != 0 && h > (UINT64_MAX - offset) / row)
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "corrupt BMP header");
	uint64_t need = offset + row * h;
	if (need > len)
		return clip_fail(err, CLIP_ERR_UNDECODABLE,
				 "truncated BMP: %llu bytes of pixel data expected, %zu bytes present",
				 (unsigned long long)(need - offset),
				 len > offset ? len - offset : (size_t)0);
	return 0;
}

/*
 * stb_image decodes a GIF whose first frame is cut short, filling the rest
 * with black; Pillow refuses it. Walk the blocks up to the end of the first
 * frame's image data and check that they are all there.
 */
static int gif_check_first_frame(const unsigned char *p, size_t len, clip_error *err)
{
	size_t pos = 13;

	if (len < 13)
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated GIF header");
	if (p[10] & 0x80)
		pos += (size_t)3 << ((p[10] & 7) + 1);  /* global colour table */
	for (;;) {
		if (pos >= len)
			break;
		unsigned char b = p[pos];
		if (b == 0x3b)
			return clip_fail(err, CLIP_ERR_UNDECODABLE, "corrupt GIF: no image before the trailer");
		if (b == 0x2c) {
			if (len - pos < 11)
				break;
			unsigned char flags = p[pos + 9];
			pos += 10;
			if (flags & 0x80)
				pos += (size_t)3 << ((flags & 7) + 1);  /* local colour table */
			pos += 1;  /* LZW minimum code size */
		} else if (b == 0x21) {
			pos += 2;  /* introducer, label */
		} else {
			return clip_fail(err, CLIP_ERR_UNDECODABLE,
					 "corrupt GIF: unknown block 0x%02X", b);
		}
		/* data sub-blocks up to the zero-length terminator */
		while (pos < len && p[pos] != 0)
			pos += (size_t)p[pos] + 1;
		if (pos >= len)
			break;
		pos++;
		if (b == 0x2c)
			return 0;
	}
	return clip_fail(err, CLIP_ERR_UNDECODABLE,
			 "truncated GIF: the data ends inside the first frame");
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
	case CLIP_IMAGE_JPEG: rc = jpeg_walk(p, len, &w, &h, 0, err); break;
	case CLIP_IMAGE_PNG: rc = png_dims(p, len, &w, &h, err); break;
	case CLIP_IMAGE_GIF:
		if (len < 10)
			return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated GIF header");
		w = rd_le16(p + 6);
		h = rd_le16(p + 8);
		rc = 0;
		break;
	case CLIP_IMAGE_BMP: rc = bmp_dims(p, len, &w, &h, err); break;
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
	if (width)
		*width = (int)w;
	if (height)
		*height = (int)h;
	return 0;
}

/* ---- decoding ------------------------------------------------------- */

/* Map stb_image's short failure reason to a status. */
static int stb_failure(enum clip_image_type t, clip_error *err)
{
	const char *why = stbi_failure_reason();

	/* Some of stb's loaders fail without a reason, leaving the one its
	 * probe for PNG (tried first, whatever the data) set. */
	if (!why || !*why || (t != CLIP_IMAGE_PNG && !strcmp(why, "bad png sig")))
		why = "no reason given by the decoder";
	if (!strcmp(why, "outofmem"))
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory decoding the %s", type_name(t));
	if (!strcmp(why, "too large"))
		return clip_fail(err, CLIP_ERR_TOO_LARGE, "%s too large for the decoder",
				 type_name(t));
	return clip_fail(err, CLIP_ERR_UNDECODABLE, "cannot decode %s (corrupt or truncated): %s",
			 type_name(t), why);
}

int clip_image_decode(const void *bytes, size_t len, size_t max_pixels,
		      clip_image *out, clip_error *err)
{
	enum clip_image_type t;
	int w, h, x = 0, y = 0, n = 0;
	int rc;

	if (!out)
		return clip_fail(err, CLIP_ERR_INVALID, "no output image");
	out->width = out->height = 0;
	out->rgb = NULL;

	rc = clip_image_probe(bytes, len, &t, &w, &h, err);
	if (rc)
		return rc;
	uint64_t pixels = (uint64_t)w * (uint64_t)h;  /* both < 2^31: no overflow */
	if (pixels > max_pixels)
		return clip_fail(err, CLIP_ERR_TOO_LARGE,
				 "image too large: %d x %d = %.1f megapixels, over the limit "
				 "of %.1f megapixels", w, h, pixels / 1e6, max_pixels / 1e6);
	if (w > CLIP_IMAGE_MAX_SIDE || h > CLIP_IMAGE_MAX_SIDE)
		return clip_fail(err, CLIP_ERR_TOO_LARGE,
				 "image too large: %d x %d, a side over %d pixels",
				 w, h, CLIP_IMAGE_MAX_SIDE);
	if (len > INT_MAX)
		return clip_fail(err, CLIP_ERR_TOO_LARGE, "image file too large: %zu bytes", len);
	if (t == CLIP_IMAGE_BMP) {
		rc = bmp_check_length(bytes, len, (uint64_t)w, (uint64_t)h, err);
		if (rc)
			return rc;
	}
	if (t == CLIP_IMAGE_GIF) {
		rc = gif_check_first_frame(bytes, len, err);
		if (rc)
			return rc;
	}
	if (t == CLIP_IMAGE_JPEG) {
		uint32_t jw, jh;
		rc = jpeg_walk(bytes, len, &jw, &jh, 1, err);
		if (rc)
			return rc;
	}
	/* The largest block stb_image needs for this header: 8 bytes a pixel
	 * (16-bit RGBA) covers every buffer of every format, padded to the
	 * JPEG block grid; a PNG's inflated data may take twice what the
	 * IHDR states (stb_image doubles its buffer; Adam7 adds filter
	 * bytes); a PNG's concatenated chunks at most twice the data. */
	uint64_t raw = 0;
	if (t == CLIP_IMAGE_PNG) {
		rc = png_check_chunks(bytes, len, &raw, err);
		if (rc)
			return rc;
	}
	uint64_t cap = 8 * ((uint64_t)w + 32) * ((uint64_t)h + 32);
	if (2 * raw > cap)
		cap = 2 * raw;
	cap += 2 * (uint64_t)len + ((uint64_t)1 << 20);

	/* stb_image converts to 3 channels: drops alpha, replicates grey,
	 * expands palettes, keeps the high byte of 16-bit samples; for a GIF
	 * it returns the first frame. Its buffer comes from malloc
	 * (stb_impl.c), so clip_image_free can free it. */
	clip_stbi_cap_allocations(cap < SIZE_MAX ? (size_t)cap : SIZE_MAX);
	unsigned char *rgb = stbi_load_from_memory(bytes, (int)len, &x, &y, &n, 3);
	int refused = clip_stbi_allocation_refused();
	clip_stbi_cap_allocations(0);
	if (!rgb && refused)
		return clip_fail(err, CLIP_ERR_UNDECODABLE,
				 "corrupt %s: its data expands past what a %d x %d image needs "
				 "(a decompression bomb?)", type_name(t), w, h);
	if (!rgb)
		return stb_failure(t, err);
	if (x != w || y != h) {
		stbi_image_free(rgb);
		return clip_fail(err, CLIP_ERR_UNDECODABLE,
				 "corrupt %s: decoded %d x %d, the header states %d x %d",
				 type_name(t), x, y, w, h);
	}
	out->width = w;
	out->height = h;
	out->rgb = rgb;
	return 0;
}

void clip_image_free(clip_image *img)
{
	if (!img)
		return;
	free(img->rgb);
	img->rgb = NULL;
	img->width = img->height = 0;
}

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
};

static void windows_free(struct windows *win)
{
	free(win->start);
	free(win->count);
	free(win->k);
	memset(win, 0, sizeof *win);
}

static int windows_init(struct windows *win, int64_t in_size, int64_t out_size,
			int64_t first, int n, clip_error *err)
{
	double *tmp = NULL;
	int rc = CLIP_ERR_NOMEM;

	memset(win, 0, sizeof *win);
	/* Pillow passes the box as floats: (double)(float)in_size. */
	double scale = (double)(float)in_size / (double)out_size;
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
		double center = ((double)(first + i) + 0.5) * scale;
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
 * Horizontal pass: rows [0, rows) of src (3 bytes a pixel, src_stride bytes
 * a row) through the windows of win, into dst (win->n pixels a row, packed).
 */
static void resample_rows(const unsigned char *src, size_t src_stride, int rows,
			  const struct windows *win, unsigned char *dst)
{
	const int32_t half = 1 << (RESAMPLE_BITS - 1);

	for (int y = 0; y < rows; y++) {
		const unsigned char *row = src + (size_t)y * src_stride;
		unsigned char *o = dst + (size_t)y * (size_t)win->n * 3;
		for (int i = 0; i < win->n; i++) {
			const int32_t *k = win->k + (size_t)i * (size_t)win->ksize;
			const unsigned char *p = row + (size_t)win->start[i] * 3;
			int32_t s0 = half, s1 = half, s2 = half;
			for (int x = 0; x < win->count[i]; x++) {
				s0 += p[3 * x + 0] * k[x];
				s1 += p[3 * x + 1] * k[x];
				s2 += p[3 * x + 2] * k[x];
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
	const size_t m = (size_t)cols * 3;

	for (int i = 0; i < win->n; i++) {
		const int32_t *k = win->k + (size_t)i * (size_t)win->ksize;
		for (size_t j = 0; j < m; j++)
			acc[j] = half;
		for (int y = 0; y < win->count[i]; y++) {
			const unsigned char *row = src + (size_t)(win->start[i] - row0 + y) * src_stride;
			const int32_t kv = k[y];
			for (size_t j = 0; j < m; j++)
				acc[j] += row[j] * kv;
		}
		unsigned char *o = dst + (size_t)i * m;
		for (size_t j = 0; j < m; j++)
			o[j] = clip8(acc[j]);
	}
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

	/* torchvision's Resize(side): the shorter side becomes side, the
	 * longer int(side * long / short), in double as Python computes it. */
	const int64_t w = img->width, h = img->height;
	int64_t nw, nh;
	if (w <= h) {
		nw = side;
		nh = (int64_t)((double)(side * h) / (double)w);
	} else {
		nh = side;
		nw = (int64_t)((double)(side * w) / (double)h);
	}
	if (nw > INT_MAX || nh > INT_MAX)
		return clip_fail(err, CLIP_ERR_TOO_LARGE, "image %lld x %lld too elongated to resize",
				 (long long)w, (long long)h);
	/* CenterCrop: offsets int(round((size - side) / 2.0)). */
	const int64_t left = half_round_even(nw - side), top = half_round_even(nh - side);
	const size_t stride = (size_t)w * 3;
	const int need_h = nw != w, need_v = nh != h;

	if (need_h) {
		rc = windows_init(&hw, w, nw, left, side, err);
		if (rc)
			goto out;
	}
	if (need_v) {
		rc = windows_init(&vw, h, nh, top, side, err);
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
		resample_rows(img->rgb + (size_t)y0 * stride, stride, y1 - y0, &hw, tmp);
		resample_cols(tmp, (size_t)side * 3, y0, side, &vw, out_rgb, acc);
	} else if (need_h) {
		/* nh == h == side */
		resample_rows(img->rgb + (size_t)top * stride, stride, side, &hw, out_rgb);
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
