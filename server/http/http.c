#include "http.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http_raw.h"
#include "http_static.h"
#include "log.h"
#include "http_ratelimit.h"

/* r->raw: why the answer is written on the socket by us (http_raw.h). */
enum {
	HTTP_RAW_REQUEST_LINE = 1,   /* over the request line's limits (answer_raw) */
	HTTP_RAW_HALF_CLOSED,        /* a resumed request, its client's input ended (answer_half_closed) */
};

enum req_state {
	ST_BODY = 0,     /* headers seen; the body (if any) is arriving */
	ST_HANDLING,     /* the handler or on_resume is deciding */
	ST_SUSPENDED,    /* a worker has it */
	ST_ANSWERED,     /* a response is queued */
};

struct http_server {
	struct http_server_params p;
	struct MHD_Daemon *daemon;
	int listen_fd;
	unsigned port;
	struct http_ratelimit *rl;
	struct http_conncount *conns;
	struct http_static *statics;
	atomic_size_t inflight, connections;
	atomic_uint_fast64_t next_id;
	uint64_t id_salt;
	atomic_int quiescing;
};

struct http_server_params http_default_params(void)
{
	struct http_server_params p;
	memset(&p, 0, sizeof p);
	struct sockaddr_in *v4 = (struct sockaddr_in *)&p.addr;
	v4->sin_family = AF_INET;
	v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	v4->sin_port = htons(8080);
	p.addr_len = sizeof *v4;
	p.threads = 4;
	p.max_connections = 1024;
	p.max_connections_per_ip = 64;
	p.timeout_s = 60;
	p.max_body = 32u << 20;
	p.max_files = 64;
	return p;
}

/* ---- responses ------------------------------------------------------------ */

static int origin_allowed(const struct http_server *srv, const char *origin)
{
	if (!origin || !*origin || strlen(origin) > HTTP_MAX_ORIGIN)
		return 0;
	for (size_t i = 0; i < srv->p.n_cors_origins; i++)
		if (!strcmp(srv->p.cors_origins[i], "*") || !strcasecmp(srv->p.cors_origins[i], origin))
			return 1;
	return 0;
}

static int has_header(const char *const *headers, const char *name)
{
	size_t n = strlen(name);
	for (; headers && *headers; headers++)
		if (!strncasecmp(*headers, name, n) && (*headers)[n] == ':')
			return 1;
	return 0;
}

/* Call add(ud, name, value) for every header an answer carries: the
 * content type, the ones every answer has, the caller's (headers), CORS
 * when the origin is allowed, and Connection: close when asked to. */
static void each_header(struct http_req *r, const char *content_type, const char *const *headers, int close,
			void (*add)(void *ud, const char *name, const char *value), void *ud)
{
	if (content_type)
		add(ud, "Content-Type", content_type);
	add(ud, "X-Content-Type-Options", "nosniff");
	add(ud, "X-Request-Id", r->request_id);
	char name[64];
	for (const char *const *h = headers; h && *h; h++) {
		const char *colon = strchr(*h, ':');
		if (!colon || (size_t)(colon - *h) >= sizeof name)
			continue;
		memcpy(name, *h, (size_t)(colon - *h));
		name[colon - *h] = 0;
		const char *value = colon + 1;
		while (*value == ' ')
			value++;
		add(ud, name, value);
	}
	if (!has_header(headers, "Cache-Control"))
		add(ud, "Cache-Control", "no-store");
	const char *origin = http_header(r, "Origin");
	if (origin_allowed(r->srv, origin)) {
		add(ud, "Access-Control-Allow-Origin", origin);
		add(ud, "Vary", "Origin");
		add(ud, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After, ETag, Location, Content-Length, X-Clipd-Seq");
	}
	if (close)
		add(ud, "Connection", "close");
}

/* A response's body as a reply function gives it: libmicrohttpd's to
 * send, or written on the socket by us (r->raw). */
enum body_kind {
	BODY_COPY,     /* data: the caller's, copied */
	BODY_OWNED,    /* data: malloc'd, freed after */
	BODY_STATIC,   /* data: lives as long as the program */
	BODY_FD,       /* fd: read from offset 0, closed after */
	BODY_STREAM,   /* st: produced as it is sent, freed after */
};
struct stream;
struct body {
	enum body_kind kind;
	const void *data;
	uint64_t len;
	int fd;
	struct stream *st;
};
static void stream_free(void *cls);
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max);

static void body_release(struct body *b)
{
	if (b->kind == BODY_OWNED)
		free((void *)(uintptr_t)b->data);
	else if (b->kind == BODY_FD)
		close(b->fd);
	else if (b->kind == BODY_STREAM)
		stream_free(b->st);
}

/* libmicrohttpd's response for b, which it then owns (released on failure). */
static struct MHD_Response *body_response(struct body *b)
{
	struct MHD_Response *resp = NULL;
	void *data = (void *)(uintptr_t)b->data;
	switch (b->kind) {
	case BODY_COPY:
		return MHD_create_response_from_buffer((size_t)b->len, data, MHD_RESPMEM_MUST_COPY);
	case BODY_STATIC:
		return MHD_create_response_from_buffer((size_t)b->len, data, MHD_RESPMEM_PERSISTENT);
	case BODY_OWNED:
		resp = MHD_create_response_from_buffer_with_free_callback((size_t)b->len, data, free);
		break;
	case BODY_FD:
		resp = MHD_create_response_from_fd64(b->len, b->fd);
		break;
	case BODY_STREAM:
		resp = MHD_create_response_from_callback(b->len, 64 * 1024, stream_read, b->st, stream_free);
		break;
	}
	if (!resp)
		body_release(b);
	return resp;
}

static long body_read(void *ud, uint64_t pos, char *buf, size_t max)
{
	struct body *b = ud;
	if (b->kind == BODY_FD) {
		ssize_t got;
		do
			got = pread(b->fd, buf, max, (off_t)pos);
		while (got < 0 && errno == EINTR);
		return got > 0 ? (long)got : -1;
	}
	ssize_t got = stream_read(b->st, pos, buf, max);
	return got > 0 ? (long)got : -1;
}

static void add_raw_header(void *ud, const char *name, const char *value)
{
	dbuf_printf(ud, "%s: %s\r\n", name, value);
}

/* Write the answer on the socket ourselves (http_raw.h); the connection
 * closes after it. A HEAD request gets the head alone. */
static int queue_raw(struct http_req *r, unsigned status, struct body *b, const char *content_type,
		     const char *const *headers)
{
	const char *reason = MHD_get_reason_phrase_for(status);
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&now, &tm));
	struct dbuf head = DBUF_INIT(HTTP_MAX_HEADER_BYTES);
	dbuf_printf(&head, "HTTP/1.1 %u %s\r\nDate: %s\r\nContent-Length: %llu\r\n", status,
		    reason && *reason ? reason : "Unknown", date, (unsigned long long)b->len);
	each_header(r, content_type, headers, 1, add_raw_header, &head);
	dbuf_puts(&head, "\r\n");
	int head_only = !strcmp(r->method, "HEAD");
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	int rc = -1;
	if (ci && !head.failed) {
		int direct = b->kind == BODY_COPY || b->kind == BODY_OWNED || b->kind == BODY_STATIC;
		rc = http_raw_send(ci->connect_fd, head.data, head.len, head_only ? 0 : b->len,
				   direct ? NULL : body_read, direct ? (void *)(uintptr_t)b->data : (void *)b,
				   HTTP_RAW_SEND_TIMEOUT_S);
	}
	dbuf_free(&head);
	body_release(b);
	r->status = status;
	r->bytes_out = b->len;
	r->state = ST_ANSWERED;
	r->close_after = 1;
	r->raw_sent = rc == 0;
	return 0;
}

static void add_mhd_header(void *ud, const char *name, const char *value)
{
	MHD_add_response_header(ud, name, value);
}

static int queue(struct http_req *r, unsigned status, struct body *b, const char *content_type,
		 const char *const *headers)
{
	if (r->raw)
		return queue_raw(r, status, b, content_type, headers);
	uint64_t len = b->len;
	struct MHD_Response *resp = body_response(b);
	if (!resp) {
		log_error("rid=%s: cannot create a response (out of memory)", r->request_id);
		return -1;
	}
	each_header(r, content_type, headers, r->close_after || atomic_load(&r->srv->quiescing), add_mhd_header,
		    resp);
	enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	if (ok != MHD_YES) {
		log_error("rid=%s: libmicrohttpd refused the response", r->request_id);
		return -1;
	}
	r->status = status;
	r->bytes_out = len;
	r->state = ST_ANSWERED;
	return 0;
}

int http_reply_bytes(struct http_req *r, unsigned status, const char *content_type,
		     const void *data, size_t len, const char *const *headers)
{
	struct body b = { .kind = BODY_COPY, .data = data, .len = len };
	return queue(r, status, &b, content_type, headers);
}

int http_reply_owned(struct http_req *r, unsigned status, const char *content_type,
		     void *data, size_t len, const char *const *headers)
{
	struct body b = { .kind = BODY_OWNED, .data = data, .len = len };
	return queue(r, status, &b, content_type, headers);
}

int http_reply_text(struct http_req *r, unsigned status, const char *content_type, const char *text)
{
	return http_reply_bytes(r, status, content_type, text, strlen(text), NULL);
}

int http_reply_json(struct http_req *r, unsigned status, char *json)
{
	if (!json)
		return http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
	return http_reply_owned(r, status, "application/json", json, strlen(json), NULL);
}

static int reply_error_v(struct http_req *r, enum http_err code, const char *const *headers,
			 const char *fmt, va_list ap)
{
	char msg[512] = "";
	if (fmt)
		vsnprintf(msg, sizeof msg, fmt, ap);
	size_t len = 0;
	char *body = http_error_json(code, msg[0] ? msg : NULL, &len);
	if (!body)
		return -1;
	return http_reply_owned(r, http_error_status(code), "application/json", body, len, headers);
}

int http_reply_error(struct http_req *r, enum http_err code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc;
	if (code == HTTP_ERR_METHOD_NOT_ALLOWED) {
		char allow[96];
		snprintf(allow, sizeof allow, "Allow: %s", r->match.allow);
		const char *h[] = { allow, NULL };
		rc = reply_error_v(r, code, h, fmt, ap);
	} else if (code == HTTP_ERR_UNAUTHORIZED) {
		const char *h[] = { "WWW-Authenticate: Bearer realm=\"clipd\"", NULL };
		rc = reply_error_v(r, code, h, fmt, ap);
	} else {
		rc = reply_error_v(r, code, NULL, fmt, ap);
	}
	va_end(ap);
	return rc;
}

int http_reply_error_retry(struct http_req *r, enum http_err code, unsigned retry_after,
			   const char *fmt, ...)
{
	char retry[48];
	snprintf(retry, sizeof retry, "Retry-After: %u", retry_after ? retry_after : 1);
	const char *h[] = { retry, NULL };
	va_list ap;
	va_start(ap, fmt);
	int rc = reply_error_v(r, code, h, fmt, ap);
	va_end(ap);
	return rc;
}

int http_reply_fd(struct http_req *r, unsigned status, const char *content_type, int fd,
		  uint64_t size, const char *const *headers)
{
	struct body b = { .kind = BODY_FD, .len = size, .fd = fd };
	return queue(r, status, &b, content_type, headers);
}

struct stream {
	http_stream_fn read;
	void (*done)(void *ud);
	void *ud;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *st = cls;
	long got = st->read(st->ud, pos, buf, max);
	return got > 0 ? (ssize_t)got : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
	struct stream *st = cls;
	if (st->done)
		st->done(st->ud);
	free(st);
}

int http_reply_stream(struct http_req *r, unsigned status, const char *content_type, uint64_t size,
		      http_stream_fn read, void *ud, void (*done)(void *ud), const char *const *headers)
{
	struct stream *st = malloc(sizeof *st);
	if (!st) {
		if (done)
			done(ud);
		log_error("rid=%s: cannot create a response (out of memory)", r->request_id);
		return -1;
	}
	*st = (struct stream){ read, done, ud };
	struct body b = { .kind = BODY_STREAM, .len = size, .st = st };
	return queue(r, status, &b, content_type, headers);
}

int http_reply_empty(struct http_req *r, unsigned status, const char *const *headers)
{
	struct body b = { .kind = BODY_STATIC, .data = "", .len = 0 };
	return queue(r, status, &b, NULL, headers);
}

int http_etag_matches(struct http_req *r, const char *etag)
{
	const char *inm = http_header(r, "If-None-Match");
	if (!inm || !etag)
		return 0;
	if (!strcmp(inm, "*"))
		return 1;
	size_t n = strlen(etag);
	for (const char *p = inm; (p = strstr(p, etag)) != NULL; p += n) {
		char after = p[n];
		if (after == 0 || after == ',' || after == ' ')
			return 1;
	}
	return 0;
}

/* ---- request helpers ---------------------------------------------------- */

const char *http_query(struct http_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

struct query_iter {
	void (*fn)(void *ud, const char *key, const char *value);
	void *ud;
};

static enum MHD_Result query_each_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	struct query_iter *it = cls;
	it->fn(it->ud, key, value ? value : "");
	return MHD_YES;
}

void http_query_each(struct http_req *r, void (*fn)(void *ud, const char *key, const char *value), void *ud)
{
	struct query_iter it = { fn, ud };
	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_each_cb, &it);
}

const char *http_header(struct http_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

struct http_form_part *http_form_get(struct http_req *r, const char *name)
{
	for (size_t i = 0; i < r->n_parts; i++)
		if (!strcmp(r->parts[i].head.name, name))
			return &r->parts[i];
	return NULL;
}

void http_suspend(struct http_req *r)
{
	if (r->raw) {
		/* on_resume after a half-close (answer_half_closed) cannot wait
		 * again: the connection is closing (no on_resume suspends; this
		 * says so if one ever does). Left unanswered, the request gets
		 * a 500. */
		log_error("rid=%s: %s %s: suspended again after its connection closed", r->request_id, r->method,
			  r->path);
		return;
	}
	r->state = ST_SUSPENDED;
	r->suspended = 1;
	MHD_suspend_connection(r->conn);
}

void http_resume(struct http_req *r)
{
	/* The last touch of r by the worker: libmicrohttpd's lock orders our
	 * writes before the HTTP thread's reads. */
	r->resumed = 1;
	MHD_resume_connection(r->conn);
}

/* ---- the request's life ------------------------------------------------------ */

static void make_request_id(struct http_server *srv, struct http_req *r)
{
	const char *given = http_header(r, "X-Request-Id");
	if (given) {
		size_t n = strlen(given);
		int ok = n >= 1 && n <= 64;
		for (size_t i = 0; ok && i < n; i++) {
			char c = given[i];
			ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
			     || c == '-' || c == '_' || c == '.';
		}
		if (ok) {
			memcpy(r->request_id, given, n + 1);
			return;
		}
	}
	uint64_t n = atomic_fetch_add(&srv->next_id, 1);
	snprintf(r->request_id, sizeof r->request_id, "%08llx%08llx",
		 (unsigned long long)(srv->id_salt & 0xffffffffu), (unsigned long long)(n & 0xffffffffu));
}

static void free_request(struct http_req *r)
{
	if (!r)
		return;
	if (r->app_free)
		r->app_free(r->app);
	dbuf_free(&r->body);
	for (size_t i = 0; i < r->n_parts; i++)
		dbuf_free(&r->parts[i].data);
	free(r->parts);
	http_multipart_free(r->mp);
	free(r);
}

/* Multipart callbacks: each part kept whole. */
static int mp_begin(void *ud, const struct http_part *part)
{
	struct http_req *r = ud;
	if (r->n_parts >= r->srv->p.max_files + 8)
		return HTTP_MP_ERR_TOO_MANY;
	struct http_form_part *grown = realloc(r->parts, (r->n_parts + 1) * sizeof *grown);
	if (!grown)
		return HTTP_MP_ERR_NOMEM;
	r->parts = grown;
	struct http_form_part *p = &r->parts[r->n_parts++];
	memset(p, 0, sizeof *p);
	p->head = *part;
	p->data.max = part->has_filename ? r->srv->p.max_body : HTTP_MAX_FIELD;
	return 0;
}

static int mp_data(void *ud, const char *data, size_t len)
{
	struct http_req *r = ud;
	struct http_form_part *p = &r->parts[r->n_parts - 1];
	if (dbuf_append(&p->data, data, len) != 0)
		return HTTP_MP_ERR_NOMEM;
	return 0;
}

static int mp_end(void *ud)
{
	(void)ud;
	return 0;
}

static const struct http_multipart_callbacks mp_callbacks = { mp_begin, mp_data, mp_end };

static void set_body_error(struct http_req *r, enum http_err code, const char *msg)
{
	if (r->body_error >= 0)
		return;
	r->body_error = (int)code;
	snprintf(r->body_error_msg, sizeof r->body_error_msg, "%s", msg);
}

/* A piece of the body: count it, keep it (under the cap) or drop it. */
static void receive(struct http_req *r, const char *data, size_t len)
{
	struct http_server *srv = r->srv;
	r->body_received += len;
	if (r->body_error >= 0)
		return;   /* discarding the rest */
	if (r->body_received > srv->p.max_body) {
		char msg[128];
		snprintf(msg, sizeof msg, "the body is larger than %zu bytes", srv->p.max_body);
		set_body_error(r, HTTP_ERR_BODY_TOO_LARGE, msg);
		r->close_after = 1;
		/* Let go of what we kept: the rest is read and dropped. */
		dbuf_free(&r->body);
		for (size_t i = 0; i < r->n_parts; i++)
			dbuf_free(&r->parts[i].data);
		return;
	}
	if (!r->match.route || !r->match.route->body)
		return;   /* a body the route does not read: counted, dropped */
	if (r->mp) {
		int rc = http_multipart_feed(r->mp, data, len);
		if (rc == HTTP_MP_ERR_NOMEM) {
			/* A non-file part over HTTP_MAX_FIELD, or memory. */
			char msg[128];
			snprintf(msg, sizeof msg, "a form field is larger than %d bytes (or memory ran out)",
				 HTTP_MAX_FIELD);
			set_body_error(r, HTTP_ERR_BODY_TOO_LARGE, msg);
		} else if (rc == HTTP_MP_ERR_TOO_MANY) {
			char msg[128];
			snprintf(msg, sizeof msg, "files: more than %zu parts", srv->p.max_files);
			set_body_error(r, HTTP_ERR_BAD_PARAMETER, msg);
		} else if (rc != 0) {
			char msg[160];
			snprintf(msg, sizeof msg, "body: malformed multipart/form-data: %s", http_multipart_error(r->mp));
			set_body_error(r, HTTP_ERR_BAD_PARAMETER, msg);
		}
		return;
	}
	if (r->body.cap == 0) {
		/* Size the buffer from Content-Length once (it is under the cap). */
		const char *cl = http_header(r, "Content-Length");
		unsigned long long want = cl ? strtoull(cl, NULL, 10) : 0;
		if (want > len && want <= srv->p.max_body) {
			r->body.data = malloc((size_t)want + 1);
			if (r->body.data)
				r->body.cap = (size_t)want + 1;
		}
	}
	if (dbuf_append(&r->body, data, len) != 0)
		set_body_error(r, HTTP_ERR_INTERNAL, "out of memory for the body");
}

static int preflight(struct http_req *r, const char *allow)
{
	const char *origin = http_header(r, "Origin");
	const char *want = http_header(r, "Access-Control-Request-Method");
	if (!origin || !want) {
		char h[96];
		snprintf(h, sizeof h, "Allow: %s", allow);
		const char *headers[] = { h, NULL };
		return http_reply_empty(r, 204, headers);
	}
	if (!origin_allowed(r->srv, origin))
		return http_reply_error(r, HTTP_ERR_FORBIDDEN, "origin %s is not allowed (CORS)", origin);
	char methods[112];
	snprintf(methods, sizeof methods, "Access-Control-Allow-Methods: %s", allow);
	const char *headers[] = {
		methods,
		"Access-Control-Allow-Headers: Authorization, Content-Type, X-Request-Id, If-None-Match",
		"Access-Control-Max-Age: 600",
		NULL,
	};
	return http_reply_empty(r, 204, headers);
}

static int reply_static(struct http_req *r, const struct http_static_file *f)
{
	const char *headers[] = {
		"Cache-Control: no-cache",
		"Content-Security-Policy: " HTTP_CSP,
		"Referrer-Policy: no-referrer",
		"X-Frame-Options: DENY",
		NULL,   /* ETag */
		NULL,
	};
	char etag[96];
	snprintf(etag, sizeof etag, "ETag: %s", f->etag);
	headers[4] = etag;
	if (http_etag_matches(r, f->etag))
		return http_reply_empty(r, 304, headers);
	struct body b = { .kind = BODY_STATIC, .data = f->data, .len = f->len };
	return queue(r, 200, &b, f->content_type, headers);
}

static struct http_req *new_request(struct http_server *srv, struct MHD_Connection *conn)
{
	struct http_req *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	atomic_fetch_add(&srv->inflight, 1);
	r->srv = srv;
	r->conn = conn;
	r->method = "-";
	r->start = clock_mono_s();
	r->key_index = -1;
	r->body_error = -1;
	r->body.max = 1;   /* nothing kept unless the route reads bodies */
	return r;
}

/*
 * Answer straight on the socket, before libmicrohttpd has parsed the
 * query string. libmicrohttpd 0.9.75 keeps a record per query parameter in
 * the connection's memory pool; when they do not fit, it means to answer
 * 431 but has no memory left to, and the connection idles until its
 * timeout with no answer (issue 17). So a request line over the limits is
 * answered here, the write side is closed (the answer is all the client
 * gets), and libmicrohttpd is left to fail on its own and close.
 */
static void answer_raw(struct http_req *r, enum http_err code, const char *msg)
{
	r->raw = HTTP_RAW_REQUEST_LINE;
	http_reply_error(r, code, "%s", msg);
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci)
		shutdown(ci->connect_fd, SHUT_WR);
	log_warn("%s %s %u: %s rid=%s client=%s", r->method, r->path, r->status, msg, r->request_id, r->client);
}

/*
 * libmicrohttpd's first look at a request: the raw request target (before
 * percent-decoding and before the query string is split), so the limits of
 * the request line are checked here, and a %00 is seen before decoding
 * turns it into an end of string. The http_req made here is the one the
 * access handler gets.
 */
static void *uri_logged(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_server *srv = cls;
	struct http_req *r = new_request(srv, conn);
	if (!r)
		return NULL;
	size_t n = strlen(uri), params = 0;
	const char *q = strchr(uri, '?');
	if (q)
		for (params = 1, q++; *q; q++)
			params += *q == '&';
	q = strchr(uri, '?');
	size_t path_len = q ? (size_t)(q - uri) : n;
	snprintf(r->path, sizeof r->path, "%.*s", (int)(path_len < HTTP_MAX_PATH ? path_len : HTTP_MAX_PATH), uri);
	make_request_id(srv, r);
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	http_client_address(ci ? ci->client_addr : NULL, NULL, NULL, 0, r->client);
	size_t max_uri = srv->p.max_uri ? srv->p.max_uri : HTTP_DEFAULT_MAX_URI;
	char msg[160];
	if (n > max_uri) {
		snprintf(msg, sizeof msg, "the request target is %zu bytes, more than the limit of %zu", n, max_uri);
		answer_raw(r, HTTP_ERR_URI_TOO_LONG, msg);
	} else if (params > HTTP_MAX_PARAMS) {
		snprintf(msg, sizeof msg, "the query has %zu parameters, more than the limit of %d", params,
			 HTTP_MAX_PARAMS);
		answer_raw(r, HTTP_ERR_URI_TOO_LONG, msg);
	} else {
		for (const char *p = strchr(uri, '%'); p && !r->nul_in_target; p = strchr(p + 1, '%'))
			r->nul_in_target = p[1] == '0' && p[2] == '0';
	}
	return r;
}

struct header_count {
	size_t n, bytes;
};

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	struct header_count *c = cls;
	c->n++;
	c->bytes += strlen(key) + (value ? strlen(value) : 0);
	return MHD_YES;
}

/* Per connection (libmicrohttpd's socket context). */
struct conn_ctx {
	char addr[HTTP_ADDR_MAX];
	int probe_only;   /* over the per-address cap: health probes only */
};

/* The checks made as soon as the headers are in. Returns 1 when the
 * request was answered, 0 to go on to the body. */
static int first_call(struct http_req *r, const char *url)
{
	struct http_server *srv = r->srv;
	struct header_count hc = { 0, 0 };
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_header, &hc);
	if (hc.n > HTTP_MAX_HEADERS || hc.bytes > HTTP_MAX_HEADER_BYTES) {
		r->close_after = 1;
		log_warn("%s %s: %zu header fields, %zu bytes: over the limits (%d, %u) rid=%s client=%s", r->method,
			 r->path, hc.n, hc.bytes, HTTP_MAX_HEADERS, HTTP_MAX_HEADER_BYTES, r->request_id, r->client);
		return http_reply_error(r, HTTP_ERR_HEADERS_TOO_LARGE,
					"%zu header fields of %zu bytes; the limits are %d fields and %u bytes", hc.n,
					hc.bytes, HTTP_MAX_HEADERS, HTTP_MAX_HEADER_BYTES), 1;
	}
	enum http_match_result m = http_route_match(srv->p.routes, srv->p.n_routes, r->method, url, &r->match);
	int is_options = !strcmp(r->method, "OPTIONS");

	const union MHD_ConnectionInfo *sc = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	const struct conn_ctx *cc = sc ? sc->socket_context : NULL;
	if (cc && cc->probe_only && !(m == HTTP_MATCH_FOUND && (r->match.route->flags & HTTP_ROUTE_PROBE))) {
		r->close_after = 1;
		memset(&r->match, 0, sizeof r->match);
		return http_reply_error_retry(r, HTTP_ERR_RATE_LIMITED, 1,
					      "more than %u connections are open from %s; this one may only "
					      "ask /healthz or /readyz", srv->p.max_connections_per_ip, cc->addr), 1;
	}
	if (r->nul_in_target) {
		memset(&r->match, 0, sizeof r->match);
		return http_reply_error(r, HTTP_ERR_BAD_PARAMETER,
					"the path or a parameter contains %%00 (a NUL byte)"), 1;
	}

	if (m == HTTP_MATCH_NONE || (m == HTTP_MATCH_FOUND && (r->match.route->flags & HTTP_ROUTE_WEB))) {
		const struct http_static_file *f = http_static_find(srv->statics, url);
		if (f) {
			memset(&r->match, 0, sizeof r->match);
			r->web = 1;
			snprintf(r->match.allow, sizeof r->match.allow, "GET, HEAD, OPTIONS");
			if (is_options)
				return preflight(r, r->match.allow), 1;
			if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD"))
				return http_reply_error(r, HTTP_ERR_METHOD_NOT_ALLOWED, "%s is not allowed on %s",
							r->method, url), 1;
			return reply_static(r, f), 1;
		}
		if (m == HTTP_MATCH_NONE) {
			memset(&r->match, 0, sizeof r->match);
			return http_reply_error(r, HTTP_ERR_NOT_FOUND, "no route %s", url), 1;
		}
	}
	if (is_options)
		return preflight(r, r->match.allow), 1;
	if (m == HTTP_MATCH_METHOD)
		return http_reply_error(r, HTTP_ERR_METHOD_NOT_ALLOWED, "%s is not allowed on %s (allowed: %s)",
					r->method, url, r->match.allow), 1;

	const struct http_route *route = r->match.route;
	if (srv->p.keys && route->access != HTTP_ACCESS_OPEN) {
		r->scope = http_keys_check(srv->p.keys, http_header(r, "Authorization"), &r->key_index);
		if (r->scope == HTTP_SCOPE_NONE)
			return http_reply_error(r, HTTP_ERR_UNAUTHORIZED,
						http_header(r, "Authorization") ? "the API key is not valid"
										: "an API key is required (Authorization: Bearer KEY)"), 1;
		if (route->access == HTTP_ACCESS_WRITE && r->scope != HTTP_SCOPE_WRITE)
			return http_reply_error(r, HTTP_ERR_FORBIDDEN, "this key is read-only; %s %s needs a write key",
						r->method, route->path), 1;
	}
	if (srv->rl && route->access != HTTP_ACCESS_OPEN) {
		char who[HTTP_ADDR_MAX + 16];
		if (r->key_index >= 0)
			snprintf(who, sizeof who, "key#%d", r->key_index);
		else
			snprintf(who, sizeof who, "ip:%s", r->client);
		double retry = 0;
		if (!http_ratelimit_take(srv->rl, who, clock_mono_s(), &retry))
			return http_reply_error_retry(r, HTTP_ERR_RATE_LIMITED, (unsigned)(retry + 0.999),
						      "more than %g requests per second", srv->p.rate_limit), 1;
	}
	if (route->access != HTTP_ACCESS_OPEN && !(route->flags & HTTP_ROUTE_UNGATED)
	    && srv->p.ready && !srv->p.ready(srv->p.ud))
		return http_reply_error_retry(r, HTTP_ERR_NOT_READY, 1, "the model or the index is still loading"), 1;

	const char *cl = http_header(r, "Content-Length");
	if (cl) {
		char *end = NULL;
		errno = 0;
		unsigned long long n = strtoull(cl, &end, 10);
		if (errno || end == cl || n > srv->p.max_body) {
			r->close_after = 1;
			return http_reply_error(r, HTTP_ERR_BODY_TOO_LARGE, "the body is larger than %zu bytes",
						srv->p.max_body), 1;
		}
	}
	if (route->body) {
		r->content_type = http_header(r, "Content-Type");
		char boundary[HTTP_MP_MAX_BOUNDARY + 1];
		if (r->content_type && !strncasecmp(r->content_type, "multipart/form-data", 19)) {
			if (http_multipart_boundary(r->content_type, boundary, sizeof boundary) != 0)
				return http_reply_error(r, HTTP_ERR_BAD_PARAMETER,
							"Content-Type: multipart/form-data needs a valid boundary"), 1;
			r->multipart = 1;
			r->mp = http_multipart_new(boundary, &mp_callbacks, r, srv->p.max_files + 8);
			if (!r->mp)
				return http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory"), 1;
		}
		r->body.max = srv->p.max_body;
	}
	return 0;
}

static void run_handler(struct http_req *r)
{
	struct http_server *srv = r->srv;
	r->state = ST_HANDLING;
	if (r->body_error >= 0) {
		http_reply_error(r, (enum http_err)r->body_error, "%s", r->body_error_msg);
		return;
	}
	if (r->mp && http_multipart_finish(r->mp) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "body: malformed multipart/form-data: %s",
				 http_multipart_error(r->mp));
		return;
	}
	srv->p.handler(r);
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
				      const char *method, const char *version, const char *upload_data,
				      size_t *upload_data_size, void **con_cls)
{
	(void)version;
	struct http_server *srv = cls;
	struct http_req *r = *con_cls;
	if (!r && !(r = *con_cls = new_request(srv, conn)))
		return MHD_NO;
	if (!r->begun) {
		r->begun = 1;
		r->method = method;
		if (r->state == ST_ANSWERED)
			return MHD_YES;   /* answered from the request line (uri_logged) */
		snprintf(r->path, sizeof r->path, "%s", url);
		make_request_id(srv, r);
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		http_client_address(ci ? ci->client_addr : NULL, http_header(r, "X-Forwarded-For"),
				   srv->p.proxies, srv->p.n_proxies, r->client);
		first_call(r, url);
		return MHD_YES;
	}
	if (r->state == ST_ANSWERED)
		return MHD_YES;
	if (*upload_data_size) {
		receive(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->state == ST_BODY) {
		run_handler(r);
	} else if (r->state == ST_SUSPENDED) {
		/* Resumed by a worker. */
		r->suspended = 0;
		r->resumed = 0;
		r->state = ST_HANDLING;
		if (r->on_resume)
			r->on_resume(r);
	}
	if (r->state == ST_HANDLING) {
		log_error("rid=%s: %s %s: the handler gave no answer", r->request_id, method, r->path);
		http_reply_error(r, HTTP_ERR_INTERNAL, NULL);
	}
	return MHD_YES;
}

/*
 * A resumed request whose connection libmicrohttpd closes before its
 * answer. libmicrohttpd 0.9.75 reads a resumed connection before it calls
 * the access handler again, and takes the end of input there (a client
 * that shut down its write side after a complete request, as it may) as
 * an error: it closes the connection, and calls request_completed first,
 * while the socket is still open and not yet shut down. So the answer
 * on_resume gives is written on the socket here (queue_raw), whatever the
 * moment the client's FIN arrived: before the worker finished, between
 * its resume and the HTTP thread's read, or with the request itself.
 */
static void answer_half_closed(struct http_req *r)
{
	r->raw = HTTP_RAW_HALF_CLOSED;
	r->suspended = 0;
	r->state = ST_HANDLING;
	if (r->on_resume)
		r->on_resume(r);
	if (r->state != ST_ANSWERED) {
		log_error("rid=%s: %s %s: the handler gave no answer", r->request_id, r->method, r->path);
		http_reply_error(r, HTTP_ERR_INTERNAL, NULL);
	}
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			      enum MHD_RequestTerminationCode toe)
{
	(void)conn;
	struct http_server *srv = cls;
	struct http_req *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	if (r->state == ST_SUSPENDED && r->resumed && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		answer_half_closed(r);
	double ms = (clock_mono_s() - r->start) * 1e3;
	int route = r->match.route ? (int)r->match.route->id
				   : r->web ? HTTP_METRIC_ROUTE_STATIC : HTTP_METRIC_ROUTE_NONE;
	http_metrics_request(srv->p.metrics, route, r->status, ms / 1e3, r->bytes_out);
	http_metrics_request_body(srv->p.metrics, route, r->body_received);
	const char *how = r->raw ? (!r->raw_sent ? " aborted" : r->raw == HTTP_RAW_HALF_CLOSED ? " half-closed" : "")
				 : toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted";
	char key[24] = "";
	if (r->key_index >= 0)
		snprintf(key, sizeof key, " key=#%d", r->key_index);
	log_info("%s %s %u %lluB %.1fms rid=%s client=%s%s%s", r->method, r->path, r->status,
		 (unsigned long long)r->bytes_out, ms, r->request_id, r->client, key, how);
	free_request(r);
	atomic_fetch_sub(&srv->inflight, 1);
}

/* ---- connections ------------------------------------------------------------- */

static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	(void)addrlen;
	struct http_server *srv = cls;
	if (atomic_load(&srv->quiescing))
		return MHD_NO;
	if (!srv->conns || http_cidr_match_any(srv->p.proxies, srv->p.n_proxies, addr))
		return MHD_YES;
	char text[HTTP_ADDR_MAX];
	http_addr_text(addr, text);
	if (http_conncount_allowed(srv->conns, text, HTTP_PROBE_SLOTS))
		return MHD_YES;
	log_warn("refused a connection from %s: %u connections already open from there (and %d for probes)",
		 text, srv->p.max_connections_per_ip, HTTP_PROBE_SLOTS);
	return MHD_NO;
}

static void connection_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
			      enum MHD_ConnectionNotificationCode code)
{
	struct http_server *srv = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		atomic_fetch_add(&srv->connections, 1);
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (!srv->conns || !ci || http_cidr_match_any(srv->p.proxies, srv->p.n_proxies, ci->client_addr))
			return;
		struct conn_ctx *cc = calloc(1, sizeof *cc);
		if (!cc)
			return;
		http_addr_text(ci->client_addr, cc->addr);
		size_t n = http_conncount_add(srv->conns, cc->addr);
		if (n > srv->p.max_connections_per_ip) {
			/* One of the probe slots: a short idle timeout, and only the
			 * health probes are answered on it (first_call). */
			cc->probe_only = 1;
			MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)HTTP_PROBE_TIMEOUT_S);
		}
		*socket_context = cc;
	} else {
		atomic_fetch_sub(&srv->connections, 1);
		struct conn_ctx *cc = *socket_context;
		if (cc) {
			http_conncount_remove(srv->conns, cc->addr);
			free(cc);
			*socket_context = NULL;
		}
	}
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = 0;
	/* libmicrohttpd's own answers to a request over its memory (414, 431)
	 * are worth a line; the rest of what it says is detail. */
	if (strstr(line, "Error processing request") || strstr(line, "Not enough memory")
	    || strstr(line, "too big") || strstr(line, "too long")) {
		char *html = strstr(line, " ('<html>");
		if (html)
			strcpy(html, ")");
		log_warn("libmicrohttpd: %s", line);
	} else {
		log_debug("libmicrohttpd: %s", line);
	}
}

static int open_listener(const struct http_server_params *p, unsigned *port, char *msg, size_t msglen)
{
	int fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(msg, msglen, "socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)&p->addr, p->addr_len) != 0) {
		snprintf(msg, msglen, "bind: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, 512) != 0) {
		snprintf(msg, msglen, "listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
					 : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

int http_server_start(const struct http_server_params *p, struct http_server **out, char *msg, size_t msglen)
{
	struct http_server *srv = calloc(1, sizeof *srv);
	if (!srv) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	srv->p = *p;
	srv->listen_fd = -1;
	srv->id_salt = ((uint64_t)clock_wall_us() * 2654435761u) ^ ((uint64_t)getpid() << 16);
	if (p->rate_limit > 0) {
		srv->rl = http_ratelimit_new(p->rate_limit, p->rate_burst >= 1 ? p->rate_burst : 1, 65536);
		if (!srv->rl) {
			snprintf(msg, msglen, "cannot set up the rate limiter");
			goto fail;
		}
	}
	if (p->max_connections_per_ip) {
		srv->conns = http_conncount_new(p->max_connections_per_ip);
		if (!srv->conns) {
			snprintf(msg, msglen, "out of memory");
			goto fail;
		}
	}
	srv->statics = http_static_new(p->assets);
	if (!srv->statics) {
		snprintf(msg, msglen, "out of memory");
		goto fail;
	}
	srv->listen_fd = open_listener(p, &srv->port, msg, msglen);
	if (srv->listen_fd < 0)
		goto fail;
	/* poll(), not epoll: libmicrohttpd 0.9.75 (Debian 12) with epoll and a
	 * thread pool takes the listening socket out of each thread's epoll
	 * set in MHD_quiesce_daemon while that thread may be doing the same,
	 * and aborts the process when it loses the race ("Failed to remove
	 * listen FD from epoll set"; tests/unit/server/http/test_http_server.c
	 * hits it in one run of two). With poll() it wakes each thread instead.
	 * Each thread polls only its own share of max_connections. */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME
			 | MHD_USE_ERROR_LOG;
	srv->daemon = MHD_start_daemon(flags, 0, accept_policy, srv, access_handler, srv,
				       MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
				       MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
				       MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(p->threads ? p->threads : 1),
				       MHD_OPTION_CONNECTION_LIMIT, (unsigned)p->max_connections,
				       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)p->timeout_s,
				       MHD_OPTION_NOTIFY_COMPLETED, request_completed, srv,
				       MHD_OPTION_NOTIFY_CONNECTION, connection_notify, srv,
				       MHD_OPTION_CONNECTION_MEMORY_LIMIT,
				       http_connection_memory(p->max_uri ? p->max_uri : HTTP_DEFAULT_MAX_URI),
				       MHD_OPTION_URI_LOG_CALLBACK, uri_logged, srv,
				       MHD_OPTION_LISTEN_BACKLOG_SIZE, 512u,
				       MHD_OPTION_END);
	if (!srv->daemon) {
		snprintf(msg, msglen, "libmicrohttpd would not start (see the debug log)");
		goto fail;
	}
	*out = srv;
	return 0;
fail:
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	http_ratelimit_free(srv->rl);
	http_conncount_free(srv->conns);
	http_static_free(srv->statics);
	free(srv);
	return -1;
}

size_t http_connection_memory(size_t max_uri)
{
	/* libmicrohttpd 0.9.75 keeps in one pool per connection: the read
	 * buffer (the request line and header lines as they came, ": " and
	 * CRLF included; then body pieces), a record of under 64 bytes for
	 * every header field and query parameter, and, once the request is
	 * answered, the response's header block (our headers, an allowed
	 * Origin of at most HTTP_MAX_ORIGIN bytes echoed among them: under
	 * 4 KiB). It zeroes the whole pool after every request, so a
	 * keep-alive connection holds all of it: nothing on top but that
	 * block's room (e2e test_every_request_limit_at_once_fits: a request
	 * at every limit at once fits, and one with 18 KiB less room does
	 * not). */
	size_t need = max_uri + HTTP_MAX_HEADER_BYTES + HTTP_MAX_HEADERS * 4
		      + (HTTP_MAX_PARAMS + HTTP_MAX_HEADERS) * 64 + (16u << 10);
	return (need + 4095) & ~(size_t)4095;
}

unsigned http_server_port(const struct http_server *srv)
{
	return srv ? srv->port : 0;
}

void *http_server_ud(const struct http_server *srv)
{
	return srv ? srv->p.ud : NULL;
}

size_t http_server_inflight(const struct http_server *srv)
{
	return srv ? atomic_load(&((struct http_server *)(uintptr_t)srv)->inflight) : 0;
}

size_t http_server_connections(const struct http_server *srv)
{
	return srv ? atomic_load(&((struct http_server *)(uintptr_t)srv)->connections) : 0;
}

void http_server_quiesce(struct http_server *srv)
{
	if (!srv || atomic_exchange(&srv->quiescing, 1))
		return;
	MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
	if (fd != MHD_INVALID_SOCKET) {
		/* Closed at once for the port's clients: a thread of
		 * libmicrohttpd's still inside accept() would keep the socket
		 * listening for a moment after close() alone. */
		shutdown(fd, SHUT_RDWR);
		close(fd);
	}
	srv->listen_fd = -1;
}

int http_server_wait_idle(struct http_server *srv, double timeout)
{
	double until = clock_mono_s() + timeout;
	while (atomic_load(&srv->inflight) > 0) {
		if (clock_mono_s() > until)
			return -1;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return 0;
}

void http_server_stop(struct http_server *srv)
{
	if (!srv)
		return;
	/* Not quiesced: libmicrohttpd closes the listening socket itself. */
	MHD_stop_daemon(srv->daemon);
	http_ratelimit_free(srv->rl);
	http_conncount_free(srv->conns);
	http_static_free(srv->statics);
	free(srv);
}
