/*
 * The PostgreSQL backend: the connection pool, statements and their
 * results checked, migrations under an advisory lock, models, settings and
 * the operations table. The rows are in pgstore_rows.c. See pgstore.h.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "assets.h"
#include "pgstore_internal.h"

/* migrations/postgresql/NNNN_name.sql, embedded by server/store/meson.build. */
extern const struct clipd_asset clipd_pg_migrations[];

/* The advisory lock key of migrations ("clipd-mg" in ASCII). */
#define MIGRATION_LOCK "7164917149917329255"

struct pgstore_params pgstore_default_params(void)
{
	struct pgstore_params p = { .pool = PGSTORE_POOL, .lock_timeout_ms = 5000, .connect_timeout_s = 10 };
	return p;
}

const char *pg_i64(char buf[24], int64_t v)
{
	snprintf(buf, 24, "%lld", (long long)v);
	return buf;
}

/* ---- errors ------------------------------------------------------------------- */

/* The server is gone or cannot take this statement now: the connection
 * broke (a restart, a failover), the server is shutting down or starting
 * (57P01-57P03), a connection-class error (08xxx), or the connection
 * reached a standby for a write (25006, a read-only transaction). The
 * caller answers 503 catalog_unavailable, and the client may retry. */
static int pg_lost(struct pg_conn *c, const char *state)
{
	if (c && c->pc && PQstatus(c->pc) != CONNECTION_OK)
		return 1;
	return state && (!strncmp(state, "08", 2) || !strcmp(state, "57P01") || !strcmp(state, "57P02") ||
			 !strcmp(state, "57P03") || !strcmp(state, "25006"));
}

/* The one translation of a PostgreSQL failure into a store status. */
static int pg_fail(struct pg_conn *c, const PGresult *r, store_error *err, const char *what)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = r ? PQresultErrorMessage(r) : NULL;
	if (!msg || !*msg)
		msg = PQerrorMessage(c->pc);
	if (!msg || !*msg)
		msg = "unknown error";
	int len = (int)strcspn(msg, "\n");
	int code = STORE_ERR_DB;
	if (pg_lost(c, state))
		code = STORE_ERR_UNAVAILABLE;
	else if (state && !strcmp(state, "23505")) {
		code = STORE_ERR_EXISTS;
		c->wrote = 1;   /* another node's row: read it from where it is */
	}
	else if (state && !strncmp(state, "22", 2))
		code = STORE_ERR_INVALID;
	else if (state && !strcmp(state, "53100"))
		code = STORE_ERR_NOSPACE;
	else if (state && !strcmp(state, "53200"))
		code = STORE_ERR_NOMEM;
	return store_fail(err, code, "catalog database: %s: %.*s", what, len, msg);
}

/* ---- the pool --------------------------------------------------------------------- */

static int conn_setup(pgstore *s, struct pg_conn *c, store_error *err)
{
	char sql[128];
	/* Text results as this file parses them, whatever the server's defaults. */
	snprintf(sql, sizeof sql, "SET lock_timeout = %d", s->p.lock_timeout_ms);
	int rc = pg_cmd(c, sql, err);
	if (rc == 0)
		rc = pg_cmd(c, "SET client_encoding = 'UTF8'", err);
	if (rc == 0)
		rc = pg_cmd(c, "SET bytea_output = 'hex'", err);
	return rc;
}

static int conn_open(pgstore *s, const char *uri, struct pg_conn **out, store_error *err)
{
	char timeout[16];
	snprintf(timeout, sizeof timeout, "%d", s->p.connect_timeout_s);
	const char *keys[] = { "dbname", "connect_timeout", "application_name", NULL };
	const char *vals[] = { uri, timeout, "clipd", NULL };
	struct pg_conn *c = calloc(1, sizeof *c);
	if (!c)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	/* expand_dbname: the URI's own settings win over the defaults after it */
	c->pc = PQconnectdbParams(keys, vals, 1);
	if (!c->pc || PQstatus(c->pc) != CONNECTION_OK) {
		const char *m = c->pc ? PQerrorMessage(c->pc) : "out of memory";
		int rc = store_fail(err, STORE_ERR_UNAVAILABLE, "catalog database: cannot connect: %.*s",
				    (int)strcspn(m, "\n"), m);
		PQfinish(c->pc);
		free(c);
		return rc;
	}
	int rc = conn_setup(s, c, err);
	if (rc != 0) {
		PQfinish(c->pc);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

static void pool_init(struct pg_pool *pl, const char *uri, int replica, int max)
{
	pl->uri = uri;
	pl->replica = replica;
	pl->max = max;
	pthread_mutex_init(&pl->lock, NULL);
	pthread_cond_init(&pl->cond, NULL);
}

static void pool_close(struct pg_pool *pl)
{
	while (pl->free_list) {
		struct pg_conn *c = pl->free_list;
		pl->free_list = c->next;
		PQfinish(c->pc);
		free(c);
	}
	pthread_mutex_destroy(&pl->lock);
	pthread_cond_destroy(&pl->cond);
}

static int pool_take(pgstore *s, struct pg_pool *pl, struct pg_conn **out, store_error *err)
{
	pthread_mutex_lock(&pl->lock);
	for (;;) {
		if (pl->free_list) {
			struct pg_conn *c = pl->free_list;
			pl->free_list = c->next;
			pthread_mutex_unlock(&pl->lock);
			c->next = NULL;
			if (PQstatus(c->pc) == CONNECTION_OK) {
				*out = c;
				return 0;
			}
			/* Broken (the server restarted, or failed over): a new one. */
			PQfinish(c->pc);
			free(c);
			pthread_mutex_lock(&pl->lock);
			pl->n_open--;
			continue;
		}
		if (pl->n_open < pl->max) {
			pl->n_open++;
			pthread_mutex_unlock(&pl->lock);
			int rc = conn_open(s, pl->uri, out, err);
			if (rc != 0) {
				pthread_mutex_lock(&pl->lock);
				pl->n_open--;
				pthread_cond_signal(&pl->cond);
				pthread_mutex_unlock(&pl->lock);
			} else {
				(*out)->pool = pl;
			}
			return rc;
		}
		pthread_cond_wait(&pl->cond, &pl->lock);
	}
}

int pg_take(pgstore *s, struct pg_conn **out, store_error *err)
{
	return pool_take(s, &s->primary, out, err);
}

/* A WAL position ("16/B374D848") as a number; 0 for NULL or a bad one. */
static uint64_t lsn_value(const PGresult *r)
{
	if (!r || PQntuples(r) != 1 || PQgetisnull(r, 0, 0))
		return 0;
	unsigned hi = 0, lo = 0;
	char tail;
	if (sscanf(PQgetvalue(r, 0, 0), "%8X/%8X%c", &hi, &lo, &tail) != 2)
		return 0;
	return (uint64_t)hi << 32 | lo;
}

static void atomic_max(_Atomic uint64_t *v, uint64_t x)
{
	uint64_t cur = atomic_load(v);
	while (cur < x && !atomic_compare_exchange_weak(v, &cur, x))
		;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After a failed connection to the replica, reads use the primary this long. */
#define REPLICA_RETRY_MS 5000

int pg_take_read(pgstore *s, struct pg_conn **out, store_error *err)
{
	if (!s->read_uri || mono_ms() < atomic_load(&s->replica_down_until))
		return pg_take(s, out, err);
	uint64_t want = atomic_load(&s->written_lsn);
	if (want == UINT64_MAX) {
		/* a write whose position could not be read: the primary's
		 * position now is past it */
		struct pg_conn *p = NULL;
		if (pg_take(s, &p, NULL) == 0) {
			PGresult *r = PQexec(p->pc, "SELECT pg_current_wal_lsn()");
			uint64_t now = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) == 1 ? lsn_value(r) : 0;
			PQclear(r);
			pg_give(s, p);
			if (now && atomic_compare_exchange_strong(&s->written_lsn, &want, now))
				want = now;
		}
		if (want == UINT64_MAX)
			return pg_take(s, out, err);
	}
	if (pool_take(s, &s->replica, out, NULL) != 0) {
		/* the replica is out of reach: the primary answers meanwhile */
		atomic_store(&s->replica_down_until, mono_ms() + REPLICA_RETRY_MS);
		return pg_take(s, out, err);
	}
	if (want <= atomic_load(&s->replica_lsn))
		return 0;
	/* This node wrote since the replica last showed where it is: ask. */
	PGresult *r = PQexec((*out)->pc, "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
			     "ELSE pg_current_wal_lsn() END");
	int ok = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) == 1;
	if (ok)
		atomic_max(&s->replica_lsn, lsn_value(r));
	PQclear(r);
	if (ok && want <= atomic_load(&s->replica_lsn))
		return 0;
	if (!ok && PQstatus((*out)->pc) != CONNECTION_OK)
		atomic_store(&s->replica_down_until, mono_ms() + REPLICA_RETRY_MS);
	/* not there yet: this node's own recent writes are read from the primary */
	pg_give(s, *out);
	*out = NULL;
	return pg_take(s, out, err);
}

void pg_give(pgstore *s, struct pg_conn *c)
{
	if (!c)
		return;
	struct pg_pool *pl = c->pool;
	if (c->wrote && s->read_uri && !pl->replica && PQstatus(c->pc) == CONNECTION_OK &&
	    PQtransactionStatus(c->pc) == PQTRANS_IDLE) {
		/* where the primary's WAL is now: past this write's commit */
		PGresult *r = PQexec(c->pc, "SELECT pg_current_wal_lsn()");
		if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) == 1)
			atomic_max(&s->written_lsn, lsn_value(r));
		else   /* unknown: reads go to the primary until the next look (pg_take_read) */
			atomic_store(&s->written_lsn, UINT64_MAX);
		PQclear(r);
	}
	c->wrote = 0;
	pthread_mutex_lock(&pl->lock);
	if (PQstatus(c->pc) == CONNECTION_OK && PQtransactionStatus(c->pc) == PQTRANS_IDLE) {
		c->next = pl->free_list;
		pl->free_list = c;
	} else {
		/* Broken: the server restarted or failed over, and then the idle
		 * connections are broken too (each would fail one call): drop
		 * them, the next calls open new ones. */
		if (PQstatus(c->pc) != CONNECTION_OK) {
			while (pl->free_list) {
				struct pg_conn *f = pl->free_list;
				pl->free_list = f->next;
				PQfinish(f->pc);
				free(f);
				pl->n_open--;
			}
		}
		PQfinish(c->pc);
		free(c);
		pl->n_open--;
	}
	pthread_cond_broadcast(&pl->cond);
	pthread_mutex_unlock(&pl->lock);
}

/* ---- statements ------------------------------------------------------------------ */

PGresult *pg_run(struct pg_conn *c, const char *sql, int n, const char *const *vals, const int *lens,
		 const int *binary, int binary_out, ExecStatusType want, int cols, const char *what, store_error *err)
{
	PGresult *r = PQexecParams(c->pc, sql, n, NULL, vals, lens, binary, binary_out);
	if (!r) {
		pg_fail(c, NULL, err, what);
		return NULL;
	}
	if (PQresultStatus(r) != want) {
		pg_fail(c, r, err, what);
		PQclear(r);
		return NULL;
	}
	/* rows inserted, updated or deleted: the read-your-writes position */
	const char *cmd = PQcmdStatus(r), *changed = PQcmdTuples(r);
	if (cmd && (!strncmp(cmd, "INSERT ", 7) || !strncmp(cmd, "UPDATE ", 7) || !strncmp(cmd, "DELETE ", 7)) &&
	    changed && *changed && strcmp(changed, "0"))
		c->wrote = 1;
	if (want == PGRES_TUPLES_OK && PQnfields(r) != cols) {
		store_fail(err, STORE_ERR_DB, "catalog database: %s: %d columns, expected %d", what, PQnfields(r), cols);
		PQclear(r);
		return NULL;
	}
	return r;
}

int pg_cmd(struct pg_conn *c, const char *sql, store_error *err)
{
	PGresult *r = pg_run(c, sql, 0, NULL, NULL, NULL, 0, PGRES_COMMAND_OK, 0, sql, err);
	if (!r)
		return err ? err->code : STORE_ERR_DB;
	PQclear(r);
	return 0;
}

int pg_end(struct pg_conn *c, int rc, store_error *err)
{
	if (rc == 0)
		return pg_cmd(c, "COMMIT", err);
	pg_cmd(c, "ROLLBACK", NULL);
	return rc;
}

int pg_col_i64(const PGresult *r, int row, int col, int null_ok, int64_t *out, store_error *err)
{
	*out = 0;
	if (row >= PQntuples(r) || col >= PQnfields(r))
		return store_fail(err, STORE_ERR_DB, "catalog database: a row or column is missing");
	if (PQgetisnull(r, row, col))
		return null_ok ? 0 : store_fail(err, STORE_ERR_DB, "catalog database: column %d is NULL", col);
	const char *v = PQgetvalue(r, row, col);
	char *end = NULL;
	if (!*v || strlen(v) > 20)
		return store_fail(err, STORE_ERR_DB, "catalog database: column %d is not a number", col);
	long long x = strtoll(v, &end, 10);
	if (*end)
		return store_fail(err, STORE_ERR_DB, "catalog database: column %d is not a number", col);
	*out = x;
	return 0;
}

int pg_col_bin_i64(const PGresult *r, int row, int col, int64_t *out, store_error *err)
{
	*out = 0;
	if (row >= PQntuples(r) || PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
		return store_fail(err, STORE_ERR_DB, "catalog database: column %d is not an int8", col);
	const unsigned char *b = (const unsigned char *)PQgetvalue(r, row, col);
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	*out = (int64_t)v;
	return 0;
}

/* ---- migrations ---------------------------------------------------------------------- */

int pgstore_schema_latest(void)
{
	int latest = 0;
	for (const struct clipd_asset *a = clipd_pg_migrations; a->name; a++)
		if (clipd_migration_version(a->name) > latest)
			latest = clipd_migration_version(a->name);
	return latest;
}

static int schema_version(struct pg_conn *c, int *v, store_error *err)
{
	*v = 0;
	PGresult *r = pg_run(c, "SELECT to_regclass('clipd_schema') IS NOT NULL", 0, NULL, NULL, NULL, 0,
			     PGRES_TUPLES_OK, 1, "read the schema version", err);
	if (!r)
		return err ? err->code : STORE_ERR_DB;
	int have = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	if (!have)
		return 0;
	if (!(r = pg_run(c, "SELECT max(version) FROM clipd_schema", 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, 1,
			 "read the schema version", err)))
		return err ? err->code : STORE_ERR_DB;
	int64_t x = 0;
	int rc = PQntuples(r) == 1 ? pg_col_i64(r, 0, 0, 1, &x, err)
				   : store_fail(err, STORE_ERR_DB, "catalog database: no schema version");
	PQclear(r);
	if (rc == 0 && (x < 0 || x > 9999))
		rc = store_fail(err, STORE_ERR_DB, "catalog database: schema version %lld", (long long)x);
	*v = (int)x;
	return rc;
}

static int apply(struct pg_conn *c, const struct clipd_asset *a, int v, store_error *err)
{
	char *sql = malloc(a->len + 1), ver[24];
	if (!sql)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	memcpy(sql, a->data, a->len);
	sql[a->len] = 0;
	int rc = pg_cmd(c, "BEGIN", err);
	if (rc == 0) {
		/* our own file's statements, several in one text: the simple protocol */
		PGresult *r = PQexec(c->pc, sql);
		if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
			rc = pg_fail(c, r, err, a->name);
		PQclear(r);
	}
	if (rc == 0)
		rc = pg_cmd(c, "CREATE TABLE IF NOT EXISTS clipd_schema (version integer NOT NULL)", err);
	if (rc == 0) {
		const char *vals[] = { pg_i64(ver, v) };
		PGresult *r = pg_run(c, "INSERT INTO clipd_schema (version) VALUES ($1::integer)", 1, vals, NULL, NULL,
				     0, PGRES_COMMAND_OK, 0, "record the schema version", err);
		rc = r ? 0 : err ? err->code : STORE_ERR_DB;
		PQclear(r);
	}
	free(sql);
	return pg_end(c, rc, err);
}

static int migrate(pgstore *s, struct pgstore_open_report *rep, store_error *err)
{
	struct pg_conn *c = NULL;
	int rc = pg_take(s, &c, err), v = 0;
	if (rc != 0)
		return rc;
	int latest = pgstore_schema_latest();
	/* Nodes starting together: one migrates, the others wait here and
	 * then find the schema current. */
	if (!s->p.readonly) {
		PGresult *r = pg_run(c, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")", 0, NULL, NULL, NULL, 0,
				     PGRES_TUPLES_OK, 1, "take the migration lock", err);
		rc = r ? 0 : err ? err->code : STORE_ERR_DB;
		PQclear(r);
		if (rc != 0)
			goto out;
	}
	if ((rc = schema_version(c, &v, err)) != 0)
		goto unlock;
	rep->version_before = v;
	if (v > latest) {
		rc = store_fail(err, STORE_ERR_SCHEMA, "the catalog database has schema version %d, newer than this "
				"clipd's %d: upgrade clipd", v, latest);
		goto unlock;
	}
	if (v < latest && s->p.readonly) {
		rc = store_fail(err, STORE_ERR_SCHEMA, "the catalog database has schema version %d, older than this "
				"clipd's %d: start clipd serve on it once", v, latest);
		goto unlock;
	}
	for (int next = v + 1; next <= latest && rc == 0; next++) {
		const struct clipd_asset *a = NULL;
		for (const struct clipd_asset *m = clipd_pg_migrations; m->name && !a; m++)
			if (clipd_migration_version(m->name) == next)
				a = m;
		rc = a ? apply(c, a, next, err)
		       : store_fail(err, STORE_ERR_SCHEMA, "no PostgreSQL migration %04d in this build", next);
		if (rc == 0)
			v = next;
	}
	rep->version_after = v;
unlock:
	if (!s->p.readonly) {
		PGresult *r = PQexec(c->pc, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")");
		PQclear(r);
	}
out:
	pg_give(s, c);
	return rc;
}

/* ---- open, close ------------------------------------------------------------------- */

void pgstore_close(void *db)
{
	pgstore *s = db;
	if (!s)
		return;
	pool_close(&s->primary);
	pool_close(&s->replica);
	PQfinish(s->listener);
	pthread_mutex_destroy(&s->listen_lock);
	free(s->uri);
	free(s->read_uri);
	free(s);
}

int pgstore_open(const char *uri, const struct pgstore_params *p, pgstore **out, struct pgstore_open_report *report,
		 store_error *err)
{
	struct pgstore_open_report rep = { 0, 0 };
	*out = NULL;
	if (!uri || !*uri)
		return store_fail(err, STORE_ERR_INVALID, "no catalog URI given");
	if (strncmp(uri, "postgresql://", 13) && strncmp(uri, "postgres://", 11))
		return store_fail(err, STORE_ERR_INVALID, "the catalog URI must start with postgresql://");
	pgstore *s = calloc(1, sizeof *s);
	if (!s || !(s->uri = strdup(uri))) {
		free(s);
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	}
	s->p = p ? *p : pgstore_default_params();
	if (s->p.pool <= 0)
		s->p.pool = PGSTORE_POOL;
	if (s->p.connect_timeout_s <= 0)
		s->p.connect_timeout_s = 10;
	if (s->p.lock_timeout_ms < 0)
		s->p.lock_timeout_ms = 0;
	if (p && p->read_uri && *p->read_uri) {
		if (strncmp(p->read_uri, "postgresql://", 13) && strncmp(p->read_uri, "postgres://", 11)) {
			free(s->uri);
			free(s);
			return store_fail(err, STORE_ERR_INVALID, "the catalog read URI must start with postgresql://");
		}
		if (!(s->read_uri = strdup(p->read_uri))) {
			free(s->uri);
			free(s);
			return store_fail(err, STORE_ERR_NOMEM, "out of memory");
		}
	}
	s->p.read_uri = NULL;   /* s->read_uri is the copy */
	pool_init(&s->primary, s->uri, 0, s->p.pool);
	pool_init(&s->replica, s->read_uri, 1, s->p.pool);
	atomic_init(&s->written_lsn, 0);
	atomic_init(&s->replica_lsn, 0);
	atomic_init(&s->replica_down_until, 0);
	pthread_mutex_init(&s->listen_lock, NULL);
	int rc = migrate(s, &rep, err);
	if (rc != 0) {
		pgstore_close(s);
		return rc;
	}
	if (report)
		*report = rep;
	*out = s;
	return 0;
}

/* ---- models and settings ------------------------------------------------------------- */

static int model_from(const PGresult *r, int row, struct store_model *m, store_error *err)
{
	int64_t dim = 0;
	memset(m, 0, sizeof *m);
	int rc = pg_col_i64(r, row, 2, 0, &dim, err);
	if (rc != 0)
		return rc;
	const char *fp = PQgetvalue(r, row, 0), *name = PQgetvalue(r, row, 1), *layout = PQgetvalue(r, row, 3);
	if (strlen(fp) != 64 || dim <= 0 || dim > 65536)
		return store_fail(err, STORE_ERR_DB, "catalog database: a bad model row");
	memcpy(m->fingerprint, fp, 65);
	snprintf(m->name, sizeof m->name, "%s", name);
	snprintf(m->layout, sizeof m->layout, "%s", layout);
	m->dim = (size_t)dim;
	return 0;
}

int pg_active_model(struct pg_conn *c, struct store_model *out, int *found, store_error *err)
{
	*found = 0;
	PGresult *r = pg_run(c, "SELECT m.fingerprint, m.name, m.dim, m.layout FROM models m JOIN settings s "
			     "ON s.key = 'active_model' AND s.value = m.fingerprint", 0, NULL, NULL, NULL, 0,
			     PGRES_TUPLES_OK, 4, "read the active model", err);
	if (!r)
		return err ? err->code : STORE_ERR_DB;
	int rc = 0;
	if (PQntuples(r) == 1 && (rc = model_from(r, 0, out, err)) == 0)
		*found = 1;
	PQclear(r);
	return rc;
}

int pgs_active_model(void *db, struct store_model *out, int *found, store_error *err)
{
	struct pg_conn *c = NULL;
	int rc = pg_take(db, &c, err);
	if (rc == 0)
		rc = pg_active_model(c, out, found, err);
	pg_give(db, c);
	return rc;
}

static int put_model(struct pg_conn *c, const struct store_model *m, store_error *err)
{
	char dim[24], now[24];
	const char *vals[] = { m->fingerprint, m->name, pg_i64(dim, (int64_t)m->dim), m->layout, pg_i64(now, 0) };
	PGresult *r = pg_run(c, "INSERT INTO models (fingerprint, name, dim, layout, created_at) VALUES "
			     "($1, $2, $3::integer, $4, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + $5::bigint) "
			     "ON CONFLICT (fingerprint) DO UPDATE SET name = $2, dim = $3::integer, layout = $4",
			     5, vals, NULL, NULL, 0, PGRES_COMMAND_OK, 0, "record the model", err);
	PQclear(r);
	return r ? 0 : err ? err->code : STORE_ERR_DB;
}

int pgs_put_model(void *db, const struct store_model *m, store_error *err)
{
	struct pg_conn *c = NULL;
	int rc = pg_take(db, &c, err);
	if (rc == 0)
		rc = put_model(c, m, err);
	pg_give(db, c);
	return rc;
}

int pgs_set_active_model(void *db, const struct store_model *m, store_error *err)
{
	struct pg_conn *c = NULL;
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	if ((rc = pg_cmd(c, "BEGIN", err)) == 0 && (rc = put_model(c, m, err)) == 0) {
		const char *vals[] = { m->fingerprint };
		PGresult *r = pg_run(c, "INSERT INTO settings (key, value) VALUES ('active_model', $1) "
				     "ON CONFLICT (key) DO UPDATE SET value = $1", 1, vals, NULL, NULL, 0,
				     PGRES_COMMAND_OK, 0, "set the active model", err);
		rc = r ? 0 : err ? err->code : STORE_ERR_DB;
		PQclear(r);
	}
	rc = pg_end(c, rc, err);
	pg_give(db, c);
	return rc;
}

int pgs_switch_model(void *db, const char *fingerprint, store_error *err)
{
	static const char *const steps[] = {
		"SELECT 1 FROM models WHERE fingerprint = $1 AND NOT EXISTS (SELECT 1 FROM images i WHERE NOT EXISTS "
		"(SELECT 1 FROM vectors v WHERE v.image_id = i.id AND v.model = $1))",
		"INSERT INTO settings (key, value) VALUES ('active_model', $1) ON CONFLICT (key) DO UPDATE SET value = $1",
		"DELETE FROM vectors WHERE model <> $1",
		"WITH n AS (UPDATE clipd_counter SET seq = seq + 1 RETURNING seq) "
		"INSERT INTO changes (seq, op, image_id) SELECT seq, 'reset', 0 FROM n WHERE $1::text IS NOT NULL",
	};
	struct pg_conn *c = NULL;
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	rc = pg_cmd(c, "BEGIN", err);
	for (size_t i = 0; i < sizeof steps / sizeof *steps && rc == 0; i++) {
		const char *vals[] = { fingerprint };
		PGresult *r = pg_run(c, steps[i], 1, vals, NULL, NULL, 0, i == 0 ? PGRES_TUPLES_OK : PGRES_COMMAND_OK,
				     1, "switch the model", err);
		if (!r)
			rc = err ? err->code : STORE_ERR_DB;
		else if (i == 0 && PQntuples(r) != 1)
			rc = store_fail(err, STORE_ERR_MODEL, "model %.12s is not recorded or some images have no "
					"vector of it", fingerprint);
		PQclear(r);
	}
	rc = pg_end(c, rc, err);
	pg_give(db, c);
	return rc;
}

int pgs_db_bytes(void *db, int64_t *bytes, store_error *err)
{
	struct pg_conn *c = NULL;
	*bytes = 0;
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	PGresult *r = pg_run(c, "SELECT pg_database_size(current_database())", 0, NULL, NULL, NULL, 0,
			     PGRES_TUPLES_OK, 1, "database size", err);
	rc = !r ? (err ? err->code : STORE_ERR_DB) : pg_col_i64(r, 0, 0, 0, bytes, err);
	PQclear(r);
	pg_give(db, c);
	return rc;
}

/* The log is small rows (three numbers): kept whole, so that a node whose
 * snapshot is old can still replay from it. */
int pgs_prune_changes(void *db, uint64_t seq, store_error *err)
{
	(void)db;
	(void)seq;
	(void)err;
	return 0;
}

store *pgs_hash_cache(void *db)
{
	(void)db;
	return NULL;
}

/* ---- word of changes ------------------------------------------------------------------ */

/* Drain the notifications that arrived; 1 if there were any. */
static int drain(PGconn *pc)
{
	int got = 0;
	PGnotify *n;
	while ((n = PQnotifies(pc)) != NULL) {
		got = 1;
		PQfreemem(n);
	}
	return got;
}

int pgs_wait_changes(void *db, int timeout_ms, store_error *err)
{
	pgstore *s = db;
	int rc = 0;
	pthread_mutex_lock(&s->listen_lock);
	if (s->listener && PQstatus(s->listener) != CONNECTION_OK) {
		PQfinish(s->listener);
		s->listener = NULL;
	}
	if (!s->listener) {
		struct pg_conn *c = NULL;
		if ((rc = conn_open(s, s->uri, &c, err)) != 0)
			goto out;
		s->listener = c->pc;
		free(c);
		PGresult *r = PQexec(s->listener, "LISTEN " PGSTORE_CHANNEL);
		if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
			const char *m = PQerrorMessage(s->listener);
			rc = store_fail(err, STORE_ERR_DB, "catalog database: LISTEN: %.*s", (int)strcspn(m, "\n"), m);
			PQclear(r);
			PQfinish(s->listener);
			s->listener = NULL;
			goto out;
		}
		PQclear(r);
		rc = 1;   /* newly listening: whatever came before is for the caller to catch up on */
		goto out;
	}
	if (PQconsumeInput(s->listener) && drain(s->listener)) {
		rc = 1;
		goto out;
	}
	struct pollfd pfd = { .fd = PQsocket(s->listener), .events = POLLIN };
	if (pfd.fd < 0) {
		rc = store_fail(err, STORE_ERR_DB, "catalog database: the LISTEN connection has no socket");
		goto out;
	}
	int pr = poll(&pfd, 1, timeout_ms);
	if (pr < 0 && errno != EINTR) {
		rc = store_fail(err, STORE_ERR_IO, "poll: %s", strerror(errno));
	} else if (pr > 0) {
		if (!PQconsumeInput(s->listener)) {
			const char *m = PQerrorMessage(s->listener);
			rc = store_fail(err, STORE_ERR_DB, "catalog database: %.*s", (int)strcspn(m, "\n"), m);
		} else {
			rc = drain(s->listener);
		}
	}
out:
	pthread_mutex_unlock(&s->listen_lock);
	return rc;
}
