#include "http_route.h"

#include <stdio.h>
#include <string.h>

const struct http_route http_routes[ROUTE_COUNT] = {
	{ ROUTE_WEB_INDEX, "GET", "/", "web", HTTP_ACCESS_OPEN, 0 },
	{ ROUTE_HEALTHZ, "GET", "/healthz", "healthz", HTTP_ACCESS_OPEN, 0 },
	{ ROUTE_READYZ, "GET", "/readyz", "readyz", HTTP_ACCESS_OPEN, 0 },
	{ ROUTE_INFO, "GET", "/info", "info", HTTP_ACCESS_READ, 0 },
	{ ROUTE_METRICS, "GET", "/metrics", "metrics", HTTP_ACCESS_READ, 0 },
	{ ROUTE_OPENAPI, "GET", "/openapi.json", "openapi", HTTP_ACCESS_READ, 0 },
	{ ROUTE_IMAGES_CREATE, "POST", "/images", "images_create", HTTP_ACCESS_WRITE, 1 },
	{ ROUTE_IMAGES_LIST, "GET", "/images", "images_list", HTTP_ACCESS_READ, 0 },
	{ ROUTE_IMAGE_GET, "GET", "/images/{id}", "image_get", HTTP_ACCESS_READ, 0 },
	{ ROUTE_IMAGE_PATCH, "PATCH", "/images/{id}", "image_patch", HTTP_ACCESS_WRITE, 1 },
	{ ROUTE_IMAGE_DELETE, "DELETE", "/images/{id}", "image_delete", HTTP_ACCESS_WRITE, 0 },
	{ ROUTE_IMAGE_FILE, "GET", "/images/{id}/file", "image_file", HTTP_ACCESS_READ, 0 },
	{ ROUTE_IMAGE_THUMBNAIL, "GET", "/images/{id}/thumbnail", "image_thumbnail", HTTP_ACCESS_READ, 0 },
	{ ROUTE_IMAGE_SIMILAR, "GET", "/images/{id}/similar", "image_similar", HTTP_ACCESS_READ, 0 },
	{ ROUTE_SEARCH, "GET", "/search", "search", HTTP_ACCESS_READ, 0 },
	{ ROUTE_SEARCH_IMAGE, "POST", "/search/image", "search_image", HTTP_ACCESS_READ, 1 },
	{ ROUTE_CLASSIFY, "POST", "/classify", "classify", HTTP_ACCESS_READ, 1 },
	{ ROUTE_EMBED, "POST", "/embed", "embed", HTTP_ACCESS_READ, 1 },
};

/* Match one pattern against a path; fills *id for "{id}". */
static int path_matches(const char *pattern, const char *path, int64_t *id)
{
	*id = 0;
	while (*pattern && *path) {
		if (!strncmp(pattern, "{id}", 4)) {
			int64_t v = 0;
			size_t n = 0;
			while (path[n] >= '0' && path[n] <= '9') {
				if (n >= 16 || (n == 0 && path[n] == '0'))
					return 0;
				v = v * 10 + (path[n] - '0');
				n++;
			}
			if (n == 0 || v < 1 || v > HTTP_ID_MAX)
				return 0;
			*id = v;
			pattern += 4;
			path += n;
			continue;
		}
		if (*pattern != *path)
			return 0;
		pattern++;
		path++;
	}
	return *pattern == 0 && *path == 0;
}

static int method_equals(const char *route_method, const char *method)
{
	if (!strcmp(route_method, method))
		return 1;
	return !strcmp(route_method, "GET") && !strcmp(method, "HEAD");
}

enum http_match_result http_route_match(const char *method, const char *path, struct http_match *m)
{
	memset(m, 0, sizeof *m);
	if (!method || !path || strlen(path) > HTTP_MAX_PATH)
		return HTTP_MATCH_NONE;
	int path_known = 0;
	size_t used = 0;
	for (size_t i = 0; i < ROUTE_COUNT; i++) {
		int64_t id = 0;
		if (!path_matches(http_routes[i].path, path, &id))
			continue;
		const char *verb = http_routes[i].method;
		int n = snprintf(m->allow + used, sizeof m->allow - used, "%s%s%s",
				 path_known ? ", " : "", verb, !strcmp(verb, "GET") ? ", HEAD" : "");
		if (n > 0 && (size_t)n < sizeof m->allow - used)
			used += (size_t)n;
		path_known = 1;
		if (!m->route && method_equals(verb, method)) {
			m->route = &http_routes[i];
			m->id = id;
		}
	}
	if (path_known && used + 9 < sizeof m->allow)
		memcpy(m->allow + used, ", OPTIONS", 10);
	if (m->route)
		return HTTP_MATCH_FOUND;
	return path_known ? HTTP_MATCH_METHOD : HTTP_MATCH_NONE;
}
