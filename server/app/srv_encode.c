#include "srv_encode.h"
#include "text.h"

#include "clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct srv_encoder {
	const clip_model *model;
	struct srv_encode_params p;
	size_t dim, input_floats;
	clip_ctx *image_ctx, *text_ctx;       /* each used by its batcher's thread only */
	struct srv_pool *decode_pool;
	struct srv_batcher *image_batcher, *text_batcher;
	struct srv_lru *cache;
	/* the decode budget */
	pthread_mutex_t budget_lock;
	pthread_cond_t budget_cond;
	size_t budget_used;
	/* stats of the contexts, copied after each pass (the contexts
	 * themselves are touched by their batcher threads only) */
	pthread_mutex_t stats_lock;
	struct clip_ctx_stats image_stats, text_stats;
};

/* 1 if a job queued at t has waited longer than allowed. */
static int too_late(const struct srv_encoder *e, double t)
{
	return e->p.max_wait_s > 0 && clock_mono_s() - t > e->p.max_wait_s;
}

static int nomem(clip_error *err)
{
	err->code = CLIP_ERR_NOMEM;
	snprintf(err->msg, sizeof err->msg, "out of memory");
	return CLIP_ERR_NOMEM;
}

/* ---- the decode budget --------------------------------------------------- */

void srv_encoder_budget_take(struct srv_encoder *e, size_t n)
{
	if (n > e->p.decode_budget)
		n = e->p.decode_budget;
	pthread_mutex_lock(&e->budget_lock);
	while (e->budget_used + n > e->p.decode_budget)
		pthread_cond_wait(&e->budget_cond, &e->budget_lock);
	e->budget_used += n;
	pthread_mutex_unlock(&e->budget_lock);
}

void srv_encoder_budget_give(struct srv_encoder *e, size_t n)
{
	if (n > e->p.decode_budget)
		n = e->p.decode_budget;
	pthread_mutex_lock(&e->budget_lock);
	e->budget_used -= n;
	pthread_cond_broadcast(&e->budget_cond);
	pthread_mutex_unlock(&e->budget_lock);
}

int srv_encoder_run(struct srv_encoder *e, void (*fn)(void *arg), void *arg, int force)
{
	return srv_pool_submit(e->decode_pool, fn, arg, force);
}

/* ---- images ---------------------------------------------------------------- */

static void image_fail(struct srv_image_job *job, int status, const char *msg)
{
	job->status = status;
	text_copy(job->msg, sizeof job->msg, msg);
	free(job->pixels);
	job->pixels = NULL;
	job->done(job);
}

/* On the decode pool: bytes to the model's input, then the batcher. */
static void decode_task(void *arg)
{
	struct srv_image_job *job = arg;
	struct srv_encoder *e = job->enc;
	if (!e) {
		image_fail(job, CLIP_ERR_INVALID, "the job does not fit the model");
		return;
	}
	if (too_late(e, job->queued_at)) {
		image_fail(job, SRV_ENC_OVERLOADED, "waited too long for a decoder");
		return;
	}
	size_t share = (size_t)job->width * (size_t)job->height;
	clip_image img = { 0 };
	clip_error err = { 0 };
	srv_encoder_budget_take(e, share);
	struct clip_decode_params dp = clip_model_decode_params(e->model, e->p.max_pixels, e->p.exact_decode);
	int rc = clip_image_decode_with(job->data, job->len, &dp, &img, &err);
	if (rc == 0) {
		memcpy(job->taken_at, img.taken_at, sizeof job->taken_at);
		job->pixels = malloc(e->input_floats * sizeof *job->pixels);
		if (!job->pixels)
			rc = nomem(&err);
		else
			rc = clip_image_preprocess(e->model, &img, job->pixels, e->input_floats, &err);
	}
	clip_image_free(&img);
	srv_encoder_budget_give(e, share);
	if (rc != 0) {
		image_fail(job, rc, err.msg);
		return;
	}
	if (srv_batcher_submit(e->image_batcher, job, 1) != 0)
		image_fail(job, SRV_ENC_OVERLOADED, "the encoder queue is full");
}

/* On the image batcher's thread: one encoder pass over the batch. */
static void image_batch(void *ud, void **items, size_t n)
{
	struct srv_encoder *e = ud;
	clip_error err = { 0 };
	/* Jobs that waited too long are answered, not encoded. */
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		struct srv_image_job *job = items[i];
		if (too_late(e, job->queued_at))
			image_fail(job, SRV_ENC_OVERLOADED, "waited too long for the encoder");
		else
			items[kept++] = job;
	}
	n = kept;
	if (n == 0)
		return;
	float *pixels = malloc(n * e->input_floats * sizeof *pixels);
	float *out = malloc(n * e->dim * sizeof *out);
	int rc;
	if (!pixels || !out) {
		rc = nomem(&err);
	} else {
		for (size_t i = 0; i < n; i++) {
			struct srv_image_job *job = items[i];
			memcpy(pixels + i * e->input_floats, job->pixels, e->input_floats * sizeof *pixels);
			free(job->pixels);
			job->pixels = NULL;
		}
		rc = clip_encode_images(e->image_ctx, pixels, n, out, n * e->dim, &err);
	}
	pthread_mutex_lock(&e->stats_lock);
	clip_ctx_get_stats(e->image_ctx, &e->image_stats);
	pthread_mutex_unlock(&e->stats_lock);
	for (size_t i = 0; i < n; i++) {
		struct srv_image_job *job = items[i];
		if (rc == 0) {
			clip_l2_normalize(out + i * e->dim, e->dim);
			memcpy(job->vec, out + i * e->dim, e->dim * sizeof *out);
			job->status = 0;
			job->done(job);
		} else {
			image_fail(job, rc, err.msg);
		}
	}
	free(pixels);
	free(out);
}

void srv_encode_image_now(struct srv_encoder *e, struct srv_image_job *job)
{
	job->enc = job->dim == e->dim && job->vec ? e : NULL;
	job->queued_at = clock_mono_s();
	job->pixels = NULL;
	job->status = 0;
	job->msg[0] = 0;
	job->taken_at[0] = 0;
	decode_task(job);
}

int srv_encode_image(struct srv_encoder *e, struct srv_image_job *job)
{
	if (job->dim != e->dim || !job->vec || !job->done)
		return -1;
	job->enc = e;
	job->pixels = NULL;
	job->status = 0;
	job->msg[0] = 0;
	job->taken_at[0] = 0;
	job->queued_at = clock_mono_s();
	return srv_pool_submit(e->decode_pool, decode_task, job, 0);
}

/* ---- texts ------------------------------------------------------------------- */

static void text_batch(void *ud, void **items, size_t n)
{
	struct srv_encoder *e = ud;
	clip_error err = { 0 };
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		struct srv_text_job *job = items[i];
		if (too_late(e, job->queued_at)) {
			job->status = SRV_ENC_OVERLOADED;
			snprintf(job->msg, sizeof job->msg, "waited too long for the text encoder");
			free(job->misses);
			job->misses = NULL;
			job->done(job);
		} else {
			items[kept++] = job;
		}
	}
	n = kept;
	if (n == 0)
		return;
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += ((struct srv_text_job *)items[i])->n_misses;
	const char **texts = malloc(total * sizeof *texts);
	float *out = malloc(total * e->dim * sizeof *out);
	int rc;
	if (!texts || !out) {
		rc = nomem(&err);
	} else {
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			struct srv_text_job *job = items[i];
			for (size_t m = 0; m < job->n_misses; m++)
				texts[k++] = job->texts[job->misses[m]];
		}
		rc = clip_encode_texts(e->text_ctx, texts, total, out, total * e->dim, &err);
	}
	pthread_mutex_lock(&e->stats_lock);
	clip_ctx_get_stats(e->text_ctx, &e->text_stats);
	pthread_mutex_unlock(&e->stats_lock);
	size_t k = 0;
	if (rc == 0) {
		for (size_t i = 0; i < n; i++) {
			struct srv_text_job *job = items[i];
			for (size_t m = 0; m < job->n_misses; m++, k++) {
				float *v = out + k * e->dim;
				clip_l2_normalize(v, e->dim);
				memcpy(job->vecs + job->misses[m] * e->dim, v, e->dim * sizeof *v);
				srv_lru_put(e->cache, texts[k], v, e->dim);
			}
			job->status = 0;
		}
		if (e->p.after_text_batch)
			e->p.after_text_batch(e->p.after_ud, items, n);
	}
	for (size_t i = 0; i < n; i++) {
		struct srv_text_job *job = items[i];
		if (rc != 0) {
			job->status = rc;
			text_copy(job->msg, sizeof job->msg, err.msg);
		}
		free(job->misses);
		job->misses = NULL;
		job->done(job);
	}
	free(texts);
	free(out);
}

int srv_encode_texts(struct srv_encoder *e, struct srv_text_job *job)
{
	if (job->dim != e->dim || !job->vecs || job->n == 0)
		return -1;
	job->status = 0;
	job->msg[0] = 0;
	job->queued_at = clock_mono_s();
	job->misses = malloc(job->n * sizeof *job->misses);
	if (!job->misses)
		return -1;
	job->n_misses = 0;
	for (size_t i = 0; i < job->n; i++)
		if (!srv_lru_get(e->cache, job->texts[i], job->vecs + i * e->dim, e->dim))
			job->misses[job->n_misses++] = i;
	if (job->n_misses == 0) {
		free(job->misses);
		job->misses = NULL;
		return 1;
	}
	if (srv_batcher_submit(e->text_batcher, job, job->n_misses) != 0) {
		free(job->misses);
		job->misses = NULL;
		return -1;
	}
	return 0;
}

/* ---- life ---------------------------------------------------------------------- */

int srv_encoder_new(const clip_model *model, const struct srv_encode_params *p,
		    struct srv_encoder **out, char *msg, size_t msglen)
{
	clip_error err = { 0 };
	struct srv_encoder *e = calloc(1, sizeof *e);
	if (!e) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	e->model = model;
	e->p = *p;
	if (e->p.decode_budget < e->p.max_pixels)
		e->p.decode_budget = e->p.max_pixels;
	e->dim = clip_model_dim(model);
	e->input_floats = clip_model_input_floats(model);
	pthread_mutex_init(&e->budget_lock, NULL);
	pthread_cond_init(&e->budget_cond, NULL);
	pthread_mutex_init(&e->stats_lock, NULL);
	if (clip_ctx_new(model, p->threads, &e->image_ctx, &err) != 0
	    || clip_ctx_new(model, p->threads, &e->text_ctx, &err) != 0) {
		size_t w = text_copy(msg, msglen, "encoder context: ");
		text_copy(msg + w, msglen - w, err.msg);
		goto fail;
	}
	e->cache = srv_lru_new(p->text_cache, e->dim);
	e->decode_pool = srv_pool_new(p->decode_threads ? p->decode_threads : 1,
				      p->image_queue ? p->image_queue : 1, "decode");
	struct srv_batcher_params ib = { p->image_batch, p->image_wait_ms, p->image_queue, "image-batch" };
	struct srv_batcher_params tb = { p->text_batch, p->text_wait_ms, p->text_queue, "text-batch" };
	e->image_batcher = srv_batcher_new(&ib, image_batch, e);
	e->text_batcher = srv_batcher_new(&tb, text_batch, e);
	if (!e->cache || !e->decode_pool || !e->image_batcher || !e->text_batcher) {
		snprintf(msg, msglen, "cannot start the encoder's threads and queues");
		goto fail;
	}
	*out = e;
	return 0;
fail:
	srv_encoder_free(e);
	return -1;
}

void srv_encoder_free(struct srv_encoder *e)
{
	if (!e)
		return;
	/* Order: decode jobs feed the image batcher. */
	srv_pool_stop(e->decode_pool);
	srv_batcher_stop(e->image_batcher);
	srv_batcher_stop(e->text_batcher);
	clip_ctx_free(e->image_ctx);
	clip_ctx_free(e->text_ctx);
	srv_lru_free(e->cache);
	pthread_mutex_destroy(&e->budget_lock);
	pthread_cond_destroy(&e->budget_cond);
	pthread_mutex_destroy(&e->stats_lock);
	free(e);
}

void srv_encoder_get_stats(struct srv_encoder *e, struct srv_encoder_stats *out)
{
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&e->stats_lock);
	out->image_ctx = e->image_stats;
	out->text_ctx = e->text_stats;
	pthread_mutex_unlock(&e->stats_lock);
	srv_batcher_get_stats(e->image_batcher, &out->image_queue);
	srv_batcher_get_stats(e->text_batcher, &out->text_queue);
	out->decode_queue = srv_pool_depth(e->decode_pool);
	pthread_mutex_lock(&e->budget_lock);
	out->budget_in_use = e->budget_used;
	out->budget = e->p.decode_budget;
	pthread_mutex_unlock(&e->budget_lock);
	srv_lru_get_stats(e->cache, &out->text_cache);
}
