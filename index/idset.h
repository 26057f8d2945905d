/*
 * idset.h - a set of non-negative int64 ids (open addressing, linear
 * probing, backward-shift deletion). Internal to index/: the index keeps
 * one beside each FAISS index so that it knows which ids it holds without
 * asking FAISS (replaced ids on add, absent ids on remove, the count).
 */
#ifndef CLIPD_IDSET_H
#define CLIPD_IDSET_H

#include <stddef.h>
#include <stdint.h>

struct idset {
	int64_t *slots;   /* cap entries, IDSET_EMPTY where free; owned */
	size_t cap;       /* a power of two, or 0 before the first reserve */
	size_t count;
};

#define IDSET_EMPTY INT64_C(-1)

/* Zero-initialised is a valid empty set. */
void idset_free(struct idset *s);
/* Make room for `extra` more ids without growing; 0 or -1 (no memory, set unchanged). */
int idset_reserve(struct idset *s, size_t extra);
int idset_contains(const struct idset *s, int64_t id);
/* Needs room (idset_reserve) and id >= 0. 1 if inserted, 0 if already there. */
int idset_insert(struct idset *s, int64_t id);
/* 1 if removed, 0 if it was not there. */
int idset_erase(struct idset *s, int64_t id);

#endif
