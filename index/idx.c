/*
 * idx.c - the index's life and its changes: parameters, factory strings,
 * add, remove, search, and the locks around them. Builds are in build.c,
 * files in file.c.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>

#include "internal.h"

/* Measured defaults: see README ("Vector index") and clipd bench-index. */
#define IDX_DEFAULT_THRESHOLD 50000  /* exact: ~16 ms of CPU per query at 50,000 x 512; IVF past it */
#define IDX_SCAN_BUDGET (4096 * 512)  /* automatic nprobe: vector components scanned per query (~2 ms) */
#define IDX_MIN_AUTO_NPROBE 4
#define IDX_MAX_BATCH ((size_t)1 << 24)   /* vectors per idx_add / idx_remove */
#define IDX_MAX_NLIST ((size_t)1 << 20)

int idx_fail(idx_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

int idx_faiss_fail(idx_error *err, const char *what)
{
	const char *m = faiss_get_last_error();  /* first, before any other FAISS call */
	char copy[200];
	snprintf(copy, sizeof copy, "%s", m && *m ? m : "unknown error");
	/* FAISS's messages span lines (file, line, function): keep the first. */
	char *nl = strchr(copy, '\n');
	if (nl)
		*nl = 0;
	return idx_fail(err, IDX_ERR_FAISS, "%s: %s", what, copy);
}

struct idx_params idx_default_params(void)
{
	struct idx_params p = {
		.dim = 0,
		.factory = NULL,
		.ivf_threshold = IDX_DEFAULT_THRESHOLD,
		.nprobe = 0,   /* automatic */
	};
	return p;
}

#define SUPPORTED "supported: Flat, IVF<nlist>,Flat, IVF<nlist>,SQ8, IVF<nlist>,SQ6, IVF<nlist>,SQ4, IVF<nlist>,SQfp16"

int idx_parse_factory(const char *factory, struct idx_family *fam, idx_error *err)
{
	memset(fam, 0, sizeof *fam);
	if (!factory || !*factory)
		return idx_fail(err, IDX_ERR_INVALID, "empty index factory string (" SUPPORTED ")");
	if (strlen(factory) >= IDX_MAX_FACTORY)
		return idx_fail(err, IDX_ERR_INVALID, "index factory string longer than %d bytes", IDX_MAX_FACTORY - 1);
	if (strcmp(factory, "Flat") == 0 || strcmp(factory, "IDMap2,Flat") == 0) {
		fam->exact = 1;
		return IDX_OK;
	}
	if (strstr(factory, "HNSW"))
		return idx_fail(err, IDX_ERR_INVALID,
			"index \"%s\": HNSW is not supported (FAISS 1.7.3 cannot remove vectors from it); " SUPPORTED,
			factory);
	if (strncmp(factory, "IVF", 3) != 0)
		return idx_fail(err, IDX_ERR_INVALID, "index \"%s\" is not supported; " SUPPORTED, factory);
	const char *p = factory + 3;
	size_t nlist = 0;
	if (*p < '1' || *p > '9')
		goto bad;
	while (*p >= '0' && *p <= '9') {
		nlist = nlist * 10 + (size_t)(*p - '0');
		if (nlist > IDX_MAX_NLIST)
			return idx_fail(err, IDX_ERR_INVALID, "index \"%s\": nlist above %zu", factory, IDX_MAX_NLIST);
		p++;
	}
	if (*p++ != ',')
		goto bad;
	static const char *const codes[] = { "Flat", "SQ8", "SQ6", "SQ4", "SQfp16" };
	for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
		if (strcmp(p, codes[i]) == 0) {
			fam->nlist = nlist;
			snprintf(fam->code, sizeof fam->code, "%s", codes[i]);
			return IDX_OK;
		}
	}
bad:
	return idx_fail(err, IDX_ERR_INVALID, "index \"%s\" is not supported; " SUPPORTED, factory);
}

int idx_check_factory(const char *factory, idx_error *err)
{
	struct idx_family fam;
	return idx_parse_factory(factory, &fam, err);
}

int idx_cfg_from_params(const struct idx_params *p, struct idx_cfg *cfg, idx_error *err)
{
	memset(cfg, 0, sizeof *cfg);
	if (!p)
		return idx_fail(err, IDX_ERR_INVALID, "no index parameters");
	if (p->dim < 1 || p->dim > IDX_MAX_DIM)
		return idx_fail(err, IDX_ERR_INVALID, "index dimension %zu outside 1..%d", p->dim, IDX_MAX_DIM);
	if (p->nprobe < 0 || p->nprobe > IDX_MAX_NPROBE)
		return idx_fail(err, IDX_ERR_INVALID, "nprobe %d outside 0..%d", p->nprobe, IDX_MAX_NPROBE);
	if (p->factory) {
		int rc = idx_check_factory(p->factory, err);
		if (rc)
			return rc;
		snprintf(cfg->factory, sizeof cfg->factory, "%s", p->factory);
	}
	cfg->dim = p->dim;
	cfg->ivf_threshold = p->ivf_threshold ? p->ivf_threshold : IDX_DEFAULT_THRESHOLD;
	cfg->nprobe = p->nprobe;
	return IDX_OK;
}

/* ---- generations ------------------------------------------------------ */

void idx_gen_free(struct idx_gen *g)
{
	if (!g)
		return;
	if (g->index)
		faiss_Index_free(g->index);
	idset_free(&g->ids);
	free(g);
}

int idx_gen_fill_ids(struct idx_gen *g, idx_error *err)
{
	idset_free(&g->ids);
	size_t n = (size_t)faiss_Index_ntotal(g->index);
	if (idset_reserve(&g->ids, n))
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory for %zu ids", n);
	FaissIndexIDMap2 *map = faiss_IndexIDMap2_cast(g->index);
	FaissIndexIVF *ivf = faiss_IndexIVF_cast(g->index);
	if (map) {
		idx_t *ids = NULL;
		size_t len = 0;
		faiss_IndexIDMap2_id_map(map, &ids, &len);
		for (size_t i = 0; i < len; i++)
			if (ids[i] < 0 || !idset_insert(&g->ids, ids[i]))
				return idx_fail(err, IDX_ERR_CORRUPT, "id %lld is negative or repeated", (long long)ids[i]);
	} else if (ivf) {
		size_t nlist = faiss_IndexIVF_nlist(ivf), maxlen = 0;
		for (size_t l = 0; l < nlist; l++) {
			size_t len = faiss_IndexIVF_get_list_size(ivf, l);
			if (len > maxlen)
				maxlen = len;
		}
		idx_t *buf = malloc((maxlen ? maxlen : 1) * sizeof *buf);
		if (!buf)
			return idx_fail(err, IDX_ERR_NOMEM, "out of memory listing ids");
		for (size_t l = 0; l < nlist; l++) {
			size_t len = faiss_IndexIVF_get_list_size(ivf, l);
			faiss_IndexIVF_invlists_get_ids(ivf, l, buf);
			for (size_t i = 0; i < len; i++) {
				if (buf[i] < 0 || !idset_insert(&g->ids, buf[i])) {
					long long bad = (long long)buf[i];
					free(buf);
					return idx_fail(err, IDX_ERR_CORRUPT, "id %lld is negative or repeated", bad);
				}
			}
		}
		free(buf);
	} else {
		return idx_fail(err, IDX_ERR_CORRUPT, "index is neither IDMap2 nor IVF");
	}
	if (g->ids.count != n)
		return idx_fail(err, IDX_ERR_CORRUPT, "index lists %zu ids for %zu vectors", g->ids.count, n);
	return IDX_OK;
}

int idx_gen_set_nprobe(struct idx_gen *g, int nprobe)
{
	FaissIndexIVF *ivf = faiss_IndexIVF_cast(g->index);
	if (!ivf)
		return 0;
	size_t nlist = faiss_IndexIVF_nlist(ivf), n = g->ids.count, np;
	size_t dim = (size_t)faiss_Index_d(g->index);
	if (nprobe > 0) {
		np = (size_t)nprobe;
	} else {
		/* Automatic: a fixed amount of scanning per query (4,096 codes
		 * at 512 dimensions), so latency stays flat as the lists grow
		 * between trainings. */
		size_t codes = IDX_SCAN_BUDGET / dim;
		np = n ? (codes * nlist + n / 2) / n : nlist;
		if (np < IDX_MIN_AUTO_NPROBE)
			np = IDX_MIN_AUTO_NPROBE;
	}
	if (np > nlist)
		np = nlist;
	faiss_IndexIVF_set_nprobe(ivf, np);
	return (int)np;
}

/* The index's copy of a type string, valid until idx_free. Called under the write lock. */
static const char *intern(idx *ix, const char *name)
{
	for (struct idx_name *nm = ix->names; nm; nm = nm->next)
		if (strcmp(nm->name, name) == 0)
			return nm->name;
	struct idx_name *nm = calloc(1, sizeof *nm);
	if (!nm)
		return NULL;
	snprintf(nm->name, sizeof nm->name, "%s", name);
	nm->next = ix->names;
	ix->names = nm;
	return nm->name;
}

void idx_publish(idx *ix)
{
	const char *t = intern(ix, ix->cur->type);
	if (t)
		atomic_store(&ix->type, t);
	atomic_store(&ix->count, ix->cur->ids.count);
	atomic_store(&ix->exact, ix->cur->exact);
	atomic_store(&ix->nprobe, idx_gen_set_nprobe(ix->cur, ix->cfg.nprobe));
}

int idx_wrap(const struct idx_cfg *cfg, struct idx_gen *g, uint64_t seq, idx **out, idx_error *err)
{
	idx *ix = calloc(1, sizeof *ix);
	if (!ix) {
		idx_gen_free(g);
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory");
	}
	pthread_rwlockattr_t attr;
	int rc = pthread_rwlockattr_init(&attr);
	if (rc == 0) {
		/* Writers first: a stream of searches must not starve adds. */
		pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		rc = pthread_rwlock_init(&ix->lock, &attr);
		pthread_rwlockattr_destroy(&attr);
	}
	if (rc) {
		free(ix);
		idx_gen_free(g);
		return idx_fail(err, IDX_ERR_NOMEM, "cannot initialise the index lock");
	}
	pthread_mutex_init(&ix->log_mu, NULL);    /* cannot fail without attributes */
	pthread_mutex_init(&ix->build_mu, NULL);
	ix->cfg = *cfg;
	ix->cur = g;
	atomic_store(&ix->seq, seq);
	if (!intern(ix, g->type)) {
		idx_free(ix);
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory");
	}
	idx_publish(ix);
	*out = ix;
	return IDX_OK;
}

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

static void free_log(struct idx_change *c)
{
	while (c) {
		struct idx_change *next = c->next;
		free(c);
		c = next;
	}
}

void idx_free(idx *ix)
{
	if (!ix)
		return;
	atomic_store(&ix->cancel, 1);
	idx_wait_training(ix);
	idx_gen_free(ix->cur);
	free_log(ix->log_head);
	struct idx_name *nm = ix->names;
	while (nm) {
		struct idx_name *next = nm->next;
		free(nm);
		nm = next;
	}
	pthread_mutex_destroy(&ix->build_mu);
	pthread_mutex_destroy(&ix->log_mu);
	pthread_rwlock_destroy(&ix->lock);
	free(ix);
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

/* After a FAISS failure the id set may disagree with the index: rebuild it. */
static void resync(struct idx_gen *g)
{
	idx_error ignored;
	idx_gen_fill_ids(g, &ignored);
}

int idx_gen_remove(struct idx_gen *g, const int64_t *ids, size_t n, idx_error *err)
{
	size_t present = 0;
	for (size_t i = 0; i < n; i++)
		present += (size_t)idset_contains(&g->ids, ids[i]);
	if (!present)
		return IDX_OK;
	int rc = IDX_OK;
	idx_t *gone = malloc(present * sizeof *gone);
	FaissIDSelectorBatch *sel = NULL;
	if (!gone)
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory removing %zu ids", present);
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (idset_contains(&g->ids, ids[i]))
			gone[m++] = ids[i];
	if (faiss_IDSelectorBatch_new(&sel, m, gone)) {
		rc = idx_faiss_fail(err, "selecting ids to remove");
		goto out;
	}
	size_t removed = 0;
	if (faiss_Index_remove_ids(g->index, (FaissIDSelector *)sel, &removed)) {
		rc = idx_faiss_fail(err, "removing ids");
		resync(g);
		goto out;
	}
	for (size_t i = 0; i < m; i++)
		idset_erase(&g->ids, gone[i]);
	if (removed != m) {
		rc = idx_fail(err, IDX_ERR_FAISS, "FAISS removed %zu vectors for %zu ids", removed, m);
		resync(g);
	}
out:
	if (sel)
		faiss_IDSelector_free((FaissIDSelector *)sel);
	free(gone);
	return rc;
}

int idx_gen_add(struct idx_gen *g, const int64_t *ids, const float *vecs, size_t n, idx_error *err)
{
	if (idset_reserve(&g->ids, n))
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory for %zu ids", n);
	int rc = idx_gen_remove(g, ids, n, err);  /* replace: an id holds one vector */
	if (rc)
		return rc;
	if (faiss_Index_add_with_ids(g->index, (idx_t)n, vecs, ids)) {
		rc = idx_faiss_fail(err, "adding vectors");
		resync(g);
		return rc;
	}
	for (size_t i = 0; i < n; i++)
		idset_insert(&g->ids, ids[i]);
	return IDX_OK;
}

/* Log a change for a running build; under the write lock. */
static void log_change(idx *ix, int is_add, const int64_t *ids, const float *vecs, size_t n, uint64_t seq)
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
			log_change(ix, 1, ids, vecs, n, seq);
	} else if (rc == IDX_ERR_FAISS) {
		pthread_mutex_lock(&ix->log_mu);
		ix->log_broken = ix->logging;  /* the state is uncertain: the build must not swap */
		pthread_mutex_unlock(&ix->log_mu);
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
			log_change(ix, 0, ids, NULL, n, seq);
	} else if (rc == IDX_ERR_FAISS) {
		pthread_mutex_lock(&ix->log_mu);
		ix->log_broken = ix->logging;
		pthread_mutex_unlock(&ix->log_mu);
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
