#include "http_metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_route.h"

static const unsigned statuses[] = { 200, 201, 204, 206, 304, 400, 401, 403, 404, 405, 408, 413,
				     415, 422, 429, 500, 503, 507 };
#define N_STATUS (sizeof statuses / sizeof statuses[0] + 1)   /* + "other" */
static const double buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])

struct route_metrics {
	atomic_uint_fast64_t by_status[N_STATUS];
	atomic_uint_fast64_t hist[N_BUCKETS + 1];    /* non-cumulative; last is +Inf */
	atomic_uint_fast64_t micros_sum;
	atomic_uint_fast64_t bytes;
	atomic_uint_fast64_t bytes_in;
};

struct http_metrics {
	const struct http_route *table;   /* borrowed: n_routes labels */
	size_t n_routes;
	size_t n_slots;                   /* n_routes, then "static", then "none" */
	atomic_uint_fast64_t total;
	struct route_metrics routes[];
};

struct http_metrics *http_metrics_new(const struct http_route *routes, size_t n_routes)
{
	if (n_routes > HTTP_METRICS_MAX_ROUTES || (n_routes && !routes))
		return NULL;
	/* calloc's zeroes are valid initial atomics on this platform. */
	struct http_metrics *m = calloc(1, sizeof *m + (n_routes + 2) * sizeof m->routes[0]);
	if (!m)
		return NULL;
	m->table = routes;
	m->n_routes = n_routes;
	m->n_slots = n_routes + 2;
	return m;
}

void http_metrics_free(struct http_metrics *m)
{
	free(m);
}

static size_t route_slot(const struct http_metrics *m, int route)
{
	if (route >= 0 && (size_t)route < m->n_routes)
		return (size_t)route;
	return route == HTTP_METRIC_ROUTE_STATIC ? m->n_routes : m->n_routes + 1;
}

static const char *route_label(const struct http_metrics *m, size_t slot)
{
	if (slot < m->n_routes)
		return m->table[slot].name;
	return slot == m->n_routes ? "static" : "none";
}

void http_metrics_request(struct http_metrics *m, int route, unsigned status, double seconds, uint64_t bytes)
{
	if (!m)
		return;
	struct route_metrics *r = &m->routes[route_slot(m, route)];
	size_t s = N_STATUS - 1;
	for (size_t i = 0; i + 1 < N_STATUS; i++)
		if (statuses[i] == status) {
			s = i;
			break;
		}
	atomic_fetch_add(&r->by_status[s], 1);
	size_t b = 0;
	while (b < N_BUCKETS && seconds > buckets[b])
		b++;
	atomic_fetch_add(&r->hist[b], 1);
	atomic_fetch_add(&r->micros_sum, (uint64_t)(seconds > 0 ? seconds * 1e6 : 0));
	atomic_fetch_add(&r->bytes, bytes);
	atomic_fetch_add(&m->total, 1);
}

void http_metrics_request_body(struct http_metrics *m, int route, uint64_t bytes)
{
	if (m && bytes)
		atomic_fetch_add(&m->routes[route_slot(m, route)].bytes_in, bytes);
}

uint64_t http_metrics_requests(struct http_metrics *m)
{
	return m ? atomic_load(&m->total) : 0;
}

void http_metrics_family(struct dbuf *out, const char *name, const char *type, const char *help)
{
	dbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void http_metrics_sample(struct dbuf *out, const char *name, const char *labels, double value)
{
	if (labels && *labels)
		dbuf_printf(out, "%s{%s} %.17g\n", name, labels, value);
	else
		dbuf_printf(out, "%s %.17g\n", name, value);
}

void http_metrics_render(struct http_metrics *m, struct dbuf *out)
{
	char labels[128];
	http_metrics_family(out, "clipd_http_requests_total", "counter", "HTTP requests answered, by route and status.");
	for (size_t r = 0; r < m->n_slots; r++)
		for (size_t s = 0; s < N_STATUS; s++) {
			uint64_t v = atomic_load(&m->routes[r].by_status[s]);
			if (!v)
				continue;
			if (s + 1 < N_STATUS)
				snprintf(labels, sizeof labels, "route=\"%s\",status=\"%u\"", route_label(m, r), statuses[s]);
			else
				snprintf(labels, sizeof labels, "route=\"%s\",status=\"other\"", route_label(m, r));
			http_metrics_sample(out, "clipd_http_requests_total", labels, (double)v);
		}
	http_metrics_family(out, "clipd_http_request_duration_seconds", "histogram",
			   "Time from the request's headers to its response being queued.");
	for (size_t r = 0; r < m->n_slots; r++) {
		uint64_t count = 0, cum[N_BUCKETS + 1];
		for (size_t b = 0; b <= N_BUCKETS; b++) {
			count += atomic_load(&m->routes[r].hist[b]);
			cum[b] = count;
		}
		if (!count)
			continue;
		for (size_t b = 0; b < N_BUCKETS; b++)
			dbuf_printf(out, "clipd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
				       route_label(m, r), buckets[b], (unsigned long long)cum[b]);
		dbuf_printf(out, "clipd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
			       route_label(m, r), (unsigned long long)count);
		dbuf_printf(out, "clipd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
			       route_label(m, r), (double)atomic_load(&m->routes[r].micros_sum) / 1e6);
		dbuf_printf(out, "clipd_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
			       route_label(m, r), (unsigned long long)count);
	}
	http_metrics_family(out, "clipd_http_response_bytes_total", "counter", "Response body bytes, by route.");
	for (size_t r = 0; r < m->n_slots; r++) {
		uint64_t v = atomic_load(&m->routes[r].bytes);
		if (!v)
			continue;
		snprintf(labels, sizeof labels, "route=\"%s\"", route_label(m, r));
		http_metrics_sample(out, "clipd_http_response_bytes_total", labels, (double)v);
	}
	http_metrics_family(out, "clipd_http_request_bytes_total", "counter", "Request body bytes received, by route.");
	for (size_t r = 0; r < m->n_slots; r++) {
		uint64_t v = atomic_load(&m->routes[r].bytes_in);
		snprintf(labels, sizeof labels, "route=\"%s\"", route_label(m, r));
		if (v || (r < m->n_routes && m->table[r].body))
			http_metrics_sample(out, "clipd_http_request_bytes_total", labels, (double)v);
	}
}
