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

int store_schema_latest(void)
{
	int latest = 0;
	for (const struct clipd_asset *a = clipd_migrations; a->name; a++) {
		int v = clipd_migration_version(a->name);
		if (v > latest)
			latest = v;
	}
	return latest;
}

static const struct clipd_asset *migration_find(int version)
{
	for (const struct clipd_asset *a = clipd_migrations; a->name; a++)
		if (clipd_migration_version(a->name) == version)
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

/* The versions of migrations skipped because this build lacked them when
 * a later one was applied (settings 'migrations_skipped': "2,5"). A
 * migration that arrives after a higher-numbered one (two branches
 * numbered theirs apart) is applied at the next open; such migrations
 * must not depend on each other's order. */
#define MAX_SKIPPED 32

static int skipped_read(struct store_conn *c, int v, int *out, int *n, store_error *err)
{
	*n = 0;
	if (v < 1)
		return 0;   /* no settings table yet */
	char *text = NULL;
	int rc = st_setting_get(c, "migrations_skipped", &text, err);
	if (rc != 0 || !text)
		return rc;
	for (char *p = text; *p && *n < MAX_SKIPPED;) {
		char *end;
		long x = strtol(p, &end, 10);
		if (end == p || x < 1 || x > 9999)
			break;
		out[(*n)++] = (int)x;
		p = *end == ',' ? end + 1 : end;
	}
	free(text);
	return 0;
}

static int skipped_has(const int *list, int n, int version)
{
	for (int i = 0; i < n; i++)
		if (list[i] == version)
			return 1;
	return 0;
}

/* Run migration m in a transaction; then user_version is new_version and
 * the skipped list is list[0..n). */
static int apply_migration(struct store_conn *c, const struct clipd_asset *m, int new_version,
			   const int *list, int n, store_error *err)
{
	int rc = st_exec(c, "BEGIN IMMEDIATE", err);
	if (rc != 0)
		return rc;
	int r = sqlite3_exec(c->db, (const char *)m->data, NULL, NULL, NULL);
	if (r != SQLITE_OK) {
		char what[128];
		snprintf(what, sizeof what, "migration %s", m->name);
		rc = st_dberr(c->db, r, err, what);
	}
	if (rc == 0 && (n > 0 || new_version > 1)) {
		char text[MAX_SKIPPED * 6 + 1] = "";
		for (int i = 0; i < n; i++)
			st_appendf(text, sizeof text, "%s%d", i ? "," : "", list[i]);
		rc = n ? st_setting_set(c, "migrations_skipped", text, err)
		       : st_exec(c, "DELETE FROM settings WHERE key = 'migrations_skipped'", err);
	}
	if (rc == 0) {
		char pragma[64];
		snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", new_version);
		rc = st_exec(c, pragma, err);
	}
	if (rc == 0 && (r = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
		rc = st_dberr(c->db, r, err, "commit migration");
	if (rc != 0 && !sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int migrate(store *s, struct store_conn *c, struct store_open_report *rep, store_error *err)
{
	int latest = store_schema_latest(), v = 0, rc;
	int skipped[MAX_SKIPPED], n_skipped = 0;
	if ((rc = user_version(c, &v, err)) != 0)
		return rc;
	rep->version_before = rep->version_after = v;
	if (v > latest)
		return store_fail(err, STORE_ERR_SCHEMA,
			       "the database %s has schema version %d, newer than this clipd knows (%d): "
			       "use the clipd that wrote it, or a newer one", s->path, v, latest);
	if ((rc = skipped_read(c, v, skipped, &n_skipped, err)) != 0)
		return rc;
	int late = 0;   /* skipped earlier, embedded now */
	for (int i = 0; i < n_skipped; i++)
		late += migration_find(skipped[i]) != NULL;
	if (v == latest && !late)
		return 0;
	if (!s->writer)
		return store_fail(err, STORE_ERR_SCHEMA,
			       "the database %s has schema version %d and needs migrating to %d: "
			       "start clipd serve (or clipd index rebuild) on it once", s->path, v, latest);
	for (int next = 1; next <= latest; next++) {
		int was_skipped = skipped_has(skipped, n_skipped, next);
		if (next <= v && !was_skipped)
			continue;
		const struct clipd_asset *m = migration_find(next);
		if (!m) {
			if (was_skipped)
				continue;
			if (n_skipped == MAX_SKIPPED)
				return store_fail(err, STORE_ERR_SCHEMA, "migration %04d is missing from this build", next);
			skipped[n_skipped++] = next;   /* recorded with the next one applied */
			continue;
		}
		int list[MAX_SKIPPED], n = 0;
		for (int i = 0; i < n_skipped; i++)
			if (skipped[i] != next)
				list[n++] = skipped[i];
		int now = next > v ? next : v;
		if ((rc = apply_migration(c, m, now, list, n, err)) != 0)
			return rc;
		memcpy(skipped, list, (size_t)n * sizeof *list);
		n_skipped = n;
		v = now;
		rep->version_after = now;
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
