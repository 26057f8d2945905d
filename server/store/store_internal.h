/*
 * store_internal.h - shared by the SQLite store's files only: store.c
 * (migrations, open and close), store_conn.c (connections, statements,
 * transactions: what this header declares, unless noted), store_settings.c,
 * store_models.c, store_images.c, store_vectors.c, store_select.c,
 * store_check.c.
 */
#ifndef CLIPD_STORE_INTERNAL_H
#define CLIPD_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "store.h"

#define STORE_STMT_CACHE 32

/* A connection and its prepared statements, keyed by the address of the
 * (static) SQL text. Used by one thread at a time. */
struct store_conn {
	sqlite3 *db;
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} cache[STORE_STMT_CACHE];
	int n_cache;
	struct store_conn *next;   /* free list */
};

struct store {
	char *path;
	struct store_params p;

	struct store_conn *writer;    /* NULL when read-only */
	pthread_mutex_t wlock;        /* held for every write transaction */

	pthread_mutex_t rlock;        /* the reader pool */
	pthread_cond_t rcond;
	struct store_conn *free_readers;
	int n_readers;                /* open, free or in use */

	pthread_mutex_t mlock;        /* the active model cache */
	int have_active;
	struct store_model active;
};

/* Map a SQLite failure (rc, and the connection's message) to a status. */
int st_dberr(sqlite3 *db, int rc, store_error *err, const char *what);

/* A cached statement, reset and with its bindings cleared; NULL on failure
 * (then return STMT_FAIL(err)). */
sqlite3_stmt *st_prepare(struct store_conn *c, const char *sql, store_error *err);
#define STMT_FAIL(err) ((err) ? (err)->code : STORE_ERR_DB)
/* Reset a statement after use (always, so no read pins the WAL). */
void st_done(sqlite3_stmt *st);
int st_exec(struct store_conn *c, const char *sql, store_error *err);
/* Run a cached statement that takes one id as ?1 and returns no rows. */
int st_exec_id(struct store_conn *c, const char *sql, int64_t id, const char *what, store_error *err);

/* A pooled read connection and the cached statement sql on it: 0, or a
 * status (nothing is held then). st_reader_end resets the statement and
 * gives the connection back. */
int st_reader_prepare(store *s, const char *sql, struct store_conn **c, sqlite3_stmt **st,
		      store_error *err);
void st_reader_end(store *s, struct store_conn *c, sqlite3_stmt *st);

/* Run a cached one-row query (?1 bound to text unless NULL) on a pooled
 * read connection: 1 and *out = its first column, 0 when there is no row
 * (*out untouched), or a negative status (what names it). */
int st_read_int64(store *s, const char *sql, const char *text, int64_t *out, const char *what,
		  store_error *err);

/* Open a connection to s's database (the writer, or a reader) with the
 * pragmas every connection has; close one with its statements. NULL is fine. */
int st_conn_open(store *s, int writer, struct store_conn **out, store_error *err);
void st_conn_close(struct store_conn *c);

int st_reader_get(store *s, struct store_conn **out, store_error *err);
void st_reader_put(store *s, struct store_conn *c);
/* A read transaction on a pooled connection. */
int st_read_begin(store *s, struct store_conn **out, store_error *err);
void st_read_end(store *s, struct store_conn *c);

/* Lock the writer and BEGIN IMMEDIATE; st_write_end commits when rc is 0
 * (else rolls back), unlocks, and returns the final status. */
int st_write_begin(store *s, store_error *err);
int st_write_end(store *s, int rc, store_error *err);

/* A setting read on connection c; *value malloc'd or NULL. */
int st_setting_get(struct store_conn *c, const char *key, char **value, store_error *err);
/* Insert or update a setting on connection c (inside a write transaction). */
int st_setting_set(struct store_conn *c, const char *key, const char *value, store_error *err);

/* Read the active model into the cache (at open). */
int st_load_active(store *s, store_error *err);

/* The active model (cached); *found = 0 when none. */
void st_active(store *s, struct store_model *out, int *found);

/* float32 little-endian conversion of a vector. */
void st_vec_to_le(const float *v, size_t dim, void *out);
void st_vec_from_le(const void *in, size_t dim, float *out);

/* Append formatted text to the NUL-terminated buf of size len; -1 if it
 * did not fit (buf then holds a truncated string). */
int st_appendf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A statement over "images i": head (ending in a WHERE clause), the
 * selection's conditions (" AND ..."), then tail; the selection's
 * parameters are bound (?2 to ?6 and from ?7 on: the statement's own are ?1
 * and ST_SEL_FIRST_FREE onwards). Finish with st_selection_finish. */
struct st_selection_plan;
int st_selection_prepare(struct store_conn *c, const char *head, const struct store_selection *sel,
			 const char *tail, sqlite3_stmt **out, struct st_selection_plan **plan, store_error *err);
void st_selection_finish(sqlite3_stmt *st, struct st_selection_plan *plan);
#define ST_SEL_FIRST_FREE (7 + 2 * STORE_MAX_FILTERS)

/* store_json.c: the canonical form of stored metadata (see the file's
 * comment). st_json_canonical rewrites JSON text in (len bytes) into it:
 * 0 and *out (malloc'd, NUL-terminated, *out_len bytes), or
 * STORE_ERR_INVALID naming the problem and its byte (what names the
 * text: "metadata", "metadata patch"), STORE_ERR_TOO_LARGE past max_depth
 * levels of nesting, STORE_ERR_NOMEM. repair: refuse nothing but
 * structure (rows stored before the canonical form). */
int st_json_canonical(const char *in, size_t len, int max_depth, int repair, const char *what,
		      char **out, size_t *out_len, store_error *err);
/* The canonical text of a number (-1 if it is not finite). */
#define ST_JSON_NUMBER_MAX 32
#define ST_JSON_MAX_DEPTH 64   /* nesting any stored text may have; callers apply their own limit */
/* Rewrite every row's metadata in the canonical form, once per database
 * (the setting metadata_form records it; store_images.c). */
int st_metadata_upgrade(store *s, store_error *err);
int st_json_number_text(double v, char out[ST_JSON_NUMBER_MAX]);

#endif
