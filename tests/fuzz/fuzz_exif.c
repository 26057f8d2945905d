/*
 * EXIF from a photo: the block's location in each container (JPEG APP1,
 * PNG eXIf, WebP EXIF) and the TIFF structure inside (Orientation, the
 * capture time). Invariants: a found block lies inside the input; the
 * orientation is 0 or 1..8; the capture time is "" or RFC 3339 that
 * srv-style parsing would read (digits and separators in their places).
 */
#include <string.h>

#include "exif.h"
#include "fuzz.h"

static void check_exif(const unsigned char *p, size_t len)
{
	struct clip_exif e;
	memset(&e, 0x5a, sizeof e);
	clip_exif_parse(p, len, &e);
	FUZZ_CHECK(e.orientation >= 0 && e.orientation <= 8, "orientation %d", e.orientation);
	FUZZ_CHECK(memchr(e.taken_at, 0, sizeof e.taken_at) != NULL, "taken_at not terminated");
	size_t n = strlen(e.taken_at);
	if (n) {
		/* 2024-05-17T14:03:22+02:00 */
		FUZZ_CHECK(n == 25, "taken_at %s", e.taken_at);
		static const char shape[] = "dddd-dd-ddTdd:dd:dd?dd:dd";
		for (size_t i = 0; i < n; i++) {
			char c = e.taken_at[i], want = shape[i];
			if (want == 'd')
				FUZZ_CHECK(c >= '0' && c <= '9', "taken_at %s", e.taken_at);
			else if (want == '?')
				FUZZ_CHECK(c == '+' || c == '-', "taken_at %s", e.taken_at);
			else
				FUZZ_CHECK(c == want, "taken_at %s", e.taken_at);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = data;
	check_exif(p, size);
	int (*const finders[])(const unsigned char *, size_t, const unsigned char **, size_t *) = {
		clip_exif_find_jpeg, clip_exif_find_png, clip_exif_find_webp,
	};
	for (size_t i = 0; i < sizeof finders / sizeof finders[0]; i++) {
		const unsigned char *e = NULL;
		size_t n = 0;
		if (finders[i](p, size, &e, &n) == 0) {
			FUZZ_CHECK(e >= p && n <= size && e + n <= p + size, "finder %zu: block outside the input", i);
			check_exif(e, n);
		}
	}
	char out[CLIP_TAKEN_AT_LEN];
	if (size >= 2) {
		size_t half = size / 2;
		if (clip_exif_datetime((const char *)p, half, (const char *)p + half, size - half, out) == 0)
			FUZZ_CHECK(strlen(out) == 25, "datetime %s", out);
		else
			FUZZ_CHECK(out[0] == 0, "a refused datetime left %s", out);
	}
	return 0;
}
