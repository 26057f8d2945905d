/*
 * exif_fixture.h - a JPEG tagged with an EXIF Orientation, for the tests
 * of orientation-dependent decoding (crops, thumbnails).
 */
#ifndef CLIPD_TEST_EXIF_FIXTURE_H
#define CLIPD_TEST_EXIF_FIXTURE_H

#include <stdlib.h>
#include <string.h>

/* A copy of the JPEG jpg (len bytes) with an APP1 right after SOI whose
 * IFD0 states Orientation o: malloc'd, *out_len bytes; NULL when out of
 * memory. */
static inline unsigned char *jpeg_with_orientation(const unsigned char *jpg, size_t len, int o,
						   size_t *out_len)
{
	/* "Exif\0\0", a little-endian TIFF header, IFD0 with one entry */
	const unsigned char app1[] = {
		0xFF, 0xE1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42, 0, 8, 0, 0, 0,
		1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, (unsigned char)o, 0, 0, 0, 0, 0, 0, 0,
	};
	unsigned char *out = len >= 2 ? malloc(len + sizeof app1) : NULL;
	if (!out)
		return NULL;
	memcpy(out, jpg, 2);  /* SOI */
	memcpy(out + 2, app1, sizeof app1);
	memcpy(out + 2 + sizeof app1, jpg + 2, len - 2);
	*out_len = len + sizeof app1;
	return out;
}

#endif
