/*
 * params.c - an index's settings: the defaults, the factory strings
 * clipd supports, and the checked copy (struct idx_cfg) every generation
 * is made from.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Measured defaults: see README ("Vector index") and clipd bench-index. */
#define IDX_DEFAULT_THRESHOLD 50000  /* exact: ~16 ms of CPU per query at 50,000 x 512; IVF past it */
#define IDX_MAX_NLIST ((size_t)1 << 20)

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
