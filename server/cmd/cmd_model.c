/*
 * What every command that encodes does to load its model: the packed-
 * weights cache location, the decode limit, the precision and the CPU
 * override. See commands.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

const char *clipd_weights_cache(const char *value, char *buf, size_t len)
{
	if (!value)
		value = getenv("CLIPD_WEIGHTS_CACHE");
	if (value)
		return *value && strcmp(value, "off") ? value : NULL;
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int w;
	if (xdg && *xdg == '/')
		w = snprintf(buf, len, "%s/clipd", xdg);
	else if (home && *home == '/')
		w = snprintf(buf, len, "%s/.cache/clipd", home);
	else
		return NULL;
	return w > 0 && (size_t)w < len ? buf : NULL;
}

int cmd_precision(const struct cli_command *info, const char *value, int *out)
{
	if (!value) {
		*out = CLIP_PRECISION_FP32;
		return 0;
	}
	if (clip_precision_parse(value, out) == 0)
		return 0;
	cli_usage_error(info, "--precision: '%s' is not fp32 or bf16", value);
	return -1;
}

struct clip_params cmd_model_params(size_t max_pixels, int precision)
{
	struct clip_params params = clip_default_params();
	if (max_pixels)
		params.max_pixels = max_pixels;
	params.precision = precision;
	params.cpu = getenv("CLIPD_CPU");
	return params;
}

int cmd_model_load(const char *dir, const char *weights_cache, size_t max_pixels, int precision,
		   clip_model **out, clip_error *err)
{
	struct clip_params params = cmd_model_params(max_pixels, precision);
	char cache[4096];
	params.weights_cache = clipd_weights_cache(weights_cache, cache, sizeof cache);
	return clip_model_load(dir, &params, out, err);
}
