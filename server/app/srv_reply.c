/*
 * The dispatch from routes to handlers, and what the handlers share:
 * error mapping, image intake checks, search parameters and the search
 * response shape.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "srv_app.h"
#include "srv_json.h"
#include "http_ratelimit.h"

struct srv_app *srv_app_of(struct http_req *r)
{
	return http_server_ud(r->srv);
}

int srv_ready(void *ud)
{
	struct srv_app *app = ud;
	return atomic_load(&app->ready);
}

void srv_handle(struct http_req *r)
{
	struct srv_app *app = srv_app_of(r);
	/* Readiness was checked at the headers (the HTTP layer): a request
	 * that began before a shutdown is finished, one after it gets 503. */
	switch (r->match.route->id) {
	case ROUTE_HEALTHZ: srv_status_healthz(app, r); break;
	case ROUTE_READYZ: srv_status_readyz(app, r); break;
	case ROUTE_INFO: srv_status_info(app, r); break;
	case ROUTE_METRICS: srv_status_metrics(app, r); break;
	case ROUTE_OPENAPI: srv_status_openapi(app, r); break;
	case ROUTE_IMAGES_CREATE: srv_images_create(app, r); break;
	case ROUTE_IMAGES_LIST: srv_images_list(app, r); break;
	case ROUTE_IMAGE_GET: srv_image_get(app, r); break;
	case ROUTE_IMAGE_PATCH: srv_image_patch(app, r); break;
	case ROUTE_IMAGE_DELETE: srv_image_delete(app, r); break;
	case ROUTE_IMAGE_FILE: srv_image_file(app, r); break;
	case ROUTE_IMAGE_THUMBNAIL: srv_image_thumbnail(app, r); break;
	case ROUTE_IMAGE_SIMILAR: srv_search_similar(app, r); break;
	case ROUTE_SEARCH: srv_search_text(app, r); break;
	case ROUTE_SEARCH_IMAGE: srv_search_image(app, r); break;
	case ROUTE_CLASSIFY: srv_classify(app, r); break;
	case ROUTE_EMBED: srv_embed(app, r); break;
	case ROUTE_WEB_INDEX: /* served by the HTTP layer */
	case ROUTE_COUNT:
		http_reply_error(r, HTTP_ERR_NOT_FOUND, NULL);
		break;
	}
}

void srv_reply_cjson(struct http_req *r, unsigned status, cJSON *root)
{
	char *text = root ? cJSON_PrintUnformatted(root) : NULL;
	cJSON_Delete(root);
	if (!text) {
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return;
	}
	http_reply_json(r, status, text);
}

void srv_reply_store_error(struct http_req *r, const store_error *err)
{
	switch (err->code) {
	case STORE_ERR_INVALID:
	case STORE_ERR_TOO_LARGE:
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s", err->msg);
		return;
	case STORE_ERR_NOT_FOUND:
		http_reply_error(r, HTTP_ERR_NOT_FOUND, "%s", err->msg);
		return;
	case STORE_ERR_NOSPACE:
		log_error("rid=%s: %s", r->request_id, err->msg);
		http_reply_error(r, HTTP_ERR_INSUFFICIENT_STORAGE, "%s", err->msg);
		return;
	default:
		log_error("rid=%s: %s: %s", r->request_id, store_status_name(err->code), err->msg);
		http_reply_error(r, HTTP_ERR_INTERNAL, "%s", err->msg);
		return;
	}
}

/* The error of an image refused by the probe, the decoder or the queue. */
enum http_err srv_image_http_error(int status);
enum http_err srv_image_http_error(int status)
{
	switch (status) {
	case CLIP_ERR_UNSUPPORTED: return HTTP_ERR_UNSUPPORTED_MEDIA_TYPE;
	case CLIP_ERR_UNDECODABLE:
	case CLIP_ERR_EMPTY: return HTTP_ERR_IMAGE_UNDECODABLE;
	case CLIP_ERR_TOO_LARGE: return HTTP_ERR_IMAGE_TOO_LARGE;
	case SRV_ENC_OVERLOADED: return HTTP_ERR_OVERLOADED;
	default: return HTTP_ERR_INTERNAL;
	}
}

void srv_reply_image_error(struct http_req *r, int status, const char *msg)
{
	enum http_err code = srv_image_http_error(status);
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

static int raw_image_type(const char *ct)
{
	if (!ct || !*ct)
		return 1;
	while (*ct == ' ')
		ct++;
	return !strncasecmp(ct, "image/", 6) || !strncasecmp(ct, "application/octet-stream", 24);
}

int srv_request_image(struct http_req *r, const void **data, size_t *len, const char **filename)
{
	*filename = NULL;
	if (r->multipart) {
		struct http_form_part *f = http_form_get(r, "file");
		if (!f || !f->head.has_filename) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "file: a multipart part named \"file\" (with a filename) is required");
			return -1;
		}
		*data = f->data.data ? f->data.data : "";
		*len = f->data.len;
		*filename = f->head.filename[0] ? f->head.filename : NULL;
		return 0;
	}
	if (!raw_image_type(r->content_type)) {
		http_reply_error(r, HTTP_ERR_UNSUPPORTED_MEDIA_TYPE,
				 "Content-Type %.60s is not accepted: send the image's bytes (image/jpeg, image/png, "
				 "image/gif, image/bmp or application/octet-stream) or multipart/form-data with a "
				 "\"file\" part", r->content_type);
		return -1;
	}
	*data = r->body.data ? r->body.data : "";
	*len = r->body.len;
	return 0;
}

int srv_probe_image(struct srv_app *app, struct http_req *r, const void *data, size_t len,
		    int *width, int *height, const char **mime)
{
	enum clip_image_type type;
	clip_error err = { 0 };
	int rc = clip_image_probe(data, len, &type, width, height, &err);
	if (rc != 0) {
		srv_reply_image_error(r, rc, err.msg);
		return -1;
	}
	unsigned long long pixels = (unsigned long long)*width * (unsigned long long)*height;
	if (pixels > (unsigned long long)app->cfg->max_pixels) {
		http_reply_error(r, HTTP_ERR_IMAGE_TOO_LARGE, "the image is %d x %d = %.1f megapixels, over the limit of %.1f",
				 *width, *height, (double)pixels / 1e6, (double)app->cfg->max_pixels / 1e6);
		return -1;
	}
	*mime = clip_image_mime(type);
	return 0;
}

/* ---- search parameters --------------------------------------------------- */

struct filter_collect {
	struct srv_search_params *sp;
	int error;
	char msg[200];
};

static void collect_filter(void *ud, const char *key, const char *value)
{
	struct filter_collect *fc = ud;
	if (fc->error || strncmp(key, "filter.", 7) != 0)
		return;
	if (!key[7]) {
		fc->error = 1;
		snprintf(fc->msg, sizeof fc->msg, "filter.KEY: the key after \"filter.\" is empty");
		return;
	}
	if (fc->sp->q.n_filters >= STORE_MAX_FILTERS) {
		fc->error = 1;
		snprintf(fc->msg, sizeof fc->msg, "filter.KEY: at most %d filters", STORE_MAX_FILTERS);
		return;
	}
	struct store_filter *f = &fc->sp->filters[fc->sp->q.n_filters++];
	f->key = key + 7;
	f->value = value;
}

int srv_parse_search_params(struct srv_app *app, struct http_req *r, struct srv_search_params *sp)
{
	const struct srv_config *cfg = app->cfg;
	memset(sp, 0, sizeof *sp);
	sp->q = catalog_default_query();
	sp->k = 10;
	const char *v = http_query(r, "k");
	long long k;
	if (v) {
		if (srv_parse_int(v, 1, cfg->max_k, &k) != 0) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "k: must be a whole number from 1 to %lld", cfg->max_k);
			return -1;
		}
		sp->k = (size_t)k;
	}
	sp->q.k = sp->k;
	v = http_query(r, "min_score");
	if (v) {
		double ms;
		if (srv_parse_double(v, -1.0, 1.0, &ms) != 0) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "min_score: must be a number from -1 to 1");
			return -1;
		}
		sp->q.has_min_score = 1;
		sp->q.min_score = (float)ms;
	}
	v = http_query(r, "after");
	if (v) {
		if (srv_time_parse(v, &sp->q.created_after) != 0) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "after: must be an RFC 3339 time such as 2024-05-01T12:00:00Z");
			return -1;
		}
		sp->q.has_after = 1;
	}
	v = http_query(r, "before");
	if (v) {
		if (srv_time_parse(v, &sp->q.created_before) != 0) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "before: must be an RFC 3339 time such as 2024-05-01T12:00:00Z");
			return -1;
		}
		sp->q.has_before = 1;
	}
	struct filter_collect fc = { .sp = sp };
	http_query_each(r, collect_filter, &fc);
	if (fc.error) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s", fc.msg);
		return -1;
	}
	sp->q.filters = sp->q.n_filters ? sp->filters : NULL;
	struct store_selection sel = { sp->q.filters, sp->q.n_filters, sp->q.has_after, sp->q.has_before,
				       sp->q.created_after, sp->q.created_before, 0 };
	store_error err = { 0 };
	if (store_check_selection(&sel, &err) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "filter: %s", err.msg);
		return -1;
	}
	return 0;
}

void srv_reply_results(struct srv_app *app, struct http_req *r, cJSON *query, size_t k,
		       const struct catalog_results *res)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddItemToObject(root, "query", query ? query : cJSON_CreateNull());
	cJSON_AddNumberToObject(root, "k", (double)k);
	cJSON_AddItemToObject(root, "model", srv_model_json(app));
	cJSON *took = cJSON_AddNumberToObject(root, "took_ms", 0);
	cJSON_AddBoolToObject(root, "exhaustive", res->exhaustive);
	cJSON *results = cJSON_AddArrayToObject(root, "results");
	for (size_t i = 0; i < res->n; i++) {
		cJSON *o = srv_image_json(&res->hits[i].image);
		if (!o)
			continue;
		/* Scores rounded to what a float holds: 1e-7 noise helps nobody. */
		cJSON_AddNumberToObject(o, "score", round((double)res->hits[i].score * 1e7) / 1e7);
		cJSON_AddItemToArray(results, o);
	}
	if (took)
		cJSON_SetNumberValue(took, round((srv_now() - r->start) * 1e6) / 1e3);
	srv_reply_cjson(r, 200, root);
}
