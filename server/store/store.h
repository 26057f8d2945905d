/*
 * store.h - the SQLite store: image rows, user metadata, vectors, models,
 * the change log. The source of truth; the vector index is derived from it.
 *
 * Only the catalog (server/store/catalog*.c) calls it (and the benchmark's
 * bulk loader, deploy/bench/bench-fill.c): code above
 * server/store/ uses catalog.h (store + blob files + vector index), the
 * interface a second backend would implement. This layer is SQL only: it
 * knows no files but the database, and no index. The values it shares with
 * the catalog's callers (statuses, store_error, the image row, the model,
 * filters) are in store_types.h.
 *
 * Files: store.c (migrations, open and close), store_conn.c (connections,
 * statements, transactions), store_settings.c, store_models.c (models, the
 * file-hash cache), store_images.c (image rows: metadata, writes, reads,
 * iteration), store_vectors.c (vectors, the change log), store_select.c
 * (filtered selections), store_check.c, store_libraries.c (libraries: their files, scans' outcomes and ends), store_copy.c (rows copied with their ids: clipd catalog copy); store_internal.h is what they share.
 *
 *     struct store_params sp = store_default_params();
 *     store *st = NULL;
 *     store_error err;
 *     if (store_open("data/clipd.db", &sp, &st, &err) != 0)
 *             die("%s", err.msg);
 *     struct store_image img;
 *     if (store_get(st, 42, &img, &err) == 0) {
 *             printf("%s %s\n", img.sha256, img.metadata);
 *             store_image_clear(&img);
 *     }
 *     store_close(st);
 *
 * Connections. One writer connection (every write is one BEGIN IMMEDIATE
 * transaction, serialised by a mutex inside the store) and a pool of read
 * connections, taken and returned per call; every statement is reset
 * before the connection goes back. All connections: WAL, synchronous=FULL,
 * foreign_keys=ON, a busy timeout. A store may be used by any number of
 * threads; it must not cross a fork (open it after forking).
 *
 * Migrations. migrations/NNNN_name.sql, embedded at build time, applied in
 * order at open, one transaction each, tracked by PRAGMA user_version. A
 * database newer than the binary is refused (STORE_ERR_SCHEMA); so is an
 * older one opened read-only.
 *
 * Conventions. Functions return 0 (STORE_OK) or a negative store_status and
 * fill the caller's store_error (which may be NULL); they never log, print
 * or exit. Strings in results are owned by the result struct; clear it with
 * its _clear/_free function. Destructors accept NULL.
 */
#ifndef CLIPD_STORE_H
#define CLIPD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store_types.h"

/* What store_insert needs besides the vector. Strings are borrowed. */
struct store_new_image {
	const char *sha256;     /* 64 lower-case hex digits */
	const char *mime;
	int width, height;
	int64_t bytes;
	const char *filename;   /* may be NULL */
	const char *metadata;   /* a JSON object already validated (store_check_metadata); NULL for {} */
	int64_t created_at;     /* microseconds; 0 means now */
	struct store_taken_at taken;   /* the capture time; text "" for none */
	int64_t id;             /* 0: the next id; else this one (clipd catalog copy, through store_copy_in) */
};

/* ---- opening ---------------------------------------------------------- */

typedef struct store store;

struct store_params {
	int readonly;          /* no writer connection, no migrations */
	int busy_timeout_ms;   /* default 5000 */
	int max_readers;       /* read connections kept open at most (default 16); callers beyond wait */
};
struct store_params store_default_params(void);

struct store_open_report {
	int version_before;    /* user_version found (0: new database) */
	int version_after;     /* user_version now */
};

/* Open (creating when writable) the database at path and migrate it.
 * report may be NULL. On success *out owns the store. */
int store_open(const char *path, const struct store_params *p, store **out,
	       struct store_open_report *report, store_error *err);
void store_close(store *s);

/* The schema version this binary migrates to (the highest embedded migration). */
int store_schema_latest(void);

/* ---- models and settings -------------------------------------------------- */

/* The model whose vectors are served (*found = 0 on a new database). */
int store_active_model(store *s, struct store_model *out, int *found, store_error *err);
/* Record the model (insert or update its row) and make it the active one. */
int store_set_active_model(store *s, const struct store_model *m, store_error *err);
/* Record a model without activating it (reembed's target). */
int store_put_model(store *s, const struct store_model *m, store_error *err);
int store_get_model(store *s, const char *fingerprint, struct store_model *out, store_error *err);

/* Key-value settings (small text values); *value malloc'd, NULL when absent. */
int store_setting_get(store *s, const char *key, char **value, store_error *err);
int store_setting_set(store *s, const char *key, const char *value, store_error *err);

/* The file-hash cache behind model fingerprints: a file's SHA-256 keyed by
 * path, size, mtime (ns) and inode. *found = 0 when absent or stale. */
int store_file_hash_get(store *s, const char *path, int64_t size, int64_t mtime_ns,
			int64_t inode, char hex[STORE_SHA256_HEX], int *found, store_error *err);
int store_file_hash_put(store *s, const char *path, int64_t size, int64_t mtime_ns,
			int64_t inode, const char *hex, store_error *err);

/* Model fingerprint: SHA-256 over the base names and contents of the
 * files (weights and configs), in name order, the per-file hashes cached
 * in s (may be NULL: no cache), and the precision the vectors are computed
 * in unless it is the default (NULL or "fp32": the files alone, as before
 * precisions existed). hex receives 64 hex digits. (fingerprint.c) */
int store_fingerprint(store *s, const char *const *files, const char *precision,
		      char hex[STORE_FINGERPRINT_HEX], double *hash_ms, store_error *err);

/* ---- images ----------------------------------------------------------- */

/* Validate a user metadata JSON object: an object, at most max_bytes of
 * compact text and max_depth levels deep (the object itself is level 1).
 * STORE_ERR_INVALID (not an object / not JSON) or STORE_ERR_TOO_LARGE.
 * On success *compact (may be NULL) is the minified text, malloc'd. */
int store_check_metadata(store *s, const char *json, size_t len, size_t max_bytes,
			 int max_depth, char **compact, store_error *err);

/* Insert the row, its vector (dim floats, stored as float32 LE under the
 * active model) and an "add" change, in one transaction. Fills *id and
 * *seq. STORE_ERR_EXISTS (with *id set to the existing row) when the
 * sha256 is already stored; STORE_ERR_MODEL when there is no active model
 * or dim differs from it. */
int store_insert(store *s, const struct store_new_image *img, const float *vec, size_t dim,
		 int64_t *id, uint64_t *seq, store_error *err);
/* n rows and their vectors (vecs: n * dim floats) as store_insert makes
 * one, in one transaction: all are committed or none (STORE_ERR_EXISTS
 * when a sha256 is stored already, or twice among them). ids (n, may be
 * NULL) receive the ids, *seq (may be NULL) the last change. For bulk
 * loads (deploy/bench/bench-fill): one fsync for the lot instead of one
 * per image. */
int store_insert_many(store *s, const struct store_new_image *imgs, const float *vecs, size_t n, size_t dim,
		      int64_t *ids, uint64_t *seq, store_error *err);

/* Delete the row and its vectors and append a "remove" change, in one
 * transaction. sha256 (may be NULL) receives the row's digest, *seq the
 * change. STORE_ERR_NOT_FOUND when there is no such row. */
int store_delete(store *s, int64_t id, char sha256[STORE_SHA256_HEX], uint64_t *seq, store_error *err);

/* RFC 7396 merge patch of the metadata (json_patch), limits as in
 * store_check_metadata, applied to the patch and to the result. */
int store_patch_metadata(store *s, int64_t id, const char *patch, size_t len,
			 size_t max_bytes, int max_depth, store_error *err);

/* Set the capture time of images ids[0..n) (text "" clears it), in one
 * transaction; rows that are gone are skipped. *changed (may be NULL):
 * rows whose value changed. */
int store_set_taken_at(store *s, const int64_t *ids, const struct store_taken_at *taken, size_t n,
		       size_t *changed, store_error *err);

int store_get(store *s, int64_t id, struct store_image *out, store_error *err);
int store_get_by_sha256(store *s, const char *sha256, struct store_image *out, store_error *err);
/* Rows ids[0..n) in one read transaction: out[i] filled and found[i] = 1,
 * or found[i] = 0 (out[i] zeroed) when the row is gone. Clear each out[i]. */
int store_get_many(store *s, const int64_t *ids, size_t n, struct store_image *out,
		   unsigned char *found, store_error *err);
/* 1 if a row has this sha256, 0 if not, negative on error. */
int store_sha256_exists(store *s, const char *sha256, store_error *err);

/* Newest first: rows matching sel (NULL: all) with id < before_id (0:
 * from the newest), at most limit. *items malloc'd (free with
 * store_images_free), *n set. */
int store_list(store *s, const struct store_selection *sel, int64_t before_id, size_t limit,
	       struct store_image **items, size_t *n, store_error *err);

int store_count(store *s, int64_t *n, store_error *err);

/* The vector of image id under model fingerprint (NULL: the active model).
 * out holds dim floats. STORE_ERR_NOT_FOUND when missing. */
int store_get_vector(store *s, int64_t id, const char *fingerprint, float *out, size_t dim,
		     store_error *err);
/* Set (insert or replace) the vectors of images ids[0..n) under fingerprint
 * (a recorded model of dimension dim), in one transaction; rows that are
 * gone are skipped. For reembed. */
int store_put_vectors(store *s, const int64_t *ids, size_t n, const char *fingerprint,
		      const float *vecs, size_t dim, store_error *err);

/* ---- the change log ----------------------------------------------------- */

/* The highest change sequence ever given (0 on a new database). */
int store_seq(store *s, uint64_t *seq, store_error *err);

/* Every (id, vector) of the active model, and the change sequence this
 * snapshot covers, read in one transaction. *ids and *vecs malloc'd
 * (caller frees), n rows of dim floats. */
int store_load_vectors(store *s, size_t dim, int64_t **ids, float **vecs, size_t *n,
		       uint64_t *seq, store_error *err);

/* The net effect of the changes after seq, read in one transaction: images
 * added after seq and still stored (with their vectors), and images removed
 * after seq that had been added at or before it. Arrays malloc'd (caller
 * frees; NULL when empty). *last is the highest sequence read.
 * STORE_ERR_NOT_FOUND when the log no longer covers seq (pruned past it). */
struct store_changes {
	int64_t *add_ids;
	float *add_vecs;     /* n_add * dim */
	size_t n_add;
	int64_t *remove_ids;
	size_t n_remove;
	uint64_t last;
	/* Numbers in (seq, last] with no logged change: rows changed in place
	 * (a shared catalog's patches, capture times, library sources; which
	 * rows is not known), so cached rows are stale. 0 from SQLite. */
	int touched;
};
int store_changes_since(store *s, uint64_t seq, size_t dim, struct store_changes *out,
			store_error *err);
void store_changes_clear(struct store_changes *c);
/* Forget log entries up to seq (the index file covers them). */
int store_prune_changes(store *s, uint64_t seq, store_error *err);

/* ---- search support ------------------------------------------------------ */

/* Validate a selection (key and value sizes and characters, count). */
int store_check_selection(const struct store_selection *sel, store_error *err);

/* The filters of a selection grouped by key (the same key: alternatives),
 * checked as store_check_selection does, for a backend that writes its own
 * SQL (pgstore): group i's path as JSON-path text ($."a"."b.c": segments
 * in double quotes, which a key cannot contain), its operator and its
 * values as a JSON array (equality: each value as a string, and also as a
 * number when it spells one; ranges: a number or a string; exists: 1 or
 * 0). *out is NULL when sel has no filters; free it with
 * store_selection_plan_free. The strings live as long as the plan. */
enum store_sel_op { STORE_SEL_EQ, STORE_SEL_GTE, STORE_SEL_LTE, STORE_SEL_GT, STORE_SEL_LT, STORE_SEL_EXISTS };
struct st_selection_plan;
int store_selection_plan(const struct store_selection *sel, struct st_selection_plan **out, store_error *err);
size_t store_plan_groups(const struct st_selection_plan *p);
void store_plan_group(const struct st_selection_plan *p, size_t i, const char **path, int *op, const char **values);
/* Group i's values as the filters gave them (strings of the selection,
 * which must outlive their use) and whether one of them spells a JSON
 * number (then an equality also compares stored numbers with it). */
size_t store_plan_group_texts(const struct st_selection_plan *p, size_t i, const char *const **texts, int *numeric);
void store_selection_plan_free(struct st_selection_plan *p);
/* Append s (NUL-terminated) to b as a JSON string: quotes, backslashes and
 * control characters escaped, other bytes as they are. 0, or -1 (b full). */
struct dbuf;
int store_json_string(struct dbuf *b, const char *s);

/* Call fn(ud, id, vec) for each stored vector of the active model whose
 * row matches sel, in one read transaction, at most limit rows; *truncated
 * = 1 if more rows matched (the scan stops there). fn returning nonzero
 * stops the scan. */
typedef int (*store_vector_fn)(void *ud, int64_t id, const float *vec);
int store_scan_selection(store *s, const struct store_selection *sel, size_t dim, size_t limit,
			 store_vector_fn fn, void *ud, int *truncated, store_error *err);
/* keep[i] = 1 if row ids[i] exists and matches sel, else 0 (one read transaction). */
int store_filter_ids(store *s, const struct store_selection *sel, const int64_t *ids, size_t n,
		     unsigned char *keep, store_error *err);

/* ---- libraries (store_libraries.c; the shared structs are in store_types.h) ---- */

/* Record a library (insert, or update its root). */
int store_library_put(store *s, const char *name, const char *root, store_error *err);
int store_library_get(store *s, const char *name, struct store_library *out, store_error *err);
/* A scan begins: scan_seq + 1 into *scan. */
int store_library_scan_begin(store *s, const char *name, int64_t *scan, store_error *err);

/* The file's row (STORE_ERR_NOT_FOUND). out->path is not filled. */
int store_lib_file_get(store *s, const char *lib, const char *path, struct store_lib_file *out,
		       store_error *err);

/* Seen by scan: pending 0 only marks a recorded path as seen; pending 1
 * also records it as to be indexed (inserting the row if new). One
 * transaction for the n. */
int store_lib_mark(store *s, const char *lib, int64_t scan, const struct store_lib_mark *m, size_t n,
		   store_error *err);
/* Pending paths after `after` ("" from the start), in path order, at most
 * max. *out malloc'd (store_lib_files_free). */
int store_lib_pending(store *s, const char *lib, const char *after, size_t max, struct store_lib_file **out,
		      size_t *n, store_error *err);

/* What indexing one pending file came to, applied with others in one
 * transaction by store_lib_commit. */
enum store_lib_kind {
	STORE_LIB_NEW,       /* a new image (img, vec): row, vector, "add", its path */
	STORE_LIB_REPLACE,   /* image replace_id gets new bytes (img, vec) under its id */
	STORE_LIB_LINK,      /* the path is the stored image with sha256 */
	STORE_LIB_FAILED,    /* err_code, err_status, err_msg */
	STORE_LIB_GONE,      /* the file vanished: the path is forgotten */
};
struct store_lib_outcome {
	const char *path;
	int64_t dev, ino, size, mtime_ns;
	enum store_lib_kind kind;
	const char *sha256;                  /* NEW, REPLACE, LINK */
	const struct store_new_image *img;   /* NEW, REPLACE */
	const float *vec;                    /* NEW, REPLACE: dim floats, normalised */
	int64_t replace_id;
	const char *err_code, *err_msg;
	int err_status;
	/* out */
	int64_t image_id;                    /* what the path now is (0: none) */
	uint64_t seq;                        /* NEW, REPLACE: the "add" change (0: none made) */
	uint64_t remove_seq;                 /* REPLACE: the "remove" change */
	char old_sha256[STORE_SHA256_HEX];   /* REPLACE: the digest the image had */
};
/* In one transaction. NEW whose bytes were stored meanwhile, and REPLACE
 * whose new bytes are another image's, become links (seq 0). */
int store_lib_commit(store *s, const char *lib, struct store_lib_outcome *v, size_t n, size_t dim,
		     store_error *err);

/* 1 if image id's original is a library file (library_images), and in
 * *refs how many library paths (not ignored) are this image. */
int store_lib_image_refs(store *s, int64_t id, int64_t *refs, store_error *err);

/* 1 if a file below the folder dir ("a/b": paths "a/b/...") was last read
 * from a device other than dev (a disk mounted there then), 0 if not. */
int store_lib_other_device(store *s, const char *lib, const char *dir, int64_t dev, store_error *err);

/* Image id's original is no longer a library file (its row in
 * library_images goes): the caller wrote the image's blob first. 1 when
 * it was a library image, 0 when not, negative on error. */
int store_lib_adopt(store *s, int64_t id, store_error *err);

/* The end of a scan that walked the whole tree: paths not seen by scan are
 * forgotten (except under keep[0..n_keep), directories the scan could not
 * read), library images left without a path move to another path of the
 * same bytes (*moved) or are deleted (their ids, digests and "remove"
 * changes in *gone: malloc'd arrays, n_gone), and the scan's figures are
 * recorded. One transaction. */
struct store_lib_gone {
	int64_t *ids;
	char (*sha256)[STORE_SHA256_HEX];
	uint64_t *seqs;
	size_t n;
};
void store_lib_gone_clear(struct store_lib_gone *g);
/* Append an image to g, its arrays grown as needed (*cap: their room). */
int store_lib_gone_add(struct store_lib_gone *g, size_t *cap, int64_t id, const char *sha, uint64_t seq,
		       store_error *err);
/* 1 when path is below one of keep[0..n_keep) (folders a scan could not
 * read: what they hold is kept), or one of them is "" (the root). */
int store_lib_path_kept(const char *path, const char *const *keep, size_t n_keep);
int store_lib_finish(store *s, const char *lib, int64_t scan, const char *const *keep, size_t n_keep,
		     struct store_lib_scan_figures *fig, struct store_lib_gone *gone, store_error *err);

/* Figures of a library's files now. */
int store_lib_counts(store *s, const char *lib, struct store_lib_counts *out, store_error *err);

/* Failed files, in path order after `after` ("" from the start), at most
 * max. Strings malloc'd (store_lib_errors_free). */
int store_lib_errors(store *s, const char *lib, const char *after, size_t max, struct store_lib_error **out,
		     size_t *n, store_error *err);

/* Where a library image's original is: the library's root and the file's
 * path (malloc'd), with the size and mtime it had when read
 * (STORE_ERR_NOT_FOUND: an uploaded image, or gone). */
int store_lib_source(store *s, int64_t id, char **root, char **path, int64_t *size, int64_t *mtime_ns,
		     store_error *err);

/* ---- catalog copy (store_copy.c; clipd catalog copy, catalog_copy.c) ---------- */

/* A row copied from another catalog: every column as the source has it,
 * id and created_at included (img), its original's bytes (data, len: for
 * a backend that keeps originals; the SQLite store's are files the caller
 * writes) and its vector (dim floats) under the active model. Borrowed. */
struct store_copy_row {
	const struct store_image *img;
	const void *data;
	size_t len;
	const float *vec;
};
/* In one transaction: rows[0..n) as given (STORE_ERR_EXISTS when an id or
 * a sha256 is stored already), each with its vector and an "add" change,
 * and the setting key set to value (the copy's progress). n may be 0. */
int store_copy_in(store *s, const struct store_copy_row *rows, size_t n, size_t dim, const char *key,
		  const char *value, store_error *err);
/* The end of a copy, in one transaction: ids given from now on are above
 * max_id (and above every stored row), the change sequence continues
 * above min_seq, a "reset" change follows (an index snapshot from before
 * is rebuilt, never replayed), and the setting key is set to value. */
int store_copy_end(store *s, int64_t max_id, uint64_t min_seq, const char *key, const char *value,
		   store_error *err);
/* The highest image id ever given (deleted ones too: ids are never reused). */
int store_max_id(store *s, int64_t *id, store_error *err);
/* What names this database in a copy's progress: "data directory PATH". */
int store_identity(store *s, char *buf, size_t len, store_error *err);

/* Photo libraries in a copy (store_copylib.c): their rows as text, every
 * column as the database holds it (NULL for SQL NULL; integers in decimal,
 * flags 0 or 1), so that a row goes from one kind of catalog to the other
 * unchanged and two copies compare column by column. A library row:
 * name, root, scan_seq, last_started_at, last_finished_at, last_added,
 * last_changed, last_moved, last_removed, last_failed. A file row:
 * library, path, dev, ino, size, mtime_ns, sha256, image_id, ignored,
 * pending, seen_scan, err_code, err_status, err_msg. */
#define STORE_LIB_ROW_COLS 10
#define STORE_FILE_ROW_COLS 14
struct store_text_row {
	char *col[STORE_FILE_ROW_COLS];   /* malloc'd or NULL */
};
void store_text_rows_free(struct store_text_row *rows, size_t n);
/* Every library, in name order (bytes). *rows malloc'd (free with
 * store_text_rows_free). */
int store_copy_libraries(store *s, struct store_text_row **rows, size_t *n, store_error *err);
/* Up to max (1 to 100000) library files after (after_lib, after_path) in
 * (library, path) byte order; after_lib NULL: from the first. */
int store_copy_files(store *s, const char *after_lib, const char *after_path, size_t max,
		     struct store_text_row **rows, size_t *n, store_error *err);
/* In one transaction: the libraries (inserted, or their row replaced), the
 * files (inserted: STORE_ERR_EXISTS when one is there already) and the
 * setting key set to value. */
int store_copy_lib_in(store *s, const struct store_text_row *libs, size_t nlibs, const struct store_text_row *files,
		      size_t nfiles, const char *key, const char *value, store_error *err);

/* ---- maintenance ---------------------------------------------------------- */

/* Keyword search (store_keywords.c): up to k images within sel whose
 * filename or metadata strings hold any of the whitespace-separated words
 * (each a phrase of FTS5's unicode61 tokens; no FTS5 syntax) and none of
 * not_words (may be NULL), best BM25 first, ties by id. ids and scores
 * hold k; scores are -bm25 (higher is better); *n set. */
int store_keyword_search(store *s, const char *words, const char *not_words, const struct store_selection *sel,
			 size_t k, int64_t *ids, float *scores, size_t *n, store_error *err);

/* PRAGMA integrity_check and foreign_key_check, every row has a vector of
 * the active model of the right size. Returns the number of problems (>= 0)
 * or a negative status. */
int store_check(store *s, store_problem_fn fn, void *ud, store_error *err);

/* Call fn(ud, image) for every row in id order (a read transaction per
 * batch, so the writer is never blocked for long). fn returning nonzero stops. */
typedef int (*store_image_fn)(void *ud, const struct store_image *img);
int store_foreach_image(store *s, store_image_fn fn, void *ud, store_error *err);

/* Ids (ascending, > after_id) of images without a vector under fingerprint,
 * at most max; *n set. For reembed. */
/* Ids ascending (> after_id) of the images with a vector under fingerprint. */
int store_vector_ids(store *s, const char *fingerprint, int64_t after_id, int64_t *ids,
		     size_t max, size_t *n, store_error *err);
int store_missing_vectors(store *s, const char *fingerprint, int64_t after_id, int64_t *ids,
			  size_t max, size_t *n, store_error *err);
/* Number of images with a vector under fingerprint. */
int store_count_vectors(store *s, const char *fingerprint, int64_t *n, store_error *err);
/* Make fingerprint the active model, delete every other model's vectors
 * (all rows must have a vector under it) and append a "reset" change: an
 * index from before cannot be replayed. One transaction. */
int store_switch_model(store *s, const char *fingerprint, store_error *err);

/* Statistics for `clipd index stats` and /info. */
int store_db_bytes(store *s, int64_t *bytes, store_error *err);

#endif
