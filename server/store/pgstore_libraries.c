/*
 * The PostgreSQL backend's libraries: folders indexed in place, with the
 * SQLite store's semantics (store_libraries.c, store.h): their rows, the
 * files a scan met, what indexing a file came to, the end of a scan, the
 * figures, the failures, where a library image's original is; and the
 * lock that lets one node at a time scan a library.
 *
 * The lock is a session advisory lock, pg_try_advisory_lock(LIB_LOCK_CLASS,
 * libraries.id), taken on a connection of its own that the scanning node
 * keeps for the whole scan. A lease row would survive its node: a node
 * killed in a scan would hold the library until the lease ran out, and the
 * lease would need renewing from the scan's loop. A session lock ends with
 * its session: a node killed with kill -9 drops its connection, the server
 * releases the lock at once, and the next node to ask resumes the scan from
 * the files still pending. The price: a connection per library being
 * scanned, outside the pool, and if that connection breaks mid-scan the
 * lock is gone while the scan goes on (the writes are still transactions
 * of their own; two scans at once waste work, they do not corrupt rows).
 *
 * Paths are text (UTF-8) in PostgreSQL: a file whose path is not UTF-8 is
 * never recorded, so never indexed (README says so).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "pgstore_internal.h"
#include "sha256.h"

/* The first key of the libraries' advisory locks ("clip" in ASCII); the
 * second is the library's id. */
#define LIB_LOCK_CLASS "1668049264"

#define RUN_FAIL(err) ((err) ? (err)->code : STORE_ERR_DB)

#define FILE_COLS "path, coalesce(dev, 0), coalesce(ino, 0), coalesce(size, 0), coalesce(mtime_ns, 0), " \
	"coalesce(sha256, ''), coalesce(image_id, 0), ignored::int, pending::int, (err_code IS NOT NULL)::int, seen_scan"
#define FILE_NCOLS 11

/* Run a statement with text parameters on a connection of the pool, its
 * rows in *out (PQclear them). */
static int query(pgstore *s, const char *sql, int n, const char *const *vals, int cols, const char *what,
		 PGresult **out, store_error *err)
{
	struct pg_conn *c = NULL;
	*out = NULL;
	int rc = pg_take(s, &c, err);
	if (rc != 0)
		return rc;
	*out = pg_run(c, sql, n, vals, NULL, NULL, 0, cols ? PGRES_TUPLES_OK : PGRES_COMMAND_OK, cols, what, err);
	pg_give(s, c);
	return *out ? 0 : RUN_FAIL(err);
}

/* A write statement inside the caller's transaction. */
static int exec(struct pg_conn *c, const char *sql, int n, const char *const *vals, const char *what,
		store_error *err)
{
	PGresult *r = pg_run(c, sql, n, vals, NULL, NULL, 0, PGRES_COMMAND_OK, 0, what, err);
	if (!r)
		return RUN_FAIL(err);
	PQclear(r);
	return 0;
}

static char *dup_val(const PGresult *r, int row, int col)
{
	return strdup(PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* ---- libraries -------------------------------------------------------------- */

int pgl_library_put(void *db, const char *name, const char *root, store_error *err)
{
	if (!name || !*name || strlen(name) > STORE_LIBRARY_NAME_MAX || !root || !*root)
		return store_fail(err, STORE_ERR_INVALID, "bad library name or root");
	if (!pg_valid_utf8(name) || !pg_valid_utf8(root))
		return store_fail(err, STORE_ERR_INVALID, "a library's name and folder must be UTF-8 with the "
				  "PostgreSQL catalog");
	const char *vals[] = { name, root };
	PGresult *r = NULL;
	int rc = query(db, "INSERT INTO libraries (name, root) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET "
		       "root = excluded.root", 2, vals, 0, "record library", &r, err);
	PQclear(r);
	return rc;
}

int pgl_library_get(void *db, const char *name, struct store_library *out, store_error *err)
{
	memset(out, 0, sizeof *out);
	if (!name || !pg_valid_utf8(name))
		return store_fail(err, STORE_ERR_NOT_FOUND, "no library '%s'", name ? name : "");
	const char *vals[] = { name };
	PGresult *r = NULL;
	int rc = query(db, "SELECT root, scan_seq, coalesce(last_started_at, 0), coalesce(last_finished_at, 0), "
		       "last_added, last_changed, last_moved, last_removed, last_failed FROM libraries WHERE name = $1",
		       1, vals, 9, "read library", &r, err);
	if (rc == 0 && PQntuples(r) == 0)
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no library '%s'", name);
	int64_t *cols[] = { &out->scan_seq, &out->last_started_at, &out->last_finished_at, &out->added,
			    &out->changed, &out->moved, &out->removed, &out->failed };
	for (int i = 0; rc == 0 && i < 8; i++)
		rc = pg_col_i64(r, 0, i + 1, 0, cols[i], err);
	if (rc == 0 && !(out->root = dup_val(r, 0, 0)))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	PQclear(r);
	if (rc == 0)
		snprintf(out->name, sizeof out->name, "%s", name);
	return rc;
}

int pgl_library_scan_begin(void *db, const char *name, int64_t *scan, store_error *err)
{
	const char *vals[] = { name };
	PGresult *r = NULL;
	int rc = query(db, "UPDATE libraries SET scan_seq = scan_seq + 1 WHERE name = $1 RETURNING scan_seq", 1, vals,
		       1, "begin scan", &r, err);
	if (rc == 0)
		rc = PQntuples(r) == 1 ? pg_col_i64(r, 0, 0, 0, scan, err)
				       : store_fail(err, STORE_ERR_NOT_FOUND, "no library '%s'", name);
	PQclear(r);
	return rc;
}

int pgl_library_lock(void *db, const char *name, void **lock, store_error *err)
{
	struct pg_conn *c = NULL;
	*lock = NULL;
	int rc = pg_open(db, &c, err);
	if (rc != 0)
		return rc;
	const char *vals[] = { name };
	PGresult *r = pg_run(c, "SELECT pg_try_advisory_lock(" LIB_LOCK_CLASS ", id)::int FROM libraries WHERE name = $1",
			     1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, 1, "lock the library", err);
	int64_t got = 0;
	if (!r)
		rc = RUN_FAIL(err);
	else if (PQntuples(r) != 1)
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no library '%s'", name);
	else
		rc = pg_col_i64(r, 0, 0, 0, &got, err);
	PQclear(r);
	if (rc != 0 || !got) {
		pg_close(c);
		return rc ? rc : 0;
	}
	*lock = c;
	return 1;
}

void pgl_library_unlock(void *db, void *lock)
{
	(void)db;
	pg_close(lock);   /* the session ends, and its lock with it */
}

/* ---- files ------------------------------------------------------------------- */

static int file_from(const PGresult *r, int row, struct store_lib_file *f, int with_path, store_error *err)
{
	int64_t *cols[] = { &f->dev, &f->ino, &f->size, &f->mtime_ns };
	int64_t flags[3];
	int rc = 0;
	for (int i = 0; rc == 0 && i < 4; i++)
		rc = pg_col_i64(r, row, i + 1, 0, cols[i], err);
	if (rc == 0)
		rc = pg_col_i64(r, row, 6, 0, &f->image_id, err);
	for (int i = 0; rc == 0 && i < 3; i++)
		rc = pg_col_i64(r, row, 7 + i, 0, &flags[i], err);
	if (rc == 0)
		rc = pg_col_i64(r, row, 10, 0, &f->seen_scan, err);
	if (rc != 0)
		return rc;
	const char *sha = PQgetvalue(r, row, 5);
	snprintf(f->sha256, sizeof f->sha256, "%s", sha256_is_hex(sha) ? sha : "");
	f->ignored = flags[0] != 0;
	f->pending = flags[1] != 0;
	f->failed = flags[2] != 0;
	if (with_path && !(f->path = dup_val(r, row, 0)))
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	return 0;
}

int pgl_file_get(void *db, const char *lib, const char *path, struct store_lib_file *out, store_error *err)
{
	memset(out, 0, sizeof *out);
	if (!pg_valid_utf8(path))
		return store_fail(err, STORE_ERR_NOT_FOUND, "no such library file");
	const char *vals[] = { lib, path };
	PGresult *r = NULL;
	int rc = query(db, "SELECT " FILE_COLS " FROM library_files WHERE library = $1 AND path = $2", 2, vals,
		       FILE_NCOLS, "read library file", &r, err);
	if (rc == 0)
		rc = PQntuples(r) == 1 ? file_from(r, 0, out, 0, err)
				       : store_fail(err, STORE_ERR_NOT_FOUND, "no such library file");
	PQclear(r);
	return rc;
}

/* Append path to a text[] literal under construction: quoted, with '"'
 * and '\\' escaped (PostgreSQL's array input), after a comma but the first. */
static int array_add(struct dbuf *b, const char *path)
{
	int rc = dbuf_puts(b, b->len > 1 ? ",\"" : "\"");
	for (const char *p = path; *p && rc == 0; p++)
		rc = (*p == '"' || *p == '\\') ? dbuf_printf(b, "\\%c", *p) : dbuf_append(b, p, 1);
	return rc ? rc : dbuf_puts(b, "\"");
}

/* A batch of paths' records in one statement: the paths travel as one
 * text[] parameter (a path that is not UTF-8 as NULL, never recorded), and
 * each row says its path's place in it. */
int pgl_files_get(void *db, const char *lib, const char *const *paths, size_t n, struct store_lib_file *out,
		  unsigned char *found, store_error *err)
{
	struct dbuf arr = DBUF_INIT(64 << 20);
	PGresult *r = NULL;
	if (n == 0)
		return 0;
	memset(out, 0, n * sizeof *out);
	memset(found, 0, n);
	int rc = dbuf_puts(&arr, "{");
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = pg_valid_utf8(paths[i]) ? array_add(&arr, paths[i]) : dbuf_puts(&arr, arr.len > 1 ? ",NULL" : "NULL");
	if (rc == 0)
		rc = dbuf_append(&arr, "}", 2);
	if (rc != 0)
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0) {
		const char *vals[] = { lib, arr.data };
		rc = query(db, "SELECT " FILE_COLS ", p.ord FROM unnest($2::text[]) WITH ORDINALITY p(q, ord) "
			   "JOIN library_files f ON f.library = $1 AND f.path = p.q", 2, vals, FILE_NCOLS + 1,
			   "read library files", &r, err);
	}
	for (int row = 0; rc == 0 && row < PQntuples(r); row++) {
		int64_t ord = 0;
		if ((rc = pg_col_i64(r, row, FILE_NCOLS, 0, &ord, err)) != 0)
			break;
		if (ord < 1 || (uint64_t)ord > n || found[ord - 1]) {
			rc = store_fail(err, STORE_ERR_DB, "catalog database: a library file out of place");
			break;
		}
		if ((rc = file_from(r, row, &out[ord - 1], 0, err)) == 0)
			found[ord - 1] = 1;
	}
	PQclear(r);
	dbuf_free(&arr);
	return rc;
}

/* One statement for the files seen unchanged, one for those pending: the
 * paths travel as two text[] parameters. */
int pgl_mark(void *db, const char *lib, int64_t scan, const struct store_lib_mark *m, size_t n, store_error *err)
{
	struct pg_conn *c = NULL;
	struct dbuf seen = DBUF_INIT(64 << 20), pend = DBUF_INIT(64 << 20);
	char sc[24];
	if (n == 0)
		return 0;
	int rc = dbuf_puts(&seen, "{") | dbuf_puts(&pend, "{");
	for (size_t i = 0; i < n && rc == 0; i++)
		if (pg_valid_utf8(m[i].path))   /* else not a path PostgreSQL can hold: never recorded */
			rc = array_add(m[i].pending ? &pend : &seen, m[i].path);
	rc |= dbuf_append(&seen, "}", 2) | dbuf_append(&pend, "}", 2);
	if (rc != 0)
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0)
		rc = pg_take(db, &c, err);
	if (rc == 0) {
		const char *vals[] = { lib, seen.data, pg_i64(sc, scan), pend.data };
		rc = pg_cmd(c, "BEGIN", err);
		if (rc == 0)
			rc = exec(c, "UPDATE library_files f SET seen_scan = $3::bigint FROM unnest($2::text[]) p(path) "
				  "WHERE f.library = $1 AND f.path = p.path", 3, vals, "mark library files", err);
		vals[1] = pend.data;
		if (rc == 0)
			rc = exec(c, "INSERT INTO library_files (library, path, pending, seen_scan) SELECT $1, p.path, true, "
				  "$3::bigint FROM unnest($2::text[]) p(path) ON CONFLICT (library, path) DO UPDATE SET "
				  "pending = true, seen_scan = excluded.seen_scan", 3, vals, "mark library files", err);
		rc = pg_end(c, rc, err);
		pg_give(db, c);
	}
	dbuf_free(&seen);
	dbuf_free(&pend);
	return rc;
}

/* A page of a library's rows in path order: sql takes the library ($1),
 * the path to start after ($2) and the page size ($3); *rows gets room for
 * max rows of elem bytes (zeroed) for the caller to fill from *r. */
static int read_page(pgstore *s, const char *sql, int cols, const char *lib, const char *after, size_t max,
		     size_t elem, void **rows, PGresult **r, const char *what, store_error *err)
{
	char l[24];
	*rows = NULL;
	*r = NULL;
	if (max == 0 || max > 100000)
		return store_fail(err, STORE_ERR_INVALID, "max must be 1 to 100000");
	if (after && !pg_valid_utf8(after))
		return store_fail(err, STORE_ERR_INVALID, "after: not a path the PostgreSQL catalog holds (not UTF-8)");
	const char *vals[] = { lib, after ? after : "", pg_i64(l, (int64_t)max) };
	int rc = query(s, sql, 3, vals, cols, what, r, err);
	if (rc == 0 && (size_t)PQntuples(*r) > max)
		rc = store_fail(err, STORE_ERR_DB, "catalog database: more rows than asked");
	if (rc == 0 && !(*rows = calloc(max, elem)))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	return rc;
}

int pgl_pending(void *db, const char *lib, const char *after, size_t max, struct store_lib_file **out, size_t *n,
		store_error *err)
{
	PGresult *r = NULL;
	*n = 0;
	int rc = read_page(db, "SELECT " FILE_COLS " FROM library_files WHERE library = $1 AND pending AND path > $2 "
			   "ORDER BY path LIMIT $3::bigint", FILE_NCOLS, lib, after, max, sizeof **out, (void **)out, &r,
			   "read pending files", err);
	for (int row = 0; rc == 0 && row < PQntuples(r); row++) {
		(*n)++;
		rc = file_from(r, row, &(*out)[row], 1, err);
	}
	PQclear(r);
	if (rc != 0) {
		store_lib_files_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

/* ---- outcomes ---------------------------------------------------------------- */

/* The path's row after indexing: identity, digest, image or failure. */
static int put_file(struct pg_conn *c, const char *lib, const struct store_lib_outcome *o, const char *sha,
		    int64_t image_id, store_error *err)
{
	char dev[24], ino[24], size[24], mt[24], id[24], st[24];
	int failed = o->kind == STORE_LIB_FAILED;
	const char *msg = failed ? (o->err_msg ? o->err_msg : "") : NULL;
	if (msg && !pg_valid_utf8(msg))
		msg = "(a message that is not UTF-8)";
	const char *vals[] = {
		lib, o->path, pg_i64(dev, o->dev), pg_i64(ino, o->ino), pg_i64(size, o->size), pg_i64(mt, o->mtime_ns),
		sha && *sha ? sha : NULL, image_id > 0 ? pg_i64(id, image_id) : NULL,
		failed ? (o->err_code ? o->err_code : "internal_error") : NULL, failed ? pg_i64(st, o->err_status) : NULL,
		msg,
	};
	return exec(c, "INSERT INTO library_files (library, path, dev, ino, size, mtime_ns, sha256, image_id, pending, "
		    "err_code, err_status, err_msg) VALUES ($1, $2, $3::bigint, $4::bigint, $5::bigint, $6::bigint, $7, "
		    "$8::bigint, false, $9, $10::integer, $11) ON CONFLICT (library, path) DO UPDATE SET dev = excluded.dev, "
		    "ino = excluded.ino, size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, "
		    "image_id = excluded.image_id, pending = false, err_code = excluded.err_code, "
		    "err_status = excluded.err_status, err_msg = excluded.err_msg",
		    11, vals, "record library file", err);
}

/* The image's original is now this library path. */
static int put_source(struct pg_conn *c, int64_t id, const char *lib, const char *path, store_error *err)
{
	char k[24];
	const char *vals[] = { pg_i64(k, id), lib, path };
	return exec(c, "INSERT INTO library_images (image_id, library, path) VALUES ($1::bigint, $2, $3) "
		    "ON CONFLICT (image_id) DO UPDATE SET library = excluded.library, path = excluded.path",
		    3, vals, "record image source", err);
}

/* The id of the image with these bytes (0: none). */
static int id_of_sha(struct pg_conn *c, const char *sha, int64_t *id, store_error *err)
{
	const char *vals[] = { sha };
	*id = 0;
	PGresult *r = pg_run(c, "SELECT id FROM images WHERE sha256 = $1", 1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, 1,
			     "look up sha256", err);
	if (!r)
		return RUN_FAIL(err);
	int rc = PQntuples(r) == 1 ? pg_col_i64(r, 0, 0, 0, id, err) : 0;
	PQclear(r);
	return rc;
}

/* The vector of image id under the active model (which must have dim). */
static int put_vector(struct pg_conn *c, int64_t id, const unsigned char *le, size_t dim, store_error *err)
{
	char k[24], d[24];
	const char *vals[] = { pg_i64(k, id), (const char *)le, pg_i64(d, (int64_t)dim) };
	const int lens[] = { 0, (int)(dim * 4), 0 }, bin[] = { 0, 1, 0 };
	PGresult *r = pg_run(c, "INSERT INTO vectors (image_id, model, vec) SELECT $1::bigint, m.fingerprint, $2 "
			     "FROM models m JOIN settings s ON s.key = 'active_model' AND s.value = m.fingerprint "
			     "WHERE m.dim = $3::integer ON CONFLICT (image_id, model) DO UPDATE SET vec = excluded.vec",
			     3, vals, lens, bin, 0, PGRES_COMMAND_OK, 0, "store the vector", err);
	if (!r)
		return RUN_FAIL(err);
	int rc = strcmp(PQcmdTuples(r), "1") ? store_fail(err, STORE_ERR_MODEL, "no active model of dimension %zu "
							  "in the catalog", dim) : 0;
	PQclear(r);
	return rc;
}

static int check_image(const struct store_lib_outcome *o, store_error *err)
{
	const struct store_new_image *img = o->img;
	if (!img || !o->vec || !img->sha256 || !sha256_is_hex(img->sha256) || !img->mime || img->width <= 0 ||
	    img->height <= 0 || img->bytes < 0 || (img->filename && !pg_valid_utf8(img->filename)))
		return store_fail(err, STORE_ERR_INVALID, "bad image row");
	return 0;
}

/* A new image row for o (no original in the catalog: the file is), its
 * vector and its "add"; *exists when the bytes were stored meanwhile
 * (o->image_id is then that image). */
static int insert_image(struct pg_conn *c, struct store_lib_outcome *o, const unsigned char *le, size_t dim,
			int *exists, store_error *err)
{
	const struct store_new_image *img = o->img;
	char w[24], h[24], b[24], cr[24], tu[24];
	int has_taken = img->taken.text[0] != 0;
	const char *vals[] = { img->sha256, img->mime, pg_i64(w, img->width), pg_i64(h, img->height),
			       pg_i64(b, img->bytes), img->filename, pg_i64(cr, img->created_at),
			       img->metadata ? img->metadata : "{}", has_taken ? img->taken.text : NULL,
			       has_taken ? pg_i64(tu, img->taken.us) : NULL };
	*exists = 0;
	PGresult *r = pg_run(c, "INSERT INTO images (sha256, mime, width, height, bytes, filename, created_at, metadata, "
			     "taken_at, taken_at_us) VALUES ($1, $2, $3::integer, $4::integer, $5::bigint, $6, $7::bigint, $8, "
			     "$9, $10::bigint) ON CONFLICT (sha256) DO NOTHING RETURNING id",
			     10, vals, NULL, NULL, 0, PGRES_TUPLES_OK, 1, "store the image row", err);
	if (!r)
		return RUN_FAIL(err);
	int rc = 0;
	if (PQntuples(r) == 1) {
		rc = pg_col_i64(r, 0, 0, 0, &o->image_id, err);
	} else {
		*exists = 1;
		if ((rc = id_of_sha(c, img->sha256, &o->image_id, err)) == 0 && o->image_id == 0)
			rc = store_fail(err, STORE_ERR_DB, "catalog database: the image was stored and is gone");
	}
	PQclear(r);
	if (rc == 0 && !*exists && (rc = put_vector(c, o->image_id, le, dim, err)) == 0)
		rc = pg_append_change(c, "add", o->image_id, &o->seq, err);
	return rc;
}

/* New bytes under image o->replace_id: its row's digest and sizes, its
 * vector, a "remove" and an "add" change. *gone = 1 when the row is gone. */
static int replace_image(struct pg_conn *c, struct store_lib_outcome *o, const unsigned char *le, size_t dim,
			 int *gone, store_error *err)
{
	const struct store_new_image *img = o->img;
	char k[24], w[24], h[24], b[24], tu[24];
	*gone = 0;
	const char *key[] = { pg_i64(k, o->replace_id) };
	PGresult *r = pg_run(c, "SELECT sha256 FROM images WHERE id = $1::bigint FOR UPDATE", 1, key, NULL, NULL, 0,
			     PGRES_TUPLES_OK, 1, "read image", err);
	if (!r)
		return RUN_FAIL(err);
	if (PQntuples(r) == 1)
		snprintf(o->old_sha256, sizeof o->old_sha256, "%s", PQgetvalue(r, 0, 0));
	else
		*gone = 1;
	PQclear(r);
	if (*gone)
		return 0;
	int has_taken = img->taken.text[0] != 0;
	const char *vals[] = { key[0], img->sha256, img->mime, pg_i64(w, img->width), pg_i64(h, img->height),
			       pg_i64(b, img->bytes), has_taken ? img->taken.text : NULL,
			       has_taken ? pg_i64(tu, img->taken.us) : NULL };
	int rc = exec(c, "UPDATE images SET sha256 = $2, mime = $3, width = $4::integer, height = $5::integer, "
		      "bytes = $6::bigint, taken_at = $7, taken_at_us = $8::bigint WHERE id = $1::bigint",
		      8, vals, "update image", err);
	if (rc == 0)
		rc = put_vector(c, o->replace_id, le, dim, err);
	/* vectors of another model (a reembed in progress) were of the old
	 * pixels; an original the catalog held for the old bytes is no one's */
	if (rc == 0)
		rc = exec(c, "DELETE FROM vectors WHERE image_id = $1::bigint AND model <> "
			  "(SELECT value FROM settings WHERE key = 'active_model')", 1, key, "drop old vectors", err);
	const char *old[] = { o->old_sha256 };
	if (rc == 0)
		rc = exec(c, "DELETE FROM originals WHERE sha256 = $1 AND NOT EXISTS (SELECT 1 FROM images "
			  "WHERE sha256 = $1)", 1, old, "drop the old original", err);
	if (rc == 0)
		rc = pg_append_change(c, "remove", o->replace_id, &o->remove_seq, err);
	if (rc == 0)
		rc = pg_append_change(c, "add", o->replace_id, &o->seq, err);
	if (rc == 0)
		o->image_id = o->replace_id;
	return rc;
}

static int commit_one(struct pg_conn *c, const char *lib, struct store_lib_outcome *o, size_t dim, unsigned char *le,
		      store_error *err)
{
	int rc = 0, gone = 0, exists = 0;
	int64_t other = 0;
	o->image_id = 0;
	o->seq = o->remove_seq = 0;
	o->old_sha256[0] = 0;
	if (!o->path || !pg_valid_utf8(o->path))
		return store_fail(err, STORE_ERR_INVALID, "a library path must be UTF-8 with the PostgreSQL catalog");
	switch (o->kind) {
	case STORE_LIB_GONE: {
		const char *vals[] = { lib, o->path };
		return exec(c, "DELETE FROM library_files WHERE library = $1 AND path = $2", 2, vals,
			    "forget library file", err);
	}
	case STORE_LIB_FAILED:
		return put_file(c, lib, o, NULL, 0, err);
	case STORE_LIB_REPLACE:
		if ((rc = check_image(o, err)) != 0)
			return rc;
		pg_vec_to_le(o->vec, dim, le);
		if ((rc = id_of_sha(c, o->sha256, &other, err)) != 0)
			return rc;
		if (other == 0) {
			if ((rc = replace_image(c, o, le, dim, &gone, err)) != 0)
				return rc;
			if (!gone)
				break;
		}
		/* The bytes are stored under another id, or the image is gone: */
		/* fall through */
	case STORE_LIB_NEW:
		if ((rc = check_image(o, err)) != 0)
			return rc;
		pg_vec_to_le(o->vec, dim, le);
		if ((rc = insert_image(c, o, le, dim, &exists, err)) != 0)
			return rc;
		if (exists)   /* stored meanwhile (an upload): the path is that image */
			return put_file(c, lib, o, o->sha256, o->image_id, err);
		break;
	case STORE_LIB_LINK:
		if (!o->sha256 || !sha256_is_hex(o->sha256))
			return store_fail(err, STORE_ERR_INVALID, "bad sha256");
		if ((rc = id_of_sha(c, o->sha256, &o->image_id, err)) != 0)
			return rc;
		if (o->image_id == 0)
			return 0;   /* deleted meanwhile: the path stays pending for the next scan */
		return put_file(c, lib, o, o->sha256, o->image_id, err);
	}
	if ((rc = put_source(c, o->image_id, lib, o->path, err)) != 0)
		return rc;
	return put_file(c, lib, o, o->sha256, o->image_id, err);
}

int pgl_commit(void *db, const char *lib, struct store_lib_outcome *v, size_t n, size_t dim, store_error *err)
{
	struct pg_conn *c = NULL;
	if (n == 0)
		return 0;
	unsigned char *le = malloc(dim * 4 + 1);
	if (!le)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	int rc = pg_take(db, &c, err);
	if (rc == 0) {
		rc = pg_cmd(c, "BEGIN", err);
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = commit_one(c, lib, &v[i], dim, le, err);
		rc = pg_end(c, rc, err);
		pg_give(db, c);
	}
	if (rc != 0)
		for (size_t i = 0; i < n; i++) {
			v[i].image_id = 0;
			v[i].seq = v[i].remove_seq = 0;
		}
	free(le);
	return rc;
}

int pgl_image_refs(void *db, int64_t id, int64_t *refs, store_error *err)
{
	char k[24];
	int64_t own = 0;
	*refs = 0;
	const char *vals[] = { pg_i64(k, id) };
	PGresult *r = NULL;
	int rc = query(db, "SELECT (SELECT count(*) FROM library_files WHERE image_id = $1::bigint AND NOT ignored), "
		       "(SELECT count(*) FROM library_images WHERE image_id = $1::bigint)", 1, vals, 2,
		       "count library paths", &r, err);
	if (rc == 0 && (rc = pg_col_i64(r, 0, 0, 0, refs, err)) == 0)
		rc = pg_col_i64(r, 0, 1, 0, &own, err);
	PQclear(r);
	return rc != 0 ? rc : own > 0;
}

int pgl_other_device(void *db, const char *lib, const char *dir, int64_t dev, store_error *err)
{
	if (!pg_valid_utf8(dir))
		return 0;   /* no path below it was recorded */
	char d[24];
	const char *vals[] = { lib, dir, pg_i64(d, dev) };
	PGresult *r = NULL;
	int rc = query(db, "SELECT count(*) FROM (SELECT 1 FROM library_files WHERE library = $1 "
		       "AND starts_with(path, $2 || '/') AND coalesce(dev, 0) NOT IN (0, $3::bigint) LIMIT 1) f",
		       3, vals, 1, "read library files", &r, err);
	int64_t n = 0;
	if (rc == 0)
		rc = pg_col_i64(r, 0, 0, 0, &n, err);
	PQclear(r);
	return rc != 0 ? rc : n > 0;
}

/* One transaction: the image's row locked (a scan's end on another node
 * may be removing it), its library_images row gone, the bytes in. */
int pgl_adopt(void *db, int64_t id, const char *sha256, const void *data, size_t len, store_error *err)
{
	struct pg_conn *c = NULL;
	char k[24];
	int adopted = 0;
	if (len > INT_MAX)
		return store_fail(err, STORE_ERR_TOO_LARGE, "original too large");
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	if ((rc = pg_cmd(c, "BEGIN", err)) == 0) {
		const char *vals[] = { pg_i64(k, id) };
		PGresult *r = pg_run(c, "DELETE FROM library_images WHERE image_id = $1::bigint AND EXISTS "
				     "(SELECT 1 FROM images WHERE id = $1::bigint FOR UPDATE) RETURNING image_id", 1, vals,
				     NULL, NULL, 0, PGRES_TUPLES_OK, 1, "keep an upload's copy", err);
		if (!r)
			rc = RUN_FAIL(err);
		else
			adopted = PQntuples(r) > 0;
		PQclear(r);
	}
	if (rc == 0 && adopted) {
		const char *vals[] = { sha256, data };
		const int lens[] = { 0, (int)len }, bin[] = { 0, 1 };
		PGresult *r = pg_run(c, "INSERT INTO originals (sha256, data) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
				     2, vals, lens, bin, 0, PGRES_COMMAND_OK, 0, "store the original", err);
		if (!r)
			rc = RUN_FAIL(err);
		PQclear(r);
	}
	rc = pg_end(c, rc, err);
	pg_give(db, c);
	return rc != 0 ? rc : adopted;
}

/* ---- the end of a scan ------------------------------------------------------------ */

/* Forget the paths the scan did not see (outside keep), 256 at a time. */
static int forget_unseen(struct pg_conn *c, const char *lib, int64_t scan, const char *const *keep, size_t n_keep,
			 store_error *err)
{
	char sc[24];
	char *after = strdup("");
	int rc = after ? 0 : store_fail(err, STORE_ERR_NOMEM, "out of memory");
	while (rc == 0) {
		const char *vals[] = { lib, pg_i64(sc, scan), after };
		PGresult *r = pg_run(c, "SELECT path FROM library_files WHERE library = $1 AND seen_scan < $2::bigint "
				     "AND NOT ignored AND path > $3 ORDER BY path LIMIT 256", 3, vals, NULL, NULL, 0,
				     PGRES_TUPLES_OK, 1, "read unseen files", err);
		if (!r) {
			rc = RUN_FAIL(err);
			break;
		}
		int n = PQntuples(r);
		for (int i = 0; i < n && rc == 0; i++) {
			const char *path = PQgetvalue(r, i, 0);
			if (store_lib_path_kept(path, keep, n_keep))
				continue;
			const char *del[] = { lib, path };
			rc = exec(c, "DELETE FROM library_files WHERE library = $1 AND path = $2", 2, del,
				  "forget library file", err);
		}
		if (rc == 0 && n > 0) {
			free(after);
			if (!(after = strdup(PQgetvalue(r, n - 1, 0))))
				rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		}
		PQclear(r);
		if (n < 256)
			break;
	}
	free(after);
	return rc;
}

/* Library images left without their path: moved to another path of the
 * same bytes, or deleted. */
static int settle_orphans(struct pg_conn *c, const char *lib, struct store_lib_scan_figures *fig,
			  struct store_lib_gone *gone, store_error *err)
{
	size_t cap = 0;
	int64_t after = 0;
	int rc = 0;
	for (;;) {
		char a[24];
		int64_t ids[256];
		const char *vals[] = { lib, pg_i64(a, after) };
		PGresult *r = pg_run(c, "SELECT li.image_id FROM library_images li WHERE li.library = $1 AND NOT EXISTS "
				     "(SELECT 1 FROM library_files f WHERE f.library = li.library AND f.path = li.path "
				     "AND f.image_id = li.image_id AND NOT f.ignored) AND li.image_id > $2::bigint "
				     "ORDER BY li.image_id LIMIT 256", 2, vals, NULL, NULL, 0, PGRES_TUPLES_OK, 1,
				     "read orphaned images", err);
		if (!r)
			return RUN_FAIL(err);
		int n = PQntuples(r);
		for (int i = 0; i < n && rc == 0; i++)
			rc = pg_col_i64(r, i, 0, 0, &ids[i], err);
		PQclear(r);
		for (int i = 0; i < n && rc == 0; i++) {
			char k[24];
			const char *v2[] = { pg_i64(k, ids[i]), lib };
			r = pg_run(c, "SELECT library, path FROM library_files WHERE image_id = $1::bigint AND NOT ignored "
				   "ORDER BY library = $2 DESC, path LIMIT 1", 2, v2, NULL, NULL, 0, PGRES_TUPLES_OK, 2,
				   "read another path", err);
			if (!r) {
				rc = RUN_FAIL(err);
				break;
			}
			if (PQntuples(r) == 1) {
				rc = put_source(c, ids[i], PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), err);
				/* a row the nodes may have cached changed its source (a
				 * new or replaced image's source comes with its "add") */
				if (rc == 0)
					rc = pg_touch_rows(c, err);
				fig->moved++;
			} else {
				char sha[STORE_SHA256_HEX];
				uint64_t seq = 0;
				rc = pg_delete_image(c, ids[i], sha, &seq, err);
				if (rc == 0) {
					rc = store_lib_gone_add(gone, &cap, ids[i], sha, seq, err);
					fig->removed++;
				}
			}
			PQclear(r);
		}
		if (rc != 0 || n < 256)
			return rc;
		after = ids[n - 1];
	}
}

int pgl_finish(void *db, const char *lib, int64_t scan, const char *const *keep, size_t n_keep,
	       struct store_lib_scan_figures *fig, struct store_lib_gone *gone, store_error *err)
{
	struct pg_conn *c = NULL;
	memset(gone, 0, sizeof *gone);
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	if ((rc = pg_cmd(c, "BEGIN", err)) == 0 && (rc = forget_unseen(c, lib, scan, keep, n_keep, err)) == 0)
		rc = settle_orphans(c, lib, fig, gone, err);
	if (rc == 0) {
		char v[7][24];
		const char *vals[] = { lib, pg_i64(v[0], fig->started_at),
				       pg_i64(v[1], fig->finished_at ? fig->finished_at : clock_wall_us()),
				       pg_i64(v[2], fig->added), pg_i64(v[3], fig->changed), pg_i64(v[4], fig->moved),
				       pg_i64(v[5], fig->removed), pg_i64(v[6], fig->failed) };
		rc = exec(c, "UPDATE libraries SET last_started_at = $2::bigint, last_finished_at = $3::bigint, "
			  "last_added = $4::bigint, last_changed = $5::bigint, last_moved = $6::bigint, "
			  "last_removed = $7::bigint, last_failed = $8::bigint WHERE name = $1", 8, vals, "record scan", err);
	}
	rc = pg_end(c, rc, err);
	pg_give(db, c);
	if (rc != 0)
		store_lib_gone_clear(gone);
	return rc;
}

/* ---- reads ---------------------------------------------------------------------- */

int pgl_counts(void *db, const char *lib, struct store_lib_counts *out, store_error *err)
{
	const char *vals[] = { lib };
	PGresult *r = NULL;
	memset(out, 0, sizeof *out);
	int rc = query(db, "SELECT count(*), count(DISTINCT image_id), count(*) FILTER (WHERE err_code IS NOT NULL), "
		       "count(*) FILTER (WHERE pending), count(*) FILTER (WHERE ignored), "
		       "coalesce(sum(size) FILTER (WHERE image_id IS NOT NULL), 0)::bigint FROM library_files "
		       "WHERE library = $1", 1, vals, 6, "count library files", &r, err);
	int64_t *cols[] = { &out->files, &out->images, &out->failed, &out->pending, &out->ignored, &out->bytes };
	for (int i = 0; rc == 0 && i < 6; i++)
		rc = pg_col_i64(r, 0, i, 0, cols[i], err);
	PQclear(r);
	return rc;
}

int pgl_errors(void *db, const char *lib, const char *after, size_t max, struct store_lib_error **out, size_t *n,
	       store_error *err)
{
	PGresult *r = NULL;
	*n = 0;
	int rc = read_page(db, "SELECT path, err_code, coalesce(err_status, 0), coalesce(err_msg, '') FROM library_files "
			   "WHERE library = $1 AND err_code IS NOT NULL AND path > $2 ORDER BY path LIMIT $3::bigint", 4,
			   lib, after, max, sizeof **out, (void **)out, &r, "read library failures", err);
	for (int row = 0; rc == 0 && row < PQntuples(r); row++) {
		struct store_lib_error *e = &(*out)[row];
		int64_t status = 0;
		(*n)++;
		if ((rc = pg_col_i64(r, row, 2, 0, &status, err)) != 0)
			break;
		e->status = (int)status;
		e->path = dup_val(r, row, 0);
		e->code = dup_val(r, row, 1);
		e->msg = dup_val(r, row, 3);
		if (!e->path || !e->code || !e->msg)
			rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	}
	PQclear(r);
	if (rc != 0) {
		store_lib_errors_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

int pgl_source(void *db, int64_t id, char **root, char **path, int64_t *size, int64_t *mtime_ns, store_error *err)
{
	char k[24];
	const char *vals[] = { pg_i64(k, id) };
	PGresult *r = NULL;
	*root = *path = NULL;
	int rc = query(db, "SELECT l.root, li.path, coalesce(f.size, 0), coalesce(f.mtime_ns, 0) FROM library_images li "
		       "JOIN libraries l ON l.name = li.library JOIN library_files f ON f.library = li.library "
		       "AND f.path = li.path WHERE li.image_id = $1::bigint", 1, vals, 4, "read image source", &r, err);
	if (rc == 0 && PQntuples(r) == 0)
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "image %lld is not a library image", (long long)id);
	if (rc == 0 && (rc = pg_col_i64(r, 0, 2, 0, size, err)) == 0 && (rc = pg_col_i64(r, 0, 3, 0, mtime_ns, err)) == 0) {
		*root = dup_val(r, 0, 0);
		*path = dup_val(r, 0, 1);
		if (!*root || !*path) {
			free(*root);
			free(*path);
			*root = *path = NULL;
			rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		}
	}
	PQclear(r);
	return rc;
}
