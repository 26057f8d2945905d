/*
 * /images: upload (raw or multipart), list, get, patch, delete, the
 * original's bytes and thumbnails.
 *
 * An upload's path: on the HTTP thread the body's type and header are
 * checked (415, 413, 422 before any work); the request is suspended; on a
 * worker the bytes are hashed (a duplicate is answered without encoding),
 * decoded under the pixel budget and queued for the image encoder; the
 * batch's vectors come back on the encoder's thread, which hands the commit
 * (blob, row, vector, index: catalog_add) to a worker; the last item to
 * finish resumes the request, whose answer is built on an HTTP thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "text.h"
#include "files.h"
#include "libpath.h"
#include "sha256.h"
#include "srv_app.h"
#include "srv_json.h"
#include "srv_thumb.h"

/* ---- uploads ---------------------------------------------------------------- */

struct upload;

struct upload_item {
	struct upload *up;
	struct srv_image_job job;
	const void *data;              /* borrowed from the request */
	size_t len;
	char *filename;                /* cleaned copy, or NULL */
	const char *mime;
	int width, height;
	char sha[SHA256_HEX];
	float *vec;
	/* outcome */
	int done;
	unsigned status;               /* 201, 200 (duplicate) or an error's status */
	enum http_err err;
	unsigned retry_after;
	char msg[300];
	struct store_image img;
	int duplicate;
	int metadata_applied;          /* the upload's metadata is in img's */
};

struct upload {
	struct srv_app *app;
	struct http_req *r;
	int multipart;
	char *metadata;                /* compact JSON, or NULL */
	int merge;                     /* on_duplicate=merge: a duplicate takes the metadata (RFC 7396) */
	struct upload_item *items;
	size_t n;
	struct srv_parts parts;
};

static void upload_free(void *p)
{
	struct upload *up = p;
	if (!up)
		return;
	for (size_t i = 0; i < up->n; i++) {
		free(up->items[i].filename);
		free(up->items[i].vec);
		store_image_clear(&up->items[i].img);
	}
	free(up->items);
	free(up->metadata);
	free(up);
}

static void item_error(struct upload_item *it, enum http_err err, const char *msg)
{
	it->err = err;
	it->status = http_error_status(err);
	snprintf(it->msg, sizeof it->msg, "%.299s", msg && *msg ? msg : http_errors[err].message);
	it->done = 1;
}

/* An item's error from a store_/catalog_ failure (catalog_unavailable
 * with Retry-After); logged when it is the server's. */
static void item_store_error(struct upload_item *it, const store_error *err, const char *what)
{
	enum http_err code = srv_store_http_error(err->code);
	if (code == HTTP_ERR_CATALOG_UNAVAILABLE)
		log_warn("rid=%s: %s: %s", it->up->r->request_id, what, err->msg);
	else if (code != HTTP_ERR_BAD_PARAMETER)
		log_error("rid=%s: %s: %s", it->up->r->request_id, what, err->msg);
	item_error(it, code, err->msg);
	it->retry_after = code == HTTP_ERR_CATALOG_UNAVAILABLE ? SRV_CATALOG_RETRY_AFTER : 0;
}

/* An item's end, on whatever thread: the last one resumes the request. */
static void item_finished(struct upload_item *it)
{
	it->done = 1;
	srv_parts_done(&it->up->parts);
}

/* A duplicate of a stored image: with on_duplicate=merge, the upload's
 * metadata merged into the stored one (the configured limits hold for the
 * result). 0, or the item's error set. */
static int merge_duplicate(struct upload_item *it)
{
	struct upload *up = it->up;
	store_error err = { 0 };
	it->duplicate = 1;
	/* The stored image may be a library file's: the upload's copy then
	 * becomes its original, so that it outlives the file (an upload is
	 * never lost because a library changed). */
	if (catalog_library_adopt(up->app->cat, it->img.id, it->sha, it->data, it->len, &err) < 0) {
		store_image_clear(&it->img);
		item_store_error(it, &err, "keeping an upload's copy");
		return -1;
	}
	if (!up->metadata || !up->merge)
		return 0;
	struct store_image img;
	const struct srv_config *cfg = up->app->cfg;
	if (catalog_patch_metadata(up->app->cat, it->img.id, up->metadata, strlen(up->metadata),
				   (size_t)cfg->max_metadata, (int)cfg->max_metadata_depth, &img, &err) != 0) {
		store_image_clear(&it->img);
		if (err.code == STORE_ERR_UNAVAILABLE) {
			item_store_error(it, &err, "merging metadata");
			return -1;
		}
		enum http_err code = err.code == STORE_ERR_INVALID || err.code == STORE_ERR_TOO_LARGE
			? HTTP_ERR_BAD_PARAMETER : srv_store_http_error(err.code);
		char msg[sizeof it->msg];
		snprintf(msg, sizeof msg, "metadata: %.280s", err.msg);
		item_error(it, code, msg);
		return -1;
	}
	store_image_clear(&it->img);
	it->img = img;
	it->metadata_applied = 1;
	return 0;
}

static void commit_task(void *arg)
{
	struct upload_item *it = arg;
	struct upload *up = it->up;
	store_error err = { 0 };
	struct catalog_new_image in = {
		.data = it->data, .len = it->len, .sha256 = it->sha, .mime = it->mime,
		.width = it->width, .height = it->height, .filename = it->filename,
		.metadata = up->metadata, .metadata_len = 0, .vec = it->vec, .dim = up->app->dim,
	};
	srv_taken_at(it->job.taken_at, &in.taken);
	if (catalog_add(up->app->cat, &in, &it->img, &it->duplicate, &err) != 0) {
		item_store_error(it, &err, "storing an upload");
	} else if (!it->duplicate) {
		it->status = 201;
		it->metadata_applied = up->metadata != NULL;
	} else if (merge_duplicate(it) == 0) {
		it->status = 200;
	}
	item_finished(it);
}

/* The encoder's answer, on its thread: the commit goes to a worker. */
static void vector_ready(struct srv_image_job *job)
{
	struct upload_item *it = job->ud;
	if (job->status != 0) {
		enum http_err code = srv_clip_http_error(job->status);
		if (code == HTTP_ERR_INTERNAL)
			log_error("rid=%s: encoding an upload: %s", it->up->r->request_id, job->msg);
		item_error(it, code, job->msg);
		it->retry_after = code == HTTP_ERR_OVERLOADED ? 1 : 0;
		item_finished(it);
		return;
	}
	srv_pool_submit(it->up->app->commits, commit_task, it, 1);
}

/* On a worker: hash, skip duplicates, decode and queue for the encoder. */
static void prepare_task(void *arg)
{
	struct upload_item *it = arg;
	struct upload *up = it->up;
	sha256_hex(it->data, it->len, it->sha);
	store_error err = { 0 };
	int rc = catalog_get_by_sha256(up->app->cat, it->sha, &it->img, &err);
	if (rc == 0) {
		if (merge_duplicate(it) == 0)
			it->status = 200;
		item_finished(it);
		return;
	}
	if (rc != STORE_ERR_NOT_FOUND) {
		item_store_error(it, &err, "looking for the same bytes");
		item_finished(it);
		return;
	}
	it->job.data = it->data;
	it->job.len = it->len;
	it->job.width = it->width;
	it->job.height = it->height;
	it->job.vec = it->vec;
	it->job.dim = up->app->dim;
	it->job.done = vector_ready;
	it->job.ud = it;
	srv_encode_image_now(up->app->enc, &it->job);
}

static cJSON *item_json(const struct upload_item *it, int with_status)
{
	cJSON *o;
	if (it->status == 200 || it->status == 201) {
		o = srv_image_json(&it->img);
		if (!o)
			return NULL;
		cJSON_AddBoolToObject(o, "duplicate", it->duplicate);
		if (it->up->metadata)
			cJSON_AddBoolToObject(o, "metadata_applied", it->metadata_applied);
	} else {
		o = cJSON_CreateObject();
		if (it->filename)
			cJSON_AddStringToObject(o, "filename", it->filename);
		else
			cJSON_AddNullToObject(o, "filename");
		cJSON *e = cJSON_AddObjectToObject(o, "error");
		cJSON_AddStringToObject(e, "code", http_error_name(it->err));
		cJSON_AddStringToObject(e, "message", it->msg);
	}
	if (with_status)
		cJSON_AddNumberToObject(o, "status", it->status);
	return o;
}

static void upload_answer(struct http_req *r)
{
	struct upload *up = r->app;
	if (!up->multipart) {
		struct upload_item *it = &up->items[0];
		if (it->status != 200 && it->status != 201) {
			if (it->retry_after)
				http_reply_error_retry(r, it->err, it->retry_after, "%s", it->msg);
			else
				http_reply_error(r, it->err, "%s", it->msg);
			return;
		}
		char loc[64];
		snprintf(loc, sizeof loc, "Location: /images/%lld", (long long)it->img.id);
		/* the change sequence this node's index has applied, this upload
		 * included: a client reads its own write through another node by
		 * waiting for it there */
		char seq[48];
		snprintf(seq, sizeof seq, "X-Clipd-Seq: %llu", (unsigned long long)catalog_applied_seq(up->app->cat));
		const char *headers[] = { loc, seq, NULL };
		srv_reply_cjson_headers(r, it->status, item_json(it, 0), headers);
		return;
	}
	/* 201: every file new; 200: every file stored, some already were;
	 * 207: some failed; all failed: their error (the first server-side
	 * one, or the one they share, else bad_parameter), the files listed. */
	size_t failed = 0, created = 0;
	const struct upload_item *first_failure = NULL, *server_failure = NULL;
	int shared = 1;
	for (size_t i = 0; i < up->n; i++) {
		const struct upload_item *it = &up->items[i];
		if (it->status == 201) {
			created++;
		} else if (it->status != 200) {
			failed++;
			if (!first_failure)
				first_failure = it;
			else if (it->err != first_failure->err)
				shared = 0;
			if (!server_failure && it->status >= 500)
				server_failure = it;
		}
	}
	cJSON *root = cJSON_CreateObject();
	unsigned status = created == up->n ? 201 : failed == 0 ? 200 : 207;
	char retry[32] = "";
	if (failed == up->n) {
		const struct upload_item *it = server_failure ? server_failure : shared ? first_failure : NULL;
		enum http_err code = it ? it->err : HTTP_ERR_BAD_PARAMETER;
		/* the error's Retry-After, as a single upload's (a 503) */
		if (it && it->retry_after)
			snprintf(retry, sizeof retry, "Retry-After: %u", it->retry_after);
		status = http_error_status(code);
		cJSON *e = cJSON_AddObjectToObject(root, "error");
		cJSON_AddStringToObject(e, "code", http_error_name(code));
		cJSON_AddStringToObject(e, "message", it ? it->msg : "no file could be stored (each file's error is in items)");
	}
	cJSON *items = cJSON_AddArrayToObject(root, "items");
	for (size_t i = 0; i < up->n; i++) {
		cJSON *o = item_json(&up->items[i], 1);
		if (o)
			cJSON_AddItemToArray(items, o);
	}
	const char *headers[] = { retry[0] ? retry : NULL, NULL };
	srv_reply_cjson_headers(r, status, root, headers);
}

/* A filename from a client: valid UTF-8, at most CATALOG_MAX_FILENAME bytes
 * (cut at a character), never used as a path. NULL when empty. */
static char *clean_filename(const char *name)
{
	if (!name || !*name)
		return NULL;
	size_t len = strnlen(name, 4 * CATALOG_MAX_FILENAME);
	char *clean = srv_utf8_clean(name, len);
	if (!clean)
		return NULL;
	size_t n = strlen(clean);
	if (n > CATALOG_MAX_FILENAME) {
		n = CATALOG_MAX_FILENAME;
		while (n > 0 && ((unsigned char)clean[n] & 0xC0) == 0x80)
			n--;
		clean[n] = 0;
	}
	return clean;
}

/* The store's message about metadata, named as the parameter is. */
static const char *metadata_prefix(const char *msg)
{
	return strncmp(msg, "metadata", 8) ? "metadata: " : "";
}

/* Check metadata JSON text (a parameter or a part): 0 and *compact
 * (malloc'd, may stay NULL for none), or an answer and -1. */
static int check_metadata(struct srv_app *app, struct http_req *r, const char *text, size_t len, char **compact)
{
	*compact = NULL;
	if (!text)
		return 0;
	store_error err = { 0 };
	if (catalog_check_metadata(app->cat, text, len, (size_t)app->cfg->max_metadata,
				   (int)app->cfg->max_metadata_depth, compact, &err) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s%s", metadata_prefix(err.msg), err.msg);
		return -1;
	}
	return 0;
}

/* The synchronous checks of one file: type, pixels. 0 if it may go on. */
static int intake(struct srv_app *app, struct upload_item *it)
{
	char msg[SRV_IMAGE_MSG_MAX];
	enum http_err code;
	if (srv_check_image(app, it->data, it->len, &it->width, &it->height, &it->mime, &code, msg,
			    sizeof msg) != 0) {
		item_error(it, code, msg);
		return -1;
	}
	it->vec = malloc(app->dim * sizeof *it->vec);
	if (!it->vec) {
		item_error(it, HTTP_ERR_INTERNAL, "out of memory");
		return -1;
	}
	return 0;
}

void srv_images_create(struct srv_app *app, struct http_req *r)
{
	struct upload *up = calloc(1, sizeof *up);
	if (!up) {
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return;
	}
	r->app = up;
	r->app_free = upload_free;
	up->app = app;
	up->r = r;
	up->multipart = r->multipart;
	const char *od = http_query(r, "on_duplicate");
	if (od && strcmp(od, "merge") && strcmp(od, "ignore")) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "on_duplicate: must be ignore (the default) or merge");
		return;
	}
	up->merge = od && !strcmp(od, "merge");

	if (!r->multipart) {
		const void *data;
		size_t len;
		const char *fname;
		if (srv_request_image(r, &data, &len, &fname) != 0)
			return;
		const char *meta = http_query(r, "metadata");
		if (check_metadata(app, r, meta, meta ? strlen(meta) : 0, &up->metadata) != 0)
			return;
		up->items = calloc(1, sizeof *up->items);
		if (!up->items) {
			http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
			return;
		}
		up->n = 1;
		up->items[0].up = up;
		up->items[0].data = data;
		up->items[0].len = len;
		up->items[0].filename = clean_filename(http_query(r, "filename"));
	} else {
		struct http_form_part *meta = http_form_get(r, "metadata");
		if (meta && check_metadata(app, r, meta->data.data ? meta->data.data : "", meta->data.len,
					   &up->metadata) != 0)
			return;
		size_t files = 0;
		for (size_t i = 0; i < r->n_parts; i++)
			files += !strcmp(r->parts[i].head.name, "file");
		if (files == 0) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "file: at least one part named \"file\" is required");
			return;
		}
		if (files > (size_t)app->cfg->max_files) {
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "file: at most %lld files per request", app->cfg->max_files);
			return;
		}
		up->items = calloc(files, sizeof *up->items);
		if (!up->items) {
			http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
			return;
		}
		for (size_t i = 0; i < r->n_parts; i++) {
			struct http_form_part *p = &r->parts[i];
			if (strcmp(p->head.name, "file"))
				continue;
			struct upload_item *it = &up->items[up->n++];
			it->up = up;
			it->data = p->data.data ? p->data.data : "";
			it->len = p->data.len;
			it->filename = clean_filename(p->head.filename);
		}
	}
	/* Synchronous checks, then hand the survivors to the workers. The
	 * count starts at one for ourselves, so that no worker can resume the
	 * request before every item has been handed over. */
	http_suspend(r);
	r->on_resume = upload_answer;
	srv_parts_begin(&up->parts, r);
	for (size_t i = 0; i < up->n; i++) {
		struct upload_item *it = &up->items[i];
		if (intake(app, it) != 0)
			continue;
		srv_parts_add(&up->parts);
		if (srv_encoder_run(app->enc, prepare_task, it, 0) != 0) {
			item_error(it, HTTP_ERR_OVERLOADED, "the upload queue is full");
			it->retry_after = 1;
			srv_parts_done(&up->parts);
		}
	}
	srv_parts_done(&up->parts);
}

/* ---- reading ------------------------------------------------------------------- */

/* GET /images?sha256=HEX: the image with these bytes, as a one-item page
 * (no items when none): a client's check before it sends a file. */
static void images_by_sha256(struct srv_app *app, struct http_req *r, const char *hex)
{
	char sha[SHA256_HEX];
	size_t n = strlen(hex);
	for (size_t i = 0; i < n && n == 64; i++)
		sha[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
	if (n != 64 || (sha[64] = 0, !sha256_is_hex(sha))) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "sha256: must be 64 hexadecimal digits");
		return;
	}
	struct store_image img;
	store_error err = { 0 };
	int rc = catalog_get_by_sha256(app->cat, sha, &img, &err);
	if (rc != 0 && rc != STORE_ERR_NOT_FOUND) {
		srv_reply_store_error(r, &err);
		return;
	}
	cJSON *root = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(root, "items");
	if (rc == 0) {
		cJSON *o = srv_image_json(&img);
		if (o)
			cJSON_AddItemToArray(arr, o);
		store_image_clear(&img);
	}
	cJSON_AddNullToObject(root, "next_cursor");
	srv_reply_cjson(r, 200, root);
}

void srv_images_list(struct srv_app *app, struct http_req *r)
{
	long long limit = 50, cursor = 0;
	const char *v = http_query(r, "sha256");
	if (v) {
		images_by_sha256(app, r, v);
		return;
	}
	v = http_query(r, "limit");
	if (v && srv_parse_int(v, 1, app->cfg->max_list, &limit) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "limit: must be a whole number from 1 to %lld", app->cfg->max_list);
		return;
	}
	v = http_query(r, "cursor");
	if (v && *v && srv_parse_int(v, 1, (long long)HTTP_ID_MAX + 1, &cursor) != 0) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "cursor: not a cursor this server gave out");
		return;
	}
	struct store_selection sel;
	struct store_filter filters[STORE_MAX_FILTERS];
	if (srv_parse_selection(app, r, &sel, filters) != 0)
		return;
	struct store_image *items = NULL;
	size_t n = 0;
	int64_t next = 0;
	store_error err = { 0 };
	if (catalog_list(app->cat, &sel, cursor, (size_t)limit, &items, &n, &next, &err) != 0) {
		srv_reply_store_error(r, &err);
		return;
	}
	cJSON *root = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(root, "items");
	for (size_t i = 0; i < n; i++) {
		cJSON *o = srv_image_json(&items[i]);
		if (o)
			cJSON_AddItemToArray(arr, o);
	}
	store_images_free(items, n);
	srv_add_cursor(root, next);
	srv_reply_cjson(r, 200, root);
}

void srv_image_get(struct srv_app *app, struct http_req *r)
{
	struct store_image img;
	store_error err = { 0 };
	if (catalog_get(app->cat, r->match.id, &img, &err) != 0) {
		srv_reply_store_error(r, &err);
		return;
	}
	cJSON *o = srv_image_json(&img);
	store_image_clear(&img);
	srv_reply_cjson(r, 200, o);
}

void srv_image_patch(struct srv_app *app, struct http_req *r)
{
	if (r->multipart || !r->body.len) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "body: a JSON object (an RFC 7396 merge patch) is required");
		return;
	}
	const char *ct = r->content_type;
	if (ct && strncmp(ct, "application/json", 16) && strncmp(ct, "application/merge-patch+json", 28)) {
		http_reply_error(r, HTTP_ERR_UNSUPPORTED_MEDIA_TYPE,
				 "Content-Type must be application/merge-patch+json or application/json");
		return;
	}
	if (r->body.len > (size_t)app->cfg->max_metadata * 4 + 1024) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "metadata: the patch is larger than allowed");
		return;
	}
	struct store_image img;
	store_error err = { 0 };
	/* the configured limits hold for the merged result, checked in the
	 * same write as the update (two patches at once cannot add up past them) */
	if (catalog_patch_metadata(app->cat, r->match.id, r->body.data, r->body.len, (size_t)app->cfg->max_metadata,
				   (int)app->cfg->max_metadata_depth, &img, &err) != 0) {
		if (err.code == STORE_ERR_INVALID || err.code == STORE_ERR_TOO_LARGE)
			http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "%s%s", metadata_prefix(err.msg), err.msg);
		else
			srv_reply_store_error(r, &err);
		return;
	}
	cJSON *o = srv_image_json(&img);
	store_image_clear(&img);
	/* as an upload's: a read with min_seq through another node sees the patch */
	char seq[48];
	snprintf(seq, sizeof seq, "X-Clipd-Seq: %llu", (unsigned long long)catalog_applied_seq(app->cat));
	const char *headers[] = { seq, NULL };
	srv_reply_cjson_headers(r, 200, o, headers);
}

void srv_image_delete(struct srv_app *app, struct http_req *r)
{
	struct store_image img;
	store_error err = { 0 };
	if (catalog_get(app->cat, r->match.id, &img, &err) != 0) {
		srv_reply_store_error(r, &err);
		return;
	}
	if (catalog_delete(app->cat, r->match.id, &err) != 0) {
		store_image_clear(&img);
		srv_reply_store_error(r, &err);
		return;
	}
	store_image_clear(&img);
	char seq[48];
	snprintf(seq, sizeof seq, "X-Clipd-Seq: %llu", (unsigned long long)catalog_applied_seq(app->cat));
	const char *headers[] = { seq, NULL };
	http_reply_empty(r, 204, headers);
}

/* Open an image's original: its blob, or its library file, which must
 * still have the size and mtime it was indexed with. The descriptor and
 * its size, or -1 with the error's code and message. */
static int original_fd(struct srv_app *app, const struct store_image *img, uint64_t *size, enum http_err *code,
		       char *msg, size_t msglen)
{
	char path[8192];
	int64_t want_size = 0, want_mtime = -1;
	size_t rel_at = 0;
	store_error err = { 0 };
	int rc = catalog_original(app->cat, img, path, sizeof path, &rel_at, &want_size, &want_mtime, &err);
	if (rc != 0) {
		*code = rc == STORE_ERR_NOT_FOUND ? HTTP_ERR_SOURCE_MISSING : srv_store_http_error(rc);
		text_copy(msg, msglen, err.msg);
		return -1;
	}
	int lib = rel_at > 0;
	int fd;
	if (lib) {
		path[rel_at - 1] = 0;   /* the root, and the path inside it */
		fd = libpath_open(path, path + rel_at, O_RDONLY | O_NONBLOCK);
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	}
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		/* A blob deleted between the row read and the open; a library
		 * file moved or removed since the last scan. */
		if (fd >= 0)
			close(fd);
		*code = lib ? HTTP_ERR_SOURCE_MISSING : HTTP_ERR_NOT_FOUND;
		if (lib)
			snprintf(msg, msglen, "image %lld: its file %s/%s is gone since the last scan of library %s",
				 (long long)img->id, img->source_library, img->source_path, img->source_library);
		else
			snprintf(msg, msglen, "image %lld is gone", (long long)img->id);
		return -1;
	}
	int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if (lib && (st.st_size != want_size || mtime != want_mtime)) {
		close(fd);
		*code = HTTP_ERR_SOURCE_MISSING;
		snprintf(msg, msglen, "image %lld: its file %s/%s changed since it was indexed; the next scan of "
			 "library %s re-indexes it", (long long)img->id, img->source_library, img->source_path,
			 img->source_library);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

static int open_original(struct srv_app *app, struct http_req *r, const struct store_image *img, uint64_t *size)
{
	enum http_err code;
	char msg[512];
	int fd = original_fd(app, img, size, &code, msg, sizeof msg);
	if (fd < 0)
		http_reply_error(r, code, "%s", msg);
	return fd;
}

/* "Content-Disposition: inline; filename*=UTF-8''..." (RFC 6266, RFC 5987):
 * the stored filename's last path segment, percent-encoded except for
 * RFC 5987's attr-chars; without one, "image-ID" and the type's extension. */
static void content_disposition(const struct store_image *img, char *buf, size_t len)
{
	static const char attr_chars[] = "!#$&+-.^_`|~";
	char fallback[64];
	const char *name = img->filename;
	if (name) {
		const char *slash = strrchr(name, '/'), *back = strrchr(name, '\\');
		if (back && (!slash || back > slash))
			slash = back;
		if (slash)
			name = slash + 1;
	}
	if (!name || !*name || !strcmp(name, ".") || !strcmp(name, "..")) {
		const char *sub = strchr(img->mime, '/');
		snprintf(fallback, sizeof fallback, "image-%lld.%s", (long long)img->id, sub ? sub + 1 : "bin");
		name = fallback;
	}
	size_t at = (size_t)snprintf(buf, len, "Content-Disposition: inline; filename*=UTF-8''");
	for (const unsigned char *p = (const unsigned char *)name; *p && at + 4 < len; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
		    || (*p && strchr(attr_chars, *p)))
			buf[at++] = (char)*p;
		else
			at += (size_t)snprintf(buf + at, len - at, "%%%02X", *p);
	}
	buf[at] = 0;
}

void srv_image_file(struct srv_app *app, struct http_req *r)
{
	struct store_image img;
	store_error err = { 0 };
	if (catalog_get(app->cat, r->match.id, &img, &err) != 0) {
		srv_reply_store_error(r, &err);
		return;
	}
	char etag[96];
	snprintf(etag, sizeof etag, "ETag: \"%s\"", img.sha256);
	/* 255 bytes of filename, each at most three when encoded */
	char disposition[64 + 3 * CATALOG_MAX_FILENAME];
	content_disposition(&img, disposition, sizeof disposition);
	const char *headers[] = { etag, "Cache-Control: private, max-age=31536000, immutable", disposition, NULL };
	if (http_etag_matches(r, etag + 6)) {
		store_image_clear(&img);
		http_reply_empty(r, 304, headers);
		return;
	}
	uint64_t size = 0;
	int fd = open_original(app, r, &img, &size);
	if (fd >= 0) {
		char mime[STORE_MIME_MAX];
		snprintf(mime, sizeof mime, "%s", img.mime);
		http_reply_fd(r, 200, mime, fd, size, headers);
	}
	store_image_clear(&img);
}

/* ---- thumbnails ------------------------------------------------------------------ */

struct thumb {
	struct srv_app *app;
	struct http_req *r;
	struct store_image img;
	int size;
	unsigned char *jpeg;
	size_t len;
	enum http_err err;
	int failed;
	char msg[256];
};

static void thumb_free(void *p)
{
	struct thumb *t = p;
	if (!t)
		return;
	store_image_clear(&t->img);
	free(t->jpeg);
	free(t);
}

static void thumb_headers(const struct thumb *t, char *etag, size_t len, const char **headers)
{
	/* v2: transparent pixels over white (the cache file's name says the same) */
	snprintf(etag, len, "ETag: \"%s-%d-v2\"", t->img.sha256, t->size);
	headers[0] = etag;
	headers[1] = "Cache-Control: private, max-age=31536000, immutable";
	headers[2] = NULL;
}

static void thumb_answer(struct http_req *r)
{
	struct thumb *t = r->app;
	if (t->failed) {
		http_reply_error(r, t->err, "%s", t->msg);
		return;
	}
	char etag[128];
	const char *headers[3];
	thumb_headers(t, etag, sizeof etag, headers);
	unsigned char *jpeg = t->jpeg;
	t->jpeg = NULL;
	http_reply_owned(r, 200, "image/jpeg", jpeg, t->len, headers);
}

static void thumb_fail(struct thumb *t, enum http_err err, const char *msg)
{
	t->failed = 1;
	t->err = err;
	text_copy(t->msg, sizeof t->msg, msg);
}

/* On a worker: read the original, decode under the budget, shrink, JPEG, cache. */
static void thumb_task(void *arg)
{
	struct thumb *t = arg;
	struct srv_app *app = t->app;
	unsigned char *bytes = NULL;
	clip_image img = { 0 };
	size_t share = (size_t)t->img.width * (size_t)t->img.height;
	/* The original is read whole: exactly the size it was stored (or
	 * indexed) with. */
	uint64_t size = 0;
	enum http_err code;
	char why[512];
	int fd = original_fd(app, &t->img, &size, &code, why, sizeof why);
	if (fd < 0) {
		thumb_fail(t, code, why);
		goto out;
	}
	size_t len = (size_t)size;
	bytes = malloc(len ? len : 1);
	size_t got = 0;
	while (bytes && got < len) {
		ssize_t n = read(fd, bytes + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (!bytes || got != len) {
		log_error("rid=%s: thumbnail: cannot read the original of image %lld", t->r->request_id,
			  (long long)t->img.id);
		thumb_fail(t, HTTP_ERR_INTERNAL, "cannot read the original");
		goto out;
	}
	clip_error err = { 0 };
	/* Decoded at the smallest DCT scale that still covers the size (a
	 * JPEG), transparent pixels over white (JPEG has no alpha). */
	struct clip_decode_params dp = clip_decode_default_params();
	dp.max_pixels = (size_t)app->cfg->max_pixels;
	dp.min_long_side = t->size;
	dp.keep_alpha = 1;
	srv_encoder_budget_take(app->enc, share);
	int rc = clip_image_decode_with(bytes, len, &dp, &img, &err);
	if (rc == 0) {
		clip_image_flatten(&img);
		if (srv_thumb_make(&img, t->size, &t->jpeg, &t->len) != 0)
			thumb_fail(t, HTTP_ERR_INTERNAL, "out of memory making the thumbnail");
	}
	clip_image_free(&img);
	srv_encoder_budget_give(app->enc, share);
	if (rc != 0) {
		thumb_fail(t, HTTP_ERR_INTERNAL, err.msg);
		goto out;
	}
	if (!t->failed) {
		store_error cerr = { 0 };
		if (catalog_put_thumb(app->cat, t->img.sha256, t->size, t->jpeg, t->len, &cerr) != 0)
			log_warn("thumbnail cache: %s", cerr.msg);
	}
out:
	free(bytes);
	http_resume(t->r);
}

void srv_image_thumbnail(struct srv_app *app, struct http_req *r)
{
	long long size = 256;
	const char *v = http_query(r, "size");
	if (v && (srv_parse_int(v, 1, 100000, &size) != 0 || !srv_thumb_size_ok(size))) {
		http_reply_error(r, HTTP_ERR_BAD_PARAMETER, "size: must be 128, 256 or 512");
		return;
	}
	struct thumb *t = calloc(1, sizeof *t);
	if (!t) {
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return;
	}
	r->app = t;
	r->app_free = thumb_free;
	t->app = app;
	t->r = r;
	t->size = (int)size;
	store_error err = { 0 };
	if (catalog_get(app->cat, r->match.id, &t->img, &err) != 0) {
		srv_reply_store_error(r, &err);
		return;
	}
	char etag[128];
	const char *headers[3];
	thumb_headers(t, etag, sizeof etag, headers);
	if (http_etag_matches(r, etag + 6)) {
		http_reply_empty(r, 304, headers);
		return;
	}
	char path[4096];
	if (catalog_thumb_path(app->cat, t->img.sha256, t->size, path, sizeof path, NULL) == 0) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
			http_reply_fd(r, 200, "image/jpeg", fd, (uint64_t)st.st_size, headers);
			return;
		}
		if (fd >= 0)
			close(fd);
	}
	http_suspend(r);
	r->on_resume = thumb_answer;
	if (srv_encoder_run(app->enc, thumb_task, t, 0) != 0) {
		thumb_fail(t, HTTP_ERR_OVERLOADED, "the worker queue is full");
		http_resume(r);
	}
}
