/*
 * A search's query as a client composes it (srv_app.h, struct srv_query):
 * weighted texts, stored images and embeddings, added or subtracted, from
 * GET /search's parameters or POST /search's JSON; the weighted sum they
 * stand for, and its description for the response.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "srv_app.h"
#include "srv_json.h"

#define MAX_WEIGHT 100.0

void srv_query_clear(struct srv_query *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->n; i++) {
		free(q->parts[i].text);
		free(q->parts[i].vec);
	}
	for (size_t i = 0; i < q->n_owned; i++)
		free(q->owned[i]);
	free(q->keywords);
	free(q->not_keywords);
	memset(q, 0, sizeof *q);
}

/* ---- building parts ---------------------------------------------------------- */

/* A new part (a vector of dim floats for images and embeddings), or NULL answered. */
static struct srv_query_part *new_part(struct srv_app *app, struct http_req *r, struct srv_query *q, const char *name,
				       enum srv_part_kind kind, int negative, double weight)
{
	if (q->n >= SRV_MAX_QUERY_PARTS) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s: at most %d query parts (q, image, not, not_image) in all",
				 name, SRV_MAX_QUERY_PARTS);
		return NULL;
	}
	if (!(weight > 0 && weight <= MAX_WEIGHT)) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s: a weight must be a number above 0 and at most %g",
				 name, MAX_WEIGHT);
		return NULL;
	}
	struct srv_query_part *p = &q->parts[q->n++];
	memset(p, 0, sizeof *p);
	p->kind = kind;
	p->negative = negative;
	p->weight = weight;
	if (kind != SRV_PART_TEXT && !(p->vec = malloc(app->dim * sizeof *p->vec))) {
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	return p;
}

static int add_text(struct srv_app *app, struct http_req *r, struct srv_query *q, const char *name, int negative,
		    double weight, const char *text)
{
	struct srv_query_part *p = new_part(app, r, q, name, SRV_PART_TEXT, negative, weight);
	if (!p)
		return -1;
	p->text = srv_utf8_clean(text, strlen(text));
	if (!p->text) {
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return -1;
	}
	long chars = srv_utf8_chars(p->text, strlen(p->text));
	if (chars < 1 || chars > app->cfg->max_query) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s: must be 1 to %lld characters long (got %ld)", name,
				 app->cfg->max_query, chars);
		return -1;
	}
	return 0;
}

static int add_image(struct srv_app *app, struct http_req *r, struct srv_query *q, const char *name, int negative,
		     double weight, int64_t id)
{
	struct srv_query_part *p = new_part(app, r, q, name, SRV_PART_IMAGE, negative, weight);
	if (!p)
		return -1;
	p->image_id = id;
	store_error err = { 0 };
	if (catalog_get_vector(app->cat, id, p->vec, app->dim, &err) != 0) {
		if (err.code == STORE_ERR_NOT_FOUND)
			http_reply_error(r, HTTP_ERR_NOT_FOUND, "%s: no image %lld", name, (long long)id);
		else
			srv_reply_store_error(r, &err);
		return -1;
	}
	return 0;
}

/* "2.5:golden retriever" -> 2.5 and "golden retriever"; no weight: 1. */
static const char *split_weight(const char *v, double *w)
{
	const char *p = v;
	while (isdigit((unsigned char)*p))
		p++;
	if (p > v && *p == '.' && isdigit((unsigned char)p[1]))
		for (p++; isdigit((unsigned char)*p); p++)
			;
	if (p > v && *p == ':') {
		*w = strtod(v, NULL);
		return p + 1;
	}
	*w = 1;
	return v;
}

/* ---- GET /search ------------------------------------------------------------------ */

struct collect {
	struct srv_app *app;
	struct http_req *r;
	struct srv_query *q;
	int failed;
};

static void collect_part(void *ud, const char *key, const char *value)
{
	struct collect *cc = ud;
	if (cc->failed)
		return;
	int text = !strcmp(key, "q") || !strcmp(key, "not");
	int image = !strcmp(key, "image") || !strcmp(key, "not_image");
	if (!text && !image)
		return;
	int negative = key[0] == 'n';
	double w;
	const char *rest = split_weight(value, &w);
	if (text) {
		cc->failed = add_text(cc->app, cc->r, cc->q, key, negative, w, rest) != 0;
		return;
	}
	long long id;
	if (srv_parse_int(rest, 1, HTTP_ID_MAX, &id) != 0) {
		http_reply_error(cc->r, HTTP_ERR_BAD_PARAMETER, "%s: must be an image id, optionally weighted (2:42)", key);
		cc->failed = 1;
		return;
	}
	cc->failed = add_image(cc->app, cc->r, cc->q, key, negative, w, id) != 0;
}

static int parse_mode(struct http_req *r, const char *v, struct catalog_query *cq)
{
	if (!v || !strcmp(v, "semantic"))
		cq->mode = CATALOG_SEMANTIC;
	else if (!strcmp(v, "keyword"))
		cq->mode = CATALOG_KEYWORD;
	else if (!strcmp(v, "hybrid"))
		cq->mode = CATALOG_HYBRID;
	else {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "mode: must be semantic (the default), keyword or hybrid");
		return -1;
	}
	return 0;
}

/* Join the texts of the positive (or negative) parts, for the keyword ranking. */
static char *join_texts(const struct srv_query *q, int negative)
{
	size_t len = 1;
	for (size_t i = 0; i < q->n; i++)
		if (q->parts[i].kind == SRV_PART_TEXT && q->parts[i].negative == negative)
			len += strlen(q->parts[i].text) + 1;
	char *s = malloc(len);
	if (!s)
		return NULL;
	s[0] = 0;
	for (size_t i = 0; i < q->n; i++)
		if (q->parts[i].kind == SRV_PART_TEXT && q->parts[i].negative == negative) {
			if (*s)
				strcat(s, " ");
			strcat(s, q->parts[i].text);
		}
	return s;
}

/* What every way of composing shares, once the parts are in. */
static int finish_query(struct http_req *r, struct srv_query *q)
{
	size_t positive = 0, texts = 0, vectors = 0;
	for (size_t i = 0; i < q->n; i++) {
		positive += !q->parts[i].negative;
		texts += q->parts[i].kind == SRV_PART_TEXT && !q->parts[i].negative;
		vectors += q->parts[i].kind != SRV_PART_TEXT;
	}
	struct catalog_query *cq = &q->sp.q;
	if (positive == 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "q: required (a text to search for, or image=ID)");
		return -1;
	}
	if (cq->mode == CATALOG_KEYWORD && (vectors || texts == 0)) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "mode: keyword searches texts only (q and not)");
		return -1;
	}
	if (cq->mode == CATALOG_KEYWORD && cq->has_min_score) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "min_score: a cosine, for the semantic and hybrid modes");
		return -1;
	}
	if (cq->mode != CATALOG_SEMANTIC) {
		q->keywords = join_texts(q, 0);
		q->not_keywords = join_texts(q, 1);
		if (!q->keywords || !q->not_keywords) {
			http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
			return -1;
		}
		cq->keywords = q->keywords;
		cq->not_keywords = q->not_keywords;
	}
	return 0;
}

int srv_query_from_params(struct srv_app *app, struct http_req *r, struct srv_query *q)
{
	if (srv_parse_search_params(app, r, &q->sp) != 0)
		return -1;
	if (parse_mode(r, http_query(r, "mode"), &q->sp.q) != 0)
		return -1;
	const char *v = http_query(r, "rrf_k");
	if (v) {
		long long x;
		if (srv_parse_int(v, 1, CATALOG_MAX_RRF_K, &x) != 0) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "rrf_k: must be a whole number from 1 to %d", CATALOG_MAX_RRF_K);
			return -1;
		}
		q->sp.q.rrf_k = (unsigned)x;
	}
	struct collect cc = { .app = app, .r = r, .q = q };
	http_query_each(r, collect_part, &cc);
	if (cc.failed)
		return -1;
	return finish_query(r, q);
}

/* ---- POST /search ---------------------------------------------------------------------- */

static int json_weight(struct http_req *r, const char *name, const cJSON *o, double *w)
{
	const cJSON *wv = cJSON_GetObjectItemCaseSensitive(o, "weight");
	*w = 1;
	if (!wv)
		return 0;
	if (!cJSON_IsNumber(wv)) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s.weight: must be a number", name);
		return -1;
	}
	*w = wv->valuedouble;
	return 0;
}

static int only_fields(struct http_req *r, const char *name, const cJSON *o, const char *const *known)
{
	const cJSON *f;
	cJSON_ArrayForEach(f, o) {
		const char *const *k = known;
		while (*k && strcmp(*k, f->string))
			k++;
		if (!*k) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s.%.100s: unknown field", name, f->string);
			return -1;
		}
	}
	return 0;
}

static int add_embedding(struct srv_app *app, struct http_req *r, struct srv_query *q, const char *name,
			 int negative, double weight, const cJSON *arr)
{
	if (!cJSON_IsArray(arr) || (size_t)cJSON_GetArraySize(arr) != app->dim) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s.embedding: must be an array of %zu numbers", name, app->dim);
		return -1;
	}
	struct srv_query_part *p = new_part(app, r, q, name, SRV_PART_EMBEDDING, negative, weight);
	if (!p)
		return -1;
	double norm = 0;
	size_t d = 0;
	const cJSON *x;
	cJSON_ArrayForEach(x, arr) {
		if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > 1e6) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s.embedding[%zu]: must be a finite number", name, d);
			return -1;
		}
		p->vec[d++] = (float)x->valuedouble;
		norm += x->valuedouble * x->valuedouble;
	}
	if (!(norm > 0)) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s.embedding: must not be all zeros", name);
		return -1;
	}
	/* unit length, as texts' and images' vectors are: the weight alone says how much it counts */
	norm = sqrt(norm);
	for (d = 0; d < app->dim; d++)
		p->vec[d] = (float)(p->vec[d] / norm);
	return 0;
}

/* One entry of "text", "images" or "not". */
static int json_part(struct srv_app *app, struct http_req *r, struct srv_query *q, const char *list, size_t i,
		     const cJSON *o, int negative)
{
	char name[48];
	snprintf(name, sizeof name, "%s[%zu]", list, i);
	if (cJSON_IsString(o) && strcmp(list, "images"))
		return add_text(app, r, q, name, negative, 1, o->valuestring);
	if (!cJSON_IsObject(o)) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s: must be an object", name);
		return -1;
	}
	static const char *const fields[] = { "q", "id", "embedding", "weight", NULL };
	if (only_fields(r, name, o, fields) != 0)
		return -1;
	double w;
	if (json_weight(r, name, o, &w) != 0)
		return -1;
	const cJSON *qv = cJSON_GetObjectItemCaseSensitive(o, "q");
	const cJSON *iv = cJSON_GetObjectItemCaseSensitive(o, "id");
	const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "embedding");
	if ((qv != NULL) + (iv != NULL) + (ev != NULL) != 1 || (qv && !strcmp(list, "images"))
	    || (!qv && !strcmp(list, "text"))) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s: must have exactly one of %s", name,
				 !strcmp(list, "text") ? "q" : !strcmp(list, "images") ? "id, embedding" : "q, id, embedding");
		return -1;
	}
	if (qv) {
		if (!cJSON_IsString(qv)) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s.q: must be a string", name);
			return -1;
		}
		return add_text(app, r, q, name, negative, w, qv->valuestring);
	}
	if (iv) {
		double id = cJSON_IsNumber(iv) ? iv->valuedouble : 0;
		if (!(id >= 1 && id <= (double)HTTP_ID_MAX && id == floor(id))) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s.id: must be an image id", name);
			return -1;
		}
		return add_image(app, r, q, name, negative, w, (int64_t)id);
	}
	return add_embedding(app, r, q, name, negative, w, ev);
}

static char *own(struct srv_query *q, char *s)
{
	if (s && q->n_owned < sizeof q->owned / sizeof q->owned[0])
		return q->owned[q->n_owned++] = s;
	free(s);
	return NULL;
}

/* A filter value as its query-string text: strings as they are, numbers
 * as JSON writes them, booleans as true/false. */
static char *filter_text(const cJSON *v)
{
	char buf[400];
	if (cJSON_IsString(v))
		return strdup(v->valuestring);
	if (cJSON_IsBool(v))
		return strdup(cJSON_IsTrue(v) ? "true" : "false");
	if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
		double d = v->valuedouble;
		if (d == floor(d) && fabs(d) < 1e15)
			snprintf(buf, sizeof buf, "%.0f", d);
		else
			snprintf(buf, sizeof buf, "%.17g", d);
		return strdup(buf);
	}
	return NULL;
}

static int json_filters(struct http_req *r, struct srv_query *q, const cJSON *filters)
{
	struct store_selection *sel = &q->sp.q.sel;
	if (!cJSON_IsObject(filters)) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "filters: must be an object of KEY: value or [values]");
		return -1;
	}
	const cJSON *f;
	cJSON_ArrayForEach(f, filters) {
		const cJSON *one = cJSON_IsArray(f) ? f->child : f;
		for (; one; one = cJSON_IsArray(f) ? one->next : NULL) {
			if (sel->n_filters >= STORE_MAX_FILTERS) {
				http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "filters: at most %d values in all", STORE_MAX_FILTERS);
				return -1;
			}
			char *key = own(q, strdup(f->string)), *value = own(q, filter_text(one));
			if (!key || !value) {
				http_reply_error(r, HTTP_ERR_BAD_PARAMETER,
						 "filters.%.100s: must be a string, number or boolean, or an array of them", f->string);
				return -1;
			}
			q->sp.filters[sel->n_filters].key = key;
			q->sp.filters[sel->n_filters].value = value;
			sel->n_filters++;
		}
	}
	sel->filters = sel->n_filters ? q->sp.filters : NULL;
	return srv_check_selection(r, sel, "filters.");
}

static int json_time(struct http_req *r, const cJSON *j, const char *name, int *has, int64_t *t)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
	if (!v)
		return 0;
	if (!cJSON_IsString(v) || srv_time_parse(v->valuestring, t) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s: must be an RFC 3339 time such as 2024-05-01T12:00:00Z", name);
		return -1;
	}
	*has = 1;
	return 0;
}

int srv_query_from_json(struct srv_app *app, struct http_req *r, const cJSON *j, struct srv_query *q)
{
	static const char *const fields[] = { "text", "images", "not", "k", "min_score", "filters", "after", "before",
					      "taken_after", "taken_before", "library", "mode", "rrf_k", NULL };
	if (only_fields(r, "body", j, fields) != 0)
		return -1;
	struct catalog_query *cq = &q->sp.q;
	*cq = catalog_default_query();
	q->sp.k = 10;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "k");
	if (v) {
		double k = cJSON_IsNumber(v) ? v->valuedouble : 0;
		if (!(k >= 1 && k <= (double)app->cfg->max_k && k == floor(k))) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "k: must be a whole number from 1 to %lld", app->cfg->max_k);
			return -1;
		}
		q->sp.k = (size_t)k;
	}
	cq->k = q->sp.k;
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "min_score"))) {
		if (!cJSON_IsNumber(v) || !(v->valuedouble >= -1 && v->valuedouble <= 1)) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "min_score: must be a number from -1 to 1");
			return -1;
		}
		cq->has_min_score = 1;
		cq->min_score = (float)v->valuedouble;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "mode")) && !cJSON_IsString(v)) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "mode: must be semantic (the default), keyword or hybrid");
		return -1;
	}
	if (parse_mode(r, v ? v->valuestring : NULL, cq) != 0)
		return -1;
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "rrf_k"))) {
		double x = cJSON_IsNumber(v) ? v->valuedouble : 0;
		if (!(x >= 1 && x <= CATALOG_MAX_RRF_K && x == floor(x))) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "rrf_k: must be a whole number from 1 to %d", CATALOG_MAX_RRF_K);
			return -1;
		}
		cq->rrf_k = (unsigned)x;
	}
	if (json_time(r, j, "after", &cq->sel.has_after, &cq->sel.created_after) != 0
	    || json_time(r, j, "before", &cq->sel.has_before, &cq->sel.created_before) != 0
	    || json_time(r, j, "taken_after", &cq->sel.has_taken_after, &cq->sel.taken_after) != 0
	    || json_time(r, j, "taken_before", &cq->sel.has_taken_before, &cq->sel.taken_before) != 0)
		return -1;
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "library"))) {
		const char *name = NULL;
		if (!cJSON_IsString(v)) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "library: must be a library's name (a string)");
			return -1;
		}
		if (srv_parse_library(app, r, v->valuestring, &name) != 0)
			return -1;
		if (!(cq->sel.library = own(q, strdup(name)))) {
			http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
			return -1;
		}
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "filters")) && json_filters(r, q, v) != 0)
		return -1;
	static const char *const lists[] = { "text", "images", "not" };
	for (size_t l = 0; l < 3; l++) {
		const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, lists[l]);
		if (!arr)
			continue;
		if (!cJSON_IsArray(arr)) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s: must be an array", lists[l]);
			return -1;
		}
		size_t i = 0;
		const cJSON *o;
		cJSON_ArrayForEach(o, arr)
			if (json_part(app, r, q, lists[l], i++, o, l == 2) != 0)
				return -1;
	}
	return finish_query(r, q);
}

/* ---- the sum and its description ------------------------------------------------------------ */

size_t srv_query_texts(const struct srv_query *q, char ***texts)
{
	size_t n = 0;
	*texts = NULL;
	for (size_t i = 0; i < q->n; i++)
		n += q->parts[i].kind == SRV_PART_TEXT;
	if (n == 0 || !(*texts = calloc(n, sizeof **texts)))
		return 0;
	size_t t = 0;
	for (size_t i = 0; i < q->n; i++)
		if (q->parts[i].kind == SRV_PART_TEXT)
			(*texts)[t++] = q->parts[i].text;
	return n;
}

void srv_query_compose(const struct srv_query *q, const float *text_vecs, size_t dim, float *out)
{
	double *sum = calloc(dim, sizeof *sum);
	size_t t = 0;
	for (size_t i = 0; sum && i < q->n; i++) {
		const struct srv_query_part *p = &q->parts[i];
		const float *v = p->kind == SRV_PART_TEXT ? text_vecs + dim * t++ : p->vec;
		double w = p->negative ? -p->weight : p->weight;
		for (size_t d = 0; d < dim; d++)
			sum[d] += w * v[d];
	}
	for (size_t d = 0; d < dim; d++)
		out[d] = sum ? (float)sum[d] : 0.0f;   /* zero: the search refuses it */
	free(sum);
}

static const char *mode_name(enum catalog_mode m)
{
	return m == CATALOG_KEYWORD ? "keyword" : m == CATALOG_HYBRID ? "hybrid" : "semantic";
}

cJSON *srv_query_json(const struct srv_query *q)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *text = cJSON_AddArrayToObject(o, "text");
	cJSON *images = cJSON_AddArrayToObject(o, "images");
	cJSON *not = cJSON_AddArrayToObject(o, "not");
	for (size_t i = 0; i < q->n; i++) {
		const struct srv_query_part *p = &q->parts[i];
		cJSON *e = cJSON_CreateObject();
		if (p->kind == SRV_PART_TEXT)
			cJSON_AddStringToObject(e, "q", p->text);
		else if (p->kind == SRV_PART_IMAGE)
			cJSON_AddNumberToObject(e, "id", (double)p->image_id);
		else
			cJSON_AddBoolToObject(e, "embedding", 1);
		cJSON_AddNumberToObject(e, "weight", p->weight);
		cJSON_AddItemToArray(p->negative ? not : p->kind == SRV_PART_TEXT ? text : images, e);
	}
	cJSON_AddStringToObject(o, "mode", mode_name(q->sp.q.mode));
	if (q->sp.q.mode == CATALOG_HYBRID)
		cJSON_AddNumberToObject(o, "rrf_k", q->sp.q.rrf_k ? q->sp.q.rrf_k : CATALOG_RRF_K);
	return o;
}

const char *srv_query_first_text(const struct srv_query *q)
{
	for (size_t i = 0; i < q->n; i++)
		if (q->parts[i].kind == SRV_PART_TEXT && !q->parts[i].negative)
			return q->parts[i].text;
	return NULL;
}

int srv_query_plain_text(const struct srv_query *q)
{
	return q->n == 1 && q->parts[0].kind == SRV_PART_TEXT && !q->parts[0].negative
	       && q->sp.q.mode == CATALOG_SEMANTIC;
}
