/*
 * http_route.h - the API's route table and the router that matches a
 * request's method and path against it.
 *
 *     struct http_match m;
 *     switch (http_route_match("GET", "/images/42/similar", &m)) {
 *     case HTTP_MATCH_FOUND:    // m.route->id == ROUTE_IMAGE_SIMILAR, m.id == 42
 *     case HTTP_MATCH_METHOD:   // path known, method not: 405 with m.allow
 *     case HTTP_MATCH_NONE:     // 404
 *     }
 *
 * The table is data only (no handlers), so that tests can compare it with
 * openapi.json. Paths are written as OpenAPI writes them; "{id}" matches a
 * decimal image id from 1 to 2^53.
 */
#ifndef CLIPD_HTTP_ROUTE_H
#define CLIPD_HTTP_ROUTE_H

#include <stddef.h>
#include <stdint.h>

enum http_route_id {
	ROUTE_WEB_INDEX,
	ROUTE_HEALTHZ,
	ROUTE_READYZ,
	ROUTE_INFO,
	ROUTE_METRICS,
	ROUTE_OPENAPI,
	ROUTE_IMAGES_CREATE,
	ROUTE_IMAGES_LIST,
	ROUTE_IMAGE_GET,
	ROUTE_IMAGE_PATCH,
	ROUTE_IMAGE_DELETE,
	ROUTE_IMAGE_FILE,
	ROUTE_IMAGE_THUMBNAIL,
	ROUTE_IMAGE_SIMILAR,
	ROUTE_SEARCH,
	ROUTE_SEARCH_IMAGE,
	ROUTE_CLASSIFY,
	ROUTE_EMBED,
	ROUTE_COUNT
};

/* Who may call a route when API keys are configured. */
enum http_access {
	HTTP_ACCESS_OPEN,    /* no key: health probes, the web page */
	HTTP_ACCESS_READ,    /* a read or write key */
	HTTP_ACCESS_WRITE,   /* a write key */
};

struct http_route {
	enum http_route_id id;
	const char *method;     /* "GET", "POST", "PATCH", "DELETE" (GET also answers HEAD) */
	const char *path;       /* "/images/{id}/file" */
	const char *name;       /* a short label for logs and metrics: "image_file" */
	enum http_access access;
	int body;               /* nonzero: the route reads a request body */
};

/* ROUTE_COUNT entries, in enum order. */
extern const struct http_route http_routes[ROUTE_COUNT];

enum http_match_result { HTTP_MATCH_NONE = 0, HTTP_MATCH_FOUND, HTTP_MATCH_METHOD };

#define HTTP_ID_MAX ((int64_t)1 << 53)
#define HTTP_MAX_PATH 2048   /* bytes of a request path */

struct http_match {
	const struct http_route *route;   /* HTTP_MATCH_FOUND */
	int64_t id;                       /* the {id} segment, 0 when none */
	char allow[64];                   /* HTTP_MATCH_METHOD (and FOUND): "GET, HEAD, PATCH, DELETE" */
};

/* path is the URL path without the query string. */
enum http_match_result http_route_match(const char *method, const char *path, struct http_match *m);

#endif
