/*
 * idset.c - the index's set of ids. Load factor at most 1/2, so a probe
 * sequence stays short; deletion shifts later entries back instead of
 * leaving tombstones, so a set that sees many removes never degrades.
 */
#include <stdlib.h>

#include "idset.h"

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

void idset_free(struct idset *s)
{
	if (!s)
		return;
	free(s->slots);
	s->slots = NULL;
	s->cap = 0;
	s->count = 0;
}

static void place(int64_t *slots, size_t mask, int64_t id)
{
	size_t i = (size_t)mix64((uint64_t)id) & mask;
	while (slots[i] != IDSET_EMPTY)
		i = (i + 1) & mask;
	slots[i] = id;
}

int idset_reserve(struct idset *s, size_t extra)
{
	if (extra > SIZE_MAX / 4 - s->count)
		return -1;
	size_t need = (s->count + extra) * 2;
	if (need <= s->cap)
		return 0;
	size_t cap = s->cap ? s->cap : 64;
	while (cap < need)
		cap *= 2;
	int64_t *slots = malloc(cap * sizeof *slots);
	if (!slots)
		return -1;
	for (size_t i = 0; i < cap; i++)
		slots[i] = IDSET_EMPTY;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i] != IDSET_EMPTY)
			place(slots, cap - 1, s->slots[i]);
	free(s->slots);
	s->slots = slots;
	s->cap = cap;
	return 0;
}

int idset_contains(const struct idset *s, int64_t id)
{
	if (!s->cap || id < 0)
		return 0;
	size_t mask = s->cap - 1;
	for (size_t i = (size_t)mix64((uint64_t)id) & mask;; i = (i + 1) & mask) {
		if (s->slots[i] == id)
			return 1;
		if (s->slots[i] == IDSET_EMPTY)
			return 0;
	}
}

int idset_insert(struct idset *s, int64_t id)
{
	size_t mask = s->cap - 1;
	size_t i = (size_t)mix64((uint64_t)id) & mask;
	for (; s->slots[i] != IDSET_EMPTY; i = (i + 1) & mask)
		if (s->slots[i] == id)
			return 0;
	s->slots[i] = id;
	s->count++;
	return 1;
}

int idset_erase(struct idset *s, int64_t id)
{
	if (!s->cap || id < 0)
		return 0;
	size_t mask = s->cap - 1;
	size_t i = (size_t)mix64((uint64_t)id) & mask;
	while (s->slots[i] != id) {
		if (s->slots[i] == IDSET_EMPTY)
			return 0;
		i = (i + 1) & mask;
	}
	/* Shift back every later entry of the cluster whose home slot is not
	 * cyclically in (i, j]: it could not be found past the hole at i. */
	size_t j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (s->slots[j] == IDSET_EMPTY)
			break;
		size_t home = (size_t)mix64((uint64_t)s->slots[j]) & mask;
		int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			s->slots[i] = s->slots[j];
			i = j;
		}
	}
	s->slots[i] = IDSET_EMPTY;
	s->count--;
	return 1;
}
