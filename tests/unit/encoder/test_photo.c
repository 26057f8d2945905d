/*
 * Photos as phones and cameras make them: the new formats (WebP, HEIC,
 * AVIF, TIFF) and JPEG variants (CMYK, YCCK, greyscale, progressive with
 * restart markers, arithmetic-coded) against reference pixels from Pillow,
 * heif-convert and djpeg (tests/data/photos/ref, made by
 * make-photo-fixtures.sh); the eight EXIF orientations; the capture time;
 * alpha; broken files of each format refused with a reason; the EXIF
 * parser on hostile blocks; the JPEG fast path (DCT scaling) against the
 * full decode; a bounded fuzz loop over the new decoders.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>  /* before jpeglib.h, which needs FILE */
#include <time.h>

#include <jpeglib.h>
#include <stb/stb_image.h>  /* declarations only: the implementation is in clip_stb */

#include "clip.h"
#include "exif.h"
#include "exif_fixture.h"
#include "image_internal.h"
#include "harness.h"

#define MAX_PIXELS ((size_t)64 * 1000 * 1000)

static unsigned char *read_photo(const char *name, size_t *len)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/photos/%s", TEST_DATA_DIR, name);
	unsigned char *buf = harness_read_file(path, len);
	if (!buf)
		fprintf(stderr, "  cannot read %s\n", path);
	return buf;
}

static int decode_photo(const char *name, const struct clip_decode_params *dp, clip_image *img,
			clip_error *err)
{
	size_t len = 0;
	unsigned char *buf = read_photo(name, &len);
	if (!buf)
		return 99;
	int rc = clip_image_decode_with(buf, len, dp, img, err);
	free(buf);
	return rc;
}

static int decode_default(const char *name, clip_image *img, clip_error *err)
{
	struct clip_decode_params dp = clip_decode_default_params();
	return decode_photo(name, &dp, img, err);
}

/* A reference PNG of ref/: channels 3 or 4; caller frees with free. */
static unsigned char *read_ref(const char *name, int channels, int *w, int *h)
{
	char path[300];
	size_t len = 0;
	snprintf(path, sizeof path, "ref/%s", name);
	unsigned char *buf = read_photo(path, &len);
	if (!buf)
		return NULL;
	int n;
	unsigned char *px = stbi_load_from_memory(buf, (int)len, w, h, &n, channels);
	free(buf);
	return px;
}

static int max_diff(const unsigned char *a, const unsigned char *b, size_t n)
{
	int worst = 0;
	for (size_t i = 0; i < n; i++) {
		int d = abs((int)a[i] - (int)b[i]);
		if (d > worst)
			worst = d;
	}
	return worst;
}

/* ---- sniffing ------------------------------------------------------------ */

static void test_sniff_new_types(void)
{
	static const struct { const char *bytes; size_t len; int type; } cases[] = {
		{ "RIFF\x10\0\0\0WEBPVP8 ", 16, CLIP_IMAGE_WEBP },
		{ "RIFF\x10\0\0\0WEBPVP8L", 16, CLIP_IMAGE_WEBP },
		{ "RIFF\x10\0\0\0WEBPVP8X", 16, CLIP_IMAGE_WEBP },
		{ "RIFF\x10\0\0\0WAVEfmt ", 16, CLIP_IMAGE_UNKNOWN },
		{ "II*\0\x08\0\0\0", 8, CLIP_IMAGE_TIFF },
		{ "MM\0*\0\0\0\x08", 8, CLIP_IMAGE_TIFF },
		{ "II+\0\x08\0\0\0", 8, CLIP_IMAGE_UNKNOWN },  /* BigTIFF: not taken */
		{ "\0\0\0\x18" "ftypheic\0\0\0\0mif1heic", 24, CLIP_IMAGE_HEIC },
		{ "\0\0\0\x18" "ftypheix\0\0\0\0mif1heix", 24, CLIP_IMAGE_HEIC },
		{ "\0\0\0\x18" "ftypmif1\0\0\0\0mif1heic", 24, CLIP_IMAGE_HEIC },
		{ "\0\0\0\x18" "ftypmif1\0\0\0\0mif1avif", 24, CLIP_IMAGE_AVIF },
		{ "\0\0\0\x14" "ftypmif1\0\0\0\0mif1", 20, CLIP_IMAGE_HEIC },
		{ "\0\0\0\x1c" "ftypavif\0\0\0\0avifmif1miaf", 28, CLIP_IMAGE_AVIF },
		{ "\0\0\0\x18" "ftypavis\0\0\0\0avismsf1", 24, CLIP_IMAGE_UNKNOWN },
		{ "\0\0\0\x1c" "ftypavis\0\0\0\0avismsf1avif", 28, CLIP_IMAGE_AVIF },
		{ "\0\0\0\x18" "ftypisom\0\0\0\0isomavc1", 24, CLIP_IMAGE_UNKNOWN },
		/* the brand list is read only inside the ftyp box */
		{ "\0\0\0\x10" "ftypmsf1\0\0\0\0heic", 20, CLIP_IMAGE_UNKNOWN },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int t = clip_image_sniff(cases[i].bytes, cases[i].len);
		if (t != cases[i].type)
			fprintf(stderr, "  case %zu\n", i);
		CHECK_EQ_INT(t, cases[i].type);
	}
	CHECK_EQ_STR(clip_image_mime(CLIP_IMAGE_WEBP), "image/webp");
	CHECK_EQ_STR(clip_image_mime(CLIP_IMAGE_HEIC), "image/heic");
	CHECK_EQ_STR(clip_image_mime(CLIP_IMAGE_AVIF), "image/avif");
	CHECK_EQ_STR(clip_image_mime(CLIP_IMAGE_TIFF), "image/tiff");

	/* the accepted list: every type's MIME type, once */
	const char *const *types = clip_image_types();
	int n = 0;
	for (; types[n]; n++)
		;
	CHECK_EQ_INT(n, 8);
	for (int t = CLIP_IMAGE_JPEG; t <= CLIP_IMAGE_TIFF; t++) {
		int found = 0;
		for (int i = 0; i < n; i++)
			found += !strcmp(types[i], clip_image_mime((enum clip_image_type)t));
		CHECK_EQ_INT(found, 1);
	}
	CHECK_EQ_STR(clip_image_types_text(), "JPEG, PNG, GIF, BMP, WebP, HEIC, AVIF or TIFF");
}

static void test_probe_upright(void)
{
	static const struct { const char *name; int type, w, h; } cases[] = {
		{ "orient_1.jpg", CLIP_IMAGE_JPEG, 96, 64 },
		{ "orient_4.jpg", CLIP_IMAGE_JPEG, 96, 64 },
		{ "orient_5.jpg", CLIP_IMAGE_JPEG, 64, 96 },
		{ "orient_6.jpg", CLIP_IMAGE_JPEG, 64, 96 },
		{ "orient_8.jpg", CLIP_IMAGE_JPEG, 64, 96 },
		{ "webp_lossy.webp", CLIP_IMAGE_WEBP, 96, 64 },
		{ "webp_orient6.webp", CLIP_IMAGE_WEBP, 64, 96 },
		{ "webp_animated.webp", CLIP_IMAGE_WEBP, 96, 64 },
		{ "photo.heic", CLIP_IMAGE_HEIC, 96, 64 },
		{ "photo.avif", CLIP_IMAGE_AVIF, 96, 64 },
		{ "tiff_rgb16.tif", CLIP_IMAGE_TIFF, 96, 64 },
		{ "tiff_orient6.tif", CLIP_IMAGE_TIFF, 64, 96 },
		{ "arithmetic.jpg", CLIP_IMAGE_JPEG, 96, 64 },
		{ "bad_huge_ispe.heic", CLIP_IMAGE_HEIC, 30000, 30000 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = 0;
		unsigned char *buf = read_photo(cases[i].name, &len);
		REQUIRE(buf);
		enum clip_image_type t;
		int w = 0, h = 0;
		clip_error err = { 0 };
		int rc = clip_image_probe(buf, len, &t, &w, &h, &err);
		if (rc || w != cases[i].w || h != cases[i].h)
			fprintf(stderr, "  %s: %d x %d %s\n", cases[i].name, w, h, err.msg);
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(t, cases[i].type);
		CHECK_EQ_INT(w, cases[i].w);
		CHECK_EQ_INT(h, cases[i].h);
		free(buf);
	}
}

/* ---- orientation ---------------------------------------------------------- */

/*
 * The upright pixel (x, y) of orientation o, as the stored pixel it comes
 * from (w x h stored): written from the EXIF definitions (where row 0 and
 * column 0 of the stored image are to be shown), independently of the
 * decoder's forward map.
 */
static void upright_source(int o, int w, int h, int x, int y, int *sx, int *sy)
{
	switch (o) {
	case 1: *sx = x; *sy = y; break;                   /* top-left */
	case 2: *sx = w - 1 - x; *sy = y; break;           /* top-right */
	case 3: *sx = w - 1 - x; *sy = h - 1 - y; break;   /* bottom-right */
	case 4: *sx = x; *sy = h - 1 - y; break;           /* bottom-left */
	case 5: *sx = y; *sy = x; break;                   /* left-top */
	case 6: *sx = y; *sy = h - 1 - x; break;           /* right-top */
	case 7: *sx = w - 1 - y; *sy = h - 1 - x; break;   /* right-bottom */
	default: *sx = w - 1 - y; *sy = x; break;          /* 8: left-bottom */
	}
}

static void test_eight_orientations(void)
{
	clip_image base = { 0 };
	clip_error err = { 0 };
	struct clip_decode_params dp = clip_decode_default_params();

	dp.ignore_orientation = 1;
	REQUIRE(decode_photo("orient_1.jpg", &dp, &base, &err) == 0);
	CHECK_EQ_INT(base.width, 96);
	CHECK_EQ_INT(base.height, 64);
	for (int o = 1; o <= 8; o++) {
		char name[32];
		snprintf(name, sizeof name, "orient_%d.jpg", o);
		clip_image img = { 0 };
		REQUIRE(decode_default(name, &img, &err) == 0);
		const int sw = o >= 5;
		CHECK_EQ_INT(img.orientation, o);
		CHECK_EQ_INT(img.width, sw ? 64 : 96);
		CHECK_EQ_INT(img.height, sw ? 96 : 64);
		CHECK_EQ_INT(img.full_width, img.width);
		CHECK_EQ_INT(img.full_height, img.height);
		long wrong = 0;
		for (int y = 0; y < img.height; y++) {
			for (int x = 0; x < img.width; x++) {
				int sx, sy;
				upright_source(o, 96, 64, x, y, &sx, &sy);
				wrong += memcmp(img.rgb + ((size_t)y * img.width + x) * 3,
						base.rgb + ((size_t)sy * 96 + sx) * 3, 3) != 0;
			}
		}
		if (wrong)
			fprintf(stderr, "  orientation %d: %ld pixels differ\n", o, wrong);
		CHECK_EQ_INT(wrong, 0);

		/* the same bytes with orientation ignored: the stored pixels */
		clip_image raw = { 0 };
		REQUIRE(decode_photo(name, &dp, &raw, &err) == 0);
		CHECK_EQ_INT(raw.orientation, 1);
		CHECK(raw.width == 96 && !memcmp(raw.rgb, base.rgb, (size_t)96 * 64 * 3));
		clip_image_free(&raw);
		clip_image_free(&img);
	}
	clip_image_free(&base);
}

/* The orientation-6 JPEG equals Pillow's exif_transpose of it, saved as PNG. */
static void test_orientation_matches_upright_png(void)
{
	clip_image jpg = { 0 }, png = { 0 };
	clip_error err = { 0 };

	REQUIRE(decode_default("orient_6.jpg", &jpg, &err) == 0);
	REQUIRE(decode_default("orient_upright.png", &png, &err) == 0);
	REQUIRE(jpg.width == png.width && jpg.height == png.height);
	CHECK_EQ_INT(jpg.width, 64);
	CHECK_EQ_INT(max_diff(jpg.rgb, png.rgb, (size_t)64 * 96 * 3), 0);
	clip_image_free(&jpg);
	clip_image_free(&png);
}

/*
 * Rotated in the DCT domain by jpegtran and tagged to be shown upright:
 * the rotation is lossless, the integer IDCT's rounding (rows, then
 * columns) is not symmetric under it, so each of Y, Cb and Cr may differ
 * by a level. Greyscale: within 1 level. Colour: the YCbCr-to-RGB
 * conversion multiplies a chroma level by up to 1.77 (and 4:2:0 chroma is
 * upsampled after), so within 3 levels in RGB, and a level at most for all
 * but a few values (measured with Pillow on the same files: max 3, mean
 * 0.13, 3% of values over 1).
 */
static void test_jpegtran_rotated(void)
{
	static const struct { const char *rot, *up; int max; double mean; } cases[] = {
		{ "rotated_jpegtran_grey.jpg", "upright_grey.jpg", 1, 0.05 },
		{ "rotated_jpegtran.jpg", "upright.jpg", 3, 0.2 },
	};
	for (int i = 0; i < 2; i++) {
		clip_image rot = { 0 }, up = { 0 };
		clip_error err = { 0 };
		REQUIRE(decode_default(cases[i].rot, &rot, &err) == 0);
		REQUIRE(decode_default(cases[i].up, &up, &err) == 0);
		CHECK_EQ_INT(rot.orientation, 8);
		REQUIRE(rot.width == up.width && rot.height == up.height);
		CHECK_EQ_INT(up.width, 64);
		const size_t n = (size_t)up.width * up.height * 3;
		long sum = 0, over1 = 0;
		for (size_t k = 0; k < n; k++) {
			int d = abs((int)rot.rgb[k] - (int)up.rgb[k]);
			sum += d;
			over1 += d > 1;
		}
		int d = max_diff(rot.rgb, up.rgb, n);
		printf("  %s vs %s: max diff %d, mean %.4f, %.2f%% over 1\n", cases[i].rot,
		       cases[i].up, d, (double)sum / n, 100.0 * over1 / n);
		CHECK(d <= cases[i].max);
		CHECK((double)sum / n <= cases[i].mean);
		CHECK(over1 <= (long)(n / 20));
		clip_image_free(&rot);
		clip_image_free(&up);
	}
}

/* ---- each format against its reference ------------------------------------ */

static void test_formats_match_reference(void)
{
	static const struct { const char *file, *ref; int w, h; } cases[] = {
		{ "orient_1.jpg", "orient_1.png", 96, 64 },
		{ "datetime.jpg", "datetime.png", 96, 64 },
		{ "exif_corrupt.jpg", "exif_corrupt.png", 96, 64 },
		{ "cmyk.jpg", "cmyk.png", 96, 64 },
		{ "ycck.jpg", "ycck.png", 96, 64 },
		{ "progressive_restart.jpg", "progressive_restart.png", 96, 64 },
		{ "grey.jpg", "grey.png", 96, 64 },
		{ "arithmetic.jpg", "arithmetic.png", 96, 64 },        /* djpeg */
		{ "webp_lossy.webp", "webp_lossy.png", 96, 64 },
		{ "webp_alpha.webp", "webp_alpha.png", 96, 64 },
		{ "webp_animated.webp", "webp_animated.png", 96, 64 },  /* first frame */
		{ "webp_orient6.webp", "webp_orient6.png", 64, 96 },
		{ "photo.heic", "photo_heic.png", 96, 64 },             /* heif-convert */
		{ "photo.avif", "photo_avif.png", 96, 64 },             /* heif-convert */
		{ "tiff_rgb8.tif", "tiff_rgb8.png", 96, 64 },
		{ "tiff_rgb16.tif", "tiff_rgb16.png", 96, 64 },
		{ "tiff_palette.tif", "tiff_palette.png", 96, 64 },
		{ "tiff_grey.tif", "tiff_grey.png", 96, 64 },
		{ "tiff_multipage.tif", "tiff_multipage.png", 96, 64 }, /* first page */
		{ "tiff_orient6.tif", "tiff_orient6.png", 64, 96 },
		/* 16-bit greyscale: the high byte (Pillow would clip to white) */
		{ "tiff_grey16.tif", "tiff_grey16.png", 96, 64 },
		{ "grey16.png", "grey16.png", 96, 64 },
		/* stb_image, its first frame's colours made Pillow's */
		{ "gif_transparent.gif", "gif_transparent.png", 40, 30 },
		{ "gif_subframe.gif", "gif_subframe.png", 40, 30 },
		/* RLE-compressed BMPs: ImageMagick's RLE8, a hand-written RLE4 */
		{ "bmp_rle8.bmp", "bmp_rle8.png", 96, 64 },
		{ "bmp_rle4.bmp", "bmp_rle4.png", 95, 63 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		clip_image img = { 0 };
		clip_error err = { 0 };
		int rc = decode_default(cases[i].file, &img, &err);
		if (rc)
			fprintf(stderr, "  %s: %s\n", cases[i].file, err.msg);
		CHECK_EQ_INT(rc, 0);
		int rw = 0, rh = 0;
		unsigned char *want = read_ref(cases[i].ref, 3, &rw, &rh);
		CHECK(want != NULL);
		if (rc == 0 && want) {
			CHECK_EQ_INT(img.width, cases[i].w);
			CHECK_EQ_INT(img.height, cases[i].h);
			CHECK(rw == img.width && rh == img.height);
			if (rw == img.width && rh == img.height) {
				int d = max_diff(img.rgb, want, (size_t)rw * rh * 3);
				printf("  %-24s %s %dx%d max diff %d\n", cases[i].file,
				       clip_image_mime(img.type), img.width, img.height, d);
				CHECK_EQ_INT(d, 0);
			}
		}
		free(want);
		clip_image_free(&img);
	}
}

/* The four JPEG reference fixtures: the reference crop byte for byte,
 * exact and with the fast path (they are under its threshold). */
static void test_reference_jpeg_crops_both_modes(void)
{
	static const char *names[] = { "hubble_deep_field", "noise_211x97", "progressive_300x200",
				       "rocket" };
	for (size_t i = 0; i < 4; i++) {
		char path[1024];
		size_t len = 0, clen = 0;
		snprintf(path, sizeof path, "%s/images/%s.jpg", TEST_DATA_DIR, names[i]);
		unsigned char *buf = harness_read_file(path, &len);
		snprintf(path, sizeof path, "%s/crops/%s.png", TEST_DATA_DIR, names[i]);
		unsigned char *cbuf = harness_read_file(path, &clen);
		REQUIRE(buf && cbuf);
		int x, y, n;
		unsigned char *want = stbi_load_from_memory(cbuf, (int)clen, &x, &y, &n, 3);
		REQUIRE(want && x == 224 && y == 224);
		for (int fast = 0; fast <= 1; fast++) {
			struct clip_decode_params dp = clip_decode_default_params();
			dp.min_short_side = fast ? 448 : 0;
			clip_image img = { 0 };
			clip_error err = { 0 };
			unsigned char got[224 * 224 * 3];
			REQUIRE(clip_image_decode_with(buf, len, &dp, &img, &err) == 0);
			CHECK_EQ_INT(img.scale_denom, 1);
			REQUIRE(clip_image_crop(&img, 224, got, sizeof got, &err) == 0);
			CHECK_EQ_INT(max_diff(got, want, sizeof got), 0);
			clip_image_free(&img);
		}
		free(want);
		free(buf);
		free(cbuf);
	}
}

/* ---- capture time, alpha ----------------------------------------------------- */

static void test_taken_at(void)
{
	clip_image img = { 0 };
	clip_error err = { 0 };

	REQUIRE(decode_default("datetime.jpg", &img, &err) == 0);
	CHECK_EQ_STR(img.taken_at, "2023-06-17T14:03:22+02:00");
	CHECK_EQ_INT(img.orientation, 1);
	clip_image_free(&img);
	REQUIRE(decode_default("orient_3.jpg", &img, &err) == 0);
	CHECK_EQ_STR(img.taken_at, "");
	clip_image_free(&img);
	/* a corrupt EXIF block is ignored: decoded as stored, no time */
	REQUIRE(decode_default("exif_corrupt.jpg", &img, &err) == 0);
	CHECK_EQ_INT(img.orientation, 1);
	CHECK_EQ_INT(img.width, 96);
	CHECK_EQ_STR(img.taken_at, "");
	clip_image_free(&img);
}

static void test_alpha(void)
{
	struct clip_decode_params dp = clip_decode_default_params();
	clip_image img = { 0 }, plain = { 0 };
	clip_error err = { 0 };
	int rw, rh;

	dp.keep_alpha = 1;
	REQUIRE(decode_photo("webp_alpha.webp", &dp, &img, &err) == 0);
	REQUIRE(img.alpha != NULL);
	unsigned char *want = read_ref("webp_alpha.png", 4, &rw, &rh);
	REQUIRE(want && rw == 96 && rh == 64);
	long wrong = 0, transparent = 0;
	for (size_t i = 0; i < (size_t)96 * 64; i++) {
		wrong += img.alpha[i] != want[4 * i + 3] || memcmp(img.rgb + 3 * i, want + 4 * i, 3);
		transparent += img.alpha[i] == 0;
	}
	CHECK_EQ_INT(wrong, 0);
	CHECK(transparent > 100);
	free(want);

	/* without keep_alpha: the same colour, no alpha (the model's input) */
	REQUIRE(decode_default("webp_alpha.webp", &plain, &err) == 0);
	CHECK(plain.alpha == NULL);
	CHECK_EQ_INT(max_diff(plain.rgb, img.rgb, (size_t)96 * 64 * 3), 0);

	/* flattened: white where transparent, the colour where opaque */
	unsigned char *before = malloc((size_t)96 * 64 * 4);
	REQUIRE(before);
	memcpy(before, img.rgb, (size_t)96 * 64 * 3);
	memcpy(before + (size_t)96 * 64 * 3, img.alpha, (size_t)96 * 64);
	clip_image_flatten(&img);
	CHECK(img.alpha == NULL);
	long bad = 0;
	for (size_t i = 0; i < (size_t)96 * 64; i++) {
		unsigned a = before[(size_t)96 * 64 * 3 + i];
		for (int c = 0; c < 3; c++) {
			unsigned v = before[3 * i + (size_t)c];
			unsigned expect = (v * a + 255 * (255 - a) + 127) / 255;
			bad += img.rgb[3 * i + (size_t)c] != expect;
			if (a == 0)
				bad += img.rgb[3 * i + (size_t)c] != 255;
		}
	}
	CHECK_EQ_INT(bad, 0);
	free(before);
	clip_image_flatten(&img);  /* nothing to do: no alpha */
	clip_image_flatten(NULL);
	clip_image_free(&img);
	clip_image_free(&plain);

	/* a GIF's transparent index: alpha 0 on its pixels and on the screen
	 * outside the first frame, the colour Pillow gives them */
	REQUIRE(decode_photo("gif_transparent.gif", &dp, &img, &err) == 0);
	REQUIRE(img.alpha != NULL);
	want = read_ref("gif_transparent.png", 4, &rw, &rh);
	REQUIRE(want && rw == 40 && rh == 30);
	wrong = transparent = 0;
	for (size_t i = 0; i < (size_t)40 * 30; i++) {
		wrong += img.alpha[i] != want[4 * i + 3] || memcmp(img.rgb + 3 * i, want + 4 * i, 3);
		transparent += img.alpha[i] == 0;
	}
	CHECK_EQ_INT(wrong, 0);
	CHECK(transparent > 40 * 30 - 24 * 18);
	free(want);
	clip_image_free(&img);

	/* an RGBA PNG keeps its alpha; an opaque JPEG has none */
	char path[1024];
	size_t len = 0;
	snprintf(path, sizeof path, "%s/images/rgba_256x256.png", TEST_DATA_DIR);
	unsigned char *buf = harness_read_file(path, &len);
	REQUIRE(buf);
	REQUIRE(clip_image_decode_with(buf, len, &dp, &img, &err) == 0);
	CHECK(img.alpha != NULL);
	clip_image_free(&img);
	free(buf);
	REQUIRE(decode_photo("orient_1.jpg", &dp, &img, &err) == 0);
	CHECK(img.alpha == NULL);
	clip_image_free(&img);
	REQUIRE(decode_photo("photo.heic", &dp, &img, &err) == 0);
	CHECK(img.alpha == NULL);
	clip_image_free(&img);
}

/* ---- broken files ------------------------------------------------------------ */

static void test_broken_photos(void)
{
	static const struct { const char *name; int code; const char *says; } cases[] = {
		{ "bad_truncated.webp", CLIP_ERR_UNDECODABLE, "WebP" },
		{ "bad_corrupt.webp", CLIP_ERR_UNDECODABLE, "WebP" },
		{ "bad_truncated.heic", CLIP_ERR_UNDECODABLE, "HEIC" },
		{ "bad_corrupt.heic", CLIP_ERR_UNDECODABLE, "HEIC" },
		{ "bad_truncated.avif", CLIP_ERR_UNDECODABLE, "AVIF" },
		{ "bad_corrupt.avif", CLIP_ERR_UNDECODABLE, "AVIF" },
		{ "bad_truncated.tif", CLIP_ERR_UNDECODABLE, "TIFF" },
		{ "bad_corrupt.tif", CLIP_ERR_UNDECODABLE, "TIFF" },
		{ "bad_truncated_arithmetic.jpg", CLIP_ERR_UNDECODABLE, "truncated JPEG" },
		{ "bad_truncated_progressive.jpg", CLIP_ERR_UNDECODABLE, "truncated JPEG" },
		{ "bad_truncated_rle8.bmp", CLIP_ERR_UNDECODABLE, "truncated BMP: its RLE data ends in row" },
		/* the header states 30000 x 30000: refused before decoding (a
		 * decode would have failed on the size mismatch instead) */
		{ "bad_huge_ispe.heic", CLIP_ERR_TOO_LARGE, "30000 x 30000" },
		{ "bad_huge_ispe.avif", CLIP_ERR_TOO_LARGE, "30000 x 30000" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (int alpha = 0; alpha <= 1; alpha++) {
			struct clip_decode_params dp = clip_decode_default_params();
			dp.keep_alpha = alpha;
			clip_image img = { .width = 7, .rgb = (unsigned char *)&dp };
			clip_error err = { 0 };
			int rc = decode_photo(cases[i].name, &dp, &img, &err);
			if (!alpha)
				printf("  %-30s %-20s %s\n", cases[i].name, clip_status_name(rc), err.msg);
			CHECK_EQ_INT(rc, cases[i].code);
			CHECK_EQ_INT(err.code, cases[i].code);
			CHECK_CONTAINS(err.msg, cases[i].says);
			CHECK(img.rgb == NULL && img.alpha == NULL && img.width == 0);
		}
	}
}

/* A HEIC and an AVIF one pixel over the limit: refused from the header. */
static void test_heif_over_limit(void)
{
	const char *names[] = { "photo.heic", "photo.avif" };
	for (int i = 0; i < 2; i++) {
		struct clip_decode_params dp = clip_decode_default_params();
		clip_image img = { 0 };
		clip_error err = { 0 };
		dp.max_pixels = 96 * 64 - 1;
		CHECK_EQ_INT(decode_photo(names[i], &dp, &img, &err), CLIP_ERR_TOO_LARGE);
		CHECK_CONTAINS(err.msg, "96 x 64");
		dp.max_pixels = 96 * 64;
		CHECK_EQ_INT(decode_photo(names[i], &dp, &img, &err), 0);
		clip_image_free(&img);
	}
}

/* Issue 17's reproducers (tests/data/images/bad_jpeg_*.jpg, copies of
 * ../shared/reproducers): decoded or refused, never a crash or a read of
 * uninitialised memory (the sanitizer build runs this too). */
static void test_issue17_reproducers(void)
{
	const char *names[] = { "bad_jpeg_undef_ac.jpg", "bad_jpeg_assert.jpg" };
	for (int i = 0; i < 2; i++) {
		char path[1024];
		size_t len = 0;
		snprintf(path, sizeof path, "%s/images/%s", TEST_DATA_DIR, names[i]);
		unsigned char *buf = harness_read_file(path, &len);
		REQUIRE(buf);
		for (int fast = 0; fast <= 1; fast++) {
			struct clip_decode_params dp = clip_decode_default_params();
			dp.min_short_side = fast ? 16 : 0;
			clip_image img = { 0 };
			clip_error err = { 0 };
			int rc = clip_image_decode_with(buf, len, &dp, &img, &err);
			printf("  %s: %s %s\n", names[i], clip_status_name(rc), rc ? err.msg : "");
			CHECK(rc == 0 || rc == CLIP_ERR_UNDECODABLE);
			if (rc == 0) {
				unsigned char crop[16 * 16 * 3];
				CHECK(img.rgb && img.width > 0 && img.height > 0);
				CHECK_EQ_INT(clip_image_crop(&img, 16, crop, sizeof crop, &err), 0);
			} else {
				CHECK(err.msg[0] != '\0');
			}
			clip_image_free(&img);
		}
		free(buf);
	}
}

/* ---- the EXIF reader ------------------------------------------------------------ */

/* A little TIFF-structure writer for the parser tests. */
struct blk {
	unsigned char b[512];
	size_t n;
	int big;
};

static void put16(struct blk *k, size_t at, unsigned v)
{
	if (k->big) {
		k->b[at] = (unsigned char)(v >> 8);
		k->b[at + 1] = (unsigned char)v;
	} else {
		k->b[at] = (unsigned char)v;
		k->b[at + 1] = (unsigned char)(v >> 8);
	}
}

static void put32(struct blk *k, size_t at, uint32_t v)
{
	if (k->big) {
		put16(k, at, v >> 16);
		put16(k, at + 2, v & 0xffff);
	} else {
		put16(k, at, v & 0xffff);
		put16(k, at + 2, v >> 16);
	}
}

/* header + IFD0 at 8 with n entries; returns the offset of entry 0 */
static size_t blk_init(struct blk *k, int big, unsigned n)
{
	memset(k, 0, sizeof *k);
	k->big = big;
	memcpy(k->b, big ? "MM" : "II", 2);
	put16(k, 2, 42);
	put32(k, 4, 8);
	put16(k, 8, n);
	k->n = 8 + 2 + 12 * (size_t)n + 4;
	return 10;
}

static void entry(struct blk *k, size_t at, unsigned tag, unsigned type, uint32_t count,
		  uint32_t value)
{
	put16(k, at, tag);
	put16(k, at + 2, type);
	put32(k, at + 4, count);
	if (type == 3 && count == 1)
		put16(k, at + 8, value);
	else
		put32(k, at + 8, value);
}

/* IFD0: Orientation o, Exif IFD -> DateTimeOriginal and OffsetTimeOriginal */
static void blk_full(struct blk *k, int big, int o)
{
	size_t e = blk_init(k, big, 2);
	size_t exif_at = k->n;
	entry(k, e, 0x0112, 3, 1, (uint32_t)o);
	entry(k, e + 12, 0x8769, 4, 1, (uint32_t)exif_at);
	put16(k, exif_at, 2);
	size_t strings = exif_at + 2 + 24 + 4;
	entry(k, exif_at + 2, 0x9003, 2, 20, (uint32_t)strings);
	entry(k, exif_at + 14, 0x9011, 2, 7, (uint32_t)(strings + 20));
	memcpy(k->b + strings, "2021:02:28 23:59:60", 20);
	memcpy(k->b + strings + 20, "-05:30", 7);
	k->n = strings + 27;
}

static void test_exif_parser(void)
{
	struct blk k;
	struct clip_exif ex;

	for (int big = 0; big <= 1; big++) {
		blk_full(&k, big, 6);
		clip_exif_parse(k.b, k.n, &ex);
		CHECK_EQ_INT(ex.orientation, 6);
		CHECK_EQ_STR(ex.taken_at, "2021-02-28T23:59:60-05:30");

		/* every truncation: never more than what is there, never a crash
		 * (each prefix in a buffer of its own size, for ASan) */
		for (size_t cut = 0; cut < k.n; cut++) {
			unsigned char *p = malloc(cut ? cut : 1);
			REQUIRE(p);
			memcpy(p, k.b, cut);
			clip_exif_parse(p, cut, &ex);
			CHECK(ex.orientation == 0 || ex.orientation == 6);
			/* the date whole or nothing; the offset may be cut off */
			CHECK(ex.taken_at[0] == '\0' ||
			      !strncmp(ex.taken_at, "2021-02-28T23:59:60", 19));
			free(p);
		}
	}

	/* an "Exif\0\0" prefix is skipped */
	blk_full(&k, 0, 3);
	unsigned char pre[600];
	memcpy(pre, "Exif\0\0", 6);
	memcpy(pre + 6, k.b, k.n);
	clip_exif_parse(pre, k.n + 6, &ex);
	CHECK_EQ_INT(ex.orientation, 3);

	/* values out of range, wrong types and counts are absent */
	static const struct { unsigned type; uint32_t count, value; int want; } vals[] = {
		{ 3, 1, 0, 0 }, { 3, 1, 9, 0 }, { 3, 1, 0xffff, 0 }, { 3, 1, 8, 8 },
		{ 4, 1, 5, 5 }, { 2, 1, 6, 0 }, { 3, 2, 6, 0 }, { 3, 0, 6, 0 },
	};
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		size_t e = blk_init(&k, 0, 1);
		entry(&k, e, 0x0112, vals[i].type, vals[i].count, vals[i].value);
		clip_exif_parse(k.b, k.n, &ex);
		CHECK_EQ_INT(ex.orientation, vals[i].want);
	}

	/* IFD0 offset outside the block, and into the header */
	blk_full(&k, 0, 6);
	put32(&k, 4, 0xfffffff0);
	clip_exif_parse(k.b, k.n, &ex);
	CHECK_EQ_INT(ex.orientation, 0);
	put32(&k, 4, 2);
	clip_exif_parse(k.b, k.n, &ex);
	CHECK_EQ_INT(ex.orientation, 0);

	/* a count of 65535 entries in a small block: the directory is ignored */
	blk_full(&k, 1, 7);
	put16(&k, 8, 65535);
	clip_exif_parse(k.b, k.n, &ex);
	CHECK_EQ_INT(ex.orientation, 0);
	put16(&k, 8, 2);  /* and read when it is right */
	clip_exif_parse(k.b, k.n, &ex);
	CHECK_EQ_INT(ex.orientation, 7);

	/* the Exif IFD pointing at IFD0 (a loop), outside, at the last byte */
	static const uint32_t bad_exif[] = { 8, 0x7fffffff, 0xffffffff, 0 };
	for (size_t i = 0; i < 4; i++) {
		blk_full(&k, 0, 2);
		put32(&k, 10 + 12 + 8, i == 3 ? (uint32_t)k.n - 1 : bad_exif[i]);
		clip_exif_parse(k.b, k.n, &ex);
		CHECK_EQ_INT(ex.orientation, 2);
		CHECK_EQ_STR(ex.taken_at, "");
	}

	/* DateTimeOriginal whose offset runs past the end */
	blk_full(&k, 0, 1);
	put32(&k, 38 + 2 + 8, (uint32_t)k.n - 5);
	clip_exif_parse(k.b, k.n, &ex);
	CHECK_EQ_STR(ex.taken_at, "");

	/* not EXIF at all */
	clip_exif_parse((const unsigned char *)"II*\0", 4, &ex);
	CHECK_EQ_INT(ex.orientation, 0);
	clip_exif_parse((const unsigned char *)"XX*\0\x08\0\0\0\0\0\0\0", 12, &ex);
	CHECK_EQ_INT(ex.orientation, 0);
	clip_exif_parse(NULL, 100, &ex);
	CHECK_EQ_INT(ex.orientation, 0);
}

static void test_exif_datetime(void)
{
	static const struct { const char *dt, *off, *want; } cases[] = {
		{ "2023:06:17 14:03:22", "+02:00", "2023-06-17T14:03:22+02:00" },
		{ "2023:06:17 14:03:22", "-09:30", "2023-06-17T14:03:22-09:30" },
		{ "2023:06:17 14:03:22", NULL, "2023-06-17T14:03:22-00:00" },
		{ "2023:06:17 14:03:22", "+2:00", "2023-06-17T14:03:22-00:00" },   /* bad offset: unknown */
		{ "2023:06:17 14:03:22", "+24:00", "2023-06-17T14:03:22-00:00" },
		{ "2023:06:17 14:03:22", "      ", "2023-06-17T14:03:22-00:00" },
		{ "2023-06-17 14:03:22", "+00:00", "2023-06-17T14:03:22+00:00" },
		{ "2024:02:29 00:00:00", NULL, "2024-02-29T00:00:00-00:00" },      /* leap year */
		{ "2023:02:29 00:00:00", NULL, "" },
		{ "1900:02:29 00:00:00", NULL, "" },
		{ "2000:02:29 00:00:00", NULL, "2000-02-29T00:00:00-00:00" },
		{ "0000:00:00 00:00:00", NULL, "" },   /* a camera without a clock */
		{ "    :  :     :  :  ", NULL, "" },
		{ "2023:13:01 00:00:00", NULL, "" },
		{ "2023:04:31 00:00:00", NULL, "" },
		{ "2023:06:17 24:00:00", NULL, "" },
		{ "2023:06:17 14:60:00", NULL, "" },
		{ "2023:06:17 14:03:61", NULL, "" },
		{ "2023:06:17T14:03:22", NULL, "" },
		{ "2023:06-17 14:03:22", NULL, "" },
		{ "2023:06:17 14:03", NULL, "" },
		{ "2023:06:17 14:03:22 ", NULL, "2023-06-17T14:03:22-00:00" },
		{ "2023:06:17 14:03:2x", NULL, "" },
		{ "", NULL, "" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[CLIP_TAKEN_AT_LEN];
		memset(out, 'x', sizeof out);
		int rc = clip_exif_datetime(cases[i].dt, strlen(cases[i].dt) + 1, cases[i].off,
					    cases[i].off ? strlen(cases[i].off) + 1 : 0, out);
		if (strcmp(out, cases[i].want))
			fprintf(stderr, "  case %zu: \"%s\"\n", i, cases[i].dt);
		CHECK_EQ_STR(out, cases[i].want);
		CHECK_EQ_INT(rc, cases[i].want[0] ? 0 : -1);
	}
	/* not NUL-terminated within its count: only the count is read */
	char out[CLIP_TAKEN_AT_LEN];
	CHECK_EQ_INT(clip_exif_datetime("2023:06:17 14:03:22XYZ", 19, NULL, 0, out), 0);
	CHECK_EQ_STR(out, "2023-06-17T14:03:22-00:00");
}

/* The containers' EXIF finders on broken containers. */
static void test_exif_finders(void)
{
	const unsigned char *block = NULL;
	size_t n = 0, len = 0;
	unsigned char *jpg = read_photo("datetime.jpg", &len);
	REQUIRE(jpg);
	CHECK_EQ_INT(clip_exif_find_jpeg(jpg, len, &block, &n), 0);
	CHECK(block == jpg + 4 + 2 + 6 && n > 8);
	/* every truncation of the headers: found whole, or not found */
	for (size_t cut = 0; cut < 200; cut++) {
		unsigned char *p = malloc(cut ? cut : 1);
		REQUIRE(p);
		memcpy(p, jpg, cut);
		if (clip_exif_find_jpeg(p, cut, &block, &n) == 0)
			CHECK(block >= p && block + n <= p + cut);
		free(p);
	}
	free(jpg);
	unsigned char *webp = read_photo("webp_orient6.webp", &len);
	REQUIRE(webp);
	CHECK_EQ_INT(clip_exif_find_webp(webp, len, &block, &n), 0);
	for (size_t cut = 0; cut < len; cut += 7) {
		unsigned char *p = malloc(cut ? cut : 1);
		REQUIRE(p);
		memcpy(p, webp, cut);
		if (clip_exif_find_webp(p, cut, &block, &n) == 0)
			CHECK(block >= p && block + n <= p + cut);
		free(p);
	}
	free(webp);
	CHECK(clip_exif_find_png((const unsigned char *)"\x89PNG\r\n\x1a\n", 8, &block, &n) != 0);
	CHECK(clip_exif_find_jpeg(NULL, 0, &block, &n) != 0);

	/* bytes between two segments (libjpeg: "4 extraneous bytes before
	 * marker 0xe1"; Pillow skips them too): the Exif after them is found */
	static const unsigned char padded[] = {
		0xff, 0xd8,
		0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
		0x00, 0x00, 0x00, 0x00,
		0xff, 0xe1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0,
		'I', 'I', 42, 0, 8, 0, 0, 0,
		1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0,
		0xff, 0xda,
	};
	CHECK_EQ_INT(clip_exif_find_jpeg(padded, sizeof padded, &block, &n), 0);
	CHECK(block == padded + 2 + 18 + 4 + 4 + 6 && n == 0x22 - 8);
	struct clip_exif ex;
	clip_exif_parse(block, n, &ex);
	CHECK_EQ_INT(ex.orientation, 6);
	/* nothing but junk after SOI: nothing found, nothing read past the end */
	static const unsigned char junk[] = { 0xff, 0xd8, 0x00, 0x01, 0x02, 0xff };
	CHECK(clip_exif_find_jpeg(junk, sizeof junk, &block, &n) != 0);
}

/* ---- the fast path -------------------------------------------------------------- */

static void test_scale_choice(void)
{
	static const struct { uint32_t w, h; int short_min, long_min, want; } cases[] = {
		{ 4032, 3024, 448, 0, 4 },   /* 3024 >= 4 * 448, < 8 * 448 */
		{ 4000, 3584, 448, 0, 8 },
		{ 4000, 3583, 448, 0, 4 },
		{ 2000, 1000, 448, 0, 2 },
		{ 2000, 896, 448, 0, 2 },
		{ 2000, 895, 448, 0, 1 },    /* under 4 x 224: full size */
		{ 640, 480, 448, 0, 1 },
		{ 4032, 3024, 0, 0, 1 },     /* exact */
		{ 4032, 3024, 0, 256, 8 },   /* a 256 thumbnail of a 12 MP photo */
		{ 4032, 3024, 0, 512, 4 },
		{ 1000, 700, 0, 512, 1 },
		{ 4032, 3024, 448, 512, 4 },
		{ 3024, 4032, 448, 512, 4 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		CHECK_EQ_INT(clip_jpeg_scale_denom(cases[i].w, cases[i].h, cases[i].short_min,
						    cases[i].long_min), cases[i].want);
}

static uint32_t rng_state = 0x9e3779b9u;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/*
 * A w x h picture with the structure of a photo: smooth gradients, a few
 * soft-edged shapes, textured regions of varying frequency and a little
 * sensor noise; encoded as a quality-90 4:2:0 JPEG with libjpeg.
 */
static unsigned char *synthetic_photo_jpeg(int w, int h, unsigned long *len)
{
	unsigned char *rgb = malloc((size_t)w * h * 3);
	if (!rgb)
		return NULL;
	float cx[6], cy[6], rad[6], col[6][3];
	for (int i = 0; i < 6; i++) {
		cx[i] = (float)(rnd() % (unsigned)w);
		cy[i] = (float)(rnd() % (unsigned)h);
		rad[i] = (float)(h / 10 + rnd() % (unsigned)(h / 3));
		for (int c = 0; c < 3; c++)
			col[i][c] = (float)(rnd() % 200) - 100.0f;
	}
	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++) {
			float fx = (float)x / (float)w, fy = (float)y / (float)h;
			float base[3] = { 70 + 120 * fy, 90 + 80 * fx, 140 - 60 * fy + 30 * fx };
			float tex = 18.0f * sinf((float)x * 0.11f + 3.0f * sinf((float)y * 0.013f)) *
				    sinf((float)y * 0.07f) * (fx > 0.5f ? 1.0f : 0.3f);
			for (int i = 0; i < 6; i++) {
				float dx = (float)x - cx[i], dy = (float)y - cy[i];
				float d = sqrtf(dx * dx + dy * dy) - rad[i];
				float m = d < -3 ? 1.0f : d > 3 ? 0.0f : (3 - d) / 6;
				for (int c = 0; c < 3; c++)
					base[c] += m * col[i][c];
			}
			for (int c = 0; c < 3; c++) {
				float v = base[c] + tex + (float)(rnd() % 9) - 4.0f;
				rgb[((size_t)y * w + x) * 3 + c] =
					(unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
			}
		}
	}
	struct jpeg_compress_struct ci;
	struct jpeg_error_mgr jerr;
	unsigned char *out = NULL;
	ci.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&ci);
	jpeg_mem_dest(&ci, &out, len);
	ci.image_width = (JDIMENSION)w;
	ci.image_height = (JDIMENSION)h;
	ci.input_components = 3;
	ci.in_color_space = JCS_RGB;
	jpeg_set_defaults(&ci);
	jpeg_set_quality(&ci, 90, TRUE);
	jpeg_start_compress(&ci, TRUE);
	while (ci.next_scanline < ci.image_height) {
		JSAMPROW row = rgb + (size_t)ci.next_scanline * w * 3;
		jpeg_write_scanlines(&ci, &row, 1);
	}
	jpeg_finish_compress(&ci);
	jpeg_destroy_compress(&ci);
	free(rgb);
	return out;
}

#define CROP_BYTES (224 * 224 * 3)

/*
 * The 224-pixel crops of a JPEG decoded at full size (exact) and on the
 * fast path (fast), which must take a 1/denom scale of a w x h upright
 * image turned by orientation o. 0 when both were made.
 */
static int exact_and_fast_crops(const unsigned char *jpg, size_t len, int w, int h, int o,
				int denom, unsigned char *exact, unsigned char *fast)
{
	for (int f = 0; f <= 1; f++) {
		struct clip_decode_params dp = clip_decode_default_params();
		dp.min_short_side = f ? 448 : 0;
		clip_image img = { 0 };
		clip_error err = { 0 };
		int ok = clip_image_decode_with(jpg, len, &dp, &img, &err) == 0;
		CHECK(ok);
		if (!ok)
			return -1;
		CHECK_EQ_INT(img.orientation, o);
		CHECK_EQ_INT(img.scale_denom, f ? denom : 1);
		CHECK_EQ_INT(img.full_width, w);
		CHECK_EQ_INT(img.full_height, h);
		CHECK_EQ_INT(img.width, (w + img.scale_denom - 1) / img.scale_denom);
		ok = clip_image_crop(&img, 224, f ? fast : exact, CROP_BYTES, &err) == 0;
		CHECK(ok);
		clip_image_free(&img);
		if (!ok)
			return -1;
	}
	return 0;
}

/* The fast crop within a level RMS of the exact one, and not equal to it
 * (it did take the other path). */
static void check_fast_crop(const unsigned char *exact, const unsigned char *fast, int w, int h,
			    int o, int denom)
{
	double sum = 0;
	for (size_t k = 0; k < CROP_BYTES; k++) {
		double d = (double)exact[k] - fast[k];
		sum += d * d;
	}
	double rms = sqrt(sum / CROP_BYTES);
	printf("  %d x %d, orientation %d: 1/%d decode, RMS %.3f, max %d levels\n", w, h, o, denom,
	       rms, max_diff(exact, fast, CROP_BYTES));
	CHECK(rms < 1.0);
	CHECK(rms > 0.0);
}

/* Large photos: the fast path's crop within a level RMS of the exact one. */
static void test_fast_path_rms(void)
{
	static const struct { int w, h, denom; } cases[] = {
		{ 2000, 1000, 2 }, { 4032, 3024, 4 }, { 3024, 4032, 4 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned long len = 0;
		unsigned char *jpg = synthetic_photo_jpeg(cases[i].w, cases[i].h, &len);
		REQUIRE(jpg);
		unsigned char exact[CROP_BYTES], fast[CROP_BYTES];
		if (exact_and_fast_crops(jpg, len, cases[i].w, cases[i].h, 1, cases[i].denom, exact,
					 fast) == 0)
			check_fast_crop(exact, fast, cases[i].w, cases[i].h, 1, cases[i].denom);
		free(jpg);
	}
}

/*
 * Sizes that DCT scaling does not divide: a 1/d decode has ceil(side / d)
 * pixels, the last standing for part of d. The fast path's crop stays
 * within a level RMS of the exact one in all eight orientations, which
 * move that partial pixel to either end of each upright axis (resizing the
 * scaled pixels as if they were the whole image shifts the crop by up to a
 * fraction of an output pixel: 2-4 levels RMS on such photos).
 */
static void test_fast_path_uneven_sizes(void)
{
	static const struct { int w, h, denom, orientations; } cases[] = {
		{ 1795, 1003, 2, 8 }, { 1801, 3589, 4, 1 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned long len = 0;
		unsigned char *jpg = synthetic_photo_jpeg(cases[i].w, cases[i].h, &len);
		REQUIRE(jpg);
		for (int o = 1; o <= cases[i].orientations; o++) {
			size_t tlen = 0;
			unsigned char *tagged = jpeg_with_orientation(jpg, len, o, &tlen);
			REQUIRE(tagged);
			const int w = o >= 5 ? cases[i].h : cases[i].w;  /* upright */
			const int h = o >= 5 ? cases[i].w : cases[i].h;
			unsigned char exact[CROP_BYTES], fast[CROP_BYTES];
			if (exact_and_fast_crops(tagged, tlen, w, h, o, cases[i].denom, exact, fast) == 0)
				check_fast_crop(exact, fast, w, h, o, cases[i].denom);
			free(tagged);
		}
		free(jpg);
	}
}

/* A thumbnail's decode: the smallest scale that still covers the size. */
static void test_thumbnail_scale(void)
{
	unsigned long len = 0;
	unsigned char *jpg = synthetic_photo_jpeg(1600, 1200, &len);
	REQUIRE(jpg);
	struct clip_decode_params dp = clip_decode_default_params();
	clip_image img = { 0 };
	clip_error err = { 0 };
	dp.min_long_side = 256;
	dp.keep_alpha = 1;
	REQUIRE(clip_image_decode_with(jpg, len, &dp, &img, &err) == 0);
	CHECK_EQ_INT(img.scale_denom, 4);
	CHECK_EQ_INT(img.width, 400);
	CHECK_EQ_INT(img.height, 300);
	CHECK_EQ_INT(img.full_width, 1600);
	CHECK(img.alpha == NULL);
	clip_image_free(&img);
	dp.min_long_side = 512;
	REQUIRE(clip_image_decode_with(jpg, len, &dp, &img, &err) == 0);
	CHECK_EQ_INT(img.scale_denom, 2);
	CHECK_EQ_INT(img.width, 800);
	clip_image_free(&img);
	free(jpg);
}

/* ---- fuzz -------------------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Truncations and byte flips of the new formats' fixtures, bounded in
 * time: every outcome a success with sane dimensions or a known error with
 * a message; ASan/UBSan turn a memory error into a failure.
 */
static void test_fuzz_new_decoders(void)
{
	static const char *names[] = {
		"webp_lossy.webp", "webp_alpha.webp", "webp_animated.webp", "webp_orient6.webp",
		"photo.heic", "photo.avif", "tiff_rgb8.tif", "tiff_rgb16.tif", "tiff_palette.tif",
		"tiff_grey.tif", "tiff_multipage.tif", "tiff_orient6.tif", "arithmetic.jpg",
		"cmyk.jpg", "ycck.jpg", "progressive_restart.jpg", "datetime.jpg",
	};
	const size_t n_names = sizeof names / sizeof names[0];
	const char *env_s = getenv("CLIPD_FUZZ_SECONDS");
	const double budget = env_s ? atof(env_s) : 2.0;
	double t0 = now_s();
	long runs = 0, decoded = 0, bad = 0;
	unsigned char small[16 * 16 * 3];

	while ((now_s() - t0 < budget && runs < 20000) || runs < 2 * (long)n_names) {
		const char *name = names[(size_t)runs % n_names];
		size_t len = 0;
		unsigned char *buf = read_photo(name, &len);
		REQUIRE(buf && len > 16);
		size_t use = len;
		switch (rnd() % 3) {
		case 0:
			use = rnd() % (len + 1);
			break;
		case 1: {
			int flips = 1 + (int)(rnd() % 6);
			for (int f = 0; f < flips; f++) {
				size_t at = rnd() % 2 ? rnd() % (len < 512 ? len : 512) : rnd() % len;
				buf[at] ^= (unsigned char)(1 + rnd() % 255);
			}
			break;
		}
		default:
			buf[rnd() % len] ^= (unsigned char)(1 + rnd() % 255);
			use = rnd() % (len + 1);
			break;
		}
		unsigned char *exact = malloc(use ? use : 1);
		REQUIRE(exact);
		memcpy(exact, buf, use);
		free(buf);
		struct clip_decode_params dp = clip_decode_default_params();
		dp.max_pixels = 1u << 20;
		dp.keep_alpha = (int)(rnd() % 2);
		dp.min_short_side = (int)(rnd() % 3) * 16;
		clip_image img = { 0 };
		clip_error err = { 0 };
		int rc = clip_image_decode_with(exact, use, &dp, &img, &err);
		runs++;
		if (rc == 0) {
			decoded++;
			if (img.width <= 0 || img.height <= 0 || !img.rgb ||
			    clip_image_crop(&img, 16, small, sizeof small, &err) != 0)
				bad++;
			clip_image_flatten(&img);
		} else if (!(rc == CLIP_ERR_UNDECODABLE || rc == CLIP_ERR_UNSUPPORTED ||
			     rc == CLIP_ERR_EMPTY || rc == CLIP_ERR_TOO_LARGE) ||
			   err.msg[0] == '\0' || img.rgb != NULL) {
			fprintf(stderr, "  %s (%zu bytes): %d %s\n", name, use, rc, err.msg);
			bad++;
		}
		clip_image_free(&img);
		free(exact);
	}
	printf("  %ld inputs in %.1f s: %ld decoded, %ld refused\n", runs, now_s() - t0,
	       decoded, runs - decoded);
	CHECK_EQ_INT(bad, 0);
}

int main(void)
{
	RUN(test_sniff_new_types);
	RUN(test_probe_upright);
	RUN(test_eight_orientations);
	RUN(test_orientation_matches_upright_png);
	RUN(test_jpegtran_rotated);
	RUN(test_formats_match_reference);
	RUN(test_reference_jpeg_crops_both_modes);
	RUN(test_taken_at);
	RUN(test_alpha);
	RUN(test_broken_photos);
	RUN(test_heif_over_limit);
	RUN(test_issue17_reproducers);
	RUN(test_exif_parser);
	RUN(test_exif_datetime);
	RUN(test_exif_finders);
	RUN(test_scale_choice);
	RUN(test_fast_path_rms);
	RUN(test_fast_path_uneven_sizes);
	RUN(test_thumbnail_scale);
	RUN(test_fuzz_new_decoders);
	return harness_done();
}
