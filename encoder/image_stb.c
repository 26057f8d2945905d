/*
 * image_stb.c - PNG, GIF and BMP through stb_image (stb_impl.c), with the
 * checks stb_image does not make: the size from the header before any
 * allocation, every PNG chunk whole, a cap on any one allocation (a zlib
 * bomb), a BMP's pixel array and a GIF's first frame present in full;
 * and RLE-compressed BMPs, which stb_image cannot read, decoded here.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>

#include "image_internal.h"

static uint32_t rd_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t rd_le16(const unsigned char *p) { return (uint32_t)p[1] << 8 | p[0]; }
static uint32_t rd_le32(const unsigned char *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static const char *type_name(enum clip_image_type t)
{
	return t == CLIP_IMAGE_PNG ? "PNG" : t == CLIP_IMAGE_GIF ? "GIF" : "BMP";
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
 * buffer to a chunk's stated length before reading it). Data that ends
 * at a chunk's end after some IDAT without IEND (*no_iend) is taken, as
 * Pillow takes it: stb_image, which fails without IEND, gets a copy with
 * one, and still refuses an image whose zlib stream is cut short. Also
 * the bytes of the filtered image the IHDR states, which bound what the
 * zlib stream may inflate to, and whether an IDAT chunk is empty
 * (*empty_idat): stb_image adds the offset 0 to its still NULL buffer for
 * one that comes first, undefined behaviour the sanitizers stop at.
 */
static int png_check_chunks(const unsigned char *p, size_t len, uint64_t *raw_bytes, int *empty_idat,
			    int *no_iend, clip_error *err)
{
	size_t pos = 8;
	int idat = 0;

	*raw_bytes = 0;
	*empty_idat = 0;
	*no_iend = 0;
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
		if (!memcmp(type, "IDAT", 4)) {
			idat = 1;
			if (clen == 0)
				*empty_idat = 1;
		}
		if (!memcmp(type, "IEND", 4))
			return 0;
		pos += 12 + (size_t)clen;
	}
	if (pos == len && idat) {
		*no_iend = 1;
		return 0;
	}
	return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated PNG: the data ends before IEND");
}

/* A copy of a PNG (png_check_chunks passed it) up to IEND without its
 * empty IDAT chunks, which hold nothing of the image, and with an IEND
 * when it had none; its length in *out_len; NULL when out of memory. */
static unsigned char *png_for_stb(const unsigned char *p, size_t len, size_t *out_len)
{
	static const unsigned char iend[12] = { 0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82 };
	unsigned char *q = malloc(len + sizeof iend);
	if (!q)
		return NULL;
	size_t pos = 8, n = 8;
	int ended = 0;
	memcpy(q, p, 8);
	while (pos <= len && len - pos >= 12) {
		size_t whole = 12 + (size_t)rd_be32(p + pos);
		if (memcmp(p + pos + 4, "IDAT", 4) || whole > 12) {
			memcpy(q + n, p + pos, whole);
			n += whole;
		}
		if (!memcmp(p + pos + 4, "IEND", 4)) {
			ended = 1;
			break;
		}
		pos += whole;
	}
	if (!ended) {
		memcpy(q + n, iend, sizeof iend);
		n += sizeof iend;
	}
	*out_len = n;
	return q;
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
		return 0;  /* stb refuses the other compressions itself */
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

/* BMP: biCompression (BI_RLE8 1, BI_RLE4 2), 0 for a core header. */
static uint32_t bmp_compression(const unsigned char *p, size_t len)
{
	return len >= 34 && rd_le32(p + 14) >= 40 ? rd_le32(p + 30) : 0;
}

/*
 * An RLE8 or RLE4 BMP (w x h from bmp_dims). The pixel data is palette
 * indices as pairs of bytes: a count and an index (RLE4: a byte of two
 * indices, alternating) for a run, or a zero and an escape: 0 ends a
 * line, 1 the bitmap, 2 moves right and down by the next two bytes, and 3
 * to 255 that many literal indices (two a byte for RLE4), padded to 16
 * bits. The position goes through the rows in file order (bottom up
 * unless the height is negative) as one line, as in Pillow's decoder: a
 * run stops at the end of its row (x, the column counted since the row
 * began, which literal indices may take past it), literal indices go on
 * into the next row.
 * Pixels nothing writes are index 0, as the ones Pillow skips. Where
 * Pillow 9.4 misreads the format, clipd follows the format instead (the
 * README's "Image formats"): it reads a move's two bytes once (Pillow
 * reads four), takes an odd RLE4 literal run's last index (Pillow drops
 * it, and reads the rest of the data a byte early), and takes an end of
 * bitmap before the last row as leaving the rest index 0 (Pillow refuses
 * the file).
 */
static int bmp_rle(const unsigned char *p, size_t len, uint32_t w, uint32_t h, struct clip_dec_out *out,
		   clip_error *err)
{
	if (len < 50)
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated BMP header");
	int rle4 = bmp_compression(p, len) == 2;
	uint32_t hsz = rd_le32(p + 14), bpp = rd_le16(p + 28), offset = rd_le32(p + 10);
	if (bpp != (rle4 ? 4u : 8u))
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "corrupt BMP: RLE%d with %u bits a pixel",
				 rle4 ? 4 : 8, (unsigned)bpp);
	if (w == 0 || h == 0)
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "corrupt BMP header: size %u x %u", (unsigned)w,
				 (unsigned)h);
	int top_down = (int32_t)rd_le32(p + 22) < 0;
	uint64_t colors = rd_le32(p + 46), pal_at = 14 + (uint64_t)hsz;
	if (colors == 0)
		colors = 1u << bpp;
	if (colors > 65536)
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "corrupt BMP: a palette of %llu colours",
				 (unsigned long long)colors);
	if (pal_at + 4 * colors > len)
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated BMP: the palette is cut short");
	/* a pixel data offset at the palette means past it (as Pillow reads it) */
	uint64_t at_data = offset == pal_at ? pal_at + 4 * colors : offset;
	if (at_data >= len)
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated BMP: no pixel data");
	unsigned char pal[256][3] = { { 0 } };  /* indices past the palette: black */
	for (size_t c = 0; c < colors && c < 256; c++) {
		const unsigned char *e = p + pal_at + 4 * c;  /* blue, green, red, unused */
		pal[c][0] = e[2];
		pal[c][1] = e[1];
		pal[c][2] = e[0];
	}

	size_t n = (size_t)w * h, at = 0, x = 0, i = (size_t)at_data;
	unsigned char *idx = calloc(n, 1);
	if (!idx)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory decoding the BMP");
	int ended = 0;
	while (at < n && len - i >= 2) {
		unsigned cnt = p[i], b = p[i + 1];
		i += 2;
		if (cnt) {                      /* a run, to the end of the row at most */
			size_t room = x < w ? w - x : 0, run = cnt < room ? cnt : room;
			run = run < n - at ? run : n - at;
			for (size_t k = 0; k < run; k++)
				idx[at + k] = (unsigned char)(!rle4 ? b : k % 2 ? b & 15 : b >> 4);
			at += run;
			x += run;
		} else if (b == 0) {            /* end of line */
			if (at % w)
				at += w - at % w;
			x = 0;
		} else if (b == 1) {            /* end of bitmap */
			ended = 1;
			break;
		} else if (b == 2) {            /* move right, down */
			if (len - i < 2)
				break;
			size_t step = p[i] + (size_t)p[i + 1] * w;
			i += 2;
			at = step < n - at ? at + step : n;
			x = at % w;
		} else {                        /* b literal indices */
			size_t bytes = rle4 ? (b + 1) / 2 : b;
			if (len - i < bytes)
				break;
			for (size_t k = 0; k < b && at < n; k++, at++)
				idx[at] = (unsigned char)(!rle4 ? p[i + k] : k % 2 ? p[i + k / 2] & 15 : p[i + k / 2] >> 4);
			x += b;
			i += bytes;
			if (bytes % 2 && i < len)
				i++;
		}
	}
	if (at < n && !ended) {
		free(idx);
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated BMP: its RLE data ends in row %zu of %u",
				 at / w + 1, (unsigned)h);
	}
	unsigned char *rgb = malloc(n * 3);
	if (!rgb) {
		free(idx);
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory decoding the BMP");
	}
	for (size_t r = 0; r < h; r++) {
		const unsigned char *src = idx + r * w;
		unsigned char *dst = rgb + (top_down ? r : h - 1 - r) * w * 3;
		for (size_t col = 0; col < w; col++)
			memcpy(dst + 3 * col, pal[src[col]], 3);
	}
	free(idx);
	out->width = out->full_width = (int)w;
	out->height = out->full_height = (int)h;
	out->scale_denom = 1;
	out->rgb = rgb;
	return 0;
}

/* What Pillow's reading of a GIF's first frame depends on. */
struct gif_frame0 {
	uint32_t x, y, w, h;         /* the frame's place on the logical screen */
	int transparent;             /* the transparent index, -1: none */
	const unsigned char *pal;    /* the frame's colour table: local, else global */
	unsigned pal_n;              /* its entries */
};

/*
 * stb_image decodes a GIF whose first frame is cut short, filling the rest
 * with black; Pillow refuses it. Walk the blocks up to the end of the first
 * frame's image data and check that they are all there, noting in *g what
 * the frame's colours depend on.
 */
static int gif_first_frame(const unsigned char *p, size_t len, struct gif_frame0 *g,
			   clip_error *err)
{
	size_t pos = 13;

	memset(g, 0, sizeof *g);
	g->transparent = -1;
	if (len < 13)
		return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated GIF header");
	if (p[10] & 0x80) {
		g->pal = p + 13;  /* global colour table */
		g->pal_n = 2u << (p[10] & 7);
		pos += (size_t)3 * g->pal_n;
	}
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
			g->x = rd_le16(p + pos + 1);
			g->y = rd_le16(p + pos + 3);
			g->w = rd_le16(p + pos + 5);
			g->h = rd_le16(p + pos + 7);
			pos += 10;
			if (flags & 0x80) {
				g->pal_n = 2u << (flags & 7);  /* local colour table */
				g->pal = p + pos;
				pos += (size_t)3 * g->pal_n;
				if (pos > len)
					break;
			}
			pos += 1;  /* LZW minimum code size */
		} else if (b == 0x21) {
			/* a graphic control extension with the transparency flag
			 * names the first frame's transparent index */
			if (len - pos > 6 && p[pos + 1] == 0xF9 && p[pos + 2] == 4 && (p[pos + 3] & 1))
				g->transparent = p[pos + 6];
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

/*
 * stb_image's first frame (RGBA) to Pillow's: Pillow reads it as palette
 * indices on a screen filled with the transparent index (index 0 without
 * one) and convert("RGB") looks every index up in the frame's colour
 * table, so a transparent pixel has its index's colour and the screen
 * outside the frame the fill's. stb_image leaves transparent pixels (0, 0,
 * 0, 0) and fills the outside with the global background colour.
 * Transparent pixels, and the outside when there is a transparent index,
 * keep alpha 0 (for thumbnails).
 */
static void gif_as_pillow(unsigned char *rgba, uint32_t w, uint32_t h, const struct gif_frame0 *g)
{
	const unsigned fill = g->transparent >= 0 ? (unsigned)g->transparent : 0;
	unsigned char colour[3] = { 0, 0, 0 };  /* an index past the table: black, as Pillow */
	if (g->pal && fill < g->pal_n)
		memcpy(colour, g->pal + 3 * (size_t)fill, 3);
	const unsigned char a = g->transparent >= 0 ? 0 : 255;

	for (uint32_t y = 0; y < h; y++) {
		const int row_in = y >= g->y && y - g->y < g->h;
		for (uint32_t x = 0; x < w; x++) {
			unsigned char *px = rgba + ((size_t)y * w + x) * 4;
			const int in = row_in && x >= g->x && x - g->x < g->w;
			if (!in || px[3] == 0) {
				memcpy(px, colour, 3);
				px[3] = a;
			}
		}
	}
}

int clip_probe_stb(enum clip_image_type t, const unsigned char *p, size_t len, uint32_t *w,
		   uint32_t *h, clip_error *err)
{
	switch (t) {
	case CLIP_IMAGE_PNG:
		return png_dims(p, len, w, h, err);
	case CLIP_IMAGE_GIF:
		if (len < 10)
			return clip_fail(err, CLIP_ERR_UNDECODABLE, "truncated GIF header");
		*w = rd_le16(p + 6);
		*h = rd_le16(p + 8);
		return 0;
	case CLIP_IMAGE_BMP:
		return bmp_dims(p, len, w, h, err);
	default:
		return clip_fail(err, CLIP_ERR_INVALID, "not a stb_image type");
	}
}

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
	/* stb's reason can quote the file (an unknown PNG chunk's name): any
	 * byte outside printable ASCII becomes '?' */
	char said[64];
	size_t i = 0;
	for (; why[i] && i < sizeof said - 1; i++)
		said[i] = why[i] >= 0x20 && why[i] < 0x7f ? why[i] : '?';
	said[i] = '\0';
	return clip_fail(err, CLIP_ERR_UNDECODABLE, "cannot decode %s (corrupt or truncated): %s",
			 type_name(t), said);
}


int clip_decode_stb(enum clip_image_type t, const unsigned char *p, size_t len,
		    const struct clip_dec_req *rq, struct clip_dec_out *out, clip_error *err)
{
	uint32_t uw = 0, uh = 0;
	int x = 0, y = 0, n = 0;
	int rc;

	rc = clip_probe_stb(t, p, len, &uw, &uh, err);
	if (rc)
		return rc;
	rc = clip_check_pixels(type_name(t), uw, uh, rq->max_pixels, err);
	if (rc)
		return rc;
	const int w = (int)uw, h = (int)uh;
	if (len > INT_MAX)
		return clip_fail(err, CLIP_ERR_TOO_LARGE, "image file too large: %zu bytes", len);
	if (t == CLIP_IMAGE_BMP) {
		uint32_t c = bmp_compression(p, len);
		if (c == 1 || c == 2)
			return bmp_rle(p, len, uw, uh, out, err);
		rc = bmp_check_length(p, len, (uint64_t)w, (uint64_t)h, err);
		if (rc)
			return rc;
	}
	struct gif_frame0 gif;
	if (t == CLIP_IMAGE_GIF) {
		rc = gif_first_frame(p, len, &gif, err);
		if (rc)
			return rc;
	}
	/* The largest block stb_image needs for this header: 8 bytes a pixel
	 * (16-bit RGBA) covers every buffer of every format; a PNG's
	 * inflated data may take twice what the IHDR states (stb_image
	 * doubles its buffer; Adam7 adds filter bytes); a PNG's concatenated
	 * chunks at most twice the data. */
	uint64_t raw = 0;
	int empty_idat = 0, no_iend = 0;
	unsigned char *copy = NULL;
	if (t == CLIP_IMAGE_PNG) {
		rc = png_check_chunks(p, len, &raw, &empty_idat, &no_iend, err);
		if (rc)
			return rc;
		if (empty_idat || no_iend) {
			if (!(copy = png_for_stb(p, len, &len)))
				return clip_fail(err, CLIP_ERR_NOMEM, "out of memory decoding the PNG");
			p = copy;
		}
	}
	uint64_t cap = 8 * ((uint64_t)w + 32) * ((uint64_t)h + 32);
	if (2 * raw > cap)
		cap = 2 * raw;
	cap += 2 * (uint64_t)len + ((uint64_t)1 << 20);

	/* stb_image converts to 3 channels (4 when alpha is wanted): drops
	 * alpha, replicates grey, expands palettes, keeps the high byte of
	 * 16-bit samples; for a GIF it returns the first frame (with alpha,
	 * which tells the transparent pixels). Its buffer comes from malloc
	 * (stb_impl.c), so it is freed with free. */
	const int want = rq->keep_alpha || t == CLIP_IMAGE_GIF ? 4 : 3;
	clip_stbi_cap_allocations(cap < SIZE_MAX ? (size_t)cap : SIZE_MAX);
	unsigned char *px = stbi_load_from_memory(p, (int)len, &x, &y, &n, want);
	int refused = clip_stbi_allocation_refused();
	clip_stbi_cap_allocations(0);
	free(copy);
	if (!px && refused)
		return clip_fail(err, CLIP_ERR_UNDECODABLE,
				 "corrupt %s: its data expands past what a %d x %d image needs "
				 "(a decompression bomb?)", type_name(t), w, h);
	if (!px)
		return stb_failure(t, err);
	if (x != w || y != h) {
		stbi_image_free(px);
		return clip_fail(err, CLIP_ERR_UNDECODABLE,
				 "corrupt %s: decoded %d x %d, the header states %d x %d",
				 type_name(t), x, y, w, h);
	}
	const size_t npx = (size_t)w * (size_t)h;
	if (t == CLIP_IMAGE_GIF)
		gif_as_pillow(px, uw, uh, &gif);
	if (want == 4) {
		/* RGB in place, the alpha plane apart (kept only when asked
		 * for and not all opaque) */
		unsigned char *alpha = NULL;
		if (rq->keep_alpha && !(alpha = malloc(npx))) {
			stbi_image_free(px);
			return clip_fail(err, CLIP_ERR_NOMEM, "out of memory for the alpha plane");
		}
		clip_split_rgba(px, npx, px, alpha);
		int opaque = 1;
		for (size_t i = 0; alpha && i < npx && opaque; i++)
			opaque = alpha[i] == 255;
		if (opaque) {
			free(alpha);
			alpha = NULL;
		}
		out->alpha = alpha;
		unsigned char *shrunk = realloc(px, npx * 3);
		if (shrunk)
			px = shrunk;
	}
	out->width = out->full_width = w;
	out->height = out->full_height = h;
	out->scale_denom = 1;
	out->rgb = px;
	return 0;
}
