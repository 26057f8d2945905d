/*
 * internal.h - helpers shared by the encoder's translation units; not part
 * of the public API (clip.h).
 */
#ifndef CLIP_INTERNAL_H
#define CLIP_INTERNAL_H

#include "clip.h"

/* Fill *err (which may be NULL) and return code. */
int clip_fail(clip_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Images (image.c). The decoder's ceiling on either side, also stb_image's
 * STBI_MAX_DIMENSIONS (stb_impl.c). */
#define CLIP_IMAGE_MAX_SIDE 65536
/* A side x side RGB crop to 3 planes of floats, (v / 255 - mean) / std in
 * float32 as torchvision computes it; out holds out_len >= 3*side*side. */
int clip_image_normalize(const unsigned char *rgb, int side, const float mean[3],
			 const float std[3], float *out, size_t out_len, clip_error *err);
/* stb_impl.c: refuse any single stb_image allocation over max_block bytes
 * (0: no cap) in this thread, and say whether one was refused since. */
void clip_stbi_cap_allocations(size_t max_block);
int clip_stbi_allocation_refused(void);
/* The model's normalisation, 3 floats each, owned by the model (model.c). */
const float *clip_model_mean(const clip_model *model);
const float *clip_model_std(const clip_model *model);

#endif
