/*
 * store_check: SQLite's own integrity and foreign-key checks, and every
 * image has a vector of the active model of the right size. See store.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "store_internal.h"

/* ---- maintenance -------------------------------------------------------------- */

static void problem(store_problem_fn fn, void *ud, int *count, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void problem(store_problem_fn fn, void *ud, int *count, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	(*count)++;
	if (fn)
		fn(ud, line);
}

int store_check(store *s, store_problem_fn fn, void *ud, store_error *err)
{
	static const char missing_sql[] =
		"SELECT i.id FROM images i WHERE NOT EXISTS "
		"(SELECT 1 FROM vectors v WHERE v.image_id = i.id AND v.model = ?1) ORDER BY i.id";
	static const char size_sql[] =
		"SELECT image_id, length(vec) FROM vectors WHERE model = ?1 AND length(vec) != ?2 "
		"ORDER BY image_id";
	struct store_conn *c = NULL;
	int count = 0, rc, r;
	sqlite3_stmt *st = NULL;
	if ((rc = st_read_begin(s, &c, err)) != 0)
		return rc;

	r = sqlite3_prepare_v2(c->db, "PRAGMA integrity_check", -1, &st, NULL);
	while (r == SQLITE_OK || r == SQLITE_ROW) {
		if ((r = sqlite3_step(st)) != SQLITE_ROW)
			break;
		const char *line = (const char *)sqlite3_column_text(st, 0);
		if (line && strcmp(line, "ok") != 0)
			problem(fn, ud, &count, "database: %s", line);
	}
	if (r != SQLITE_DONE)
		problem(fn, ud, &count, "database: integrity_check failed: %s", sqlite3_errmsg(c->db));
	sqlite3_finalize(st);

	r = sqlite3_prepare_v2(c->db, "PRAGMA foreign_key_check", -1, &st, NULL);
	while ((r == SQLITE_OK || r == SQLITE_ROW) && (r = sqlite3_step(st)) == SQLITE_ROW)
		problem(fn, ud, &count, "database: row %lld of table %s refers to a missing %s row",
			(long long)sqlite3_column_int64(st, 1), (const char *)sqlite3_column_text(st, 0),
			(const char *)sqlite3_column_text(st, 2));
	if (r != SQLITE_DONE)
		problem(fn, ud, &count, "database: foreign_key_check failed: %s", sqlite3_errmsg(c->db));
	sqlite3_finalize(st);
	st = NULL;

	struct store_model m;
	int have;
	st_active(s, &m, &have);
	int64_t n_images = 0;
	r = sqlite3_prepare_v2(c->db, "SELECT COUNT(*) FROM images", -1, &st, NULL);
	if (r == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n_images = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (!have) {
		if (n_images > 0)
			problem(fn, ud, &count, "database: %lld images but no active model", (long long)n_images);
		goto out;
	}

	if (!(st = st_prepare(c, missing_sql, err))) {
		rc = err ? err->code : STORE_ERR_DB;
		goto out;
	}
	sqlite3_bind_text(st, 1, m.fingerprint, -1, SQLITE_STATIC);
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		problem(fn, ud, &count, "image %lld: no vector of model %s (%.12s)",
			(long long)sqlite3_column_int64(st, 0), m.name, m.fingerprint);
	if (r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "find images without vectors");
	st_done(st);
	if (rc != 0)
		goto out;

	if (!(st = st_prepare(c, size_sql, err))) {
		rc = err ? err->code : STORE_ERR_DB;
		goto out;
	}
	sqlite3_bind_text(st, 1, m.fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)(m.dim * 4));
	while ((r = sqlite3_step(st)) == SQLITE_ROW)
		problem(fn, ud, &count, "image %lld: vector has %lld bytes, expected %zu",
			(long long)sqlite3_column_int64(st, 0), (long long)sqlite3_column_int64(st, 1),
			m.dim * 4);
	if (r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "check vector sizes");
	st_done(st);
out:
	st_read_end(s, c);
	return rc != 0 ? rc : count;
}
