/*
 * http_errors.h - the one table of API error codes: each code has a stable
 * name (the JSON "code"), an HTTP status and a default message.
 *
 *     char *body = http_error_json(HTTP_ERR_BAD_PARAMETER, "k: must be 1 to 1000");
 *     // {"error": {"code": "bad_parameter", "message": "k: must be 1 to 1000"}}
 *     unsigned status = http_error_status(HTTP_ERR_BAD_PARAMETER);   // 400
 *     free(body);
 *
 * The README and openapi.json list the same table; a unit test keeps the
 * OpenAPI document and this table in agreement.
 */
#ifndef CLIPD_HTTP_ERRORS_H
#define CLIPD_HTTP_ERRORS_H

#include <stddef.h>

enum http_err {
	HTTP_ERR_BAD_PARAMETER = 0,      /* 400, the message names the parameter */
	HTTP_ERR_UNAUTHORIZED,           /* 401 */
	HTTP_ERR_FORBIDDEN,              /* 403 */
	HTTP_ERR_NOT_FOUND,              /* 404 */
	HTTP_ERR_SOURCE_MISSING,         /* 404, a library image's file changed or vanished */
	HTTP_ERR_METHOD_NOT_ALLOWED,     /* 405, with Allow */
	HTTP_ERR_BODY_TOO_LARGE,         /* 413 */
	HTTP_ERR_IMAGE_TOO_LARGE,        /* 413, the pixel limit */
	HTTP_ERR_URI_TOO_LONG,           /* 414, the request line's limits */
	HTTP_ERR_UNSUPPORTED_MEDIA_TYPE, /* 415 */
	HTTP_ERR_IMAGE_UNDECODABLE,      /* 422 */
	HTTP_ERR_RATE_LIMITED,           /* 429, with Retry-After */
	HTTP_ERR_HEADERS_TOO_LARGE,      /* 431 */
	HTTP_ERR_INTERNAL,               /* 500 */
	HTTP_ERR_NOT_READY,              /* 503 */
	HTTP_ERR_OVERLOADED,             /* 503, with Retry-After */
	HTTP_ERR_CATALOG_UNAVAILABLE,    /* 503, with Retry-After: no catalog primary reachable */
	HTTP_ERR_REPLICA_BEHIND,         /* 503, with Retry-After: min_seq not applied in time */
	HTTP_ERR_INSUFFICIENT_STORAGE,   /* 507 */
	HTTP_ERR_COUNT
};

struct http_error_info {
	enum http_err code;
	const char *name;      /* "bad_parameter" */
	unsigned status;       /* 400 */
	const char *message;   /* a default message */
};

/* The table, HTTP_ERR_COUNT entries in enum order. */
extern const struct http_error_info http_errors[HTTP_ERR_COUNT];

unsigned http_error_status(enum http_err code);
const char *http_error_name(enum http_err code);
/* The code of a name, or -1. */
int http_error_lookup(const char *name);

/* The JSON body {"error": {"code", "message"}}; message NULL means the
 * default. Returns a malloc'd NUL-terminated string (the caller frees it)
 * and its length in *len (may be NULL); NULL when out of memory. */
char *http_error_json(enum http_err code, const char *message, size_t *len);

#endif
