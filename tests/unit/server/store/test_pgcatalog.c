/*
 * The catalog on PostgreSQL (pgstore*.c behind catalog.h), against a real
 * PostgreSQL 15 that tests/pg/pg-cluster.sh starts (CLIPD_TEST_PG_URI, a
 * database to start from; each test makes a fresh one beside it): adds,
 * duplicates, reads, filters with the SQLite store's semantics, metadata
 * patches and their limits, deletes, originals streamed in pieces, a new
 * node and a restarted one, migrations by nodes starting together,
 * keyword search, the one-node-at-a-time library lock, and the
 * out-of-order commit: a follower never skips a change that committed
 * late.
 */
#include <fcntl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog_fixture.h"
#include "pgstore.h"
#include "pgstore_internal.h"

#define DIM 16

static char base[512];
static struct fake_model model_x, model_y;
static int n_dbs;

/* A fresh database beside CLIPD_TEST_PG_URI's; its URI in uri. */
static int fresh_db(char *uri, size_t len)
{
	const char *start = getenv("CLIPD_TEST_PG_URI");
	const char *slash = start ? strrchr(start, '/') : NULL;
	if (!slash)
		return -1;
	char name[64], sql[128];
	snprintf(name, sizeof name, "pgcat_%d_%d", (int)getpid(), ++n_dbs);
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
	PGconn *pc = PQconnectdb(start);
	PGresult *r = PQexec(pc, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	PQfinish(pc);
	size_t head = (size_t)(slash - start);
	if (head + strlen(name) + 2 > len)
		return -1;
	memcpy(uri, start, head);
	uri[head] = '/';
	memcpy(uri + head + 1, name, strlen(name) + 1);
	return ok ? 0 : -1;
}

static catalog *node_open(const char *uri, const char *node, const struct fake_model *m,
			struct catalog_open_report *rep, store_error *err)
{
	char dir[800];
	snprintf(dir, sizeof dir, "%s/%s", base, node);
	struct catalog_params p = catalog_default_params();
	p.data_dir = dir;
	p.catalog_uri = uri;
	p.model_files = m->files;
	p.model_layout = "hf";
	p.index.dim = DIM;
	catalog *c = NULL;
	store_error local;
	if (catalog_open(&p, &c, rep, err ? err : &local) != 0)
		return NULL;
	return c;
}

static int64_t pg_scalar(const char *uri, const char *sql)
{
	PGconn *pc = PQconnectdb(uri);
	PGresult *r = PQexec(pc, sql);
	int64_t v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
	PQclear(r);
	PQfinish(pc);
	return v;
}

/* The top hit's id for the vector of image bytes from seed. */
static int64_t top1(catalog *c, const char *sha)
{
	float v[DIM];
	fx_vec(fx_seed_of_sha(sha), v, DIM);
	struct catalog_query q = catalog_default_query();
	q.vec = v;
	q.dim = DIM;
	q.k = 1;
	struct catalog_results res;
	store_error err;
	if (catalog_search(c, &q, &res, &err) != 0 || res.n == 0)
		return -1;
	int64_t id = res.hits[0].image.id;
	catalog_results_free(&res);
	return id;
}

static size_t count_matching(catalog *c, const struct store_filter *f, size_t n)
{
	struct store_selection sel;
	memset(&sel, 0, sizeof sel);
	sel.filters = f;
	sel.n_filters = n;
	struct store_image *items = NULL;
	size_t got = 0;
	int64_t next = 0;
	store_error err;
	if (catalog_list(c, &sel, 0, 100, &items, &got, &next, &err) != 0) {
		fprintf(stderr, "list: %s\n", err.msg);
		return (size_t)-1;
	}
	store_images_free(items, got);
	return got;
}

static void test_rows_filters_patch_delete(void)
{
	char uri[512];
	REQUIRE(fresh_db(uri, sizeof uri) == 0);
	struct catalog_open_report rep;
	store_error err = { 0 };
	catalog *c = node_open(uri, "rows", &model_x, &rep, &err);
	if (!c)
		fprintf(stderr, "open: %s\n", err.msg);
	REQUIRE(c);
	CHECK(rep.model_registered);
	CHECK_EQ_INT(rep.schema_after, pgstore_schema_latest());

	const char *metas[] = {
		"{\"album\":\"paris\",\"year\":2019,\"tags\":[\"sea\",\"sun\"],\"people\":{\"alice\":true}}",
		"{\"album\":\"rome\",\"year\":2021.0,\"tags\":[\"sun\"],\"n\":null}",
		"{\"album\":\"paris\",\"year\":\"2021\",\"a.b\":1}",
		"{\"year\":2020,\"k\\\\back\":\"x\"}",
	};
	int64_t ids[4];
	char shas[4][SHA256_HEX];
	for (int i = 0; i < 4; i++) {
		ids[i] = fx_add(c, 100 + (uint64_t)i, 200 + (size_t)i, metas[i], shas[i], &err);
		REQUIRE(ids[i] > 0);
		CHECK_EQ_INT(top1(c, shas[i]), ids[i]);
	}
	/* the same bytes again: the stored row, nothing written */
	CHECK_EQ_INT(fx_add(c, 100, 200, "{\"x\":1}", NULL, &err), ids[0]);
	struct store_image img;
	REQUIRE(catalog_get(c, ids[1], &img, &err) == 0);
	CHECK_EQ_STR(img.metadata, "{\"album\":\"rome\",\"year\":2021,\"tags\":[\"sun\"],\"n\":null}");
	CHECK_EQ_STR(img.filename, "f.png");
	CHECK_EQ_STR(img.sha256, shas[1]);
	store_image_clear(&img);
	CHECK_EQ_INT(catalog_get(c, 999999, &img, &err), STORE_ERR_NOT_FOUND);

	/* filters: what test_catalog.c's SQLite asserts, here in jsonb */
	struct store_filter f1[] = { { "album", "paris" } };
	CHECK_EQ_INT(count_matching(c, f1, 1), 2);
	struct store_filter f2[] = { { "tags", "sun" } };                       /* an array holding it */
	CHECK_EQ_INT(count_matching(c, f2, 1), 2);
	struct store_filter f3[] = { { "year", "2021" } };                      /* number 2021 and string "2021" */
	CHECK_EQ_INT(count_matching(c, f3, 1), 2);
	struct store_filter f4[] = { { "year.gte", "2020" } };                  /* numbers only, by value */
	CHECK_EQ_INT(count_matching(c, f4, 1), 2);
	struct store_filter f5[] = { { "year.lt", "2020" } };
	CHECK_EQ_INT(count_matching(c, f5, 1), 1);
	struct store_filter f6[] = { { "people.alice", "true" } };              /* a dotted path, a boolean */
	CHECK_EQ_INT(count_matching(c, f6, 1), 1);
	struct store_filter f7[] = { { "n.exists", "true" } };                  /* null is present */
	CHECK_EQ_INT(count_matching(c, f7, 1), 1);
	struct store_filter f8[] = { { "album.exists", "false" } };
	CHECK_EQ_INT(count_matching(c, f8, 1), 1);
	struct store_filter f9[] = { { "album", "rome" }, { "album", "paris" } };   /* repeated key: any */
	CHECK_EQ_INT(count_matching(c, f9, 2), 3);
	struct store_filter f10[] = { { "album", "paris" }, { "year", "2019" } };  /* different keys: all */
	CHECK_EQ_INT(count_matching(c, f10, 2), 1);
	struct store_filter f11[] = { { "a\\.b", "1" } };                       /* a dot inside a key */
	CHECK_EQ_INT(count_matching(c, f11, 1), 1);
	struct store_filter f17[] = { { "k\\\\back", "x" } };                  /* the key k\back */
	CHECK_EQ_INT(count_matching(c, f17, 1), 1);
	struct store_filter f12[] = { { "album.gt", "q" } };                    /* strings by byte order */
	CHECK_EQ_INT(count_matching(c, f12, 1), 1);
	struct store_filter f13[] = { { "people", "true" } };                   /* an object matches nothing */
	CHECK_EQ_INT(count_matching(c, f13, 1), 0);
	struct store_filter f14[] = { { "tags.0", "sea" } };                    /* no array indexing */
	CHECK_EQ_INT(count_matching(c, f14, 1), 0);
	struct store_filter f15[] = { { "album", "x' OR '1'='1" } };            /* values are parameters */
	CHECK_EQ_INT(count_matching(c, f15, 1), 0);
	/* bytes that are not UTF-8 cannot be PostgreSQL text: refused, saying why */
	struct store_filter f16[] = { { "album", "caf\xe9" } };
	struct store_selection bad;
	memset(&bad, 0, sizeof bad);
	bad.filters = f16;
	bad.n_filters = 1;
	struct store_image *items = NULL;
	size_t got = 0;
	int64_t next = 0;
	CHECK_EQ_INT(catalog_list(c, &bad, 0, 10, &items, &got, &next, &err), STORE_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "must be UTF-8");
	CHECK(!items && got == 0);

	/* a filtered search scores the matching set exactly */
	float v[DIM];
	fx_vec(fx_seed_of_sha(shas[0]), v, DIM);
	struct catalog_query q = catalog_default_query();
	q.vec = v;
	q.dim = DIM;
	q.k = 10;
	q.sel.filters = f1;
	q.sel.n_filters = 1;
	struct catalog_results res;
	REQUIRE(catalog_search(c, &q, &res, &err) == 0);
	CHECK_EQ_INT(res.n, 2);
	CHECK(res.exhaustive && res.exact_scan);
	CHECK_EQ_INT(res.hits[0].image.id, ids[0]);
	catalog_results_free(&res);

	/* RFC 7396, the key order kept as SQLite's json_patch keeps it */
	const char *patch = "{\"album\":null,\"people\":{\"bob\":1},\"new\":[1,2]}";
	REQUIRE(catalog_patch_metadata(c, ids[0], patch, strlen(patch), 0, 0, &img, &err) == 0);
	CHECK_EQ_STR(img.metadata, "{\"year\":2019,\"tags\":[\"sea\",\"sun\"],\"people\":{\"alice\":true,\"bob\":1},"
		     "\"new\":[1,2]}");
	store_image_clear(&img);
	CHECK_EQ_INT(count_matching(c, f1, 1), 1);
	/* over the limit: refused, nothing changed */
	char big[600];
	snprintf(big, sizeof big, "{\"pad\":\"%0500d\"}", 0);
	CHECK_EQ_INT(catalog_patch_metadata(c, ids[0], big, strlen(big), 256, 0, NULL, &err), STORE_ERR_TOO_LARGE);
	REQUIRE(catalog_get(c, ids[0], &img, &err) == 0);
	CHECK(!strstr(img.metadata, "pad"));
	store_image_clear(&img);
	CHECK_EQ_INT(catalog_patch_metadata(c, 999999, "{}", 2, 0, 0, NULL, &err), STORE_ERR_NOT_FOUND);
	CHECK_EQ_INT(catalog_patch_metadata(c, ids[0], "[1]", 3, 0, 0, NULL, &err), STORE_ERR_INVALID);

	/* delete: row, vector, original, index entry */
	REQUIRE(catalog_delete(c, ids[3], &err) == 0);
	CHECK_EQ_INT(catalog_get(c, ids[3], &img, &err), STORE_ERR_NOT_FOUND);
	CHECK(top1(c, shas[3]) != ids[3]);
	CHECK_EQ_INT(catalog_delete(c, ids[3], &err), STORE_ERR_NOT_FOUND);
	CHECK_EQ_INT(pg_scalar(uri, "SELECT count(*) FROM originals"), 3);
	CHECK_EQ_INT(pg_scalar(uri, "SELECT count(*) FROM vectors"), 3);
	CHECK_EQ_INT(catalog_check(c, NULL, NULL, &err), 0);

	/* keywords: any word, rarer words first, ties by id, not-words left out */
	q = catalog_default_query();
	q.mode = CATALOG_KEYWORD;
	q.k = 5;
	struct {
		const char *words, *not;
		int64_t want[3];
		size_t n;
	} kw[] = {
		/* (after the patch: ids[0] sea sun, ids[1] rome sun, ids[2] paris) */
		{ "rome paris", NULL, { ids[1], ids[2] }, 2 },           /* as rare: by id */
		{ "PARIS sun", NULL, { ids[2], ids[0], ids[1] }, 3 },    /* paris is rarer than sun */
		{ "sun rome", NULL, { ids[1], ids[0] }, 2 },             /* ids[1] holds both words */
		{ "sun", "sea", { ids[1] }, 1 },
		{ "f.png", NULL, { ids[0], ids[1], ids[2] }, 3 },        /* a word is a phrase of its tokens */
		{ "png.f", NULL, { 0 }, 0 },
		{ "!!! ' \\ :* & |", NULL, { 0 }, 0 },                  /* no tsquery syntax reaches the server */
	};
	for (size_t t = 0; t < sizeof kw / sizeof kw[0]; t++) {
		q.keywords = kw[t].words;
		q.not_keywords = kw[t].not;
		if (catalog_search(c, &q, &res, &err) != 0) {
			fprintf(stderr, "keywords '%s': %s\n", kw[t].words, err.msg);
			CHECK(0);
			continue;
		}
		CHECK_EQ_INT(res.n, kw[t].n);
		for (size_t i = 0; i < res.n && i < kw[t].n; i++)
			CHECK_EQ_INT(res.hits[i].image.id, kw[t].want[i]);
		catalog_results_free(&res);
	}
	catalog_close(c);
}

/* One node at a time scans a library: the second node's lock is refused
 * while the first holds it, and granted once it lets go. */
static void test_library_lock(void)
{
	char uri[512];
	REQUIRE(fresh_db(uri, sizeof uri) == 0);
	store_error err = { 0 };
	catalog *a = node_open(uri, "lock-a", &model_x, NULL, &err);
	REQUIRE(a);
	catalog *b = node_open(uri, "lock-b", &model_x, NULL, &err);
	REQUIRE(b);
	REQUIRE(catalog_library_put(a, "photos", "/srv/photos", &err) == 0);
	REQUIRE(catalog_library_put(a, "other", "/srv/other", &err) == 0);
	struct catalog_lib_lock *la = NULL, *lb = NULL, *lo = NULL;
	CHECK_EQ_INT(catalog_library_lock(a, "photos", &la, &err), 1);
	CHECK(la != NULL);
	CHECK_EQ_INT(catalog_library_lock(b, "photos", &lb, &err), 0);
	CHECK(lb == NULL);
	CHECK_EQ_INT(catalog_library_lock(b, "other", &lo, &err), 1);   /* another library: free */
	catalog_library_unlock(b, lo);
	catalog_library_unlock(a, la);
	CHECK_EQ_INT(catalog_library_lock(b, "photos", &lb, &err), 1);
	CHECK_EQ_INT(catalog_library_lock(a, "photos", &la, &err), 0);
	catalog_library_unlock(b, lb);
	CHECK_EQ_INT(catalog_library_lock(a, "nosuch", &la, &err), STORE_ERR_NOT_FOUND);
	catalog_close(a);
	catalog_close(b);
}

/* A scan reads the records of a batch of paths in one statement: each
 * found where it stands in the batch, the unknown ones (a path that is not
 * UTF-8 among them, which PostgreSQL never records) not found, paths with
 * the array syntax's own characters and the word NULL taken as they are. */
static void test_library_files_batch(void)
{
	char uri[512];
	REQUIRE(fresh_db(uri, sizeof uri) == 0);
	store_error err = { 0 };
	catalog *c = node_open(uri, "files", &model_x, NULL, &err);
	REQUIRE(c);
	int64_t scan = 0;
	REQUIRE(catalog_library_put(c, "photos", "/srv/photos", &err) == 0);
	REQUIRE(catalog_library_scan_begin(c, "photos", &scan, &err) == 0);
	const struct store_lib_mark marks[] = {
		{ "a/one.png", 1 }, { "b/\"q\" \\ ,{x}.png", 1 }, { "NULL", 1 }, { "c/three.png", 1 },
	};
	REQUIRE(catalog_library_mark(c, "photos", scan, marks, 4, &err) == 0);
	const char *paths[] = { "c/three.png", "nosuch.png", "NULL", "bad\xff.png", "b/\"q\" \\ ,{x}.png", "a/one.png",
				"A/ONE.png" };
	const size_t n = sizeof paths / sizeof *paths;
	const unsigned char want[] = { 1, 0, 1, 0, 1, 1, 0 };
	struct store_lib_file out[7];
	unsigned char found[7];
	CHECK_EQ_INT(catalog_library_files(c, "photos", paths, n, out, found, &err), 0);
	for (size_t i = 0; i < n; i++) {
		CHECK_EQ_INT(found[i], want[i]);
		struct store_lib_file one;
		int rc = catalog_library_file(c, "photos", paths[i], &one, &err);
		CHECK_EQ_INT(rc, want[i] ? 0 : STORE_ERR_NOT_FOUND);
		if (found[i] && rc == 0) {
			CHECK_EQ_INT(out[i].pending, 1);
			CHECK_EQ_INT(out[i].seen_scan, scan);
			CHECK_EQ_INT(out[i].seen_scan, one.seen_scan);
			CHECK(out[i].path == NULL);
		}
	}
	/* another library's paths are not this one's */
	REQUIRE(catalog_library_put(c, "other", "/srv/other", &err) == 0);
	CHECK_EQ_INT(catalog_library_files(c, "other", paths, n, out, found, &err), 0);
	for (size_t i = 0; i < n; i++)
		CHECK_EQ_INT(found[i], 0);
	catalog_close(c);
}

/* An original of several pieces comes back whole through the cache. */
static void test_original_streams_in_pieces(void)
{
	char uri[512];
	REQUIRE(fresh_db(uri, sizeof uri) == 0);
	store_error err = { 0 };
	catalog *c = node_open(uri, "orig", &model_x, NULL, &err);
	REQUIRE(c);
	size_t len = 3 * (1 << 20) + 12345;
	char sha[SHA256_HEX];
	int64_t id = fx_add(c, 7, len, NULL, sha, &err);
	REQUIRE(id > 0);
	struct store_image img;
	REQUIRE(catalog_get(c, id, &img, &err) == 0);
	char path[4096];
	int64_t size = 0, mtime = 0;
	size_t rel_at = 99;
	REQUIRE(catalog_original(c, &img, path, sizeof path, &rel_at, &size, &mtime, &err) == 0);
	CHECK_EQ_INT(rel_at, 0);
	CHECK_EQ_INT(size, (long long)len);
	FILE *f = fopen(path, "rb");
	REQUIRE(f);
	unsigned char *got = malloc(len + 1);
	size_t n = fread(got, 1, len + 1, f);
	fclose(f);
	char want_sha[SHA256_HEX], got_sha[SHA256_HEX];
	unsigned char *want = fx_bytes(7, len, want_sha);
	CHECK_EQ_INT(n, (long long)len);
	sha256_hex(got, n, got_sha);
	CHECK_EQ_STR(got_sha, sha);
	CHECK(n == len && !memcmp(got, want, len));
	free(got);
	free(want);
	/* a second ask is served from the cache, the same file */
	char again[4096];
	REQUIRE(catalog_original(c, &img, again, sizeof again, &rel_at, &size, &mtime, &err) == 0);
	CHECK_EQ_STR(again, path);
	store_image_clear(&img);
	catalog_close(c);
}

/* A new node (empty data directory) builds its index from the catalog;
 * a restarted one loads its snapshot and replays what others added. */
static void test_new_and_restarted_nodes(void)
{
	char uri[512], sha[10][SHA256_HEX];
	int64_t ids[10];
	REQUIRE(fresh_db(uri, sizeof uri) == 0);
	store_error err = { 0 };
	struct catalog_open_report rep;
	catalog *a = node_open(uri, "node-a", &model_x, &rep, &err);
	REQUIRE(a);
	for (int i = 0; i < 6; i++)
		REQUIRE((ids[i] = fx_add(a, 300 + (uint64_t)i, 64, NULL, sha[i], &err)) > 0);
	catalog_close(a);   /* saves node a's snapshot at change 6 */

	memset(&rep, 0, sizeof rep);
	catalog *b = node_open(uri, "node-b", &model_x, &rep, &err);
	REQUIRE(b);
	CHECK(rep.index_rebuilt);
	CHECK(!rep.model_registered);
	for (int i = 0; i < 6; i++)
		CHECK_EQ_INT(top1(b, sha[i]), ids[i]);
	for (int i = 6; i < 10; i++)
		REQUIRE((ids[i] = fx_add(b, 300 + (uint64_t)i, 64, NULL, sha[i], &err)) > 0);
	REQUIRE(catalog_delete(b, ids[0], &err) == 0);
	catalog_close(b);

	memset(&rep, 0, sizeof rep);
	a = node_open(uri, "node-a", &model_x, &rep, &err);
	REQUIRE(a);
	if (!rep.index_loaded)
		fprintf(stderr, "index: %s\n", rep.index_message);
	CHECK(rep.index_loaded);
	CHECK_EQ_INT(rep.replayed_adds, 4);
	CHECK_EQ_INT(rep.replayed_removes, 1);
	CHECK(top1(a, sha[0]) != ids[0]);
	for (int i = 1; i < 10; i++)
		CHECK_EQ_INT(top1(a, sha[i]), ids[i]);

	/* another model on this catalog is refused, as on SQLite */
	catalog *y = node_open(uri, "node-y", &model_y, NULL, &err);
	CHECK(!y);
	CHECK_EQ_INT(err.code, STORE_ERR_MODEL);
	catalog_close(y);
	catalog_close(a);
}

struct opener {
	const char *uri;
	int rc;
	int before;
};

static void *open_one(void *ud)
{
	struct opener *o = ud;
	pgstore *s = NULL;
	struct pgstore_open_report rep = { 0, 0 };
	store_error err;
	o->rc = pgstore_open(o->uri, NULL, &s, &rep, &err);
	o->before = rep.version_before;
	if (s)
		pgstore_ops.close(s);
	return NULL;
}

/* Nodes starting together: one migrates (under the advisory lock), the
 * others find the schema current. */
static void test_migrations_run_once(void)
{
	char uri[512];
	REQUIRE(fresh_db(uri, sizeof uri) == 0);
	pthread_t t[4];
	struct opener o[4];
	for (int i = 0; i < 4; i++) {
		o[i] = (struct opener){ uri, -99, -1 };
		pthread_create(&t[i], NULL, open_one, &o[i]);
	}
	int migrated = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(o[i].rc, 0);
		migrated += o[i].before == 0;
	}
	CHECK_EQ_INT(migrated, 1);
	CHECK_EQ_INT(pg_scalar(uri, "SELECT count(*) FROM clipd_schema"), pgstore_schema_latest());
	CHECK_EQ_INT(pg_scalar(uri, "SELECT max(version) FROM clipd_schema"), pgstore_schema_latest());
}

struct adder {
	catalog *c;
	int64_t id;
	char sha[SHA256_HEX];
	_Atomic int done;
};

static void *add_one(void *ud)
{
	struct adder *a = ud;
	store_error err;
	a->id = fx_add(a->c, 777, 96, NULL, a->sha, &err);
	atomic_store(&a->done, 1);
	return NULL;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* The out-of-order commit: writer A takes its sequence number and holds its
 * transaction open; writer B (a node's upload) commits after it. With a
 * plain bigserial B's number would commit first and a follower that moved
 * past it would never see A's; with the counter row B waits for A, and a
 * follower that catches up at any moment has every change up to the
 * number it reports. */
static void test_out_of_order_commit(void)
{
	char uri[512], sha_a[SHA256_HEX], k[24];
	REQUIRE(fresh_db(uri, sizeof uri) == 0);
	store_error err = { 0 };
	catalog *writer = node_open(uri, "writer", &model_x, NULL, &err);
	REQUIRE(writer);
	catalog *follower = node_open(uri, "follower", &model_x, NULL, &err);
	REQUIRE(follower);
	int64_t first = fx_add(writer, 1, 50, NULL, NULL, &err);
	REQUIRE(first > 0);
	REQUIRE(catalog_catch_up(follower, NULL, &err) == 0);
	CHECK_EQ_INT(catalog_applied_seq(follower), 1);

	/* writer A: a whole add by hand, its number taken, not committed */
	unsigned char *bytes = fx_bytes(555, 80, sha_a);
	float v[DIM];
	unsigned char le[DIM * 4];
	fx_vec(fx_seed_of_sha(sha_a), v, DIM);
	memcpy(le, v, sizeof le);   /* x86: float32 little-endian */
	PGconn *pa = PQconnectdb(uri);
	REQUIRE(PQstatus(pa) == CONNECTION_OK);
	PQclear(PQexec(pa, "BEGIN"));
	const char *ov[] = { sha_a, (const char *)bytes };
	const int ol[] = { 0, 80 }, ob[] = { 0, 1 };
	PGresult *r = PQexecParams(pa, "INSERT INTO originals (sha256, data) VALUES ($1, $2)", 2, NULL, ov, ol, ob, 0);
	CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
	PQclear(r);
	const char *iv[] = { sha_a };
	r = PQexecParams(pa, "INSERT INTO images (sha256, mime, width, height, bytes, created_at) "
			 "VALUES ($1, 'image/png', 4, 3, 80, 1) RETURNING id", 1, NULL, iv, NULL, NULL, 0);
	REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
	int64_t id_a = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	const char *vv[] = { (snprintf(k, sizeof k, "%lld", (long long)id_a), k), (const char *)le, catalog_model(writer)->fingerprint };
	const int vl[] = { 0, DIM * 4, 0 }, vb[] = { 0, 1, 0 };
	r = PQexecParams(pa, "INSERT INTO vectors (image_id, model, vec) VALUES ($1::bigint, $3, $2)", 3, NULL, vv, vl,
			 vb, 0);
	CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
	PQclear(r);
	r = PQexecParams(pa, "WITH n AS (UPDATE clipd_counter SET seq = seq + 1 RETURNING seq) "
			 "INSERT INTO changes (seq, op, image_id) SELECT seq, 'add', $1::bigint FROM n RETURNING seq",
			 1, NULL, vv, NULL, NULL, 0);
	REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
	CHECK_EQ_STR(PQgetvalue(r, 0, 0), "2");
	PQclear(r);

	/* writer B: a node's upload, started while A is open */
	struct adder b = { .c = writer, .id = -1 };
	atomic_init(&b.done, 0);
	pthread_t t;
	pthread_create(&t, NULL, add_one, &b);
	sleep_ms(400);
	CHECK(!atomic_load(&b.done));   /* waiting for A's number to commit */
	/* the follower, meanwhile: nothing it could skip past */
	size_t applied = 99;
	REQUIRE(catalog_catch_up(follower, &applied, &err) == 0);
	CHECK_EQ_INT(applied, 0);
	CHECK_EQ_INT(catalog_applied_seq(follower), 1);

	PQclear(PQexec(pa, "COMMIT"));
	pthread_join(t, NULL);
	REQUIRE(b.id > 0);
	CHECK_EQ_INT(catalog_applied_seq(writer), 3);   /* B's own add brought A's in too */
	CHECK_EQ_INT(top1(writer, sha_a), id_a);
	CHECK_EQ_INT(pg_scalar(uri, "SELECT seq FROM changes WHERE op = 'add' ORDER BY seq DESC LIMIT 1"), 3);

	REQUIRE(catalog_catch_up(follower, &applied, &err) == 0);
	CHECK_EQ_INT(applied, 2);
	CHECK_EQ_INT(catalog_applied_seq(follower), 3);
	CHECK_EQ_INT(top1(follower, sha_a), id_a);   /* the late commit is there */
	CHECK_EQ_INT(top1(follower, b.sha), b.id);
	struct catalog_stats st;
	REQUIRE(catalog_stats(follower, &st, &err) == 0);
	CHECK_EQ_INT(st.index_count, 3);
	PQfinish(pa);
	free(bytes);
	catalog_close(follower);
	catalog_close(writer);
}

/* The backend alone on a fresh database (its URI in uri), with an active
 * model of dim dimensions called name, whose fingerprint is the SHA-256
 * of the name (hex digits, as real ones are), in m. */
static pgstore *bare_catalog(char *uri, size_t len, size_t dim, const char *name, struct store_model *m)
{
	struct pgstore_params pp = pgstore_default_params();
	pgstore *pg = NULL;
	store_error err = { 0 };
	if (fresh_db(uri, len) != 0 || pgstore_open(uri, &pp, &pg, NULL, &err) != 0)
		return NULL;
	memset(m, 0, sizeof *m);
	m->dim = dim;
	sha256_hex(name, strlen(name), m->fingerprint);
	snprintf(m->name, sizeof m->name, "%s", name);
	snprintf(m->layout, sizeof m->layout, "hf");
	if (pgstore_ops.set_active_model(pg, m, &err) != 0) {
		pgstore_ops.close(pg);
		return NULL;
	}
	return pg;
}

/* clipd catalog copy's rows on PostgreSQL (pgstore_copy.c): ids, columns
 * and originals as given, all of a batch or none, and the end of a copy
 * moves the id sequence and the change counter past the source's, with a
 * reset last. */
static void test_copy_rows(void)
{
	char uri[512];
	struct store_model m;
	pgstore *pg = bare_catalog(uri, sizeof uri, DIM, "copied", &m);
	REQUIRE(pg);
	const struct backend_ops *be = &pgstore_ops;
	store_error err = { 0 };
	const char *bytes[2] = { "first original", "second original" };
	char meta[] = "{\"z\":1,\"a\":\"x\"}";
	struct store_image img[2];
	float v[2][DIM];
	struct store_copy_row rows[2];
	memset(img, 0, sizeof img);
	for (int i = 0; i < 2; i++) {
		img[i].id = 30 + 10 * i;
		sha256_hex(bytes[i], strlen(bytes[i]), img[i].sha256);
		snprintf(img[i].mime, sizeof img[i].mime, "image/jpeg");
		img[i].width = 3;
		img[i].height = 4;
		img[i].bytes = (int64_t)strlen(bytes[i]);
		img[i].created_at = 777 + i;
		img[i].metadata = meta;
		fx_vec(i + 1, v[i], DIM);
		rows[i] = (struct store_copy_row){ .img = &img[i], .data = bytes[i], .len = strlen(bytes[i]), .vec = v[i] };
	}
	CHECK_EQ_INT(be->copy_in(pg, rows, 1, DIM, "copy", "copying 30 there", &err), 0);
	/* the second batch repeats image 30: nothing of it stays */
	CHECK_EQ_INT(be->copy_in(pg, rows, 2, DIM, "copy", "copying 40 there", &err), STORE_ERR_EXISTS);
	CHECK_EQ_INT(pg_scalar(uri, "SELECT count(*) FROM images"), 1);
	char *state = NULL;
	REQUIRE(be->setting_get(pg, "copy", &state, &err) == 0 && state);
	CHECK_EQ_STR(state, "copying 30 there");
	free(state);
	CHECK_EQ_INT(be->copy_in(pg, rows + 1, 1, DIM, "copy", "copying 40 there", &err), 0);
	struct store_image got;
	REQUIRE(be->get(pg, 40, &got, &err) == 0);
	CHECK_EQ_INT(got.created_at, 778);
	CHECK_EQ_STR(got.metadata, meta);
	store_image_clear(&got);
	char path[700];
	snprintf(path, sizeof path, "%s/original", base);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	CHECK_EQ_INT(be->read_original(pg, img[1].sha256, fd, &err), 0);
	char back[64] = "";
	CHECK_EQ_INT(pread(fd, back, sizeof back - 1, 0), (long long)strlen(bytes[1]));
	CHECK_EQ_STR(back, bytes[1]);
	close(fd);
	int64_t top = 0;
	CHECK_EQ_INT(be->max_id(pg, &top, &err), 0);
	CHECK_EQ_INT(top, 40);
	CHECK_EQ_INT(be->copy_end(pg, 55, 90, NULL, NULL, &err), 0);
	uint64_t seq = 0;
	CHECK_EQ_INT(be->seq(pg, &seq, &err), 0);
	CHECK_EQ_INT(seq, 91);
	struct store_changes ch;
	CHECK_EQ_INT(be->changes_since(pg, 2, DIM, &ch, &err), STORE_ERR_NOT_FOUND);
	int64_t id = 0;
	const char *more = "a new upload";
	char sha[STORE_SHA256_HEX];
	sha256_hex(more, strlen(more), sha);
	struct store_new_image ni = { .sha256 = sha, .mime = "image/png", .width = 1, .height = 1,
				      .bytes = (int64_t)strlen(more) };
	CHECK_EQ_INT(be->insert(pg, &ni, more, strlen(more), v[0], DIM, &id, &seq, &err), 0);
	CHECK_EQ_INT(id, 56);
	CHECK_EQ_INT(seq, 92);
	char name[600];
	CHECK_EQ_INT(be->identity(pg, name, sizeof name, &err), 0);
	CHECK_CONTAINS(name, "PostgreSQL database pgcat_");
	be->close(pg);
}

/* PostgreSQL's plan for the filtered scan's statement (pgstore_rows.c),
 * its lines in one string (malloc'd), or NULL. */
static char *scan_plan(PGconn *pc, const struct store_filter *f)
{
	struct store_selection sel;
	memset(&sel, 0, sizeof sel);
	sel.filters = f;
	sel.n_filters = 1;
	struct pg_stmt q = { .sql = DBUF_INIT(256 * 1024) };
	struct dbuf sql = DBUF_INIT(256 * 1024), plan = DBUF_INIT(1 << 20);
	store_error err;
	char *out = NULL;
	if (pg_scan_selection_sql(&q, &sel, 100000, &err) == 0 && dbuf_printf(&sql, "EXPLAIN %s", q.sql.data) == 0 &&
	    dbuf_append(&sql, "", 1) == 0) {
		PGresult *r = PQexecParams(pc, sql.data, q.n, NULL, q.vals, NULL, NULL, 0);
		int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
		for (int i = 0; ok && i < PQntuples(r); i++)
			ok = dbuf_printf(&plan, "%s\n", PQgetvalue(r, i, 0)) == 0;
		if (!ok)
			fprintf(stderr, "explain: %s\n", PQresultErrorMessage(r));
		PQclear(r);
		if (ok && dbuf_append(&plan, "", 1) == 0)
			out = strdup(plan.data);
	}
	dbuf_free(&plan);
	dbuf_free(&sql);
	pg_stmt_free(&q);
	return out;
}

/* An equality on text or on true/false reaches its images through the
 * index on meta (jsonb_path_ops, migration 0001): the filtered scan's
 * statement carries documents it contains ({"album": "rare"}, also in an
 * array, and true for "true"), which PostgreSQL can look up there instead
 * of reading every row; the exact condition still decides. A number is
 * not looked up that way (the filter compares float8, containment numeric).
 * The plan is asked with sequential scans off: what is tested is that the
 * statement can use the index, not the planner's costs on a small table
 * (deploy/bench/filtered-search.sh measures a million rows). */
static void test_equality_filters_can_use_the_meta_index(void)
{
	char uri[512];
	REQUIRE(fresh_db(uri, sizeof uri) == 0);
	struct catalog_open_report rep;
	store_error err = { 0 };
	catalog *c = node_open(uri, "metaidx", &model_x, &rep, &err);
	REQUIRE(c);
	PGconn *pc = PQconnectdb(uri);
	REQUIRE(PQstatus(pc) == CONNECTION_OK);
	/* 2,000 images behind the catalog's back, 1% of them "rare" */
	PGresult *r = PQexec(pc,
		"INSERT INTO originals (sha256, data) SELECT lpad(to_hex(g), 64, '0'), '\\x00'::bytea "
		"FROM generate_series(1, 2000) g;"
		"INSERT INTO images (sha256, mime, width, height, bytes, created_at, metadata) "
		"SELECT lpad(to_hex(g), 64, '0'), 'image/png', 1, 1, 1, g, CASE WHEN g % 100 = 0 THEN "
		"'{\"album\":\"rare\",\"flag\":true,\"people\":{\"alice\":[true]},\"year\":1999}' ELSE "
		"'{\"album\":\"common\",\"flag\":false,\"people\":{\"alice\":false},\"year\":2000}' END "
		"FROM generate_series(1, 2000) g;"
		"INSERT INTO vectors (image_id, model, vec) SELECT i.id, s.value, decode(repeat('0000803f', 16), 'hex') "
		"FROM images i, settings s WHERE s.key = 'active_model';"
		"ANALYZE images; ANALYZE vectors; SET enable_seqscan = off");
	CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fprintf(stderr, "fill: %s\n", PQresultErrorMessage(r));
	PQclear(r);
	struct { struct store_filter f; int by_index; } cases[] = {
		{ { "album", "rare" }, 1 },
		{ { "flag", "true" }, 1 },               /* a boolean, by "true" */
		{ { "people.alice", "true" }, 1 },       /* a nested path, an array holding it */
		{ { "year", "1999" }, 0 },               /* a number: the exact condition alone */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *plan = scan_plan(pc, &cases[i].f);
		CHECK(plan);
		if (plan && !!strstr(plan, "images_meta") != cases[i].by_index)
			HARNESS_FAIL("%s=%s: the plan %s the index on meta:\n%s", cases[i].f.key, cases[i].f.value,
				     cases[i].by_index ? "does not use" : "uses", plan);
		free(plan);
		CHECK_EQ_INT(count_matching(c, &cases[i].f, 1), 20);
	}
	PQfinish(pc);
	catalog_close(c);
}

/* Vectors stay in their row (migration 0004), not in the table's TOAST
 * relation: rows with a 768-dimension vector (3,072 bytes, past the size
 * at which PostgreSQL would by default move it, or else the model's
 * fingerprint, out), added with their images and one written again by a
 * re-embed, leave the TOAST relation empty, and read back as written. */
static void test_vectors_stay_in_their_rows(void)
{
	enum { BIG = 768 };
	char uri[512];
	struct store_model m;
	pgstore *pg = bare_catalog(uri, sizeof uri, BIG, "big", &m);  /* a fingerprint that does not compress */
	REQUIRE(pg);
	const struct backend_ops *be = &pgstore_ops;
	store_error err = { 0 };
	static float v[3][BIG], back[BIG];
	int64_t ids[3];
	for (int i = 0; i < 3; i++) {
		char bytes[32], sha[STORE_SHA256_HEX];
		snprintf(bytes, sizeof bytes, "original %d", i);
		sha256_hex(bytes, strlen(bytes), sha);
		fx_vec(100 + i, v[i], BIG);
		struct store_new_image ni = { .sha256 = sha, .mime = "image/png", .width = 1, .height = 1,
					      .bytes = (int64_t)strlen(bytes) };
		uint64_t seq = 0;
		REQUIRE(be->insert(pg, &ni, bytes, strlen(bytes), v[i], BIG, &ids[i], &seq, &err) == 0);
	}
	/* a re-embed's write of the first one's vector */
	fx_vec(200, v[0], BIG);
	CHECK_EQ_INT(be->put_vectors(pg, ids, 1, m.fingerprint, v[0], BIG, &err), 0);
	CHECK_EQ_INT(pg_scalar(uri, "SELECT count(*) FROM vectors WHERE octet_length(vec) = 3072"), 3);
	CHECK_EQ_INT(pg_scalar(uri, "SELECT pg_relation_size(reltoastrelid) FROM pg_class "
				    "WHERE oid = 'vectors'::regclass"), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(be->get_vector(pg, ids[i], m.fingerprint, back, BIG, &err), 0);
		CHECK(memcmp(back, v[i], sizeof back) == 0);
	}
	be->close(pg);
}

int main(void)
{
	if (!getenv("CLIPD_TEST_PG_URI")) {
		fprintf(stderr, "SKIP: no CLIPD_TEST_PG_URI (run through tests/pg/pg-cluster.sh run)\n");
		return 77;
	}
	snprintf(base, sizeof base, "%s", harness_tmpdir());
	fake_model_make(&model_x, base, "x");
	fake_model_make(&model_y, base, "y");
	RUN(test_rows_filters_patch_delete);
	RUN(test_library_lock);
	RUN(test_library_files_batch);
	RUN(test_original_streams_in_pieces);
	RUN(test_new_and_restarted_nodes);
	RUN(test_migrations_run_once);
	RUN(test_out_of_order_commit);
	RUN(test_copy_rows);
	RUN(test_equality_filters_can_use_the_meta_index);
	RUN(test_vectors_stay_in_their_rows);
	return harness_done();
}
