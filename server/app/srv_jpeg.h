/*
 * srv_jpeg.h - JPEG encoding for thumbnails (stb_image_write, compiled in
 * a translation unit of its own: its bit writer shifts signed integers,
 * which UndefinedBehaviorSanitizer reports, so this one file is built
 * without the shift check; see server/app/meson.build).
 *
 *     unsigned char *jpeg; size_t len;
 *     if (srv_jpeg_encode(rgb, w, h, 85, &jpeg, &len) == 0) { use(jpeg, len); free(jpeg); }
 */
#ifndef CLIPD_SRV_JPEG_H
#define CLIPD_SRV_JPEG_H

#include <stddef.h>

/* rgb: w x h x 3 bytes. *jpeg is malloc'd (the caller frees). 0, or -1. */
int srv_jpeg_encode(const unsigned char *rgb, int w, int h, int quality, unsigned char **jpeg, size_t *len);

#endif
