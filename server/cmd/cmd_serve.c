/*
 * clipd serve: the HTTP daemon.
 *
 * Start-up: the HTTP server first (so /healthz answers at once and /readyz
 * says 503 while loading), then the model, the data directory (catalog:
 * lock, migrations, index load or rebuild) and the encoder's two paths;
 * then the libraries' scanner; then ready. SIGTERM or SIGINT: stop
 * accepting, let requests in flight finish, stop the scanner between
 * files, save the index, exit 0; a second signal exits at once.
 *
 * OMP_WAIT_POLICY: FAISS's OpenMP runtime reads it once, when the library
 * loads, and its default (active) makes idle threads spin for a while
 * after every parallel region, stealing CPU from the encoder. When it is
 * unset, serve re-executes itself with OMP_WAIT_POLICY=passive before
 * anything else (before option parsing, which may rewrite the environment).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "clock.h"
#include "files.h"
#include "log.h"
#include "srv_app.h"
#include "http_auth.h"
#include "http_ratelimit.h"

/* The web front-end's files (server/app/www/, embedded by server/app/meson.build). */
extern const struct clipd_asset clipd_www_assets[];

static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;
static int stop_signal;

/* Signals arrive on whichever thread does not block them (OpenBLAS starts
 * its threads before main), so they are caught by a handler: the first is
 * passed through a pipe to a thread that starts the shutdown, a second one
 * exits at once. */
static atomic_int signals_seen;
static int signal_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	if (atomic_fetch_add(&signals_seen, 1) > 0) {
		static const char msg[] = "clipd: second signal: exiting now (the index is replayed at the next start)\n";
		ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
		(void)w;
		_exit(128 + sig);
	}
	int saved = errno;
	unsigned char c = (unsigned char)sig;
	ssize_t w = write(signal_pipe[1], &c, 1);
	(void)w;
	errno = saved;
}

static void *signal_main(void *arg)
{
	(void)arg;
	unsigned char c = 0;
	ssize_t n;
	do
		n = read(signal_pipe[0], &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		return NULL;
	log_info("%s received: shutting down (a second signal exits at once)", c == SIGINT ? "SIGINT" : "SIGTERM");
	pthread_mutex_lock(&stop_lock);
	stop_signal = c;
	pthread_cond_broadcast(&stop_cond);
	pthread_mutex_unlock(&stop_lock);
	return NULL;
}

static int start_signal_thread(void)
{
	if (pipe2(signal_pipe, O_CLOEXEC) != 0)
		return -1;
	pthread_t t;
	if (pthread_create(&t, NULL, signal_main, NULL) != 0)
		return -1;
	pthread_detach(t);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int stopping(void)
{
	pthread_mutex_lock(&stop_lock);
	int s = stop_signal;
	pthread_mutex_unlock(&stop_lock);
	return s;
}

/* Wait up to seconds for a stop; nonzero if one came. */
static int wait_stop(double seconds)
{
	struct timespec until = clock_wall_deadline(seconds);
	pthread_mutex_lock(&stop_lock);
	while (!stop_signal && pthread_cond_timedwait(&stop_cond, &stop_lock, &until) != ETIMEDOUT)
		;
	int s = stop_signal;
	pthread_mutex_unlock(&stop_lock);
	return s;
}

static int reexec_with_passive_omp(int argc, char **argv)
{
	const char *policy = getenv("OMP_WAIT_POLICY");
	if (policy && *policy)
		return 0;
	if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0)
		return -1;
	char **args = calloc((size_t)argc + 2, sizeof *args);
	if (!args)
		return -1;
	args[0] = (char *)(uintptr_t)"clipd";
	for (int i = 0; i < argc; i++)
		args[i + 1] = argv[i];
	execv("/proc/self/exe", args);
	/* Carry on without it: slower, not wrong. */
	free(args);
	return -1;
}

static int write_port_file(const char *path, unsigned port)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
		return -1;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void listen_text(const struct srv_config *cfg, unsigned port, char *out, size_t len)
{
	char host[HTTP_ADDR_MAX];
	http_addr_text((const struct sockaddr *)&cfg->listen_addr, host);
	if (cfg->listen_addr.ss_family == AF_INET6)
		snprintf(out, len, "[%s]:%u", host, port);
	else
		snprintf(out, len, "%s:%u", host, port);
}

/* The address a person opens in a browser: the listening address, or the
 * loopback one when clipd listens on every address (0.0.0.0, ::). */
static void browse_url(const struct srv_config *cfg, unsigned port, char *out, size_t len)
{
	char host[HTTP_ADDR_MAX];
	int v6 = cfg->listen_addr.ss_family == AF_INET6;
	http_addr_text((const struct sockaddr *)&cfg->listen_addr, host);
	if (!strcmp(host, "0.0.0.0"))
		snprintf(host, sizeof host, "127.0.0.1");
	else if (!strcmp(host, "::"))
		snprintf(host, sizeof host, "::1");
	snprintf(out, len, v6 ? "http://[%s]:%u/" : "http://%s:%u/", host, port);
}

/* --precision (checked by srv_config_parse) as enum clip_precision. */
static int precision(const struct srv_config *cfg)
{
	return strcmp(cfg->precision, "bf16") ? CLIP_PRECISION_FP32 : CLIP_PRECISION_BF16;
}

/* Load the model, open the data directory, start the encoder. */
static int load(struct srv_app *app, const struct srv_config *cfg)
{
	char msg[256];
	clip_error cerr = { 0 };
	store_error serr = { 0 };
	double t0 = clock_mono_s();
	if (cmd_model_load(cfg->model, cfg->weights_cache, (size_t)cfg->max_pixels, precision(cfg), &app->model,
			   &cerr) != 0) {
		log_error("cannot load the model %s: %s", cfg->model, cerr.msg);
		return -1;
	}
	app->dim = clip_model_dim(app->model);
	app->logit_scale = clip_model_logit_scale(app->model);
	log_info("model %s loaded (%s layout, %zu dimensions, %d px, %s on the %s kernel) in %.0f ms", cfg->model,
		 clip_model_layout(app->model), app->dim, clip_model_image_size(app->model),
		 clip_model_precision(app->model), clip_model_kernel(app->model), (clock_mono_s() - t0) * 1e3);
	if (stopping())
		return -1;

	char model_base[4096];
	files_base_name(cfg->model, model_base, sizeof model_base);
	struct catalog_params p = catalog_default_params();
	p.data_dir = cfg->data;
	p.catalog_uri = cfg->catalog;
	p.catalog_read_uri = cfg->catalog_read;
	p.row_cache_mb = (size_t)cfg->row_cache_mb;
	p.model_files = clip_model_files(app->model);
	p.model_name = cfg->model_name && *cfg->model_name ? cfg->model_name : model_base;
	p.model_dir = cfg->model;
	p.model_layout = clip_model_layout(app->model);
	p.model_precision = clip_model_precision(app->model);
	p.index.dim = app->dim;
	if (cfg->index_factory && *cfg->index_factory) {
		idx_error ierr = { 0 };
		if (idx_check_factory(cfg->index_factory, &ierr) != 0) {
			log_error("--index: %s", ierr.msg);
			return -1;
		}
		p.index.factory = cfg->index_factory;
	}
	if (cfg->ivf_threshold)
		p.index.ivf_threshold = (size_t)cfg->ivf_threshold;
	if (cfg->nprobe)
		p.index.nprobe = (int)cfg->nprobe;
	struct catalog_open_report rep;
	memset(&rep, 0, sizeof rep);
	t0 = clock_mono_s();
	if (catalog_open(&p, &app->cat, &rep, &serr) != 0) {
		if (cfg->catalog)
			log_error("cannot open the PostgreSQL catalog (data directory %s): %s", cfg->data, serr.msg);
		else
			log_error("cannot open the data directory %s: %s", cfg->data, serr.msg);
		return -1;
	}
	const struct store_model *m = catalog_model(app->cat);
	snprintf(app->model_name, sizeof app->model_name, "%s", m->name);
	snprintf(app->fingerprint, sizeof app->fingerprint, "%s", m->fingerprint);
	snprintf(app->index_message, sizeof app->index_message, "%s", rep.index_message);
	atomic_store(&app->model_known, 1);   /* publishes the fields above to /info */
	if (rep.schema_before != rep.schema_after)
		log_info("database migrated from schema %d to %d", rep.schema_before, rep.schema_after);
	if (rep.tmp_removed || rep.orphans_removed)
		log_info("removed %zu temporary files and %zu orphan originals left by a crash",
			 rep.tmp_removed, rep.orphans_removed);
	log_info("data directory %s opened in %.0f ms (model %s, fingerprint %.12s, hashing %.0f ms); index: %s",
		 cfg->data, (clock_mono_s() - t0) * 1e3, app->model_name, app->fingerprint, rep.fingerprint_ms,
		 rep.index_message);

	struct srv_encode_params ep = {
		.threads = (int)cfg->encoder_threads,
		.decode_threads = (size_t)cfg->decode_threads,
		.max_pixels = (size_t)cfg->max_pixels,
		.decode_budget = (size_t)cfg->decode_budget,
		.exact_decode = cfg->exact_decode,
		.image_batch = (size_t)cfg->batch_size,
		.image_queue = (size_t)cfg->queue_size,
		.image_wait_ms = (unsigned)cfg->batch_wait_ms,
		.text_batch = (size_t)cfg->text_batch_size,
		.text_queue = (size_t)cfg->text_queue_size,
		.text_wait_ms = (unsigned)cfg->text_batch_wait_ms,
		.text_cache = (size_t)cfg->text_cache,
		.max_wait_s = (double)cfg->timeout,
		.after_text_batch = srv_search_after_text_batch,
		.after_ud = app,
	};
	if (srv_encoder_new(app->model, &ep, &app->enc, msg, sizeof msg) != 0) {
		log_error("%s", msg);
		return -1;
	}
	/* Commits wait on fsync: two threads, so one's disk wait overlaps the
	 * other's work (the catalog serialises the transactions). */
	app->commits = srv_pool_new(2, (size_t)cfg->queue_size, "commit");
	if (!app->commits) {
		log_error("cannot start the commit threads");
		return -1;
	}
	return 0;
}

/* A node of a shared catalog (PostgreSQL) follows its change sequence:
 * woken by NOTIFY, and at least once a second when none comes (a lost
 * connection, a missed notification), it applies what others committed to
 * its index. Failures are logged at most every 30 s and retried. */
struct follower {
	catalog *cat;
	pthread_t thread;
	atomic_int stop;
	int running;
};

static void *follow_main(void *ud)
{
	struct follower *f = ud;
	double last_warn = -1e9;
	while (!atomic_load(&f->stop)) {
		store_error err = { 0 };
		int w = catalog_wait_changes(f->cat, 1000, &err);
		if (atomic_load(&f->stop))
			break;
		if (w < 0) {
			if (clock_mono_s() - last_warn >= 30) {
				log_warn("following the catalog: %s (polling every second)", err.msg);
				last_warn = clock_mono_s();
			}
			struct timespec ts = { 1, 0 };
			nanosleep(&ts, NULL);
		}
		size_t applied = 0;
		/* what the primary has committed (the lag /readyz reports), then
		 * what the replica can give */
		int looked = catalog_look_latest(f->cat, &err) == 0;
		if (!looked && clock_mono_s() - last_warn >= 30) {
			log_warn("following the catalog: %s", err.msg);
			last_warn = clock_mono_s();
		}
		if (catalog_follow(f->cat, looked, &applied, &err) != 0) {
			if (clock_mono_s() - last_warn >= 30) {
				log_warn("following the catalog: %s", err.msg);
				last_warn = clock_mono_s();
			}
		} else if (applied) {
			log_debug("applied %zu changes from the catalog (now at change %llu)", applied,
				  (unsigned long long)catalog_applied_seq(f->cat));
		}
	}
	return NULL;
}

static void follow_stop(struct follower *f)
{
	if (!f->running)
		return;
	atomic_store(&f->stop, 1);
	pthread_join(f->thread, NULL);
	f->running = 0;
}

static void save_index(struct srv_app *app, const char *why)
{
	store_error err = { 0 };
	uint64_t changes = catalog_unsaved_changes(app->cat);
	double t0 = clock_mono_s();
	if (catalog_save_index(app->cat, &err) != 0)
		log_error("saving the index: %s", err.msg);
	else
		log_info("index saved (%llu changes, %s) in %.0f ms", (unsigned long long)changes, why,
			 (clock_mono_s() - t0) * 1e3);
}

static int run_serve(const struct cli_command *info, int argc, char **argv)
{
	reexec_with_passive_omp(argc, argv);

	struct srv_config cfg;
	int rc = srv_config_parse(info, argc, argv, &cfg);
	if (rc != CLI_OK)
		return rc == CLI_HELP ? 0 : 2;
	log_set_level((enum log_level)log_level_parse(cfg.log_level));

	int status = 1;
	struct srv_app app;
	memset(&app, 0, sizeof app);
	struct follower follower;
	memset(&follower, 0, sizeof follower);
	struct http_keys *keys = NULL;
	app.cfg = &cfg;
	app.started = clock_mono_s();
	app.warning = cfg.model_warning && *cfg.model_warning ? cfg.model_warning : NULL;

	/* a precision this CPU cannot run fails now, before anything starts */
	struct clip_params cp = cmd_model_params((size_t)cfg.max_pixels, precision(&cfg));
	clip_error cerr = { 0 };
	if (clip_precision_check(&cp, &cerr) != 0) {
		log_error("--precision %s: %s", cfg.precision, cerr.msg);
		goto out;
	}

	if (start_signal_thread() != 0) {
		log_error("cannot set up signal handling: %s", strerror(errno));
		goto out;
	}

	if (cfg.api_key_file) {
		char msg[300];
		if (http_keys_load(cfg.api_key_file, &keys, msg, sizeof msg) != 0) {
			log_error("--api-key-file: %s", msg);
			goto out;
		}
		app.keys = keys;
		log_info("API keys: %zu loaded; every API route needs one", http_keys_count(keys));
	}
	if (app.warning)
		log_warn("%s", app.warning);

	app.metrics = http_metrics_new(srv_routes, ROUTE_COUNT);
	if (!app.metrics) {
		log_error("out of memory");
		goto out;
	}
	struct http_server_params hp = http_default_params();
	hp.addr = cfg.listen_addr;
	hp.addr_len = cfg.listen_len;
	hp.threads = (unsigned)cfg.threads;
	hp.max_connections = (unsigned)cfg.max_connections;
	hp.max_connections_per_ip = (unsigned)cfg.max_connections_per_ip;
	hp.timeout_s = (unsigned)cfg.timeout;
	hp.max_body = (size_t)cfg.max_body;
	hp.max_files = (size_t)cfg.max_files;
	hp.max_uri = srv_config_max_uri(&cfg);
	hp.keys = keys;
	hp.rate_limit = cfg.rate_limit;
	hp.rate_burst = (double)cfg.rate_burst;
	hp.proxies = cfg.proxies;
	hp.n_proxies = cfg.n_proxies;
	hp.cors_origins = cfg.cors_origins.items;
	hp.n_cors_origins = cfg.cors_origins.n;
	hp.metrics = app.metrics;
	hp.assets = clipd_www_assets;
	hp.routes = srv_routes;
	hp.n_routes = ROUTE_COUNT;
	hp.handler = srv_handle;
	hp.ready = srv_ready;
	hp.ud = &app;
	char msg[256];
	if (http_server_start(&hp, &app.http, msg, sizeof msg) != 0) {
		log_error("cannot listen on %s: %s", cfg.listen, msg);
		goto out;
	}
	char where[HTTP_ADDR_MAX + 16];
	listen_text(&cfg, http_server_port(app.http), where, sizeof where);
	log_info("listening on %s", where);
	if (cfg.port_file && write_port_file(cfg.port_file, http_server_port(app.http)) != 0)
		log_error("cannot write the port file %s: %s", cfg.port_file, strerror(errno));

	if (load(&app, &cfg) != 0) {
		if (!stopping())
			goto shutdown;
		status = 0;
		goto shutdown;
	}
	if (srv_libraries_start(&app, cfg.libraries, cfg.n_libraries, &app.libraries, msg, sizeof msg) != 0) {
		log_error("%s", msg);
		goto shutdown;
	}
	if (catalog_shared(app.cat)) {
		follower.cat = app.cat;
		atomic_init(&follower.stop, 0);
		if (pthread_create(&follower.thread, NULL, follow_main, &follower) != 0) {
			log_error("cannot start the thread that follows the catalog");
			goto shutdown;
		}
		follower.running = 1;
	}
	atomic_store(&app.ready, 1);
	char url[HTTP_ADDR_MAX + 32];
	browse_url(&cfg, http_server_port(app.http), url, sizeof url);
	log_info("ready (clipd %s, %lld HTTP threads, %zu libraries): open %s in a browser", CLIPD_VERSION, cfg.threads,
		 cfg.n_libraries, url);

	double last_save = clock_mono_s();
	while (!wait_stop(1.0)) {
		uint64_t changes = catalog_unsaved_changes(app.cat);
		if (changes >= (uint64_t)cfg.save_changes
		    || (changes > 0 && clock_mono_s() - last_save >= (double)cfg.save_interval)) {
			save_index(&app, changes >= (uint64_t)cfg.save_changes ? "changes" : "timer");
			last_save = clock_mono_s();
		}
	}
	status = 0;

shutdown:
	http_server_quiesce(app.http);
	/* Requests in flight finish; new ones on kept-alive connections get
	 * 503 not_ready (and /readyz says so), so none reaches the encoder
	 * once it is gone. */
	atomic_store(&app.ready, 0);
	if (http_server_wait_idle(app.http, (double)cfg.timeout) != 0)
		log_warn("requests still in flight after %lld s", cfg.timeout);
	/* A scan stops between files, its images in the encoder committed. */
	srv_libraries_stop(app.libraries);
	app.libraries = NULL;
	/* Every queued job runs to its end (and resumes its request): the
	 * encoder's callbacks feed the commit pool, so it stops last. */
	srv_encoder_free(app.enc);
	app.enc = NULL;
	srv_pool_stop(app.commits);
	app.commits = NULL;
	http_server_wait_idle(app.http, 5.0);
	http_server_stop(app.http);
	app.http = NULL;
	follow_stop(&follower);
	if (app.cat) {
		if (catalog_unsaved_changes(app.cat))
			save_index(&app, "shutdown");
		catalog_close(app.cat);
		app.cat = NULL;
	}
	if (status == 0)
		log_info("stopped");
out:
	if (app.http) {
		http_server_quiesce(app.http);
		http_server_stop(app.http);
	}
	srv_libraries_stop(app.libraries);
	srv_encoder_free(app.enc);
	srv_pool_stop(app.commits);
	catalog_close(app.cat);
	clip_model_free(app.model);
	http_metrics_free(app.metrics);
	http_keys_free(keys);
	srv_config_free(&cfg);
	return status;
}

const struct clipd_command cmd_serve = {
	{ "serve", "run the HTTP daemon", "--model DIR --data DIR [OPTIONS]",
	  "Serves the REST API (see GET /openapi.json) and the web front-end at /. Logs one line per "
	  "request to stderr. SIGTERM or SIGINT stops accepting, finishes requests in flight, saves "
	  "the index and exits 0; a second signal exits at once." },
	run_serve,
};
