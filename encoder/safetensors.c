/*
 * safetensors.c - map a .safetensors file and validate its header before
 * any tensor is used. See safetensors.h for the format and the checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "internal.h"
#include "safetensors.h"

static const struct {
	const char *name;
	size_t size;
} dtypes[SFT_N_DTYPES] = {
	[SFT_BOOL] = { "BOOL", 1 },   [SFT_U8] = { "U8", 1 },     [SFT_I8] = { "I8", 1 },
	[SFT_F8_E5M2] = { "F8_E5M2", 1 }, [SFT_F8_E4M3] = { "F8_E4M3", 1 },
	[SFT_I16] = { "I16", 2 },     [SFT_U16] = { "U16", 2 },   [SFT_F16] = { "F16", 2 },
	[SFT_BF16] = { "BF16", 2 },   [SFT_I32] = { "I32", 4 },   [SFT_U32] = { "U32", 4 },
	[SFT_F32] = { "F32", 4 },     [SFT_F64] = { "F64", 8 },   [SFT_I64] = { "I64", 8 },
	[SFT_U64] = { "U64", 8 },
};

const char *sft_dtype_name(enum sft_dtype dtype)
{
	return (unsigned)dtype < SFT_N_DTYPES ? dtypes[dtype].name : "?";
}

size_t sft_dtype_size(enum sft_dtype dtype)
{
	return (unsigned)dtype < SFT_N_DTYPES ? dtypes[dtype].size : 0;
}

static int parse_dtype(const char *s, enum sft_dtype *out)
{
	for (int i = 0; i < SFT_N_DTYPES; i++) {
		if (!strcmp(s, dtypes[i].name)) {
			*out = (enum sft_dtype)i;
			return 0;
		}
	}
	return -1;
}

void sft_format_shape(const int64_t *shape, int ndim, char *buf, size_t len)
{
	char tmp[32];
	size_t pos = 0;
	if (!len)
		return;
	for (int i = -1; i <= ndim; i++) {
		const char *piece = tmp;
		if (i < 0)
			piece = "[";
		else if (i == ndim)
			piece = "]";
		else
			snprintf(tmp, sizeof tmp, "%s%lld", i ? ", " : "", (long long)shape[i]);
		size_t n = strlen(piece);
		if (pos + n >= len)
			break;
		memcpy(buf + pos, piece, n);
		pos += n;
	}
	buf[pos] = 0;
}

/* A JSON number that is a non-negative integer below 2^53, or -1. */
static int64_t json_uint(const cJSON *item)
{
	if (!cJSON_IsNumber(item))
		return -1;
	double d = item->valuedouble;
	if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(int64_t)d)
		return -1;
	return (int64_t)d;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static int cmp_tensor_name(const void *a, const void *b)
{
	return strcmp(((const struct sft_tensor *)a)->name, ((const struct sft_tensor *)b)->name);
}

static int cmp_name_key(const void *key, const void *elem)
{
	return strcmp(key, ((const struct sft_tensor *)elem)->name);
}

struct span {
	uint64_t begin, end;
	size_t index;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

/* Fill t from one header entry; data_len is the size of the data region. */
static int parse_entry(const char *file, const cJSON *entry, struct sft_tensor *t,
		       const unsigned char *data, uint64_t data_len, uint64_t *begin_out,
		       uint64_t *end_out, clip_error *err)
{
	const char *name = entry->string;
	if (!cJSON_IsObject(entry))
		return clip_fail(err, CLIP_ERR_MODEL, "%s: %s: header entry is not an object", file, name);
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
	const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
	const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
	if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs))
		return clip_fail(err, CLIP_ERR_MODEL, "%s: %s: header entry lacks dtype, shape or data_offsets",
				 file, name);
	if (parse_dtype(dt->valuestring, &t->dtype) != 0)
		return clip_fail(err, CLIP_ERR_MODEL, "%s: %s: unknown dtype \"%.32s\"", file, name,
				 dt->valuestring);
	int ndim = cJSON_GetArraySize(shape);
	if (ndim > SFT_MAX_DIMS)
		return clip_fail(err, CLIP_ERR_MODEL, "%s: %s: %d dimensions, at most %d supported",
				 file, name, ndim, SFT_MAX_DIMS);
	t->ndim = ndim;
	uint64_t count = 1;
	int overflow = 0;
	for (int i = 0; i < ndim; i++) {
		int64_t d = json_uint(cJSON_GetArrayItem(shape, i));
		if (d < 0)
			return clip_fail(err, CLIP_ERR_MODEL, "%s: %s: shape[%d] is not a non-negative integer",
					 file, name, i);
		t->shape[i] = d;
		if (d && count > UINT64_MAX / (uint64_t)d)
			overflow = 1;
		count *= (uint64_t)d;
	}
	int64_t b = cJSON_GetArraySize(offs) == 2 ? json_uint(cJSON_GetArrayItem(offs, 0)) : -1;
	int64_t e = cJSON_GetArraySize(offs) == 2 ? json_uint(cJSON_GetArrayItem(offs, 1)) : -1;
	if (b < 0 || e < 0 || e < b)
		return clip_fail(err, CLIP_ERR_MODEL, "%s: %s: data_offsets must be two integers, begin <= end",
				 file, name);
	if ((uint64_t)e > data_len)
		return clip_fail(err, CLIP_ERR_MODEL,
				 "%s: %s: data_offsets [%lld, %lld] run past the end of the file (%llu data bytes)",
				 file, name, (long long)b, (long long)e, (unsigned long long)data_len);
	size_t esize = dtypes[t->dtype].size;
	if (overflow || count > UINT64_MAX / esize || count * esize != (uint64_t)(e - b)) {
		char s[128];
		sft_format_shape(t->shape, ndim, s, sizeof s);
		return clip_fail(err, CLIP_ERR_MODEL, "%s: %s: shape %s of %s does not fit data_offsets [%lld, %lld]",
				 file, name, s, dt->valuestring, (long long)b, (long long)e);
	}
	t->data = data + b;
	t->nbytes = (size_t)(e - b);
	*begin_out = (uint64_t)b;
	*end_out = (uint64_t)e;
	return 0;
}

/* Validate the JSON header and fill f->tensors. */
static int parse_header(struct sft_file *f, const char *file, const char *json, size_t json_len,
			const unsigned char *data, uint64_t data_len, clip_error *err)
{
	int rc = CLIP_ERR_MODEL;
	struct span *spans = NULL;
	cJSON *root = cJSON_ParseWithLength(json, json_len);
	if (!root || !cJSON_IsObject(root)) {
		rc = clip_fail(err, CLIP_ERR_MODEL, "%s: header is not a JSON object", file);
		goto out;
	}
	size_t n = 0;
	for (const cJSON *it = root->child; it; it = it->next)
		if (strcmp(it->string, "__metadata__") != 0)
			n++;
	if (n > SFT_MAX_TENSORS) {
		rc = clip_fail(err, CLIP_ERR_MODEL, "%s: %zu tensors, more than the limit of %d", file, n,
			       SFT_MAX_TENSORS);
		goto out;
	}
	f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
	spans = calloc(n ? n : 1, sizeof *spans);
	if (!f->tensors || !spans) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "%s: out of memory for the header", file);
		goto out;
	}
	for (const cJSON *it = root->child; it; it = it->next) {
		if (!strcmp(it->string, "__metadata__"))
			continue;
		struct sft_tensor *t = &f->tensors[f->n_tensors];
		t->name = strdup(it->string);
		if (!t->name) {
			rc = clip_fail(err, CLIP_ERR_NOMEM, "%s: out of memory for the header", file);
			goto out;
		}
		f->n_tensors++;
		rc = parse_entry(file, it, t, data, data_len, &spans[f->n_tensors - 1].begin,
				 &spans[f->n_tensors - 1].end, err);
		if (rc)
			goto out;
		spans[f->n_tensors - 1].index = f->n_tensors - 1;
	}
	/* No two tensors share a byte (empty tensors occupy none). */
	qsort(spans, n, sizeof *spans, cmp_span);
	const struct span *prev = NULL;
	for (size_t i = 0; i < n; i++) {
		if (spans[i].begin == spans[i].end)
			continue;
		if (prev && spans[i].begin < prev->end) {
			rc = clip_fail(err, CLIP_ERR_MODEL,
				       "%s: tensors %s [%llu, %llu] and %s [%llu, %llu] overlap", file,
				       f->tensors[prev->index].name, (unsigned long long)prev->begin,
				       (unsigned long long)prev->end, f->tensors[spans[i].index].name,
				       (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end);
			goto out;
		}
		prev = &spans[i];
	}
	qsort(f->tensors, n, sizeof *f->tensors, cmp_tensor_name);
	for (size_t i = 1; i < n; i++) {
		if (!strcmp(f->tensors[i - 1].name, f->tensors[i].name)) {
			rc = clip_fail(err, CLIP_ERR_MODEL, "%s: tensor %s appears twice in the header", file,
				       f->tensors[i].name);
			goto out;
		}
	}
	rc = 0;
out:
	free(spans);
	cJSON_Delete(root);
	return rc;
}

int sft_open(const char *path, struct sft_file **out, clip_error *err)
{
	int rc = CLIP_ERR_IO;
	int fd = -1;
	struct sft_file *f = NULL;
	if (!path || !out)
		return clip_fail(err, CLIP_ERR_INVALID, "sft_open: NULL argument");
	*out = NULL;
	const char *file = base_name(path);
	f = calloc(1, sizeof *f);
	if (!f || !(f->path = strdup(path))) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "%s: out of memory", file);
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = clip_fail(err, CLIP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
		goto out;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		rc = clip_fail(err, CLIP_ERR_IO, "%s: not a regular file", path);
		goto out;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (size < 8) {
		rc = clip_fail(err, CLIP_ERR_MODEL, "%s: truncated: %llu bytes, shorter than the 8-byte header length",
			       file, (unsigned long long)size);
		goto out;
	}
	f->map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (f->map == MAP_FAILED) {
		f->map = NULL;
		rc = clip_fail(err, CLIP_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
		goto out;
	}
	f->map_len = (size_t)size;
	const unsigned char *bytes = f->map;
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = hlen << 8 | bytes[i];
	if (hlen > size - 8) {
		rc = clip_fail(err, CLIP_ERR_MODEL,
			       "%s: header length %llu runs past the end of the file (%llu bytes): truncated or not safetensors",
			       file, (unsigned long long)hlen, (unsigned long long)size);
		goto out;
	}
	if (hlen < 2 || hlen > SFT_MAX_HEADER) {
		rc = clip_fail(err, CLIP_ERR_MODEL, "%s: header length %llu outside [2, %llu]", file,
			       (unsigned long long)hlen, (unsigned long long)SFT_MAX_HEADER);
		goto out;
	}
	rc = parse_header(f, file, (const char *)bytes + 8, (size_t)hlen, bytes + 8 + hlen,
			  size - 8 - hlen, err);
	if (rc)
		goto out;
	*out = f;
	f = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	sft_close(f);
	return rc;
}

void sft_close(struct sft_file *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n_tensors; i++)
		free(f->tensors[i].name);
	free(f->tensors);
	if (f->map)
		munmap(f->map, f->map_len);
	free(f->path);
	free(f);
}

const struct sft_tensor *sft_find(const struct sft_file *f, const char *name)
{
	if (!f || !name)
		return NULL;
	return bsearch(name, f->tensors, f->n_tensors, sizeof *f->tensors, cmp_name_key);
}

static float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
	uint32_t bits;
	if (exp == 0) {
		/* zero or subnormal: mant * 2^-24, exact in float */
		float v = (float)mant * 0x1p-24f;
		memcpy(&bits, &v, sizeof bits);
		bits |= sign;
	} else if (exp == 31) {
		bits = sign | 0x7f800000u | mant << 13;
	} else {
		bits = sign | (exp + 112) << 23 | mant << 13;
	}
	float f;
	memcpy(&f, &bits, sizeof f);
	return f;
}

int sft_to_f32(enum sft_dtype dtype, const unsigned char *src, size_t n, float *dst)
{
	switch (dtype) {
	case SFT_F32:
		memcpy(dst, src, n * sizeof *dst);
		return 0;
	case SFT_F16:
		for (size_t i = 0; i < n; i++)
			dst[i] = half_to_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
		return 0;
	case SFT_BF16:
		for (size_t i = 0; i < n; i++) {
			uint32_t bits = (uint32_t)(src[2 * i] | src[2 * i + 1] << 8) << 16;
			memcpy(&dst[i], &bits, sizeof bits);
		}
		return 0;
	default:
		return CLIP_ERR_INVALID;
	}
}
