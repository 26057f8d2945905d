/*
 * The node's cache of image rows: a chained hash table on the id and a
 * doubly linked list in use order (most recent first), under one mutex.
 * See rowcache.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rowcache.h"

struct entry {
	struct entry *hnext;          /* the bucket's chain */
	struct entry *prev, *next;    /* use order: head most recent */
	size_t bytes;
	struct store_image img;
};

struct rowcache {
	pthread_mutex_t lock;
	struct entry **buckets;
	size_t nbuckets;              /* a power of two */
	struct entry *head, *tail;
	size_t bytes, max_bytes, entries;
	uint64_t epoch;               /* invalidations and flushes so far */
	uint64_t hits, misses, evictions, invalidations, flushes;
};

#define MIN_BUCKETS 1024

static size_t slot(const rowcache *rc, int64_t id)
{
	uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 32) & (rc->nbuckets - 1);
}

static size_t opt_len(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

size_t rowcache_row_bytes(const struct store_image *img)
{
	return sizeof(struct entry) + sizeof(struct entry *) + opt_len(img->filename) + opt_len(img->metadata) +
	       opt_len(img->source_library) + opt_len(img->source_path);
}

int rowcache_new(size_t max_bytes, rowcache **out)
{
	rowcache *rc = calloc(1, sizeof *rc);
	if (rc)
		rc->buckets = calloc(MIN_BUCKETS, sizeof *rc->buckets);
	if (!rc || !rc->buckets) {
		free(rc);
		*out = NULL;
		return STORE_ERR_NOMEM;
	}
	rc->nbuckets = MIN_BUCKETS;
	rc->max_bytes = max_bytes;
	pthread_mutex_init(&rc->lock, NULL);
	*out = rc;
	return 0;
}

static void entry_free(struct entry *e)
{
	store_image_clear(&e->img);
	free(e);
}

/* Take e out of its bucket and the use list, and free it (lock held). */
static void unlink_entry(rowcache *rc, struct entry *e)
{
	struct entry **p = &rc->buckets[slot(rc, e->img.id)];
	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	if (e->prev)
		e->prev->next = e->next;
	else
		rc->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		rc->tail = e->prev;
	rc->bytes -= e->bytes;
	rc->entries--;
	entry_free(e);
}

static struct entry *find(rowcache *rc, int64_t id)
{
	struct entry *e = rc->buckets[slot(rc, id)];
	while (e && e->img.id != id)
		e = e->hnext;
	return e;
}

/* e (in no list) becomes the most recent (lock held). */
static void push_front(rowcache *rc, struct entry *e)
{
	e->prev = NULL;
	e->next = rc->head;
	if (rc->head)
		rc->head->prev = e;
	rc->head = e;
	if (!rc->tail)
		rc->tail = e;
}

static void to_front(rowcache *rc, struct entry *e)
{
	if (rc->head == e)
		return;
	e->prev->next = e->next;   /* not the head: it has a prev */
	if (e->next)
		e->next->prev = e->prev;
	else
		rc->tail = e->prev;
	push_front(rc, e);
}

/* Twice the buckets once entries outnumber them (lock held); on no memory
 * the chains just grow longer. */
static void maybe_grow(rowcache *rc)
{
	if (rc->entries < rc->nbuckets)
		return;
	size_t n = rc->nbuckets * 2;
	struct entry **b = calloc(n, sizeof *b);
	if (!b)
		return;
	struct entry **old = rc->buckets;
	size_t oldn = rc->nbuckets;
	rc->buckets = b;
	rc->nbuckets = n;
	for (size_t i = 0; i < oldn; i++)
		for (struct entry *e = old[i], *next; e; e = next) {
			next = e->hnext;
			size_t s = slot(rc, e->img.id);
			e->hnext = b[s];
			b[s] = e;
		}
	free(old);
}

static int copy_str(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	return (*dst = strdup(src)) ? 0 : -1;
}

/* A deep copy: 0, or -1 with out cleared. */
static int copy_image(struct store_image *out, const struct store_image *in)
{
	*out = *in;
	out->filename = out->metadata = out->source_library = out->source_path = NULL;
	if (copy_str(&out->filename, in->filename) || copy_str(&out->metadata, in->metadata) ||
	    copy_str(&out->source_library, in->source_library) || copy_str(&out->source_path, in->source_path)) {
		store_image_clear(out);
		return -1;
	}
	return 0;
}

int rowcache_get(rowcache *rc, int64_t id, struct store_image *out)
{
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&rc->lock);
	struct entry *e = find(rc, id);
	int hit = 0;
	if (e) {
		to_front(rc, e);
		hit = copy_image(out, &e->img) == 0 ? 1 : STORE_ERR_NOMEM;
	}
	if (hit == 1)
		rc->hits++;
	else
		rc->misses++;
	pthread_mutex_unlock(&rc->lock);
	return hit;
}

uint64_t rowcache_epoch(rowcache *rc)
{
	pthread_mutex_lock(&rc->lock);
	uint64_t e = rc->epoch;
	pthread_mutex_unlock(&rc->lock);
	return e;
}

void rowcache_put(rowcache *rc, uint64_t epoch, const struct store_image *img)
{
	size_t bytes = rowcache_row_bytes(img);
	if (bytes > rc->max_bytes / 8 || !img->metadata)
		return;
	/* the copy outside the lock */
	struct entry *e = calloc(1, sizeof *e);
	if (!e)
		return;
	if (copy_image(&e->img, img) != 0) {
		free(e);
		return;
	}
	e->bytes = bytes;
	pthread_mutex_lock(&rc->lock);
	if (rc->epoch != epoch) {
		/* a change was invalidated since the row was read: it may be older */
		pthread_mutex_unlock(&rc->lock);
		entry_free(e);
		return;
	}
	struct entry *old = find(rc, img->id);
	if (old)
		unlink_entry(rc, old);
	while (rc->tail && rc->bytes + bytes > rc->max_bytes) {
		unlink_entry(rc, rc->tail);
		rc->evictions++;
	}
	size_t s = slot(rc, img->id);
	e->hnext = rc->buckets[s];
	rc->buckets[s] = e;
	push_front(rc, e);
	rc->bytes += bytes;
	rc->entries++;
	maybe_grow(rc);
	pthread_mutex_unlock(&rc->lock);
}

void rowcache_invalidate(rowcache *rc, const int64_t *ids, size_t n)
{
	if (!rc || n == 0)
		return;
	pthread_mutex_lock(&rc->lock);
	rc->epoch++;
	for (size_t i = 0; i < n; i++) {
		struct entry *e = find(rc, ids[i]);
		if (e) {
			unlink_entry(rc, e);
			rc->invalidations++;
		}
	}
	pthread_mutex_unlock(&rc->lock);
}

void rowcache_flush(rowcache *rc)
{
	if (!rc)
		return;
	pthread_mutex_lock(&rc->lock);
	rc->epoch++;
	rc->flushes++;
	while (rc->head)
		unlink_entry(rc, rc->head);
	pthread_mutex_unlock(&rc->lock);
}

void rowcache_get_stats(rowcache *rc, struct rowcache_stats *out)
{
	memset(out, 0, sizeof *out);
	if (!rc)
		return;
	pthread_mutex_lock(&rc->lock);
	out->hits = rc->hits;
	out->misses = rc->misses;
	out->evictions = rc->evictions;
	out->invalidations = rc->invalidations;
	out->flushes = rc->flushes;
	out->entries = rc->entries;
	out->bytes = rc->bytes;
	out->max_bytes = rc->max_bytes;
	pthread_mutex_unlock(&rc->lock);
}

void rowcache_free(rowcache *rc)
{
	if (!rc)
		return;
	while (rc->head) {
		struct entry *e = rc->head;
		rc->head = e->next;
		entry_free(e);
	}
	free(rc->buckets);
	pthread_mutex_destroy(&rc->lock);
	free(rc);
}
