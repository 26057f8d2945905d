/*
 * Near-duplicate groups: from each image in id order, the connected images
 * whose cosine reaches a threshold, found through the index. See
 * catalog_duplicate_groups in catalog.h.
 */
#include <stdlib.h>
#include <string.h>

#include "catalog_internal.h"

void catalog_groups_free(struct catalog_groups *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++) {
		for (size_t j = 0; j < g->groups[i].n; j++)
			store_image_clear(&g->groups[i].hits[j].image);
		free(g->groups[i].hits);
	}
	free(g->groups);
	memset(g, 0, sizeof *g);
}

struct dup_work {
	size_t dim;
	float *vecs;                     /* CATALOG_DUP_GROUP_MAX vectors of the members */
	int64_t members[CATALOG_DUP_GROUP_MAX];
	size_t n;
	float scores[CATALOG_DUP_NEIGHBOURS];
	int64_t ids[CATALOG_DUP_NEIGHBOURS];
};

static int member(const struct dup_work *w, int64_t id)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->members[i] == id)
			return 1;
	return 0;
}

/* The group reached from first; *mine = 0 when it holds a smaller id (it
 * was reported from there). */
static int grow(catalog *c, struct dup_work *w, int64_t first, float min_score, int *mine, store_error *err)
{
	w->n = 0;
	*mine = 1;
	w->members[w->n++] = first;
	for (size_t at = 0; at < w->n; at++) {
		float *v = w->vecs + at * w->dim;
		int rc = c->be->get_vector(c->db, w->members[at], c->model.fingerprint, v, w->dim, err);
		if (rc == STORE_ERR_NOT_FOUND && at > 0)
			continue;   /* deleted meanwhile */
		if (rc != 0)
			return rc;
		size_t n = 0;
		idx_error ie;
		pthread_rwlock_rdlock(&c->ixlock);
		rc = idx_search(c->ix, v, CATALOG_DUP_NEIGHBOURS, w->scores, w->ids, &n, &ie);
		pthread_rwlock_unlock(&c->ixlock);
		if (rc != 0)
			return cat_idx_fail(err, &ie, "search the index");
		for (size_t i = 0; i < n && w->scores[i] >= min_score; i++) {
			if (member(w, w->ids[i]))
				continue;
			if (w->ids[i] < first) {
				*mine = 0;
				return 0;
			}
			if (w->n < CATALOG_DUP_GROUP_MAX)
				w->members[w->n++] = w->ids[i];
		}
	}
	return 0;
}

static int by_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* The rows of a grown group, members ordered by id, scored against the first. */
static int add_group(catalog *c, struct dup_work *w, struct catalog_groups *out, store_error *err)
{
	size_t dim = w->dim, n = w->n;
	/* keep each member's vector with its id while sorting */
	int64_t order[CATALOG_DUP_GROUP_MAX];
	float scores[CATALOG_DUP_GROUP_MAX];
	memcpy(order, w->members, n * sizeof *order);
	qsort(order, n, sizeof *order, by_id);
	for (size_t i = 0; i < n; i++) {
		size_t at = 0;
		while (w->members[at] != order[i])
			at++;
		double dot = 0;
		for (size_t d = 0; d < dim; d++)
			dot += (double)w->vecs[d] * w->vecs[at * dim + d];
		scores[i] = (float)dot;
	}
	struct catalog_results rows = { 0 };
	int rc = cat_fetch_rows(c, order, scores, n, &rows, err);
	if (rc != 0)
		return rc;
	if (rows.n > 1) {
		out->groups[out->n].hits = rows.hits;
		out->groups[out->n].n = rows.n;
		out->n++;
	} else {
		catalog_results_free(&rows);
	}
	return 0;
}

int catalog_duplicate_groups(catalog *c, float min_score, int64_t after_id, size_t limit,
			     struct catalog_groups *out, int64_t *next_cursor, store_error *err)
{
	memset(out, 0, sizeof *out);
	*next_cursor = 0;
	if (!c->ix)
		return store_fail(err, STORE_ERR_INVALID, "the catalog has no index loaded");
	if (limit < 1 || limit > CATALOG_MAX_LIST)
		return store_fail(err, STORE_ERR_INVALID, "limit must be 1 to %d", CATALOG_MAX_LIST);
	if (!(min_score >= -1 && min_score <= 1))
		return store_fail(err, STORE_ERR_INVALID, "min_score must be -1 to 1");
	struct dup_work *w = calloc(1, sizeof *w);
	int64_t *ids = malloc(CATALOG_DUP_SCAN * sizeof *ids);
	out->groups = calloc(limit, sizeof *out->groups);
	int rc = 0;
	if (!w || !ids || !out->groups || !(w->vecs = malloc(CATALOG_DUP_GROUP_MAX * c->model.dim * sizeof *w->vecs))) {
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	w->dim = c->model.dim;
	size_t n = 0;
	if ((rc = c->be->vector_ids(c->db, c->model.fingerprint, after_id, ids, CATALOG_DUP_SCAN, &n, err)) != 0)
		goto out;
	size_t i = 0;
	for (; i < n && out->n < limit; i++) {
		int mine = 0;
		rc = grow(c, w, ids[i], min_score, &mine, err);
		if (rc == STORE_ERR_NOT_FOUND) {
			rc = 0;   /* deleted since the list */
			continue;
		}
		if (rc != 0)
			goto out;
		if (mine && w->n > 1 && (rc = add_group(c, w, out, err)) != 0)
			goto out;
	}
	/* More to look at: this page stopped early, or the scan was full. */
	if (i < n || n == CATALOG_DUP_SCAN)
		*next_cursor = ids[i - 1];
out:
	if (rc != 0)
		catalog_groups_free(out);
	if (w)
		free(w->vecs);
	free(w);
	free(ids);
	return rc;
}
