/*
 * forward.h - the transformer forward passes (internal to encoder/).
 *
 * The forward passes (forward.c) read the model, write only the caller's
 * struct clip_work (scratch memory that grows to the largest chunk seen)
 * and the output, and split every GEMM and elementwise step across the
 * team (team.h). BLAS is called single-threaded from each team thread.
 */
#ifndef CLIP_FORWARD_H
#define CLIP_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "team.h"

/* Scratch memory of one ctx; zero-initialise, release with clip_work_free. */
struct clip_work {
	float *buf;
	size_t cap;        /* floats in buf */
	int *ints;
	size_t cap_ints;
};
void clip_work_free(struct clip_work *w);

/* At most this many token rows (images x tokens, or text tokens) go
 * through the transformer at once; bigger batches are cut into chunks, so
 * scratch memory stays bounded whatever the batch size. */
#define CLIP_CHUNK_ROWS 1024

/* n images of 3 x S x S floats each -> n x dim projections. */
int clip_forward_images(const clip_model *m, struct clip_team *team, struct clip_work *w,
			const float *pixels, size_t n, float *out, clip_error *err);

/* At load: m->prefix_kv for texts that start with id (clip_model.prefix_kv). */
int clip_forward_prefix(clip_model *m, int32_t id, clip_error *err);

/* n token sequences (lens[i] ids each, 1 <= lens[i] <= context length,
 * ids < vocab size) -> n x dim projections, pooled at the first occurrence
 * of the largest id (the end token). */
int clip_forward_tokens(const clip_model *m, struct clip_team *team, struct clip_work *w,
			const int32_t *const *ids, const size_t *lens, size_t n, float *out,
			clip_error *err);

#endif
