/*
 * idx.h - the vector index: ids (SQLite rowids) and L2-normalised vectors,
 * searched by inner product (= cosine), over FAISS's C API.
 *
 * Usage:
 *
 *     struct idx_params p = idx_default_params();
 *     p.dim = 512;
 *     idx *ix = NULL;
 *     idx_error err;
 *     if (idx_new(&p, &ix, &err) != 0)               // or idx_load(path, ...)
 *             die("%s", err.msg);
 *
 *     int64_t ids[2] = { 7, 8 };                     // vecs: 2 x 512 floats
 *     idx_add(ix, ids, vecs, 2, ++seq, &err);        // seq: the change sequence
 *     idx_maybe_retrain(ix, my_source, my_ctx);      // after changes: may start
 *                                                    // a background build
 *     float scores[10]; int64_t hits[10]; size_t n;
 *     idx_search(ix, query, 10, scores, hits, &n, &err);
 *
 *     idx_remove(ix, ids, 1, ++seq, &err);
 *     idx_save(ix, "data/index.faiss", fingerprint, &err);
 *     idx_wait_training(ix);                         // before idx_free
 *     idx_free(ix);
 *
 * Conventions. Functions return 0 (IDX_OK) or a negative code and fill the
 * caller's idx_error (which may be NULL); they never log, print or exit.
 * Destructors accept NULL. The index copies what it is given: callers keep
 * ownership of every array they pass in, except the arrays an idx_source_fn
 * hands over (see there).
 *
 * Threads. Any number of threads may call idx_search (read lock) and the
 * lock-free getters (idx_seq, idx_count, idx_type, idx_is_exact, idx_nprobe)
 * at once; idx_add and idx_remove take the write lock (writers are
 * preferred, so searches cannot starve them); idx_save takes the read lock,
 * so searches go on while it writes and changes wait. A search never sees a
 * half-applied change. A background build (idx_maybe_retrain) runs in its
 * own thread and swaps its result in under the write lock.
 *
 * Families. Exact search ("Flat", FAISS's IDMap2,Flat) while the collection
 * is below ivf_threshold (default 50,000: exact search costs ~16 ms of one
 * core per query there at 512 dimensions, and recall is 1); past it an IVF
 * index with 8-bit scalar-quantized codes
 * ("IVF<nlist>,SQ8", nlist the power of two nearest sqrt(n), trained by
 * spherical k-means on a sample of 64 vectors per list), built in the
 * background and rebuilt when the collection has grown IDX_RETRAIN_GROWTH-
 * fold. IVF keeps our ids in its lists and removes without a direct map.
 * A factory string may name another supported family: see
 * idx_check_factory. The choices and their measurements: README, "Vector
 * index", and `clipd bench-index`.
 */
#ifndef CLIPD_IDX_H
#define CLIPD_IDX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct idx idx;

/* Room for a message that names a file in full (a path of up to PATH_MAX
 * bytes and the reason): such a message is never cut off. */
#define IDX_MSG_MAX 4352

typedef struct idx_error {
	int code;        /* the code returned */
	char msg[IDX_MSG_MAX];   /* NUL-terminated, never empty after a failure */
} idx_error;

enum {
	IDX_OK = 0,
	IDX_ERR_INVALID = -1,   /* bad argument: a NULL, a size, an unsupported factory */
	IDX_ERR_NOMEM = -2,     /* allocation failed */
	IDX_ERR_IO = -3,        /* a file could not be opened, written, synced or renamed */
	IDX_ERR_FAISS = -4,     /* FAISS refused (its message is in err.msg) */
	IDX_ERR_CORRUPT = -5,   /* an index file is truncated, damaged or not ours */
	IDX_ERR_MISMATCH = -6,  /* an index file from another model (fingerprint) or dim */
	IDX_ERR_NOSPACE = -7,   /* idx_save: the disk or the quota is full (ENOSPC, EDQUOT) */
};

/* Limits on what callers (ultimately clients) control. */
#define IDX_MAX_DIM 4096
#define IDX_MAX_K 10000                /* results per search */
#define IDX_MAX_FACTORY 64             /* bytes of a factory string, with the NUL */
#define IDX_MAX_FINGERPRINT 128        /* bytes of a model fingerprint, with the NUL */
#define IDX_MAX_NPROBE 65536
#define IDX_MAX_QUERIES 1024           /* queries per idx_search_many */

struct idx_params {
	size_t dim;              /* vector dimension (required, 1..IDX_MAX_DIM) */
	const char *factory;     /* NULL: automatic (exact "Flat" below ivf_threshold, then the
	                          * measured approximate default); else a supported family
	                          * (idx_check_factory), used once past ivf_threshold; "Flat"
	                          * means exact at every size. Copied by idx_new/idx_load. */
	size_t ivf_threshold;    /* vectors; default from measurements */
	int nprobe;              /* IVF lists searched per query; 0 (the default): automatic,
	                          * about 4,096 x 512 / dim vectors scanned per query (at
	                          * least 4 lists), recomputed as the collection changes */
};

/* Defaults (dim is 0: the caller sets it). */
struct idx_params idx_default_params(void);

/* Validates a factory string: 0 if the family is supported, else
 * IDX_ERR_INVALID with a message naming the supported families. */
int idx_check_factory(const char *factory, idx_error *err);

/* A new, empty, exact index. *out is the caller's (idx_free). */
int idx_new(const struct idx_params *p, idx **out, idx_error *err);

/* Waits for a background build to finish, then frees everything. NULL is fine. */
void idx_free(idx *ix);

/*
 * Vectors are L2-normalised by the caller, n rows of dim floats. seq is the
 * change sequence of this change (monotonic; the index remembers the highest
 * it applied). Adding an id that is already present replaces its vector
 * (so a replay is harmless); removing an id that is absent does nothing.
 * Adds and removes take the write lock. A refused call (IDX_ERR_INVALID:
 * a negative id, an id twice in one batch, a non-finite component) changes
 * nothing; after IDX_ERR_NOMEM or IDX_ERR_FAISS (FAISS ran out of memory)
 * an add that replaced ids may have removed their old vectors, and a
 * background build running then is abandoned rather than swapped in.
 */
int idx_add(idx *ix, const int64_t *ids, const float *vecs, size_t n, uint64_t seq, idx_error *err);
int idx_remove(idx *ix, const int64_t *ids, size_t n, uint64_t seq, idx_error *err);

/* Top k (1..IDX_MAX_K) by inner product (= cosine), best first. Writes up to
 * k results into scores[k] and ids[k], *n_out of them (fewer when the index
 * holds fewer, or when an approximate index finds fewer). */
int idx_search(idx *ix, const float *query, size_t k, float *scores, int64_t *ids, size_t *n_out, idx_error *err);

/* nq (1..IDX_MAX_QUERIES) queries at once, rows of dim floats: query q's
 * results are scores[q * k ...], ids[q * k ...], n_out[q] of them. The
 * exact index scores them all in one pass over its vectors (BLAS), so a
 * batch of queries costs little more than one. */
int idx_search_many(idx *ix, const float *queries, size_t nq, size_t k, float *scores, int64_t *ids,
		    size_t *n_out, idx_error *err);

uint64_t idx_seq(const idx *ix);       /* the highest change sequence applied */
size_t idx_count(const idx *ix);       /* vectors in the index */
size_t idx_dim(const idx *ix);
/* "Flat" or the factory string in use ("IVF1024,SQ8"); the string stays
 * valid until idx_free, also after a background build changes the type. */
const char *idx_type(const idx *ix);
int idx_is_exact(const idx *ix);
int idx_nprobe(const idx *ix);         /* IVF lists searched per query now; 0 when exact */

/*
 * Atomic save: a temporary file beside path (a header recording seq, count,
 * dim, the model fingerprint and the type, then FAISS's serialized index,
 * then a checksum), fsync, rename over path, fsync of the directory. Holds
 * the read lock while it writes (searches go on; adds and removes wait).
 */
int idx_save(idx *ix, const char *path, const char *fingerprint, idx_error *err);

/*
 * Load a saved index. IDX_ERR_IO if the file cannot be opened (errno-style
 * message; a missing file is IDX_ERR_IO), IDX_ERR_MISMATCH if the fingerprint
 * or p->dim differs from the file's, IDX_ERR_CORRUPT if it is truncated,
 * damaged or not an index file. p gives the runtime settings (nprobe,
 * ivf_threshold, factory for later builds); the index type is the file's.
 */
int idx_load(const char *path, const struct idx_params *p, const char *fingerprint, idx **out, idx_error *err);

/*
 * Synchronous build of the index clipd would choose for n vectors (exact
 * below ivf_threshold, else trained on a sample of vecs), for rebuilds at
 * start-up and for bench-index. ids and vecs stay the caller's.
 */
int idx_build(const struct idx_params *p, const int64_t *ids, const float *vecs, size_t n,
	      uint64_t seq, idx **out, idx_error *err);

/*
 * Background (re)training of the approximate index. The source callback
 * gives every stored (id, vector) with the change sequence the snapshot
 * covers; it must cover at least every change already applied to the index
 * (read it from the store after the index's changes are committed). It is
 * called in the builder thread. The arrays it returns are malloc'd and
 * become the index's (it frees them, also on failure); it returns 0, or
 * nonzero to abandon the build.
 *
 * The builder trains and fills a new index in its own thread while the
 * current one keeps serving, then replays the adds and removes that arrived
 * (through idx_add/idx_remove) with seq above the snapshot's, and swaps
 * atomically.
 */
typedef int (*idx_source_fn)(void *ud, int64_t **ids, float **vecs, size_t *n, uint64_t *seq);

/* Starts a build if needed (size past ivf_threshold while exact, grown
 * IDX_RETRAIN_GROWTH-fold since the last training, or shrunk below half the
 * threshold while approximate) and returns at once: 1 if a build started,
 * 0 if none was needed, one is already running or the last one failed less
 * than 30 seconds ago; negative on error. Cheap: call it after changes. */
#define IDX_RETRAIN_GROWTH 4
int idx_maybe_retrain(idx *ix, idx_source_fn source, void *ud);
int idx_training(const idx *ix);   /* nonzero while a background build runs */
void idx_wait_training(idx *ix);   /* for shutdown and tests */
/* The outcome of the last finished background build: 0, or its error code
 * with the message copied into *err (which may be NULL). */
int idx_last_build_error(const idx *ix, idx_error *err);

/*
 * Trained parameters shared between processes. Several clipd nodes on one
 * catalog must hold the same approximate index: one of them trains (the
 * caller arranges who) and the others build from what it trained instead
 * of training. The parameters are the trained, empty index in FAISS's
 * serialised form (an IVF's coarse centroids and its codes' training, e.g.
 * the scalar quantizer's ranges) behind a magic and a checksum, or nothing
 * (len 0) for the exact family. They come back from another process and
 * are checked as hostile input: a damaged copy is refused before FAISS
 * reads it.
 *
 *     if (idx_wants_build(ix)) {                       // the retrain rule
 *             idx_train(&p, vecs, n, type, &params, &len, &err);
 *             ... store type, params, len and n (trained_n) ...
 *     }
 *     idx_build_trained(&p, type, params, len, trained_n, ids, vecs, n, seq, &ix2, &err);
 */

/* 1 when idx_maybe_retrain's rule asks for a (re)build of the index as it
 * is now (its size past ivf_threshold while exact, grown
 * IDX_RETRAIN_GROWTH-fold since its training, or shrunk below half the
 * threshold while approximate), else 0. */
int idx_wants_build(idx *ix);

/* Train the family clipd chooses for these n vectors (p's factory and
 * ivf_threshold, as idx_build): type gets its factory string ("Flat" for
 * the exact family, then *params is NULL and *len 0), *params the trained
 * empty index (malloc'd, the caller's). vecs stays the caller's. */
int idx_train(const struct idx_params *p, const float *vecs, size_t n, char type[IDX_MAX_FACTORY],
	      void **params, size_t *len, idx_error *err);

/* As idx_build, but of the family type with the trained parameters given
 * (from idx_train, here or in another process) instead of training:
 * "Flat" with len 0 builds the exact index. trained_n: the number of
 * vectors they were trained for (the retrain rule counts growth from it).
 * IDX_ERR_CORRUPT when params are not a trained, empty index of type, of
 * p->dim and inner product. */
int idx_build_trained(const struct idx_params *p, const char *type, const void *params, size_t len,
		      size_t trained_n, const int64_t *ids, const float *vecs, size_t n, uint64_t seq,
		      idx **out, idx_error *err);

/* The trained parameters of the index as it is now, in idx_train's form
 * (exact: *params NULL and *len 0), to compare with the ones another
 * process trained. Takes the read lock; an approximate index is copied
 * once (clone and empty), which costs its size in memory for a moment. */
int idx_trained_params(idx *ix, void **params, size_t *len, idx_error *err);

#ifdef __cplusplus
}
#endif

#endif
