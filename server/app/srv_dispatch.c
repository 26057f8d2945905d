/*
 * The dispatch from a matched route to its handler (srv_app.h).
 */
#include <stdio.h>
#include <string.h>

#include "srv_app.h"

struct srv_app *srv_app_of(struct http_req *r)
{
	return http_server_ud(r->srv);
}

int srv_ready(void *ud)
{
	struct srv_app *app = ud;
	return atomic_load(&app->ready);
}

struct param_check {
	const char *const *known;
	const char *unknown;
};

static void check_param(void *ud, const char *key, const char *value)
{
	(void)value;
	struct param_check *pc = ud;
	if (pc->unknown)
		return;
	for (const char *const *k = pc->known; *k; k++)
		if (!strcmp(*k, key) || (!strcmp(*k, SRV_FILTER_PARAM) && !strncmp(key, "filter.", 7)))
			return;
	pc->unknown = key;
}

/* A parameter the route does not take: 400 naming it and the known ones. */
static int unknown_param(struct http_req *r)
{
	int id = r->match.route->id;
	struct param_check pc = { .known = srv_route_params[id] };
	http_query_each(r, check_param, &pc);
	if (!pc.unknown)
		return 0;
	char known[256] = "";
	for (const char *const *k = pc.known; *k; k++) {
		if (strlen(known) + strlen(*k) + 3 >= sizeof known)
			break;
		if (*known)
			strcat(known, ", ");
		strcat(known, *k);
	}
	http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%.100s: unknown parameter (%s %s takes %s)", pc.unknown,
			 r->match.route->method, r->match.route->path, *known ? known : "none");
	return 1;
}

/* min_seq=N on a read: wait (the request timeout at most) until this
 * node's index has applied change N, which a write through any node
 * answered in X-Clipd-Seq, so that a client reads its own writes behind a
 * load balancer. 1 when the request was answered (refused or timed out). */
static int wait_min_seq(struct srv_app *app, struct http_req *r)
{
	const char *v = http_query(r, "min_seq");
	if (!v)
		return 0;
	size_t len = strlen(v);
	unsigned long long n = 0;
	int ok = len >= 1 && len <= 18;
	for (size_t i = 0; ok && i < len; i++) {
		ok = v[i] >= '0' && v[i] <= '9';
		n = n * 10 + (unsigned)(v[i] - '0');
	}
	if (!ok) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "min_seq: must be a change sequence number (1 to 18 digits), "
				 "as a write's X-Clipd-Seq gave it");
		return 1;
	}
	if (!app->cat) {
		http_reply_error_retry(r, HTTP_ERR_NOT_READY, 1, "the model or the index is still loading");
		return 1;
	}
	store_error err = { 0 };
	long long timeout = app->cfg->timeout;
	int rc = catalog_wait_applied(app->cat, n, (int)(timeout * 1000), &err);
	if (rc == 0)
		return 0;
	if (rc == 1)
		http_reply_error_retry(r, HTTP_ERR_REPLICA_BEHIND, 1, "min_seq %llu: this node has applied changes up to "
				       "%llu and change %llu did not arrive within %lld s (the node's catalog reader lags, "
				       "or no such change was committed): retry, or ask another node", n,
				       (unsigned long long)catalog_applied_seq(app->cat), n, timeout);
	else
		srv_reply_store_error(r, &err);
	return 1;
}

void srv_handle(struct http_req *r)
{
	struct srv_app *app = srv_app_of(r);
	if (unknown_param(r) || wait_min_seq(app, r))
		return;
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
	case ROUTE_SEARCH_JSON: srv_search_json(app, r); break;
	case ROUTE_IMAGE_DUPLICATES: srv_image_duplicates(app, r); break;
	case ROUTE_DUPLICATES: srv_duplicates(app, r); break;
	case ROUTE_EXPORT: srv_export(app, r); break;
	case ROUTE_LIBRARIES: srv_libraries_list(app, r); break;
	case ROUTE_LIBRARY_SCAN: srv_library_scan(app, r); break;
	case ROUTE_LIBRARY_ERRORS: srv_library_errors(app, r); break;
	case ROUTE_WEB_INDEX: /* served by the HTTP layer */
	case ROUTE_COUNT:
		http_reply_error(r, HTTP_ERR_NOT_FOUND, NULL);
		break;
	}
}
