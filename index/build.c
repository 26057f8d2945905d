/*
 * build.c - building an index from a set of vectors: the choice of family
 * and its size, training the approximate index on a sample, and the
 * background build that swaps a new index in while the old one serves,
 * with the log of the changes that arrive meanwhile (written by idx_add
 * and idx_remove through idx_log_change, replayed here before the swap).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <faiss/c_api/Clustering_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/index_factory_c.h>

#include "internal.h"

#define ADD_BATCH 65536           /* vectors per FAISS add call (cancellation points) */
#define TRAIN_PER_LIST 64         /* training sample: this many vectors per inverted list */
#define MIN_PER_LIST 39           /* fewer training vectors per list and k-means is poor */
#define KMEANS_ITERS 20
#define KMEANS_SEED 1234
#define AUTO_CODE "SQ8"

/* nlist for n vectors: the power of two nearest to sqrt(n), and at least
 * MIN_PER_LIST training vectors per list. */
static size_t auto_nlist(size_t n)
{
	size_t nlist = 16;
	while (nlist * 2 * nlist * 2 <= n * 2)   /* (2 nlist)^2 <= 2 n: 2 nlist is nearer sqrt(n) */
		nlist *= 2;
	while (nlist > 1 && nlist * MIN_PER_LIST > n)
		nlist /= 2;
	return nlist;
}

void idx_choose(const struct idx_cfg *cfg, size_t n, struct idx_family *fam)
{
	idx_error ignored;
	memset(fam, 0, sizeof *fam);
	if (cfg->factory[0]) {
		idx_parse_factory(cfg->factory, fam, &ignored);  /* validated at idx_new */
		if (!fam->exact && (n < cfg->ivf_threshold || n < fam->nlist * MIN_PER_LIST))
			fam->exact = 1;
		return;
	}
	if (n < cfg->ivf_threshold) {
		fam->exact = 1;
		return;
	}
	fam->nlist = auto_nlist(n);
	snprintf(fam->code, sizeof fam->code, "%s", AUTO_CODE);
}

/* ---- training --------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

/* A fixed-seed sample of ns of the n rows (in row order), or vecs itself
 * when ns == n. *owned is set when the caller must free the result. */
static float *sample_rows(const float *vecs, size_t n, size_t dim, size_t ns, int *owned)
{
	*owned = 0;
	if (ns >= n)
		return (float *)(uintptr_t)vecs;   /* read only: FAISS's train takes const */
	size_t *rows = malloc(n * sizeof *rows);
	float *out = malloc(ns * dim * sizeof *out);
	if (!rows || !out) {
		free(rows);
		free(out);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		rows[i] = i;
	uint64_t s = KMEANS_SEED;
	for (size_t i = 0; i < ns; i++) {   /* partial Fisher-Yates */
		size_t j = i + (size_t)(splitmix(&s) % (n - i));
		size_t t = rows[i];
		rows[i] = rows[j];
		rows[j] = t;
	}
	qsort(rows, ns, sizeof *rows, cmp_size);
	for (size_t i = 0; i < ns; i++)
		memcpy(out + i * dim, vecs + rows[i] * dim, dim * sizeof *out);
	free(rows);
	*owned = 1;
	return out;
}

/* Spherical k-means on the sample into the IVF's (empty) quantizer, then
 * FAISS's own training of the codes on the same sample (it skips the
 * quantizer, which already holds nlist centroids). Our own clustering
 * parameters keep the time bounded and FAISS quiet. */
static int train_ivf(FaissIndex *index, const float *vecs, size_t n, size_t dim, size_t nlist, idx_error *err)
{
	FaissIndexIVF *ivf = faiss_IndexIVF_cast(index);
	if (!ivf)
		return idx_fail(err, IDX_ERR_FAISS, "the factory did not make an IVF index");
	size_t ns = nlist * TRAIN_PER_LIST;
	if (ns > n)
		ns = n;
	int owned = 0, rc = IDX_OK;
	FaissClustering *clus = NULL;
	float *sample = sample_rows(vecs, n, dim, ns, &owned);
	if (!sample)
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory for a training sample of %zu vectors", ns);
	FaissClusteringParameters cp;
	faiss_ClusteringParameters_init(&cp);
	cp.niter = KMEANS_ITERS;
	cp.spherical = 1;
	cp.seed = KMEANS_SEED;
	cp.verbose = 0;
	cp.min_points_per_centroid = 1;   /* we chose ns; FAISS would only print a warning */
	cp.max_points_per_centroid = (int)(ns / nlist + 1);
	if (faiss_Clustering_new_with_params(&clus, (int)dim, (int)nlist, &cp)) {
		rc = idx_faiss_fail(err, "creating the k-means");
		goto out;
	}
	if (faiss_Clustering_train(clus, (idx_t)ns, sample, faiss_IndexIVF_quantizer(ivf))) {
		rc = idx_faiss_fail(err, "k-means");
		goto out;
	}
	if (faiss_Index_train(index, (idx_t)ns, sample)) {
		rc = idx_faiss_fail(err, "training the index");
		goto out;
	}
out:
	if (clus)
		faiss_Clustering_free(clus);
	if (owned)
		free(sample);
	return rc;
}

int idx_train_new(const struct idx_cfg *cfg, const struct idx_family *fam, const float *vecs, size_t n,
		  FaissIndex **out, idx_error *err)
{
	char type[IDX_MAX_FACTORY];
	*out = NULL;
	snprintf(type, sizeof type, "IVF%zu,%s", fam->nlist, fam->code);
	FaissIndex *index = NULL;
	if (faiss_index_factory(&index, (int)cfg->dim, type, METRIC_INNER_PRODUCT))
		return idx_faiss_fail(err, "creating the index");
	int rc = train_ivf(index, vecs, n, cfg->dim, fam->nlist, err);
	if (rc) {
		faiss_Index_free(index);
		return rc;
	}
	*out = index;
	return IDX_OK;
}

int idx_gen_fill(const struct idx_cfg *cfg, struct idx_gen *g, const int64_t *ids, const float *vecs, size_t n,
		 atomic_int *cancel, idx_error *err)
{
	if (idset_reserve(&g->ids, n))
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory for %zu ids", n);
	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || !idset_insert(&g->ids, ids[i]))
			return idx_fail(err, IDX_ERR_INVALID, "id %lld is negative or repeated", (long long)ids[i]);
	if (!g->exact)
		idx_gen_set_nprobe(g, cfg->nprobe);
	for (size_t i = 0; i < n; i += ADD_BATCH) {
		if (cancel && atomic_load(cancel))
			return idx_fail(err, IDX_ERR_INVALID, "build cancelled");
		size_t m = n - i < ADD_BATCH ? n - i : ADD_BATCH;
		if (faiss_Index_add_with_ids(g->index, (idx_t)m, vecs + i * cfg->dim, ids + i))
			return idx_faiss_fail(err, "adding vectors");
	}
	return IDX_OK;
}

/* A new generation holding exactly the given vectors, of the family
 * clipd chooses at that size. cancel (may be NULL) aborts between steps. */
static int gen_build(const struct idx_cfg *cfg, const int64_t *ids, const float *vecs, size_t n,
		     atomic_int *cancel, struct idx_gen **out, idx_error *err)
{
	int rc = IDX_ERR_NOMEM;
	struct idx_family fam;
	struct idx_gen *g = calloc(1, sizeof *g);
	*out = NULL;
	if (!g) {
		idx_fail(err, rc, "out of memory");
		goto out;
	}
	idx_choose(cfg, n, &fam);
	if (fam.exact) {
		snprintf(g->type, sizeof g->type, "Flat");
		g->exact = 1;
		if (faiss_index_factory(&g->index, (int)cfg->dim, "IDMap2,Flat", METRIC_INNER_PRODUCT)) {
			rc = idx_faiss_fail(err, "creating the index");
			goto out;
		}
	} else {
		snprintf(g->type, sizeof g->type, "IVF%zu,%s", fam.nlist, fam.code);
		g->trained_n = n;
		if ((rc = idx_train_new(cfg, &fam, vecs, n, &g->index, err)) != 0)
			goto out;
	}
	if ((rc = idx_gen_fill(cfg, g, ids, vecs, n, cancel, err)) != 0)
		goto out;
	*out = g;
	g = NULL;
	rc = IDX_OK;
out:
	idx_gen_free(g);
	return rc;
}

int idx_build(const struct idx_params *p, const int64_t *ids, const float *vecs, size_t n,
	      uint64_t seq, idx **out, idx_error *err)
{
	if (!out)
		return idx_fail(err, IDX_ERR_INVALID, "no output pointer");
	*out = NULL;
	if (n && (!ids || !vecs))
		return idx_fail(err, IDX_ERR_INVALID, "idx_build: missing argument");
	struct idx_cfg cfg;
	int rc = idx_cfg_from_params(p, &cfg, err);
	if (rc)
		return rc;
	struct idx_gen *g = NULL;
	rc = gen_build(&cfg, ids, vecs, n, NULL, &g, err);
	if (rc)
		return rc;
	return idx_wrap(&cfg, g, seq, out, err);
}

/* ---- the change log of a running build -------------------------------- */

/* An add or remove that arrived while a build ran: one allocation holding
 * the ids and (for an add) the vectors. Written by idx_add and idx_remove
 * (idx_log_change), read by the builder, which replays it on its new
 * generation before the swap. */
struct idx_change {
	struct idx_change *next;
	uint64_t seq;
	int is_add;
	size_t n;
	int64_t *ids;
	float *vecs;
};

/* From here every change is logged: the snapshot must cover the rest.
 * Under the write lock. */
static void start_logging(idx *ix)
{
	pthread_mutex_lock(&ix->log_mu);
	ix->logging = 1;
	ix->log_broken = 0;
	ix->log_start_seq = atomic_load(&ix->seq);
	pthread_mutex_unlock(&ix->log_mu);
}

void idx_log_change(idx *ix, int is_add, const int64_t *ids, const float *vecs, size_t n, uint64_t seq)
{
	pthread_mutex_lock(&ix->log_mu);
	if (!ix->logging)
		goto out;
	size_t vbytes = is_add ? n * ix->cfg.dim * sizeof(float) : 0;
	struct idx_change *c = malloc(sizeof *c + n * sizeof(int64_t) + vbytes);
	if (!c) {
		ix->log_broken = 1;
		goto out;
	}
	c->next = NULL;
	c->seq = seq;
	c->is_add = is_add;
	c->n = n;
	c->ids = (int64_t *)(c + 1);
	memcpy(c->ids, ids, n * sizeof(int64_t));
	c->vecs = is_add ? (float *)(c->ids + n) : NULL;
	if (is_add)
		memcpy(c->vecs, vecs, vbytes);
	if (ix->log_tail)
		ix->log_tail->next = c;
	else
		ix->log_head = c;
	ix->log_tail = c;
out:
	pthread_mutex_unlock(&ix->log_mu);
}

void idx_log_break(idx *ix)
{
	pthread_mutex_lock(&ix->log_mu);
	ix->log_broken = ix->logging;
	pthread_mutex_unlock(&ix->log_mu);
}

static int apply_change(struct idx_gen *g, const struct idx_change *c, uint64_t snap, idx_error *err)
{
	if (c->seq <= snap)
		return IDX_OK;   /* the snapshot has it */
	if (c->is_add)
		return idx_gen_add(g, c->ids, c->vecs, c->n, err);
	return idx_gen_remove(g, c->ids, c->n, err);
}

/* Stop logging and return the log; under the write lock. */
static struct idx_change *stop_logging(idx *ix)
{
	pthread_mutex_lock(&ix->log_mu);
	struct idx_change *log = ix->log_head;
	ix->log_head = ix->log_tail = NULL;
	ix->logging = 0;
	ix->log_broken = 0;
	pthread_mutex_unlock(&ix->log_mu);
	return log;
}

static void free_changes(struct idx_change *c)
{
	while (c) {
		struct idx_change *next = c->next;
		free(c);
		c = next;
	}
}

/* ---- background builds ------------------------------------------------ */

#define RETRY_AFTER_S 30.0

static double monotonic_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void *builder_main(void *arg)
{
	idx *ix = arg;
	idx_error err = { 0 };
	int64_t *ids = NULL;
	float *vecs = NULL;
	size_t n = 0;
	uint64_t snap = 0;
	struct idx_gen *g = NULL, *old = NULL;
	struct idx_change *done = NULL, *log = NULL;
	int rc = ix->source(ix->source_ud, &ids, &vecs, &n, &snap);
	if (rc) {
		rc = idx_fail(&err, IDX_ERR_INVALID, "the vector source failed (%d)", rc);
		goto out;
	}
	if (snap < ix->log_start_seq) {
		rc = idx_fail(&err, IDX_ERR_INVALID, "snapshot at change %llu is older than the index (%llu)",
			      (unsigned long long)snap, (unsigned long long)ix->log_start_seq);
		goto out;
	}
	rc = gen_build(&ix->cfg, ids, vecs, n, &ix->cancel, &g, &err);
	free(ids);
	free(vecs);
	ids = NULL;
	vecs = NULL;
	if (rc)
		goto out;

	/* Replay what arrived during the build, without blocking anyone... */
	for (;;) {
		pthread_mutex_lock(&ix->log_mu);
		struct idx_change *next = done ? done->next : ix->log_head;
		pthread_mutex_unlock(&ix->log_mu);
		if (!next)
			break;
		rc = apply_change(g, next, snap, &err);
		if (rc)
			goto out;
		done = next;
	}
	/* ...then the last few under the write lock, and swap. */
	pthread_rwlock_wrlock(&ix->lock);
	struct idx_change *next = done ? done->next : ix->log_head;
	for (; next && rc == IDX_OK; next = next->next)
		rc = apply_change(g, next, snap, &err);
	if (rc == IDX_OK && ix->log_broken)
		rc = idx_fail(&err, IDX_ERR_NOMEM, "a change during the build could not be recorded");
	if (rc == IDX_OK && atomic_load(&ix->cancel))
		rc = idx_fail(&err, IDX_ERR_INVALID, "build cancelled");
	if (rc == IDX_OK) {
		old = ix->cur;
		ix->cur = g;
		g = NULL;
		if (snap > atomic_load(&ix->seq))
			atomic_store(&ix->seq, snap);
		idx_publish(ix);
	}
	log = stop_logging(ix);
	pthread_rwlock_unlock(&ix->lock);
out:
	if (rc && !log) {
		pthread_rwlock_wrlock(&ix->lock);
		log = stop_logging(ix);
		pthread_rwlock_unlock(&ix->lock);
	}
	free_changes(log);
	free(ids);
	free(vecs);
	idx_gen_free(g);
	idx_gen_free(old);
	pthread_mutex_lock(&ix->build_mu);
	ix->build_err = err;
	ix->build_err.code = rc;
	ix->build_failed_at = rc ? monotonic_s() : 0;
	pthread_mutex_unlock(&ix->build_mu);
	atomic_store(&ix->building, 0);
	return NULL;
}

int idx_needs_build(const idx *ix, size_t n, int exact, size_t trained_n)
{
	struct idx_family fam;
	idx_choose(&ix->cfg, n, &fam);
	if (exact)
		return !fam.exact;
	if (fam.exact)
		return n * 2 < ix->cfg.ivf_threshold;   /* shrunk well below: back to exact */
	return trained_n && n >= trained_n * IDX_RETRAIN_GROWTH;
}

int idx_maybe_retrain(idx *ix, idx_source_fn source, void *ud)
{
	if (!ix || !source)
		return IDX_ERR_INVALID;
	int rc = 0;
	pthread_mutex_lock(&ix->build_mu);
	if (atomic_load(&ix->building) || atomic_load(&ix->cancel))
		goto out;
	if (ix->build_failed_at && monotonic_s() - ix->build_failed_at < RETRY_AFTER_S)
		goto out;   /* a failed build is not retried on every change */
	if (ix->joinable) {   /* finished: it has recorded its outcome already */
		pthread_join(ix->thread, NULL);
		ix->joinable = 0;
	}
	pthread_rwlock_wrlock(&ix->lock);
	int need = idx_needs_build(ix, ix->cur->ids.count, ix->cur->exact, ix->cur->trained_n);
	if (need)
		start_logging(ix);
	pthread_rwlock_unlock(&ix->lock);
	if (!need)
		goto out;
	ix->source = source;
	ix->source_ud = ud;
	atomic_store(&ix->building, 1);
	if (pthread_create(&ix->thread, NULL, builder_main, ix)) {
		atomic_store(&ix->building, 0);
		pthread_rwlock_wrlock(&ix->lock);
		free_changes(stop_logging(ix));
		pthread_rwlock_unlock(&ix->lock);
		rc = IDX_ERR_NOMEM;
		goto out;
	}
	ix->joinable = 1;
	rc = 1;
out:
	pthread_mutex_unlock(&ix->build_mu);
	return rc;
}

int idx_training(const idx *ix)
{
	return ix ? atomic_load(&ix->building) : 0;
}

void idx_wait_training(idx *ix)
{
	if (!ix)
		return;
	/* Join outside build_mu: the builder takes it to record its outcome. */
	pthread_mutex_lock(&ix->build_mu);
	int joinable = ix->joinable;
	pthread_t thread = ix->thread;
	ix->joinable = 0;
	pthread_mutex_unlock(&ix->build_mu);
	if (joinable)
		pthread_join(thread, NULL);
}

void idx_build_stop(idx *ix)
{
	atomic_store(&ix->cancel, 1);
	idx_wait_training(ix);
	free_changes(ix->log_head);   /* the builder empties the log as it ends: defensive */
	ix->log_head = ix->log_tail = NULL;
}

int idx_last_build_error(const idx *ix, idx_error *err)
{
	if (!ix)
		return IDX_ERR_INVALID;
	idx *mut = (idx *)(uintptr_t)ix;   /* the mutex is not part of the value */
	pthread_mutex_lock(&mut->build_mu);
	int rc = ix->build_err.code;
	if (err)
		*err = ix->build_err;
	pthread_mutex_unlock(&mut->build_mu);
	return rc;
}
