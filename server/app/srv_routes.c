/* The API's route table. See srv_routes.h. */
#include "srv_routes.h"

/* A route answers before the model and index are ready when it reports
 * on the server itself (HTTP_ROUTE_UNGATED); open routes always do. */
const struct http_route srv_routes[ROUTE_COUNT] = {
	{ ROUTE_WEB_INDEX, "GET", "/", "web", HTTP_ACCESS_OPEN, 0, HTTP_ROUTE_WEB },
	{ ROUTE_HEALTHZ, "GET", "/healthz", "healthz", HTTP_ACCESS_OPEN, 0, HTTP_ROUTE_PROBE },
	{ ROUTE_READYZ, "GET", "/readyz", "readyz", HTTP_ACCESS_OPEN, 0, HTTP_ROUTE_PROBE },
	{ ROUTE_INFO, "GET", "/info", "info", HTTP_ACCESS_READ, 0, HTTP_ROUTE_UNGATED },
	{ ROUTE_METRICS, "GET", "/metrics", "metrics", HTTP_ACCESS_READ, 0, HTTP_ROUTE_UNGATED },
	{ ROUTE_OPENAPI, "GET", "/openapi.json", "openapi", HTTP_ACCESS_READ, 0, HTTP_ROUTE_UNGATED },
	{ ROUTE_IMAGES_CREATE, "POST", "/images", "images_create", HTTP_ACCESS_WRITE, 1, 0 },
	{ ROUTE_IMAGES_LIST, "GET", "/images", "images_list", HTTP_ACCESS_READ, 0, 0 },
	{ ROUTE_IMAGE_GET, "GET", "/images/{id}", "image_get", HTTP_ACCESS_READ, 0, 0 },
	{ ROUTE_IMAGE_PATCH, "PATCH", "/images/{id}", "image_patch", HTTP_ACCESS_WRITE, 1, 0 },
	{ ROUTE_IMAGE_DELETE, "DELETE", "/images/{id}", "image_delete", HTTP_ACCESS_WRITE, 0, 0 },
	{ ROUTE_IMAGE_FILE, "GET", "/images/{id}/file", "image_file", HTTP_ACCESS_READ, 0, 0 },
	{ ROUTE_IMAGE_THUMBNAIL, "GET", "/images/{id}/thumbnail", "image_thumbnail", HTTP_ACCESS_READ, 0, 0 },
	{ ROUTE_IMAGE_SIMILAR, "GET", "/images/{id}/similar", "image_similar", HTTP_ACCESS_READ, 0, 0 },
	{ ROUTE_SEARCH, "GET", "/search", "search", HTTP_ACCESS_READ, 0, 0 },
	{ ROUTE_SEARCH_IMAGE, "POST", "/search/image", "search_image", HTTP_ACCESS_READ, 1, 0 },
	{ ROUTE_CLASSIFY, "POST", "/classify", "classify", HTTP_ACCESS_READ, 1, 0 },
	{ ROUTE_EMBED, "POST", "/embed", "embed", HTTP_ACCESS_READ, 1, 0 },
	{ ROUTE_SEARCH_JSON, "POST", "/search", "search_json", HTTP_ACCESS_READ, 1, 0 },
	{ ROUTE_IMAGE_DUPLICATES, "GET", "/images/{id}/duplicates", "image_duplicates", HTTP_ACCESS_READ, 0, 0 },
	{ ROUTE_DUPLICATES, "GET", "/duplicates", "duplicates", HTTP_ACCESS_READ, 0, 0 },
	{ ROUTE_EXPORT, "GET", "/export", "export", HTTP_ACCESS_WRITE, 0, 0 },
	{ ROUTE_LIBRARIES, "GET", "/libraries", "libraries", HTTP_ACCESS_READ, 0, 0 },
	{ ROUTE_LIBRARY_SCAN, "POST", "/libraries/{name}/scan", "library_scan", HTTP_ACCESS_WRITE, 0, 0 },
	{ ROUTE_LIBRARY_ERRORS, "GET", "/libraries/{name}/errors", "library_errors", HTTP_ACCESS_READ, 0, 0 },
};

static const char *const none[] = { NULL };
/* min_seq: every route that reads the catalog takes it (srv_dispatch.c) */
static const char *const reading[] = { "min_seq", NULL };
static const char *const upload[] = { "filename", "metadata", "on_duplicate", NULL };
static const char *const listing[] = { "limit", "cursor", SRV_FILTER_PARAM, "after", "before", "taken_after", "taken_before",
					"library", "sha256", "min_seq", NULL };
static const char *const thumbnail[] = { "size", "min_seq", NULL };
static const char *const searching[] = { "k", "min_score", SRV_FILTER_PARAM, "after", "before", "taken_after", "taken_before",
					  "library", "min_seq", NULL };
static const char *const text_search[] = { "q", "image", "not", "not_image", "mode", "rrf_k", "k", "min_score",
					   SRV_FILTER_PARAM, "after", "before", "taken_after", "taken_before", "library", "min_seq", NULL };
static const char *const image_duplicates[] = { "min_score", "k", "min_seq", NULL };
static const char *const duplicates[] = { "min_score", "limit", "cursor", "min_seq", NULL };
static const char *const library_errors[] = { "limit", "cursor", NULL };

const char *const *const srv_route_params[ROUTE_COUNT] = {
	[ROUTE_WEB_INDEX] = none,
	[ROUTE_HEALTHZ] = none,
	[ROUTE_READYZ] = none,
	[ROUTE_INFO] = reading,
	[ROUTE_METRICS] = none,
	[ROUTE_OPENAPI] = none,
	[ROUTE_IMAGES_CREATE] = upload,
	[ROUTE_IMAGES_LIST] = listing,
	[ROUTE_IMAGE_GET] = reading,
	[ROUTE_IMAGE_PATCH] = none,
	[ROUTE_IMAGE_DELETE] = none,
	[ROUTE_IMAGE_FILE] = reading,
	[ROUTE_IMAGE_THUMBNAIL] = thumbnail,
	[ROUTE_IMAGE_SIMILAR] = searching,
	[ROUTE_SEARCH] = text_search,
	[ROUTE_SEARCH_IMAGE] = searching,
	[ROUTE_CLASSIFY] = reading,
	[ROUTE_EMBED] = none,
	[ROUTE_SEARCH_JSON] = reading,
	[ROUTE_IMAGE_DUPLICATES] = image_duplicates,
	[ROUTE_DUPLICATES] = duplicates,
	[ROUTE_EXPORT] = reading,
	[ROUTE_LIBRARIES] = none,
	[ROUTE_LIBRARY_SCAN] = none,
	[ROUTE_LIBRARY_ERRORS] = library_errors,
};
