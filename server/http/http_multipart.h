/*
 * http_multipart.h - a streaming multipart/form-data parser (RFC 7578 over
 * RFC 2046). The body is fed in pieces of any size, as libmicrohttpd hands
 * them over; the parser calls back at each part's start (with its parsed
 * headers), for each run of its data, and at its end. It keeps at most one
 * part's header block (HTTP_MP_MAX_HEADER bytes), never the data.
 *
 *     char boundary[HTTP_MP_MAX_BOUNDARY + 1];
 *     if (http_multipart_boundary(content_type, boundary, sizeof boundary) != 0)
 *             reject(400);
 *     struct http_multipart *mp = http_multipart_new(boundary, &callbacks, ud, 64);
 *     while (more)
 *             if (http_multipart_feed(mp, chunk, len) != 0) reject(400, http_multipart_error(mp));
 *     if (http_multipart_finish(mp) != 0) reject(400, ...);   // truncated body
 *     http_multipart_free(mp);
 *
 * A callback returning nonzero stops the parser: feed returns that value.
 * The preamble and epilogue are ignored.
 */
#ifndef CLIPD_HTTP_MULTIPART_H
#define CLIPD_HTTP_MULTIPART_H

#include <stddef.h>

#define HTTP_MP_MAX_BOUNDARY 70     /* RFC 2046 */
#define HTTP_MP_MAX_HEADER 8192     /* bytes of one part's header block */
#define HTTP_MP_MAX_NAME 64         /* bytes of a part's name */
#define HTTP_MP_MAX_FILENAME 255    /* bytes of a filename (longer ones are cut at a character) */
#define HTTP_MP_MAX_CTYPE 127

struct http_part {
	char name[HTTP_MP_MAX_NAME + 1];            /* Content-Disposition name, "" if none */
	char filename[HTTP_MP_MAX_FILENAME + 1];    /* "" if none */
	int has_filename;
	char content_type[HTTP_MP_MAX_CTYPE + 1];   /* lower case, without parameters; "" if none */
};

struct http_multipart_callbacks {
	int (*part_begin)(void *ud, const struct http_part *part);
	int (*part_data)(void *ud, const char *data, size_t len);
	int (*part_end)(void *ud);
};

enum {
	HTTP_MP_OK = 0,
	HTTP_MP_ERR_SYNTAX = -1,     /* malformed body: the message says where */
	HTTP_MP_ERR_TOO_MANY = -2,   /* more parts than max_parts */
	HTTP_MP_ERR_NOMEM = -3,
};

/* The boundary parameter of a multipart/form-data Content-Type, checked
 * against RFC 2046's alphabet and length. 0, or -1 if missing or invalid. */
int http_multipart_boundary(const char *content_type, char *out, size_t outlen);

struct http_multipart;

/* NULL when out of memory. The boundary is copied. */
struct http_multipart *http_multipart_new(const char *boundary, const struct http_multipart_callbacks *cb,
					  void *ud, size_t max_parts);
void http_multipart_free(struct http_multipart *mp);

/* 0, a negative HTTP_MP_ERR_*, or a callback's nonzero value. After an
 * error every further call returns the same error. */
int http_multipart_feed(struct http_multipart *mp, const char *data, size_t len);
/* At the end of the body: 0 if the closing delimiter was seen. */
int http_multipart_finish(struct http_multipart *mp);
/* A message for the last error ("" if none). */
const char *http_multipart_error(const struct http_multipart *mp);
size_t http_multipart_parts(const struct http_multipart *mp);

#endif
