/*
 * srv_routes.h - the API's routes: one table, in the order of the ids,
 * read by the HTTP layer (through http_server_params.routes), the
 * dispatcher (srv_handle) and the test that compares it with openapi.json.
 */
#ifndef CLIPD_SRV_ROUTES_H
#define CLIPD_SRV_ROUTES_H

#include "http_route.h"

enum srv_route_id {
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
	ROUTE_SEARCH_JSON,
	ROUTE_IMAGE_DUPLICATES,
	ROUTE_DUPLICATES,
	ROUTE_EXPORT,
	ROUTE_LIBRARIES,
	ROUTE_LIBRARY_SCAN,
	ROUTE_LIBRARY_ERRORS,
	ROUTE_COUNT
};

/* ROUTE_COUNT entries, in enum order. */
extern const struct http_route srv_routes[ROUTE_COUNT];

/* The query parameters each route takes, a NULL-terminated list per route
 * (in enum order); "filter.KEY" stands for every parameter whose name
 * starts with "filter.". srv_handle answers any other with 400 naming it;
 * a test compares the lists with openapi.json's. */
#define SRV_FILTER_PARAM "filter.KEY"
extern const char *const *const srv_route_params[ROUTE_COUNT];

#endif
