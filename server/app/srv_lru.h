/*
 * srv_lru.h - a bounded, thread-safe LRU cache from text to a vector (the
 * text embeddings of recent queries and labels).
 *
 *     struct srv_lru *c = srv_lru_new(4096, 512);
 *     float v[512];
 *     if (!srv_lru_get(c, "a red bicycle", v, 512)) {
 *             encode("a red bicycle", v);
 *             srv_lru_put(c, "a red bicycle", v, 512);
 *     }
 *     srv_lru_free(c);
 *
 * Keys and vectors are copied in; a capacity of 0 makes a cache that never
 * hits.
 */
#ifndef CLIPD_SRV_LRU_H
#define CLIPD_SRV_LRU_H

#include <stddef.h>
#include <stdint.h>

struct srv_lru;

struct srv_lru *srv_lru_new(size_t capacity, size_t dim);
void srv_lru_free(struct srv_lru *c);

/* 1 and the vector copied into out[dim] on a hit (the entry becomes the
 * most recent); 0 on a miss or when out_len != dim. */
int srv_lru_get(struct srv_lru *c, const char *key, float *out, size_t out_len);
/* Inserts or refreshes; evicts the least recently used entry when full.
 * Out of memory leaves the cache as it was. */
void srv_lru_put(struct srv_lru *c, const char *key, const float *vec, size_t len);

struct srv_lru_stats {
	uint64_t hits, misses, evictions;
	size_t entries, capacity;
};
void srv_lru_get_stats(struct srv_lru *c, struct srv_lru_stats *out);

#endif
