/*
 * Searches over a catalog: the index for plain queries; for filtered ones
 * an exact scan of the stored vectors when the filtered set is small, else
 * an over-fetch from the index. See catalog_search in catalog.h.
 */
#include <stdlib.h>
#include <string.h>

#include "catalog_internal.h"

/* How many index results to ask for per wanted result when filtering an
 * approximate search, and the floor of that. */
#define OVERFETCH_FACTOR 20
#define OVERFETCH_MIN 1000

void catalog_results_free(struct catalog_results *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		store_image_clear(&r->hits[i].image);
	free(r->hits);
	memset(r, 0, sizeof *r);
}

/* ---- top k of an exact scan: a min-heap on (score, -id) ----------------------- */

struct topk {
	const float *q;
	size_t dim, k, n;
	int has_min;
	float min;
	float *scores;
	int64_t *ids;
};

static int worse(float sa, int64_t ia, float sb, int64_t ib)
{
	return sa < sb || (sa == sb && ia > ib);
}

static void heap_swap(struct topk *t, size_t a, size_t b)
{
	float s = t->scores[a];
	int64_t i = t->ids[a];
	t->scores[a] = t->scores[b];
	t->ids[a] = t->ids[b];
	t->scores[b] = s;
	t->ids[b] = i;
}

static void heap_down(struct topk *t, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < t->n && worse(t->scores[l], t->ids[l], t->scores[m], t->ids[m]))
			m = l;
		if (r < t->n && worse(t->scores[r], t->ids[r], t->scores[m], t->ids[m]))
			m = r;
		if (m == i)
			return;
		heap_swap(t, i, m);
		i = m;
	}
}

static void heap_push(struct topk *t, float s, int64_t id)
{
	if (t->n < t->k) {
		size_t i = t->n++;
		t->scores[i] = s;
		t->ids[i] = id;
		while (i > 0) {
			size_t p = (i - 1) / 2;
			if (!worse(t->scores[i], t->ids[i], t->scores[p], t->ids[p]))
				break;
			heap_swap(t, i, p);
			i = p;
		}
	} else if (worse(t->scores[0], t->ids[0], s, id)) {
		t->scores[0] = s;
		t->ids[0] = id;
		heap_down(t, 0);
	}
}

static int scan_one(void *ud, int64_t id, const float *vec)
{
	struct topk *t = ud;
	float s = 0;
	for (size_t i = 0; i < t->dim; i++)
		s += t->q[i] * vec[i];
	if (!t->has_min || s >= t->min)
		heap_push(t, s, id);
	return 0;
}

/* Sort the heap best first. */
static void heap_sort_desc(struct topk *t)
{
	size_t n = t->n;
	while (t->n > 1) {
		heap_swap(t, 0, t->n - 1);
		t->n--;
		heap_down(t, 0);
	}
	t->n = n;   /* worst moved to the end each time: now best first */
}

/* ---- search ------------------------------------------------------------------------ */

/* get_many through the node's row cache: the hits from it, the misses in
 * one read (then kept), none when every row is cached. */
static int get_rows(catalog *c, const int64_t *ids, size_t n, struct store_image *rows, unsigned char *found,
		    store_error *err)
{
	if (!c->rows)
		return c->be->get_many(c->db, ids, n, rows, found, err);
	int64_t *miss = malloc(n * sizeof *miss);
	size_t *at = malloc(n * sizeof *at);
	struct store_image *got = calloc(n, sizeof *got);
	unsigned char *got_found = calloc(n, 1);
	size_t m = 0;
	int rc = 0;
	if (!miss || !at || !got || !got_found) {
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	memset(found, 0, n);
	for (size_t i = 0; i < n; i++) {
		if (rowcache_get(c->rows, ids[i], &rows[i]) == 1) {
			found[i] = 1;
		} else {
			miss[m] = ids[i];
			at[m++] = i;
		}
	}
	if (m == 0)
		goto out;
	uint64_t epoch = rowcache_epoch(c->rows);
	if ((rc = c->be->get_many(c->db, miss, m, got, got_found, err)) != 0)
		goto out;
	for (size_t j = 0; j < m; j++) {
		if (!got_found[j])
			continue;
		rowcache_put(c->rows, epoch, &got[j]);
		rows[at[j]] = got[j];
		memset(&got[j], 0, sizeof got[j]);
		found[at[j]] = 1;
	}
out:
	if (rc != 0)
		for (size_t i = 0; i < n; i++) {
			store_image_clear(&rows[i]);
			found[i] = 0;
		}
	if (got)
		for (size_t j = 0; j < m; j++)
			store_image_clear(&got[j]);
	free(got);
	free(got_found);
	free(miss);
	free(at);
	return rc;
}

int cat_fetch_rows(catalog *c, const int64_t *ids, const float *scores, size_t n,
		      struct catalog_results *out, store_error *err)
{
	if (n == 0)
		return 0;
	struct store_image *rows = calloc(n, sizeof *rows);
	unsigned char *found = calloc(n, 1);
	out->hits = calloc(n, sizeof *out->hits);
	int rc = 0;
	if (!rows || !found || !out->hits) {
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = get_rows(c, ids, n, rows, found, err)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!found[i])
			continue;   /* deleted since the index answered */
		out->hits[out->n].image = rows[i];
		out->hits[out->n].score = scores[i];
		memset(&rows[i], 0, sizeof rows[i]);
		out->n++;
	}
out:
	if (rows)
		for (size_t i = 0; i < n; i++)
			store_image_clear(&rows[i]);
	free(rows);
	free(found);
	return rc;
}

/* A shared catalog whose database cannot be reached: the node's index
 * replica still ranks, so the hits are its ids and scores without their
 * rows (out->rows_missing). */
static int ids_only(catalog *c, const int64_t *ids, const float *scores, size_t n, struct catalog_results *out,
		    store_error *err)
{
	if (!catalog_shared(c))
		return STORE_ERR_UNAVAILABLE;
	int exhaustive = out->exhaustive;
	catalog_results_free(out);
	if (n && !(out->hits = calloc(n, sizeof *out->hits)))
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		out->hits[i].image.id = ids[i];
		out->hits[i].score = scores[i];
	}
	out->n = n;
	out->exhaustive = exhaustive;
	out->rows_missing = 1;
	return 0;
}

/* Filters on metadata or time: the exact scan or an over-fetch, not a plain top k. */
static int is_filtered(const struct catalog_query *q)
{
	return q->sel.n_filters > 0 || q->sel.has_after || q->sel.has_before || q->sel.has_taken_after ||
	       q->sel.has_taken_before || q->sel.library;
}

static int index_search(catalog *c, const float *q, size_t kk, float *scores, int64_t *ids,
			size_t *n, int *exact, store_error *err)
{
	idx_error ie;
	pthread_rwlock_rdlock(&c->ixlock);
	int rc = idx_search(c->ix, q, kk, scores, ids, n, &ie);
	*exact = idx_is_exact(c->ix) && !c->index_stale;
	pthread_rwlock_unlock(&c->ixlock);
	return rc != 0 ? cat_idx_fail(err, &ie, "search the index") : 0;
}

int catalog_check_filters(const struct catalog_query *q, store_error *err)
{
	if (!q)
		return 0;
	return store_check_selection(&q->sel, err);
}

static int semantic_search(catalog *c, const struct catalog_query *q, struct catalog_results *out,
			   store_error *err)
{
	float *qv = NULL, *scores = NULL;
	int64_t *ids = NULL;
	int rc;
	memset(out, 0, sizeof *out);
	if (!c->ix)
		return store_fail(err, STORE_ERR_INVALID, "the catalog has no index loaded");
	if (!q || !q->vec || q->dim != c->model.dim)
		return store_fail(err, STORE_ERR_INVALID, "the query vector must have %zu dimensions",
				c->model.dim);
	if (q->k < 1 || q->k > CATALOG_MAX_K)
		return store_fail(err, STORE_ERR_INVALID, "k must be 1 to %d", CATALOG_MAX_K);
	const struct store_selection *sel = &q->sel;
	if ((rc = store_check_selection(sel, err)) != 0)
		return rc;
	int filtered = is_filtered(q);
	size_t dim = c->model.dim, k = q->k;
	size_t kk = filtered ? k * OVERFETCH_FACTOR : k + (q->sel.exclude_id ? 1 : 0);
	if (kk < OVERFETCH_MIN && filtered)
		kk = OVERFETCH_MIN;
	if (kk > IDX_MAX_K)
		kk = IDX_MAX_K;
	if (kk < k)
		kk = k;
	qv = malloc(dim * sizeof *qv);
	scores = malloc(kk * sizeof *scores);
	ids = malloc(kk * sizeof *ids);
	if (!qv || !scores || !ids) {
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((rc = cat_normalize(q->vec, dim, qv, err)) != 0)
		goto out;

	size_t n = 0, taken = 0;
	int exact = 0;
	if (filtered) {
		struct topk t = { .q = qv, .dim = dim, .k = k, .has_min = q->has_min_score,
				  .min = q->min_score, .scores = scores, .ids = ids };
		int truncated = 0;
		rc = c->be->scan_selection(c->db, sel, dim, c->exact_filter_limit, scan_one, &t,
					  &truncated, err);
		if (rc != 0)
			goto out;
		if (!truncated) {
			heap_sort_desc(&t);
			taken = t.n;
			out->exhaustive = 1;
			out->exact_scan = 1;
			rc = cat_fetch_rows(c, ids, scores, taken, out, err);
			goto out;
		}
		/* Too many matches to score one by one: ask the index for many
		 * more than k and keep those that match. */
		if ((rc = index_search(c, qv, kk, scores, ids, &n, &exact, err)) != 0)
			goto out;
		unsigned char *keep = malloc(n ? n : 1);
		if (!keep) {
			rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
			goto out;
		}
		if ((rc = c->be->filter_ids(c->db, sel, ids, n, keep, err)) != 0) {
			free(keep);
			goto out;
		}
		int below = 0;
		for (size_t i = 0; i < n && taken < k; i++) {
			if (q->has_min_score && scores[i] < q->min_score) {
				below = 1;
				break;
			}
			if (!keep[i])
				continue;
			ids[taken] = ids[i];
			scores[taken] = scores[i];
			taken++;
		}
		free(keep);
		out->exhaustive = exact && (taken == k || n < kk || below);
	} else {
		const struct catalog_prefetch *pre = q->prefetched;
		if (pre && pre->kk >= kk) {
			n = pre->n < kk ? pre->n : kk;
			memcpy(scores, pre->scores, n * sizeof *scores);
			memcpy(ids, pre->ids, n * sizeof *ids);
			exact = pre->exact;
		} else if ((rc = index_search(c, qv, kk, scores, ids, &n, &exact, err)) != 0) {
			goto out;
		}
		for (size_t i = 0; i < n && taken < k; i++) {
			if (q->has_min_score && scores[i] < q->min_score)
				break;
			if (q->sel.exclude_id && ids[i] == q->sel.exclude_id)
				continue;
			ids[taken] = ids[i];
			scores[taken] = scores[i];
			taken++;
		}
		out->exhaustive = exact;
	}
	rc = cat_fetch_rows(c, ids, scores, taken, out, err);
	if (rc == STORE_ERR_UNAVAILABLE && !is_filtered(q))
		rc = ids_only(c, ids, scores, taken, out, err);
out:
	if (rc != 0)
		catalog_results_free(out);
	for (size_t i = 0; rc == 0 && i < out->n; i++)
		out->hits[i].semantic_rank = (unsigned)i + 1;
	free(qv);
	free(scores);
	free(ids);
	return rc;
}

static int keyword_search(catalog *c, const struct catalog_query *q, size_t k, struct catalog_results *out,
			  store_error *err)
{
	int64_t *ids = malloc(k * sizeof *ids);
	float *scores = malloc(k * sizeof *scores);
	size_t n = 0;
	int rc;
	if (!ids || !scores) {
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	rc = CAT_DB(c, keyword_search, q->keywords, q->not_keywords, &q->sel, k, ids, scores, &n, err);
	if (rc == 0)
		rc = cat_fetch_rows(c, ids, scores, n, out, err);
	for (size_t i = 0; rc == 0 && i < out->n; i++)
		out->hits[i].keyword_rank = (unsigned)i + 1;
	out->exhaustive = 1;
out:
	if (rc != 0)
		catalog_results_free(out);
	free(ids);
	free(scores);
	return rc;
}

static int by_fused(const void *a, const void *b)
{
	const struct catalog_hit *x = a, *y = b;
	if (x->fused != y->fused)
		return x->fused > y->fused ? -1 : 1;
	return x->image.id < y->image.id ? -1 : x->image.id > y->image.id;
}

/* Reciprocal rank fusion of the semantic and keyword rankings (catalog.h). */
static int hybrid_search(catalog *c, const struct catalog_query *q, struct catalog_results *out, store_error *err)
{
	struct catalog_query deep = *q;
	size_t depth = CATALOG_HYBRID_DEPTH(q->k);
	double rrf = q->rrf_k ? q->rrf_k : CATALOG_RRF_K;
	struct catalog_results sem = { 0 }, key = { 0 };
	deep.k = depth;
	deep.mode = CATALOG_SEMANTIC;
	int rc = semantic_search(c, &deep, &sem, err);
	if (rc == 0)
		rc = keyword_search(c, q, depth, &key, err);
	if (rc != 0)
		goto out;
	out->hits = calloc(sem.n + key.n + 1, sizeof *out->hits);
	if (!out->hits) {
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < sem.n; i++) {
		struct catalog_hit *h = &out->hits[out->n++];
		*h = sem.hits[i];
		memset(&sem.hits[i].image, 0, sizeof sem.hits[i].image);
		h->fused = 1.0 / (rrf + h->semantic_rank);
	}
	size_t from_sem = out->n;
	for (size_t i = 0; i < key.n; i++) {
		struct catalog_hit *h = NULL;
		for (size_t j = 0; j < from_sem && !h; j++)
			if (out->hits[j].image.id == key.hits[i].image.id)
				h = &out->hits[j];
		if (!h) {
			h = &out->hits[out->n++];
			h->image = key.hits[i].image;
			memset(&key.hits[i].image, 0, sizeof key.hits[i].image);
			h->score = 0;
		}
		h->keyword_rank = key.hits[i].keyword_rank;
		h->fused += 1.0 / (rrf + h->keyword_rank);
	}
	qsort(out->hits, out->n, sizeof *out->hits, by_fused);
	while (out->n > q->k)
		store_image_clear(&out->hits[--out->n].image);
	out->exhaustive = sem.exhaustive;
	out->exact_scan = sem.exact_scan;
out:
	catalog_results_free(&sem);
	catalog_results_free(&key);
	if (rc != 0)
		catalog_results_free(out);
	return rc;
}

int catalog_search(catalog *c, const struct catalog_query *q, struct catalog_results *out,
		   store_error *err)
{
	memset(out, 0, sizeof *out);
	if (!q)
		return store_fail(err, STORE_ERR_INVALID, "no query");
	if (q->rrf_k > CATALOG_MAX_RRF_K)
		return store_fail(err, STORE_ERR_INVALID, "rrf_k must be 1 to %d", CATALOG_MAX_RRF_K);
	switch (q->mode) {
	case CATALOG_SEMANTIC:
		return semantic_search(c, q, out, err);
	case CATALOG_KEYWORD:
		if (q->k < 1 || q->k > CATALOG_MAX_K)
			return store_fail(err, STORE_ERR_INVALID, "k must be 1 to %d", CATALOG_MAX_K);
		return keyword_search(c, q, q->k, out, err);
	case CATALOG_HYBRID:
		if (q->k < 1 || q->k > CATALOG_MAX_K)
			return store_fail(err, STORE_ERR_INVALID, "k must be 1 to %d", CATALOG_MAX_K);
		return hybrid_search(c, q, out, err);
	}
	return store_fail(err, STORE_ERR_INVALID, "unknown search mode");
}

void catalog_prefetch_clear(struct catalog_prefetch *p)
{
	if (!p)
		return;
	free(p->scores);
	free(p->ids);
	memset(p, 0, sizeof *p);
}

int catalog_prefetch(catalog *c, const struct catalog_query *qs, size_t nq, struct catalog_prefetch *out,
		     store_error *err)
{
	size_t dim = c->model.dim, kk = 0, m = 0;
	for (size_t i = 0; i < nq; i++)
		memset(&out[i], 0, sizeof out[i]);
	if (!c->ix)
		return store_fail(err, STORE_ERR_INVALID, "the catalog has no index loaded");
	/* the plain queries: their rows, and the largest k among them */
	size_t *which = malloc((nq ? nq : 1) * sizeof *which);
	float *qv = malloc((nq ? nq : 1) * dim * sizeof *qv);
	float *scores = NULL;
	int64_t *ids = NULL;
	size_t *n = NULL;
	int rc = 0;
	if (!which || !qv) {
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nq; i++) {
		const struct catalog_query *q = &qs[i];
		if (!q->vec || q->dim != dim || q->k < 1 || q->k > CATALOG_MAX_K || is_filtered(q) || q->sel.exclude_id)
			continue;
		if (cat_normalize(q->vec, dim, qv + m * dim, NULL) != 0)
			continue;
		which[m++] = i;
		if (q->k > kk)
			kk = q->k;
	}
	if (m == 0)
		goto out;
	scores = malloc(m * kk * sizeof *scores);
	ids = malloc(m * kk * sizeof *ids);
	n = malloc(m * sizeof *n);
	if (!scores || !ids || !n) {
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	idx_error ie;
	pthread_rwlock_rdlock(&c->ixlock);
	int irc = idx_search_many(c->ix, qv, m, kk, scores, ids, n, &ie);
	int exact = idx_is_exact(c->ix) && !c->index_stale;
	pthread_rwlock_unlock(&c->ixlock);
	if (irc != 0) {
		rc = cat_idx_fail(err, &ie, "search the index");
		goto out;
	}
	for (size_t j = 0; j < m; j++) {
		struct catalog_prefetch *p = &out[which[j]];
		p->scores = malloc((n[j] ? n[j] : 1) * sizeof *p->scores);
		p->ids = malloc((n[j] ? n[j] : 1) * sizeof *p->ids);
		if (!p->scores || !p->ids) {
			catalog_prefetch_clear(p);
			continue;   /* that query asks the index itself */
		}
		memcpy(p->scores, scores + j * kk, n[j] * sizeof *p->scores);
		memcpy(p->ids, ids + j * kk, n[j] * sizeof *p->ids);
		p->n = n[j];
		p->kk = kk;
		p->exact = exact;
	}
out:
	free(which);
	free(qv);
	free(scores);
	free(ids);
	free(n);
	return rc;
}

int catalog_similar(catalog *c, int64_t id, const struct catalog_query *q,
		    struct catalog_results *out, store_error *err)
{
	memset(out, 0, sizeof *out);
	if (!q)
		return store_fail(err, STORE_ERR_INVALID, "no query");
	float *v = malloc(c->model.dim * sizeof *v);
	if (!v)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	int rc = c->be->get_vector(c->db, id, c->model.fingerprint, v, c->model.dim, err);
	if (rc == STORE_ERR_NOT_FOUND)
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "no image %lld", (long long)id);
	if (rc == 0) {
		struct catalog_query q2 = *q;
		q2.vec = v;
		q2.dim = c->model.dim;
		q2.sel.exclude_id = id;
		rc = catalog_search(c, &q2, out, err);
	}
	free(v);
	return rc;
}
