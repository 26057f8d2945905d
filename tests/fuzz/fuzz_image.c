/*
 * Image bytes from a client: sniffing, the header probe, decoding (every
 * format, with the pixel limit on), EXIF orientation, alpha flattening and
 * the model's crop. Invariants: a decoded image is within the pixel limit
 * and its pixels are all there; the probe and the decoder agree on the
 * upright size and the type; a limit one pixel under the image refuses it
 * as too large before decoding; a failure leaves nothing allocated and
 * says one of the documented statuses.
 */
#include <string.h>

#include "clip.h"
#include "fuzz.h"

#define MAX_PIXELS (1u << 20)   /* small, so that each run is quick */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t seed = fuzz_seed(data, size);
	struct clip_decode_params dp = clip_decode_default_params();
	dp.max_pixels = MAX_PIXELS;
	dp.keep_alpha = (int)(fuzz_next(&seed) & 1);
	dp.min_short_side = (fuzz_next(&seed) & 1) ? 64 : 0;
	clip_image img;
	clip_error err;
	memset(&img, 0x5a, sizeof img);   /* the decoder must set every field */

	enum clip_image_type sniffed = clip_image_sniff(data, size);
	enum clip_image_type pt = CLIP_IMAGE_UNKNOWN;
	int pw = 0, ph = 0;
	int prc = clip_image_probe(data, size, &pt, &pw, &ph, &err);

	int rc = clip_image_decode_with(data, size, &dp, &img, &err);
	if (rc != 0) {
		FUZZ_CHECK(rc == CLIP_ERR_UNSUPPORTED || rc == CLIP_ERR_UNDECODABLE || rc == CLIP_ERR_TOO_LARGE
				   || rc == CLIP_ERR_EMPTY || rc == CLIP_ERR_NOMEM,
			   "status %d (%s)", rc, err.msg);
		FUZZ_CHECK(err.msg[0] != 0, "a failure without a message");
		FUZZ_CHECK(img.rgb == NULL && img.alpha == NULL && img.width == 0 && img.height == 0,
			   "a failed decode left an image");
		FUZZ_CHECK(rc != CLIP_ERR_UNSUPPORTED || sniffed == CLIP_IMAGE_UNKNOWN,
			   "a sniffed type %d refused as unsupported", (int)sniffed);
		return 0;
	}
	FUZZ_CHECK(img.type == sniffed && sniffed != CLIP_IMAGE_UNKNOWN, "type %d, sniffed %d", (int)img.type,
		   (int)sniffed);
	FUZZ_CHECK(img.width > 0 && img.height > 0 && img.rgb, "%d x %d", img.width, img.height);
	FUZZ_CHECK(img.full_width >= img.width && img.full_height >= img.height, "full %d x %d, pixels %d x %d",
		   img.full_width, img.full_height, img.width, img.height);
	FUZZ_CHECK((size_t)img.full_width * (size_t)img.full_height <= MAX_PIXELS, "%d x %d over the limit",
		   img.full_width, img.full_height);
	FUZZ_CHECK(img.orientation >= 1 && img.orientation <= 8, "orientation %d", img.orientation);
	FUZZ_CHECK(img.scale_denom == 1 || img.scale_denom == 2 || img.scale_denom == 4 || img.scale_denom == 8,
		   "scale 1/%d", img.scale_denom);
	FUZZ_CHECK(memchr(img.taken_at, 0, sizeof img.taken_at) != NULL, "taken_at not terminated");
	for (const char *t = img.taken_at; *t; t++)
		FUZZ_CHECK(*t >= 0x20 && *t < 0x7f, "taken_at has byte %d", *t);
	if (prc == 0)
		FUZZ_CHECK(pt == img.type && pw == img.full_width && ph == img.full_height,
			   "probe %d: %d x %d, decode %d: %d x %d", (int)pt, pw, ph, (int)img.type, img.full_width,
			   img.full_height);
	/* every pixel byte is there (ASan sees a short buffer) */
	size_t n = (size_t)img.width * (size_t)img.height;
	unsigned sum = 0;
	for (size_t i = 0; i < n * 3; i += 61)
		sum += img.rgb[i];
	sum += img.rgb[n * 3 - 1];
	if (img.alpha)
		sum += img.alpha[n - 1];
	(void)sum;
	clip_image_flatten(&img);
	FUZZ_CHECK(img.alpha == NULL, "alpha kept after flattening");
	unsigned char crop[16 * 16 * 3];
	FUZZ_CHECK(clip_image_crop(&img, 16, crop, sizeof crop, &err) == 0, "crop: %s", err.msg);

	/* the limit: one pixel under the image refuses it, from the header */
	size_t full = (size_t)img.full_width * (size_t)img.full_height;
	clip_image_free(&img);
	FUZZ_CHECK(img.rgb == NULL, "clip_image_free left pixels");
	if (full > 1) {
		struct clip_decode_params tight = clip_decode_default_params();
		tight.max_pixels = full - 1;
		clip_image again;
		int rc2 = clip_image_decode_with(data, size, &tight, &again, &err);
		FUZZ_CHECK(rc2 == CLIP_ERR_TOO_LARGE, "a limit of %zu pixels gave %d (%s) for %zu", full - 1, rc2,
			   err.msg, full);
		clip_image_free(&again);
	}
	return 0;
}
