/*
 * pgstore_internal.h - shared by pgstore.c (the pool, statements,
 * migrations, models, settings), pgstore_rows.c (images, originals,
 * vectors, the change sequence, selections) and pgstore_ops.c (the
 * operations table) only.
 */
#ifndef CLIPD_PGSTORE_INTERNAL_H
#define CLIPD_PGSTORE_INTERNAL_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>

#include "pgstore.h"

struct pg_pool;

struct pg_conn {
	PGconn *pc;
	struct pg_conn *next;   /* free list */
	struct pg_pool *pool;   /* the pool it goes back to */
	int wrote;              /* a statement changed rows, or met a row another
	                         * transaction committed (unique violation): its
	                         * commit position is noted when it goes back */
};

/* Connections to one server: at most max, opened when first needed. */
struct pg_pool {
	const char *uri;
	int replica;            /* the --catalog-read server's */
	int max;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pg_conn *free_list;
	int n_open;
};

struct pgstore {
	char *uri, *read_uri;   /* read_uri NULL: every read on the primary */
	struct pgstore_params p;
	struct pg_pool primary, replica;
	pthread_mutex_t listen_lock;   /* the LISTEN connection, apart from the pools */
	PGconn *listener;
	/* Read-your-writes with a replica: the primary's WAL position after
	 * this node's latest write, and the latest replay position the replica
	 * showed; a read goes to the replica only when it has replayed past
	 * this node's writes. replica_down_until: after a failed connection to
	 * the replica, reads use the primary until then (monotonic ms). */
	_Atomic uint64_t written_lsn, replica_lsn;
	_Atomic int64_t replica_down_until;
};

/* Take a connection to the primary (opening or resetting one as needed);
 * give it back with pg_give (broken ones are closed). */
int pg_take(pgstore *s, struct pg_conn **out, store_error *err);
/* A connection for a read: the replica's when there is one and it has
 * replayed this node's writes, else the primary's. Give it back with pg_give. */
int pg_take_read(pgstore *s, struct pg_conn **out, store_error *err);
void pg_give(pgstore *s, struct pg_conn *c);

/* Run sql with n text parameters (vals[i] NULL: SQL NULL; lens/binary:
 * NULL for all text, else per parameter), results in binary when
 * binary_out. Returns the result when its status is want
 * (PGRES_TUPLES_OK or PGRES_COMMAND_OK) and, for rows, it has cols
 * columns; else NULL with err set (what names the step) and the result
 * cleared. */
PGresult *pg_run(struct pg_conn *c, const char *sql, int n, const char *const *vals, const int *lens,
		 const int *binary, int binary_out, ExecStatusType want, int cols, const char *what, store_error *err);
/* A command without parameters or rows (BEGIN, COMMIT, ...). */
int pg_cmd(struct pg_conn *c, const char *sql, store_error *err);
/* COMMIT when rc is 0, else ROLLBACK; the final status. */
int pg_end(struct pg_conn *c, int rc, store_error *err);

/* A text column of a checked result as an int64 (all digits, in range):
 * 0, or STORE_ERR_DB naming it. NULL is refused unless null_ok (*out 0). */
int pg_col_i64(const PGresult *r, int row, int col, int null_ok, int64_t *out, store_error *err);
/* A binary int8 column. */
int pg_col_bin_i64(const PGresult *r, int row, int col, int64_t *out, store_error *err);

/* The active model on c (*found 0: none). */
int pg_active_model(struct pg_conn *c, struct store_model *out, int *found, store_error *err);

/* Decimal text of v into buf (24 bytes). */
const char *pg_i64(char buf[24], int64_t v);

/* pgstore.c: the operations on models, settings and the database, for pgstore_ops. */
void pgstore_close(void *db);
int pgs_active_model(void *db, struct store_model *out, int *found, store_error *err);
int pgs_put_model(void *db, const struct store_model *m, store_error *err);
int pgs_set_active_model(void *db, const struct store_model *m, store_error *err);
int pgs_switch_model(void *db, const char *fingerprint, store_error *err);
int pgs_db_bytes(void *db, int64_t *bytes, store_error *err);
int pgs_prune_changes(void *db, uint64_t seq, store_error *err);
store *pgs_hash_cache(void *db);
int pgs_wait_changes(void *db, int timeout_ms, store_error *err);

/* pgstore_rows.c: the rows' operations, for pgstore_ops. */
int pgr_insert(void *db, const struct store_new_image *img, const void *data, size_t len, const float *vec,
	       size_t dim, int64_t *id, uint64_t *seq, store_error *err);
int pgr_delete(void *db, int64_t id, char sha256[STORE_SHA256_HEX], uint64_t *seq, store_error *err);
int pgr_patch_metadata(void *db, int64_t id, const char *patch, size_t len, size_t max_bytes, int max_depth,
		       store_error *err);
int pgr_set_taken_at(void *db, const int64_t *ids, const struct store_taken_at *taken, size_t n, size_t *changed,
		     store_error *err);
int pgr_get(void *db, int64_t id, struct store_image *out, store_error *err);
int pgr_get_by_sha256(void *db, const char *sha256, struct store_image *out, store_error *err);
int pgr_get_many(void *db, const int64_t *ids, size_t n, struct store_image *out, unsigned char *found,
		 store_error *err);
int pgr_sha256_exists(void *db, const char *sha256, store_error *err);
int pgr_list(void *db, const struct store_selection *sel, int64_t before_id, size_t limit, struct store_image **items,
	     size_t *n, store_error *err);
int pgr_count(void *db, int64_t *n, store_error *err);
int pgr_foreach_image(void *db, store_image_fn fn, void *ud, store_error *err);
int pgr_read_original(void *db, const char *sha256, int fd, store_error *err);
int pgr_get_vector(void *db, int64_t id, const char *fingerprint, float *out, size_t dim, store_error *err);
int pgr_put_vectors(void *db, const int64_t *ids, size_t n, const char *fingerprint, const float *vecs, size_t dim,
		    store_error *err);
int pgr_vector_ids(void *db, const char *fingerprint, int64_t after_id, int64_t *ids, size_t max, size_t *n,
		   store_error *err);
int pgr_missing_vectors(void *db, const char *fingerprint, int64_t after_id, int64_t *ids, size_t max, size_t *n,
			store_error *err);
int pgr_count_vectors(void *db, const char *fingerprint, int64_t *n, store_error *err);
int pgr_seq(void *db, uint64_t *seq, store_error *err);
int pgr_load_vectors(void *db, size_t dim, int64_t **ids, float **vecs, size_t *n, uint64_t *seq, store_error *err);
int pgr_changes_since(void *db, uint64_t seq, size_t dim, struct store_changes *out, store_error *err);
int pgr_scan_selection(void *db, const struct store_selection *sel, size_t dim, size_t limit, store_vector_fn fn,
		       void *ud, int *truncated, store_error *err);
int pgr_filter_ids(void *db, const struct store_selection *sel, const int64_t *ids, size_t n, unsigned char *keep,
		   store_error *err);
int pgr_check(void *db, store_problem_fn fn, void *ud, store_error *err);

#endif
