/*
 * clipd export --data DIR --out DIR
 *
 * Writes the collection as tools like clip-retrieval and autofaiss read it
 * (srv_export.h): OUT/vectors.npy, OUT/images.jsonl (same order) and
 * OUT/model.json. OUT is created, or must be an empty directory. The data
 * directory is opened read-only, without its index: export runs beside a
 * serving clipd and sees what had committed as it goes. Exit status: 0
 * done, 1 failed, 2 usage.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "catalog.h"
#include "clock.h"
#include "commands.h"
#include "srv_export.h"

/* 0 when dir was created or is an empty directory, else -1 (said on stderr). */
static int prepare_out(const char *dir)
{
	if (mkdir(dir, 0755) == 0)
		return 0;
	if (errno != EEXIST) {
		fprintf(stderr, "clipd export: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "clipd export: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	struct dirent *e;
	int empty = 1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	if (!empty) {
		fprintf(stderr, "clipd export: %s exists and is not empty; give a new or empty directory\n", dir);
		return -1;
	}
	return 0;
}

static int run_export(const struct cli_command *info, int argc, char **argv)
{
	char *data_dir = NULL, *out_dir = NULL;
	const struct cli_option opts[] = {
		{ "data", CLI_STRING, &data_dir, "DIR", "the data directory", 0, 0 },
		{ "out", CLI_STRING, &out_dir, "DIR", "where to write the export (a new or empty directory)", 0, 0 },
		{ 0 },
	};
	struct cli_args args;
	int rc = cli_parse(info, opts, argc, argv, &args);
	if (rc != CLI_OK)
		return rc == CLI_HELP ? 0 : 2;
	rc = 2;
	if (args.n_positional != 0) {
		cli_usage_error(info, "unexpected argument '%s'", args.positional[0]);
		goto out;
	}
	if (!data_dir || !out_dir) {
		cli_usage_error(info, "--data and --out are required");
		goto out;
	}
	rc = 1;
	struct catalog_params p = catalog_default_params();
	catalog *c = NULL;
	store_error err = { 0 };
	double t0 = clock_mono_s();
	p.data_dir = data_dir;
	p.readonly = 1;
	p.no_index = 1;
	if (catalog_open(&p, &c, NULL, &err) != 0) {
		fprintf(stderr, "clipd export: %s\n", err.msg);
		goto out;
	}
	char msg[512];
	uint64_t n = 0;
	if (prepare_out(out_dir) == 0) {
		if (srv_export_dir(c, out_dir, &n, msg, sizeof msg) == 0) {
			printf("exported %llu images (%zu dimensions) to %s in %.1f s\n", (unsigned long long)n,
			       catalog_dim(c), out_dir, clock_mono_s() - t0);
			rc = 0;
		} else {
			fprintf(stderr, "clipd export: %s\n", msg);
		}
	}
	catalog_close(c);
out:
	cli_args_free(&args);
	return rc;
}

const struct clipd_command cmd_export = {
	{ "export", "write the vectors, image objects and model for other tools", "--data DIR --out DIR",
	  "Writes OUT/vectors.npy (float32, n x dim, NumPy format), OUT/images.jsonl (the image objects "
	  "as the API shows them, one per line, in the same order) and OUT/model.json (name, "
	  "fingerprint, dim). OUT is created, or must be empty. Runs beside a serving clipd." },
	run_export };
