/*
 * The query parameters every search shares (/search, /images/{id}/similar,
 * /search/image): k, min_score, filter.KEY, after, before, taken_after,
 * taken_before. See srv_app.h.
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

/* The RFC 3339 time parameter name, if present: *has = 1 and *us; or an
 * answer (400) and -1. what says what it selects ("images created after it"). */
static int time_param(struct http_req *r, const char *name, const char *what, int *has, int64_t *us)
{
	const char *v = http_query(r, name);
	if (!v)
		return 0;
	if (srv_time_parse(v, us) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER,
				 "%s: must be an RFC 3339 time such as 2024-05-01T12:00:00Z (%s)", name, what);
		return -1;
	}
	*has = 1;
	return 0;
}

int srv_parse_taken_range(struct http_req *r, struct store_selection *sel)
{
	if (time_param(r, "taken_after", "photos taken after it", &sel->has_taken_after, &sel->taken_after) != 0 ||
	    time_param(r, "taken_before", "photos taken before it", &sel->has_taken_before, &sel->taken_before) != 0)
		return -1;
	return 0;
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
	if (time_param(r, "after", "images uploaded after it", &sp->q.sel.has_after, &sp->q.sel.created_after) != 0 ||
	    time_param(r, "before", "images uploaded before it", &sp->q.sel.has_before, &sp->q.sel.created_before) != 0 ||
	    srv_parse_taken_range(r, &sp->q.sel) != 0)
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
