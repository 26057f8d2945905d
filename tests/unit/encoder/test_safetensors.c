/*
 * The safetensors reader and the model loader's checks: malformed files
 * written here are refused with a message naming the tensor and the
 * problem; F16 and BF16 convert exactly; misaligned data is copied.
 */
#include <stdint.h>

#include "harness.h"
#include "sft_fixture.h"

#include "clip.h"
#include "safetensors.h"

#define HF_DIR TEST_DATA_DIR "/tiny-clip-hf"

static char *tmp;

static const char *tmp_path(const char *name)
{
	static char path[1024];
	snprintf(path, sizeof path, "%s/%s", tmp, name);
	return path;
}

/* Open a file written from header + data; returns sft_open's code. */
static int open_raw(const char *name, const char *header, const void *data, size_t len, clip_error *err,
		    struct sft_file **out)
{
	const char *path = tmp_path(name);
	if (sft_write_raw(path, header, 0, data, len) != 0)
		return 99;
	return sft_open(path, out, err);
}

static void test_valid_file_reads_every_tensor(void)
{
	float data[6] = { 1, 2, 3, 4, 5, 6 };
	const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
			"\"b\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[8,24]},"
			"\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
	struct sft_file *f = NULL;
	clip_error err = { 0 };
	REQUIRE(open_raw("valid.safetensors", h, data, sizeof data, &err, &f) == 0);
	CHECK_EQ_INT(f->n_tensors, 2);
	const struct sft_tensor *a = sft_find(f, "a"), *b = sft_find(f, "b");
	REQUIRE(a && b);
	CHECK_EQ_INT(b->ndim, 2);
	CHECK_EQ_INT(b->shape[0], 2);
	CHECK_EQ_INT(b->nbytes, 16);
	float v[4];
	CHECK(sft_to_f32(b->dtype, b->data, 4, v) == 0);
	CHECK(v[0] == 3 && v[3] == 6);
	CHECK(sft_find(f, "c") == NULL);
	sft_close(f);
}

static void test_truncated_file_refused(void)
{
	const char *path = tmp_path("short.safetensors");
	FILE *fp = fopen(path, "wb");
	REQUIRE(fp);
	fwrite("\x10\x00\x00", 1, 3, fp);
	fclose(fp);
	struct sft_file *f = NULL;
	clip_error err = { 0 };
	CHECK_EQ_INT(sft_open(path, &f, &err), CLIP_ERR_MODEL);
	CHECK(f == NULL);
	CHECK_CONTAINS(err.msg, "truncated");

	/* a tensor whose bytes were cut off */
	float data[2] = { 1, 2 };
	const char *h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
	CHECK_EQ_INT(open_raw("cut.safetensors", h, data, sizeof data, &err, &f), CLIP_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "w: data_offsets [0, 16] run past the end");
}

static void test_header_length_past_end_refused(void)
{
	const char *path = tmp_path("hlen.safetensors");
	FILE *fp = fopen(path, "wb");
	REQUIRE(fp);
	unsigned char len[8] = { 0xe8, 0x03 };  /* 1000 */
	fwrite(len, 1, 8, fp);
	fputs("{\"a\":{}}", fp);
	fclose(fp);
	struct sft_file *f = NULL;
	clip_error err = { 0 };
	CHECK_EQ_INT(sft_open(path, &f, &err), CLIP_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "header length 1000 runs past the end of the file (16 bytes)");

	/* and a huge one that would overflow naive arithmetic */
	fp = fopen(path, "wb");
	REQUIRE(fp);
	unsigned char huge[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	fwrite(huge, 1, 8, fp);
	fputs("{}", fp);
	fclose(fp);
	CHECK_EQ_INT(sft_open(path, &f, &err), CLIP_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "runs past the end");
}

static void test_bad_json_refused(void)
{
	struct sft_file *f = NULL;
	clip_error err = { 0 };
	CHECK_EQ_INT(open_raw("json.safetensors", "{\"a\":", NULL, 0, &err, &f), CLIP_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "header is not a JSON object");
	CHECK_EQ_INT(open_raw("entry.safetensors", "{\"a\":{\"dtype\":\"F32\"}}", NULL, 0, &err, &f),
		     CLIP_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "a: header entry lacks");
	CHECK_EQ_INT(open_raw("neg.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
			      "abcd", 4, &err, &f), CLIP_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "a: shape[0] is not a non-negative integer");
}

static void test_overlapping_offsets_refused(void)
{
	float data[4] = { 0 };
	const char *h = "{\"first\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			"\"second\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
	struct sft_file *f = NULL;
	clip_error err = { 0 };
	CHECK_EQ_INT(open_raw("overlap.safetensors", h, data, sizeof data, &err, &f), CLIP_ERR_MODEL);
	CHECK(f == NULL);
	CHECK_CONTAINS(err.msg, "tensors first [0, 8] and second [4, 12] overlap");

	/* touching is fine, and so are empty tensors anywhere */
	h = "{\"first\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	    "\"empty\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
	    "\"second\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}";
	CHECK_EQ_INT(open_raw("touch.safetensors", h, data, sizeof data, &err, &f), 0);
	sft_close(f);
}

static void test_unknown_dtype_refused(void)
{
	float data[1] = { 0 };
	const char *h = "{\"odd\":{\"dtype\":\"Q4_0\",\"shape\":[1],\"data_offsets\":[0,4]}}";
	struct sft_file *f = NULL;
	clip_error err = { 0 };
	CHECK_EQ_INT(open_raw("dtype.safetensors", h, data, sizeof data, &err, &f), CLIP_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "odd: unknown dtype \"Q4_0\"");
}

static void test_shape_must_match_offsets(void)
{
	float data[4] = { 0 };
	const char *h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}";
	struct sft_file *f = NULL;
	clip_error err = { 0 };
	CHECK_EQ_INT(open_raw("size.safetensors", h, data, sizeof data, &err, &f), CLIP_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "w: shape [3] of F32 does not fit data_offsets [0, 16]");
	/* a product of dimensions that overflows 64 bits */
	h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,16]}}";
	CHECK_EQ_INT(open_raw("ovf.safetensors", h, data, sizeof data, &err, &f), CLIP_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "does not fit");
}

static void test_duplicate_name_refused(void)
{
	float data[2] = { 0 };
	const char *h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
			"\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
	struct sft_file *f = NULL;
	clip_error err = { 0 };
	CHECK_EQ_INT(open_raw("dup.safetensors", h, data, sizeof data, &err, &f), CLIP_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "tensor w appears twice");
}

static void test_f16_bf16_conversion(void)
{
	/* F16: 1, -2, 65504 (max), 2^-24 (smallest subnormal), -0, inf, 0.333 */
	uint16_t h16[7] = { 0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000, 0x7c00, 0x3555 };
	/* BF16: 1, -3.140625, 2^-133 (subnormal), 3e38-ish */
	uint16_t b16[4] = { 0x3f80, 0xc049, 0x0001, 0x7f62 };
	unsigned char data[sizeof h16 + sizeof b16 + 1];
	/* stored little-endian, the BF16 tensor one byte off any alignment */
	for (int i = 0; i < 7; i++) {
		data[2 * i] = (unsigned char)h16[i];
		data[2 * i + 1] = (unsigned char)(h16[i] >> 8);
	}
	data[14] = 0;
	for (int i = 0; i < 4; i++) {
		data[15 + 2 * i] = (unsigned char)b16[i];
		data[15 + 2 * i + 1] = (unsigned char)(b16[i] >> 8);
	}
	const char *h = "{\"h\":{\"dtype\":\"F16\",\"shape\":[7],\"data_offsets\":[0,14]},"
			"\"pad\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[14,15]},"
			"\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[15,23]}}";
	struct sft_file *f = NULL;
	clip_error err = { 0 };
	REQUIRE(open_raw("half.safetensors", h, data, sizeof data, &err, &f) == 0);
	float v[7];
	const struct sft_tensor *t = sft_find(f, "h");
	REQUIRE(t && t->dtype == SFT_F16);
	CHECK(sft_to_f32(t->dtype, t->data, 7, v) == 0);
	CHECK(v[0] == 1.0f && v[1] == -2.0f && v[2] == 65504.0f);
	CHECK(v[3] == 0x1p-24f);
	CHECK(v[4] == 0.0f && signbit(v[4]));
	CHECK(isinf(v[5]) && v[5] > 0);
	CHECK(v[6] == 0x1.554p-2f);
	t = sft_find(f, "b");
	REQUIRE(t && t->dtype == SFT_BF16);
	CHECK(sft_to_f32(t->dtype, t->data, 4, v) == 0);
	CHECK(v[0] == 1.0f && v[1] == -3.140625f);
	CHECK(v[2] == 0x1p-133f);
	CHECK(v[3] == 0x1.c4p+127f);
	/* integer tensors are readable as tensors but not as floats */
	CHECK(sft_to_f32(SFT_U8, data, 1, v) == CLIP_ERR_INVALID);
	sft_close(f);
}

/* ---- the model loader's checks on top of the file's -------------------- */

static void transpose_fc1(cJSON *h, unsigned char *extra, size_t *extra_len, size_t data_len)
{
	(void)extra, (void)extra_len, (void)data_len;
	cJSON *t = cJSON_GetObjectItem(h, "vision_model.encoder.layers.0.mlp.fc1.weight");
	cJSON *shape = cJSON_CreateIntArray((const int[]){ 96, 384 }, 2);
	cJSON_ReplaceItemInObject(t, "shape", shape);
}

static void drop_text_projection(cJSON *h, unsigned char *extra, size_t *extra_len, size_t data_len)
{
	(void)extra, (void)extra_len, (void)data_len;
	cJSON_DeleteItemFromObject(h, "text_projection.weight");
}

static void ln_as_int(cJSON *h, unsigned char *extra, size_t *extra_len, size_t data_len)
{
	(void)extra, (void)extra_len, (void)data_len;
	cJSON *t = cJSON_GetObjectItem(h, "vision_model.pre_layrnorm.weight");
	cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString("I32"));
}

/* What published checkpoints carry: an int64 position_ids buffer. */
static void add_position_ids(cJSON *h, unsigned char *extra, size_t *extra_len, size_t data_len)
{
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "dtype", "I64");
	cJSON_AddItemToObject(t, "shape", cJSON_CreateIntArray((const int[]){ 1, 77 }, 2));
	cJSON_AddItemToObject(t, "data_offsets",
			      cJSON_CreateIntArray((const int[]){ (int)data_len, (int)data_len + 77 * 8 }, 2));
	cJSON_AddItemToObject(h, "text_model.embeddings.position_ids", t);
	for (int i = 0; i < 77; i++) {
		int64_t v = i;
		memcpy(extra + 8 * i, &v, 8);
	}
	*extra_len = 77 * 8;
}

static int load_copy(const char *name, void (*mutate)(cJSON *, unsigned char *, size_t *, size_t),
		     clip_error *err, clip_model **m)
{
	const char *dir = tmp_path(name);
	if (sft_copy_model(HF_DIR, dir, "model.safetensors", mutate, 0) != 0)
		return 99;
	struct clip_params p = clip_default_params();
	return clip_model_load(dir, &p, m, err);
}

static void test_wrong_shape_refused(void)
{
	clip_model *m = NULL;
	clip_error err = { 0 };
	CHECK_EQ_INT(load_copy("shape", transpose_fc1, &err, &m), CLIP_ERR_MODEL);
	CHECK(m == NULL);
	CHECK_CONTAINS(err.msg, "vision_model.encoder.layers.0.mlp.fc1.weight: got [96, 384], expected [384, 96]");
}

static void test_missing_tensor_refused(void)
{
	clip_model *m = NULL;
	clip_error err = { 0 };
	CHECK_EQ_INT(load_copy("missing", drop_text_projection, &err, &m), CLIP_ERR_MODEL);
	CHECK(m == NULL);
	CHECK_CONTAINS(err.msg, "text_projection.weight: missing");
}

static void test_wrong_dtype_refused(void)
{
	clip_model *m = NULL;
	clip_error err = { 0 };
	CHECK_EQ_INT(load_copy("dtype", ln_as_int, &err, &m), CLIP_ERR_MODEL);
	CHECK_CONTAINS(err.msg, "vision_model.pre_layrnorm.weight: dtype I32, expected F32, F16 or BF16");
}

static void test_unused_int64_tensor_ignored(void)
{
	clip_model *m = NULL;
	clip_error err = { 0 };
	CHECK_EQ_INT(load_copy("posids", add_position_ids, &err, &m), 0);
	CHECK(m != NULL);
	clip_model_free(m);
}

static void test_truncated_weights_refused_by_loader(void)
{
	/* the real fixture cut in half: its header now points past the end */
	char src[1024];
	snprintf(src, sizeof src, "%s/model.safetensors", HF_DIR);
	size_t len = 0;
	unsigned char *bytes = harness_read_file(src, &len);
	REQUIRE(bytes);
	const char *dir = tmp_path("cut");
	mkdir(dir, 0755);
	sft_link_model_files(HF_DIR, dir);
	char dst[1024];
	snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
	FILE *fp = fopen(dst, "wb");
	REQUIRE(fp);
	fwrite(bytes, 1, len / 2, fp);
	fclose(fp);
	free(bytes);
	clip_model *m = NULL;
	clip_error err = { 0 };
	struct clip_params p = clip_default_params();
	CHECK_EQ_INT(clip_model_load(dir, &p, &m, &err), CLIP_ERR_MODEL);
	CHECK(m == NULL);
	CHECK_CONTAINS(err.msg, "model.safetensors: ");
	CHECK_CONTAINS(err.msg, "run past the end of the file");
}

static void test_missing_directory_refused(void)
{
	clip_model *m = NULL;
	clip_error err = { 0 };
	struct clip_params p = clip_default_params();
	CHECK_EQ_INT(clip_model_load(tmp_path("nowhere"), &p, &m, &err), CLIP_ERR_IO);
	CHECK_CONTAINS(err.msg, "no model found");
}

int main(void)
{
	tmp = strdup(harness_tmpdir());
	RUN(test_valid_file_reads_every_tensor);
	RUN(test_truncated_file_refused);
	RUN(test_header_length_past_end_refused);
	RUN(test_bad_json_refused);
	RUN(test_overlapping_offsets_refused);
	RUN(test_unknown_dtype_refused);
	RUN(test_shape_must_match_offsets);
	RUN(test_duplicate_name_refused);
	RUN(test_f16_bf16_conversion);
	RUN(test_wrong_shape_refused);
	RUN(test_missing_tensor_refused);
	RUN(test_wrong_dtype_refused);
	RUN(test_unused_int64_tensor_ignored);
	RUN(test_truncated_weights_refused_by_loader);
	RUN(test_missing_directory_refused);
	free(tmp);
	return harness_done();
}
