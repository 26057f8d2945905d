/*
 * The SQLite store's vectors (one per image and model) and the change log
 * that lets a saved index catch up: what was added and removed after the
 * sequence it covers. See store.h.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

/* ---- vectors ------------------------------------------------------------------- */

int store_get_vector(store *s, int64_t id, const char *fingerprint, float *out, size_t dim,
		     store_error *err)
{
	static const char sql[] = "SELECT vec FROM vectors WHERE image_id = ?1 AND model = ?2";
	struct store_model m;
	int have;
	if (!fingerprint) {
		st_active(s, &m, &have);
		if (!have)
			return store_fail(err, STORE_ERR_MODEL, "the store has no active model");
		fingerprint = m.fingerprint;
	}
	struct store_conn *c = NULL;
	sqlite3_stmt *st = NULL;
	int rc = st_reader_prepare(s, sql, &c, &st, err);
	if (rc != 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, fingerprint, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		size_t bytes = (size_t)sqlite3_column_bytes(st, 0);
		if (bytes != dim * 4)
			rc = store_fail(err, STORE_ERR_INVALID, "image %lld: vector has %zu bytes, expected %zu",
				     (long long)id, bytes, dim * 4);
		else
			st_vec_from_le(sqlite3_column_blob(st, 0), dim, out);
	} else if (r == SQLITE_DONE) {
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no vector for image %lld", (long long)id);
	} else {
		rc = st_dberr(c->db, r, err, "read vector");
	}
	st_reader_end(s, c, st);
	return rc;
}

int store_put_vectors(store *s, const int64_t *ids, size_t n, const char *fingerprint,
		      const float *vecs, size_t dim, store_error *err)
{
	static const char sql[] = "INSERT OR REPLACE INTO vectors (image_id, model, vec) "
				  "SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM images WHERE id = ?1)";
	static const char model_sql[] = "SELECT dim FROM models WHERE fingerprint = ?1";
	void *blob = malloc(dim ? dim * 4 : 1);
	if (!blob)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	int rc = st_write_begin(s, err);
	if (rc != 0) {
		free(blob);
		return rc;
	}
	struct store_conn *c = s->writer;
	sqlite3_stmt *st = st_prepare(c, model_sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		if ((size_t)sqlite3_column_int64(st, 0) != dim)
			rc = store_fail(err, STORE_ERR_INVALID, "model %.12s has dimension %lld, not %zu",
				     fingerprint, (long long)sqlite3_column_int64(st, 0), dim);
	} else {
		rc = r == SQLITE_DONE ? store_fail(err, STORE_ERR_NOT_FOUND, "no model %.12s recorded", fingerprint)
				      : st_dberr(c->db, r, err, "read model");
	}
	st_done(st);
	if (rc != 0)
		goto out;
	if (!(st = st_prepare(c, sql, err))) {
		rc = STMT_FAIL(err);
		goto out;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		st_vec_to_le(vecs + i * dim, dim, blob);
		sqlite3_bind_int64(st, 1, ids[i]);
		sqlite3_bind_text(st, 2, fingerprint, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, blob, (int)(dim * 4), SQLITE_STATIC);
		r = sqlite3_step(st);
		if (r != SQLITE_DONE)
			rc = st_dberr(c->db, r, err, "store vector");
		sqlite3_reset(st);
	}
	st_done(st);
out:
	rc = st_write_end(s, rc, err);
	free(blob);
	return rc;
}

/* ---- the change log ------------------------------------------------------------- */

static int seq_conn(struct store_conn *c, uint64_t *seq, store_error *err)
{
	static const char sql[] = "SELECT seq FROM sqlite_sequence WHERE name = 'changes'";
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st)
		return STMT_FAIL(err);
	int r = sqlite3_step(st), rc = 0;
	if (r == SQLITE_ROW)
		*seq = (uint64_t)sqlite3_column_int64(st, 0);
	else if (r == SQLITE_DONE)
		*seq = 0;
	else
		rc = st_dberr(c->db, r, err, "read change sequence");
	st_done(st);
	return rc;
}

int store_seq(store *s, uint64_t *seq, store_error *err)
{
	struct store_conn *c = NULL;
	int rc = st_reader_get(s, &c, err);
	if (rc == 0)
		rc = seq_conn(c, seq, err);
	st_reader_put(s, c);
	return rc;
}

/* Read (id, vec) rows of a prepared statement into growing arrays. */
struct vec_acc {
	int64_t *ids;
	float *vecs;
	size_t n, cap, dim;
};

static int acc_push(struct vec_acc *a, int64_t id, const void *blob, size_t bytes, store_error *err)
{
	if (bytes != a->dim * 4)
		return store_fail(err, STORE_ERR_DB, "image %lld: stored vector has %zu bytes, expected %zu "
			       "(run clipd check)", (long long)id, bytes, a->dim * 4);
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 1024;
		if (cap > SIZE_MAX / (a->dim * sizeof(float)))
			return store_fail(err, STORE_ERR_NOMEM, "too many vectors");
		int64_t *ids = realloc(a->ids, cap * sizeof *ids);
		if (!ids)
			return store_fail(err, STORE_ERR_NOMEM, "out of memory");
		a->ids = ids;
		float *vecs = realloc(a->vecs, cap * a->dim * sizeof *vecs);
		if (!vecs)
			return store_fail(err, STORE_ERR_NOMEM, "out of memory loading %zu vectors", cap);
		a->vecs = vecs;
		a->cap = cap;
	}
	a->ids[a->n] = id;
	st_vec_from_le(blob, a->dim, a->vecs + a->n * a->dim);
	a->n++;
	return 0;
}

static int acc_run(struct store_conn *c, sqlite3_stmt *st, struct vec_acc *a, store_error *err)
{
	int r, rc = 0;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		rc = acc_push(a, sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
			      (size_t)sqlite3_column_bytes(st, 1), err);
		if (rc != 0)
			break;
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "read vectors");
	st_done(st);
	return rc;
}

/* The active model into *m, which must have dimension dim. */
static int active_of_dim(store *s, size_t dim, struct store_model *m, store_error *err)
{
	int have;
	st_active(s, m, &have);
	if (!have)
		return store_fail(err, STORE_ERR_MODEL, "the store has no active model");
	if (m->dim != dim)
		return store_fail(err, STORE_ERR_MODEL, "the stored model has dimension %zu, not %zu", m->dim, dim);
	return 0;
}

int store_load_vectors(store *s, size_t dim, int64_t **ids, float **vecs, size_t *n,
		       uint64_t *seq, store_error *err)
{
	static const char sql[] = "SELECT image_id, vec FROM vectors WHERE model = ?1 ORDER BY image_id";
	struct store_model m;
	int rc;
	struct vec_acc a = { .dim = dim };
	*ids = NULL;
	*vecs = NULL;
	*n = 0;
	if ((rc = active_of_dim(s, dim, &m, err)) != 0)
		return rc;
	struct store_conn *c = NULL;
	if ((rc = st_read_begin(s, &c, err)) != 0)
		return rc;
	if ((rc = seq_conn(c, seq, err)) != 0)
		goto out;
	sqlite3_stmt *st = st_prepare(c, sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_text(st, 1, m.fingerprint, -1, SQLITE_STATIC);
	rc = acc_run(c, st, &a, err);
out:
	st_read_end(s, c);
	if (rc != 0) {
		free(a.ids);
		free(a.vecs);
		return rc;
	}
	*ids = a.ids;
	*vecs = a.vecs;
	*n = a.n;
	return 0;
}

void store_changes_clear(struct store_changes *c)
{
	if (!c)
		return;
	free(c->add_ids);
	free(c->add_vecs);
	free(c->remove_ids);
	memset(c, 0, sizeof *c);
}

int store_changes_since(store *s, uint64_t seq, size_t dim, struct store_changes *out,
			store_error *err)
{
	static const char reset_sql[] = "SELECT seq FROM changes WHERE seq > ?1 AND op = 'reset' LIMIT 1";
	/* An image whose pixels changed in place (a library file edited:
	 * store_lib_commit) logs a remove and then an add under its id: the
	 * remove counts when no add of the id came between seq and it, and
	 * the id is added once, with the vector it has now. */
	static const char add_sql[] =
		"SELECT c.image_id, v.vec FROM changes c JOIN vectors v ON v.image_id = c.image_id "
		"AND v.model = ?2 WHERE c.seq > ?1 AND c.op = 'add' GROUP BY c.image_id ORDER BY MIN(c.seq)";
	static const char rm_sql[] =
		"SELECT r.image_id FROM changes r WHERE r.seq > ?1 AND r.op = 'remove' AND NOT EXISTS "
		"(SELECT 1 FROM changes a WHERE a.image_id = r.image_id AND a.op = 'add' AND a.seq > ?1 "
		"AND a.seq < r.seq) GROUP BY r.image_id ORDER BY MIN(r.seq)";
	struct store_model m;
	int rc, r;
	char *pruned_text = NULL;
	struct vec_acc a = { .dim = dim };
	int64_t *rm = NULL;
	size_t n_rm = 0, cap_rm = 0;
	memset(out, 0, sizeof *out);
	if ((rc = active_of_dim(s, dim, &m, err)) != 0)
		return rc;
	struct store_conn *c = NULL;
	if ((rc = st_read_begin(s, &c, err)) != 0)
		return rc;
	uint64_t last = 0, pruned = 0;
	if ((rc = seq_conn(c, &last, err)) != 0)
		goto out;
	if (seq > last) {
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "the index is at change %llu, ahead of the database (%llu)",
			     (unsigned long long)seq, (unsigned long long)last);
		goto out;
	}
	if ((rc = st_setting_get(c, "log_pruned_through", &pruned_text, err)) != 0)
		goto out;
	pruned = pruned_text ? strtoull(pruned_text, NULL, 10) : 0;
	if (seq < pruned) {
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "the index is at change %llu, but the change log "
			     "starts after %llu", (unsigned long long)seq, (unsigned long long)pruned);
		goto out;
	}
	sqlite3_stmt *st = st_prepare(c, reset_sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "the model changed at change %lld, after the index's %llu",
			     (long long)sqlite3_column_int64(st, 0), (unsigned long long)seq);
	else if (r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "read change log");
	st_done(st);
	if (rc != 0)
		goto out;

	if (!(st = st_prepare(c, add_sql, err))) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	sqlite3_bind_text(st, 2, m.fingerprint, -1, SQLITE_STATIC);
	if ((rc = acc_run(c, st, &a, err)) != 0)
		goto out;

	if (!(st = st_prepare(c, rm_sql, err))) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (n_rm == cap_rm) {
			size_t cap = cap_rm ? cap_rm * 2 : 256;
			int64_t *p = realloc(rm, cap * sizeof *p);
			if (!p) {
				rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
				break;
			}
			rm = p;
			cap_rm = cap;
		}
		rm[n_rm++] = sqlite3_column_int64(st, 0);
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "read change log");
	st_done(st);
out:
	st_read_end(s, c);
	free(pruned_text);
	if (rc != 0) {
		free(a.ids);
		free(a.vecs);
		free(rm);
		return rc;
	}
	out->add_ids = a.ids;
	out->add_vecs = a.vecs;
	out->n_add = a.n;
	out->remove_ids = rm;
	out->n_remove = n_rm;
	out->last = last;
	return 0;
}

int store_prune_changes(store *s, uint64_t seq, store_error *err)
{
	static const char del_sql[] = "DELETE FROM changes WHERE seq <= ?1";
	static const char set_sql[] =
		"INSERT INTO settings (key, value) VALUES ('log_pruned_through', ?1) "
		"ON CONFLICT (key) DO UPDATE SET value = CAST(max(CAST(value AS INTEGER), "
		"CAST(excluded.value AS INTEGER)) AS TEXT)";
	int rc = st_write_begin(s, err);
	if (rc != 0)
		return rc;
	struct store_conn *c = s->writer;
	sqlite3_stmt *st = st_prepare(c, del_sql, err);
	if (!st) {
		rc = STMT_FAIL(err);
		goto out;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	int r = sqlite3_step(st);
	rc = r == SQLITE_DONE ? 0 : st_dberr(c->db, r, err, "prune change log");
	st_done(st);
	if (rc != 0)
		goto out;
	if (!(st = st_prepare(c, set_sql, err))) {
		rc = STMT_FAIL(err);
		goto out;
	}
	char text[32];
	snprintf(text, sizeof text, "%llu", (unsigned long long)seq);
	sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
	r = sqlite3_step(st);
	rc = r == SQLITE_DONE ? 0 : st_dberr(c->db, r, err, "record pruning");
	st_done(st);
out:
	return st_write_end(s, rc, err);
}

/* ---- reembed's progress ----------------------------------------------------------- */

int store_count_vectors(store *s, const char *fingerprint, int64_t *n, store_error *err)
{
	static const char sql[] = "SELECT COUNT(*) FROM vectors WHERE model = ?1";
	*n = 0;
	int rc = st_read_int64(s, sql, fingerprint, n, "count vectors", err);
	return rc < 0 ? rc : 0;
}

/* Ids ascending after after_id of the images with (or, missing, without)
 * a vector under fingerprint. */
static int vector_ids(store *s, const char *fingerprint, int missing, int64_t after_id, int64_t *ids,
		      size_t max, size_t *n, store_error *err)
{
	static const char sql_missing[] =
		"SELECT i.id FROM images i WHERE i.id > ?2 AND NOT EXISTS "
		"(SELECT 1 FROM vectors v WHERE v.image_id = i.id AND v.model = ?1) ORDER BY i.id LIMIT ?3";
	static const char sql_with[] =
		"SELECT v.image_id FROM vectors v WHERE v.model = ?1 AND v.image_id > ?2 ORDER BY v.image_id LIMIT ?3";
	struct store_conn *c = NULL;
	sqlite3_stmt *st = NULL;
	*n = 0;
	int rc = st_reader_prepare(s, missing ? sql_missing : sql_with, &c, &st, err);
	if (rc != 0)
		return rc;
	sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, after_id);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
	int r = SQLITE_DONE;
	while (*n < max && (r = sqlite3_step(st)) == SQLITE_ROW)
		ids[(*n)++] = sqlite3_column_int64(st, 0);
	if (*n < max && r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "list image ids");
	st_reader_end(s, c, st);
	return rc;
}

int store_missing_vectors(store *s, const char *fingerprint, int64_t after_id, int64_t *ids,
			  size_t max, size_t *n, store_error *err)
{
	return vector_ids(s, fingerprint, 1, after_id, ids, max, n, err);
}

int store_vector_ids(store *s, const char *fingerprint, int64_t after_id, int64_t *ids,
		     size_t max, size_t *n, store_error *err)
{
	return vector_ids(s, fingerprint, 0, after_id, ids, max, n, err);
}
