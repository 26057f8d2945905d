/*
 * /libraries: each library's state and scan progress, a scan on request,
 * the files that failed; and the libraries' lines of /metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libpath.h"
#include "srv_app.h"
#include "srv_json.h"

#define ERRORS_DEFAULT_LIMIT 100

static const char *state_name(enum srv_library_state s)
{
	return s == SRV_LIBRARY_SCANNING  ? "scanning"
	       : s == SRV_LIBRARY_OFFLINE ? "offline"
	       : s == SRV_LIBRARY_WAITING ? "queued"
					  : "idle";
}

static cJSON *library_json(const struct srv_library_status *st)
{
	char buf[SRV_TIME_MAX + 160];
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "name", st->name);
	srv_add_path_string(o, "root", st->root);
	cJSON_AddStringToObject(o, "state", state_name(st->state));
	if (st->state == SRV_LIBRARY_OFFLINE)
		srv_add_path_string(o, "offline_reason", st->offline_reason);
	else
		cJSON_AddNullToObject(o, "offline_reason");
	cJSON_AddBoolToObject(o, "walking", st->state == SRV_LIBRARY_SCANNING && st->walking);
	cJSON_AddNumberToObject(o, "files_seen", (double)st->files_seen);
	cJSON_AddNumberToObject(o, "images", (double)st->images);
	cJSON_AddNumberToObject(o, "to_index", (double)st->to_index);
	cJSON_AddNumberToObject(o, "indexed_this_scan", (double)st->indexed_this_scan);
	cJSON_AddNumberToObject(o, "unchanged", (double)st->unchanged);
	cJSON_AddNumberToObject(o, "waiting", (double)st->waiting);
	cJSON_AddNumberToObject(o, "failed", (double)st->files_failed);
	cJSON_AddNumberToObject(o, "failed_this_scan", (double)st->failed_this_scan);
	cJSON_AddNumberToObject(o, "symlinks_skipped", (double)st->symlinks_skipped);
	cJSON_AddNumberToObject(o, "dirs_unreadable", (double)st->dirs_unreadable);
	cJSON_AddNumberToObject(o, "bytes", (double)st->bytes);
	cJSON_AddNumberToObject(o, "rate_per_s", st->state == SRV_LIBRARY_SCANNING ? st->rate_per_s : 0);
	if (st->state == SRV_LIBRARY_SCANNING && st->eta_s < 0)
		cJSON_AddNullToObject(o, "eta_s");
	else
		cJSON_AddNumberToObject(o, "eta_s", st->state == SRV_LIBRARY_SCANNING ? st->eta_s : 0);
	if (st->last.last_finished_at) {
		cJSON *l = cJSON_AddObjectToObject(o, "last_scan");
		srv_time_format(st->last.last_started_at, buf);
		cJSON_AddStringToObject(l, "started_at", buf);
		srv_time_format(st->last.last_finished_at, buf);
		cJSON_AddStringToObject(l, "finished_at", buf);
		cJSON_AddNumberToObject(l, "added", (double)st->last.added);
		cJSON_AddNumberToObject(l, "changed", (double)st->last.changed);
		cJSON_AddNumberToObject(l, "moved", (double)st->last.moved);
		cJSON_AddNumberToObject(l, "removed", (double)st->last.removed);
		cJSON_AddNumberToObject(l, "failed", (double)st->last.failed);
	} else {
		cJSON_AddNullToObject(o, "last_scan");
	}
	cJSON *links = cJSON_AddObjectToObject(o, "links");
	snprintf(buf, sizeof buf, "/libraries/%s/scan", st->name);
	cJSON_AddStringToObject(links, "scan", buf);
	snprintf(buf, sizeof buf, "/libraries/%s/errors", st->name);
	cJSON_AddStringToObject(links, "errors", buf);
	return o;
}

void srv_libraries_list(struct srv_app *app, struct http_req *r)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(root, "libraries");
	size_t n = srv_libraries_count(app->libraries);
	struct srv_library_status *st = malloc(sizeof *st);
	if (!st) {
		cJSON_Delete(root);
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		srv_libraries_status(app->libraries, i, st);
		cJSON *o = library_json(st);
		if (o)
			cJSON_AddItemToArray(arr, o);
	}
	free(st);
	srv_reply_cjson(r, 200, root);
}

/* The library named in the path, or an answer (404) and -1. */
static int library_of(struct srv_app *app, struct http_req *r)
{
	int i = srv_libraries_find(app->libraries, r->match.name);
	if (i < 0)
		http_reply_error(r, HTTP_ERR_NOT_FOUND, "no library named '%s' (GET /libraries lists them)",
				 r->match.name);
	return i;
}

void srv_library_scan(struct srv_app *app, struct http_req *r)
{
	int i = library_of(app, r);
	if (i < 0)
		return;
	srv_libraries_request_scan(app->libraries, (size_t)i);
	struct srv_library_status *st = malloc(sizeof *st);
	if (!st) {
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return;
	}
	srv_libraries_status(app->libraries, (size_t)i, st);
	cJSON *o = library_json(st);
	free(st);
	srv_reply_cjson(r, 202, o);
}

void srv_library_errors(struct srv_app *app, struct http_req *r)
{
	int li = library_of(app, r);
	if (li < 0)
		return;
	long long limit = ERRORS_DEFAULT_LIMIT;
	const char *v = http_query(r, "limit");
	if (v && srv_parse_int(v, 1, app->cfg->max_list, &limit) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "limit: must be a whole number from 1 to %lld", app->cfg->max_list);
		return;
	}
	char *after = NULL;
	v = http_query(r, "cursor");
	if (v && *v && !(after = libpath_cursor_decode(v))) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "cursor: not a cursor this server gave out");
		return;
	}
	struct store_lib_error *items = NULL;
	size_t n = 0;
	store_error err = { 0 };
	int rc = catalog_library_errors(app->cat, r->match.name, after ? after : "", (size_t)limit + 1, &items, &n, &err);
	free(after);
	if (rc != 0) {
		srv_reply_store_error(r, &err);
		return;
	}
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "library", r->match.name);
	cJSON *arr = cJSON_AddArrayToObject(root, "items");
	size_t shown = n > (size_t)limit ? (size_t)limit : n;
	for (size_t i = 0; i < shown; i++) {
		cJSON *o = cJSON_CreateObject();
		srv_add_path_string(o, "path", items[i].path);
		cJSON_AddStringToObject(o, "code", items[i].code);
		cJSON_AddNumberToObject(o, "status", items[i].status);
		srv_add_path_string(o, "message", items[i].msg);
		cJSON_AddItemToArray(arr, o);
	}
	char *next = n > shown ? libpath_cursor_encode(items[shown - 1].path) : NULL;
	if (next)
		cJSON_AddStringToObject(root, "next_cursor", next);
	else
		cJSON_AddNullToObject(root, "next_cursor");
	free(next);
	store_lib_errors_free(items, n);
	srv_reply_cjson(r, 200, root);
}

void srv_libraries_metrics(struct srv_app *app, struct dbuf *b)
{
	size_t n = srv_libraries_count(app->libraries);
	if (n == 0)
		return;
	struct srv_library_status *st = malloc(n * sizeof *st);
	if (!st)
		return;
	for (size_t i = 0; i < n; i++)
		srv_libraries_status(app->libraries, i, &st[i]);
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{ "clipd_library_scanning", "gauge", "1 while a library is being scanned." },
		{ "clipd_library_offline", "gauge", "1 while a library's folder is missing, unreadable or empty." },
		{ "clipd_library_images", "gauge", "Images found in a library." },
		{ "clipd_library_files_failed", "gauge", "Files of a library that could not be indexed." },
		{ "clipd_library_bytes", "gauge", "Bytes of a library's indexed files." },
		{ "clipd_library_files_seen", "gauge", "Files the running (or last) scan met." },
		{ "clipd_library_to_index", "gauge", "Files the running scan has still to index." },
		{ "clipd_library_indexed_this_scan", "gauge", "Files the running (or last) scan indexed." },
		{ "clipd_library_scan_rate", "gauge", "Files indexed per second by the running scan." },
		{ "clipd_library_scans_total", "counter", "Scans begun since start-up." },
		{ "clipd_library_files_indexed_total", "counter", "Files indexed by scans since start-up." },
		{ "clipd_library_images_encoded_total", "counter", "Images scans sent to the encoder since start-up." },
	};
	for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
		http_metrics_family(b, fam[f].name, fam[f].type, fam[f].help);
		for (size_t i = 0; i < n; i++) {
			double vals[] = {
				st[i].state == SRV_LIBRARY_SCANNING, st[i].state == SRV_LIBRARY_OFFLINE,
				(double)st[i].images, (double)st[i].files_failed, (double)st[i].bytes,
				(double)st[i].files_seen, (double)st[i].to_index, (double)st[i].indexed_this_scan,
				st[i].state == SRV_LIBRARY_SCANNING ? st[i].rate_per_s : 0, (double)st[i].scans,
				(double)st[i].files_indexed, (double)st[i].encoded,
			};
			char labels[128];
			snprintf(labels, sizeof labels, "library=\"%s\"", st[i].name);
			http_metrics_sample(b, fam[f].name, labels, vals[f]);
		}
	}
	free(st);
}
