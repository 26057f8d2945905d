/*
 * clip.c - encoding contexts: a thread team (team.c) and scratch memory
 * each, the public clip_encode_* calls and their counters, and what BLAS
 * is in use.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "forward.h"
#include "internal.h"
#include "team.h"

/* ---- contexts ---------------------------------------------------------- */

#define CLIP_MAX_THREADS 256

struct clip_ctx {
	const clip_model *model;
	struct clip_team *team;
	struct clip_work work;
	struct clip_ctx_stats stats;
	int32_t *ids;           /* clip_encode_texts' token buffer */
	size_t cap_ids;
};

int clip_ctx_new(const clip_model *model, int n_threads, clip_ctx **out, clip_error *err)
{
	int rc;
	if (!model || !out || n_threads < 0)
		return clip_fail(err, CLIP_ERR_INVALID, "clip_ctx_new: NULL model or output, or negative thread count");
	*out = NULL;
	if (n_threads == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n_threads = cpus > 0 ? (int)(cpus < CLIP_MAX_THREADS ? cpus : CLIP_MAX_THREADS) : 1;
	}
	if (n_threads > CLIP_MAX_THREADS)
		return clip_fail(err, CLIP_ERR_INVALID, "%d threads, at most %d", n_threads, CLIP_MAX_THREADS);
	clip_ctx *ctx = calloc(1, sizeof *ctx);
	if (!ctx)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
	ctx->model = model;
	if ((rc = clip_team_new(n_threads, &ctx->team, err))) {
		free(ctx);
		return rc;
	}
	*out = ctx;
	return 0;
}

void clip_ctx_free(clip_ctx *ctx)
{
	if (!ctx)
		return;
	clip_team_free(ctx->team);
	clip_work_free(&ctx->work);
	free(ctx->ids);
	free(ctx);
}

static int check_out(const clip_ctx *ctx, size_t n, size_t out_len, const void *out, clip_error *err)
{
	size_t dim = clip_model_dim(ctx->model);
	if (n > CLIP_MAX_BATCH)
		return clip_fail(err, CLIP_ERR_INVALID, "batch of %zu, at most %d", n, CLIP_MAX_BATCH);
	if (n && !out)
		return clip_fail(err, CLIP_ERR_INVALID, "NULL output buffer");
	if (out_len < n * dim)
		return clip_fail(err, CLIP_ERR_INVALID, "output holds %zu floats, %zu needed", out_len, n * dim);
	return 0;
}

int clip_encode_images(clip_ctx *ctx, const float *pixels, size_t n, float *out, size_t out_len,
		       clip_error *err)
{
	if (!ctx || (n && !pixels))
		return clip_fail(err, CLIP_ERR_INVALID, "clip_encode_images: NULL argument");
	int rc = check_out(ctx, n, out_len, out, err);
	if (rc || !n)
		return rc;
	rc = clip_forward_images(ctx->model, ctx->team, &ctx->work, pixels, n, out, err);
	if (rc)
		return rc;
	ctx->stats.image_batches++;
	ctx->stats.images += n;
	if (n > ctx->stats.max_image_batch)
		ctx->stats.max_image_batch = n;
	return 0;
}

int clip_encode_tokens(clip_ctx *ctx, const int32_t *const *ids, const size_t *n_ids, size_t n, float *out,
		       size_t out_len, clip_error *err)
{
	if (!ctx || (n && (!ids || !n_ids)))
		return clip_fail(err, CLIP_ERR_INVALID, "clip_encode_tokens: NULL argument");
	int rc = check_out(ctx, n, out_len, out, err);
	if (rc || !n)
		return rc;
	rc = clip_forward_tokens(ctx->model, ctx->team, &ctx->work, ids, n_ids, n, out, err);
	if (rc)
		return rc;
	ctx->stats.text_batches++;
	ctx->stats.texts += n;
	return 0;
}

int clip_encode_texts(clip_ctx *ctx, const char *const *texts, size_t n, float *out, size_t out_len,
		      clip_error *err)
{
	int rc = CLIP_ERR_NOMEM;
	const int32_t **rows = NULL;
	size_t *lens = NULL;
	if (!ctx || (n && !texts))
		return clip_fail(err, CLIP_ERR_INVALID, "clip_encode_texts: NULL argument");
	if ((rc = check_out(ctx, n, out_len, out, err)) || !n)
		return rc;
	size_t ctx_len = (size_t)clip_model_context_length(ctx->model);
	if (n * ctx_len > ctx->cap_ids) {
		int32_t *p = realloc(ctx->ids, n * ctx_len * sizeof *p);
		if (!p)
			return clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
		ctx->ids = p;
		ctx->cap_ids = n * ctx_len;
	}
	rows = malloc(n * sizeof *rows);
	lens = malloc(n * sizeof *lens);
	if (!rows || !lens) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
		goto out;
	}
	const clip_tokenizer *tok = clip_model_tokenizer(ctx->model);
	for (size_t i = 0; i < n; i++) {
		if (!texts[i]) {
			rc = clip_fail(err, CLIP_ERR_INVALID, "text %zu is NULL", i);
			goto out;
		}
		int32_t *ids = ctx->ids + i * ctx_len;
		if ((rc = clip_tokenize(tok, texts[i], strlen(texts[i]), ids, ctx_len, &lens[i], err)))
			goto out;
		rows[i] = ids;
	}
	rc = clip_encode_tokens(ctx, rows, lens, n, out, out_len, err);
out:
	free(rows);
	free(lens);
	return rc;
}

void clip_ctx_get_stats(const clip_ctx *ctx, struct clip_ctx_stats *out)
{
	if (!out)
		return;
	if (!ctx) {
		memset(out, 0, sizeof *out);
		return;
	}
	*out = ctx->stats;
}

void clip_l2_normalize(float *v, size_t dim)
{
	double s = 0;
	for (size_t i = 0; i < dim; i++)
		s += (double)v[i] * v[i];
	if (!(s > 0) || !isfinite(s))
		return;
	double inv = 1.0 / sqrt(s);
	for (size_t i = 0; i < dim; i++)
		v[i] = (float)(v[i] * inv);
}

/* ---- BLAS -------------------------------------------------------------- */

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static char blas_name[64];

static void blas_name_init(void)
{
	/* "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64": the
	 * first two words */
	const char *cfg = openblas_get_config();
	char lib[32] = "", ver[32] = "";
	if (cfg && sscanf(cfg, "%31s %31s", lib, ver) == 2)
		snprintf(blas_name, sizeof blas_name, "%s %s", lib, ver);
	else
		snprintf(blas_name, sizeof blas_name, "OpenBLAS");
}

const char *clip_blas_name(void)
{
	pthread_once(&blas_once, blas_name_init);
	return blas_name;
}

const char *clip_blas_core(void)
{
	const char *core = openblas_get_corename();
	return core ? core : "unknown";
}
