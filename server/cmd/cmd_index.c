/*
 * clipd index stats --data DIR
 * clipd index rebuild --data DIR [--index FACTORY] [--ivf-threshold N] [--nprobe N]
 *
 * stats prints one JSON object about the data directory's vector index:
 *
 *   {"count", "images", "type", "exact", "size_on_disk", "sequence",
 *    "saved_sequence", "file", "loaded", "message",
 *    "model": {"name", "fingerprint", "dim", "layout"}}
 *
 * count and sequence are the index brought up to date in memory (the saved
 * file plus the change log after it); size_on_disk and saved_sequence are
 * the file's. stats reads only: it runs beside a serving clipd.
 *
 * rebuild takes the data directory's lock (so not while clipd serve or
 * reembed runs), builds the index afresh from the stored vectors, and
 * saves it. Exit status: 0 done, 1 failed, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "catalog.h"
#include "clock.h"
#include "commands.h"

static int stats(const char *data_dir)
{
	struct catalog_params p = catalog_default_params();
	struct catalog_open_report rep;
	struct catalog_stats st;
	catalog *c = NULL;
	store_error err = { 0 };
	int rc = 1;
	p.data_dir = data_dir;
	p.readonly = 1;
	if (catalog_open(&p, &c, &rep, &err) != 0) {
		fprintf(stderr, "clipd index stats: %s\n", err.msg);
		return 1;
	}
	if (catalog_stats(c, &st, &err) != 0) {
		fprintf(stderr, "clipd index stats: %s\n", err.msg);
		goto out;
	}
	const char *file = catalog_index_file(c);
	cJSON *o = cJSON_CreateObject(), *m = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "count", (double)st.index_count);
	cJSON_AddNumberToObject(o, "images", (double)st.images);
	cJSON_AddStringToObject(o, "type", st.index_type);
	cJSON_AddBoolToObject(o, "exact", st.index_exact);
	cJSON_AddNumberToObject(o, "size_on_disk", (double)st.index_file_bytes);
	cJSON_AddNumberToObject(o, "sequence", (double)st.seq);
	cJSON_AddNumberToObject(o, "saved_sequence", (double)st.saved_seq);
	cJSON_AddStringToObject(o, "file", file);
	cJSON_AddBoolToObject(o, "loaded", rep.index_loaded);
	cJSON_AddStringToObject(o, "message", rep.index_message);
	cJSON_AddStringToObject(m, "name", st.model.name);
	cJSON_AddStringToObject(m, "fingerprint", st.model.fingerprint);
	cJSON_AddNumberToObject(m, "dim", (double)st.model.dim);
	cJSON_AddStringToObject(m, "layout", st.model.layout);
	cJSON_AddItemToObject(o, "model", m);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (text) {
		printf("%s\n", text);
		cJSON_free(text);
		rc = 0;
	} else {
		fprintf(stderr, "clipd index stats: out of memory\n");
	}
out:
	catalog_close(c);
	return rc;
}

static int rebuild(const char *data_dir, const char *factory, long long threshold, long long nprobe)
{
	struct catalog_params p = catalog_default_params();
	struct catalog_stats st;
	catalog *c = NULL;
	store_error err = { 0 };
	double t0 = clock_mono_s();
	p.data_dir = data_dir;
	p.no_index = 1;   /* built below, once */
	p.index.factory = factory;
	if (threshold > 0)
		p.index.ivf_threshold = (size_t)threshold;
	p.index.nprobe = (int)nprobe;
	if (catalog_open(&p, &c, NULL, &err) != 0) {
		fprintf(stderr, "clipd index rebuild: %s\n", err.msg);
		return 1;
	}
	int rc = catalog_rebuild_index(c, &err);
	if (rc == 0) {
		catalog_wait_index(c);
		rc = catalog_save_index(c, &err);
	}
	if (rc == 0)
		rc = catalog_stats(c, &st, &err);
	if (rc != 0) {
		fprintf(stderr, "clipd index rebuild: %s\n", err.msg);
		catalog_close(c);
		return 1;
	}
	printf("rebuilt the index of %s: %zu vectors, %s, %lld bytes, in %.1f s\n", catalog_data_dir(c),
	       st.index_count, st.index_type, (long long)st.index_file_bytes, clock_mono_s() - t0);
	catalog_close(c);
	return 0;
}

static int run_index(const struct cli_command *info, int argc, char **argv)
{
	char *data_dir = NULL, *factory = NULL;
	long long threshold = 0, nprobe = 0;
	const struct cli_option opts[] = {
		{ "data", CLI_STRING, &data_dir, "DIR", "the data directory", 0, 0 },
		{ "index", CLI_STRING, &factory, "FACTORY", "rebuild: the index family (FAISS factory string)", 0, 0 },
		{ "ivf-threshold", CLI_INT, &threshold, "N", "rebuild: vectors past which the index is approximate", 0, 1LL << 40 },
		{ "nprobe", CLI_INT, &nprobe, "N", "rebuild: IVF lists searched per query (0: automatic)", 0, IDX_MAX_NPROBE },
		{ 0 },
	};
	struct cli_args args;
	int rc = cli_parse(info, opts, argc, argv, &args);
	if (rc != CLI_OK)
		return rc == CLI_HELP ? 0 : 2;
	rc = 2;
	if (args.n_positional != 1) {
		cli_usage_error(info, "say stats or rebuild");
		goto out;
	}
	if (!data_dir) {
		cli_usage_error(info, "--data is required");
		goto out;
	}
	const char *action = args.positional[0];
	if (!strcmp(action, "stats"))
		rc = stats(data_dir);
	else if (!strcmp(action, "rebuild"))
		rc = rebuild(data_dir, factory, threshold, nprobe);
	else
		cli_usage_error(info, "unknown action '%s' (stats or rebuild)", action);
out:
	cli_args_free(&args);
	return rc;
}

const struct clipd_command cmd_index = {
	{ "index", "inspect or rebuild a data directory's vector index", "stats|rebuild --data DIR",
	  "stats prints one JSON object (count, type, size on disk, sequence, model) and runs beside "
	  "a serving clipd; rebuild builds the index afresh from the stored vectors and saves it, "
	  "and needs the data directory to itself." },
	run_index };
