/*
 * Image decoding and preprocessing: magic-byte sniffing, header probing,
 * every bad_* fixture refused with its own code, the pixel limit checked
 * before any allocation, the Pillow-exact crop against the reference crops,
 * the normalisation, and a bounded truncation/bit-flip fuzz loop.
 */
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#include <stb/stb_image.h>  /* declarations only: the implementation is in clip_stb */

#include "clip.h"
#include "internal.h"
#include "harness.h"

#define DEFAULT_MAX_PIXELS ((size_t)64 * 1000 * 1000)  /* clip_default_params() */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned char *read_fixture(const char *dir, const char *name, size_t *len)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s/%s", TEST_DATA_DIR, dir, name);
	return harness_read_file(path, len);
}

static int decode_file(const char *name, size_t max_pixels, clip_image *img, clip_error *err)
{
	size_t len = 0;
	unsigned char *buf = read_fixture("images", name, &len);
	if (!buf) {
		fprintf(stderr, "  cannot read %s\n", name);
		return 99;
	}
	int rc = clip_image_decode(buf, len, max_pixels, img, err);
	free(buf);
	return rc;
}

/* ---- sniffing and probing ------------------------------------------- */

static void test_sniff_and_mime(void)
{
	static const unsigned char jpeg[] = { 0xff, 0xd8, 0xff, 0xe0 };
	static const unsigned char png[] = { 0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a };
	unsigned char bmp[32] = { 'B', 'M' };
	bmp[14] = 40;

	CHECK_EQ_INT(clip_image_sniff(jpeg, sizeof jpeg), CLIP_IMAGE_JPEG);
	CHECK_EQ_INT(clip_image_sniff(jpeg, 2), CLIP_IMAGE_UNKNOWN);
	CHECK_EQ_INT(clip_image_sniff(png, sizeof png), CLIP_IMAGE_PNG);
	CHECK_EQ_INT(clip_image_sniff(png, 7), CLIP_IMAGE_UNKNOWN);
	CHECK_EQ_INT(clip_image_sniff("GIF87a", 6), CLIP_IMAGE_GIF);
	CHECK_EQ_INT(clip_image_sniff("GIF89a", 6), CLIP_IMAGE_GIF);
	CHECK_EQ_INT(clip_image_sniff("GIF88a", 6), CLIP_IMAGE_UNKNOWN);
	CHECK_EQ_INT(clip_image_sniff(bmp, sizeof bmp), CLIP_IMAGE_BMP);
	bmp[14] = 41;  /* no such BMP info header */
	CHECK_EQ_INT(clip_image_sniff(bmp, sizeof bmp), CLIP_IMAGE_UNKNOWN);
	CHECK_EQ_INT(clip_image_sniff("BMW is a car, not a bitmap", 26), CLIP_IMAGE_UNKNOWN);
	CHECK_EQ_INT(clip_image_sniff("RIFF\x10\0\0\0WEBPVP8 ", 16), CLIP_IMAGE_WEBP);
	CHECK_EQ_INT(clip_image_sniff("RIFF\x10\0\0\0WEBPVP9 ", 16), CLIP_IMAGE_UNKNOWN);
	CHECK_EQ_INT(clip_image_sniff(NULL, 10), CLIP_IMAGE_UNKNOWN);
	CHECK_EQ_INT(clip_image_sniff(jpeg, 0), CLIP_IMAGE_UNKNOWN);

	CHECK_EQ_STR(clip_image_mime(CLIP_IMAGE_JPEG), "image/jpeg");
	CHECK_EQ_STR(clip_image_mime(CLIP_IMAGE_PNG), "image/png");
	CHECK_EQ_STR(clip_image_mime(CLIP_IMAGE_GIF), "image/gif");
	CHECK_EQ_STR(clip_image_mime(CLIP_IMAGE_BMP), "image/bmp");
	CHECK(clip_image_mime(CLIP_IMAGE_UNKNOWN) == NULL);
}

static void test_probe_fixtures(void)
{
	static const struct { const char *name; int type, w, h; } cases[] = {
		{ "astronaut.png", CLIP_IMAGE_PNG, 512, 512 },
		{ "wide_2000x50.png", CLIP_IMAGE_PNG, 2000, 50 },
		{ "small_50x40.bmp", CLIP_IMAGE_BMP, 50, 40 },
		{ "no_time_for_that_tiny.gif", CLIP_IMAGE_GIF, 14, 25 },
		{ "progressive_300x200.jpg", CLIP_IMAGE_JPEG, 300, 200 },
		{ "noise_211x97.jpg", CLIP_IMAGE_JPEG, 211, 97 },
		{ "bad_100mp_10000x10000.png", CLIP_IMAGE_PNG, 10000, 10000 },
		{ "bad_bomb_60000x60000.png", CLIP_IMAGE_PNG, 60000, 60000 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = 0;
		unsigned char *buf = read_fixture("images", cases[i].name, &len);
		REQUIRE(buf);
		enum clip_image_type t;
		int w = -1, h = -1;
		clip_error err = { 0 };
		int rc = clip_image_probe(buf, len, &t, &w, &h, &err);
		if (rc)
			fprintf(stderr, "  %s: %s\n", cases[i].name, err.msg);
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(t, cases[i].type);
		CHECK_EQ_INT(w, cases[i].w);
		CHECK_EQ_INT(h, cases[i].h);
		free(buf);
	}
}

/* ---- the bad_* fixtures ------------------------------------------------ */

static void test_bad_images(void)
{
	static const struct { const char *name; int code; const char *says; } cases[] = {
		{ "bad_truncated.jpg", CLIP_ERR_UNDECODABLE, "truncated JPEG" },
		{ "bad_not_an_image.jpg", CLIP_ERR_UNSUPPORTED, "text; supported types are JPEG, PNG" },
		{ "bad_empty.png", CLIP_ERR_EMPTY, "zero bytes" },
		{ "bad_headerless_tga.bin", CLIP_ERR_UNSUPPORTED, "JPEG, PNG, GIF, BMP, WebP, HEIC, AVIF or TIFF" },
		{ "bad_100mp_10000x10000.png", CLIP_ERR_TOO_LARGE, "10000 x 10000" },
		{ "bad_bomb_60000x60000.png", CLIP_ERR_TOO_LARGE, "60000 x 60000" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		clip_image img = { .width = 7, .height = 7, .rgb = (unsigned char *)&img };
		clip_error err = { 0 };
		int rc = decode_file(cases[i].name, DEFAULT_MAX_PIXELS, &img, &err);
		printf("  %-28s %-24s %s\n", cases[i].name, clip_status_name(rc), err.msg);
		CHECK_EQ_INT(rc, cases[i].code);
		CHECK_EQ_INT(err.code, cases[i].code);
		CHECK(err.msg[0] != '\0');
		CHECK_CONTAINS(err.msg, cases[i].says);
		CHECK(img.rgb == NULL && img.width == 0 && img.height == 0);
		clip_image_free(&img);
	}
}

/*
 * The over-limit images are refused from the header: no decoding (which
 * would take seconds and 300 MB for the 100-megapixel one) and no growth of
 * the process's peak memory.
 */
static void test_too_large_refused_from_header(void)
{
	static const char *names[] = { "bad_100mp_10000x10000.png", "bad_bomb_60000x60000.png" };
	for (size_t i = 0; i < 2; i++) {
		size_t len = 0;
		unsigned char *buf = read_fixture("images", names[i], &len);
		REQUIRE(buf);
		/* stb_image's (thread-local) failure reason as a witness: set
		 * it here; had stb_image been called on these bytes, it would
		 * have changed it (60000 x 60000) or spent seconds and 300 MB
		 * decoding (10000 x 10000). */
		int x, y, n;
		CHECK(stbi_load_from_memory((const unsigned char *)"GIF89a", 6, &x, &y, &n, 3) == NULL);
		const char *witness = stbi_failure_reason();
		struct rusage before, after;
		getrusage(RUSAGE_SELF, &before);
		clip_image img;
		clip_error err = { 0 };
		double t0 = now_s();
		int rc = clip_image_decode(buf, len, DEFAULT_MAX_PIXELS, &img, &err);
		double dt = now_s() - t0;
		getrusage(RUSAGE_SELF, &after);
		CHECK_EQ_INT(rc, CLIP_ERR_TOO_LARGE);
		CHECK(stbi_failure_reason() == witness);
		CHECK(dt < 0.05);
		CHECK(after.ru_maxrss - before.ru_maxrss < 16 * 1024);  /* KiB */
		CHECK_CONTAINS(err.msg, "over the limit");
		free(buf);
	}
	/* The limit is the caller's: a small one refuses a small image. */
	clip_image img;
	clip_error err = { 0 };
	CHECK_EQ_INT(decode_file("astronaut.png", 512 * 512 - 1, &img, &err), CLIP_ERR_TOO_LARGE);
	CHECK_EQ_INT(decode_file("astronaut.png", 512 * 512, &img, &err), 0);
	clip_image_free(&img);
}

static void test_other_refusals(void)
{
	clip_image img;
	clip_error err = { 0 };

	/* headers of accepted formats cut short: the decoder's own reason */
	const char webp[] = "RIFF\x24\0\0\0WEBPVP8 \x18\0\0\0";
	CHECK_EQ_INT(clip_image_decode(webp, sizeof webp - 1, DEFAULT_MAX_PIXELS, &img, &err),
		     CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "WebP");
	const char heic[] = "\0\0\0\x18" "ftypheic\0\0\0\0mif1heic";
	CHECK_EQ_INT(clip_image_decode(heic, sizeof heic - 1, DEFAULT_MAX_PIXELS, &img, &err),
		     CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "HEIC");
	/* well-known formats still refused get named, with the accepted list */
	const char jxl[] = "\xff\x0a\xfa\x7f\x01\x90";
	CHECK_EQ_INT(clip_image_decode(jxl, sizeof jxl - 1, DEFAULT_MAX_PIXELS, &img, &err),
		     CLIP_ERR_UNSUPPORTED);
	CHECK_CONTAINS(err.msg, "JPEG XL");
	CHECK_CONTAINS(err.msg, "JPEG, PNG, GIF, BMP, WebP, HEIC, AVIF or TIFF");

	/* a BMP whose pixel array is cut short (stb_image would pad it black) */
	size_t len = 0;
	unsigned char *bmp = read_fixture("images", "small_50x40.bmp", &len);
	REQUIRE(bmp);
	CHECK_EQ_INT(clip_image_decode(bmp, len - 100, DEFAULT_MAX_PIXELS, &img, &err),
		     CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "truncated BMP");
	/* RLE compression stated for 24-bit pixels (RLE8 needs 8 bits, RLE4 4) */
	REQUIRE(len > 34 && bmp[14] == 40);
	for (int c = 1; c <= 2; c++) {
		bmp[30] = (unsigned char)c;  /* biCompression: BI_RLE8, BI_RLE4 */
		CHECK_EQ_INT(clip_image_decode(bmp, len, DEFAULT_MAX_PIXELS, &img, &err),
			     CLIP_ERR_UNDECODABLE);
		CHECK_CONTAINS(err.msg, c == 1 ? "RLE8 with 24 bits a pixel" : "RLE4 with 24 bits a pixel");
	}
	free(bmp);

	/* a GIF cut inside its first frame (stb_image would pad it black) */
	unsigned char *gif89 = read_fixture("images", "no_time_for_that_tiny.gif", &len);
	REQUIRE(gif89);
	CHECK_EQ_INT(clip_image_decode(gif89, 900, DEFAULT_MAX_PIXELS, &img, &err),
		     CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "truncated GIF");
	CHECK_EQ_INT(clip_image_decode(gif89, 1200, DEFAULT_MAX_PIXELS, &img, &err), 0);
	clip_image_free(&img);  /* the first frame is whole: later frames are not needed */
	free(gif89);

	/* a JPEG cut inside its image data */
	unsigned char *jpg = read_fixture("images", "noise_211x97.jpg", &len);
	REQUIRE(jpg);
	CHECK_EQ_INT(clip_image_decode(jpg, len - 10, DEFAULT_MAX_PIXELS, &img, &err),
		     CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "JPEG");
	free(jpg);

	/* a Huffman table stating more than 256 codes: Debian's stb_image 2.27
	 * would write past its tables (UBSan reports it in the second CI run) */
	jpg = read_fixture("images", "noise_211x97.jpg", &len);
	REQUIRE(jpg);
	size_t dht = 0;
	for (size_t i = 2; i + 4 < len && !dht; i++)
		if (jpg[i] == 0xff && jpg[i + 1] == 0xc4)
			dht = i;
	REQUIRE(dht);
	jpg[dht + 5] = 200;  /* the first two of the first table's 16 counts */
	jpg[dht + 6] = 200;
	CHECK_EQ_INT(clip_image_decode(jpg, len, DEFAULT_MAX_PIXELS, &img, &err),
		     CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "Huffman table");
	free(jpg);

	/* a truncated PNG */
	unsigned char *png = read_fixture("images", "gradient_640x360.png", &len);
	REQUIRE(png);
	CHECK_EQ_INT(clip_image_decode(png, len / 2, DEFAULT_MAX_PIXELS, &img, &err),
		     CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "PNG");
	CHECK_EQ_INT(clip_image_decode(png, 20, DEFAULT_MAX_PIXELS, &img, &err),
		     CLIP_ERR_UNDECODABLE);
	free(png);

	/* zero width */
	unsigned char gif[] = "GIF89a\0\0\x05\0\0\0\0;";
	CHECK_EQ_INT(clip_image_decode(gif, sizeof gif - 1, DEFAULT_MAX_PIXELS, &img, &err),
		     CLIP_ERR_EMPTY);

	/* misuse */
	CHECK_EQ_INT(clip_image_decode(gif, sizeof gif - 1, DEFAULT_MAX_PIXELS, NULL, &err),
		     CLIP_ERR_INVALID);
	CHECK_EQ_INT(clip_image_decode(NULL, 0, DEFAULT_MAX_PIXELS, &img, &err), CLIP_ERR_EMPTY);
	CHECK_EQ_INT(clip_image_decode(NULL, 5, DEFAULT_MAX_PIXELS, &img, &err), CLIP_ERR_INVALID);
	CHECK_EQ_INT(clip_image_decode("\xff\xd8\xff", 3, DEFAULT_MAX_PIXELS, &img, NULL),
		     CLIP_ERR_UNDECODABLE);  /* a NULL error struct is allowed */
	clip_image_free(NULL);
}

/* ---- pixel conversions ----------------------------------------------- */

/* ---- RLE-compressed BMPs ----------------------------------------------- */

#define RLE_MAX 512

/* A BMP of w x h (h < 0: top-down rows) whose pixel data is the RLE
 * stream s, with a palette of `colors` entries (index c: red 10 c, green
 * 255 - c, blue 3 c); its size. */
static size_t rle_bmp(unsigned char *out, int w, int h, int rle4, int colors, const unsigned char *s, size_t n)
{
	size_t off = 14 + 40 + 4 * (size_t)colors, len = off + n;
	memset(out, 0, off);
	memcpy(out, "BM", 2);
	const uint32_t fields[][2] = { { 2, (uint32_t)len }, { 10, (uint32_t)off }, { 14, 40 }, { 18, (uint32_t)w },
				       { 22, (uint32_t)h }, { 30, rle4 ? 2u : 1u }, { 34, (uint32_t)n },
				       { 46, (uint32_t)colors } };
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		for (int b = 0; b < 4; b++)
			out[fields[i][0] + (size_t)b] = (unsigned char)(fields[i][1] >> (8 * b));
	out[26] = 1;                              /* planes */
	out[28] = rle4 ? 4 : 8;                   /* bits a pixel */
	for (int c = 0; c < colors; c++) {
		unsigned char *e = out + 54 + 4 * c;  /* blue, green, red, 0 */
		e[0] = (unsigned char)(3 * c);
		e[1] = (unsigned char)(255 - c);
		e[2] = (unsigned char)(10 * c);
	}
	memcpy(out + off, s, n);
	return len;
}

/* Decodes the stream and checks every pixel against want, w x |h| palette
 * indices in the picture's own order (top row first). */
static void check_rle(const char *what, int w, int h, int rle4, const unsigned char *s, size_t n, const int *want)
{
	unsigned char buf[RLE_MAX];
	size_t len = rle_bmp(buf, w, h, rle4, 16, s, n);
	clip_image img = { 0 };
	clip_error err = { 0 };
	int rc = clip_image_decode(buf, len, DEFAULT_MAX_PIXELS, &img, &err);
	if (rc) {
		HARNESS_FAIL("%s: %s", what, err.msg);
		return;
	}
	int ah = h < 0 ? -h : h, bad = 0;
	CHECK_EQ_INT(img.width, w);
	CHECK_EQ_INT(img.height, ah);
	for (int i = 0; i < w * ah && !bad && img.width == w && img.height == ah; i++) {
		const unsigned char *px = img.rgb + 3 * i;
		int c = want[i];
		if (px[0] != 10 * c || px[1] != 255 - c || px[2] != 3 * c) {
			HARNESS_FAIL("%s: pixel %d (row %d, column %d) is %d %d %d, expected index %d", what, i, i / w,
				     i % w, px[0], px[1], px[2], c);
			bad = 1;
		}
	}
	clip_image_free(&img);
}

/* The format's every part, on streams whose pixels are known: runs that
 * stop at their row's end, literal runs (padded to 16 bits) that go on
 * into the next row, end of line, the move, end of bitmap before the last
 * row, RLE4's alternating runs and odd literal runs, top-down rows; and
 * the refusals. */
static void test_rle_bmp(void)
{
	/* RLE8, 5 x 3, rows bottom up: a run of 3; 3 literals, the third in
	 * the next row (x is then 6, past the row); a run that finds no room
	 * there; end of line; a move 1 right; a run of 1; end of bitmap */
	static const unsigned char s8[] = { 3, 7, 0, 3, 1, 2, 9, 0, 4, 4, 0, 0, 0, 2, 1, 0, 1, 5, 0, 1 };
	static const int w8[] = { 0, 5, 0, 0, 0,   /* top: the third row of the file */
				  9, 0, 0, 0, 0,
				  7, 7, 7, 1, 2 };
	check_rle("RLE8", 5, 3, 0, s8, sizeof s8, w8);
	/* the same rows top-down (a negative height) */
	static const int w8t[] = { 7, 7, 7, 1, 2, 9, 0, 0, 0, 0, 0, 5, 0, 0, 0 };
	check_rle("RLE8 top-down", 5, -3, 0, s8, sizeof s8, w8t);
	/* a move 2 right and 1 down, from row 0, column 1 */
	static const unsigned char sm[] = { 1, 3, 0, 2, 2, 1, 2, 4, 0, 1 };
	static const int wm[] = { 0, 0, 0, 4, 4, 3, 0, 0, 0, 0 };
	check_rle("RLE8 move", 5, 2, 0, sm, sizeof sm, wm);
	/* RLE4, 7 x 2: a run of 7 alternating 1 and 2; end of line; 5
	 * literals (3 bytes and a pad byte); a run of 2 */
	static const unsigned char s4[] = { 7, 0x12, 0, 0, 0, 5, 0x34, 0x5a, 0xb0, 0, 2, 0x66, 0, 1 };
	static const int w4[] = { 3, 4, 5, 10, 11, 6, 6, 1, 2, 1, 2, 1, 2, 1 };
	check_rle("RLE4", 7, 2, 1, s4, sizeof s4, w4);
	/* a run longer than the row stops at its end, and the next one finds
	 * no room before an end of line: nothing spills into the next row */
	static const unsigned char sl[] = { 9, 3, 2, 4, 0, 0, 2, 5, 0, 1 };
	static const int wl[] = { 5, 5, 0, 3, 3, 3 };
	check_rle("RLE8 long run", 3, 2, 0, sl, sizeof sl, wl);
	/* a move past the last row: the rest stays index 0 */
	static const unsigned char sp[] = { 2, 1, 0, 2, 0, 200 };
	static const int wp[] = { 0, 0, 1, 1 };
	check_rle("RLE8 move past the end", 2, 2, 0, sp, sizeof sp, wp);

	unsigned char buf[RLE_MAX];
	clip_image img = { 0 };
	clip_error err = { 0 };
	/* data that ends before the last row without an end of bitmap */
	size_t len = rle_bmp(buf, 5, 3, 0, 16, s8, 9);
	CHECK_EQ_INT(clip_image_decode(buf, len, DEFAULT_MAX_PIXELS, &img, &err), CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "truncated BMP: its RLE data ends in row 2 of 3");
	/* a literal run longer than the data left */
	static const unsigned char st[] = { 0, 9, 1, 2, 3 };
	len = rle_bmp(buf, 5, 3, 0, 16, st, sizeof st);
	CHECK_EQ_INT(clip_image_decode(buf, len, DEFAULT_MAX_PIXELS, &img, &err), CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "truncated BMP");
	/* RLE4 stated with 8 bits a pixel */
	len = rle_bmp(buf, 5, 3, 1, 16, s8, sizeof s8);
	buf[28] = 8;
	CHECK_EQ_INT(clip_image_decode(buf, len, DEFAULT_MAX_PIXELS, &img, &err), CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "RLE4 with 8 bits a pixel");
	/* a palette of 70000 colours, and one past the end of the file */
	len = rle_bmp(buf, 5, 3, 0, 16, s8, sizeof s8);
	buf[46] = 0x70, buf[47] = 0x11, buf[48] = 0x01;  /* 70000 */
	CHECK_EQ_INT(clip_image_decode(buf, len, DEFAULT_MAX_PIXELS, &img, &err), CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "a palette of 70000 colours");
	buf[46] = 0, buf[47] = 1, buf[48] = 0;           /* 256, of which 16 are there */
	CHECK_EQ_INT(clip_image_decode(buf, len, DEFAULT_MAX_PIXELS, &img, &err), CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "palette is cut short");
	/* more pixels than allowed: refused from the header */
	len = rle_bmp(buf, 5000, 5000, 0, 16, s8, sizeof s8);
	CHECK_EQ_INT(clip_image_decode(buf, len, 1000000, &img, &err), CLIP_ERR_TOO_LARGE);
}

static void test_conversions(void)
{
	clip_image img;
	clip_error err = { 0 };
	size_t len = 0;

	/* grey + alpha: grey replicated, alpha dropped (not composited) */
	REQUIRE(decode_file("gray_alpha_100x150.png", DEFAULT_MAX_PIXELS, &img, &err) == 0);
	CHECK_EQ_INT(img.width, 100);
	CHECK_EQ_INT(img.height, 150);
	unsigned char *buf = read_fixture("images", "gray_alpha_100x150.png", &len);
	REQUIRE(buf);
	int x, y, n;
	unsigned char *ga = stbi_load_from_memory(buf, (int)len, &x, &y, &n, 2);
	REQUIRE(ga);
	int grey_ok = 1, translucent = 0;
	for (int i = 0; i < 100 * 150; i++) {
		const unsigned char *p = img.rgb + 3 * i;
		grey_ok &= p[0] == ga[2 * i] && p[1] == ga[2 * i] && p[2] == ga[2 * i];
		translucent += ga[2 * i + 1] < 255;
	}
	CHECK(grey_ok);
	CHECK(translucent > 0);  /* the fixture does exercise alpha */
	stbi_image_free(ga);
	free(buf);
	clip_image_free(&img);

	/* RGBA: the colour channels as stored */
	REQUIRE(decode_file("rgba_256x256.png", DEFAULT_MAX_PIXELS, &img, &err) == 0);
	buf = read_fixture("images", "rgba_256x256.png", &len);
	REQUIRE(buf);
	unsigned char *rgba = stbi_load_from_memory(buf, (int)len, &x, &y, &n, 4);
	REQUIRE(rgba);
	int same = 1;
	for (int i = 0; i < 256 * 256; i++)
		same &= !memcmp(img.rgb + 3 * i, rgba + 4 * i, 3);
	CHECK(same);
	stbi_image_free(rgba);
	free(buf);
	clip_image_free(&img);

	/* animated GIF: the first frame */
	REQUIRE(decode_file("no_time_for_that_tiny.gif", DEFAULT_MAX_PIXELS, &img, &err) == 0);
	buf = read_fixture("images", "no_time_for_that_tiny.gif", &len);
	REQUIRE(buf);
	int *delays = NULL, frames = 0;
	unsigned char *all = stbi_load_gif_from_memory(buf, (int)len, &delays, &x, &y, &frames, &n, 3);
	REQUIRE(all);
	CHECK(frames > 1);
	CHECK_EQ_INT(x, img.width);
	CHECK_EQ_INT(y, img.height);
	CHECK(!memcmp(all, img.rgb, (size_t)x * y * 3));
	if (frames > 1)  /* and the frames do differ, so this says something */
		CHECK(memcmp(all, all + (size_t)x * y * 3, (size_t)x * y * 3) != 0);
	stbi_image_free(all);
	stbi_image_free(delays);
	free(buf);
	clip_image_free(&img);
}

/* A PNG built by hand (stored deflate blocks), for what the fixtures lack. */
static uint32_t crc32_of(const unsigned char *p, size_t n, uint32_t crc)
{
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
	}
	return ~crc;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

static size_t put_chunk(unsigned char *out, const char *type, const unsigned char *data, uint32_t n)
{
	put32(out, n);
	memcpy(out + 4, type, 4);
	if (n)
		memcpy(out + 8, data, n);
	put32(out + 8 + n, crc32_of(out + 4, 4 + n, 0));
	return 12 + n;
}

/* raw: the filtered scanlines (filter byte per row), at most 65535 bytes */
static size_t make_png(unsigned char *out, uint32_t w, uint32_t h, int depth, int ctype,
		       const unsigned char *raw, uint32_t raw_len)
{
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a };
	unsigned char ihdr[13] = { 0 }, z[65536 + 16];
	size_t pos = 8;
	memcpy(out, sig, 8);
	put32(ihdr, w);
	put32(ihdr + 4, h);
	ihdr[8] = (unsigned char)depth;
	ihdr[9] = (unsigned char)ctype;
	pos += put_chunk(out + pos, "IHDR", ihdr, 13);
	size_t zn = 0;
	z[zn++] = 0x78;
	z[zn++] = 0x01;
	z[zn++] = 0x01;  /* final stored block */
	z[zn++] = raw_len & 0xff;
	z[zn++] = raw_len >> 8;
	z[zn++] = ~raw_len & 0xff;
	z[zn++] = (~raw_len >> 8) & 0xff;
	memcpy(z + zn, raw, raw_len);
	zn += raw_len;
	uint32_t a = 1, b = 0;
	for (uint32_t i = 0; i < raw_len; i++) {
		a = (a + raw[i]) % 65521;
		b = (b + a) % 65521;
	}
	put32(z + zn, b << 16 | a);
	zn += 4;
	pos += put_chunk(out + pos, "IDAT", z, (uint32_t)zn);
	pos += put_chunk(out + pos, "IEND", NULL, 0);
	return pos;
}

/* LSB-first bit writer for a hand-made deflate stream */
struct bits {
	unsigned char *p;
	size_t n, cap;
	uint32_t acc;
	int used;
};

static void put_bits(struct bits *b, uint32_t v, int count)
{
	for (int i = 0; i < count; i++) {
		b->acc |= ((v >> i) & 1u) << b->used;
		if (++b->used == 8) {
			if (b->n < b->cap)
				b->p[b->n++] = (unsigned char)b->acc;
			b->acc = 0;
			b->used = 0;
		}
	}
}

/* fixed-Huffman codes are sent most significant bit first */
static void put_code(struct bits *b, uint32_t code, int count)
{
	for (int i = count - 1; i >= 0; i--)
		put_bits(b, (code >> i) & 1u, 1);
}

/*
 * A PNG stating 1 x 1 pixel whose zlib stream inflates to `inflated` zero
 * bytes: one literal, copies of 258 bytes at distance 1 (13 bits each with
 * the fixed codes: 1 MB of output per 6 KB of stream), literals for the rest.
 */
static unsigned char *make_zlib_bomb(uint32_t inflated, size_t *out_len)
{
	size_t copies = (inflated - 1) / 258;
	size_t zcap = 16 + copies * 2 + 258;
	unsigned char *z = malloc(zcap);
	struct bits b = { z, 0, zcap, 0, 0 };
	put_bits(&b, 0x78, 8);
	put_bits(&b, 0x01, 8);
	put_bits(&b, 1, 1);              /* final block */
	put_bits(&b, 1, 2);              /* fixed Huffman codes */
	put_code(&b, 0x30, 8);           /* literal 0 */
	for (size_t i = 0; i < copies; i++) {
		put_code(&b, 0xc5, 8);   /* length 258 (code 285) */
		put_code(&b, 0, 5);      /* distance 1 */
	}
	for (size_t i = 1 + copies * 258; i < inflated; i++)
		put_code(&b, 0x30, 8);   /* the rest as literals */
	put_code(&b, 0, 7);              /* end of block (code 256) */
	if (b.used)
		put_bits(&b, 0, 8 - b.used);
	uint32_t total = inflated;
	uint32_t adler = (total % 65521) << 16 | 1;  /* zeros: a = 1, b = n */
	unsigned char tail[4];
	put32(tail, adler);
	for (int i = 0; i < 4; i++)
		put_bits(&b, tail[i], 8);

	unsigned char *png = malloc(b.n + 128);
	static const unsigned char sig[8] = { 0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a };
	unsigned char ihdr[13] = { 0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0 };
	size_t pos = 8;
	memcpy(png, sig, 8);
	pos += put_chunk(png + pos, "IHDR", ihdr, 13);
	pos += put_chunk(png + pos, "IDAT", z, (uint32_t)b.n);
	pos += put_chunk(png + pos, "IEND", NULL, 0);
	free(z);
	*out_len = pos;
	return png;
}

static void test_decompression_bomb(void)
{
	/* 128 KB of PNG stating 1 x 1 that inflates to 20 MB: stb_image
	 * alone would allocate and fill all of it. */
	size_t len = 0;
	unsigned char *png = make_zlib_bomb(20u << 20, &len);
	REQUIRE(png);
	CHECK(len < 200 * 1024);
	struct rusage before, after;
	getrusage(RUSAGE_SELF, &before);
	clip_image img;
	clip_error err = { 0 };
	int rc = clip_image_decode(png, len, DEFAULT_MAX_PIXELS, &img, &err);
	getrusage(RUSAGE_SELF, &after);
	CHECK_EQ_INT(rc, CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "decompression bomb");
	CHECK(after.ru_maxrss - before.ru_maxrss < 8 * 1024);  /* KiB */
	free(png);

	/* the same stream at its honest size decodes: 1 x 1 RGB is a filter
	 * byte and 3 zeros */
	png = make_zlib_bomb(4, &len);
	REQUIRE(png);
	rc = clip_image_decode(png, len, DEFAULT_MAX_PIXELS, &img, &err);
	if (rc)
		fprintf(stderr, "  %s\n", err.msg);
	CHECK_EQ_INT(rc, 0);
	CHECK(img.width == 1 && img.height == 1 && img.rgb && !img.rgb[0] && !img.rgb[2]);
	clip_image_free(&img);
	free(png);
}

/* An empty IDAT chunk (valid, and read by Pillow) before the image data:
 * the same pixels as without it. stb_image alone would add 0 to its NULL
 * buffer for it, which the sanitizers stop at (the fuzzer found it). And
 * a reason stb_image gives quoting the file's bytes stays printable. */
static void test_png_odd_chunks(void)
{
	size_t len = 0;
	unsigned char *png = read_fixture("images", "gradient_640x360.png", &len);
	REQUIRE(png);
	size_t at = 8;
	while (at + 8 <= len && memcmp(png + at + 4, "IDAT", 4))
		at += 12 + ((size_t)png[at] << 24 | (size_t)png[at + 1] << 16 | (size_t)png[at + 2] << 8 | png[at + 3]);
	REQUIRE(at + 8 <= len);
	static const unsigned char empty[12] = { 0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xaf, 0x06, 0x1e };
	unsigned char *with = malloc(len + sizeof empty);
	REQUIRE(with);
	memcpy(with, png, at);
	memcpy(with + at, empty, sizeof empty);
	memcpy(with + at + sizeof empty, png + at, len - at);
	clip_image a = { 0 }, b = { 0 };
	clip_error err = { 0 };
	CHECK_EQ_INT(clip_image_decode(png, len, DEFAULT_MAX_PIXELS, &a, &err), 0);
	CHECK_EQ_INT(clip_image_decode(with, len + sizeof empty, DEFAULT_MAX_PIXELS, &b, &err), 0);
	CHECK(a.rgb && b.rgb && a.width == b.width && a.height == b.height &&
	      !memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3));
	clip_image_free(&a);
	clip_image_free(&b);
	/* the same place holding an unknown critical chunk named with bytes
	 * past ASCII: refused, the name's bytes shown as '?' */
	memcpy(with + at + 4, "A\xe9\xe8T", 4);
	CHECK_EQ_INT(clip_image_decode(with, len + sizeof empty, DEFAULT_MAX_PIXELS, &b, &err), CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "A??T");
	for (const char *c = err.msg; *c; c++)
		CHECK((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
	free(with);

	/* no IEND after the last IDAT (Pillow reads such a file): the same
	 * pixels; cut at the end of a chunk inside the zlib stream, refused */
	REQUIRE(len > 12 && !memcmp(png + len - 8, "IEND", 4));
	CHECK_EQ_INT(clip_image_decode(png, len, DEFAULT_MAX_PIXELS, &a, &err), 0);
	CHECK_EQ_INT(clip_image_decode(png, len - 12, DEFAULT_MAX_PIXELS, &b, &err), 0);
	CHECK(a.rgb && b.rgb && a.width == b.width && a.height == b.height &&
	      !memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3));
	clip_image_free(&a);
	clip_image_free(&b);
	size_t idat_len = (size_t)png[at] << 24 | (size_t)png[at + 1] << 16 | (size_t)png[at + 2] << 8 | png[at + 3];
	REQUIRE(idat_len > 64 && at + 12 + idat_len <= len);
	unsigned char *cut = malloc(len);
	REQUIRE(cut);
	size_t keep = idat_len / 2;
	memcpy(cut, png, at);
	cut[at] = (unsigned char)(keep >> 24);
	cut[at + 1] = (unsigned char)(keep >> 16);
	cut[at + 2] = (unsigned char)(keep >> 8);
	cut[at + 3] = (unsigned char)keep;
	memcpy(cut + at + 4, png + at + 4, 4 + keep);
	memset(cut + at + 8 + keep, 0, 4);  /* the CRC: stb_image does not check it */
	CHECK_EQ_INT(clip_image_decode(cut, at + 12 + keep, DEFAULT_MAX_PIXELS, &b, &err),
		     CLIP_ERR_UNDECODABLE);
	/* and data ending inside a chunk is still truncated */
	CHECK_EQ_INT(clip_image_decode(png, len - 13, DEFAULT_MAX_PIXELS, &b, &err), CLIP_ERR_UNDECODABLE);
	CHECK_CONTAINS(err.msg, "truncated PNG");
	free(cut);
	free(png);
}

static void test_sixteen_bit_png(void)
{
	/* 16-bit grey, 2 x 1: stb_image keeps the high byte (an accepted
	 * difference from PIL, which clips 16-bit grey to 255). */
	static const unsigned char raw[] = { 0, 0x12, 0x34, 0xab, 0xcd };
	unsigned char png[256];
	size_t n = make_png(png, 2, 1, 16, 0, raw, sizeof raw);
	clip_image img;
	clip_error err = { 0 };
	int rc = clip_image_decode(png, n, DEFAULT_MAX_PIXELS, &img, &err);
	if (rc)
		fprintf(stderr, "  %s\n", err.msg);
	REQUIRE(rc == 0);
	CHECK_EQ_INT(img.width, 2);
	CHECK_EQ_INT(img.height, 1);
	static const unsigned char want[] = { 0x12, 0x12, 0x12, 0xab, 0xab, 0xab };
	CHECK(!memcmp(img.rgb, want, sizeof want));
	clip_image_free(&img);

	/* 16-bit RGBA, 1 x 1 */
	static const unsigned char raw2[] = { 0, 0xfe, 1, 0x80, 2, 0x01, 3, 0x00, 0x00 };
	n = make_png(png, 1, 1, 16, 6, raw2, sizeof raw2);
	REQUIRE(clip_image_decode(png, n, DEFAULT_MAX_PIXELS, &img, &err) == 0);
	CHECK(img.rgb[0] == 0xfe && img.rgb[1] == 0x80 && img.rgb[2] == 0x01);
	clip_image_free(&img);

	/* the same header with a zero height is empty */
	n = make_png(png, 1, 0, 8, 0, raw, 0);
	CHECK_EQ_INT(clip_image_decode(png, n, DEFAULT_MAX_PIXELS, &img, &err), CLIP_ERR_EMPTY);
}

/* ---- the crop against the reference ----------------------------------- */

struct crop_stats {
	int max_diff;
	double mean_diff, identical;
};

/* Crop images/NAME at 224 and compare with crops/STEM.png. */
static int compare_crop(const char *name, struct crop_stats *st)
{
	char stem[256], crop_name[300];
	snprintf(stem, sizeof stem, "%s", name);
	char *dot = strrchr(stem, '.');
	if (dot)
		*dot = '\0';
	snprintf(crop_name, sizeof crop_name, "%s.png", stem);

	size_t len = 0;
	unsigned char *buf = read_fixture("crops", crop_name, &len);
	if (!buf)
		return 1;  /* no reference crop: nothing to compare */
	int x, y, n;
	unsigned char *want = stbi_load_from_memory(buf, (int)len, &x, &y, &n, 3);
	free(buf);
	if (!want || x != 224 || y != 224) {
		fprintf(stderr, "  %s: cannot read the reference crop\n", crop_name);
		stbi_image_free(want);
		return -1;
	}

	clip_image img;
	clip_error err = { 0 };
	int rc = decode_file(name, DEFAULT_MAX_PIXELS, &img, &err);
	unsigned char got[224 * 224 * 3];
	if (!rc)
		rc = clip_image_crop(&img, 224, got, sizeof got, &err);
	clip_image_free(&img);
	if (rc) {
		fprintf(stderr, "  %s: %s\n", name, err.msg);
		stbi_image_free(want);
		return -1;
	}
	long same = 0, sum = 0;
	int worst = 0;
	for (size_t i = 0; i < sizeof got; i++) {
		int d = abs((int)got[i] - (int)want[i]);
		same += d == 0;
		sum += d;
		if (d > worst)
			worst = d;
	}
	stbi_image_free(want);
	st->max_diff = worst;
	st->mean_diff = (double)sum / sizeof got;
	st->identical = (double)same / sizeof got;
	return 0;
}

static int is_jpeg_name(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static void test_crops_match_reference(void)
{
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/images", TEST_DATA_DIR);
	DIR *d = opendir(dir);
	REQUIRE(d);
	int lossless = 0, jpeg = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || !strncmp(e->d_name, "bad_", 4))
			continue;
		struct crop_stats st;
		int rc = compare_crop(e->d_name, &st);
		if (rc > 0)
			continue;
		CHECK_EQ_INT(rc, 0);
		if (rc)
			continue;
		int lossy = is_jpeg_name(e->d_name);
		printf("  %-28s max diff %2d, mean diff %.4f, %6.2f%% identical%s\n", e->d_name,
		       st.max_diff, st.mean_diff, 100 * st.identical, lossy ? " (JPEG)" : "");
		if (lossy) {
			/* libjpeg-turbo with its default choices, as Pillow
			 * decodes: the same pixels, so the same crop */
			CHECK_EQ_INT(st.max_diff, 0);
			jpeg++;
		} else {
			CHECK(st.max_diff <= 1);
			CHECK(st.identical >= 0.99);
			lossless++;
		}
	}
	closedir(d);
	CHECK(lossless >= 10);
	CHECK(jpeg >= 3);
}

/* ---- crop geometry ---------------------------------------------------- */

static unsigned char *pattern(int w, int h)
{
	unsigned char *p = malloc((size_t)w * h * 3);
	uint32_t s = 12345;
	for (size_t i = 0; i < (size_t)w * h * 3; i++) {
		s = s * 1103515245u + 12345u;
		p[i] = (unsigned char)(s >> 16);
	}
	return p;
}

static void test_crop_offsets_round_half_even(void)
{
	/* The short side already 224: no resize, only the crop. The offset
	 * int(round(d / 2.0)) rounds halves to even: d = 1 -> 0, d = 3 -> 2,
	 * d = 5 -> 2, d = 7 -> 4, d = 4 -> 2. */
	static const struct { int extra, offset; } cases[] = {
		{ 1, 0 }, { 3, 2 }, { 5, 2 }, { 7, 4 }, { 4, 2 }, { 0, 0 },
	};
	static unsigned char out[224 * 224 * 3];
	clip_error err = { 0 };
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		for (int vertical = 0; vertical < 2; vertical++) {
			int w = 224 + (vertical ? 0 : cases[c].extra), h = 224 + (vertical ? cases[c].extra : 0);
			clip_image img = { .width = w, .height = h, .rgb = pattern(w, h) };
			REQUIRE(img.rgb);
			REQUIRE(clip_image_crop(&img, 224, out, sizeof out, &err) == 0);
			int ok = 1;
			for (int y = 0; y < 224; y++) {
				int sy = y + (vertical ? cases[c].offset : 0);
				int sx = vertical ? 0 : cases[c].offset;
				ok &= !memcmp(out + (size_t)y * 224 * 3,
					      img.rgb + ((size_t)sy * w + sx) * 3, 224 * 3);
			}
			if (!ok)
				fprintf(stderr, "  %d x %d: wrong crop offset\n", w, h);
			CHECK(ok);
			clip_image_free(&img);
		}
	}
}

static void test_crop_resize_properties(void)
{
	static unsigned char out[224 * 224 * 3];
	clip_error err = { 0 };

	/* A flat image stays flat through up- and downscaling (the weights
	 * are normalised, fixed-point rounding included). */
	static const int sizes[][2] = { { 1, 1 }, { 3, 7 }, { 1000, 300 }, { 97, 2000 }, { 225, 224 } };
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		int w = sizes[s][0], h = sizes[s][1];
		clip_image img = { .width = w, .height = h, .rgb = malloc((size_t)w * h * 3) };
		REQUIRE(img.rgb);
		for (size_t i = 0; i < (size_t)w * h; i++) {
			img.rgb[3 * i] = 200;
			img.rgb[3 * i + 1] = 17;
			img.rgb[3 * i + 2] = 255;
		}
		REQUIRE(clip_image_crop(&img, 224, out, sizeof out, &err) == 0);
		int flat = 1;
		for (size_t i = 0; i < 224 * 224; i++)
			flat &= out[3 * i] == 200 && out[3 * i + 1] == 17 && out[3 * i + 2] == 255;
		CHECK(flat);
		clip_image_free(&img);
	}

	/* A sharp vertical edge, halved: 448 x 448 with columns 224.. white.
	 * Worked from Pillow's formulas (support 4, centre 2i + 1): output
	 * column 111 gets 255 * (f(.75) + f(1.25) + f(1.75)) / 2 = 16.9 -> 17,
	 * column 112 the mirror 238; the bicubic lobes undershoot at 110 and
	 * overshoot at 113, which the clamp keeps at 0 and 255. */
	clip_image edge = { .width = 448, .height = 448, .rgb = calloc((size_t)448 * 448 * 3, 1) };
	REQUIRE(edge.rgb);
	for (int y = 0; y < 448; y++)
		memset(edge.rgb + ((size_t)y * 448 + 224) * 3, 255, 224 * 3);
	REQUIRE(clip_image_crop(&edge, 224, out, sizeof out, &err) == 0);
	/* left half 0, right half 255, the edge between columns 111 and 112 */
	CHECK_EQ_INT(out[0], 0);
	CHECK_EQ_INT(out[3 * 223], 255);
	CHECK_EQ_INT(out[3 * 110], 0);   /* the undershoot is clamped to 0 */
	CHECK_EQ_INT(out[3 * 113], 255); /* the overshoot is clamped to 255 */
	/* columns 111 and 112 straddle the edge symmetrically */
	CHECK_EQ_INT(out[3 * 111], 17);
	CHECK_EQ_INT(out[3 * 112], 238);
	clip_image_free(&edge);

	/* misuse */
	clip_image img = { .width = 4, .height = 4, .rgb = pattern(4, 4) };
	CHECK_EQ_INT(clip_image_crop(&img, 224, out, sizeof out - 1, &err), CLIP_ERR_INVALID);
	CHECK_EQ_INT(clip_image_crop(&img, 0, out, sizeof out, &err), CLIP_ERR_INVALID);
	CHECK_EQ_INT(clip_image_crop(NULL, 224, out, sizeof out, &err), CLIP_ERR_INVALID);
	CHECK_EQ_INT(clip_image_crop(&img, 224, NULL, sizeof out, &err), CLIP_ERR_INVALID);
	clip_image_free(&img);
}

/* ---- normalisation ---------------------------------------------------- */

static void test_normalize_known_pixels(void)
{
	static const float mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
	static const float std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };
	/* 2 x 2: (255, 0, 128), (0, 0, 0), (255, 255, 255), (1, 2, 3) */
	static const unsigned char rgb[12] = { 255, 0, 128, 0, 0, 0, 255, 255, 255, 1, 2, 3 };
	float out[12];
	clip_error err = { 0 };

	REQUIRE(clip_image_normalize(rgb, 2, mean, std, out, 12, &err) == 0);
	/* channels first: plane c holds pixel i at c * 4 + i */
	CHECK_NEAR(out[0], 1.9303361, 1e-6);      /* (1 - 0.48145466) / 0.26862954 */
	CHECK_NEAR(out[4], -1.7520971, 1e-6);     /* (0 - 0.4578275) / 0.26130258 */
	CHECK_NEAR(out[8], 0.33994877, 1e-6);      /* (128/255 - 0.40821073) / 0.27577711 */
	CHECK_NEAR(out[1], -1.7922626, 1e-6);     /* black, red channel */
	CHECK_NEAR(out[10], 2.145897, 1e-6);     /* white, blue channel */
	CHECK_NEAR(out[3], (1 / 255.0 - 0.48145466) / 0.26862954, 1e-6);
	CHECK_NEAR(out[7], (2 / 255.0 - 0.4578275) / 0.26130258, 1e-6);
	CHECK_NEAR(out[11], (3 / 255.0 - 0.40821073) / 0.27577711, 1e-6);
	/* exactly torchvision's float32 arithmetic */
	CHECK(out[8] == (128.0f / 255.0f - mean[2]) / std[2]);

	CHECK_EQ_INT(clip_image_normalize(rgb, 2, mean, std, out, 11, &err), CLIP_ERR_INVALID);
	static const float zero_std[3] = { 1, 0, 1 };
	CHECK_EQ_INT(clip_image_normalize(rgb, 2, mean, zero_std, out, 12, &err), CLIP_ERR_INVALID);
}

/* ---- fuzz ------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/*
 * Truncations and byte flips of the small fixtures, bounded in time: every
 * outcome must be a success with sane dimensions or a known error with a
 * message; ASan/UBSan (the second CI run) turn any memory error into a
 * failure.
 */
static void test_fuzz_truncations_and_flips(void)
{
	static const char *names[] = {
		"palette_color.png", "rgba_256x256.png", "gray_alpha_100x150.png",
		"small_50x40.bmp", "no_time_for_that_tiny.gif", "progressive_300x200.jpg",
		"noise_211x97.jpg", "gradient_640x360.png", "tiny_1x1.png", "wide_2000x50.png",
		"horse.png", "bad_truncated.jpg",
	};
	const size_t n_names = sizeof names / sizeof names[0];
	/* 3 seconds and 20000 inputs at most, whatever the build; longer runs
	 * and other seeds by hand: CLIPD_FUZZ_SECONDS=600 CLIPD_FUZZ_SEED=7 */
	const char *env_s = getenv("CLIPD_FUZZ_SECONDS"), *env_seed = getenv("CLIPD_FUZZ_SEED");
	const double budget = env_s ? atof(env_s) : 3.0;
	const long max_runs = env_s ? LONG_MAX : 20000;
	if (env_seed)
		rng_state ^= strtoull(env_seed, NULL, 10) * 0x2545f4914f6cdd1dull;
	struct rusage before, after;
	getrusage(RUSAGE_SELF, &before);
	double t0 = now_s();
	long runs = 0, decoded = 0, bad = 0;
	unsigned char small[32 * 32 * 3];

	while (now_s() - t0 < budget && runs < max_runs) {
		const char *name = names[rng() % n_names];
		size_t len = 0;
		unsigned char *buf = read_fixture("images", name, &len);
		REQUIRE(buf);
		size_t use = len;
		switch (rng() % 4) {
		case 0:  /* truncate */
			use = (size_t)(rng() % (len + 1));
			break;
		case 1: {  /* flip bytes, most of them in the header */
			int flips = 1 + (int)(rng() % 8);
			for (int f = 0; f < flips; f++) {
				size_t at = rng() % 2 ? rng() % (len < 128 ? len : 128) : rng() % len;
				buf[at] ^= (unsigned char)(1 + rng() % 255);
			}
			break;
		}
		case 2: {  /* header fields to boundary values */
			static const unsigned char interesting[] = { 0, 1, 0x7f, 0x80, 0xfe, 0xff };
			int sets = 1 + (int)(rng() % 4);
			for (int f = 0; f < sets; f++)
				buf[rng() % (len < 64 ? len : 64)] = interesting[rng() % sizeof interesting];
			break;
		}
		default:  /* both */
			buf[rng() % len] ^= (unsigned char)(1 + rng() % 255);
			use = (size_t)(rng() % (len + 1));
			break;
		}
		/* the bytes exactly as long as `use`, so ASan sees overreads */
		unsigned char *exact = malloc(use ? use : 1);
		REQUIRE(exact);
		memcpy(exact, buf, use);
		free(buf);

		clip_image img;
		clip_error err = { 0 };
		int rc = clip_image_decode(exact, use, 4u << 20, &img, &err);
		runs++;
		if (rc == 0) {
			decoded++;
			if (img.width <= 0 || img.height <= 0 || !img.rgb)
				bad++;
			else if (clip_image_crop(&img, 32, small, sizeof small, &err) != 0)
				bad++;
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
	CHECK(runs >= 100);
	getrusage(RUSAGE_SELF, &after);
	printf("  peak RSS grew by %ld KiB\n", after.ru_maxrss - before.ru_maxrss);
#ifndef __SANITIZE_ADDRESS__
	/* No input of at most 4 megapixels may cost more than a few of its
	 * decoded size (a corrupt length or a zlib bomb once cost 1.6 GB
	 * here). ASan's shadow memory and quarantine make the figure
	 * meaningless there. */
	CHECK(after.ru_maxrss - before.ru_maxrss < 256 * 1024);
#endif
}

int main(void)
{
	RUN(test_sniff_and_mime);
	RUN(test_probe_fixtures);
	RUN(test_bad_images);
	RUN(test_too_large_refused_from_header);
	RUN(test_other_refusals);
	RUN(test_rle_bmp);
	RUN(test_conversions);
	RUN(test_png_odd_chunks);
	RUN(test_sixteen_bit_png);
	RUN(test_decompression_bomb);
	RUN(test_crops_match_reference);
	RUN(test_crop_offsets_round_half_even);
	RUN(test_crop_resize_properties);
	RUN(test_normalize_known_pixels);
	RUN(test_fuzz_truncations_and_flips);
	return harness_done();
}
