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
};

static const char *const none[] = { NULL };
static const char *const upload[] = { "filename", "metadata", "on_duplicate", NULL };
static const char *const listing[] = { "limit", "cursor", SRV_FILTER_PARAM, "after", "before", "taken_after", "taken_before", NULL };
static const char *const thumbnail[] = { "size", NULL };
static const char *const searching[] = { "k", "min_score", SRV_FILTER_PARAM, "after", "before", "taken_after", "taken_before", NULL };
static const char *const text_search[] = { "q", "image", "not", "not_image", "mode", "rrf_k", "k", "min_score",
					   SRV_FILTER_PARAM, "after", "before", "taken_after", "taken_before", NULL };
static const char *const image_duplicates[] = { "min_score", "k", NULL };
static const char *const duplicates[] = { "min_score", "limit", "cursor", NULL };

const char *const *const srv_route_params[ROUTE_COUNT] = {
	[ROUTE_WEB_INDEX] = none,
	[ROUTE_HEALTHZ] = none,
	[ROUTE_READYZ] = none,
	[ROUTE_INFO] = none,
	[ROUTE_METRICS] = none,
	[ROUTE_OPENAPI] = none,
	[ROUTE_IMAGES_CREATE] = upload,
	[ROUTE_IMAGES_LIST] = listing,
	[ROUTE_IMAGE_GET] = none,
	[ROUTE_IMAGE_PATCH] = none,
	[ROUTE_IMAGE_DELETE] = none,
	[ROUTE_IMAGE_FILE] = none,
	[ROUTE_IMAGE_THUMBNAIL] = thumbnail,
	[ROUTE_IMAGE_SIMILAR] = searching,
	[ROUTE_SEARCH] = text_search,
	[ROUTE_SEARCH_IMAGE] = searching,
	[ROUTE_CLASSIFY] = none,
	[ROUTE_EMBED] = none,
	[ROUTE_SEARCH_JSON] = none,
	[ROUTE_IMAGE_DUPLICATES] = image_duplicates,
	[ROUTE_DUPLICATES] = duplicates,
};
