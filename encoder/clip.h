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
	CLIP_ERR_UNSUPPORTED = -5,   /* image type not one clip_image_types() lists */
	CLIP_ERR_UNDECODABLE = -6,   /* image claims a supported type but cannot be decoded */
	CLIP_ERR_TOO_LARGE = -7,     /* image header states more pixels than allowed */
	CLIP_ERR_EMPTY = -8,         /* zero bytes, or zero width or height */
	CLIP_ERR_THREAD = -9,        /* a worker thread could not be started */
};

/* A stable machine-readable name for a status: "image_too_large", ... */
const char *clip_status_name(int status);

/* Room for a message that names a file in full (a path of up to PATH_MAX
 * bytes and the reason): such a message is never cut off. */
#define CLIP_MSG_MAX 4352

typedef struct clip_error {
	int code;        /* the clip_status returned */
	char msg[CLIP_MSG_MAX];   /* NUL-terminated, never empty after a failure */
} clip_error;

/* ---- model ----------------------------------------------------------- */

typedef struct clip_model clip_model;

/*
 * Precision of the transformers' matrix products. FP32 (the default)
 * computes everything in float32. BF16 keeps the layers' weights in bf16
 * (packed for the kernel; a BF16 checkpoint is used as it is, never
 * widened), rounds their inputs to bf16 and multiplies them with
 * vdpbf16ps, accumulating in float32; LayerNorm, attention, softmax, GELU,
 * the residual adds and the final projection stay float32. It needs a CPU
 * with AVX512_BF16: elsewhere clip_model_load refuses it, naming the
 * feature (clip_precision_check says so before any loading). A model's
 * vectors at the two precisions differ slightly (cosine about 0.999):
 * a collection holds one or the other.
 */
enum clip_precision { CLIP_PRECISION_FP32 = 0, CLIP_PRECISION_BF16 = 1 };

/* "fp32", "bf16" */
const char *clip_precision_name(int precision);
/* 0 and *out set for "fp32" or "bf16"; -1 otherwise. */
int clip_precision_parse(const char *s, int *out);

struct clip_params {
	size_t max_pixels;   /* clip_image_decode's limit (default 64 megapixels) */
	int verify_shapes;   /* nonzero: refuse tensors whose shape differs (always on; kept for ABI) */
	/* A directory for a file of the weights repacked for this CPU's
	 * kernel (about the size of the weights), which later loads of the
	 * same files map instead of repacking; created if missing. NULL (the
	 * default): repack at every load. One file per precision. */
	const char *weights_cache;
	int precision;       /* enum clip_precision (default CLIP_PRECISION_FP32) */
	/* For tests and benchmarks: the most capable matrix kernel to use,
	 * as if the CPU had no more: "avx512-bf16", "avx512", "avx2" or
	 * "openblas" (nothing packed). NULL or "": the CPU's best. A CPU
	 * cannot be given what it lacks. */
	const char *cpu;
};

struct clip_params clip_default_params(void);

/* 0 if params' precision runs on this CPU (as params->cpu limits it), else
 * CLIP_ERR_INVALID with a message naming the missing feature, or the bad
 * cpu value. clip_model_load checks the same first. */
int clip_precision_check(const struct clip_params *params, clip_error *err);

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
/* The precision it computes in ("fp32", "bf16") and the matrix kernel it
 * uses: "avx512-bf16", "avx512", "avx2" (clipd's packed kernels) or
 * "openblas" (ARM64 and other CPUs without AVX2 and FMA). */
const char *clip_model_precision(const clip_model *model);
const char *clip_model_kernel(const clip_model *model);

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

/*
 * Decoding. The type is decided by the bytes alone: JPEG (libjpeg-turbo,
 * with its default choices, so the pixels are Pillow's), PNG, GIF and BMP
 * (stb_image), WebP (libwebp; the first frame of an animation), HEIC and
 * AVIF (libheif; the primary image) and TIFF (libtiff; the first page).
 * Every decoder reads the size from the header and refuses an image over
 * max_pixels before it allocates pixels.
 *
 * Orientation. The EXIF Orientation tag (JPEG APP1, PNG eXIf, WebP EXIF,
 * TIFF's own tag) is applied after decoding, all eight values: width and
 * height are those of the upright image, as a person sees it. HEIC and AVIF
 * carry their own rotation and mirroring, which libheif applies; EXIF is not
 * applied on top. A corrupt or absurd EXIF block is ignored, never fatal.
 *
 * Alpha. rgb is always the colour without alpha, as Pillow's
 * convert("RGB") gives it (alpha dropped, not composited): that is what
 * the model sees. With keep_alpha the decoder also returns the alpha plane
 * of an image that has one, for thumbnails: clip_image_flatten composites
 * over white.
 *
 * The fast path. A JPEG larger than the model needs is decoded with
 * libjpeg's DCT scaling at 1/2, 1/4 or 1/8: the smallest scale whose
 * shorter side is still min_short_side (2 x the model's input side, 448 for
 * a 224-pixel model) or more; a JPEG whose shorter side is under twice that
 * (896) is decoded at full size. The crop then differs from the full
 * decode's by about half a level RMS. min_short_side 0 (--exact-decode)
 * decodes at full size, bit-faithful to Pillow. min_long_side does the same
 * for thumbnails: the smallest scale whose longer side still covers it.
 *
 * What the server does with it (one decode per upload, on a decode thread):
 *
 *     struct clip_decode_params dp = clip_model_decode_params(model, cfg->max_pixels, exact_decode);
 *     // (the same as clip_decode_default_params() with max_pixels set and
 *     //  min_short_side = exact_decode ? 0 : 2 * clip_model_image_size(model))
 *     clip_image img;
 *     if (clip_image_decode_with(bytes, len, &dp, &img, &err) != 0) ... 422/415
 *     clip_image_preprocess(model, &img, pixels, npix, &err);   // the embedding
 *     // the image object: img.full_width x img.full_height (upright),
 *     // img.taken_at ("" -> null), clip_image_mime(img.type)
 *     clip_image_free(&img);
 *
 *     // a thumbnail of at most side x side (longer side scaled to side):
 *     dp.min_short_side = 0; dp.min_long_side = side; dp.keep_alpha = 1;
 *     clip_image_decode_with(bytes, len, &dp, &img, &err);
 *     clip_image_flatten(&img);          // transparent pixels over white
 *     srv_thumb_make(img.rgb, img.width, img.height, side, ...);
 *
 * clip_image_types() lists the accepted MIME types for /info and the 415.
 */

enum clip_image_type { CLIP_IMAGE_UNKNOWN = 0, CLIP_IMAGE_JPEG, CLIP_IMAGE_PNG,
		       CLIP_IMAGE_GIF, CLIP_IMAGE_BMP, CLIP_IMAGE_WEBP,
		       CLIP_IMAGE_HEIC, CLIP_IMAGE_AVIF, CLIP_IMAGE_TIFF };

/* An RFC 3339 capture time: "2024-05-17T14:03:22+02:00" (with the EXIF
 * OffsetTimeOriginal), "2024-05-17T14:03:22-00:00" (RFC 3339's "offset
 * unknown": the camera's clock, no offset stated), or "" (none). */
#define CLIP_TAKEN_AT_LEN 32

/* A decoded image. Zero-initialised fields keep their old meaning: a
 * caller that knows only width, height and rgb sees what it always saw. */
typedef struct clip_image {
	int width, height;   /* of the pixels in rgb: upright, after any DCT scaling */
	unsigned char *rgb;  /* width * height * 3 bytes, owned; free with clip_image_free */
	/* width * height bytes, owned, with keep_alpha and an image that has
	 * alpha; NULL otherwise (opaque). Not used by the crop. */
	unsigned char *alpha;
	int full_width, full_height;  /* the upright image at full size (the image object's) */
	int scale_denom;     /* 1, 2, 4 or 8: the DCT scale the pixels were decoded at */
	int orientation;     /* the EXIF orientation applied, 1..8 (1: none) */
	enum clip_image_type type;
	char taken_at[CLIP_TAKEN_AT_LEN];  /* EXIF DateTimeOriginal, RFC 3339, or "" */
} clip_image;

/* The type decided by magic bytes alone; CLIP_IMAGE_UNKNOWN otherwise. */
enum clip_image_type clip_image_sniff(const void *bytes, size_t len);
/* "image/jpeg", "image/webp", "image/heic", "image/avif", "image/tiff", ...;
 * NULL for CLIP_IMAGE_UNKNOWN. */
const char *clip_image_mime(enum clip_image_type type);
/* The MIME types clip_image_decode accepts, NULL-terminated, static. */
const char *const *clip_image_types(void);
/* The same as one sentence: "JPEG, PNG, GIF, BMP, WebP, HEIC, AVIF or TIFF". */
const char *clip_image_types_text(void);

/* Width and height of the upright image (EXIF orientation applied) from
 * the header, without decoding pixels. */
int clip_image_probe(const void *bytes, size_t len, enum clip_image_type *type,
		     int *width, int *height, clip_error *err);

/* Decode the first frame to 8-bit RGB (alpha dropped, grey replicated),
 * upright, at full size. Refuses, before allocating pixels, an image over
 * max_pixels. The same as clip_image_decode_with and
 * clip_decode_default_params() with min_short_side 0. */
int clip_image_decode(const void *bytes, size_t len, size_t max_pixels,
		      clip_image *out, clip_error *err);

struct clip_decode_params {
	size_t max_pixels;   /* the stored image's limit (default 64 megapixels) */
	int min_short_side;  /* JPEG DCT scaling down to this shorter side; 0: full size (default) */
	int min_long_side;   /* JPEG DCT scaling down to this longer side; 0: full size (default) */
	int keep_alpha;      /* nonzero: fill clip_image.alpha when the image has alpha */
	int ignore_orientation;  /* nonzero: the pixels as stored (EXIF not applied) */
};

struct clip_decode_params clip_decode_default_params(void);
/* The parameters for decoding an image for model m: max_pixels (0: the
 * default), and the JPEG fast path down to twice the model's input side
 * unless exact (--exact-decode: full size, bit-faithful to Pillow). */
struct clip_decode_params clip_model_decode_params(const clip_model *m, size_t max_pixels, int exact);

/* Decode as params say. On failure *out is empty (all zero) and the status
 * says why: CLIP_ERR_UNSUPPORTED (not a type above; the message lists
 * them), CLIP_ERR_UNDECODABLE (the decoder's reason), CLIP_ERR_TOO_LARGE,
 * CLIP_ERR_EMPTY, CLIP_ERR_NOMEM. */
int clip_image_decode_with(const void *bytes, size_t len, const struct clip_decode_params *params,
			   clip_image *out, clip_error *err);
/* Frees rgb and alpha and zeroes the image; accepts NULL. */
void clip_image_free(clip_image *img);

/* Composite rgb over white by alpha, in place, and free alpha (a thumbnail
 * of a transparent PNG is then white where it is transparent). Nothing to
 * do without alpha. */
void clip_image_flatten(clip_image *img);

/* The picture img stands for, *pw x *ph, and the part of img->rgb it
 * covers, in img's pixels, as box = { x0, y0, width, height }. For a
 * full-size decode, img itself: all of it (0 is returned). A DCT-scaled
 * decode (1/d) has ceil(full / d) pixels a side, the last standing for
 * part of d: the picture is full_width x full_height, the box full / d
 * pixels a side, that partial pixel at the end of each axis the
 * orientation kept and at the start of one it reversed (1 is returned). */
int clip_image_box(const clip_image *img, double box[4], int *pw, int *ph);

/* PIL-exact bicubic resize of the shorter side to `side`, centre crop to
 * side x side: out_rgb holds side * side * 3 bytes. A DCT-scaled decode is
 * resized from its box (clip_image_box), with the full image's sizes. */
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
