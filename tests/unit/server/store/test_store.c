/*
 * The SQLite store on real database files: migrations and the schema
 * version guard, connection settings, rows, duplicates, metadata limits
 * and merge patches, the change log, filters and the index of metadata
 * values they use, the file-hash cache.
 */
#include <sqlite3.h>
#include <stdint.h>

#include "harness.h"
#include "sha256.h"
#include "store.h"

#define DIM 8

static char *db_in_tmp(void)
{
	static char path[600];
	snprintf(path, sizeof path, "%s/clipd.db", harness_tmpdir());
	return path;
}

static store *open_store(const char *path)
{
	struct store_params p = store_default_params();
	store *s = NULL;
	store_error err = { 0 };
	if (store_open(path, &p, &s, NULL, &err) != 0) {
		fprintf(stderr, "  store_open: %s\n", err.msg);
		return NULL;
	}
	return s;
}

static const struct store_model model_a = {
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "model-a", DIM, "hf" };
static const struct store_model model_b = {
	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "model-b", DIM, "openclip" };

static void vec_for(int i, float *v)
{
	for (int d = 0; d < DIM; d++)
		v[d] = (d == i % DIM) ? 1.0f : 0.01f * (float)((i * 7 + d) % 5);
}

/* Insert image number i (distinct bytes) with metadata; returns its id. */
static int64_t insert(store *s, int i, const char *meta, uint64_t *seq)
{
	char data[32], sha[SHA256_HEX];
	snprintf(data, sizeof data, "image-%d", i);
	sha256_hex(data, strlen(data), sha);
	float v[DIM];
	vec_for(i, v);
	struct store_new_image img = { .sha256 = sha, .mime = "image/png", .width = 10 + i, .height = 20,
				       .bytes = (int64_t)strlen(data), .filename = "x.png", .metadata = meta };
	int64_t id = 0;
	uint64_t sq = 0;
	store_error err = { 0 };
	if (store_insert(s, &img, v, DIM, &id, &sq, &err) != 0) {
		fprintf(stderr, "  store_insert: %s\n", err.msg);
		return -1;
	}
	if (seq)
		*seq = sq;
	return id;
}

static int pragma_int(const char *path, const char *pragma)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int v = -1;
	if (sqlite3_open(path, &db) == SQLITE_OK && sqlite3_prepare_v2(db, pragma, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void exec_sql(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_open(path, &db);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fprintf(stderr, "  exec %s: %s\n", sql, msg);
	sqlite3_free(msg);
	sqlite3_close(db);
}

static void test_migrations_and_version_guard(void)
{
	char *path = db_in_tmp();
	struct store_params p = store_default_params();
	struct store_open_report rep;
	store *s = NULL;
	store_error err = { 0 };
	REQUIRE(store_open(path, &p, &s, &rep, &err) == 0);
	CHECK_EQ_INT(rep.version_before, 0);
	CHECK_EQ_INT(rep.version_after, store_schema_latest());
	CHECK(store_schema_latest() >= 1);
	store_close(s);
	CHECK_EQ_INT(pragma_int(path, "PRAGMA user_version"), store_schema_latest());
	/* WAL is a property of the file. */
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	sqlite3_open(path, &db);
	sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
	REQUIRE(sqlite3_step(st) == SQLITE_ROW);
	CHECK_EQ_STR((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);

	/* Reopening migrates nothing. */
	REQUIRE(store_open(path, &p, &s, &rep, &err) == 0);
	CHECK_EQ_INT(rep.version_before, store_schema_latest());
	store_close(s);

	/* A database from a newer clipd is refused, writable or not. */
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", store_schema_latest() + 1);
	exec_sql(path, sql);
	s = NULL;
	CHECK_EQ_INT(store_open(path, &p, &s, NULL, &err), STORE_ERR_SCHEMA);
	CHECK(s == NULL);
	CHECK_CONTAINS(err.msg, "newer");
	p.readonly = 1;
	CHECK_EQ_INT(store_open(path, &p, &s, NULL, &err), STORE_ERR_SCHEMA);
}

static void test_readonly_refuses_unmigrated(void)
{
	char *path = db_in_tmp();
	exec_sql(path, "CREATE TABLE t (x)");   /* a database at user_version 0 */
	struct store_params p = store_default_params();
	p.readonly = 1;
	store *s = NULL;
	store_error err = { 0 };
	CHECK_EQ_INT(store_open(path, &p, &s, NULL, &err), STORE_ERR_SCHEMA);
	CHECK_CONTAINS(err.msg, "migrat");
}

static void test_insert_get_duplicate_delete(void)
{
	store *s = open_store(db_in_tmp());
	REQUIRE(s);
	store_error err = { 0 };
	float v[DIM];
	vec_for(0, v);
	/* No model yet: refused. */
	struct store_new_image img = { .sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
				       .mime = "image/png", .width = 1, .height = 1, .bytes = 0 };
	int64_t id = 0;
	uint64_t seq = 0;
	CHECK_EQ_INT(store_insert(s, &img, v, DIM, &id, &seq, &err), STORE_ERR_MODEL);
	REQUIRE(store_set_active_model(s, &model_a, &err) == 0);

	uint64_t s1 = 0, s2 = 0;
	int64_t a = insert(s, 1, "{\"album\":\"x\"}", &s1);
	int64_t b = insert(s, 2, NULL, &s2);
	REQUIRE(a > 0 && b > a);
	CHECK(s2 > s1);

	struct store_image got;
	REQUIRE(store_get(s, a, &got, &err) == 0);
	CHECK_EQ_INT(got.id, a);
	CHECK_EQ_STR(got.mime, "image/png");
	CHECK_EQ_INT(got.width, 11);
	CHECK_EQ_STR(got.filename, "x.png");
	CHECK_EQ_STR(got.metadata, "{\"album\":\"x\"}");
	CHECK(got.created_at > 1600000000LL * 1000000);
	char sha[STORE_SHA256_HEX];
	memcpy(sha, got.sha256, sizeof sha);
	store_image_clear(&got);
	REQUIRE(store_get(s, b, &got, &err) == 0);
	CHECK_EQ_STR(got.metadata, "{}");
	store_image_clear(&got);

	/* The same bytes again: EXISTS with the existing id, no new row. */
	int64_t again = insert(s, 1, NULL, NULL);
	CHECK_EQ_INT(again, -1);
	struct store_new_image dup = { .sha256 = sha, .mime = "image/png", .width = 1, .height = 1, .bytes = 1 };
	CHECK_EQ_INT(store_insert(s, &dup, v, DIM, &id, &seq, &err), STORE_ERR_EXISTS);
	CHECK_EQ_INT(id, a);
	int64_t n = 0;
	store_count(s, &n, &err);
	CHECK_EQ_INT(n, 2);

	float back[DIM];
	REQUIRE(store_get_vector(s, a, NULL, back, DIM, &err) == 0);
	vec_for(1, v);
	CHECK(memcmp(back, v, sizeof v) == 0);

	uint64_t s3 = 0;
	char del_sha[STORE_SHA256_HEX];
	REQUIRE(store_delete(s, a, del_sha, &s3, &err) == 0);
	CHECK_EQ_STR(del_sha, sha);
	CHECK(s3 > s2);
	CHECK_EQ_INT(store_get(s, a, &got, &err), STORE_ERR_NOT_FOUND);
	/* The vector went with the row (foreign key cascade). */
	CHECK_EQ_INT(store_get_vector(s, a, NULL, back, DIM, &err), STORE_ERR_NOT_FOUND);
	CHECK_EQ_INT(store_delete(s, a, NULL, NULL, &err), STORE_ERR_NOT_FOUND);
	CHECK_EQ_INT(store_sha256_exists(s, sha, &err), 0);

	/* Ids are never reused. */
	int64_t c = insert(s, 3, NULL, NULL);
	CHECK(c > b);
	CHECK_EQ_INT(store_check(s, NULL, NULL, &err), 0);
	store_close(s);
}

/* store_insert_many: n rows in one transaction, all or none. */
static void test_insert_many(void)
{
	store *s = open_store(db_in_tmp());
	REQUIRE(s);
	store_error err = { 0 };
	REQUIRE(store_set_active_model(s, &model_a, &err) == 0);
	int64_t first = insert(s, 0, NULL, NULL);
	REQUIRE(first > 0);
	enum { N = 5 };
	char sha[N][SHA256_HEX], data[N][32];
	struct store_new_image imgs[N];
	float vecs[N * DIM];
	for (int i = 0; i < N; i++) {
		snprintf(data[i], sizeof data[i], "image-%d", 10 + i);
		sha256_hex(data[i], strlen(data[i]), sha[i]);
		imgs[i] = (struct store_new_image){ .sha256 = sha[i], .mime = "image/jpeg", .width = 3, .height = 4,
						    .bytes = 7, .metadata = i % 2 ? "{\"g\":true}" : NULL };
		vec_for(10 + i, vecs + i * DIM);
	}
	/* One of them already stored (image 0's bytes): nothing is committed. */
	char dup[SHA256_HEX];
	sha256_hex("image-0", 7, dup);
	imgs[3].sha256 = dup;
	int64_t ids[N] = { 0 };
	uint64_t seq = 0;
	CHECK_EQ_INT(store_insert_many(s, imgs, vecs, N, DIM, ids, &seq, &err), STORE_ERR_EXISTS);
	CHECK_EQ_INT(ids[3], first);
	int64_t n = 0;
	store_count(s, &n, &err);
	CHECK_EQ_INT(n, 1);
	/* A bad record is refused before anything is written. */
	imgs[3].sha256 = sha[3];
	imgs[2].width = 0;
	CHECK_EQ_INT(store_insert_many(s, imgs, vecs, N, DIM, ids, &seq, &err), STORE_ERR_INVALID);
	imgs[2].width = 3;
	/* All of them: rows, vectors, metadata and changes as store_insert makes them. */
	REQUIRE(store_insert_many(s, imgs, vecs, N, DIM, ids, &seq, &err) == 0);
	store_count(s, &n, &err);
	CHECK_EQ_INT(n, 1 + N);
	uint64_t last = 0;
	store_seq(s, &last, &err);
	CHECK(seq == last && seq > 0);
	for (int i = 0; i < N; i++) {
		CHECK(ids[i] > (i ? ids[i - 1] : first));
		struct store_image got;
		REQUIRE(store_get(s, ids[i], &got, &err) == 0);
		CHECK_EQ_STR(got.sha256, sha[i]);
		CHECK_EQ_STR(got.metadata, i % 2 ? "{\"g\":true}" : "{}");
		store_image_clear(&got);
		float back[DIM];
		REQUIRE(store_get_vector(s, ids[i], NULL, back, DIM, &err) == 0);
		CHECK(memcmp(back, vecs + i * DIM, sizeof back) == 0);
	}
	struct store_changes ch;
	REQUIRE(store_changes_since(s, 0, DIM, &ch, &err) == 0);
	CHECK_EQ_INT(ch.n_add, 1 + N);
	store_changes_clear(&ch);
	CHECK_EQ_INT(store_insert_many(s, imgs, vecs, 0, DIM, NULL, NULL, &err), 0);
	store_close(s);
}

static void test_list_pages_newest_first(void)
{
	store *s = open_store(db_in_tmp());
	REQUIRE(s);
	store_error err = { 0 };
	REQUIRE(store_set_active_model(s, &model_a, &err) == 0);
	int64_t ids[25];
	for (int i = 0; i < 25; i++)
		ids[i] = insert(s, i, NULL, NULL);
	struct store_image *items = NULL;
	size_t n = 0;
	int64_t cursor = 0;
	int seen = 0;
	for (int page = 0; page < 10; page++) {
		REQUIRE(store_list(s, NULL, cursor, 10, &items, &n, &err) == 0);
		for (size_t i = 0; i < n; i++)
			CHECK_EQ_INT(items[i].id, ids[24 - seen - (int)i]);
		seen += (int)n;
		if (n)
			cursor = items[n - 1].id;
		store_images_free(items, n);
		if (page == 0)   /* a concurrent insert does not disturb later pages */
			insert(s, 100, NULL, NULL);
		if (n < 10)
			break;
	}
	CHECK_EQ_INT(seen, 25);
	store_close(s);
}

static void test_metadata_limits_and_patch(void)
{
	store *s = open_store(db_in_tmp());
	REQUIRE(s);
	store_error err = { 0 };
	REQUIRE(store_set_active_model(s, &model_a, &err) == 0);
	char *compact = NULL;
	const char *ok = "{ \"a\" : 1 , \"b\": {\"c\": [1, 2, {\"d\": null}]} }";
	REQUIRE(store_check_metadata(s, ok, strlen(ok), 16384, 8, &compact, &err) == 0);
	CHECK_EQ_STR(compact, "{\"a\":1,\"b\":{\"c\":[1,2,{\"d\":null}]}}");
	free(compact);

	CHECK_EQ_INT(store_check_metadata(s, "[1,2]", 5, 16384, 8, NULL, &err), STORE_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "object");
	CHECK_EQ_INT(store_check_metadata(s, "{\"a\":", 5, 16384, 8, NULL, &err), STORE_ERR_INVALID);
	CHECK_EQ_INT(store_check_metadata(s, "", 0, 16384, 8, NULL, &err), STORE_ERR_INVALID);
	CHECK_EQ_INT(store_check_metadata(s, "{\"a\":\"\0\"}", 9, 16384, 8, NULL, &err), STORE_ERR_INVALID);
	/* Depth: 8 levels pass, 9 do not; a bracket inside a string is text. */
	const char *d8 = "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":[\"{[{[\"]}}}}}}}";
	CHECK_EQ_INT(store_check_metadata(s, d8, strlen(d8), 16384, 8, NULL, &err), 0);
	const char *d9 = "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}";
	CHECK_EQ_INT(store_check_metadata(s, d9, strlen(d9), 16384, 8, NULL, &err), STORE_ERR_TOO_LARGE);
	CHECK_CONTAINS(err.msg, "deep");
	/* Size: compact text over the limit (whitespace does not count). */
	char big[20000];
	int len = snprintf(big, sizeof big, "{\"k\":\"");
	memset(big + len, 'x', 16380);
	len += 16380;
	len += snprintf(big + len, sizeof big - (size_t)len, "\"}");
	CHECK_EQ_INT(store_check_metadata(s, big, (size_t)len, 16384, 8, NULL, &err), STORE_ERR_TOO_LARGE);
	CHECK_CONTAINS(err.msg, "limit");

	int64_t id = insert(s, 1, "{\"a\":1,\"b\":{\"c\":2,\"d\":3},\"e\":\"x\"}", NULL);
	REQUIRE(id > 0);
	const char *patch = "{\"a\":null,\"b\":{\"c\":20},\"f\":true}";
	REQUIRE(store_patch_metadata(s, id, patch, strlen(patch), 16384, 8, &err) == 0);
	struct store_image got;
	REQUIRE(store_get(s, id, &got, &err) == 0);
	CHECK_EQ_STR(got.metadata, "{\"b\":{\"c\":20,\"d\":3},\"e\":\"x\",\"f\":true}");
	store_image_clear(&got);
	/* A patch that would make the metadata too deep or too big is refused
	 * and changes nothing; so is a non-object patch. */
	const char *deep = "{\"b\":{\"x\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}";
	CHECK_EQ_INT(store_patch_metadata(s, id, deep, strlen(deep), 16384, 8, &err), STORE_ERR_TOO_LARGE);
	CHECK_EQ_INT(store_patch_metadata(s, id, big, (size_t)len, 16384, 8, &err), STORE_ERR_TOO_LARGE);
	CHECK_EQ_INT(store_patch_metadata(s, id, "[]", 2, 16384, 8, &err), STORE_ERR_INVALID);
	CHECK_EQ_INT(store_patch_metadata(s, id + 100, "{}", 2, 16384, 8, &err), STORE_ERR_NOT_FOUND);
	REQUIRE(store_get(s, id, &got, &err) == 0);
	CHECK_EQ_STR(got.metadata, "{\"b\":{\"c\":20,\"d\":3},\"e\":\"x\",\"f\":true}");
	store_image_clear(&got);
	store_close(s);
}

/* PATCH /images/{id} is an RFC 7396 merge patch: the cases of the RFC's
 * appendix A whose target and patch are objects (metadata always is). */
static void test_patch_is_rfc7396(void)
{
	static const char *cases[][3] = {
		{ "{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}" },
		{ "{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}" },
		{ "{\"a\":\"b\"}", "{\"a\":null}", "{}" },
		{ "{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}" },
		{ "{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}" },
		{ "{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}" },
		{ "{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}" },
		{ "{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}" },
		{ "{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}" },
		{ "{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}" },
	};
	store *s = open_store(db_in_tmp());
	REQUIRE(s);
	store_error err = { 0 };
	REQUIRE(store_set_active_model(s, &model_a, &err) == 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t id = insert(s, (int)i + 1, cases[i][0], NULL);
		REQUIRE(id > 0);
		REQUIRE(store_patch_metadata(s, id, cases[i][1], strlen(cases[i][1]), 16384, 8, &err) == 0);
		struct store_image got;
		REQUIRE(store_get(s, id, &got, &err) == 0);
		CHECK_EQ_STR(got.metadata, cases[i][2]);
		store_image_clear(&got);
	}
	store_close(s);
}

static void test_change_log(void)
{
	store *s = open_store(db_in_tmp());
	REQUIRE(s);
	store_error err = { 0 };
	REQUIRE(store_set_active_model(s, &model_a, &err) == 0);
	uint64_t seq0 = 0;
	store_seq(s, &seq0, &err);
	CHECK_EQ_INT(seq0, 0);
	int64_t a = insert(s, 1, NULL, NULL), b = insert(s, 2, NULL, NULL);
	uint64_t mid = 0;
	store_seq(s, &mid, &err);
	int64_t c = insert(s, 3, NULL, NULL);
	int64_t d = insert(s, 4, NULL, NULL);
	store_delete(s, a, NULL, NULL, &err);   /* added before mid: a remove */
	store_delete(s, c, NULL, NULL, &err);   /* added after mid and gone: nothing */
	(void)b;

	struct store_changes ch;
	REQUIRE(store_changes_since(s, mid, DIM, &ch, &err) == 0);
	CHECK_EQ_INT(ch.n_add, 1);
	CHECK_EQ_INT(ch.n_add ? ch.add_ids[0] : 0, d);
	CHECK_EQ_INT(ch.n_remove, 1);
	CHECK_EQ_INT(ch.n_remove ? ch.remove_ids[0] : 0, a);
	float v[DIM];
	vec_for(4, v);
	CHECK(ch.n_add && memcmp(ch.add_vecs, v, sizeof v) == 0);
	uint64_t last = 0;
	store_seq(s, &last, &err);
	CHECK_EQ_INT(ch.last, last);
	CHECK_EQ_INT(last, mid + 4);
	store_changes_clear(&ch);

	/* Everything: two live rows. */
	int64_t *ids = NULL;
	float *vecs = NULL;
	size_t n = 0;
	uint64_t snap = 0;
	REQUIRE(store_load_vectors(s, DIM, &ids, &vecs, &n, &snap, &err) == 0);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(snap, last);
	free(ids);
	free(vecs);

	/* After pruning, a checkpoint older than the pruned point cannot replay. */
	REQUIRE(store_prune_changes(s, mid + 2, &err) == 0);
	CHECK_EQ_INT(store_changes_since(s, mid, DIM, &ch, &err), STORE_ERR_NOT_FOUND);
	REQUIRE(store_changes_since(s, mid + 2, DIM, &ch, &err) == 0);
	store_changes_clear(&ch);
	/* Ahead of the database: not replayable either. */
	CHECK_EQ_INT(store_changes_since(s, last + 5, DIM, &ch, &err), STORE_ERR_NOT_FOUND);
	CHECK_CONTAINS(err.msg, "ahead");
	/* The sequence survives pruning everything. */
	REQUIRE(store_prune_changes(s, last, &err) == 0);
	uint64_t after = 0;
	store_seq(s, &after, &err);
	CHECK_EQ_INT(after, last);
	insert(s, 5, NULL, NULL);
	store_seq(s, &after, &err);
	CHECK_EQ_INT(after, last + 1);
	store_close(s);
}

static size_t scan_ids(store *s, const struct store_selection *sel, size_t limit, int *trunc, int64_t *out);

static int collect(void *ud, int64_t id, const float *vec)
{
	(void)vec;
	int64_t **p = ud;
	*(*p)++ = id;
	return 0;
}

static size_t scan_ids(store *s, const struct store_selection *sel, size_t limit, int *trunc, int64_t *out)
{
	int64_t *p = out;
	store_error err = { 0 };
	if (store_scan_selection(s, sel, DIM, limit, collect, &p, trunc, &err) != 0) {
		fprintf(stderr, "  scan: %s\n", err.msg);
		return (size_t)-1;
	}
	return (size_t)(p - out);
}

static void test_filters(void)
{
	store *s = open_store(db_in_tmp());
	REQUIRE(s);
	store_error err = { 0 };
	REQUIRE(store_set_active_model(s, &model_a, &err) == 0);
	int64_t a = insert(s, 1, "{\"album\":\"paris\",\"n\":1.50,\"ok\":true,\"k.dot\":\"v\"}", NULL);
	int64_t b = insert(s, 2, "{\"album\":\"rome\",\"n\":2,\"ok\":false}", NULL);
	int64_t c = insert(s, 3, "{\"album\":\"paris\",\"n\":\"2\",\"sub\":{\"album\":\"rome\"}}", NULL);
	int64_t d = insert(s, 4, "{\"album\":[\"paris\"]}", NULL);
	int64_t got[16];
	int trunc = 0;

	struct store_filter f1[] = { { "album", "paris" } };
	struct store_selection sel = { .filters = f1, .n_filters = 1 };
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 3);   /* a, c and the array of d */
	CHECK(!trunc);
	CHECK_EQ_INT(got[0], a);
	CHECK_EQ_INT(got[1], c);
	CHECK_EQ_INT(got[2], d);

	/* Numbers match by value (both sides in the canonical form: the
	 * stored 1.50 is 1.5); strings by their text. */
	struct store_filter f2[] = { { "n", "2" } };
	sel.filters = f2;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 2);   /* b (number 2), c (string "2") */
	struct store_filter f2b[] = { { "n", "2.0" } };
	sel.filters = f2b;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);   /* b only: the string "2" is not "2.0" */
	CHECK_EQ_INT(got[0], b);
	struct store_filter f3[] = { { "n", "1.50" } };
	sel.filters = f3;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	struct store_filter f3b[] = { { "n", "1.5" } };
	sel.filters = f3b;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], a);
	struct store_filter f4[] = { { "ok", "true" } };
	sel.filters = f4;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], a);
	struct store_filter f5[] = { { "ok", "false" } };
	sel.filters = f5;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], b);
	/* A dot is a path; a key with a dot in it is written with \. */
	struct store_filter f6[] = { { "k\\.dot", "v" } };
	sel.filters = f6;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	struct store_filter f6b[] = { { "k.dot", "v" } };
	sel.filters = f6b;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 0);
	/* A path reaches the nested album; the top-level one is another key. */
	struct store_filter f7[] = { { "album", "rome" } };
	sel.filters = f7;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], b);
	struct store_filter f7b[] = { { "sub.album", "rome" } };
	sel.filters = f7b;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], c);
	/* The same key twice: either value. */
	struct store_filter any[] = { { "album", "rome" }, { "album", "paris" } };
	sel.filters = any;
	sel.n_filters = 2;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 4);
	sel.n_filters = 1;
	/* Ranges: a number compares with numbers only, text with text by bytes. */
	struct store_filter gte[] = { { "n.gte", "2" } };
	sel.filters = gte;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], b);
	struct store_filter lt[] = { { "n.lt", "2" } };
	sel.filters = lt;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], a);
	struct store_filter gt_text[] = { { "album.gt", "q" } };
	sel.filters = gt_text;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], b);
	struct store_filter lte_text[] = { { "album.lte", "paris" } };
	sel.filters = lte_text;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 3);
	/* exists */
	struct store_filter ex[] = { { "ok.exists", "false" } };
	sel.filters = ex;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 2);
	CHECK_EQ_INT(got[0], c);
	CHECK_EQ_INT(got[1], d);
	struct store_filter ex2[] = { { "sub.album.exists", "true" } };
	sel.filters = ex2;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], c);
	struct store_filter ex_bad[] = { { "ok.exists", "maybe" } };
	sel.filters = ex_bad;
	CHECK_EQ_INT(store_check_selection(&sel, &err), STORE_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "ok.exists");
	struct store_filter esc_bad[] = { { "a\\x", "1" } };
	sel.filters = esc_bad;
	CHECK_EQ_INT(store_check_selection(&sel, &err), STORE_ERR_INVALID);
	struct store_filter deep[] = { { "a.b.c.d.e.f.g.h.i", "1" } };
	sel.filters = deep;
	CHECK_EQ_INT(store_check_selection(&sel, &err), STORE_ERR_INVALID);
	struct store_filter deeper[] = { { "a.b.c.d.e.f.g.h.i.j.k.l.mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm", "1" } };
	sel.filters = deeper;
	CHECK_EQ_INT(store_check_selection(&sel, &err), STORE_ERR_INVALID);
	/* eight segments and an operator are fine */
	struct store_filter deep_op[] = { { "a.b.c.d.e.f.g.h.gte", "1" } };
	sel.filters = deep_op;
	CHECK_EQ_INT(store_check_selection(&sel, &err), 0);
	struct store_filter empty_seg[] = { { "a..b", "1" } };
	sel.filters = empty_seg;
	CHECK_EQ_INT(store_check_selection(&sel, &err), STORE_ERR_INVALID);
	/* Two filters are an AND. */
	struct store_filter f8[] = { { "album", "paris" }, { "n", "2" } };
	sel.filters = f8;
	sel.n_filters = 2;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], c);
	/* The limit truncates the scan and says so. */
	sel.n_filters = 1;
	sel.filters = f1;
	CHECK_EQ_INT(scan_ids(s, &sel, 1, &trunc, got), 1);
	CHECK(trunc);
	/* Exclusion and the date range. */
	sel.exclude_id = a;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 2);
	sel.exclude_id = 0;
	struct store_image ib;
	REQUIRE(store_get(s, b, &ib, &err) == 0);
	struct store_selection range = { .has_after = 1, .created_after = ib.created_at - 1,
					 .has_before = 1, .created_before = ib.created_at + 1 };
	store_image_clear(&ib);
	CHECK_EQ_INT(scan_ids(s, &range, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], b);

	unsigned char keep[3];
	int64_t cand[3] = { c, b, a };
	sel.filters = f1;
	REQUIRE(store_filter_ids(s, &sel, cand, 3, keep, &err) == 0);
	CHECK(keep[0] && !keep[1] && keep[2]);

	/* Bad filters are refused, not run. */
	struct store_filter bad[] = { { "a\"b", "x" } };
	sel.filters = bad;
	CHECK_EQ_INT(store_scan_selection(s, &sel, DIM, 10, collect, NULL, &trunc, &err), STORE_ERR_INVALID);
	struct store_filter empty[] = { { "", "x" } };
	sel.filters = empty;
	CHECK_EQ_INT(store_check_selection(&sel, &err), STORE_ERR_INVALID);
	sel.n_filters = STORE_MAX_FILTERS + 1;
	CHECK_EQ_INT(store_check_selection(&sel, &err), STORE_ERR_INVALID);
	store_close(s);
}

/* The index of metadata values (migration 0006): kept by every write, and
 * built for the rows already there when the migration runs; an equality
 * filter on a top-level key answers from it what the rows say. */
static int terms_of(const char *path, int64_t id)
{
	char q[128];
	snprintf(q, sizeof q, "SELECT count(*) FROM metadata_terms WHERE image_id = %lld", (long long)id);
	return pragma_int(path, q);
}

static void test_filter_terms(void)
{
	char *path = db_in_tmp();
	store *s = open_store(path);
	REQUIRE(s);
	store_error err = { 0 };
	REQUIRE(store_set_active_model(s, &model_a, &err) == 0);
	int64_t a = insert(s, 1, "{\"tag\":\"x\",\"n\":3,\"list\":[\"p\",4.0,true,null,{\"q\":1}],\"o\":{\"tag\":\"x\"}}", NULL);
	int64_t b = insert(s, 2, "{\"tag\":\"y\",\"n\":3.0,\"two words\":\"z\"}", NULL);
	/* a: tag, n, and the list's three scalars; not the object, the null,
	 * the nested object's tag. b: tag and n (a key with a space is not
	 * indexed) */
	CHECK_EQ_INT(terms_of(path, a), 5);
	CHECK_EQ_INT(terms_of(path, b), 2);
	int64_t got[8];
	int trunc = 0;
	struct store_filter f[1] = { { "tag", "x" } };
	struct store_selection sel = { .filters = f, .n_filters = 1 };
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], a);
	f[0] = (struct store_filter){ "n", "3" };   /* 3 and 3.0 are one number */
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 2);
	f[0] = (struct store_filter){ "list", "4" };
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	f[0] = (struct store_filter){ "list", "true" };
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	f[0] = (struct store_filter){ "two words", "z" };   /* not indexed: the rows decide */
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], b);

	/* a patch changes the terms with the row, a delete drops them */
	const char *patch = "{\"tag\":\"w\",\"list\":null}";
	REQUIRE(store_patch_metadata(s, a, patch, strlen(patch), 16384, 8, &err) == 0);
	CHECK_EQ_INT(terms_of(path, a), 2);
	f[0] = (struct store_filter){ "tag", "x" };
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 0);
	f[0] = (struct store_filter){ "tag", "w" };
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	REQUIRE(store_delete(s, a, NULL, NULL, &err) == 0);
	CHECK_EQ_INT(terms_of(path, a), 0);
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 0);
	store_close(s);

	/* A database from before the migration: its rows get their terms
	 * when it runs. */
	exec_sql(path, "DROP TRIGGER metadata_terms_insert; DROP TRIGGER metadata_terms_update; "
		       "DROP TRIGGER metadata_terms_delete; DROP VIEW metadata_terms_of; DROP TABLE metadata_terms; "
		       "PRAGMA user_version = 5");
	CHECK_EQ_INT(pragma_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'metadata_terms'"), 0);
	s = open_store(path);
	REQUIRE(s);
	CHECK_EQ_INT(pragma_int(path, "PRAGMA user_version"), store_schema_latest());
	CHECK_EQ_INT(terms_of(path, b), 2);
	f[0] = (struct store_filter){ "tag", "y" };
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 1);
	CHECK_EQ_INT(got[0], b);

	/* The scan reads the rows the terms name (the proof: with b's terms
	 * gone it finds nothing), when they are within its limit; a filter
	 * with more matches than the limit reads the rows in order instead. */
	char q[128];
	snprintf(q, sizeof q, "DELETE FROM metadata_terms WHERE image_id = %lld", (long long)b);
	exec_sql(path, q);
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 0);
	int64_t c = insert(s, 3, "{\"tag\":\"y\"}", NULL), d = insert(s, 4, "{\"tag\":\"y\"}", NULL);
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, got), 2);   /* c and d, by their terms */
	CHECK_EQ_INT(got[0], c);
	CHECK_EQ_INT(got[1], d);
	CHECK_EQ_INT(scan_ids(s, &sel, 1, &trunc, got), 1);     /* two terms, limit 1: in order */
	CHECK(trunc);
	CHECK_EQ_INT(got[0], b);
	store_close(s);
}

/* The capture time: stored with the row, read back, selected by
 * taken_after / taken_before (exclusive; rows without one never match) in
 * scans, id filters and listings, set again in one transaction. */
static void test_taken_at(void)
{
	store *s = open_store(db_in_tmp());
	REQUIRE(s);
	store_error err = { 0 };
	REQUIRE(store_set_active_model(s, &model_a, &err) == 0);
	const int64_t t0 = 1687003402LL * 1000000;   /* 2023-06-17T12:03:22Z */
	char sha[SHA256_HEX];
	sha256_hex("dated", 5, sha);
	float v[DIM];
	vec_for(1, v);
	struct store_new_image img = { .sha256 = sha, .mime = "image/jpeg", .width = 4, .height = 3, .bytes = 5,
				       .taken = { "2023-06-17T14:03:22+02:00", t0 } };
	int64_t dated = 0, plain;
	uint64_t seq = 0;
	REQUIRE(store_insert(s, &img, v, DIM, &dated, &seq, &err) == 0);
	REQUIRE((plain = insert(s, 2, NULL, NULL)) > 0);
	struct store_image got;
	REQUIRE(store_get(s, dated, &got, &err) == 0);
	CHECK_EQ_STR(got.taken.text, "2023-06-17T14:03:22+02:00");
	CHECK(got.taken.us == t0);
	store_image_clear(&got);
	REQUIRE(store_get(s, plain, &got, &err) == 0);
	CHECK_EQ_STR(got.taken.text, "");
	store_image_clear(&got);

	int64_t ids[16];
	int trunc = 0;
	struct store_selection sel = { .has_taken_after = 1, .taken_after = t0 - 1 };
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, ids), 1);
	CHECK_EQ_INT(ids[0], dated);
	sel.taken_after = t0;
	CHECK_EQ_INT(scan_ids(s, &sel, 100, &trunc, ids), 0);
	struct store_selection before = { .has_taken_before = 1, .taken_before = t0 + 1 };
	CHECK_EQ_INT(scan_ids(s, &before, 100, &trunc, ids), 1);
	int64_t both[] = { dated, plain };
	unsigned char keep[2];
	REQUIRE(store_filter_ids(s, &before, both, 2, keep, &err) == 0);
	CHECK(keep[0] == 1 && keep[1] == 0);
	struct store_image *items = NULL;
	size_t n = 0;
	REQUIRE(store_list(s, &before, 0, 10, &items, &n, &err) == 0);
	CHECK(n == 1 && items[0].id == dated);
	store_images_free(items, n);
	REQUIRE(store_list(s, NULL, 0, 10, &items, &n, &err) == 0);
	CHECK(n == 2);
	store_images_free(items, n);

	/* Set again: what changed is counted; text "" clears it. */
	struct store_taken_at t[2] = { { "", 0 }, { "2020-01-01T00:00:00-00:00", 1577836800LL * 1000000 } };
	size_t changed = 0;
	REQUIRE(store_set_taken_at(s, both, t, 2, &changed, &err) == 0);
	CHECK(changed == 2);
	REQUIRE(store_set_taken_at(s, both, t, 2, &changed, &err) == 0);
	CHECK(changed == 0);
	CHECK_EQ_INT(scan_ids(s, &before, 100, &trunc, ids), 1);
	CHECK_EQ_INT(ids[0], plain);
	/* Not a time: refused, nothing changes. */
	struct store_taken_at bad[2] = { { "2024-01-01T00:00:00Z", 1704067200LL * 1000000 }, { "yesterday", 0 } };
	CHECK_EQ_INT(store_set_taken_at(s, both, bad, 2, &changed, &err), STORE_ERR_INVALID);
	REQUIRE(store_get(s, dated, &got, &err) == 0);
	CHECK_EQ_STR(got.taken.text, "");
	store_image_clear(&got);
	store_close(s);
}

static void test_models_and_switch(void)
{
	char *path = db_in_tmp();
	store *s = open_store(path);
	REQUIRE(s);
	store_error err = { 0 };
	struct store_model m;
	int found = 1;
	store_active_model(s, &m, &found, &err);
	CHECK(!found);
	REQUIRE(store_set_active_model(s, &model_a, &err) == 0);
	int64_t a = insert(s, 1, NULL, NULL), b = insert(s, 2, NULL, NULL);
	REQUIRE(store_put_model(s, &model_b, &err) == 0);
	/* Not every image has a model-b vector yet: the switch is refused. */
	float v[2 * DIM];
	vec_for(7, v);
	vec_for(8, v + DIM);
	int64_t ids[2] = { a, b };
	REQUIRE(store_put_vectors(s, ids, 1, model_b.fingerprint, v, DIM, &err) == 0);
	size_t n = 0;
	int64_t missing[4];
	REQUIRE(store_missing_vectors(s, model_b.fingerprint, 0, missing, 4, &n, &err) == 0);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(missing[0], b);
	CHECK_EQ_INT(store_switch_model(s, model_b.fingerprint, &err), STORE_ERR_INVALID);
	REQUIRE(store_put_vectors(s, ids, 2, model_b.fingerprint, v, DIM, &err) == 0);
	uint64_t before = 0;
	store_seq(s, &before, &err);
	REQUIRE(store_switch_model(s, model_b.fingerprint, &err) == 0);
	store_active_model(s, &m, &found, &err);
	CHECK(found);
	CHECK_EQ_STR(m.fingerprint, model_b.fingerprint);
	float back[DIM];
	REQUIRE(store_get_vector(s, b, NULL, back, DIM, &err) == 0);
	CHECK(memcmp(back, v + DIM, sizeof back) == 0);
	CHECK_EQ_INT(store_get_vector(s, b, model_a.fingerprint, back, DIM, &err), STORE_ERR_NOT_FOUND);
	/* A checkpoint from before the switch cannot be replayed. */
	struct store_changes ch;
	CHECK_EQ_INT(store_changes_since(s, before, DIM, &ch, &err), STORE_ERR_NOT_FOUND);
	store_close(s);

	/* The active model is remembered, read-only too. */
	struct store_params p = store_default_params();
	p.readonly = 1;
	s = NULL;
	REQUIRE(store_open(path, &p, &s, NULL, &err) == 0);
	store_active_model(s, &m, &found, &err);
	CHECK(found);
	CHECK_EQ_STR(m.name, "model-b");
	CHECK_EQ_INT(store_insert(s, &(struct store_new_image){ .sha256 = model_a.fingerprint, .mime = "a",
			.width = 1, .height = 1 }, v, DIM, &a, &before, &err), STORE_ERR_INVALID);
	store_close(s);
}

static void test_file_hash_cache(void)
{
	store *s = open_store(db_in_tmp());
	REQUIRE(s);
	store_error err = { 0 };
	char hex[STORE_SHA256_HEX];
	int found = 1;
	REQUIRE(store_file_hash_get(s, "/m/model.safetensors", 10, 20, 30, hex, &found, &err) == 0);
	CHECK(!found);
	REQUIRE(store_file_hash_put(s, "/m/model.safetensors", 10, 20, 30, model_a.fingerprint, &err) == 0);
	REQUIRE(store_file_hash_get(s, "/m/model.safetensors", 10, 20, 30, hex, &found, &err) == 0);
	CHECK(found);
	CHECK_EQ_STR(hex, model_a.fingerprint);
	/* Any change of size, mtime or inode is a miss. */
	store_file_hash_get(s, "/m/model.safetensors", 11, 20, 30, hex, &found, &err);
	CHECK(!found);
	store_file_hash_get(s, "/m/model.safetensors", 10, 21, 30, hex, &found, &err);
	CHECK(!found);
	store_file_hash_get(s, "/m/model.safetensors", 10, 20, 31, hex, &found, &err);
	CHECK(!found);
	store_close(s);
}

static void test_check_finds_problems(void)
{
	char *path = db_in_tmp();
	store *s = open_store(path);
	REQUIRE(s);
	store_error err = { 0 };
	REQUIRE(store_set_active_model(s, &model_a, &err) == 0);
	int64_t a = insert(s, 1, NULL, NULL);
	insert(s, 2, NULL, NULL);
	CHECK_EQ_INT(store_check(s, NULL, NULL, &err), 0);
	char sql[128];
	snprintf(sql, sizeof sql, "DELETE FROM vectors WHERE image_id = %lld", (long long)a);
	exec_sql(path, sql);
	CHECK_EQ_INT(store_check(s, NULL, NULL, &err), 1);
	exec_sql(path, "UPDATE vectors SET vec = x'00'");
	CHECK_EQ_INT(store_check(s, NULL, NULL, &err), 2);
	store_close(s);
}

static void test_status_names(void)
{
	CHECK_EQ_STR(store_status_name(STORE_ERR_NOSPACE), "insufficient_storage");
	CHECK_EQ_STR(store_status_name(STORE_ERR_NOT_FOUND), "not_found");
	CHECK_EQ_STR(store_status_name(12345), "internal_error");
}

/* A migration numbered below the database's version (two branches that
 * numbered theirs apart) is applied at the next open, once. */
static void test_late_migration(void)
{
	char *path = db_in_tmp();
	store *s = open_store(path);
	REQUIRE(s);
	store_close(s);
	exec_sql(path, "DROP TABLE library_images; DROP TABLE library_files; DROP TABLE libraries; "
		       "INSERT INTO settings (key, value) VALUES ('migrations_skipped', '4') "
		       "ON CONFLICT (key) DO UPDATE SET value = value || ',4'");
	/* read-only: refused, it needs migrating */
	struct store_params p = store_default_params();
	p.readonly = 1;
	store_error err = { 0 };
	CHECK_EQ_INT(store_open(path, &p, &s, NULL, &err), STORE_ERR_SCHEMA);
	struct store_open_report rep;
	p.readonly = 0;
	REQUIRE(store_open(path, &p, &s, &rep, &err) == 0);
	CHECK_EQ_INT(rep.version_after, store_schema_latest());
	CHECK_EQ_INT(store_library_put(s, "photos", "/p", &err), 0);
	char *v = NULL;   /* 4 is off the list; a number this build lacks stays on it */
	CHECK_EQ_INT(store_setting_get(s, "migrations_skipped", &v, &err), 0);
	CHECK(v == NULL || !strchr(v, '4'));
	free(v);
	store_close(s);
	CHECK_EQ_INT(pragma_int(path, "PRAGMA user_version"), store_schema_latest());
}

static struct store_lib_outcome lib_item(const char *path, enum store_lib_kind kind, const char *sha,
					 const struct store_new_image *img, const float *vec)
{
	struct store_lib_outcome o = { .path = path, .dev = 1, .ino = 2, .size = 3, .mtime_ns = 4, .kind = kind,
				       .sha256 = sha, .img = img, .vec = vec };
	return o;
}

/* A library file whose pixels change keeps its image id; the change log
 * replays that as a remove and an add, the add once, with the new vector;
 * the end of a scan removes what has no file left. */
static void test_library_files(void)
{
	store *s = open_store(db_in_tmp());
	REQUIRE(s);
	store_error err = { 0 };
	REQUIRE(store_set_active_model(s, &model_a, &err) == 0);
	REQUIRE(store_library_put(s, "photos", "/p", &err) == 0);
	int64_t scan = 0;
	REQUIRE(store_library_scan_begin(s, "photos", &scan, &err) == 0);
	CHECK_EQ_INT(scan, 1);
	struct store_lib_mark marks[] = { { "a.png", 1 }, { "b.png", 1 } };
	REQUIRE(store_lib_mark(s, "photos", scan, marks, 2, &err) == 0);
	struct store_lib_file *pend = NULL;
	size_t n = 0;
	REQUIRE(store_lib_pending(s, "photos", "", 10, &pend, &n, &err) == 0);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_STR(n ? pend[0].path : "", "a.png");
	store_lib_files_free(pend, n);

	char sha1[SHA256_HEX], sha2[SHA256_HEX];
	sha256_hex("one", 3, sha1);
	sha256_hex("two", 3, sha2);
	float v1[DIM], v2[DIM];
	vec_for(1, v1);
	vec_for(2, v2);
	struct store_new_image img1 = { .sha256 = sha1, .mime = "image/png", .width = 1, .height = 1, .bytes = 3 };
	struct store_new_image img2 = { .sha256 = sha2, .mime = "image/png", .width = 2, .height = 2, .bytes = 3 };
	struct store_lib_outcome o[2] = { lib_item("a.png", STORE_LIB_NEW, sha1, &img1, v1),
					  lib_item("b.png", STORE_LIB_LINK, sha1, NULL, NULL) };
	REQUIRE(store_lib_commit(s, "photos", o, 2, DIM, &err) == 0);
	int64_t id = o[0].image_id;
	CHECK(id > 0 && o[0].seq > 0);
	CHECK_EQ_INT(o[1].image_id, id);   /* a copy is the same image */
	struct store_image got;
	REQUIRE(store_get(s, id, &got, &err) == 0);
	CHECK_EQ_STR(got.source_library, "photos");
	CHECK_EQ_STR(got.source_path, "a.png");
	store_image_clear(&got);
	int64_t refs = 0;
	CHECK_EQ_INT(store_lib_image_refs(s, id, &refs, &err), 1);
	CHECK_EQ_INT(refs, 2);

	uint64_t mid = 0;
	store_seq(s, &mid, &err);
	struct store_lib_outcome r = lib_item("a.png", STORE_LIB_REPLACE, sha2, &img2, v2);
	r.replace_id = id;
	REQUIRE(store_lib_commit(s, "photos", &r, 1, DIM, &err) == 0);
	CHECK_EQ_INT(r.image_id, id);
	CHECK(r.remove_seq > mid && r.seq > r.remove_seq);
	CHECK_EQ_STR(r.old_sha256, sha1);
	struct store_changes ch;
	REQUIRE(store_changes_since(s, mid, DIM, &ch, &err) == 0);
	CHECK_EQ_INT(ch.n_remove, 1);
	CHECK_EQ_INT(ch.n_add, 1);
	CHECK(ch.n_add && ch.add_ids[0] == id && memcmp(ch.add_vecs, v2, sizeof v2) == 0);
	store_changes_clear(&ch);
	REQUIRE(store_changes_since(s, 0, DIM, &ch, &err) == 0);
	CHECK_EQ_INT(ch.n_add, 1);   /* added after 0 and replaced: added once, nothing to remove */
	CHECK_EQ_INT(ch.n_remove, 0);
	store_changes_clear(&ch);

	/* scan 2 sees b.png only: a.png is forgotten; the image moves to b.png?
	 * No: b.png holds the old bytes (sha1, not stored any more), so it is
	 * pending; once it is gone the image has no file and is removed. */
	REQUIRE(store_library_scan_begin(s, "photos", &scan, &err) == 0);
	struct store_lib_outcome gone = lib_item("b.png", STORE_LIB_GONE, NULL, NULL, NULL);
	REQUIRE(store_lib_commit(s, "photos", &gone, 1, DIM, &err) == 0);
	struct store_lib_mark keep_a = { "a.png", 0 };
	REQUIRE(store_lib_mark(s, "photos", scan, &keep_a, 1, &err) == 0);
	struct store_lib_scan_figures fig = { 0 };
	struct store_lib_gone g;
	REQUIRE(store_lib_finish(s, "photos", scan, NULL, 0, &fig, &g, &err) == 0);
	CHECK_EQ_INT(g.n, 0);   /* a.png still is the image */
	store_lib_gone_clear(&g);
	/* scan 3 sees nothing (outside the kept folder "x"): the image goes */
	REQUIRE(store_library_scan_begin(s, "photos", &scan, &err) == 0);
	const char *keep[] = { "x" };
	REQUIRE(store_lib_finish(s, "photos", scan, keep, 1, &fig, &g, &err) == 0);
	CHECK_EQ_INT(g.n, 1);
	CHECK(g.n && g.ids[0] == id && !strcmp(g.sha256[0], sha2) && g.seqs[0] > r.seq);
	CHECK_EQ_INT(fig.removed, 1);
	store_lib_gone_clear(&g);
	CHECK_EQ_INT(store_get(s, id, &got, &err), STORE_ERR_NOT_FOUND);
	struct store_library lib;
	REQUIRE(store_library_get(s, "photos", &lib, &err) == 0);
	CHECK_EQ_INT(lib.removed, 1);
	CHECK(lib.last_finished_at > 0);
	store_library_clear(&lib);
	store_close(s);
}

/* clipd catalog copy's rows: ids and columns as given, all of a batch or
 * none, and the end of a copy moves both sequences past the source's and
 * logs a reset (an index from before cannot be replayed). */
static void test_copy_rows(void)
{
	char path[600];
	snprintf(path, sizeof path, "%s/copy.db", harness_tmpdir());
	store *s = open_store(path);
	REQUIRE(s);
	store_error err = { 0 };
	REQUIRE(store_set_active_model(s, &model_a, &err) == 0);
	char sha[3][SHA256_HEX];
	struct store_image img[3];
	float v[3][DIM];
	struct store_copy_row rows[3];
	char meta[] = "{\"b\":1,\"a\":[2]}";
	memset(img, 0, sizeof img);
	for (int i = 0; i < 3; i++) {
		char data[16];
		snprintf(data, sizeof data, "copied-%d", i);
		sha256_hex(data, strlen(data), sha[i]);
		memcpy(img[i].sha256, sha[i], sizeof sha[i]);
		snprintf(img[i].mime, sizeof img[i].mime, "image/png");
		img[i].id = i == 2 ? 5 : 5 + 4 * i;   /* 5, 9, then 5 again */
		img[i].width = img[i].height = 7;
		img[i].bytes = (int64_t)strlen(data);
		img[i].created_at = 1000 + i;
		img[i].metadata = meta;
		vec_for(i, v[i]);
		rows[i] = (struct store_copy_row){ .img = &img[i], .vec = v[i] };
	}
	snprintf(img[1].taken.text, sizeof img[1].taken.text, "2023-06-17T14:03:22+02:00");
	img[1].taken.us = 1686996202000000;
	CHECK_EQ_INT(store_copy_in(s, rows, 2, DIM, "copy", "copying 9 here", &err), 0);
	struct store_image got;
	REQUIRE(store_get(s, 9, &got, &err) == 0);
	CHECK_EQ_STR(got.sha256, sha[1]);
	CHECK_EQ_INT(got.created_at, 1001);
	CHECK_EQ_STR(got.metadata, "{\"b\":1,\"a\":[2]}");
	CHECK_EQ_STR(got.taken.text, "2023-06-17T14:03:22+02:00");
	store_image_clear(&got);
	float back[DIM];
	CHECK_EQ_INT(store_get_vector(s, 5, NULL, back, DIM, &err), 0);
	CHECK(memcmp(back, v[0], sizeof back) == 0);
	/* a batch with an id stored already: nothing of it stays */
	img[0].id = 12;
	struct store_copy_row bad[2] = { rows[0], rows[2] };
	memcpy(img[0].sha256, sha[2], sizeof sha[2]);
	memcpy(img[2].sha256, sha[0], sizeof sha[0]);
	CHECK_EQ_INT(store_copy_in(s, bad, 2, DIM, "copy", "copying 12 here", &err), STORE_ERR_EXISTS);
	CHECK_EQ_INT(store_get(s, 12, &got, &err), STORE_ERR_NOT_FOUND);
	char *state = NULL;
	REQUIRE(store_setting_get(s, "copy", &state, &err) == 0 && state);
	CHECK_EQ_STR(state, "copying 9 here");
	free(state);
	int64_t top = 0;
	CHECK_EQ_INT(store_max_id(s, &top, &err), 0);
	CHECK_EQ_INT(top, 9);
	/* the end: ids above 40, changes above 100, a reset last */
	CHECK_EQ_INT(store_copy_end(s, 40, 100, "copy", "done 2 here", &err), 0);
	uint64_t seq = 0;
	CHECK_EQ_INT(store_seq(s, &seq, &err), 0);
	CHECK_EQ_INT(seq, 101);
	struct store_changes ch;
	CHECK_EQ_INT(store_changes_since(s, 2, DIM, &ch, &err), STORE_ERR_NOT_FOUND);
	uint64_t sq = 0;
	CHECK_EQ_INT(insert(s, 77, NULL, &sq), 41);
	CHECK_EQ_INT(sq, 102);
	char name[700];
	CHECK_EQ_INT(store_identity(s, name, sizeof name, &err), 0);
	CHECK_CONTAINS(name, "data directory /");
	store_close(s);
}

int main(void)
{
	RUN(test_migrations_and_version_guard);
	RUN(test_readonly_refuses_unmigrated);
	RUN(test_insert_get_duplicate_delete);
	RUN(test_insert_many);
	RUN(test_list_pages_newest_first);
	RUN(test_metadata_limits_and_patch);
	RUN(test_patch_is_rfc7396);
	RUN(test_change_log);
	RUN(test_filters);
	RUN(test_filter_terms);
	RUN(test_taken_at);
	RUN(test_models_and_switch);
	RUN(test_file_hash_cache);
	RUN(test_check_finds_problems);
	RUN(test_status_names);
	RUN(test_late_migration);
	RUN(test_library_files);
	RUN(test_copy_rows);
	return harness_done();
}
