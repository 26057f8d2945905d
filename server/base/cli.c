#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_usage_error(const struct cli_command *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "clipd %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'clipd %s --help')\n", cmd->name);
}

static void env_name(const char *name, char *out, size_t outlen)
{
	size_t i = 0;
	int n = snprintf(out, outlen, "CLIPD_");
	for (i = (size_t)n; *name && i + 1 < outlen; name++, i++)
		out[i] = *name == '-' ? '_' : (char)toupper((unsigned char)*name);
	out[i] = 0;
}

static int list_push(struct cli_list *list, char *item)
{
	char **grown = realloc(list->items, (list->n + 1) * sizeof *grown);
	if (!grown)
		return -1;
	list->items = grown;
	list->items[list->n++] = item;
	return 0;
}

void cli_list_free(struct cli_list *list)
{
	if (!list)
		return;
	free(list->items);
	free(list->env_copy);
	list->items = NULL;
	list->n = 0;
	list->env_copy = NULL;
}

void cli_args_free(struct cli_args *args)
{
	if (!args)
		return;
	free(args->positional);
	args->positional = NULL;
	args->n_positional = 0;
}

static int parse_number(const struct cli_command *cmd, const struct cli_option *opt,
			const char *value, const char *source)
{
	char *end = NULL;
	errno = 0;
	if (opt->type == CLI_DOUBLE) {
		double d = strtod(value, &end);
		if (errno || end == value || *end) {
			cli_usage_error(cmd, "%s: '%s' is not a number", source, value);
			return -1;
		}
		*(double *)opt->dest = d;
		return 0;
	}
	long long v = strtoll(value, &end, 10);
	if (errno || end == value) {
		cli_usage_error(cmd, "%s: '%s' is not a whole number", source, value);
		return -1;
	}
	if (opt->type == CLI_SIZE && *end) {
		long long mult = 0;
		switch (toupper((unsigned char)*end)) {
		case 'K': mult = 1LL << 10; break;
		case 'M': mult = 1LL << 20; break;
		case 'G': mult = 1LL << 30; break;
		default: break;
		}
		if (mult && (end[1] == 0 || ((end[1] == 'i' || end[1] == 'B') && end[2] == 0)
			     || (end[1] == 'i' && end[2] == 'B' && end[3] == 0))) {
			if (v > 0 && v > (long long)(9e18 / (double)mult)) {
				cli_usage_error(cmd, "%s: '%s' is too large", source, value);
				return -1;
			}
			v *= mult;
			end += strlen(end);
		}
	}
	if (*end) {
		cli_usage_error(cmd, "%s: '%s' is not a whole number", source, value);
		return -1;
	}
	if ((opt->min || opt->max) && (v < opt->min || v > opt->max)) {
		cli_usage_error(cmd, "%s: %lld is out of range [%lld, %lld]", source, v, opt->min, opt->max);
		return -1;
	}
	*(long long *)opt->dest = v;
	return 0;
}

static int parse_flag_value(const char *value)
{
	if (!strcmp(value, "1") || !strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcasecmp(value, "on"))
		return 1;
	if (!strcmp(value, "0") || !strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcasecmp(value, "off"))
		return 0;
	return -1;
}

/* Apply one value from the command line (from_env == 0) or the environment. */
static int apply(const struct cli_command *cmd, const struct cli_option *opt, char *value,
		 int from_env, const char *source)
{
	switch (opt->type) {
	case CLI_STRING:
		*(char **)opt->dest = value;
		return 0;
	case CLI_INT:
	case CLI_SIZE:
	case CLI_DOUBLE:
		return parse_number(cmd, opt, value, source);
	case CLI_FLAG: {
		int v = from_env ? parse_flag_value(value) : 1;
		if (v < 0) {
			cli_usage_error(cmd, "%s: '%s' is not a boolean", source, value);
			return -1;
		}
		*(int *)opt->dest = v;
		return 0;
	}
	case CLI_LIST: {
		struct cli_list *list = opt->dest;
		if (!from_env)
			return list_push(list, value);
		/* A copy of the environment's value is split on commas (the
		 * environment itself stays as it was, for getenv and exec). */
		char *copy = strdup(value);
		if (!copy)
			return -1;
		free(list->env_copy);
		list->env_copy = copy;
		for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
		     tok = strtok_r(NULL, ",", &save))
			if (*tok && list_push(list, tok) != 0)
				return -1;
		return 0;
	}
	}
	return -1;
}

static const struct cli_option *find_option(const struct cli_option *opts, const char *name, size_t len)
{
	for (const struct cli_option *o = opts; o && o->name; o++)
		if (strlen(o->name) == len && !strncmp(o->name, name, len))
			return o;
	return NULL;
}

void cli_print_help(const struct cli_command *cmd, const struct cli_option *opts)
{
	printf("usage: clipd %s %s\n\n%s\n", cmd->name, cmd->synopsis ? cmd->synopsis : "", cmd->summary);
	if (cmd->details)
		printf("\n%s\n", cmd->details);
	printf("\noptions (each also from the environment as CLIPD_NAME):\n");
	for (const struct cli_option *o = opts; o && o->name; o++) {
		char left[64], env[64];
		snprintf(left, sizeof left, "--%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
		env_name(o->name, env, sizeof env);
		printf("  %-26s %s [%s]\n", left, o->help, env);
	}
	printf("  %-26s %s\n", "--help", "show this help");
}

int cli_parse(const struct cli_command *cmd, const struct cli_option *opts,
	      int argc, char **argv, struct cli_args *args)
{
	size_t n_opts = 0;
	for (const struct cli_option *o = opts; o && o->name; o++)
		n_opts++;
	unsigned char seen[64] = { 0 };
	if (n_opts > sizeof seen)
		return CLI_USAGE_ERROR;
	memset(args, 0, sizeof *args);
	args->positional = calloc((size_t)argc + 1, sizeof *args->positional);
	if (!args->positional)
		return CLI_USAGE_ERROR;

	int only_positional = 0;
	for (int i = 1; i < argc; i++) {
		char *arg = argv[i];
		if (only_positional || arg[0] != '-' || arg[1] == 0) {
			args->positional[args->n_positional++] = arg;
			continue;
		}
		if (!strcmp(arg, "--")) {
			only_positional = 1;
			continue;
		}
		if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
			cli_print_help(cmd, opts);
			cli_args_free(args);
			return CLI_HELP;
		}
		if (arg[1] != '-') {
			cli_usage_error(cmd, "unknown option '%s'", arg);
			goto fail;
		}
		char *name = arg + 2, *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const struct cli_option *opt = find_option(opts, name, len);
		if (!opt) {
			cli_usage_error(cmd, "unknown option '--%.*s'", (int)len, name);
			goto fail;
		}
		char *value = NULL;
		if (opt->type == CLI_FLAG) {
			if (eq) {
				cli_usage_error(cmd, "option '--%s' takes no value", opt->name);
				goto fail;
			}
		} else if (eq) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			cli_usage_error(cmd, "option '--%s' needs a value", opt->name);
			goto fail;
		}
		char source[80];
		snprintf(source, sizeof source, "--%s", opt->name);
		if (apply(cmd, opt, value, 0, source) != 0)
			goto fail;
		seen[opt - opts] = 1;
	}

	for (size_t k = 0; k < n_opts; k++) {
		char env[64];
		if (seen[k])
			continue;
		env_name(opts[k].name, env, sizeof env);
		char *value = getenv(env);
		if (!value || (!*value && opts[k].type != CLI_STRING))
			continue;
		if (apply(cmd, &opts[k], value, 1, env) != 0)
			goto fail;
	}
	return CLI_OK;
fail:
	cli_args_free(args);
	return CLI_USAGE_ERROR;
}
