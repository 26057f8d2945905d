/*
 * internal.h - what index/'s translation units share; not part of the
 * public API (idx.h).
 */
#ifndef CLIPD_IDX_INTERNAL_H
#define CLIPD_IDX_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <faiss/c_api/Index_c.h>

#include "idset.h"
#include "idx.h"

/* Settings fixed at idx_new/idx_load (copied, so builds need no lock). */
struct idx_cfg {
	size_t dim;
	char factory[IDX_MAX_FACTORY];   /* "" for automatic */
	size_t ivf_threshold;
	int nprobe;
};

/* One generation: a FAISS index and the set of ids it holds. The builder
 * makes a new one privately and swaps it in; searches use the current one
 * under the read lock. */
struct idx_gen {
	FaissIndex *index;                /* owned */
	struct idset ids;
	int exact;
	size_t trained_n;                 /* vectors the approximate index was trained for; 0 if exact */
	char type[IDX_MAX_FACTORY];       /* "Flat" or the factory string */
};

/* An add or remove logged while a build runs (build.c). */
struct idx_change;

/* Interned type strings, so idx_type's answer outlives a swap. */
struct idx_name {
	struct idx_name *next;
	char name[IDX_MAX_FACTORY];
};

struct idx {
	struct idx_cfg cfg;
	pthread_rwlock_t lock;            /* searches: read; changes, swap, save: write/read */
	struct idx_gen *cur;              /* under lock */

	/* Readable without the lock; written under the write lock. */
	_Atomic uint64_t seq;
	_Atomic size_t count;
	atomic_int exact;
	atomic_int nprobe;
	_Atomic(const char *) type;
	struct idx_name *names;           /* under the write lock; freed by idx_free */

	/* The change log of a running build (build.c). Appended under the
	 * write lock and log_mu; the builder walks it holding only log_mu per
	 * step. */
	pthread_mutex_t log_mu;
	int logging;
	int log_broken;                   /* a change could not be logged: the build must not swap */
	uint64_t log_start_seq;
	struct idx_change *log_head, *log_tail;

	/* The background build. */
	pthread_mutex_t build_mu;         /* thread, joinable, build_err, source */
	pthread_t thread;
	int joinable;
	atomic_int building;
	atomic_int cancel;
	idx_source_fn source;
	void *source_ud;
	idx_error build_err;
	double build_failed_at;           /* monotonic seconds of the last failed build, or 0 */
};

/* ---- errors.c ---- */

/* Fill *err (which may be NULL) and return code. */
int idx_fail(idx_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* IDX_ERR_FAISS with "what: <FAISS's last error>"; call right after the failing call. */
int idx_faiss_fail(idx_error *err, const char *what);

/* ---- file.c ---- */

/* The checksum of index files (64-bit words, multiply-rotate), also of
 * shared trained parameters (shared.c). */
uint64_t idx_checksum(const void *p, size_t n);

/* ---- params.c ---- */

/* A supported family, parsed from a factory string. */
struct idx_family {
	int exact;
	size_t nlist;       /* IVF only */
	char code[16];      /* IVF only: "Flat", "SQ8", ... */
};
int idx_parse_factory(const char *factory, struct idx_family *fam, idx_error *err);
int idx_cfg_from_params(const struct idx_params *p, struct idx_cfg *cfg, idx_error *err);

/* ---- gen.c ---- */

void idx_gen_free(struct idx_gen *g);
/* Fill g->ids from the index's contents; IDX_ERR_CORRUPT on a repeated id. */
int idx_gen_fill_ids(struct idx_gen *g, idx_error *err);
/* Set an IVF index's nprobe: the given one, or automatic (0) from its
 * size; bounded by nlist. Returns the value set, 0 for an exact index. */
int idx_gen_set_nprobe(struct idx_gen *g, int nprobe);
/* Changes to one generation (the caller holds whatever lock guards it). An
 * add replaces ids already present; a remove skips absent ones. */
int idx_gen_add(struct idx_gen *g, const int64_t *ids, const float *vecs, size_t n, idx_error *err);
int idx_gen_remove(struct idx_gen *g, const int64_t *ids, size_t n, idx_error *err);
/* Make a new idx around a generation (takes g; on failure frees it). */
int idx_wrap(const struct idx_cfg *cfg, struct idx_gen *g, uint64_t seq, idx **out, idx_error *err);
/* Publish the current generation's count, type and exactness for lock-free
 * readers; under the write lock. */
void idx_publish(idx *ix);
/* Free a handle, its generation and its names (NULL-safe); no build may
 * run and the change log must be empty (idx_build_stop). */
void idx_destroy(idx *ix);

/* ---- build.c: choosing, training and filling ---- */

/* The family the index should have at n vectors. */
void idx_choose(const struct idx_cfg *cfg, size_t n, struct idx_family *fam);
/* The rule of idx_maybe_retrain: 1 when an index of n vectors, exact or
 * approximate trained for trained_n, should be built anew. */
int idx_needs_build(const idx *ix, size_t n, int exact, size_t trained_n);
/* A new IVF index of family fam (not exact), trained on a sample of the
 * n vectors and empty; *out is the caller's (faiss_Index_free). */
int idx_train_new(const struct idx_cfg *cfg, const struct idx_family *fam, const float *vecs, size_t n,
		  FaissIndex **out, idx_error *err);
/* Put ids and vecs into g, whose index, type, exact and trained_n are set
 * and which holds nothing yet; sets an IVF's nprobe. cancel may be NULL. */
int idx_gen_fill(const struct idx_cfg *cfg, struct idx_gen *g, const int64_t *ids, const float *vecs, size_t n,
		 atomic_int *cancel, idx_error *err);

/* ---- build.c: the change log of a running build ---- */

/* Log a change for a running build (nothing when none runs); under the
 * write lock. Copies ids and vecs. A change that cannot be logged marks
 * the log broken: the build then does not swap. */
void idx_log_change(idx *ix, int is_add, const int64_t *ids, const float *vecs, size_t n, uint64_t seq);
/* A change failed half-way: the running build (if any) must not swap. */
void idx_log_break(idx *ix);
/* For idx_free: cancel a running build, join it, and free what is left of
 * its log. */
void idx_build_stop(idx *ix);

/* ---- exact.c ---- */

/* The exact family's search (idx_search_many holds the read lock). */
int idx_exact_search(struct idx_gen *g, size_t dim, const float *queries, size_t nq, size_t k,
		     float *scores, int64_t *ids, size_t *n_out, idx_error *err);

#endif
