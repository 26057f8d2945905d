/*
 * The SQLite store's selections: the rows a filtered search considers
 * (metadata equality filters, a date range, an excluded image), scanned
 * with their vectors or checked against a list of ids. See store.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

/* ---- selections --------------------------------------------------------------------- */

/* Parameter numbers in selection SQL: ?1 is the statement's own (model or
 * id), then the fixed ones, then two per filter (path, value), then limit
 * (ST_P_LIMIT, store_internal.h), then the library. */
enum { P_AFTER = 2, P_BEFORE = 3, P_EXCLUDE = 4, P_FILTER0 = 5,
       P_LIMIT = P_FILTER0 + 2 * STORE_MAX_FILTERS, P_LIBRARY };
_Static_assert(P_LIMIT == ST_P_LIMIT, "ST_P_LIMIT follows the selection's parameters");

int store_check_selection(const struct store_selection *sel, store_error *err)
{
	if (!sel)
		return 0;
	if (sel->n_filters > STORE_MAX_FILTERS)
		return store_fail(err, STORE_ERR_INVALID, "at most %d metadata filters", STORE_MAX_FILTERS);
	if (sel->n_filters && !sel->filters)
		return store_fail(err, STORE_ERR_INVALID, "filters missing");
	for (size_t i = 0; i < sel->n_filters; i++) {
		const char *k = sel->filters[i].key, *v = sel->filters[i].value;
		if (!k || !*k || strlen(k) > STORE_MAX_FILTER_KEY)
			return store_fail(err, STORE_ERR_INVALID, "a filter key must be 1 to %d bytes",
				       STORE_MAX_FILTER_KEY);
		for (const unsigned char *p = (const unsigned char *)k; *p; p++)
			if (*p < 0x20 || *p == '"' || *p == '\\' || *p == 0x7f)
				return store_fail(err, STORE_ERR_INVALID,
					       "a filter key may not contain quotes, backslashes or control characters");
		if (!v || strlen(v) > STORE_MAX_FILTER_VALUE)
			return store_fail(err, STORE_ERR_INVALID, "a filter value must be at most %d bytes",
				       STORE_MAX_FILTER_VALUE);
	}
	if (sel->library && (!*sel->library || strlen(sel->library) > STORE_LIBRARY_NAME_MAX))
		return store_fail(err, STORE_ERR_INVALID, "a library name must be 1 to %d bytes",
			       STORE_LIBRARY_NAME_MAX);
	return 0;
}

int st_selection_sql(const struct store_selection *sel, char *buf, size_t len)
{
	int rc = 0;
	if (sel->library)
		rc |= st_appendf(buf, len, " AND EXISTS (SELECT 1 FROM library_files lf WHERE lf.image_id = i.id "
				 "AND lf.library = ?%d AND lf.ignored = 0)", P_LIBRARY);
	if (sel->has_after)
		rc |= st_appendf(buf, len, " AND i.created_at > ?%d", P_AFTER);
	if (sel->has_before)
		rc |= st_appendf(buf, len, " AND i.created_at < ?%d", P_BEFORE);
	if (sel->exclude_id)
		rc |= st_appendf(buf, len, " AND i.id != ?%d", P_EXCLUDE);
	for (size_t f = 0; f < sel->n_filters; f++) {
		int p = P_FILTER0 + 2 * (int)f, v = p + 1;
		rc |= st_appendf(buf, len,
				 " AND (CASE json_type(i.metadata, ?%d) WHEN 'text' THEN i.metadata ->> ?%d = ?%d "
				 "WHEN 'integer' THEN i.metadata -> ?%d = ?%d WHEN 'real' THEN i.metadata -> ?%d = ?%d "
				 "WHEN 'true' THEN ?%d = 'true' WHEN 'false' THEN ?%d = 'false' ELSE 0 END)",
				 p, p, v, p, v, p, v, v, v);
	}
	return rc;
}

int st_selection_bind(sqlite3_stmt *st, const struct store_selection *sel, store_error *err)
{
	if (sel->library)
		sqlite3_bind_text(st, P_LIBRARY, sel->library, -1, SQLITE_STATIC);
	if (sel->has_after)
		sqlite3_bind_int64(st, P_AFTER, sel->created_after);
	if (sel->has_before)
		sqlite3_bind_int64(st, P_BEFORE, sel->created_before);
	if (sel->exclude_id)
		sqlite3_bind_int64(st, P_EXCLUDE, sel->exclude_id);
	for (size_t f = 0; f < sel->n_filters; f++) {
		char *path = sqlite3_mprintf("$.\"%s\"", sel->filters[f].key);
		if (!path)
			return store_fail(err, STORE_ERR_NOMEM, "out of memory");
		sqlite3_bind_text(st, P_FILTER0 + 2 * (int)f, path, -1, sqlite3_free);
		sqlite3_bind_text(st, P_FILTER0 + 2 * (int)f + 1, sel->filters[f].value, -1, SQLITE_STATIC);
	}
	return 0;
}

int store_scan_selection(store *s, const struct store_selection *sel, size_t dim, size_t limit,
			 store_vector_fn fn, void *ud, int *truncated, store_error *err)
{
	struct store_model m;
	int have, rc;
	char sql[8192] = "SELECT i.id, v.vec FROM images i JOIN vectors v ON v.image_id = i.id "
			 "AND v.model = ?1 WHERE 1";
	sqlite3_stmt *st = NULL;
	float *vec = NULL;
	*truncated = 0;
	if ((rc = store_check_selection(sel, err)) != 0)
		return rc;
	st_active(s, &m, &have);
	if (!have || m.dim != dim)
		return store_fail(err, STORE_ERR_MODEL, "no active model of dimension %zu", dim);
	if (st_selection_sql(sel, sql, sizeof sql) != 0 || st_appendf(sql, sizeof sql, " LIMIT ?%d", P_LIMIT) != 0)
		return store_fail(err, STORE_ERR_INVALID, "selection too complex");
	if (!(vec = malloc(dim * sizeof *vec)))
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	struct store_conn *c = NULL;
	if ((rc = st_read_begin(s, &c, err)) != 0)
		goto out_free;
	int r = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (r != SQLITE_OK) {
		rc = st_dberr(c->db, r, err, "prepare selection");
		goto out;
	}
	sqlite3_bind_text(st, 1, m.fingerprint, -1, SQLITE_STATIC);
	if ((rc = st_selection_bind(st, sel, err)) != 0)
		goto out;
	sqlite3_bind_int64(st, P_LIMIT, limit >= (size_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)limit + 1);
	size_t seen = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (++seen > limit) {
			*truncated = 1;
			break;
		}
		int64_t id = sqlite3_column_int64(st, 0);
		if ((size_t)sqlite3_column_bytes(st, 1) != dim * 4)
			continue;   /* clipd check reports it */
		st_vec_from_le(sqlite3_column_blob(st, 1), dim, vec);
		if (fn(ud, id, vec))
			break;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "scan selection");
out:
	sqlite3_finalize(st);
	st_read_end(s, c);
out_free:
	free(vec);
	return rc;
}

int store_filter_ids(store *s, const struct store_selection *sel, const int64_t *ids, size_t n,
		     unsigned char *keep, store_error *err)
{
	char sql[8192] = "SELECT 1 FROM images i WHERE i.id = ?1";
	sqlite3_stmt *st = NULL;
	int rc;
	memset(keep, 0, n);
	if ((rc = store_check_selection(sel, err)) != 0 || n == 0)
		return rc;
	if (st_selection_sql(sel, sql, sizeof sql) != 0)
		return store_fail(err, STORE_ERR_INVALID, "selection too complex");
	struct store_conn *c = NULL;
	if ((rc = st_read_begin(s, &c, err)) != 0)
		return rc;
	int r = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (r != SQLITE_OK) {
		rc = st_dberr(c->db, r, err, "prepare selection");
		goto out;
	}
	if ((rc = st_selection_bind(st, sel, err)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(st, 1, ids[i]);
		r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			keep[i] = 1;
		} else if (r != SQLITE_DONE) {
			rc = st_dberr(c->db, r, err, "filter");
			break;
		}
		sqlite3_reset(st);
	}
out:
	sqlite3_finalize(st);
	st_read_end(s, c);
	return rc;
}
