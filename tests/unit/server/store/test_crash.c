/*
 * Crash consistency: a child process (this program re-executed with
 * --child: fork and exec by posix_spawn, since FAISS's OpenMP runtime is
 * not fork-safe)
 * streams adds, deletes, metadata patches and index saves into a data
 * directory and writes each change it saw acknowledged to a pipe; the
 * test kills it with SIGKILL at random moments, CRASH_KILLS times, and
 * after each kill checks that every acknowledged add is there and
 * searchable, no acknowledged delete comes back, clipd check passes, and
 * index and database agree.
 *
 * The child announces each operation before it starts ("a SHA", "d ID")
 * and acknowledges it when the call returned ("A ID SHA", "D ID"), so the
 * one operation in flight at the kill is known and may have happened or
 * not: the check resolves it from what is stored, and then holds it to
 * the same rules.
 *
 * CLIPD_CRASH_SEED replays a run (the seed is printed), CLIPD_CRASH_KILLS
 * changes the number of kills, CLIPD_CRASH_TIMING=1 prints per-kill times.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>

#include "catalog_fixture.h"

#define DIM 16
/* Kills per run: 200 in a plain build; 100 under AddressSanitizer, whose
 * process start-up costs more CPU than the child's work (CI runs the suite
 * both ways: 300 kills). CLIPD_CRASH_KILLS overrides, for soak runs. */
#if defined(__SANITIZE_ADDRESS__)
#define CRASH_KILLS 100
#else
#define CRASH_KILLS 200
#endif
#define MAX_IDS 100000

/* ---- the child ----------------------------------------------------------- */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* One write per line, below PIPE_BUF: a line arrives whole or not at all. */
	if (write(1, line, (size_t)n) != n)
		_exit(5);
}

static int child_main(char **argv)
{
	const char *dir = argv[2], *base = argv[3];
	uint64_t rng = strtoull(argv[4], NULL, 10) | 1;
	struct fake_model m;
	fake_model_paths(&m, base, "crash");
	store_error err = { 0 };
	catalog *c = fx_open(dir, m.files, DIM, NULL, &err);
	if (!c) {
		fprintf(stderr, "child: open: %s\n", err.msg);
		return 3;
	}
	static int64_t live[MAX_IDS];
	size_t n_live = 0;
	int64_t cursor = 0;
	do {
		struct store_image *items;
		size_t n;
		if (catalog_list(c, NULL, cursor, CATALOG_MAX_LIST, &items, &n, &cursor, &err) != 0) {
			fprintf(stderr, "child: list: %s\n", err.msg);
			return 3;
		}
		for (size_t i = 0; i < n && n_live < MAX_IDS; i++)
			live[n_live++] = items[i].id;
		store_images_free(items, n);
	} while (cursor);
	say("R\n");
	float v[DIM];
	for (int op = 0; op < 100000; op++) {
		/* Adds win while the collection is small, deletes once it is
		 * large, so that it hovers around a hundred images. */
		unsigned r = (unsigned)(fx_rand(&rng) % 100);
		unsigned add_below = n_live < 100 ? 60 : 35;
		if (r < add_below || n_live == 0) {
			char sha[SHA256_HEX];
			size_t len = 64 + (size_t)(fx_rand(&rng) % 3000);
			unsigned char *data = fx_bytes(fx_rand(&rng), len, sha);
			fx_vec(fx_seed_of_sha(sha), v, DIM);
			struct catalog_new_image in = { .data = data, .len = len, .mime = "image/jpeg",
							.width = 8, .height = 8, .metadata = "{\"k\":1}",
							.vec = v, .dim = DIM };
			struct store_image img;
			int dup;
			say("a %s\n", sha);
			if (catalog_add(c, &in, &img, &dup, &err) != 0) {
				fprintf(stderr, "child: add: %s\n", err.msg);
				return 4;
			}
			say("A %lld %s\n", (long long)img.id, sha);
			if (n_live < MAX_IDS)
				live[n_live++] = img.id;
			store_image_clear(&img);
			free(data);
		} else if (r < 85) {
			size_t at = (size_t)(fx_rand(&rng) % n_live);
			int64_t id = live[at];
			live[at] = live[--n_live];
			say("d %lld\n", (long long)id);
			if (catalog_delete(c, id, &err) != 0) {
				fprintf(stderr, "child: delete %lld: %s\n", (long long)id, err.msg);
				return 4;
			}
			say("D %lld\n", (long long)id);
		} else if (r < 95) {
			int64_t id = live[fx_rand(&rng) % n_live];
			char patch[64];
			snprintf(patch, sizeof patch, "{\"k\":%u,\"p\":\"x\"}", r);
			if (catalog_patch_metadata(c, id, patch, strlen(patch), 0, 0, NULL, &err) != 0) {
				fprintf(stderr, "child: patch: %s\n", err.msg);
				return 4;
			}
		} else {
			if (catalog_save_index(c, &err) != 0) {
				fprintf(stderr, "child: save: %s\n", err.msg);
				return 4;
			}
			say("S\n");
		}
	}
	catalog_close(c);
	return 0;
}

/* ---- the parent ---------------------------------------------------------- */

enum { UNKNOWN = 0, LIVE, DELETED };

struct image_state {
	int state;
	char sha[SHA256_HEX];
};

static struct image_state *known;   /* by id */
static char pending_add[SHA256_HEX];
static int64_t pending_del;
static int64_t acked_adds, acked_deletes;

static void apply_line(const char *line)
{
	long long id = 0;
	char sha[SHA256_HEX];
	if (sscanf(line, "a %64s", sha) == 1) {
		memcpy(pending_add, sha, sizeof sha);
	} else if (sscanf(line, "A %lld %64s", &id, sha) == 2 && id > 0 && id < MAX_IDS) {
		known[id].state = LIVE;
		memcpy(known[id].sha, sha, sizeof sha);
		pending_add[0] = 0;
		acked_adds++;
	} else if (sscanf(line, "d %lld", &id) == 1) {
		pending_del = id;
	} else if (sscanf(line, "D %lld", &id) == 1 && id > 0 && id < MAX_IDS) {
		known[id].state = DELETED;
		pending_del = 0;
		acked_deletes++;
	}
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Feed complete lines from buf; keep a partial one. */
static size_t consume(char *buf, size_t len, int *acks, int *ready)
{
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		buf[i] = 0;
		if (!strcmp(buf + start, "R"))
			*ready = 1;
		else if (buf[start] == 'A' || buf[start] == 'D' || buf[start] == 'S')
			(*acks)++;
		apply_line(buf + start);
		start = i + 1;
	}
	memmove(buf, buf + start, len - start);
	return len - start;
}

/* Run one child and kill it at a random moment. 0, or -1 on a test failure. */
static int run_child(const char *dir, const char *base, uint64_t *rng)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	char seed[32];
	snprintf(seed, sizeof seed, "%llu", (unsigned long long)fx_rand(rng));
	/* fork and exec, as posix_spawn (vfork-style: no copy of this large
	 * address space, which under ASan costs more than the child's work). */
	char a0[] = "test_crash", a1[] = "--child", a2[700], a3[700];
	snprintf(a2, sizeof a2, "%s", dir);
	snprintf(a3, sizeof a3, "%s", base);
	char *args[] = { a0, a1, a2, a3, seed, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	pid_t pid = -1;
	int sp = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, args, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (sp != 0) {
		fprintf(stderr, "  posix_spawn: %s\n", strerror(sp));
		close(fds[0]);
		return -1;
	}
	/* A fifth of the kills land at a random time from the start (often
	 * during exec or open: recovery interrupted); the rest after a random
	 * number of acknowledged changes plus a random few hundred µs. */
	int by_time = fx_rand(rng) % 5 == 0;
	double t0 = now_ms(), kill_at = t0 + (double)(fx_rand(rng) % 60);
	int target = (int)(fx_rand(rng) % 24), extra_us = (int)(fx_rand(rng) % 1500);
	char buf[8192];
	size_t have = 0;
	int acks = 0, ready = 0, killed = 0, rc = 0;
	for (;;) {
		if (!killed && ((by_time && now_ms() >= kill_at) || (!by_time && ready && acks >= target))) {
			if (!by_time && extra_us)
				usleep((useconds_t)extra_us);
			kill(pid, SIGKILL);
			killed = 1;
		}
		if (!killed && now_ms() - t0 > 20000) {
			fprintf(stderr, "  child made no progress for 20 s\n");
			kill(pid, SIGKILL);
			killed = 1;
			rc = -1;
		}
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		int pr = poll(&p, 1, killed ? 1000 : 1);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0)
			continue;
		ssize_t n = read(fds[0], buf + have, sizeof buf - have - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;   /* EOF: the child is gone */
		have = consume(buf, have + (size_t)n, &acks, &ready);
	}
	close(fds[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
		fprintf(stderr, "  child ended on its own (status %d) instead of being killed\n", status);
		rc = -1;
	}
	return rc;
}

/* Reopen and hold the directory to the contract. readonly: as clipd check
 * would see it right after the crash, recovering nothing on disk. */
static int verify(const char *dir, const char *const *files, int readonly)
{
	store_error err = { 0 };
	catalog *c = NULL;
	struct catalog_params p = catalog_default_params();
	p.data_dir = dir;
	p.model_files = readonly ? NULL : files;
	p.readonly = readonly;
	p.index.dim = DIM;
	if (catalog_open(&p, &c, NULL, &err) != 0) {
		HARNESS_FAIL("reopen (%s): %s", readonly ? "read-only" : "writable", err.msg);
		return -1;
	}
	int bad = 0;
	/* The one operation in flight at the kill: happened, or not. */
	if (pending_add[0]) {
		struct store_image img;
		if (catalog_get_by_sha256(c, pending_add, &img, NULL) == 0) {
			if (img.id > 0 && img.id < MAX_IDS) {
				known[img.id].state = LIVE;
				memcpy(known[img.id].sha, pending_add, SHA256_HEX);
			}
			store_image_clear(&img);
		}
		pending_add[0] = 0;
	}
	if (pending_del) {
		struct store_image img;
		if (catalog_get(c, pending_del, &img, NULL) == 0)
			store_image_clear(&img);
		else
			known[pending_del].state = DELETED;
		pending_del = 0;
	}
	int64_t n_live = 0;
	for (int64_t id = 1; id < MAX_IDS && bad < 10; id++) {
		if (known[id].state == UNKNOWN)
			continue;
		struct store_image img;
		float score = 0;
		int got = catalog_get(c, id, &img, NULL);
		/* Deleted images: their rows must stay gone (a vector left in the
		 * index is caught by the count check below and by clipd check). */
		int64_t top = known[id].state == LIVE ? fx_top1(c, known[id].sha, &score) : 0;
		if (known[id].state == LIVE) {
			n_live++;
			if (got != 0) {
				HARNESS_FAIL("acknowledged image %lld is gone", (long long)id);
				bad++;
			} else if (strcmp(img.sha256, known[id].sha) != 0) {
				HARNESS_FAIL("image %lld has another sha256", (long long)id);
				bad++;
			}
			if (top != id || score < 0.999f) {
				HARNESS_FAIL("acknowledged image %lld is not searchable (top %lld, %.4f)",
					     (long long)id, (long long)top, score);
				bad++;
			}
		} else {
			if (got == 0) {
				HARNESS_FAIL("deleted image %lld came back", (long long)id);
				bad++;
			}

		}
		if (got == 0)
			store_image_clear(&img);
	}
	struct catalog_stats st;
	if (catalog_stats(c, &st, &err) != 0) {
		HARNESS_FAIL("stats: %s", err.msg);
		bad++;
	} else {
		if (st.images != n_live) {
			HARNESS_FAIL("%lld rows, expected %lld", (long long)st.images, (long long)n_live);
			bad++;
		}
		if ((int64_t)st.index_count != st.images) {
			HARNESS_FAIL("index holds %zu, database %lld", st.index_count, (long long)st.images);
			bad++;
		}
	}
	int problems = 0;
	int n = catalog_check(c, fx_count_problem, &problems, &err);
	if (n != 0) {
		HARNESS_FAIL("check: %d problems (%s)", n, n < 0 ? err.msg : "see above");
		bad++;
	}
	catalog_close(c);
	return bad ? -1 : 0;
}

static void test_kill9_consistency(void)
{
	char base[600], dir[700];
	/* A process crash leaves the page cache intact, so the contract under
	 * test does not depend on the device: use tmpfs when there is one, to
	 * spend the time on kills rather than on fsync latency (7 ms a call on
	 * these disks; an add makes four). Power loss is out of scope here. */
	const char *tmp = getenv("TMPDIR");
	if (access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	snprintf(base, sizeof base, "%s", harness_tmpdir());
	if (tmp)
		setenv("TMPDIR", tmp, 1);
	else
		unsetenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/data", base);
	struct fake_model m;
	fake_model_make(&m, base, "crash");
	known = calloc(MAX_IDS, sizeof *known);
	REQUIRE(known);
	uint64_t rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	const char *seed_env = getenv("CLIPD_CRASH_SEED");
	if (seed_env)
		rng = strtoull(seed_env, NULL, 10);
	printf("# seed %llu (set CLIPD_CRASH_SEED to replay)\n", (unsigned long long)rng);
	rng |= 1;
	int want = CRASH_KILLS;
	const char *kills_env = getenv("CLIPD_CRASH_KILLS");
	if (kills_env && atoi(kills_env) > 0)
		want = atoi(kills_env);
	double t0 = now_ms();
	int kills = 0;
	for (; kills < want; kills++) {
		double ta = now_ms();
		if (run_child(dir, base, &rng) != 0) {
			HARNESS_FAIL("kill %d: the child failed", kills);
			break;
		}
		/* Every other time reopen as the server would (recover, clean
		 * up, save); otherwise look read-only, as clipd check after a
		 * crash would, and leave the recovery to the next child. */
		double tb = now_ms();
		int ro = kills % 2 == 1;
		if (verify(dir, m.files, ro) != 0) {
			HARNESS_FAIL("after kill %d (%s)", kills, ro ? "read-only view" : "reopened");
			break;
		}
		if (getenv("CLIPD_CRASH_TIMING"))
			fprintf(stderr, "child %.0f ms verify %.0f ms\n", tb - ta, now_ms() - tb);
	}
	if (verify(dir, m.files, 0) != 0)
		HARNESS_FAIL("at the end");
	printf("# %d kills, %lld acknowledged adds, %lld acknowledged deletes, %.1f s, in %s\n", kills,
	       (long long)acked_adds, (long long)acked_deletes, (now_ms() - t0) / 1e3, base);
	char cmd[700];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
	if (!harness_current_failed && system(cmd) != 0)
		fprintf(stderr, "  could not remove %s\n", base);
	CHECK(kills == want);
	CHECK(acked_adds > want);
	CHECK(acked_deletes > 0);
	free(known);
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "--child"))
		return child_main(argv);
	RUN(test_kill9_consistency);
	return harness_done();
}
