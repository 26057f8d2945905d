/* The text-embedding LRU cache: hits, recency, eviction, bounds, threads. */
#include <pthread.h>

#include "harness.h"
#include "srv_lru.h"

static void vec_of(float *v, size_t dim, float x)
{
	for (size_t i = 0; i < dim; i++)
		v[i] = x + (float)i;
}

static void test_hit_miss_evict(void)
{
	struct srv_lru *c = srv_lru_new(2, 4);
	REQUIRE(c);
	float v[4], out[4];
	CHECK_EQ_INT(srv_lru_get(c, "a", out, 4), 0);
	vec_of(v, 4, 1);
	srv_lru_put(c, "a", v, 4);
	vec_of(v, 4, 2);
	srv_lru_put(c, "b", v, 4);
	CHECK_EQ_INT(srv_lru_get(c, "a", out, 4), 1);   /* a is now the most recent */
	CHECK_NEAR(out[3], 4, 0);
	vec_of(v, 4, 3);
	srv_lru_put(c, "c", v, 4);                      /* evicts b */
	CHECK_EQ_INT(srv_lru_get(c, "b", out, 4), 0);
	CHECK_EQ_INT(srv_lru_get(c, "a", out, 4), 1);
	CHECK_EQ_INT(srv_lru_get(c, "c", out, 4), 1);
	CHECK_NEAR(out[0], 3, 0);
	/* Replacing keeps one entry. */
	vec_of(v, 4, 9);
	srv_lru_put(c, "c", v, 4);
	CHECK_EQ_INT(srv_lru_get(c, "c", out, 4), 1);
	CHECK_NEAR(out[0], 9, 0);
	/* Wrong sizes are misses and ignored puts. */
	CHECK_EQ_INT(srv_lru_get(c, "c", out, 3), 0);
	srv_lru_put(c, "d", v, 3);
	CHECK_EQ_INT(srv_lru_get(c, "d", out, 4), 0);
	struct srv_lru_stats st;
	srv_lru_get_stats(c, &st);
	CHECK_EQ_INT(st.entries, 2);
	CHECK_EQ_INT(st.capacity, 2);
	CHECK_EQ_INT(st.evictions, 1);
	CHECK_EQ_INT(st.hits, 4);
	srv_lru_free(c);
}

static void test_zero_capacity(void)
{
	struct srv_lru *c = srv_lru_new(0, 2);
	REQUIRE(c);
	float v[2] = { 1, 2 }, out[2];
	srv_lru_put(c, "x", v, 2);
	CHECK_EQ_INT(srv_lru_get(c, "x", out, 2), 0);
	srv_lru_free(c);
	srv_lru_free(NULL);
}

static void test_many_keys_stay_bounded(void)
{
	struct srv_lru *c = srv_lru_new(100, 8);
	REQUIRE(c);
	float v[8] = { 0 }, out[8];
	char key[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof key, "query %d", i);
		v[0] = (float)i;
		srv_lru_put(c, key, v, 8);
	}
	struct srv_lru_stats st;
	srv_lru_get_stats(c, &st);
	CHECK_EQ_INT(st.entries, 100);
	CHECK_EQ_INT(srv_lru_get(c, "query 4999", out, 8), 1);
	CHECK_NEAR(out[0], 4999, 0);
	CHECK_EQ_INT(srv_lru_get(c, "query 4899", out, 8), 0);
	CHECK_EQ_INT(srv_lru_get(c, "query 4900", out, 8), 1);
	srv_lru_free(c);
}

static struct srv_lru *shared;

static void *worker(void *arg)
{
	int id = (int)(long)arg;
	float v[8], out[8];
	char key[32];
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof key, "k%d", (i * 7 + id) % 300);
		if (!srv_lru_get(shared, key, out, 8)) {
			for (int j = 0; j < 8; j++)
				v[j] = (float)((i * 7 + id) % 300);
			srv_lru_put(shared, key, v, 8);
		} else if (out[0] != out[7]) {
			return (void *)1;
		}
	}
	return NULL;
}

static void test_threads(void)
{
	shared = srv_lru_new(64, 8);
	REQUIRE(shared);
	pthread_t t[4];
	for (long i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	int bad = 0;
	for (int i = 0; i < 4; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		bad += rv != NULL;
	}
	CHECK_EQ_INT(bad, 0);
	struct srv_lru_stats st;
	srv_lru_get_stats(shared, &st);
	CHECK(st.entries <= 64);
	srv_lru_free(shared);
}

int main(void)
{
	RUN(test_hit_miss_evict);
	RUN(test_zero_capacity);
	RUN(test_many_keys_stay_bounded);
	RUN(test_threads);
	return harness_done();
}
