/*
 * The SQLite store's selections: the rows a filtered search or listing
 * considers (metadata filters, a date range, an excluded image), scanned
 * with their vectors, checked against a list of ids, or given to another
 * statement as WHERE conditions (st_selection_prepare). The filter syntax
 * is described in store_types.h. See store.h.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbuf.h"
#include "store_internal.h"
#include "text.h"

/* ---- selections --------------------------------------------------------------------- */

/* Parameter numbers in selection SQL: ?1 is the statement's own (model or
 * id), then the fixed ones, then two per filter key (path, values), then
 * the statement's others (the limit of a scan). */
enum { P_AFTER = 2, P_BEFORE = 3, P_EXCLUDE = 4, P_TAKEN_AFTER = 5, P_TAKEN_BEFORE = 6, P_LIBRARY = 7, P_FILTER0 = 8,
       P_LIMIT = P_FILTER0 + 2 * STORE_MAX_FILTERS };
_Static_assert(P_LIMIT == ST_SEL_FIRST_FREE, "ST_SEL_FIRST_FREE follows the selection's parameters");

enum sel_op { OP_EQ = STORE_SEL_EQ, OP_GTE = STORE_SEL_GTE, OP_LTE = STORE_SEL_LTE, OP_GT = STORE_SEL_GT,
	      OP_LT = STORE_SEL_LT, OP_EXISTS = STORE_SEL_EXISTS };
static const char *const op_names[] = { "", "gte", "lte", "gt", "lt", "exists" };
static const char *const op_sql[] = { "=", ">=", "<=", ">", "<", "" };

/* A JSON path of STORE_MAX_FILTER_DEPTH quoted segments: at most the key's
 * bytes plus four per segment. */
#define PATH_MAX_BYTES (STORE_MAX_FILTER_KEY + 4 * STORE_MAX_FILTER_DEPTH + 8)

/* One key of a selection and every value given for it. */
struct sel_group {
	const char *key;                 /* as written (the first filter's) */
	char path[PATH_MAX_BYTES];       /* $."a"."b" */
	enum sel_op op;
	int indexed;                     /* an equality on a key metadata_terms holds */
	int use_terms;                   /* and few enough images have its values */
	struct dbuf values;              /* a JSON array */
	const char *texts[STORE_MAX_FILTERS];   /* the values as given (the selection's) */
	size_t n_texts;
	int numeric;                     /* one of them spells a number */
};

struct st_selection_plan {
	struct sel_group g[STORE_MAX_FILTERS];
	size_t n;
};

static void plan_free(struct st_selection_plan *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		dbuf_free(&p->g[i].values);
	free(p);
}

/* A top-level key metadata_terms holds (migration 0006): letters, digits,
 * _ and -, which is also all it takes to be spelled inside SQL quotes. */
static int plain_key(const char *k)
{
	size_t n = strlen(k);
	if (n == 0 || n > STORE_MAX_FILTER_KEY)
		return 0;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') || *k == '_' ||
		      *k == '-'))
			return 0;
	return 1;
}

/* Parse "a.b\.c.gte" into the path $."a"."b.c" and the operator. */
static int parse_key(const char *key, char *path, size_t len, enum sel_op *op, store_error *err)
{
	/* the path's segments and room for an operator segment after them */
	char seg[STORE_MAX_FILTER_DEPTH + 1][STORE_MAX_FILTER_KEY + 1];
	size_t nseg = 0, sl = 0;
	size_t klen = strlen(key);
	if (klen == 0 || klen > STORE_MAX_FILTER_KEY)
		return store_fail(err, STORE_ERR_INVALID, "%.*s: a filter key must be 1 to %d bytes",
				  STORE_MAX_FILTER_KEY, key, STORE_MAX_FILTER_KEY);
	for (const char *p = key;; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '.' || ch == 0) {
			if (sl == 0)
				return store_fail(err, STORE_ERR_INVALID, "%s: an empty path segment (write a dot in a key as \\.)", key);
			seg[nseg++][sl] = 0;
			sl = 0;
			if (ch == 0)
				break;
			continue;
		}
		if (ch == '\\') {
			p++;
			if (*p != '.' && *p != '\\')
				return store_fail(err, STORE_ERR_INVALID, "%s: a backslash must be followed by . or \\", key);
			ch = (unsigned char)*p;
		} else if (ch < 0x20 || ch == 0x7f || ch == '"') {
			return store_fail(err, STORE_ERR_INVALID, "%s: a filter key may not contain quotes or control characters", key);
		}
		if (nseg > STORE_MAX_FILTER_DEPTH)
			return store_fail(err, STORE_ERR_INVALID, "%s: at most %d path segments", key, STORE_MAX_FILTER_DEPTH);
		seg[nseg][sl++] = (char)ch;
	}
	*op = OP_EQ;
	if (nseg >= 2) {
		for (int o = OP_GTE; o <= OP_EXISTS; o++)
			if (!strcmp(seg[nseg - 1], op_names[o])) {
				*op = (enum sel_op)o;
				nseg--;
				break;
			}
	}
	if (nseg > STORE_MAX_FILTER_DEPTH)
		return store_fail(err, STORE_ERR_INVALID, "%s: at most %d path segments", key, STORE_MAX_FILTER_DEPTH);
	path[0] = 0;
	if (st_appendf(path, len, "$") != 0)
		return store_fail(err, STORE_ERR_INVALID, "%s: path too long", key);
	/* SQLite (3.40) matches a quoted path label against the key as the
	 * stored JSON text spells it, where a backslash is written \\: so is
	 * it in the label (quotes and control characters never get here). */
	for (size_t i = 0; i < nseg; i++) {
		char label[2 * STORE_MAX_FILTER_KEY + 1];
		size_t n = 0;
		for (const char *c = seg[i]; *c; c++) {
			if (*c == '\\')
				label[n++] = '\\';
			label[n++] = *c;
		}
		label[n] = 0;
		if (st_appendf(path, len, ".\"%s\"", label) != 0)
			return store_fail(err, STORE_ERR_INVALID, "%s: path too long", key);
	}
	return 0;
}

int store_json_string(struct dbuf *b, const char *v)
{
	int rc = dbuf_puts(b, "\"");
	for (const unsigned char *p = (const unsigned char *)v; *p && rc == 0; p++) {
		if (*p == '"' || *p == '\\')
			rc = dbuf_printf(b, "\\%c", *p);
		else if (*p < 0x20)
			rc = dbuf_printf(b, "\\u%04x", *p);
		else
			rc = dbuf_append(b, p, 1);
	}
	return rc ? rc : dbuf_puts(b, "\"");
}

/* Add one value to a group's JSON array: equality compares strings with
 * the text and numbers with the number it spells; a range compares the
 * one or the other; exists takes true or false. */
static int add_value(struct sel_group *g, const char *v, store_error *err)
{
	struct dbuf *b = &g->values;
	int rc = dbuf_puts(b, b->len ? "," : "[");
	/* A JSON number as RFC 8259 writes one (and finite): then the value
	 * also compares with stored numbers. */
	int num = text_is_number(v, 0) && isfinite(strtod(v, NULL));
	g->texts[g->n_texts++] = v;
	g->numeric |= num;
	switch (g->op) {
	case OP_EQ:
		rc |= store_json_string(b, v);
		if (num)
			rc |= dbuf_puts(b, ",") | dbuf_puts(b, v);
		break;
	case OP_EXISTS:
		if (strcmp(v, "true") && strcmp(v, "false"))
			return store_fail(err, STORE_ERR_INVALID, "%s: must be true or false", g->key);
		rc |= dbuf_puts(b, v[0] == 't' ? "1" : "0");
		break;
	default:
		rc |= num ? dbuf_puts(b, v) : store_json_string(b, v);
		break;
	}
	return rc ? store_fail(err, STORE_ERR_NOMEM, "out of memory") : 0;
}

/* The groups of a selection's filters (same key: any value), checked. */
static int plan_selection(const struct store_selection *sel, struct st_selection_plan **out, store_error *err)
{
	*out = NULL;
	if (!sel || sel->n_filters == 0)
		return 0;
	if (sel->n_filters > STORE_MAX_FILTERS)
		return store_fail(err, STORE_ERR_INVALID, "at most %d metadata filters", STORE_MAX_FILTERS);
	if (!sel->filters)
		return store_fail(err, STORE_ERR_INVALID, "filters missing");
	if (sel->library && (!*sel->library || strlen(sel->library) > STORE_LIBRARY_NAME_MAX))
		return store_fail(err, STORE_ERR_INVALID, "a library name must be 1 to %d bytes", STORE_LIBRARY_NAME_MAX);
	struct st_selection_plan *p = calloc(1, sizeof *p);
	if (!p)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < sel->n_filters && rc == 0; i++) {
		const char *k = sel->filters[i].key, *v = sel->filters[i].value;
		if (!k)
			k = "";
		if (!v || strlen(v) > STORE_MAX_FILTER_VALUE) {
			rc = store_fail(err, STORE_ERR_INVALID, "%.*s: a filter value must be at most %d bytes",
					STORE_MAX_FILTER_KEY, k, STORE_MAX_FILTER_VALUE);
			break;
		}
		struct sel_group *g = NULL;
		for (size_t j = 0; j < p->n && !g; j++)
			if (!strcmp(p->g[j].key, k))
				g = &p->g[j];
		if (!g) {
			g = &p->g[p->n];
			g->key = k;
			if ((rc = parse_key(k, g->path, sizeof g->path, &g->op, err)) != 0)
				break;
			g->indexed = g->op == OP_EQ && plain_key(k);
			p->n++;
		}
		rc = add_value(g, v, err);
	}
	for (size_t j = 0; j < p->n && rc == 0; j++)
		if (dbuf_puts(&p->g[j].values, "]") != 0)
			rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc != 0) {
		plan_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

int store_check_selection(const struct store_selection *sel, store_error *err)
{
	struct st_selection_plan *p = NULL;
	int rc = plan_selection(sel, &p, err);
	plan_free(p);
	return rc;
}

/* The images metadata_terms gives for group g's values (parameter vals:
 * its JSON array), as the migration spells them. */
static int terms_sql(char *buf, size_t len, const struct sel_group *g, int vals)
{
	return st_appendf(buf, len,
			  "SELECT m.image_id FROM metadata_terms m WHERE m.key = '%s' AND m.term IN"
			  " (SELECT CASE v.type WHEN 'text' THEN 't' || v.value ELSE 'n' || CAST(v.value AS REAL) END"
			  " FROM json_each(?%d) v WHERE v.type IN ('text', 'integer', 'real')"
			  " UNION ALL SELECT 'b' || v.value FROM json_each(?%d) v"
			  " WHERE v.type = 'text' AND v.value IN ('true', 'false'))",
			  g->key, vals, vals);
}

/* Append the WHERE conditions of sel (each starting with " AND ") over the
 * images table aliased i; -1 if buf is too small. */
static int selection_sql(const struct store_selection *sel, const struct st_selection_plan *p,
			 char *buf, size_t len)
{
	int rc = 0;
	if (sel->has_after)
		rc |= st_appendf(buf, len, " AND i.created_at > ?%d", P_AFTER);
	if (sel->has_before)
		rc |= st_appendf(buf, len, " AND i.created_at < ?%d", P_BEFORE);
	if (sel->exclude_id)
		rc |= st_appendf(buf, len, " AND i.id != ?%d", P_EXCLUDE);
	if (sel->has_taken_after)
		rc |= st_appendf(buf, len, " AND i.taken_at_us > ?%d", P_TAKEN_AFTER);
	if (sel->has_taken_before)
		rc |= st_appendf(buf, len, " AND i.taken_at_us < ?%d", P_TAKEN_BEFORE);
	if (sel->library)
		rc |= st_appendf(buf, len, " AND EXISTS (SELECT 1 FROM library_files lf WHERE lf.image_id = i.id "
				 "AND lf.library = ?%d AND lf.ignored = 0)", P_LIBRARY);
	for (size_t f = 0; p && f < p->n; f++) {
		int path = P_FILTER0 + 2 * (int)f, vals = path + 1;
		const struct sel_group *g = &p->g[f];
		if (g->op == OP_EXISTS) {
			rc |= st_appendf(buf, len, " AND (json_type(i.metadata, ?%d) IS NOT NULL) IN "
					 "(SELECT value FROM json_each(?%d))", path, vals);
			continue;
		}
		/* An equality on a plain top-level key: first the images whose
		 * terms spell one of the values (metadata_terms; a superset of
		 * the matches, as the migration spells them), so that only those
		 * rows' metadata is read; then the condition below decides. */
		if (g->use_terms)
			rc |= st_appendf(buf, len, " AND i.id IN (") | terms_sql(buf, len, g, vals) |
			      st_appendf(buf, len, ")");
		/* The value at the path, or each element when it is an array
		 * (json_each gives both); an object matches nothing. */
		rc |= st_appendf(buf, len,
				 " AND EXISTS (SELECT 1 FROM json_each(i.metadata, ?%d) e, json_each(?%d) v"
				 " WHERE json_type(i.metadata, ?%d) <> 'object' AND (", path, vals, path);
		if (g->op == OP_EQ)
			rc |= st_appendf(buf, len,
					 "(e.type = 'text' AND v.type = 'text' AND e.atom = v.value)"
					 " OR (e.type IN ('integer', 'real') AND v.type IN ('integer', 'real') AND e.atom = v.value)"
					 " OR (e.type IN ('true', 'false') AND v.type = 'text' AND v.value = e.type)))");
		else
			rc |= st_appendf(buf, len,
					 "((e.type IN ('integer', 'real') AND v.type IN ('integer', 'real'))"
					 " OR (e.type = 'text' AND v.type = 'text')) AND e.atom %s v.value))",
					 op_sql[g->op]);
	}
	return rc;
}

static void selection_bind(sqlite3_stmt *st, const struct store_selection *sel, const struct st_selection_plan *p)
{
	if (sel->has_after)
		sqlite3_bind_int64(st, P_AFTER, sel->created_after);
	if (sel->has_before)
		sqlite3_bind_int64(st, P_BEFORE, sel->created_before);
	if (sel->exclude_id)
		sqlite3_bind_int64(st, P_EXCLUDE, sel->exclude_id);
	if (sel->has_taken_after)
		sqlite3_bind_int64(st, P_TAKEN_AFTER, sel->taken_after);
	if (sel->has_taken_before)
		sqlite3_bind_int64(st, P_TAKEN_BEFORE, sel->taken_before);
	if (sel->library)
		sqlite3_bind_text(st, P_LIBRARY, sel->library, -1, SQLITE_STATIC);
	for (size_t f = 0; p && f < p->n; f++) {
		sqlite3_bind_text(st, P_FILTER0 + 2 * (int)f, p->g[f].path, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, P_FILTER0 + 2 * (int)f + 1, p->g[f].values.data, -1, SQLITE_STATIC);
	}
}

/* Room for the SQL of a selection of STORE_MAX_FILTERS filters (each with
 * its metadata_terms list). */
#define SEL_SQL_MAX (STORE_MAX_FILTERS * 1024 + 4096)

/* Whether at most cap images have one of group g's values (metadata_terms
 * read no further than that); 0 when that cannot be told. */
static int terms_at_most(struct store_conn *c, const struct sel_group *g, size_t cap)
{
	char sql[1024] = "SELECT count(*) FROM (";
	sqlite3_stmt *st = NULL;
	int few = 0;
	if (terms_sql(sql, sizeof sql, g, 1) != 0 || st_appendf(sql, sizeof sql, " LIMIT ?2)") != 0 ||
	    sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(st, 1, g->values.data, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, cap >= (size_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)cap + 1);
	if (sqlite3_step(st) == SQLITE_ROW)
		few = (size_t)sqlite3_column_int64(st, 0) <= cap;
	sqlite3_finalize(st);
	return few;
}

/* terms_cap: a statement that reads every match up to that many may start
 * from the ids metadata_terms gives for an equality on a plain key, when
 * they are no more than that (then SQLite reads those rows only); past it,
 * building that list first costs more than reading the rows in order (at
 * a million images and half of them matching, twice the time). Statements
 * that check a few given ids or stop at the first matches in their own
 * order pass 0. */
static int selection_prepare(struct store_conn *c, const char *head, const struct store_selection *sel,
			     size_t terms_cap, const char *tail, sqlite3_stmt **out, struct st_selection_plan **plan,
			     store_error *err)
{
	*out = NULL;
	*plan = NULL;
	int rc = plan_selection(sel, plan, err);
	if (rc != 0)
		return rc;
	for (size_t j = 0; terms_cap && *plan && j < (*plan)->n; j++)
		(*plan)->g[j].use_terms = (*plan)->g[j].indexed && terms_at_most(c, &(*plan)->g[j], terms_cap);
	char *sql = malloc(SEL_SQL_MAX);
	if (!sql) {
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	sql[0] = 0;
	if (st_appendf(sql, SEL_SQL_MAX, "%s", head) != 0 || (sel && selection_sql(sel, *plan, sql, SEL_SQL_MAX) != 0)
	    || st_appendf(sql, SEL_SQL_MAX, "%s", tail ? tail : "") != 0) {
		rc = store_fail(err, STORE_ERR_INVALID, "selection too complex");
		goto out;
	}
	int r = sqlite3_prepare_v2(c->db, sql, -1, out, NULL);
	if (r != SQLITE_OK) {
		rc = st_dberr(c->db, r, err, "prepare selection");
		goto out;
	}
	if (sel)
		selection_bind(*out, sel, *plan);
out:
	free(sql);
	if (rc != 0) {
		plan_free(*plan);
		*plan = NULL;
	}
	return rc;
}

int st_selection_prepare(struct store_conn *c, const char *head, const struct store_selection *sel,
			 const char *tail, sqlite3_stmt **out, struct st_selection_plan **plan, store_error *err)
{
	return selection_prepare(c, head, sel, 0, tail, out, plan, err);
}

void st_selection_finish(sqlite3_stmt *st, struct st_selection_plan *plan)
{
	sqlite3_finalize(st);
	plan_free(plan);
}

int store_scan_selection(store *s, const struct store_selection *sel, size_t dim, size_t limit,
			 store_vector_fn fn, void *ud, int *truncated, store_error *err)
{
	struct store_model m;
	int have, rc;
	char tail[32];
	sqlite3_stmt *st = NULL;
	struct st_selection_plan *plan = NULL;
	float *vec = NULL;
	*truncated = 0;
	st_active(s, &m, &have);
	if (!have || m.dim != dim)
		return store_fail(err, STORE_ERR_MODEL, "no active model of dimension %zu", dim);
	snprintf(tail, sizeof tail, " LIMIT ?%d", P_LIMIT);
	if (!(vec = malloc(dim * sizeof *vec)))
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	struct store_conn *c = NULL;
	if ((rc = st_read_begin(s, &c, err)) != 0)
		goto out_free;
	rc = selection_prepare(c, "SELECT i.id, v.vec FROM images i JOIN vectors v ON v.image_id = i.id "
			       "AND v.model = ?1 WHERE 1", sel, limit, tail, &st, &plan, err);
	if (rc != 0)
		goto out;
	sqlite3_bind_text(st, 1, m.fingerprint, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, P_LIMIT, limit >= (size_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)limit + 1);
	size_t seen = 0;
	int r;
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
	st_selection_finish(st, plan);
	st_read_end(s, c);
out_free:
	free(vec);
	return rc;
}

int store_filter_ids(store *s, const struct store_selection *sel, const int64_t *ids, size_t n,
		     unsigned char *keep, store_error *err)
{
	sqlite3_stmt *st = NULL;
	struct st_selection_plan *plan = NULL;
	int rc;
	memset(keep, 0, n);
	if ((rc = store_check_selection(sel, err)) != 0 || n == 0)
		return rc;
	struct store_conn *c = NULL;
	if ((rc = st_read_begin(s, &c, err)) != 0)
		return rc;
	if ((rc = st_selection_prepare(c, "SELECT 1 FROM images i WHERE i.id = ?1", sel, NULL, &st, &plan, err)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_int64(st, 1, ids[i]);
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			keep[i] = 1;
		} else if (r != SQLITE_DONE) {
			rc = st_dberr(c->db, r, err, "filter");
			break;
		}
		sqlite3_reset(st);
	}
out:
	st_selection_finish(st, plan);
	st_read_end(s, c);
	return rc;
}

/* ---- the plan for another backend's SQL (store.h) ------------------------------------------ */

int store_selection_plan(const struct store_selection *sel, struct st_selection_plan **out, store_error *err)
{
	return plan_selection(sel, out, err);
}

size_t store_plan_groups(const struct st_selection_plan *p)
{
	return p ? p->n : 0;
}

void store_plan_group(const struct st_selection_plan *p, size_t i, const char **path, int *op, const char **values)
{
	*path = p->g[i].path;
	*op = (int)p->g[i].op;
	*values = p->g[i].values.data;
}

size_t store_plan_group_texts(const struct st_selection_plan *p, size_t i, const char *const **texts, int *numeric)
{
	*texts = p->g[i].texts;
	*numeric = p->g[i].numeric;
	return p->g[i].n_texts;
}

void store_selection_plan_free(struct st_selection_plan *p)
{
	plan_free(p);
}
