/* The API's JSON helpers and thumbnails: RFC 3339 times, UTF-8 checks,
 * strict numbers, RFC 7396 merge patch, the image object, JPEG thumbnails. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clip.h"
#include "exif_fixture.h"
#include "harness.h"
#include "http_errors.h"
#include "srv_jpeg.h"
#include "srv_json.h"
#include "srv_thumb.h"

static void test_times(void)
{
	char buf[SRV_TIME_MAX];
	srv_time_format(0, buf);
	CHECK_EQ_STR(buf, "1970-01-01T00:00:00.000000Z");
	srv_time_format(1714564800123456LL, buf);
	CHECK_EQ_STR(buf, "2024-05-01T12:00:00.123456Z");
	srv_time_format(-1, buf);
	CHECK_EQ_STR(buf, "1969-12-31T23:59:59.999999Z");
	int64_t t = 0;
	CHECK_EQ_INT(srv_time_parse("2024-05-01T12:00:00.123456Z", &t), 0);
	CHECK_EQ_INT(t, 1714564800123456LL);
	CHECK_EQ_INT(srv_time_parse("2024-05-01T14:00:00+02:00", &t), 0);
	CHECK_EQ_INT(t, 1714564800000000LL);
	CHECK_EQ_INT(srv_time_parse("2024-05-01 11:30:00.5-00:30", &t), 0);
	CHECK_EQ_INT(t, 1714564800500000LL);
	CHECK_EQ_INT(srv_time_parse("2024-02-29T00:00:00Z", &t), 0);
	CHECK_EQ_INT(srv_time_parse("2023-02-29T00:00:00Z", &t), -1);
	CHECK_EQ_INT(srv_time_parse("2024-13-01T00:00:00Z", &t), -1);
	CHECK_EQ_INT(srv_time_parse("2024-05-01T24:00:00Z", &t), -1);
	CHECK_EQ_INT(srv_time_parse("2024-05-01T12:00:00", &t), -1);     /* no zone */
	CHECK_EQ_INT(srv_time_parse("2024-05-01", &t), -1);
	CHECK_EQ_INT(srv_time_parse("2024-05-01T12:00:00.Z", &t), -1);
	CHECK_EQ_INT(srv_time_parse("2024-05-01T12:00:00Zjunk", &t), -1);
	CHECK_EQ_INT(srv_time_parse("", &t), -1);
	CHECK_EQ_INT(srv_time_parse(NULL, &t), -1);
	/* Round trip. */
	srv_time_format(1234567890123456LL, buf);
	CHECK_EQ_INT(srv_time_parse(buf, &t), 0);
	CHECK_EQ_INT(t, 1234567890123456LL);
}

static void test_utf8(void)
{
	CHECK_EQ_INT(srv_utf8_chars("abc", 3), 3);
	CHECK_EQ_INT(srv_utf8_chars("caf\xc3\xa9", 5), 4);
	CHECK_EQ_INT(srv_utf8_chars("\xf0\x9f\x9a\xb2", 4), 1);
	CHECK_EQ_INT(srv_utf8_chars("\xc3", 1), -1);              /* truncated */
	CHECK_EQ_INT(srv_utf8_chars("\xc0\xaf", 2), -1);          /* overlong */
	CHECK_EQ_INT(srv_utf8_chars("\xed\xa0\x80", 3), -1);      /* surrogate */
	char *c = srv_utf8_clean("a\xff" "b\xc3", 4);
	REQUIRE(c);
	CHECK_EQ_STR(c, "a\xef\xbf\xbd" "b\xef\xbf\xbd");
	free(c);
	c = srv_utf8_clean("x\0y", 3);
	REQUIRE(c);
	CHECK_EQ_STR(c, "x\xef\xbf\xbdy");
	free(c);
}

static void test_numbers(void)
{
	long long v;
	double d;
	CHECK_EQ_INT(srv_parse_int("10", 1, 1000, &v), 0);
	CHECK_EQ_INT(v, 10);
	CHECK_EQ_INT(srv_parse_int("1000", 1, 1000, &v), 0);
	CHECK_EQ_INT(srv_parse_int("1001", 1, 1000, &v), -1);
	CHECK_EQ_INT(srv_parse_int("0", 1, 1000, &v), -1);
	CHECK_EQ_INT(srv_parse_int("+5", 1, 1000, &v), -1);
	CHECK_EQ_INT(srv_parse_int(" 5", 1, 1000, &v), -1);
	CHECK_EQ_INT(srv_parse_int("5 ", 1, 1000, &v), -1);
	CHECK_EQ_INT(srv_parse_int("5e2", 1, 1000, &v), -1);
	CHECK_EQ_INT(srv_parse_int("99999999999999999999", 1, 1000, &v), -1);
	CHECK_EQ_INT(srv_parse_double("0.25", -1, 1, &d), 0);
	CHECK_NEAR(d, 0.25, 0);
	CHECK_EQ_INT(srv_parse_double("-1", -1, 1, &d), 0);
	CHECK_EQ_INT(srv_parse_double("1.01", -1, 1, &d), -1);
	CHECK_EQ_INT(srv_parse_double("nan", -1, 1, &d), -1);
	CHECK_EQ_INT(srv_parse_double("inf", -1, 1, &d), -1);
	CHECK_EQ_INT(srv_parse_double("0.5x", -1, 1, &d), -1);
	/* white space, '+' and other spellings strto* would take (issue 17:
	 * the request fuzz target found "k=%09%095" accepted as 5) */
	CHECK_EQ_INT(srv_parse_int("\t\t5", 1, 1000, &v), -1);
	CHECK_EQ_INT(srv_parse_int("\n5", 1, 1000, &v), -1);
	CHECK_EQ_INT(srv_parse_int("-", -10, 10, &v), -1);
	CHECK_EQ_INT(srv_parse_int("-5", -10, 10, &v), 0);
	CHECK_EQ_INT(v, -5);
	CHECK_EQ_INT(srv_parse_int("007", 1, 10, &v), 0);
	CHECK_EQ_INT(v, 7);
	CHECK_EQ_INT(srv_parse_double("\t0.5", -1, 1, &d), -1);
	CHECK_EQ_INT(srv_parse_double("+0.5", -1, 1, &d), -1);
	CHECK_EQ_INT(srv_parse_double("0x1p-2", -1, 1, &d), -1);
	CHECK_EQ_INT(srv_parse_double(".5", -1, 1, &d), -1);
	CHECK_EQ_INT(srv_parse_double("5e-1", -1, 1, &d), 0);
	CHECK_NEAR(d, 0.5, 0);
}

static void test_image_object(void)
{
	char sha[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char meta[] = "{\"album\":\"x\",\"n\":[1,2]}";
	struct store_image img = { 0 };
	img.id = 42;
	memcpy(img.sha256, sha, sizeof sha);
	strcpy(img.mime, "image/png");
	img.width = 3;
	img.height = 4;
	img.bytes = 99;
	img.filename = NULL;
	img.created_at = 1714564800000001LL;
	img.metadata = meta;
	cJSON *o = srv_image_json(&img);
	REQUIRE(o);
	char *text = cJSON_PrintUnformatted(o);
	CHECK_EQ_STR(text, "{\"id\":42,\"sha256\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
			   "\"mime\":\"image/png\",\"width\":3,\"height\":4,\"bytes\":99,\"filename\":null,"
			   "\"created_at\":\"2024-05-01T12:00:00.000001Z\",\"taken_at\":null,"
			   "\"metadata\":{\"album\":\"x\",\"n\":[1,2]},\"source\":null,"
			   "\"links\":{\"file\":\"/images/42/file\",\"thumbnail\":\"/images/42/thumbnail\"}}");
	free(text);
	cJSON_Delete(o);

	/* a library image: where its file is (a path that is not UTF-8 shown with U+FFFD) */
	char lib[] = "photos", path[] = "2023/ski\xff.jpg";
	img.source_library = lib;
	img.source_path = path;
	o = srv_image_json(&img);
	REQUIRE(o);
	cJSON *src = cJSON_GetObjectItem(o, "source");
	CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(src, "library")), "photos");
	CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(src, "path")), "2023/ski\xef\xbf\xbd.jpg");
	cJSON_Delete(o);
	/* A capture time is shown as the file states it. */
	srv_taken_at("2023-06-17T14:03:22+02:00", &img.taken);
	o = srv_image_json(&img);
	REQUIRE(o);
	CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(o, "taken_at")), "2023-06-17T14:03:22+02:00");
	cJSON_Delete(o);
}

/* The encoder's capture time into the row's form: text and instant. */
static void test_taken_at(void)
{
	struct store_taken_at t;
	srv_taken_at("2023-06-17T14:03:22+02:00", &t);
	CHECK_EQ_STR(t.text, "2023-06-17T14:03:22+02:00");
	CHECK(t.us == 1687003402LL * 1000000);
	/* No offset stated: the camera's clock, compared as UTC. */
	srv_taken_at("2023-06-17T14:03:22-00:00", &t);
	CHECK(t.us == 1687010602LL * 1000000);
	srv_taken_at("", &t);
	CHECK_EQ_STR(t.text, "");
	CHECK(t.us == 0);
	srv_taken_at(NULL, &t);
	CHECK_EQ_STR(t.text, "");
	srv_taken_at("2023-02-30T00:00:00Z", &t);
	CHECK_EQ_STR(t.text, "");
	CHECK(t.us == 0);
	srv_taken_at("2023-06-17T14:03:22+02:00 and a very long tail past the row's room", &t);
	CHECK_EQ_STR(t.text, "");
}

/* The 415's default message names every type the decoder takes. */
static void test_unsupported_message(void)
{
	CHECK_CONTAINS(http_errors[HTTP_ERR_UNSUPPORTED_MEDIA_TYPE].message, clip_image_types_text());
}

static void test_thumbnails(void)
{
	CHECK(srv_thumb_size_ok(128) && srv_thumb_size_ok(256) && srv_thumb_size_ok(512));
	CHECK(!srv_thumb_size_ok(0) && !srv_thumb_size_ok(64) && !srv_thumb_size_ok(1024));
	/* A 300 x 100 image: red on the left half, blue on the right. */
	int w = 300, h = 100;
	unsigned char *rgb = malloc((size_t)w * h * 3);
	REQUIRE(rgb);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			unsigned char *p = rgb + ((size_t)y * w + x) * 3;
			p[0] = x < w / 2 ? 255 : 0;
			p[1] = 0;
			p[2] = x < w / 2 ? 0 : 255;
		}
	static const struct { int side, ow, oh; } want[] = { { 128, 128, 43 }, { 256, 256, 85 }, { 512, 300, 100 } };
	for (size_t i = 0; i < 3; i++) {
		unsigned char *jpeg = NULL;
		size_t len = 0;
		clip_image src = { .width = w, .height = h, .rgb = rgb };
		REQUIRE(srv_thumb_make(&src, want[i].side, &jpeg, &len) == 0);
		clip_image img = { 0 };
		clip_error err = { 0 };
		REQUIRE(clip_image_decode(jpeg, len, 1 << 20, &img, &err) == 0);
		CHECK_EQ_INT(img.width, want[i].ow);
		CHECK_EQ_INT(img.height, want[i].oh);
		/* Colours survive the area average (JPEG within a tolerance). */
		const unsigned char *left = img.rgb + ((size_t)(img.height / 2) * img.width + 2) * 3;
		const unsigned char *right = img.rgb + ((size_t)(img.height / 2) * img.width + img.width - 3) * 3;
		CHECK(left[0] > 200 && left[2] < 60);
		CHECK(right[2] > 200 && right[0] < 60);
		clip_image_free(&img);
		free(jpeg);
	}
	/* Tall: the height becomes the side. */
	unsigned char *jpeg = NULL;
	size_t len = 0;
	clip_image tall = { .width = 50, .height = 600, .rgb = rgb };
	REQUIRE(srv_thumb_make(&tall, 128, &jpeg, &len) == 0);
	clip_image img = { 0 };
	clip_error err = { 0 };
	REQUIRE(clip_image_decode(jpeg, len, 1 << 20, &img, &err) == 0);
	CHECK_EQ_INT(img.height, 128);
	CHECK_EQ_INT(img.width, 11);
	clip_image_free(&img);
	free(jpeg);
	free(rgb);
}

/* The thumbnail of image in bytes, decoded as the server decodes for one
 * (scaled == 1: at the smallest DCT scale that covers it) or at full size;
 * the thumbnail decoded back into *out. */
static int thumb_of(const unsigned char *bytes, size_t len, int side, int scaled, clip_image *out)
{
	struct clip_decode_params dp = clip_decode_default_params();
	dp.min_long_side = scaled ? side : 0;
	dp.keep_alpha = 1;
	clip_image img = { 0 };
	clip_error err = { 0 };
	unsigned char *jpeg = NULL;
	size_t jlen = 0;
	if (clip_image_decode_with(bytes, len, &dp, &img, &err) != 0)
		return -1;
	CHECK_EQ_INT(img.scale_denom, scaled ? 8 : 1);
	int rc = srv_thumb_make(&img, side, &jpeg, &jlen);
	clip_image_free(&img);
	if (rc == 0)
		rc = clip_image_decode(jpeg, jlen, 1 << 20, out, &err);
	free(jpeg);
	return rc;
}

/*
 * A thumbnail from a DCT-scaled decode is the full-size decode's: the same
 * size and the same places, in every orientation, when the scale does not
 * divide the photo's sides (a 1/8 decode of 1801 x 1203 has 226 x 151
 * pixels, the last of each side standing for part of 8: taken for whole
 * ones, they made a 128 x 86 thumbnail of a picture whose own is 128 x 85).
 */
static void test_thumbnails_from_scaled_decodes(void)
{
	const int w = 1801, h = 1203;
	unsigned char *rgb = malloc((size_t)w * h * 3);
	REQUIRE(rgb);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			unsigned char *p = rgb + ((size_t)y * w + x) * 3;
			p[0] = (x / 40) % 2 ? 230 : 20;  /* stripes: a shift shows */
			p[1] = (unsigned char)(y * 255 / h);
			p[2] = (y / 50) % 2 ? 200 : 40;
		}
	unsigned char *jpeg = NULL;
	size_t len = 0;
	REQUIRE(srv_jpeg_encode(rgb, w, h, 95, &jpeg, &len) == 0);
	free(rgb);
	for (int o = 1; o <= 8; o++) {
		size_t tlen = 0;
		unsigned char *tagged = jpeg_with_orientation(jpeg, len, o, &tlen);
		REQUIRE(tagged);
		clip_image full = { 0 }, fast = { 0 };
		REQUIRE(thumb_of(tagged, tlen, 128, 0, &full) == 0);
		REQUIRE(thumb_of(tagged, tlen, 128, 1, &fast) == 0);
		free(tagged);
		CHECK_EQ_INT(full.width, o >= 5 ? 85 : 128);
		CHECK_EQ_INT(full.height, o >= 5 ? 128 : 85);
		CHECK_EQ_INT(fast.width, full.width);
		CHECK_EQ_INT(fast.height, full.height);
		if (fast.width == full.width && fast.height == full.height) {
			const size_t n = (size_t)full.width * full.height * 3;
			double sum = 0;
			for (size_t i = 0; i < n; i++)
				sum += abs((int)full.rgb[i] - (int)fast.rgb[i]);
			printf("  orientation %d: %dx%d, mean difference %.2f levels\n", o, full.width,
			       full.height, sum / n);
			CHECK(sum / n < 3.0);  /* a box at the wrong end: 6-18 */
		}
		clip_image_free(&full);
		clip_image_free(&fast);
	}
	free(jpeg);
}

int main(void)
{
	RUN(test_times);
	RUN(test_utf8);
	RUN(test_numbers);
	RUN(test_image_object);
	RUN(test_taken_at);
	RUN(test_unsupported_message);
	RUN(test_thumbnails);
	RUN(test_thumbnails_from_scaled_decodes);
	return harness_done();
}
