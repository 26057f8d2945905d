/*
 * Replies the handlers share: JSON bodies, the search response, and the
 * one translation of each library's status codes (the encoder's, the
 * store's) into the API's errors.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "srv_app.h"
#include "srv_json.h"
#include "clock.h"

void srv_reply_cjson(struct http_req *r, unsigned status, cJSON *root)
{
	srv_reply_cjson_headers(r, status, root, NULL);
}

void srv_reply_cjson_headers(struct http_req *r, unsigned status, cJSON *root, const char *const *headers)
{
	char *text = root ? cJSON_PrintUnformatted(root) : NULL;
	cJSON_Delete(root);
	if (!text) {
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return;
	}
	http_reply_owned(r, status, "application/json", text, strlen(text), headers);
}

/* How an encoder (or encoder queue) status becomes an API error. Anything
 * not listed is the server's fault: 500. */
static const struct { int status; enum http_err err; } clip_errors[] = {
	{ CLIP_ERR_UNSUPPORTED, HTTP_ERR_UNSUPPORTED_MEDIA_TYPE },
	{ CLIP_ERR_UNDECODABLE, HTTP_ERR_IMAGE_UNDECODABLE },
	{ CLIP_ERR_EMPTY, HTTP_ERR_IMAGE_UNDECODABLE },
	{ CLIP_ERR_TOO_LARGE, HTTP_ERR_IMAGE_TOO_LARGE },
	{ SRV_ENC_OVERLOADED, HTTP_ERR_OVERLOADED },
};

/* How a store or catalog status becomes an API error; 500 otherwise. */
static const struct { int status; enum http_err err; } store_errors[] = {
	{ STORE_ERR_INVALID, HTTP_ERR_BAD_PARAMETER },
	{ STORE_ERR_TOO_LARGE, HTTP_ERR_BAD_PARAMETER },
	{ STORE_ERR_NOT_FOUND, HTTP_ERR_NOT_FOUND },
	{ STORE_ERR_NOSPACE, HTTP_ERR_INSUFFICIENT_STORAGE },
	{ STORE_ERR_UNAVAILABLE, HTTP_ERR_CATALOG_UNAVAILABLE },
};

enum http_err srv_clip_http_error(int status)
{
	for (size_t i = 0; i < sizeof clip_errors / sizeof clip_errors[0]; i++)
		if (clip_errors[i].status == status)
			return clip_errors[i].err;
	return HTTP_ERR_INTERNAL;
}

enum http_err srv_store_http_error(int status)
{
	for (size_t i = 0; i < sizeof store_errors / sizeof store_errors[0]; i++)
		if (store_errors[i].status == status)
			return store_errors[i].err;
	return HTTP_ERR_INTERNAL;
}

void srv_reply_store_error(struct http_req *r, const store_error *err)
{
	enum http_err code = srv_store_http_error(err->code);
	if (code == HTTP_ERR_CATALOG_UNAVAILABLE) {
		/* no primary answers: nothing was written; a failover or a restart
		 * takes seconds */
		log_warn("rid=%s: %s", r->request_id, err->msg);
		http_reply_error_retry(r, code, SRV_CATALOG_RETRY_AFTER, "%s", err->msg);
		return;
	}
	if (code == HTTP_ERR_INTERNAL || code == HTTP_ERR_INSUFFICIENT_STORAGE)
		log_error("rid=%s: %s: %s", r->request_id, store_status_name(err->code), err->msg);
	http_reply_error(r, code, "%s", err->msg);
}

void srv_reply_clip_error(struct http_req *r, int status, const char *msg)
{
	enum http_err code = srv_clip_http_error(status);
	if (code == HTTP_ERR_OVERLOADED) {
		http_reply_error_retry(r, code, 1, "%s", msg && *msg ? msg : "the encoder queue is full");
		return;
	}
	if (code == HTTP_ERR_INTERNAL)
		log_error("rid=%s: encoder: %s", r->request_id, msg);
	http_reply_error(r, code, "%s", msg && *msg ? msg : http_errors[code].message);
}

cJSON *srv_model_json(const struct srv_app *app)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "name", app->model_name);
	cJSON_AddStringToObject(m, "fingerprint", app->fingerprint);
	cJSON_AddNumberToObject(m, "dim", (double)app->dim);
	return m;
}

void srv_reply_results(struct srv_app *app, struct http_req *r, cJSON *query, cJSON *composition, size_t k,
		       enum catalog_mode mode, const struct catalog_results *res)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddItemToObject(root, "query", query ? query : cJSON_CreateNull());
	if (composition)
		cJSON_AddItemToObject(root, "composition", composition);
	cJSON_AddNumberToObject(root, "k", (double)k);
	cJSON_AddItemToObject(root, "model", srv_model_json(app));
	cJSON *took = cJSON_AddNumberToObject(root, "took_ms", 0);
	cJSON_AddBoolToObject(root, "exhaustive", res->exhaustive);
	/* the catalog's database is out of reach: this node's index replica
	 * ranked, the rows could not be read (ids and scores only) */
	if (res->rows_missing)
		cJSON_AddBoolToObject(root, "catalog_unavailable", 1);
	cJSON *results = cJSON_AddArrayToObject(root, "results");
	for (size_t i = 0; i < res->n; i++) {
		const struct catalog_hit *h = &res->hits[i];
		cJSON *o = NULL;
		if (res->rows_missing) {
			if ((o = cJSON_CreateObject()) != NULL)
				cJSON_AddNumberToObject(o, "id", (double)h->image.id);
		} else {
			o = srv_image_json(&h->image);
		}
		if (!o)
			continue;
		/* Scores rounded to what a float holds: 1e-7 noise helps nobody.
		 * Hybrid: the fusion score as it is (sums of 1/(k + rank)). */
		if (mode == CATALOG_HYBRID) {
			cJSON_AddNumberToObject(o, "score", h->fused);
			if (h->semantic_rank)
				cJSON_AddNumberToObject(o, "cosine", round((double)h->score * 1e7) / 1e7);
		} else {
			cJSON_AddNumberToObject(o, "score", round((double)h->score * 1e7) / 1e7);
		}
		cJSON *sources = cJSON_AddArrayToObject(o, "sources");
		cJSON *ranks = cJSON_AddObjectToObject(o, "ranks");
		if (h->semantic_rank) {
			cJSON_AddItemToArray(sources, cJSON_CreateString("semantic"));
			cJSON_AddNumberToObject(ranks, "semantic", h->semantic_rank);
		}
		if (h->keyword_rank) {
			cJSON_AddItemToArray(sources, cJSON_CreateString("keyword"));
			cJSON_AddNumberToObject(ranks, "keyword", h->keyword_rank);
		}
		cJSON_AddItemToArray(results, o);
	}
	if (took)
		cJSON_SetNumberValue(took, round((clock_mono_s() - r->start) * 1e6) / 1e3);
	srv_reply_cjson(r, 200, root);
}
