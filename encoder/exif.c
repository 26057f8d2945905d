/*
 * exif.c - a bounded, defensive reader of EXIF's Orientation and capture
 * time, and of where JPEG, PNG and WebP keep their EXIF block (exif.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "exif.h"

#define TAG_ORIENTATION 0x0112
#define TAG_EXIF_IFD 0x8769
#define TAG_DATETIME_ORIGINAL 0x9003
#define TAG_OFFSET_TIME_ORIGINAL 0x9011

#define TYPE_ASCII 2
#define TYPE_SHORT 3
#define TYPE_LONG 4

struct tiff {
	const unsigned char *p;
	size_t len;
	int big;  /* "MM": big-endian */
};

static uint32_t rd16(const struct tiff *t, size_t at)
{
	const unsigned char *q = t->p + at;
	return t->big ? (uint32_t)q[0] << 8 | q[1] : (uint32_t)q[1] << 8 | q[0];
}

static uint32_t rd32(const struct tiff *t, size_t at)
{
	const unsigned char *q = t->p + at;
	return t->big ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3]
		      : (uint32_t)q[3] << 24 | (uint32_t)q[2] << 16 | (uint32_t)q[1] << 8 | q[0];
}

/* An ASCII value: where its bytes are (inline when 4 or fewer) and how
 * many; 0, or -1 when they are not all inside the block. */
static int ascii_value(const struct tiff *t, size_t entry, const char **s, size_t *n)
{
	uint32_t count = rd32(t, entry + 4);
	size_t at;

	if (rd16(t, entry + 2) != TYPE_ASCII || count == 0 || count > 64)
		return -1;
	if (count <= 4) {
		at = entry + 8;
	} else {
		at = rd32(t, entry + 8);
		if (at > t->len || count > t->len - at)
			return -1;
	}
	*s = (const char *)t->p + at;
	*n = count;
	return 0;
}

/* The entry offsets of the IFD at off, through *n; 0, or -1 when the IFD
 * is not wholly inside the block or states more than CLIP_EXIF_MAX_ENTRIES
 * entries: a corrupt directory is ignored, not read in part. */
static int ifd_entries(const struct tiff *t, uint32_t off, size_t *first, unsigned *n)
{
	if (off < 8 || off > t->len || t->len - off < 2)
		return -1;
	unsigned count = rd16(t, off);
	if (count > CLIP_EXIF_MAX_ENTRIES || count > (t->len - off - 2) / 12)
		return -1;
	*first = (size_t)off + 2;
	*n = count;
	return 0;
}

void clip_exif_parse(const unsigned char *p, size_t len, struct clip_exif *out)
{
	struct tiff t;
	size_t first;
	unsigned n;
	uint32_t exif_ifd = 0;

	memset(out, 0, sizeof *out);
	if (!p)
		return;
	if (len >= 6 && !memcmp(p, "Exif\0\0", 6)) {
		p += 6;
		len -= 6;
	}
	if (len < 8)
		return;
	if (!memcmp(p, "II", 2))
		t.big = 0;
	else if (!memcmp(p, "MM", 2))
		t.big = 1;
	else
		return;
	t.p = p;
	t.len = len;
	if (rd16(&t, 2) != 42)
		return;
	if (ifd_entries(&t, rd32(&t, 4), &first, &n))
		return;
	for (unsigned i = 0; i < n; i++) {
		size_t e = first + (size_t)i * 12;
		uint32_t tag = rd16(&t, e), type = rd16(&t, e + 2), count = rd32(&t, e + 4);
		if (tag == TAG_ORIENTATION && count == 1 && out->orientation == 0) {
			uint32_t v = type == TYPE_SHORT ? rd16(&t, e + 8)
				     : type == TYPE_LONG ? rd32(&t, e + 8) : 0;
			if (v >= 1 && v <= 8)
				out->orientation = (int)v;
		} else if (tag == TAG_EXIF_IFD && count == 1 && !exif_ifd &&
			   (type == TYPE_LONG || type == 13 /* IFD */)) {
			exif_ifd = rd32(&t, e + 8);
		}
	}
	/* The Exif IFD, read once whatever it points at (IFD0 itself
	 * included): no chain is followed, so no loop is possible. */
	if (!exif_ifd || ifd_entries(&t, exif_ifd, &first, &n))
		return;
	const char *dt = NULL, *off = NULL;
	size_t dt_n = 0, off_n = 0;
	for (unsigned i = 0; i < n; i++) {
		size_t e = first + (size_t)i * 12;
		uint32_t tag = rd16(&t, e);
		if (tag == TAG_DATETIME_ORIGINAL && !dt)
			ascii_value(&t, e, &dt, &dt_n);
		else if (tag == TAG_OFFSET_TIME_ORIGINAL && !off)
			ascii_value(&t, e, &off, &off_n);
	}
	if (dt)
		clip_exif_datetime(dt, dt_n, off, off_n, out->taken_at);
}

/* ---- dates -------------------------------------------------------------- */

/* n digits at s as a number, or -1. */
static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* The length of s without trailing NULs and spaces, at most n. */
static size_t trimmed(const char *s, size_t n)
{
	size_t k = 0;

	while (k < n && s[k] != '\0')
		k++;
	while (k > 0 && s[k - 1] == ' ')
		k--;
	return k;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return days[m - 1];
}

int clip_exif_datetime(const char *dt, size_t dt_len, const char *offset, size_t offset_len,
		       char *out)
{
	out[0] = '\0';
	if (!dt || trimmed(dt, dt_len) != 19)
		return -1;
	/* "YYYY:MM:DD HH:MM:SS"; some writers use '-' in the date */
	if ((dt[4] != ':' && dt[4] != '-') || dt[7] != dt[4] || dt[10] != ' ' ||
	    dt[13] != ':' || dt[16] != ':')
		return -1;
	int y = digits(dt, 4), mo = digits(dt + 5, 2), d = digits(dt + 8, 2);
	int h = digits(dt + 11, 2), mi = digits(dt + 14, 2), s = digits(dt + 17, 2);
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
	    s < 0 || s > 60 || d > days_in_month(y, mo))
		return -1;

	char zone[8] = "-00:00";  /* RFC 3339: the offset is unknown */
	if (offset && trimmed(offset, offset_len) == 6) {
		int oh = digits(offset + 1, 2), om = digits(offset + 4, 2);
		if ((offset[0] == '+' || offset[0] == '-') && offset[3] == ':' && oh >= 0 &&
		    oh <= 23 && om >= 0 && om <= 59)
			snprintf(zone, sizeof zone, "%c%02d:%02d", offset[0], oh, om);
	}
	snprintf(out, CLIP_TAKEN_AT_LEN, "%04d-%02d-%02dT%02d:%02d:%02d%s", y, mo, d, h, mi, s, zone);
	return 0;
}

/* ---- containers ------------------------------------------------------- */

static uint32_t be16(const unsigned char *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

int clip_exif_find_jpeg(const unsigned char *p, size_t len, const unsigned char **exif,
			size_t *exif_len)
{
	size_t pos = 2;

	if (!p || len < 4 || p[0] != 0xff || p[1] != 0xd8)
		return -1;
	/* the marker segments before the first scan; at most 256 of them.
	 * Bytes between segments up to the next 0xFF are skipped (and FF 00),
	 * as clip_probe_jpeg, libjpeg ("extraneous bytes before marker") and
	 * Pillow skip them: some writers pad after a segment, and the Exif
	 * that follows is still the photo's. */
	for (int segs = 0; segs < 256; segs++) {
		while (pos < len && p[pos] != 0xff)
			pos++;
		while (pos < len && p[pos] == 0xff)
			pos++;
		if (pos >= len)
			return -1;
		unsigned m = p[pos++];
		if (m == 0x00 || m == 0x01 || (m >= 0xd0 && m <= 0xd7))
			continue;
		if (m == 0xd9 || m == 0xda || pos + 2 > len)
			return -1;
		uint32_t seg = be16(p + pos);
		if (seg < 2 || seg > len - pos)
			return -1;
		if (m == 0xe1 && seg >= 2 + 6 + 8 && !memcmp(p + pos + 2, "Exif\0\0", 6)) {
			*exif = p + pos + 8;
			*exif_len = seg - 8;
			return 0;
		}
		pos += seg;
	}
	return -1;
}

int clip_exif_find_png(const unsigned char *p, size_t len, const unsigned char **exif,
		       size_t *exif_len)
{
	size_t pos = 8;

	if (!p || len < 8)
		return -1;
	/* eXIf may follow IDAT (PNG 1.6's rule is "before", the 2017
	 * extension allows after): walk every chunk, at most 100000 */
	for (int chunks = 0; chunks < 100000 && pos <= len && len - pos >= 12; chunks++) {
		uint32_t clen = be32(p + pos);
		if (clen > len - pos - 12)
			return -1;
		if (!memcmp(p + pos + 4, "eXIf", 4)) {
			*exif = p + pos + 8;
			*exif_len = clen;
			return 0;
		}
		if (!memcmp(p + pos + 4, "IEND", 4))
			return -1;
		pos += 12 + (size_t)clen;
	}
	return -1;
}

int clip_exif_find_webp(const unsigned char *p, size_t len, const unsigned char **exif,
			size_t *exif_len)
{
	size_t pos = 12;

	if (!p || len < 12 || memcmp(p, "RIFF", 4) || memcmp(p + 8, "WEBP", 4))
		return -1;
	/* chunks: FourCC, little-endian size, data padded to even */
	for (int chunks = 0; chunks < 100000 && pos <= len && len - pos >= 8; chunks++) {
		uint32_t clen = le32(p + pos + 4);
		if (clen > len - pos - 8)
			return -1;
		if (!memcmp(p + pos, "EXIF", 4)) {
			*exif = p + pos + 8;
			*exif_len = clen;
			return 0;
		}
		pos += 8 + (size_t)clen + (clen & 1);
	}
	return -1;
}
