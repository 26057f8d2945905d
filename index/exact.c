/*
 * exact.c - exact search of the Flat family with BLAS.
 *
 * FAISS's IndexFlat scores one query at a time with its own dot-product
 * loop, which Debian's build compiles for SSE2 only; here the stored
 * vectors are scored in blocks with one sgemm against all the queries of a
 * call (one pass over the vectors however many queries there are), and
 * each query keeps its best k in a small heap. Equal scores rank by
 * insertion order (identical vectors may still differ in the last bit of
 * their scores: BLAS sums columns in different orders).
 */
#include <stdlib.h>

#include <cblas.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/MetaIndexes_c.h>

#include "internal.h"

#define EXACT_BLOCK 2048   /* stored vectors scored per sgemm: block x queries floats of scratch */

struct cand {
	float score;
	size_t pos;   /* row in the Flat index */
};

/* a ranks below b: a lower score, or the same score and a later row */
static int worse(const struct cand *a, const struct cand *b)
{
	return a->score < b->score || (a->score == b->score && a->pos > b->pos);
}

/* Min-heap on "worse": h[0] is the candidate to drop first. */
static void sift_down(struct cand *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < n && worse(&h[l], &h[m]))
			m = l;
		if (l + 1 < n && worse(&h[l + 1], &h[m]))
			m = l + 1;
		if (m == i)
			return;
		struct cand t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

static void sift_up(struct cand *h, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!worse(&h[i], &h[p]))
			return;
		struct cand t = h[i];
		h[i] = h[p];
		h[p] = t;
		i = p;
	}
}

static void offer(struct cand *h, size_t *n, size_t k, float score, size_t pos)
{
	struct cand c = { score, pos };
	if (*n < k) {
		h[*n] = c;
		sift_up(h, (*n)++);
	} else if (worse(&h[0], &c)) {
		h[0] = c;
		sift_down(h, k, 0);
	}
}

int idx_exact_search(struct idx_gen *g, size_t dim, const float *queries, size_t nq, size_t k,
		     float *scores, int64_t *ids, size_t *n_out, idx_error *err)
{
	FaissIndexIDMap2 *map = faiss_IndexIDMap2_cast(g->index);
	FaissIndexFlat *flat = map ? faiss_IndexFlat_cast(faiss_IndexIDMap2_sub_index(map)) : NULL;
	if (!flat)
		return idx_fail(err, IDX_ERR_INVALID, "exact search needs an IDMap2 over a Flat index");
	float *xb = NULL;
	size_t floats = 0, n = 0;
	idx_t *id_map = NULL;
	faiss_IndexFlat_xb(flat, &xb, &floats);
	faiss_IndexIDMap2_id_map(map, &id_map, &n);
	if (floats != n * dim)
		return idx_fail(err, IDX_ERR_CORRUPT, "Flat index holds %zu floats for %zu vectors of %zu", floats,
				n, dim);
	size_t block = n < EXACT_BLOCK ? n : EXACT_BLOCK;
	float *s = malloc((block ? block : 1) * nq * sizeof *s);
	struct cand *heaps = malloc(nq * k * sizeof *heaps);
	size_t *fill = calloc(nq, sizeof *fill);
	if (!s || !heaps || !fill) {
		free(s);
		free(heaps);
		free(fill);
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory for an exact search");
	}
	for (size_t b0 = 0; b0 < n; b0 += block) {
		size_t nb = n - b0 < block ? n - b0 : block;
		/* s[q, j] = queries[q] . xb[b0 + j] */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nb, (int)dim, 1.0f, queries,
			    (int)dim, xb + b0 * dim, (int)dim, 0.0f, s, (int)nb);
		for (size_t q = 0; q < nq; q++) {
			struct cand *h = heaps + q * k;
			const float *row = s + q * nb;
			for (size_t j = 0; j < nb; j++)
				if (fill[q] < k || row[j] >= h[0].score)
					offer(h, &fill[q], k, row[j], b0 + j);
		}
	}
	for (size_t q = 0; q < nq; q++) {
		struct cand *h = heaps + q * k;
		size_t m = fill[q];
		/* pop the worst to the end: best first */
		for (size_t end = m; end > 1; end--) {
			struct cand t = h[0];
			h[0] = h[end - 1];
			h[end - 1] = t;
			sift_down(h, end - 1, 0);
		}
		for (size_t i = 0; i < m; i++) {
			scores[q * k + i] = h[i].score;
			ids[q * k + i] = id_map[h[i].pos];
		}
		n_out[q] = m;
	}
	free(s);
	free(heaps);
	free(fill);
	return IDX_OK;
}
