/*
 * Search by text, by stored image and by uploaded image; zero-shot
 * classification; embeddings. Texts go through the text path (LRU cache,
 * then the text batcher), images through the image path; the request is
 * suspended while either works, and the index search runs when it resumes.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "srv_app.h"
#include "srv_json.h"

/* One request's encoder work: up to one image and any number of texts,
 * resumed when the last of them is done. */
struct enc_ctx {
	struct srv_app *app;
	struct http_req *r;
	struct srv_parts parts;
	/* texts */
	char **texts;
	size_t n_texts;
	float *text_vecs;
	struct srv_text_job text_job;
	int text_async;
	/* an image */
	struct srv_image_job image_job;
	float *image_vec;
	int have_image_vec;
	const char *image_mime;
	int image_w, image_h;
	size_t image_bytes;
	/* per route */
	struct srv_search_params sp;
	char *template_text;
	char **labels;
	size_t n_labels;
	int embed_texts;
	int text_search;                    /* GET /search: the index part may come with the batch */
	struct catalog_prefetch pre;
	struct srv_query *query;            /* /search: the composed query */
};

static void enc_free(void *p)
{
	struct enc_ctx *c = p;
	if (!c)
		return;
	if (c->query) {
		/* the texts are the query's */
		srv_query_clear(c->query);
		free(c->query);
		c->n_texts = 0;
	}
	for (size_t i = 0; i < c->n_texts; i++)
		free(c->texts[i]);
	free(c->texts);
	free(c->text_vecs);
	free(c->image_vec);
	for (size_t i = 0; i < c->n_labels; i++)
		free(c->labels[i]);
	free(c->labels);
	free(c->template_text);
	catalog_prefetch_clear(&c->pre);
	free(c);
}

static struct enc_ctx *enc_new(struct srv_app *app, struct http_req *r)
{
	struct enc_ctx *c = calloc(1, sizeof *c);
	if (!c) {
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	c->app = app;
	c->r = r;
	r->app = c;
	r->app_free = enc_free;
	return c;
}

static void text_done(struct srv_text_job *job)
{
	srv_parts_done(&((struct enc_ctx *)job->ud)->parts);
}

static void image_done(struct srv_image_job *job)
{
	srv_parts_done(&((struct enc_ctx *)job->ud)->parts);
}

/* Start the encoder work set up in c (texts and/or an image). Answers and
 * returns -1 when a queue is full; returns 0 when the request was suspended
 * (on_resume follows), 1 when everything was ready at once (the caller
 * answers now). */
static int enc_start(struct enc_ctx *c, int with_image, const void *image, size_t image_len,
		     void (*on_resume)(struct http_req *r))
{
	struct srv_app *app = c->app;
	struct http_req *r = c->r;
	srv_parts_begin(&c->parts, r);
	int suspended = 0;
	if (with_image) {
		c->image_vec = malloc(app->dim * sizeof *c->image_vec);
		if (!c->image_vec) {
			http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
			return -1;
		}
		c->image_job.data = image;
		c->image_job.len = image_len;
		c->image_job.width = c->image_w;
		c->image_job.height = c->image_h;
		c->image_job.vec = c->image_vec;
		c->image_job.dim = app->dim;
		c->image_job.done = image_done;
		c->image_job.ud = c;
		http_suspend(r);
		suspended = 1;
		r->on_resume = on_resume;
		srv_parts_add(&c->parts);
		if (srv_encode_image(app->enc, &c->image_job) != 0) {
			/* Nothing started: answer from on_resume with the error. */
			c->image_job.status = SRV_ENC_OVERLOADED;
			snprintf(c->image_job.msg, sizeof c->image_job.msg, "the image queue is full");
			srv_parts_done(&c->parts);
		}
	}
	if (c->n_texts) {
		c->text_vecs = malloc(c->n_texts * app->dim * sizeof *c->text_vecs);
		if (!c->text_vecs) {
			c->text_job.status = CLIP_ERR_NOMEM;
			snprintf(c->text_job.msg, sizeof c->text_job.msg, "out of memory");
		} else {
			c->text_job.texts = (const char *const *)c->texts;
			c->text_job.n = c->n_texts;
			c->text_job.vecs = c->text_vecs;
			c->text_job.dim = app->dim;
			c->text_job.done = text_done;
			c->text_job.ud = c;
			if (!suspended) {
				/* Suspend first: the text batcher may finish at once. */
				http_suspend(r);
				suspended = 1;
				r->on_resume = on_resume;
			}
			srv_parts_add(&c->parts);
			int rc = srv_encode_texts(app->enc, &c->text_job);
			if (rc != 0)
				srv_parts_done(&c->parts);
			if (rc < 0) {
				c->text_job.status = SRV_ENC_OVERLOADED;
				snprintf(c->text_job.msg, sizeof c->text_job.msg, "the text queue is full");
			}
		}
	}
	if (!suspended)
		return 1;
	srv_parts_done(&c->parts);
	return 0;
}

/* The encoder's outcome, answered when it failed. 0 if all is well. */
static int enc_check(struct enc_ctx *c)
{
	struct http_req *r = c->r;
	if (c->image_vec && c->image_job.status != 0) {
		srv_reply_clip_error(r, c->image_job.status, c->image_job.msg);
		return -1;
	}
	if (c->n_texts && c->text_job.status != 0) {
		srv_reply_clip_error(r, c->text_job.status, c->text_job.msg);
		return -1;
	}
	return 0;
}

/* A text parameter: valid length in characters; a cleaned copy (invalid
 * UTF-8 replaced). NULL (answered) when it does not fit. */
static char *text_param(struct http_req *r, const char *name, const char *value, size_t len,
			long min_chars, long long max_chars)
{
	char *clean = srv_utf8_clean(value, len);
	if (!clean) {
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	long chars = srv_utf8_chars(clean, strlen(clean));
	if (chars < min_chars || chars > max_chars) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s: must be %ld to %lld characters long (got %ld)",
				 name, min_chars, max_chars, chars);
		free(clean);
		return NULL;
	}
	return clean;
}

/* ---- search by text, images and embeddings ------------------------------------------ */

/* Search the catalog with a query vector (NULL: keyword mode) and reply. */
static void search_reply(struct http_req *r, struct enc_ctx *c, const float *vec, cJSON *query, cJSON *composition)
{
	c->sp.q.vec = vec;
	c->sp.q.dim = c->app->dim;
	struct catalog_results res = { 0 };
	store_error err = { 0 };
	if (catalog_search(c->app->cat, &c->sp.q, &res, &err) != 0) {
		cJSON_Delete(query);
		cJSON_Delete(composition);
		if (err.code == STORE_ERR_INVALID && vec)
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "q: the composed query vector is %s", err.msg);
		else
			srv_reply_store_error(r, &err);
		return;
	}
	srv_reply_results(c->app, r, query, composition, c->sp.k, c->sp.q.mode, &res);
	catalog_results_free(&res);
}

static void search_finish(struct http_req *r)
{
	struct enc_ctx *c = r->app;
	if (enc_check(c) != 0)
		return;
	struct srv_query *q = c->query;
	float *vec = NULL;
	if (q->sp.q.mode != CATALOG_KEYWORD) {
		if (!(vec = malloc(c->app->dim * sizeof *vec))) {
			http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
			return;
		}
		srv_query_compose(q, c->text_vecs, c->app->dim, vec);
	}
	const char *first = srv_query_first_text(q);
	search_reply(r, c, vec, first ? cJSON_CreateString(first) : cJSON_CreateNull(), srv_query_json(q));
	free(vec);
}

/* After a text-encoder pass: the index search of the pass's text searches,
 * all in one call (one scan of an exact index for all of them) instead of
 * one scan each when their requests resume. */
void srv_search_after_text_batch(void *ud, void *const *jobs, size_t n)
{
	struct srv_app *app = ud;
	struct catalog_query *qs = malloc(n * sizeof *qs);
	struct enc_ctx **cs = malloc(n * sizeof *cs);
	struct catalog_prefetch *pre = NULL;
	size_t m = 0;
	if (!qs || !cs)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct srv_text_job *job = jobs[i];
		struct enc_ctx *c = job->ud;
		if (!c->text_search)
			continue;
		c->sp.q.vec = c->text_vecs;
		c->sp.q.dim = app->dim;
		qs[m] = c->sp.q;
		cs[m++] = c;
	}
	/* one query is searched as well by its own request's thread */
	if (m < 2 || !(pre = calloc(m, sizeof *pre)))
		goto out;
	if (catalog_prefetch(app->cat, qs, m, pre, NULL) == 0) {
		uint64_t batched = 0;
		for (size_t j = 0; j < m; j++) {
			cs[j]->pre = pre[j];
			cs[j]->sp.q.prefetched = pre[j].kk ? &cs[j]->pre : NULL;
			batched += pre[j].kk ? 1 : 0;
		}
		atomic_fetch_add(&app->searches_batched, batched);
	}
out:
	free(qs);
	free(cs);
	free(pre);
}

/* Encode the composed query's texts (not in keyword mode) and search. */
static void search_start(struct enc_ctx *c)
{
	struct srv_query *q = c->query;
	c->sp = q->sp;
	c->sp.q.sel.filters = c->sp.q.sel.n_filters ? q->sp.filters : NULL;
	if (q->sp.q.mode != CATALOG_KEYWORD) {
		size_t texts = 0;
		for (size_t i = 0; i < q->n; i++)
			texts += q->parts[i].kind == SRV_PART_TEXT;
		c->n_texts = srv_query_texts(q, &c->texts);
		if (c->n_texts != texts) {
			http_reply_error(c->r, HTTP_ERR_INTERNAL, "out of memory");
			return;
		}
	}
	c->text_search = srv_query_plain_text(q);
	if (enc_start(c, 0, NULL, 0, search_finish) == 1)
		search_finish(c->r);
}

static struct enc_ctx *search_ctx(struct srv_app *app, struct http_req *r)
{
	struct enc_ctx *c = enc_new(app, r);
	if (!c)
		return NULL;
	if (!(c->query = calloc(1, sizeof *c->query))) {
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	return c;
}

void srv_search_text(struct srv_app *app, struct http_req *r)
{
	struct enc_ctx *c = search_ctx(app, r);
	if (c && srv_query_from_params(app, r, c->query) == 0)
		search_start(c);
}

/* ---- similar images ---------------------------------------------------------------- */

void srv_search_similar(struct srv_app *app, struct http_req *r)
{
	struct srv_search_params sp;
	if (srv_parse_search_params(app, r, &sp) != 0)
		return;
	struct catalog_results res = { 0 };
	store_error err = { 0 };
	if (catalog_similar(app->cat, r->match.id, &sp.q, &res, &err) != 0) {
		srv_reply_store_error(r, &err);
		return;
	}
	cJSON *query = cJSON_CreateObject();
	cJSON_AddNumberToObject(query, "image_id", (double)r->match.id);
	srv_reply_results(app, r, query, NULL, sp.k, CATALOG_SEMANTIC, &res);
	catalog_results_free(&res);
}

/* ---- search by an uploaded image ------------------------------------------------------ */

static cJSON *image_query_json(const struct enc_ctx *c)
{
	cJSON *query = cJSON_CreateObject();
	cJSON *img = cJSON_AddObjectToObject(query, "image");
	cJSON_AddStringToObject(img, "mime", c->image_mime);
	cJSON_AddNumberToObject(img, "width", c->image_w);
	cJSON_AddNumberToObject(img, "height", c->image_h);
	cJSON_AddNumberToObject(img, "bytes", (double)c->image_bytes);
	return query;
}

static void search_image_finish(struct http_req *r)
{
	struct enc_ctx *c = r->app;
	if (enc_check(c) == 0)
		search_reply(r, c, c->image_vec, image_query_json(c), NULL);
}

/* The uploaded image of a request, checked; 0 or answered -1. */
static int take_image(struct enc_ctx *c, const void **data, size_t *len)
{
	const char *filename;
	if (srv_request_image(c->r, data, len, &filename) != 0)
		return -1;
	if (srv_probe_image(c->app, c->r, *data, *len, &c->image_w, &c->image_h, &c->image_mime) != 0)
		return -1;
	c->image_bytes = *len;
	return 0;
}

void srv_search_image(struct srv_app *app, struct http_req *r)
{
	struct enc_ctx *c = enc_new(app, r);
	if (!c)
		return;
	if (srv_parse_search_params(app, r, &c->sp) != 0)
		return;
	const void *data;
	size_t len;
	if (take_image(c, &data, &len) != 0)
		return;
	enc_start(c, 1, data, len, search_image_finish);
}

/* ---- classification ------------------------------------------------------------------------ */

struct scored {
	size_t i;
	double score, cosine;
};

static int by_score(const void *a, const void *b)
{
	const struct scored *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

static void classify_finish(struct http_req *r)
{
	struct enc_ctx *c = r->app;
	if (enc_check(c) != 0)
		return;
	size_t dim = c->app->dim, n = c->n_labels;
	struct scored *s = calloc(n, sizeof *s);
	if (!s) {
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return;
	}
	/* CLIP's zero-shot classifier: softmax of logit_scale x cosine. */
	double top = -INFINITY, sum = 0, scale = c->app->logit_scale;
	for (size_t i = 0; i < n; i++) {
		double dot = 0;
		for (size_t d = 0; d < dim; d++)
			dot += (double)c->image_vec[d] * c->text_vecs[i * dim + d];
		s[i].i = i;
		s[i].cosine = dot;
		if (scale * dot > top)
			top = scale * dot;
	}
	for (size_t i = 0; i < n; i++) {
		s[i].score = exp(scale * s[i].cosine - top);
		sum += s[i].score;
	}
	for (size_t i = 0; i < n; i++)
		s[i].score /= sum;
	qsort(s, n, sizeof *s, by_score);
	cJSON *root = cJSON_CreateObject();
	cJSON *labels = cJSON_AddArrayToObject(root, "labels");
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "label", c->labels[s[i].i]);
		cJSON_AddNumberToObject(o, "score", s[i].score);
		cJSON_AddNumberToObject(o, "cosine", round(s[i].cosine * 1e7) / 1e7);
		cJSON_AddItemToArray(labels, o);
	}
	cJSON_AddStringToObject(root, "template", c->template_text);
	cJSON_AddItemToObject(root, "model", srv_model_json(c->app));
	free(s);
	srv_reply_cjson(r, 200, root);
}

#define DEFAULT_TEMPLATE "a photo of a {}."

/* labels: a cJSON array of strings. Fills c->labels and c->texts. */
static int set_labels(struct enc_ctx *c, const cJSON *labels, const char *template_text)
{
	struct http_req *r = c->r;
	const struct srv_config *cfg = c->app->cfg;
	if (!cJSON_IsArray(labels)) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "labels: required, a JSON array of strings");
		return -1;
	}
	int n = cJSON_GetArraySize(labels);
	if (n < 1 || n > cfg->max_labels) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "labels: must hold 1 to %lld labels (got %d)", cfg->max_labels, n);
		return -1;
	}
	const char *t = template_text ? template_text : DEFAULT_TEMPLATE;
	c->template_text = text_param(r, "template", t, strlen(t), 2, cfg->max_query);
	if (!c->template_text)
		return -1;
	const char *hole = strstr(c->template_text, "{}");
	if (!hole) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "template: must contain {} where the label goes");
		return -1;
	}
	c->labels = calloc((size_t)n, sizeof *c->labels);
	c->texts = calloc((size_t)n, sizeof *c->texts);
	if (!c->labels || !c->texts) {
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return -1;
	}
	const cJSON *item;
	cJSON_ArrayForEach(item, labels) {
		if (!cJSON_IsString(item)) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "labels: every label must be a string");
			return -1;
		}
		char name[32];
		snprintf(name, sizeof name, "labels[%zu]", c->n_labels);
		char *label = text_param(r, name, item->valuestring, strlen(item->valuestring), 1, cfg->max_query);
		if (!label)
			return -1;
		c->labels[c->n_labels++] = label;
		size_t pre = (size_t)(hole - c->template_text), ll = strlen(label);
		char *text = malloc(strlen(c->template_text) + ll + 1);
		if (!text) {
			http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
			return -1;
		}
		memcpy(text, c->template_text, pre);
		memcpy(text + pre, label, ll);
		strcpy(text + pre + ll, hole + 2);
		c->texts[c->n_texts++] = text;
	}
	return 0;
}

static int is_json(const char *ct)
{
	return ct && !strncasecmp(ct, "application/json", 16);
}

/* The JSON body of a request (answered when missing or invalid). */
static cJSON *json_body(struct http_req *r)
{
	if (!is_json(r->content_type)) {
		http_reply_error(r, HTTP_ERR_UNSUPPORTED_MEDIA_TYPE,
				 "Content-Type must be application/json or multipart/form-data");
		return NULL;
	}
	cJSON *j = r->body.len ? cJSON_ParseWithLength(r->body.data, r->body.len) : NULL;
	if (!j || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "body: must be a JSON object");
		return NULL;
	}
	return j;
}

/* An image id: a JSON number with an integer value below 2^53 (cJSON
 * reads numbers as doubles, and every integer literal from 2^53 up reads
 * as a double of at least 2^53, so below it the value is the literal's),
 * or a decimal string up to 2^53. */
static int id_value(const cJSON *v, int64_t *id)
{
	if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble < (double)HTTP_ID_MAX
	    && v->valuedouble == floor(v->valuedouble)) {
		*id = (int64_t)v->valuedouble;
		return 0;
	}
	if (cJSON_IsString(v)) {
		long long x;
		if (srv_parse_int(v->valuestring, 1, HTTP_ID_MAX, &x) == 0) {
			*id = x;
			return 0;
		}
	}
	return -1;
}

/* The labels of a multipart request: one "labels" part holding a JSON
 * array, or any number of "labels" parts, each one label as plain text. */
static cJSON *form_labels(struct http_req *r)
{
	size_t n = 0;
	const struct http_form_part *only = NULL;
	for (size_t i = 0; i < r->n_parts; i++)
		if (!strcmp(r->parts[i].head.name, "labels")) {
			n++;
			only = &r->parts[i];
		}
	if (n == 0)
		return NULL;
	if (n == 1) {
		const char *d = only->data.data ? only->data.data : "";
		size_t len = only->data.len, at = 0;
		while (at < len && (d[at] == ' ' || d[at] == '\t' || d[at] == '\r' || d[at] == '\n'))
			at++;
		if (at < len && d[at] == '[')
			return cJSON_ParseWithLength(d, len);   /* not an array: set_labels says so */
	}
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < r->n_parts; i++) {
		const struct http_form_part *p = &r->parts[i];
		if (strcmp(p->head.name, "labels"))
			continue;
		char *text = strndup(p->data.data ? p->data.data : "", p->data.len);
		cJSON *item = text ? cJSON_CreateString(text) : NULL;
		free(text);
		if (!item) {
			cJSON_Delete(arr);
			return NULL;
		}
		cJSON_AddItemToArray(arr, item);
	}
	return arr;
}

void srv_classify(struct srv_app *app, struct http_req *r)
{
	struct enc_ctx *c = enc_new(app, r);
	if (!c)
		return;
	int64_t image_id = 0;
	const void *data = NULL;
	size_t len = 0;
	if (r->multipart) {
		struct http_form_part *tp = http_form_get(r, "template");
		struct http_form_part *ip = http_form_get(r, "image_id");
		cJSON *labels = form_labels(r);
		char *tmpl = tp ? strndup(tp->data.data ? tp->data.data : "", tp->data.len) : NULL;
		int rc = set_labels(c, labels, tmpl);
		cJSON_Delete(labels);
		free(tmpl);
		if (rc != 0)
			return;
		if (ip) {
			char *s = strndup(ip->data.data ? ip->data.data : "", ip->data.len);
			long long x = 0;
			int bad = !s || srv_parse_int(s, 1, HTTP_ID_MAX, &x) != 0;
			free(s);
			if (bad) {
				http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "image_id: must be an image id");
				return;
			}
			image_id = x;
		} else if (take_image(c, &data, &len) != 0) {
			return;
		}
	} else {
		cJSON *j = json_body(r);
		if (!j)
			return;
		const cJSON *tv = cJSON_GetObjectItemCaseSensitive(j, "template");
		if (tv && !cJSON_IsString(tv) && !cJSON_IsNull(tv)) {
			cJSON_Delete(j);
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "template: must be a string");
			return;
		}
		int rc = set_labels(c, cJSON_GetObjectItemCaseSensitive(j, "labels"),
				    cJSON_IsString(tv) ? tv->valuestring : NULL);
		const cJSON *iv = cJSON_GetObjectItemCaseSensitive(j, "image_id");
		int bad_id = rc == 0 && (!iv || id_value(iv, &image_id) != 0);
		cJSON_Delete(j);
		if (rc != 0)
			return;
		if (bad_id) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, iv ? "image_id: must be an integer from 1 below 2^53 "
								      "(9007199254740992), or a decimal string up to it"
								    : "image_id: required with a JSON body (or send "
								      "multipart/form-data with a file)");
			return;
		}
	}
	if (image_id) {
		c->image_vec = malloc(app->dim * sizeof *c->image_vec);
		store_error err = { 0 };
		if (!c->image_vec) {
			http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
			return;
		}
		if (catalog_get_vector(app->cat, image_id, c->image_vec, app->dim, &err) != 0) {
			srv_reply_store_error(r, &err);
			return;
		}
	}
	if (enc_start(c, image_id == 0, data, len, classify_finish) == 1)
		classify_finish(r);
}

/* ---- embeddings --------------------------------------------------------------------------------- */

static cJSON *vector_json(const float *v, size_t dim)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t d = 0; arr && d < dim; d++)
		cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)v[d]));
	return arr;
}

static void embed_finish(struct http_req *r)
{
	struct enc_ctx *c = r->app;
	if (enc_check(c) != 0)
		return;
	size_t dim = c->app->dim;
	cJSON *root = cJSON_CreateObject();
	cJSON_AddItemToObject(root, "model", srv_model_json(c->app));
	if (c->embed_texts) {
		cJSON *arr = cJSON_AddArrayToObject(root, "embeddings");
		for (size_t i = 0; i < c->n_texts; i++)
			cJSON_AddItemToArray(arr, vector_json(c->text_vecs + i * dim, dim));
	} else {
		cJSON_AddItemToObject(root, "embedding", vector_json(c->image_vec, dim));
	}
	srv_reply_cjson(r, 200, root);
}

void srv_embed(struct srv_app *app, struct http_req *r)
{
	struct enc_ctx *c = enc_new(app, r);
	if (!c)
		return;
	if (!r->multipart && is_json(r->content_type)) {
		cJSON *j = json_body(r);
		if (!j)
			return;
		const cJSON *texts = cJSON_GetObjectItemCaseSensitive(j, "texts");
		int n = cJSON_IsArray(texts) ? cJSON_GetArraySize(texts) : -1;
		if (n < 1 || n > app->cfg->max_texts) {
			cJSON_Delete(j);
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "texts: must be an array of 1 to %lld strings", app->cfg->max_texts);
			return;
		}
		c->texts = calloc((size_t)n, sizeof *c->texts);
		if (!c->texts) {
			cJSON_Delete(j);
			http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
			return;
		}
		const cJSON *t;
		cJSON_ArrayForEach(t, texts) {
			char name[32];
			snprintf(name, sizeof name, "texts[%zu]", c->n_texts);
			if (!cJSON_IsString(t)) {
				http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s: must be a string", name);
				break;
			}
			char *text = text_param(r, name, t->valuestring, strlen(t->valuestring), 0, app->cfg->max_query);
			if (!text)
				break;
			c->texts[c->n_texts++] = text;
		}
		cJSON_Delete(j);
		if (c->n_texts != (size_t)n)
			return;
		c->embed_texts = 1;
		if (enc_start(c, 0, NULL, 0, embed_finish) == 1)
			embed_finish(r);
		return;
	}
	const void *data;
	size_t len;
	if (take_image(c, &data, &len) != 0)
		return;
	enc_start(c, 1, data, len, embed_finish);
}

/* ---- POST /search ------------------------------------------------------------------------- */

void srv_search_json(struct srv_app *app, struct http_req *r)
{
	if (r->multipart) {
		http_reply_error(r, HTTP_ERR_UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
		return;
	}
	struct enc_ctx *c = search_ctx(app, r);
	if (!c)
		return;
	cJSON *j = json_body(r);
	if (!j)
		return;
	int rc = srv_query_from_json(app, r, j, c->query);
	cJSON_Delete(j);
	if (rc == 0)
		search_start(c);
}

/* ---- near-duplicates ------------------------------------------------------------------------ */

static int dup_min_score(struct http_req *r, float *min)
{
	const char *v = http_query(r, "min_score");
	double ms = CATALOG_DUP_MIN_SCORE;
	if (v && srv_parse_double(v, -1.0, 1.0, &ms) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "min_score: must be a number from -1 to 1");
		return -1;
	}
	*min = (float)ms;
	return 0;
}

void srv_image_duplicates(struct srv_app *app, struct http_req *r)
{
	struct catalog_query q = catalog_default_query();
	float min;
	size_t k = 100;
	const char *v = http_query(r, "k");
	if (dup_min_score(r, &min) != 0 || (v && srv_parse_k(app, r, v, &k) != 0))
		return;
	q.k = k;
	q.has_min_score = 1;
	q.min_score = min;
	struct catalog_results res = { 0 };
	store_error err = { 0 };
	if (catalog_similar(app->cat, r->match.id, &q, &res, &err) != 0) {
		srv_reply_store_error(r, &err);
		return;
	}
	cJSON *query = cJSON_CreateObject();
	cJSON_AddNumberToObject(query, "image_id", (double)r->match.id);
	cJSON_AddNumberToObject(query, "min_score", round((double)min * 1e7) / 1e7);
	srv_reply_results(app, r, query, NULL, k, CATALOG_SEMANTIC, &res);
	catalog_results_free(&res);
}

void srv_duplicates(struct srv_app *app, struct http_req *r)
{
	float min;
	long long limit = 20, cursor = 0;
	if (dup_min_score(r, &min) != 0)
		return;
	const char *v = http_query(r, "limit");
	if (v && srv_parse_int(v, 1, app->cfg->max_list, &limit) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "limit: must be a whole number from 1 to %lld", app->cfg->max_list);
		return;
	}
	v = http_query(r, "cursor");
	if (v && *v && srv_parse_int(v, 1, HTTP_ID_MAX, &cursor) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "cursor: not a cursor this server gave out");
		return;
	}
	struct catalog_groups groups = { 0 };
	int64_t next = 0;
	store_error err = { 0 };
	if (catalog_duplicate_groups(app->cat, min, cursor, (size_t)limit, &groups, &next, &err) != 0) {
		srv_reply_store_error(r, &err);
		return;
	}
	cJSON *root = cJSON_CreateObject();
	cJSON_AddNumberToObject(root, "min_score", round((double)min * 1e7) / 1e7);
	cJSON *arr = cJSON_AddArrayToObject(root, "groups");
	for (size_t g = 0; g < groups.n; g++) {
		cJSON *group = cJSON_CreateObject();
		cJSON *images = cJSON_AddArrayToObject(group, "images");
		for (size_t i = 0; i < groups.groups[g].n; i++) {
			const struct catalog_hit *h = &groups.groups[g].hits[i];
			cJSON *o = srv_image_json(&h->image);
			if (!o)
				continue;
			cJSON_AddNumberToObject(o, "score", round((double)h->score * 1e7) / 1e7);
			cJSON_AddItemToArray(images, o);
		}
		cJSON_AddItemToArray(arr, group);
	}
	catalog_groups_free(&groups);
	srv_add_cursor(root, next);
	srv_reply_cjson(r, 200, root);
}
