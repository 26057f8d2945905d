#include "srv_config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "catalog.h"
#include "http.h"
#include "srv_app.h"

static char default_listen[] = "127.0.0.1:8080";
static char default_log_level[] = "info";
static char default_precision[] = "fp32";

void srv_config_defaults(struct srv_config *c)
{
	memset(c, 0, sizeof *c);
	c->listen = default_listen;
	c->log_level = default_log_level;
	c->precision = default_precision;
	c->threads = 4;
	c->encoder_threads = 0;
	c->decode_threads = 2;
	c->rate_limit = 0;
	c->rate_burst = 0;
	c->max_body = 32LL << 20;
	c->max_pixels = 64LL * 1000 * 1000;
	c->decode_budget = 128LL * 1000 * 1000;
	c->max_query = 1000;
	c->max_k = 1000;
	c->max_connections = 1024;
	c->max_connections_per_ip = 64;
	c->timeout = 60;
	c->max_lag = 5;
	c->row_cache_mb = 64;
	c->max_labels = 256;
	c->max_texts = 256;
	c->max_metadata = 16 * 1024;
	c->max_metadata_depth = 8;
	c->max_files = 64;
	c->max_list = 1000;
	c->batch_size = 8;
	c->batch_wait_ms = 10;
	c->queue_size = 64;
	c->text_batch_size = 16;
	c->text_batch_wait_ms = 2;
	c->text_queue_size = 1024;
	c->text_cache = 4096;
	c->nprobe = 0;
	c->ivf_threshold = 0;
	c->save_interval = 60;
	c->save_changes = 1000;
	c->library_rescan = 3600;
	c->library_settle = 2;
}

static int name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
	       ch == '_' || ch == '-';
}

int srv_library_spec_parse(const char *arg, struct srv_library_spec *spec, char *msg, size_t msglen)
{
	memset(spec, 0, sizeof *spec);
	const char *eq = strchr(arg, '=');
	const char *dir = arg;
	size_t nl = 0;
	if (eq && (!memchr(arg, '/', (size_t)(eq - arg)) ||
		   (eq[1] == '/' && arg[0] != '/' && arg[0] != '.'))) {
		/* NAME=DIR: text before '=' is meant as a name when it has no
		 * '/', or when an absolute folder follows it (my/pics=/photos);
		 * a folder whose own name has '=' is given as ./a=b or /x/a=b */
		size_t k = (size_t)(eq - arg);
		int ok = k > 0 && k <= SRV_LIBRARY_NAME_MAX && arg[0] != '.';
		for (size_t i = 0; ok && i < k; i++)
			ok = name_char(arg[i]);
		if (!ok) {
			snprintf(msg, msglen,
				 "'%.40s': a library name is 1 to %d letters (a-z, A-Z), digits, '.', '_' "
				 "or '-', not starting with '.' (a folder named with '=': ./%.40s)",
				 arg, SRV_LIBRARY_NAME_MAX, arg);
			return -1;
		}
		memcpy(spec->name, arg, k);
		nl = k;
		dir = eq + 1;
	}
	if (!*dir) {
		snprintf(msg, msglen, "'%s': no folder", arg);
		return -1;
	}
	char cwd[4096] = "";
	if (dir[0] != '/' && !getcwd(cwd, sizeof cwd)) {
		snprintf(msg, msglen, "'%s': cannot tell the current directory", arg);
		return -1;
	}
	int w = cwd[0] ? snprintf(spec->root, sizeof spec->root, "%s/%s", cwd, dir)
		       : snprintf(spec->root, sizeof spec->root, "%s", dir);
	if (w < 0 || (size_t)w >= sizeof spec->root) {
		snprintf(msg, msglen, "'%.80s...': the path is too long", arg);
		return -1;
	}
	size_t rl = strlen(spec->root);
	while (rl > 1 && spec->root[rl - 1] == '/')
		spec->root[--rl] = 0;
	if (nl == 0) {
		/* the folder's base name, other characters as '_' */
		const char *base = strrchr(spec->root, '/');
		base = base ? base + 1 : spec->root;
		while (*base == '.')
			base++;
		for (; *base && nl < SRV_LIBRARY_NAME_MAX; base++)
			spec->name[nl++] = name_char(*base) ? *base : '_';
		spec->name[nl] = 0;
		if (nl == 0)
			snprintf(spec->name, sizeof spec->name, "library");
	}
	return 0;
}

int srv_config_parse(const struct cli_command *info, int argc, char **argv, struct srv_config *c)
{
	srv_config_defaults(c);
	const struct cli_option opts[] = {
		{ "model", CLI_STRING, &c->model, "DIR", "model directory (Hugging Face or OpenCLIP layout; required)", 0, 0 },
		{ "data", CLI_STRING, &c->data, "DIR", "data directory (created when missing; required)", 0, 0 },
		{ "catalog", CLI_STRING, &c->catalog, "URI", "keep the catalog in PostgreSQL (a libpq URI, postgresql://...) instead of the data directory, which then holds only caches", 0, 0 },
		{ "catalog-read", CLI_STRING, &c->catalog_read, "URI", "with --catalog: read (the index's changes, rows, filters, originals) from this URI, a hot standby (target_session_attrs=prefer-standby); writes, and reads of this node's own recent writes, go to --catalog", 0, 0 },
		{ "row-cache", CLI_INT, &c->row_cache_mb, "MB", "with --catalog (and no --catalog-read): MiB of image rows kept on this node for searches, lists and gets, invalidated by every change the node writes or applies; 0: none (64)", 0, 65536 },
		{ "max-lag", CLI_INT, &c->max_lag, "SECONDS", "with --catalog: /readyz says not ready while this node has not applied a change it learned of this long ago (5)", 0, 86400 },
		{ "listen", CLI_STRING, &c->listen, "HOST:PORT", "address to listen on; port 0 picks a free one (127.0.0.1:8080)", 0, 0 },
		{ "port-file", CLI_STRING, &c->port_file, "FILE", "write the port listened on into FILE", 0, 0 },
		{ "model-name", CLI_STRING, &c->model_name, "NAME", "model name shown in /info (the model directory's name)", 0, 0 },
		{ "model-warning", CLI_STRING, &c->model_warning, "TEXT", "a warning about the model, logged and shown in /info", 0, 0 },
		{ "weights-cache", CLI_STRING, &c->weights_cache, "DIR", "where the weights repacked for this CPU are kept between starts; off: repack at every start ($XDG_CACHE_HOME/clipd or ~/.cache/clipd)", 0, 0 },
		{ "precision", CLI_STRING, &c->precision, "P", "fp32, or bf16: twice the speed on CPUs with AVX512_BF16, vectors at cosine ~0.9999 of fp32's, and a collection of their own (fp32)", 0, 0 },
		{ "log-level", CLI_STRING, &c->log_level, "LEVEL", "error, warn, info or debug (info)", 0, 0 },
		{ "http-threads", CLI_INT, &c->threads, "N", "HTTP threads (4)", 1, 256 },
		{ "encoder-threads", CLI_INT, &c->encoder_threads, "N", "threads per encoder context, image and text each (0: CPUs)", 0, 256 },
		{ "decode-threads", CLI_INT, &c->decode_threads, "N", "threads decoding uploads and making thumbnails (2)", 1, 64 },
		{ "exact-decode", CLI_FLAG, &c->exact_decode, NULL, "decode JPEGs at full size, bit-faithful to Pillow (off: large JPEGs are decoded DCT-scaled to at least twice the model's input side)", 0, 0 },
		{ "api-key-file", CLI_STRING, &c->api_key_file, "FILE", "API keys, one per line with an optional read/write scope (none: open)", 0, 0 },
		{ "cors-origin", CLI_LIST, &c->cors_origins, "ORIGIN", "an origin allowed by CORS, e.g. https://app.example (repeatable; * for any)", 0, 0 },
		{ "rate-limit", CLI_DOUBLE, &c->rate_limit, "N", "requests per second per API key or client address (0: off)", 0, 0 },
		{ "rate-burst", CLI_INT, &c->rate_burst, "N", "burst allowed above the rate (0: twice the rate)", 0, 1000000 },
		{ "trusted-proxy", CLI_LIST, &c->trusted_proxies, "ADDR", "a proxy (address or CIDR) whose X-Forwarded-For is believed (repeatable)", 0, 0 },
		{ "max-body", CLI_SIZE, &c->max_body, "BYTES", "request body limit (32M)", 1024, 1LL << 32 },
		{ "max-pixels", CLI_INT, &c->max_pixels, "N", "decoded pixels per image (64000000)", 1, 1LL << 32 },
		{ "decode-budget", CLI_INT, &c->decode_budget, "N", "pixels being decoded at once, all uploads together (128000000)", 1, 1LL << 36 },
		{ "max-query", CLI_INT, &c->max_query, "N", "characters of a search query (1000)", 1, 100000 },
		{ "max-k", CLI_INT, &c->max_k, "N", "results per search (1000)", 1, 1000 },
		{ "max-connections", CLI_INT, &c->max_connections, "N", "open connections (1024)", 1, 100000 },
		{ "max-connections-per-ip", CLI_INT, &c->max_connections_per_ip, "N", "open connections per client address (64; 0: no limit)", 0, 100000 },
		{ "timeout", CLI_INT, &c->timeout, "SECONDS", "idle connection timeout and longest wait for the encoder (60)", 1, 3600 },
		{ "max-labels", CLI_INT, &c->max_labels, "N", "labels per classification (256)", 1, 4096 },
		{ "max-texts", CLI_INT, &c->max_texts, "N", "texts per embed call (256)", 1, 4096 },
		{ "max-metadata", CLI_SIZE, &c->max_metadata, "BYTES", "metadata of an image, compact JSON (16K)", 2, 16 * 1024 },
		{ "max-metadata-depth", CLI_INT, &c->max_metadata_depth, "N", "nesting of metadata (8)", 1, 8 },
		{ "max-files", CLI_INT, &c->max_files, "N", "files per multipart upload (64)", 1, 4096 },
		{ "max-list", CLI_INT, &c->max_list, "N", "items per page of GET /images (1000)", 1, 1000 },
		{ "batch-size", CLI_INT, &c->batch_size, "N", "images per encoder pass (8)", 1, 256 },
		{ "batch-wait-ms", CLI_INT, &c->batch_wait_ms, "MS", "longest wait for a fuller image batch (10)", 0, 10000 },
		{ "queue-size", CLI_INT, &c->queue_size, "N", "images waiting for the encoder before 503 (64)", 1, 100000 },
		{ "text-batch-size", CLI_INT, &c->text_batch_size, "N", "texts per text-encoder pass (16)", 1, 1024 },
		{ "text-batch-wait-ms", CLI_INT, &c->text_batch_wait_ms, "MS", "longest wait for a fuller text batch (2)", 0, 10000 },
		{ "text-queue-size", CLI_INT, &c->text_queue_size, "N", "texts waiting for the text encoder before 503 (1024)", 1, 1000000 },
		{ "text-cache", CLI_INT, &c->text_cache, "N", "text embeddings kept (LRU; 4096; 0: none)", 0, 10000000 },
		{ "library", CLI_LIST, &c->library_args, "[NAME=]DIR", "a folder of photos indexed in place, named NAME (its base name) (repeatable)", 0, 0 },
		{ "library-rescan", CLI_INT, &c->library_rescan, "SECONDS", "scan the libraries this often (3600; 0: at start and on request only)", 0, 31536000 },
		{ "library-settle", CLI_INT, &c->library_settle, "SECONDS", "a file modified more recently than this waits for the next scan (2)", 0, 3600 },
		{ "index", CLI_STRING, &c->index_factory, "FACTORY", "FAISS factory string of a supported family (automatic)", 0, 0 },
		{ "nprobe", CLI_INT, &c->nprobe, "N", "IVF lists probed per search (0: the index's default)", 0, 65536 },
		{ "ivf-threshold", CLI_INT, &c->ivf_threshold, "N", "vectors before an approximate index is built (0: the default)", 0, 1LL << 40 },
		{ "save-interval", CLI_INT, &c->save_interval, "SECONDS", "save the index this often when it changed (60)", 1, 86400 },
		{ "save-changes", CLI_INT, &c->save_changes, "N", "save the index after this many changes (1000)", 1, 100000000 },
		{ 0 },
	};
	struct cli_args args;
	int rc = cli_parse(info, opts, argc, argv, &args);
	if (rc != CLI_OK)
		return rc;
	char msg[256];
	if (args.n_positional) {
		cli_usage_error(info, "unexpected argument '%s'", args.positional[0]);
		goto fail;
	}
	if (!c->model || !*c->model) {
		cli_usage_error(info, "--model DIR is required");
		goto fail;
	}
	if (!c->data || !*c->data) {
		cli_usage_error(info, "--data DIR is required");
		goto fail;
	}
	if (strcmp(c->precision, "fp32") && strcmp(c->precision, "bf16")) {
		cli_usage_error(info, "--precision: '%s' is not fp32 or bf16", c->precision);
		goto fail;
	}
	if (log_level_parse(c->log_level) < 0) {
		cli_usage_error(info, "--log-level: '%s' is not error, warn, info or debug", c->log_level);
		goto fail;
	}
	if (http_parse_listen(c->listen, &c->listen_addr, &c->listen_len, msg, sizeof msg) != 0) {
		cli_usage_error(info, "--listen: %s", msg);
		goto fail;
	}
	if (c->trusted_proxies.n > SRV_MAX_PROXIES || c->cors_origins.n > SRV_MAX_ORIGINS) {
		cli_usage_error(info, "at most %d trusted proxies and %d CORS origins", SRV_MAX_PROXIES, SRV_MAX_ORIGINS);
		goto fail;
	}
	for (size_t i = 0; i < c->trusted_proxies.n; i++)
		if (http_cidr_parse(c->trusted_proxies.items[i], &c->proxies[c->n_proxies++]) != 0) {
			cli_usage_error(info, "--trusted-proxy: '%s' is not an address or CIDR block",
					c->trusted_proxies.items[i]);
			goto fail;
		}
	for (size_t i = 0; i < c->cors_origins.n; i++) {
		const char *o = c->cors_origins.items[i];
		if (strcmp(o, "*") && strncmp(o, "http://", 7) && strncmp(o, "https://", 8)) {
			cli_usage_error(info, "--cors-origin: '%s' is not * or an http(s) origin", o);
			goto fail;
		}
		size_t n = strlen(o);
		if (n > 1 && o[n - 1] == '/') {
			cli_usage_error(info, "--cors-origin: '%s': an origin has no path (drop the '/')", o);
			goto fail;
		}
	}
	if (c->rate_limit < 0 || c->rate_limit > 1e6) {
		cli_usage_error(info, "--rate-limit: must be 0 to 1000000");
		goto fail;
	}
	if (c->rate_burst == 0)
		c->rate_burst = c->rate_limit * 2 < 1 ? 1 : (long long)(c->rate_limit * 2 + 0.5);
	if (c->decode_budget < c->max_pixels) {
		cli_usage_error(info, "--decode-budget (%lld) must be at least --max-pixels (%lld)",
				c->decode_budget, c->max_pixels);
		goto fail;
	}
	if (c->library_args.n > SRV_MAX_LIBRARIES) {
		cli_usage_error(info, "at most %d libraries", SRV_MAX_LIBRARIES);
		goto fail;
	}
	for (size_t i = 0; i < c->library_args.n; i++) {
		struct srv_library_spec *l = &c->libraries[c->n_libraries];
		if (srv_library_spec_parse(c->library_args.items[i], l, msg, sizeof msg) != 0) {
			cli_usage_error(info, "--library: %s", msg);
			goto fail;
		}
		for (size_t j = 0; j < c->n_libraries; j++)
			if (!strcmp(c->libraries[j].name, l->name)) {
				cli_usage_error(info, "--library: two libraries are named '%s' (name one: --library NAME=DIR)",
						l->name);
				goto fail;
			}
		c->n_libraries++;
	}
	if (c->catalog && !*c->catalog)
		c->catalog = NULL;
	if (c->catalog_read && !*c->catalog_read)
		c->catalog_read = NULL;
	if (c->catalog_read && !c->catalog) {
		cli_usage_error(info, "--catalog-read: needs --catalog (the primary, for writes)");
		goto fail;
	}
	if (c->max_connections_per_ip > c->max_connections)
		c->max_connections_per_ip = c->max_connections;
	cli_args_free(&args);
	return CLI_OK;
fail:
	cli_args_free(&args);
	srv_config_free(c);
	return CLI_USAGE_ERROR;
}

void srv_config_free(struct srv_config *c)
{
	if (!c)
		return;
	cli_list_free(&c->cors_origins);
	cli_list_free(&c->trusted_proxies);
	cli_list_free(&c->library_args);
}

size_t srv_config_max_uri(const struct srv_config *cfg)
{
	/* 3 bytes a byte percent-encoded, 4 bytes a character of UTF-8; a
	 * query part may carry a weight ("100:") */
	size_t filter = sizeof "&filter.=" + 3 * (STORE_MAX_FILTER_KEY + STORE_MAX_FILTER_VALUE);
	size_t part = sizeof "&not_image=100%3A" + 12 * (size_t)cfg->max_query;
	size_t search = SRV_MAX_QUERY_PARTS * part + STORE_MAX_FILTERS * filter;
	size_t upload = sizeof "&metadata=" + 3 * (size_t)cfg->max_metadata + sizeof "&filename=" + 3 * 1024;
	return HTTP_MAX_PATH + (search > upload ? search : upload) + 4096;
}
