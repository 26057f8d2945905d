/*
 * safetensors.h - a validating reader of the safetensors format (internal).
 *
 *     struct st_file *f = NULL;
 *     if (st_open("model.safetensors", &f, &err) != 0)
 *             return err.code;
 *     const struct st_tensor *t = st_find(f, "logit_scale");
 *     ...
 *     st_close(f);
 *
 * The file is an 8-byte little-endian header length, a JSON object mapping
 * tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the byte after the header), an optional "__metadata__" entry,
 * then the raw little-endian tensor bytes. st_open maps the file read-only
 * and refuses it unless the header is complete JSON, every tensor has a
 * known dtype, a shape whose byte size equals its offsets, offsets inside
 * the file, and no two tensors overlap. Nothing is copied: tensor data
 * pointers point into the mapping, which lives until st_close.
 */
#ifndef CLIP_SAFETENSORS_H
#define CLIP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "clip.h"

#define ST_MAX_DIMS 8                       /* dimensions of one tensor */
#define ST_MAX_HEADER ((uint64_t)100 << 20) /* bytes of JSON header (the format's own limit) */
#define ST_MAX_TENSORS 100000               /* entries in one header */

enum st_dtype {
	ST_BOOL, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_I16, ST_U16, ST_F16,
	ST_BF16, ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64,
	ST_N_DTYPES
};

struct st_tensor {
	char *name;                  /* owned by the st_file */
	enum st_dtype dtype;
	int ndim;
	int64_t shape[ST_MAX_DIMS];
	const unsigned char *data;   /* into the mapping; may be misaligned */
	size_t nbytes;
};

struct st_file {
	char *path;
	void *map;
	size_t map_len;              /* the file's size */
	struct st_tensor *tensors;   /* sorted by name */
	size_t n_tensors;
};

/* Map and validate path. On success *out owns the mapping. */
int st_open(const char *path, struct st_file **out, clip_error *err);
void st_close(struct st_file *f);

/* The tensor called name, or NULL. */
const struct st_tensor *st_find(const struct st_file *f, const char *name);

/* "F32", "BF16", ... */
const char *st_dtype_name(enum st_dtype dtype);
size_t st_dtype_size(enum st_dtype dtype);

/* Format a shape as "[768, 512]" into buf. */
void st_format_shape(const int64_t *shape, int ndim, char *buf, size_t len);

/*
 * Convert n elements of an F32, F16 or BF16 tensor's bytes (any alignment)
 * to float. Other dtypes: CLIP_ERR_INVALID.
 */
int st_to_f32(enum st_dtype dtype, const unsigned char *src, size_t n, float *dst);

#endif
