/*
 * http.h - the HTTP layer over libmicrohttpd: the daemon, the life of a
 * request (route, key, rate limit, body streaming under a cap, suspend and
 * resume), and responses with the headers every answer carries.
 *
 *     static void handle(struct http_req *r)       // on an HTTP thread
 *     {
 *             if (r->match.route->id == MY_ROUTE_HEALTHZ)
 *                     return http_reply_text(r, 200, "text/plain", "ok\n");
 *             // long work: hand it off and let go of the thread
 *             r->on_resume = finish;                // called on an HTTP thread
 *             http_suspend(r);
 *             submit(work, r);                      // the worker calls http_resume(r)
 *     }
 *
 *     struct http_server_params hp = http_default_params();
 *     hp.routes = my_routes;                        // the application's table (http_route.h)
 *     hp.n_routes = MY_ROUTE_COUNT;
 *     hp.handler = handle;
 *     struct http_server *srv = NULL;
 *     http_server_start(&hp, &srv, msg, sizeof msg);
 *     ...
 *     http_server_quiesce(srv);                     // stop accepting
 *     http_server_wait_idle(srv, 30.0);             // requests in flight finish
 *     http_server_stop(srv);
 *
 * A request is answered exactly once, by one http_reply_* call from the
 * handler or from on_resume, always on an HTTP thread. Between
 * http_suspend and http_resume the request belongs to the worker; after
 * http_resume the worker must not touch it. on_resume runs even when the
 * client shut down its write side meanwhile (libmicrohttpd then closes
 * the connection; its answer is written on the socket directly, see
 * answer_half_closed in http.c); it must not suspend again. Per-request
 * memory (r->app, freed by r->app_free) is released when libmicrohttpd
 * reports the request complete, aborted ones included.
 */
#ifndef CLIPD_HTTP_H
#define CLIPD_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http_errors.h"
#include "http_multipart.h"
#include "http_route.h"
#include "assets.h"
#include "http_auth.h"
#include "dbuf.h"
#include "http_metrics.h"
#include "http_net.h"

struct http_server;
struct http_req;
struct MHD_Connection;

typedef void (*http_handler_fn)(struct http_req *r);

/* The request line and headers. A request over these is answered 414
 * (uri_too_long) or 431 (headers_too_large) and logged; the connection's
 * memory (libmicrohttpd's pool) is sized from them, so that every request
 * within them fits (http.c). The request target's limit is the server's
 * max_uri (the application sizes it from its own limits). */
#define HTTP_MAX_PARAMS 128                /* query parameters */
#define HTTP_MAX_HEADERS 100               /* header fields */
#define HTTP_MAX_HEADER_BYTES (32u << 10)  /* header names and values together */
#define HTTP_DEFAULT_MAX_URI (64u << 10)   /* bytes of the request target, when max_uri is 0 */
/* An Origin longer than this (a scheme, a host name and a port take far
 * less) is never allowed by CORS, so never echoed in an answer. */
#define HTTP_MAX_ORIGIN 512
/* Connections kept, above the per-address cap, for that address's health
 * probes (routes with HTTP_ROUTE_PROBE); any other request on them is
 * answered 429 and the connection closed. */
#define HTTP_PROBE_SLOTS 4
#define HTTP_PROBE_TIMEOUT_S 10

/* A multipart part, kept whole (data capped: files by the body limit,
 * other parts by HTTP_MAX_FIELD). */
#define HTTP_MAX_FIELD (1 << 20)
struct http_form_part {
	struct http_part head;   /* name, filename, content type */
	struct dbuf data;
};

struct http_req {
	struct http_server *srv;
	struct MHD_Connection *conn;
	struct http_match match;          /* match.route NULL: a web asset or nothing */
	const char *method;               /* libmicrohttpd's, valid for the request */
	char path[HTTP_MAX_PATH + 1];
	char request_id[65];
	char client[HTTP_ADDR_MAX];        /* the client's address (X-Forwarded-For when trusted) */
	int key_index;                    /* -1: no key */
	enum http_scope scope;
	double start;                     /* clock_mono_s() at the headers */

	/* The body: raw bytes in body, or multipart parts in parts. */
	const char *content_type;         /* the header (may be NULL) */
	int multipart;
	struct dbuf body;
	struct http_form_part *parts;
	size_t n_parts;
	uint64_t body_received;

	/* The application's state for this request. */
	void *app;
	void (*app_free)(void *app);
	void (*on_resume)(struct http_req *r);

	/* internal */
	int state;
	unsigned status;
	uint64_t bytes_out;
	int body_error;                   /* an http_err to answer once the body is in, or -1 */
	char body_error_msg[160];
	struct http_multipart *mp;
	int suspended;
	int close_after;
	int web;                          /* a web asset */
	int begun;                        /* the access handler has seen it */
	int nul_in_target;                /* %00 in the path or the query */
	int resumed;                      /* http_resume called, on_resume not yet run */
	int raw;                          /* the answer is written on the socket by us (http.c) */
	int raw_sent;                     /* ... and the client took it all */
};

struct http_server_params {
	struct sockaddr_storage addr;     /* where to listen */
	socklen_t addr_len;
	unsigned threads;
	unsigned max_connections, max_connections_per_ip;
	unsigned timeout_s;               /* idle connection timeout */
	size_t max_body;
	size_t max_files;                 /* multipart parts per request */
	size_t max_uri;                   /* bytes of a request target (0: HTTP_DEFAULT_MAX_URI) */
	const struct http_keys *keys;      /* NULL: no authentication */
	double rate_limit, rate_burst;    /* 0: off */
	const struct http_cidr *proxies;   /* trusted proxies */
	size_t n_proxies;
	char *const *cors_origins;        /* "*" allows any */
	size_t n_cors_origins;
	struct http_metrics *metrics;      /* borrowed; may be NULL */
	const struct clipd_asset *assets; /* the web front-end's files (http_static.h); may be NULL */
	const struct http_route *routes;  /* the API's routes (ids = indexes), borrowed */
	size_t n_routes;
	http_handler_fn handler;          /* routed API requests */
	int (*ready)(void *ud);           /* nonzero once the API may be served */
	void *ud;                         /* for ready(); also http_server_ud() */
};
struct http_server_params http_default_params(void);

/* Bind, listen and start the threads. 0, or -1 with a message. */
int http_server_start(const struct http_server_params *p, struct http_server **out, char *msg, size_t msglen);
/* The port listened on (the chosen one for port 0). */
unsigned http_server_port(const struct http_server *srv);
void *http_server_ud(const struct http_server *srv);
/* Stop accepting connections (the listening socket is closed); requests
 * in flight and keep-alive connections continue, with Connection: close. */
void http_server_quiesce(struct http_server *srv);
/* Wait until no request is in flight, at most timeout seconds. 0 if idle. */
int http_server_wait_idle(struct http_server *srv, double timeout);
/* Close every connection and free the server. No request may be suspended. */
void http_server_stop(struct http_server *srv);
/* The memory libmicrohttpd gets per connection for a request target of
 * max_uri bytes and the header limits above. */
size_t http_connection_memory(size_t max_uri);
/* Requests in flight, connections open. */
size_t http_server_inflight(const struct http_server *srv);
size_t http_server_connections(const struct http_server *srv);

/* ---- in a handler --------------------------------------------------------- */

/* A query argument (decoded), or NULL. */
const char *http_query(struct http_req *r, const char *key);
/* Call fn for every query argument (repeated keys included, in order). */
void http_query_each(struct http_req *r, void (*fn)(void *ud, const char *key, const char *value), void *ud);
/* A request header, or NULL. */
const char *http_header(struct http_req *r, const char *name);
/* The first part named name, or NULL. */
struct http_form_part *http_form_get(struct http_req *r, const char *name);

/* Let go of the HTTP thread; a worker calls http_resume when done, and then
 * r->on_resume runs on an HTTP thread and answers. */
void http_suspend(struct http_req *r);
void http_resume(struct http_req *r);

/* Responses. Each adds X-Content-Type-Options: nosniff, X-Request-Id, the
 * CORS headers when the origin is allowed, and Cache-Control: no-store
 * unless headers set one. headers: NULL or "Name: value" strings ending
 * with NULL. Return 0, or -1 if libmicrohttpd refused (logged). */
int http_reply_bytes(struct http_req *r, unsigned status, const char *content_type,
		     const void *data, size_t len, const char *const *headers);
/* Takes ownership of data (malloc'd), freed after sending. */
int http_reply_owned(struct http_req *r, unsigned status, const char *content_type,
		     void *data, size_t len, const char *const *headers);
int http_reply_text(struct http_req *r, unsigned status, const char *content_type, const char *text);
/* Takes ownership of json (a malloc'd string, e.g. from cJSON_PrintUnformatted). */
int http_reply_json(struct http_req *r, unsigned status, char *json);
/* The error body {"error": {"code", "message"}}, message printf-style (NULL: the default). */
int http_reply_error(struct http_req *r, enum http_err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* As above, with a Retry-After header (seconds). */
int http_reply_error_retry(struct http_req *r, enum http_err code, unsigned retry_after,
			   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A file's bytes from an open descriptor (taken: closed after sending). */
int http_reply_fd(struct http_req *r, unsigned status, const char *content_type, int fd,
		  uint64_t size, const char *const *headers);
/* A body of size bytes produced as it is sent: read(ud, pos, buf, max)
 * fills buf with up to max bytes at offset pos and returns how many (> 0),
 * or -1 on failure (the connection is then closed: the client sees a short
 * body). done(ud) runs once when the response is finished or dropped, also
 * when this call fails. Memory stays bounded whatever size is. */
typedef long (*http_stream_fn)(void *ud, uint64_t pos, char *buf, size_t max);
int http_reply_stream(struct http_req *r, unsigned status, const char *content_type, uint64_t size,
		      http_stream_fn read, void *ud, void (*done)(void *ud), const char *const *headers);
/* 204 No Content. */
int http_reply_empty(struct http_req *r, unsigned status, const char *const *headers);

/* 1 if If-None-Match names etag (a quoted ETag) or is "*". */
int http_etag_matches(struct http_req *r, const char *etag);

#endif
