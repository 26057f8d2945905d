/*
 * srv_thumb.h - JPEG thumbnails: the longest side scaled down to one of
 * the fixed sizes (never up), cached on disk by the original's SHA-256 and
 * the size, under DATA/cache/thumbs/ab/<sha256>-<size>.jpg.
 *
 *     unsigned char *jpeg; size_t len;
 *     srv_thumb_make(rgb, w, h, 256, &jpeg, &len);         // malloc'd JPEG
 *     srv_thumb_store(dir, sha, 256, jpeg, len, msg, sizeof msg);
 *     free(jpeg);
 */
#ifndef CLIPD_SRV_THUMB_H
#define CLIPD_SRV_THUMB_H

#include <stddef.h>

#define SRV_THUMB_QUALITY 85

/* 1 if size is one of the sizes served (128, 256, 512). */
int srv_thumb_size_ok(long long size);
extern const int srv_thumb_sizes[3];

/* Area-average downscale of an RGB image (w x h, 3 bytes a pixel) to fit
 * side x side, then JPEG. 0, or -1 (out of memory). */
int srv_thumb_make(const unsigned char *rgb, int w, int h, int side, unsigned char **jpeg, size_t *len);

/* The cache file's path. 0, or -1 if it does not fit. */
int srv_thumb_path(const char *dir, const char *sha256, int size, char *out, size_t outlen);
/* Write atomically (temporary file, rename); errors are not fatal to the
 * caller (the thumbnail is served anyway). 0, or -1 with a message. */
int srv_thumb_store(const char *dir, const char *sha256, int size, const void *jpeg, size_t len,
		    char *msg, size_t msglen);
/* Remove an original's cached thumbnails (after a delete). */
void srv_thumb_forget(const char *dir, const char *sha256);

#endif
