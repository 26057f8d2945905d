/*
 * idx.c - the index's life and its changes: new, free, add, remove,
 * search, and the locks around them. Settings and factory strings are in
 * params.c, generations and the handle in gen.c, builds and their change
 * log in build.c, files in file.c, exact search in exact.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <faiss/c_api/index_factory_c.h>

#include "internal.h"

#define IDX_MAX_BATCH ((size_t)1 << 24)   /* vectors per idx_add / idx_remove */

static int new_exact_gen(size_t dim, struct idx_gen **out, idx_error *err)
{
	struct idx_gen *g = calloc(1, sizeof *g);
	if (!g)
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory");
	if (faiss_index_factory(&g->index, (int)dim, "IDMap2,Flat", METRIC_INNER_PRODUCT)) {
		int rc = idx_faiss_fail(err, "creating an exact index");
		free(g);
		return rc;
	}
	g->exact = 1;
	snprintf(g->type, sizeof g->type, "Flat");
	*out = g;
	return IDX_OK;
}

int idx_new(const struct idx_params *p, idx **out, idx_error *err)
{
	if (!out)
		return idx_fail(err, IDX_ERR_INVALID, "no output pointer");
	*out = NULL;
	struct idx_cfg cfg;
	int rc = idx_cfg_from_params(p, &cfg, err);
	if (rc)
		return rc;
	struct idx_gen *g = NULL;
	rc = new_exact_gen(cfg.dim, &g, err);
	if (rc)
		return rc;
	return idx_wrap(&cfg, g, 0, out, err);
}

/* A running build first: its thread uses the handle. */
void idx_free(idx *ix)
{
	if (!ix)
		return;
	idx_build_stop(ix);
	idx_destroy(ix);
}

/* ---- changes ---------------------------------------------------------- */

/* A batch of ids: each non-negative, none twice. */
static int check_ids(const int64_t *ids, size_t n, idx_error *err)
{
	struct idset seen = { 0 };
	int rc = IDX_OK;
	if (idset_reserve(&seen, n))
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory checking %zu ids", n);
	for (size_t i = 0; i < n; i++) {
		if (ids[i] < 0) {
			rc = idx_fail(err, IDX_ERR_INVALID, "negative id %lld", (long long)ids[i]);
			break;
		}
		if (!idset_insert(&seen, ids[i])) {
			rc = idx_fail(err, IDX_ERR_INVALID, "id %lld appears twice in one batch", (long long)ids[i]);
			break;
		}
	}
	idset_free(&seen);
	return rc;
}

static void bump_seq(idx *ix, uint64_t seq)
{
	if (seq > atomic_load(&ix->seq))
		atomic_store(&ix->seq, seq);
}

int idx_add(idx *ix, const int64_t *ids, const float *vecs, size_t n, uint64_t seq, idx_error *err)
{
	if (!ix || (n && (!ids || !vecs)))
		return idx_fail(err, IDX_ERR_INVALID, "idx_add: missing argument");
	if (n > IDX_MAX_BATCH)
		return idx_fail(err, IDX_ERR_INVALID, "idx_add: %zu vectors in one call (at most %zu)", n, IDX_MAX_BATCH);
	for (size_t i = 0; i < n * ix->cfg.dim; i++)
		if (!isfinite(vecs[i]))
			return idx_fail(err, IDX_ERR_INVALID, "vector of id %lld has a non-finite component",
					(long long)ids[i / ix->cfg.dim]);
	int rc = check_ids(ids, n, err);
	if (rc)
		return rc;
	pthread_rwlock_wrlock(&ix->lock);
	if (n)
		rc = idx_gen_add(ix->cur, ids, vecs, n, err);
	if (rc == IDX_OK) {
		bump_seq(ix, seq);
		if (n)
			idx_log_change(ix, 1, ids, vecs, n, seq);
	} else if (rc == IDX_ERR_FAISS) {
		idx_log_break(ix);   /* the state is uncertain: the build must not swap */
	}
	idx_publish(ix);
	pthread_rwlock_unlock(&ix->lock);
	return rc;
}

int idx_remove(idx *ix, const int64_t *ids, size_t n, uint64_t seq, idx_error *err)
{
	if (!ix || (n && !ids))
		return idx_fail(err, IDX_ERR_INVALID, "idx_remove: missing argument");
	if (n > IDX_MAX_BATCH)
		return idx_fail(err, IDX_ERR_INVALID, "idx_remove: %zu ids in one call (at most %zu)", n, IDX_MAX_BATCH);
	int rc = IDX_OK;
	pthread_rwlock_wrlock(&ix->lock);
	if (n)
		rc = idx_gen_remove(ix->cur, ids, n, err);
	if (rc == IDX_OK) {
		bump_seq(ix, seq);
		if (n)
			idx_log_change(ix, 0, ids, NULL, n, seq);
	} else if (rc == IDX_ERR_FAISS) {
		idx_log_break(ix);
	}
	idx_publish(ix);
	pthread_rwlock_unlock(&ix->lock);
	return rc;
}

int idx_search(idx *ix, const float *query, size_t k, float *scores, int64_t *ids, size_t *n_out, idx_error *err)
{
	if (n_out)
		*n_out = 0;
	return idx_search_many(ix, query, 1, k, scores, ids, n_out, err);
}

int idx_search_many(idx *ix, const float *queries, size_t nq, size_t k, float *scores, int64_t *ids,
		    size_t *n_out, idx_error *err)
{
	if (!ix || !queries || !scores || !ids || !n_out)
		return idx_fail(err, IDX_ERR_INVALID, "idx_search: missing argument");
	if (nq < 1 || nq > IDX_MAX_QUERIES)
		return idx_fail(err, IDX_ERR_INVALID, "%zu queries outside 1..%d", nq, IDX_MAX_QUERIES);
	for (size_t q = 0; q < nq; q++)
		n_out[q] = 0;
	if (k < 1 || k > IDX_MAX_K)
		return idx_fail(err, IDX_ERR_INVALID, "k = %zu outside 1..%d", k, IDX_MAX_K);
	for (size_t i = 0; i < nq * ix->cfg.dim; i++)
		if (!isfinite(queries[i]))
			return idx_fail(err, IDX_ERR_INVALID, "query %zu has a non-finite component", i / ix->cfg.dim);
	int rc = IDX_OK;
	pthread_rwlock_rdlock(&ix->lock);
	if (!ix->cur->ids.count) {
		/* nothing stored: no results */
	} else if (ix->cur->exact) {
		rc = idx_exact_search(ix->cur, ix->cfg.dim, queries, nq, k, scores, ids, n_out, err);
	} else if (faiss_Index_search(ix->cur->index, (idx_t)nq, queries, (idx_t)k, scores, ids)) {
		rc = idx_faiss_fail(err, "searching");
	} else {
		/* FAISS pads with -1 when it finds fewer than k. */
		for (size_t q = 0; q < nq; q++) {
			float *s = scores + q * k;
			int64_t *d = ids + q * k;
			size_t m = 0;
			for (size_t i = 0; i < k; i++) {
				if (d[i] < 0)
					continue;
				d[m] = d[i];
				s[m] = s[i];
				m++;
			}
			n_out[q] = m;
		}
	}
	pthread_rwlock_unlock(&ix->lock);
	return rc;
}

uint64_t idx_seq(const idx *ix)
{
	return ix ? atomic_load(&ix->seq) : 0;
}

size_t idx_count(const idx *ix)
{
	return ix ? atomic_load(&ix->count) : 0;
}

size_t idx_dim(const idx *ix)
{
	return ix ? ix->cfg.dim : 0;
}

const char *idx_type(const idx *ix)
{
	return ix ? atomic_load(&ix->type) : NULL;
}

int idx_nprobe(const idx *ix)
{
	return ix ? atomic_load(&ix->nprobe) : 0;
}

int idx_is_exact(const idx *ix)
{
	return ix ? atomic_load(&ix->exact) : 0;
}
