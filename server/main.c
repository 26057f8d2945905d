/*
 * clipd - an image-text retrieval server. This file only dispatches to the
 * subcommands, in the style of git: `clipd NAME [OPTIONS]`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

static const struct clipd_command *const commands[] = {
	&cmd_serve,
	&cmd_encode,
	&cmd_tokenize,
	&cmd_preprocess,
	&cmd_bench,
	&cmd_bench_index,
	&cmd_index,
	&cmd_check,
	&cmd_reembed,
	&cmd_export,
	&cmd_import,
	&cmd_catalog,
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const struct clipd_command *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (!strcmp(commands[i]->info.name, name))
			return commands[i];
	return NULL;
}

static void print_usage(FILE *out)
{
	fprintf(out, "usage: clipd COMMAND [OPTIONS]\n"
		     "       clipd help [COMMAND]\n"
		     "       clipd --version\n\n"
		     "An image-text retrieval server: CLIP in C, SQLite, FAISS.\n\n"
		     "commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-12s %s\n", commands[i]->info.name, commands[i]->info.summary);
	fprintf(out, "\nEvery option --NAME can also be set as the environment variable CLIPD_NAME.\n"
		     "'clipd help COMMAND' or 'clipd COMMAND --help' describes one command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_usage(stderr);
		return 2;
	}
	const char *name = argv[1];
	if (!strcmp(name, "--version") || !strcmp(name, "version")) {
		printf("clipd %s\n", CLIPD_VERSION);
		return 0;
	}
	if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
		print_usage(stdout);
		return 0;
	}
	if (!strcmp(name, "help")) {
		if (argc < 3) {
			print_usage(stdout);
			return 0;
		}
		const struct clipd_command *cmd = find_command(argv[2]);
		if (!cmd) {
			fprintf(stderr, "clipd: unknown command '%s' (see 'clipd help')\n", argv[2]);
			return 2;
		}
		static char help_flag[] = "--help";
		char *help_argv[] = { argv[2], help_flag, NULL };
		return cmd->run(&cmd->info, 2, help_argv);
	}
	if (name[0] == '-') {
		fprintf(stderr, "clipd: unknown option '%s' (see 'clipd help')\n", name);
		return 2;
	}
	const struct clipd_command *cmd = find_command(name);
	if (!cmd) {
		fprintf(stderr, "clipd: unknown command '%s' (see 'clipd help')\n", name);
		return 2;
	}
	return cmd->run(&cmd->info, argc - 1, argv + 1);
}
