/*
 * The query parameters searches and listings share: k, min_score,
 * filter.KEY, after, before, taken_after, taken_before, library
 * (srv_parse_search_params, srv_parse_selection, srv_parse_library),
 * and the JSON body's equivalents for POST /search (srv_selection_json).
 * See srv_app.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv_app.h"
#include "srv_json.h"

struct filter_collect {
	struct store_selection *sel;
	struct store_filter *filters;
	int error;
	char msg[300];
};

static void collect_filter(void *ud, const char *key, const char *value)
{
	struct filter_collect *fc = ud;
	if (fc->error || strncmp(key, "filter.", 7) != 0)
		return;
	if (fc->sel->n_filters >= STORE_MAX_FILTERS) {
		fc->error = 1;
		snprintf(fc->msg, sizeof fc->msg, "filter.KEY: at most %d filters", STORE_MAX_FILTERS);
		return;
	}
	struct store_filter *f = &fc->filters[fc->sel->n_filters++];
	f->key = key + 7;
	f->value = value;
}

/* Check a selection's filters: 0, or answered 400 naming the filter
 * (prefix: "filter." for the query string, "filters." for JSON). */
int srv_check_selection(struct http_req *r, const struct store_selection *sel, const char *prefix)
{
	store_error err = { 0 };
	struct catalog_query q = catalog_default_query();
	q.sel = *sel;
	if (catalog_check_filters(&q, &err) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s%s", prefix, err.msg);
		return -1;
	}
	return 0;
}

static int parse_time_param(struct http_req *r, const char *name, int *has, int64_t *t)
{
	const char *v = http_query(r, name);
	if (!v)
		return 0;
	if (srv_time_parse(v, t) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s: must be an RFC 3339 time such as 2024-05-01T12:00:00Z", name);
		return -1;
	}
	*has = 1;
	return 0;
}

int srv_parse_selection(struct srv_app *app, struct http_req *r, struct store_selection *sel,
			struct store_filter *filters)
{
	memset(sel, 0, sizeof *sel);
	if (parse_time_param(r, "after", &sel->has_after, &sel->created_after) != 0
	    || parse_time_param(r, "before", &sel->has_before, &sel->created_before) != 0
	    || parse_time_param(r, "taken_after", &sel->has_taken_after, &sel->taken_after) != 0
	    || parse_time_param(r, "taken_before", &sel->has_taken_before, &sel->taken_before) != 0
	    || srv_parse_library(app, r, http_query(r, "library"), &sel->library) != 0)
		return -1;
	struct filter_collect fc = { .sel = sel, .filters = filters };
	http_query_each(r, collect_filter, &fc);
	if (fc.error) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s", fc.msg);
		return -1;
	}
	sel->filters = sel->n_filters ? filters : NULL;
	return srv_check_selection(r, sel, "filter.");
}

int srv_parse_k(struct srv_app *app, struct http_req *r, const char *v, size_t *k)
{
	long long x;
	if (srv_parse_int(v, 1, app->cfg->max_k, &x) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "k: must be a whole number from 1 to %lld", app->cfg->max_k);
		return -1;
	}
	*k = (size_t)x;
	return 0;
}

int srv_parse_search_params(struct srv_app *app, struct http_req *r, struct srv_search_params *sp)
{
	memset(sp, 0, sizeof *sp);
	sp->q = catalog_default_query();
	sp->k = 10;
	const char *v = http_query(r, "k");
	if (v && srv_parse_k(app, r, v, &sp->k) != 0)
		return -1;
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
	return srv_parse_selection(app, r, &sp->q.sel, sp->filters);
}

int srv_parse_library(struct srv_app *app, struct http_req *r, const char *v, const char **library)
{
	*library = NULL;
	if (!v)
		return 0;
	size_t n = strlen(v);
	int ok = n >= 1 && n <= STORE_LIBRARY_NAME_MAX && v[0] != '.';
	for (size_t i = 0; ok && i < n; i++)
		ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= '0' && v[i] <= '9') ||
		     v[i] == '.' || v[i] == '_' || v[i] == '-';
	if (!ok) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "library: a library's name (letters, digits, '.', '_', '-'; "
				 "at most %d)", STORE_LIBRARY_NAME_MAX);
		return -1;
	}
	/* A name the catalog knows: a typo answers 400 rather than an empty
	 * result that looks like a library without matches. */
	struct store_library lib;
	store_error err = { 0 };
	int rc = catalog_library_get(app->cat, v, &lib, &err);
	store_library_clear(&lib);
	if (rc == STORE_ERR_NOT_FOUND) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "library: no library named '%s' (GET /libraries lists them)", v);
		return -1;
	}
	if (rc != 0) {
		srv_reply_store_error(r, &err);
		return -1;
	}
	*library = v;
	return 0;
}
