/*
 * internal.h - helpers shared by the encoder's translation units; not part
 * of the public API (clip.h).
 */
#ifndef CLIP_INTERNAL_H
#define CLIP_INTERNAL_H

#include "clip.h"

/* Fill *err (which may be NULL) and return code. */
int clip_fail(clip_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
