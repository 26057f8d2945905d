/*
 * libpath.h - paths inside a photo library, as the scanner makes them and
 * as the catalog keeps them: relative to the library's root, components
 * joined by single '/', no hidden component (so no "." or ".."), no NUL,
 * at most LIBPATH_MAX bytes. Opening one never follows a symbolic link
 * below the root, so no stored path reaches outside it.
 *
 *     char child[LIBPATH_MAX + 1];
 *     if (libpath_hidden(entry->d_name))
 *             continue;                                   // ".", "..", ".DS_Store", ".git/"
 *     if (libpath_join(dir, entry->d_name, child, sizeof child) != 0)
 *             ... too long
 *     int fd = libpath_open("/home/me/Pictures", "2024/beach.jpg", O_RDONLY);
 *     if (fd < 0 && errno == ELOOP) ... a link somewhere below the root
 */
#ifndef CLIPD_LIBPATH_H
#define CLIPD_LIBPATH_H

#include <stddef.h>

#define LIBPATH_MAX 4000   /* bytes of a path inside a library */

/* 1 for a directory entry the scanner skips: ".", "..", and every hidden
 * name (a leading '.'); also the empty name. */
int libpath_hidden(const char *name);

/* out = dir "/" name (name alone when dir is ""). 0, or -1 when name is
 * not one visible entry name (empty, hidden, or holding a '/') or the
 * result is longer than LIBPATH_MAX bytes or does not fit len. dir must
 * itself be "" or libpath_valid. */
int libpath_join(const char *dir, const char *name, char *out, size_t len);

/* 1 when the n bytes at p are a path as the scanner makes them: 1 to
 * LIBPATH_MAX bytes, no NUL, relative, every component non-empty and not
 * hidden. */
int libpath_valid(const char *p, size_t n);

/* Open rel (libpath_valid) under the folder root: root itself may be a
 * link (a mount point's alias); below it each folder and the file are
 * opened with O_NOFOLLOW, one at a time. flags are added for the file
 * (O_RDONLY, O_NONBLOCK, ...). A descriptor, or -1 with errno (EINVAL:
 * rel is not valid; ELOOP: a symbolic link on the way; ENOTDIR: a file
 * on the way; ENOENT). */
int libpath_open(const char *root, const char *rel, int flags);

/* The cursor of a page of paths (GET /libraries/{name}/errors): the last
 * path of the page before, in lowercase hex (a path is bytes). encode: a
 * malloc'd string, NULL without memory. decode: the malloc'd path, or
 * NULL for anything encode never gives (odd length, not lowercase hex, a
 * NUL byte, more than LIBPATH_MAX bytes, empty) or without memory. */
char *libpath_cursor_encode(const char *path);
char *libpath_cursor_decode(const char *hex);

#endif
