/*
 * A request line from a client, after libmicrohttpd: the path through the
 * API's route table (every method), the query string's parameters through
 * the parsers the handlers use (k, limit, the list cursor, min_score,
 * after/before, q's characters), X-Forwarded-For through the client
 * address walk, and a Content-Type through the multipart boundary check.
 * Invariants: a matched route's method and shape are the request's, an
 * {id} is in [1, 2^53]; an accepted integer is in range and is the number
 * written (digits only); an accepted time prints and parses back to
 * itself; the client address is a terminated, parsable address.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "fuzz.h"
#include "http_multipart.h"
#include "http_net.h"
#include "http_route.h"
#include "srv_json.h"
#include "srv_routes.h"

static int segments(const char *p)
{
	int n = 0;
	for (; *p; p++)
		n += *p == '/';
	return n;
}

static void check_route(const char *method, const char *path)
{
	struct http_match m;
	memset(&m, 0x5a, sizeof m);
	enum http_match_result r = http_route_match(srv_routes, ROUTE_COUNT, method, path, &m);
	if (r == HTTP_MATCH_NONE)
		return;
	FUZZ_CHECK(memchr(m.allow, 0, sizeof m.allow) && m.allow[0], "allow not set");
	if (r != HTTP_MATCH_FOUND)
		return;
	FUZZ_CHECK(m.route >= srv_routes && m.route < srv_routes + ROUTE_COUNT, "route outside the table");
	FUZZ_CHECK(!strcmp(m.route->method, method) || (!strcmp(method, "HEAD") && !strcmp(m.route->method, "GET")),
		   "%s matched a %s route", method, m.route->method);
	FUZZ_CHECK(segments(m.route->path) == segments(path), "%s matched %s", path, m.route->path);
	if (strstr(m.route->path, "{id}")) {
		FUZZ_CHECK(m.id >= 1 && m.id <= HTTP_ID_MAX, "id %lld", (long long)m.id);
		char want[32];
		snprintf(want, sizeof want, "/%lld", (long long)m.id);
		FUZZ_CHECK(strstr(path, want) != NULL, "id %lld not written as such in %s", (long long)m.id, path);
	} else {
		FUZZ_CHECK(m.id == 0, "an id %lld without {id}", (long long)m.id);
	}
}

static void check_int(const char *v, long long min, long long max)
{
	long long x = 0;
	if (srv_parse_int(v, min, max, &x) != 0)
		return;
	FUZZ_CHECK(x >= min && x <= max, "%lld outside [%lld, %lld]", x, min, max);
	const char *p = v + (*v == '-');
	FUZZ_CHECK(*p, "accepted %s", v);
	for (; *p; p++)
		FUZZ_CHECK(*p >= '0' && *p <= '9', "accepted %s", v);
	char back[32];
	snprintf(back, sizeof back, "%lld", x);
	const char *digits = v + (*v == '-');
	while (digits[0] == '0' && digits[1])
		digits++;
	FUZZ_CHECK(!strcmp(back + (*back == '-'), digits), "%s read as %lld", v, x);
}

static void check_param(const char *key, const char *value)
{
	if (!strcmp(key, "k") || !strcmp(key, "limit"))
		check_int(value, 1, 1000);
	else if (!strcmp(key, "cursor"))   /* the list cursor: an id bound, as srv_images_list reads it */
		check_int(value, 1, (long long)HTTP_ID_MAX + 1);
	else if (!strcmp(key, "size"))
		check_int(value, 1, 100000);
	else if (!strcmp(key, "min_score")) {
		double d;
		if (srv_parse_double(value, -1.0, 1.0, &d) == 0)
			FUZZ_CHECK(d >= -1.0 && d <= 1.0, "min_score %g", d);
	} else if (!strcmp(key, "after") || !strcmp(key, "before")) {
		int64_t t, t2;
		if (srv_time_parse(value, &t) == 0) {
			char text[SRV_TIME_MAX];
			srv_time_format(t, text);
			FUZZ_CHECK(srv_time_parse(text, &t2) == 0 && t2 == t, "%s -> %lld -> %s", value, (long long)t,
				   text);
		}
	} else {
		long chars = srv_utf8_chars(value, strlen(value));
		char *clean = srv_utf8_clean(value, strlen(value));
		FUZZ_CHECK(clean != NULL, "out of memory");
		FUZZ_CHECK(srv_utf8_chars(clean, strlen(clean)) >= 0, "the cleaned text is not UTF-8");
		if (chars >= 0)
			FUZZ_CHECK(!strcmp(clean, value), "valid UTF-8 changed by cleaning");
		free(clean);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *s = malloc(size + 1);
	FUZZ_CHECK(s != NULL, "out of memory");
	memcpy(s, data, size);
	s[size] = 0;   /* libmicrohttpd hands over NUL-terminated text: a NUL ends it */

	/* line 1: path?query; line 2: X-Forwarded-For; line 3: Content-Type */
	char *lines[3] = { s, NULL, NULL };
	for (int i = 1; i < 3 && lines[i - 1]; i++) {
		char *nl = strchr(lines[i - 1], '\n');
		if (nl) {
			*nl = 0;
			lines[i] = nl + 1;
		}
	}
	char *query = strchr(lines[0], '?');
	if (query)
		*query++ = 0;
	static const char *const methods[] = { "GET", "HEAD", "POST", "PATCH", "DELETE", "PUT", "OPTIONS" };
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		check_route(methods[i], lines[0]);
	for (char *p = query, *next; p && *p; p = next) {
		next = strchr(p, '&');
		if (next)
			*next++ = 0;
		char *eq = strchr(p, '=');
		if (eq)
			*eq++ = 0;
		check_param(p, eq ? eq : "");
	}
	if (lines[1]) {
		struct sockaddr_in peer = { .sin_family = AF_INET };
		inet_pton(AF_INET, "10.0.0.1", &peer.sin_addr);
		struct http_cidr proxy;
		FUZZ_CHECK(http_cidr_parse("10.0.0.0/8", &proxy) == 0, "cidr");
		char out[HTTP_ADDR_MAX];
		memset(out, 'x', sizeof out);
		http_client_address((const struct sockaddr *)&peer, lines[1], &proxy, 1, out);
		FUZZ_CHECK(memchr(out, 0, sizeof out) != NULL, "client address not terminated");
		unsigned char buf[16];
		FUZZ_CHECK(inet_pton(AF_INET, out, buf) == 1 || inet_pton(AF_INET6, out, buf) == 1,
			   "client address %s", out);
		struct http_cidr c;
		if (http_cidr_parse(lines[1], &c) == 0)
			FUZZ_CHECK(c.family == AF_INET || c.family == AF_INET6, "family %d", c.family);
	}
	if (lines[2]) {
		char b[HTTP_MP_MAX_BOUNDARY + 1];
		memset(b, 'x', sizeof b);
		if (http_multipart_boundary(lines[2], b, sizeof b) == 0) {
			size_t n = strnlen(b, sizeof b);
			FUZZ_CHECK(n >= 1 && n <= HTTP_MP_MAX_BOUNDARY, "boundary of %zu bytes", n);
		}
	}
	free(s);
	return 0;
}
