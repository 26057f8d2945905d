/*
 * backend.h - the rows of a catalog, behind one table of operations: the
 * seam between the catalog (catalog*.c: blobs, the vector index, the
 * consistency between them) and the database that is the source of truth.
 * Internal to server/store/; code above sees catalog.h only.
 *
 *     const struct backend_ops *be = p->catalog_uri ? &pgstore_ops : &sqlite_backend_ops;
 *     void *db = ...;                    // the backend's own open (store_open, pgstore_open)
 *     be->get(db, 42, &img, &err);
 *     be->close(db);
 *
 * Two backends: SQLite in the data directory (backend_sqlite.c over
 * store.h, unchanged), and PostgreSQL (pgstore*.c over libpq), chosen at
 * catalog_open by whether the params carry a connection URI. Every
 * operation has store.h's contract (the same name without the store_
 * prefix; db is the backend's handle), so the catalog is written once.
 * Differences, which the catalog asks the table about:
 *
 *   - stores_originals: the backend keeps each original's bytes in the
 *     database (insert takes them; read_original streams them back). The
 *     data directory then holds only caches: the index snapshot, the
 *     thumbnails, originals fetched once for serving.
 *   - an operation that is NULL is not available on this backend: the
 *     catalog answers it with STORE_ERR_INVALID and a message that says so.
 *   - library_lock: a shared catalog lets one node at a time scan a
 *     library (NULL: a catalog of one process, always granted).
 *   - hash_cache: the store whose file-hash table caches model
 *     fingerprints (NULL: hash the model files at every open).
 */
#ifndef CLIPD_BACKEND_H
#define CLIPD_BACKEND_H

#include "idx.h"
#include "store.h"

/* A generation of the approximate index's trained parameters in a shared
 * catalog (index_params, idx.h's idx_train form). */
struct backend_index_params {
	int64_t generation;
	char factory[IDX_MAX_FACTORY];   /* "Flat": params NULL, len 0 */
	int64_t trained_n;
	uint64_t trained_seq;            /* the change the training's vectors were at */
	uint64_t seq;                    /* the 'index' change that brought it */
	void *params;                    /* malloc'd: the reader frees it */
	size_t len;
};

/* Trains, for store_index_params: fills type, *params (malloc'd; the
 * callee takes it), *len, *trained_n, *trained_seq; 0 or a store code. */
typedef int (*backend_train_fn)(void *ud, char type[IDX_MAX_FACTORY], void **params, size_t *len,
				int64_t *trained_n, uint64_t *trained_seq, store_error *err);

struct backend_ops {
	const char *name;          /* "sqlite", "postgresql": for messages */
	int stores_originals;
	void (*close)(void *db);
	store *(*hash_cache)(void *db);

	int (*active_model)(void *db, struct store_model *out, int *found, store_error *err);
	int (*set_active_model)(void *db, const struct store_model *m, store_error *err);
	int (*put_model)(void *db, const struct store_model *m, store_error *err);

	/* data, len: the original's bytes (used when stores_originals). */
	int (*insert)(void *db, const struct store_new_image *img, const void *data, size_t len, const float *vec,
		      size_t dim, int64_t *id, uint64_t *seq, store_error *err);
	int (*delete_image)(void *db, int64_t id, char sha256[STORE_SHA256_HEX], uint64_t *seq, store_error *err);
	int (*patch_metadata)(void *db, int64_t id, const char *patch, size_t len, size_t max_bytes, int max_depth,
			      store_error *err);
	int (*set_taken_at)(void *db, const int64_t *ids, const struct store_taken_at *taken, size_t n,
			    size_t *changed, store_error *err);
	int (*get)(void *db, int64_t id, struct store_image *out, store_error *err);
	int (*get_by_sha256)(void *db, const char *sha256, struct store_image *out, store_error *err);
	int (*get_many)(void *db, const int64_t *ids, size_t n, struct store_image *out, unsigned char *found,
			store_error *err);
	int (*sha256_exists)(void *db, const char *sha256, store_error *err);
	int (*list)(void *db, const struct store_selection *sel, int64_t before_id, size_t limit,
		    struct store_image **items, size_t *n, store_error *err);
	int (*count)(void *db, int64_t *n, store_error *err);
	int (*foreach_image)(void *db, store_image_fn fn, void *ud, store_error *err);
	/* Write the original with this digest to fd, a piece at a time
	 * (stores_originals only). STORE_ERR_NOT_FOUND when there is none. */
	int (*read_original)(void *db, const char *sha256, int fd, store_error *err);

	int (*get_vector)(void *db, int64_t id, const char *fingerprint, float *out, size_t dim, store_error *err);
	int (*put_vectors)(void *db, const int64_t *ids, size_t n, const char *fingerprint, const float *vecs,
			   size_t dim, store_error *err);
	int (*vector_ids)(void *db, const char *fingerprint, int64_t after_id, int64_t *ids, size_t max, size_t *n,
			  store_error *err);
	int (*missing_vectors)(void *db, const char *fingerprint, int64_t after_id, int64_t *ids, size_t max,
			       size_t *n, store_error *err);
	int (*count_vectors)(void *db, const char *fingerprint, int64_t *n, store_error *err);
	int (*switch_model)(void *db, const char *fingerprint, store_error *err);

	int (*seq)(void *db, uint64_t *seq, store_error *err);
	int (*load_vectors)(void *db, size_t dim, int64_t **ids, float **vecs, size_t *n, uint64_t *seq,
			    store_error *err);
	int (*changes_since)(void *db, uint64_t seq, size_t dim, struct store_changes *out, store_error *err);
	int (*prune_changes)(void *db, uint64_t seq, store_error *err);

	int (*scan_selection)(void *db, const struct store_selection *sel, size_t dim, size_t limit,
			      store_vector_fn fn, void *ud, int *truncated, store_error *err);
	int (*filter_ids)(void *db, const struct store_selection *sel, const int64_t *ids, size_t n,
			  unsigned char *keep, store_error *err);
	int (*keyword_search)(void *db, const char *words, const char *not_words, const struct store_selection *sel,
			      size_t k, int64_t *ids, float *scores, size_t *n, store_error *err);
	int (*check)(void *db, store_problem_fn fn, void *ud, store_error *err);
	/* A shared catalog (other writers): wait up to timeout_ms for word of
	 * a change committed by anyone: 1 when some came, 0 when none, negative
	 * when the wait itself failed (then poll). NULL: a catalog of one writer. */
	int (*wait_changes)(void *db, int timeout_ms, store_error *err);
	int (*db_bytes)(void *db, int64_t *bytes, store_error *err);

	/* clipd catalog copy (catalog_copy.c; store.h's store_copy_in and the
	 * functions after it say what each does). setting_get: *value
	 * malloc'd, NULL when absent. identity: what names the database in
	 * messages and in a copy's progress (no password). */
	int (*copy_in)(void *db, const struct store_copy_row *rows, size_t n, size_t dim, const char *key,
		       const char *value, store_error *err);
	int (*copy_end)(void *db, int64_t max_id, uint64_t min_seq, const char *key, const char *value,
			store_error *err);
	int (*max_id)(void *db, int64_t *id, store_error *err);
	int (*setting_get)(void *db, const char *key, char **value, store_error *err);
	int (*identity)(void *db, char *buf, size_t len, store_error *err);
	/* the photo libraries' rows, as text (store.h's store_copy_libraries
	 * and the two after it) */
	int (*copy_libraries)(void *db, struct store_text_row **rows, size_t *n, store_error *err);
	int (*copy_files)(void *db, const char *after_lib, const char *after_path, size_t max,
			  struct store_text_row **rows, size_t *n, store_error *err);
	int (*copy_lib_in)(void *db, const struct store_text_row *libs, size_t nlibs,
			   const struct store_text_row *files, size_t nfiles, const char *key, const char *value,
			   store_error *err);

	/* libraries */
	int (*library_put)(void *db, const char *name, const char *root, store_error *err);
	int (*library_get)(void *db, const char *name, struct store_library *out, store_error *err);
	int (*library_scan_begin)(void *db, const char *name, int64_t *scan, store_error *err);
	/* 1 and *lock (for library_unlock) when this caller may scan the
	 * library now, 0 when another holds it, negative on failure. */
	int (*library_lock)(void *db, const char *name, void **lock, store_error *err);
	void (*library_unlock)(void *db, void *lock);
	int (*lib_file_get)(void *db, const char *lib, const char *path, struct store_lib_file *out, store_error *err);
	/* The records of paths[0..n) at once (found[i] 0: never met; out[i].path
	 * unset), in one round trip where lib_file_get takes n. NULL: the
	 * catalog asks lib_file_get for each (in process, as cheap). */
	int (*lib_files_get)(void *db, const char *lib, const char *const *paths, size_t n, struct store_lib_file *out,
			     unsigned char *found, store_error *err);
	int (*lib_mark)(void *db, const char *lib, int64_t scan, const struct store_lib_mark *m, size_t n,
			store_error *err);
	int (*lib_pending)(void *db, const char *lib, const char *after, size_t max, struct store_lib_file **out,
			   size_t *n, store_error *err);
	int (*lib_commit)(void *db, const char *lib, struct store_lib_outcome *v, size_t n, size_t dim,
			  store_error *err);
	int (*lib_image_refs)(void *db, int64_t id, int64_t *refs, store_error *err);
	int (*lib_other_device)(void *db, const char *lib, const char *dir, int64_t dev, store_error *err);
	/* Image id (sha256) keeps an uploaded copy of its original: with
	 * stores_originals the bytes go in, and the image's original is no
	 * longer its library file. 1 when it was a library image, 0 when not
	 * (nothing done), negative on error. */
	int (*lib_adopt)(void *db, int64_t id, const char *sha256, const void *data, size_t len, store_error *err);
	int (*lib_finish)(void *db, const char *lib, int64_t scan, const char *const *keep, size_t n_keep,
			  struct store_lib_scan_figures *fig, struct store_lib_gone *gone, store_error *err);
	int (*lib_counts)(void *db, const char *lib, struct store_lib_counts *out, store_error *err);
	int (*lib_errors)(void *db, const char *lib, const char *after, size_t max, struct store_lib_error **out,
			  size_t *n, store_error *err);
	int (*lib_source)(void *db, int64_t id, char **root, char **path, int64_t *size, int64_t *mtime_ns,
			  store_error *err);

	/* Shared trained index parameters (NULL: a catalog of one process,
	 * whose node trains its own). index_params: the latest generation of
	 * the model's whose change is at most at_seq (*found 0: none).
	 * store_index_params: under a lock that one node at a time holds,
	 * when the model's latest generation is still expect (0: none), call
	 * train and store what it gives as the next generation with its
	 * 'index' change, in one transaction: 1 stored (*generation, *seq),
	 * 0 another node holds the lock or stored a newer one, negative on
	 * failure (a failed train included). */
	int (*index_params)(void *db, const char *fingerprint, uint64_t at_seq, struct backend_index_params *out,
			    int *found, store_error *err);
	int (*store_index_params)(void *db, const char *fingerprint, int64_t expect, backend_train_fn train, void *ud,
				  int64_t *generation, uint64_t *seq, store_error *err);
};

/* SQLite (backend_sqlite.c): db is a store * from store_open. */
extern const struct backend_ops sqlite_backend_ops;

#endif
