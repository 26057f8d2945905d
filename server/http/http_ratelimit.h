/*
 * http_ratelimit.h - a token bucket per client (an API key's index or a
 * client address): `rate` requests per second on average, bursts of up to
 * `burst`. The table is bounded: a client that has been idle long enough
 * to have refilled its bucket is indistinguishable from a new one, so its
 * slot may be reused; when every candidate slot is busy, the least recently
 * seen client in the probe window is forgotten.
 *
 *     struct http_ratelimit *rl = http_ratelimit_new(10, 20, 65536);
 *     double retry;
 *     if (!http_ratelimit_take(rl, "ip:203.0.113.7", clock_mono_s(), &retry))
 *             reply_429(ceil(retry));
 *     http_ratelimit_free(rl);
 *
 * Thread-safe.
 */
#ifndef CLIPD_HTTP_RATELIMIT_H
#define CLIPD_HTTP_RATELIMIT_H

#include <stddef.h>

#define HTTP_RL_MAX_CLIENT 96   /* bytes of a client identifier (longer ones are hashed whole but stored cut) */

struct http_ratelimit;

/* rate > 0 requests/s, burst >= 1, capacity clients (rounded up to a power
 * of two). NULL when out of memory or the arguments are invalid. */
struct http_ratelimit *http_ratelimit_new(double rate, double burst, size_t capacity);
void http_ratelimit_free(struct http_ratelimit *rl);

/* Takes one token for client at time now (seconds, monotonic). Returns 1
 * when allowed; 0 when limited, with the seconds until a token is there in
 * *retry_after. */
int http_ratelimit_take(struct http_ratelimit *rl, const char *client, double now, double *retry_after);

#endif
