/*
 * A small unit-test harness: each test is a function; CHECK records a
 * failure and carries on, REQUIRE records it and leaves the test.
 *
 *     static void test_add(void) { CHECK(1 + 1 == 2); CHECK_EQ_INT(add(2, 2), 4); }
 *     int main(void) { RUN(test_add); return harness_done(); }
 *
 * Prints "ok NAME" or "FAIL NAME" per test and "N passed, N failed" last;
 * exits 1 if any test failed. Tests find fixtures under TEST_DATA_DIR
 * (tests/data, set by meson) and write under a fresh temporary directory
 * from harness_tmpdir().
 */
#ifndef CLIPD_TEST_HARNESS_H
#define CLIPD_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>
#include <sys/stat.h>

#ifndef TEST_DATA_DIR
#define TEST_DATA_DIR "tests/data"
#endif

static int harness_passed, harness_failed, harness_current_failed;

#define HARNESS_FAIL(...) do { \
	fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); \
	harness_current_failed = 1; } while (0)

#define CHECK(cond) do { if (!(cond)) HARNESS_FAIL("CHECK(%s)", #cond); } while (0)
#define REQUIRE(cond) do { if (!(cond)) { HARNESS_FAIL("REQUIRE(%s)", #cond); return; } } while (0)
#define CHECK_EQ_INT(a, b) do { long long va_ = (long long)(a), vb_ = (long long)(b); \
	if (va_ != vb_) HARNESS_FAIL("%s == %s: got %lld, expected %lld", #a, #b, va_, vb_); } while (0)
#define CHECK_EQ_STR(a, b) do { const char *sa_ = (a), *sb_ = (b); \
	if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) \
		HARNESS_FAIL("%s == %s: got \"%s\", expected \"%s\"", #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)"); } while (0)
#define CHECK_NEAR(a, b, tol) do { double da_ = (a), db_ = (b); \
	if (!(fabs(da_ - db_) <= (tol))) HARNESS_FAIL("%s ~ %s: got %.9g, expected %.9g (tol %g)", #a, #b, da_, db_, (double)(tol)); } while (0)
#define CHECK_CONTAINS(hay, needle) do { const char *h_ = (hay); \
	if (!h_ || !strstr(h_, (needle))) HARNESS_FAIL("\"%s\" contains \"%s\"", h_ ? h_ : "(null)", (needle)); } while (0)

#define RUN(fn) do { harness_current_failed = 0; fn(); \
	if (harness_current_failed) { harness_failed++; printf("FAIL %s\n", #fn); } \
	else { harness_passed++; printf("ok   %s\n", #fn); } fflush(stdout); } while (0)

static inline int harness_done(void)
{
	printf("%d passed, %d failed\n", harness_passed, harness_failed);
	return harness_failed ? 1 : 0;
}

/* A fresh directory under $TMPDIR (or /tmp), removed by nobody: meson runs
 * tests in throwaway places and the names are unique. */
static inline const char *harness_tmpdir(void)
{
	static char path[512];
	const char *base = getenv("TMPDIR");
	snprintf(path, sizeof path, "%s/clipd-test-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(path)) {
		perror("mkdtemp");
		exit(2);
	}
	return path;
}

/* Read a whole file; *len gets its size. NULL on failure. Caller frees. */
static inline unsigned char *harness_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *buf = malloc(n > 0 ? (size_t)n + 1 : 1);
	if (buf && n >= 0 && fread(buf, 1, (size_t)n, f) == (size_t)n) {
		buf[n] = 0;
		*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

#endif
