/*
 * http_metrics.h - request counters and latency histograms, rendered in
 * Prometheus's text format (version 0.0.4). Other families (encoder
 * batches, queue depth, index size) are read from their owners at scrape
 * time and written with http_metrics_family / http_metrics_sample.
 *
 *     struct http_metrics *m = http_metrics_new(routes, n_routes);   // http_route.h
 *     http_metrics_request(m, route->id, 200, 0.012, 1834);         // per request
 *     struct dbuf out = DBUF_INIT(0);
 *     http_metrics_render(m, &out);
 *     http_metrics_family(&out, "clipd_images", "gauge", "Images stored.");
 *     http_metrics_sample(&out, "clipd_images", NULL, 1234);
 *
 * Lock-free counters (atomics): safe from every thread.
 */
#ifndef CLIPD_HTTP_METRICS_H
#define CLIPD_HTTP_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"
#include "http_route.h"

#define HTTP_METRICS_MAX_ROUTES 256
/* Route labels: indexes of the route table, then these. */
#define HTTP_METRIC_ROUTE_STATIC (-2)   /* a web asset */
#define HTTP_METRIC_ROUTE_NONE (-1)     /* no route matched */

struct http_metrics;

/* Counters for n_routes routes (labelled by routes[i].name; the table is
 * borrowed and must outlive the metrics), plus web assets and unmatched
 * requests. NULL when out of memory or n_routes > HTTP_METRICS_MAX_ROUTES. */
struct http_metrics *http_metrics_new(const struct http_route *routes, size_t n_routes);
void http_metrics_free(struct http_metrics *m);

void http_metrics_request(struct http_metrics *m, int route, unsigned status, double seconds, uint64_t bytes);
/* Request body bytes received (read or discarded), by route. */
void http_metrics_request_body(struct http_metrics *m, int route, uint64_t bytes);
uint64_t http_metrics_requests(struct http_metrics *m);

/* clipd_http_requests_total{route,status}, clipd_http_request_duration_seconds{route},
 * clipd_http_response_bytes_total{route}, clipd_http_request_bytes_total{route}. */
void http_metrics_render(struct http_metrics *m, struct dbuf *out);

/* "# HELP name help\n# TYPE name type\n" */
void http_metrics_family(struct dbuf *out, const char *name, const char *type, const char *help);
/* "name{labels} value\n"; labels is "a=\"b\"" text or NULL. */
void http_metrics_sample(struct dbuf *out, const char *name, const char *labels, double value);

#endif
