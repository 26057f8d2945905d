/*
 * datadir.h - the names inside a data directory, and the files there, for
 * the catalog (internal to server/store/; code above asks the catalog).
 * Every name below is spelled in datadir.c and nowhere else:
 *
 *     DATA/lock                         flock of the writing process (its pid inside)
 *     DATA/clipd.db (+ -wal, -shm)      the SQLite store
 *     DATA/index.faiss                  the saved vector index (a derived cache)
 *     DATA/blobs/ab/cd/abcd...          originals, named by their full hex SHA-256
 *     DATA/cache/thumbs/ab/abcd...-256.jpg   thumbnails (a cache: deleting it loses nothing)
 *     DATA/tmp/                         temporary files, emptied at open
 *     DATA/clean                        written by a clean close
 *
 *     char path[4096];
 *     if (datadir_path(dir, DATADIR_INDEX, path, sizeof path, &err) != 0)
 *             return err.code;
 *     datadir_write_blob(dir, sha, bytes, len, &err);   // DATA/tmp, fsync, rename, fsync dir
 *     datadir_remove_blob(dir, sha, &err);              // already gone is fine
 *
 * Files are written through DATA/tmp/ (temporary file, fsync, rename).
 * Errors are store_status codes; ENOSPC and EDQUOT become STORE_ERR_NOSPACE.
 */
#ifndef CLIPD_DATADIR_H
#define CLIPD_DATADIR_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* snprintf that says whether it fitted: 0, or -1 when truncated. */
int datadir_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Set err from errno for an operation on path. Returns the code. */
int datadir_errno(store_error *err, int errnum, const char *what, const char *path);

/* mkdir -p; 0 or a status. */
int datadir_mkdirs(const char *path, store_error *err);

/* fsync a directory. */
int datadir_fsync_dir(const char *path, store_error *err);

/* The fixed names of a data directory. */
enum datadir_name {
	DATADIR_LOCK,
	DATADIR_DB,
	DATADIR_INDEX,
	DATADIR_BLOBS,
	DATADIR_TMP,
	DATADIR_CLEAN,
};

/* "DIR/<name>" into buf; STORE_ERR_INVALID if it does not fit. */
int datadir_path(const char *dir, enum datadir_name name, char *buf, size_t len, store_error *err);

/* Take DATA/lock (flock, exclusive, non-blocking) and write our pid into
 * it. *fd keeps the lock until closed. STORE_ERR_LOCKED when held. */
int datadir_lock(const char *dir, int *fd, store_error *err);

/* "DIR/blobs/ab/cd/<sha>" into buf; STORE_ERR_INVALID if it does not fit
 * or sha is not 64 hex digits. */
int datadir_blob_path(const char *dir, const char *sha256, char *buf, size_t len, store_error *err);

/* Write data as the blob named sha256 (atomic, durable). An existing blob
 * of the right size is kept (its directory is synced again). */
int datadir_write_blob(const char *dir, const char *sha256, const void *data, size_t len,
		       store_error *err);

/* Rename the finished file tmp (in DATA/tmp) to the blob named sha256 when
 * it has len bytes (a cache fill: not synced); STORE_ERR_IO otherwise. */
int datadir_adopt_blob(const char *dir, const char *sha256, const char *tmp, int64_t len, store_error *err);

/* 1 if the blob exists with size len (len < 0: any size), 0 if not. */
int datadir_blob_exists(const char *dir, const char *sha256, int64_t len);

/* Unlink the blob named sha256: 0 when it is gone, also when it was
 * missing already; else a status (the caller then keeps an orphan to
 * remove at the next open). */
int datadir_remove_blob(const char *dir, const char *sha256, store_error *err);

/* "DIR/cache/thumbs/ab/<sha>-<size>.jpg" into buf; STORE_ERR_INVALID if it
 * does not fit, sha is not 64 hex digits or size is not positive. */
int datadir_thumb_path(const char *dir, const char *sha256, int size, char *buf, size_t len,
		       store_error *err);

/* Write a thumbnail atomically (through DATA/tmp, fsync, rename; the
 * directory is not synced: a cache). */
int datadir_write_thumb(const char *dir, const char *sha256, int size, const void *data, size_t len,
			store_error *err);

/* Remove every cached thumbnail of sha256 (whatever the size). Best effort. */
void datadir_remove_thumbs(const char *dir, const char *sha256);

/* The clean-close marker: datadir_mark_clean writes DATA/clean durably
 * (best effort); datadir_take_clean removes it and says whether it was
 * there (1: the last close was clean, no blob can be an orphan). */
void datadir_mark_clean(const char *dir);
int datadir_take_clean(const char *dir);

/* Remove every file in DATA/tmp and stale temporary index files in DATA.
 * *removed counts them. */
int datadir_clean_tmp(const char *dir, size_t *removed, store_error *err);

/* Call keep(ud, sha) for every blob file; remove those for which it
 * returns 0 (a negative return stops with that status). Files whose names
 * are not 64 hex digits, or not in their digest's directory, are left
 * alone. *removed counts removals. */
typedef int (*datadir_keep_fn)(void *ud, const char *sha256);
int datadir_remove_orphans(const char *dir, datadir_keep_fn keep, void *ud, size_t *removed,
			   store_error *err);

#endif
