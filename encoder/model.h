/*
 * model.h - the loaded CLIP model (internal to encoder/).
 *
 * clip_model_load (model.c) reads the config of either layout into a
 * struct clip_arch, maps the weight files, and binds every tensor the
 * architecture needs to a float pointer after checking its shape; then
 * pack.c repacks the linear weights and forward.c computes the cached
 * first text row. After the load the forward pass reads the model and
 * never writes it.
 *
 * Weight layout, whatever the file layout: every linear weight is
 * [out, in] row-major (PyTorch's nn.Linear), so y = x W^T + b; on CPUs
 * with a packed GEMM kernel (AVX2 and up) the layers' weights and the
 * patch embedding are used from their packed panels (gemm.h) instead:
 * float32 panels, or at bf16 precision bf16 ones. The projections are
 * [width, dim] (OpenAI's x @ proj) when proj_t is 0 and [dim, width]
 * (Hugging Face's nn.Linear) when proj_t is 1.
 */
#ifndef CLIP_MODEL_H
#define CLIP_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "clip.h"
#include "gemm.h"
#include "safetensors.h"

/* Bounds on what a config may state: a model outside them is refused. */
#define CLIP_MAX_WIDTH 8192
#define CLIP_MAX_LAYERS 256
#define CLIP_MAX_HEADS 256
#define CLIP_MAX_IMAGE_SIZE 1024
#define CLIP_MAX_CONTEXT 1024
#define CLIP_MAX_VOCAB (1 << 20)
#define CLIP_MAX_SHARDS 64
#define CLIP_MAX_CONFIG_BYTES (4 << 20)

struct clip_tower_arch {
	int width, heads, layers, mlp;  /* mlp: the hidden size of the MLP */
	float eps;                      /* LayerNorm epsilon */
	int quick_gelu;                 /* 1: x * sigmoid(1.702 x); 0: exact erf GELU */
};

struct clip_arch {
	struct clip_tower_arch vision, text;
	int image_size, patch_size;
	int context_length, vocab_size;
	int embed_dim;
	float mean[3], std[3];
};

/*
 * A matrix product's weight [out, in]. Bound at load as float32 (f), or at
 * bf16 precision from a BF16 tensor as the file's own bf16 values (b,
 * never widened). With a packed kernel, pack.c then fills packed (float32
 * panels for clip_gemm_packed, bf16 ones for clip_gemm_packed_bf16 at bf16
 * precision, in the model's pack buffer or cache file) and sets f and b to
 * NULL (their copies in the file are given back).
 */
struct clip_weight {
	const float *f;
	const uint16_t *b;
	const void *packed;
};

struct clip_layer {
	const float *ln1_w, *ln1_b;
	struct clip_weight q, k, v, o;                   /* [W, W] */
	const float *q_b, *k_b, *v_b, *o_b;              /* [W] */
	const float *ln2_w, *ln2_b;
	struct clip_weight fc1, fc2;                     /* [mlp, W], [W, mlp] */
	const float *fc1_b, *fc2_b;                      /* [mlp], [W] */
};

struct clip_model {
	char layout[16];                /* "hf" or "openclip" */
	struct clip_arch arch;
	/* How the products are computed: the kernel chosen at load (the
	 * CPU's best, capped by clip_params.cpu) and the precision (the
	 * layers' weights and their inputs in bf16: CLIP_KERNEL_AVX512_BF16) */
	enum clip_kernel kernel;
	int precision;                  /* enum clip_precision */

	/* vision tower */
	struct clip_weight patch;       /* [W, 3 * P * P] (conv weight flattened) */
	const float *class_emb;         /* [W] */
	const float *vis_pos;           /* [grid * grid + 1, W] */
	const float *ln_pre_w, *ln_pre_b, *ln_post_w, *ln_post_b;
	struct clip_layer *vis_layers;
	const float *vis_proj;
	int vis_proj_t;

	/* text tower */
	const float *tok_emb;           /* [vocab, W] */
	const float *txt_pos;           /* [context, W] */
	const float *ln_final_w, *ln_final_b;
	struct clip_layer *txt_layers;
	const float *txt_proj;
	int txt_proj_t;

	float logit_scale;              /* exp of the stored value */

	/* The text tower's first row, which the causal mask makes the same in
	 * every text (the start token at position 0): its key and value at
	 * each layer, [layers][2][W], computed once at load; texts that start
	 * with prefix_id skip that row. NULL: none. */
	float *prefix_kv;
	int32_t prefix_id;

	/* ownership */
	void *pack;                     /* every packed weight, one allocation, or: */
	void *pack_map;                 /* the packed weights' cache file, mapped */
	size_t pack_map_len;
	struct sft_file **shards;
	size_t n_shards;
	unsigned char *shard_in_place; /* per shard: some tensor is used from the mapping */
	float **owned;                  /* converted or realigned tensors */
	size_t n_owned, cap_owned;
	char **files;                   /* NULL-terminated, for clip_model_files */
	size_t n_files;
	size_t weight_bytes;
	clip_tokenizer *tok;
};

/* Repack the layers' weights for the model's kernel when it has one
 * (pack.c), through the cache file in cache_dir when there is one (NULL:
 * none). */
int clip_model_pack(clip_model *m, const char *model_dir, const char *cache_dir, clip_error *err);

#endif
