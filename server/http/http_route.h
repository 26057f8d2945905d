/*
 * http_route.h - what the HTTP layer knows of a route, and the router that
 * matches a request's method and path against an application's table.
 *
 *     static const struct http_route routes[] = {
 *             { 0, "GET", "/healthz", "healthz", HTTP_ACCESS_OPEN, 0, 0 },
 *             { 1, "GET", "/images/{id}/similar", "image_similar", HTTP_ACCESS_READ, 0, 0 },
 *     };
 *     struct http_match m;
 *     switch (http_route_match(routes, 2, "GET", "/images/42/similar", &m)) {
 *     case HTTP_MATCH_FOUND:    // m.route == &routes[1], m.id == 42
 *     case HTTP_MATCH_METHOD:   // path known, method not: 405 with m.allow
 *     case HTTP_MATCH_NONE:     // 404
 *     }
 *
 * The table belongs to the application (server/app/srv_routes.c); it is
 * data only, so that tests can compare it with openapi.json. Its columns
 * say all the HTTP layer needs to know (who may call, whether a body is
 * read, whether the route answers before the application is ready); the
 * layer never names a route. Paths are written as OpenAPI writes them;
 * "{id}" matches a decimal image id from 1 to 2^53.
 */
#ifndef CLIPD_HTTP_ROUTE_H
#define CLIPD_HTTP_ROUTE_H

#include <stddef.h>
#include <stdint.h>

/* Who may call a route when API keys are configured. */
enum http_access {
	HTTP_ACCESS_OPEN,    /* no key: health probes, the web page */
	HTTP_ACCESS_READ,    /* a read or write key */
	HTTP_ACCESS_WRITE,   /* a write key */
};

/* Flags of a route. */
#define HTTP_ROUTE_UNGATED 0x1   /* answers before the application is ready (status, metrics) */
#define HTTP_ROUTE_WEB     0x2   /* a web front-end file at this path wins over the route */
#define HTTP_ROUTE_PROBE   0x4   /* a health probe: answered on the connections kept for probes
				  * above the per-address cap (http.h) */

struct http_route {
	int id;                 /* the application's own number; also the route's metrics slot */
	const char *method;     /* "GET", "POST", "PATCH", "DELETE" (GET also answers HEAD) */
	const char *path;       /* "/images/{id}/file" */
	const char *name;       /* a short label for logs and metrics: "image_file" */
	enum http_access access;
	int body;               /* nonzero: the route reads a request body */
	unsigned flags;         /* HTTP_ROUTE_* */
};


enum http_match_result { HTTP_MATCH_NONE = 0, HTTP_MATCH_FOUND, HTTP_MATCH_METHOD };

#define HTTP_ID_MAX ((int64_t)1 << 53)
#define HTTP_MAX_PATH 2048   /* bytes of a request path */

struct http_match {
	const struct http_route *route;   /* HTTP_MATCH_FOUND */
	int64_t id;                       /* the {id} segment, 0 when none */
	char allow[64];                   /* HTTP_MATCH_METHOD (and FOUND): "GET, HEAD, PATCH, DELETE" */
};

/* Match against n routes; path is the URL path without the query string.
 * A table's ids are its indexes (routes[i].id == i). */
enum http_match_result http_route_match(const struct http_route *routes, size_t n, const char *method,
					const char *path, struct http_match *m);

#endif
