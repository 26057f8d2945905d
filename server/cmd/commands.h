/*
 * commands.h - clipd's subcommands. Each lives in server/cmd/cmd_NAME.c and
 * parses its own options with cli_parse (so `clipd NAME --help` works);
 * run() returns the process exit status: 0 success, 1 failure, 2 usage.
 */
#ifndef CLIPD_COMMANDS_H
#define CLIPD_COMMANDS_H

#include <stddef.h>

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
extern const struct clipd_command cmd_import;

/* The directory for a model load's packed-weights cache (clip_params.
 * weights_cache): `value` when given (a --weights-cache flag), else
 * $CLIPD_WEIGHTS_CACHE, else $XDG_CACHE_HOME/clipd, else ~/.cache/clipd;
 * NULL for none ("off", an empty value, or no home). May use buf. */
const char *clipd_weights_cache(const char *value, char *buf, size_t len);

/* Load a command's model (clip_model_load) with the weights cache above
 * (weights_cache: the --weights-cache value, or NULL) and max_pixels as
 * clip_image_decode's limit (0: the default). cmd/cmd_model.c. */
int cmd_model_load(const char *dir, const char *weights_cache, size_t max_pixels, clip_model **out,
		   clip_error *err);

#endif
