#include "srv_lru.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct lru_entry {
	struct lru_entry *prev, *next;   /* recency list: head is the most recent */
	struct lru_entry *chain;         /* hash bucket */
	uint64_t hash;
	char *key;
	float vec[];                     /* dim floats */
};

struct srv_lru {
	pthread_mutex_t lock;
	size_t capacity, dim, n, n_buckets;
	struct lru_entry **buckets;
	struct lru_entry *head, *tail;
	struct srv_lru_stats stats;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct srv_lru *srv_lru_new(size_t capacity, size_t dim)
{
	if (dim == 0 || capacity > ((size_t)1 << 24))
		return NULL;
	struct srv_lru *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->capacity = capacity;
	c->dim = dim;
	c->n_buckets = 16;
	while (c->n_buckets < capacity)
		c->n_buckets <<= 1;
	c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->stats.capacity = capacity;
	return c;
}

void srv_lru_free(struct srv_lru *c)
{
	if (!c)
		return;
	for (struct lru_entry *e = c->head, *next; e; e = next) {
		next = e->next;
		free(e->key);
		free(e);
	}
	free(c->buckets);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static struct lru_entry *find(struct srv_lru *c, const char *key, uint64_t h)
{
	for (struct lru_entry *e = c->buckets[h & (c->n_buckets - 1)]; e; e = e->chain)
		if (e->hash == h && !strcmp(e->key, key))
			return e;
	return NULL;
}

static void unlink_list(struct srv_lru *c, struct lru_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void push_front(struct srv_lru *c, struct lru_entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static void unlink_bucket(struct srv_lru *c, struct lru_entry *e)
{
	struct lru_entry **pp = &c->buckets[e->hash & (c->n_buckets - 1)];
	while (*pp && *pp != e)
		pp = &(*pp)->chain;
	if (*pp)
		*pp = e->chain;
}

int srv_lru_get(struct srv_lru *c, const char *key, float *out, size_t out_len)
{
	if (!c || !key || out_len != c->dim)
		return 0;
	uint64_t h = hash_str(key);
	pthread_mutex_lock(&c->lock);
	struct lru_entry *e = find(c, key, h);
	if (e) {
		unlink_list(c, e);
		push_front(c, e);
		memcpy(out, e->vec, c->dim * sizeof *out);
		c->stats.hits++;
	} else {
		c->stats.misses++;
	}
	pthread_mutex_unlock(&c->lock);
	return e != NULL;
}

void srv_lru_put(struct srv_lru *c, const char *key, const float *vec, size_t len)
{
	if (!c || !key || len != c->dim || c->capacity == 0)
		return;
	uint64_t h = hash_str(key);
	/* Allocate outside the lock. */
	struct lru_entry *fresh = malloc(sizeof *fresh + c->dim * sizeof(float));
	char *kcopy = strdup(key);
	if (!fresh || !kcopy) {
		free(fresh);
		free(kcopy);
		return;
	}
	fresh->hash = h;
	fresh->key = kcopy;
	fresh->chain = NULL;
	memcpy(fresh->vec, vec, c->dim * sizeof *vec);
	struct lru_entry *evicted = NULL;
	pthread_mutex_lock(&c->lock);
	struct lru_entry *e = find(c, key, h);
	if (e) {
		memcpy(e->vec, vec, c->dim * sizeof *vec);
		unlink_list(c, e);
		push_front(c, e);
		pthread_mutex_unlock(&c->lock);
		free(fresh->key);
		free(fresh);
		return;
	}
	if (c->n >= c->capacity) {
		evicted = c->tail;
		unlink_list(c, evicted);
		unlink_bucket(c, evicted);
		c->n--;
		c->stats.evictions++;
	}
	struct lru_entry **bucket = &c->buckets[h & (c->n_buckets - 1)];
	fresh->chain = *bucket;
	*bucket = fresh;
	push_front(c, fresh);
	c->n++;
	pthread_mutex_unlock(&c->lock);
	if (evicted) {
		free(evicted->key);
		free(evicted);
	}
}

void srv_lru_get_stats(struct srv_lru *c, struct srv_lru_stats *out)
{
	memset(out, 0, sizeof *out);
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	out->entries = c->n;
	pthread_mutex_unlock(&c->lock);
}
