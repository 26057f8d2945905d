/* The API's route table. See srv_routes.h. */
#include "srv_routes.h"

/* A route answers before the model and index are ready when it reports
 * on the server itself (HTTP_ROUTE_UNGATED); open routes always do. */
const struct http_route srv_routes[ROUTE_COUNT] = {
	{ ROUTE_WEB_INDEX, "GET", "/", "web", HTTP_ACCESS_OPEN, 0, HTTP_ROUTE_WEB },
	{ ROUTE_HEALTHZ, "GET", "/healthz", "healthz", HTTP_ACCESS_OPEN, 0, 0 },
	{ ROUTE_READYZ, "GET", "/readyz", "readyz", HTTP_ACCESS_OPEN, 0, 0 },
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
	{ ROUTE_LIBRARIES, "GET", "/libraries", "libraries", HTTP_ACCESS_READ, 0, 0 },
	{ ROUTE_LIBRARY_SCAN, "POST", "/libraries/{name}/scan", "library_scan", HTTP_ACCESS_WRITE, 0, 0 },
	{ ROUTE_LIBRARY_ERRORS, "GET", "/libraries/{name}/errors", "library_errors", HTTP_ACCESS_READ, 0, 0 },
};
