/*
 * clipd check --data DIR
 *
 * Verifies a data directory: SQLite's integrity_check and foreign-key
 * check, every image row has its original file (of the stored size) and a
 * vector of the active model, and the saved index, brought up to date from
 * the change log, holds exactly the rows. Prints one line per problem on
 * stdout and exits 1, or prints a summary on stderr and exits 0. Reads
 * only: it may run beside a serving clipd.
 */
#include <stdio.h>

#include "catalog.h"
#include "commands.h"

static void print_problem(void *ud, const char *line)
{
	(void)ud;
	printf("%s\n", line);
}

static int run_check(const struct cli_command *info, int argc, char **argv)
{
	char *data_dir = NULL;
	const struct cli_option opts[] = {
		{ "data", CLI_STRING, &data_dir, "DIR", "the data directory", 0, 0 },
		{ 0 },
	};
	struct cli_args args;
	int rc = cli_parse(info, opts, argc, argv, &args);
	if (rc != CLI_OK)
		return rc == CLI_HELP ? 0 : 2;
	rc = 2;
	if (args.n_positional) {
		cli_usage_error(info, "unexpected argument '%s'", args.positional[0]);
		goto out;
	}
	if (!data_dir) {
		cli_usage_error(info, "--data is required");
		goto out;
	}
	struct catalog_params p = catalog_default_params();
	p.data_dir = data_dir;
	p.readonly = 1;
	p.no_index = 1;   /* catalog_check loads the saved index itself */
	catalog *c = NULL;
	store_error err = { 0 };
	if (catalog_open(&p, &c, NULL, &err) != 0) {
		printf("%s: %s\n", data_dir, err.msg);
		rc = 1;
		goto out;
	}
	int problems = catalog_check(c, print_problem, NULL, &err);
	if (problems < 0) {
		printf("%s: the check could not finish: %s\n", data_dir, err.msg);
		rc = 1;
	} else if (problems > 0) {
		rc = 1;
	} else {
		struct catalog_stats st;
		if (catalog_stats(c, &st, &err) == 0)
			fprintf(stderr, "clipd check: %s is consistent: %lld images, model %s\n", data_dir,
				(long long)st.images, st.model.name);
		rc = 0;
	}
	fflush(stdout);
	catalog_close(c);
out:
	cli_args_free(&args);
	return rc;
}

const struct clipd_command cmd_check = {
	{ "check", "verify a data directory: database, files, vectors, index", "--data DIR",
	  "One line per problem on stdout and exit status 1; exit status 0 when consistent." },
	run_check };
