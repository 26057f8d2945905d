#include "http_route.h"

#include <stdio.h>
#include <string.h>


/* 1 if c may be in a "{name}" segment. */
static int name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
	       c == '-';
}

/* Match one pattern against a path; fills *id for "{id}" and name for "{name}". */
static int path_matches(const char *pattern, const char *path, int64_t *id, char name[HTTP_NAME_MAX + 1])
{
	*id = 0;
	name[0] = 0;
	while (*pattern && *path) {
		if (!strncmp(pattern, "{name}", 6)) {
			size_t n = 0;
			while (name_char(path[n])) {
				if (n >= HTTP_NAME_MAX)
					return 0;
				name[n] = path[n];
				n++;
			}
			name[n] = 0;
			if (n == 0 || path[0] == '.')
				return 0;
			pattern += 6;
			path += n;
			continue;
		}
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

enum http_match_result http_route_match(const struct http_route *routes, size_t n, const char *method,
					const char *path, struct http_match *m)
{
	memset(m, 0, sizeof *m);
	if (!method || !path || strlen(path) > HTTP_MAX_PATH)
		return HTTP_MATCH_NONE;
	int path_known = 0;
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t id = 0;
		char name[HTTP_NAME_MAX + 1];
		if (!path_matches(routes[i].path, path, &id, name))
			continue;
		const char *verb = routes[i].method;
		int w = snprintf(m->allow + used, sizeof m->allow - used, "%s%s%s",
				 path_known ? ", " : "", verb, !strcmp(verb, "GET") ? ", HEAD" : "");
		if (w > 0 && (size_t)w < sizeof m->allow - used)
			used += (size_t)w;
		path_known = 1;
		if (!m->route && method_equals(verb, method)) {
			m->route = &routes[i];
			m->id = id;
			memcpy(m->name, name, sizeof m->name);
		}
	}
	if (path_known && used + 9 < sizeof m->allow)
		memcpy(m->allow + used, ", OPTIONS", 10);
	if (m->route)
		return HTTP_MATCH_FOUND;
	return path_known ? HTTP_MATCH_METHOD : HTTP_MATCH_NONE;
}
