/*
 * Paths inside a photo library (server/base/libpath.h): the scanner's
 * hidden-name rule and relative path building, the check of a stored
 * path before a library file is opened or served, libpath_open on a real
 * tree with links that point out of the root, and the hex cursor of
 * GET /libraries/{name}/errors.
 *
 * Invariants: a valid path has no NUL, is relative, fits LIBPATH_MAX, and
 * resolves lexically to itself under the root (no ".", "..", empty or
 * hidden component), and it is exactly what libpath_join builds from its
 * components; a path with no such fault is valid; a join succeeds exactly
 * for a visible name that fits; whatever libpath_open opens is a folder
 * or file of the tree inside the root, never one reached through a link;
 * a cursor decodes to what encodes back to it, and a valid path survives
 * the round trip.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "libpath.h"

static char root[256];
static const char *const inside_names[4] = { "a", "a/b.jpg", "a/c", "a/c/d.png" };
static struct stat inside[4];

static void make_file(const char *path)
{
	fuzz_write_file(path, (const uint8_t *)"x", 1);
}

/* DIR/root holds a/b.jpg, a/c/d.png and .hidden.jpg; links up (to DIR),
 * a/out.jpg (to DIR/outside.jpg) and a/c/abs (to DIR, absolute) lead out. */
static void make_tree(void)
{
	char base[200], p[512];
	fuzz_temp_path(base, sizeof base, "libpath", "d");
	snprintf(root, sizeof root, "%s/root", base);
	const char *dirs[] = { "", "/root", "/root/a", "/root/a/c" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s%s", base, dirs[i]);
		FUZZ_CHECK(mkdir(p, 0700) == 0 || errno == EEXIST, "mkdir %s", p);
	}
	const char *files[] = { "/outside.jpg", "/root/a/b.jpg", "/root/a/c/d.png", "/root/.hidden.jpg" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s%s", base, files[i]);
		make_file(p);
	}
	const char *links[][2] = { { "..", "/root/up" }, { "../../outside.jpg", "/root/a/out.jpg" },
				   { base, "/root/a/c/abs" } };
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", base, links[i][1]);
		unlink(p);
		FUZZ_CHECK(symlink(links[i][0], p) == 0, "symlink %s", p);
	}
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s/%s", root, inside_names[i]);
		FUZZ_CHECK(lstat(p, &inside[i]) == 0, "lstat %s", p);
	}
}

/* The path's components resolved lexically under the root, as the kernel
 * would with no links: the depth never drops to the root or above it,
 * and the result names the same components. */
static void check_resolves_inside(const char *p, size_t n)
{
	FUZZ_CHECK(n > 0 && p[0] != '/', "absolute or empty: %.*s", (int)n, p);
	size_t depth = 0, i = 0;
	while (i <= n) {
		const char *end = memchr(p + i, '/', n - i);
		size_t len = end ? (size_t)(end - (p + i)) : n - i;
		FUZZ_CHECK(len > 0, "an empty component in %.*s", (int)n, p);
		FUZZ_CHECK(!(len == 1 && p[i] == '.') && !(len == 2 && p[i] == '.' && p[i + 1] == '.'),
			   "a dot component in %.*s", (int)n, p);
		FUZZ_CHECK(p[i] != '.', "a hidden component in %.*s", (int)n, p);
		depth++;
		i += len + 1;
	}
	FUZZ_CHECK(depth >= 1, "no component");
}

static void check_valid(const char *p, size_t n)
{
	int v = libpath_valid(p, n);
	int fault = n == 0 || n > LIBPATH_MAX || memchr(p, 0, n) != NULL || p[0] == '/' || p[0] == '.'
		    || p[n - 1] == '/';
	for (size_t i = 0; !fault && i + 1 < n; i++)
		fault = p[i] == '/' && (p[i + 1] == '/' || p[i + 1] == '.');
	FUZZ_CHECK(v == !fault, "valid=%d with fault=%d: %.*s", v, fault, (int)(n < 200 ? n : 200), p);
	if (!v)
		return;
	check_resolves_inside(p, n);
	/* rebuilt from its components by the scanner's join */
	char built[LIBPATH_MAX + 1] = "", next[LIBPATH_MAX + 1], name[LIBPATH_MAX + 1];
	for (size_t i = 0; i < n;) {
		const char *end = memchr(p + i, '/', n - i);
		size_t len = end ? (size_t)(end - (p + i)) : n - i;
		memcpy(name, p + i, len);
		name[len] = 0;
		FUZZ_CHECK(!libpath_hidden(name), "hidden %s", name);
		FUZZ_CHECK(libpath_join(built, name, next, sizeof next) == 0, "join %s + %s", built, name);
		memcpy(built, next, strlen(next) + 1);
		i += len + 1;
	}
	FUZZ_CHECK(strlen(built) == n && !memcmp(built, p, n), "rebuilt %s", built);
	/* and a cursor of it decodes to it */
	char *text = strndup(p, n);
	FUZZ_CHECK(text, "out of memory");
	char *hex = libpath_cursor_encode(text);
	char *back = hex ? libpath_cursor_decode(hex) : NULL;
	FUZZ_CHECK(back && !strcmp(back, text), "cursor round trip of %s", text);
	free(back);
	free(hex);
	free(text);
}

static void check_join(const char *dir, const char *name)
{
	char out[LIBPATH_MAX + 1];
	size_t d = strlen(dir), nl = strlen(name);
	int hidden = libpath_hidden(name);
	FUZZ_CHECK(hidden == (name[0] == 0 || name[0] == '.'), "hidden(%s) = %d", name, hidden);
	int rc = libpath_join(dir, name, out, sizeof out);
	int want = !hidden && !strchr(name, '/') && d + (d ? 1 : 0) + nl <= LIBPATH_MAX;
	FUZZ_CHECK((rc == 0) == want, "join(%s, %s) = %d", dir, name, rc);
	if (rc != 0)
		return;
	FUZZ_CHECK(libpath_valid(out, strlen(out)), "joined %s is not valid", out);
	const char *last = strrchr(out, '/');
	FUZZ_CHECK(!strcmp(last ? last + 1 : out, name), "last component of %s", out);
	FUZZ_CHECK(!d || (!strncmp(out, dir, d) && out[d] == '/'), "%s is not under %s", out, dir);
}

static void check_open(const char *rel)
{
	int fd = libpath_open(root, rel, O_RDONLY | O_NONBLOCK);
	if (fd < 0) {
		FUZZ_CHECK(libpath_valid(rel, strlen(rel)) || errno == EINVAL, "%s: errno %d", rel, errno);
		for (size_t i = 0; i < 4; i++)
			FUZZ_CHECK(strcmp(rel, inside_names[i]), "%s inside the root did not open: errno %d", rel, errno);
		return;
	}
	FUZZ_CHECK(libpath_valid(rel, strlen(rel)), "opened the invalid %s", rel);
	struct stat st;
	FUZZ_CHECK(fstat(fd, &st) == 0, "fstat");
	close(fd);
	int found = 0;
	for (size_t i = 0; i < 4; i++)
		found |= st.st_dev == inside[i].st_dev && st.st_ino == inside[i].st_ino;
	FUZZ_CHECK(found, "%s opened something outside the tree inside the root", rel);
}

static void check_cursor(const char *hex)
{
	char *path = libpath_cursor_decode(hex);
	size_t n = strlen(hex);
	if (!path)
		return;
	FUZZ_CHECK(n % 2 == 0 && n > 0 && n / 2 <= LIBPATH_MAX, "decoded %zu hex digits", n);
	FUZZ_CHECK(strlen(path) == n / 2, "a NUL in the decoded cursor %s", hex);
	char *again = libpath_cursor_encode(path);
	FUZZ_CHECK(again && !strcmp(again, hex), "%s decodes to what encodes as %s", hex, again ? again : "-");
	free(again);
	free(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 3 * LIBPATH_MAX)
		return 0;
	if (!root[0])
		make_tree();
	const char *p = (const char *)data;
	check_valid(p, size);
	/* NUL-separated: a folder path, then entry names under it */
	char *copy = malloc(size + 1);
	FUZZ_CHECK(copy, "out of memory");
	memcpy(copy, data, size);
	copy[size] = 0;
	const char *dir = copy;
	size_t at = strlen(dir) + 1;
	if (*dir && !libpath_valid(dir, strlen(dir)))
		dir = "";
	while (at <= size) {
		check_join(dir, copy + at);
		at += strlen(copy + at) + 1;
	}
	check_open(copy);
	check_cursor(copy);
	free(copy);
	return 0;
}
