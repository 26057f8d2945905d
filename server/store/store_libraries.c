/*
 * The SQLite store's libraries: folders indexed in place. Their rows, the
 * files a scan met (identity, digest, image, failure, pending, ignored),
 * what indexing a file came to, the end of a scan, the figures, the
 * failures and where a library image's original is. See store.h; the
 * scan itself is the server's (server/app/srv_library.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "sha256.h"
#include "store_internal.h"

void store_lib_gone_clear(struct store_lib_gone *g)
{
	if (!g)
		return;
	free(g->ids);
	free(g->sha256);
	free(g->seqs);
	memset(g, 0, sizeof *g);
}

static char *dup_col(sqlite3_stmt *st, int col)
{
	const char *t = (const char *)sqlite3_column_text(st, col);
	return strdup(t ? t : "");
}

/* One row of a read: fill what ud points to from st (row i of the read);
 * 0, or a status that ends the read. */
typedef int (*row_fn)(void *ud, sqlite3_stmt *st, size_t i, store_error *err);

/* Read the rows of sql on a read connection, its parameters ?1, ?2, ...
 * bound from the arguments after binds, which spells their types ('t' a
 * text, borrowed; 'i' an int64_t): row() for each row, at most max,
 * until one returns nonzero (that status is returned). *n: the rows
 * handed to row(), the failing one included. A database error is
 * reported as what failed. */
static int read_rows(store *s, const char *sql, size_t max, row_fn row, void *ud, size_t *n, const char *what,
		     store_error *err, const char *binds, ...)
{
	struct store_conn *c = NULL;
	sqlite3_stmt *st = NULL;
	*n = 0;
	int rc = st_reader_prepare(s, sql, &c, &st, err);
	if (rc != 0)
		return rc;
	va_list ap;
	va_start(ap, binds);
	for (int i = 0; binds[i]; i++) {
		if (binds[i] == 't')
			sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_STATIC);
		else
			sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
	}
	va_end(ap);
	int r = SQLITE_DONE;
	while (rc == 0 && *n < max && (r = sqlite3_step(st)) == SQLITE_ROW)
		rc = row(ud, st, (*n)++, err);
	if (rc == 0 && *n < max && r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, what);
	st_reader_end(s, c, st);
	return rc;
}

/* ---- libraries ------------------------------------------------------------- */

int store_library_put(store *s, const char *name, const char *root, store_error *err)
{
	static const char sql[] = "INSERT INTO libraries (name, root) VALUES (?1, ?2) "
				  "ON CONFLICT (name) DO UPDATE SET root = excluded.root";
	if (!name || !*name || strlen(name) > STORE_LIBRARY_NAME_MAX || !root || !*root)
		return store_fail(err, STORE_ERR_INVALID, "bad library name or root");
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = st_prepare(s->writer, sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
	} else {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, root, -1, SQLITE_STATIC);
		int r = sqlite3_step(st);
		rc = r == SQLITE_DONE ? 0 : st_dberr(s->writer->db, r, err, "record library");
		st_done(st);
	}
	return st_write_end(s, rc, err);
}

static int library_row(void *ud, sqlite3_stmt *st, size_t i, store_error *err)
{
	struct store_library *out = ud;
	(void)i;
	out->root = dup_col(st, 0);
	out->scan_seq = sqlite3_column_int64(st, 1);
	out->last_started_at = sqlite3_column_int64(st, 2);
	out->last_finished_at = sqlite3_column_int64(st, 3);
	out->added = sqlite3_column_int64(st, 4);
	out->changed = sqlite3_column_int64(st, 5);
	out->moved = sqlite3_column_int64(st, 6);
	out->removed = sqlite3_column_int64(st, 7);
	out->failed = sqlite3_column_int64(st, 8);
	return out->root ? 0 : store_fail(err, STORE_ERR_NOMEM, "out of memory");
}

int store_library_get(store *s, const char *name, struct store_library *out, store_error *err)
{
	static const char sql[] = "SELECT root, scan_seq, last_started_at, last_finished_at, last_added, "
				  "last_changed, last_moved, last_removed, last_failed FROM libraries WHERE name = ?1";
	size_t n = 0;
	memset(out, 0, sizeof *out);
	int rc = read_rows(s, sql, 1, library_row, out, &n, "read library", err, "t", name);
	if (rc == 0 && n == 0)
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no library '%s'", name);
	if (rc == 0)
		snprintf(out->name, sizeof out->name, "%s", name);
	return rc;
}

int store_library_scan_begin(store *s, const char *name, int64_t *scan, store_error *err)
{
	static const char sql[] = "UPDATE libraries SET scan_seq = scan_seq + 1 WHERE name = ?1 RETURNING scan_seq";
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = st_prepare(s->writer, sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
	} else {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			*scan = sqlite3_column_int64(st, 0);
			rc = 0;
		} else {
			rc = r == SQLITE_DONE ? store_fail(err, STORE_ERR_NOT_FOUND, "no library '%s'", name)
					      : st_dberr(s->writer->db, r, err, "begin scan");
		}
		st_done(st);
	}
	return st_write_end(s, rc, err);
}

/* ---- files ------------------------------------------------------------------ */

#define FILE_COLS "path, dev, ino, size, mtime_ns, sha256, image_id, ignored, pending, err_code IS NOT NULL, seen_scan"

static int file_row(void *ud, sqlite3_stmt *st, size_t i, store_error *err)
{
	struct store_lib_file *f = (struct store_lib_file *)ud + i;
	(void)err;
	f->dev = sqlite3_column_int64(st, 1);
	f->ino = sqlite3_column_int64(st, 2);
	f->size = sqlite3_column_int64(st, 3);
	f->mtime_ns = sqlite3_column_int64(st, 4);
	const char *sha = (const char *)sqlite3_column_text(st, 5);
	snprintf(f->sha256, sizeof f->sha256, "%s", sha && sha256_is_hex(sha) ? sha : "");
	f->image_id = sqlite3_column_int64(st, 6);
	f->ignored = sqlite3_column_int(st, 7);
	f->pending = sqlite3_column_int(st, 8);
	f->failed = sqlite3_column_int(st, 9);
	f->seen_scan = sqlite3_column_int64(st, 10);
	return 0;
}

/* A row of a page of files: the file and its path. */
static int file_path_row(void *ud, sqlite3_stmt *st, size_t i, store_error *err)
{
	struct store_lib_file *f = (struct store_lib_file *)ud + i;
	file_row(ud, st, i, err);
	return (f->path = dup_col(st, 0)) ? 0 : store_fail(err, STORE_ERR_NOMEM, "out of memory");
}

int store_lib_file_get(store *s, const char *lib, const char *path, struct store_lib_file *out,
		       store_error *err)
{
	static const char sql[] = "SELECT " FILE_COLS " FROM library_files WHERE library = ?1 AND path = ?2";
	size_t n = 0;
	memset(out, 0, sizeof *out);
	int rc = read_rows(s, sql, 1, file_row, out, &n, "read library file", err, "tt", lib, path);
	if (rc == 0 && n == 0)
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no such library file");
	return rc;
}

int store_lib_mark(store *s, const char *lib, int64_t scan, const struct store_lib_mark *m, size_t n,
		   store_error *err)
{
	static const char seen_sql[] = "UPDATE library_files SET seen_scan = ?3 WHERE library = ?1 AND path = ?2";
	static const char pend_sql[] =
		"INSERT INTO library_files (library, path, pending, seen_scan) VALUES (?1, ?2, 1, ?3) "
		"ON CONFLICT (library, path) DO UPDATE SET pending = 1, seen_scan = excluded.seen_scan";
	if (n == 0)
		return 0;
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		sqlite3_stmt *st = st_prepare(s->writer, m[i].pending ? pend_sql : seen_sql, err);
		if (!st) {
			rc = STMT_FAIL(err);
			break;
		}
		sqlite3_bind_text(st, 1, lib, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, m[i].path, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, scan);
		int r = sqlite3_step(st);
		rc = r == SQLITE_DONE ? 0 : st_dberr(s->writer->db, r, err, "mark library file");
		st_done(st);
	}
	return st_write_end(s, rc, err);
}

/* A page of a library's rows in path order: sql takes the library (?1),
 * the path to start after (?2) and the page size (?3); *rows gets room for
 * max rows of elem bytes (zeroed), which row() fills. On failure *rows
 * stays for the caller to free with its *n rows. */
static int read_page(store *s, const char *sql, const char *lib, const char *after, size_t max, size_t elem,
		     void **rows, row_fn row, size_t *n, const char *what, store_error *err)
{
	*n = 0;
	if (max == 0 || max > 100000)
		return store_fail(err, STORE_ERR_INVALID, "max must be 1 to 100000");
	if (!(*rows = calloc(max, elem)))
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	return read_rows(s, sql, max, row, *rows, n, what, err, "tti", lib, after ? after : "", (int64_t)max);
}

int store_lib_pending(store *s, const char *lib, const char *after, size_t max, struct store_lib_file **out,
		      size_t *n, store_error *err)
{
	static const char sql[] = "SELECT " FILE_COLS " FROM library_files WHERE library = ?1 AND pending = 1 "
				  "AND path > ?2 ORDER BY path LIMIT ?3";
	*out = NULL;
	int rc = read_page(s, sql, lib, after, max, sizeof **out, (void **)out, file_path_row, n, "read pending files", err);
	if (rc != 0) {
		store_lib_files_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

/* ---- outcomes ----------------------------------------------------------------- */

/* The path's row after indexing: identity, digest, image or failure. */
static int put_file(store *s, const char *lib, const struct store_lib_outcome *o, const char *sha,
		    int64_t image_id, store_error *err)
{
	static const char sql[] =
		"INSERT INTO library_files (library, path, dev, ino, size, mtime_ns, sha256, image_id, pending, "
		"err_code, err_status, err_msg) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, ?11) "
		"ON CONFLICT (library, path) DO UPDATE SET dev = ?3, ino = ?4, size = ?5, mtime_ns = ?6, "
		"sha256 = ?7, image_id = ?8, pending = 0, err_code = ?9, err_status = ?10, err_msg = ?11";
	sqlite3_stmt *st = st_prepare(s->writer, sql, err);
	if (!st)
		return STMT_FAIL(err);
	sqlite3_bind_text(st, 1, lib, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, o->path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, o->dev);
	sqlite3_bind_int64(st, 4, o->ino);
	sqlite3_bind_int64(st, 5, o->size);
	sqlite3_bind_int64(st, 6, o->mtime_ns);
	if (sha && *sha)
		sqlite3_bind_text(st, 7, sha, -1, SQLITE_STATIC);
	if (image_id > 0)
		sqlite3_bind_int64(st, 8, image_id);
	if (o->kind == STORE_LIB_FAILED) {
		sqlite3_bind_text(st, 9, o->err_code ? o->err_code : "internal_error", -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 10, o->err_status);
		sqlite3_bind_text(st, 11, o->err_msg ? o->err_msg : "", -1, SQLITE_STATIC);
	}
	int r = sqlite3_step(st);
	st_done(st);
	return r == SQLITE_DONE ? 0 : st_dberr(s->writer->db, r, err, "record library file");
}

/* The image's original is now this library path. */
static int put_source(store *s, int64_t id, const char *lib, const char *path, store_error *err)
{
	static const char sql[] = "INSERT INTO library_images (image_id, library, path) VALUES (?1, ?2, ?3) "
				  "ON CONFLICT (image_id) DO UPDATE SET library = ?2, path = ?3";
	sqlite3_stmt *st = st_prepare(s->writer, sql, err);
	if (!st)
		return STMT_FAIL(err);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, lib, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, path, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	st_done(st);
	return r == SQLITE_DONE ? 0 : st_dberr(s->writer->db, r, err, "record image source");
}

static int64_t id_of_sha(store *s, const char *sha, store_error *err, int *rc)
{
	static const char sql[] = "SELECT id FROM images WHERE sha256 = ?1";
	sqlite3_stmt *st = st_prepare(s->writer, sql, err);
	*rc = 0;
	if (!st) {
		*rc = STMT_FAIL(err);
		return 0;
	}
	sqlite3_bind_text(st, 1, sha, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	int64_t id = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		*rc = st_dberr(s->writer->db, r, err, "look up sha256");
	st_done(st);
	return id;
}

/* New bytes under image o->replace_id: its row's digest and sizes, its
 * vector, a "remove" and an "add" change. *gone = 1 when the row is gone. */
static int replace_image(store *s, struct store_lib_outcome *o, size_t dim, const void *le, int *gone,
			 store_error *err)
{
	static const char old_sql[] = "SELECT sha256 FROM images WHERE id = ?1";
	static const char upd_sql[] = "UPDATE images SET sha256 = ?2, mime = ?3, width = ?4, height = ?5, bytes = ?6, "
				      "taken_at = ?7, taken_at_us = ?8 WHERE id = ?1";
	static const char vec_sql[] = "INSERT INTO vectors (image_id, model, vec) VALUES (?1, ?2, ?3) "
				      "ON CONFLICT (image_id, model) DO UPDATE SET vec = excluded.vec";
	static const char oldvec_sql[] = "DELETE FROM vectors WHERE image_id = ?1 AND model != ?2";
	static const char rm_sql[] = "INSERT INTO changes (op, image_id) VALUES ('remove', ?1)";
	static const char add_sql[] = "INSERT INTO changes (op, image_id) VALUES ('add', ?1)";
	struct store_model m;
	int have, rc = 0, r;
	*gone = 0;
	st_active(s, &m, &have);
	if (!have || m.dim != dim)
		return store_fail(err, STORE_ERR_MODEL, "no active model of dimension %zu", dim);
	sqlite3_stmt *st = st_prepare(s->writer, old_sql, err);
	if (!st)
		return STMT_FAIL(err);
	sqlite3_bind_int64(st, 1, o->replace_id);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		snprintf(o->old_sha256, sizeof o->old_sha256, "%s", (const char *)sqlite3_column_text(st, 0));
	else if (r == SQLITE_DONE)
		*gone = 1;
	else
		rc = st_dberr(s->writer->db, r, err, "read image");
	st_done(st);
	if (rc != 0 || *gone)
		return rc;
	if (!(st = st_prepare(s->writer, upd_sql, err)))
		return STMT_FAIL(err);
	sqlite3_bind_int64(st, 1, o->replace_id);
	sqlite3_bind_text(st, 2, o->img->sha256, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, o->img->mime, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, o->img->width);
	sqlite3_bind_int(st, 5, o->img->height);
	sqlite3_bind_int64(st, 6, o->img->bytes);
	if (o->img->taken.text[0]) {
		sqlite3_bind_text(st, 7, o->img->taken.text, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, o->img->taken.us);
	}
	r = sqlite3_step(st);
	st_done(st);
	if (r != SQLITE_DONE)
		return st_dberr(s->writer->db, r, err, "update image");
	if (!(st = st_prepare(s->writer, vec_sql, err)))
		return STMT_FAIL(err);
	sqlite3_bind_int64(st, 1, o->replace_id);
	sqlite3_bind_text(st, 2, m.fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, le, (int)(dim * 4), SQLITE_STATIC);
	r = sqlite3_step(st);
	st_done(st);
	if (r != SQLITE_DONE)
		return st_dberr(s->writer->db, r, err, "update vector");
	/* Vectors of another model (a reembed in progress) were of the old pixels. */
	if (!(st = st_prepare(s->writer, oldvec_sql, err)))
		return STMT_FAIL(err);
	sqlite3_bind_int64(st, 1, o->replace_id);
	sqlite3_bind_text(st, 2, m.fingerprint, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	st_done(st);
	if (r != SQLITE_DONE)
		return st_dberr(s->writer->db, r, err, "drop old vectors");
	if ((rc = st_exec_id(s->writer, rm_sql, o->replace_id, "log change", err)) != 0)
		return rc;
	o->remove_seq = (uint64_t)sqlite3_last_insert_rowid(s->writer->db);
	if ((rc = st_exec_id(s->writer, add_sql, o->replace_id, "log change", err)) != 0)
		return rc;
	o->seq = (uint64_t)sqlite3_last_insert_rowid(s->writer->db);
	o->image_id = o->replace_id;
	return 0;
}

static int commit_one(store *s, const char *lib, struct store_lib_outcome *o, size_t dim, void *le,
		      store_error *err)
{
	static const char forget_sql[] = "DELETE FROM library_files WHERE library = ?1 AND path = ?2";
	int rc = 0, gone = 0;
	o->image_id = 0;
	o->seq = o->remove_seq = 0;
	o->old_sha256[0] = 0;
	switch (o->kind) {
	case STORE_LIB_GONE: {
		sqlite3_stmt *st = st_prepare(s->writer, forget_sql, err);
		if (!st)
			return STMT_FAIL(err);
		sqlite3_bind_text(st, 1, lib, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, o->path, -1, SQLITE_STATIC);
		int r = sqlite3_step(st);
		st_done(st);
		return r == SQLITE_DONE ? 0 : st_dberr(s->writer->db, r, err, "forget library file");
	}
	case STORE_LIB_FAILED:
		return put_file(s, lib, o, NULL, 0, err);
	case STORE_LIB_REPLACE:
		if ((rc = st_check_new_image(o->img, o->vec, err)) != 0)
			return rc;
		st_vec_to_le(o->vec, dim, le);
		if (id_of_sha(s, o->sha256, err, &rc) == 0 && rc == 0) {
			if ((rc = replace_image(s, o, dim, le, &gone, err)) != 0)
				return rc;
			if (!gone)
				break;
		}
		if (rc != 0)
			return rc;
		/* The bytes are stored under another id, or the image is gone: */
		/* fall through */
	case STORE_LIB_NEW:
		if ((rc = st_check_new_image(o->img, o->vec, err)) != 0)
			return rc;
		st_vec_to_le(o->vec, dim, le);
		rc = st_insert_image(s, o->img, le, dim, &o->image_id, &o->seq, err);
		if (rc == STORE_ERR_EXISTS) {
			o->seq = 0;   /* stored meanwhile (an upload): the path is that image */
			return put_file(s, lib, o, o->sha256, o->image_id, err);
		}
		if (rc != 0)
			return rc;
		break;
	case STORE_LIB_LINK:
		o->image_id = id_of_sha(s, o->sha256, err, &rc);
		if (rc != 0)
			return rc;
		if (o->image_id == 0)
			return 0;   /* deleted meanwhile: the path stays pending for the next scan */
		return put_file(s, lib, o, o->sha256, o->image_id, err);
	}
	if ((rc = put_source(s, o->image_id, lib, o->path, err)) != 0)
		return rc;
	return put_file(s, lib, o, o->sha256, o->image_id, err);
}

int store_lib_commit(store *s, const char *lib, struct store_lib_outcome *v, size_t n, size_t dim,
		     store_error *err)
{
	if (n == 0)
		return 0;
	void *le = malloc(dim * 4);
	if (!le)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	int rc = st_write_begin(s, err);
	if (rc == 0) {
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = commit_one(s, lib, &v[i], dim, le, err);
		rc = st_write_end(s, rc, err);
	}
	free(le);
	return rc;
}

int store_lib_image_refs(store *s, int64_t id, int64_t *refs, store_error *err)
{
	static const char refs_sql[] = "SELECT COUNT(*) FROM library_files WHERE image_id = ?1 AND ignored = 0";
	static const char own_sql[] = "SELECT COUNT(*) FROM library_images WHERE image_id = ?1";
	char text[32];
	int64_t own = 0;
	snprintf(text, sizeof text, "%lld", (long long)id);
	*refs = 0;
	int rc = st_read_int64(s, refs_sql, text, refs, "count library paths", err);
	if (rc >= 0)
		rc = st_read_int64(s, own_sql, text, &own, "library image", err);
	return rc < 0 ? rc : own > 0;
}

/* A row that read_rows only counts. */
static int count_row(void *ud, sqlite3_stmt *st, size_t i, store_error *err)
{
	(void)ud;
	(void)st;
	(void)i;
	(void)err;
	return 0;
}

int store_lib_other_device(store *s, const char *lib, const char *dir, int64_t dev, store_error *err)
{
	/* the paths dir/... sort between "dir/" and "dir0" ('0' follows '/') */
	static const char sql[] = "SELECT 1 FROM library_files WHERE library = ?1 AND path > ?2 AND path < ?3 "
				  "AND dev IS NOT NULL AND dev <> 0 AND dev <> ?4 LIMIT 1";
	size_t k = strlen(dir), n = 0;
	char *lo = malloc(2 * (k + 2)), *hi = lo + k + 2;   /* "dir/" and "dir0" */
	if (!lo)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	memcpy(lo, dir, k);
	memcpy(hi, dir, k);
	lo[k] = '/';
	hi[k] = '0';
	lo[k + 1] = hi[k + 1] = 0;
	int rc = read_rows(s, sql, 1, count_row, NULL, &n, "read library files", err, "ttti", lib, lo, hi, dev);
	free(lo);
	return rc != 0 ? rc : n > 0;
}

int store_lib_adopt(store *s, int64_t id, store_error *err)
{
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = st_prepare(s->writer, "DELETE FROM library_images WHERE image_id = ?1", err);
	int changed = 0;
	if (!st) {
		rc = STMT_FAIL(err);
	} else {
		sqlite3_bind_int64(st, 1, id);
		int r = sqlite3_step(st);
		rc = r == SQLITE_DONE ? 0 : st_dberr(s->writer->db, r, err, "keep an upload's copy");
		changed = rc == 0 && sqlite3_changes(s->writer->db) > 0;
		st_done(st);
	}
	rc = st_write_end(s, rc, err);
	return rc != 0 ? rc : changed;
}

/* ---- the end of a scan ----------------------------------------------------------- */

int store_lib_path_kept(const char *path, const char *const *keep, size_t n_keep)
{
	for (size_t i = 0; i < n_keep; i++) {
		size_t k = strlen(keep[i]);
		if (k == 0 || (!strncmp(path, keep[i], k) && path[k] == '/'))
			return 1;
	}
	return 0;
}

int store_lib_gone_add(struct store_lib_gone *g, size_t *cap, int64_t id, const char *sha, uint64_t seq,
		       store_error *err)
{
	if (g->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		int64_t *ids = realloc(g->ids, nc * sizeof *ids);
		if (ids)
			g->ids = ids;
		char (*shas)[STORE_SHA256_HEX] = realloc(g->sha256, nc * sizeof *shas);
		if (shas)
			g->sha256 = shas;
		uint64_t *seqs = realloc(g->seqs, nc * sizeof *seqs);
		if (seqs)
			g->seqs = seqs;
		if (!ids || !shas || !seqs)
			return store_fail(err, STORE_ERR_NOMEM, "out of memory");
		*cap = nc;
	}
	g->ids[g->n] = id;
	snprintf(g->sha256[g->n], STORE_SHA256_HEX, "%s", sha);
	g->seqs[g->n] = seq;
	g->n++;
	return 0;
}

/* Forget the paths the scan did not see (outside keep). */
static int forget_unseen(store *s, const char *lib, int64_t scan, const char *const *keep, size_t n_keep,
			 store_error *err)
{
	static const char sel_sql[] = "SELECT path FROM library_files WHERE library = ?1 AND seen_scan < ?2 "
				      "AND ignored = 0 AND path > ?3 ORDER BY path LIMIT 256";
	static const char del_sql[] = "DELETE FROM library_files WHERE library = ?1 AND path = ?2";
	char *after = strdup("");
	int rc = after ? 0 : store_fail(err, STORE_ERR_NOMEM, "out of memory");
	while (rc == 0) {
		char *paths[256];
		size_t n = 0;
		sqlite3_stmt *st = st_prepare(s->writer, sel_sql, err);
		if (!st) {
			rc = STMT_FAIL(err);
			break;
		}
		sqlite3_bind_text(st, 1, lib, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, scan);
		sqlite3_bind_text(st, 3, after, -1, SQLITE_STATIC);
		int r;
		while (n < 256 && (r = sqlite3_step(st)) == SQLITE_ROW)
			if ((paths[n] = dup_col(st, 0)))
				n++;
		st_done(st);
		for (size_t i = 0; i < n && rc == 0; i++) {
			if (store_lib_path_kept(paths[i], keep, n_keep))
				continue;
			if (!(st = st_prepare(s->writer, del_sql, err))) {
				rc = STMT_FAIL(err);
				break;
			}
			sqlite3_bind_text(st, 1, lib, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, paths[i], -1, SQLITE_STATIC);
			r = sqlite3_step(st);
			st_done(st);
			if (r != SQLITE_DONE)
				rc = st_dberr(s->writer->db, r, err, "forget library file");
		}
		if (n > 0) {
			free(after);
			after = paths[n - 1];
			paths[n - 1] = NULL;
		}
		for (size_t i = 0; i < n; i++)
			free(paths[i]);
		if (n < 256)
			break;
	}
	free(after);
	return rc;
}

int store_lib_finish(store *s, const char *lib, int64_t scan, const char *const *keep, size_t n_keep,
		     struct store_lib_scan_figures *fig, struct store_lib_gone *gone, store_error *err)
{
	/* Library images whose recorded path is no longer this image. */
	static const char orphan_sql[] =
		"SELECT li.image_id, li.path FROM library_images li WHERE li.library = ?1 AND NOT EXISTS "
		"(SELECT 1 FROM library_files f WHERE f.library = li.library AND f.path = li.path "
		"AND f.image_id = li.image_id AND f.ignored = 0) AND li.image_id > ?2 ORDER BY li.image_id LIMIT 256";
	static const char other_sql[] = "SELECT library, path FROM library_files WHERE image_id = ?1 AND ignored = 0 "
					"ORDER BY library = ?2 DESC, path LIMIT 1";
	static const char fig_sql[] =
		"UPDATE libraries SET last_started_at = ?2, last_finished_at = ?3, last_added = ?4, last_changed = ?5, "
		"last_moved = ?6, last_removed = ?7, last_failed = ?8 WHERE name = ?1";
	size_t cap = 0;
	memset(gone, 0, sizeof *gone);
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	if ((rc = forget_unseen(s, lib, scan, keep, n_keep, err)) != 0)
		goto out;
	int64_t after = 0;
	for (;;) {
		int64_t ids[256];
		size_t n = 0;
		sqlite3_stmt *st = st_prepare(s->writer, orphan_sql, err);
		if (!st) {
			rc = STMT_FAIL(err);
			goto out;
		}
		sqlite3_bind_text(st, 1, lib, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, after);
		while (n < 256 && sqlite3_step(st) == SQLITE_ROW)
			ids[n++] = sqlite3_column_int64(st, 0);
		st_done(st);
		for (size_t i = 0; i < n && rc == 0; i++) {
			char *olib = NULL, *opath = NULL;
			if (!(st = st_prepare(s->writer, other_sql, err))) {
				rc = STMT_FAIL(err);
				break;
			}
			sqlite3_bind_int64(st, 1, ids[i]);
			sqlite3_bind_text(st, 2, lib, -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW) {
				olib = dup_col(st, 0);
				opath = dup_col(st, 1);
			}
			st_done(st);
			if (olib && opath) {
				rc = put_source(s, ids[i], olib, opath, err);
				fig->moved++;
			} else {
				char sha[STORE_SHA256_HEX];
				uint64_t seq = 0;
				rc = st_delete_image(s, ids[i], sha, &seq, err);
				if (rc == 0) {
					rc = store_lib_gone_add(gone, &cap, ids[i], sha, seq, err);
					fig->removed++;
				}
			}
			free(olib);
			free(opath);
		}
		if (rc != 0 || n < 256)
			break;
		after = ids[n - 1];
	}
	if (rc != 0)
		goto out;
	sqlite3_stmt *st = st_prepare(s->writer, fig_sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_text(st, 1, lib, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, fig->started_at);
	sqlite3_bind_int64(st, 3, fig->finished_at ? fig->finished_at : clock_wall_us());
	sqlite3_bind_int64(st, 4, fig->added);
	sqlite3_bind_int64(st, 5, fig->changed);
	sqlite3_bind_int64(st, 6, fig->moved);
	sqlite3_bind_int64(st, 7, fig->removed);
	sqlite3_bind_int64(st, 8, fig->failed);
	int r = sqlite3_step(st);
	st_done(st);
	if (r != SQLITE_DONE)
		rc = st_dberr(s->writer->db, r, err, "record scan");
out:
	rc = st_write_end(s, rc, err);
	if (rc != 0)
		store_lib_gone_clear(gone);
	return rc;
}

/* ---- reads ---------------------------------------------------------------------- */

static int counts_row(void *ud, sqlite3_stmt *st, size_t i, store_error *err)
{
	struct store_lib_counts *out = ud;
	(void)i;
	(void)err;
	out->files = sqlite3_column_int64(st, 0);
	out->images = sqlite3_column_int64(st, 1);
	out->failed = (int64_t)sqlite3_column_double(st, 2);
	out->pending = (int64_t)sqlite3_column_double(st, 3);
	out->ignored = (int64_t)sqlite3_column_double(st, 4);
	out->bytes = (int64_t)sqlite3_column_double(st, 5);
	return 0;
}

int store_lib_counts(store *s, const char *lib, struct store_lib_counts *out, store_error *err)
{
	static const char sql[] =
		"SELECT COUNT(*), COUNT(DISTINCT image_id), TOTAL(err_code IS NOT NULL), TOTAL(pending), TOTAL(ignored), "
		"TOTAL(CASE WHEN image_id IS NOT NULL THEN size ELSE 0 END) FROM library_files WHERE library = ?1";
	size_t n = 0;
	memset(out, 0, sizeof *out);
	return read_rows(s, sql, 1, counts_row, out, &n, "count library files", err, "t", lib);
}

static int error_row(void *ud, sqlite3_stmt *st, size_t i, store_error *err)
{
	struct store_lib_error *e = (struct store_lib_error *)ud + i;
	e->path = dup_col(st, 0);
	e->code = dup_col(st, 1);
	e->status = sqlite3_column_int(st, 2);
	e->msg = dup_col(st, 3);
	return e->path && e->code && e->msg ? 0 : store_fail(err, STORE_ERR_NOMEM, "out of memory");
}

int store_lib_errors(store *s, const char *lib, const char *after, size_t max, struct store_lib_error **out,
		     size_t *n, store_error *err)
{
	static const char sql[] = "SELECT path, err_code, err_status, err_msg FROM library_files WHERE library = ?1 "
				  "AND err_code IS NOT NULL AND path > ?2 ORDER BY path LIMIT ?3";
	*out = NULL;
	int rc = read_page(s, sql, lib, after, max, sizeof **out, (void **)out, error_row, n, "read library failures", err);
	if (rc != 0) {
		store_lib_errors_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

struct source_row {
	char **root, **path;
	int64_t *size, *mtime_ns;
};

static int source_row(void *ud, sqlite3_stmt *st, size_t i, store_error *err)
{
	struct source_row *o = ud;
	(void)i;
	*o->root = dup_col(st, 0);
	*o->path = dup_col(st, 1);
	*o->size = sqlite3_column_int64(st, 2);
	*o->mtime_ns = sqlite3_column_int64(st, 3);
	if (*o->root && *o->path)
		return 0;
	free(*o->root);
	free(*o->path);
	*o->root = *o->path = NULL;
	return store_fail(err, STORE_ERR_NOMEM, "out of memory");
}

int store_lib_source(store *s, int64_t id, char **root, char **path, int64_t *size, int64_t *mtime_ns,
		     store_error *err)
{
	static const char sql[] =
		"SELECT l.root, li.path, f.size, f.mtime_ns FROM library_images li JOIN libraries l ON l.name = li.library "
		"JOIN library_files f ON f.library = li.library AND f.path = li.path WHERE li.image_id = ?1";
	struct source_row o = { root, path, size, mtime_ns };
	size_t n = 0;
	*root = *path = NULL;
	int rc = read_rows(s, sql, 1, source_row, &o, &n, "read image source", err, "i", id);
	if (rc == 0 && n == 0)
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "image %lld is not a library image", (long long)id);
	return rc;
}
