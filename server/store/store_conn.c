/*
 * The SQLite store's connections: SQLite errors as statuses, cached
 * statements, the writer connection and the pool of readers, read and
 * write transactions, and the small helpers every store file uses. See
 * store_internal.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

/* ---- errors ------------------------------------------------------------- */

int st_dberr(sqlite3 *db, int rc, store_error *err, const char *what)
{
	int prim = rc & 0xff;
	int sys = db ? sqlite3_system_errno(db) : 0;
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	if (prim == SQLITE_FULL || sys == ENOSPC || sys == EDQUOT)
		return store_fail(err, STORE_ERR_NOSPACE, "no space left on device: %s: %s", what, msg);
	if (prim == SQLITE_NOMEM)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory: %s", what);
	if (prim == SQLITE_IOERR || prim == SQLITE_CANTOPEN)
		return store_fail(err, STORE_ERR_IO, "%s: %s", what, msg);
	return store_fail(err, STORE_ERR_DB, "%s: %s", what, msg);
}

/* ---- small helpers ---------------------------------------------------------- */

int st_appendf(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	if (used >= len)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len - used ? -1 : 0;
}

void st_vec_to_le(const float *v, size_t dim, void *out)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(out, v, dim * sizeof *v);
#else
	unsigned char *o = out;
	for (size_t i = 0; i < dim; i++) {
		uint32_t u;
		memcpy(&u, &v[i], 4);
		for (int b = 0; b < 4; b++)
			o[4 * i + b] = (unsigned char)(u >> (8 * b));
	}
#endif
}

void st_vec_from_le(const void *in, size_t dim, float *out)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(out, in, dim * sizeof *out);
#else
	const unsigned char *p = in;
	for (size_t i = 0; i < dim; i++) {
		uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
			     (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
		memcpy(&out[i], &u, 4);
	}
#endif
}

/* ---- connections ------------------------------------------------------------ */

sqlite3_stmt *st_prepare(struct store_conn *c, const char *sql, store_error *err)
{
	for (int i = 0; i < c->n_cache; i++)
		if (c->cache[i].sql == sql)
			return c->cache[i].st;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		st_dberr(c->db, rc, err, "prepare");
		return NULL;
	}
	if (c->n_cache < STORE_STMT_CACHE) {
		c->cache[c->n_cache].sql = sql;
		c->cache[c->n_cache].st = st;
		c->n_cache++;
		return st;
	}
	/* A full cache is a programming error (too many distinct statements);
	 * evict the oldest rather than fail. */
	sqlite3_finalize(c->cache[0].st);
	memmove(&c->cache[0], &c->cache[1], sizeof c->cache[0] * (STORE_STMT_CACHE - 1));
	c->cache[STORE_STMT_CACHE - 1].sql = sql;
	c->cache[STORE_STMT_CACHE - 1].st = st;
	return st;
}

void st_done(sqlite3_stmt *st)
{
	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

int st_exec(struct store_conn *c, const char *sql, store_error *err)
{
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return st_dberr(c->db, rc, err, sql);
	return 0;
}

int st_exec_id(struct store_conn *c, const char *sql, int64_t id, const char *what, store_error *err)
{
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st)
		return err ? err->code : STORE_ERR_DB;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : st_dberr(c->db, rc, err, what);
	st_done(st);
	return rc;
}

int st_reader_prepare(store *s, const char *sql, struct store_conn **c, sqlite3_stmt **st,
		      store_error *err)
{
	*st = NULL;
	int rc = st_reader_get(s, c, err);
	if (rc != 0)
		return rc;
	if (!(*st = st_prepare(*c, sql, err))) {
		st_reader_put(s, *c);
		*c = NULL;
		return STMT_FAIL(err);
	}
	return 0;
}

void st_reader_end(store *s, struct store_conn *c, sqlite3_stmt *st)
{
	st_done(st);
	st_reader_put(s, c);
}

int st_read_int64(store *s, const char *sql, const char *text, int64_t *out, const char *what,
		  store_error *err)
{
	struct store_conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int rc = st_reader_prepare(s, sql, &c, &st, err);
	if (rc != 0)
		return rc;
	if (text)
		sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 1;
	} else {
		rc = r == SQLITE_DONE ? 0 : st_dberr(c->db, r, err, what);
	}
	st_reader_end(s, c, st);
	return rc;
}

void st_conn_close(struct store_conn *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n_cache; i++)
		sqlite3_finalize(c->cache[i].st);
	sqlite3_close(c->db);
	free(c);
}

int st_conn_open(store *s, int writer, struct store_conn **out, store_error *err)
{
	struct store_conn *c = calloc(1, sizeof *c);
	if (!c)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
	flags |= writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
	int rc = sqlite3_open_v2(s->path, &c->db, flags, NULL);
	if (rc != SQLITE_OK) {
		rc = st_dberr(c->db, rc, err, s->path);
		goto fail;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, s->p.busy_timeout_ms);
	/* Per connection, and outside any transaction (PRAGMA foreign_keys is a
	 * no-op inside one). */
	if ((rc = st_exec(c, "PRAGMA foreign_keys = ON", err)) != 0)
		goto fail;
	if (writer) {
		sqlite3_stmt *st = NULL;
		rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		int wal = rc == SQLITE_ROW && !sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal");
		sqlite3_finalize(st);
		if (!wal) {
			rc = st_dberr(c->db, rc == SQLITE_ROW ? SQLITE_ERROR : rc, err,
				      "cannot switch the database to WAL mode");
			goto fail;
		}
		if ((rc = st_exec(c, "PRAGMA synchronous = FULL", err)) != 0 ||
		    (rc = st_exec(c, "PRAGMA journal_size_limit = 67108864", err)) != 0)
			goto fail;
	} else {
		if ((rc = st_exec(c, "PRAGMA query_only = ON", err)) != 0)
			goto fail;
	}
	*out = c;
	return 0;
fail:
	st_conn_close(c);
	return rc;
}

int st_reader_get(store *s, struct store_conn **out, store_error *err)
{
	pthread_mutex_lock(&s->rlock);
	for (;;) {
		if (s->free_readers) {
			*out = s->free_readers;
			s->free_readers = (*out)->next;
			pthread_mutex_unlock(&s->rlock);
			return 0;
		}
		if (s->n_readers < s->p.max_readers)
			break;
		pthread_cond_wait(&s->rcond, &s->rlock);
	}
	s->n_readers++;
	pthread_mutex_unlock(&s->rlock);
	int rc = st_conn_open(s, 0, out, err);
	if (rc != 0) {
		pthread_mutex_lock(&s->rlock);
		s->n_readers--;
		pthread_cond_signal(&s->rcond);
		pthread_mutex_unlock(&s->rlock);
	}
	return rc;
}

void st_reader_put(store *s, struct store_conn *c)
{
	if (!c)
		return;
	if (!sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_lock(&s->rlock);
	c->next = s->free_readers;
	s->free_readers = c;
	pthread_cond_signal(&s->rcond);
	pthread_mutex_unlock(&s->rlock);
}

int st_read_begin(store *s, struct store_conn **out, store_error *err)
{
	int rc = st_reader_get(s, out, err);
	if (rc != 0)
		return rc;
	if ((rc = st_exec(*out, "BEGIN", err)) != 0) {
		st_reader_put(s, *out);
		*out = NULL;
	}
	return rc;
}

void st_read_end(store *s, struct store_conn *c)
{
	if (c && !sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
	st_reader_put(s, c);
}

int st_write_begin(store *s, store_error *err)
{
	if (!s->writer)
		return store_fail(err, STORE_ERR_INVALID, "the store is open read-only");
	pthread_mutex_lock(&s->wlock);
	int rc = st_exec(s->writer, "BEGIN IMMEDIATE", err);
	if (rc != 0)
		pthread_mutex_unlock(&s->wlock);
	return rc;
}

int st_write_end(store *s, int rc, store_error *err)
{
	sqlite3 *db = s->writer->db;
	if (rc == 0) {
		int r = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		if (r != SQLITE_OK)
			rc = st_dberr(db, r, err, "commit");
	}
	if (rc != 0 && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&s->wlock);
	return rc;
}
