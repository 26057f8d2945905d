/*
 * pgstore.h - the catalog's rows in PostgreSQL, over libpq: the second
 * backend behind backend.h (pgstore_ops), for several clipd nodes sharing
 * one catalog. Internal to server/store/.
 *
 *     struct pgstore_params pp = pgstore_default_params();
 *     pgstore *pg = NULL;
 *     if (pgstore_open("postgresql://clipd@db1,db2/clipd?target_session_attrs=read-write",
 *                      &pp, &pg, NULL, &err) != 0)
 *             die("%s", err.msg);
 *     pgstore_ops.get(pg, 42, &img, &err);
 *     pgstore_ops.close(pg);
 *
 * Connections. A libpq connection is not for two threads at once: a pool
 * of at most pp.pool connections, opened when first needed; each call
 * takes one, runs its statements (one transaction for a write) and gives
 * it back; callers beyond the pool wait. A connection found broken is
 * reset (libpq's multi-host URIs then reach whichever server now takes
 * writes). Every statement goes through PQexecParams with its values as
 * parameters; the SQL text is this file's own, never a client's.
 *
 * Every result from the server is checked as hostile input: its status,
 * the number of rows and columns, NULLs, lengths of binary values, and the
 * digits of numbers.
 *
 * Reads from a replica (read_uri, a hot standby): the reads of rows,
 * vectors, originals and the change log take a connection from a second
 * pool (pg_take_read); writes, migrations, models, the latest change
 * number and LISTEN stay on the primary. Read-your-writes: after each
 * write the primary's WAL position is noted, and a read goes to the
 * replica only once the replica has replayed past it
 * (pg_last_wal_replay_lsn, asked only while it is behind); until then, and
 * for REPLICA_RETRY_MS after a failed connection to the replica, reads go
 * to the primary. A replica's change counter behind the index's number is
 * "nothing new yet", not a broken sequence.
 *
 * Migrations. migrations/postgresql/NNNN_name.sql, embedded, applied in
 * order at open under a session advisory lock (nodes starting together
 * migrate once; the others wait, then find the schema current), one
 * transaction each, clipd_schema holding the version.
 *
 * The change sequence. Each write takes its number from the counter row
 * inside its transaction (numbers in commit order, see the migration) and
 * notifies channel PGSTORE_CHANNEL with it on commit.
 */
#ifndef CLIPD_PGSTORE_H
#define CLIPD_PGSTORE_H

#include "backend.h"

#define PGSTORE_CHANNEL "clipd_changes"
#define PGSTORE_POOL 8

typedef struct pgstore pgstore;

struct pgstore_params {
	int readonly;          /* no migrations (a schema behind the binary is refused) */
	int pool;              /* connections at most (PGSTORE_POOL) */
	int lock_timeout_ms;   /* how long a statement waits for a row lock (5000); 0: for ever */
	int connect_timeout_s; /* libpq connect_timeout (10) */
	const char *read_uri;  /* reads from this server (a hot standby), or NULL (copied at open) */
};
struct pgstore_params pgstore_default_params(void);

struct pgstore_open_report {
	int version_before, version_after;
};

int pgstore_open(const char *uri, const struct pgstore_params *p, pgstore **out, struct pgstore_open_report *report,
		 store_error *err);

/* The schema version this binary migrates to. */
int pgstore_schema_latest(void);

extern const struct backend_ops pgstore_ops;

#endif
