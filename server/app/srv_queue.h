/*
 * srv_queue.h - work off the HTTP threads: a pool of worker threads with a
 * bounded queue, and a batcher that gathers items for one batched pass.
 *
 *     struct srv_pool *pool = srv_pool_new(2, 256, "decode");
 *     if (srv_pool_submit(pool, decode_upload, job, 0) != 0)
 *             reply_503_overloaded();
 *
 *     struct srv_batcher_params bp = { .max_batch = 8, .max_wait_ms = 5, .capacity = 64 };
 *     struct srv_batcher *b = srv_batcher_new(&bp, encode_batch, model_ctx);
 *     srv_batcher_submit(b, item, 1);      // encode_batch(ud, items, n) runs in the
 *                                          // batcher's thread with 1..max_batch items
 *     srv_batcher_stop(b);                 // runs what is queued, then joins
 *     srv_pool_stop(pool);
 *
 * A full queue refuses (srv_*_submit returns -1) instead of growing: the
 * caller answers 503. Submissions after stop are refused too.
 */
#ifndef CLIPD_SRV_QUEUE_H
#define CLIPD_SRV_QUEUE_H

#include <stddef.h>
#include <stdint.h>

/* ---- a worker pool ---------------------------------------------------- */

struct srv_pool;

/* threads >= 1; capacity tasks waiting at most; name: the threads' name
 * (15 bytes kept; NULL: "clipd-pool"). NULL on failure. */
struct srv_pool *srv_pool_new(size_t threads, size_t capacity, const char *name);
/* Queue fn(arg). force: queue even when full (for continuations whose
 * admission was already counted elsewhere). 0, or -1 when full or stopped. */
int srv_pool_submit(struct srv_pool *p, void (*fn)(void *arg), void *arg, int force);
size_t srv_pool_depth(struct srv_pool *p);
/* Runs every queued task, then joins the threads and frees the pool. */
void srv_pool_stop(struct srv_pool *p);

/* ---- a batcher -------------------------------------------------------- */

#define SRV_BATCH_HIST 64   /* batch sizes counted one by one up to this */

struct srv_batcher_params {
	size_t max_batch;        /* items' weight per pass, at least one item */
	unsigned max_wait_ms;    /* how long the first item waits for company */
	size_t capacity;         /* queued weight at most (one item is always admitted
	                          * into an empty queue, whatever its weight) */
	const char *name;        /* the thread's name (15 bytes kept; NULL: "clipd-batch") */
};

/* Called in the batcher's thread; it owns the items' outcome (it must
 * complete every item). items is valid for the call only. */
typedef void (*srv_batch_fn)(void *ud, void **items, size_t n);

struct srv_batcher;

struct srv_batcher *srv_batcher_new(const struct srv_batcher_params *p, srv_batch_fn fn, void *ud);
/* weight >= 1 (a job of several texts weighs as many). 0, or -1 when full or stopped. */
int srv_batcher_submit(struct srv_batcher *b, void *item, size_t weight);
/* Runs what is queued, joins the thread, frees. NULL is fine. */
void srv_batcher_stop(struct srv_batcher *b);

struct srv_batcher_stats {
	uint64_t batches, items, weight;
	size_t max_batch_items;
	size_t depth;               /* items queued now */
	size_t depth_weight;
	uint64_t rejected;          /* submissions refused because full */
	uint64_t hist[SRV_BATCH_HIST + 1];  /* hist[n]: passes with n items (last: more) */
};
void srv_batcher_get_stats(struct srv_batcher *b, struct srv_batcher_stats *out);

#endif
