/*
 * http_static.h - the web front-end's files, embedded in the binary
 * (server/app/www/, see server/app/meson.build), served at "/NAME" with their
 * content type, a strong ETag (SHA-256 of the bytes), Cache-Control:
 * no-cache (revalidate; 304 when unchanged) and a Content-Security-Policy
 * that allows nothing from other origins. "/" is index.html.
 *
 *     struct http_static *st = http_static_new(clipd_www_assets);
 *     const struct http_static_file *f = http_static_find(st, "/app.js");
 *     f->content_type;   // "text/javascript; charset=utf-8"
 *     f->etag;           // "\"3a7bd3e2...\""
 *     http_static_free(st);
 */
#ifndef CLIPD_HTTP_STATIC_H
#define CLIPD_HTTP_STATIC_H

#include <stddef.h>

#include "assets.h"

#define HTTP_CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " \
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; " \
	"frame-ancestors 'none'"

struct http_static_file {
	const char *name;            /* "app.js" */
	const unsigned char *data;   /* static */
	size_t len;
	const char *content_type;
	char etag[68];               /* quoted hex SHA-256, truncated to 32 digits */
};

struct http_static;

/* table may be NULL or empty: "/" then serves a short built-in page. */
struct http_static *http_static_new(const struct clipd_asset *table);
void http_static_free(struct http_static *st);
/* The file for a request path ("/" or "/NAME"), or NULL. */
const struct http_static_file *http_static_find(const struct http_static *st, const char *path);
size_t http_static_count(const struct http_static *st);
/* The content type for a file name, by its extension. */
const char *http_content_type_for(const char *name);

#endif
