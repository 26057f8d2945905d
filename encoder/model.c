/*
 * model.c - load a CLIP model directory: the config of either layout
 * (Hugging Face CLIPModel or OpenCLIP with OpenAI tensor names), the
 * safetensors weights (one file or shards), the tokenizer; bind every
 * tensor the architecture needs after checking its exact shape.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cblas.h>
#include <cJSON.h>

#include "internal.h"
#include "forward.h"
#include "model.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; F32 tensors are used in place"
#endif

static const float clip_default_mean[3] = { 0.48145466f, 0.4578275f, 0.40821073f };
static const float clip_default_std[3] = { 0.26862954f, 0.26130258f, 0.27577711f };

/* ---- small helpers ---------------------------------------------------- */

static int file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int join_path(char *buf, size_t len, const char *dir, const char *name, clip_error *err)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= len)
		return clip_fail(err, CLIP_ERR_INVALID, "path too long: %s/%s", dir, name);
	return 0;
}

/* Read and parse a JSON file of at most CLIP_MAX_CONFIG_BYTES. */
static int read_json(const char *path, cJSON **out, clip_error *err)
{
	int rc = CLIP_ERR_IO;
	char *buf = NULL;
	FILE *f = fopen(path, "rb");
	*out = NULL;
	if (!f) {
		rc = clip_fail(err, CLIP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
		goto out;
	}
	buf = malloc(CLIP_MAX_CONFIG_BYTES + 1);
	if (!buf) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "%s: out of memory", path);
		goto out;
	}
	size_t n = fread(buf, 1, CLIP_MAX_CONFIG_BYTES + 1, f);
	if (ferror(f)) {
		rc = clip_fail(err, CLIP_ERR_IO, "%s: read error", path);
		goto out;
	}
	if (n > CLIP_MAX_CONFIG_BYTES) {
		rc = clip_fail(err, CLIP_ERR_MODEL, "%s: larger than %d bytes", path, CLIP_MAX_CONFIG_BYTES);
		goto out;
	}
	*out = cJSON_ParseWithLength(buf, n);
	if (!*out || !cJSON_IsObject(*out)) {
		cJSON_Delete(*out);
		*out = NULL;
		rc = clip_fail(err, CLIP_ERR_MODEL, "%s: not a JSON object", path);
		goto out;
	}
	rc = 0;
out:
	free(buf);
	if (f)
		fclose(f);
	return rc;
}

/* Config values: absent or null means the default; anything else must be
 * a number of the right kind within [lo, hi]. `where` names the object
 * ("vision_config") for the message. */
static int cfg_int(const cJSON *obj, const char *where, const char *key, int def, int lo, int hi,
		   int *out, clip_error *err)
{
	const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
	if (!v || cJSON_IsNull(v)) {
		*out = def;
		return 0;
	}
	/* OpenCLIP writes image_size as [224, 224] sometimes: square only. */
	if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2 && cJSON_IsNumber(cJSON_GetArrayItem(v, 0)) &&
	    cJSON_IsNumber(cJSON_GetArrayItem(v, 1)) &&
	    cJSON_GetArrayItem(v, 0)->valuedouble == cJSON_GetArrayItem(v, 1)->valuedouble)
		v = cJSON_GetArrayItem(v, 0);
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
		return clip_fail(err, CLIP_ERR_MODEL, "config: %s.%s is not an integer", where, key);
	if (v->valuedouble < lo || v->valuedouble > hi)
		return clip_fail(err, CLIP_ERR_MODEL, "config: %s.%s = %.0f outside [%d, %d]", where, key,
				 v->valuedouble, lo, hi);
	*out = (int)v->valuedouble;
	return 0;
}

static int cfg_double(const cJSON *obj, const char *where, const char *key, double def, double lo,
		      double hi, double *out, clip_error *err)
{
	const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
	if (!v || cJSON_IsNull(v)) {
		*out = def;
		return 0;
	}
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
		return clip_fail(err, CLIP_ERR_MODEL, "config: %s.%s is not a number in [%g, %g]", where, key, lo, hi);
	*out = v->valuedouble;
	return 0;
}

/* Three positive numbers (mean or std); absent leaves out as it is. */
static int cfg_triple(const cJSON *obj, const char *where, const char *key, int positive, float *out,
		      clip_error *err)
{
	const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3)
		return clip_fail(err, CLIP_ERR_MODEL, "config: %s.%s must be a list of 3 numbers", where, key);
	for (int i = 0; i < 3; i++) {
		const cJSON *x = cJSON_GetArrayItem(v, i);
		if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || (positive && !(x->valuedouble > 0)))
			return clip_fail(err, CLIP_ERR_MODEL, "config: %s.%s[%d] is not a valid number", where, key, i);
		out[i] = (float)x->valuedouble;
	}
	return 0;
}

static int check_heads(const struct clip_tower_arch *t, const char *where, clip_error *err)
{
	if (t->heads < 1 || t->width % t->heads != 0)
		return clip_fail(err, CLIP_ERR_MODEL, "config: %s: width %d is not divisible by %d heads",
				 where, t->width, t->heads);
	return 0;
}

/* ---- Hugging Face config.json ----------------------------------------- */

static int hf_activation(const cJSON *obj, const char *where, int *quick, clip_error *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "hidden_act");
	if (!v || cJSON_IsNull(v)) {
		*quick = 1;  /* transformers' CLIP default */
		return 0;
	}
	if (cJSON_IsString(v) && !strcmp(v->valuestring, "quick_gelu")) {
		*quick = 1;
		return 0;
	}
	if (cJSON_IsString(v) && !strcmp(v->valuestring, "gelu")) {
		*quick = 0;
		return 0;
	}
	return clip_fail(err, CLIP_ERR_MODEL, "config: %s.hidden_act \"%.40s\" is not supported (quick_gelu or gelu)",
			 where, cJSON_IsString(v) ? v->valuestring : "?");
}

static int hf_tower(const cJSON *obj, const char *where, int is_text, struct clip_tower_arch *t,
		    clip_error *err)
{
	double eps = 1e-5;
	int rc;
	int def_width = is_text ? 512 : 768, def_heads = is_text ? 8 : 12;
	if ((rc = cfg_int(obj, where, "hidden_size", def_width, 1, CLIP_MAX_WIDTH, &t->width, err)) ||
	    (rc = cfg_int(obj, where, "intermediate_size", 4 * def_width, 1, 4 * CLIP_MAX_WIDTH, &t->mlp, err)) ||
	    (rc = cfg_int(obj, where, "num_attention_heads", def_heads, 1, CLIP_MAX_HEADS, &t->heads, err)) ||
	    (rc = cfg_int(obj, where, "num_hidden_layers", 12, 1, CLIP_MAX_LAYERS, &t->layers, err)) ||
	    (rc = cfg_double(obj, where, "layer_norm_eps", 1e-5, 0, 1, &eps, err)) ||
	    (rc = hf_activation(obj, where, &t->quick_gelu, err)) || (rc = check_heads(t, where, err)))
		return rc;
	t->eps = (float)eps;
	return 0;
}

static const cJSON *hf_sub(const cJSON *root, const char *name, const char *legacy)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
	if (!cJSON_IsObject(v))
		v = cJSON_GetObjectItemCaseSensitive(root, legacy);
	return cJSON_IsObject(v) ? v : NULL;
}

static int parse_hf_config(const cJSON *root, struct clip_arch *a, clip_error *err)
{
	const cJSON *vc = hf_sub(root, "vision_config", "vision_config_dict");
	const cJSON *tc = hf_sub(root, "text_config", "text_config_dict");
	int rc, channels;
	if ((rc = hf_tower(vc, "vision_config", 0, &a->vision, err)) ||
	    (rc = hf_tower(tc, "text_config", 1, &a->text, err)) ||
	    (rc = cfg_int(vc, "vision_config", "image_size", 224, 1, CLIP_MAX_IMAGE_SIZE, &a->image_size, err)) ||
	    (rc = cfg_int(vc, "vision_config", "patch_size", 32, 1, CLIP_MAX_IMAGE_SIZE, &a->patch_size, err)) ||
	    (rc = cfg_int(vc, "vision_config", "num_channels", 3, 3, 3, &channels, err)) ||
	    (rc = cfg_int(tc, "text_config", "max_position_embeddings", 77, 2, CLIP_MAX_CONTEXT,
			  &a->context_length, err)) ||
	    (rc = cfg_int(tc, "text_config", "vocab_size", 49408, CLIP_TOKEN_EOT + 1, CLIP_MAX_VOCAB,
			  &a->vocab_size, err)) ||
	    (rc = cfg_int(root, "config", "projection_dim", 512, 1, CLIP_MAX_WIDTH, &a->embed_dim, err)))
		return rc;
	return 0;
}

/* Hugging Face preprocessor_config.json: image_mean and image_std. */
static int parse_hf_preprocessor(const cJSON *root, struct clip_arch *a, clip_error *err)
{
	int rc;
	if ((rc = cfg_triple(root, "preprocessor_config", "image_mean", 0, a->mean, err)) ||
	    (rc = cfg_triple(root, "preprocessor_config", "image_std", 1, a->std, err)))
		return rc;
	return 0;
}

/* ---- OpenCLIP open_clip_config.json ----------------------------------- */

/* Options that change the network in ways this encoder does not compute:
 * refused by name rather than silently ignored. */
static int openclip_refuse(const cJSON *cfg, const char *where, clip_error *err)
{
	static const char *const truthy[] = { "attentional_pool", "no_ln_pre", "final_ln_after_pool",
					      "input_patchnorm", "output_tokens", "embed_cls",
					      "no_causal_mask", "proj_bias", "patch_dropout_eval" };
	static const char *const present[] = { "timm_model_name", "hf_model_name", "ls_init_value" };
	if (!cfg)
		return 0;
	for (size_t i = 0; i < sizeof truthy / sizeof truthy[0]; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, truthy[i]);
		if (v && (cJSON_IsTrue(v) || (cJSON_IsNumber(v) && v->valuedouble != 0)))
			return clip_fail(err, CLIP_ERR_MODEL, "config: %s.%s is not supported", where, truthy[i]);
	}
	for (size_t i = 0; i < sizeof present / sizeof present[0]; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, present[i]);
		if (v && !cJSON_IsNull(v) && !cJSON_IsFalse(v))
			return clip_fail(err, CLIP_ERR_MODEL, "config: %s.%s is not supported", where, present[i]);
	}
	const cJSON *layers = cJSON_GetObjectItemCaseSensitive(cfg, "layers");
	if (cJSON_IsArray(layers))
		return clip_fail(err, CLIP_ERR_MODEL, "config: %s.layers is a list (a ResNet tower): not supported",
				 where);
	const cJSON *pool = cJSON_GetObjectItemCaseSensitive(cfg, "pool_type");
	if (cJSON_IsString(pool) && strcmp(pool->valuestring, "tok") && strcmp(pool->valuestring, "argmax"))
		return clip_fail(err, CLIP_ERR_MODEL, "config: %s.pool_type \"%.20s\" is not supported", where,
				 pool->valuestring);
	const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "act_layer");
	if (cJSON_IsString(act) && strcmp(act->valuestring, "gelu"))
		return clip_fail(err, CLIP_ERR_MODEL, "config: %s.act_layer \"%.20s\" is not supported", where,
				 act->valuestring);
	return 0;
}

static int openclip_mlp(const cJSON *cfg, const char *where, int width, int *mlp, clip_error *err)
{
	double ratio = 4.0;
	int rc = cfg_double(cfg, where, "mlp_ratio", 4.0, 0.01, 64, &ratio, err);
	if (rc)
		return rc;
	*mlp = (int)(width * ratio);  /* OpenCLIP: int(width * mlp_ratio) */
	if (*mlp < 1)
		return clip_fail(err, CLIP_ERR_MODEL, "config: %s: MLP width %d", where, *mlp);
	return 0;
}

static int parse_openclip_config(const cJSON *root, struct clip_arch *a, clip_error *err)
{
	const cJSON *mc = cJSON_GetObjectItemCaseSensitive(root, "model_cfg");
	if (!cJSON_IsObject(mc))
		mc = root;  /* some files hold the model config at the top level */
	const cJSON *vc = cJSON_GetObjectItemCaseSensitive(mc, "vision_cfg");
	const cJSON *tc = cJSON_GetObjectItemCaseSensitive(mc, "text_cfg");
	if (!cJSON_IsObject(vc) || !cJSON_IsObject(tc))
		return clip_fail(err, CLIP_ERR_MODEL, "config: model_cfg lacks vision_cfg or text_cfg");
	int rc, head_width;
	if ((rc = openclip_refuse(mc, "model_cfg", err)) || (rc = openclip_refuse(vc, "vision_cfg", err)) ||
	    (rc = openclip_refuse(tc, "text_cfg", err)))
		return rc;
	const cJSON *qg = cJSON_GetObjectItemCaseSensitive(mc, "quick_gelu");
	if (qg && !cJSON_IsBool(qg) && !cJSON_IsNull(qg))
		return clip_fail(err, CLIP_ERR_MODEL, "config: model_cfg.quick_gelu is not a boolean");
	int quick = cJSON_IsTrue(qg);

	struct clip_tower_arch *v = &a->vision, *t = &a->text;
	if ((rc = cfg_int(mc, "model_cfg", "embed_dim", 512, 1, CLIP_MAX_WIDTH, &a->embed_dim, err)) ||
	    (rc = cfg_int(vc, "vision_cfg", "image_size", 224, 1, CLIP_MAX_IMAGE_SIZE, &a->image_size, err)) ||
	    (rc = cfg_int(vc, "vision_cfg", "patch_size", 16, 1, CLIP_MAX_IMAGE_SIZE, &a->patch_size, err)) ||
	    (rc = cfg_int(vc, "vision_cfg", "layers", 12, 1, CLIP_MAX_LAYERS, &v->layers, err)) ||
	    (rc = cfg_int(vc, "vision_cfg", "width", 768, 1, CLIP_MAX_WIDTH, &v->width, err)) ||
	    (rc = cfg_int(vc, "vision_cfg", "head_width", 64, 1, CLIP_MAX_WIDTH, &head_width, err)) ||
	    (rc = openclip_mlp(vc, "vision_cfg", v->width, &v->mlp, err)) ||
	    (rc = cfg_int(tc, "text_cfg", "context_length", 77, 2, CLIP_MAX_CONTEXT, &a->context_length, err)) ||
	    (rc = cfg_int(tc, "text_cfg", "vocab_size", 49408, CLIP_TOKEN_EOT + 1, CLIP_MAX_VOCAB,
			  &a->vocab_size, err)) ||
	    (rc = cfg_int(tc, "text_cfg", "width", 512, 1, CLIP_MAX_WIDTH, &t->width, err)) ||
	    (rc = cfg_int(tc, "text_cfg", "heads", 8, 1, CLIP_MAX_HEADS, &t->heads, err)) ||
	    (rc = cfg_int(tc, "text_cfg", "layers", 12, 1, CLIP_MAX_LAYERS, &t->layers, err)) ||
	    (rc = openclip_mlp(tc, "text_cfg", t->width, &t->mlp, err)))
		return rc;
	if (v->width % head_width != 0)
		return clip_fail(err, CLIP_ERR_MODEL, "config: vision_cfg: width %d is not a multiple of head_width %d",
				 v->width, head_width);
	v->heads = v->width / head_width;
	v->eps = t->eps = 1e-5f;  /* torch.nn.LayerNorm's default */
	v->quick_gelu = t->quick_gelu = quick;
	if ((rc = check_heads(v, "vision_cfg", err)) || (rc = check_heads(t, "text_cfg", err)))
		return rc;
	/* mean and std: preprocess_cfg, or older files' vision_cfg.image_mean */
	const cJSON *pc = cJSON_GetObjectItemCaseSensitive(root, "preprocess_cfg");
	if ((rc = cfg_triple(vc, "vision_cfg", "image_mean", 0, a->mean, err)) ||
	    (rc = cfg_triple(vc, "vision_cfg", "image_std", 1, a->std, err)) ||
	    (rc = cfg_triple(pc, "preprocess_cfg", "mean", 0, a->mean, err)) ||
	    (rc = cfg_triple(pc, "preprocess_cfg", "std", 1, a->std, err)))
		return rc;
	return 0;
}

/* ---- weights ---------------------------------------------------------- */

static int add_file(clip_model *m, const char *path, clip_error *err)
{
	char **files = realloc(m->files, (m->n_files + 2) * sizeof *files);
	if (!files)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
	m->files = files;
	if (!(files[m->n_files] = strdup(path)))
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
	files[++m->n_files] = NULL;
	return 0;
}

static int open_shard(clip_model *m, const char *path, clip_error *err)
{
	struct sft_file **s = realloc(m->shards, (m->n_shards + 1) * sizeof *s);
	if (!s)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
	m->shards = s;
	unsigned char *used = realloc(m->shard_in_place, m->n_shards + 1);
	if (!used)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
	m->shard_in_place = used;
	used[m->n_shards] = 0;
	int rc = sft_open(path, &s[m->n_shards], err);
	if (rc)
		return rc;
	m->weight_bytes += s[m->n_shards]->map_len;
	m->n_shards++;
	return add_file(m, path, err);
}

/* model.safetensors.index.json: open every distinct file of weight_map. */
static int open_sharded(clip_model *m, const char *dir, const char *index_path, clip_error *err)
{
	cJSON *root = NULL;
	char **names = NULL;
	size_t n_names = 0;
	int rc = read_json(index_path, &root, err);
	if (rc)
		goto out;
	if ((rc = add_file(m, index_path, err)))
		goto out;
	const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
	if (!cJSON_IsObject(map)) {
		rc = clip_fail(err, CLIP_ERR_MODEL, "%s: no weight_map object", index_path);
		goto out;
	}
	names = calloc(CLIP_MAX_SHARDS, sizeof *names);
	if (!names) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (const cJSON *it = map->child; it; it = it->next) {
		if (!cJSON_IsString(it)) {
			rc = clip_fail(err, CLIP_ERR_MODEL, "%s: weight_map[%s] is not a file name", index_path, it->string);
			goto out;
		}
		const char *file = it->valuestring;
		if (!*file || strchr(file, '/') || !strcmp(file, ".") || !strcmp(file, "..")) {
			rc = clip_fail(err, CLIP_ERR_MODEL, "%s: weight_map[%s]: \"%.60s\" is not a plain file name",
				       index_path, it->string, file);
			goto out;
		}
		size_t i = 0;
		while (i < n_names && strcmp(names[i], file))
			i++;
		if (i < n_names)
			continue;
		if (n_names == CLIP_MAX_SHARDS) {
			rc = clip_fail(err, CLIP_ERR_MODEL, "%s: more than %d shards", index_path, CLIP_MAX_SHARDS);
			goto out;
		}
		names[n_names++] = it->valuestring;
	}
	if (!n_names) {
		rc = clip_fail(err, CLIP_ERR_MODEL, "%s: weight_map is empty", index_path);
		goto out;
	}
	for (size_t i = 0; i < n_names; i++) {
		char path[4096];
		if ((rc = join_path(path, sizeof path, dir, names[i], err)) || (rc = open_shard(m, path, err)))
			goto out;
	}
	rc = 0;
out:
	free(names);
	cJSON_Delete(root);
	return rc;
}

static const struct sft_tensor *find_tensor(const clip_model *m, const char *name, size_t *shard)
{
	for (size_t i = 0; i < m->n_shards; i++) {
		const struct sft_tensor *t = sft_find(m->shards[i], name);
		if (t) {
			if (shard)
				*shard = i;
			return t;
		}
	}
	return NULL;
}

static int keep_owned(clip_model *m, float *p, clip_error *err)
{
	if (m->n_owned == m->cap_owned) {
		size_t cap = m->cap_owned ? 2 * m->cap_owned : 64;
		float **o = realloc(m->owned, cap * sizeof *o);
		if (!o) {
			free(p);
			return clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
		}
		m->owned = o;
		m->cap_owned = cap;
	}
	m->owned[m->n_owned++] = p;
	return 0;
}

/* Tensor `name`, of dtype F32, F16 or BF16 and exactly `shape`, and its shard. */
static int find_checked(const clip_model *m, const char *name, int ndim, const int64_t *shape,
			const struct sft_tensor **out, size_t *shard, clip_error *err)
{
	const struct sft_tensor *t = find_tensor(m, name, shard);
	if (!t)
		return clip_fail(err, CLIP_ERR_MODEL, "%s: missing from the weights", name);
	if (t->dtype != SFT_F32 && t->dtype != SFT_F16 && t->dtype != SFT_BF16)
		return clip_fail(err, CLIP_ERR_MODEL, "%s: dtype %s, expected F32, F16 or BF16", name,
				 sft_dtype_name(t->dtype));
	int same = t->ndim == ndim;
	for (int i = 0; same && i < ndim; i++)
		same = t->shape[i] == shape[i];
	if (!same) {
		char got[128], want[128];
		sft_format_shape(t->shape, t->ndim, got, sizeof got);
		sft_format_shape(shape, ndim, want, sizeof want);
		return clip_fail(err, CLIP_ERR_MODEL, "%s: got %s, expected %s", name, got, want);
	}
	*out = t;
	return 0;
}

/* t (of shard) as float32: in place when it is F32 and 4-byte aligned in
 * the mapping, converted into memory the model owns otherwise. */
static int bind_f32(clip_model *m, const char *name, const struct sft_tensor *t, size_t shard, const float **out,
		    clip_error *err)
{
	size_t n = t->nbytes / sft_dtype_size(t->dtype);
	if (t->dtype == SFT_F32 && (uintptr_t)t->data % _Alignof(float) == 0) {
		*out = (const float *)(const void *)t->data;
		m->shard_in_place[shard] = 1;
		return 0;
	}
	float *p = malloc((n ? n : 1) * sizeof *p);
	if (!p)
		return clip_fail(err, CLIP_ERR_NOMEM, "%s: out of memory converting %zu values", name, n);
	sft_to_f32(t->dtype, t->data, n, p);
	int rc = keep_owned(m, p, err);
	if (rc)
		return rc;
	*out = p;
	return 0;
}

/* Bind tensor `name` of exactly `shape` to *out as float32. */
static int bind(clip_model *m, const char *name, int ndim, const int64_t *shape, const float **out,
		clip_error *err)
{
	const struct sft_tensor *t;
	size_t shard = 0;
	int rc = find_checked(m, name, ndim, shape, &t, &shard, err);
	return rc ? rc : bind_f32(m, name, t, shard, out, err);
}

/* Bind a matrix product's weight: at bf16 precision a BF16 tensor as its
 * bf16 values in the mapping (not widened), float32 otherwise. */
static int bind_weight(clip_model *m, const char *name, int ndim, const int64_t *shape, struct clip_weight *out,
		       clip_error *err)
{
	const struct sft_tensor *t;
	size_t shard = 0;
	int rc = find_checked(m, name, ndim, shape, &t, &shard, err);
	if (rc)
		return rc;
	if (m->precision == CLIP_PRECISION_BF16 && t->dtype == SFT_BF16 && (uintptr_t)t->data % 2 == 0) {
		out->b = (const uint16_t *)(const void *)t->data;
		m->shard_in_place[shard] = 1;
		return 0;
	}
	return bind_f32(m, name, t, shard, &out->f, err);
}

#define WBIND(m, name, out, err, ...) \
	bind_weight((m), (name), (int)(sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)), \
		    (int64_t[]){ __VA_ARGS__ }, (out), (err))

#define BIND(m, name, out, err, ...) \
	bind((m), (name), (int)(sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)), \
	     (int64_t[]){ __VA_ARGS__ }, (out), (err))

/* A name from a printf format; names are short, so the buffer suffices. */
static const char *nm(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const char *nm(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return buf;
}

static int bind_layers_hf(clip_model *m, const char *prefix, const struct clip_tower_arch *a,
			  struct clip_layer *L, clip_error *err)
{
	char b[256];
	int64_t W = a->width, F = a->mlp;
	int rc = 0;
	for (int i = 0; i < a->layers && !rc; i++) {
		struct clip_layer *l = &L[i];
#define P(s) nm(b, sizeof b, "%s.encoder.layers.%d.%s", prefix, i, s)
		if ((rc = BIND(m, P("layer_norm1.weight"), &l->ln1_w, err, W)) ||
		    (rc = BIND(m, P("layer_norm1.bias"), &l->ln1_b, err, W)) ||
		    (rc = WBIND(m, P("self_attn.q_proj.weight"), &l->q, err, W, W)) ||
		    (rc = BIND(m, P("self_attn.q_proj.bias"), &l->q_b, err, W)) ||
		    (rc = WBIND(m, P("self_attn.k_proj.weight"), &l->k, err, W, W)) ||
		    (rc = BIND(m, P("self_attn.k_proj.bias"), &l->k_b, err, W)) ||
		    (rc = WBIND(m, P("self_attn.v_proj.weight"), &l->v, err, W, W)) ||
		    (rc = BIND(m, P("self_attn.v_proj.bias"), &l->v_b, err, W)) ||
		    (rc = WBIND(m, P("self_attn.out_proj.weight"), &l->o, err, W, W)) ||
		    (rc = BIND(m, P("self_attn.out_proj.bias"), &l->o_b, err, W)) ||
		    (rc = BIND(m, P("layer_norm2.weight"), &l->ln2_w, err, W)) ||
		    (rc = BIND(m, P("layer_norm2.bias"), &l->ln2_b, err, W)) ||
		    (rc = WBIND(m, P("mlp.fc1.weight"), &l->fc1, err, F, W)) ||
		    (rc = BIND(m, P("mlp.fc1.bias"), &l->fc1_b, err, F)) ||
		    (rc = WBIND(m, P("mlp.fc2.weight"), &l->fc2, err, W, F)) ||
		    (rc = BIND(m, P("mlp.fc2.bias"), &l->fc2_b, err, W)))
			break;
#undef P
	}
	return rc;
}

static int bind_layers_openai(clip_model *m, const char *prefix, const struct clip_tower_arch *a,
			      struct clip_layer *L, clip_error *err)
{
	char b[256];
	int64_t W = a->width, F = a->mlp;
	int rc = 0;
	for (int i = 0; i < a->layers && !rc; i++) {
		struct clip_layer *l = &L[i];
		struct clip_weight in_w = { 0 };
		const float *in_b;
#define P(s) nm(b, sizeof b, "%sresblocks.%d.%s", prefix, i, s)
		if ((rc = BIND(m, P("ln_1.weight"), &l->ln1_w, err, W)) ||
		    (rc = BIND(m, P("ln_1.bias"), &l->ln1_b, err, W)) ||
		    (rc = WBIND(m, P("attn.in_proj_weight"), &in_w, err, 3 * W, W)) ||
		    (rc = BIND(m, P("attn.in_proj_bias"), &in_b, err, 3 * W)) ||
		    (rc = WBIND(m, P("attn.out_proj.weight"), &l->o, err, W, W)) ||
		    (rc = BIND(m, P("attn.out_proj.bias"), &l->o_b, err, W)) ||
		    (rc = BIND(m, P("ln_2.weight"), &l->ln2_w, err, W)) ||
		    (rc = BIND(m, P("ln_2.bias"), &l->ln2_b, err, W)) ||
		    (rc = WBIND(m, P("mlp.c_fc.weight"), &l->fc1, err, F, W)) ||
		    (rc = BIND(m, P("mlp.c_fc.bias"), &l->fc1_b, err, F)) ||
		    (rc = WBIND(m, P("mlp.c_proj.weight"), &l->fc2, err, W, F)) ||
		    (rc = BIND(m, P("mlp.c_proj.bias"), &l->fc2_b, err, W)))
			break;
#undef P
		/* in_proj packs q, k, v along the output dimension */
		for (int j = 0; j < 3; j++) {
			struct clip_weight *w = j == 0 ? &l->q : j == 1 ? &l->k : &l->v;
			w->f = in_w.f ? in_w.f + j * W * W : NULL;
			w->b = in_w.b ? in_w.b + j * W * W : NULL;
		}
		l->q_b = in_b;
		l->k_b = in_b + W;
		l->v_b = in_b + 2 * W;
	}
	return rc;
}

static int bind_logit_scale(clip_model *m, const char *name, clip_error *err)
{
	const float *p;
	const struct sft_tensor *t = find_tensor(m, name, NULL);
	int rc;
	if (t && t->ndim == 1)
		rc = BIND(m, name, &p, err, 1);  /* some exports store it as [1] */
	else
		rc = bind(m, name, 0, NULL, &p, err);
	if (rc)
		return rc;
	if (!isfinite(p[0]) || p[0] > 20.0f)
		return clip_fail(err, CLIP_ERR_MODEL, "%s: value %g is not a usable log scale", name, (double)p[0]);
	m->logit_scale = expf(p[0]);
	return 0;
}

static int bind_hf(clip_model *m, clip_error *err)
{
	const struct clip_arch *a = &m->arch;
	int64_t V = a->vision.width, T = a->text.width, E = a->embed_dim, P = a->patch_size;
	int64_t grid = a->image_size / a->patch_size;
	int rc;
	m->vis_proj_t = m->txt_proj_t = 1;
	if ((rc = WBIND(m, "vision_model.embeddings.patch_embedding.weight", &m->patch, err, V, 3, P, P)) ||
	    (rc = BIND(m, "vision_model.embeddings.class_embedding", &m->class_emb, err, V)) ||
	    (rc = BIND(m, "vision_model.embeddings.position_embedding.weight", &m->vis_pos, err, grid * grid + 1, V)) ||
	    (rc = BIND(m, "vision_model.pre_layrnorm.weight", &m->ln_pre_w, err, V)) ||
	    (rc = BIND(m, "vision_model.pre_layrnorm.bias", &m->ln_pre_b, err, V)) ||
	    (rc = bind_layers_hf(m, "vision_model", &a->vision, m->vis_layers, err)) ||
	    (rc = BIND(m, "vision_model.post_layernorm.weight", &m->ln_post_w, err, V)) ||
	    (rc = BIND(m, "vision_model.post_layernorm.bias", &m->ln_post_b, err, V)) ||
	    (rc = BIND(m, "visual_projection.weight", &m->vis_proj, err, E, V)) ||
	    (rc = BIND(m, "text_model.embeddings.token_embedding.weight", &m->tok_emb, err, a->vocab_size, T)) ||
	    (rc = BIND(m, "text_model.embeddings.position_embedding.weight", &m->txt_pos, err, a->context_length, T)) ||
	    (rc = bind_layers_hf(m, "text_model", &a->text, m->txt_layers, err)) ||
	    (rc = BIND(m, "text_model.final_layer_norm.weight", &m->ln_final_w, err, T)) ||
	    (rc = BIND(m, "text_model.final_layer_norm.bias", &m->ln_final_b, err, T)) ||
	    (rc = BIND(m, "text_projection.weight", &m->txt_proj, err, E, T)) ||
	    (rc = bind_logit_scale(m, "logit_scale", err)))
		return rc;
	return 0;
}

static int bind_openai(clip_model *m, clip_error *err)
{
	const struct clip_arch *a = &m->arch;
	int64_t V = a->vision.width, T = a->text.width, E = a->embed_dim, P = a->patch_size;
	int64_t grid = a->image_size / a->patch_size;
	int rc;
	m->vis_proj_t = m->txt_proj_t = 0;
	if ((rc = WBIND(m, "visual.conv1.weight", &m->patch, err, V, 3, P, P)) ||
	    (rc = BIND(m, "visual.class_embedding", &m->class_emb, err, V)) ||
	    (rc = BIND(m, "visual.positional_embedding", &m->vis_pos, err, grid * grid + 1, V)) ||
	    (rc = BIND(m, "visual.ln_pre.weight", &m->ln_pre_w, err, V)) ||
	    (rc = BIND(m, "visual.ln_pre.bias", &m->ln_pre_b, err, V)) ||
	    (rc = bind_layers_openai(m, "visual.transformer.", &a->vision, m->vis_layers, err)) ||
	    (rc = BIND(m, "visual.ln_post.weight", &m->ln_post_w, err, V)) ||
	    (rc = BIND(m, "visual.ln_post.bias", &m->ln_post_b, err, V)) ||
	    (rc = BIND(m, "visual.proj", &m->vis_proj, err, V, E)) ||
	    (rc = BIND(m, "token_embedding.weight", &m->tok_emb, err, a->vocab_size, T)) ||
	    (rc = BIND(m, "positional_embedding", &m->txt_pos, err, a->context_length, T)) ||
	    (rc = bind_layers_openai(m, "transformer.", &a->text, m->txt_layers, err)) ||
	    (rc = BIND(m, "ln_final.weight", &m->ln_final_w, err, T)) ||
	    (rc = BIND(m, "ln_final.bias", &m->ln_final_b, err, T)) ||
	    (rc = BIND(m, "text_projection", &m->txt_proj, err, T, E)) ||
	    (rc = bind_logit_scale(m, "logit_scale", err)))
		return rc;
	return 0;
}

/* ---- load ------------------------------------------------------------- */

struct clip_params clip_default_params(void)
{
	struct clip_params p = {
		.max_pixels = (size_t)64 * 1000 * 1000,
		.verify_shapes = 1,
		.precision = CLIP_PRECISION_FP32,
	};
	return p;
}

const char *clip_precision_name(int precision)
{
	return precision == CLIP_PRECISION_BF16 ? "bf16" : precision == CLIP_PRECISION_FP32 ? "fp32" : "unknown";
}

int clip_precision_parse(const char *s, int *out)
{
	if (s && !strcmp(s, "fp32"))
		*out = CLIP_PRECISION_FP32;
	else if (s && !strcmp(s, "bf16"))
		*out = CLIP_PRECISION_BF16;
	else
		return -1;
	return 0;
}

/* The kernel a model loaded with params uses: the CPU's best, capped by
 * params->cpu; fp32 never names the bf16 one. */
static int choose_kernel(const struct clip_params *params, enum clip_kernel *out, clip_error *err)
{
	enum clip_kernel k = clip_gemm_detect(), cap;
	int precision = params ? params->precision : CLIP_PRECISION_FP32;
	const char *cpu = params ? params->cpu : NULL;
	if (precision != CLIP_PRECISION_FP32 && precision != CLIP_PRECISION_BF16)
		return clip_fail(err, CLIP_ERR_INVALID, "precision %d: expected fp32 or bf16", precision);
	if (cpu && *cpu) {
		if (clip_kernel_parse(cpu, &cap) != 0)
			return clip_fail(err, CLIP_ERR_INVALID,
					 "CPU override \"%.40s\": expected avx512-bf16, avx512, avx2 or openblas", cpu);
		if (cap < k)
			k = cap;
	}
	if (precision == CLIP_PRECISION_BF16 && k < CLIP_KERNEL_AVX512_BF16)
		return clip_fail(err, CLIP_ERR_INVALID,
				 "bf16 precision needs a CPU with AVX512_BF16 (the vdpbf16ps instruction), and this "
				 "one %s; use fp32 precision", k == clip_gemm_detect() ? "lacks it" :
				 "is limited to less by the CPU override");
	if (precision == CLIP_PRECISION_FP32 && k == CLIP_KERNEL_AVX512_BF16)
		k = CLIP_KERNEL_AVX512;
	*out = k;
	return 0;
}

int clip_precision_check(const struct clip_params *params, clip_error *err)
{
	enum clip_kernel k;
	return choose_kernel(params, &k, err);
}

/* Which layout dir holds: Hugging Face when config.json and its weights are
 * there (hub repositories often carry both), OpenCLIP otherwise. */
static int load_config(clip_model *m, const char *dir, char *weights, size_t wlen, int *sharded,
		       clip_error *err)
{
	char cfg[4096], path[4096];
	cJSON *root = NULL;
	int rc;
	*sharded = 0;
	if ((rc = join_path(cfg, sizeof cfg, dir, "config.json", err)))
		return rc;
	int hf = file_exists(cfg);
	if (hf) {
		if ((rc = join_path(weights, wlen, dir, "model.safetensors", err)))
			return rc;
		if (!file_exists(weights)) {
			if ((rc = join_path(weights, wlen, dir, "model.safetensors.index.json", err)))
				return rc;
			*sharded = file_exists(weights);
			hf = *sharded;
		}
	}
	if (hf) {
		snprintf(m->layout, sizeof m->layout, "hf");
		if ((rc = read_json(cfg, &root, err)) || (rc = parse_hf_config(root, &m->arch, err)) ||
		    (rc = add_file(m, cfg, err)))
			goto out;
		cJSON_Delete(root);
		root = NULL;
		if ((rc = join_path(path, sizeof path, dir, "preprocessor_config.json", err)))
			goto out;
		if (file_exists(path)) {
			if ((rc = read_json(path, &root, err)) || (rc = parse_hf_preprocessor(root, &m->arch, err)) ||
			    (rc = add_file(m, path, err)))
				goto out;
		}
		goto out;
	}
	if ((rc = join_path(cfg, sizeof cfg, dir, "open_clip_config.json", err)) ||
	    (rc = join_path(weights, wlen, dir, "open_clip_model.safetensors", err)))
		return rc;
	if (!file_exists(cfg) || !file_exists(weights)) {
		return clip_fail(err, CLIP_ERR_IO,
				 "%s: no model found: expected config.json with model.safetensors (Hugging Face) "
				 "or open_clip_config.json with open_clip_model.safetensors (OpenCLIP)", dir);
	}
	snprintf(m->layout, sizeof m->layout, "openclip");
	if ((rc = read_json(cfg, &root, err)) || (rc = parse_openclip_config(root, &m->arch, err)) ||
	    (rc = add_file(m, cfg, err)))
		goto out;
out:
	cJSON_Delete(root);
	return rc;
}

int clip_model_load(const char *dir, const struct clip_params *params, clip_model **out, clip_error *err)
{
	int rc = CLIP_ERR_INVALID;
	clip_model *m = NULL;
	char weights[4096];
	int sharded;
	if (!dir || !out)
		return clip_fail(err, CLIP_ERR_INVALID, "clip_model_load: NULL argument");
	*out = NULL;
	enum clip_kernel kernel;
	if ((rc = choose_kernel(params, &kernel, err)))
		return rc;
	/* The encoder drives BLAS from its own threads, one GEMM per thread
	 * (see clip.h); OpenBLAS's thread count is process-wide. */
	openblas_set_num_threads(1);

	m = calloc(1, sizeof *m);
	if (!m) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
		goto out;
	}
	m->kernel = kernel;
	m->precision = params ? params->precision : CLIP_PRECISION_FP32;
	memcpy(m->arch.mean, clip_default_mean, sizeof m->arch.mean);
	memcpy(m->arch.std, clip_default_std, sizeof m->arch.std);
	if ((rc = load_config(m, dir, weights, sizeof weights, &sharded, err)))
		goto out;
	const struct clip_arch *a = &m->arch;
	if (a->patch_size > a->image_size) {
		rc = clip_fail(err, CLIP_ERR_MODEL, "config: patch size %d larger than image size %d",
			       a->patch_size, a->image_size);
		goto out;
	}
	m->vis_layers = calloc((size_t)a->vision.layers, sizeof *m->vis_layers);
	m->txt_layers = calloc((size_t)a->text.layers, sizeof *m->txt_layers);
	if (!m->vis_layers || !m->txt_layers) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
		goto out;
	}
	rc = sharded ? open_sharded(m, dir, weights, err) : open_shard(m, weights, err);
	if (rc)
		goto out;
	rc = !strcmp(m->layout, "hf") ? bind_hf(m, err) : bind_openai(m, err);
	if (rc || (rc = clip_model_pack(m, dir, params ? params->weights_cache : NULL, err)))
		goto out;
	/* A shard none of whose tensors is used in place (F16, BF16) was read
	 * once to convert it: give its pages back, they count as ours. */
	for (size_t i = 0; i < m->n_shards; i++)
		if (!m->shard_in_place[i])
			madvise(m->shards[i]->map, m->shards[i]->map_len, MADV_DONTNEED);

	/* The tokenizer: the directory's vocab.json + merges.txt, or the
	 * bundled vocabulary. Both files count in the fingerprint. */
	char vocab[4096], merges[4096];
	if ((rc = join_path(vocab, sizeof vocab, dir, "vocab.json", err)) ||
	    (rc = join_path(merges, sizeof merges, dir, "merges.txt", err)))
		goto out;
	if (file_exists(vocab) && file_exists(merges)) {
		if ((rc = add_file(m, vocab, err)) || (rc = add_file(m, merges, err)))
			goto out;
	}
	if ((rc = clip_tokenizer_load(dir, &m->tok, err)))
		goto out;
	/* The start token every text begins with: the ids of "" are [start, end]. */
	int32_t ids[2];
	size_t n_ids = 0;
	if ((rc = clip_tokenize(m->tok, "", 0, ids, 2, &n_ids, err)) || (rc = clip_forward_prefix(m, ids[0], err)))
		goto out;
	*out = m;
	m = NULL;
	rc = 0;
out:
	clip_model_free(m);
	return rc;
}

void clip_model_free(clip_model *m)
{
	if (!m)
		return;
	clip_tokenizer_free(m->tok);
	free(m->prefix_kv);
	free(m->pack);
	if (m->pack_map)
		munmap(m->pack_map, m->pack_map_len);
	for (size_t i = 0; i < m->n_owned; i++)
		free(m->owned[i]);
	free(m->owned);
	for (size_t i = 0; i < m->n_shards; i++)
		sft_close(m->shards[i]);
	free(m->shards);
	free(m->shard_in_place);
	for (size_t i = 0; i < m->n_files; i++)
		free(m->files[i]);
	free(m->files);
	free(m->vis_layers);
	free(m->txt_layers);
	free(m);
}

size_t clip_model_dim(const clip_model *m)
{
	return m ? (size_t)m->arch.embed_dim : 0;
}

int clip_model_image_size(const clip_model *m)
{
	return m ? m->arch.image_size : 0;
}

struct clip_decode_params clip_model_decode_params(const clip_model *m, size_t max_pixels, int exact)
{
	struct clip_decode_params p = clip_decode_default_params();
	if (max_pixels)
		p.max_pixels = max_pixels;
	p.min_short_side = exact || !m ? 0 : 2 * m->arch.image_size;
	return p;
}

size_t clip_model_input_floats(const clip_model *m)
{
	return m ? (size_t)3 * (size_t)m->arch.image_size * (size_t)m->arch.image_size : 0;
}

int clip_model_context_length(const clip_model *m)
{
	return m ? m->arch.context_length : 0;
}

float clip_model_logit_scale(const clip_model *m)
{
	return m ? m->logit_scale : 0.0f;
}

const char *clip_model_layout(const clip_model *m)
{
	return m ? m->layout : NULL;
}

size_t clip_model_weight_bytes(const clip_model *m)
{
	return m ? m->weight_bytes : 0;
}

const char *const *clip_model_files(const clip_model *m)
{
	return m ? (const char *const *)m->files : NULL;
}

const char *clip_model_precision(const clip_model *m)
{
	return m ? clip_precision_name(m->precision) : NULL;
}

const char *clip_model_kernel(const clip_model *m)
{
	return m ? clip_kernel_name(m->kernel) : NULL;
}

const clip_tokenizer *clip_model_tokenizer(const clip_model *m)
{
	return m ? m->tok : NULL;
}

const float *clip_model_mean(const clip_model *m)
{
	return m ? m->arch.mean : NULL;
}

const float *clip_model_std(const clip_model *m)
{
	return m ? m->arch.std : NULL;
}
