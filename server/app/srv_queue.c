#include "srv_queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- pool ------------------------------------------------------------- */

struct pool_task {
	void (*fn)(void *);
	void *arg;
};

struct srv_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct pool_task *ring;   /* a ring of ring_cap tasks */
	size_t ring_cap, head, n, capacity;
	int stopping;
	size_t n_threads;
	pthread_t *threads;
	char name[16];            /* the threads' name (top -H, perf --sort comm) */
};

static void *pool_main(void *arg)
{
	struct srv_pool *p = arg;
	pthread_setname_np(pthread_self(), p->name);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->n == 0 && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->n == 0)
			break;
		struct pool_task t = p->ring[p->head];
		p->head = (p->head + 1) % p->ring_cap;
		p->n--;
		pthread_mutex_unlock(&p->lock);
		t.fn(t.arg);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct srv_pool *srv_pool_new(size_t threads, size_t capacity, const char *name)
{
	if (threads == 0 || capacity == 0)
		return NULL;
	struct srv_pool *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->ring_cap = capacity + 16;
	p->ring = calloc(p->ring_cap, sizeof *p->ring);
	p->threads = calloc(threads, sizeof *p->threads);
	if (!p->ring || !p->threads)
		goto fail;
	p->capacity = capacity;
	snprintf(p->name, sizeof p->name, "%s", name ? name : "clipd-pool");
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	for (; p->n_threads < threads; p->n_threads++)
		if (pthread_create(&p->threads[p->n_threads], NULL, pool_main, p) != 0) {
			srv_pool_stop(p);
			return NULL;
		}
	return p;
fail:
	free(p->ring);
	free(p->threads);
	free(p);
	return NULL;
}

static int pool_grow(struct srv_pool *p)
{
	size_t cap = p->ring_cap * 2;
	struct pool_task *ring = malloc(cap * sizeof *ring);
	if (!ring)
		return -1;
	for (size_t i = 0; i < p->n; i++)
		ring[i] = p->ring[(p->head + i) % p->ring_cap];
	free(p->ring);
	p->ring = ring;
	p->ring_cap = cap;
	p->head = 0;
	return 0;
}

int srv_pool_submit(struct srv_pool *p, void (*fn)(void *arg), void *arg, int force)
{
	int rc = -1;
	pthread_mutex_lock(&p->lock);
	if (p->stopping && !force)
		goto out;
	if (p->n >= p->capacity && !force)
		goto out;
	if (p->n == p->ring_cap && pool_grow(p) != 0)
		goto out;
	p->ring[(p->head + p->n) % p->ring_cap] = (struct pool_task){ fn, arg };
	p->n++;
	pthread_cond_signal(&p->cond);
	rc = 0;
out:
	pthread_mutex_unlock(&p->lock);
	return rc;
}

size_t srv_pool_depth(struct srv_pool *p)
{
	pthread_mutex_lock(&p->lock);
	size_t n = p->n;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void srv_pool_stop(struct srv_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->ring);
	free(p->threads);
	free(p);
}

/* ---- batcher ---------------------------------------------------------- */

struct batch_item {
	void *item;
	size_t weight;
	struct timespec arrived;
};

struct srv_batcher {
	struct srv_batcher_params params;
	srv_batch_fn fn;
	void *ud;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct batch_item *ring;
	void **items;             /* the batch handed to fn, ring_cap slots */
	size_t ring_cap, head, n, weight;
	int stopping;
	pthread_t thread;
	struct srv_batcher_stats stats;
};

static void add_ms(struct timespec *t, unsigned ms)
{
	t->tv_sec += ms / 1000;
	t->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

static void *batcher_main(void *arg)
{
	struct srv_batcher *b = arg;
	void **items = b->items;
	char name[16];
	snprintf(name, sizeof name, "%s", b->params.name ? b->params.name : "clipd-batch");
	pthread_setname_np(pthread_self(), name);
	pthread_mutex_lock(&b->lock);
	for (;;) {
		while (b->n == 0 && !b->stopping)
			pthread_cond_wait(&b->cond, &b->lock);
		if (b->n == 0)
			break;
		/* Wait for company: until the batch is full, the first item
		 * has waited max_wait_ms, or we are stopping. */
		struct timespec deadline = b->ring[b->head].arrived;
		add_ms(&deadline, b->params.max_wait_ms);
		while (b->weight < b->params.max_batch && !b->stopping) {
			int rc = pthread_cond_timedwait(&b->cond, &b->lock, &deadline);
			if (rc == ETIMEDOUT)
				break;
		}
		size_t n = 0, w = 0;
		while (b->n > 0 && (n == 0 || w + b->ring[b->head].weight <= b->params.max_batch)) {
			struct batch_item *it = &b->ring[b->head];
			items[n] = it->item;
			w += it->weight;
			n++;
			b->head = (b->head + 1) % b->ring_cap;
			b->n--;
			b->weight -= it->weight;
		}
		b->stats.batches++;
		b->stats.items += n;
		b->stats.weight += w;
		if (n > b->stats.max_batch_items)
			b->stats.max_batch_items = n;
		b->stats.hist[n < SRV_BATCH_HIST ? n : SRV_BATCH_HIST]++;
		pthread_mutex_unlock(&b->lock);
		b->fn(b->ud, items, n);
		pthread_mutex_lock(&b->lock);
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

struct srv_batcher *srv_batcher_new(const struct srv_batcher_params *p, srv_batch_fn fn, void *ud)
{
	if (!p || p->max_batch == 0 || p->capacity == 0 || !fn)
		return NULL;
	struct srv_batcher *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->params = *p;
	b->fn = fn;
	b->ud = ud;
	/* Every queued item weighs at least 1. */
	b->ring_cap = p->capacity + 1;
	b->ring = calloc(b->ring_cap, sizeof *b->ring);
	b->items = calloc(b->ring_cap, sizeof *b->items);
	if (!b->ring || !b->items) {
		free(b->ring);
		free(b->items);
		free(b);
		return NULL;
	}
	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&b->thread, NULL, batcher_main, b) != 0) {
		pthread_mutex_destroy(&b->lock);
		pthread_cond_destroy(&b->cond);
		free(b->ring);
		free(b->items);
		free(b);
		return NULL;
	}
	return b;
}

int srv_batcher_submit(struct srv_batcher *b, void *item, size_t weight)
{
	if (weight == 0)
		weight = 1;
	int rc = -1;
	pthread_mutex_lock(&b->lock);
	if (b->stopping)
		goto out;
	if ((b->n > 0 && b->weight + weight > b->params.capacity) || b->n >= b->ring_cap) {
		b->stats.rejected++;
		goto out;
	}
	struct batch_item *it = &b->ring[(b->head + b->n) % b->ring_cap];
	it->item = item;
	it->weight = weight;
	clock_gettime(CLOCK_MONOTONIC, &it->arrived);
	b->n++;
	b->weight += weight;
	pthread_cond_signal(&b->cond);
	rc = 0;
out:
	pthread_mutex_unlock(&b->lock);
	return rc;
}

void srv_batcher_stop(struct srv_batcher *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->stopping = 1;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->thread, NULL);
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
	free(b->ring);
	free(b->items);
	free(b);
}

void srv_batcher_get_stats(struct srv_batcher *b, struct srv_batcher_stats *out)
{
	pthread_mutex_lock(&b->lock);
	*out = b->stats;
	out->depth = b->n;
	out->depth_weight = b->weight;
	pthread_mutex_unlock(&b->lock);
}
