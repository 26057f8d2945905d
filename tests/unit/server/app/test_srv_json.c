/* The API's JSON helpers and thumbnails: RFC 3339 times, UTF-8 checks,
 * strict numbers, RFC 7396 merge patch, the image object, JPEG thumbnails. */
#include <stdint.h>

#include "clip.h"
#include "harness.h"
#include "http_errors.h"
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
			   "\"metadata\":{\"album\":\"x\",\"n\":[1,2]},"
			   "\"links\":{\"file\":\"/images/42/file\",\"thumbnail\":\"/images/42/thumbnail\"}}");
	free(text);
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
		REQUIRE(srv_thumb_make(rgb, w, h, want[i].side, &jpeg, &len) == 0);
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
	REQUIRE(srv_thumb_make(rgb, 50, 600, 128, &jpeg, &len) == 0);
	clip_image img = { 0 };
	clip_error err = { 0 };
	REQUIRE(clip_image_decode(jpeg, len, 1 << 20, &img, &err) == 0);
	CHECK_EQ_INT(img.height, 128);
	CHECK_EQ_INT(img.width, 11);
	clip_image_free(&img);
	free(jpeg);
	free(rgb);
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
	return harness_done();
}
