/*
 * store_types.h - the plain values the catalog's callers and every store
 * backend share: statuses and the error struct, the image row, the model
 * record, metadata filters. No function here touches a database; catalog.h
 * (the facade) and store.h (the SQLite store) both include this.
 *
 *     store_error err;
 *     struct store_image img;
 *     if (catalog_get(cat, 42, &img, &err) != 0)
 *             return reply(store_status_name(err.code), err.msg);   // "not_found", ...
 *     ...
 *     store_image_clear(&img);
 */
#ifndef CLIPD_STORE_TYPES_H
#define CLIPD_STORE_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* Statuses shared by store_ and catalog_ functions. The HTTP status each
 * maps to is the server's business; the usual one is given for guidance. */
enum store_status {
	STORE_OK = 0,
	STORE_ERR_INVALID = -1,    /* bad argument or client input: 400 */
	STORE_ERR_NOMEM = -2,      /* out of memory: 500 */
	STORE_ERR_IO = -3,         /* a file could not be read or written: 500 */
	STORE_ERR_NOSPACE = -4,    /* disk or quota full (ENOSPC, SQLITE_FULL): 507 */
	STORE_ERR_NOT_FOUND = -5,  /* no such image: 404 */
	STORE_ERR_DB = -6,         /* the database failed (corrupt, busy past the timeout): 500 */
	STORE_ERR_LOCKED = -7,     /* the data directory is held by another clipd process */
	STORE_ERR_SCHEMA = -8,     /* database newer than this binary, or not migrated (read-only) */
	STORE_ERR_MODEL = -9,      /* the stored vectors come from another model */
	STORE_ERR_INDEX = -10,     /* the vector index failed: 500 */
	STORE_ERR_TOO_LARGE = -11, /* metadata over CATALOG_MAX_METADATA_BYTES or _DEPTH: 413 */
	STORE_ERR_EXISTS = -12,    /* (store_insert only) the sha256 is already stored */
	STORE_ERR_UNAVAILABLE = -13, /* a shared catalog's database cannot be reached (no primary
	                              * answers, or only a standby for a write): 503, retry */
};

/* Room for a message that names two paths and a command to run (the
 * reembed advice names the model directory and the data directory): such
 * a message is never cut off. */
#define STORE_MSG_MAX (2 * 4096 + 512)

typedef struct store_error {
	int code;                 /* the status returned */
	char msg[STORE_MSG_MAX];  /* NUL-terminated, never empty after a failure */
} store_error;

/* Fill *err (which may be NULL) and return code: the one way the store and
 * the catalog report a failure. */
int store_fail(store_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A stable machine-readable name of a status: "not_found", "insufficient_storage", ... */
const char *store_status_name(int status);

/* ---- records ---------------------------------------------------------- */

#define STORE_SHA256_HEX 65   /* 64 hex digits and the NUL */
#define STORE_MIME_MAX 64
#define STORE_FINGERPRINT_HEX 65

/* When a photo was taken: the RFC 3339 text as the file states it
 * ("2023-06-17T14:03:22+02:00"; "-00:00" when the camera stated no
 * offset) and the same instant in microseconds since the epoch, UTC (what
 * filters compare). text "" is none (us is then 0). */
#define STORE_TAKEN_AT_MAX 40
struct store_taken_at {
	char text[STORE_TAKEN_AT_MAX];
	int64_t us;
};

/* One image row. filename and metadata are malloc'd and owned by the struct. */
struct store_image {
	int64_t id;                      /* rowid, never reused */
	char sha256[STORE_SHA256_HEX];   /* lower-case hex of the original bytes */
	char mime[STORE_MIME_MAX];       /* "image/jpeg", ... */
	int width, height;
	int64_t bytes;                   /* size of the original */
	char *filename;                  /* the client's filename, or NULL */
	int64_t created_at;              /* microseconds since the Unix epoch, UTC */
	char *metadata;                  /* compact JSON object text, never NULL once filled */
	struct store_taken_at taken;     /* the capture time, text "" when unknown */
	/* A library image (its original is a file in a library, not a copy
	 * in the data directory): the library's name and the file's path
	 * relative to its root. Both NULL for an uploaded image. */
	char *source_library;
	char *source_path;
};
void store_image_clear(struct store_image *img);            /* frees the strings, zeroes */
void store_images_free(struct store_image *imgs, size_t n); /* clears each, frees the array */

/* A model whose vectors the store holds. */
struct store_model {
	char fingerprint[STORE_FINGERPRINT_HEX]; /* SHA-256 hex over weights and configs */
	char name[128];                          /* for people: the model directory's name */
	size_t dim;                              /* embedding size */
	char layout[16];                         /* "hf" or "openclip" */
};

/* ---- filters ------------------------------------------------------------- */

/* A metadata filter as a client writes it: filter.KEY=VALUE without the
 * "filter." prefix. KEY is a path of segments separated by dots (a dot
 * inside a segment is written "\.", a backslash "\\"), optionally ending
 * in an operator segment:
 *
 *     album=Paris               the value at album is the string "Paris", or the
 *                               number or boolean whose text is given, or an
 *                               array holding such a value
 *     people.alice=true         a dotted path into nested objects
 *     year.gte=2020             .gte .lte .gt .lt: numbers numerically when the
 *                               value is a JSON number, else strings by byte
 *                               order (UTF-8, as memcmp); an array matches when
 *                               one of its elements does
 *     tags.exists=false         the path is present (any type, null too) or not
 *
 * Filters with the same KEY (operator included) are alternatives: any of
 * their values may match; different KEYs must all match. */
struct store_filter {
	const char *key;
	const char *value;
};
#define STORE_MAX_FILTERS 32        /* key=value pairs of one selection */
#define STORE_MAX_FILTER_KEY 128    /* bytes of a key as written */
#define STORE_MAX_FILTER_VALUE 1024 /* bytes of a value */
#define STORE_MAX_FILTER_DEPTH 8    /* segments of a path (metadata nests at most 8 deep) */

/* The rows a search or a listing considers: the one description of a
 * selection, from the query string (server/app) down to the SQL
 * (store_select.c). created_after / created_before (microseconds,
 * exclusive bounds) are used when has_after / has_before; taken_after /
 * taken_before (the same, on the capture time: rows without one never
 * match) when has_taken_after / has_taken_before. */
struct store_selection {
	const struct store_filter *filters;   /* n_filters, at most STORE_MAX_FILTERS */
	size_t n_filters;
	int has_after, has_before;
	int64_t created_after, created_before;
	int has_taken_after, has_taken_before;
	int64_t taken_after, taken_before;
	int64_t exclude_id;   /* 0: none (similar-to-image excludes the image itself) */
	const char *library;  /* NULL: any; else only images found in this library */
};

/* ---- libraries ----------------------------------------------------------- */

#define STORE_LIBRARY_NAME_MAX 64   /* bytes of a library's name: [A-Za-z0-9._-] */

/* A library's row: its root and the last finished scan. root malloc'd. */
struct store_library {
	char name[STORE_LIBRARY_NAME_MAX + 1];
	char *root;
	int64_t scan_seq;              /* scans begun */
	int64_t last_started_at, last_finished_at;   /* microseconds; 0: none */
	int64_t added, changed, moved, removed, failed;   /* of the last finished scan */
};

/* A file of a library as last recorded. path malloc'd. */
struct store_lib_file {
	char *path;
	int64_t dev, ino, size, mtime_ns;    /* 0 when never read */
	char sha256[STORE_SHA256_HEX];        /* "" when none */
	int64_t image_id;                     /* 0: none */
	int ignored, pending, failed;
	int64_t seen_scan;
};

/* A path a scan met: pending 1 when it is to be indexed (new or changed). */
struct store_lib_mark {
	const char *path;
	int pending;
};

/* What a scan did (recorded when it finishes). Microseconds for the times. */
struct store_lib_scan_figures {
	int64_t started_at, finished_at, added, changed, moved, removed, failed;
};

/* Figures of a library's files now. */
struct store_lib_counts {
	int64_t files, images, failed, pending, ignored, bytes;
};

/* A file that failed: why. Strings malloc'd. */
struct store_lib_error {
	char *path, *code, *msg;
	int status;
};


/* Each problem a check finds, as one line without a newline. */
typedef void (*store_problem_fn)(void *ud, const char *line);

void store_library_clear(struct store_library *l);
void store_lib_files_free(struct store_lib_file *f, size_t n);
void store_lib_errors_free(struct store_lib_error *e, size_t n);

#endif
