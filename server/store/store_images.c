/*
 * The SQLite store's image rows: metadata checks, writes (insert, delete,
 * metadata patch), reads and iteration. Vectors and the change log are in
 * store_vectors.c, filtered selections in store_select.c. See store.h.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "clock.h"
#include "store_internal.h"

#define IMAGE_COLS "i.id, i.sha256, i.mime, i.width, i.height, i.bytes, i.filename, i.created_at, i.metadata, " \
	"i.taken_at, i.taken_at_us, " \
	"(SELECT l.library FROM library_images l WHERE l.image_id = i.id), " \
	"(SELECT l.path FROM library_images l WHERE l.image_id = i.id)"

/* Fill out from a row of IMAGE_COLS starting at column 0. */
static int row_fill(sqlite3_stmt *st, struct store_image *out, store_error *err)
{
	memset(out, 0, sizeof *out);
	out->id = sqlite3_column_int64(st, 0);
	snprintf(out->sha256, sizeof out->sha256, "%s", (const char *)sqlite3_column_text(st, 1));
	snprintf(out->mime, sizeof out->mime, "%s", (const char *)sqlite3_column_text(st, 2));
	out->width = sqlite3_column_int(st, 3);
	out->height = sqlite3_column_int(st, 4);
	out->bytes = sqlite3_column_int64(st, 5);
	const char *fn = (const char *)sqlite3_column_text(st, 6);
	out->created_at = sqlite3_column_int64(st, 7);
	const char *md = (const char *)sqlite3_column_text(st, 8);
	const char *taken = (const char *)sqlite3_column_text(st, 9);
	if (taken) {
		snprintf(out->taken.text, sizeof out->taken.text, "%s", taken);
		out->taken.us = sqlite3_column_int64(st, 10);
	}
	const char *lib = (const char *)sqlite3_column_text(st, 11);
	const char *path = (const char *)sqlite3_column_text(st, 12);
	out->metadata = strdup(md ? md : "{}");
	if (fn)
		out->filename = strdup(fn);
	if (lib && path) {
		out->source_library = strdup(lib);
		out->source_path = strdup(path);
	}
	if (!out->metadata || (fn && !out->filename) || (lib && path && (!out->source_library || !out->source_path))) {
		store_image_clear(out);
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	}
	return 0;
}

/* ---- metadata ---------------------------------------------------------------- */

/* Check a metadata object and rewrite it in the canonical form
 * (store_json.c): 0 and *compact (malloc'd, when compact is not NULL). */
static int check_object(const char *json, size_t len, size_t max_bytes, int max_depth, const char *what,
			char **compact, store_error *err)
{
	char *canon = NULL;
	size_t n = 0;
	if (compact)
		*compact = NULL;
	if (!json || len == 0)
		return store_fail(err, STORE_ERR_INVALID, "%s is empty", what);
	if (len > 4 * max_bytes + 1024)
		return store_fail(err, STORE_ERR_TOO_LARGE, "%s is %zu bytes, more than the limit of %zu",
			       what, len, max_bytes);
	int rc = st_json_canonical(json, len, max_depth, 0, what, &canon, &n, err);
	if (rc != 0)
		return rc;
	if (canon[0] != '{') {
		const char *type = canon[0] == '[' ? "array" : canon[0] == '"' ? "string"
				   : canon[0] == 't' || canon[0] == 'f' ? "boolean" : canon[0] == 'n' ? "null" : "number";
		rc = store_fail(err, STORE_ERR_INVALID, "%s must be a JSON object, not %s", what, type);
	} else if (n > max_bytes) {
		rc = store_fail(err, STORE_ERR_TOO_LARGE, "%s is %zu bytes, more than the limit of %zu",
			     what, n, max_bytes);
	}
	if (rc == 0 && compact) {
		*compact = canon;
		canon = NULL;
	}
	free(canon);
	return rc;
}

int store_check_metadata(store *s, const char *json, size_t len, size_t max_bytes,
			 int max_depth, char **compact, store_error *err)
{
	(void)s;
	return check_object(json, len, max_bytes, max_depth, "metadata", compact, err);
}

/* ---- writes ------------------------------------------------------------------ */

/* A capture time to store: none (text ""), or RFC 3339 text that fits. The
 * text is the caller's (the server parsed it into us). */
static int st_check_taken(const struct store_taken_at *t, store_error *err)
{
	size_t n = strnlen(t->text, sizeof t->text);
	if (n == sizeof t->text)
		return store_fail(err, STORE_ERR_INVALID, "taken_at is not terminated");
	if (n && (n < 20 || t->text[4] != '-' || t->text[10] != 'T'))
		return store_fail(err, STORE_ERR_INVALID, "taken_at '%s' is not an RFC 3339 time", t->text);
	return 0;
}

/* st_insert_image with the metadata already in canonical form. */
static int insert_canonical(store *s, const struct store_new_image *img, const char *canon, const void *vec_le,
			    size_t dim, int64_t *id, uint64_t *seq, store_error *err)
{
	static const char find_sql[] = "SELECT id FROM images WHERE sha256 = ?1";
	static const char ins_sql[] =
		"INSERT INTO images (sha256, mime, width, height, bytes, filename, created_at, metadata, "
		"taken_at, taken_at_us, id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
	static const char vec_sql[] = "INSERT INTO vectors (image_id, model, vec) VALUES (?1, ?2, ?3)";
	static const char log_sql[] = "INSERT INTO changes (op, image_id) VALUES ('add', ?1)";
	struct store_model m;
	int have, rc;
	st_active(s, &m, &have);
	if (!have)
		return store_fail(err, STORE_ERR_MODEL, "the store has no active model");
	if (dim != m.dim)
		return store_fail(err, STORE_ERR_INVALID, "vector has %zu dimensions, the model %zu", dim, m.dim);
	struct store_conn *c = s->writer;
	sqlite3_stmt *st = st_prepare(c, find_sql, err);
	if (!st)
		return STMT_FAIL(err);
	sqlite3_bind_text(st, 1, img->sha256, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		rc = store_fail(err, STORE_ERR_EXISTS, "already stored as image %lld", (long long)*id);
	} else {
		rc = rc == SQLITE_DONE ? 0 : st_dberr(c->db, rc, err, "look up sha256");
	}
	st_done(st);
	if (rc != 0)
		return rc;

	if (!(st = st_prepare(c, ins_sql, err)))
		return STMT_FAIL(err);
	sqlite3_bind_text(st, 1, img->sha256, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, img->mime, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, img->width);
	sqlite3_bind_int(st, 4, img->height);
	sqlite3_bind_int64(st, 5, img->bytes);
	if (img->filename)
		sqlite3_bind_text(st, 6, img->filename, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, img->created_at ? img->created_at : clock_wall_us());
	sqlite3_bind_text(st, 8, canon, -1, SQLITE_STATIC);
	if (img->taken.text[0]) {
		sqlite3_bind_text(st, 9, img->taken.text, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 10, img->taken.us);
	}
	if (img->id > 0)   /* else NULL: the next id */
		sqlite3_bind_int64(st, 11, img->id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && sqlite3_extended_errcode(c->db) == SQLITE_CONSTRAINT_PRIMARYKEY)
		rc = store_fail(err, STORE_ERR_EXISTS, "image %lld is stored already", (long long)img->id);
	else
		rc = rc == SQLITE_DONE ? 0 : st_dberr(c->db, rc, err, "insert image");
	st_done(st);
	if (rc != 0)
		return rc;
	int64_t new_id = sqlite3_last_insert_rowid(c->db);

	if (!(st = st_prepare(c, vec_sql, err)))
		return STMT_FAIL(err);
	sqlite3_bind_int64(st, 1, new_id);
	sqlite3_bind_text(st, 2, m.fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, vec_le, (int)(dim * 4), SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : st_dberr(c->db, rc, err, "insert vector");
	st_done(st);
	if (rc != 0)
		return rc;

	if ((rc = st_exec_id(c, log_sql, new_id, "log change", err)) != 0)
		return rc;
	*id = new_id;
	*seq = (uint64_t)sqlite3_last_insert_rowid(c->db);
	return 0;
}

int st_insert_image(store *s, const struct store_new_image *img, const void *vec_le, size_t dim,
		    int64_t *id, uint64_t *seq, store_error *err)
{
	/* Whatever the caller checked, the row gets the canonical form. */
	char *canon = NULL;
	const char *md = img->metadata ? img->metadata : "{}";
	int rc = st_json_canonical(md, strlen(md), ST_JSON_MAX_DEPTH, 0, "metadata", &canon, NULL, err);
	if (rc != 0)
		return rc;
	if (canon[0] != '{')
		rc = store_fail(err, STORE_ERR_INVALID, "metadata must be a JSON object");
	else
		rc = insert_canonical(s, img, canon, vec_le, dim, id, seq, err);
	free(canon);
	return rc;
}

int st_check_new_image(const struct store_new_image *img, const float *vec, store_error *err)
{
	if (!img || !sha256_is_hex(img->sha256) || !img->mime || !*img->mime ||
	    strlen(img->mime) >= STORE_MIME_MAX || img->width <= 0 || img->height <= 0 ||
	    img->bytes < 0 || !vec)
		return store_fail(err, STORE_ERR_INVALID, "bad image record");
	return st_check_taken(&img->taken, err);
}

/* n rows in one transaction: each checked, then all committed or none
 * (ids[i] the new row's, or the stored one's on STORE_ERR_EXISTS). */
static int insert_rows(store *s, const struct store_new_image *imgs, const float *vecs, size_t n, size_t dim,
		       int64_t *ids, uint64_t *seq, store_error *err)
{
	int rc = 0;
	void *blob = NULL;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = st_check_new_image(&imgs[i], vecs ? vecs + i * dim : NULL, err);
	if (rc != 0)
		return rc;
	if (!(blob = malloc(dim * 4)))
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if ((rc = st_write_begin(s, err)) == 0) {
		for (size_t i = 0; i < n && rc == 0; i++) {
			int64_t id = 0;
			uint64_t sq = 0;
			st_vec_to_le(vecs + i * dim, dim, blob);
			rc = st_insert_image(s, &imgs[i], blob, dim, &id, &sq, err);
			if (ids)
				ids[i] = id;   /* on STORE_ERR_EXISTS: the stored image */
			if (seq && rc == 0)
				*seq = sq;
		}
		rc = st_write_end(s, rc, err);
	}
	free(blob);
	return rc;
}

int store_insert(store *s, const struct store_new_image *img, const float *vec, size_t dim,
		 int64_t *id, uint64_t *seq, store_error *err)
{
	return insert_rows(s, img, vec, 1, dim, id, seq, err);
}

int store_insert_many(store *s, const struct store_new_image *imgs, const float *vecs, size_t n, size_t dim,
		      int64_t *ids, uint64_t *seq, store_error *err)
{
	if (n == 0)
		return 0;
	return insert_rows(s, imgs, vecs, n, dim, ids, seq, err);
}

int st_delete_image(store *s, int64_t id, char sha256[STORE_SHA256_HEX], uint64_t *seq, store_error *err)
{
	static const char find_sql[] = "SELECT sha256 FROM images WHERE id = ?1";
	/* A library's paths of the image are ignored from now on (the files
	 * stay; a rescan does not bring the image back). */
	static const char ignore_sql[] = "UPDATE library_files SET ignored = 1, pending = 0, image_id = NULL "
					 "WHERE image_id = ?1";
	static const char del_sql[] = "DELETE FROM images WHERE id = ?1";
	static const char log_sql[] = "INSERT INTO changes (op, image_id) VALUES ('remove', ?1)";
	struct store_conn *c = s->writer;
	sqlite3_stmt *st = st_prepare(c, find_sql, err);
	if (!st)
		return STMT_FAIL(err);
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (sha256)
			snprintf(sha256, STORE_SHA256_HEX, "%s", (const char *)sqlite3_column_text(st, 0));
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no image %lld", (long long)id);
	} else {
		rc = st_dberr(c->db, rc, err, "look up image");
	}
	st_done(st);
	if (rc != 0)
		return rc;
	if ((rc = st_exec_id(c, ignore_sql, id, "ignore library paths", err)) != 0 ||
	    (rc = st_exec_id(c, del_sql, id, "delete image", err)) != 0 ||
	    (rc = st_exec_id(c, log_sql, id, "log change", err)) != 0)
		return rc;
	if (seq)
		*seq = (uint64_t)sqlite3_last_insert_rowid(c->db);
	return 0;
}

int store_delete(store *s, int64_t id, char sha256[STORE_SHA256_HEX], uint64_t *seq, store_error *err)
{
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	rc = st_delete_image(s, id, sha256, seq, err);
	return st_write_end(s, rc, err);
}

int store_patch_metadata(store *s, int64_t id, const char *patch, size_t len,
			 size_t max_bytes, int max_depth, store_error *err)
{
	static const char sel_sql[] = "SELECT json_patch(metadata, ?2) FROM images WHERE id = ?1";
	static const char upd_sql[] = "UPDATE images SET metadata = ?2 WHERE id = ?1";
	char *compact = NULL, *merged = NULL, *canon = NULL;
	int rc = check_object(patch, len, 4 * max_bytes, max_depth, "metadata patch", &compact, err);
	if (rc != 0)
		return rc;

	if ((rc = st_write_begin(s, err)) != 0)
		goto out_free;
	struct store_conn *c = s->writer;
	sqlite3_stmt *st = st_prepare(c, sel_sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, compact, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *m = (const char *)sqlite3_column_text(st, 0);
		merged = strdup(m ? m : "{}");
		rc = merged ? 0 : store_fail(err, STORE_ERR_NOMEM, "out of memory");
	} else if (rc == SQLITE_DONE) {
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no image %lld", (long long)id);
	} else {
		rc = st_dberr(c->db, rc, err, "merge metadata");
	}
	st_done(st);
	if (rc != 0)
		goto out;
	/* json_patch keeps each value's text as it was: the result is put
	 * in the canonical form again (and the limits apply to it). */
	size_t n = 0;
	if ((rc = st_json_canonical(merged, strlen(merged), max_depth, 0, "the merged metadata", &canon, &n,
				    err)) != 0)
		goto out;
	if (n > max_bytes) {
		rc = store_fail(err, STORE_ERR_TOO_LARGE, "metadata would be %zu bytes, more than the limit of %zu",
			     n, max_bytes);
		goto out;
	}
	if (!(st = st_prepare(c, upd_sql, err))) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, canon, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : st_dberr(c->db, rc, err, "update metadata");
	st_done(st);
out:
	rc = st_write_end(s, rc, err);
out_free:
	free(compact);
	free(merged);
	free(canon);
	return rc;
}

int store_set_taken_at(store *s, const int64_t *ids, const struct store_taken_at *taken, size_t n,
		       size_t *changed, store_error *err)
{
	static const char sql[] = "UPDATE images SET taken_at = ?2, taken_at_us = ?3 WHERE id = ?1 "
				  "AND taken_at IS NOT ?2";
	size_t count = 0;
	int rc = 0;
	if (changed)
		*changed = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = st_check_taken(&taken[i], err);
	if (rc != 0 || n == 0)
		return rc;
	if ((rc = st_write_begin(s, err)) != 0)
		return rc;
	struct store_conn *c = s->writer;
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		sqlite3_bind_int64(st, 1, ids[i]);
		if (taken[i].text[0]) {
			sqlite3_bind_text(st, 2, taken[i].text, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, taken[i].us);
		}
		int r = sqlite3_step(st);
		if (r == SQLITE_DONE)
			count += (size_t)sqlite3_changes(c->db);
		else
			rc = st_dberr(c->db, r, err, "set taken_at");
	}
	st_done(st);
out:
	rc = st_write_end(s, rc, err);
	if (rc == 0 && changed)
		*changed = count;
	return rc;
}

/* ---- reads -------------------------------------------------------------------- */

static int get_one(store *s, const char *sql, int64_t id, const char *text, struct store_image *out,
		   store_error *err)
{
	struct store_conn *c = NULL;
	sqlite3_stmt *st = NULL;
	memset(out, 0, sizeof *out);
	int rc = st_reader_prepare(s, sql, &c, &st, err);
	if (rc != 0)
		return rc;
	if (text)
		sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = row_fill(st, out, err);
	else if (rc == SQLITE_DONE)
		rc = text ? store_fail(err, STORE_ERR_NOT_FOUND, "no image with sha256 %.16s...", text)
			  : store_fail(err, STORE_ERR_NOT_FOUND, "no image %lld", (long long)id);
	else
		rc = st_dberr(c->db, rc, err, "read image");
	st_reader_end(s, c, st);
	return rc;
}

static const char get_sql[] = "SELECT " IMAGE_COLS " FROM images i WHERE i.id = ?1";

int store_get(store *s, int64_t id, struct store_image *out, store_error *err)
{
	return get_one(s, get_sql, id, NULL, out, err);
}

int store_get_by_sha256(store *s, const char *sha256, struct store_image *out, store_error *err)
{
	static const char sql[] = "SELECT " IMAGE_COLS " FROM images i WHERE i.sha256 = ?1";
	if (!sha256_is_hex(sha256)) {
		memset(out, 0, sizeof *out);
		return store_fail(err, STORE_ERR_INVALID, "not a SHA-256 hex digest");
	}
	return get_one(s, sql, 0, sha256, out, err);
}

int store_get_many(store *s, const int64_t *ids, size_t n, struct store_image *out,
		   unsigned char *found, store_error *err)
{
	struct store_conn *c = NULL;
	memset(out, 0, n * sizeof *out);
	memset(found, 0, n);
	if (n == 0)
		return 0;
	int rc = st_read_begin(s, &c, err);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = st_prepare(c, get_sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		sqlite3_bind_int64(st, 1, ids[i]);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			rc = row_fill(st, &out[i], err);
			found[i] = rc == 0;
		} else if (r != SQLITE_DONE) {
			rc = st_dberr(c->db, r, err, "read image");
		}
		sqlite3_reset(st);
	}
	st_done(st);
	if (rc != 0)
		for (size_t i = 0; i < n; i++) {
			store_image_clear(&out[i]);
			found[i] = 0;
		}
out:
	st_read_end(s, c);
	return rc;
}

int store_sha256_exists(store *s, const char *sha256, store_error *err)
{
	static const char sql[] = "SELECT 1 FROM images WHERE sha256 = ?1";
	int64_t one = 0;
	return st_read_int64(s, sql, sha256, &one, "look up sha256", err);
}

int store_list(store *s, const struct store_selection *sel, int64_t before_id, size_t limit,
	       struct store_image **items, size_t *n, store_error *err)
{
	char tail[64];
	struct store_conn *c = NULL;
	struct st_selection_plan *plan = NULL;
	sqlite3_stmt *st = NULL;
	*items = NULL;
	*n = 0;
	if (limit == 0 || limit > 100000)
		return store_fail(err, STORE_ERR_INVALID, "limit must be 1 to 100000");
	struct store_image *out = calloc(limit, sizeof *out);
	if (!out)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	int rc = st_read_begin(s, &c, err);
	if (rc != 0) {
		free(out);
		return rc;
	}
	size_t got = 0;
	snprintf(tail, sizeof tail, " ORDER BY i.id DESC LIMIT ?%d", ST_SEL_FIRST_FREE);
	rc = st_selection_prepare(c, "SELECT " IMAGE_COLS " FROM images i WHERE i.id < ?1", sel, tail, &st, &plan, err);
	if (rc != 0)
		goto out;
	sqlite3_bind_int64(st, 1, before_id > 0 ? before_id : INT64_MAX);
	sqlite3_bind_int64(st, ST_SEL_FIRST_FREE, (sqlite3_int64)limit);
	int r = SQLITE_DONE;
	while (got < limit && (r = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = row_fill(st, &out[got], err)) != 0)
			break;
		got++;
	}
	if (rc == 0 && got < limit && r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "list images");
out:
	st_selection_finish(st, plan);
	st_read_end(s, c);
	if (rc != 0) {
		store_images_free(out, got);
		return rc;
	}
	*items = out;
	*n = got;
	return 0;
}

int store_count(store *s, int64_t *n, store_error *err)
{
	static const char sql[] = "SELECT COUNT(*) FROM images";
	*n = 0;
	int rc = st_read_int64(s, sql, NULL, n, "count", err);
	return rc < 0 ? rc : 0;
}

/* ---- iteration ------------------------------------------------------------------------ */

int store_foreach_image(store *s, store_image_fn fn, void *ud, store_error *err)
{
	static const char sql[] = "SELECT " IMAGE_COLS " FROM images i WHERE i.id > ?1 ORDER BY i.id LIMIT 512";
	struct store_image batch[512];
	int64_t after = 0;
	for (;;) {
		struct store_conn *c = NULL;
		size_t n = 0;
		int rc = st_read_begin(s, &c, err), r = SQLITE_DONE;
		if (rc != 0)
			return rc;
		sqlite3_stmt *st = st_prepare(c, sql, err);
		if (!st) {
			rc = STMT_FAIL(err);
		} else {
			sqlite3_bind_int64(st, 1, after);
			while (n < 512 && (r = sqlite3_step(st)) == SQLITE_ROW) {
				if ((rc = row_fill(st, &batch[n], err)) != 0)
					break;
				n++;
			}
			if (rc == 0 && r != SQLITE_ROW && r != SQLITE_DONE)
				rc = st_dberr(c->db, r, err, "read images");
			st_done(st);
		}
		st_read_end(s, c);
		int stop = 0;
		for (size_t i = 0; i < n; i++) {
			if (rc == 0 && !stop)
				stop = fn(ud, &batch[i]);
			after = batch[i].id;
			store_image_clear(&batch[i]);
		}
		if (rc != 0)
			return rc;
		if (stop || n < 512)
			return 0;
	}
}

/* ---- the canonical form for rows written before it ------------------------------ */

#define METADATA_FORM "1"

int st_metadata_upgrade(store *s, store_error *err)
{
	static const char sel_sql[] = "SELECT id, metadata FROM images";
	static const char upd_sql[] = "UPDATE images SET metadata = ?2 WHERE id = ?1";
	char *form = NULL;
	int rc = st_setting_get(s->writer, "metadata_form", &form, err);
	int done = rc == 0 && form && !strcmp(form, METADATA_FORM);
	free(form);
	if (rc != 0 || done)
		return rc;
	if ((rc = st_write_begin(s, err)) != 0)
		return rc;
	struct store_conn *c = s->writer;
	sqlite3_stmt *sel = NULL, *upd = NULL;
	int r = sqlite3_prepare_v2(c->db, sel_sql, -1, &sel, NULL);
	if (r == SQLITE_OK)
		r = sqlite3_prepare_v2(c->db, upd_sql, -1, &upd, NULL);
	if (r != SQLITE_OK) {
		rc = st_dberr(c->db, r, err, "prepare the metadata upgrade");
		goto out;
	}
	while (rc == 0 && (r = sqlite3_step(sel)) == SQLITE_ROW) {
		const char *md = (const char *)sqlite3_column_text(sel, 1);
		size_t n = (size_t)sqlite3_column_bytes(sel, 1);
		char *canon = NULL;
		store_error e2;
		if (!md || st_json_canonical(md, n, 1 << 20, 1, "metadata", &canon, NULL, &e2) != 0
		    || canon[0] != '{') {
			free(canon);
			canon = strdup("{}");   /* not JSON at all: nothing a reader could see */
			if (!canon) {
				rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
				break;
			}
		}
		if (!md || strcmp(md, canon) != 0) {
			sqlite3_bind_int64(upd, 1, sqlite3_column_int64(sel, 0));
			sqlite3_bind_text(upd, 2, canon, -1, SQLITE_STATIC);
			r = sqlite3_step(upd);
			if (r != SQLITE_DONE)
				rc = st_dberr(c->db, r, err, "upgrade metadata");
			sqlite3_reset(upd);
		}
		free(canon);
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "read metadata");
	if (rc == 0)
		rc = st_setting_set(c, "metadata_form", METADATA_FORM, err);
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	return st_write_end(s, rc, err);
}
