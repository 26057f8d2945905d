/*
 * The SQLite store's photo libraries in `clipd catalog copy`
 * (catalog_copy.c): the rows of libraries and library_files read and
 * written as text, every column as it is (store.h, "Photo libraries in a
 * copy"). A library image's own row (library_images) goes with its image
 * row, in store_copy.c.
 */
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

#define LIB_COLS "name, root, scan_seq, last_started_at, last_finished_at, last_added, last_changed, last_moved, " \
	"last_removed, last_failed"
#define FILE_COLS "library, path, dev, ino, size, mtime_ns, sha256, image_id, ignored, pending, seen_scan, " \
	"err_code, err_status, err_msg"

void store_text_rows_free(struct store_text_row *rows, size_t n)
{
	for (size_t i = 0; rows && i < n; i++)
		for (size_t c = 0; c < STORE_FILE_ROW_COLS; c++)
			free(rows[i].col[c]);
	free(rows);
}

/* The rows of st (cols columns each), up to max, as text rows. */
static int read_text_rows(store *s, const char *sql, int cols, size_t max, const char *a, const char *b,
			  struct store_text_row **out, size_t *n, const char *what, store_error *err)
{
	struct store_conn *c = NULL;
	sqlite3_stmt *st = NULL;
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	int rc = st_reader_prepare(s, sql, &c, &st, err);
	if (rc != 0)
		return rc;
	if (a) {
		sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, b ? b : "", -1, SQLITE_STATIC);
	}
	sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
	int r;
	while (rc == 0 && (r = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct store_text_row *g = realloc(*out, nc * sizeof *g);
			if (!g) {
				rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
				break;
			}
			*out = g;
			cap = nc;
		}
		struct store_text_row *row = &(*out)[(*n)++];
		memset(row, 0, sizeof *row);
		for (int i = 0; i < cols && rc == 0; i++) {
			const char *t = (const char *)sqlite3_column_text(st, i);
			if (t && !(row->col[i] = strdup(t)))
				rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		}
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, what);
	st_reader_end(s, c, st);
	if (rc != 0) {
		store_text_rows_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

int store_copy_libraries(store *s, struct store_text_row **rows, size_t *n, store_error *err)
{
	return read_text_rows(s, "SELECT " LIB_COLS " FROM libraries ORDER BY name LIMIT ?3", STORE_LIB_ROW_COLS,
			      100000, NULL, NULL, rows, n, "read the libraries", err);
}

int store_copy_files(store *s, const char *after_lib, const char *after_path, size_t max,
		     struct store_text_row **rows, size_t *n, store_error *err)
{
	*rows = NULL;
	*n = 0;
	if (max == 0 || max > 100000)
		return store_fail(err, STORE_ERR_INVALID, "max must be 1 to 100000");
	if (after_lib)
		return read_text_rows(s, "SELECT " FILE_COLS " FROM library_files WHERE (library, path) > (?1, ?2) "
				      "ORDER BY library, path LIMIT ?3", STORE_FILE_ROW_COLS, max, after_lib, after_path,
				      rows, n, "read library files", err);
	return read_text_rows(s, "SELECT " FILE_COLS " FROM library_files ORDER BY library, path LIMIT ?3",
			      STORE_FILE_ROW_COLS, max, NULL, NULL, rows, n, "read library files", err);
}

/* Insert one text row with sql (cols parameters; a text into an INTEGER
 * column becomes the integer it spells, SQLite's column affinity). */
static int put_row(struct store_conn *c, const char *sql, const struct store_text_row *row, int cols,
		   const char *what, store_error *err)
{
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st)
		return STMT_FAIL(err);
	for (int i = 0; i < cols; i++)
		if (row->col[i])
			sqlite3_bind_text(st, i + 1, row->col[i], -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, i + 1);
	int r = sqlite3_step(st);
	int rc = 0;
	if (r != SQLITE_DONE && sqlite3_extended_errcode(c->db) == SQLITE_CONSTRAINT_PRIMARYKEY)
		rc = store_fail(err, STORE_ERR_EXISTS, "%s: '%s' is there already", what, row->col[1] ? row->col[1] : "");
	else if (r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, what);
	st_done(st);
	return rc;
}

int store_copy_lib_in(store *s, const struct store_text_row *libs, size_t nlibs, const struct store_text_row *files,
		      size_t nfiles, const char *key, const char *value, store_error *err)
{
	static const char lib_sql[] = "INSERT INTO libraries (" LIB_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
				      "?9, ?10) ON CONFLICT (name) DO UPDATE SET root = excluded.root, scan_seq = "
				      "excluded.scan_seq, last_started_at = excluded.last_started_at, last_finished_at = "
				      "excluded.last_finished_at, last_added = excluded.last_added, last_changed = "
				      "excluded.last_changed, last_moved = excluded.last_moved, last_removed = "
				      "excluded.last_removed, last_failed = excluded.last_failed";
	static const char file_sql[] = "INSERT INTO library_files (" FILE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
				       "?8, ?9, ?10, ?11, ?12, ?13, ?14)";
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < nlibs && rc == 0; i++)
		rc = put_row(s->writer, lib_sql, &libs[i], STORE_LIB_ROW_COLS, "copy a library", err);
	for (size_t i = 0; i < nfiles && rc == 0; i++)
		rc = put_row(s->writer, file_sql, &files[i], STORE_FILE_ROW_COLS, "copy a library file", err);
	if (rc == 0 && key)
		rc = st_setting_set(s->writer, key, value, err);
	return st_write_end(s, rc, err);
}
