/*
 * clipd check --data DIR [--repair]
 * clipd check --catalog URI [--data DIR] [--repair]
 *
 * Verifies a data directory: SQLite's integrity_check and foreign-key
 * check, every image row has its original file (of the stored size) and a
 * vector of the active model, and the saved index, brought up to date from
 * the change log, holds exactly the rows. Prints one line per problem on
 * stdout and exits 1, or prints a summary on stderr and exits 0. Reads
 * only: it may run beside a serving clipd.
 *
 * With --catalog, the PostgreSQL catalog's own check (backend.h's check:
 * every image has a vector of the active model and an original of its
 * size); --data then names a node's data directory, whose index snapshot
 * is checked against the catalog too (without --data, none is).
 *
 * --repair first reads every original's capture time again (EXIF
 * DateTimeOriginal: rows stored before clipd kept it have none) and
 * stores what changed, then checks. It writes, so it takes the data
 * directory's lock: stop clipd serve first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "commands.h"
#include "srv_json.h"

#define REPAIR_PAGE 256

static void print_problem(void *ud, const char *line)
{
	(void)ud;
	printf("%s\n", line);
}

/* The capture time of one stored image, read from its original: 0, or -1
 * after printing the problem. A JPEG is decoded at 1/8 scale (the date
 * is in its EXIF; the pixels are only proof that the file is whole). */
static int read_taken(catalog *c, int64_t id, struct store_taken_at *out)
{
	struct store_image row;
	unsigned char *bytes = NULL;
	size_t len = 0;
	store_error err = { 0 };
	if (cmd_read_original(c, id, &row, &bytes, &len, &err) != 0) {
		printf("image %lld: %s\n", (long long)id, err.msg);
		return -1;
	}
	struct clip_decode_params dp = clip_decode_default_params();
	/* it was stored, so its size was accepted then */
	size_t pixels = (size_t)row.width * (size_t)row.height;
	if (pixels > dp.max_pixels)
		dp.max_pixels = pixels;
	dp.min_long_side = 1;
	clip_image img = { 0 };
	clip_error ce = { 0 };
	int rc = clip_image_decode_with(bytes, len, &dp, &img, &ce);
	if (rc != 0)
		printf("image %lld (%s): its original does not decode: %s\n", (long long)id, row.sha256, ce.msg);
	else
		srv_taken_at(img.taken_at, out);
	clip_image_free(&img);
	store_image_clear(&row);
	free(bytes);
	return rc == 0 ? 0 : -1;
}

/* --repair: every image's capture time from its original, the changes
 * stored a page at a time. Returns the originals that could not be read
 * (each printed), or -1 when the directory could not be opened or written. */
static int repair(const char *data_dir, const char *uri)
{
	struct catalog_params p = catalog_default_params();
	p.data_dir = data_dir;
	p.catalog_uri = uri;
	p.no_index = 1;
	catalog *c = NULL;
	store_error err = { 0 };
	if (catalog_open(&p, &c, NULL, &err) != 0) {
		printf("%s: %s\n", data_dir, err.msg);
		return -1;
	}
	int64_t cursor = 0, ids[REPAIR_PAGE];
	struct store_taken_at taken[REPAIR_PAGE];
	size_t read = 0, changed = 0;
	int bad = 0;
	do {
		struct store_image *rows = NULL;
		size_t n = 0, k = 0, ch = 0;
		if (catalog_list(c, NULL, cursor, REPAIR_PAGE, &rows, &n, &cursor, &err) != 0)
			goto fail;
		for (size_t i = 0; i < n; i++) {
			struct store_taken_at t;
			if (read_taken(c, rows[i].id, &t) != 0) {
				bad++;
				continue;
			}
			read++;
			if (strcmp(t.text, rows[i].taken.text)) {
				ids[k] = rows[i].id;
				taken[k++] = t;
			}
		}
		store_images_free(rows, n);
		if (catalog_set_taken_at(c, ids, taken, k, &ch, &err) != 0)
			goto fail;
		changed += ch;
	} while (cursor);
	fprintf(stderr, "clipd check --repair: %s: read the capture time of %zu originals, %zu changed\n",
		data_dir, read, changed);
	catalog_close(c);
	return bad;
fail:
	printf("%s: the repair could not finish: %s\n", data_dir, err.msg);
	catalog_close(c);
	return -1;
}

static int run_check(const struct cli_command *info, int argc, char **argv)
{
	char *data_dir = NULL, *uri = NULL;
	int do_repair = 0;
	char scratch[64] = "";
	const struct cli_option opts[] = {
		{ "data", CLI_STRING, &data_dir, "DIR", "the data directory (with --catalog: a node's, whose index snapshot is checked too)", 0, 0 },
		{ "catalog", CLI_STRING, &uri, "URI", "check the PostgreSQL catalog at this libpq URI (postgresql://...)", 0, 0 },
		{ "repair", CLI_FLAG, &do_repair, NULL, "first read each original's capture time (taken_at) again and store it (writes: stop clipd serve first)", 0, 0 },
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
	if (!data_dir && !uri) {
		cli_usage_error(info, "--data or --catalog is required");
		goto out;
	}
	if (!data_dir) {
		/* The catalog alone: an empty directory of no snapshot (the
		 * catalog reads it only for caches, and writes nothing). */
		snprintf(scratch, sizeof scratch, "/tmp/clipd-check.XXXXXX");
		if (!mkdtemp(scratch)) {
			printf("cannot make a temporary directory: %s\n", strerror(errno));
			scratch[0] = 0;
			rc = 1;
			goto out;
		}
		data_dir = scratch;
	}
	int unreadable = 0;
	if (do_repair && (unreadable = repair(data_dir, uri)) < 0) {
		rc = 1;
		goto out;
	}
	struct catalog_params p = catalog_default_params();
	p.data_dir = data_dir;
	p.catalog_uri = uri;
	p.readonly = 1;
	p.no_index = 1;   /* catalog_check loads the saved index itself */
	catalog *c = NULL;
	store_error err = { 0 };
	if (catalog_open(&p, &c, NULL, &err) != 0) {
		printf("%s: %s\n", uri ? "the catalog" : data_dir, err.msg);
		rc = 1;
		goto out;
	}
	int problems = catalog_check(c, print_problem, NULL, &err);
	if (problems < 0) {
		printf("%s: the check could not finish: %s\n", data_dir, err.msg);
		rc = 1;
	} else if (problems > 0 || unreadable > 0) {
		rc = 1;
	} else {
		struct catalog_stats st;
		if (catalog_stats(c, &st, &err) == 0)
			fprintf(stderr, "clipd check: %s is consistent: %lld images, model %s\n",
				uri ? "the catalog" : data_dir, (long long)st.images, st.model.name);
		rc = 0;
	}
	fflush(stdout);
	catalog_close(c);
out:
	if (scratch[0])
		rmdir(scratch);
	cli_args_free(&args);
	return rc;
}

const struct clipd_command cmd_check = {
	{ "check", "verify a data directory: database, files, vectors, index", "--data DIR [--repair] | --catalog URI [--data DIR] [--repair]",
	  "One line per problem on stdout and exit status 1; exit status 0 when consistent. --repair "
	  "first reads each original's capture time (taken_at) again and stores what changed. --catalog "
	  "checks a PostgreSQL catalog (and, with --data, a node's index snapshot against it)." },
	run_check };
