/*
 * srv_config.h - `clipd serve`'s configuration: every option with its
 * default and bounds, from the command line or CLIPD_* variables (cli.h).
 *
 *     struct srv_config cfg;
 *     int rc = srv_config_parse(&cmd_serve.info, argc, argv, &cfg);
 *     if (rc != CLI_OK) return rc == CLI_HELP ? 0 : 2;
 *     ...
 *     srv_config_free(&cfg);
 *
 * srv_config_parse also checks the options against each other (a decode
 * budget smaller than the pixel limit, ...) and parses the listen address
 * and trusted proxies; a problem is a one-line usage error.
 */
#ifndef CLIPD_SRV_CONFIG_H
#define CLIPD_SRV_CONFIG_H

#include <stddef.h>
#include <sys/socket.h>

#include "cli.h"
#include "http_net.h"

#define SRV_MAX_PROXIES 64
#define SRV_MAX_ORIGINS 64
#define SRV_MAX_LIBRARIES 64
#define SRV_LIBRARY_NAME_MAX 64   /* STORE_LIBRARY_NAME_MAX */

/* A --library: a name (given as NAME=DIR, or the folder's base name) and
 * its root, made absolute. */
struct srv_library_spec {
	char name[SRV_LIBRARY_NAME_MAX + 1];
	char root[4096];
};

struct srv_config {
	/* where */
	char *model, *data, *listen, *port_file;
	char *catalog;         /* --catalog: a PostgreSQL URI, or NULL (the data directory's SQLite) */
	char *catalog_read;    /* --catalog-read: a URI for reads (a hot standby), or NULL: --catalog's */
	long long row_cache_mb; /* --row-cache: MiB of a shared catalog's rows cached on the node */
	long long max_lag;     /* --max-lag: seconds a replica may be behind and /readyz still say ready */
	char *model_name;          /* shown in /info; default: the model directory's name */
	char *model_warning;       /* shown in the log and /info (deploy/run.sh's fallback model) */
	char *weights_cache;       /* packed-weights cache directory; NULL: the default; "off": none */
	char *precision;           /* "fp32" or "bf16" (checked by srv_config_parse) */
	char *log_level;
	/* threads */
	long long threads;         /* HTTP threads (libmicrohttpd's pool) */
	long long encoder_threads; /* per encoder context (image and text each have one) */
	long long decode_threads;  /* workers decoding uploads and making thumbnails */
	int exact_decode;          /* JPEGs decoded at full size: no DCT-scaled fast path */
	/* security */
	char *api_key_file;
	struct cli_list cors_origins, trusted_proxies;
	double rate_limit;         /* requests per second per key or client; 0: off */
	long long rate_burst;      /* 0: max(1, 2 x rate) */
	/* limits */
	long long max_body, max_pixels, decode_budget, max_query, max_k, max_connections,
		max_connections_per_ip, timeout, max_labels, max_texts, max_metadata,
		max_metadata_depth, max_files, max_list;
	/* batching and caching */
	long long batch_size, batch_wait_ms, queue_size, text_batch_size, text_batch_wait_ms,
		text_queue_size, text_cache;
	/* libraries */
	struct cli_list library_args;
	long long library_rescan;  /* seconds between scans; 0: at start and on request only */
	long long library_settle;  /* a file modified this recently waits for the next scan */
	/* index */
	char *index_factory;
	long long nprobe, ivf_threshold, save_interval, save_changes;

	/* derived by srv_config_parse */
	struct sockaddr_storage listen_addr;
	socklen_t listen_len;
	struct http_cidr proxies[SRV_MAX_PROXIES];
	size_t n_proxies;
	struct srv_library_spec libraries[SRV_MAX_LIBRARIES];
	size_t n_libraries;
};

/* Parse one --library value ("DIR" or "NAME=DIR") into spec: 0, or -1 with
 * a message. */
int srv_library_spec_parse(const char *arg, struct srv_library_spec *spec, char *msg, size_t msglen);

/* Fills cfg with the defaults, then the command line and environment.
 * CLI_OK, CLI_HELP (printed) or CLI_USAGE_ERROR (printed). */
int srv_config_parse(const struct cli_command *info, int argc, char **argv, struct srv_config *cfg);
void srv_config_free(struct srv_config *cfg);
/* The longest request target the limits allow: a path, a q of max_query
 * characters, every metadata filter at its limits and a metadata parameter
 * of max_metadata bytes, all percent-encoded (3 bytes for each byte of
 * UTF-8), with room for the other parameters. The HTTP layer answers 414
 * past it and sizes each connection's memory from it. */
size_t srv_config_max_uri(const struct srv_config *cfg);

/* The defaults alone (tests). */
void srv_config_defaults(struct srv_config *cfg);

#endif
