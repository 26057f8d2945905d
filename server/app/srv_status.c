/*
 * Liveness, readiness, /info, /metrics and /openapi.json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assets.h"
#include "clock.h"
#include "srv_app.h"
#include "srv_json.h"

/* Built from server/app/openapi.json (server/app/meson.build). */
extern const struct clipd_asset clipd_openapi_assets[];

void srv_status_healthz(struct srv_app *app, struct http_req *r)
{
	(void)app;
	http_reply_text(r, 200, "application/json", "{\"status\":\"ok\"}");
}

void srv_status_readyz(struct srv_app *app, struct http_req *r)
{
	if (!atomic_load(&app->ready)) {
		http_reply_error_retry(r, HTTP_ERR_NOT_READY, 1, "the model or the index is still loading");
		return;
	}
	/* A node of a shared catalog whose replica is behind: a load balancer
	 * routes around it until it catches up. */
	struct catalog_lag lag;
	catalog_lag(app->cat, &lag);
	if (lag.lag_s > (double)app->cfg->max_lag) {
		http_reply_error_retry(r, HTTP_ERR_NOT_READY, 1, "this node's index is %.1f s behind the catalog (applied "
				       "change %llu, the latest is %llu; --max-lag %lld)", lag.lag_s,
				       (unsigned long long)lag.applied, (unsigned long long)lag.latest, app->cfg->max_lag);
		return;
	}
	char body[512];
	snprintf(body, sizeof body, "{\"status\":\"ready\",\"applied_seq\":%llu,\"latest_seq\":%llu,\"lag_s\":%.3f}",
		 (unsigned long long)lag.applied, (unsigned long long)lag.latest, lag.lag_s);
	http_reply_text(r, 200, "application/json", body);
}

static cJSON *batcher_json(const struct srv_batcher_stats *q, const struct clip_ctx_stats *ctx, int images)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "batches", (double)(images ? ctx->image_batches : ctx->text_batches));
	cJSON_AddNumberToObject(o, "items", (double)(images ? ctx->images : ctx->texts));
	if (images)
		cJSON_AddNumberToObject(o, "max_batch", (double)ctx->max_image_batch);
	cJSON_AddNumberToObject(o, "queue_passes", (double)q->batches);
	cJSON_AddNumberToObject(o, "queue_max_batch", (double)q->max_batch_items);
	cJSON_AddNumberToObject(o, "queue_depth", (double)q->depth_weight);
	cJSON_AddNumberToObject(o, "rejected", (double)q->rejected);
	return o;
}

void srv_status_info(struct srv_app *app, struct http_req *r)
{
	const struct srv_config *cfg = app->cfg;
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "version", CLIPD_VERSION);
	cJSON_AddBoolToObject(root, "ready", atomic_load(&app->ready));
	cJSON_AddNumberToObject(root, "uptime_s", clock_mono_s() - app->started);
	if (app->warning)
		cJSON_AddStringToObject(root, "warning", app->warning);
	else
		cJSON_AddNullToObject(root, "warning");
	if (!atomic_load(&app->model_known)) {
		cJSON_AddNullToObject(root, "model");   /* still loading */
	} else {
		cJSON *model = srv_model_json(app);
		cJSON_AddItemToObject(root, "model", model);
		cJSON_AddStringToObject(model, "layout", clip_model_layout(app->model));
		cJSON_AddNumberToObject(model, "image_size", clip_model_image_size(app->model));
		cJSON_AddNumberToObject(model, "context_length", clip_model_context_length(app->model));
		cJSON_AddNumberToObject(model, "logit_scale", clip_model_logit_scale(app->model));
		cJSON_AddStringToObject(model, "precision", clip_model_precision(app->model));
		cJSON_AddStringToObject(model, "kernel", clip_model_kernel(app->model));
	}
	if (atomic_load(&app->ready)) {
		struct catalog_stats st;
		store_error err = { 0 };
		if (catalog_stats(app->cat, &st, &err) == 0) {
			cJSON_AddNumberToObject(root, "images", (double)st.images);
			cJSON *ix = cJSON_AddObjectToObject(root, "index");
			cJSON_AddStringToObject(ix, "type", st.index_type);
			cJSON_AddBoolToObject(ix, "exact", st.index_exact);
			cJSON_AddNumberToObject(ix, "vectors", (double)st.index_count);
			cJSON_AddBoolToObject(ix, "training", st.index_training);
			cJSON_AddNumberToObject(ix, "seq", (double)st.seq);
			cJSON_AddNumberToObject(ix, "saved_seq", (double)st.saved_seq);
			cJSON_AddNumberToObject(ix, "file_bytes", (double)st.index_file_bytes);
			cJSON_AddStringToObject(ix, "at_start", app->index_message);
			if (catalog_shared(app->cat)) {   /* one node trains, every node builds from it */
				cJSON_AddNumberToObject(ix, "params_generation", (double)st.params_generation);
				cJSON_AddNumberToObject(ix, "trained_here", (double)st.trained_here);
				if (st.train_error[0])
					cJSON_AddStringToObject(ix, "train_error", st.train_error);
			}
			cJSON_AddNumberToObject(root, "db_bytes", (double)st.db_bytes);
		}
		struct rowcache_stats rs;
		if (catalog_row_cache_stats(app->cat, &rs)) {
			cJSON *rc = cJSON_AddObjectToObject(root, "row_cache");
			cJSON_AddNumberToObject(rc, "entries", (double)rs.entries);
			cJSON_AddNumberToObject(rc, "bytes", (double)rs.bytes);
			cJSON_AddNumberToObject(rc, "max_bytes", (double)rs.max_bytes);
			cJSON_AddNumberToObject(rc, "hits", (double)rs.hits);
			cJSON_AddNumberToObject(rc, "misses", (double)rs.misses);
			cJSON_AddNumberToObject(rc, "evictions", (double)rs.evictions);
			cJSON_AddNumberToObject(rc, "invalidations", (double)rs.invalidations);
			cJSON_AddNumberToObject(rc, "flushes", (double)rs.flushes);
		} else {
			cJSON_AddNullToObject(root, "row_cache");
		}
		struct srv_encoder_stats es;
		srv_encoder_get_stats(app->enc, &es);
		cJSON *enc = cJSON_AddObjectToObject(root, "encoder");
		cJSON_AddItemToObject(enc, "image", batcher_json(&es.image_queue, &es.image_ctx, 1));
		cJSON_AddItemToObject(enc, "text", batcher_json(&es.text_queue, &es.text_ctx, 0));
		cJSON *cache = cJSON_AddObjectToObject(enc, "text_cache");
		cJSON_AddNumberToObject(cache, "entries", (double)es.text_cache.entries);
		cJSON_AddNumberToObject(cache, "capacity", (double)es.text_cache.capacity);
		cJSON_AddNumberToObject(cache, "hits", (double)es.text_cache.hits);
		cJSON_AddNumberToObject(cache, "misses", (double)es.text_cache.misses);
		cJSON_AddStringToObject(enc, "blas", clip_blas_name());
		cJSON_AddStringToObject(enc, "blas_core", clip_blas_core());
	} else {
		cJSON_AddNullToObject(root, "images");
		cJSON_AddNullToObject(root, "index");
		cJSON_AddNullToObject(root, "row_cache");
	}
	/* What uploads may be (the 415's list), and how JPEGs are decoded. */
	cJSON *types = cJSON_AddArrayToObject(root, "image_types");
	for (const char *const *t = clip_image_types(); *t; t++)
		cJSON_AddItemToArray(types, cJSON_CreateString(*t));
	cJSON_AddBoolToObject(root, "exact_decode", cfg->exact_decode);
	cJSON *lim = cJSON_AddObjectToObject(root, "limits");
	cJSON_AddNumberToObject(lim, "max_body", (double)cfg->max_body);
	cJSON_AddNumberToObject(lim, "max_pixels", (double)cfg->max_pixels);
	cJSON_AddNumberToObject(lim, "decode_budget", (double)cfg->decode_budget);
	cJSON_AddNumberToObject(lim, "max_query", (double)cfg->max_query);
	cJSON_AddNumberToObject(lim, "max_request_target", (double)srv_config_max_uri(cfg));
	cJSON_AddNumberToObject(lim, "max_k", (double)cfg->max_k);
	cJSON_AddNumberToObject(lim, "max_labels", (double)cfg->max_labels);
	cJSON_AddNumberToObject(lim, "max_texts", (double)cfg->max_texts);
	cJSON_AddNumberToObject(lim, "max_metadata", (double)cfg->max_metadata);
	cJSON_AddNumberToObject(lim, "max_metadata_depth", (double)cfg->max_metadata_depth);
	cJSON_AddNumberToObject(lim, "max_files", (double)cfg->max_files);
	cJSON_AddNumberToObject(lim, "max_list", (double)cfg->max_list);
	cJSON_AddNumberToObject(lim, "max_connections", (double)cfg->max_connections);
	cJSON_AddNumberToObject(lim, "max_connections_per_ip", (double)cfg->max_connections_per_ip);
	cJSON_AddNumberToObject(lim, "timeout_s", (double)cfg->timeout);
	cJSON_AddNumberToObject(lim, "rate_limit", cfg->rate_limit);
	cJSON_AddNumberToObject(lim, "rate_burst", (double)cfg->rate_burst);
	cJSON *thumbs = cJSON_AddArrayToObject(lim, "thumbnail_sizes");
	cJSON_AddItemToArray(thumbs, cJSON_CreateNumber(128));
	cJSON_AddItemToArray(thumbs, cJSON_CreateNumber(256));
	cJSON_AddItemToArray(thumbs, cJSON_CreateNumber(512));
	cJSON *b = cJSON_AddObjectToObject(root, "batching");
	cJSON_AddNumberToObject(b, "batch_size", (double)cfg->batch_size);
	cJSON_AddNumberToObject(b, "batch_wait_ms", (double)cfg->batch_wait_ms);
	cJSON_AddNumberToObject(b, "queue_size", (double)cfg->queue_size);
	cJSON_AddNumberToObject(b, "text_batch_size", (double)cfg->text_batch_size);
	cJSON_AddNumberToObject(b, "text_batch_wait_ms", (double)cfg->text_batch_wait_ms);
	cJSON_AddNumberToObject(b, "text_cache", (double)cfg->text_cache);
	cJSON_AddBoolToObject(root, "auth", app->keys != NULL);
	srv_reply_cjson(r, 200, root);
}

static void gauge(struct dbuf *b, const char *name, const char *help, double v)
{
	http_metrics_family(b, name, "gauge", help);
	http_metrics_sample(b, name, NULL, v);
}

static void counter(struct dbuf *b, const char *name, const char *help, double v)
{
	http_metrics_family(b, name, "counter", help);
	http_metrics_sample(b, name, NULL, v);
}

/* A histogram of batch sizes from a batcher's per-size counts. */
static void batch_histogram(struct dbuf *b, const char *path, const struct srv_batcher_stats *q)
{
	static const int bounds[] = { 1, 2, 4, 8, 16, 32, 64 };
	uint64_t count = 0, sum = 0;
	for (int n = 0; n <= SRV_BATCH_HIST; n++) {
		count += q->hist[n];
		sum += q->hist[n] * (uint64_t)n;
	}
	for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
		uint64_t c = 0;
		for (int n = 0; n <= bounds[i] && n <= SRV_BATCH_HIST; n++)
			c += q->hist[n];
		dbuf_printf(b, "clipd_encoder_batch_size_bucket{path=\"%s\",le=\"%d\"} %llu\n", path, bounds[i],
			       (unsigned long long)c);
	}
	dbuf_printf(b, "clipd_encoder_batch_size_bucket{path=\"%s\",le=\"+Inf\"} %llu\n", path,
		       (unsigned long long)count);
	dbuf_printf(b, "clipd_encoder_batch_size_sum{path=\"%s\"} %llu\n", path, (unsigned long long)sum);
	dbuf_printf(b, "clipd_encoder_batch_size_count{path=\"%s\"} %llu\n", path, (unsigned long long)count);
}

void srv_status_metrics(struct srv_app *app, struct http_req *r)
{
	struct dbuf b = DBUF_INIT(0);
	http_metrics_render(app->metrics, &b);
	gauge(&b, "clipd_ready", "1 once the model is loaded and the index is ready.", atomic_load(&app->ready));
	gauge(&b, "clipd_uptime_seconds", "Seconds since start-up.", clock_mono_s() - app->started);
	gauge(&b, "clipd_http_requests_in_flight", "Requests being handled.", (double)http_server_inflight(app->http));
	gauge(&b, "clipd_http_connections", "Open connections.", (double)http_server_connections(app->http));
	if (atomic_load(&app->ready)) {
		struct catalog_stats st;
		store_error err = { 0 };
		if (catalog_stats(app->cat, &st, &err) == 0) {
			gauge(&b, "clipd_images", "Images stored.", (double)st.images);
			gauge(&b, "clipd_index_vectors", "Vectors in the search index.", (double)st.index_count);
			gauge(&b, "clipd_index_exact", "1 when the index is exact (flat).", st.index_exact);
			gauge(&b, "clipd_index_unsaved_changes", "Index changes not yet saved.",
			      (double)catalog_unsaved_changes(app->cat));
			gauge(&b, "clipd_db_bytes", "Bytes of the database and its WAL.", (double)st.db_bytes);
		}
		struct srv_encoder_stats es;
		srv_encoder_get_stats(app->enc, &es);
		http_metrics_family(&b, "clipd_encoder_passes_total", "counter", "Encoder passes (batches), by path.");
		dbuf_printf(&b, "clipd_encoder_passes_total{path=\"image\"} %llu\n",
			       (unsigned long long)es.image_ctx.image_batches);
		dbuf_printf(&b, "clipd_encoder_passes_total{path=\"text\"} %llu\n",
			       (unsigned long long)es.text_ctx.text_batches);
		http_metrics_family(&b, "clipd_encoder_items_total", "counter", "Images or texts encoded, by path.");
		dbuf_printf(&b, "clipd_encoder_items_total{path=\"image\"} %llu\n", (unsigned long long)es.image_ctx.images);
		dbuf_printf(&b, "clipd_encoder_items_total{path=\"text\"} %llu\n", (unsigned long long)es.text_ctx.texts);
		gauge(&b, "clipd_encoder_max_image_batch", "The largest image batch the encoder has run.",
		      (double)es.image_ctx.max_image_batch);
		http_metrics_family(&b, "clipd_encoder_batch_size", "histogram", "Jobs per encoder pass, by path.");
		batch_histogram(&b, "image", &es.image_queue);
		batch_histogram(&b, "text", &es.text_queue);
		http_metrics_family(&b, "clipd_queue_depth", "gauge", "Work waiting, by queue.");
		dbuf_printf(&b, "clipd_queue_depth{queue=\"decode\"} %zu\n", es.decode_queue);
		dbuf_printf(&b, "clipd_queue_depth{queue=\"image\"} %zu\n", es.image_queue.depth_weight);
		dbuf_printf(&b, "clipd_queue_depth{queue=\"text\"} %zu\n", es.text_queue.depth_weight);
		http_metrics_family(&b, "clipd_queue_rejected_total", "counter", "Jobs refused because a queue was full.");
		dbuf_printf(&b, "clipd_queue_rejected_total{queue=\"image\"} %llu\n", (unsigned long long)es.image_queue.rejected);
		dbuf_printf(&b, "clipd_queue_rejected_total{queue=\"text\"} %llu\n", (unsigned long long)es.text_queue.rejected);
		gauge(&b, "clipd_decode_pixels_in_use", "Pixels being decoded now (the decode budget's use).",
		      (double)es.budget_in_use);
		gauge(&b, "clipd_decode_pixels_budget", "The decode budget in pixels.", (double)es.budget);
		struct rowcache_stats rs;
		if (catalog_row_cache_stats(app->cat, &rs)) {
			counter(&b, "clipd_row_cache_hits_total", "Image rows found in the node's cache of the catalog's rows.",
				(double)rs.hits);
			counter(&b, "clipd_row_cache_misses_total", "Image rows read from the catalog's database.",
				(double)rs.misses);
		}
		counter(&b, "clipd_text_cache_hits_total", "Text embeddings found in the cache.", (double)es.text_cache.hits);
		counter(&b, "clipd_text_cache_misses_total", "Text embeddings not in the cache.", (double)es.text_cache.misses);
		gauge(&b, "clipd_text_cache_entries", "Text embeddings cached.", (double)es.text_cache.entries);
		counter(&b, "clipd_search_index_batched_total",
			"Text searches whose index search ran in one pass with others of their encoder batch.",
			(double)atomic_load(&app->searches_batched));
		srv_libraries_metrics(app, &b);
	}
	if (b.failed) {
		dbuf_free(&b);
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return;
	}
	size_t len = 0;
	char *text = dbuf_take(&b, &len);
	http_reply_owned(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
}

void srv_status_openapi(struct srv_app *app, struct http_req *r)
{
	(void)app;
	const struct clipd_asset *a = clipd_asset_find(clipd_openapi_assets, "openapi.json");
	if (!a) {
		http_reply_error(r, HTTP_ERR_NOT_FOUND, "this build carries no openapi.json");
		return;
	}
	const char *headers[] = { "Cache-Control: no-cache", NULL };
	http_reply_bytes(r, 200, "application/json", a->data, a->len, headers);
}
