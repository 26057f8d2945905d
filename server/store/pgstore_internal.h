/*
 * pgstore_internal.h - shared by pgstore.c (the pool, statements,
 * migrations, models, settings), pgstore_rows.c (images, originals,
 * vectors, the change sequence, selections), pgstore_copy.c (clipd
 * catalog copy's rows) and pgstore_ops.c (the operations table) only.
 */
#ifndef CLIPD_PGSTORE_INTERNAL_H
#define CLIPD_PGSTORE_INTERNAL_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>

#include "dbuf.h"
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

/* A connection of its own, outside the pool (a session that holds an
 * advisory lock); pg_close closes it. */
int pg_open(pgstore *s, struct pg_conn **out, store_error *err);
void pg_close(struct pg_conn *c);

/* per filter: its path's segments, its values, and up to four documents
 * for the index on meta (pgstore_rows.c, containment_sql) */
#define SEL_MAX_PARAMS (16 + STORE_MAX_FILTERS * (STORE_MAX_FILTER_DEPTH + 1 + 4))

/* A statement under construction: its text and its parameters. */
struct pg_stmt {
	struct dbuf sql;
	const char *vals[SEL_MAX_PARAMS];
	char *own[SEL_MAX_PARAMS];   /* values this struct allocated */
	int n;
};
void pg_stmt_free(struct pg_stmt *q);
/* Add a parameter (copied); its number ($n), or -1. */
int pg_param(struct pg_stmt *q, const char *v, size_t len);
/* The statement of a filtered scan (pgr_scan_selection): the id and the
 * vector of the active model of each image sel selects, by id, at most
 * limit + 1 of them (0: all). */
int pg_scan_selection_sql(struct pg_stmt *q, const struct store_selection *sel, size_t limit, store_error *err);
int pg_param_i64(struct pg_stmt *q, int64_t v);
/* Append sel's conditions (" AND ...") over images i (NULL: none). */
int pg_selection_sql(struct pg_stmt *q, const struct store_selection *sel, store_error *err);

/* Inside a write transaction: the next number of the change sequence for
 * (op, id), notified on commit. */
int pg_append_change(struct pg_conn *c, const char *op, int64_t id, uint64_t *seq, store_error *err);
/* Inside a write transaction that changed image rows in place (metadata,
 * a capture time, a library source; no add or remove): a number of the
 * change sequence with no log entry, notified on commit. A node that
 * applies a number without a logged change drops its cached rows
 * (store_changes.touched). */
int pg_touch_rows(struct pg_conn *c, store_error *err);
/* Inside a write transaction: delete image id (its library paths ignored
 * from now on, its original in the catalog too), and append its "remove". */
int pg_delete_image(struct pg_conn *c, int64_t id, char sha256[STORE_SHA256_HEX], uint64_t *seq, store_error *err);
/* 1 when s is UTF-8 (PostgreSQL's text refuses anything else). */
int pg_valid_utf8(const char *s);
/* dim floats as float32 little-endian into out (4 * dim bytes). */
void pg_vec_to_le(const float *v, size_t dim, unsigned char *out);

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

/* pgstore_keywords.c: keyword search (store.h's contract, the ranking in README). */
int pgk_keyword_search(void *db, const char *words, const char *not_words, const struct store_selection *sel,
		       size_t k, int64_t *ids, float *scores, size_t *n, store_error *err);

/* pgstore_libraries.c: libraries (store.h's contracts), and the lock that
 * lets one node at a time scan a library (backend.h). */
int pgl_library_put(void *db, const char *name, const char *root, store_error *err);
int pgl_library_get(void *db, const char *name, struct store_library *out, store_error *err);
int pgl_library_scan_begin(void *db, const char *name, int64_t *scan, store_error *err);
int pgl_library_lock(void *db, const char *name, void **lock, store_error *err);
void pgl_library_unlock(void *db, void *lock);
int pgl_file_get(void *db, const char *lib, const char *path, struct store_lib_file *out, store_error *err);
int pgl_files_get(void *db, const char *lib, const char *const *paths, size_t n, struct store_lib_file *out,
		  unsigned char *found, store_error *err);
int pgl_mark(void *db, const char *lib, int64_t scan, const struct store_lib_mark *m, size_t n, store_error *err);
int pgl_pending(void *db, const char *lib, const char *after, size_t max, struct store_lib_file **out, size_t *n,
		store_error *err);
int pgl_commit(void *db, const char *lib, struct store_lib_outcome *v, size_t n, size_t dim, store_error *err);
int pgl_image_refs(void *db, int64_t id, int64_t *refs, store_error *err);
int pgl_other_device(void *db, const char *lib, const char *dir, int64_t dev, store_error *err);
int pgl_adopt(void *db, int64_t id, const char *sha256, const void *data, size_t len, store_error *err);
int pgl_finish(void *db, const char *lib, int64_t scan, const char *const *keep, size_t n_keep,
	       struct store_lib_scan_figures *fig, struct store_lib_gone *gone, store_error *err);
int pgl_counts(void *db, const char *lib, struct store_lib_counts *out, store_error *err);
int pgl_errors(void *db, const char *lib, const char *after, size_t max, struct store_lib_error **out, size_t *n,
	       store_error *err);
int pgl_source(void *db, int64_t id, char **root, char **path, int64_t *size, int64_t *mtime_ns, store_error *err);

/* pgstore_index.c: the shared trained index parameters (backend.h). */
int pgi_index_params(void *db, const char *fingerprint, uint64_t at_seq, struct backend_index_params *out,
		     int *found, store_error *err);
int pgi_store_index_params(void *db, const char *fingerprint, int64_t expect, backend_train_fn train, void *ud,
			   int64_t *generation, uint64_t *seq, store_error *err);

/* pgstore_copy.c: clipd catalog copy's operations, for pgstore_ops. */
int pgc_copy_in(void *db, const struct store_copy_row *rows, size_t n, size_t dim, const char *key, const char *value,
		store_error *err);
int pgc_copy_end(void *db, int64_t max_id, uint64_t min_seq, const char *key, const char *value, store_error *err);
int pgc_max_id(void *db, int64_t *id, store_error *err);
int pgc_setting_get(void *db, const char *key, char **value, store_error *err);
int pgc_identity(void *db, char *buf, size_t len, store_error *err);
/* pgstore_copylib.c: the photo libraries' rows in a copy, as text. */
int pgc_copy_libraries(void *db, struct store_text_row **rows, size_t *n, store_error *err);
int pgc_copy_files(void *db, const char *after_lib, const char *after_path, size_t max, struct store_text_row **rows,
		   size_t *n, store_error *err);
int pgc_copy_lib_in(void *db, const struct store_text_row *libs, size_t nlibs, const struct store_text_row *files,
		    size_t nfiles, const char *key, const char *value, store_error *err);

#endif
