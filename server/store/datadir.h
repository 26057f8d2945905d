/*
 * datadir.h - files of a data directory, for catalog.c (internal): the
 * lock, the blob tree, temporary files, fsync helpers.
 *
 * Blobs live at DATA/blobs/ab/cd/abcd... (the full hex SHA-256), written
 * through DATA/tmp/ (temporary file, fsync, rename, directory fsync).
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

/* 1 if the blob exists with size len (len < 0: any size), 0 if not. */
int datadir_blob_exists(const char *dir, const char *sha256, int64_t len);

/* Remove every file in DATA/tmp and stale temporary index files in DATA.
 * *removed counts them. */
int datadir_clean_tmp(const char *dir, size_t *removed, store_error *err);

/* Call keep(ud, sha) for every blob file; remove those for which it
 * returns 0 (a negative return stops with that status). Files whose names
 * are not 64 hex digits are left alone. *removed counts removals. */
typedef int (*datadir_keep_fn)(void *ud, const char *sha256);
int datadir_remove_orphans(const char *dir, datadir_keep_fn keep, void *ud, size_t *removed,
			   store_error *err);

#endif
