/*
 * catalog_internal.h - shared by catalog.c, catalog_images.c,
 * catalog_search.c, catalog_check.c, catalog_libraries.c, catalog_copy.c,
 * catalog_copylib.c and catalog_index.c only.
 */
#ifndef CLIPD_CATALOG_INTERNAL_H
#define CLIPD_CATALOG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "backend.h"
#include "catalog.h"
#include "store.h"

struct catalog {
	char *dir;
	char db_path[4096];
	char index_path[4096];
	int lock_fd;                 /* holds DATA/lock (writable mode) */
	int readonly, no_index;
	size_t exact_filter_limit;

	const struct backend_ops *be;   /* the database's operations (backend.h) */
	void *db;                    /* its handle */
	struct store_model model;    /* the model served (changes only in catalog_switch_model) */

	rowcache *rows;              /* a shared catalog's rows on this node, or NULL */

	struct idx_params ip;
	char factory[IDX_MAX_FACTORY];
	pthread_rwlock_t ixlock;     /* guards the ix pointer (swapped by rebuilds) */
	idx *_Atomic ix;             /* NULL with no_index; atomic: checked for NULL without
	                              * ixlock while the follower swaps in a rebuilt index */

	pthread_mutex_t wlock;       /* the writer lock: store writes + index changes + blob unlinks */
	pthread_mutex_t save_lock;   /* one save at a time */
	_Atomic uint64_t saved_seq;  /* change sequence of the index file (0: none) */
	int orphan_risk;             /* a blob could not be removed: scan at next open */
	_Atomic int index_stale;     /* an index change failed: the next open rebuilds (atomic: set
	                              * under the writer lock, read by searches under ixlock) */

	/* Readers waiting for a change sequence (catalog_wait_applied): woken
	 * whenever a catch-up applied changes. */
	pthread_mutex_t applied_lock;
	pthread_cond_t applied_cond;

	/* Changes the follower learned of and when, oldest first (catalog_lag):
	 * entries the index has applied are dropped; when full, the newest
	 * entry takes the newer number and keeps its (older) time. */
	pthread_mutex_t lag_lock;
	uint64_t latest;
	struct { uint64_t seq; double at; } learned[32];
	size_t n_learned;

	/* A shared catalog's trained index parameters (catalog_index.c). */
	_Atomic int64_t params_generation;   /* the generation the index was built from (0: none) */
	int64_t built_generation;            /* that of the index built last (under wlock), not yet swapped in */
	pthread_mutex_t train_lock;          /* the fields below */
	pthread_t train_thread;
	int train_joinable, train_stopping;
	atomic_int train_running;
	double train_next_at;                /* monotonic seconds: no attempt before */
	uint64_t trained_here;               /* generations this node trained and stored */
	char train_error[256];               /* the last failed attempt's message, or "" */
};

/* c->be->op(c->db, ...), or, when the backend has no such operation,
 * STORE_ERR_INVALID saying so in err (which must be the name of the
 * calling function's store_error * in scope). */
#define CAT_DB(c, op, ...) ((c)->be->op ? (c)->be->op((c)->db, __VA_ARGS__) : cat_unavailable((c), #op, err))
int cat_unavailable(const catalog *c, const char *op, store_error *err);

/* The one translation of an index error into a store status (NOMEM,
 * NOSPACE, else STORE_ERR_INDEX), the message prefixed with what
 * (catalog_index.c). */
int cat_idx_fail(store_error *err, const idx_error *ie, const char *what);
/* out = v / |v|; STORE_ERR_INVALID for a zero or non-finite vector. */
int cat_normalize(const float *v, size_t dim, float *out, store_error *err);
/* 1 if s is valid UTF-8 without control characters other than tab
 * (catalog_images.c). */
int cat_clean_utf8(const char *s);
/* The path of the original sha256 (bytes long) in the data directory's
 * cache of originals, fetched from the backend when it is not there yet
 * (backends that store originals; catalog_images.c). */
int cat_cache_original(catalog *c, const char *sha256, int64_t bytes, char *buf, size_t len, store_error *err);
/* Apply the changes committed after the index's sequence to the index
 * (caller holds c->wlock): with several nodes on one catalog, the only way
 * a node's index takes changes, its own included, so that it never claims
 * a sequence number whose change it has not applied. STORE_ERR_NOT_FOUND:
 * the sequence cannot be replayed (rebuild). *applied may be NULL. */
int cat_catch_up_locked(catalog *c, size_t *applied, store_error *err);
/* Start a background index build if the index wants one. */
void cat_maybe_retrain(catalog *c);

/* A shared catalog's approximate index (catalog_index.c). cat_build_shared:
 * build from every stored vector and the trained parameters in force at
 * their change (exact when there are none), as build_from_store does.
 * cat_snapshot_shared: 0 with *why set when a loaded index file was not
 * built from the parameters in force at its change. cat_train_shared:
 * start a training in the background when the index's rule asks for one
 * (from cat_maybe_retrain). cat_train_stop: join it (catalog_close). */
int cat_build_shared(catalog *c, idx **out, size_t *n_out, store_error *err);
int cat_snapshot_shared(catalog *c, idx *ix, char *why, size_t why_len, store_error *err);
void cat_train_shared(catalog *c);
void cat_train_stop(catalog *c);
void cat_train_stats(catalog *c, struct catalog_stats *out);

/* Fill out->hits (out zeroed by the caller) from candidate ids and their
 * scores, in their order, dropping rows that are gone (catalog_search.c). */
int cat_fetch_rows(catalog *c, const int64_t *ids, const float *scores, size_t n,
		   struct catalog_results *out, store_error *err);

/* 1 when the catalog's copy record says a `clipd catalog copy` into it is
 * under way (msg: the source it copies), else 0 (catalog_copy.c). */
int catalog_copy_unfinished(const struct backend_ops *be, void *db, char *msg, size_t len);

/* clipd catalog copy's photo libraries (catalog_copylib.c), between the
 * source's and the target's backends: copylib_fit_postgresql refuses a
 * source whose libraries hold text that is not UTF-8; copylib_target_empty
 * a target that knows a library; copylib_copy copies the libraries and
 * their files' records (batch a transaction, resumable; after the
 * images); copylib_verify compares them all and counts them. */
struct copy_side {
	const struct backend_ops *be;
	void *db;
	const char *name;            /* for messages */
};
int copylib_fit_postgresql(const struct copy_side *src, store_error *err);
int copylib_target_empty(const struct copy_side *dst, store_error *err);
int copylib_copy(const struct copy_side *src, const struct copy_side *dst, size_t batch,
		 void (*progress)(void *ud, const char *stage, int64_t done, int64_t total), void *ud, store_error *err);
int copylib_verify(const struct copy_side *src, const struct copy_side *dst, int64_t *libraries, int64_t *files,
		   store_error *err);

#endif
