/*
 * The PostgreSQL backend's photo libraries in `clipd catalog copy`
 * (catalog_copy.c): the rows of libraries and library_files read and
 * written as text, as the SQLite store's (store_copylib.c; store.h,
 * "Photo libraries in a copy"): flags as 0 or 1, byte order of names and
 * paths (COLLATE "C"). A library's id (the key of its scan lock) is this
 * catalog's own and is not copied: the library is its name. A library
 * image's own row (library_images) goes with its image row, in
 * pgstore_copy.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgstore_internal.h"

#define RUN_FAIL(err) ((err) ? (err)->code : STORE_ERR_DB)

#define LIB_COLS "name, root, scan_seq, last_started_at, last_finished_at, last_added, last_changed, last_moved, " \
	"last_removed, last_failed"
#define FILE_SELECT "SELECT library, path, dev, ino, size, mtime_ns, sha256, image_id, ignored::int, pending::int, " \
	"seen_scan, err_code, err_status, err_msg FROM library_files "

/* The rows of r as text rows (NULL for SQL NULL). */
static int text_rows(const PGresult *r, int cols, struct store_text_row **out, size_t *n, store_error *err)
{
	size_t rows = (size_t)PQntuples(r);
	*out = NULL;
	*n = 0;
	if (rows == 0)
		return 0;
	if (!(*out = calloc(rows, sizeof **out)))
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < rows; i++) {
		(*n)++;
		for (int c = 0; c < cols; c++)
			if (!PQgetisnull(r, (int)i, c) && !((*out)[i].col[c] = strdup(PQgetvalue(r, (int)i, c)))) {
				store_text_rows_free(*out, *n);
				*out = NULL;
				*n = 0;
				return store_fail(err, STORE_ERR_NOMEM, "out of memory");
			}
	}
	return 0;
}

static int read_rows(pgstore *s, const char *sql, int n, const char *const *vals, int cols,
		     struct store_text_row **out, size_t *nout, const char *what, store_error *err)
{
	struct pg_conn *c = NULL;
	*out = NULL;
	*nout = 0;
	int rc = pg_take(s, &c, err);
	if (rc != 0)
		return rc;
	PGresult *r = pg_run(c, sql, n, vals, NULL, NULL, 0, PGRES_TUPLES_OK, cols, what, err);
	pg_give(s, c);
	rc = r ? text_rows(r, cols, out, nout, err) : RUN_FAIL(err);
	PQclear(r);
	return rc;
}

int pgc_copy_libraries(void *db, struct store_text_row **rows, size_t *n, store_error *err)
{
	return read_rows(db, "SELECT " LIB_COLS " FROM libraries ORDER BY name COLLATE \"C\" LIMIT 100000", 0, NULL,
			 STORE_LIB_ROW_COLS, rows, n, "read the libraries", err);
}

int pgc_copy_files(void *db, const char *after_lib, const char *after_path, size_t max, struct store_text_row **rows,
		   size_t *n, store_error *err)
{
	char m[24];
	*rows = NULL;
	*n = 0;
	if (max == 0 || max > 100000)
		return store_fail(err, STORE_ERR_INVALID, "max must be 1 to 100000");
	if (after_lib && (!pg_valid_utf8(after_lib) || (after_path && !pg_valid_utf8(after_path))))
		return store_fail(err, STORE_ERR_INVALID, "after: not a name the PostgreSQL catalog holds (not UTF-8)");
	const char *vals[] = { after_lib, after_path ? after_path : "", pg_i64(m, (int64_t)max) };
	return read_rows(db, FILE_SELECT "WHERE $1::text IS NULL OR library COLLATE \"C\" > $1 OR (library = $1 AND "
			 "path > $2) ORDER BY library COLLATE \"C\", path LIMIT $3::bigint", 3, vals, STORE_FILE_ROW_COLS,
			 rows, n, "read library files", err);
}

/* Every text of a row must be UTF-8: PostgreSQL's text holds nothing else
 * (a SQLite catalog may hold a path that is not). */
static int check_utf8(const struct store_text_row *row, int cols, const char *what, store_error *err)
{
	for (int c = 0; c < cols; c++)
		if (row->col[c] && !pg_valid_utf8(row->col[c]))
			return store_fail(err, STORE_ERR_INVALID, "%s '%.200s' %s is not UTF-8, which a PostgreSQL "
					  "catalog cannot hold: rename it in the library, scan the source again and copy "
					  "into an empty catalog", what, pg_valid_utf8(row->col[0]) ? row->col[0] : "?",
					  c == 0 ? "" : c == 1 ? "(a path in it)" : "(a column of it)");
	return 0;
}

static int put_row(struct pg_conn *c, const char *sql, const struct store_text_row *row, int cols, const char *what,
		   store_error *err)
{
	int rc = check_utf8(row, cols, what, err);
	if (rc != 0)
		return rc;
	PGresult *r = pg_run(c, sql, cols, (const char *const *)row->col, NULL, NULL, 0, PGRES_COMMAND_OK, 0, what, err);
	if (!r)
		return RUN_FAIL(err);
	PQclear(r);
	return 0;
}

int pgc_copy_lib_in(void *db, const struct store_text_row *libs, size_t nlibs, const struct store_text_row *files,
		    size_t nfiles, const char *key, const char *value, store_error *err)
{
	static const char lib_sql[] =
		"INSERT INTO libraries (" LIB_COLS ") VALUES ($1, $2, $3::bigint, $4::bigint, $5::bigint, $6::bigint, "
		"$7::bigint, $8::bigint, $9::bigint, $10::bigint) ON CONFLICT (name) DO UPDATE SET root = excluded.root, "
		"scan_seq = excluded.scan_seq, last_started_at = excluded.last_started_at, last_finished_at = "
		"excluded.last_finished_at, last_added = excluded.last_added, last_changed = excluded.last_changed, "
		"last_moved = excluded.last_moved, last_removed = excluded.last_removed, last_failed = excluded.last_failed";
	static const char file_sql[] =
		"INSERT INTO library_files (library, path, dev, ino, size, mtime_ns, sha256, image_id, ignored, pending, "
		"seen_scan, err_code, err_status, err_msg) VALUES ($1, $2, $3::bigint, $4::bigint, $5::bigint, $6::bigint, "
		"$7, $8::bigint, $9::integer <> 0, $10::integer <> 0, $11::bigint, $12, $13::integer, $14)";
	struct pg_conn *c = NULL;
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	rc = pg_cmd(c, "BEGIN", err);
	for (size_t i = 0; i < nlibs && rc == 0; i++)
		rc = put_row(c, lib_sql, &libs[i], STORE_LIB_ROW_COLS, "library", err);
	for (size_t i = 0; i < nfiles && rc == 0; i++)
		rc = put_row(c, file_sql, &files[i], STORE_FILE_ROW_COLS, "library", err);
	if (rc == 0 && key) {
		const char *vals[] = { key, value };
		PGresult *r = pg_run(c, "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE "
				     "SET value = $2", 2, vals, NULL, NULL, 0, PGRES_COMMAND_OK, 0,
				     "record the copy's progress", err);
		rc = r ? 0 : RUN_FAIL(err);
		PQclear(r);
	}
	rc = pg_end(c, rc, err);
	pg_give(db, c);
	return rc;
}
