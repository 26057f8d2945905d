/*
 * catalog.h - a clipd data directory: the SQLite store (source of truth),
 * the original files (content-addressed blobs) and the vector index (a
 * derived cache), kept consistent through crashes, restarts and deletes.
 *
 *     struct catalog_params cp = catalog_default_params();
 *     cp.data_dir = "data";
 *     cp.model_files = clip_model_files(model);     // fingerprinted (cached)
 *     cp.model_name = "ViT-B-32";                   // for messages and /info
 *     cp.model_layout = clip_model_layout(model);
 *     cp.model_dir = "models/ViT-B-32";             // for the reembed hint
 *     cp.index.dim = clip_model_dim(model);
 *     catalog *cat = NULL;
 *     struct catalog_open_report rep;
 *     store_error err;
 *     if (catalog_open(&cp, &cat, &rep, &err) != 0)
 *             die("%s", err.msg);                   // locked, other model, ...
 *     log_info("index: %s", rep.index_message);     // the caller logs
 *
 *     struct catalog_new_image in = { .data = bytes, .len = len, .mime = "image/png",
 *             .width = w, .height = h, .filename = "cat.png", .metadata = "{\"album\":\"x\"}",
 *             .vec = vec, .dim = dim };
 *     struct store_image img;
 *     int duplicate;
 *     catalog_add(cat, &in, &img, &duplicate, &err); // 201, or 200 when duplicate
 *     store_image_clear(&img);
 *
 *     struct catalog_query q = catalog_default_query();
 *     q.vec = text_vec; q.dim = dim; q.k = 10;
 *     struct catalog_results res;
 *     catalog_search(cat, &q, &res, &err);          // res.hits[i].image, .score
 *     catalog_results_free(&res);
 *
 *     // server timer thread, every second or so:
 *     if (catalog_unsaved_changes(cat) >= 1000 || seconds_since_save >= 60)
 *             catalog_save_index(cat, &err);
 *     catalog_close(cat);                           // saves the index if changed
 *
 * Data directory (datadir.h lists its names, the one place that spells
 * them): a lock, the database, the originals (blobs named by their
 * SHA-256), the saved index, a thumbnail cache, temporary files (emptied at
 * open) and a marker written by a clean close (the next open then skips
 * the scan for orphan blobs, which only a crash leaves). Callers ask for
 * paths (catalog_blob_path, catalog_thumb_path, catalog_index_file).
 *
 * Consistency. An add writes the blob (temporary file, fsync, rename,
 * directory fsync), then commits one transaction (row + vector + change
 * sequence), then adds the vector to the index: when catalog_add returns
 * the image is durable and searchable. A delete commits (row + vector +
 * change), removes from the index, then unlinks the blob, under the writer
 * lock (an upload of the same bytes re-checks the blob under that lock). At
 * open, temporary files and blobs without a row are removed, and the index
 * is loaded and the changes after its sequence replayed, or it is rebuilt
 * from the stored vectors (missing, corrupt, other model, count disagrees).
 *
 * Threads. A catalog may be used by any number of threads at once: reads
 * and searches run concurrently; adds, patches and deletes are serialised
 * by the writer lock (they wait for each other, not for searches). Never
 * fork with a catalog open (SQLite, FAISS's OpenMP): fork+exec only.
 *
 * The interface. This header is all that code above server/store/ sees of
 * the store layer: the values it shares (statuses, store_error, the image
 * row, the model, filters) are in store_types.h; SQLite (store.h) and the
 * files (datadir.h) stay behind it, so another backend could implement
 * these functions. Conventions as in store.h: 0 or a negative store_status
 * with the message in store_error; nothing logs. Results are owned by the
 * caller and freed with the function named beside them.
 *
 * Files: catalog.c (open, close, the index: load, replay, save, rebuild;
 * reembed's model and vectors, the model switch), catalog_images.c (adds,
 * reads, counts, patches, deletes, thumbnails), catalog_search.c,
 * catalog_check.c, catalog_libraries.c (libraries, the original of a
 * library image), catalog_copy.c (clipd catalog copy); catalog_internal.h is what they share. Underneath:
 * store*.c and fingerprint.c (SQLite, store.h) and datadir.c (every name
 * inside a data directory, datadir.h).
 */
#ifndef CLIPD_CATALOG_H
#define CLIPD_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "idx.h"
#include "rowcache.h"
#include "store_types.h"

/* Limits on what clients control (the server may lower them). */
#define CATALOG_MAX_METADATA_BYTES (16 * 1024)  /* compact JSON text */
#define CATALOG_MAX_METADATA_DEPTH 8            /* the object itself is depth 1 */
#define CATALOG_MAX_K 1000                      /* results per search */
#define CATALOG_MAX_LIST 1000                   /* items per list page */
#define CATALOG_MAX_FILENAME 255                /* bytes of a client filename */
#define CATALOG_EXACT_FILTER_LIMIT 100000       /* default: filtered sets up to this size are scored exactly */
#define CATALOG_ROW_CACHE_MB 64                 /* default: a shared catalog's cache of rows on the node */
#define CATALOG_MAX_ROW_CACHE_MB 65536

typedef struct catalog catalog;

struct catalog_params {
	const char *data_dir;          /* required; created when missing (writable mode) */
	int readonly;                  /* check, index stats: no lock, no writes, nothing cleaned;
	                                * the index is loaded/replayed/rebuilt in memory only */
	int no_index;                  /* do not load or build the index (reembed); searches fail */

	/* The model that will serve. model_files NULL: use the data directory's
	 * model (commands that load no model); it then must have one. */
	const char *const *model_files; /* weights and configs, NULL-terminated (clip_model_files) */
	const char *model_name;        /* NULL: the base name of model_dir */
	const char *model_dir;         /* for messages (the reembed hint); may be NULL */
	const char *model_layout;      /* "hf" or "openclip" */
	const char *model_precision;   /* "fp32" (or NULL) or "bf16": part of the fingerprint */

	/* index.dim is the model's embedding size (ignored with model_files NULL:
	 * the stored model's); factory, ivf_threshold, nprobe as in idx.h. */
	struct idx_params index;

	/* The catalog in PostgreSQL (a libpq connection URI) instead of the
	 * data directory's SQLite database; the data directory then holds
	 * only caches (index snapshot, thumbnails, originals fetched to be
	 * served). NULL: SQLite. catalog_pool: connections at most (0: 8). */
	const char *catalog_uri;
	int catalog_pool;
	/* Reads from another server (a hot standby), NULL: catalog_uri's; see
	 * pgstore.h for which reads and when the primary answers instead. */
	const char *catalog_read_uri;
	/* The node's cache of the rows searches, lists and gets read from
	 * catalog_uri (rowcache.h), in MiB (CATALOG_ROW_CACHE_MB; 0: none).
	 * Not used with catalog_read_uri (a standby may show a row older than
	 * the change the node applied) nor with SQLite (rows are local). */
	size_t row_cache_mb;

	size_t exact_filter_limit;     /* CATALOG_EXACT_FILTER_LIMIT */
	int busy_timeout_ms;           /* SQLite busy timeout (5000) */
};
struct catalog_params catalog_default_params(void);

/* What happened at open, for the caller to log. */
struct catalog_open_report {
	int schema_before, schema_after;   /* PRAGMA user_version before and after migrating */
	size_t tmp_removed;                /* temporary files left by a crash, removed */
	size_t orphans_removed;            /* blobs without a row, removed */
	int index_loaded;                  /* the saved index was used (then replayed) */
	int index_rebuilt;                 /* built from the stored vectors */
	size_t replayed_adds, replayed_removes;
	char index_message[256];           /* one line: "loaded Flat index at change 12, replayed 3
	                                    * adds and 0 removes: 40 vectors" or "rebuilt the index
	                                    * from 40 stored vectors: no index file" */
	int model_registered;              /* a new data directory took the given model */
	char fingerprint[STORE_FINGERPRINT_HEX];
	double fingerprint_ms;             /* time spent hashing model files (0 when cached) */
	double open_ms;                    /* the whole open */
};

/*
 * Open a data directory: take its lock (STORE_ERR_LOCKED, naming the
 * directory, when another clipd holds it), open and migrate the database,
 * remove temporary files and orphan blobs, fingerprint the model (the file
 * hashes are cached by path, size, mtime and inode), refuse vectors of
 * another model (STORE_ERR_MODEL, with a message naming both models and
 * `clipd reembed --model DIR --data DIR`), then load-and-replay or rebuild
 * the index. report may be NULL. *out is the caller's (catalog_close).
 */
int catalog_open(const struct catalog_params *p, catalog **out,
		 struct catalog_open_report *report, store_error *err);
/* Saves the index when it has unsaved changes (writable mode), waits for a
 * background index build, closes everything, releases the lock. NULL is fine. */
void catalog_close(catalog *c);

/* ---- images ------------------------------------------------------------ */

/* An image to add. Every pointer is borrowed for the call. */
struct catalog_new_image {
	const void *data;       /* the original bytes */
	size_t len;
	const char *sha256;     /* lower-case hex SHA-256 of data if the caller has it (trusted);
	                         * NULL: computed here */
	const char *mime;       /* "image/png", ... (decided from the bytes by the caller) */
	int width, height;
	const char *filename;   /* the client's, metadata only (never a path); may be NULL */
	const char *metadata;   /* a JSON object (limits above), or NULL for {} */
	size_t metadata_len;    /* 0: strlen(metadata) */
	const float *vec;       /* the image embedding; normalised here (a copy) */
	size_t dim;             /* must equal the model's */
	struct store_taken_at taken;  /* the capture time (text "" for none) */
};

/*
 * Store an image: blob, row, vector, index. Fills *out (may be NULL) with
 * the row. When the same bytes are already stored, nothing changes, *out is
 * the existing row and *duplicate = 1 (the given metadata is not applied).
 * Errors: STORE_ERR_INVALID (dim, vector not finite or zero, metadata not an
 * object, filename too long), STORE_ERR_TOO_LARGE (metadata), STORE_ERR_NOSPACE
 * (disk full: nothing is left behind), STORE_ERR_IO, STORE_ERR_DB, STORE_ERR_INDEX.
 */
int catalog_add(catalog *c, const struct catalog_new_image *in, struct store_image *out,
		int *duplicate, store_error *err);

/* The row, by id or by digest (STORE_ERR_NOT_FOUND). A cheap way for the
 * server to skip encoding an upload it already has. */
int catalog_get(catalog *c, int64_t id, struct store_image *out, store_error *err);
int catalog_get_by_sha256(catalog *c, const char *sha256, struct store_image *out, store_error *err);

/* Path of an image's original ("DATA/blobs/ab/cd/abcd..."), written into
 * buf (size len). Open it with O_RDONLY: an open descriptor stays valid
 * even if a delete unlinks the file afterwards. */
int catalog_blob_path(const catalog *c, const char *sha256, char *buf, size_t len, store_error *err);

/* Thumbnails, a cache kept for the server (catalog_delete removes an
 * image's). catalog_thumb_path writes the path of the thumbnail of the
 * original sha256 with longest side size into buf (open it to serve it;
 * it may not exist); catalog_put_thumb stores one atomically. */
int catalog_thumb_path(const catalog *c, const char *sha256, int size, char *buf, size_t len,
		       store_error *err);
int catalog_put_thumb(catalog *c, const char *sha256, int size, const void *jpeg, size_t len,
		      store_error *err);

/* Newest first, stable under concurrent inserts: the rows sel selects
 * (NULL: every image; its exclude_id too); pass cursor 0 for the first page, then the *next_cursor
 * returned (0 when there are no more). limit 1..CATALOG_MAX_LIST. *items
 * freed with store_images_free. */
int catalog_list(catalog *c, const struct store_selection *sel, int64_t cursor, size_t limit,
		 struct store_image **items, size_t *n, int64_t *next_cursor, store_error *err);

/* Set the capture time of images ids[0..n) (text "" clears it) in one
 * transaction, skipping rows that are gone; *changed (may be NULL) counts
 * the rows whose value changed. For `clipd check --repair` and `clipd
 * reembed`, which read it again from the originals. */
int catalog_set_taken_at(catalog *c, const int64_t *ids, const struct store_taken_at *taken, size_t n,
			 size_t *changed, store_error *err);

/* RFC 7396 merge patch of the metadata: patch is a JSON object (null
 * removes a key); the result, checked inside the write, must stay within
 * max_bytes of compact JSON and max_depth levels (0, or more than the
 * ceilings above: those ceilings), else STORE_ERR_TOO_LARGE and nothing
 * changes. *out (may be NULL) receives the updated row. */
int catalog_patch_metadata(catalog *c, int64_t id, const char *patch, size_t len, size_t max_bytes,
			   int max_depth, struct store_image *out, store_error *err);

/* Delete row, vector, index entry, blob and cached thumbnails
 * (STORE_ERR_NOT_FOUND if absent). */
int catalog_delete(catalog *c, int64_t id, store_error *err);

/* The stored (normalised) vector of an image; out holds dim floats. */
int catalog_get_vector(catalog *c, int64_t id, float *out, size_t dim, store_error *err);

/* Export, a page at a time in id order: up to max images with id >
 * after_id that have a vector of the active model. rows[0..*n) and
 * vecs[0..*n * dim) are filled (clear each row with store_image_clear);
 * *last is the highest id looked at (pass it as after_id next time; 0 when
 * the collection holds no more). Rows deleted meanwhile are skipped.
 * max 1..CATALOG_MAX_LIST. */
int catalog_export_page(catalog *c, int64_t after_id, size_t max, struct store_image *rows,
			float *vecs, size_t dim, size_t *n, int64_t *last, store_error *err);
/* "DATA/tmp" into buf: a place for a command's or a request's scratch
 * files (emptied at the next open). */
int catalog_tmp_dir(const catalog *c, char *buf, size_t len, store_error *err);

/* Check a metadata JSON object before the work of an upload: an object of
 * at most max_bytes of compact text and max_depth levels (0, or more than
 * the ceilings above: those ceilings). STORE_ERR_INVALID or
 * STORE_ERR_TOO_LARGE; on success *compact (may be NULL) is the minified
 * text, malloc'd. catalog_add checks again. */
int catalog_check_metadata(catalog *c, const char *json, size_t len, size_t max_bytes, int max_depth,
			   char **compact, store_error *err);

/* Where an image's original is, to open read-only: its blob in the data
 * directory, or for a library image the file in the library (path written
 * into buf: the root, '/', and from buf + *rel_at the path inside the
 * library, which is libpath_valid or the image's original is not found;
 * *rel_at 0 for a blob). Open a library file with libpath_open, which
 * follows no link below the root. *size and *mtime_ns are what the bytes
 * must still have (*mtime_ns -1: no check, a blob never changes); a
 * library file that differs has changed since it was indexed. */
int catalog_original(catalog *c, const struct store_image *img, char *buf, size_t len, size_t *rel_at,
		     int64_t *size, int64_t *mtime_ns, store_error *err);

/* ---- libraries: folders indexed in place (catalog_libraries.c) ----------------
 *
 * The server's scanner (server/app/srv_library.c) drives these; the
 * catalog keeps what it learns (store_types.h's structs) and applies each
 * outcome to rows, vectors and the index together. A library image has
 * no copy in the data directory: catalog_original names its file.
 *
 *     catalog_library_put(cat, "photos", "/home/me/Pictures", &err);
 *     catalog_library_scan_begin(cat, "photos", &scan, &err);
 *     // walk: each file either unchanged (mark seen) or pending
 *     catalog_library_mark(cat, "photos", scan, marks, n, &err);
 *     // index the pending ones, a few at a time
 *     catalog_library_pending(cat, "photos", after, 64, &files, &n, &err);
 *     catalog_library_commit(cat, "photos", items, n, &err);
 *     // the whole tree was walked: forget what is gone
 *     catalog_library_finish(cat, "photos", scan, NULL, 0, &fig, &err);
 */
int catalog_library_put(catalog *c, const char *name, const char *root, store_error *err);
int catalog_library_get(catalog *c, const char *name, struct store_library *out, store_error *err);
int catalog_library_scan_begin(catalog *c, const char *name, int64_t *scan, store_error *err);
struct catalog_lib_lock;   /* opaque: the backend's */
/* With a shared catalog (PostgreSQL), one node at a time scans a library:
 * 1 and *lock when this node may scan it now (until
 * catalog_library_unlock), 0 when another node is scanning it, negative
 * on failure. With a catalog of one process, always 1 (*lock NULL). */
int catalog_library_lock(catalog *c, const char *name, struct catalog_lib_lock **lock, store_error *err);
void catalog_library_unlock(catalog *c, struct catalog_lib_lock *lock);
/* A path's record (STORE_ERR_NOT_FOUND when never met); out->path unset. */
int catalog_library_file(catalog *c, const char *lib, const char *path, struct store_lib_file *out,
			 store_error *err);
/* The records of paths[0..n) at once: found[i] 0 when never met (a scan
 * asks a batch of the files it walks at a time). */
int catalog_library_files(catalog *c, const char *lib, const char *const *paths, size_t n, struct store_lib_file *out,
			  unsigned char *found, store_error *err);
int catalog_library_mark(catalog *c, const char *lib, int64_t scan, const struct store_lib_mark *m, size_t n,
			 store_error *err);
/* Pending paths after `after` in path order, at most max (store_lib_files_free). */
int catalog_library_pending(catalog *c, const char *lib, const char *after, size_t max,
			    struct store_lib_file **out, size_t *n, store_error *err);

/* What indexing a pending file came to. */
enum catalog_lib_kind {
	CATALOG_LIB_NEW,       /* new bytes: a new image (mime, width, height, vec) */
	CATALOG_LIB_REPLACE,   /* image replace_id's file has new bytes: same id, new pixels */
	CATALOG_LIB_LINK,      /* the bytes are a stored image (sha256): a move, or a copy */
	CATALOG_LIB_FAILED,    /* err_code ("image_undecodable", ...), err_status, err_msg */
	CATALOG_LIB_GONE,      /* the file vanished since it was found */
};
struct catalog_lib_item {
	const char *path;                   /* relative to the root */
	int64_t dev, ino, size, mtime_ns;   /* the identity of the bytes read */
	enum catalog_lib_kind kind;
	const char *sha256;                 /* NEW, REPLACE, LINK */
	const char *mime;                   /* NEW, REPLACE */
	int width, height;
	const float *vec;                   /* the model's dim floats (normalised here) */
	struct store_taken_at taken;        /* NEW, REPLACE: the capture time (text "" for none) */
	int64_t replace_id;
	const char *err_code, *err_msg;
	int err_status;
	/* out */
	int64_t image_id;                   /* the image the path is now (0: none) */
	int added;                          /* 1: a new image was stored */
	int replaced;                       /* 1: replace_id got the new pixels */
};
/* Apply n outcomes in one transaction, then the index. */
int catalog_library_commit(catalog *c, const char *lib, struct catalog_lib_item *v, size_t n, store_error *err);
/* 1 if image id's original is a library file, 0 if not; *refs: its
 * library paths. Negative on error. */
int catalog_library_image_refs(catalog *c, int64_t id, int64_t *refs, store_error *err);
/* 1 if a file below the folder dir was last read from a device other
 * than dev (store_lib_other_device), 0 if not, negative on error. */
int catalog_library_other_device(catalog *c, const char *lib, const char *dir, int64_t dev, store_error *err);
/* An upload of the bytes (sha256, data, len) image id already has: when
 * that image's original is a library file, the upload's copy becomes its
 * original (a blob, or the catalog's row of originals), so that the image
 * outlives the file. 1 when it did, 0 when the image had its own copy,
 * negative on error. */
int catalog_library_adopt(catalog *c, int64_t id, const char *sha256, const void *data, size_t len,
			  store_error *err);
/* The end of a scan that walked the whole tree (store_lib_finish): paths
 * not seen are forgotten except under keep[0..n_keep) (directories that
 * could not be read), images left without a path are moved or deleted
 * (fig->moved, fig->removed added to), fig recorded. */
int catalog_library_finish(catalog *c, const char *lib, int64_t scan, const char *const *keep, size_t n_keep,
			   struct store_lib_scan_figures *fig, store_error *err);
int catalog_library_counts(catalog *c, const char *lib, struct store_lib_counts *out, store_error *err);
/* Failed files after `after` in path order, at most max (store_lib_errors_free). */
int catalog_library_errors(catalog *c, const char *lib, const char *after, size_t max,
			   struct store_lib_error **out, size_t *n, store_error *err);

/* ---- search -------------------------------------------------------------- */

/* How a search ranks: by the query vector (semantic, the default), by
 * keywords alone (FTS5 BM25 over filenames and metadata strings), or both
 * merged by reciprocal rank fusion: an image's score is the sum over the
 * rankings it is in of 1 / (rrf_k + rank), rank counted from 1, each
 * ranking contributing its top CATALOG_HYBRID_DEPTH(k); ties by id. */
enum catalog_mode { CATALOG_SEMANTIC = 0, CATALOG_KEYWORD, CATALOG_HYBRID };
#define CATALOG_RRF_K 60
#define CATALOG_MAX_RRF_K 10000
#define CATALOG_HYBRID_DEPTH(k) ((k) < 100 ? 100 : (k))

struct catalog_query {
	const float *vec;      /* the query embedding (normalised here, a copy) */
	size_t dim;
	size_t k;              /* 1..CATALOG_MAX_K */
	int has_min_score;
	float min_score;       /* results below are dropped */
	struct store_selection sel;   /* which rows may answer (store_types.h) */
	/* the index's answer for this query, computed ahead by catalog_prefetch
	 * (with other queries, in one pass); NULL: ask the index now */
	const struct catalog_prefetch *prefetched;
	enum catalog_mode mode;
	const char *keywords;      /* keyword, hybrid: whitespace-separated words, any of which may match */
	const char *not_keywords;  /* keyword, hybrid: words no keyword match may hold (NULL: none) */
	unsigned rrf_k;            /* hybrid: 1..CATALOG_MAX_RRF_K (0: CATALOG_RRF_K) */
};
struct catalog_query catalog_default_query(void);
/* Check q's filters and date range (count, key and value sizes and
 * characters: STORE_ERR_INVALID) before anything is encoded. */
int catalog_check_filters(const struct catalog_query *q, store_error *err);

struct catalog_hit {
	struct store_image image;
	float score;           /* semantic: cosine; keyword: -bm25 (higher is better) */
	double fused;          /* hybrid: the reciprocal rank fusion score (score is then the cosine, or 0) */
	unsigned semantic_rank, keyword_rank;   /* 1-based place in each ranking; 0: not in it */
};
struct catalog_results {
	struct catalog_hit *hits;   /* best first, n of them, malloc'd */
	size_t n;
	/* 1: these are exactly the top k among all matching images (exact
	 * index, or a filtered set small enough to score exactly); 0: an
	 * approximate index answered and some may be missing. */
	int exhaustive;
	int exact_scan;             /* 1: the filtered set was scored from the stored vectors */
	/* 1: a shared catalog's database could not be reached, and an
	 * unfiltered search was answered from this node's index replica alone:
	 * each hit has its image.id and score, no other field of its row. */
	int rows_missing;
};
void catalog_results_free(struct catalog_results *r);

/*
 * Search (q->mode says how; keyword needs no vector). By vector: without filters or a date range: the index. With them:
 * when at most exact_filter_limit images match, every match is scored from
 * its stored vector (k results whenever k match; exhaustive); otherwise the
 * index is asked for many more than k and its results filtered (exhaustive
 * only if the index is exact and it found k).
 */
int catalog_search(catalog *c, const struct catalog_query *q, struct catalog_results *out,
		   store_error *err);

/*
 * The index part of several plain searches at once, ahead of their
 * catalog_search calls: an exact index scores all of them in one pass over
 * its vectors, so a batch of queries costs about what one does. out[i]
 * receives query i's candidates (kk of them asked, n found, best first);
 * queries with filters, an exclusion or a wrong dimension are left out
 * (out[i].kk = 0) and searched as usual. Set qs[i].prefetched = &out[i]
 * before catalog_search; free each with catalog_prefetch_clear.
 */
struct catalog_prefetch {
	size_t kk, n;
	float *scores;
	int64_t *ids;
	int exact;
};
int catalog_prefetch(catalog *c, const struct catalog_query *qs, size_t nq, struct catalog_prefetch *out,
		     store_error *err);
void catalog_prefetch_clear(struct catalog_prefetch *p);

/* Images like image id (itself excluded): q's vec and dim are ignored. */
int catalog_similar(catalog *c, int64_t id, const struct catalog_query *q,
		    struct catalog_results *out, store_error *err);

/* ---- near-duplicates ------------------------------------------------------------ */

/* Groups of images whose vectors are within min_score (cosine) of each
 * other: starting from each image in id order (after after_id), its
 * neighbours at or above min_score among the index's nearest
 * CATALOG_DUP_NEIGHBOURS, theirs, and so on (at most CATALOG_DUP_GROUP_MAX
 * images); a group is reported once, by its smallest id, which comes first
 * (each hit's score is its cosine with that first image). At most limit
 * groups, after looking at at most CATALOG_DUP_SCAN images; *next_cursor
 * is the id to continue after (0: done). */
#define CATALOG_DUP_NEIGHBOURS 64
#define CATALOG_DUP_GROUP_MAX 256
#define CATALOG_DUP_SCAN 2000
#define CATALOG_DUP_MIN_SCORE 0.95
struct catalog_group {
	struct catalog_hit *hits;
	size_t n;
};
struct catalog_groups {
	struct catalog_group *groups;
	size_t n;
};
int catalog_duplicate_groups(catalog *c, float min_score, int64_t after_id, size_t limit,
			     struct catalog_groups *out, int64_t *next_cursor, store_error *err);
void catalog_groups_free(struct catalog_groups *g);

/* ---- state, persistence, maintenance ---------------------------------------- */

struct catalog_stats {
	int64_t images;                 /* rows */
	size_t index_count;             /* vectors in the index */
	char index_type[IDX_MAX_FACTORY];
	int index_exact;
	int index_training;             /* a background build is running */
	uint64_t seq;                   /* the index's change sequence */
	uint64_t saved_seq;             /* the sequence of the saved file (0: none) */
	int64_t index_file_bytes;       /* size of the saved index file (0: none) */
	int64_t db_bytes;               /* database + WAL */
	struct store_model model;
	/* A shared catalog's trained index parameters: the generation the
	 * index was built from (0: none, or a catalog of one process), the
	 * generations this node trained, the last failed training's message. */
	int64_t params_generation;
	uint64_t trained_here;
	char train_error[256];
};
int catalog_stats(catalog *c, struct catalog_stats *out, store_error *err);
const struct store_model *catalog_model(const catalog *c);   /* valid while open */
size_t catalog_dim(const catalog *c);
const char *catalog_data_dir(const catalog *c);
const char *catalog_index_file(const catalog *c);           /* the saved index's path; valid while open */

/* Changes applied to the index since it was last saved (or loaded). */
uint64_t catalog_unsaved_changes(catalog *c);
/* Save the index atomically if it has unsaved changes, then forget the
 * change-log entries it covers. Safe to call from a timer thread while
 * requests run (adds wait while it writes; searches do not). */
int catalog_save_index(catalog *c, store_error *err);
/* Rebuild the index from the stored vectors and save it (clipd index rebuild). */
int catalog_rebuild_index(catalog *c, store_error *err);
/* Bring the index up to date with the changes committed to the catalog
 * after its sequence, by this process or (PostgreSQL) by other nodes:
 * *applied (may be NULL) adds and removes. Rebuilds from the stored vectors
 * when the sequence cannot be replayed (the model changed; *applied is then
 * the vectors of the rebuilt index, and the rebuild itself wakes
 * catalog_wait_applied's waiters). Numbers are
 * given in commit order, so a change is never skipped. */
int catalog_catch_up(catalog *c, size_t *applied, store_error *err);
/* 1 when other processes write to this catalog too (PostgreSQL): the
 * server then follows it, catalog_wait_changes to wake (LISTEN/NOTIFY),
 * catalog_catch_up to apply. catalog_wait_changes waits up to timeout_ms
 * for word of a commit: 1 when some came (or the wait just started
 * listening), 0 when none, negative when it failed (poll instead). */
int catalog_shared(const catalog *c);
int catalog_wait_changes(catalog *c, int timeout_ms, store_error *err);
/* The highest change sequence the index has applied. */
uint64_t catalog_applied_seq(catalog *c);
/* How far a shared catalog's replica is behind. The follower asks the
 * catalog (its primary) for the latest committed change number about once
 * a second, and at once when NOTIFY says a change came
 * (catalog_look_latest); the lag is the time since it first learned of
 * the oldest change the index has not applied yet (0 when it has applied
 * every one it knows of). A single-node catalog has no lag. */
struct catalog_lag {
	uint64_t applied;      /* the index's change sequence */
	uint64_t latest;       /* the newest change known to be committed (>= applied) */
	double lag_s;
};
int catalog_look_latest(catalog *c, store_error *err);
/* One step of a shared catalog's follower: catalog_catch_up, unless looked
 * (catalog_look_latest has just succeeded) and the index already holds the
 * newest change committed (the usual case when the notification was the
 * node's own write): then only the retrain rule runs (cat_maybe_retrain),
 * and the database is not asked again. */
int catalog_follow(catalog *c, int looked, size_t *applied, store_error *err);
void catalog_lag(catalog *c, struct catalog_lag *out);

/* The row cache's counters; 0 when the catalog has none (SQLite, a
 * --catalog-read node, row_cache_mb 0), else 1. Rows are invalidated by
 * the node's own writes before they answer, and by the follower for every
 * change it applies before the node reports it applied. */
int catalog_row_cache_stats(catalog *c, struct rowcache_stats *out);

/* Wait up to timeout_ms until the index has applied change seq (a
 * client's min_seq: reading its own write made through another node).
 * With a shared catalog the caller's thread catches up at once (one at a
 * time; the others wait to be woken by it or by the follower). 0 when
 * applied; 1 when the time ran out; STORE_ERR_UNAVAILABLE when the
 * catalog's database cannot be reached (the change cannot arrive). */
int catalog_wait_applied(catalog *c, uint64_t seq, int timeout_ms, store_error *err);

/* Wait for a background index build (tests, shutdown). */
void catalog_wait_index(catalog *c);

/* clipd check: database integrity, every row has its blob (with the right
 * size) and a vector, the index holds exactly the rows. fn gets one line per
 * problem. Returns the number of problems (0: healthy) or a negative status. */
int catalog_check(catalog *c, store_problem_fn fn, void *ud, store_error *err);

/* ---- another model (clipd reembed) -------------------------------------------- */

/* Model fingerprint: SHA-256 over the base names and contents of the
 * files (weights and configs), in name order, the per-file hashes cached
 * in the catalog (c may be NULL: no cache), and a precision other than
 * fp32 (NULL: fp32). hex receives 64 hex digits. */
int catalog_fingerprint(catalog *c, const char *const *files, const char *precision,
			char hex[STORE_FINGERPRINT_HEX], double *hash_ms, store_error *err);

/* Record a model without making it the one served (reembed's target). */
int catalog_put_model(catalog *c, const struct store_model *m, store_error *err);
/* The number of images, and of those with a vector under fingerprint. */
int catalog_count(catalog *c, int64_t *n, store_error *err);
int catalog_count_vectors(catalog *c, const char *fingerprint, int64_t *n, store_error *err);
/* Ids (ascending, > after_id) of images without a vector under
 * fingerprint, at most max of them into ids; *n set. */
int catalog_missing_vectors(catalog *c, const char *fingerprint, int64_t after_id, int64_t *ids,
			    size_t max, size_t *n, store_error *err);
/* Store the vectors of images ids[0..n) (n * dim floats) under fingerprint,
 * a recorded model of dimension dim, in one transaction; images deleted
 * meanwhile are skipped. The index is not touched (the model is not
 * served yet). */
int catalog_put_vectors(catalog *c, const int64_t *ids, size_t n, const char *fingerprint,
			const float *vecs, size_t dim, store_error *err);

/* After `clipd reembed` stored every vector under the new model (which
 * must be recorded with catalog_put_model): make it active, drop the old
 * vectors, rebuild and save the index. The catalog then serves the new model. */
int catalog_switch_model(catalog *c, const char *fingerprint, store_error *err);

/* ---- moving between catalogs (clipd catalog copy; catalog_copy.c) ---------------- */

/*
 * Copy a catalog into an empty one: a data directory (SQLite and its
 * originals) or a PostgreSQL database (a libpq URI) to the other kind, or
 * to another of the same kind. Every image row with its id and every
 * column, its original, its vector under the active model (vectors of
 * another model, which only an unfinished `clipd reembed` leaves, are not
 * copied) and the model's record. Batches of p->batch images, each one
 * transaction on the target that also records how far the copy got (the
 * setting "copy": "copying LAST_ID SOURCE"); a run that finds that record
 * for the same source continues after LAST_ID. Then the target's id
 * sequence and change sequence are moved past the source's (a "reset"
 * change last: index snapshots from before are rebuilt), and everything
 * is verified: counts, each row's columns, each original re-hashed from
 * the target, each vector bit for bit. Only then does the record say
 * "done N SOURCE"; a catalog whose record says "copying" is refused by
 * catalog_open until a copy run finishes it.
 *
 * Refused, with nothing written: the same source and target, a data
 * directory in use by a running clipd (its lock), a source whose schema is
 * not this clipd's, a target that is not empty (unless it is this copy,
 * unfinished), a source with photo-library images (libraries are not
 * copied). A corrupt database, a missing original or one whose digest does
 * not match its row stops the copy with the image named.
 */
struct catalog_copy_params {
	const char *from_dir, *from_uri;   /* the source: one of them */
	const char *to_dir, *to_uri;       /* the target: one of them */
	size_t batch;                      /* images per transaction (CATALOG_COPY_BATCH) */
	/* called after each batch and during verification; may be NULL */
	void (*progress)(void *ud, const char *stage, int64_t done, int64_t total);
	void *ud;
};
#define CATALOG_COPY_BATCH 256
#define CATALOG_COPY_MAX_BATCH 100000
struct catalog_copy_params catalog_copy_default_params(void);

struct catalog_copy_report {
	char from[512], to[512];           /* the databases, named */
	struct store_model model;          /* the active model copied */
	int resumed;                       /* continued a copy left unfinished */
	int64_t resumed_after;             /* ... after this id */
	int64_t images;                    /* images in the target at the end */
	int64_t copied;                    /* of them copied by this run */
	int64_t bytes;                     /* originals' bytes copied by this run */
	int64_t max_id;                    /* ids given from now on are above it */
	uint64_t seq;                      /* the target's change sequence at the end */
	int64_t verified;                  /* images verified (row, original, vector) */
	int64_t libraries, library_files;  /* photo libraries in the target, and the files their scans met */
	double seconds;
};
int catalog_copy(const struct catalog_copy_params *p, struct catalog_copy_report *rep, store_error *err);

#endif
