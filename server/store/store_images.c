/*
 * The SQLite store: image rows, metadata, vectors, the change log, and the
 * selections behind filtered searches. See store.h.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "store_internal.h"

#define IMAGE_COLS "i.id, i.sha256, i.mime, i.width, i.height, i.bytes, i.filename, i.created_at, i.metadata"

#define STMT_FAIL(err) ((err) ? (err)->code : STORE_ERR_DB)

void store_image_clear(struct store_image *img)
{
	if (!img)
		return;
	free(img->filename);
	free(img->metadata);
	memset(img, 0, sizeof *img);
}

void store_images_free(struct store_image *imgs, size_t n)
{
	if (!imgs)
		return;
	for (size_t i = 0; i < n; i++)
		store_image_clear(&imgs[i]);
	free(imgs);
}

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
	out->metadata = strdup(md ? md : "{}");
	if (fn)
		out->filename = strdup(fn);
	if (!out->metadata || (fn && !out->filename)) {
		store_image_clear(out);
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	}
	return 0;
}

/* ---- metadata ---------------------------------------------------------------- */

/* Deepest nesting of objects and arrays in JSON text (the outermost value
 * counts 1). Works on any text; strings are skipped. */
static int json_depth(const char *s, size_t len)
{
	int depth = 0, max = 0, in_str = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				max = depth;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return max;
}

static int check_object(struct store_conn *c, const char *json, size_t len, size_t max_bytes,
			int max_depth, const char *what, char **compact, store_error *err)
{
	static const char sql[] = "SELECT CASE WHEN json_valid(?1) THEN json_type(?1) END, "
				  "CASE WHEN json_valid(?1) THEN json(?1) END";
	if (compact)
		*compact = NULL;
	if (!json || len == 0)
		return store_fail(err, STORE_ERR_INVALID, "%s is empty", what);
	if (memchr(json, 0, len))
		return store_fail(err, STORE_ERR_INVALID, "%s contains a NUL byte", what);
	if (len > 4 * max_bytes + 1024)
		return store_fail(err, STORE_ERR_TOO_LARGE, "%s is %zu bytes, more than the limit of %zu",
			       what, len, max_bytes);
	int depth = json_depth(json, len);
	if (depth > max_depth)
		return store_fail(err, STORE_ERR_TOO_LARGE, "%s nests %d levels deep, more than the limit of %d",
			       what, depth, max_depth);
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st)
		return STMT_FAIL(err);
	sqlite3_bind_text(st, 1, json, (int)len, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = st_dberr(c->db, rc, err, "check JSON");
		goto out;
	}
	const char *type = (const char *)sqlite3_column_text(st, 0);
	if (!type) {
		rc = store_fail(err, STORE_ERR_INVALID, "%s is not valid JSON", what);
		goto out;
	}
	if (strcmp(type, "object") != 0) {
		rc = store_fail(err, STORE_ERR_INVALID, "%s must be a JSON object, not %s", what, type);
		goto out;
	}
	size_t n = (size_t)sqlite3_column_bytes(st, 1);
	if (n > max_bytes) {
		rc = store_fail(err, STORE_ERR_TOO_LARGE, "%s is %zu bytes, more than the limit of %zu",
			     what, n, max_bytes);
		goto out;
	}
	rc = 0;
	if (compact && !(*compact = strdup((const char *)sqlite3_column_text(st, 1))))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
out:
	st_done(st);
	return rc;
}

int store_check_metadata(store *s, const char *json, size_t len, size_t max_bytes,
			 int max_depth, char **compact, store_error *err)
{
	struct store_conn *c = NULL;
	int rc = st_reader_get(s, &c, err);
	if (rc == 0)
		rc = check_object(c, json, len, max_bytes, max_depth, "metadata", compact, err);
	st_reader_put(s, c);
	return rc;
}

/* ---- writes ------------------------------------------------------------------ */

int store_insert(store *s, const struct store_new_image *img, const float *vec, size_t dim,
		 int64_t *id, uint64_t *seq, store_error *err)
{
	static const char find_sql[] = "SELECT id FROM images WHERE sha256 = ?1";
	static const char ins_sql[] =
		"INSERT INTO images (sha256, mime, width, height, bytes, filename, created_at, metadata) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
	static const char vec_sql[] = "INSERT INTO vectors (image_id, model, vec) VALUES (?1, ?2, ?3)";
	static const char log_sql[] = "INSERT INTO changes (op, image_id) VALUES ('add', ?1)";
	struct store_model m;
	int have, rc;
	void *blob = NULL;

	if (!img || !sha256_is_hex(img->sha256) || !img->mime || !*img->mime ||
	    strlen(img->mime) >= STORE_MIME_MAX || img->width <= 0 || img->height <= 0 ||
	    img->bytes < 0 || !vec)
		return store_fail(err, STORE_ERR_INVALID, "bad image record");
	st_active(s, &m, &have);
	if (!have)
		return store_fail(err, STORE_ERR_MODEL, "the store has no active model");
	if (dim != m.dim)
		return store_fail(err, STORE_ERR_INVALID, "vector has %zu dimensions, the model %zu", dim, m.dim);
	if (!(blob = malloc(dim * 4)))
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	st_vec_to_le(vec, dim, blob);

	if ((rc = st_write_begin(s, err)) != 0)
		goto out_free;
	struct store_conn *c = s->writer;
	sqlite3_stmt *st = st_prepare(c, find_sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
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
		goto out;

	if (!(st = st_prepare(c, ins_sql, err))) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_text(st, 1, img->sha256, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, img->mime, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, img->width);
	sqlite3_bind_int(st, 4, img->height);
	sqlite3_bind_int64(st, 5, img->bytes);
	if (img->filename)
		sqlite3_bind_text(st, 6, img->filename, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, img->created_at ? img->created_at : st_now_us());
	sqlite3_bind_text(st, 8, img->metadata ? img->metadata : "{}", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : st_dberr(c->db, rc, err, "insert image");
	st_done(st);
	if (rc != 0)
		goto out;
	int64_t new_id = sqlite3_last_insert_rowid(c->db);

	if (!(st = st_prepare(c, vec_sql, err))) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, new_id);
	sqlite3_bind_text(st, 2, m.fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, blob, (int)(dim * 4), SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : st_dberr(c->db, rc, err, "insert vector");
	st_done(st);
	if (rc != 0)
		goto out;

	if ((rc = st_exec_id(c, log_sql, new_id, "log change", err)) != 0)
		goto out;
	*id = new_id;
	*seq = (uint64_t)sqlite3_last_insert_rowid(c->db);
out:
	rc = st_write_end(s, rc, err);
out_free:
	free(blob);
	return rc;
}

int store_delete(store *s, int64_t id, char sha256[STORE_SHA256_HEX], uint64_t *seq, store_error *err)
{
	static const char find_sql[] = "SELECT sha256 FROM images WHERE id = ?1";
	static const char del_sql[] = "DELETE FROM images WHERE id = ?1";
	static const char log_sql[] = "INSERT INTO changes (op, image_id) VALUES ('remove', ?1)";
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	struct store_conn *c = s->writer;
	sqlite3_stmt *st = st_prepare(c, find_sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
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
		goto out;

	if ((rc = st_exec_id(c, del_sql, id, "delete image", err)) != 0)
		goto out;

	if (!(st = st_prepare(c, log_sql, err))) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : st_dberr(c->db, rc, err, "log change");
	st_done(st);
	if (rc == 0 && seq)
		*seq = (uint64_t)sqlite3_last_insert_rowid(c->db);
out:
	return st_write_end(s, rc, err);
}

int store_patch_metadata(store *s, int64_t id, const char *patch, size_t len,
			 size_t max_bytes, int max_depth, store_error *err)
{
	static const char sel_sql[] = "SELECT json_patch(metadata, json(?2)) FROM images WHERE id = ?1";
	static const char upd_sql[] = "UPDATE images SET metadata = ?2 WHERE id = ?1";
	struct store_conn *r = NULL;
	char *compact = NULL, *merged = NULL;
	int rc = st_reader_get(s, &r, err);
	if (rc == 0)
		rc = check_object(r, patch, len, 4 * max_bytes, max_depth, "metadata patch", &compact, err);
	st_reader_put(s, r);
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
	size_t n = strlen(merged);
	int depth = json_depth(merged, n);
	if (n > max_bytes) {
		rc = store_fail(err, STORE_ERR_TOO_LARGE, "metadata would be %zu bytes, more than the limit of %zu",
			     n, max_bytes);
		goto out;
	}
	if (depth > max_depth) {
		rc = store_fail(err, STORE_ERR_TOO_LARGE, "metadata would nest %d levels deep, more than the limit of %d",
			     depth, max_depth);
		goto out;
	}
	if (!(st = st_prepare(c, upd_sql, err))) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, merged, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : st_dberr(c->db, rc, err, "update metadata");
	st_done(st);
out:
	rc = st_write_end(s, rc, err);
out_free:
	free(compact);
	free(merged);
	return rc;
}

/* ---- reads -------------------------------------------------------------------- */

static int get_one(store *s, const char *sql, int64_t id, const char *text, struct store_image *out,
		   store_error *err)
{
	struct store_conn *c = NULL;
	memset(out, 0, sizeof *out);
	int rc = st_reader_get(s, &c, err);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
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
	st_done(st);
out:
	st_reader_put(s, c);
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
	struct store_conn *c = NULL;
	int rc = st_reader_get(s, &c, err);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
	} else {
		sqlite3_bind_text(st, 1, sha256, -1, SQLITE_STATIC);
		int r = sqlite3_step(st);
		rc = r == SQLITE_ROW ? 1 : r == SQLITE_DONE ? 0 : st_dberr(c->db, r, err, "look up sha256");
		st_done(st);
	}
	st_reader_put(s, c);
	return rc;
}

int store_list(store *s, int64_t before_id, size_t limit, struct store_image **items,
	       size_t *n, store_error *err)
{
	static const char sql[] = "SELECT " IMAGE_COLS " FROM images i WHERE i.id < ?1 "
				  "ORDER BY i.id DESC LIMIT ?2";
	struct store_conn *c = NULL;
	*items = NULL;
	*n = 0;
	if (limit == 0 || limit > 100000)
		return store_fail(err, STORE_ERR_INVALID, "limit must be 1 to 100000");
	struct store_image *out = calloc(limit, sizeof *out);
	if (!out)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	int rc = st_reader_get(s, &c, err);
	if (rc != 0) {
		free(out);
		return rc;
	}
	size_t got = 0;
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, before_id > 0 ? before_id : INT64_MAX);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
	int r = SQLITE_DONE;
	while (got < limit && (r = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = row_fill(st, &out[got], err)) != 0)
			break;
		got++;
	}
	if (rc == 0 && got < limit && r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "list images");
	st_done(st);
out:
	st_reader_put(s, c);
	if (rc != 0) {
		store_images_free(out, got);
		return rc;
	}
	*items = out;
	*n = got;
	return 0;
}

static int count_sql(store *s, const char *sql, int64_t *n, store_error *err)
{
	struct store_conn *c = NULL;
	int rc = st_reader_get(s, &c, err);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
	} else {
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW)
			*n = sqlite3_column_int64(st, 0);
		else if (r == SQLITE_DONE)
			*n = 0;
		else
			rc = st_dberr(c->db, r, err, "count");
		st_done(st);
	}
	st_reader_put(s, c);
	return rc;
}

int store_count(store *s, int64_t *n, store_error *err)
{
	static const char sql[] = "SELECT COUNT(*) FROM images";
	return count_sql(s, sql, n, err);
}

/* ---- vectors ------------------------------------------------------------------- */

int store_get_vector(store *s, int64_t id, const char *fingerprint, float *out, size_t dim,
		     store_error *err)
{
	static const char sql[] = "SELECT vec FROM vectors WHERE image_id = ?1 AND model = ?2";
	struct store_model m;
	int have;
	if (!fingerprint) {
		st_active(s, &m, &have);
		if (!have)
			return store_fail(err, STORE_ERR_MODEL, "the store has no active model");
		fingerprint = m.fingerprint;
	}
	struct store_conn *c = NULL;
	int rc = st_reader_get(s, &c, err);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, fingerprint, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		size_t bytes = (size_t)sqlite3_column_bytes(st, 0);
		if (bytes != dim * 4)
			rc = store_fail(err, STORE_ERR_INVALID, "image %lld: vector has %zu bytes, expected %zu",
				     (long long)id, bytes, dim * 4);
		else
			st_vec_from_le(sqlite3_column_blob(st, 0), dim, out);
	} else if (r == SQLITE_DONE) {
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no vector for image %lld", (long long)id);
	} else {
		rc = st_dberr(c->db, r, err, "read vector");
	}
	st_done(st);
out:
	st_reader_put(s, c);
	return rc;
}

int store_put_vectors(store *s, const int64_t *ids, size_t n, const char *fingerprint,
		      const float *vecs, size_t dim, store_error *err)
{
	static const char sql[] = "INSERT OR REPLACE INTO vectors (image_id, model, vec) "
				  "SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM images WHERE id = ?1)";
	static const char model_sql[] = "SELECT dim FROM models WHERE fingerprint = ?1";
	void *blob = malloc(dim ? dim * 4 : 1);
	if (!blob)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	int rc = st_write_begin(s, err);
	if (rc != 0) {
		free(blob);
		return rc;
	}
	struct store_conn *c = s->writer;
	sqlite3_stmt *st = st_prepare(c, model_sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		if ((size_t)sqlite3_column_int64(st, 0) != dim)
			rc = store_fail(err, STORE_ERR_INVALID, "model %.12s has dimension %lld, not %zu",
				     fingerprint, (long long)sqlite3_column_int64(st, 0), dim);
	} else {
		rc = r == SQLITE_DONE ? store_fail(err, STORE_ERR_NOT_FOUND, "no model %.12s recorded", fingerprint)
				      : st_dberr(c->db, r, err, "read model");
	}
	st_done(st);
	if (rc != 0)
		goto out;
	if (!(st = st_prepare(c, sql, err))) {
		rc = STMT_FAIL(err);
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		st_vec_to_le(vecs + i * dim, dim, blob);
		sqlite3_bind_int64(st, 1, ids[i]);
		sqlite3_bind_text(st, 2, fingerprint, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, blob, (int)(dim * 4), SQLITE_STATIC);
		r = sqlite3_step(st);
		if (r != SQLITE_DONE)
			rc = st_dberr(c->db, r, err, "store vector");
		sqlite3_reset(st);
	}
	st_done(st);
out:
	rc = st_write_end(s, rc, err);
	free(blob);
	return rc;
}

/* ---- the change log ------------------------------------------------------------- */

static int seq_conn(struct store_conn *c, uint64_t *seq, store_error *err)
{
	static const char sql[] = "SELECT seq FROM sqlite_sequence WHERE name = 'changes'";
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st)
		return STMT_FAIL(err);
	int r = sqlite3_step(st), rc = 0;
	if (r == SQLITE_ROW)
		*seq = (uint64_t)sqlite3_column_int64(st, 0);
	else if (r == SQLITE_DONE)
		*seq = 0;
	else
		rc = st_dberr(c->db, r, err, "read change sequence");
	st_done(st);
	return rc;
}

int store_seq(store *s, uint64_t *seq, store_error *err)
{
	struct store_conn *c = NULL;
	int rc = st_reader_get(s, &c, err);
	if (rc == 0)
		rc = seq_conn(c, seq, err);
	st_reader_put(s, c);
	return rc;
}

/* Read (id, vec) rows of a prepared statement into growing arrays. */
struct vec_acc {
	int64_t *ids;
	float *vecs;
	size_t n, cap, dim;
};

static int acc_push(struct vec_acc *a, int64_t id, const void *blob, size_t bytes, store_error *err)
{
	if (bytes != a->dim * 4)
		return store_fail(err, STORE_ERR_DB, "image %lld: stored vector has %zu bytes, expected %zu "
			       "(run clipd check)", (long long)id, bytes, a->dim * 4);
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 1024;
		if (cap > SIZE_MAX / (a->dim * sizeof(float)))
			return store_fail(err, STORE_ERR_NOMEM, "too many vectors");
		int64_t *ids = realloc(a->ids, cap * sizeof *ids);
		if (!ids)
			return store_fail(err, STORE_ERR_NOMEM, "out of memory");
		a->ids = ids;
		float *vecs = realloc(a->vecs, cap * a->dim * sizeof *vecs);
		if (!vecs)
			return store_fail(err, STORE_ERR_NOMEM, "out of memory loading %zu vectors", cap);
		a->vecs = vecs;
		a->cap = cap;
	}
	a->ids[a->n] = id;
	st_vec_from_le(blob, a->dim, a->vecs + a->n * a->dim);
	a->n++;
	return 0;
}

static int acc_run(struct store_conn *c, sqlite3_stmt *st, struct vec_acc *a, store_error *err)
{
	int r, rc = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		rc = acc_push(a, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
			      (size_t)sqlite3_column_bytes(st, 1), err);
		if (rc != 0)
			break;
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "read vectors");
	st_done(st);
	return rc;
}

int store_load_vectors(store *s, size_t dim, int64_t **ids, float **vecs, size_t *n,
		       uint64_t *seq, store_error *err)
{
	static const char sql[] = "SELECT image_id, vec FROM vectors WHERE model = ?1 ORDER BY image_id";
	struct store_model m;
	int have, rc;
	struct vec_acc a = { .dim = dim };
	*ids = NULL;
	*vecs = NULL;
	*n = 0;
	st_active(s, &m, &have);
	if (!have)
		return store_fail(err, STORE_ERR_MODEL, "the store has no active model");
	if (m.dim != dim)
		return store_fail(err, STORE_ERR_MODEL, "the stored model has dimension %zu, not %zu", m.dim, dim);
	struct store_conn *c = NULL;
	if ((rc = st_read_begin(s, &c, err)) != 0)
		return rc;
	if ((rc = seq_conn(c, seq, err)) != 0)
		goto out;
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_text(st, 1, m.fingerprint, -1, SQLITE_STATIC);
	rc = acc_run(c, st, &a, err);
out:
	st_read_end(s, c);
	if (rc != 0) {
		free(a.ids);
		free(a.vecs);
		return rc;
	}
	*ids = a.ids;
	*vecs = a.vecs;
	*n = a.n;
	return 0;
}

void store_changes_clear(struct store_changes *c)
{
	if (!c)
		return;
	free(c->add_ids);
	free(c->add_vecs);
	free(c->remove_ids);
	memset(c, 0, sizeof *c);
}

int store_changes_since(store *s, uint64_t seq, size_t dim, struct store_changes *out,
			store_error *err)
{
	static const char reset_sql[] = "SELECT seq FROM changes WHERE seq > ?1 AND op = 'reset' LIMIT 1";
	static const char add_sql[] =
		"SELECT c.image_id, v.vec FROM changes c JOIN vectors v ON v.image_id = c.image_id "
		"AND v.model = ?2 WHERE c.seq > ?1 AND c.op = 'add' ORDER BY c.seq";
	static const char rm_sql[] =
		"SELECT image_id FROM changes WHERE seq > ?1 AND op = 'remove' AND image_id NOT IN "
		"(SELECT image_id FROM changes WHERE seq > ?1 AND op = 'add') ORDER BY seq";
	struct store_model m;
	int have, rc, r;
	char *pruned_text = NULL;
	struct vec_acc a = { .dim = dim };
	int64_t *rm = NULL;
	size_t n_rm = 0, cap_rm = 0;
	memset(out, 0, sizeof *out);
	st_active(s, &m, &have);
	if (!have)
		return store_fail(err, STORE_ERR_MODEL, "the store has no active model");
	if (m.dim != dim)
		return store_fail(err, STORE_ERR_MODEL, "the stored model has dimension %zu, not %zu", m.dim, dim);
	struct store_conn *c = NULL;
	if ((rc = st_read_begin(s, &c, err)) != 0)
		return rc;
	uint64_t last = 0, pruned = 0;
	if ((rc = seq_conn(c, &last, err)) != 0)
		goto out;
	if (seq > last) {
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "the index is at change %llu, ahead of the database (%llu)",
			     (unsigned long long)seq, (unsigned long long)last);
		goto out;
	}
	if ((rc = st_setting_get(c, "log_pruned_through", &pruned_text, err)) != 0)
		goto out;
	pruned = pruned_text ? strtoull(pruned_text, NULL, 10) : 0;
	if (seq < pruned) {
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "the index is at change %llu, but the change log "
			     "starts after %llu", (unsigned long long)seq, (unsigned long long)pruned);
		goto out;
	}
	sqlite3_stmt *st = st_prepare(c, reset_sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "the model changed at change %lld, after the index's %llu",
			     (long long)sqlite3_column_int64(st, 0), (unsigned long long)seq);
	else if (r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "read change log");
	st_done(st);
	if (rc != 0)
		goto out;

	if (!(st = st_prepare(c, add_sql, err))) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	sqlite3_bind_text(st, 2, m.fingerprint, -1, SQLITE_STATIC);
	if ((rc = acc_run(c, st, &a, err)) != 0)
		goto out;

	if (!(st = st_prepare(c, rm_sql, err))) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (n_rm == cap_rm) {
			size_t cap = cap_rm ? cap_rm * 2 : 256;
			int64_t *p = realloc(rm, cap * sizeof *p);
			if (!p) {
				rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
				break;
			}
			rm = p;
			cap_rm = cap;
		}
		rm[n_rm++] = sqlite3_column_int64(st, 0);
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "read change log");
	st_done(st);
out:
	st_read_end(s, c);
	free(pruned_text);
	if (rc != 0) {
		free(a.ids);
		free(a.vecs);
		free(rm);
		return rc;
	}
	out->add_ids = a.ids;
	out->add_vecs = a.vecs;
	out->n_add = a.n;
	out->remove_ids = rm;
	out->n_remove = n_rm;
	out->last = last;
	return 0;
}

int store_prune_changes(store *s, uint64_t seq, store_error *err)
{
	static const char del_sql[] = "DELETE FROM changes WHERE seq <= ?1";
	static const char set_sql[] =
		"INSERT INTO settings (key, value) VALUES ('log_pruned_through', ?1) "
		"ON CONFLICT (key) DO UPDATE SET value = CAST(max(CAST(value AS INTEGER), "
		"CAST(excluded.value AS INTEGER)) AS TEXT)";
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	struct store_conn *c = s->writer;
	sqlite3_stmt *st = st_prepare(c, del_sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	int r = sqlite3_step(st);
	rc = r == SQLITE_DONE ? 0 : st_dberr(c->db, r, err, "prune change log");
	st_done(st);
	if (rc != 0)
		goto out;
	if (!(st = st_prepare(c, set_sql, err))) {
		rc = STMT_FAIL(err);
		goto out;
	}
	char text[32];
	snprintf(text, sizeof text, "%llu", (unsigned long long)seq);
	sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
	r = sqlite3_step(st);
	rc = r == SQLITE_DONE ? 0 : st_dberr(c->db, r, err, "record pruning");
	st_done(st);
out:
	return st_write_end(s, rc, err);
}

/* ---- selections --------------------------------------------------------------------- */

/* Parameter numbers in selection SQL: ?1 is the statement's own (model or
 * id), then the fixed ones, then two per filter (path, value), then limit. */
enum { P_AFTER = 2, P_BEFORE = 3, P_EXCLUDE = 4, P_FILTER0 = 5,
       P_LIMIT = P_FILTER0 + 2 * STORE_MAX_FILTERS };

int store_check_selection(const struct store_selection *sel, store_error *err)
{
	if (!sel)
		return 0;
	if (sel->n_filters > STORE_MAX_FILTERS)
		return store_fail(err, STORE_ERR_INVALID, "at most %d metadata filters", STORE_MAX_FILTERS);
	if (sel->n_filters && !sel->filters)
		return store_fail(err, STORE_ERR_INVALID, "filters missing");
	for (size_t i = 0; i < sel->n_filters; i++) {
		const char *k = sel->filters[i].key, *v = sel->filters[i].value;
		if (!k || !*k || strlen(k) > STORE_MAX_FILTER_KEY)
			return store_fail(err, STORE_ERR_INVALID, "a filter key must be 1 to %d bytes",
				       STORE_MAX_FILTER_KEY);
		for (const unsigned char *p = (const unsigned char *)k; *p; p++)
			if (*p < 0x20 || *p == '"' || *p == '\\' || *p == 0x7f)
				return store_fail(err, STORE_ERR_INVALID,
					       "a filter key may not contain quotes, backslashes or control characters");
		if (!v || strlen(v) > STORE_MAX_FILTER_VALUE)
			return store_fail(err, STORE_ERR_INVALID, "a filter value must be at most %d bytes",
				       STORE_MAX_FILTER_VALUE);
	}
	return 0;
}

/* Append the WHERE conditions of sel (each starting with " AND "); -1 if
 * buf is too small. */
static int selection_sql(const struct store_selection *sel, char *buf, size_t len)
{
	int rc = 0;
	if (sel->has_after)
		rc |= st_appendf(buf, len, " AND i.created_at > ?%d", P_AFTER);
	if (sel->has_before)
		rc |= st_appendf(buf, len, " AND i.created_at < ?%d", P_BEFORE);
	if (sel->exclude_id)
		rc |= st_appendf(buf, len, " AND i.id != ?%d", P_EXCLUDE);
	for (size_t f = 0; f < sel->n_filters; f++) {
		int p = P_FILTER0 + 2 * (int)f, v = p + 1;
		rc |= st_appendf(buf, len,
				 " AND (CASE json_type(i.metadata, ?%d) WHEN 'text' THEN i.metadata ->> ?%d = ?%d "
				 "WHEN 'integer' THEN i.metadata -> ?%d = ?%d WHEN 'real' THEN i.metadata -> ?%d = ?%d "
				 "WHEN 'true' THEN ?%d = 'true' WHEN 'false' THEN ?%d = 'false' ELSE 0 END)",
				 p, p, v, p, v, p, v, v, v);
	}
	return rc;
}

static int selection_bind(sqlite3_stmt *st, const struct store_selection *sel, store_error *err)
{
	if (sel->has_after)
		sqlite3_bind_int64(st, P_AFTER, sel->created_after);
	if (sel->has_before)
		sqlite3_bind_int64(st, P_BEFORE, sel->created_before);
	if (sel->exclude_id)
		sqlite3_bind_int64(st, P_EXCLUDE, sel->exclude_id);
	for (size_t f = 0; f < sel->n_filters; f++) {
		char *path = sqlite3_mprintf("$.\"%s\"", sel->filters[f].key);
		if (!path)
			return store_fail(err, STORE_ERR_NOMEM, "out of memory");
		sqlite3_bind_text(st, P_FILTER0 + 2 * (int)f, path, -1, sqlite3_free);
		sqlite3_bind_text(st, P_FILTER0 + 2 * (int)f + 1, sel->filters[f].value, -1, SQLITE_STATIC);
	}
	return 0;
}

int store_scan_selection(store *s, const struct store_selection *sel, size_t dim, size_t limit,
			 store_vector_fn fn, void *ud, int *truncated, store_error *err)
{
	struct store_model m;
	int have, rc;
	char sql[8192] = "SELECT i.id, v.vec FROM images i JOIN vectors v ON v.image_id = i.id "
			 "AND v.model = ?1 WHERE 1";
	sqlite3_stmt *st = NULL;
	float *vec = NULL;
	*truncated = 0;
	if ((rc = store_check_selection(sel, err)) != 0)
		return rc;
	st_active(s, &m, &have);
	if (!have || m.dim != dim)
		return store_fail(err, STORE_ERR_MODEL, "no active model of dimension %zu", dim);
	if (selection_sql(sel, sql, sizeof sql) != 0 || st_appendf(sql, sizeof sql, " LIMIT ?%d", P_LIMIT) != 0)
		return store_fail(err, STORE_ERR_INVALID, "selection too complex");
	if (!(vec = malloc(dim * sizeof *vec)))
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	struct store_conn *c = NULL;
	if ((rc = st_read_begin(s, &c, err)) != 0)
		goto out_free;
	int r = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (r != SQLITE_OK) {
		rc = st_dberr(c->db, r, err, "prepare selection");
		goto out;
	}
	sqlite3_bind_text(st, 1, m.fingerprint, -1, SQLITE_STATIC);
	if ((rc = selection_bind(st, sel, err)) != 0)
		goto out;
	sqlite3_bind_int64(st, P_LIMIT, limit >= (size_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)limit + 1);
	size_t seen = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (++seen > limit) {
			*truncated = 1;
			break;
		}
		int64_t id = sqlite3_column_int64(st, 0);
		if ((size_t)sqlite3_column_bytes(st, 1) != dim * 4)
			continue;   /* clipd check reports it */
		st_vec_from_le(sqlite3_column_blob(st, 1), dim, vec);
		if (fn(ud, id, vec))
			break;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "scan selection");
out:
	sqlite3_finalize(st);
	st_read_end(s, c);
out_free:
	free(vec);
	return rc;
}

int store_filter_ids(store *s, const struct store_selection *sel, const int64_t *ids, size_t n,
		     unsigned char *keep, store_error *err)
{
	char sql[8192] = "SELECT 1 FROM images i WHERE i.id = ?1";
	sqlite3_stmt *st = NULL;
	int rc;
	memset(keep, 0, n);
	if ((rc = store_check_selection(sel, err)) != 0 || n == 0)
		return rc;
	if (selection_sql(sel, sql, sizeof sql) != 0)
		return store_fail(err, STORE_ERR_INVALID, "selection too complex");
	struct store_conn *c = NULL;
	if ((rc = st_read_begin(s, &c, err)) != 0)
		return rc;
	int r = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (r != SQLITE_OK) {
		rc = st_dberr(c->db, r, err, "prepare selection");
		goto out;
	}
	if ((rc = selection_bind(st, sel, err)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(st, 1, ids[i]);
		r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			keep[i] = 1;
		} else if (r != SQLITE_DONE) {
			rc = st_dberr(c->db, r, err, "filter");
			break;
		}
		sqlite3_reset(st);
	}
out:
	sqlite3_finalize(st);
	st_read_end(s, c);
	return rc;
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

int store_count_vectors(store *s, const char *fingerprint, int64_t *n, store_error *err)
{
	static const char sql[] = "SELECT COUNT(*) FROM vectors WHERE model = ?1";
	struct store_conn *c = NULL;
	*n = 0;
	int rc = st_reader_get(s, &c, err);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
	} else {
		sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW)
			*n = sqlite3_column_int64(st, 0);
		else
			rc = st_dberr(c->db, r, err, "count vectors");
		st_done(st);
	}
	st_reader_put(s, c);
	return rc;
}

int store_missing_vectors(store *s, const char *fingerprint, int64_t after_id, int64_t *ids,
			  size_t max, size_t *n, store_error *err)
{
	static const char sql[] =
		"SELECT i.id FROM images i WHERE i.id > ?2 AND NOT EXISTS "
		"(SELECT 1 FROM vectors v WHERE v.image_id = i.id AND v.model = ?1) ORDER BY i.id LIMIT ?3";
	struct store_conn *c = NULL;
	*n = 0;
	int rc = st_reader_get(s, &c, err);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
	} else {
		sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, after_id);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
		int r = SQLITE_DONE;
		while (*n < max && (r = sqlite3_step(st)) == SQLITE_ROW)
			ids[(*n)++] = sqlite3_column_int64(st, 0);
		if (*n < max && r != SQLITE_DONE)
			rc = st_dberr(c->db, r, err, "find images without vectors");
		st_done(st);
	}
	st_reader_put(s, c);
	return rc;
}
