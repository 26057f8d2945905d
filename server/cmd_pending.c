/*
 * Subcommands whose implementation has not landed yet: they answer --help
 * and otherwise refuse with exit status 2. Each moves to its own
 * server/cmd_NAME.c when it is implemented.
 */
#include <stdio.h>

#include "commands.h"

static const struct cli_option no_options[] = { { 0 } };

static int run_pending(const struct cli_command *info, int argc, char **argv)
{
	struct cli_args args;
	int rc = cli_parse(info, no_options, argc, argv, &args);
	if (rc != CLI_OK)
		return rc == CLI_HELP ? 0 : 2;
	cli_args_free(&args);
	fprintf(stderr, "clipd %s: not available in this build yet\n", info->name);
	return 2;
}

const struct clipd_command cmd_serve = {
	{ "serve", "run the HTTP daemon", "--model DIR --data DIR [OPTIONS]", NULL }, run_pending };
