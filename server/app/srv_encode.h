/*
 * srv_encode.h - the server's two paths to the encoder, each with its own
 * clip_ctx and its own batching queue, so that searches never wait behind
 * a long upload batch.
 *
 *   images: decode + preprocess on a small worker pool (the pixels being
 *           decoded at once count against a budget), then a batcher that
 *           runs up to B images per encoder pass, waiting at most W ms for
 *           company; a full queue refuses (the caller answers 503).
 *   texts:  an LRU cache of embeddings first; the misses go to a batcher
 *           (a batch of queries reads the text tower's weights once).
 *
 *     struct srv_image_job *job = calloc(1, sizeof *job);
 *     job->data = bytes; job->len = len; job->width = w; job->height = h;
 *     job->vec = vec; job->dim = dim; job->done = on_vector; job->ud = me;
 *     if (srv_encode_image(enc, job) != 0) reply_503();
 *     // later, on a worker thread: on_vector(job), job->status 0 or negative
 *
 * Jobs and everything they point to belong to the caller; they must stay
 * alive until done() has been called (exactly once per accepted job, from
 * a worker thread; never from inside srv_encode_*).
 */
#ifndef CLIPD_SRV_ENCODE_H
#define CLIPD_SRV_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "clip.h"
#include "srv_lru.h"
#include "srv_queue.h"

/* Beyond clip_status: the batch queue was full, or a job waited too long. */
#define SRV_ENC_OVERLOADED (-100)

struct srv_encode_params {
	int threads;                 /* per clip_ctx (0: CPUs) */
	size_t decode_threads;
	size_t max_pixels, decode_budget;
	int exact_decode;            /* 1: JPEGs at full size (no DCT-scaled fast path) */
	size_t image_batch, image_queue;
	unsigned image_wait_ms;
	size_t text_batch, text_queue;
	unsigned text_wait_ms;
	size_t text_cache;           /* entries */
	double max_wait_s;           /* a job that waited longer is failed (SRV_ENC_OVERLOADED); 0: no limit */
	/* Optional: called on the text encoder's thread after each pass with
	 * the jobs it encoded (vectors filled, status 0), before their done():
	 * work that is cheaper for a whole batch at once goes here (the index
	 * search of text queries). jobs[i] is a struct srv_text_job *. */
	void (*after_text_batch)(void *ud, void *const *jobs, size_t n);
	void *after_ud;
};

struct srv_image_job {
	/* in */
	const void *data;            /* the image bytes (borrowed) */
	size_t len;
	int width, height;           /* from clip_image_probe: the pixel budget's share */
	float *vec;                  /* out: dim floats, L2-normalised */
	size_t dim;
	void (*done)(struct srv_image_job *job);
	void *ud;
	/* out */
	int status;                  /* 0, a clip_status or SRV_ENC_OVERLOADED */
	char msg[256];
	char taken_at[CLIP_TAKEN_AT_LEN];  /* the capture time the file states (RFC 3339), or "" */
	/* internal */
	float *pixels;
	struct srv_encoder *enc;
	double queued_at;
};

struct srv_text_job {
	/* in */
	const char *const *texts;    /* n NUL-terminated texts (borrowed) */
	size_t n;
	float *vecs;                 /* out: n * dim floats, L2-normalised */
	size_t dim;
	void (*done)(struct srv_text_job *job);
	void *ud;
	/* out */
	int status;
	char msg[256];
	/* internal */
	size_t *misses;              /* indexes of texts not in the cache */
	size_t n_misses;
	double queued_at;
};

struct srv_encoder;

/* model is borrowed (it must outlive the encoder). 0, or -1 with a message. */
int srv_encoder_new(const clip_model *model, const struct srv_encode_params *p,
		    struct srv_encoder **out, char *msg, size_t msglen);
/* Runs every queued job to its done(), then frees. NULL is fine. */
void srv_encoder_free(struct srv_encoder *e);

/* 0: accepted, done() follows. -1: the queue is full (nothing happens). */
int srv_encode_image(struct srv_encoder *e, struct srv_image_job *job);

/* The same from a worker thread that may block: decode here (under the
 * budget), then queue for the encoder. done() is always called, perhaps
 * before this returns (a bad image, a full queue). */
void srv_encode_image_now(struct srv_encoder *e, struct srv_image_job *job);

/* 1: every text was cached; vecs are filled now and done() is NOT called.
 * 0: accepted, done() follows. -1: the queue is full. */
int srv_encode_texts(struct srv_encoder *e, struct srv_text_job *job);

/* Decode budget (pixels), also used for thumbnails: blocks until n pixels
 * are free (n is capped at the budget). */
void srv_encoder_budget_take(struct srv_encoder *e, size_t n);
void srv_encoder_budget_give(struct srv_encoder *e, size_t n);

/* Run fn(arg) on the decode pool. force as srv_pool_submit. 0 or -1 when full. */
int srv_encoder_run(struct srv_encoder *e, void (*fn)(void *arg), void *arg, int force);

struct srv_encoder_stats {
	struct clip_ctx_stats image_ctx, text_ctx;        /* the encoder's own counters */
	struct srv_batcher_stats image_queue, text_queue;
	size_t decode_queue;
	size_t budget_in_use, budget;
	struct srv_lru_stats text_cache;
};
void srv_encoder_get_stats(struct srv_encoder *e, struct srv_encoder_stats *out);

#endif
