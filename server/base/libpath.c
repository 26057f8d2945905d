/*
 * Paths inside a photo library (libpath.h).
 */
#include "libpath.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int libpath_hidden(const char *name)
{
	return name[0] == 0 || name[0] == '.';
}

int libpath_join(const char *dir, const char *name, char *out, size_t len)
{
	if (libpath_hidden(name) || strchr(name, '/'))
		return -1;
	size_t d = strlen(dir), n = strlen(name);
	size_t total = d + (d ? 1 : 0) + n;
	if (total > LIBPATH_MAX || total >= len)
		return -1;
	if (d) {
		memcpy(out, dir, d);
		out[d] = '/';
		d++;
	}
	memcpy(out + d, name, n + 1);
	return 0;
}

int libpath_valid(const char *p, size_t n)
{
	if (n == 0 || n > LIBPATH_MAX || memchr(p, 0, n))
		return 0;
	for (size_t i = 0; i < n;) {
		/* a component starts at i: not empty (no leading, doubled or
		 * trailing '/'), not hidden */
		if (p[i] == '/' || p[i] == '.')
			return 0;
		const char *slash = memchr(p + i, '/', n - i);
		if (!slash)
			break;
		i = (size_t)(slash - p) + 1;
		if (i == n)
			return 0;
	}
	return 1;
}

int libpath_open(const char *root, const char *rel, int flags)
{
	size_t n = strlen(rel);
	if (!libpath_valid(rel, n)) {
		errno = EINVAL;
		return -1;
	}
	int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	char part[LIBPATH_MAX + 1];
	const char *at = rel;
	for (;;) {
		const char *slash = strchr(at, '/');
		if (!slash)
			break;
		memcpy(part, at, (size_t)(slash - at));
		part[slash - at] = 0;
		int next = openat(dfd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(dfd);
		if (next < 0) {
			errno = e;   /* ELOOP for a link, ENOTDIR for a file */
			return -1;
		}
		dfd = next;
		at = slash + 1;
	}
	int fd = openat(dfd, at, flags | O_NOFOLLOW | O_CLOEXEC);
	int e = errno;
	close(dfd);
	errno = e;
	return fd;
}

char *libpath_cursor_encode(const char *path)
{
	static const char digits[] = "0123456789abcdef";
	size_t n = strlen(path);
	char *out = malloc(2 * n + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)path[i];
		out[2 * i] = digits[c >> 4];
		out[2 * i + 1] = digits[c & 15];
	}
	out[2 * n] = 0;
	return out;
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

char *libpath_cursor_decode(const char *hex)
{
	size_t n = strlen(hex);
	if (n == 0 || n % 2 || n > 2 * (size_t)LIBPATH_MAX)
		return NULL;
	char *out = malloc(n / 2 + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0 || (hi | lo) == 0) {
			free(out);
			return NULL;
		}
		out[i] = (char)(hi * 16 + lo);
	}
	out[n / 2] = 0;
	return out;
}
