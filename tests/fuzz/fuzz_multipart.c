/*
 * A multipart/form-data body from a client, fed to the streaming parser in
 * pieces: whole, in random splits (derived from the input) and byte by
 * byte. Invariants: the parser's events (parts, their parsed headers and
 * data) and its verdict do not depend on how the body was cut; parsed
 * headers are terminated and within their sizes; a part's data is never
 * delivered outside a part. The first line of the input is the boundary
 * (the Content-Type's parameter), checked as the server checks it.
 */
#include <string.h>

#include "dbuf.h"
#include "fuzz.h"
#include "http_multipart.h"

#define MAX_PARTS 16

struct trace {
	struct dbuf out;
	int in_part;
};

static int on_begin(void *ud, const struct http_part *p)
{
	struct trace *t = ud;
	FUZZ_CHECK(!t->in_part, "a part began inside a part");
	FUZZ_CHECK(memchr(p->name, 0, sizeof p->name) && memchr(p->filename, 0, sizeof p->filename)
			   && memchr(p->content_type, 0, sizeof p->content_type),
		   "a header field is not terminated");
	FUZZ_CHECK(p->has_filename || p->filename[0] == 0, "a filename without has_filename");
	for (const char *c = p->content_type; *c; c++)
		FUZZ_CHECK(!(*c >= 'A' && *c <= 'Z'), "content type not lower case: %s", p->content_type);
	t->in_part = 1;
	dbuf_printf(&t->out, "B[%s][%s][%d][%s]", p->name, p->filename, p->has_filename, p->content_type);
	return 0;
}

static int on_data(void *ud, const char *data, size_t len)
{
	struct trace *t = ud;
	FUZZ_CHECK(t->in_part, "data outside a part");
	dbuf_append(&t->out, data, len);
	return 0;
}

static int on_end(void *ud)
{
	struct trace *t = ud;
	FUZZ_CHECK(t->in_part, "a part ended outside a part");
	t->in_part = 0;
	dbuf_append(&t->out, "E", 1);
	return 0;
}

static const struct http_multipart_callbacks cb = { on_begin, on_data, on_end };

/* Feed body in pieces: mode 0 whole, 1 random splits, 2 byte by byte. */
static int run(const char *boundary, const char *body, size_t len, int mode, uint64_t seed, struct trace *t)
{
	memset(t, 0, sizeof *t);
	t->out = (struct dbuf)DBUF_INIT(0);
	struct http_multipart *mp = http_multipart_new(boundary, &cb, t, MAX_PARTS);
	FUZZ_CHECK(mp != NULL, "out of memory");
	int rc = 0;
	size_t at = 0;
	while (at < len && rc == 0) {
		size_t n = len - at;
		if (mode == 1)
			n = 1 + (size_t)(fuzz_next(&seed) % (n < 300 ? n : 300));
		else if (mode == 2)
			n = 1;
		rc = http_multipart_feed(mp, body + at, n);
		at += n;
	}
	if (rc == 0)
		rc = http_multipart_finish(mp);
	FUZZ_CHECK(http_multipart_parts(mp) <= MAX_PARTS, "%zu parts", http_multipart_parts(mp));
	if (rc != 0)
		FUZZ_CHECK(http_multipart_error(mp)[0] != 0 || rc == HTTP_MP_ERR_TOO_MANY, "an error without a message");
	dbuf_printf(&t->out, "=%d", rc);
	http_multipart_free(mp);
	FUZZ_CHECK(!t->out.failed, "out of memory");
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	if (!nl)
		return 0;
	char ctype[160];
	size_t blen = (size_t)(nl - (const char *)data);
	snprintf(ctype, sizeof ctype, "multipart/form-data; boundary=%.*s", (int)(blen < 120 ? blen : 120),
		 (const char *)data);
	char boundary[HTTP_MP_MAX_BOUNDARY + 1];
	if (http_multipart_boundary(ctype, boundary, sizeof boundary) != 0)
		return 0;
	FUZZ_CHECK(strlen(boundary) >= 1 && strlen(boundary) <= HTTP_MP_MAX_BOUNDARY, "boundary %s", boundary);
	const char *body = nl + 1;
	size_t len = size - blen - 1;
	uint64_t seed = fuzz_seed(data, size);
	struct trace whole, split, bytes;
	run(boundary, body, len, 0, seed, &whole);
	run(boundary, body, len, 1, seed, &split);
	FUZZ_CHECK(whole.out.len == split.out.len && !memcmp(whole.out.data, split.out.data, whole.out.len),
		   "random splits changed what was parsed");
	if (len <= 4096) {
		run(boundary, body, len, 2, seed, &bytes);
		FUZZ_CHECK(whole.out.len == bytes.out.len && !memcmp(whole.out.data, bytes.out.data, whole.out.len),
			   "byte-by-byte feeding changed what was parsed");
		dbuf_free(&bytes.out);
	}
	dbuf_free(&whole.out);
	dbuf_free(&split.out);
	return 0;
}
