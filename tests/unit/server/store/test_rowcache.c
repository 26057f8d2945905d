/*
 * The node's cache of a shared catalog's rows (server/store/rowcache.c):
 * copies in and out, the byte bound and its order, invalidation, the epoch
 * that keeps a row read before a change out of the cache, and threads.
 */
#include <pthread.h>

#include "harness.h"
#include "rowcache.h"

static struct store_image row(int64_t id, const char *meta)
{
	struct store_image img;
	memset(&img, 0, sizeof img);
	img.id = id;
	memcpy(img.sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 65);
	snprintf(img.mime, sizeof img.mime, "image/png");
	img.width = img.height = 8;
	img.metadata = strdup(meta);
	img.filename = id == 7 ? strdup("a.png") : NULL;
	return img;
}

static void put(rowcache *rc, int64_t id, const char *meta)
{
	struct store_image img = row(id, meta);
	rowcache_put(rc, rowcache_epoch(rc), &img);
	store_image_clear(&img);
}

static void test_copies_in_and_out(void)
{
	rowcache *rc = NULL;
	REQUIRE(rowcache_new(1 << 20, &rc) == 0);
	struct store_image got;
	CHECK_EQ_INT(rowcache_get(rc, 7, &got), 0);
	CHECK(got.metadata == NULL);
	put(rc, 7, "{\"a\":1}");
	put(rc, 8, "{}");
	CHECK_EQ_INT(rowcache_get(rc, 7, &got), 1);
	CHECK_EQ_INT(got.id, 7);
	CHECK_EQ_STR(got.metadata, "{\"a\":1}");
	CHECK_EQ_STR(got.filename, "a.png");
	CHECK_EQ_STR(got.mime, "image/png");
	store_image_clear(&got);
	CHECK_EQ_INT(rowcache_get(rc, 8, &got), 1);
	CHECK(got.filename == NULL);
	store_image_clear(&got);
	/* a newer copy replaces the older */
	put(rc, 7, "{\"a\":2}");
	CHECK_EQ_INT(rowcache_get(rc, 7, &got), 1);
	CHECK_EQ_STR(got.metadata, "{\"a\":2}");
	store_image_clear(&got);
	struct rowcache_stats st;
	rowcache_get_stats(rc, &st);
	CHECK_EQ_INT(st.entries, 2);
	CHECK_EQ_INT(st.hits, 3);
	CHECK_EQ_INT(st.misses, 1);
	rowcache_free(rc);
	rowcache_free(NULL);
}

static void test_bounded_by_bytes_least_recent_out(void)
{
	char meta[1100];
	memset(meta, 'x', sizeof meta - 1);
	meta[0] = '{';
	meta[sizeof meta - 2] = '}';
	meta[sizeof meta - 1] = 0;
	struct store_image probe = row(100, meta);
	size_t each = rowcache_row_bytes(&probe);
	store_image_clear(&probe);
	rowcache *rc = NULL;
	REQUIRE(rowcache_new(10 * each, &rc) == 0);
	for (int64_t id = 101; id <= 110; id++)
		put(rc, id, meta);
	struct store_image got;
	CHECK_EQ_INT(rowcache_get(rc, 101, &got), 1);   /* 101 is now the most recent */
	store_image_clear(&got);
	put(rc, 111, meta);                             /* pushes out 102, the least recent */
	struct rowcache_stats st;
	rowcache_get_stats(rc, &st);
	CHECK_EQ_INT(st.entries, 10);
	CHECK_EQ_INT(st.evictions, 1);
	CHECK(st.bytes <= st.max_bytes);
	CHECK_EQ_INT(rowcache_get(rc, 102, &got), 0);
	CHECK_EQ_INT(rowcache_get(rc, 101, &got), 1);
	store_image_clear(&got);
	CHECK_EQ_INT(rowcache_get(rc, 111, &got), 1);
	store_image_clear(&got);
	/* a row larger than an eighth of the bound is never kept */
	char *huge = malloc(2 * each);
	REQUIRE(huge);
	memset(huge, 'y', 2 * each - 1);
	huge[2 * each - 1] = 0;
	put(rc, 50, huge);
	free(huge);
	CHECK_EQ_INT(rowcache_get(rc, 50, &got), 0);
	rowcache_free(rc);
}

static void test_invalidation_and_the_epoch(void)
{
	rowcache *rc = NULL;
	REQUIRE(rowcache_new(1 << 20, &rc) == 0);
	put(rc, 1, "{}");
	put(rc, 2, "{}");
	int64_t ids[] = { 1, 99 };
	rowcache_invalidate(rc, ids, 2);
	struct store_image got;
	CHECK_EQ_INT(rowcache_get(rc, 1, &got), 0);
	CHECK_EQ_INT(rowcache_get(rc, 2, &got), 1);
	store_image_clear(&got);
	/* a row read before an invalidation is not put after it */
	uint64_t epoch = rowcache_epoch(rc);
	struct store_image old = row(3, "{\"v\":\"old\"}");
	int64_t three = 3;
	rowcache_invalidate(rc, &three, 1);   /* the change commits, the row is dropped */
	rowcache_put(rc, epoch, &old);
	store_image_clear(&old);
	CHECK_EQ_INT(rowcache_get(rc, 3, &got), 0);
	/* nor after a flush, which drops every row */
	epoch = rowcache_epoch(rc);
	rowcache_flush(rc);
	old = row(4, "{}");
	rowcache_put(rc, epoch, &old);
	store_image_clear(&old);
	CHECK_EQ_INT(rowcache_get(rc, 4, &got), 0);
	CHECK_EQ_INT(rowcache_get(rc, 2, &got), 0);
	struct rowcache_stats st;
	rowcache_get_stats(rc, &st);
	CHECK_EQ_INT(st.entries, 0);
	CHECK_EQ_INT(st.bytes, 0);
	CHECK_EQ_INT(st.invalidations, 1);
	CHECK_EQ_INT(st.flushes, 1);
	rowcache_invalidate(NULL, ids, 2);
	rowcache_flush(NULL);
	rowcache_free(rc);
}

static rowcache *shared;

static void *reader(void *arg)
{
	int64_t base = (int64_t)(intptr_t)arg;
	for (int i = 0; i < 20000; i++) {
		/* hot rows shared by the threads, and cold ones, more than fit (about 760)
		 * between two flushes even with one thread running at a time */
		int64_t id = i % 4 ? base + i % 150 : 100000 + base * 100 + i;
		struct store_image got;
		int rc = rowcache_get(shared, id, &got);
		if (rc == 1) {
			if (got.id != id || !got.metadata)
				return (void *)1;
			store_image_clear(&got);
		} else {
			put(shared, id, "{\"k\":\"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\"}");
		}
		if (i % 97 == 0)
			rowcache_invalidate(shared, &id, 1);
		if (i % 5000 == 0)
			rowcache_flush(shared);
	}
	return NULL;
}

static void test_threads(void)
{
	REQUIRE(rowcache_new(256 << 10, &shared) == 0);
	pthread_t t[4];
	for (intptr_t i = 0; i < 4; i++)
		REQUIRE(pthread_create(&t[i], NULL, reader, (void *)(i * 200)) == 0);
	for (int i = 0; i < 4; i++) {
		void *res = NULL;
		pthread_join(t[i], &res);
		CHECK(res == NULL);
	}
	struct rowcache_stats st;
	rowcache_get_stats(shared, &st);
	CHECK(st.bytes <= st.max_bytes);
	CHECK(st.hits > 0 && st.evictions > 0);
	rowcache_free(shared);
}

int main(void)
{
	RUN(test_copies_in_and_out);
	RUN(test_bounded_by_bytes_least_recent_out);
	RUN(test_invalidation_and_the_epoch);
	RUN(test_threads);
	return harness_done();
}
