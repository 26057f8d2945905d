/*
 * srv_thumb.h - JPEG thumbnails: the longest side scaled down to one of
 * the fixed sizes (never up). The catalog caches them on disk
 * (catalog_thumb_path, catalog_put_thumb).
 *
 *     unsigned char *jpeg; size_t len;
 *     srv_thumb_make(&img, 256, &jpeg, &len);              // malloc'd JPEG
 *     catalog_put_thumb(cat, sha, 256, jpeg, len, &err);
 *     free(jpeg);
 */
#ifndef CLIPD_SRV_THUMB_H
#define CLIPD_SRV_THUMB_H

#include <stddef.h>

#include "clip.h"

#define SRV_THUMB_QUALITY 85

/* 1 if size is one of the sizes served (128, 256, 512). */
int srv_thumb_size_ok(long long size);
extern const int srv_thumb_sizes[3];

/* Area-average downscale of a decoded image's RGB to fit side x side (the
 * full picture's proportions and box for a DCT-scaled decode:
 * clip_image_box), then JPEG. 0, or -1 (out of memory). */
int srv_thumb_make(const clip_image *img, int side, unsigned char **jpeg, size_t *len);

#endif
