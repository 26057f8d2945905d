/*
 * srv_metrics.h - request counters and latency histograms, rendered in
 * Prometheus's text format (version 0.0.4). Other families (encoder
 * batches, queue depth, index size) are read from their owners at scrape
 * time and written with srv_metrics_family / srv_metrics_sample.
 *
 *     struct srv_metrics *m = srv_metrics_new();
 *     srv_metrics_request(m, ROUTE_SEARCH, 200, 0.012, 1834);   // per request
 *     struct srv_buf out = SRV_BUF_INIT(0);
 *     srv_metrics_render(m, &out);
 *     srv_metrics_family(&out, "clipd_images", "gauge", "Images stored.");
 *     srv_metrics_sample(&out, "clipd_images", NULL, 1234);
 *
 * Lock-free counters (atomics): safe from every thread.
 */
#ifndef CLIPD_SRV_METRICS_H
#define CLIPD_SRV_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "srv_buf.h"

/* Route labels: indexes of http_routes, then these. */
#define SRV_METRIC_ROUTE_STATIC (-2)   /* a web asset */
#define SRV_METRIC_ROUTE_NONE (-1)     /* no route matched */

struct srv_metrics;

struct srv_metrics *srv_metrics_new(void);
void srv_metrics_free(struct srv_metrics *m);

void srv_metrics_request(struct srv_metrics *m, int route, unsigned status, double seconds, uint64_t bytes);
uint64_t srv_metrics_requests(struct srv_metrics *m);

/* clipd_http_requests_total{route,status}, clipd_http_request_duration_seconds{route},
 * clipd_http_response_bytes_total{route}. */
void srv_metrics_render(struct srv_metrics *m, struct srv_buf *out);

/* "# HELP name help\n# TYPE name type\n" */
void srv_metrics_family(struct srv_buf *out, const char *name, const char *type, const char *help);
/* "name{labels} value\n"; labels is "a=\"b\"" text or NULL. */
void srv_metrics_sample(struct srv_buf *out, const char *name, const char *labels, double value);

#endif
