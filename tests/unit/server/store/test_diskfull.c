/*
 * Disk full, on a small tmpfs this test mounts (it needs root; elsewhere it
 * exits 77, which meson reports as skipped, with a message): a write that
 * runs out of space fails with STORE_ERR_NOSPACE and a clear message and
 * leaves nothing behind (no row, no blob, no temporary file, check clean);
 * once space is freed, writes succeed again. Both places an add can run
 * out are reached: the blob and the database. The index says a full disk
 * with its own code (IDX_ERR_NOSPACE), set from errno.
 */
#include <errno.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include "catalog_fixture.h"

#define DIM 16

static char mnt[700], dir[800], filler[800];

static long long free_bytes(void)
{
	struct statvfs sv;
	if (statvfs(mnt, &sv) != 0)
		return -1;
	return (long long)sv.f_bavail * (long long)sv.f_frsize;
}

/* Leave about `leave` bytes free by growing the filler file. */
static void fill_leaving(long long leave)
{
	long long now = free_bytes();
	FILE *f = fopen(filler, "ab");
	if (!f)
		return;
	static char block[4096];
	memset(block, 0xee, sizeof block);
	for (long long left = now - leave; left > 0; left -= (long long)sizeof block)
		if (fwrite(block, 1, left < (long long)sizeof block ? (size_t)left : sizeof block, f) == 0)
			break;
	fclose(f);
}

static void free_filler(void)
{
	unlink(filler);
}

/* The state must be exactly the acknowledged images: rows, blobs, index. */
static void check_state(catalog *c, int64_t expected_images, const char *when)
{
	store_error err = { 0 };
	struct catalog_stats st;
	if (catalog_stats(c, &st, &err) != 0) {
		HARNESS_FAIL("%s: stats: %s", when, err.msg);
		return;
	}
	if (st.images != expected_images)
		HARNESS_FAIL("%s: %lld rows, expected %lld", when, (long long)st.images, (long long)expected_images);
	if ((int64_t)st.index_count != expected_images)
		HARNESS_FAIL("%s: index holds %zu, expected %lld", when, st.index_count, (long long)expected_images);
	char path[900];
	snprintf(path, sizeof path, "%s/blobs", dir);
	int blobs = fx_count_files(path);
	if (blobs != expected_images)
		HARNESS_FAIL("%s: %d blob files, expected %lld", when, blobs, (long long)expected_images);
	snprintf(path, sizeof path, "%s/tmp", dir);
	int tmp = fx_count_files(path);
	if (tmp != 0)
		HARNESS_FAIL("%s: %d temporary files left", when, tmp);
	int problems = 0;
	int n = catalog_check(c, fx_count_problem, &problems, &err);
	if (n != 0)
		HARNESS_FAIL("%s: check found %d problems", when, n);
}

static void test_disk_full(void)
{
	struct fake_model m;
	const char *base = harness_tmpdir();
	fake_model_make(&m, base, "full");   /* outside the small filesystem */
	store_error err = { 0 };
	struct catalog_open_report rep;
	catalog *c = fx_open(dir, m.files, DIM, &rep, &err);
	if (!c)
		fprintf(stderr, "  open: %s\n", err.msg);
	REQUIRE(c);
	int64_t images = 0;
	for (int i = 0; i < 5; i++) {
		REQUIRE(fx_add(c, 10 + (uint64_t)i, 20000, NULL, NULL, &err) > 0);
		images++;
	}
	check_state(c, images, "before");

	/* 1. Out of space for the original: a blob bigger than what is left. */
	fill_leaving(64 * 1024);
	char sha[SHA256_HEX];
	int64_t id = fx_add(c, 100, 256 * 1024, NULL, sha, &err);
	CHECK_EQ_INT(id, -1);
	CHECK_EQ_INT(err.code, STORE_ERR_NOSPACE);
	CHECK_CONTAINS(err.msg, "no space left on device");
	check_state(c, images, "after the blob ran out of space");
	struct store_image img;
	CHECK_EQ_INT(catalog_get_by_sha256(c, sha, &img, &err), STORE_ERR_NOT_FOUND);

	/* 2. Out of space for the database: the blob fits, the transaction
	 * does not. Walk the free space down until an add fails after its blob
	 * was written; every failure must leave nothing behind, whichever
	 * write ran out. */
	int db_full = 0, blob_full = 0, attempts = 0;
	for (long long leave = 48 * 1024; leave >= 0 && !db_full; leave -= 2048) {
		free_filler();
		fill_leaving(leave);
		for (int k = 0; k < 8; k++) {
			attempts++;
			id = fx_add(c, 1000 + (uint64_t)attempts, 1500, "{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", sha, &err);
			if (id > 0) {
				images++;
				continue;
			}
			if (err.code != STORE_ERR_NOSPACE) {
				HARNESS_FAIL("an add failed with %d (%s), not NOSPACE", err.code, err.msg);
				return;
			}
			if (strstr(err.msg, "cannot write") || strstr(err.msg, "cannot create") ||
			    strstr(err.msg, "cannot sync") || strstr(err.msg, "cannot rename"))
				blob_full++;
			else
				db_full++;
			check_state(c, images, "after an add ran out of space");
			CHECK_EQ_INT(catalog_get_by_sha256(c, sha, &img, &err), STORE_ERR_NOT_FOUND);
			break;
		}
	}
	printf("# %d attempts: %d failed writing the blob, %d writing the database\n", attempts, blob_full, db_full);
	CHECK(db_full > 0);

	/* Saving the index on a full disk fails cleanly and keeps the old file. */
	free_filler();
	fill_leaving(0);
	int src = catalog_save_index(c, &err);
	if (src != 0) {
		CHECK_EQ_INT(err.code, STORE_ERR_NOSPACE);
		CHECK_CONTAINS(err.msg, "space");
	}
	printf("# index save on a full disk: %s\n", src ? err.msg : "fitted");
	char cmd[2400];
	snprintf(cmd, sizeof cmd, "test -s '%s/index.faiss' && test -z \"$(find '%s' -maxdepth 1 -name '*index.faiss?*')\"",
		 dir, dir);
	CHECK(system(cmd) == 0);

	/* 3. Space freed: writes succeed again, and a restart finds it all. */
	free_filler();
	REQUIRE(fx_add(c, 5000, 20000, NULL, sha, &err) > 0);
	images++;
	check_state(c, images, "after space was freed");
	catalog_close(c);
	c = fx_open(dir, m.files, DIM, &rep, &err);
	REQUIRE(c);
	check_state(c, images, "after a restart");
	float score = 0;
	CHECK(fx_top1(c, sha, &score) > 0);
	CHECK_NEAR(score, 1.0, 1e-5);
	catalog_close(c);
}

static void test_index_save_nospace(void)
{
	struct idx_params p = idx_default_params();
	p.dim = DIM;
	idx *ix = NULL;
	idx_error ie = { 0 };
	REQUIRE(idx_new(&p, &ix, &ie) == 0);
	enum { N = 2000 };
	static float vecs[N * DIM];
	static int64_t ids[N];
	for (int i = 0; i < N; i++) {
		ids[i] = i + 1;
		fx_vec((uint64_t)i, vecs + (size_t)i * DIM, DIM);
	}
	REQUIRE(idx_add(ix, ids, vecs, N, 1, &ie) == 0);
	char path[900];
	snprintf(path, sizeof path, "%s/full.faiss", mnt);
	free_filler();
	fill_leaving(0);
	CHECK_EQ_INT(idx_save(ix, path, "fp", &ie), IDX_ERR_NOSPACE);
	CHECK_CONTAINS(ie.msg, "No space left on device");
	CHECK(access(path, F_OK) != 0);
	/* With room again, the same save works: the code was the disk's. */
	free_filler();
	CHECK_EQ_INT(idx_save(ix, path, "fp", &ie), 0);
	unlink(path);
	idx_free(ix);
}

int main(void)
{
	snprintf(mnt, sizeof mnt, "%s/small", harness_tmpdir());
	snprintf(dir, sizeof dir, "%s/data", mnt);
	snprintf(filler, sizeof filler, "%s/filler", mnt);
	if (mkdir(mnt, 0755) != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=2m,mode=0755") != 0) {
		printf("# skipped: cannot mount a small tmpfs at %s (%s); this test needs root\n", mnt,
		       strerror(errno));
		return 77;
	}
	RUN(test_disk_full);
	RUN(test_index_save_nospace);
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
	return harness_done();
}
