/*
 * clip.c - encoding contexts: the thread team, scratch memory, the public
 * clip_encode_* calls and their counters, and what BLAS is in use.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include <cblas.h>

#include "forward.h"
#include "internal.h"

/* ---- the thread team --------------------------------------------------- */

#define CLIP_MAX_THREADS 256
/* How long a waiting thread spins before it sleeps: long enough to cover
 * the gap between two steps of one forward pass, short enough that an
 * idle team leaves the CPUs to others at once. */
#define SPIN_NS 100000L

struct clip_team {
	int n;                          /* threads, the caller included */
	int started;                    /* workers running */
	pthread_t *threads;
	_Atomic uint32_t gen;           /* futex word: bumped to start a task */
	_Atomic int sleepers;           /* workers asleep on gen */
	_Atomic int pending;            /* workers still in the current task */
	_Atomic uint32_t done;          /* futex word: 1 when pending reaches 0 */
	_Atomic int caller_sleeping;
	clip_task_fn fn;                /* written before gen is bumped */
	void *arg;
	int stop;
};

struct worker_start {
	struct clip_team *team;
	int index;
};

static void futex_wait(_Atomic uint32_t *word, uint32_t val)
{
	syscall(SYS_futex, (uint32_t *)(uintptr_t)word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, (uint32_t *)(uintptr_t)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static long elapsed_ns(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

/* Spin until *word != old or SPIN_NS pass; 1 if it changed. */
static int spin_while_equal(_Atomic uint32_t *word, uint32_t old)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 1;; i++) {
		if (atomic_load_explicit(word, memory_order_acquire) != old)
			return 1;
		cpu_relax();
		if ((i & 127) == 0 && elapsed_ns(&t0) > SPIN_NS)
			return 0;
	}
}

static void *worker_main(void *p)
{
	struct worker_start *ws = p;
	struct clip_team *team = ws->team;
	int index = ws->index;
	free(ws);
	uint32_t seen = 0;
	for (;;) {
		if (!spin_while_equal(&team->gen, seen)) {
			atomic_fetch_add(&team->sleepers, 1);
			while (atomic_load(&team->gen) == seen)
				futex_wait(&team->gen, seen);
			atomic_fetch_sub(&team->sleepers, 1);
		}
		seen = atomic_load(&team->gen);
		if (team->stop)
			break;
		team->fn(team->arg, index, team->n);
		if (atomic_fetch_sub(&team->pending, 1) == 1) {
			atomic_store(&team->done, 1);
			if (atomic_load(&team->caller_sleeping))
				futex_wake(&team->done, 1);
		}
	}
	return NULL;
}

/* Start the next task: workers see fn and arg once gen moves. */
static void team_release(struct clip_team *team)
{
	atomic_store(&team->pending, team->started);
	atomic_store(&team->done, team->started ? 0 : 1);
	atomic_fetch_add(&team->gen, 1);
	if (atomic_load(&team->sleepers))
		futex_wake(&team->gen, INT_MAX);
}

static void team_join(struct clip_team *team)
{
	if (spin_while_equal(&team->done, 0))
		return;
	atomic_store(&team->caller_sleeping, 1);
	while (atomic_load(&team->done) == 0)
		futex_wait(&team->done, 0);
	atomic_store(&team->caller_sleeping, 0);
}

void clip_team_run(struct clip_team *team, clip_task_fn fn, void *arg)
{
	if (team->n == 1) {
		fn(arg, 0, 1);
		return;
	}
	team->fn = fn;
	team->arg = arg;
	team_release(team);
	fn(arg, 0, team->n);
	team_join(team);
}

int clip_team_size(const struct clip_team *team)
{
	return team->n;
}

void clip_team_free(struct clip_team *team)
{
	if (!team)
		return;
	if (team->started) {
		team->stop = 1;
		team_release(team);
		for (int i = 0; i < team->started; i++)
			pthread_join(team->threads[i], NULL);
	}
	free(team->threads);
	free(team);
}

int clip_team_new(int n_threads, struct clip_team **out, clip_error *err)
{
	int rc = CLIP_ERR_NOMEM;
	struct clip_team *team = calloc(1, sizeof *team);
	*out = NULL;
	if (!team)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
	team->n = n_threads;
	team->threads = calloc((size_t)n_threads, sizeof *team->threads);
	if (!team->threads) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* Workers block every signal: signals are the application's, and go
	 * to its own threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 1; i < n_threads; i++) {
		struct worker_start *ws = malloc(sizeof *ws);
		int e = ws ? 0 : ENOMEM;
		if (ws) {
			ws->team = team;
			ws->index = i;
			e = pthread_create(&team->threads[team->started], NULL, worker_main, ws);
			if (e)
				free(ws);
		}
		if (e) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			rc = clip_fail(err, CLIP_ERR_THREAD, "cannot start worker thread %d of %d: %s", i, n_threads,
				       strerror(e));
			goto out;
		}
		team->started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	*out = team;
	team = NULL;
	rc = 0;
out:
	clip_team_free(team);
	return rc;
}

/* ---- contexts ---------------------------------------------------------- */

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
