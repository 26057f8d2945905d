/*
 * The catalog on real data directories (SQLite, blob files, the FAISS
 * index): add, search, delete, metadata and filters, restart and replay,
 * damaged or missing index files, model fingerprints and refusal, the
 * lock, clean-up after a crash, clipd check's findings, removing blobs,
 * the thumbnail cache.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>

#include "catalog_fixture.h"
#include "datadir.h"

#define DIM 16

static char base[600];

static const char *new_dir(const char *name)
{
	static char path[700];
	snprintf(path, sizeof path, "%s/%s", harness_tmpdir(), name);
	return path;
}

static int file_exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

static int run(const char *cmd)
{
	int rc = system(cmd);
	return rc;
}

static struct fake_model model_x, model_y;

static void test_add_search_delete(void)
{
	const char *dir = new_dir("data");
	struct catalog_open_report rep;
	store_error err = { 0 };
	catalog *c = fx_open(dir, model_x.files, DIM, &rep, &err);
	REQUIRE(c);
	CHECK(rep.model_registered);
	CHECK(rep.index_rebuilt);   /* a new directory: no index file yet */
	CHECK_EQ_INT(rep.schema_after, store_schema_latest());
	CHECK_EQ_STR(catalog_model(c)->name, "model-x");

	int64_t ids[20];
	char shas[20][SHA256_HEX];
	for (int i = 0; i < 20; i++) {
		ids[i] = fx_add(c, (uint64_t)i, 100 + (size_t)i, NULL, shas[i], &err);
		REQUIRE(ids[i] > 0);
	}
	for (int i = 0; i < 20; i++) {
		float score = 0;
		CHECK_EQ_INT(fx_top1(c, shas[i], &score), ids[i]);
		CHECK_NEAR(score, 1.0, 1e-5);
	}
	/* The original is on disk, content-addressed. */
	char path[1024];
	REQUIRE(catalog_blob_path(c, shas[3], path, sizeof path, &err) == 0);
	CHECK_CONTAINS(path, "/blobs/");
	size_t len = 0;
	unsigned char *bytes = harness_read_file(path, &len);
	CHECK(bytes != NULL);
	CHECK_EQ_INT(len, 103);
	char again[SHA256_HEX];
	if (bytes)
		sha256_hex(bytes, len, again);
	CHECK_EQ_STR(again, shas[3]);

	/* The same bytes again: the existing image, marked duplicate, nothing new. */
	float v[DIM];
	fx_vec(fx_seed_of_sha(shas[3]), v, DIM);
	struct catalog_new_image in = { .data = bytes, .len = len, .mime = "image/png", .width = 4,
					.height = 3, .metadata = "{\"ignored\":1}", .vec = v, .dim = DIM };
	struct store_image img;
	int dup = 0;
	REQUIRE(catalog_add(c, &in, &img, &dup, &err) == 0);
	CHECK(dup);
	CHECK_EQ_INT(img.id, ids[3]);
	CHECK_EQ_STR(img.metadata, "{}");
	store_image_clear(&img);
	free(bytes);
	struct catalog_stats st;
	REQUIRE(catalog_stats(c, &st, &err) == 0);
	CHECK_EQ_INT(st.images, 20);
	CHECK_EQ_INT(st.index_count, 20);

	/* Similar: the image itself is excluded. */
	struct catalog_query q = catalog_default_query();
	q.k = 5;
	struct catalog_results r;
	REQUIRE(catalog_similar(c, ids[0], &q, &r, &err) == 0);
	CHECK_EQ_INT(r.n, 5);
	for (size_t i = 0; i < r.n; i++)
		CHECK(r.hits[i].image.id != ids[0]);
	for (size_t i = 1; i < r.n; i++)
		CHECK(r.hits[i - 1].score >= r.hits[i].score);
	CHECK(r.exhaustive);
	catalog_results_free(&r);
	CHECK_EQ_INT(catalog_similar(c, 99999, &q, &r, &err), STORE_ERR_NOT_FOUND);

	/* min_score drops the rest. */
	q.vec = v;
	q.dim = DIM;
	q.k = 20;
	q.has_min_score = 1;
	q.min_score = 0.99f;
	REQUIRE(catalog_search(c, &q, &r, &err) == 0);
	CHECK_EQ_INT(r.n, 1);
	catalog_results_free(&r);

	/* Delete: row, vector, index entry and blob go. */
	REQUIRE(catalog_delete(c, ids[3], &err) == 0);
	CHECK(fx_top1(c, shas[3], NULL) != ids[3]);
	CHECK_EQ_INT(catalog_get(c, ids[3], &img, &err), STORE_ERR_NOT_FOUND);
	CHECK(!file_exists(path));
	CHECK_EQ_INT(catalog_delete(c, ids[3], &err), STORE_ERR_NOT_FOUND);
	REQUIRE(catalog_stats(c, &st, &err) == 0);
	CHECK_EQ_INT(st.images, 19);
	CHECK_EQ_INT(st.index_count, 19);
	int problems = 0;
	CHECK_EQ_INT(catalog_check(c, fx_count_problem, &problems, &err), 0);
	catalog_close(c);
}

static void test_bad_input_changes_nothing(void)
{
	const char *dir = new_dir("data");
	store_error err = { 0 };
	catalog *c = fx_open(dir, model_x.files, DIM, NULL, &err);
	REQUIRE(c);
	unsigned char data[10] = { 1, 2, 3 };
	float v[DIM] = { 1 }, zero[DIM] = { 0 }, nan[DIM] = { NAN };
	struct catalog_new_image in = { .data = data, .len = sizeof data, .mime = "image/png", .width = 1,
					.height = 1, .vec = v, .dim = DIM };
	struct catalog_new_image b = in;
	b.dim = DIM - 1;
	CHECK_EQ_INT(catalog_add(c, &b, NULL, NULL, &err), STORE_ERR_INVALID);
	b = in;
	b.vec = zero;
	CHECK_EQ_INT(catalog_add(c, &b, NULL, NULL, &err), STORE_ERR_INVALID);
	b.vec = nan;
	CHECK_EQ_INT(catalog_add(c, &b, NULL, NULL, &err), STORE_ERR_INVALID);
	b = in;
	b.metadata = "[1]";
	CHECK_EQ_INT(catalog_add(c, &b, NULL, NULL, &err), STORE_ERR_INVALID);
	b.metadata = "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}";
	CHECK_EQ_INT(catalog_add(c, &b, NULL, NULL, &err), STORE_ERR_TOO_LARGE);
	b = in;
	b.filename = "bad\xff.png";
	CHECK_EQ_INT(catalog_add(c, &b, NULL, NULL, &err), STORE_ERR_INVALID);
	b.filename = "new\nline.png";
	CHECK_EQ_INT(catalog_add(c, &b, NULL, NULL, &err), STORE_ERR_INVALID);
	char longname[300];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	b.filename = longname;
	CHECK_EQ_INT(catalog_add(c, &b, NULL, NULL, &err), STORE_ERR_INVALID);
	b = in;
	b.mime = "";
	CHECK_EQ_INT(catalog_add(c, &b, NULL, NULL, &err), STORE_ERR_INVALID);
	b = in;
	b.sha256 = "not-a-digest";
	CHECK_EQ_INT(catalog_add(c, &b, NULL, NULL, &err), STORE_ERR_INVALID);
	b = in;
	b.len = 0;
	CHECK_EQ_INT(catalog_add(c, &b, NULL, NULL, &err), STORE_ERR_INVALID);
	/* Searches refuse bad k and vectors. */
	struct catalog_query q = catalog_default_query();
	struct catalog_results r;
	q.vec = v;
	q.dim = DIM;
	q.k = 0;
	CHECK_EQ_INT(catalog_search(c, &q, &r, &err), STORE_ERR_INVALID);
	q.k = CATALOG_MAX_K + 1;
	CHECK_EQ_INT(catalog_search(c, &q, &r, &err), STORE_ERR_INVALID);
	q.k = 1;
	q.dim = 3;
	CHECK_EQ_INT(catalog_search(c, &q, &r, &err), STORE_ERR_INVALID);
	/* Nothing was stored: no rows, no blobs, no temporary files. */
	struct catalog_stats st;
	catalog_stats(c, &st, &err);
	CHECK_EQ_INT(st.images, 0);
	char blobs[800];
	snprintf(blobs, sizeof blobs, "%s/blobs", dir);
	CHECK_EQ_INT(fx_count_files(blobs), 0);
	snprintf(blobs, sizeof blobs, "%s/tmp", dir);
	CHECK_EQ_INT(fx_count_files(blobs), 0);
	catalog_close(c);
}

static void test_metadata_and_filters(void)
{
	const char *dir = new_dir("data");
	store_error err = { 0 };
	catalog *c = fx_open(dir, model_x.files, DIM, NULL, &err);
	REQUIRE(c);
	int64_t ids[30];
	char shas[30][SHA256_HEX];
	for (int i = 0; i < 30; i++) {
		char meta[64];
		snprintf(meta, sizeof meta, "{\"album\":\"%s\",\"n\":%d}", i % 3 == 0 ? "paris" : "rome", i % 5);
		ids[i] = fx_add(c, 1000 + (uint64_t)i, 64, meta, shas[i], &err);
		REQUIRE(ids[i] > 0);
	}
	/* Ten images are in Paris: ask for 10 with a query near a Rome image
	 * and get all ten, scored exactly. */
	float v[DIM];
	fx_vec(fx_seed_of_sha(shas[1]), v, DIM);
	struct store_filter f[] = { { "album", "paris" } };
	struct catalog_query q = catalog_default_query();
	q.vec = v;
	q.dim = DIM;
	q.k = 10;
	q.sel.filters = f;
	q.sel.n_filters = 1;
	struct catalog_results r;
	REQUIRE(catalog_search(c, &q, &r, &err) == 0);
	CHECK_EQ_INT(r.n, 10);
	CHECK(r.exhaustive);
	CHECK(r.exact_scan);
	for (size_t i = 0; i < r.n; i++) {
		CHECK_CONTAINS(r.hits[i].image.metadata, "paris");
		if (i)
			CHECK(r.hits[i - 1].score >= r.hits[i].score);
	}
	catalog_results_free(&r);
	/* Numbers by their JSON text, combined with a string filter. */
	struct store_filter f2[] = { { "album", "paris" }, { "n", "0" } };
	q.sel.filters = f2;
	q.sel.n_filters = 2;
	REQUIRE(catalog_search(c, &q, &r, &err) == 0);
	CHECK_EQ_INT(r.n, 2);   /* i = 0 and 15 */
	catalog_results_free(&r);

	/* A merge patch moves an image from Rome to Paris. */
	const char *patch = "{\"album\":\"paris\",\"n\":null,\"tags\":[\"x\"]}";
	struct store_image img;
	REQUIRE(catalog_patch_metadata(c, ids[1], patch, strlen(patch), 0, 0, &img, &err) == 0);
	CHECK_EQ_STR(img.metadata, "{\"album\":\"paris\",\"tags\":[\"x\"]}");
	store_image_clear(&img);
	q.sel.filters = f;
	q.sel.n_filters = 1;
	q.k = 1;
	REQUIRE(catalog_search(c, &q, &r, &err) == 0);
	CHECK_EQ_INT(r.n, 1);
	CHECK_EQ_INT(r.n ? r.hits[0].image.id : 0, ids[1]);
	catalog_results_free(&r);
	CHECK_EQ_INT(catalog_patch_metadata(c, 424242, "{}", 2, 0, 0, NULL, &err), STORE_ERR_NOT_FOUND);
	/* A caller's lower limits hold for the merged result: 40 bytes, depth 2. */
	const char *longer = "{\"note\":\"0123456789\"}", *deeper = "{\"d\":{\"e\":{}}}";
	CHECK_EQ_INT(catalog_patch_metadata(c, ids[1], longer, strlen(longer), 40, 2, NULL, &err),
		     STORE_ERR_TOO_LARGE);
	CHECK_EQ_INT(catalog_patch_metadata(c, ids[1], deeper, strlen(deeper), 400, 2, NULL, &err),
		     STORE_ERR_TOO_LARGE);
	REQUIRE(catalog_get(c, ids[1], &img, &err) == 0);
	CHECK_EQ_STR(img.metadata, "{\"album\":\"paris\",\"tags\":[\"x\"]}");
	store_image_clear(&img);
	REQUIRE(catalog_patch_metadata(c, ids[1], longer, strlen(longer), 60, 2, NULL, &err) == 0);

	/* created_at range: after the 20th image only. */
	struct store_image i20;
	REQUIRE(catalog_get(c, ids[20], &i20, &err) == 0);
	q.sel.filters = NULL;
	q.sel.n_filters = 0;
	q.k = 30;
	q.sel.has_after = 1;
	q.sel.created_after = i20.created_at;
	store_image_clear(&i20);
	REQUIRE(catalog_search(c, &q, &r, &err) == 0);
	CHECK_EQ_INT(r.n, 9);
	for (size_t i = 0; i < r.n; i++)
		CHECK(r.hits[i].image.id > ids[20]);
	catalog_results_free(&r);
	catalog_close(c);
}

static void test_filter_overfetch(void)
{
	const char *dir = new_dir("data");
	struct catalog_params p = catalog_default_params();
	p.data_dir = dir;
	p.model_files = model_x.files;
	p.index.dim = DIM;
	p.exact_filter_limit = 5;   /* force the over-fetch path */
	catalog *c = NULL;
	store_error err = { 0 };
	REQUIRE(catalog_open(&p, &c, NULL, &err) == 0);
	char shas[40][SHA256_HEX];
	for (int i = 0; i < 40; i++)
		REQUIRE(fx_add(c, 5000 + (uint64_t)i, 64, i % 2 ? "{\"odd\":true}" : "{\"odd\":false}",
			       shas[i], &err) > 0);
	float v[DIM];
	fx_vec(fx_seed_of_sha(shas[0]), v, DIM);
	struct store_filter f[] = { { "odd", "true" } };
	struct catalog_query q = catalog_default_query();
	q.vec = v;
	q.dim = DIM;
	q.k = 5;
	q.sel.filters = f;
	q.sel.n_filters = 1;
	struct catalog_results over, exact;
	REQUIRE(catalog_search(c, &q, &over, &err) == 0);
	CHECK(!over.exact_scan);
	CHECK_EQ_INT(over.n, 5);
	catalog_close(c);
	/* The same query, scored exactly, agrees (the index here is exact). */
	p.exact_filter_limit = 100000;
	REQUIRE(catalog_open(&p, &c, NULL, &err) == 0);
	REQUIRE(catalog_search(c, &q, &exact, &err) == 0);
	CHECK(exact.exact_scan);
	CHECK_EQ_INT(exact.n, over.n);
	for (size_t i = 0; i < exact.n && i < over.n; i++)
		CHECK_EQ_INT(exact.hits[i].image.id, over.hits[i].image.id);
	CHECK_EQ_INT(over.exhaustive, exact.exhaustive);
	catalog_results_free(&over);
	catalog_results_free(&exact);
	catalog_close(c);
}

static void test_list_cursor(void)
{
	const char *dir = new_dir("data");
	store_error err = { 0 };
	catalog *c = fx_open(dir, model_x.files, DIM, NULL, &err);
	REQUIRE(c);
	int64_t ids[7];
	for (int i = 0; i < 7; i++)
		ids[i] = fx_add(c, 77 + (uint64_t)i, 32, NULL, NULL, &err);
	struct store_image *items;
	size_t n;
	int64_t next;
	REQUIRE(catalog_list(c, NULL, 0, 3, &items, &n, &next, &err) == 0);
	CHECK_EQ_INT(n, 3);
	CHECK_EQ_INT(items[0].id, ids[6]);
	CHECK_EQ_INT(next, ids[4]);
	store_images_free(items, n);
	fx_add(c, 999, 32, NULL, NULL, &err);   /* newer: does not shift the next page */
	REQUIRE(catalog_list(c, NULL, next, 3, &items, &n, &next, &err) == 0);
	CHECK_EQ_INT(n, 3);
	CHECK_EQ_INT(items[0].id, ids[3]);
	store_images_free(items, n);
	REQUIRE(catalog_list(c, NULL, next, 3, &items, &n, &next, &err) == 0);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_INT(next, 0);
	store_images_free(items, n);
	CHECK_EQ_INT(catalog_list(c, NULL, 0, 0, &items, &n, &next, &err), STORE_ERR_INVALID);
	CHECK_EQ_INT(catalog_list(c, NULL, 0, CATALOG_MAX_LIST + 1, &items, &n, &next, &err), STORE_ERR_INVALID);
	catalog_close(c);
}

static void test_restart_and_replay(void)
{
	const char *dir = new_dir("data");
	char copy[800], cmd[2000];
	snprintf(copy, sizeof copy, "%s-copy", dir);
	store_error err = { 0 };
	struct catalog_open_report rep;
	catalog *c = fx_open(dir, model_x.files, DIM, &rep, &err);
	REQUIRE(c);
	char shas[30][SHA256_HEX];
	int64_t ids[30];
	for (int i = 0; i < 20; i++)
		ids[i] = fx_add(c, 300 + (uint64_t)i, 50, NULL, shas[i], &err);
	REQUIRE(catalog_save_index(c, &err) == 0);
	CHECK_EQ_INT(catalog_unsaved_changes(c), 0);
	for (int i = 20; i < 30; i++)
		ids[i] = fx_add(c, 300 + (uint64_t)i, 50, NULL, shas[i], &err);
	for (int i = 0; i < 4; i++)
		REQUIRE(catalog_delete(c, ids[i * 5], &err) == 0);
	CHECK_EQ_INT(catalog_unsaved_changes(c), 14);
	/* A crash image: the files as they are now, index 14 changes behind. */
	snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", dir, copy);
	REQUIRE(run(cmd) == 0);
	catalog_close(c);

	catalog *d = fx_open(copy, model_x.files, DIM, &rep, &err);
	REQUIRE(d);
	CHECK(rep.index_loaded);
	CHECK(!rep.index_rebuilt);
	CHECK_EQ_INT(rep.replayed_adds, 10);
	CHECK_EQ_INT(rep.replayed_removes, 4);
	CHECK_CONTAINS(rep.index_message, "replayed");
	for (int i = 0; i < 30; i++) {
		int64_t top = fx_top1(d, shas[i], NULL);
		if (i % 5 == 0 && i < 20)
			CHECK(top != ids[i]);
		else
			CHECK_EQ_INT(top, ids[i]);
	}
	int problems = 0;
	CHECK_EQ_INT(catalog_check(d, fx_count_problem, &problems, &err), 0);
	catalog_close(d);

	/* A clean restart of the original: loaded, nothing to replay, no scan. */
	c = fx_open(dir, model_x.files, DIM, &rep, &err);
	REQUIRE(c);
	CHECK(rep.index_loaded);
	CHECK_EQ_INT(rep.replayed_adds + rep.replayed_removes, 0);
	CHECK_EQ_INT(fx_top1(c, shas[29], NULL), ids[29]);
	catalog_close(c);
}

static void damage_and_reopen(const char *what, void (*damage)(const char *path))
{
	const char *dir = new_dir("data");
	store_error err = { 0 };
	struct catalog_open_report rep;
	catalog *c = fx_open(dir, model_x.files, DIM, &rep, &err);
	REQUIRE(c);
	char shas[25][SHA256_HEX];
	int64_t ids[25];
	for (int i = 0; i < 25; i++)
		ids[i] = fx_add(c, 700 + (uint64_t)i, 40, NULL, shas[i], &err);
	catalog_delete(c, ids[7], &err);
	catalog_close(c);
	char index[800];
	snprintf(index, sizeof index, "%s/index.faiss", dir);
	REQUIRE(file_exists(index));
	damage(index);
	c = fx_open(dir, model_x.files, DIM, &rep, &err);
	if (!c)
		fprintf(stderr, "  %s: %s\n", what, err.msg);
	REQUIRE(c);
	CHECK(rep.index_rebuilt);
	CHECK(!rep.index_loaded);
	CHECK_CONTAINS(rep.index_message, "rebuilt");
	for (int i = 0; i < 25; i++) {
		if (i == 7)
			CHECK(fx_top1(c, shas[i], NULL) != ids[i]);
		else
			CHECK_EQ_INT(fx_top1(c, shas[i], NULL), ids[i]);
	}
	struct catalog_stats st;
	catalog_stats(c, &st, &err);
	CHECK_EQ_INT(st.index_count, 24);
	catalog_close(c);
	/* The rebuilt index was saved: the next start loads it. */
	c = fx_open(dir, model_x.files, DIM, &rep, &err);
	REQUIRE(c);
	CHECK(rep.index_loaded);
	catalog_close(c);
}

static void corrupt_middle(const char *path)
{
	size_t len = 0;
	unsigned char *b = harness_read_file(path, &len);
	if (!b)
		return;
	for (size_t i = len / 3; i < len / 3 + 64 && i < len; i++)
		b[i] ^= 0x5a;
	FILE *f = fopen(path, "wb");
	fwrite(b, 1, len, f);
	fclose(f);
	free(b);
}

static void truncate_half(const char *path)
{
	struct stat sb;
	stat(path, &sb);
	if (truncate(path, sb.st_size / 2) != 0)
		perror("truncate");
}

static void remove_file(const char *path)
{
	unlink(path);
}

static void garbage(const char *path)
{
	FILE *f = fopen(path, "wb");
	fputs("this is not an index", f);
	fclose(f);
}

static void empty_file(const char *path)
{
	FILE *f = fopen(path, "wb");
	fclose(f);
}

static void test_corrupt_index_rebuilds(void) { damage_and_reopen("corrupt", corrupt_middle); }
static void test_truncated_index_rebuilds(void) { damage_and_reopen("truncated", truncate_half); }
static void test_missing_index_rebuilds(void) { damage_and_reopen("missing", remove_file); }
static void test_garbage_index_rebuilds(void) { damage_and_reopen("garbage", garbage); }
static void test_empty_index_rebuilds(void) { damage_and_reopen("empty", empty_file); }

static void test_index_count_disagrees_rebuilds(void)
{
	const char *dir = new_dir("data");
	store_error err = { 0 };
	struct catalog_open_report rep;
	catalog *c = fx_open(dir, model_x.files, DIM, &rep, &err);
	REQUIRE(c);
	char sha[SHA256_HEX];
	for (int i = 0; i < 5; i++)
		fx_add(c, 40 + (uint64_t)i, 40, NULL, sha, &err);
	catalog_close(c);
	/* A row removed behind clipd's back (no change log entry). */
	char db[800];
	snprintf(db, sizeof db, "%s/clipd.db", dir);
	sqlite3 *h = NULL;
	sqlite3_open(db, &h);
	sqlite3_exec(h, "PRAGMA foreign_keys=ON; DELETE FROM images WHERE id = 2", NULL, NULL, NULL);
	sqlite3_close(h);
	c = fx_open(dir, model_x.files, DIM, &rep, &err);
	REQUIRE(c);
	CHECK(rep.index_rebuilt);
	CHECK_CONTAINS(rep.index_message, "holds 5 vectors");
	struct catalog_stats st;
	catalog_stats(c, &st, &err);
	CHECK_EQ_INT(st.index_count, 4);
	catalog_close(c);
}

static void test_index_of_other_model_rebuilds(void)
{
	const char *a = new_dir("a");
	char b[800], cmd[2000];
	snprintf(b, sizeof b, "%s-b", a);
	store_error err = { 0 };
	struct catalog_open_report rep;
	catalog *c = fx_open(a, model_x.files, DIM, &rep, &err);
	REQUIRE(c);
	fx_add(c, 1, 40, NULL, NULL, &err);
	catalog_close(c);
	c = fx_open(b, model_y.files, DIM, &rep, &err);
	REQUIRE(c);
	char sha[SHA256_HEX];
	int64_t id = fx_add(c, 2, 40, NULL, sha, &err);
	catalog_close(c);
	/* b's index file replaced by a's (another model's). */
	snprintf(cmd, sizeof cmd, "cp '%s/index.faiss' '%s/index.faiss'", a, b);
	REQUIRE(run(cmd) == 0);
	c = fx_open(b, model_y.files, DIM, &rep, &err);
	REQUIRE(c);
	CHECK(rep.index_rebuilt);
	CHECK_CONTAINS(rep.index_message, "another model");
	CHECK_EQ_INT(fx_top1(c, sha, NULL), id);
	catalog_close(c);
}

static void test_other_model_refused(void)
{
	const char *dir = new_dir("data");
	store_error err = { 0 };
	struct catalog_open_report rep;
	catalog *c = fx_open(dir, model_x.files, DIM, &rep, &err);
	REQUIRE(c);
	char x_fp[STORE_FINGERPRINT_HEX];
	memcpy(x_fp, catalog_model(c)->fingerprint, sizeof x_fp);
	REQUIRE(fx_add(c, 1, 40, NULL, NULL, &err) > 0);
	catalog_close(c);

	struct catalog_params p = catalog_default_params();
	p.data_dir = dir;
	p.model_files = model_y.files;
	p.model_dir = model_y.dir;
	p.index.dim = DIM;
	c = NULL;
	CHECK_EQ_INT(catalog_open(&p, &c, &rep, &err), STORE_ERR_MODEL);
	CHECK(c == NULL);
	CHECK_CONTAINS(err.msg, "model-x");
	CHECK_CONTAINS(err.msg, "model-y");
	CHECK_CONTAINS(err.msg, "clipd reembed --model");
	CHECK_CONTAINS(err.msg, model_y.dir);
	/* The advice is never cut off, however long the paths it names. */
	static char long_dir[3000];
	size_t n = (size_t)snprintf(long_dir, sizeof long_dir, "%s", model_y.dir);
	while (n + 12 < sizeof long_dir - 1) {
		memcpy(long_dir + n, "/deeper/dir", 11);
		n += 11;
	}
	long_dir[n] = 0;
	p.model_dir = long_dir;
	char advice[3200];
	snprintf(advice, sizeof advice, "`clipd reembed --model %s --data %s`", long_dir, dir);
	CHECK_EQ_INT(catalog_open(&p, &c, &rep, &err), STORE_ERR_MODEL);
	CHECK(strstr(err.msg, advice) != NULL);
	/* The refusal changed nothing: the right model still opens. */
	c = fx_open(dir, model_x.files, DIM, &rep, &err);
	REQUIRE(c);
	CHECK_EQ_STR(catalog_model(c)->fingerprint, x_fp);
	CHECK(!rep.model_registered);
	catalog_close(c);
	/* Same files, different dimension: refused too. */
	CHECK(fx_open(dir, model_x.files, DIM + 1, &rep, &err) == NULL);
	CHECK_EQ_INT(err.code, STORE_ERR_MODEL);
	/* Same files at bf16 precision: another model, named so, and the
	 * advice converts with the precision. */
	p.model_files = model_x.files;
	p.model_dir = model_x.dir;
	p.model_precision = "bf16";
	CHECK_EQ_INT(catalog_open(&p, &c, &rep, &err), STORE_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "not of model-x at precision bf16");
	snprintf(advice, sizeof advice, "`clipd reembed --model %s --precision bf16 --data %s`", model_x.dir, dir);
	CHECK(strstr(err.msg, advice) != NULL);

	/* An empty data directory simply takes the new model. */
	const char *empty = new_dir("empty");
	c = fx_open(empty, model_x.files, DIM, &rep, &err);
	REQUIRE(c);
	catalog_close(c);
	c = fx_open(empty, model_y.files, DIM, &rep, &err);
	REQUIRE(c);
	CHECK(rep.model_registered);
	CHECK_EQ_STR(catalog_model(c)->name, "model-y");
	catalog_close(c);
}

static void test_real_checkpoints_fingerprint_apart(void)
{
	/* The two test checkpoints are different models; their fingerprints
	 * differ, and the cache makes the second fingerprint free. */
	const char *hf[] = { TEST_DATA_DIR "/tiny-clip-hf/config.json",
			     TEST_DATA_DIR "/tiny-clip-hf/model.safetensors", NULL };
	const char *oc[] = { TEST_DATA_DIR "/tiny-clip-openclip/open_clip_config.json",
			     TEST_DATA_DIR "/tiny-clip-openclip/open_clip_model.safetensors", NULL };
	char a[STORE_FINGERPRINT_HEX], b[STORE_FINGERPRINT_HEX], a2[STORE_FINGERPRINT_HEX];
	store_error err = { 0 };
	double ms = 0;
	char db[700];
	snprintf(db, sizeof db, "%s/fp.db", harness_tmpdir());
	store *st = NULL;
	struct store_params sp = store_default_params();
	REQUIRE(store_open(db, &sp, &st, NULL, &err) == 0);
	REQUIRE(store_fingerprint(st, hf, NULL, a, &ms, &err) == 0);
	CHECK(ms > 0);
	REQUIRE(store_fingerprint(st, oc, NULL, b, NULL, &err) == 0);
	CHECK(strcmp(a, b) != 0);
	REQUIRE(store_fingerprint(st, hf, NULL, a2, &ms, &err) == 0);
	CHECK_EQ_STR(a2, a);
	CHECK(ms == 0);   /* every file hash came from the cache */
	/* Without a cache, the same answer. */
	REQUIRE(catalog_fingerprint(NULL, hf, NULL, a2, NULL, &err) == 0);
	CHECK_EQ_STR(a2, a);
	/* fp32 is the files alone (as before precisions); bf16 vectors are
	 * another model's */
	REQUIRE(store_fingerprint(st, hf, "fp32", a2, NULL, &err) == 0);
	CHECK_EQ_STR(a2, a);
	REQUIRE(store_fingerprint(st, hf, "bf16", a2, NULL, &err) == 0);
	CHECK(strcmp(a2, a) != 0);
	/* Order of files does not matter; a missing file is an error. */
	const char *hf_rev[] = { hf[1], hf[0], NULL };
	REQUIRE(store_fingerprint(st, hf_rev, NULL, a2, NULL, &err) == 0);
	CHECK_EQ_STR(a2, a);
	const char *missing[] = { TEST_DATA_DIR "/nope.json", NULL };
	CHECK_EQ_INT(store_fingerprint(st, missing, NULL, a2, NULL, &err), STORE_ERR_IO);
	store_close(st);
}

static void test_fingerprint_follows_content(void)
{
	char dir[700];
	snprintf(dir, sizeof dir, "%s", harness_tmpdir());
	struct fake_model m;
	fake_model_make(&m, dir, "z");
	char db[800];
	snprintf(db, sizeof db, "%s/fp.db", dir);
	store *st = NULL;
	store_error err = { 0 };
	struct store_params sp = store_default_params();
	REQUIRE(store_open(db, &sp, &st, NULL, &err) == 0);
	char a[STORE_FINGERPRINT_HEX], b[STORE_FINGERPRINT_HEX];
	REQUIRE(store_fingerprint(st, m.files, NULL, a, NULL, &err) == 0);
	/* Same size, same mtime, new bytes at the same inode: a fine-tune with
	 * identical headers. The cache keys include mtime, so rewrite and
	 * bump the mtime as any writer would. */
	FILE *f = fopen(m.weights, "r+");
	REQUIRE(f);
	fputs("Z", f);
	fclose(f);
	struct timespec ts[2] = { { 0, UTIME_NOW }, { time(NULL) + 5, 0 } };
	utimensat(AT_FDCWD, m.weights, ts, 0);
	REQUIRE(store_fingerprint(st, m.files, NULL, b, NULL, &err) == 0);
	CHECK(strcmp(a, b) != 0);
	store_close(st);
}

static void test_lock(void)
{
	const char *dir = new_dir("data");
	store_error err = { 0 };
	catalog *c = fx_open(dir, model_x.files, DIM, NULL, &err);
	REQUIRE(c);
	catalog *d = fx_open(dir, model_x.files, DIM, NULL, &err);
	CHECK(d == NULL);
	CHECK_EQ_INT(err.code, STORE_ERR_LOCKED);
	CHECK_CONTAINS(err.msg, "in use");
	CHECK_CONTAINS(err.msg, dir);
	/* Read-only users (check, index stats) do not need the lock. */
	struct catalog_params p = catalog_default_params();
	p.data_dir = dir;
	p.readonly = 1;
	REQUIRE(catalog_open(&p, &d, NULL, &err) == 0);
	CHECK_EQ_INT(catalog_add(d, &(struct catalog_new_image){ 0 }, NULL, NULL, &err), STORE_ERR_INVALID);
	catalog_close(d);
	catalog_close(c);
	c = fx_open(dir, model_x.files, DIM, NULL, &err);
	CHECK(c != NULL);
	catalog_close(c);
}

static void test_cleanup_after_crash(void)
{
	const char *dir = new_dir("data");
	store_error err = { 0 };
	struct catalog_open_report rep;
	catalog *c = fx_open(dir, model_x.files, DIM, &rep, &err);
	REQUIRE(c);
	char keep[SHA256_HEX];
	int64_t id = fx_add(c, 1, 40, NULL, keep, &err);
	catalog_close(c);
	/* What a crash leaves: temporary files, a blob renamed into place
	 * whose row never committed, no clean-shutdown marker. */
	char path[1000];
	const char *orphan = "abcd000000000000000000000000000000000000000000000000000000000000";
	snprintf(path, sizeof path, "%s/blobs/ab", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/blobs/ab/cd", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/blobs/ab/cd/%s", dir, orphan);
	FILE *f = fopen(path, "w");
	fputs("orphan", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/tmp/blob-123456", dir);
	f = fopen(path, "w");
	fputs("partial", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/index.faiss.tmp", dir);
	f = fopen(path, "w");
	fputs("partial", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/clean", dir);
	REQUIRE(unlink(path) == 0);

	c = fx_open(dir, model_x.files, DIM, &rep, &err);
	REQUIRE(c);
	CHECK_EQ_INT(rep.tmp_removed, 2);
	CHECK_EQ_INT(rep.orphans_removed, 1);
	snprintf(path, sizeof path, "%s/blobs/ab/cd/%s", dir, orphan);
	CHECK(!file_exists(path));
	REQUIRE(catalog_blob_path(c, keep, path, sizeof path, &err) == 0);
	CHECK(file_exists(path));
	CHECK_EQ_INT(fx_top1(c, keep, NULL), id);
	catalog_close(c);
}

struct race {
	catalog *c;
	unsigned char data[64];
	float v[DIM];
	int rounds;
};

static void *race_adder(void *arg)
{
	struct race *r = arg;
	for (int i = 0; i < r->rounds; i++) {
		struct catalog_new_image in = { .data = r->data, .len = sizeof r->data, .mime = "image/png",
						.width = 1, .height = 1, .vec = r->v, .dim = DIM };
		catalog_add(r->c, &in, NULL, NULL, NULL);
	}
	return NULL;
}

static void *race_deleter(void *arg)
{
	struct race *r = arg;
	char sha[SHA256_HEX];
	sha256_hex(r->data, sizeof r->data, sha);
	for (int i = 0; i < r->rounds * 4; i++) {
		struct store_image img;
		if (catalog_get_by_sha256(r->c, sha, &img, NULL) == 0) {
			catalog_delete(r->c, img.id, NULL);
			store_image_clear(&img);
		}
	}
	return NULL;
}

static void test_upload_delete_race_keeps_blob(void)
{
	const char *dir = new_dir("data");
	store_error err = { 0 };
	catalog *c = fx_open(dir, model_x.files, DIM, NULL, &err);
	REQUIRE(c);
	struct race r = { .c = c, .rounds = 150 };
	memset(r.data, 0x42, sizeof r.data);
	fx_vec(9, r.v, DIM);
	pthread_t a, b;
	pthread_create(&a, NULL, race_adder, &r);
	pthread_create(&b, NULL, race_deleter, &r);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	/* Whatever the interleaving: a row has its blob, and check is clean. */
	int problems = 0;
	CHECK_EQ_INT(catalog_check(c, fx_count_problem, &problems, &err), 0);
	catalog_close(c);
}

static void test_check_reports_problems(void)
{
	const char *dir = new_dir("data");
	store_error err = { 0 };
	catalog *c = fx_open(dir, model_x.files, DIM, NULL, &err);
	REQUIRE(c);
	char sha[SHA256_HEX], sha2[SHA256_HEX];
	fx_add(c, 1, 40, NULL, sha, &err);
	int64_t id2 = fx_add(c, 2, 40, NULL, sha2, &err);
	REQUIRE(catalog_save_index(c, &err) == 0);
	int problems = 0;
	CHECK_EQ_INT(catalog_check(c, fx_count_problem, &problems, &err), 0);
	char path[1000];
	catalog_blob_path(c, sha, path, sizeof path, &err);
	unlink(path);
	catalog_close(c);

	struct catalog_params p = catalog_default_params();
	p.data_dir = dir;
	p.readonly = 1;
	p.no_index = 1;
	REQUIRE(catalog_open(&p, &c, NULL, &err) == 0);
	problems = 0;
	CHECK_EQ_INT(catalog_check(c, NULL, NULL, &err), 1);
	catalog_close(c);

	/* A row removed behind clipd's back (without foreign keys, so its
	 * vector stays): the foreign-key check, the missing blob and the
	 * index count all notice. */
	char db[800], sql[200];
	snprintf(db, sizeof db, "%s/clipd.db", dir);
	snprintf(sql, sizeof sql, "DELETE FROM images WHERE id = %lld", (long long)id2);
	sqlite3 *h = NULL;
	sqlite3_open(db, &h);
	sqlite3_exec(h, sql, NULL, NULL, NULL);
	sqlite3_close(h);
	REQUIRE(catalog_open(&p, &c, NULL, &err) == 0);
	CHECK_EQ_INT(catalog_check(c, NULL, NULL, &err), 3);
	catalog_close(c);
}

/* Rows 1..n with clustered unit vectors (dim 32), written straight into
 * the database in one transaction (thousands of fsynced adds would take
 * minutes): as a large collection looks to the catalog. No blobs. */
#define IVF_DIM 32
static void cluster_vec(int i, float *v)
{
	float centre[IVF_DIM];
	fx_vec(1000 + (uint64_t)(i % 40), centre, IVF_DIM);
	fx_vec(50000 + (uint64_t)i, v, IVF_DIM);
	double ss = 0;
	for (int d = 0; d < IVF_DIM; d++) {
		v[d] = centre[d] + 0.35f * v[d];
		ss += (double)v[d] * v[d];
	}
	for (int d = 0; d < IVF_DIM; d++)
		v[d] = (float)(v[d] / sqrt(ss));
}

static int bulk_insert(const char *dir, int first, int n)
{
	char db[800];
	snprintf(db, sizeof db, "%s/clipd.db", dir);
	sqlite3 *h = NULL;
	sqlite3_stmt *img = NULL, *vec = NULL, *log = NULL;
	int rc = sqlite3_open(db, &h);
	rc |= sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	rc |= sqlite3_prepare_v2(h, "INSERT INTO images (id, sha256, mime, width, height, bytes, created_at) "
				 "VALUES (?1, ?2, 'image/png', 1, 1, 1, ?1)", -1, &img, NULL);
	rc |= sqlite3_prepare_v2(h, "INSERT INTO vectors (image_id, model, vec) VALUES (?1, "
				 "(SELECT value FROM settings WHERE key = 'active_model'), ?2)", -1, &vec, NULL);
	rc |= sqlite3_prepare_v2(h, "INSERT INTO changes (op, image_id) VALUES ('add', ?1)", -1, &log, NULL);
	for (int i = first; i < first + n && rc == SQLITE_OK; i++) {
		char sha[SHA256_HEX], name[32];
		float v[IVF_DIM];
		snprintf(name, sizeof name, "bulk-%d", i);
		sha256_hex(name, strlen(name), sha);
		cluster_vec(i, v);
		sqlite3_bind_int64(img, 1, i);
		sqlite3_bind_text(img, 2, sha, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(vec, 1, i);
		sqlite3_bind_blob(vec, 2, v, sizeof v, SQLITE_TRANSIENT);
		sqlite3_bind_int64(log, 1, i);
		if (sqlite3_step(img) != SQLITE_DONE || sqlite3_step(vec) != SQLITE_DONE ||
		    sqlite3_step(log) != SQLITE_DONE)
			rc = SQLITE_ERROR;
		sqlite3_reset(img);
		sqlite3_reset(vec);
		sqlite3_reset(log);
	}
	sqlite3_finalize(img);
	sqlite3_finalize(vec);
	sqlite3_finalize(log);
	rc |= sqlite3_exec(h, rc == SQLITE_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "  bulk insert: %s\n", sqlite3_errmsg(h));
	sqlite3_close(h);
	return rc == SQLITE_OK ? 0 : -1;
}

static catalog *open_ivf(const char *dir, const char *factory, size_t threshold, struct catalog_open_report *rep)
{
	struct catalog_params p = catalog_default_params();
	p.data_dir = dir;
	p.model_files = model_x.files;
	p.index.dim = IVF_DIM;
	p.index.factory = factory;
	p.index.ivf_threshold = threshold;
	catalog *c = NULL;
	store_error err = { 0 };
	if (catalog_open(&p, &c, rep, &err) != 0)
		fprintf(stderr, "  open: %s\n", err.msg);
	return c;
}

static void test_exact_and_ivf_same_top1(void)
{
	const char *dir = new_dir("data");
	char index[800];
	snprintf(index, sizeof index, "%s/index.faiss", dir);
	struct catalog_open_report rep;
	catalog *c = open_ivf(dir, NULL, 1000, &rep);
	REQUIRE(c);
	catalog_close(c);
	enum { N = 4000, Q = 200 };
	REQUIRE(bulk_insert(dir, 1, N) == 0);
	unlink(index);
	/* Past the threshold: the rebuild at open makes an IVF index. */
	c = open_ivf(dir, NULL, 1000, &rep);
	REQUIRE(c);
	CHECK(rep.index_rebuilt);
	struct catalog_stats st;
	store_error err = { 0 };
	REQUIRE(catalog_stats(c, &st, &err) == 0);
	CHECK(!st.index_exact);
	CHECK_CONTAINS(st.index_type, "IVF");
	CHECK_EQ_INT(st.index_count, N);
	int64_t ivf_top[Q];
	float v[IVF_DIM], score = 0;
	int self = 0;
	for (int i = 0; i < Q; i++) {
		cluster_vec(1 + i * (N / Q), v);
		ivf_top[i] = fx_top1_vec(c, v, &score);
		self += ivf_top[i] == 1 + i * (N / Q);
	}
	/* Unfiltered searches on an approximate index are not exhaustive. */
	struct catalog_query q = catalog_default_query();
	q.vec = v;
	q.dim = IVF_DIM;
	struct catalog_results r;
	REQUIRE(catalog_search(c, &q, &r, &err) == 0);
	CHECK(!r.exhaustive);
	catalog_results_free(&r);
	catalog_close(c);

	/* The same collection with an exact index. */
	unlink(index);
	c = open_ivf(dir, "Flat", 1000, &rep);
	REQUIRE(c);
	REQUIRE(catalog_stats(c, &st, &err) == 0);
	CHECK(st.index_exact);
	int same = 0;
	for (int i = 0; i < Q; i++) {
		cluster_vec(1 + i * (N / Q), v);
		int64_t exact = fx_top1_vec(c, v, &score);
		CHECK_EQ_INT(exact, 1 + i * (N / Q));
		same += exact == ivf_top[i];
	}
	catalog_close(c);
	printf("# IVF top-1 is the vector itself for %d of %d queries\n", self, Q);
	CHECK_EQ_INT(same, Q);
}

static void test_background_retrain_swaps_in_ivf(void)
{
	const char *dir = new_dir("data");
	struct catalog_open_report rep;
	catalog *c = open_ivf(dir, NULL, 1500, &rep);
	REQUIRE(c);
	catalog_close(c);
	REQUIRE(bulk_insert(dir, 1, 1490) == 0);
	c = open_ivf(dir, NULL, 1500, &rep);
	REQUIRE(c);
	struct catalog_stats st;
	store_error err = { 0 };
	REQUIRE(catalog_stats(c, &st, &err) == 0);
	CHECK(st.index_exact);
	CHECK_EQ_INT(st.index_count, 1490);
	/* Adds through the catalog cross the threshold: a background build
	 * trains IVF from the stored vectors while the exact index serves. */
	char shas[20][SHA256_HEX];
	int64_t ids[20];
	for (int i = 0; i < 20; i++)
		ids[i] = fx_add(c, 90000 + (uint64_t)i, 50, NULL, shas[i], &err);
	catalog_wait_index(c);
	REQUIRE(catalog_stats(c, &st, &err) == 0);
	CHECK(!st.index_exact);
	CHECK_EQ_INT(st.index_count, 1510);
	for (int i = 0; i < 20; i++)
		CHECK_EQ_INT(fx_top1(c, shas[i], NULL), ids[i]);
	/* Deletes after the swap reach the new index. */
	REQUIRE(catalog_delete(c, ids[0], &err) == 0);
	CHECK(fx_top1(c, shas[0], NULL) != ids[0]);
	catalog_close(c);
	c = open_ivf(dir, NULL, 1500, &rep);
	REQUIRE(c);
	CHECK(rep.index_loaded);
	REQUIRE(catalog_stats(c, &st, &err) == 0);
	CHECK(!st.index_exact);
	CHECK_EQ_INT(st.index_count, 1509);
	catalog_close(c);
}

static void test_stats_and_save(void)
{
	const char *dir = new_dir("data");
	store_error err = { 0 };
	catalog *c = fx_open(dir, model_x.files, DIM, NULL, &err);
	REQUIRE(c);
	for (int i = 0; i < 3; i++)
		fx_add(c, (uint64_t)i, 40, NULL, NULL, &err);
	struct catalog_stats st;
	REQUIRE(catalog_stats(c, &st, &err) == 0);
	CHECK_EQ_INT(st.images, 3);
	CHECK_EQ_INT(st.index_count, 3);
	CHECK_EQ_INT(st.seq, 3);
	CHECK_EQ_INT(st.saved_seq, 0);
	CHECK(st.index_exact);
	CHECK_EQ_INT(st.model.dim, DIM);
	CHECK_EQ_INT(catalog_unsaved_changes(c), 3);
	REQUIRE(catalog_save_index(c, &err) == 0);
	REQUIRE(catalog_stats(c, &st, &err) == 0);
	CHECK_EQ_INT(st.saved_seq, 3);
	CHECK(st.index_file_bytes > 0);
	CHECK(st.db_bytes > 0);
	CHECK_EQ_INT(catalog_unsaved_changes(c), 0);
	REQUIRE(catalog_rebuild_index(c, &err) == 0);
	REQUIRE(catalog_stats(c, &st, &err) == 0);
	CHECK_EQ_INT(st.index_count, 3);
	catalog_close(c);
}

static void test_blob_remove(void)
{
	const char *dir = new_dir("data");
	store_error err = { 0 };
	catalog *c = fx_open(dir, model_x.files, DIM, NULL, &err);
	REQUIRE(c);
	char sha[SHA256_HEX], path[1000];
	int64_t id = fx_add(c, 7, 100, NULL, sha, &err);
	REQUIRE(id > 0);
	REQUIRE(catalog_blob_path(c, sha, path, sizeof path, &err) == 0);
	CHECK(file_exists(path));
	CHECK_EQ_INT(datadir_remove_blob(dir, sha, &err), 0);
	CHECK(!file_exists(path));
	/* Already gone is no failure: the caller wanted it gone. */
	CHECK_EQ_INT(datadir_remove_blob(dir, sha, &err), 0);
	/* So a delete whose blob is missing succeeds, and leaves no orphan
	 * risk: the next open finds the clean marker. */
	CHECK_EQ_INT(catalog_delete(c, id, &err), 0);
	catalog_close(c);
	char clean[800];
	snprintf(clean, sizeof clean, "%s/clean", dir);
	CHECK(file_exists(clean));
	/* Not a digest: refused, nothing touched. */
	CHECK_EQ_INT(datadir_remove_blob(dir, "../clipd.db", &err), STORE_ERR_INVALID);
	/* What cannot be removed is an error (a directory in the blob's place). */
	REQUIRE(mkdir(path, 0755) == 0);
	CHECK_EQ_INT(datadir_remove_blob(dir, sha, &err), STORE_ERR_IO);
	CHECK_CONTAINS(err.msg, path);
	rmdir(path);
}

static void test_thumbnail_store(void)
{
	const char *dir = new_dir("data");
	store_error err = { 0 };
	catalog *c = fx_open(dir, model_x.files, DIM, NULL, &err);
	REQUIRE(c);
	char sha[SHA256_HEX], path[1000], want[1000], big[1000];
	int64_t id = fx_add(c, 8, 100, NULL, sha, &err);
	REQUIRE(id > 0);
	REQUIRE(catalog_thumb_path(c, sha, 128, path, sizeof path, &err) == 0);
	snprintf(want, sizeof want, "%s/cache/thumbs/%.2s/%s-128-v2.jpg", dir, sha, sha);
	CHECK_EQ_STR(path, want);
	CHECK(!file_exists(path));
	REQUIRE(catalog_put_thumb(c, sha, 128, "jpegbytes", 9, &err) == 0);
	REQUIRE(catalog_put_thumb(c, sha, 512, "JPEG", 4, &err) == 0);
	size_t len = 0;
	unsigned char *back = harness_read_file(path, &len);
	REQUIRE(back);
	CHECK_EQ_INT(len, 9);
	CHECK(!memcmp(back, "jpegbytes", 9));
	free(back);
	snprintf(want, sizeof want, "%s/tmp", dir);
	CHECK_EQ_INT(fx_count_files(want), 0);
	/* Only digests name thumbnails. */
	CHECK_EQ_INT(catalog_thumb_path(c, "abcdef", 256, want, sizeof want, &err), STORE_ERR_INVALID);
	CHECK_EQ_INT(catalog_put_thumb(c, "../../x", 256, "x", 1, &err), STORE_ERR_INVALID);
	/* A delete takes the image's thumbnails with it, every size. */
	REQUIRE(catalog_thumb_path(c, sha, 512, big, sizeof big, &err) == 0);
	CHECK(file_exists(big));
	REQUIRE(catalog_delete(c, id, &err) == 0);
	CHECK(!file_exists(path));
	CHECK(!file_exists(big));
	catalog_close(c);
}

int main(void)
{
	snprintf(base, sizeof base, "%s", harness_tmpdir());
	fake_model_make(&model_x, base, "x");
	fake_model_make(&model_y, base, "y");
	RUN(test_add_search_delete);
	RUN(test_bad_input_changes_nothing);
	RUN(test_metadata_and_filters);
	RUN(test_filter_overfetch);
	RUN(test_list_cursor);
	RUN(test_restart_and_replay);
	RUN(test_corrupt_index_rebuilds);
	RUN(test_truncated_index_rebuilds);
	RUN(test_missing_index_rebuilds);
	RUN(test_garbage_index_rebuilds);
	RUN(test_empty_index_rebuilds);
	RUN(test_index_count_disagrees_rebuilds);
	RUN(test_index_of_other_model_rebuilds);
	RUN(test_other_model_refused);
	RUN(test_real_checkpoints_fingerprint_apart);
	RUN(test_fingerprint_follows_content);
	RUN(test_lock);
	RUN(test_cleanup_after_crash);
	RUN(test_upload_delete_race_keeps_blob);
	RUN(test_check_reports_problems);
	RUN(test_stats_and_save);
	RUN(test_exact_and_ivf_same_top1);
	RUN(test_background_retrain_swaps_in_ivf);
	RUN(test_blob_remove);
	RUN(test_thumbnail_store);
	return harness_done();
}
