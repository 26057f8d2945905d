/* Whole files and path names. See files.h. */
#include "files.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int files_read_all(const char *path, size_t max, unsigned char **out, size_t *len,
		   char *msg, size_t msglen)
{
	unsigned char *buf = NULL;
	int rc = FILES_ERR_OPEN;
	struct stat st;

	*out = NULL;
	*len = 0;
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(msg, msglen, "%s: cannot open: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = FILES_ERR_TYPE;
		snprintf(msg, msglen, "%s: not a regular file", path);
		goto out;
	}
	if ((uintmax_t)st.st_size > max) {
		rc = FILES_ERR_TOO_LARGE;
		snprintf(msg, msglen, "%s: %jd bytes, over the limit of %zu", path, (intmax_t)st.st_size, max);
		goto out;
	}
	size_t n = (size_t)st.st_size;
	if (!(buf = malloc(n ? n : 1))) {
		rc = FILES_ERR_NOMEM;
		snprintf(msg, msglen, "%s: out of memory for %zu bytes", path, n);
		goto out;
	}
	if (n && fread(buf, 1, n, f) != n) {
		rc = FILES_ERR_READ;
		snprintf(msg, msglen, "%s: cannot read: %s", path, ferror(f) ? strerror(errno) : "short read");
		goto out;
	}
	*out = buf;
	*len = n;
	buf = NULL;
	rc = FILES_OK;
out:
	free(buf);
	fclose(f);
	return rc;
}

int files_base_name(const char *path, char *out, size_t outlen)
{
	if (!out || outlen == 0)
		return -1;
	out[0] = 0;
	if (!path)
		return -1;
	size_t end = strlen(path);
	while (end > 1 && path[end - 1] == '/')
		end--;
	size_t start = end;
	while (start > 0 && path[start - 1] != '/')
		start--;
	if (start == end && end == 1 && path[0] == '/')
		start = 0;   /* "/" (or "///") names the root */
	size_t n = end - start;
	if (n + 1 > outlen)
		return -1;
	memcpy(out, path + start, n);
	out[n] = 0;
	return (int)n;
}
