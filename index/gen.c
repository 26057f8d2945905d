/*
 * gen.c - generations and the handle around them: a generation's ids,
 * its changes and its nprobe; wrapping one in a new idx, publishing the
 * current one's counters for lock-free readers, and freeing the handle.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>

#include "internal.h"

#define IDX_SCAN_BUDGET (4096 * 512)  /* automatic nprobe: vector components scanned per query (~2 ms) */
#define IDX_MIN_AUTO_NPROBE 4

/* ---- one generation ---------------------------------------------------- */

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

/* ---- the handle -------------------------------------------------------- */

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
		idx_destroy(ix);
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory");
	}
	idx_publish(ix);
	*out = ix;
	return IDX_OK;
}

void idx_destroy(idx *ix)
{
	if (!ix)
		return;
	idx_gen_free(ix->cur);
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
