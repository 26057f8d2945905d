/*
 * The SQLite store's models (the one whose vectors are served, the ones
 * recorded for reembed) and the file-hash cache behind model
 * fingerprints. See store.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "store_internal.h"

/* ---- models ------------------------------------------------------------------- */

static int model_get_conn(struct store_conn *c, const char *fp, struct store_model *out, store_error *err)
{
	static const char sql[] = "SELECT fingerprint, name, dim, layout FROM models WHERE fingerprint = ?1";
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st)
		return err ? err->code : STORE_ERR_DB;
	sqlite3_bind_text(st, 1, fp, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		memset(out, 0, sizeof *out);
		snprintf(out->fingerprint, sizeof out->fingerprint, "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(out->name, sizeof out->name, "%s", (const char *)sqlite3_column_text(st, 1));
		out->dim = (size_t)sqlite3_column_int64(st, 2);
		snprintf(out->layout, sizeof out->layout, "%s", (const char *)sqlite3_column_text(st, 3));
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no model %.12s recorded", fp);
	} else {
		rc = st_dberr(c->db, rc, err, "read model");
	}
	st_done(st);
	return rc;
}

int st_load_active(store *s, store_error *err)
{
	struct store_conn *c = s->writer;
	int rc = 0;
	char *fp = NULL;
	if (!c && (rc = st_reader_get(s, &c, err)) != 0)
		return rc;
	struct store_model m;
	rc = st_setting_get(c, "active_model", &fp, err);
	if (rc == 0 && fp)
		rc = model_get_conn(c, fp, &m, err);
	if (c != s->writer)
		st_reader_put(s, c);
	if (rc == 0) {
		pthread_mutex_lock(&s->mlock);
		s->have_active = fp != NULL;
		if (fp)
			s->active = m;
		pthread_mutex_unlock(&s->mlock);
	}
	free(fp);
	return rc;
}

void st_active(store *s, struct store_model *out, int *found)
{
	pthread_mutex_lock(&s->mlock);
	*found = s->have_active;
	if (s->have_active)
		*out = s->active;
	else
		memset(out, 0, sizeof *out);
	pthread_mutex_unlock(&s->mlock);
}

int store_active_model(store *s, struct store_model *out, int *found, store_error *err)
{
	(void)err;
	st_active(s, out, found);
	return 0;
}

static int model_put_conn(struct store_conn *c, const struct store_model *m, store_error *err)
{
	static const char sql[] =
		"INSERT INTO models (fingerprint, name, dim, layout, created_at) VALUES (?1, ?2, ?3, ?4, ?5) "
		"ON CONFLICT (fingerprint) DO UPDATE SET name = excluded.name, layout = excluded.layout";
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st)
		return err ? err->code : STORE_ERR_DB;
	sqlite3_bind_text(st, 1, m->fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)m->dim);
	sqlite3_bind_text(st, 4, m->layout, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, clock_wall_us());
	int rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : st_dberr(c->db, rc, err, "record model");
	st_done(st);
	return rc;
}

static int check_model(const struct store_model *m, store_error *err)
{
	if (strlen(m->fingerprint) != 64 || m->dim == 0 || m->dim > 65536)
		return store_fail(err, STORE_ERR_INVALID, "bad model record (fingerprint or dimension)");
	return 0;
}

int store_put_model(store *s, const struct store_model *m, store_error *err)
{
	int rc = check_model(m, err);
	if (rc != 0 || (rc = st_write_begin(s, err)) != 0)
		return rc;
	rc = model_put_conn(s->writer, m, err);
	return st_write_end(s, rc, err);
}

int store_set_active_model(store *s, const struct store_model *m, store_error *err)
{
	int rc = check_model(m, err);
	if (rc != 0 || (rc = st_write_begin(s, err)) != 0)
		return rc;
	rc = model_put_conn(s->writer, m, err);
	if (rc == 0)
		rc = st_setting_set(s->writer, "active_model", m->fingerprint, err);
	rc = st_write_end(s, rc, err);
	if (rc == 0) {
		pthread_mutex_lock(&s->mlock);
		s->active = *m;
		s->have_active = 1;
		pthread_mutex_unlock(&s->mlock);
	}
	return rc;
}

int store_get_model(store *s, const char *fingerprint, struct store_model *out, store_error *err)
{
	struct store_conn *c = NULL;
	int rc = st_reader_get(s, &c, err);
	if (rc == 0)
		rc = model_get_conn(c, fingerprint, out, err);
	st_reader_put(s, c);
	return rc;
}

int store_switch_model(store *s, const char *fingerprint, store_error *err)
{
	static const char missing_sql[] =
		"SELECT COUNT(*) FROM images i WHERE NOT EXISTS "
		"(SELECT 1 FROM vectors v WHERE v.image_id = i.id AND v.model = ?1)";
	struct store_model m;
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	struct store_conn *c = s->writer;
	if ((rc = model_get_conn(c, fingerprint, &m, err)) != 0)
		goto out;
	sqlite3_stmt *st = st_prepare(c, missing_sql, err);
	if (!st) {
		rc = err ? err->code : STORE_ERR_DB;
		goto out;
	}
	sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	int64_t missing = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	rc = rc == SQLITE_ROW ? 0 : st_dberr(c->db, rc, err, "count missing vectors");
	st_done(st);
	if (rc != 0)
		goto out;
	if (missing > 0) {
		rc = store_fail(err, STORE_ERR_INVALID, "%lld images have no vector of model %.12s yet",
			     (long long)missing, fingerprint);
		goto out;
	}
	char del[160];
	snprintf(del, sizeof del, "DELETE FROM vectors WHERE model != '%s'", m.fingerprint);
	if ((rc = st_exec(c, del, err)) != 0 ||
	    (rc = st_setting_set(c, "active_model", m.fingerprint, err)) != 0 ||
	    (rc = st_exec(c, "INSERT INTO changes (op, image_id) VALUES ('reset', 0)", err)) != 0)
		goto out;
out:
	rc = st_write_end(s, rc, err);
	if (rc == 0) {
		pthread_mutex_lock(&s->mlock);
		s->active = m;
		s->have_active = 1;
		pthread_mutex_unlock(&s->mlock);
	}
	return rc;
}

/* ---- the file-hash cache ---------------------------------------------------- */

int store_file_hash_get(store *s, const char *path, int64_t size, int64_t mtime_ns,
			int64_t inode, char hex[STORE_SHA256_HEX], int *found, store_error *err)
{
	static const char sql[] = "SELECT sha256 FROM file_hashes WHERE path = ?1 AND size = ?2 "
				  "AND mtime_ns = ?3 AND inode = ?4";
	struct store_conn *c = NULL;
	sqlite3_stmt *st = NULL;
	*found = 0;
	int rc = st_reader_prepare(s, sql, &c, &st, err);
	if (rc != 0)
		return rc;
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, size);
	sqlite3_bind_int64(st, 3, mtime_ns);
	sqlite3_bind_int64(st, 4, inode);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *h = (const char *)sqlite3_column_text(st, 0);
		if (h && strlen(h) == 64) {
			memcpy(hex, h, 65);
			*found = 1;
		}
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? 0 : st_dberr(c->db, rc, err, "read file hash");
	}
	st_reader_end(s, c, st);
	return rc;
}

int store_file_hash_put(store *s, const char *path, int64_t size, int64_t mtime_ns,
			int64_t inode, const char *hex, store_error *err)
{
	static const char sql[] = "INSERT OR REPLACE INTO file_hashes (path, size, mtime_ns, inode, sha256) "
				  "VALUES (?1, ?2, ?3, ?4, ?5)";
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	sqlite3_stmt *st = st_prepare(s->writer, sql, err);
	if (!st) {
		rc = err ? err->code : STORE_ERR_DB;
	} else {
		sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, size);
		sqlite3_bind_int64(st, 3, mtime_ns);
		sqlite3_bind_int64(st, 4, inode);
		sqlite3_bind_text(st, 5, hex, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? 0 : st_dberr(s->writer->db, rc, err, "write file hash");
		st_done(st);
	}
	return st_write_end(s, rc, err);
}
