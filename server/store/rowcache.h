/*
 * rowcache.h - a node's cache of image rows read from a shared catalog
 * (PostgreSQL): id -> the row as store_image, bounded by bytes, least
 * recently used first out. Thread-safe (one mutex): HTTP threads read and
 * fill it, the catalog's writes and its follower invalidate it.
 *
 *     rowcache *rc = NULL;
 *     rowcache_new(64 << 20, &rc);
 *     if (rowcache_get(rc, id, &img) != 1) {       // 1: a copy of the row in img
 *         uint64_t epoch = rowcache_epoch(rc);      // before the database read
 *         ... read img from the database ...
 *         rowcache_put(rc, epoch, &img);            // kept only if nothing was invalidated since
 *     }
 *     rowcache_invalidate(rc, &id, 1);              // a write changed row id
 *     rowcache_free(rc);
 *
 * Exactness: a fill is dropped when any invalidation (or flush) happened
 * between rowcache_epoch and rowcache_put, so a row read before a change
 * but put after that change's invalidation never enters the cache. A
 * caller invalidates a row once the change is committed and before it
 * answers for it (its own writes) or reports the change applied (changes
 * from other nodes).
 */
#ifndef CLIPD_ROWCACHE_H
#define CLIPD_ROWCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "store_types.h"

typedef struct rowcache rowcache;

struct rowcache_stats {
	uint64_t hits, misses;      /* rowcache_get answers */
	uint64_t evictions;         /* rows pushed out by the byte bound */
	uint64_t invalidations;     /* rows dropped by rowcache_invalidate */
	uint64_t flushes;           /* rowcache_flush calls */
	uint64_t entries;           /* rows held now */
	uint64_t bytes, max_bytes;  /* their accounted size, and the bound */
};

/* max_bytes: the bound (a row larger than max_bytes / 8 is never kept).
 * 0, STORE_ERR_NOMEM. */
int rowcache_new(size_t max_bytes, rowcache **out);
void rowcache_free(rowcache *rc);   /* NULL is fine */

/* 1 and a deep copy of row id in *out (free with store_image_clear) on a
 * hit; 0 on a miss (*out zeroed); STORE_ERR_NOMEM when the copy failed (a
 * miss for the caller). */
int rowcache_get(rowcache *rc, int64_t id, struct store_image *out);
/* The invalidation count now: take it before reading rows to put. */
uint64_t rowcache_epoch(rowcache *rc);
/* Keep a copy of img (the caller keeps img) unless an invalidation came
 * after epoch; replaces an older copy of the same id. Silently does
 * nothing when memory is short or the row is too large. */
void rowcache_put(rowcache *rc, uint64_t epoch, const struct store_image *img);
void rowcache_invalidate(rowcache *rc, const int64_t *ids, size_t n);
/* Drop every row (a change whose rows are not known, a rebuild). */
void rowcache_flush(rowcache *rc);
void rowcache_get_stats(rowcache *rc, struct rowcache_stats *out);

/* The bytes a row is accounted for (its struct and strings). */
size_t rowcache_row_bytes(const struct store_image *img);

#endif
