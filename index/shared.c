/*
 * shared.c - trained parameters that cross a process boundary: training
 * them (idx_train), building an index from them instead of training
 * (idx_build_trained), and reading them back from an index
 * (idx_trained_params), so that several nodes hold the same approximate
 * index. The form is FAISS's serialised index, trained and empty.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/clone_index_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include "internal.h"

/* A trained, empty IVF at 4,096 dimensions and 2^20 lists of SQfp16 codes
 * is about 8.6 GB; a real one is far smaller (IVF1024,SQ8 at 512: 2 MB).
 * What comes back from elsewhere is bounded before FAISS reads it. */
#define IDX_MAX_PARAMS_BYTES ((size_t)1 << 30)

int idx_wants_build(idx *ix)
{
	if (!ix)
		return 0;
	pthread_rwlock_rdlock(&ix->lock);
	int need = idx_needs_build(ix, ix->cur->ids.count, ix->cur->exact, ix->cur->trained_n);
	pthread_rwlock_unlock(&ix->lock);
	return need;
}

/* The form: PARAMS_MAGIC, the checksum of the rest (little-endian), then
 * FAISS's serialised index. FAISS's reader leaks what it allocated when it
 * meets damaged bytes: a damaged copy is refused before FAISS reads it. */
static const char PARAMS_MAGIC[8] = { 'C', 'L', 'I', 'P', 'D', 'T', 'R', 'N' };
#define PARAMS_HDR 16

/* index serialised into *out (malloc'd), *len bytes, in that form. */
static int serialise(const FaissIndex *index, void **out, size_t *len, idx_error *err)
{
	char *buf = NULL;
	size_t n = 0;
	*out = NULL;
	*len = 0;
	FILE *f = open_memstream(&buf, &n);
	if (!f)
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory");
	char hdr[PARAMS_HDR] = { 0 };
	int failed = fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr || faiss_write_index(index, f);
	int rc = failed ? idx_faiss_fail(err, "serialising the trained index") : IDX_OK;
	if (fclose(f) && rc == IDX_OK)
		rc = idx_fail(err, IDX_ERR_NOMEM, "out of memory serialising the trained index");
	if (rc) {
		free(buf);
		return rc;
	}
	uint64_t h = idx_checksum(buf + PARAMS_HDR, n - PARAMS_HDR);
	memcpy(buf, PARAMS_MAGIC, sizeof PARAMS_MAGIC);
	for (int i = 0; i < 8; i++)
		buf[8 + i] = (char)(unsigned char)(h >> (8 * i));
	*out = buf;
	*len = n;
	return IDX_OK;
}

int idx_train(const struct idx_params *p, const float *vecs, size_t n, char type[IDX_MAX_FACTORY],
	      void **params, size_t *len, idx_error *err)
{
	if (!type || !params || !len || (n && !vecs))
		return idx_fail(err, IDX_ERR_INVALID, "idx_train: missing argument");
	*params = NULL;
	*len = 0;
	struct idx_cfg cfg;
	int rc = idx_cfg_from_params(p, &cfg, err);
	if (rc)
		return rc;
	struct idx_family fam;
	idx_choose(&cfg, n, &fam);
	if (fam.exact) {
		snprintf(type, IDX_MAX_FACTORY, "Flat");
		return IDX_OK;
	}
	FaissIndex *index = NULL;
	if ((rc = idx_train_new(&cfg, &fam, vecs, n, &index, err)) != 0)
		return rc;
	rc = serialise(index, params, len, err);
	faiss_Index_free(index);
	if (rc == IDX_OK)
		snprintf(type, IDX_MAX_FACTORY, "IVF%zu,%s", fam.nlist, fam.code);
	return rc;
}

/* The trained, empty index of family type in params, checked. */
static int deserialise(const struct idx_cfg *cfg, const char *type, const void *params, size_t len,
		       FaissIndex **out, idx_error *err)
{
	struct idx_family fam;
	*out = NULL;
	if (idx_parse_factory(type, &fam, err))
		return idx_fail(err, IDX_ERR_CORRUPT, "trained parameters of an unsupported index \"%.63s\"", type);
	if (fam.exact || len <= PARAMS_HDR || len > IDX_MAX_PARAMS_BYTES)
		return idx_fail(err, IDX_ERR_CORRUPT, "trained parameters of %zu bytes for a %s index", len, type);
	const unsigned char *b = params;
	uint64_t h = 0;
	for (int i = 7; i >= 0; i--)
		h = h << 8 | b[8 + i];
	if (memcmp(b, PARAMS_MAGIC, sizeof PARAMS_MAGIC) != 0 || h != idx_checksum(b + PARAMS_HDR, len - PARAMS_HDR))
		return idx_fail(err, IDX_ERR_CORRUPT, "the trained parameters of the %s index are damaged (checksum)", type);
	FILE *f = fmemopen((void *)(uintptr_t)(b + PARAMS_HDR), len - PARAMS_HDR, "r");
	if (!f)
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory");
	FaissIndex *index = NULL;
	int failed = faiss_read_index(f, 0, &index);
	fclose(f);
	if (failed) {
		idx_faiss_fail(err, "reading the trained parameters");
		if (err)
			err->code = IDX_ERR_CORRUPT;
		return IDX_ERR_CORRUPT;
	}
	FaissIndexIVF *ivf = faiss_IndexIVF_cast(index);
	if (!ivf || faiss_Index_d(index) != (int)cfg->dim || faiss_Index_metric_type(index) != METRIC_INNER_PRODUCT ||
	    !faiss_Index_is_trained(index) || faiss_Index_ntotal(index) != 0 || faiss_IndexIVF_nlist(ivf) != fam.nlist) {
		faiss_Index_free(index);
		return idx_fail(err, IDX_ERR_CORRUPT,
				"the trained parameters are not an empty, trained %s index of dimension %zu", type, cfg->dim);
	}
	*out = index;
	return IDX_OK;
}

int idx_build_trained(const struct idx_params *p, const char *type, const void *params, size_t len,
		      size_t trained_n, const int64_t *ids, const float *vecs, size_t n, uint64_t seq,
		      idx **out, idx_error *err)
{
	if (!out || !type || (len && !params) || (n && (!ids || !vecs)))
		return idx_fail(err, IDX_ERR_INVALID, "idx_build_trained: missing argument");
	*out = NULL;
	struct idx_cfg cfg;
	int rc = idx_cfg_from_params(p, &cfg, err);
	if (rc)
		return rc;
	struct idx_gen *g = calloc(1, sizeof *g);
	if (!g)
		return idx_fail(err, IDX_ERR_NOMEM, "out of memory");
	if (strcmp(type, "Flat") == 0 && len == 0) {
		g->exact = 1;
		snprintf(g->type, sizeof g->type, "Flat");
		if (faiss_index_factory(&g->index, (int)cfg.dim, "IDMap2,Flat", METRIC_INNER_PRODUCT)) {
			rc = idx_faiss_fail(err, "creating the index");
			goto out;
		}
	} else {
		if ((rc = deserialise(&cfg, type, params, len, &g->index, err)) != 0)
			goto out;
		snprintf(g->type, sizeof g->type, "%s", type);
		g->trained_n = trained_n ? trained_n : 1;
	}
	if ((rc = idx_gen_fill(&cfg, g, ids, vecs, n, NULL, err)) != 0)
		goto out;
	rc = idx_wrap(&cfg, g, seq, out, err);
	g = NULL;   /* idx_wrap took it */
out:
	idx_gen_free(g);
	return rc;
}

int idx_trained_params(idx *ix, void **params, size_t *len, idx_error *err)
{
	if (!ix || !params || !len)
		return idx_fail(err, IDX_ERR_INVALID, "idx_trained_params: missing argument");
	*params = NULL;
	*len = 0;
	FaissIndex *copy = NULL;
	int rc = IDX_OK;
	pthread_rwlock_rdlock(&ix->lock);
	if (!ix->cur->exact && faiss_clone_index(ix->cur->index, &copy))
		rc = idx_faiss_fail(err, "copying the index");
	pthread_rwlock_unlock(&ix->lock);
	if (rc || !copy)
		return rc;
	/* as trained: empty, and FAISS's default nprobe (a node sets its own) */
	FaissIndexIVF *ivf = faiss_IndexIVF_cast(copy);
	if (ivf)
		faiss_IndexIVF_set_nprobe(ivf, 1);
	if (faiss_Index_reset(copy))
		rc = idx_faiss_fail(err, "emptying the copy of the index");
	else
		rc = serialise(copy, params, len, err);
	faiss_Index_free(copy);
	return rc;
}
