/* The router and the error table: every route matches, ids parse strictly,
 * 404 and 405 (with Allow), and errors render as the documented JSON. */
#include <strings.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "http_errors.h"
#include "http_route.h"
#include "srv_routes.h"

static void test_every_route_matches_itself(void)
{
	for (size_t i = 0; i < ROUTE_COUNT; i++) {
		char path[128];
		const char *pat = srv_routes[i].path;
		/* Replace {id} with 42 and {name} with photos. */
		const char *brace = strstr(pat, "{id}"), *named = strstr(pat, "{name}");
		snprintf(path, sizeof path, "%s", pat);
		if (brace) {
			size_t pre = (size_t)(brace - pat);
			path[pre] = 0;
			strcat(path, "42");
			strcat(path, brace + 4);
		}
		if (named) {
			size_t pre = (size_t)(named - pat);
			path[pre] = 0;
			strcat(path, "photos");
			strcat(path, named + 6);
		}
		struct http_match m;
		CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, srv_routes[i].method, path, &m), HTTP_MATCH_FOUND);
		REQUIRE(m.route);
		CHECK_EQ_INT(m.route->id, srv_routes[i].id);
		CHECK_EQ_INT(m.id, brace ? 42 : 0);
		CHECK_EQ_STR(m.name, named ? "photos" : "");
		CHECK_EQ_INT(srv_routes[i].id, (int)i);
	}
}

static void test_ids(void)
{
	struct http_match m;
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/images/1", &m), HTTP_MATCH_FOUND);
	CHECK_EQ_INT(m.id, 1);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/images/9007199254740992", &m), HTTP_MATCH_FOUND);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/images/9007199254740993", &m), HTTP_MATCH_NONE);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/images/0", &m), HTTP_MATCH_NONE);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/images/007", &m), HTTP_MATCH_NONE);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/images/-1", &m), HTTP_MATCH_NONE);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/images/abc", &m), HTTP_MATCH_NONE);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/images/12abc", &m), HTTP_MATCH_NONE);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/images/99999999999999999999999", &m), HTTP_MATCH_NONE);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/images/12/file", &m), HTTP_MATCH_FOUND);
	CHECK_EQ_INT(m.route->id, ROUTE_IMAGE_FILE);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/images/12/file/", &m), HTTP_MATCH_NONE);
}

static void test_unknown_and_wrong_method(void)
{
	struct http_match m;
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/nope", &m), HTTP_MATCH_NONE);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "", &m), HTTP_MATCH_NONE);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "PUT", "/images/3", &m), HTTP_MATCH_METHOD);
	CHECK_EQ_STR(m.allow, "GET, HEAD, PATCH, DELETE, OPTIONS");
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "DELETE", "/images", &m), HTTP_MATCH_METHOD);
	CHECK_EQ_STR(m.allow, "POST, GET, HEAD, OPTIONS");
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "PUT", "/search", &m), HTTP_MATCH_METHOD);
	CHECK_EQ_STR(m.allow, "GET, HEAD, POST, OPTIONS");
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "POST", "/duplicates", &m), HTTP_MATCH_METHOD);
	CHECK_EQ_STR(m.allow, "GET, HEAD, OPTIONS");
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "HEAD", "/healthz", &m), HTTP_MATCH_FOUND);
	CHECK_EQ_INT(m.route->id, ROUTE_HEALTHZ);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "HEAD", "/classify", &m), HTTP_MATCH_METHOD);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "get", "/healthz", &m), HTTP_MATCH_METHOD);
}

static void test_names(void)
{
	struct http_match m;
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "POST", "/libraries/my-Photos_2.0/scan", &m), HTTP_MATCH_FOUND);
	CHECK_EQ_INT(m.route->id, ROUTE_LIBRARY_SCAN);
	CHECK_EQ_STR(m.name, "my-Photos_2.0");
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/libraries/x/errors", &m), HTTP_MATCH_FOUND);
	CHECK_EQ_INT(m.route->id, ROUTE_LIBRARY_ERRORS);
	/* what a name may not be: empty, hidden, a path, too long, odd bytes */
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "POST", "/libraries//scan", &m), HTTP_MATCH_NONE);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "POST", "/libraries/.x/scan", &m), HTTP_MATCH_NONE);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "POST", "/libraries/a/b/scan", &m), HTTP_MATCH_NONE);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "POST", "/libraries/a%2fb/scan", &m), HTTP_MATCH_NONE);
	char longer[128] = "/libraries/";
	memset(longer + 11, 'a', HTTP_NAME_MAX + 1);
	strcpy(longer + 11 + HTTP_NAME_MAX + 1, "/scan");
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "POST", longer, &m), HTTP_MATCH_NONE);
	longer[11 + HTTP_NAME_MAX] = 0;
	strcat(longer, "/scan");
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "POST", longer, &m), HTTP_MATCH_FOUND);
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", "/libraries/x/scan", &m), HTTP_MATCH_METHOD);
}

static void test_long_path(void)
{
	static char path[HTTP_MAX_PATH + 10];
	memset(path, 'a', sizeof path - 1);
	path[0] = '/';
	path[sizeof path - 1] = 0;
	struct http_match m;
	CHECK_EQ_INT(http_route_match(srv_routes, ROUTE_COUNT, "GET", path, &m), HTTP_MATCH_NONE);
}

static void test_error_table(void)
{
	static const struct { const char *name; unsigned status; } want[] = {
		{ "bad_parameter", 400 }, { "unauthorized", 401 }, { "forbidden", 403 },
		{ "not_found", 404 }, { "source_missing", 404 }, { "method_not_allowed", 405 }, { "body_too_large", 413 },
		{ "image_too_large", 413 }, { "uri_too_long", 414 }, { "unsupported_media_type", 415 },
		{ "image_undecodable", 422 }, { "rate_limited", 429 }, { "headers_too_large", 431 },
		{ "internal_error", 500 },
		{ "not_ready", 503 }, { "overloaded", 503 }, { "catalog_unavailable", 503 }, { "replica_behind", 503 },
		{ "insufficient_storage", 507 },
	};
	CHECK_EQ_INT(sizeof want / sizeof want[0], HTTP_ERR_COUNT);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		int code = http_error_lookup(want[i].name);
		REQUIRE(code >= 0);
		CHECK_EQ_INT(http_error_status((enum http_err)code), want[i].status);
		CHECK_EQ_INT(http_errors[code].code, code);
		CHECK_EQ_STR(http_error_name((enum http_err)code), want[i].name);
	}
	CHECK_EQ_INT(http_error_lookup("nonsense"), -1);
}

static void test_error_json(void)
{
	size_t len = 0;
	char *body = http_error_json(HTTP_ERR_BAD_PARAMETER, "k: must be \"1\" to 1000", &len);
	REQUIRE(body);
	CHECK_EQ_INT(len, strlen(body));
	cJSON *j = cJSON_Parse(body);
	REQUIRE(j);
	cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "code")), "bad_parameter");
	CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message")), "k: must be \"1\" to 1000");
	CHECK_EQ_INT(cJSON_GetArraySize(j), 1);
	CHECK_EQ_INT(cJSON_GetArraySize(e), 2);
	cJSON_Delete(j);
	free(body);
	body = http_error_json(HTTP_ERR_NOT_FOUND, NULL, NULL);
	REQUIRE(body);
	CHECK_CONTAINS(body, "\"message\":\"no such resource\"");
	free(body);
}

static cJSON *load_openapi(void)
{
	size_t len = 0;
	char *text = (char *)harness_read_file(TEST_DATA_DIR "/../../server/app/openapi.json", &len);
	cJSON *doc = text ? cJSON_ParseWithLength(text, len) : NULL;
	free(text);
	return doc;
}

/* "GET" -> "get", as openapi.json spells a method */
static void lower_method(const char *m, char *out, size_t len)
{
	size_t k = 0;
	for (; m[k] && k < len - 1; k++)
		out[k] = (char)(m[k] | 0x20);
	out[k] = 0;
}

/* openapi.json lists exactly the router's routes and the error table. */
static void test_openapi_agrees(void)
{
	cJSON *doc = load_openapi();
	REQUIRE(doc);
	cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
	REQUIRE(cJSON_IsObject(paths));
	size_t ops = 0;
	for (cJSON *p = paths->child; p; p = p->next)
		for (cJSON *m = p->child; m; m = m->next) {
			if (strcmp(m->string, "get") && strcmp(m->string, "post") && strcmp(m->string, "patch")
			    && strcmp(m->string, "delete") && strcmp(m->string, "put"))
				continue;
			ops++;
			int found = 0;
			for (size_t i = 0; i < ROUTE_COUNT; i++)
				if (!strcmp(srv_routes[i].path, p->string) && !strcasecmp(srv_routes[i].method, m->string))
					found = 1;
			if (!found)
				HARNESS_FAIL("openapi.json lists %s %s, the router does not", m->string, p->string);
		}
	for (size_t i = 0; i < ROUTE_COUNT; i++) {
		char method[16];
		lower_method(srv_routes[i].method, method, sizeof method);
		cJSON *item = cJSON_GetObjectItemCaseSensitive(paths, srv_routes[i].path);
		if (!cJSON_GetObjectItemCaseSensitive(item, method))
			HARNESS_FAIL("the router has %s %s, openapi.json does not", srv_routes[i].method, srv_routes[i].path);
	}
	CHECK_EQ_INT(ops, ROUTE_COUNT);
	cJSON *errs = cJSON_GetObjectItemCaseSensitive(doc, "x-clipd-errors");
	CHECK_EQ_INT(cJSON_GetArraySize(errs), HTTP_ERR_COUNT);
	cJSON *e;
	cJSON_ArrayForEach(e, errs) {
		const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "code"));
		int c = http_error_lookup(code);
		CHECK(c >= 0);
		if (c >= 0)
			CHECK_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "status")),
				     http_error_status((enum http_err)c));
	}
	cJSON_Delete(doc);
}

/* Each route's query parameters in openapi.json are exactly the ones the
 * dispatcher lets through (srv_route_params): an undocumented parameter
 * would be refused, a documented one missing from the table too. */
static void test_openapi_parameters_agree(void)
{
	cJSON *doc = load_openapi();
	REQUIRE(doc);
	cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
	for (size_t i = 0; i < ROUTE_COUNT; i++) {
		char method[16];
		lower_method(srv_routes[i].method, method, sizeof method);
		cJSON *op = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(paths, srv_routes[i].path), method);
		size_t documented = 0;
		cJSON *p;
		cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(op, "parameters")) {
			if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "in")), "query"))
				continue;
			const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "name"));
			documented++;
			int known = 0;
			for (const char *const *q = srv_route_params[i]; *q; q++)
				known |= !strcmp(*q, name);
			if (!known)
				HARNESS_FAIL("openapi.json documents %s for %s %s; the route refuses it", name,
					     srv_routes[i].method, srv_routes[i].path);
		}
		size_t taken = 0;
		for (const char *const *q = srv_route_params[i]; *q; q++)
			taken++;
		if (taken != documented)
			HARNESS_FAIL("%s %s takes %zu query parameters, openapi.json documents %zu",
				     srv_routes[i].method, srv_routes[i].path, taken, documented);
	}
	cJSON_Delete(doc);
}

int main(void)
{
	RUN(test_every_route_matches_itself);
	RUN(test_ids);
	RUN(test_unknown_and_wrong_method);
	RUN(test_names);
	RUN(test_long_path);
	RUN(test_error_table);
	RUN(test_error_json);
	RUN(test_openapi_agrees);
	RUN(test_openapi_parameters_agree);
	return harness_done();
}
