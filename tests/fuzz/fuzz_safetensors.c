/*
 * A model's .safetensors file: the 8-byte header length, the JSON header
 * and the tensor table (names, dtypes, shapes, offsets). Invariants: an
 * accepted file's every tensor lies inside the file's data, its byte size
 * is its shape's element count times its dtype's size, names are sorted
 * and found by sft_find; conversion to float of an F32/F16/BF16 tensor
 * reads only its bytes.
 */
#include <string.h>
#include <unistd.h>

#include "clip.h"
#include "fuzz.h"
#include "safetensors.h"

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_temp_path(path, sizeof path, "sft", "safetensors");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_write_file(path, data, size);
	struct sft_file *f = NULL;
	clip_error err;
	int rc = sft_open(path, &f, &err);
	unlink(path);
	if (rc != 0) {
		FUZZ_CHECK(f == NULL && err.msg[0], "a refusal with a file or without a reason");
		return 0;
	}
	const unsigned char *base = f->map, *end = base + f->map_len;
	for (size_t i = 0; i < f->n_tensors; i++) {
		const struct sft_tensor *t = &f->tensors[i];
		FUZZ_CHECK(t->name && t->dtype < SFT_N_DTYPES && t->ndim >= 0 && t->ndim <= SFT_MAX_DIMS,
			   "tensor %zu", i);
		uint64_t elems = 1;
		for (int d = 0; d < t->ndim; d++) {
			FUZZ_CHECK(t->shape[d] >= 0, "%s: negative dimension", t->name);
			elems *= (uint64_t)t->shape[d];
		}
		FUZZ_CHECK(elems * sft_dtype_size(t->dtype) == t->nbytes, "%s: %zu bytes for %llu elements",
			   t->name, t->nbytes, (unsigned long long)elems);
		FUZZ_CHECK(t->nbytes == 0 || (t->data >= base + 8 && t->data + t->nbytes <= end),
			   "%s outside the file", t->name);
		FUZZ_CHECK(i == 0 || strcmp(f->tensors[i - 1].name, t->name) < 0, "names not sorted and unique");
		FUZZ_CHECK(sft_find(f, t->name) == t, "sft_find misses %s", t->name);
		if ((t->dtype == SFT_F32 || t->dtype == SFT_F16 || t->dtype == SFT_BF16) && elems && elems <= 4096) {
			float out[4096];
			FUZZ_CHECK(sft_to_f32(t->dtype, t->data, (size_t)elems, out) == 0, "%s: conversion", t->name);
		}
		char shape[256];
		sft_format_shape(t->shape, t->ndim, shape, sizeof shape);
		FUZZ_CHECK(memchr(shape, 0, sizeof shape) != NULL, "shape text not terminated");
	}
	sft_close(f);
	return 0;
}
