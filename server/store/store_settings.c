/*
 * The SQLite store's settings: small text values by key (the active
 * model, how far the change log was pruned). See store.h.
 */
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

int st_setting_get(struct store_conn *c, const char *key, char **value, store_error *err)
{
	static const char sql[] = "SELECT value FROM settings WHERE key = ?1";
	*value = NULL;
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st)
		return err ? err->code : STORE_ERR_DB;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*value = strdup((const char *)sqlite3_column_text(st, 0));
		rc = *value ? 0 : store_fail(err, STORE_ERR_NOMEM, "out of memory");
	} else if (rc == SQLITE_DONE) {
		rc = 0;
	} else {
		rc = st_dberr(c->db, rc, err, "read setting");
	}
	st_done(st);
	return rc;
}

int st_setting_set(struct store_conn *c, const char *key, const char *value, store_error *err)
{
	static const char sql[] = "INSERT INTO settings (key, value) VALUES (?1, ?2) "
				  "ON CONFLICT (key) DO UPDATE SET value = excluded.value";
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st)
		return err ? err->code : STORE_ERR_DB;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : st_dberr(c->db, rc, err, "write setting");
	st_done(st);
	return rc;
}

int store_setting_get(store *s, const char *key, char **value, store_error *err)
{
	struct store_conn *c = NULL;
	int rc = st_reader_get(s, &c, err);
	if (rc == 0)
		rc = st_setting_get(c, key, value, err);
	st_reader_put(s, c);
	return rc;
}

int store_setting_set(store *s, const char *key, const char *value, store_error *err)
{
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	rc = st_setting_set(s->writer, key, value, err);
	return st_write_end(s, rc, err);
}
