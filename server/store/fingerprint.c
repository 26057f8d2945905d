/*
 * Model fingerprints: SHA-256 over the base names and contents of a
 * model's weight and config files, with each file's hash cached in the
 * store by (path, size, mtime, inode) so that start-up reads gigabytes of
 * weights only when they changed. See store_fingerprint in store.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "datadir.h"
#include "store.h"
#include "sha256.h"

#define FP_MAX_FILES 64

struct fp_file {
	const char *base;
	char hex[SHA256_HEX];
};

static int hash_file(int fd, const char *path, char hex[SHA256_HEX], store_error *err)
{
	enum { CHUNK = 1 << 20 };
	unsigned char *buf = malloc(CHUNK);
	if (!buf) {
		err->code = STORE_ERR_NOMEM;
		snprintf(err->msg, sizeof err->msg, "out of memory");
		return err->code;
	}
	struct sha256_ctx c;
	sha256_init(&c);
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, buf, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = datadir_errno(err, errno, "read", path);
			break;
		}
		if (n == 0)
			break;
		sha256_update(&c, buf, (size_t)n);
	}
	unsigned char d[SHA256_BYTES];
	sha256_final(&c, d);
	sha256_to_hex(d, hex);
	free(buf);
	return rc;
}

static int cmp_base(const void *a, const void *b)
{
	return strcmp(((const struct fp_file *)a)->base, ((const struct fp_file *)b)->base);
}

int store_fingerprint(store *st, const char *const *files, const char *precision,
		      char hex[STORE_FINGERPRINT_HEX], double *hash_ms, store_error *err)
{
	store_error local;
	if (!err)
		err = &local;
	struct fp_file list[FP_MAX_FILES];
	size_t n = 0;
	double spent = 0;
	if (!files || !files[0]) {
		err->code = STORE_ERR_INVALID;
		snprintf(err->msg, sizeof err->msg, "no model files to fingerprint");
		return err->code;
	}
	for (; files[n]; n++) {
		if (n == FP_MAX_FILES) {
			err->code = STORE_ERR_INVALID;
			snprintf(err->msg, sizeof err->msg, "more than %d model files", FP_MAX_FILES);
			return err->code;
		}
		const char *path = files[n];
		const char *slash = strrchr(path, '/');
		list[n].base = slash ? slash + 1 : path;

		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return datadir_errno(err, errno, "open model file", path);
		struct stat sb;
		if (fstat(fd, &sb) != 0) {
			int e = errno;
			close(fd);
			return datadir_errno(err, e, "stat", path);
		}
		char real[PATH_MAX];
		const char *key = realpath(path, real) ? real : path;
		int64_t mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
		int found = 0;
		if (st && store_file_hash_get(st, key, (int64_t)sb.st_size, mtime_ns, (int64_t)sb.st_ino,
					      list[n].hex, &found, NULL) != 0)
			found = 0;
		if (!found) {
			double t0 = clock_mono_s();
			int rc = hash_file(fd, path, list[n].hex, err);
			spent += (clock_mono_s() - t0) * 1e3;
			if (rc != 0) {
				close(fd);
				return rc;
			}
			/* A read-only store cannot cache; that only costs time. */
			if (st)
				store_file_hash_put(st, key, (int64_t)sb.st_size, mtime_ns, (int64_t)sb.st_ino,
						    list[n].hex, NULL);
		}
		close(fd);
	}
	qsort(list, n, sizeof list[0], cmp_base);
	struct sha256_ctx c;
	sha256_init(&c);
	static const char tag[] = "clipd model fingerprint v1\n";
	sha256_update(&c, tag, sizeof tag - 1);
	/* the same weights at another precision make other vectors */
	if (precision && *precision && strcmp(precision, "fp32")) {
		sha256_update(&c, "precision ", 10);
		sha256_update(&c, precision, strlen(precision) + 1);
	}
	for (size_t i = 0; i < n; i++) {
		sha256_update(&c, list[i].base, strlen(list[i].base) + 1);
		sha256_update(&c, list[i].hex, 64);
		sha256_update(&c, "\n", 1);
	}
	unsigned char d[SHA256_BYTES];
	sha256_final(&c, d);
	sha256_to_hex(d, hex);
	if (hash_ms)
		*hash_ms = spent;
	return 0;
}
