/*
 * clipd catalog copy --from DIR|URI --to DIR|URI [--batch N]
 *
 * Moves a collection between catalogs: a single node's data directory up
 * into an empty PostgreSQL catalog for several nodes, and back into an
 * empty data directory (or between two of the same kind). Ids, every
 * column, the originals, the active model's vectors and its fingerprint,
 * the photo libraries (their rows and files' records; the files stay) are
 * kept; an interrupted copy run again continues where it stopped; the
 * end verifies everything from the target (catalog.h: catalog_copy).
 *
 * Progress goes to stderr (at most once a second), what was done to
 * stdout. Exit status: 0 copied and verified, 1 refused or failed (the
 * reason on stderr), 2 usage.
 */
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "clock.h"
#include "commands.h"

static int is_uri(const char *s)
{
	return !strncmp(s, "postgresql://", 13) || !strncmp(s, "postgres://", 11);
}

struct progress {
	double last;
};

static void on_progress(void *ud, const char *stage, int64_t done, int64_t total)
{
	struct progress *pr = ud;
	double now = clock_mono_s();
	if (now - pr->last < 1.0 && done != total)
		return;
	pr->last = now;
	if (total > 0)
		fprintf(stderr, "clipd catalog copy: %s %lld of %lld images\n", stage, (long long)done, (long long)total);
	else
		fprintf(stderr, "clipd catalog copy: %s: %lld\n", stage, (long long)done);
}

static int copy(const char *from, const char *to, long long batch)
{
	struct catalog_copy_params p = catalog_copy_default_params();
	struct catalog_copy_report rep;
	struct progress pr = { 0 };
	store_error err = { 0 };
	if (is_uri(from))
		p.from_uri = from;
	else
		p.from_dir = from;
	if (is_uri(to))
		p.to_uri = to;
	else
		p.to_dir = to;
	if (batch > 0)
		p.batch = (size_t)batch;
	p.progress = on_progress;
	p.ud = &pr;
	int rc = catalog_copy(&p, &rep, &err);
	if (rc != 0) {
		fprintf(stderr, "clipd catalog copy: %s\n", err.msg);
		if (rep.copied > 0)
			fprintf(stderr, "clipd catalog copy: %lld images were copied before it stopped; the target is "
				"marked as an unfinished copy (no clipd serves it): run the same command again to "
				"continue\n", (long long)rep.copied);
		return 1;
	}
	printf("copied %s to %s\n", rep.from, rep.to);
	if (rep.resumed)
		printf("continued an unfinished copy after image %lld\n", (long long)rep.resumed_after);
	printf("%lld images copied now (%.1f MB of originals), %lld in the target, model %s (%.12s, %zu dimensions)\n",
	       (long long)rep.copied, (double)rep.bytes / 1e6, (long long)rep.images, rep.model.name,
	       rep.model.fingerprint, rep.model.dim);
	printf("new images get ids above %lld; the change sequence continues after %llu\n", (long long)rep.max_id,
	       (unsigned long long)rep.seq);
	printf("verified %lld images: every row, original (SHA-256 re-hashed from the target) and vector equal; "
	       "%.1f s\n", (long long)rep.verified, rep.seconds);
	if (rep.libraries > 0)
		printf("photo libraries: %lld, with %lld files their scans met (every row equal; a library image's "
		       "original is its file, which stays where it is and was not read)\n", (long long)rep.libraries,
		       (long long)rep.library_files);
	return 0;
}

static int run_catalog(const struct cli_command *info, int argc, char **argv)
{
	char *from = NULL, *to = NULL;
	long long batch = 0;
	const struct cli_option opts[] = {
		{ "from", CLI_STRING, &from, "DIR|URI", "the source: a data directory or a postgresql:// URI", 0, 0 },
		{ "to", CLI_STRING, &to, "DIR|URI", "the target, empty: a data directory or a postgresql:// URI", 0, 0 },
		{ "batch", CLI_INT, &batch, "N", "images, or library files, per transaction (256)", 1, CATALOG_COPY_MAX_BATCH },
		{ 0 },
	};
	struct cli_args args;
	switch (cli_parse(info, opts, argc, argv, &args)) {
	case CLI_OK:
		break;
	case CLI_HELP:
		return 0;
	default:
		return 2;
	}
	int rc = 2;
	if (args.n_positional != 1 || strcmp(args.positional[0], "copy"))
		cli_usage_error(info, "say copy");
	else if (!from || !to || !*from || !*to)
		cli_usage_error(info, "--from and --to are required");
	else
		rc = copy(from, to, batch);
	cli_args_free(&args);
	return rc;
}

const struct clipd_command cmd_catalog = {
	{ "catalog", "copy a collection between a data directory and a PostgreSQL catalog",
	  "copy --from DIR|URI --to DIR|URI [--batch N]",
	  "copy moves every image (id, columns, original, the active model's vector) and the photo "
	  "libraries (their rows, their files' records, each library image's path; the files stay where "
	  "they are) into an empty catalog: a data directory up to PostgreSQL (postgresql://...) for "
	  "several nodes, or back. "
	  "Run again after an interruption, it continues; at the end it verifies counts, every "
	  "original's SHA-256 (re-hashed from the target) and every vector. A data directory in use by "
	  "a running clipd, a target that is not empty and a source of another schema version are "
	  "refused." },
	run_catalog };
