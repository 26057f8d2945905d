/*
 * commands.h - clipd's subcommands. Each lives in server/cmd/cmd_NAME.c and
 * parses its own options with cli_parse (so `clipd NAME --help` works);
 * run() returns the process exit status: 0 success, 1 failure, 2 usage.
 */
#ifndef CLIPD_COMMANDS_H
#define CLIPD_COMMANDS_H

#include <stddef.h>

#include "catalog.h"
#include "clip.h"
#include "cli.h"

struct clipd_command {
	struct cli_command info;
	int (*run)(const struct cli_command *info, int argc, char **argv);
};

extern const struct clipd_command cmd_serve;
extern const struct clipd_command cmd_encode;
extern const struct clipd_command cmd_tokenize;
extern const struct clipd_command cmd_preprocess;
extern const struct clipd_command cmd_bench;
extern const struct clipd_command cmd_bench_index;
extern const struct clipd_command cmd_index;
extern const struct clipd_command cmd_check;
extern const struct clipd_command cmd_reembed;
extern const struct clipd_command cmd_export;
extern const struct clipd_command cmd_import;
extern const struct clipd_command cmd_catalog;

/* The directory for a model load's packed-weights cache (clip_params.
 * weights_cache): `value` when given (a --weights-cache flag), else
 * $CLIPD_WEIGHTS_CACHE, else $XDG_CACHE_HOME/clipd, else ~/.cache/clipd;
 * NULL for none ("off", an empty value, or no home). May use buf. */
const char *clipd_weights_cache(const char *value, char *buf, size_t len);

/* --precision's help, the same for every command that takes it. */
#define CMD_PRECISION_HELP "fp32, or bf16 (twice the speed on CPUs with AVX512_BF16; vectors at cosine ~0.9999 of fp32's, a collection of their own) (fp32)"

/* A command's --precision value (NULL: fp32) as enum clip_precision in
 * *out; on anything else a usage error is printed and -1 returned. */
int cmd_precision(const struct cli_command *info, const char *value, int *out);

/* Load a command's model (clip_model_load) with the weights cache above
 * (weights_cache: the --weights-cache value, or NULL), max_pixels as
 * clip_image_decode's limit (0: the default) and precision (enum
 * clip_precision). $CLIPD_CPU, when set, caps the matrix kernel as
 * clip_params.cpu says (avx512, avx2, openblas: tests and benchmarks run
 * this CPU as a lesser one). cmd/cmd_model.c. */
int cmd_model_load(const char *dir, const char *weights_cache, size_t max_pixels, int precision,
		   clip_model **out, clip_error *err);

/* The same parameters as cmd_model_load's, for clip_precision_check
 * before anything is loaded. */
struct clip_params cmd_model_params(size_t max_pixels, int precision);

/* An image's row and its original's bytes (malloc'd), for the commands
 * that go over the stored images again (cmd/cmd_original.c). 0, or a
 * store_status with the reason in *err (nothing to free then); clear
 * *row and free *bytes. */
int cmd_read_original(catalog *c, int64_t id, struct store_image *row, unsigned char **bytes,
		      size_t *len, store_error *err);

#endif
