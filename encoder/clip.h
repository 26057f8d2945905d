/*
 * clip.h - CLIP image and text encoders in C, on BLAS.
 *
 * Usage:
 *
 *     struct clip_params params = clip_default_params();
 *     clip_model *model = NULL;
 *     clip_error err;
 *     if (clip_model_load("models/ViT-B-32", &params, &model, &err) != 0)
 *             die("%s", err.msg);
 *
 *     clip_ctx *ctx = NULL;                    // one per thread that encodes
 *     clip_ctx_new(model, 2, &ctx, &err);
 *
 *     size_t dim = clip_model_dim(model);
 *     float *vec = malloc(dim * sizeof *vec);
 *     const char *q = "a red bicycle";
 *     clip_encode_texts(ctx, &q, 1, vec, dim, &err);
 *     clip_l2_normalize(vec, dim);
 *
 *     clip_image img;
 *     clip_image_decode(bytes, len, params.max_pixels, &img, &err);
 *     size_t npix = clip_model_input_floats(model);
 *     float *pixels = malloc(npix * sizeof *pixels);
 *     clip_image_preprocess(model, &img, pixels, npix, &err);
 *     clip_encode_images(ctx, pixels, 1, vec, dim, &err);
 *     clip_image_free(&img);
 *
 *     clip_ctx_free(ctx);
 *     clip_model_free(model);
 *
 * Conventions. Functions return 0 (CLIP_OK) or a negative clip_status, and
 * fill the caller's clip_error with a human-readable message; they never
 * log, print or exit. Output buffers travel with their length in elements;
 * a buffer that is too small is CLIP_ERR_INVALID. Destructors accept NULL.
 *
 * Threads. A clip_model is read-only after clip_model_load and may be shared
 * by any number of threads. A clip_ctx holds scratch memory and a team of
 * worker threads; it is used by one thread at a time. Give each encoding path
 * (image batches, text queries) its own ctx so that neither waits for the
 * other. The encoder calls BLAS single-threaded from its own workers:
 * clip_model_load sets OpenBLAS to one thread for the whole process.
 */
#ifndef CLIP_H
#define CLIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum clip_status {
	CLIP_OK = 0,
	CLIP_ERR_INVALID = -1,       /* bad argument: a NULL, a size, a buffer too small */
	CLIP_ERR_NOMEM = -2,         /* allocation failed */
	CLIP_ERR_IO = -3,            /* a file could not be opened, read or mapped */
	CLIP_ERR_MODEL = -4,         /* a model file is malformed or does not fit the config */
	CLIP_ERR_UNSUPPORTED = -5,   /* image type not JPEG, PNG, GIF or BMP */
	CLIP_ERR_UNDECODABLE = -6,   /* image claims a supported type but cannot be decoded */
	CLIP_ERR_TOO_LARGE = -7,     /* image header states more pixels than allowed */
	CLIP_ERR_EMPTY = -8,         /* zero bytes, or zero width or height */
	CLIP_ERR_THREAD = -9,        /* a worker thread could not be started */
};

/* A stable machine-readable name for a status: "image_too_large", ... */
const char *clip_status_name(int status);

typedef struct clip_error {
	int code;        /* the clip_status returned */
	char msg[256];   /* NUL-terminated, never empty after a failure */
} clip_error;

/* ---- model ----------------------------------------------------------- */

typedef struct clip_model clip_model;

struct clip_params {
	size_t max_pixels;   /* clip_image_decode's limit (default 64 megapixels) */
	int verify_shapes;   /* nonzero: refuse tensors whose shape differs (always on; kept for ABI) */
	/* A directory for a file of the weights repacked for this CPU's
	 * kernel (about the size of the weights), which later loads of the
	 * same files map instead of repacking; created if missing. NULL (the
	 * default): repack at every load. */
	const char *weights_cache;
};

struct clip_params clip_default_params(void);

/*
 * Load a model directory, in Hugging Face CLIPModel layout (config.json,
 * model.safetensors or sharded, vocab.json, merges.txt,
 * preprocessor_config.json) or OpenCLIP layout (open_clip_config.json,
 * open_clip_model.safetensors; tokenizer files optional, the bundled CLIP
 * vocabulary otherwise). Weights are memory-mapped; F32 tensors are used in
 * place, F16 and BF16 converted. On success *out owns the model.
 */
int clip_model_load(const char *dir, const struct clip_params *params,
		    clip_model **out, clip_error *err);
void clip_model_free(clip_model *model);

size_t clip_model_dim(const clip_model *model);          /* embedding size */
int clip_model_image_size(const clip_model *model);      /* input side in pixels */
size_t clip_model_input_floats(const clip_model *model); /* 3 * side * side */
int clip_model_context_length(const clip_model *model);  /* 77 for CLIP */
float clip_model_logit_scale(const clip_model *model);   /* exp(logit_scale) */
const char *clip_model_layout(const clip_model *model);  /* "hf" or "openclip" */
size_t clip_model_weight_bytes(const clip_model *model); /* bytes of weight files mapped */
/* Paths of the files the model was loaded from (weights and configs), for
 * fingerprinting; NULL-terminated, owned by the model. */
const char *const *clip_model_files(const clip_model *model);

/* ---- tokenizer ------------------------------------------------------- */

typedef struct clip_tokenizer clip_tokenizer;

#define CLIP_TOKEN_SOT 49406
#define CLIP_TOKEN_EOT 49407

/* Load vocab.json + merges.txt from dir, or the bundled vocabulary when dir
 * is NULL or has neither file. */
int clip_tokenizer_load(const char *dir, clip_tokenizer **out, clip_error *err);
void clip_tokenizer_free(clip_tokenizer *tok);
/* The tokenizer a model loaded with; owned by the model. */
const clip_tokenizer *clip_model_tokenizer(const clip_model *model);

/*
 * OpenAI's CLIP tokenisation of len bytes of UTF-8 text (invalid UTF-8 is
 * replaced by U+FFFD): start token, BPE ids, end token, truncated to
 * max_ids (77 for CLIP) with the end token kept. Writes at most max_ids ids
 * and their count to *n_ids. Never fails on any text for max_ids >= 2.
 */
int clip_tokenize(const clip_tokenizer *tok, const char *text, size_t len,
		  int32_t *ids, size_t max_ids, size_t *n_ids, clip_error *err);

/* ---- images ---------------------------------------------------------- */

typedef struct clip_image {
	int width, height;
	unsigned char *rgb;  /* width * height * 3 bytes, owned; free with clip_image_free */
} clip_image;

enum clip_image_type { CLIP_IMAGE_UNKNOWN = 0, CLIP_IMAGE_JPEG, CLIP_IMAGE_PNG,
		       CLIP_IMAGE_GIF, CLIP_IMAGE_BMP };

/* The type decided by magic bytes alone; CLIP_IMAGE_UNKNOWN otherwise. */
enum clip_image_type clip_image_sniff(const void *bytes, size_t len);
/* "image/jpeg", ...; NULL for CLIP_IMAGE_UNKNOWN. */
const char *clip_image_mime(enum clip_image_type type);

/* Width and height from the header, without decoding pixels. */
int clip_image_probe(const void *bytes, size_t len, enum clip_image_type *type,
		     int *width, int *height, clip_error *err);

/* Decode the first frame to 8-bit RGB (alpha dropped, grey replicated).
 * Refuses, before allocating pixels, an image over max_pixels. */
int clip_image_decode(const void *bytes, size_t len, size_t max_pixels,
		      clip_image *out, clip_error *err);
void clip_image_free(clip_image *img);

/* PIL-exact bicubic resize of the shorter side to `side`, centre crop to
 * side x side: out_rgb holds side * side * 3 bytes. */
int clip_image_crop(const clip_image *img, int side, unsigned char *out_rgb,
		    size_t out_len, clip_error *err);

/* Crop as above at the model's input size, then scale and normalise with
 * the model's mean and std, channels first: clip_model_input_floats floats. */
int clip_image_preprocess(const clip_model *model, const clip_image *img,
			  float *out, size_t out_len, clip_error *err);

/* ---- encoding -------------------------------------------------------- */

typedef struct clip_ctx clip_ctx;

/* The most images or texts one clip_encode_* call takes (larger batches
 * are CLIP_ERR_INVALID); within a call the encoder works in chunks, so its
 * scratch memory does not grow with n. */
#define CLIP_MAX_BATCH 4096

/* A working context with n_threads threads (the caller's own thread is one
 * of them; 0 means the number of online CPUs). */
int clip_ctx_new(const clip_model *model, int n_threads, clip_ctx **out, clip_error *err);
void clip_ctx_free(clip_ctx *ctx);

/*
 * Encode n preprocessed images (n * clip_model_input_floats floats). Writes
 * n * dim floats: the projected embeddings, not normalised.
 */
int clip_encode_images(clip_ctx *ctx, const float *pixels, size_t n,
		       float *out, size_t out_len, clip_error *err);

/* Encode n tokenised texts: ids[i] holds n_ids[i] ids (at most the context
 * length), as clip_tokenize writes them. Writes n * dim floats, not normalised. */
int clip_encode_tokens(clip_ctx *ctx, const int32_t *const *ids, const size_t *n_ids,
		       size_t n, float *out, size_t out_len, clip_error *err);

/* Tokenise with the model's tokenizer and encode n texts (NUL-terminated). */
int clip_encode_texts(clip_ctx *ctx, const char *const *texts, size_t n,
		      float *out, size_t out_len, clip_error *err);

/* Scale v to unit length (left as is when its norm is zero). */
void clip_l2_normalize(float *v, size_t dim);

/* Counters of a ctx since it was created, for tests and metrics. */
struct clip_ctx_stats {
	uint64_t image_batches, images, text_batches, texts;
	uint64_t max_image_batch;
};
void clip_ctx_get_stats(const clip_ctx *ctx, struct clip_ctx_stats *out);

/* The BLAS in use and the kernel it picked ("OpenBLAS 0.3.21", "SkylakeX"). */
const char *clip_blas_name(void);
const char *clip_blas_core(void);

#ifdef __cplusplus
}
#endif

#endif
