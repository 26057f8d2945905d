/*
 * The query parameters every search shares (/search, /images/{id}/similar,
 * /search/image): k, min_score, filter.KEY, after, before. See srv_app.h.
 */
#include <stdio.h>
#include <string.h>

#include "srv_app.h"
#include "srv_json.h"

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
	if (fc->sp->q.sel.n_filters >= STORE_MAX_FILTERS) {
		fc->error = 1;
		snprintf(fc->msg, sizeof fc->msg, "filter.KEY: at most %d filters", STORE_MAX_FILTERS);
		return;
	}
	struct store_filter *f = &fc->sp->filters[fc->sp->q.sel.n_filters++];
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
		if (srv_time_parse(v, &sp->q.sel.created_after) != 0) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "after: must be an RFC 3339 time such as 2024-05-01T12:00:00Z");
			return -1;
		}
		sp->q.sel.has_after = 1;
	}
	v = http_query(r, "before");
	if (v) {
		if (srv_time_parse(v, &sp->q.sel.created_before) != 0) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "before: must be an RFC 3339 time such as 2024-05-01T12:00:00Z");
			return -1;
		}
		sp->q.sel.has_before = 1;
	}
	if (srv_parse_library(r, &sp->q.sel.library) != 0)
		return -1;
	struct filter_collect fc = { .sp = sp };
	http_query_each(r, collect_filter, &fc);
	if (fc.error) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s", fc.msg);
		return -1;
	}
	sp->q.sel.filters = sp->q.sel.n_filters ? sp->filters : NULL;
	store_error err = { 0 };
	if (catalog_check_filters(&sp->q, &err) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "filter: %s", err.msg);
		return -1;
	}
	return 0;
}

int srv_parse_library(struct http_req *r, const char **library)
{
	const char *v = http_query(r, "library");
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
	*library = v;
	return 0;
}
