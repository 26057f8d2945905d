/*
 * pgstore_index.c - the approximate index's trained parameters in the
 * PostgreSQL catalog (migrations/postgresql/0003_index_params.sql): one
 * node trains and stores them, every node builds its index from them.
 *
 * The lock is transaction-level, pg_try_advisory_xact_lock(INDEX_LOCK),
 * taken in a transaction on a connection of its own (outside the pool, so
 * a training of minutes holds no pooled connection). The same transaction
 * checks that no newer generation was stored meanwhile, inserts the new
 * one and appends its 'index' change; its commit releases the lock, so a
 * node that gets the lock next sees the row, and no path (an error, a
 * failed training, a lost connection) can leave the lock held: a node
 * killed during its training drops its connection, the server aborts the
 * transaction and the lock is free at once. A session lock would need an
 * unlock on every path and could outlive a failed COMMIT on a pooled
 * connection. The try form makes a node that finds the lock held carry on
 * serving: the trainer's 'index' change reaches it through the sequence.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "pgstore_internal.h"

/* "clipd-ix" in ASCII; the one-key form, apart from the migrations' key. */
#define INDEX_LOCK "7164217038677567864"

#define RUN_FAIL(err) ((err) ? (err)->code : STORE_ERR_DB)

int pgi_index_params(void *db, const char *fingerprint, uint64_t at_seq, struct backend_index_params *out,
		     int *found, store_error *err)
{
	struct pg_conn *c = NULL;
	char s[24];
	memset(out, 0, sizeof *out);
	*found = 0;
	int rc = pg_take_read(db, &c, err);
	if (rc != 0)
		return rc;
	const char *vals[] = { fingerprint, pg_i64(s, (int64_t)at_seq) };
	PGresult *r = pg_run(c, "SELECT generation, factory, trained_n, trained_seq, seq, params FROM index_params "
			     "WHERE model = $1 AND seq <= $2::bigint ORDER BY seq DESC LIMIT 1",
			     2, vals, NULL, NULL, 1, PGRES_TUPLES_OK, 6, "read the index parameters", err);
	if (!r) {
		rc = RUN_FAIL(err);
		goto out;
	}
	if (PQntuples(r) == 0)
		goto out;
	int64_t tseq = 0, seq = 0;
	if ((rc = pg_col_bin_i64(r, 0, 0, &out->generation, err)) != 0 ||
	    (rc = pg_col_bin_i64(r, 0, 2, &out->trained_n, err)) != 0 ||
	    (rc = pg_col_bin_i64(r, 0, 3, &tseq, err)) != 0 || (rc = pg_col_bin_i64(r, 0, 4, &seq, err)) != 0)
		goto out;
	out->trained_seq = (uint64_t)tseq;
	out->seq = (uint64_t)seq;
	int flen = PQgetlength(r, 0, 1);
	if (flen < 1 || flen >= IDX_MAX_FACTORY || out->trained_n < 0) {
		rc = store_fail(err, STORE_ERR_DB, "catalog database: index parameters %lld are damaged",
				(long long)out->generation);
		goto out;
	}
	memcpy(out->factory, PQgetvalue(r, 0, 1), (size_t)flen);
	out->factory[flen] = 0;
	if (!PQgetisnull(r, 0, 5) && PQgetlength(r, 0, 5) > 0) {
		out->len = (size_t)PQgetlength(r, 0, 5);
		if (!(out->params = malloc(out->len))) {
			rc = store_fail(err, STORE_ERR_NOMEM, "out of memory for %zu bytes of index parameters", out->len);
			out->len = 0;
			goto out;
		}
		memcpy(out->params, PQgetvalue(r, 0, 5), out->len);
	}
	*found = 1;
out:
	PQclear(r);
	pg_give(db, c);
	if (rc != 0) {
		free(out->params);
		memset(out, 0, sizeof *out);
		*found = 0;
	}
	return rc;
}

int pgi_store_index_params(void *db, const char *fingerprint, int64_t expect, backend_train_fn train, void *ud,
			   int64_t *generation, uint64_t *seq, store_error *err)
{
	struct pg_conn *c = NULL;
	PGresult *r = NULL;
	void *params = NULL;
	size_t len = 0;
	int64_t latest = 0, gen = 0, trained_n = 0;
	uint64_t trained_seq = 0;
	char type[IDX_MAX_FACTORY] = "";
	*generation = 0;
	*seq = 0;
	int rc = pg_open(db, &c, err);
	if (rc != 0)
		return rc;
	if ((rc = pg_cmd(c, "BEGIN", err)) != 0)
		goto out;
	r = pg_run(c, "SELECT pg_try_advisory_xact_lock(" INDEX_LOCK ")::int", 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK,
		   1, "lock the index training", err);
	int64_t got = 0;
	rc = r ? pg_col_i64(r, 0, 0, 0, &got, err) : RUN_FAIL(err);
	PQclear(r);
	if (rc != 0 || !got)
		goto end;   /* another node trains: its change will come */
	const char *mv[] = { fingerprint };
	r = pg_run(c, "SELECT coalesce(max(generation) FILTER (WHERE model = $1), 0), coalesce(max(generation), 0) "
		   "FROM index_params", 1, mv, NULL, NULL, 0, PGRES_TUPLES_OK, 2, "read the index generations", err);
	if (!r)
		rc = RUN_FAIL(err);
	else if ((rc = pg_col_i64(r, 0, 0, 0, &latest, err)) == 0)
		rc = pg_col_i64(r, 0, 1, 0, &gen, err);
	PQclear(r);
	if (rc != 0 || latest != expect)
		goto end;   /* stored meanwhile: nothing to train */
	if ((rc = train(ud, type, &params, &len, &trained_n, &trained_seq, err)) != 0)
		goto end;
	if (len > INT32_MAX || (len == 0) != (strcmp(type, "Flat") == 0)) {
		rc = store_fail(err, STORE_ERR_INVALID, "index parameters of %zu bytes for %s", len, type);
		goto end;
	}
	gen++;
	if ((rc = pg_append_change(c, "index", gen, seq, err)) != 0)
		goto end;
	char g[24], tn[24], ts[24], sq[24], at[24];
	const char *vals[] = { pg_i64(g, gen), fingerprint, type, pg_i64(tn, trained_n), pg_i64(ts, (int64_t)trained_seq),
			       pg_i64(sq, (int64_t)*seq), len ? params : NULL, pg_i64(at, clock_wall_us()) };
	const int lens[] = { 0, 0, 0, 0, 0, 0, (int)len, 0 }, bin[] = { 0, 0, 0, 0, 0, 0, 1, 0 };
	r = pg_run(c, "INSERT INTO index_params (generation, model, factory, trained_n, trained_seq, seq, params, "
		   "created_at) VALUES ($1::bigint, $2, $3, $4::bigint, $5::bigint, $6::bigint, $7, $8::bigint)",
		   8, vals, lens, bin, 0, PGRES_COMMAND_OK, 0, "store the index parameters", err);
	rc = r ? 0 : RUN_FAIL(err);
	PQclear(r);
end:
	rc = pg_end(c, rc, err);
	if (rc == 0 && *seq) {
		*generation = gen;
		rc = 1;
	} else if (rc != 0) {
		*seq = 0;
	}
out:
	free(params);
	pg_close(c);
	return rc;
}
