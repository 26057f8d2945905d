/*
 * The PostgreSQL backend's side of `clipd catalog copy` (catalog_copy.c):
 * rows inserted with the ids and columns another catalog gave them, with
 * their originals (a library image: its library path instead); the end of a copy (the id sequence and the change
 * counter moved past what was copied, then a "reset" change); the highest
 * id ever given; a setting; the name of the database. See backend.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgstore_internal.h"
#include "sha256.h"

#define RUN_FAIL(err) ((err) ? (err)->code : STORE_ERR_DB)

static int exec_params(struct pg_conn *c, const char *sql, int n, const char *const *vals, const int *lens,
		       const int *bin, const char *what, store_error *err)
{
	PGresult *r = pg_run(c, sql, n, vals, lens, bin, 0, PGRES_COMMAND_OK, 0, what, err);
	if (!r)
		return RUN_FAIL(err);
	PQclear(r);
	return 0;
}

static int set_setting(struct pg_conn *c, const char *key, const char *value, store_error *err)
{
	const char *vals[] = { key, value };
	return exec_params(c, "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2",
			   2, vals, NULL, NULL, "record the copy's progress", err);
}

/* One copied row: its original, the row with its id, its vector under the
 * active model, an "add" change; inside the transaction on c. */
static int copy_row(struct pg_conn *c, const struct store_copy_row *row, size_t dim, unsigned char *le,
		    store_error *err)
{
	const struct store_image *img = row->img;
	char id[24], w[24], h[24], b[24], cr[24], tu[24], d[24];
	uint64_t seq = 0;
	int lib = img->source_library != NULL;   /* its original is its file: no row of originals */
	if (img->id <= 0 || !sha256_is_hex(img->sha256) || !img->metadata || !row->vec ||
	    (!lib && (!row->data || row->len > INT32_MAX || (int64_t)row->len != img->bytes)) ||
	    (lib && (!img->source_path || !pg_valid_utf8(img->source_library) || !pg_valid_utf8(img->source_path))))
		return store_fail(err, STORE_ERR_INVALID, "image %lld: a bad row to copy%s", (long long)img->id,
				  lib ? " (its library path is not UTF-8, which a PostgreSQL catalog cannot hold?)" : "");
	if (!lib) {
		const char *vals[] = { img->sha256, row->data };
		const int lens[] = { 0, (int)row->len }, bin[] = { 0, 1 };
		int rc = exec_params(c, "INSERT INTO originals (sha256, data) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING",
				     2, vals, lens, bin, "copy an original", err);
		if (rc != 0)
			return rc;
	}
	{
		int has_taken = img->taken.text[0] != 0;
		const char *vals[] = { pg_i64(id, img->id), img->sha256, img->mime, pg_i64(w, img->width),
				       pg_i64(h, img->height), pg_i64(b, img->bytes), img->filename,
				       pg_i64(cr, img->created_at), img->metadata, has_taken ? img->taken.text : NULL,
				       has_taken ? pg_i64(tu, img->taken.us) : NULL };
		int rc = exec_params(c, "INSERT INTO images (id, sha256, mime, width, height, bytes, filename, created_at, "
				     "metadata, taken_at, taken_at_us) VALUES ($1::bigint, $2, $3, $4::integer, $5::integer, "
				     "$6::bigint, $7, $8::bigint, $9, $10, $11::bigint)",
				     11, vals, NULL, NULL, "copy an image row", err);
		if (rc != 0 && err) {
			char why[512];
			snprintf(why, sizeof why, "%.480s", err->msg);
			store_fail(err, rc, "image %lld: %s", (long long)img->id, why);
		}
		if (rc != 0)
			return rc;
	}
	{
		pg_vec_to_le(row->vec, dim, le);
		const char *vals[] = { id, (const char *)le, pg_i64(d, (int64_t)dim) };
		const int lens[] = { 0, (int)(dim * 4), 0 }, bin[] = { 0, 1, 0 };
		PGresult *r = pg_run(c, "INSERT INTO vectors (image_id, model, vec) SELECT $1::bigint, m.fingerprint, $2 "
				     "FROM models m JOIN settings s ON s.key = 'active_model' AND s.value = m.fingerprint "
				     "WHERE m.dim = $3::integer", 3, vals, lens, bin, 0, PGRES_COMMAND_OK, 0, "copy a vector", err);
		if (!r)
			return RUN_FAIL(err);
		int ok = !strcmp(PQcmdTuples(r), "1");
		PQclear(r);
		if (!ok)
			return store_fail(err, STORE_ERR_MODEL, "no active model of dimension %zu in the catalog", dim);
	}
	if (lib) {
		const char *vals[] = { id, img->source_library, img->source_path };
		int rc = exec_params(c, "INSERT INTO library_images (image_id, library, path) VALUES ($1::bigint, $2, $3)",
				     3, vals, NULL, NULL, "copy a library image's path", err);
		if (rc != 0)
			return rc;
	}
	return pg_append_change(c, "add", img->id, &seq, err);
}

int pgc_copy_in(void *db, const struct store_copy_row *rows, size_t n, size_t dim, const char *key, const char *value,
		store_error *err)
{
	struct pg_conn *c = NULL;
	unsigned char *le = malloc(dim * 4 + 1);
	if (!le)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	int rc = pg_take(db, &c, err);
	if (rc == 0) {
		rc = pg_cmd(c, "BEGIN", err);
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = copy_row(c, &rows[i], dim, le, err);
		if (rc == 0 && key)
			rc = set_setting(c, key, value, err);
		rc = pg_end(c, rc, err);
		pg_give(db, c);
	}
	free(le);
	return rc;
}

/* The image id sequence's highest value given, or the highest row's id,
 * or the caller's: whichever is largest (top). */
#define TOP_ID "GREATEST($1::bigint, (SELECT coalesce(max(id), 0) FROM images), " \
	       "coalesce(pg_sequence_last_value(pg_get_serial_sequence('images', 'id')::regclass), 0))"

int pgc_copy_end(void *db, int64_t max_id, uint64_t min_seq, const char *key, const char *value, store_error *err)
{
	struct pg_conn *c = NULL;
	char mi[24], ms[24];
	uint64_t seq = 0;
	if (max_id < 0 || min_seq > (uint64_t)INT64_MAX)
		return store_fail(err, STORE_ERR_INVALID, "bad sequence values");
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	if ((rc = pg_cmd(c, "BEGIN", err)) == 0) {
		const char *vals[] = { pg_i64(mi, max_id) };
		PGresult *r = pg_run(c, "WITH t AS (SELECT " TOP_ID " AS top) SELECT setval(pg_get_serial_sequence('images', "
				     "'id'), GREATEST(top, 1), top > 0) FROM t", 1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, 1,
				     "move the image id sequence on", err);
		rc = r ? 0 : RUN_FAIL(err);
		PQclear(r);
	}
	if (rc == 0) {
		const char *vals[] = { pg_i64(ms, (int64_t)min_seq) };
		rc = exec_params(c, "UPDATE clipd_counter SET seq = GREATEST(seq, $1::bigint) WHERE id = 1", 1, vals, NULL,
				 NULL, "move the change sequence on", err);
	}
	if (rc == 0)
		rc = pg_append_change(c, "reset", 0, &seq, err);
	if (rc == 0 && key)
		rc = set_setting(c, key, value, err);
	rc = pg_end(c, rc, err);
	pg_give(db, c);
	return rc;
}

int pgc_max_id(void *db, int64_t *id, store_error *err)
{
	struct pg_conn *c = NULL;
	*id = 0;
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	const char *vals[] = { "0" };
	PGresult *r = pg_run(c, "SELECT " TOP_ID, 1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, 1, "read the highest image id",
			     err);
	rc = !r ? RUN_FAIL(err) : PQntuples(r) != 1 ? store_fail(err, STORE_ERR_DB, "catalog database: no highest id")
						     : pg_col_i64(r, 0, 0, 0, id, err);
	PQclear(r);
	pg_give(db, c);
	return rc;
}

int pgc_setting_get(void *db, const char *key, char **value, store_error *err)
{
	struct pg_conn *c = NULL;
	*value = NULL;
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	const char *vals[] = { key };
	PGresult *r = pg_run(c, "SELECT value FROM settings WHERE key = $1", 1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, 1,
			     "read a setting", err);
	if (!r)
		rc = RUN_FAIL(err);
	else if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) && !(*value = strdup(PQgetvalue(r, 0, 0))))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	PQclear(r);
	pg_give(db, c);
	return rc;
}

int pgc_identity(void *db, char *buf, size_t len, store_error *err)
{
	struct pg_conn *c = NULL;
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	PGresult *r = pg_run(c, "SELECT current_database(), coalesce(host(inet_server_addr()), 'local socket'), "
			     "current_setting('port')", 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, 3, "name the database", err);
	if (!r)
		rc = RUN_FAIL(err);
	else if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0) || PQgetisnull(r, 0, 1) || PQgetisnull(r, 0, 2))
		rc = store_fail(err, STORE_ERR_DB, "catalog database: cannot name the database");
	else if ((size_t)snprintf(buf, len, "PostgreSQL database %s at %s port %s", PQgetvalue(r, 0, 0),
				  PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2)) >= len)
		rc = store_fail(err, STORE_ERR_DB, "catalog database: its name is too long");
	PQclear(r);
	pg_give(db, c);
	return rc;
}
