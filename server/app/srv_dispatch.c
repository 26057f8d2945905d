/*
 * The dispatch from a matched route to its handler (srv_app.h).
 */
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
	case ROUTE_LIBRARIES: srv_libraries_list(app, r); break;
	case ROUTE_LIBRARY_SCAN: srv_library_scan(app, r); break;
	case ROUTE_LIBRARY_ERRORS: srv_library_errors(app, r); break;
	case ROUTE_WEB_INDEX: /* served by the HTTP layer */
	case ROUTE_COUNT:
		http_reply_error(r, HTTP_ERR_NOT_FOUND, NULL);
		break;
	}
}
