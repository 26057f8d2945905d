/*
 * The SQLite store's side of `clipd catalog copy` (catalog_copy.c): rows
 * inserted with the ids and columns another catalog gave them, the end of
 * a copy (the sequences moved past what was copied), the highest id ever
 * given, and the name of the database. See store.h. A library image goes
 * with its file (library_images); the libraries' own rows are
 * store_copylib.c's.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

/* A library image's file (its original): library and path. */
static int copy_source(struct store_conn *c, const struct store_image *img, store_error *err)
{
	static const char sql[] = "INSERT INTO library_images (image_id, library, path) VALUES (?1, ?2, ?3)";
	if (!img->source_path || !*img->source_path || !*img->source_library)
		return store_fail(err, STORE_ERR_INVALID, "image %lld: a library image without its path", (long long)img->id);
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st)
		return STMT_FAIL(err);
	sqlite3_bind_int64(st, 1, img->id);
	sqlite3_bind_text(st, 2, img->source_library, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, img->source_path, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	int rc = r == SQLITE_DONE ? 0 : st_dberr(c->db, r, err, "copy a library image's path");
	st_done(st);
	return rc;
}

/* One copied row, its vector and its "add" change, inside the write
 * transaction: store_insert's path with the row's own id and values. */
static int copy_row(store *s, const struct store_copy_row *r, size_t dim, void *vec_le, store_error *err)
{
	const struct store_image *img = r->img;
	struct store_new_image ni = { .sha256 = img->sha256, .mime = img->mime, .width = img->width,
				      .height = img->height, .bytes = img->bytes, .filename = img->filename,
				      .metadata = img->metadata, .created_at = img->created_at, .taken = img->taken,
				      .id = img->id };
	int64_t id = 0;
	uint64_t seq = 0;
	if (img->id <= 0 || img->created_at <= 0 || !img->metadata || st_check_new_image(&ni, r->vec, NULL) != 0)
		return store_fail(err, STORE_ERR_INVALID, "image %lld: a bad row to copy", (long long)img->id);
	st_vec_to_le(r->vec, dim, vec_le);
	int rc = st_insert_image(s, &ni, vec_le, dim, &id, &seq, err);
	if (rc == 0 && id != img->id)
		rc = store_fail(err, STORE_ERR_DB, "image %lld was stored as %lld", (long long)img->id, (long long)id);
	if (rc == 0 && img->source_library)
		rc = copy_source(s->writer, img, err);
	return rc;
}

int store_copy_in(store *s, const struct store_copy_row *rows, size_t n, size_t dim, const char *key,
		  const char *value, store_error *err)
{
	struct store_model m;
	int have = 0;
	st_active(s, &m, &have);
	if (n && (!have || m.dim != dim))
		return store_fail(err, STORE_ERR_MODEL, "the store has no active model of dimension %zu", dim);
	void *vec_le = malloc(dim * 4 + 1);
	if (!vec_le)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	int rc = st_write_begin(s, err);
	if (rc == 0) {
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = copy_row(s, &rows[i], dim, vec_le, err);
		if (rc == 0 && key)
			rc = st_setting_set(s->writer, key, value, err);
		rc = st_write_end(s, rc, err);
	}
	free(vec_le);
	return rc;
}

/* Inside the write transaction: name's AUTOINCREMENT counter to at least v. */
static int sequence_at_least(struct store_conn *c, const char *name, int64_t v, store_error *err)
{
	static const char upd_sql[] = "UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1";
	static const char ins_sql[] = "INSERT INTO sqlite_sequence (name, seq) SELECT ?1, ?2 "
				      "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?1)";
	const char *steps[] = { upd_sql, ins_sql };
	for (size_t i = 0; i < 2; i++) {
		sqlite3_stmt *st = st_prepare(c, steps[i], err);
		if (!st)
			return STMT_FAIL(err);
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, v);
		int rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? 0 : st_dberr(c->db, rc, err, "move a sequence on");
		st_done(st);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int store_copy_end(store *s, int64_t max_id, uint64_t min_seq, const char *key, const char *value,
		   store_error *err)
{
	if (max_id < 0 || min_seq > (uint64_t)INT64_MAX)
		return store_fail(err, STORE_ERR_INVALID, "bad sequence values");
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	struct store_conn *c = s->writer;
	if ((rc = sequence_at_least(c, "images", max_id, err)) == 0 &&
	    (rc = sequence_at_least(c, "changes", (int64_t)min_seq, err)) == 0 &&
	    (rc = st_exec(c, "INSERT INTO changes (op, image_id) VALUES ('reset', 0)", err)) == 0 && key)
		rc = st_setting_set(c, key, value, err);
	return st_write_end(s, rc, err);
}

int store_max_id(store *s, int64_t *id, store_error *err)
{
	static const char sql[] = "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'images'), 0), "
				  "coalesce((SELECT max(id) FROM images), 0))";
	*id = 0;
	int rc = st_read_int64(s, sql, NULL, id, "read the highest image id", err);
	return rc < 0 ? rc : 0;
}

int store_identity(store *s, char *buf, size_t len, store_error *err)
{
	char real[PATH_MAX];
	const char *p = realpath(s->path, real) ? real : s->path;
	size_t n = strlen(p);
	/* the database file's directory: the data directory */
	const char *slash = strrchr(p, '/');
	if (slash && slash > p)
		n = (size_t)(slash - p);
	if ((size_t)snprintf(buf, len, "data directory %.*s", (int)n, p) >= len)
		return store_fail(err, STORE_ERR_INVALID, "the data directory's path is too long");
	return 0;
}
