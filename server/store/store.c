/*
 * The SQLite store: migrations, open and close, the size on disk.
 * Connections are in store_conn.c, settings in store_settings.c, models in
 * store_models.c, image rows in store_images.c, vectors and the change log
 * in store_vectors.c, selections in store_select.c, checks in
 * store_check.c. See store.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "assets.h"
#include "store_internal.h"

/* migrations/NNNN_name.sql, embedded by server/store/meson.build. */
extern const struct clipd_asset clipd_migrations[];

/* ---- migrations ------------------------------------------------------------ */

/* The version of a migration file name "NNNN_name.sql", or -1. */
static int migration_version(const char *name)
{
	int v = 0, digits = 0;
	for (; name[digits] >= '0' && name[digits] <= '9'; digits++)
		v = v * 10 + (name[digits] - '0');
	if (digits != 4 || name[4] != '_' || !strstr(name, ".sql"))
		return -1;
	return v;
}

int store_schema_latest(void)
{
	int latest = 0;
	for (const struct clipd_asset *a = clipd_migrations; a->name; a++) {
		int v = migration_version(a->name);
		if (v > latest)
			latest = v;
	}
	return latest;
}

static const struct clipd_asset *migration_find(int version)
{
	for (const struct clipd_asset *a = clipd_migrations; a->name; a++)
		if (migration_version(a->name) == version)
			return a;
	return NULL;
}

static int user_version(struct store_conn *c, int *v, store_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*v = sqlite3_column_int(st, 0);
		rc = 0;
	} else {
		rc = st_dberr(c->db, rc, err, "PRAGMA user_version");
	}
	sqlite3_finalize(st);
	return rc;
}

static int migrate(store *s, struct store_conn *c, struct store_open_report *rep, store_error *err)
{
	int latest = store_schema_latest(), v = 0, rc;
	if ((rc = user_version(c, &v, err)) != 0)
		return rc;
	rep->version_before = rep->version_after = v;
	if (v > latest)
		return store_fail(err, STORE_ERR_SCHEMA,
			       "the database %s has schema version %d, newer than this clipd knows (%d): "
			       "use the clipd that wrote it, or a newer one", s->path, v, latest);
	if (v == latest)
		return 0;
	if (!s->writer)
		return store_fail(err, STORE_ERR_SCHEMA,
			       "the database %s has schema version %d and needs migrating to %d: "
			       "start clipd serve (or clipd index rebuild) on it once", s->path, v, latest);
	for (int next = v + 1; next <= latest; next++) {
		const struct clipd_asset *m = migration_find(next);
		if (!m)
			return store_fail(err, STORE_ERR_SCHEMA, "migration %04d is missing from this build", next);
		if ((rc = st_exec(c, "BEGIN IMMEDIATE", err)) != 0)
			return rc;
		int now = 0;
		if ((rc = user_version(c, &now, err)) == 0 && now < next) {
			char pragma[64];
			snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", next);
			int r = sqlite3_exec(c->db, (const char *)m->data, NULL, NULL, NULL);
			if (r != SQLITE_OK) {
				char what[128];
				snprintf(what, sizeof what, "migration %s", m->name);
				rc = st_dberr(c->db, r, err, what);
			} else {
				rc = st_exec(c, pragma, err);
			}
		}
		if (rc == 0) {
			int r = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
			if (r != SQLITE_OK)
				rc = st_dberr(c->db, r, err, "commit migration");
		}
		if (rc != 0) {
			if (!sqlite3_get_autocommit(c->db))
				sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
		rep->version_after = next;
	}
	return 0;
}

/* ---- open / close ------------------------------------------------------------ */

struct store_params store_default_params(void)
{
	struct store_params p = {
		.readonly = 0,
		.busy_timeout_ms = 5000,
		.max_readers = 16,
	};
	return p;
}

int store_open(const char *path, const struct store_params *p, store **out,
	       struct store_open_report *report, store_error *err)
{
	struct store_open_report rep = { 0, 0 };
	int rc;
	*out = NULL;
	if (!path || !*path)
		return store_fail(err, STORE_ERR_INVALID, "no database path");
	store *s = calloc(1, sizeof *s);
	if (!s || !(s->path = strdup(path))) {
		free(s);
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	}
	s->p = p ? *p : store_default_params();
	if (s->p.busy_timeout_ms <= 0)
		s->p.busy_timeout_ms = 5000;
	if (s->p.max_readers <= 0)
		s->p.max_readers = 16;
	pthread_mutex_init(&s->wlock, NULL);
	pthread_mutex_init(&s->rlock, NULL);
	pthread_cond_init(&s->rcond, NULL);
	pthread_mutex_init(&s->mlock, NULL);

	if (s->p.readonly) {
		struct stat stt;
		if (stat(path, &stt) != 0) {
			rc = store_fail(err, STORE_ERR_IO, "no database at %s: %s", path, strerror(errno));
			goto fail;
		}
		struct store_conn *c = NULL;
		if ((rc = st_reader_get(s, &c, err)) != 0)
			goto fail;
		rc = migrate(s, c, &rep, err);
		st_reader_put(s, c);
		if (rc != 0)
			goto fail;
	} else {
		if ((rc = st_conn_open(s, 1, &s->writer, err)) != 0)
			goto fail;
		if ((rc = migrate(s, s->writer, &rep, err)) != 0)
			goto fail;
		if ((rc = st_metadata_upgrade(s, err)) != 0)
			goto fail;
	}
	if ((rc = st_load_active(s, err)) != 0)
		goto fail;
	if (report)
		*report = rep;
	*out = s;
	return 0;
fail:
	store_close(s);
	return rc;
}

void store_close(store *s)
{
	if (!s)
		return;
	while (s->free_readers) {
		struct store_conn *c = s->free_readers;
		s->free_readers = c->next;
		st_conn_close(c);
	}
	st_conn_close(s->writer);
	pthread_mutex_destroy(&s->wlock);
	pthread_mutex_destroy(&s->rlock);
	pthread_cond_destroy(&s->rcond);
	pthread_mutex_destroy(&s->mlock);
	free(s->path);
	free(s);
}

/* ---- size on disk ------------------------------------------------------------ */

int store_db_bytes(store *s, int64_t *bytes, store_error *err)
{
	(void)err;
	char wal[4200];
	struct stat st;
	int64_t total = 0;
	if (stat(s->path, &st) == 0)
		total += st.st_size;
	snprintf(wal, sizeof wal, "%s-wal", s->path);
	if (stat(wal, &st) == 0)
		total += st.st_size;
	*bytes = total;
	return 0;
}
