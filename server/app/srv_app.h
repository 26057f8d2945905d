/*
 * srv_app.h - the daemon's state shared by its request handlers, and the
 * handlers themselves (one file per family: srv_images.c, srv_search.c,
 * srv_status.c, srv_libraries_http.c), dispatched by route from
 * srv_handle (srv_dispatch.c).
 * What they share: replies and error translation (srv_reply.c), an
 * upload's intake checks (srv_intake.c), search parameters
 * (srv_search_params.c).
 *
 *     struct srv_app app = { .cfg = &cfg, ... };
 *     hp.handler = srv_handle;  hp.ud = &app;  hp.ready = srv_ready;
 *
 * Handlers run on HTTP threads. Work that takes long (decoding, encoding,
 * writing originals) goes to the encoder's workers with the request
 * suspended (http_suspend / http_resume); SQLite reads and index searches
 * run on the HTTP thread (milliseconds).
 */
#ifndef CLIPD_SRV_APP_H
#define CLIPD_SRV_APP_H

#include <stdatomic.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "catalog.h"
#include "clip.h"
#include "http.h"
#include "srv_config.h"
#include "srv_encode.h"
#include "srv_library.h"
#include "http_metrics.h"
#include "srv_queue.h"
#include "srv_routes.h"

struct srv_app {
	const struct srv_config *cfg;
	clip_model *model;            /* NULL until loaded */
	catalog *cat;                 /* NULL until opened */
	struct srv_encoder *enc;      /* NULL until started */
	struct srv_pool *commits;     /* stores uploads (blob, row, index): disk waits off the decoders */
	struct srv_libraries *libraries;  /* --library folders and their scanner; NULL until ready */
	struct http_metrics *metrics;
	struct http_server *http;
	const struct http_keys *keys;
	atomic_int ready;
	/* 1 once model, dim, logit_scale, model_name and fingerprint are set
	 * (the data directory is open); /info answers before ready and reads
	 * them only then (a race ThreadSanitizer found). */
	atomic_int model_known;
	atomic_uint_fast64_t searches_batched;  /* text searches whose index part ran with others (one pass) */
	double started;               /* clock_mono_s() at start-up */
	char model_name[128];
	char fingerprint[STORE_FINGERPRINT_HEX];
	size_t dim;
	float logit_scale;
	const char *warning;          /* --model-warning, or NULL */
	char index_message[256];      /* what happened to the index at open */
};

/* The router's dispatch (http_server_params.handler); r->srv's ud is the app. */
void srv_handle(struct http_req *r);
/* http_server_params.ready */
int srv_ready(void *app);

struct srv_app *srv_app_of(struct http_req *r);

/* Families of handlers. */
void srv_images_create(struct srv_app *app, struct http_req *r);
void srv_images_list(struct srv_app *app, struct http_req *r);
void srv_image_get(struct srv_app *app, struct http_req *r);
void srv_image_patch(struct srv_app *app, struct http_req *r);
void srv_image_delete(struct srv_app *app, struct http_req *r);
void srv_image_file(struct srv_app *app, struct http_req *r);
void srv_image_thumbnail(struct srv_app *app, struct http_req *r);

void srv_search_text(struct srv_app *app, struct http_req *r);
void srv_search_similar(struct srv_app *app, struct http_req *r);
void srv_search_image(struct srv_app *app, struct http_req *r);
void srv_classify(struct srv_app *app, struct http_req *r);
void srv_embed(struct srv_app *app, struct http_req *r);
void srv_search_json(struct srv_app *app, struct http_req *r);
void srv_image_duplicates(struct srv_app *app, struct http_req *r);
void srv_duplicates(struct srv_app *app, struct http_req *r);
/* GET /export: the collection as a tar of srv_export.h's files (srv_export.c). */
void srv_export(struct srv_app *app, struct http_req *r);

void srv_libraries_list(struct srv_app *app, struct http_req *r);
void srv_library_scan(struct srv_app *app, struct http_req *r);
void srv_library_errors(struct srv_app *app, struct http_req *r);
/* The libraries' lines of /metrics (srv_libraries_http.c). */
void srv_libraries_metrics(struct srv_app *app, struct dbuf *b);

void srv_status_healthz(struct srv_app *app, struct http_req *r);
void srv_status_readyz(struct srv_app *app, struct http_req *r);
void srv_status_info(struct srv_app *app, struct http_req *r);
void srv_status_metrics(struct srv_app *app, struct http_req *r);
void srv_status_openapi(struct srv_app *app, struct http_req *r);

/* ---- shared by the handlers ------------------------------------------------ */

/* The one translation of each library's codes into the API's errors
 * (srv_reply.c): a clip_status (or SRV_ENC_OVERLOADED) and a store_status.
 * Codes no table lists are the server's fault: HTTP_ERR_INTERNAL. */
enum http_err srv_clip_http_error(int clip_status);
enum http_err srv_store_http_error(int store_status);
/* Seconds a client is told to wait (Retry-After) when the catalog's
 * database cannot be reached: a restart or a failover takes seconds. */
#define SRV_CATALOG_RETRY_AFTER 2
/* Answer a store_/catalog_ failure with its error (logged when it is ours;
 * catalog_unavailable with Retry-After). */
void srv_reply_store_error(struct http_req *r, const store_error *err);
/* Answer what the encoder, its queues or the probe refused (a clip_status
 * or SRV_ENC_OVERLOADED, with Retry-After), logged when it is ours. */
void srv_reply_clip_error(struct http_req *r, int status, const char *msg);

/* The parts of one suspended request that finish on other threads. The count starts at one, held by the handler while it
 * hands parts out, so that no part can resume the request before the last
 * one is handed over; the last srv_parts_done resumes it (srv_parts.c).
 *
 *     srv_parts_begin(&c->parts, r);         // after http_suspend
 *     srv_parts_add(&c->parts);              // for each part started ...
 *     if (submit(part) != 0) srv_parts_done(&c->parts);   // ... or not started
 *     srv_parts_done(&c->parts);             // the handler's own share */
struct srv_parts {
	atomic_size_t pending;
	struct http_req *r;
};
void srv_parts_begin(struct srv_parts *p, struct http_req *r);
void srv_parts_add(struct srv_parts *p);
void srv_parts_done(struct srv_parts *p);
/* The JSON "model": {"name", "fingerprint", "dim"}. */
cJSON *srv_model_json(const struct srv_app *app);
/* Print and answer (takes root). */
void srv_reply_cjson(struct http_req *r, unsigned status, cJSON *root);
/* The same with extra header lines ("Name: value", NULL-terminated). */
void srv_reply_cjson_headers(struct http_req *r, unsigned status, cJSON *root, const char *const *headers);

/* An uploaded image's bytes: the raw body (Content-Type image/... or
 * application/octet-stream) or the multipart part named "file". Sets
 * *data and *len (borrowed from the request) and *filename (may be NULL), or
 * answers (415 for another content type, 400 for a missing file part) and
 * returns -1. */
int srv_request_image(struct http_req *r, const void **data, size_t *len, const char **filename);

/* Check an image's header before any work: its type (415) and pixels (413),
 * or a header that cannot be read (422). Returns 0 and fills width, height
 * and mime, or -1 with the error's code and message (srv_check_image) or
 * after answering with it (srv_probe_image). */
#define SRV_IMAGE_MSG_MAX 512
int srv_check_image(const struct srv_app *app, const void *data, size_t len, int *width, int *height,
		    const char **mime, enum http_err *code, char *msg, size_t msglen);
int srv_probe_image(struct srv_app *app, struct http_req *r, const void *data, size_t len,
		    int *width, int *height, const char **mime);

/* Search parameters from the query string shared by /search, /similar and
 * /search/image: k, min_score, filter.KEY, after, before, taken_after,
 * taken_before, library
 * (srv_search_params.c). Answers 400 and returns -1 on a bad one. q.filters
 * points into sp->filters, whose keys and values point into the request:
 * valid for the request's life, nothing to free. */
struct srv_search_params {
	struct catalog_query q;
	struct store_filter filters[STORE_MAX_FILTERS];
	size_t k;
};
int srv_parse_search_params(struct srv_app *app, struct http_req *r, struct srv_search_params *sp);
/* A library's name as a selection takes it (library= in a query string,
 * "library" in POST /search's body; v NULL when absent): 0 and *library
 * (v itself, borrowed; NULL when absent), or an answer and -1: 400
 * bad_parameter when v is not a library's name or names no library the
 * catalog knows (one served with --library now or before). */
int srv_parse_library(struct srv_app *app, struct http_req *r, const char *v, const char **library);
/* Only the selection (filter.KEY, after, before, taken_after, taken_before, library), into sel with its
 * filters in filters (STORE_MAX_FILTERS of them): for GET /images. */
int srv_parse_selection(struct srv_app *app, struct http_req *r, struct store_selection *sel,
			struct store_filter *filters);
/* Check a selection built otherwise (POST /search): 400 naming the filter
 * with prefix before its key. */
int srv_check_selection(struct http_req *r, const struct store_selection *sel, const char *prefix);
/* k: 1 to --max-k, or answered 400. */
int srv_parse_k(struct srv_app *app, struct http_req *r, const char *v, size_t *k);
/* A search's query as the client composed it (srv_search_query.c): texts,
 * stored images and embeddings, each weighted, added or (negative)
 * subtracted; the query vector is the normalised weighted sum. Filled
 * from GET /search's q, image, not, not_image, mode, rrf_k and the search
 * parameters, or from POST /search's JSON; answered 400 (or 404 for an
 * image) and -1 when something does not fit. Free with srv_query_clear. */
#define SRV_MAX_QUERY_PARTS 16
enum srv_part_kind { SRV_PART_TEXT, SRV_PART_IMAGE, SRV_PART_EMBEDDING };
struct srv_query_part {
	enum srv_part_kind kind;
	int negative;
	double weight;          /* (0, 100] */
	char *text;             /* TEXT: valid UTF-8, malloc'd */
	int64_t image_id;       /* IMAGE */
	float *vec;             /* IMAGE: its stored vector; EMBEDDING: the given one, unit length (dim, malloc'd) */
};
struct srv_query {
	struct srv_query_part parts[SRV_MAX_QUERY_PARTS];
	size_t n;
	struct srv_search_params sp;   /* k, min_score, the selection, mode, rrf_k, keywords */
	char *keywords, *not_keywords; /* the positive and negative texts joined (keyword, hybrid) */
	char *owned[2 * STORE_MAX_FILTERS + 1];   /* POST /search's filter keys and values, its library */
	size_t n_owned;
};
int srv_query_from_params(struct srv_app *app, struct http_req *r, struct srv_query *q);
int srv_query_from_json(struct srv_app *app, struct http_req *r, const cJSON *j, struct srv_query *q);
void srv_query_clear(struct srv_query *q);
/* The texts to encode, in part order (*texts malloc'd, the strings borrowed). */
size_t srv_query_texts(const struct srv_query *q, char ***texts);
/* The weighted sum (not normalised) into out (dim); text_vecs in srv_query_texts' order. */
void srv_query_compose(const struct srv_query *q, const float *text_vecs, size_t dim, float *out);
/* {"text": [{"q", "weight"}], "images": [{"id" | "embedding", "weight"}], "not": [...], "mode", "rrf_k"} */
cJSON *srv_query_json(const struct srv_query *q);
const char *srv_query_first_text(const struct srv_query *q);
/* One positive text, semantic: its index search may run with its text batch. */
int srv_query_plain_text(const struct srv_query *q);

/* srv_encode_params.after_text_batch for the server (ud: the srv_app). */
void srv_search_after_text_batch(void *ud, void *const *jobs, size_t n);
/* The search response: {"query", "k", "model", "took_ms", "exhaustive",
 * "results"}, and "composition" when given; each result with its "score"
 * and the "sources" it came from ("semantic", "keyword"; with "ranks").
 * query and composition (may be NULL) are taken (cJSON). */
void srv_reply_results(struct srv_app *app, struct http_req *r, cJSON *query, cJSON *composition, size_t k,
		       enum catalog_mode mode, const struct catalog_results *res);

#endif
