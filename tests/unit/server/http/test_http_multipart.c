/* The streaming multipart/form-data parser: the same parts whatever the
 * chunking, near-miss delimiters inside data, limits and malformed bodies. */
#include "harness.h"
#include "http_multipart.h"

#define MAX_PARTS 8

struct collected {
	int n;
	struct http_part head[MAX_PARTS];
	char data[MAX_PARTS][4096];
	size_t len[MAX_PARTS];
	int ended[MAX_PARTS];
	int stop_at_data;   /* nonzero: part_data returns this */
};

static int on_begin(void *ud, const struct http_part *p)
{
	struct collected *c = ud;
	if (c->n >= MAX_PARTS)
		return -99;
	c->head[c->n] = *p;
	c->len[c->n] = 0;
	c->ended[c->n] = 0;
	c->n++;
	return 0;
}

static int on_data(void *ud, const char *d, size_t len)
{
	struct collected *c = ud;
	if (c->stop_at_data)
		return c->stop_at_data;
	int i = c->n - 1;
	if (c->len[i] + len > sizeof c->data[i])
		return -98;
	memcpy(c->data[i] + c->len[i], d, len);
	c->len[i] += len;
	return 0;
}

static int on_end(void *ud)
{
	struct collected *c = ud;
	c->ended[c->n - 1] = 1;
	return 0;
}

static const struct http_multipart_callbacks cbs = { on_begin, on_data, on_end };

#define BOUNDARY "----clipdBoundary7MA4YWxk"
/* Binary data with CRs, LFs, dashes and a prefix of the delimiter. */
static const char file_bytes[] = "\x89PNG\r\n\x1a\n\0\r\n--\r\n------clipdBoundary7MA4YWx\r\r\n--x\r\n";
#define FILE_LEN (sizeof file_bytes - 1)

static size_t build_body(char *out, size_t cap)
{
	size_t n = 0;
	n += (size_t)snprintf(out + n, cap - n, "preamble to ignore\r\n--" BOUNDARY "\r\n"
			      "Content-Disposition: form-data; name=\"metadata\"\r\n\r\n"
			      "{\"album\": \"trip\"}\r\n--" BOUNDARY "\r\n"
			      "Content-Disposition: form-data; name=\"file\"; filename=\"a \\\"b\\\".png\"\r\n"
			      "Content-Type: Image/PNG; foo=bar\r\n\r\n");
	memcpy(out + n, file_bytes, FILE_LEN);
	n += FILE_LEN;
	n += (size_t)snprintf(out + n, cap - n, "\r\n--" BOUNDARY "  \r\n"
			      "content-disposition: form-data; name=file; filename=\"C:\\dir\\empty.bin\"\r\n\r\n"
			      "\r\n--" BOUNDARY "--\r\nepilogue\r\n");
	return n;
}

static void check_parts(const struct collected *c)
{
	REQUIRE(c->n == 3);
	CHECK_EQ_STR(c->head[0].name, "metadata");
	CHECK_EQ_INT(c->head[0].has_filename, 0);
	CHECK_EQ_INT(c->len[0], strlen("{\"album\": \"trip\"}"));
	CHECK(!memcmp(c->data[0], "{\"album\": \"trip\"}", c->len[0]));
	CHECK_EQ_STR(c->head[1].name, "file");
	CHECK_EQ_STR(c->head[1].filename, "a \"b\".png");
	CHECK_EQ_STR(c->head[1].content_type, "image/png");
	CHECK_EQ_INT(c->len[1], FILE_LEN);
	CHECK(!memcmp(c->data[1], file_bytes, FILE_LEN));
	CHECK_EQ_STR(c->head[2].name, "file");
	CHECK_EQ_STR(c->head[2].filename, "C:\\dir\\empty.bin");
	CHECK_EQ_INT(c->len[2], 0);
	for (int i = 0; i < 3; i++)
		CHECK(c->ended[i]);
}

static void test_whole_body(void)
{
	static char body[8192];
	size_t n = build_body(body, sizeof body);
	struct collected c = { 0 };
	struct http_multipart *mp = http_multipart_new(BOUNDARY, &cbs, &c, 10);
	REQUIRE(mp);
	CHECK_EQ_INT(http_multipart_feed(mp, body, n), 0);
	CHECK_EQ_INT(http_multipart_finish(mp), 0);
	CHECK_EQ_INT(http_multipart_parts(mp), 3);
	check_parts(&c);
	http_multipart_free(mp);
}

static void test_every_split_point(void)
{
	static char body[8192];
	size_t n = build_body(body, sizeof body);
	int failures = 0;
	for (size_t split = 0; split <= n; split++) {
		struct collected c = { 0 };
		struct http_multipart *mp = http_multipart_new(BOUNDARY, &cbs, &c, 10);
		REQUIRE(mp);
		int ok = http_multipart_feed(mp, body, split) == 0
			 && http_multipart_feed(mp, body + split, n - split) == 0
			 && http_multipart_finish(mp) == 0 && c.n == 3 && c.len[1] == FILE_LEN
			 && !memcmp(c.data[1], file_bytes, FILE_LEN) && c.len[2] == 0 && c.len[0] == 17;
		if (!ok && failures++ < 3)
			fprintf(stderr, "  split at %zu failed\n", split);
		http_multipart_free(mp);
	}
	CHECK_EQ_INT(failures, 0);
}

static void test_byte_by_byte(void)
{
	static char body[8192];
	size_t n = build_body(body, sizeof body);
	struct collected c = { 0 };
	struct http_multipart *mp = http_multipart_new(BOUNDARY, &cbs, &c, 10);
	REQUIRE(mp);
	for (size_t i = 0; i < n; i++)
		REQUIRE(http_multipart_feed(mp, body + i, 1) == 0);
	CHECK_EQ_INT(http_multipart_finish(mp), 0);
	check_parts(&c);
	http_multipart_free(mp);
}

static int feed_all(const char *body, size_t max_parts, struct collected *c, int *finish_rc)
{
	struct http_multipart *mp = http_multipart_new(BOUNDARY, &cbs, c, max_parts);
	if (!mp)
		return -1000;
	int rc = http_multipart_feed(mp, body, strlen(body));
	*finish_rc = http_multipart_finish(mp);
	http_multipart_free(mp);
	return rc;
}

static void test_malformed(void)
{
	struct collected c = { 0 };
	int fin;
	/* No closing delimiter. */
	CHECK_EQ_INT(feed_all("--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nxyz", 10, &c, &fin), 0);
	CHECK_EQ_INT(fin, HTTP_MP_ERR_SYNTAX);
	/* No boundary at all. */
	memset(&c, 0, sizeof c);
	CHECK_EQ_INT(feed_all("just some text", 10, &c, &fin), 0);
	CHECK_EQ_INT(fin, HTTP_MP_ERR_SYNTAX);
	/* Garbage after a delimiter. */
	memset(&c, 0, sizeof c);
	CHECK_EQ_INT(feed_all("--" BOUNDARY "xx\r\n", 10, &c, &fin), HTTP_MP_ERR_SYNTAX);
	/* A header without a colon. */
	memset(&c, 0, sizeof c);
	CHECK_EQ_INT(feed_all("--" BOUNDARY "\r\nnonsense\r\n\r\n", 10, &c, &fin), HTTP_MP_ERR_SYNTAX);
	/* Not form-data. */
	memset(&c, 0, sizeof c);
	CHECK_EQ_INT(feed_all("--" BOUNDARY "\r\nContent-Disposition: attachment\r\n\r\n", 10, &c, &fin),
		     HTTP_MP_ERR_SYNTAX);
	/* Too many parts. */
	memset(&c, 0, sizeof c);
	CHECK_EQ_INT(feed_all("--" BOUNDARY "\r\n\r\na\r\n--" BOUNDARY "\r\n\r\nb\r\n--" BOUNDARY "\r\n\r\nc\r\n--" BOUNDARY "--",
			      2, &c, &fin), HTTP_MP_ERR_TOO_MANY);
	CHECK_EQ_INT(c.n, 2);
	/* A header block that never ends. */
	static char big[HTTP_MP_MAX_HEADER + 200];
	int n = snprintf(big, sizeof big, "--" BOUNDARY "\r\nX-A: ");
	memset(big + n, 'a', sizeof big - (size_t)n - 1);
	big[sizeof big - 1] = 0;
	memset(&c, 0, sizeof c);
	CHECK_EQ_INT(feed_all(big, 10, &c, &fin), HTTP_MP_ERR_SYNTAX);
	/* A name longer than the limit. */
	memset(&c, 0, sizeof c);
	static char longname[512];
	n = snprintf(longname, sizeof longname, "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"");
	memset(longname + n, 'n', 100);
	snprintf(longname + n + 100, sizeof longname - (size_t)n - 100, "\"\r\n\r\nx\r\n--" BOUNDARY "--");
	CHECK_EQ_INT(feed_all(longname, 10, &c, &fin), HTTP_MP_ERR_SYNTAX);
}

static void test_callback_stops(void)
{
	static char body[8192];
	size_t n = build_body(body, sizeof body);
	struct collected c = { 0 };
	c.stop_at_data = 7;
	struct http_multipart *mp = http_multipart_new(BOUNDARY, &cbs, &c, 10);
	REQUIRE(mp);
	CHECK_EQ_INT(http_multipart_feed(mp, body, n), 7);
	CHECK_EQ_INT(http_multipart_feed(mp, body, n), 7);
	CHECK(http_multipart_finish(mp) != 0);
	http_multipart_free(mp);
}

static void test_long_filename_is_cut_at_a_character(void)
{
	static char body[2048];
	/* 200 two-byte characters (400 bytes) in the filename. */
	int n = snprintf(body, sizeof body, "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"");
	for (int i = 0; i < 200; i++) {
		body[n++] = (char)0xC3;
		body[n++] = (char)0xA9;
	}
	snprintf(body + n, sizeof body - (size_t)n, "\"\r\n\r\nx\r\n--" BOUNDARY "--");
	struct collected c = { 0 };
	int fin;
	CHECK_EQ_INT(feed_all(body, 10, &c, &fin), 0);
	CHECK_EQ_INT(fin, 0);
	REQUIRE(c.n == 1);
	size_t len = strlen(c.head[0].filename);
	CHECK(len <= HTTP_MP_MAX_FILENAME);
	CHECK_EQ_INT(len % 2, 0);
	CHECK(len >= HTTP_MP_MAX_FILENAME - 1);
}

static void test_boundary_parameter(void)
{
	char b[HTTP_MP_MAX_BOUNDARY + 1];
	CHECK_EQ_INT(http_multipart_boundary("multipart/form-data; boundary=abc123", b, sizeof b), 0);
	CHECK_EQ_STR(b, "abc123");
	CHECK_EQ_INT(http_multipart_boundary("Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b'c\"", b, sizeof b), 0);
	CHECK_EQ_STR(b, "a b'c");
	CHECK_EQ_INT(http_multipart_boundary("multipart/form-data", b, sizeof b), -1);
	CHECK_EQ_INT(http_multipart_boundary("multipart/form-data; boundary=", b, sizeof b), -1);
	CHECK_EQ_INT(http_multipart_boundary("multipart/form-data; boundary=\"ends with space \"", b, sizeof b), -1);
	CHECK_EQ_INT(http_multipart_boundary("multipart/form-data; boundary=bad\rchar", b, sizeof b), -1);
	CHECK_EQ_INT(http_multipart_boundary("multipart/mixed; boundary=abc", b, sizeof b), -1);
	CHECK_EQ_INT(http_multipart_boundary("text/plain", b, sizeof b), -1);
	char longb[120];
	memset(longb, 0, sizeof longb);
	strcpy(longb, "multipart/form-data; boundary=");
	memset(longb + strlen(longb), 'x', 71);
	CHECK_EQ_INT(http_multipart_boundary(longb, b, sizeof b), -1);
	CHECK(http_multipart_new("", &cbs, NULL, 1) == NULL);
}

int main(void)
{
	RUN(test_whole_body);
	RUN(test_every_split_point);
	RUN(test_byte_by_byte);
	RUN(test_malformed);
	RUN(test_callback_stops);
	RUN(test_long_filename_is_cut_at_a_character);
	RUN(test_boundary_parameter);
	return harness_done();
}
