#include "http_static.h"

#include <stdlib.h>
#include <string.h>

#include "sha256.h"

struct http_static {
	struct http_static_file *files;
	size_t n;
	struct http_static_file fallback;
};

static const char fallback_page[] =
	"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>clipd</title></head>\n"
	"<body><h1>clipd</h1><p>This build has no web front-end. The API is described at "
	"<a href=\"openapi.json\">/openapi.json</a>.</p></body></html>\n";

const char *http_content_type_for(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".mjs", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".json", "application/json" },
		{ ".webmanifest", "application/manifest+json" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".jpg", "image/jpeg" },
		{ ".ico", "image/x-icon" },
		{ ".woff2", "font/woff2" },
		{ ".txt", "text/plain; charset=utf-8" },
	};
	const char *dot = name ? strrchr(name, '.') : NULL;
	for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
		if (!strcmp(dot, types[i].ext))
			return types[i].type;
	return "application/octet-stream";
}

static void make_etag(const unsigned char *data, size_t len, char etag[68])
{
	char hex[SHA256_HEX];
	sha256_hex(data, len, hex);
	etag[0] = '"';
	memcpy(etag + 1, hex, 32);
	etag[33] = '"';
	etag[34] = 0;
}

struct http_static *http_static_new(const struct clipd_asset *table)
{
	struct http_static *st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	size_t n = 0;
	for (const struct clipd_asset *a = table; a && a->name; a++)
		n++;
	if (n) {
		st->files = calloc(n, sizeof *st->files);
		if (!st->files) {
			free(st);
			return NULL;
		}
	}
	for (const struct clipd_asset *a = table; a && a->name; a++) {
		struct http_static_file *f = &st->files[st->n++];
		f->name = a->name;
		f->data = a->data;
		f->len = a->len;
		f->content_type = http_content_type_for(a->name);
		make_etag(a->data, a->len, f->etag);
	}
	st->fallback.name = "index.html";
	st->fallback.data = (const unsigned char *)fallback_page;
	st->fallback.len = sizeof fallback_page - 1;
	st->fallback.content_type = "text/html; charset=utf-8";
	make_etag(st->fallback.data, st->fallback.len, st->fallback.etag);
	return st;
}

void http_static_free(struct http_static *st)
{
	if (!st)
		return;
	free(st->files);
	free(st);
}

size_t http_static_count(const struct http_static *st)
{
	return st ? st->n : 0;
}

const struct http_static_file *http_static_find(const struct http_static *st, const char *path)
{
	if (!st || !path || path[0] != '/')
		return NULL;
	const char *name = path[1] ? path + 1 : "index.html";
	/* Flat names only: no directories, no dot files. */
	if (strchr(name, '/') || name[0] == '.')
		return NULL;
	for (size_t i = 0; i < st->n; i++)
		if (!strcmp(st->files[i].name, name))
			return &st->files[i];
	if (!strcmp(name, "index.html"))
		return &st->fallback;
	return NULL;
}
