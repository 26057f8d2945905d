/*
 * The PostgreSQL backend's rows: images and their originals, vectors, the
 * change sequence, selections (the same filter semantics as the SQLite
 * store's store_select.c, in jsonb). See pgstore.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dbuf.h"
#include "pgstore_internal.h"
#include "sha256.h"
#include "utf8.h"

#define COLS "i.id, i.sha256, i.mime, i.width, i.height, i.bytes, i.filename, i.created_at, i.metadata, " \
	     "i.taken_at, i.taken_at_us, l.library, l.path"
/* every read of COLS joins an image's library source */
#define FROM_IMAGES " FROM images i LEFT JOIN library_images l ON l.image_id = i.id"
#define NCOLS 13
#define ORIGINAL_PIECE (1 << 20)   /* bytes of an original read at once */

#define RUN_FAIL(err) ((err) ? (err)->code : STORE_ERR_DB)

/* ---- rows ------------------------------------------------------------------------ */

static int row_from(const PGresult *r, int row, struct store_image *out, store_error *err)
{
	int64_t id, w, h, bytes, created, taken_us;
	memset(out, 0, sizeof *out);
	int rc;
	if ((rc = pg_col_i64(r, row, 0, 0, &id, err)) != 0 || (rc = pg_col_i64(r, row, 3, 0, &w, err)) != 0 ||
	    (rc = pg_col_i64(r, row, 4, 0, &h, err)) != 0 || (rc = pg_col_i64(r, row, 5, 0, &bytes, err)) != 0 ||
	    (rc = pg_col_i64(r, row, 7, 0, &created, err)) != 0 || (rc = pg_col_i64(r, row, 10, 1, &taken_us, err)) != 0)
		return rc;
	const char *sha = PQgetvalue(r, row, 1), *mime = PQgetvalue(r, row, 2);
	if (!sha256_is_hex(sha) || strlen(mime) >= STORE_MIME_MAX || w <= 0 || h <= 0 || w > INT32_MAX ||
	    h > INT32_MAX || PQgetisnull(r, row, 8))
		return store_fail(err, STORE_ERR_DB, "catalog database: image row %lld is malformed", (long long)id);
	out->id = id;
	memcpy(out->sha256, sha, STORE_SHA256_HEX);
	snprintf(out->mime, sizeof out->mime, "%s", mime);
	out->width = (int)w;
	out->height = (int)h;
	out->bytes = bytes;
	out->created_at = created;
	if (!PQgetisnull(r, row, 9)) {
		const char *t = PQgetvalue(r, row, 9);
		if (strlen(t) >= sizeof out->taken.text)
			return store_fail(err, STORE_ERR_DB, "catalog database: image %lld: bad taken_at", (long long)id);
		snprintf(out->taken.text, sizeof out->taken.text, "%s", t);
		out->taken.us = taken_us;
	}
	out->metadata = strdup(PQgetvalue(r, row, 8));
	if (!PQgetisnull(r, row, 6))
		out->filename = strdup(PQgetvalue(r, row, 6));
	int lib = !PQgetisnull(r, row, 11) && !PQgetisnull(r, row, 12);
	if (lib) {
		out->source_library = strdup(PQgetvalue(r, row, 11));
		out->source_path = strdup(PQgetvalue(r, row, 12));
	}
	if (!out->metadata || (!PQgetisnull(r, row, 6) && !out->filename) ||
	    (lib && (!out->source_library || !out->source_path))) {
		store_image_clear(out);
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	}
	return 0;
}

/* One row by a text key ($1). */
static int get_one(pgstore *s, const char *sql, const char *key, struct store_image *out, store_error *err)
{
	struct pg_conn *c = NULL;
	memset(out, 0, sizeof *out);
	int rc = pg_take_read(s, &c, err);
	if (rc != 0)
		return rc;
	const char *vals[] = { key };
	PGresult *r = pg_run(c, sql, 1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, NCOLS, "read an image", err);
	if (!r)
		rc = RUN_FAIL(err);
	else if (PQntuples(r) == 0)
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no image %s", key);
	else
		rc = row_from(r, 0, out, err);
	PQclear(r);
	pg_give(s, c);
	return rc;
}

int pgr_get(void *db, int64_t id, struct store_image *out, store_error *err)
{
	char k[24];
	return get_one(db, "SELECT " COLS FROM_IMAGES " WHERE i.id = $1::bigint", pg_i64(k, id), out, err);
}

int pgr_get_by_sha256(void *db, const char *sha256, struct store_image *out, store_error *err)
{
	if (!sha256 || !sha256_is_hex(sha256)) {
		memset(out, 0, sizeof *out);
		return store_fail(err, STORE_ERR_NOT_FOUND, "no image with that sha256");
	}
	return get_one(db, "SELECT " COLS FROM_IMAGES " WHERE i.sha256 = $1", sha256, out, err);
}

int pgr_sha256_exists(void *db, const char *sha256, store_error *err)
{
	struct store_image img;
	int rc = pgr_get_by_sha256(db, sha256, &img, err);
	store_image_clear(&img);
	return rc == 0 ? 1 : rc == STORE_ERR_NOT_FOUND ? 0 : rc;
}

/* "{1,2,3}": an int8[] parameter. *out malloc'd. */
static int id_array(const int64_t *ids, size_t n, char **out, store_error *err)
{
	struct dbuf b = DBUF_INIT(n * 22 + 16);
	int rc = dbuf_puts(&b, "{");
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = dbuf_printf(&b, "%s%lld", i ? "," : "", (long long)ids[i]);
	if (rc == 0)
		rc = dbuf_puts(&b, "}");
	if (rc != 0 || !(*out = dbuf_take(&b, NULL))) {
		dbuf_free(&b);
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	}
	return 0;
}

int pgr_get_many(void *db, const int64_t *ids, size_t n, struct store_image *out, unsigned char *found,
		 store_error *err)
{
	memset(out, 0, n * sizeof *out);
	memset(found, 0, n);
	if (n == 0)
		return 0;
	char *arr = NULL;
	struct pg_conn *c = NULL;
	int rc = id_array(ids, n, &arr, err);
	if (rc != 0)
		return rc;
	if ((rc = pg_take_read(db, &c, err)) != 0) {
		free(arr);
		return rc;
	}
	const char *vals[] = { arr };
	PGresult *r = pg_run(c, "SELECT " COLS FROM_IMAGES " WHERE i.id = ANY ($1::bigint[])", 1, vals, NULL, NULL,
			     0, PGRES_TUPLES_OK, NCOLS, "read images", err);
	if (!r)
		rc = RUN_FAIL(err);
	for (int row = 0; r && row < PQntuples(r) && rc == 0; row++) {
		struct store_image img;
		if ((rc = row_from(r, row, &img, err)) != 0)
			break;
		size_t i = 0;
		while (i < n && (ids[i] != img.id || found[i]))
			i++;
		if (i == n) {
			store_image_clear(&img);
			continue;
		}
		out[i] = img;
		found[i] = 1;
		/* the same id asked twice: a copy for each */
		for (size_t j = i + 1; j < n; j++)
			if (ids[j] == img.id && !found[j]) {
				struct store_image *o = &out[j];
				*o = img;
				o->metadata = strdup(img.metadata);
				o->filename = img.filename ? strdup(img.filename) : NULL;
				o->source_library = img.source_library ? strdup(img.source_library) : NULL;
				o->source_path = img.source_path ? strdup(img.source_path) : NULL;
				found[j] = 1;
				if (!o->metadata || (img.filename && !o->filename) ||
				    (img.source_library && (!o->source_library || !o->source_path)))
					rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
			}
	}
	PQclear(r);
	pg_give(db, c);
	free(arr);
	if (rc != 0)
		for (size_t i = 0; i < n; i++) {
			store_image_clear(&out[i]);
			found[i] = 0;
		}
	return rc;
}

int pgr_count(void *db, int64_t *n, store_error *err)
{
	struct pg_conn *c = NULL;
	*n = 0;
	int rc = pg_take_read(db, &c, err);
	if (rc != 0)
		return rc;
	PGresult *r = pg_run(c, "SELECT count(*) FROM images", 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, 1,
			     "count images", err);
	rc = r ? pg_col_i64(r, 0, 0, 0, n, err) : RUN_FAIL(err);
	PQclear(r);
	pg_give(db, c);
	return rc;
}

/* ---- selections ------------------------------------------------------------------------ */

void pg_stmt_free(struct pg_stmt *q)
{
	dbuf_free(&q->sql);
	for (int i = 0; i < q->n; i++)
		free(q->own[i]);
}

int pg_param(struct pg_stmt *q, const char *v, size_t len)
{
	if (q->n >= SEL_MAX_PARAMS)
		return -1;
	char *p = malloc(len + 1);
	if (!p)
		return -1;
	memcpy(p, v, len);
	p[len] = 0;
	q->own[q->n] = p;
	q->vals[q->n] = p;
	return ++q->n;
}

int pg_param_i64(struct pg_stmt *q, int64_t v)
{
	char b[24];
	pg_i64(b, v);
	return pg_param(q, b, strlen(b));
}

/* The segments of a path "$."a"."b"" (a label spells a backslash of the
 * key as two: store_select.c): their count, or -1 if it is not one. */
static int path_segments(const char *path, char seg[][STORE_MAX_FILTER_KEY + 1], size_t *len, int max)
{
	int n = 0;
	const char *p = path + 1;   /* after "$" */
	while (p[0] == '.' && p[1] == '"') {
		const char *end = strchr(p + 2, '"');
		if (!end || n == max)
			return -1;
		size_t k = 0;
		for (const char *c = p + 2; c < end; c++) {
			if (*c == '\\' && c + 1 < end && c[1] == '\\')
				c++;
			if (k >= STORE_MAX_FILTER_KEY)
				return -1;
			seg[n][k++] = *c;
		}
		seg[n][k] = 0;
		len[n++] = k;
		p = end + 1;
	}
	return *p ? -1 : n;
}

/* The jsonb at a path (its n segments) of i.meta: i.meta -> $n -> $m (a
 * text key on an array gives NULL, as SQLite's quoted path segments do). */
static int path_expr(struct pg_stmt *q, char seg[][STORE_MAX_FILTER_KEY + 1], const size_t *len, int n,
		     struct dbuf *out)
{
	int rc = dbuf_puts(out, "(i.meta");
	for (int i = 0; i < n && rc == 0; i++) {
		int k = pg_param(q, seg[i], len[i]);
		rc = k < 0 ? -1 : dbuf_printf(out, " -> $%d::text", k);
	}
	return rc ? rc : dbuf_puts(out, ")");
}

/* The document {"a": {"b": LEAF}} for a path's segments: LEAF the value
 * (a JSON text), in an array when arr. */
static int containment_doc(struct dbuf *b, char seg[][STORE_MAX_FILTER_KEY + 1], int n, const char *leaf, int arr)
{
	int rc = 0;
	b->len = 0;
	for (int i = 0; i < n && rc == 0; i++)
		rc = dbuf_puts(b, "{") | store_json_string(b, seg[i]) | dbuf_puts(b, ":");
	rc |= dbuf_puts(b, arr ? "[" : "") | dbuf_puts(b, leaf) | dbuf_puts(b, arr ? "]" : "");
	for (int i = 0; i < n && rc == 0; i++)
		rc = dbuf_puts(b, "}");
	return rc;
}

/* For an equality group whose values are all text: " AND (i.meta @> $a OR
 * ...)", the documents holding one of them at the path, as itself or in an
 * array (and as true or false for "true" and "false"), which the index on
 * meta (jsonb_path_ops) finds without reading every row. A superset of
 * the group's matches: the exact condition after it decides. Numbers are
 * left out (the filter compares them as float8, containment as numeric),
 * and so is a group with one. */
static int containment_sql(struct pg_stmt *q, const struct st_selection_plan *plan, size_t g,
			   char seg[][STORE_MAX_FILTER_KEY + 1], int nseg)
{
	const char *const *texts;
	int numeric;
	size_t n = store_plan_group_texts(plan, g, &texts, &numeric);
	if (numeric || n == 0 || nseg <= 0)
		return 0;
	struct dbuf doc = DBUF_INIT(64 * 1024), leaf = DBUF_INIT(8 * 1024);
	int rc = dbuf_puts(&q->sql, " AND (");
	for (size_t i = 0; i < n && rc == 0; i++) {
		int as_bool = !strcmp(texts[i], "true") || !strcmp(texts[i], "false");
		for (int form = 0; form < (as_bool ? 4 : 2) && rc == 0; form++) {
			leaf.len = 0;
			rc = form < 2 ? store_json_string(&leaf, texts[i]) : dbuf_puts(&leaf, texts[i]);
			rc |= dbuf_append(&leaf, "", 1);
			rc |= containment_doc(&doc, seg, nseg, leaf.data, form % 2);
			int k = rc ? -1 : pg_param(q, doc.data, doc.len);
			rc = k < 0 ? -1 : dbuf_printf(&q->sql, "%si.meta @> $%d::jsonb", i || form ? " OR " : "", k);
		}
	}
	dbuf_free(&doc);
	dbuf_free(&leaf);
	return rc ? rc : dbuf_puts(&q->sql, ")");
}

static const char *const op_sql[] = { "=", ">=", "<=", ">", "<" };

int pg_valid_utf8(const char *s)
{
	size_t n = strlen(s);
	unsigned cp;
	for (size_t at = 0, k; at < n; at += k)
		if ((k = utf8_decode((const unsigned char *)s + at, n - at, &cp)) == 0)
			return 0;
	return 1;
}

int pg_selection_sql(struct pg_stmt *q, const struct store_selection *sel, store_error *err)
{
	struct st_selection_plan *plan = NULL;
	struct dbuf x = DBUF_INIT(64 * 1024);
	if (!sel)
		return 0;
	int rc = store_selection_plan(sel, &plan, err);
	if (rc != 0)
		return rc;
	/* PostgreSQL's text is UTF-8: a key or value that is not cannot be a
	 * parameter (SQLite's catalog would compare its bytes) */
	for (size_t i = 0; i < sel->n_filters; i++)
		if (!pg_valid_utf8(sel->filters[i].key) || !pg_valid_utf8(sel->filters[i].value)) {
			store_selection_plan_free(plan);
			return store_fail(err, STORE_ERR_INVALID, "%.*s: a filter must be UTF-8 with the PostgreSQL catalog",
					  STORE_MAX_FILTER_KEY, pg_valid_utf8(sel->filters[i].key) ? sel->filters[i].key : "a key");
		}
	struct dbuf *b = &q->sql;
	int k = 0;
	if (sel->has_after && (k = pg_param_i64(q, sel->created_after)) > 0)
		rc |= dbuf_printf(b, " AND i.created_at > $%d::bigint", k);
	if (sel->has_before && (k = pg_param_i64(q, sel->created_before)) > 0)
		rc |= dbuf_printf(b, " AND i.created_at < $%d::bigint", k);
	if (sel->exclude_id && (k = pg_param_i64(q, sel->exclude_id)) > 0)
		rc |= dbuf_printf(b, " AND i.id <> $%d::bigint", k);
	if (sel->has_taken_after && (k = pg_param_i64(q, sel->taken_after)) > 0)
		rc |= dbuf_printf(b, " AND i.taken_at_us > $%d::bigint", k);
	if (sel->has_taken_before && (k = pg_param_i64(q, sel->taken_before)) > 0)
		rc |= dbuf_printf(b, " AND i.taken_at_us < $%d::bigint", k);
	if (sel->library && (k = pg_param(q, sel->library, strlen(sel->library))) > 0)
		rc |= dbuf_printf(b, " AND EXISTS (SELECT 1 FROM library_files lf WHERE lf.image_id = i.id "
				  "AND lf.library = $%d AND NOT lf.ignored)", k);
	if (k < 0)
		rc = -1;
	for (size_t g = 0; g < store_plan_groups(plan) && rc == 0; g++) {
		const char *path, *values;
		int op;
		store_plan_group(plan, g, &path, &op, &values);
		char seg[STORE_MAX_FILTER_DEPTH][STORE_MAX_FILTER_KEY + 1];
		size_t len[STORE_MAX_FILTER_DEPTH];
		int nseg = path_segments(path, seg, len, STORE_MAX_FILTER_DEPTH);
		x.len = 0;
		if (nseg < 0 || path_expr(q, seg, len, nseg, &x) != 0 || dbuf_append(&x, "", 1) != 0 ||
		    (k = pg_param(q, values, strlen(values))) < 0) {
			rc = -1;
			break;
		}
		const char *e = x.data;
		if (op == STORE_SEL_EQ && (rc = containment_sql(q, plan, g, seg, nseg)) != 0)
			break;
		if (op == STORE_SEL_EXISTS) {
			rc = dbuf_printf(b, " AND (%s IS NOT NULL)::int IN (SELECT t.x::int FROM "
					 "jsonb_array_elements_text($%d::jsonb) t(x))", e, k);
			continue;
		}
		/* The value at the path, or each element when it is an array; an
		 * object matches nothing, nor does a missing path. */
		rc = dbuf_printf(b, " AND EXISTS (SELECT 1 FROM jsonb_array_elements(CASE jsonb_typeof(%s) WHEN 'array' "
				 "THEN %s WHEN 'object' THEN '[]'::jsonb ELSE jsonb_build_array(%s) END) e(v), "
				 "jsonb_array_elements($%d::jsonb) w(v) WHERE ", e, e, e, k);
		if (op == STORE_SEL_EQ)
			rc |= dbuf_puts(b, "(jsonb_typeof(e.v) = 'string' AND jsonb_typeof(w.v) = 'string' AND e.v = w.v)"
					" OR (jsonb_typeof(e.v) = 'number' AND jsonb_typeof(w.v) = 'number'"
					" AND (e.v #>> '{}')::float8 = (w.v #>> '{}')::float8)"
					" OR (jsonb_typeof(e.v) = 'boolean' AND jsonb_typeof(w.v) = 'string'"
					" AND (e.v #>> '{}') = (w.v #>> '{}')))");
		else
			rc |= dbuf_printf(b, "(jsonb_typeof(e.v) = 'number' AND jsonb_typeof(w.v) = 'number'"
					  " AND (e.v #>> '{}')::float8 %s (w.v #>> '{}')::float8)"
					  " OR (jsonb_typeof(e.v) = 'string' AND jsonb_typeof(w.v) = 'string'"
					  " AND (e.v #>> '{}') COLLATE \"C\" %s (w.v #>> '{}') COLLATE \"C\"))",
					  op_sql[op], op_sql[op]);
	}
	dbuf_free(&x);
	store_selection_plan_free(plan);
	return rc ? store_fail(err, STORE_ERR_INVALID, "selection too complex") : 0;
}

int pgr_list(void *db, const struct store_selection *sel, int64_t before_id, size_t limit, struct store_image **items,
	     size_t *n, store_error *err)
{
	struct pg_stmt q = { .sql = DBUF_INIT(256 * 1024) };
	struct pg_conn *c = NULL;
	*items = NULL;
	*n = 0;
	int b = pg_param_i64(&q, before_id), l = pg_param_i64(&q, (int64_t)limit);
	int rc = b > 0 && l > 0 ? 0 : store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0 && dbuf_puts(&q.sql, "SELECT " COLS FROM_IMAGES " WHERE ($1::bigint = 0 OR i.id < $1::bigint)"))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0)
		rc = pg_selection_sql(&q, sel, err);
	if (rc == 0 && dbuf_puts(&q.sql, " ORDER BY i.id DESC LIMIT $2::bigint"))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0 && dbuf_append(&q.sql, "", 1))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0)
		rc = pg_take_read(db, &c, err);
	PGresult *r = NULL;
	if (rc == 0 && !(r = pg_run(c, q.sql.data, q.n, q.vals, NULL, NULL, 0, PGRES_TUPLES_OK, NCOLS, "list images",
				    err)))
		rc = RUN_FAIL(err);
	size_t rows = r ? (size_t)PQntuples(r) : 0;
	if (rc == 0 && rows > limit)
		rc = store_fail(err, STORE_ERR_DB, "catalog database: more rows than asked");
	struct store_image *v = NULL;
	if (rc == 0 && rows && !(v = calloc(rows, sizeof *v)))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	size_t got = 0;
	for (; rc == 0 && got < rows; got++)
		if ((rc = row_from(r, (int)got, &v[got], err)) != 0)
			break;
	PQclear(r);
	pg_give(db, c);
	pg_stmt_free(&q);
	if (rc != 0) {
		store_images_free(v, got);
		return rc;
	}
	*items = v;
	*n = got;
	return 0;
}

/* ---- vectors ---------------------------------------------------------------------- */

static void vec_from_le(const unsigned char *in, size_t dim, float *out)
{
	for (size_t i = 0; i < dim; i++) {
		uint32_t u = (uint32_t)in[4 * i] | (uint32_t)in[4 * i + 1] << 8 | (uint32_t)in[4 * i + 2] << 16 |
			     (uint32_t)in[4 * i + 3] << 24;
		memcpy(&out[i], &u, 4);
	}
}

void pg_vec_to_le(const float *v, size_t dim, unsigned char *out)
{
	for (size_t i = 0; i < dim; i++) {
		uint32_t u;
		memcpy(&u, &v[i], 4);
		out[4 * i] = (unsigned char)u;
		out[4 * i + 1] = (unsigned char)(u >> 8);
		out[4 * i + 2] = (unsigned char)(u >> 16);
		out[4 * i + 3] = (unsigned char)(u >> 24);
	}
}

/* Rows (id int8, vec bytea) of a binary result to fn. */
static int vec_rows(const PGresult *r, size_t dim, float *tmp, store_vector_fn fn, void *ud, int *stopped,
		    store_error *err)
{
	for (int row = 0; row < PQntuples(r); row++) {
		int64_t id;
		int rc = pg_col_bin_i64(r, row, 0, &id, err);
		if (rc != 0)
			return rc;
		if (PQgetisnull(r, row, 1) || (size_t)PQgetlength(r, row, 1) != dim * 4)
			return store_fail(err, STORE_ERR_INVALID, "image %lld: vector has %d bytes, expected %zu",
					  (long long)id, PQgetlength(r, row, 1), dim * 4);
		vec_from_le((const unsigned char *)PQgetvalue(r, row, 1), dim, tmp);
		if (fn(ud, id, tmp) != 0) {
			*stopped = 1;
			return 0;
		}
	}
	return 0;
}

struct one_vec {
	float *out;
	size_t dim;
};

static int copy_vec(void *ud, int64_t id, const float *v)
{
	struct one_vec *o = ud;
	(void)id;
	memcpy(o->out, v, o->dim * sizeof *v);
	return 0;
}

int pgr_get_vector(void *db, int64_t id, const char *fingerprint, float *out, size_t dim, store_error *err)
{
	struct pg_conn *c = NULL;
	char k[24];
	int rc = pg_take_read(db, &c, err), stopped = 0;
	if (rc != 0)
		return rc;
	const char *vals[] = { pg_i64(k, id), fingerprint };
	PGresult *r = pg_run(c, fingerprint ? "SELECT image_id, vec FROM vectors WHERE image_id = $1::bigint AND model = $2"
					    : "SELECT v.image_id, v.vec FROM vectors v JOIN settings s ON s.key = "
					      "'active_model' AND s.value = v.model WHERE v.image_id = $1::bigint",
			     fingerprint ? 2 : 1, vals, NULL, NULL, 1, PGRES_TUPLES_OK, 2, "read a vector", err);
	struct one_vec o = { out, dim };
	if (!r)
		rc = RUN_FAIL(err);
	else if (PQntuples(r) == 0)
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no vector for image %lld", (long long)id);
	else
		rc = vec_rows(r, dim, out, copy_vec, &o, &stopped, err);
	PQclear(r);
	pg_give(db, c);
	return rc;
}

/* Ids from a one-column int8 text result into ids (at most max). */
static int id_rows(const PGresult *r, int64_t *ids, size_t max, size_t *n, store_error *err)
{
	*n = 0;
	if ((size_t)PQntuples(r) > max)
		return store_fail(err, STORE_ERR_DB, "catalog database: more rows than asked");
	for (int row = 0; row < PQntuples(r); row++) {
		int rc = pg_col_i64(r, row, 0, 0, &ids[row], err);
		if (rc != 0)
			return rc;
	}
	*n = (size_t)PQntuples(r);
	return 0;
}

static int ids_query(pgstore *s, const char *sql, const char *fingerprint, int64_t after_id, int64_t *ids,
		     size_t max, size_t *n, store_error *err)
{
	struct pg_conn *c = NULL;
	char a[24], m[24];
	*n = 0;
	int rc = pg_take_read(s, &c, err);
	if (rc != 0)
		return rc;
	const char *vals[] = { fingerprint, pg_i64(a, after_id), pg_i64(m, (int64_t)max) };
	PGresult *r = pg_run(c, sql, 3, vals, NULL, NULL, 0, PGRES_TUPLES_OK, 1, "read image ids", err);
	rc = r ? id_rows(r, ids, max, n, err) : RUN_FAIL(err);
	PQclear(r);
	pg_give(s, c);
	return rc;
}

int pgr_vector_ids(void *db, const char *fingerprint, int64_t after_id, int64_t *ids, size_t max, size_t *n,
		   store_error *err)
{
	return ids_query(db, "SELECT image_id FROM vectors WHERE model = $1 AND image_id > $2::bigint "
			 "ORDER BY image_id LIMIT $3::bigint", fingerprint, after_id, ids, max, n, err);
}

int pgr_missing_vectors(void *db, const char *fingerprint, int64_t after_id, int64_t *ids, size_t max, size_t *n,
			store_error *err)
{
	return ids_query(db, "SELECT i.id FROM images i WHERE i.id > $2::bigint AND NOT EXISTS (SELECT 1 FROM vectors v "
			 "WHERE v.image_id = i.id AND v.model = $1) ORDER BY i.id LIMIT $3::bigint",
			 fingerprint, after_id, ids, max, n, err);
}

int pgr_count_vectors(void *db, const char *fingerprint, int64_t *n, store_error *err)
{
	struct pg_conn *c = NULL;
	*n = 0;
	int rc = pg_take_read(db, &c, err);
	if (rc != 0)
		return rc;
	const char *vals[] = { fingerprint };
	PGresult *r = pg_run(c, "SELECT count(*) FROM vectors WHERE model = $1", 1, vals, NULL, NULL, 0,
			     PGRES_TUPLES_OK, 1, "count vectors", err);
	rc = r ? pg_col_i64(r, 0, 0, 0, n, err) : RUN_FAIL(err);
	PQclear(r);
	pg_give(db, c);
	return rc;
}

int pgr_put_vectors(void *db, const int64_t *ids, size_t n, const char *fingerprint, const float *vecs, size_t dim,
		    store_error *err)
{
	struct pg_conn *c = NULL;
	unsigned char *le = malloc(dim * 4 + 1);
	if (!le)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	int rc = pg_take(db, &c, err);
	if (rc != 0) {
		free(le);
		return rc;
	}
	rc = pg_cmd(c, "BEGIN", err);
	PGresult *r = NULL;
	if (rc == 0) {
		const char *vals[] = { fingerprint };
		r = pg_run(c, "SELECT dim FROM models WHERE fingerprint = $1", 1, vals, NULL, NULL, 0, PGRES_TUPLES_OK,
			   1, "read the model", err);
		int64_t mdim = 0;
		if (!r)
			rc = RUN_FAIL(err);
		else if (PQntuples(r) != 1)
			rc = store_fail(err, STORE_ERR_MODEL, "model %.12s is not recorded", fingerprint);
		else if ((rc = pg_col_i64(r, 0, 0, 0, &mdim, err)) == 0 && (size_t)mdim != dim)
			rc = store_fail(err, STORE_ERR_MODEL, "model %.12s has dimension %lld, not %zu", fingerprint,
					(long long)mdim, dim);
		PQclear(r);
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		char k[24];
		pg_vec_to_le(vecs + i * dim, dim, le);
		const char *vals[] = { pg_i64(k, ids[i]), fingerprint, (const char *)le };
		const int lens[] = { 0, 0, (int)(dim * 4) }, bin[] = { 0, 0, 1 };
		r = pg_run(c, "INSERT INTO vectors (image_id, model, vec) SELECT $1::bigint, $2, $3 WHERE EXISTS "
			   "(SELECT 1 FROM images WHERE id = $1::bigint) ON CONFLICT (image_id, model) DO UPDATE SET vec = $3",
			   3, vals, lens, bin, 0, PGRES_COMMAND_OK, 0, "store a vector", err);
		rc = r ? 0 : RUN_FAIL(err);
		PQclear(r);
	}
	rc = pg_end(c, rc, err);
	pg_give(db, c);
	free(le);
	return rc;
}

/* ---- writes and the change sequence ----------------------------------------------------------- */

int pg_append_change(struct pg_conn *c, const char *op, int64_t id, uint64_t *seq, store_error *err)
{
	char k[24];
	const char *vals[] = { op, pg_i64(k, id) };
	PGresult *r = pg_run(c, "WITH n AS (UPDATE clipd_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq), "
			     "c AS (INSERT INTO changes (seq, op, image_id) SELECT seq, $1, $2::bigint FROM n RETURNING seq) "
			     "SELECT seq, pg_notify('" PGSTORE_CHANNEL "', seq::text) FROM c",
			     2, vals, NULL, NULL, 0, PGRES_TUPLES_OK, 2, "append to the change sequence", err);
	if (!r)
		return RUN_FAIL(err);
	int64_t v = 0;
	int rc = PQntuples(r) == 1 ? pg_col_i64(r, 0, 0, 0, &v, err)
				   : store_fail(err, STORE_ERR_DB, "catalog database: no change sequence counter");
	PQclear(r);
	if (rc == 0 && v <= 0)
		rc = store_fail(err, STORE_ERR_DB, "catalog database: change sequence %lld", (long long)v);
	*seq = (uint64_t)v;
	return rc;
}

int pg_touch_rows(struct pg_conn *c, store_error *err)
{
	PGresult *r = pg_run(c, "WITH n AS (UPDATE clipd_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq) "
			     "SELECT seq, pg_notify('" PGSTORE_CHANNEL "', seq::text) FROM n",
			     0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, 2, "append to the change sequence", err);
	if (!r)
		return RUN_FAIL(err);
	int rc = PQntuples(r) == 1 ? 0 : store_fail(err, STORE_ERR_DB, "catalog database: no change sequence counter");
	PQclear(r);
	return rc;
}

int pgr_insert(void *db, const struct store_new_image *img, const void *data, size_t len, const float *vec,
	       size_t dim, int64_t *id, uint64_t *seq, store_error *err)
{
	struct pg_conn *c = NULL;
	char w[24], h[24], b[24], cr[24], tu[24], d[24], k[24];
	*id = 0;
	*seq = 0;
	if (!img || !img->sha256 || !sha256_is_hex(img->sha256) || !img->mime || !data || len == 0 || len > INT32_MAX)
		return store_fail(err, STORE_ERR_INVALID, "bad image row");
	unsigned char *le = malloc(dim * 4 + 1);
	if (!le)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	pg_vec_to_le(vec, dim, le);
	int rc = pg_take(db, &c, err);
	if (rc != 0) {
		free(le);
		return rc;
	}
	PGresult *r = NULL;
	if ((rc = pg_cmd(c, "BEGIN", err)) != 0)
		goto out;
	{
		const char *vals[] = { img->sha256, data };
		const int lens[] = { 0, (int)len }, bin[] = { 0, 1 };
		r = pg_run(c, "INSERT INTO originals (sha256, data) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING", 2,
			   vals, lens, bin, 0, PGRES_COMMAND_OK, 0, "store the original", err);
		if (!r) {
			rc = RUN_FAIL(err);
			goto out;
		}
		PQclear(r);
	}
	{
		int has_taken = img->taken.text[0] != 0;
		const char *vals[] = { img->sha256, img->mime, pg_i64(w, img->width), pg_i64(h, img->height),
				       pg_i64(b, img->bytes), img->filename, pg_i64(cr, img->created_at),
				       img->metadata ? img->metadata : "{}", has_taken ? img->taken.text : NULL,
				       has_taken ? pg_i64(tu, img->taken.us) : NULL };
		r = pg_run(c, "INSERT INTO images (sha256, mime, width, height, bytes, filename, created_at, metadata, "
			   "taken_at, taken_at_us) VALUES ($1, $2, $3::integer, $4::integer, $5::bigint, $6, "
			   "CASE WHEN $7::bigint = 0 THEN (extract(epoch FROM clock_timestamp()) * 1000000)::bigint "
			   "ELSE $7::bigint END, $8, $9, $10::bigint) ON CONFLICT (sha256) DO NOTHING RETURNING id",
			   10, vals, NULL, NULL, 0, PGRES_TUPLES_OK, 1, "store the image row", err);
		if (!r) {
			rc = RUN_FAIL(err);
			goto out;
		}
		if (PQntuples(r) == 0) {
			/* stored by another writer (this node or another): its row wins,
			 * and is read where it is (pg_take_read) */
			c->wrote = 1;
			PQclear(r);
			pg_cmd(c, "ROLLBACK", NULL);
			const char *v2[] = { img->sha256 };
			r = pg_run(c, "SELECT id FROM images WHERE sha256 = $1", 1, v2, NULL, NULL, 0, PGRES_TUPLES_OK, 1,
				   "read the stored image", err);
			if (!r)
				rc = RUN_FAIL(err);
			else if (PQntuples(r) == 1 && (rc = pg_col_i64(r, 0, 0, 0, id, err)) == 0)
				rc = store_fail(err, STORE_ERR_EXISTS, "image %s is already stored", img->sha256);
			else if (rc == 0)
				rc = store_fail(err, STORE_ERR_DB, "catalog database: the image was stored and is gone");
			PQclear(r);
			pg_give(db, c);
			free(le);
			return rc;
		}
		rc = pg_col_i64(r, 0, 0, 0, id, err);
		PQclear(r);
		if (rc != 0)
			goto out;
	}
	{
		const char *vals[] = { pg_i64(k, *id), (const char *)le, pg_i64(d, (int64_t)dim) };
		const int lens[] = { 0, (int)(dim * 4), 0 }, bin[] = { 0, 1, 0 };
		r = pg_run(c, "INSERT INTO vectors (image_id, model, vec) SELECT $1::bigint, m.fingerprint, $2 FROM models m "
			   "JOIN settings s ON s.key = 'active_model' AND s.value = m.fingerprint WHERE m.dim = $3::integer",
			   3, vals, lens, bin, 0, PGRES_COMMAND_OK, 0, "store the vector", err);
		if (!r) {
			rc = RUN_FAIL(err);
			goto out;
		}
		if (strcmp(PQcmdTuples(r), "1"))
			rc = store_fail(err, STORE_ERR_MODEL, "no active model of dimension %zu in the catalog", dim);
		PQclear(r);
		if (rc != 0)
			goto out;
	}
	rc = pg_append_change(c, "add", *id, seq, err);
out:
	rc = pg_end(c, rc, err);
	if (rc != 0) {
		*id = 0;
		*seq = 0;
	}
	pg_give(db, c);
	free(le);
	return rc;
}

int pg_delete_image(struct pg_conn *c, int64_t id, char sha256[STORE_SHA256_HEX], uint64_t *seq, store_error *err)
{
	char k[24];
	const char *vals[] = { pg_i64(k, id) };
	/* A library's paths of the image are ignored from now on (the files
	 * stay; a rescan does not bring the image back); the original goes
	 * with the image (a library image has none in the catalog). */
	PGresult *r = pg_run(c, "UPDATE library_files SET ignored = true, pending = false, image_id = NULL "
			     "WHERE image_id = $1::bigint", 1, vals, NULL, NULL, 0, PGRES_COMMAND_OK, 0,
			     "ignore library paths", err);
	if (!r)
		return RUN_FAIL(err);
	PQclear(r);
	r = pg_run(c, "WITH d AS (DELETE FROM images WHERE id = $1::bigint RETURNING sha256), "
		   "o AS (DELETE FROM originals o USING d WHERE o.sha256 = d.sha256) SELECT sha256 FROM d",
		   1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, 1, "delete the image", err);
	int rc = 0;
	if (!r)
		rc = RUN_FAIL(err);
	else if (PQntuples(r) != 1)
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no image %lld", (long long)id);
	else if (!sha256_is_hex(PQgetvalue(r, 0, 0)))
		rc = store_fail(err, STORE_ERR_DB, "catalog database: bad sha256");
	else if (sha256)
		memcpy(sha256, PQgetvalue(r, 0, 0), STORE_SHA256_HEX);
	PQclear(r);
	return rc ? rc : pg_append_change(c, "remove", id, seq, err);
}

int pgr_delete(void *db, int64_t id, char sha256[STORE_SHA256_HEX], uint64_t *seq, store_error *err)
{
	struct pg_conn *c = NULL;
	*seq = 0;
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	if ((rc = pg_cmd(c, "BEGIN", err)) == 0)
		rc = pg_delete_image(c, id, sha256, seq, err);
	rc = pg_end(c, rc, err);
	pg_give(db, c);
	return rc;
}

/* RFC 7396 through SQLite's json_patch, exactly as the SQLite catalog
 * merges (an in-memory database: no file, nothing shared). */
static int merge_patch(const char *target, const char *patch, char **out, store_error *err)
{
	sqlite3 *m = NULL;
	sqlite3_stmt *st = NULL;
	int rc = STORE_ERR_NOMEM;
	*out = NULL;
	if (sqlite3_open_v2(":memory:", &m, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(m, "SELECT json_patch(?1, ?2)", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, patch, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) &&
		    (*out = strdup((const char *)sqlite3_column_text(st, 0))))
			rc = 0;
	}
	sqlite3_finalize(st);
	sqlite3_close(m);
	return rc ? store_fail(err, rc, "merge metadata failed") : 0;
}

int pgr_patch_metadata(void *db, int64_t id, const char *patch, size_t len, size_t max_bytes, int max_depth,
		       store_error *err)
{
	char *compact = NULL, *merged = NULL, *canon = NULL, k[24];
	struct pg_conn *c = NULL;
	/* the patch's limits as the SQLite store's: four times the result's */
	int rc = store_check_metadata(NULL, patch, len, 4 * max_bytes, max_depth, &compact, err);
	if (rc != 0)
		return rc;
	if ((rc = pg_take(db, &c, err)) != 0)
		goto out_free;
	const char *vals[] = { pg_i64(k, id), NULL };
	PGresult *r = NULL;
	if ((rc = pg_cmd(c, "BEGIN", err)) != 0)
		goto out;
	r = pg_run(c, "SELECT metadata FROM images WHERE id = $1::bigint FOR UPDATE", 1, vals, NULL, NULL, 0,
		   PGRES_TUPLES_OK, 1, "read metadata", err);
	if (!r)
		rc = RUN_FAIL(err);
	else if (PQntuples(r) != 1)
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no image %lld", (long long)id);
	else
		rc = merge_patch(PQgetvalue(r, 0, 0), compact, &merged, err);
	PQclear(r);
	if (rc != 0)
		goto out;
	/* the merged object in the canonical form, within the limits */
	if ((rc = store_check_metadata(NULL, merged, strlen(merged), max_bytes, max_depth, &canon, err)) != 0) {
		if (rc == STORE_ERR_TOO_LARGE)
			rc = store_fail(err, STORE_ERR_TOO_LARGE, "metadata would be %zu bytes, more than the limit of %zu",
					strlen(merged), max_bytes);
		goto out;
	}
	vals[1] = canon;
	r = pg_run(c, "UPDATE images SET metadata = $2 WHERE id = $1::bigint", 2, vals, NULL, NULL, 0, PGRES_COMMAND_OK,
		   0, "update metadata", err);
	rc = r ? 0 : RUN_FAIL(err);
	PQclear(r);
	if (rc == 0)   /* the nodes' cached rows (pg_touch_rows) */
		rc = pg_touch_rows(c, err);
out:
	rc = pg_end(c, rc, err);
	pg_give(db, c);
out_free:
	free(compact);
	free(merged);
	free(canon);
	return rc;
}

int pgr_set_taken_at(void *db, const int64_t *ids, const struct store_taken_at *taken, size_t n, size_t *changed,
		     store_error *err)
{
	struct pg_conn *c = NULL;
	size_t ch = 0;
	if (changed)
		*changed = 0;
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	rc = pg_cmd(c, "BEGIN", err);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char k[24], us[24];
		int has = taken[i].text[0] != 0;
		const char *vals[] = { pg_i64(k, ids[i]), has ? taken[i].text : NULL, has ? pg_i64(us, taken[i].us) : NULL };
		PGresult *r = pg_run(c, "UPDATE images SET taken_at = $2, taken_at_us = $3::bigint WHERE id = $1::bigint "
				     "AND (taken_at IS DISTINCT FROM $2 OR taken_at_us IS DISTINCT FROM $3::bigint)",
				     3, vals, NULL, NULL, 0, PGRES_COMMAND_OK, 0, "set the capture time", err);
		if (!r)
			rc = RUN_FAIL(err);
		else if (!strcmp(PQcmdTuples(r), "1"))
			ch++;
		PQclear(r);
	}
	if (rc == 0 && ch > 0)
		rc = pg_touch_rows(c, err);
	rc = pg_end(c, rc, err);
	pg_give(db, c);
	if (rc == 0 && changed)
		*changed = ch;
	return rc;
}

/* ---- originals ------------------------------------------------------------------------ */

int pgr_read_original(void *db, const char *sha256, int fd, store_error *err)
{
	struct pg_conn *c = NULL;
	if (!sha256_is_hex(sha256))
		return store_fail(err, STORE_ERR_INVALID, "not a SHA-256 hex digest");
	int rc = pg_take_read(db, &c, err);
	if (rc != 0)
		return rc;
	/* one snapshot for all the pieces: a delete meanwhile cannot tear it */
	rc = pg_cmd(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
	int64_t total = -1, off = 0;
	PGresult *r = NULL;
	if (rc == 0) {
		const char *vals[] = { sha256 };
		r = pg_run(c, "SELECT octet_length(data) FROM originals WHERE sha256 = $1", 1, vals, NULL, NULL, 0,
			   PGRES_TUPLES_OK, 1, "read an original", err);
		if (!r)
			rc = RUN_FAIL(err);
		else if (PQntuples(r) != 1)
			rc = store_fail(err, STORE_ERR_NOT_FOUND, "no original %s", sha256);
		else
			rc = pg_col_i64(r, 0, 0, 0, &total, err);
		PQclear(r);
	}
	while (rc == 0 && off < total) {
		char o[24], l[24];
		int64_t want = total - off < ORIGINAL_PIECE ? total - off : ORIGINAL_PIECE;
		const char *vals[] = { sha256, pg_i64(o, off + 1), pg_i64(l, want) };
		r = pg_run(c, "SELECT substring(data FROM $2::integer FOR $3::integer) FROM originals WHERE sha256 = $1",
			   3, vals, NULL, NULL, 1, PGRES_TUPLES_OK, 1, "read an original", err);
		if (!r) {
			rc = RUN_FAIL(err);
			break;
		}
		if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0) || PQgetlength(r, 0, 0) != want) {
			rc = store_fail(err, STORE_ERR_DB, "catalog database: original %s: a piece is missing", sha256);
		} else {
			const char *p = PQgetvalue(r, 0, 0);
			size_t left = (size_t)want;
			while (left > 0 && rc == 0) {
				ssize_t wr = write(fd, p, left);
				if (wr < 0 && errno == EINTR)
					continue;
				if (wr <= 0)
					rc = store_fail(err, errno == ENOSPC ? STORE_ERR_NOSPACE : STORE_ERR_IO,
							"write the original: %s", strerror(errno));
				else {
					p += wr;
					left -= (size_t)wr;
				}
			}
			off += want;
		}
		PQclear(r);
	}
	rc = pg_end(c, rc, err);
	pg_give(db, c);
	return rc;
}

/* ---- reading in pieces -------------------------------------------------------------- */

#define SCAN_BATCH 4096

int pgr_foreach_image(void *db, store_image_fn fn, void *ud, store_error *err)
{
	int64_t after = 0;
	for (;;) {
		struct pg_conn *c = NULL;
		char a[24];
		int rc = pg_take_read(db, &c, err), stop = 0;
		if (rc != 0)
			return rc;
		const char *vals[] = { pg_i64(a, after) };
		PGresult *r = pg_run(c, "SELECT " COLS FROM_IMAGES " WHERE i.id > $1::bigint ORDER BY i.id LIMIT 500", 1,
				     vals, NULL, NULL, 0, PGRES_TUPLES_OK, NCOLS, "read images", err);
		pg_give(db, c);
		if (!r)
			return RUN_FAIL(err);
		int rows = PQntuples(r);
		for (int row = 0; row < rows && rc == 0 && !stop; row++) {
			struct store_image img;
			if ((rc = row_from(r, row, &img, err)) == 0) {
				after = img.id;
				stop = fn(ud, &img) != 0;
				store_image_clear(&img);
			}
		}
		PQclear(r);
		if (rc != 0 || stop || rows < 500)
			return rc;
	}
}

int pgr_seq(void *db, uint64_t *seq, store_error *err)
{
	struct pg_conn *c = NULL;
	int64_t v = 0;
	*seq = 0;
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	PGresult *r = pg_run(c, "SELECT seq FROM clipd_counter WHERE id = 1", 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, 1,
			     "read the change sequence", err);
	rc = r ? pg_col_i64(r, 0, 0, 0, &v, err) : RUN_FAIL(err);
	PQclear(r);
	pg_give(db, c);
	if (rc == 0 && v < 0)
		rc = store_fail(err, STORE_ERR_DB, "catalog database: change sequence %lld", (long long)v);
	*seq = (uint64_t)v;
	return rc;
}

/* Growing arrays of ids and vectors. */
struct vec_acc {
	size_t dim, n, cap;
	int64_t *ids;
	float *vecs;
	int failed;
};

static int acc_add(void *ud, int64_t id, const float *v)
{
	struct vec_acc *a = ud;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 1024;
		int64_t *ids = realloc(a->ids, cap * sizeof *ids);
		if (ids)
			a->ids = ids;
		float *vecs = ids ? realloc(a->vecs, cap * a->dim * sizeof *vecs) : NULL;
		if (!vecs) {
			a->failed = 1;
			return 1;
		}
		a->vecs = vecs;
		a->cap = cap;
	}
	a->ids[a->n] = id;
	memcpy(a->vecs + a->n * a->dim, v, a->dim * sizeof *v);
	a->n++;
	return 0;
}

/* Run a (id, vec) query through a cursor, SCAN_BATCH rows at a time, in
 * the open transaction on c: fn for each row, at most limit (0: all);
 * *more = 1 when a row beyond limit exists. */
static int cursor_rows(struct pg_conn *c, const char *sql, int n, const char *const *vals, size_t dim, size_t limit,
		       store_vector_fn fn, void *ud, int *more, store_error *err)
{
	struct dbuf decl = DBUF_INIT(512 * 1024);
	float *tmp = malloc(dim * sizeof *tmp + 1);
	int rc = 0;
	size_t seen = 0;
	*more = 0;
	if (!tmp || dbuf_printf(&decl, "DECLARE clipd_scan BINARY NO SCROLL CURSOR FOR %s", sql) ||
	    dbuf_append(&decl, "", 1)) {
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	PGresult *r = pg_run(c, decl.data, n, vals, NULL, NULL, 0, PGRES_COMMAND_OK, 0, "read vectors", err);
	if (!r) {
		rc = RUN_FAIL(err);
		goto out;
	}
	PQclear(r);
	for (;;) {
		r = pg_run(c, "FETCH 4096 FROM clipd_scan", 0, NULL, NULL, NULL, 1, PGRES_TUPLES_OK, 2, "read vectors", err);
		if (!r) {
			rc = RUN_FAIL(err);
			break;
		}
		int rows = PQntuples(r), stopped = 0;
		if (limit && seen + (size_t)rows > limit) {
			*more = 1;
			rows = (int)(limit - seen);
		}
		for (int row = 0; row < rows && rc == 0 && !stopped; row++) {
			int64_t id;
			if ((rc = pg_col_bin_i64(r, row, 0, &id, err)) != 0)
				break;
			if (PQgetisnull(r, row, 1) || (size_t)PQgetlength(r, row, 1) != dim * 4) {
				rc = store_fail(err, STORE_ERR_INVALID, "image %lld: vector has %d bytes, expected %zu",
						(long long)id, PQgetlength(r, row, 1), dim * 4);
				break;
			}
			vec_from_le((const unsigned char *)PQgetvalue(r, row, 1), dim, tmp);
			stopped = fn(ud, id, tmp) != 0;
			seen++;
		}
		int all = PQntuples(r);
		PQclear(r);
		if (rc != 0 || stopped || *more || all < SCAN_BATCH)
			break;
	}
out:
	dbuf_free(&decl);
	free(tmp);
	return rc;
}

/* Open a read-only snapshot on c (REPEATABLE READ) in which the active
 * model has dimension dim: the model into *m and the change counter into
 * *counter. On failure the transaction is rolled back. */
static int snapshot_begin(struct pg_conn *c, size_t dim, struct store_model *m, int64_t *counter, store_error *err)
{
	int found = 0;
	int rc = pg_cmd(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
	if (rc != 0)
		return rc;
	if ((rc = pg_active_model(c, m, &found, err)) == 0 && (!found || m->dim != dim))
		rc = store_fail(err, STORE_ERR_MODEL, "the catalog has no active model of dimension %zu", dim);
	if (rc == 0) {
		PGresult *r = pg_run(c, "SELECT seq FROM clipd_counter WHERE id = 1", 0, NULL, NULL, NULL, 0,
				     PGRES_TUPLES_OK, 1, "read the change sequence", err);
		rc = r ? pg_col_i64(r, 0, 0, 0, counter, err) : RUN_FAIL(err);
		PQclear(r);
	}
	return rc ? pg_end(c, rc, err) : 0;
}

int pgr_load_vectors(void *db, size_t dim, int64_t **ids, float **vecs, size_t *n, uint64_t *seq, store_error *err)
{
	struct pg_conn *c = NULL;
	struct vec_acc a = { .dim = dim };
	struct store_model m;
	int more = 0;
	int64_t counter = 0;
	*ids = NULL;
	*vecs = NULL;
	*n = 0;
	*seq = 0;
	int rc = pg_take_read(db, &c, err);
	if (rc != 0)
		return rc;
	/* one snapshot: the vectors and the sequence they cover agree */
	if ((rc = snapshot_begin(c, dim, &m, &counter, err)) != 0)
		goto out;
	const char *vals[] = { m.fingerprint };
	rc = cursor_rows(c, "SELECT image_id, vec FROM vectors WHERE model = $1 ORDER BY image_id", 1, vals, dim, 0,
			 acc_add, &a, &more, err);
	if (rc == 0 && a.failed)
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	rc = pg_end(c, rc, err);
out:
	pg_give(db, c);
	if (rc != 0) {
		free(a.ids);
		free(a.vecs);
		return rc;
	}
	*ids = a.ids;
	*vecs = a.vecs;
	*n = a.n;
	*seq = (uint64_t)counter;
	return 0;
}

int pgr_changes_since(void *db, uint64_t seq, size_t dim, struct store_changes *out, store_error *err)
{
	/* as the SQLite store's store_changes_since: the net effect */
	static const char add_sql[] =
		"SELECT c.image_id, v.vec FROM changes c JOIN vectors v ON v.image_id = c.image_id "
		"AND v.model = $2 WHERE c.seq > $1::bigint AND c.op = 'add' GROUP BY c.image_id, v.vec ORDER BY MIN(c.seq)";
	static const char rm_sql[] =
		"SELECT r.image_id FROM changes r WHERE r.seq > $1::bigint AND r.op = 'remove' AND NOT EXISTS "
		"(SELECT 1 FROM changes a WHERE a.image_id = r.image_id AND a.op = 'add' AND a.seq > $1::bigint "
		"AND a.seq < r.seq) GROUP BY r.image_id ORDER BY MIN(r.seq)";
	struct pg_conn *c = NULL;
	struct vec_acc a = { .dim = dim };
	struct store_model m;
	int more = 0;
	int64_t last = 0, *rm = NULL;
	size_t n_rm = 0;
	char s[24];
	PGresult *r = NULL;
	memset(out, 0, sizeof *out);
	int rc = pg_take_read(db, &c, err);
	if (rc != 0)
		return rc;
	if ((rc = snapshot_begin(c, dim, &m, &last, err)) != 0)
		goto out;
	if (seq > (uint64_t)last && c->pool->replica) {
		/* a replica that has not replayed what the index took from the
		 * primary: nothing new from it yet */
		last = (int64_t)seq;
		goto end;
	}
	if (seq > (uint64_t)last) {
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "the index is at change %llu, ahead of the catalog (%lld)",
				(unsigned long long)seq, (long long)last);
		goto end;
	}
	if (seq == (uint64_t)last)   /* nothing since: the usual answer to a node's own NOTIFY */
		goto end;
	const char *vals[] = { pg_i64(s, (int64_t)seq), m.fingerprint };
	/* a new model, or new trained index parameters (pgstore_index.c): the
	 * index is built anew rather than replayed; and whether every number up
	 * to last has its logged change (the others are rows changed in place:
	 * pg_touch_rows) */
	int64_t logged = 0;
	r = pg_run(c, "SELECT count(*), (SELECT op FROM changes WHERE seq > $1::bigint AND op IN ('reset', 'index') "
		   "ORDER BY seq LIMIT 1) FROM changes WHERE seq > $1::bigint",
		   1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, 2, "read the change sequence", err);
	if (!r || PQntuples(r) != 1)
		rc = r ? store_fail(err, STORE_ERR_DB, "catalog database: no count of changes") : RUN_FAIL(err);
	else if ((rc = pg_col_i64(r, 0, 0, 0, &logged, err)) == 0 && !PQgetisnull(r, 0, 1))
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "%s after the index's change %llu",
				strcmp(PQgetvalue(r, 0, 1), "index") == 0 ? "new index parameters were trained"
									   : "the model changed",
				(unsigned long long)seq);
	PQclear(r);
	out->touched = rc == 0 && (uint64_t)logged < (uint64_t)last - seq;
	if (rc != 0)
		goto end;
	if ((rc = cursor_rows(c, add_sql, 2, vals, dim, 0, acc_add, &a, &more, err)) != 0)
		goto end;
	if (a.failed) {
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		goto end;
	}
	if ((rc = pg_cmd(c, "CLOSE clipd_scan", err)) != 0)
		goto end;
	r = pg_run(c, rm_sql, 1, vals, NULL, NULL, 0, PGRES_TUPLES_OK, 1, "read the change sequence", err);
	if (!r) {
		rc = RUN_FAIL(err);
		goto end;
	}
	n_rm = (size_t)PQntuples(r);
	if (n_rm && !(rm = malloc(n_rm * sizeof *rm)))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0) {
		size_t got = 0;
		rc = id_rows(r, rm, n_rm, &got, err);
	}
	PQclear(r);
end:
	rc = pg_end(c, rc, err);
out:
	pg_give(db, c);
	if (rc != 0) {
		free(a.ids);
		free(a.vecs);
		free(rm);
		return rc;
	}
	out->add_ids = a.ids;
	out->add_vecs = a.vecs;
	out->n_add = a.n;
	out->remove_ids = n_rm ? rm : NULL;
	if (!n_rm)
		free(rm);
	out->n_remove = n_rm;
	out->last = (uint64_t)last;
	return 0;
}

int pg_scan_selection_sql(struct pg_stmt *q, const struct store_selection *sel, size_t limit, store_error *err)
{
	int rc = pg_param(q, "", 0) > 0 ? 0 : store_fail(err, STORE_ERR_NOMEM, "out of memory");
	/* The model as a value (an InitPlan), not a join with settings: the
	 * planner then knows every vector of it matches, and starts from the
	 * images a filter selects (the index on meta) rather than from every
	 * vector (a million vectors, a 1% filter: 0.56 s against 2.3). */
	if (rc == 0 && dbuf_puts(&q->sql, "SELECT i.id, v.vec FROM images i JOIN vectors v ON v.image_id = i.id "
				 "AND v.model = (SELECT value FROM settings WHERE key = 'active_model') "
				 "WHERE $1::text IS NOT NULL"))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0)
		rc = pg_selection_sql(q, sel, err);
	if (rc == 0 && dbuf_puts(&q->sql, " ORDER BY i.id"))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	/* One row past limit tells that more match. Said in the statement so
	 * that the plan is the one for that many rows: when half a million
	 * images match, reading them in id order and stopping, not first
	 * gathering all of them from the index on meta. */
	int k = 0;
	if (rc == 0 && limit && limit < (size_t)INT64_MAX && (k = pg_param_i64(q, (int64_t)limit + 1)) < 0)
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0 && k > 0 && dbuf_printf(&q->sql, " LIMIT $%d::bigint", k))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0 && dbuf_append(&q->sql, "", 1))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	return rc;
}

int pgr_scan_selection(void *db, const struct store_selection *sel, size_t dim, size_t limit, store_vector_fn fn,
		       void *ud, int *truncated, store_error *err)
{
	struct pg_stmt q = { .sql = DBUF_INIT(256 * 1024) };
	struct pg_conn *c = NULL;
	*truncated = 0;
	int rc = pg_scan_selection_sql(&q, sel, limit, err);
	if (rc == 0 && (rc = pg_take_read(db, &c, err)) == 0) {
		/* every row up to limit is read: plan for all of them, not for
		 * the first tenth as a cursor's plan otherwise is */
		if ((rc = pg_cmd(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err)) == 0 &&
		    (rc = pg_cmd(c, "SET LOCAL cursor_tuple_fraction = 1", err)) == 0)
			rc = cursor_rows(c, q.sql.data, q.n, q.vals, dim, limit, fn, ud, truncated, err);
		rc = pg_end(c, rc, err);
		pg_give(db, c);
	}
	pg_stmt_free(&q);
	return rc;
}

int pgr_filter_ids(void *db, const struct store_selection *sel, const int64_t *ids, size_t n, unsigned char *keep,
		   store_error *err)
{
	struct pg_stmt q = { .sql = DBUF_INIT(256 * 1024) };
	struct pg_conn *c = NULL;
	char *arr = NULL;
	memset(keep, 0, n);
	if (n == 0)
		return 0;
	int rc = id_array(ids, n, &arr, err);
	if (rc == 0 && pg_param(&q, arr, strlen(arr)) < 0)
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0 && dbuf_puts(&q.sql, "SELECT i.id FROM images i WHERE i.id = ANY ($1::bigint[])"))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0)
		rc = pg_selection_sql(&q, sel, err);
	if (rc == 0 && dbuf_append(&q.sql, "", 1))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	PGresult *r = NULL;
	if (rc == 0 && (rc = pg_take_read(db, &c, err)) == 0) {
		if (!(r = pg_run(c, q.sql.data, q.n, q.vals, NULL, NULL, 0, PGRES_TUPLES_OK, 1, "filter images", err)))
			rc = RUN_FAIL(err);
		pg_give(db, c);
	}
	for (int row = 0; r && rc == 0 && row < PQntuples(r); row++) {
		int64_t id;
		if ((rc = pg_col_i64(r, row, 0, 0, &id, err)) != 0)
			break;
		for (size_t i = 0; i < n; i++)
			if (ids[i] == id)
				keep[i] = 1;
	}
	PQclear(r);
	pg_stmt_free(&q);
	free(arr);
	return rc;
}

int pgr_check(void *db, store_problem_fn fn, void *ud, store_error *err)
{
	static const char *const checks[] = {
		"SELECT 'image ' || i.id || ': no vector of the active model' FROM images i WHERE NOT EXISTS "
		"(SELECT 1 FROM vectors v JOIN settings s ON s.key = 'active_model' AND s.value = v.model "
		"WHERE v.image_id = i.id) ORDER BY i.id LIMIT 1000",
		"SELECT 'image ' || i.id || ': vector of ' || octet_length(v.vec) || ' bytes, expected ' || 4 * m.dim "
		"FROM images i JOIN vectors v ON v.image_id = i.id JOIN models m ON m.fingerprint = v.model "
		"WHERE octet_length(v.vec) <> 4 * m.dim ORDER BY i.id LIMIT 1000",
		"SELECT 'image ' || i.id || ': original has ' || octet_length(o.data) || ' bytes, expected ' || i.bytes "
		"FROM images i JOIN originals o ON o.sha256 = i.sha256 WHERE octet_length(o.data) <> i.bytes "
		"ORDER BY i.id LIMIT 1000",
		"SELECT 'image ' || i.id || ': no original ' || i.sha256 FROM images i WHERE NOT EXISTS "
		"(SELECT 1 FROM originals o WHERE o.sha256 = i.sha256) ORDER BY i.id LIMIT 1000",
	};
	struct pg_conn *c = NULL;
	int problems = 0;
	int rc = pg_take(db, &c, err);
	if (rc != 0)
		return rc;
	for (size_t k = 0; k < sizeof checks / sizeof *checks && rc == 0; k++) {
		PGresult *r = pg_run(c, checks[k], 0, NULL, NULL, NULL, 0, PGRES_TUPLES_OK, 1, "check the catalog", err);
		if (!r) {
			rc = RUN_FAIL(err);
			break;
		}
		for (int row = 0; row < PQntuples(r); row++) {
			problems++;
			if (fn)
				fn(ud, PQgetvalue(r, row, 0));
		}
		PQclear(r);
	}
	pg_give(db, c);
	return rc ? rc : problems;
}
