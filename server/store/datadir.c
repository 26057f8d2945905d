/*
 * The names inside a data directory and its files: the lock, blobs,
 * thumbnails, temporary files. See datadir.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datadir.h"
#include "sha256.h"

/* The one spelling of each name (the index's also in is_stale_index_tmp's
 * test, through INDEX_NAME). */
#define INDEX_NAME "index.faiss"
static const char *const names[] = {
	[DATADIR_LOCK] = "lock",
	[DATADIR_DB] = "clipd.db",
	[DATADIR_INDEX] = INDEX_NAME,
	[DATADIR_BLOBS] = "blobs",
	[DATADIR_TMP] = "tmp",
	[DATADIR_CLEAN] = "clean",
};
#define THUMBS_DIR "cache/thumbs"
/* In each thumbnail's name: thumbnails of another version (v1: transparent
 * pixels over black) are never served; catalog_delete removes them too. */
#define THUMBS_VERSION "v2"

int datadir_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int datadir_errno(store_error *err, int errnum, const char *what, const char *path)
{
	int code = STORE_ERR_IO;
	if (errnum == ENOSPC || errnum == EDQUOT)
		code = STORE_ERR_NOSPACE;
	else if (errnum == ENOMEM)
		code = STORE_ERR_NOMEM;
	if (code == STORE_ERR_NOSPACE)
		return store_fail(err, code, "no space left on device: cannot %s %s", what, path);
	return store_fail(err, code, "cannot %s %s: %s", what, path, strerror(errnum));
}

int datadir_mkdirs(const char *path, store_error *err)
{
	char buf[4096];
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof buf)
		return store_fail(err, STORE_ERR_INVALID, "bad directory path");
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != 0)
			continue;
		char saved = buf[i];
		buf[i] = 0;
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return datadir_errno(err, errno, "create directory", buf);
		buf[i] = saved;
	}
	struct stat st;
	if (stat(path, &st) != 0)
		return datadir_errno(err, errno, "stat", path);
	if (!S_ISDIR(st.st_mode))
		return store_fail(err, STORE_ERR_IO, "%s is not a directory", path);
	return 0;
}

int datadir_fsync_dir(const char *path, store_error *err)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return datadir_errno(err, errno, "open directory", path);
	int rc = 0;
	if (fsync(fd) != 0)
		rc = datadir_errno(err, errno, "sync directory", path);
	close(fd);
	return rc;
}

int datadir_path(const char *dir, enum datadir_name name, char *buf, size_t len, store_error *err)
{
	if ((unsigned)name >= sizeof names / sizeof names[0])
		return store_fail(err, STORE_ERR_INVALID, "no such data directory name");
	if (datadir_fmt(buf, len, "%s/%s", dir, names[name]) != 0)
		return store_fail(err, STORE_ERR_INVALID, "data directory path too long");
	return 0;
}

int datadir_lock(const char *dir, int *fd_out, store_error *err)
{
	char path[4096];
	int rc = datadir_path(dir, DATADIR_LOCK, path, sizeof path, err);
	if (rc != 0)
		return rc;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return datadir_errno(err, errno, "open", path);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		if (e == EWOULDBLOCK) {
			char pid[32] = "";
			ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
			pid[n > 0 ? n : 0] = 0;
			pid[strcspn(pid, "\n")] = 0;
			close(fd);
			return store_fail(err, STORE_ERR_LOCKED,
				    "data directory %s is in use by another clipd process%s%s%s "
				    "(serve, reembed and index rebuild each need it alone)",
				    dir, *pid ? " (pid " : "", pid, *pid ? ")" : "");
		}
		close(fd);
		return datadir_errno(err, e, "lock", path);
	}
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		/* The pid is only for the message: a full disk must not stop us. */
	}
	*fd_out = fd;
	return 0;
}

int datadir_blob_path(const char *dir, const char *sha256, char *buf, size_t len, store_error *err)
{
	if (!sha256_is_hex(sha256))
		return store_fail(err, STORE_ERR_INVALID, "not a SHA-256 hex digest");
	if (datadir_fmt(buf, len, "%s/%s/%.2s/%.2s/%s", dir, names[DATADIR_BLOBS], sha256, sha256 + 2,
			sha256) != 0)
		return store_fail(err, STORE_ERR_INVALID, "blob path too long");
	return 0;
}

int datadir_remove_blob(const char *dir, const char *sha256, store_error *err)
{
	char path[4096];
	int rc = datadir_blob_path(dir, sha256, path, sizeof path, err);
	if (rc != 0)
		return rc;
	if (unlink(path) != 0 && errno != ENOENT)
		return datadir_errno(err, errno, "remove", path);
	return 0;
}

int datadir_blob_exists(const char *dir, const char *sha256, int64_t len)
{
	char path[4096];
	struct stat st;
	if (datadir_blob_path(dir, sha256, path, sizeof path, NULL) != 0)
		return 0;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	return len < 0 || st.st_size == len;
}

/* mkdir path (one level); when it was created, fsync its parent so the
 * new entry survives a crash. */
static int mkdir_synced(const char *path, const char *parent, store_error *err)
{
	if (mkdir(path, 0755) == 0)
		return datadir_fsync_dir(parent, err);
	if (errno == EEXIST)
		return 0;
	return datadir_errno(err, errno, "create directory", path);
}

static int write_all(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = ENOSPC;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write data as the file final (in the directory final_dir) through a
 * temporary file DATA/tmp/<prefix>XXXXXX: write, fsync, rename, and with
 * sync_dir an fsync of final_dir. Nothing is left behind on failure. */
static int write_atomic(const char *dir, const char *prefix, const char *final, const char *final_dir,
			const void *data, size_t len, int sync_dir, store_error *err)
{
	char tmp[4096];
	int rc, fd = -1;
	if (datadir_fmt(tmp, sizeof tmp, "%s/%s/%sXXXXXX", dir, names[DATADIR_TMP], prefix) != 0)
		return store_fail(err, STORE_ERR_INVALID, "data directory path too long");
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return datadir_errno(err, errno, "create", tmp);
	if (fchmod(fd, 0644) != 0 || write_all(fd, data, len) != 0) {
		rc = datadir_errno(err, errno, "write", tmp);
		goto out;
	}
	if (fsync(fd) != 0) {
		rc = datadir_errno(err, errno, "sync", tmp);
		goto out;
	}
	int c = close(fd);
	fd = -1;
	if (c != 0) {
		rc = datadir_errno(err, errno, "close", tmp);
		goto out;
	}
	if (rename(tmp, final) != 0) {
		rc = datadir_errno(err, errno, "rename into place", final);
		goto out;
	}
	tmp[0] = 0;   /* renamed: nothing to clean up */
	rc = sync_dir ? datadir_fsync_dir(final_dir, err) : 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0 && tmp[0])
		unlink(tmp);
	return rc;
}

/* DATA/blobs, DATA/blobs/ab, DATA/blobs/ab/cd and the blob's own name
 * (each buffer 4096 bytes). */
static int blob_names(const char *dir, const char *sha256, char *blobs, char *d1, char *d2, char *final,
		      store_error *err)
{
	if (!sha256_is_hex(sha256))
		return store_fail(err, STORE_ERR_INVALID, "not a SHA-256 hex digest");
	int rc = datadir_path(dir, DATADIR_BLOBS, blobs, 4096, err);
	if (rc != 0)
		return rc;
	if (datadir_fmt(d1, 4096, "%s/%.2s", blobs, sha256) != 0 || datadir_fmt(d2, 4096, "%s/%.2s", d1, sha256 + 2) != 0 ||
	    datadir_fmt(final, 4096, "%s/%s", d2, sha256) != 0)
		return store_fail(err, STORE_ERR_INVALID, "data directory path too long");
	return 0;
}

int datadir_write_blob(const char *dir, const char *sha256, const void *data, size_t len,
		       store_error *err)
{
	char blobs[4096], d1[4096], d2[4096], final[4096];
	int rc = blob_names(dir, sha256, blobs, d1, d2, final, err);
	if (rc != 0)
		return rc;

	if ((rc = mkdir_synced(d1, blobs, err)) != 0 || (rc = mkdir_synced(d2, d1, err)) != 0)
		return rc;

	struct stat st;
	if (stat(final, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == len)
		return datadir_fsync_dir(d2, err);
	return write_atomic(dir, "blob-", final, d2, data, len, 1, err);
}

int datadir_adopt_blob(const char *dir, const char *sha256, const char *tmp, int64_t len, store_error *err)
{
	char blobs[4096], d1[4096], d2[4096], final[4096];
	struct stat st;
	int rc = blob_names(dir, sha256, blobs, d1, d2, final, err);
	if (rc != 0)
		return rc;
	if (stat(tmp, &st) != 0)
		return datadir_errno(err, errno, "stat", tmp);
	if (st.st_size != len)
		return store_fail(err, STORE_ERR_IO, "original %s: %lld bytes read, %lld expected", sha256,
				  (long long)st.st_size, (long long)len);
	if ((rc = datadir_mkdirs(d2, err)) != 0)
		return rc;
	if (rename(tmp, final) != 0)
		return datadir_errno(err, errno, "rename", final);
	return 0;
}

/* ---- thumbnails ------------------------------------------------------------ */

/* DATA/cache/thumbs/ab into buf. */
static int thumb_dir(const char *dir, const char *sha256, char *buf, size_t len, store_error *err)
{
	if (!sha256_is_hex(sha256))
		return store_fail(err, STORE_ERR_INVALID, "not a SHA-256 hex digest");
	if (datadir_fmt(buf, len, "%s/" THUMBS_DIR "/%.2s", dir, sha256) != 0)
		return store_fail(err, STORE_ERR_INVALID, "thumbnail path too long");
	return 0;
}

int datadir_thumb_path(const char *dir, const char *sha256, int size, char *buf, size_t len,
		       store_error *err)
{
	char sub[4096];
	int rc = thumb_dir(dir, sha256, sub, sizeof sub, err);
	if (rc != 0)
		return rc;
	if (size <= 0)
		return store_fail(err, STORE_ERR_INVALID, "bad thumbnail size %d", size);
	if (datadir_fmt(buf, len, "%s/%s-%d-" THUMBS_VERSION ".jpg", sub, sha256, size) != 0)
		return store_fail(err, STORE_ERR_INVALID, "thumbnail path too long");
	return 0;
}

int datadir_write_thumb(const char *dir, const char *sha256, int size, const void *data, size_t len,
			store_error *err)
{
	char sub[4096], final[4096];
	int rc;
	if ((rc = thumb_dir(dir, sha256, sub, sizeof sub, err)) != 0 ||
	    (rc = datadir_thumb_path(dir, sha256, size, final, sizeof final, err)) != 0 ||
	    (rc = datadir_mkdirs(sub, err)) != 0)
		return rc;
	/* Synced before the rename, so that after a crash the final name
	 * never holds a torn file (it would be served for ever). */
	return write_atomic(dir, "thumb-", final, sub, data, len, 0, err);
}

void datadir_remove_thumbs(const char *dir, const char *sha256)
{
	char sub[4096], file[4096];
	if (thumb_dir(dir, sha256, sub, sizeof sub, NULL) != 0)
		return;
	DIR *d = opendir(sub);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (!strncmp(e->d_name, sha256, 64) && e->d_name[64] == '-' &&
		    datadir_fmt(file, sizeof file, "%s/%s", sub, e->d_name) == 0)
			unlink(file);
	closedir(d);
}

/* ---- cleaning up ------------------------------------------------------------ */

void datadir_mark_clean(const char *dir)
{
	char path[4096];
	if (datadir_path(dir, DATADIR_CLEAN, path, sizeof path, NULL) != 0)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
		datadir_fsync_dir(dir, NULL);
	}
}

int datadir_take_clean(const char *dir)
{
	char path[4096];
	if (datadir_path(dir, DATADIR_CLEAN, path, sizeof path, NULL) != 0 || unlink(path) != 0)
		return 0;
	datadir_fsync_dir(dir, NULL);
	return 1;
}

static int is_stale_index_tmp(const char *name)
{
	static const char base[] = INDEX_NAME;
	const char *p = name[0] == '.' ? name + 1 : name;
	if (strncmp(p, base, sizeof base - 1) != 0)
		return 0;
	return strcmp(name, base) != 0;
}

static int remove_files_in(const char *path, int (*match)(const char *), size_t *removed,
			   store_error *err)
{
	DIR *d = opendir(path);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return datadir_errno(err, errno, "open directory", path);
	}
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (match && !match(e->d_name))
			continue;
		char file[4096];
		if (datadir_fmt(file, sizeof file, "%s/%s", path, e->d_name) != 0)
			continue;
		struct stat st;
		if (lstat(file, &st) != 0 || S_ISDIR(st.st_mode))
			continue;
		if (unlink(file) != 0) {
			rc = datadir_errno(err, errno, "remove", file);
			break;
		}
		(*removed)++;
	}
	closedir(d);
	return rc;
}

int datadir_clean_tmp(const char *dir, size_t *removed, store_error *err)
{
	char path[4096];
	size_t n = 0;
	int rc;
	if ((rc = datadir_path(dir, DATADIR_TMP, path, sizeof path, err)) != 0)
		return rc;
	if ((rc = remove_files_in(path, NULL, &n, err)) != 0)
		return rc;
	if ((rc = remove_files_in(dir, is_stale_index_tmp, &n, err)) != 0)
		return rc;
	if (removed)
		*removed = n;
	return 0;
}

static int is_hex2(const char *s)
{
	return strlen(s) == 2 && strspn(s, "0123456789abcdef") == 2;
}

int datadir_remove_orphans(const char *dir, datadir_keep_fn keep, void *ud, size_t *removed,
			   store_error *err)
{
	char blobs[4096];
	size_t n = 0;
	int rc = 0;
	if ((rc = datadir_path(dir, DATADIR_BLOBS, blobs, sizeof blobs, err)) != 0)
		return rc;
	DIR *d1 = opendir(blobs);
	if (!d1) {
		if (errno == ENOENT)
			goto out;
		return datadir_errno(err, errno, "open directory", blobs);
	}
	struct dirent *e1;
	while (rc == 0 && (e1 = readdir(d1)) != NULL) {
		if (!is_hex2(e1->d_name))
			continue;
		char p1[4096];
		if (datadir_fmt(p1, sizeof p1, "%s/%s", blobs, e1->d_name) != 0)
			continue;
		DIR *d2 = opendir(p1);
		if (!d2)
			continue;
		struct dirent *e2;
		while (rc == 0 && (e2 = readdir(d2)) != NULL) {
			if (!is_hex2(e2->d_name))
				continue;
			char p2[4096];
			if (datadir_fmt(p2, sizeof p2, "%s/%s", p1, e2->d_name) != 0)
				continue;
			DIR *d3 = opendir(p2);
			if (!d3)
				continue;
			struct dirent *e3;
			while (rc == 0 && (e3 = readdir(d3)) != NULL) {
				if (!sha256_is_hex(e3->d_name) || strncmp(e3->d_name, e1->d_name, 2) != 0 ||
				    strncmp(e3->d_name + 2, e2->d_name, 2) != 0)
					continue;
				int k = keep(ud, e3->d_name);
				if (k < 0) {
					rc = k;
					break;
				}
				if (k)
					continue;
				if ((rc = datadir_remove_blob(dir, e3->d_name, err)) != 0)
					break;
				n++;
			}
			closedir(d3);
		}
		closedir(d2);
	}
	closedir(d1);
out:
	if (removed)
		*removed = n;
	return rc;
}
