/* The index (index/idx.h) on real FAISS: ids and inner products, removes,
 * files, the exact and approximate families, background builds with
 * changes arriving during them, and searches racing adds. */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "idx.h"
#include "harness.h"

#define DIM 32

/* Deterministic pseudo-random unit vectors: vector `key` is always the same. */
static uint64_t mix(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

static void unit_vec(float *v, size_t dim, uint64_t key)
{
	double n = 0;
	for (size_t i = 0; i < dim; i++) {
		uint64_t r = mix(key * 1000003u + i);
		v[i] = (float)((double)(r >> 11) / 9007199254740992.0 - 0.5);
		n += (double)v[i] * v[i];
	}
	for (size_t i = 0; i < dim; i++)
		v[i] = (float)(v[i] / sqrt(n));
}

static float dot(const float *a, const float *b, size_t dim)
{
	float s = 0;
	for (size_t i = 0; i < dim; i++)
		s += a[i] * b[i];
	return s;
}

static struct idx_params params(size_t threshold)
{
	struct idx_params p = idx_default_params();
	p.dim = DIM;
	if (threshold)
		p.ivf_threshold = threshold;
	return p;
}

/* Add ids first..first+n-1 with vectors keyed by id; one change. */
static int add_range(idx *ix, int64_t first, size_t n, uint64_t seq)
{
	int64_t *ids = malloc(n * sizeof *ids);
	float *vecs = malloc(n * DIM * sizeof *vecs);
	for (size_t i = 0; i < n; i++) {
		ids[i] = first + (int64_t)i;
		unit_vec(vecs + i * DIM, DIM, (uint64_t)ids[i]);
	}
	idx_error err;
	int rc = idx_add(ix, ids, vecs, n, seq, &err);
	if (rc)
		fprintf(stderr, "  idx_add: %s\n", err.msg);
	free(ids);
	free(vecs);
	return rc;
}

/* Top-1 id when searching vector `key` (-1 if none). */
static int64_t top1(idx *ix, uint64_t key, float *score)
{
	float q[DIM], s[1];
	int64_t id[1];
	size_t n = 0;
	idx_error err;
	unit_vec(q, DIM, key);
	if (idx_search(ix, q, 1, s, id, &n, &err) || n == 0)
		return -1;
	if (score)
		*score = s[0];
	return id[0];
}

/* Whether `id` is among the top k for its own vector. */
static int found(idx *ix, int64_t id, size_t k)
{
	float q[DIM], s[64];
	int64_t ids[64];
	size_t n = 0;
	idx_error err;
	unit_vec(q, DIM, (uint64_t)id);
	if (idx_search(ix, q, k, s, ids, &n, &err))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

static void test_add_search_remove(void)
{
	struct idx_params p = params(0);
	idx *ix = NULL;
	idx_error err;
	REQUIRE(idx_new(&p, &ix, &err) == IDX_OK);
	CHECK_EQ_INT(idx_count(ix), 0);
	CHECK(idx_is_exact(ix));
	CHECK_EQ_STR(idx_type(ix), "Flat");

	/* An empty index answers with nothing. */
	float q[DIM], scores[10];
	int64_t ids[10];
	size_t n = 99;
	unit_vec(q, DIM, 5);
	CHECK_EQ_INT(idx_search(ix, q, 10, scores, ids, &n, &err), IDX_OK);
	CHECK_EQ_INT(n, 0);

	/* Ids are what was added (sparse, large), scores are inner products. */
	int64_t add_ids[5] = { 3, 1000, 77, 123456789012LL, 42 };
	float vecs[5 * DIM];
	for (int i = 0; i < 5; i++)
		unit_vec(vecs + i * DIM, DIM, (uint64_t)add_ids[i]);
	REQUIRE(idx_add(ix, add_ids, vecs, 5, 7, &err) == IDX_OK);
	CHECK_EQ_INT(idx_count(ix), 5);
	CHECK_EQ_INT(idx_seq(ix), 7);

	memcpy(q, vecs + 3 * DIM, sizeof q);
	REQUIRE(idx_search(ix, q, 10, scores, ids, &n, &err) == IDX_OK);
	CHECK_EQ_INT(n, 5);
	CHECK_EQ_INT(ids[0], 123456789012LL);
	CHECK_NEAR(scores[0], 1.0, 1e-5);
	for (size_t i = 0; i < n; i++) {
		int j = -1;
		for (int t = 0; t < 5; t++)
			if (add_ids[t] == ids[i])
				j = t;
		REQUIRE(j >= 0);
		CHECK_NEAR(scores[i], dot(q, vecs + j * DIM, DIM), 1e-5);
		if (i)
			CHECK(scores[i] <= scores[i - 1]);
	}

	/* Remove, then the id never comes back, whatever the query. */
	int64_t gone[2] = { 123456789012LL, 999 /* absent: ignored */ };
	REQUIRE(idx_remove(ix, gone, 2, 8, &err) == IDX_OK);
	CHECK_EQ_INT(idx_count(ix), 4);
	CHECK_EQ_INT(idx_seq(ix), 8);
	for (int t = 0; t < 5; t++) {
		memcpy(q, vecs + t * DIM, sizeof q);
		REQUIRE(idx_search(ix, q, 10, scores, ids, &n, &err) == IDX_OK);
		CHECK_EQ_INT(n, 4);
		for (size_t i = 0; i < n; i++)
			CHECK(ids[i] != 123456789012LL);
	}

	/* Adding an id again replaces its vector. */
	int64_t again = 77;
	float v2[DIM];
	unit_vec(v2, DIM, 5555);
	REQUIRE(idx_add(ix, &again, v2, 1, 9, &err) == IDX_OK);
	CHECK_EQ_INT(idx_count(ix), 4);
	REQUIRE(idx_search(ix, v2, 10, scores, ids, &n, &err) == IDX_OK);
	CHECK_EQ_INT(ids[0], 77);
	CHECK_NEAR(scores[0], 1.0, 1e-5);
	int copies = 0;
	for (size_t i = 0; i < n; i++)
		copies += ids[i] == 77;
	CHECK_EQ_INT(copies, 1);
	idx_free(ix);
}

static void test_bad_input_changes_nothing(void)
{
	struct idx_params p = params(0);
	idx *ix = NULL;
	idx_error err;
	REQUIRE(idx_new(&p, &ix, &err) == IDX_OK);
	REQUIRE(add_range(ix, 1, 10, 1) == 0);

	float v[2 * DIM], q[DIM], s[4];
	int64_t out[4];
	size_t n;
	unit_vec(v, DIM, 100);
	unit_vec(v + DIM, DIM, 101);
	int64_t neg[2] = { 100, -5 }, dup[2] = { 100, 100 }, ok[2] = { 100, 101 };
	CHECK_EQ_INT(idx_add(ix, neg, v, 2, 2, &err), IDX_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "negative");
	CHECK_EQ_INT(idx_add(ix, dup, v, 2, 2, &err), IDX_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "twice");
	v[DIM + 3] = NAN;
	CHECK_EQ_INT(idx_add(ix, ok, v, 2, 2, &err), IDX_ERR_INVALID);
	CHECK_EQ_INT(idx_count(ix), 10);
	CHECK_EQ_INT(idx_seq(ix), 1);
	CHECK(!found(ix, 100, 10));

	unit_vec(q, DIM, 3);
	CHECK_EQ_INT(idx_search(ix, q, 0, s, out, &n, &err), IDX_ERR_INVALID);
	CHECK_EQ_INT(idx_search(ix, q, IDX_MAX_K + 1, s, out, &n, &err), IDX_ERR_INVALID);
	CHECK_EQ_INT(idx_search(ix, NULL, 4, s, out, &n, &err), IDX_ERR_INVALID);
	q[0] = INFINITY;
	CHECK_EQ_INT(idx_search(ix, q, 4, s, out, &n, &err), IDX_ERR_INVALID);

	struct idx_params bad = params(0);
	idx *other = NULL;
	bad.dim = 0;
	CHECK_EQ_INT(idx_new(&bad, &other, &err), IDX_ERR_INVALID);
	bad.dim = IDX_MAX_DIM + 1;
	CHECK_EQ_INT(idx_new(&bad, &other, &err), IDX_ERR_INVALID);
	bad = params(0);
	bad.factory = "HNSW32";
	CHECK_EQ_INT(idx_new(&bad, &other, &err), IDX_ERR_INVALID);
	CHECK(other == NULL);
	idx_free(ix);
	idx_free(NULL);
}

static void test_check_factory(void)
{
	idx_error err;
	const char *good[] = { "Flat", "IDMap2,Flat", "IVF1024,SQ8", "IVF64,Flat", "IVF16,SQfp16", "IVF4096,SQ4",
			       "IVF256,SQ6" };
	const char *bad[] = { "", "HNSW32", "HNSW32,SQ8", "IVF1024,PQ16", "PCA64,IVF1024,Flat", "IVF0,Flat",
			      "IVF,SQ8", "IDMap,Flat", "IVF1024,SQ8 ", "ivf1024,sq8", "IVF99999999999,Flat",
			      "IVF1024_HNSW32,Flat",
			      "IVF1024,SQ8IVF1024,SQ8IVF1024,SQ8IVF1024,SQ8IVF1024,SQ8IVF1024,SQ8IVF1024,SQ8" };
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		if (idx_check_factory(good[i], &err) != IDX_OK)
			HARNESS_FAIL("refused \"%s\": %s", good[i], err.msg);
	}
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		memset(&err, 0, sizeof err);
		if (idx_check_factory(bad[i], &err) != IDX_ERR_INVALID)
			HARNESS_FAIL("accepted \"%s\"", bad[i]);
		else
			CHECK(err.msg[0] != 0 && err.code == IDX_ERR_INVALID);
	}
	CHECK_EQ_INT(idx_check_factory(NULL, &err), IDX_ERR_INVALID);
	idx_check_factory("HNSW32", &err);
	CHECK_CONTAINS(err.msg, "remove");
}

/* A collection of n vectors with ids 1..n, built directly. */
static idx *build(size_t n, size_t threshold, const char *factory, uint64_t seq)
{
	struct idx_params p = params(threshold);
	p.factory = factory;
	int64_t *ids = malloc(n * sizeof *ids);
	float *vecs = malloc(n * DIM * sizeof *vecs);
	for (size_t i = 0; i < n; i++) {
		ids[i] = (int64_t)i + 1;
		unit_vec(vecs + i * DIM, DIM, (uint64_t)ids[i]);
	}
	idx *ix = NULL;
	idx_error err;
	if (idx_build(&p, ids, vecs, n, seq, &ix, &err))
		fprintf(stderr, "  idx_build: %s\n", err.msg);
	free(ids);
	free(vecs);
	return ix;
}

static void test_exact_and_ivf_agree_on_top1(void)
{
	idx *exact = build(4000, 100000, NULL, 1);
	idx *ivf = build(4000, 1000, NULL, 1);
	REQUIRE(exact && ivf);
	CHECK(idx_is_exact(exact));
	CHECK(!idx_is_exact(ivf));
	CHECK_EQ_STR(idx_type(ivf), "IVF64,SQ8");
	CHECK_EQ_INT(idx_count(ivf), 4000);
	int agree = 0;
	for (int64_t id = 1; id <= 4000; id += 7) {
		float se = 0, si = 0;
		int64_t a = top1(exact, (uint64_t)id, &se), b = top1(ivf, (uint64_t)id, &si);
		CHECK_EQ_INT(a, id);
		CHECK_NEAR(se, 1.0, 1e-5);
		CHECK_NEAR(si, 1.0, 0.02);   /* SQ8 codes */
		agree += a == b;
	}
	CHECK_EQ_INT(agree, (4000 + 6) / 7);

	/* Removing from the IVF index (no direct map): gone, the rest still found. */
	int64_t gone[3] = { 10, 20, 30 };
	idx_error err;
	REQUIRE(idx_remove(ivf, gone, 3, 2, &err) == IDX_OK);
	CHECK_EQ_INT(idx_count(ivf), 3997);
	for (int i = 0; i < 3; i++)
		CHECK(!found(ivf, gone[i], 50));
	CHECK_EQ_INT(top1(ivf, 11, NULL), 11);

	/* A user's factory and nprobe. */
	struct idx_params p = params(1000);
	p.factory = "IVF32,Flat";
	p.nprobe = 3;
	idx *flat_lists = NULL;
	{
		int64_t *ids = malloc(4000 * sizeof *ids);
		float *vecs = malloc(4000 * DIM * sizeof *vecs);
		for (int i = 0; i < 4000; i++) {
			ids[i] = i + 1;
			unit_vec(vecs + (size_t)i * DIM, DIM, (uint64_t)ids[i]);
		}
		CHECK_EQ_INT(idx_build(&p, ids, vecs, 4000, 1, &flat_lists, &err), IDX_OK);
		free(ids);
		free(vecs);
	}
	REQUIRE(flat_lists);
	CHECK_EQ_STR(idx_type(flat_lists), "IVF32,Flat");
	CHECK_EQ_INT(idx_nprobe(flat_lists), 3);
	float s = 0;
	CHECK_EQ_INT(top1(flat_lists, 1234, &s), 1234);
	CHECK_NEAR(s, 1.0, 1e-5);
	/* "Flat" stays exact at any size. */
	idx *always = build(3000, 1000, "Flat", 1);
	REQUIRE(always);
	CHECK(idx_is_exact(always));
	idx_free(exact);
	idx_free(ivf);
	idx_free(flat_lists);
	idx_free(always);
}

static void compare_results(idx *a, idx *b)
{
	for (uint64_t key = 1; key < 4000; key += 97) {
		float q[DIM], sa[10], sb[10];
		int64_t ia[10], ib[10];
		size_t na = 0, nb = 0;
		idx_error err;
		unit_vec(q, DIM, key);
		REQUIRE(idx_search(a, q, 10, sa, ia, &na, &err) == IDX_OK);
		REQUIRE(idx_search(b, q, 10, sb, ib, &nb, &err) == IDX_OK);
		CHECK_EQ_INT(na, nb);
		for (size_t i = 0; i < na && i < nb; i++) {
			CHECK_EQ_INT(ia[i], ib[i]);
			CHECK_NEAR(sa[i], sb[i], 0);
		}
	}
}

static void test_save_load_round_trip(void)
{
	const char *dir = harness_tmpdir();
	char path[600];
	snprintf(path, sizeof path, "%s/index.faiss", dir);
	idx_error err;
	for (int approx = 0; approx < 2; approx++) {
		idx *ix = build(3000, approx ? 1000 : 100000, NULL, 41);
		REQUIRE(ix);
		int64_t gone[2] = { 5, 6 };
		REQUIRE(idx_remove(ix, gone, 2, 42, &err) == IDX_OK);
		REQUIRE(idx_save(ix, path, "model-abc", &err) == IDX_OK);

		struct idx_params p = params(approx ? 1000 : 100000);
		idx *back = NULL;
		if (idx_load(path, &p, "model-abc", &back, &err) != IDX_OK) {
			HARNESS_FAIL("idx_load: %s", err.msg);
			idx_free(ix);
			return;
		}
		CHECK_EQ_INT(idx_seq(back), 42);
		CHECK_EQ_INT(idx_count(back), 2998);
		CHECK_EQ_STR(idx_type(back), idx_type(ix));
		CHECK_EQ_INT(idx_is_exact(back), !approx);
		compare_results(ix, back);
		CHECK(!found(back, 5, 20));
		/* The loaded index takes changes like any other. */
		REQUIRE(add_range(back, 5, 1, 43) == 0);
		CHECK_EQ_INT(top1(back, 5, NULL), 5);
		CHECK_EQ_INT(idx_count(back), 2999);
		idx_free(ix);
		idx_free(back);
	}
	/* No temporary files left beside it. */
	DIR *d = opendir(dir);
	REQUIRE(d);
	int entries = 0;
	for (struct dirent *e; (e = readdir(d));)
		entries += e->d_name[0] != '.';
	closedir(d);
	CHECK_EQ_INT(entries, 1);
}

static void write_bytes(const char *path, const unsigned char *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return;
	fwrite(b, 1, n, f);
	fclose(f);
}

static void test_load_refuses_bad_files(void)
{
	const char *dir = harness_tmpdir();
	char path[600], bad[600];
	snprintf(path, sizeof path, "%s/index.faiss", dir);
	snprintf(bad, sizeof bad, "%s/bad.faiss", dir);
	idx *ix = build(500, 100000, NULL, 3);
	REQUIRE(ix);
	idx_error err;
	REQUIRE(idx_save(ix, path, "fp-1", &err) == IDX_OK);
	idx_free(ix);
	size_t len = 0;
	unsigned char *bytes = harness_read_file(path, &len);
	REQUIRE(bytes && len > 1000);
	struct idx_params p = params(0);
	idx *out = NULL;

	snprintf(bad, sizeof bad, "%s/missing.faiss", dir);
	CHECK_EQ_INT(idx_load(bad, &p, "fp-1", &out, &err), IDX_ERR_IO);
	CHECK_CONTAINS(err.msg, "No such file");

	snprintf(bad, sizeof bad, "%s/bad.faiss", dir);
	write_bytes(bad, bytes, len - 100);   /* truncated payload */
	CHECK_EQ_INT(idx_load(bad, &p, "fp-1", &out, &err), IDX_ERR_CORRUPT);
	write_bytes(bad, bytes, 300);         /* truncated header */
	CHECK_EQ_INT(idx_load(bad, &p, "fp-1", &out, &err), IDX_ERR_CORRUPT);
	write_bytes(bad, bytes, 0);
	CHECK_EQ_INT(idx_load(bad, &p, "fp-1", &out, &err), IDX_ERR_CORRUPT);

	unsigned char *copy = malloc(len);
	memcpy(copy, bytes, len);
	copy[len / 2] ^= 0x10;                /* one bit in the payload */
	write_bytes(bad, copy, len);
	CHECK_EQ_INT(idx_load(bad, &p, "fp-1", &out, &err), IDX_ERR_CORRUPT);
	CHECK_CONTAINS(err.msg, "checksum");
	memcpy(copy, bytes, len);
	copy[30] ^= 0x01;                     /* one bit in the header (count) */
	write_bytes(bad, copy, len);
	CHECK_EQ_INT(idx_load(bad, &p, "fp-1", &out, &err), IDX_ERR_CORRUPT);
	memcpy(copy, "GARBAGE!", 8);
	write_bytes(bad, copy, len);
	CHECK_EQ_INT(idx_load(bad, &p, "fp-1", &out, &err), IDX_ERR_CORRUPT);
	/* FAISS's own file, without our header. */
	write_bytes(bad, bytes + 512, len - 512);
	CHECK_EQ_INT(idx_load(bad, &p, "fp-1", &out, &err), IDX_ERR_CORRUPT);

	CHECK_EQ_INT(idx_load(path, &p, "fp-2", &out, &err), IDX_ERR_MISMATCH);
	CHECK_CONTAINS(err.msg, "fp-1");
	p.dim = DIM * 2;
	CHECK_EQ_INT(idx_load(path, &p, "fp-1", &out, &err), IDX_ERR_MISMATCH);
	CHECK(out == NULL);
	p.dim = DIM;
	CHECK_EQ_INT(idx_load(path, &p, "fp-1", &out, &err), IDX_OK);
	CHECK_EQ_INT(idx_count(out), 500);
	idx_free(out);

	/* A save that cannot write leaves no file and says why. */
	snprintf(bad, sizeof bad, "%s/no/such/dir/index.faiss", dir);
	ix = build(10, 100000, NULL, 1);
	CHECK_EQ_INT(idx_save(ix, bad, "fp-1", &err), IDX_ERR_IO);
	CHECK_CONTAINS(err.msg, "No such file");
	idx_free(ix);
	free(copy);
	free(bytes);
}

/* ---- background builds --------------------------------------------------- */

/* The test's stand-in for the store: which ids are live, at which change. */
struct store {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int live[6000];     /* live[id]: 1 if stored; vectors are keyed by id */
	uint64_t seq;
	int snapshot_taken, go;
	uint64_t snapshot_seq;
};

static int source(void *ud, int64_t **ids, float **vecs, size_t *n, uint64_t *seq)
{
	struct store *st = ud;
	pthread_mutex_lock(&st->mu);
	size_t m = 0;
	for (int i = 0; i < 6000; i++)
		m += (size_t)st->live[i];
	*ids = malloc(m * sizeof **ids);
	*vecs = malloc(m * DIM * sizeof **vecs);
	size_t j = 0;
	for (int i = 0; i < 6000; i++) {
		if (!st->live[i])
			continue;
		(*ids)[j] = i;
		unit_vec(*vecs + j * DIM, DIM, (uint64_t)i);
		j++;
	}
	*n = m;
	*seq = st->seq;
	st->snapshot_seq = st->seq;
	st->snapshot_taken = 1;
	pthread_cond_broadcast(&st->cond);
	while (!st->go)   /* hold the build until the test has made its changes */
		pthread_cond_wait(&st->cond, &st->mu);
	pthread_mutex_unlock(&st->mu);
	return 0;
}

static uint64_t store_change(struct store *st, int id, int live)
{
	pthread_mutex_lock(&st->mu);
	st->live[id] = live;
	uint64_t s = ++st->seq;
	pthread_mutex_unlock(&st->mu);
	return s;
}

/* A change committed in the store, then applied to the index. */
static void change(struct store *st, idx *ix, int id, int live)
{
	uint64_t s = store_change(st, id, live);
	int64_t i64 = id;
	float v[DIM];
	idx_error err;
	unit_vec(v, DIM, (uint64_t)id);
	int rc = live ? idx_add(ix, &i64, v, 1, s, &err) : idx_remove(ix, &i64, 1, s, &err);
	if (rc)
		HARNESS_FAIL("change of %d: %s", id, err.msg);
}

static void test_background_build_replays_changes(void)
{
	static struct store st;
	memset(&st, 0, sizeof st);
	pthread_mutex_init(&st.mu, NULL);
	pthread_cond_init(&st.cond, NULL);
	struct idx_params p = params(2500);
	idx *ix = NULL;
	idx_error err;
	REQUIRE(idx_new(&p, &ix, &err) == IDX_OK);
	for (int id = 1; id <= 3000; id++)
		st.live[id] = 1;
	st.seq = 1;
	REQUIRE(add_range(ix, 1, 3000, 1) == 0);
	CHECK(idx_is_exact(ix));

	/* Store committed, index not yet told: the snapshot will include these. */
	uint64_t s_add = store_change(&st, 3500, 1);
	uint64_t s_del = store_change(&st, 17, 0);

	REQUIRE(idx_maybe_retrain(ix, source, &st) == 1);
	CHECK(idx_training(ix));
	CHECK_EQ_INT(idx_maybe_retrain(ix, source, &st), 0);   /* one at a time */
	pthread_mutex_lock(&st.mu);
	while (!st.snapshot_taken)
		pthread_cond_wait(&st.cond, &st.mu);
	pthread_mutex_unlock(&st.mu);

	/* The late deliveries of the changes the snapshot has. */
	int64_t id3500 = 3500, id17 = 17;
	float v[DIM];
	unit_vec(v, DIM, 3500);
	REQUIRE(idx_add(ix, &id3500, v, 1, s_add, &err) == IDX_OK);
	REQUIRE(idx_remove(ix, &id17, 1, s_del, &err) == IDX_OK);

	/* Changes during the build: new ids, removes of old ones, a new id
	 * removed again, an old id given a new vector. */
	for (int id = 4001; id <= 4200; id++)
		change(&st, ix, id, 1);
	for (int id = 100; id < 300; id += 2)
		change(&st, ix, id, 0);
	change(&st, ix, 4100, 0);
	change(&st, ix, 4101, 0);
	{
		uint64_t s = store_change(&st, 50, 1);
		int64_t id50 = 50;
		unit_vec(v, DIM, 777777);   /* id 50 now holds vector 777777 */
		REQUIRE(idx_add(ix, &id50, v, 1, s, &err) == IDX_OK);
	}
	/* The old index serves meanwhile, with the changes. */
	CHECK(idx_training(ix));
	CHECK(idx_is_exact(ix));
	CHECK_EQ_INT(top1(ix, 4001, NULL), 4001);
	CHECK(!found(ix, 100, 10));

	pthread_mutex_lock(&st.mu);
	st.go = 1;
	pthread_cond_broadcast(&st.cond);
	pthread_mutex_unlock(&st.mu);
	/* Changes racing the replay and the swap. */
	for (int id = 4201; id <= 4300; id++)
		change(&st, ix, id, 1);
	change(&st, ix, 4201, 0);
	idx_wait_training(ix);
	CHECK(!idx_training(ix));
	CHECK_EQ_INT(idx_last_build_error(ix, &err), IDX_OK);

	CHECK(!idx_is_exact(ix));
	CHECK_CONTAINS(idx_type(ix), "IVF");
	CHECK_EQ_INT(idx_seq(ix), st.seq);
	size_t live = 0;
	for (int id = 0; id < 6000; id++)
		live += (size_t)st.live[id];
	CHECK_EQ_INT(idx_count(ix), live);
	int missing = 0, resurrected = 0;
	for (int id = 1; id < 6000; id++) {
		if (id == 50)
			continue;
		int f = found(ix, id, 5);
		if (st.live[id] && !f)
			missing++;
		if (!st.live[id] && f)
			resurrected++;
	}
	CHECK_EQ_INT(missing, 0);
	CHECK_EQ_INT(resurrected, 0);
	float s = 0;
	unit_vec(v, DIM, 777777);
	float sc[1];
	int64_t got[1];
	size_t n = 0;
	REQUIRE(idx_search(ix, v, 1, sc, got, &n, &err) == IDX_OK);
	CHECK_EQ_INT(got[0], 50);
	CHECK(top1(ix, 50, &s) != 50 || s < 0.9);

	/* Nothing more to do until it grows several-fold. */
	CHECK_EQ_INT(idx_maybe_retrain(ix, source, &st), 0);
	idx_free(ix);
	pthread_cond_destroy(&st.cond);
	pthread_mutex_destroy(&st.mu);
}

/* Ids lo..hi-1 (vectors keyed by id) at change `seq`. */
struct span {
	int64_t lo, hi;
	uint64_t seq;
};

static int span_source(void *ud, int64_t **ids, float **vecs, size_t *n, uint64_t *seq)
{
	struct span *sp = ud;
	size_t m = (size_t)(sp->hi - sp->lo);
	*ids = malloc(m * sizeof **ids);
	*vecs = malloc(m * DIM * sizeof **vecs);
	for (size_t i = 0; i < m; i++) {
		(*ids)[i] = sp->lo + (int64_t)i;
		unit_vec(*vecs + i * DIM, DIM, (uint64_t)(*ids)[i]);
	}
	*n = m;
	*seq = sp->seq;
	return 0;
}

static void test_retrain_when_grown_and_back_to_exact(void)
{
	idx *ix = build(2000, 1000, NULL, 1);
	REQUIRE(ix);
	CHECK_EQ_STR(idx_type(ix), "IVF32,SQ8");
	struct span sp = { 1, 2001, 1 };
	CHECK_EQ_INT(idx_maybe_retrain(ix, span_source, &sp), 0);
	CHECK_EQ_INT(idx_nprobe(ix), 32);   /* automatic: small lists, all of them */
	REQUIRE(add_range(ix, 2001, 6000, 2) == 0);   /* 4x what it was trained on */
	sp = (struct span){ 1, 8001, 2 };
	CHECK_EQ_INT(idx_maybe_retrain(ix, span_source, &sp), 1);
	idx_wait_training(ix);
	CHECK_EQ_INT(idx_last_build_error(ix, NULL), IDX_OK);
	CHECK_EQ_STR(idx_type(ix), "IVF64,SQ8");
	CHECK_EQ_INT(idx_count(ix), 8000);
	CHECK_EQ_INT(top1(ix, 7777, NULL), 7777);

	/* Shrunk below half the threshold: back to exact. */
	int64_t *gone = malloc(7700 * sizeof *gone);
	for (int i = 0; i < 7700; i++)
		gone[i] = 301 + i;
	idx_error err;
	REQUIRE(idx_remove(ix, gone, 7700, 3, &err) == IDX_OK);
	free(gone);
	sp = (struct span){ 1, 301, 3 };
	CHECK_EQ_INT(idx_maybe_retrain(ix, span_source, &sp), 1);
	idx_wait_training(ix);
	CHECK(idx_is_exact(ix));
	CHECK_EQ_STR(idx_type(ix), "Flat");
	CHECK_EQ_INT(idx_nprobe(ix), 0);
	CHECK_EQ_INT(idx_count(ix), 300);
	CHECK_EQ_INT(top1(ix, 250, NULL), 250);
	CHECK(!found(ix, 301, 10));
	idx_free(ix);
}

/* Automatic nprobe scans a fixed budget (4,096 codes at 512 dimensions, so
 * 1,024 at 2,048): as lists grow, fewer of them are probed. */
static void test_automatic_nprobe_follows_size(void)
{
	enum { D = 2048, N0 = 1000, N1 = 4000 };
	struct idx_params p = idx_default_params();
	p.dim = D;
	p.ivf_threshold = 100;
	p.factory = "IVF16,Flat";
	int64_t *ids = malloc(N1 * sizeof *ids);
	float *vecs = malloc((size_t)N1 * D * sizeof *vecs);
	for (int i = 0; i < N1; i++) {
		ids[i] = i + 1;
		unit_vec(vecs + (size_t)i * D, D, (uint64_t)i + 1);
	}
	idx *ix = NULL;
	idx_error err;
	REQUIRE(idx_build(&p, ids, vecs, N0, 1, &ix, &err) == IDX_OK);
	CHECK_EQ_INT(idx_nprobe(ix), 16);   /* 1,024 x 16 / 1,000 = 16: every list */
	REQUIRE(idx_add(ix, ids + N0, vecs + (size_t)N0 * D, N1 - N0, 2, &err) == IDX_OK);
	CHECK_EQ_INT(idx_nprobe(ix), 4);    /* 1,024 x 16 / 4,000 = 4 */
	REQUIRE(idx_remove(ix, ids, 2000, 3, &err) == IDX_OK);
	CHECK_EQ_INT(idx_nprobe(ix), 8);    /* back up as it shrinks */
	float s[1];
	int64_t got[1];
	size_t n = 0;
	REQUIRE(idx_search(ix, vecs + (size_t)3000 * D, 1, s, got, &n, &err) == IDX_OK);
	CHECK_EQ_INT(got[0], 3001);
	idx_free(ix);
	free(ids);
	free(vecs);
}

static int failing_source(void *ud, int64_t **ids, float **vecs, size_t *n, uint64_t *seq)
{
	(void)ud;
	*ids = malloc(8);
	*vecs = NULL;
	*n = 0;
	*seq = 0;
	return -1;
}

static void test_failed_build_keeps_serving(void)
{
	struct idx_params p = params(500);
	idx *ix = NULL;
	idx_error err;
	REQUIRE(idx_new(&p, &ix, &err) == IDX_OK);
	REQUIRE(add_range(ix, 1, 1000, 5) == 0);
	REQUIRE(idx_maybe_retrain(ix, failing_source, NULL) == 1);
	idx_wait_training(ix);
	CHECK(idx_last_build_error(ix, &err) != IDX_OK);
	CHECK_CONTAINS(err.msg, "source");
	CHECK_EQ_INT(idx_maybe_retrain(ix, failing_source, NULL), 0);   /* not again at once */
	CHECK(idx_is_exact(ix));
	CHECK_EQ_INT(idx_count(ix), 1000);
	CHECK_EQ_INT(top1(ix, 10, NULL), 10);
	idx_free(ix);
}

/* ---- concurrency ---------------------------------------------------------- */

#define BATCH 4
#define BATCHES 150

struct race {
	idx *ix;
	_Atomic int done;
	_Atomic int batches;      /* batches added so far */
	_Atomic int bad, searches;
};

/* Batch b: BATCH copies of vector 100000+b under ids b*BATCH.. */
static void *writer(void *arg)
{
	struct race *r = arg;
	float v[BATCH * DIM];
	int64_t ids[BATCH];
	idx_error err;
	for (int b = 0; b < BATCHES; b++) {
		for (int i = 0; i < BATCH; i++) {
			ids[i] = (int64_t)b * BATCH + i;
			unit_vec(v + i * DIM, DIM, 100000u + (uint64_t)b);
		}
		if (idx_add(r->ix, ids, v, BATCH, (uint64_t)b * 2 + 1, &err))
			atomic_fetch_add(&r->bad, 1);
		if (b % 3 == 0 && idx_remove(r->ix, ids, BATCH, (uint64_t)b * 2 + 2, &err))
			atomic_fetch_add(&r->bad, 1);
		atomic_store(&r->batches, b + 1);
	}
	atomic_store(&r->done, 1);
	return NULL;
}

static void *searcher(void *arg)
{
	struct race *r = arg;
	uint64_t k = (uint64_t)(uintptr_t)&k;
	while (!atomic_load(&r->done)) {
		int nb = atomic_load(&r->batches);
		int b = (int)(mix(k++) % (uint64_t)(nb + 1));
		float q[DIM], s[2 * BATCH];
		int64_t ids[2 * BATCH];
		size_t n = 0;
		idx_error err;
		unit_vec(q, DIM, 100000u + (uint64_t)b);
		if (idx_search(r->ix, q, 2 * BATCH, s, ids, &n, &err)) {
			atomic_fetch_add(&r->bad, 1);
			continue;
		}
		/* All copies of the batch or none: never half a change. */
		int hits = 0;
		for (size_t i = 0; i < n; i++)
			if (ids[i] / BATCH == b && s[i] > 0.95f)
				hits++;
		if (hits != 0 && hits != BATCH)
			atomic_fetch_add(&r->bad, 1);
		atomic_fetch_add(&r->searches, 1);
	}
	return NULL;
}

static int counting_source(void *ud, int64_t **ids, float **vecs, size_t *n, uint64_t *seq)
{
	/* Not a consistent snapshot of the race: this build is refused by seq. */
	(void)ud;
	*ids = NULL;
	*vecs = NULL;
	*n = 0;
	*seq = 0;
	return 0;
}

static void test_concurrent_searches_during_adds(void)
{
	struct idx_params p = params(0);
	static struct race r;
	idx_error err;
	memset(&r, 0, sizeof r);
	REQUIRE(idx_new(&p, &r.ix, &err) == IDX_OK);
	REQUIRE(add_range(r.ix, 1000000, 2000, 0) == 0);   /* background vectors */
	pthread_t w, s[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&s[i], NULL, searcher, &r);
	pthread_create(&w, NULL, writer, &r);
	pthread_join(w, NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(s[i], NULL);
	CHECK_EQ_INT(atomic_load(&r.bad), 0);
	CHECK(atomic_load(&r.searches) > 0);
	CHECK_EQ_INT(idx_count(r.ix), 2000 + BATCH * (BATCHES - (BATCHES + 2) / 3));
	/* A snapshot older than the index is refused; the index stays as it was. */
	idx_free(r.ix);

	p = params(100);
	REQUIRE(idx_new(&p, &r.ix, &err) == IDX_OK);
	REQUIRE(add_range(r.ix, 1, 200, 10) == 0);
	REQUIRE(idx_maybe_retrain(r.ix, counting_source, NULL) == 1);
	idx_wait_training(r.ix);
	CHECK_EQ_INT(idx_last_build_error(r.ix, &err), IDX_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "older");
	CHECK_EQ_INT(idx_count(r.ix), 200);
	idx_free(r.ix);
}

/* Searches and changes while a build is swapped in under them. */
struct swap_src {
	int n;
};

static int range_source(void *ud, int64_t **ids, float **vecs, size_t *n, uint64_t *seq)
{
	struct swap_src *s = ud;
	*ids = malloc((size_t)s->n * sizeof **ids);
	*vecs = malloc((size_t)s->n * DIM * sizeof **vecs);
	for (int i = 0; i < s->n; i++) {
		(*ids)[i] = 1000000 + i;
		unit_vec(*vecs + (size_t)i * DIM, DIM, (uint64_t)(1000000 + i));
	}
	*n = (size_t)s->n;
	*seq = 0;
	return 0;
}

static void test_searches_across_a_swap(void)
{
	struct idx_params p = params(1500);
	static struct race r;
	idx_error err;
	memset(&r, 0, sizeof r);
	REQUIRE(idx_new(&p, &r.ix, &err) == IDX_OK);
	REQUIRE(add_range(r.ix, 1000000, 3000, 0) == 0);
	struct swap_src src = { 3000 };
	pthread_t w, s[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&s[i], NULL, searcher, &r);
	REQUIRE(idx_maybe_retrain(r.ix, range_source, &src) == 1);
	pthread_create(&w, NULL, writer, &r);
	pthread_join(w, NULL);
	idx_wait_training(r.ix);
	atomic_store(&r.done, 0);
	/* A few more searches on the swapped-in index. */
	pthread_t late;
	pthread_create(&late, NULL, searcher, &r);
	usleep(20000);
	atomic_store(&r.done, 1);
	pthread_join(late, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(s[i], NULL);
	CHECK_EQ_INT(idx_last_build_error(r.ix, &err), IDX_OK);
	CHECK(!idx_is_exact(r.ix));
	CHECK_EQ_INT(atomic_load(&r.bad), 0);
	CHECK_EQ_INT(idx_count(r.ix), 3000 + BATCH * (BATCHES - (BATCHES + 2) / 3));
	idx_free(r.ix);
}

/* The exact family's search (BLAS, in blocks): the same top k as scoring
 * every vector by hand, best first, past one block of stored vectors;
 * idx_search_many answers each query as idx_search does. */
static void test_exact_search_is_exhaustive_and_batched(void)
{
	struct idx_params p = params(0);
	idx *ix = NULL;
	idx_error err;
	REQUIRE(idx_new(&p, &ix, &err) == IDX_OK);
	const size_t n = 5000, nq = 7, k = 25;
	REQUIRE(add_range(ix, 1, n, 1) == 0);
	/* three copies of one vector under ids added last: a tie, kept in order */
	int64_t twin_ids[3] = { 9003, 9001, 9002 };
	float twins[3 * DIM];
	for (int t = 0; t < 3; t++)
		unit_vec(twins + t * DIM, DIM, 777777);
	REQUIRE(idx_add(ix, twin_ids, twins, 3, 2, &err) == IDX_OK);
	REQUIRE(idx_is_exact(ix));

	float queries[7 * DIM];
	for (size_t q = 0; q < nq; q++)
		unit_vec(queries + q * DIM, DIM, q == 0 ? 777777 : 100000 + q);
	float scores[7 * 25], one_s[25], *all = malloc((n + 1) * sizeof *all);
	int64_t ids[7 * 25], one_id[25];
	size_t got[7], one_n = 0;
	REQUIRE(all != NULL);
	REQUIRE(idx_search_many(ix, queries, nq, k, scores, ids, got, &err) == IDX_OK);
	for (size_t q = 0; q < nq; q++) {
		const float *qv = queries + q * DIM;
		CHECK_EQ_INT(got[q], k);
		/* the k-th best score by hand, over every stored vector */
		for (size_t i = 0; i < n; i++) {
			float v[DIM];
			unit_vec(v, DIM, i + 1);
			all[i] = dot(qv, v, DIM);
		}
		all[n] = dot(qv, twins, DIM);
		size_t better = 0;
		for (size_t r = 0; r < k; r++) {
			float want = r < got[q] ? scores[q * k + r] : -2;
			if (r > 0)
				CHECK(scores[q * k + r] <= scores[q * k + r - 1]);
			int64_t id = ids[q * k + r];
			float v[DIM];
			unit_vec(v, DIM, id >= 9001 ? 777777 : (uint64_t)id);
			CHECK_NEAR(want, dot(qv, v, DIM), 1e-5);
		}
		for (size_t i = 0; i <= n; i++)
			if (all[i] > scores[q * k + k - 1] + 1e-5f)
				better++;
		CHECK(better <= k);   /* nothing left out scores above the k-th */
		REQUIRE(idx_search(ix, qv, k, one_s, one_id, &one_n, &err) == IDX_OK);
		CHECK_EQ_INT(one_n, got[q]);
		for (size_t r = 0; r < one_n; r++) {
			CHECK_EQ_INT(one_id[r], ids[q * k + r]);
			CHECK_NEAR(one_s[r], scores[q * k + r], 1e-6);
		}
	}
	/* query 0 is the twins' vector: the three come first (their order is
	 * up to the last bit of BLAS's rounding) */
	int64_t first3 = 0;
	for (int r = 0; r < 3; r++)
		first3 += ids[r] >= 9001 && ids[r] <= 9003 ? ids[r] : -100000;
	CHECK_EQ_INT(first3, 9001 + 9002 + 9003);
	CHECK_NEAR(scores[0], 1.0, 1e-5);
	CHECK_NEAR(scores[2], 1.0, 1e-5);
	/* fewer stored than k: all of them */
	float s2[10];
	int64_t i2[10];
	size_t n2 = 0;
	idx *small = NULL;
	REQUIRE(idx_new(&p, &small, &err) == IDX_OK);
	REQUIRE(add_range(small, 1, 4, 1) == 0);
	REQUIRE(idx_search(small, queries, 10, s2, i2, &n2, &err) == IDX_OK);
	CHECK_EQ_INT(n2, 4);
	CHECK_EQ_INT(idx_search_many(small, queries, 0, 10, s2, i2, &n2, &err), IDX_ERR_INVALID);
	idx_free(small);
	free(all);
	idx_free(ix);
}

int main(void)
{
	RUN(test_add_search_remove);
	RUN(test_bad_input_changes_nothing);
	RUN(test_check_factory);
	RUN(test_exact_and_ivf_agree_on_top1);
	RUN(test_save_load_round_trip);
	RUN(test_load_refuses_bad_files);
	RUN(test_background_build_replays_changes);
	RUN(test_retrain_when_grown_and_back_to_exact);
	RUN(test_automatic_nprobe_follows_size);
	RUN(test_failed_build_keeps_serving);
	RUN(test_concurrent_searches_during_adds);
	RUN(test_searches_across_a_swap);
	RUN(test_exact_search_is_exhaustive_and_batched);
	return harness_done();
}
