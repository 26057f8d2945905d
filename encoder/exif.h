/*
 * exif.h - the little of EXIF clipd reads (the Orientation tag and the
 * capture time), and where each container keeps its EXIF block. Internal to
 * the encoder; every function is total: what cannot be read is absent.
 *
 * An EXIF block is a TIFF structure: a byte-order mark ("II" or "MM"), 42,
 * the offset of IFD0; each IFD a count of 12-byte entries (tag, type,
 * count, value or offset). Orientation (0x0112) is in IFD0; the Exif IFD
 * (IFD0's tag 0x8769) holds DateTimeOriginal (0x9003, "YYYY:MM:DD
 * HH:MM:SS") and OffsetTimeOriginal (0x9011, "+HH:MM").
 *
 * The parser trusts nothing: every offset and count is checked against the
 * block, it reads IFD0 and the Exif IFD only (no chains, so no loops), and
 * ignores a directory that states more entries than the block holds (or
 * than CLIP_EXIF_MAX_ENTRIES).
 */
#ifndef CLIP_EXIF_H
#define CLIP_EXIF_H

#include <stddef.h>

#include "clip.h"

#define CLIP_EXIF_MAX_ENTRIES 1024

struct clip_exif {
	int orientation;                   /* 1..8; 0 when absent or out of range */
	char taken_at[CLIP_TAKEN_AT_LEN];  /* RFC 3339, or "" */
};

/* Parse a block that starts at the byte-order mark (an "Exif\0\0" prefix,
 * which some PNG and WebP writers leave in, is skipped). */
void clip_exif_parse(const unsigned char *p, size_t len, struct clip_exif *out);

/* "YYYY:MM:DD HH:MM:SS" and an optional "+HH:MM" to RFC 3339 in out (at
 * least CLIP_TAKEN_AT_LEN bytes); 0, or -1 (out = "") when either is not a
 * valid date and time (the all-zero and blank placeholders of cameras
 * without a clock included). Each string is at most n bytes, NUL or space
 * padding allowed. */
int clip_exif_datetime(const char *dt, size_t dt_len, const char *offset, size_t offset_len,
		       char *out);

/*
 * The EXIF block of each container, as a pointer into p and a length; 0,
 * or -1 when there is none (or the container is too broken to say). Each
 * walk is bounded by len and stops at the image data.
 */
int clip_exif_find_jpeg(const unsigned char *p, size_t len, const unsigned char **exif,
			size_t *exif_len);
int clip_exif_find_png(const unsigned char *p, size_t len, const unsigned char **exif,
		       size_t *exif_len);
int clip_exif_find_webp(const unsigned char *p, size_t len, const unsigned char **exif,
			size_t *exif_len);

#endif
