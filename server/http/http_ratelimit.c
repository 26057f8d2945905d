#include "http_ratelimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROBE 8

struct rl_slot {
	uint64_t hash;          /* 0: empty */
	char client[HTTP_RL_MAX_CLIENT];
	double tokens, last;
};

struct http_ratelimit {
	pthread_mutex_t lock;
	double rate, burst;
	size_t mask;
	struct rl_slot *slots;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h ? h : 1;
}

struct http_ratelimit *http_ratelimit_new(double rate, double burst, size_t capacity)
{
	if (!(rate > 0) || !(burst >= 1) || capacity == 0 || capacity > ((size_t)1 << 24))
		return NULL;
	size_t n = PROBE;
	while (n < capacity)
		n <<= 1;
	struct http_ratelimit *rl = calloc(1, sizeof *rl);
	if (!rl)
		return NULL;
	rl->slots = calloc(n, sizeof *rl->slots);
	if (!rl->slots) {
		free(rl);
		return NULL;
	}
	pthread_mutex_init(&rl->lock, NULL);
	rl->rate = rate;
	rl->burst = burst;
	rl->mask = n - 1;
	return rl;
}

void http_ratelimit_free(struct http_ratelimit *rl)
{
	if (!rl)
		return;
	pthread_mutex_destroy(&rl->lock);
	free(rl->slots);
	free(rl);
}

static int same_client(const struct rl_slot *s, uint64_t h, const char *client)
{
	return s->hash == h && !strncmp(s->client, client, sizeof s->client - 1);
}

int http_ratelimit_take(struct http_ratelimit *rl, const char *client, double now, double *retry_after)
{
	*retry_after = 0;
	if (!rl || !client)
		return 1;
	uint64_t h = hash_str(client);
	double full_after = rl->burst / rl->rate;   /* seconds to refill from empty */
	pthread_mutex_lock(&rl->lock);
	struct rl_slot *slot = NULL, *victim = NULL;
	int victim_prio = 3;
	for (size_t i = 0; i < PROBE; i++) {
		struct rl_slot *s = &rl->slots[(h + i) & rl->mask];
		if (same_client(s, h, client)) {
			slot = s;
			break;
		}
		/* Prefer an empty slot, then a refilled one (its client looks
		 * new anyway), then the least recently seen. */
		int prio = s->hash == 0 ? 0 : now - s->last >= full_after ? 1 : 2;
		if (!victim || prio < victim_prio || (prio == victim_prio && s->last < victim->last)) {
			victim = s;
			victim_prio = prio;
		}
	}
	if (!slot) {
		slot = victim;
		slot->hash = h;
		strncpy(slot->client, client, sizeof slot->client - 1);
		slot->client[sizeof slot->client - 1] = 0;
		slot->tokens = rl->burst;
		slot->last = now;
	}
	double tokens = slot->tokens + (now > slot->last ? now - slot->last : 0) * rl->rate;
	if (tokens > rl->burst)
		tokens = rl->burst;
	if (now > slot->last)
		slot->last = now;
	int allowed = tokens >= 1.0;
	if (allowed)
		tokens -= 1.0;
	else
		*retry_after = (1.0 - tokens) / rl->rate;
	slot->tokens = tokens;
	pthread_mutex_unlock(&rl->lock);
	return allowed;
}
