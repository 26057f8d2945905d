#include "http_errors.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

const struct http_error_info http_errors[HTTP_ERR_COUNT] = {
	{ HTTP_ERR_BAD_PARAMETER, "bad_parameter", 400, "a parameter is missing or invalid" },
	{ HTTP_ERR_UNAUTHORIZED, "unauthorized", 401, "a valid API key is required (Authorization: Bearer KEY)" },
	{ HTTP_ERR_FORBIDDEN, "forbidden", 403, "this API key may not do that" },
	{ HTTP_ERR_NOT_FOUND, "not_found", 404, "no such resource" },
	{ HTTP_ERR_SOURCE_MISSING, "source_missing", 404,
	  "the image's file in its library changed or vanished since it was indexed; the next scan updates it" },
	{ HTTP_ERR_METHOD_NOT_ALLOWED, "method_not_allowed", 405, "method not allowed on this resource" },
	{ HTTP_ERR_BODY_TOO_LARGE, "body_too_large", 413, "the request body is larger than allowed" },
	{ HTTP_ERR_IMAGE_TOO_LARGE, "image_too_large", 413, "the image has more pixels than allowed" },
	{ HTTP_ERR_URI_TOO_LONG, "uri_too_long", 414, "the request line is longer or has more parameters than allowed" },
	{ HTTP_ERR_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", 415,
	  "unsupported media type; images must be JPEG, PNG, GIF, BMP, WebP, HEIC, AVIF or TIFF" },
	{ HTTP_ERR_IMAGE_UNDECODABLE, "image_undecodable", 422, "the image cannot be decoded" },
	{ HTTP_ERR_RATE_LIMITED, "rate_limited", 429, "too many requests; retry later" },
	{ HTTP_ERR_HEADERS_TOO_LARGE, "headers_too_large", 431, "the request headers are larger than allowed" },
	{ HTTP_ERR_INTERNAL, "internal_error", 500, "internal error" },
	{ HTTP_ERR_NOT_READY, "not_ready", 503, "the server is not ready yet" },
	{ HTTP_ERR_OVERLOADED, "overloaded", 503, "the server is overloaded; retry later" },
	{ HTTP_ERR_CATALOG_UNAVAILABLE, "catalog_unavailable", 503,
	  "the catalog database cannot be reached; retry later" },
	{ HTTP_ERR_REPLICA_BEHIND, "replica_behind", 503,
	  "this node has not applied the change asked for (min_seq) yet; retry, or ask another node" },
	{ HTTP_ERR_INSUFFICIENT_STORAGE, "insufficient_storage", 507, "not enough storage to keep this" },
};

static const struct http_error_info *info(enum http_err code)
{
	if ((unsigned)code >= HTTP_ERR_COUNT)
		code = HTTP_ERR_INTERNAL;
	return &http_errors[code];
}

unsigned http_error_status(enum http_err code)
{
	return info(code)->status;
}

const char *http_error_name(enum http_err code)
{
	return info(code)->name;
}

int http_error_lookup(const char *name)
{
	for (int i = 0; name && i < HTTP_ERR_COUNT; i++)
		if (!strcmp(http_errors[i].name, name))
			return i;
	return -1;
}

char *http_error_json(enum http_err code, const char *message, size_t *len)
{
	char *out = NULL;
	cJSON *root = cJSON_CreateObject();
	cJSON *err = cJSON_AddObjectToObject(root, "error");
	if (!err || !cJSON_AddStringToObject(err, "code", info(code)->name)
	    || !cJSON_AddStringToObject(err, "message", message && *message ? message : info(code)->message))
		goto out;
	out = cJSON_PrintUnformatted(root);
	if (out && len)
		*len = strlen(out);
out:
	cJSON_Delete(root);
	return out;
}
