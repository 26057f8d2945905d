/*
 * cli.h - command-line options shared by every clipd subcommand.
 *
 *     char *model = NULL; long long k = 10; struct cli_list images = {0};
 *     const struct cli_option opts[] = {
 *             { "model", CLI_STRING, &model, "DIR", "model directory", 0, 0 },
 *             { "k", CLI_INT, &k, "N", "results", 1, 1000 },
 *             { "image", CLI_LIST, &images, "FILE", "an image (repeatable)", 0, 0 },
 *             { 0 },
 *     };
 *     struct cli_args args;
 *     int rc = cli_parse("encode", opts, argc, argv, &args);
 *
 * Every option NAME is --NAME VALUE or --NAME=VALUE on the command line and,
 * when absent there, the environment variable CLIPD_NAME (upper case, '-' as
 * '_'); a CLI_LIST takes a comma-separated list from the environment.
 * cli_parse returns CLI_OK, CLI_HELP (usage was printed to stdout: exit 0)
 * or CLI_USAGE_ERROR (a one-line error was printed to stderr: exit 2).
 * Strings point into argv or the environment; lists own their arrays
 * (cli_args_free / cli_list_free).
 */
#ifndef CLIPD_CLI_H
#define CLIPD_CLI_H

#include <stddef.h>

enum cli_type {
	CLI_STRING,  /* char *: the value */
	CLI_INT,     /* long long, within [min, max] */
	CLI_SIZE,    /* long long bytes, with an optional K, M or G suffix (binary), within [min, max] */
	CLI_DOUBLE,  /* double */
	CLI_FLAG,    /* int: set to 1 when present; from the environment 1/true/yes or 0/false/no */
	CLI_LIST,    /* struct cli_list: every occurrence, in order */
};

struct cli_list {
	char **items;
	size_t n;
	char *env_copy;  /* a CLIPD_* variable's value, split into items */
};

struct cli_option {
	const char *name;
	enum cli_type type;
	void *dest;
	const char *metavar;
	const char *help;
	long long min, max;  /* for CLI_INT and CLI_SIZE; both 0 means unbounded */
};

struct cli_command {
	const char *name;
	const char *summary;   /* one line, for `clipd help` */
	const char *synopsis;  /* the usage line after "clipd NAME" */
	const char *details;   /* a paragraph, may be NULL */
};

struct cli_args {
	char **positional;  /* arguments that are not options, in order */
	size_t n_positional;
};

enum { CLI_OK = 0, CLI_HELP = 1, CLI_USAGE_ERROR = 2 };

int cli_parse(const struct cli_command *cmd, const struct cli_option *opts,
	      int argc, char **argv, struct cli_args *args);
void cli_print_help(const struct cli_command *cmd, const struct cli_option *opts);
void cli_args_free(struct cli_args *args);
void cli_list_free(struct cli_list *list);
/* One-line usage error to stderr, "clipd NAME: MESSAGE (see 'clipd NAME --help')". */
void cli_usage_error(const struct cli_command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
