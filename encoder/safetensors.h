/*
 * safetensors.h - a validating reader of the safetensors format (internal).
 *
 *     struct sft_file *f = NULL;
 *     if (sft_open("model.safetensors", &f, &err) != 0)
 *             return err.code;
 *     const struct sft_tensor *t = sft_find(f, "logit_scale");
 *     ...
 *     sft_close(f);
 *
 * The file is an 8-byte little-endian header length, a JSON object mapping
 * tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the byte after the header), an optional "__metadata__" entry,
 * then the raw little-endian tensor bytes. sft_open maps the file read-only
 * and refuses it unless the header is complete JSON, every tensor has a
 * known dtype, a shape whose byte size equals its offsets, offsets inside
 * the file, and no two tensors overlap. Nothing is copied: tensor data
 * pointers point into the mapping, which lives until sft_close.
 */
#ifndef CLIP_SAFETENSORS_H
#define CLIP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "clip.h"

#define SFT_MAX_DIMS 8                        /* dimensions of one tensor */
#define SFT_MAX_HEADER ((uint64_t)100 << 20)  /* bytes of JSON header (the format's own limit) */
#define SFT_MAX_TENSORS 100000                /* entries in one header */

enum sft_dtype {
	SFT_BOOL, SFT_U8, SFT_I8, SFT_F8_E5M2, SFT_F8_E4M3, SFT_I16, SFT_U16, SFT_F16,
	SFT_BF16, SFT_I32, SFT_U32, SFT_F32, SFT_F64, SFT_I64, SFT_U64,
	SFT_N_DTYPES
};

struct sft_tensor {
	char *name;                  /* owned by the sft_file */
	enum sft_dtype dtype;
	int ndim;
	int64_t shape[SFT_MAX_DIMS];
	const unsigned char *data;   /* into the mapping; may be misaligned */
	size_t nbytes;
};

struct sft_file {
	char *path;
	void *map;
	size_t map_len;              /* the file's size */
	struct sft_tensor *tensors;  /* sorted by name */
	size_t n_tensors;
};

/* Map and validate path. On success *out owns the mapping. */
int sft_open(const char *path, struct sft_file **out, clip_error *err);
void sft_close(struct sft_file *f);

/* The tensor called name, or NULL. */
const struct sft_tensor *sft_find(const struct sft_file *f, const char *name);

/* "F32", "BF16", ... */
const char *sft_dtype_name(enum sft_dtype dtype);
size_t sft_dtype_size(enum sft_dtype dtype);

/* Format a shape as "[768, 512]" into buf. */
void sft_format_shape(const int64_t *shape, int ndim, char *buf, size_t len);

/*
 * Convert n elements of an F32, F16 or BF16 tensor's bytes (any alignment)
 * to float. Other dtypes: CLIP_ERR_INVALID.
 */
int sft_to_f32(enum sft_dtype dtype, const unsigned char *src, size_t n, float *dst);

#endif
