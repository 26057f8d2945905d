/*
 * clipd import: upload files and folders to a clipd server (a client; the
 * photos are on this machine, the server elsewhere).
 *
 * The walk collects the files first (hidden names skipped, symbolic links
 * to folders not followed), so that progress can say "of how many". Then
 * --jobs workers, each with its own libcurl handle (one kept-alive
 * connection each), take files in turn: read, hash, ask the server for the
 * digest (GET /images?sha256=HEX: what it has is not sent again, so a
 * rerun after an interruption sends only what is missing), and upload the
 * rest as multipart/form-data with the metadata {"source_path": PATH
 * relative to the import root} merged over --metadata. A refused
 * connection, 429 and 503 are retried with backoff (Retry-After when the
 * server gives one), a bounded number of times.
 *
 * Exit status: 0 when every file was stored or was already there; 1 when
 * any was not (unsupported, undecodable, too large, failed); 2 for a usage
 * error, an unreachable server or a refused API key.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "commands.h"
#include "dbuf.h"
#include "sha256.h"
#include "srv_json.h"

#define MAX_ATTEMPTS 5          /* tries of one request before the file fails */
#define MAX_BACKOFF_S 8.0
#define MAX_RETRY_AFTER_S 30.0
#define MAX_RESPONSE (1u << 20) /* bytes of a response kept */

enum outcome { OUT_STORED, OUT_DUPLICATE, OUT_UNSUPPORTED, OUT_UNDECODABLE, OUT_TOO_LARGE, OUT_FAILED, OUT_COUNT };
static const char *const outcome_names[OUT_COUNT] = {
	"stored", "duplicate", "unsupported", "undecodable", "too large", "failed",
};

struct file {
	char *path;        /* to open */
	char *rel;         /* relative to its import root: the metadata's source_path */
};

struct import {
	const char *url;               /* without a trailing '/' */
	char auth[300];                /* "Authorization: Bearer KEY", or "" */
	cJSON *metadata;               /* --metadata, an object (may be empty) */
	int dry_run;
	long long max_body;            /* the server's, from /info */
	struct file *files;
	size_t n, cap;
	atomic_size_t next;            /* the next file to take */
	atomic_size_t done;
	atomic_size_t counts[OUT_COUNT];
	atomic_uint_fast64_t bytes_sent, images_sent;
	atomic_int fatal;              /* a refused key: stop everything (exit 2) */
	pthread_mutex_t print_lock;
	char fatal_msg[512];
	int tty;
};

/* ---- the walk ------------------------------------------------------------------ */

static int add_file(struct import *im, const char *path, const char *rel)
{
	if (im->n == im->cap) {
		size_t nc = im->cap ? im->cap * 2 : 256;
		struct file *f = realloc(im->files, nc * sizeof *f);
		if (!f)
			return -1;
		im->files = f;
		im->cap = nc;
	}
	struct file *f = &im->files[im->n];
	if (!(f->path = strdup(path)) || !(f->rel = strdup(rel))) {
		free(f->path);
		return -1;
	}
	im->n++;
	return 0;
}

/* A folder, iteratively: rel paths relative to root. */
static int walk_dir(struct import *im, const char *root)
{
	size_t cap = 64, n = 0;
	char **stack = malloc(cap * sizeof *stack);
	if (!stack || !(stack[n++] = strdup("")))
		return -1;
	int rc = 0;
	while (n > 0 && rc == 0) {
		char *rel = stack[--n];
		char dir[8192];
		snprintf(dir, sizeof dir, "%.4000s%s%.4000s", root, rel[0] ? "/" : "", rel);
		DIR *d = opendir(dir);
		if (!d) {
			fprintf(stderr, "clipd import: cannot read the folder %s: %s (skipped)\n", dir, strerror(errno));
			free(rel);
			continue;
		}
		struct dirent *e;
		while (rc == 0 && (e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char child[8192], full[8192];
			snprintf(child, sizeof child, "%.4000s%s%.255s", rel, rel[0] ? "/" : "", e->d_name);
			snprintf(full, sizeof full, "%.4000s/%.4000s", root, child);
			struct stat sb;
			if (lstat(full, &sb) != 0)
				continue;
			if (S_ISDIR(sb.st_mode)) {
				if (n == cap) {
					char **ns = realloc(stack, cap * 2 * sizeof *ns);
					if (!ns) {
						rc = -1;
						break;
					}
					stack = ns;
					cap *= 2;
				}
				if (!(stack[n] = strdup(child)))
					rc = -1;
				else
					n++;
			} else if (S_ISLNK(sb.st_mode)) {
				struct stat t;
				if (stat(full, &t) == 0 && S_ISREG(t.st_mode))
					rc = add_file(im, full, child);   /* a link to a file is that file */
			} else if (S_ISREG(sb.st_mode)) {
				rc = add_file(im, full, child);
			}
		}
		closedir(d);
		free(rel);
	}
	while (n > 0)
		free(stack[--n]);
	free(stack);
	return rc;
}

static int walk_arg(struct import *im, const char *arg)
{
	struct stat sb;
	if (stat(arg, &sb) != 0) {
		fprintf(stderr, "clipd import: %s: %s\n", arg, strerror(errno));
		return -2;
	}
	if (S_ISDIR(sb.st_mode)) {
		char root[4096];
		snprintf(root, sizeof root, "%s", arg);
		size_t l = strlen(root);
		while (l > 1 && root[l - 1] == '/')
			root[--l] = 0;
		return walk_dir(im, root);
	}
	const char *slash = strrchr(arg, '/');
	return add_file(im, arg, slash ? slash + 1 : arg);
}

/* ---- HTTP ---------------------------------------------------------------------- */

struct response {
	long status;
	struct dbuf body;
	double retry_after;            /* seconds, 0: none */
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct response *r = ud;
	size_t n = size * nmemb;
	if (r->body.len + n <= MAX_RESPONSE)
		dbuf_append(&r->body, data, n);
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct response *r = ud;
	size_t n = size * nmemb;
	if (n > 12 && !strncasecmp(data, "Retry-After:", 12)) {
		double v = strtod(data + 12, NULL);
		if (v > 0 && v < 1e6)
			r->retry_after = v;
	}
	return n;
}

/* One request, retried on a refused connection, 429 and 503. 0 with the
 * response, or -1 with a message (the server cannot be reached). */
static int request(struct import *im, CURL *h, const char *method, const char *url, curl_mime *form,
		   struct response *resp, char *msg, size_t msglen)
{
	double backoff = 0.25;
	for (int attempt = 1;; attempt++) {
		dbuf_free(&resp->body);
		resp->body = (struct dbuf)DBUF_INIT(MAX_RESPONSE);
		resp->status = 0;
		resp->retry_after = 0;
		struct curl_slist *headers = NULL;
		if (im->auth[0])
			headers = curl_slist_append(headers, im->auth);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
		curl_easy_setopt(h, CURLOPT_MIMEPOST, form);
		if (!form)
			curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		(void)method;
		CURLcode cc = curl_easy_perform(h);
		curl_slist_free_all(headers);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
		int retry;
		if (cc != CURLE_OK) {
			snprintf(msg, msglen, "%s: %s", url, curl_easy_strerror(cc));
			retry = 1;
		} else {
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
			retry = resp->status == 429 || resp->status == 503;
			snprintf(msg, msglen, "%s: HTTP %ld", url, resp->status);
		}
		if (!retry)
			return 0;
		if (attempt == MAX_ATTEMPTS || atomic_load(&im->fatal))
			return cc == CURLE_OK ? 0 : -1;
		double wait = resp->retry_after > 0 ? fmin(resp->retry_after, MAX_RETRY_AFTER_S) : backoff;
		backoff = fmin(backoff * 2, MAX_BACKOFF_S);
		usleep((useconds_t)(wait * 1e6));
	}
}

/* The "code" of an error body, or "". */
static void error_code(const struct response *r, char *code, size_t len, char *message, size_t mlen)
{
	code[0] = message[0] = 0;
	cJSON *root = r->body.data ? cJSON_ParseWithLength(r->body.data, r->body.len) : NULL;
	cJSON *e = cJSON_GetObjectItem(root, "error");
	if (!e) {
		/* a multipart answer: items[0] */
		cJSON *items = cJSON_GetObjectItem(root, "items");
		e = cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "error");
	}
	const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(e, "code"));
	const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(e, "message"));
	snprintf(code, len, "%s", c ? c : "");
	snprintf(message, mlen, "%s", m ? m : "");
	cJSON_Delete(root);
}

/* Stop every worker: the key was refused (what for, and the status). */
static void set_fatal(struct import *im, const char *what, long status)
{
	pthread_mutex_lock(&im->print_lock);
	if (!atomic_load(&im->fatal)) {
		snprintf(im->fatal_msg, sizeof im->fatal_msg, "the server at %.300s refused the API key%s (HTTP %ld): %s",
			 im->url, what, status, status == 403 ? "it needs a write key" : "check --api-key-file");
		atomic_store(&im->fatal, 1);
	}
	pthread_mutex_unlock(&im->print_lock);
}

static void report(struct import *im, const struct file *f, enum outcome o, const char *why)
{
	atomic_fetch_add(&im->counts[o], 1);
	atomic_fetch_add(&im->done, 1);
	if (o == OUT_STORED || o == OUT_DUPLICATE)
		return;
	pthread_mutex_lock(&im->print_lock);
	if (im->tty)
		fprintf(stderr, "\r\033[K");
	fprintf(stderr, "%s: %s%s%s\n", f->path, outcome_names[o], why && *why ? ": " : "", why ? why : "");
	pthread_mutex_unlock(&im->print_lock);
}

/* ---- one file -------------------------------------------------------------------- */

static int read_file(const char *path, unsigned char **out, size_t *len, long long max, char *why, size_t wlen)
{
	*out = NULL;
	*len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(why, wlen, "%s", fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (max > 0 && sb.st_size > max) {
		close(fd);
		snprintf(why, wlen, "%lld bytes, over the server's limit of %lld", (long long)sb.st_size, max);
		return -2;
	}
	size_t n = (size_t)sb.st_size, got = 0;
	unsigned char *buf = malloc(n ? n : 1);
	while (buf && got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!buf || got != n) {
		free(buf);
		snprintf(why, wlen, "%s", buf ? "the file changed while it was read" : "out of memory");
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

static enum outcome status_outcome(long status, const char *code)
{
	if (status == 201)
		return OUT_STORED;
	if (status == 200)
		return OUT_DUPLICATE;
	if (status == 415)
		return OUT_UNSUPPORTED;
	if (status == 422)
		return OUT_UNDECODABLE;
	if (status == 413 || !strcmp(code, "image_too_large") || !strcmp(code, "body_too_large"))
		return OUT_TOO_LARGE;
	return OUT_FAILED;
}

static void import_file(struct import *im, CURL *h, const struct file *f)
{
	unsigned char *data = NULL;
	size_t len = 0;
	char why[600], url[8192];
	int rc = read_file(f->path, &data, &len, im->max_body, why, sizeof why);
	if (rc != 0) {
		report(im, f, rc == -2 ? OUT_TOO_LARGE : OUT_FAILED, why);
		return;
	}
	char sha[SHA256_HEX];
	sha256_hex(data, len, sha);
	struct response resp = { 0, DBUF_INIT(MAX_RESPONSE), 0 };
	snprintf(url, sizeof url, "%s/images?sha256=%s", im->url, sha);
	if (request(im, h, "GET", url, NULL, &resp, why, sizeof why) != 0) {
		report(im, f, OUT_FAILED, why);
		goto out;
	}
	if (resp.status == 401 || resp.status == 403) {
		set_fatal(im, "", resp.status);
		goto out;
	}
	int have = 0;
	if (resp.status == 200) {
		cJSON *root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
		have = cJSON_GetArraySize(cJSON_GetObjectItem(root, "items")) > 0;
		cJSON_Delete(root);
	}
	if (have) {
		report(im, f, OUT_DUPLICATE, NULL);
		goto out;
	}
	if (im->dry_run) {
		pthread_mutex_lock(&im->print_lock);
		printf("would upload %s (%zu bytes)\n", f->path, len);
		pthread_mutex_unlock(&im->print_lock);
		atomic_fetch_add(&im->done, 1);
		goto out;
	}
	/* metadata: --metadata with source_path */
	cJSON *meta = cJSON_Duplicate(im->metadata, 1);
	cJSON_DeleteItemFromObject(meta, "source_path");
	/* a file name is bytes, JSON is UTF-8: an invalid sequence as U+FFFD,
	 * as the server shows a library path (else every run fails the file) */
	char *rel = srv_utf8_clean(f->rel, strlen(f->rel));
	cJSON_AddStringToObject(meta, "source_path", rel ? rel : "");
	free(rel);
	char *meta_text = cJSON_PrintUnformatted(meta);
	cJSON_Delete(meta);
	const char *slash = strrchr(f->path, '/');
	curl_mime *form = curl_mime_init(h);
	curl_mimepart *part = curl_mime_addpart(form);
	curl_mime_name(part, "metadata");
	curl_mime_data(part, meta_text ? meta_text : "{}", CURL_ZERO_TERMINATED);
	curl_mime_type(part, "application/json");
	part = curl_mime_addpart(form);
	curl_mime_name(part, "file");
	curl_mime_filename(part, slash ? slash + 1 : f->path);
	curl_mime_data(part, (const char *)data, len);
	curl_mime_type(part, "application/octet-stream");
	snprintf(url, sizeof url, "%s/images", im->url);
	rc = request(im, h, "POST", url, form, &resp, why, sizeof why);
	curl_mime_free(form);
	free(meta_text);
	curl_easy_setopt(h, CURLOPT_MIMEPOST, NULL);
	if (rc != 0) {
		report(im, f, OUT_FAILED, why);
		goto out;
	}
	atomic_fetch_add(&im->bytes_sent, len);
	atomic_fetch_add(&im->images_sent, 1);
	if (resp.status == 401 || resp.status == 403) {
		set_fatal(im, " for uploads", resp.status);
		goto out;
	}
	/* a multipart upload answers 200 with a status per file */
	long status = resp.status;
	char code[64], message[300];
	error_code(&resp, code, sizeof code, message, sizeof message);
	if (status == 200) {
		cJSON *root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
		cJSON *st = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "items"), 0), "status");
		status = cJSON_IsNumber(st) ? (long)st->valuedouble : 0;
		cJSON_Delete(root);
	}
	enum outcome o = status_outcome(status, code);
	if (o == OUT_FAILED && !message[0])
		snprintf(message, sizeof message, "HTTP %ld", status);
	report(im, f, o, message);
out:
	dbuf_free(&resp.body);
	free(data);
}

static void *worker(void *arg)
{
	struct import *im = arg;
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;   /* the other workers take its files */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 600L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "clipd-import/" CLIPD_VERSION);
	for (;;) {
		if (atomic_load(&im->fatal))
			break;
		size_t i = atomic_fetch_add(&im->next, 1);
		if (i >= im->n)
			break;
		import_file(im, h, &im->files[i]);
	}
	curl_easy_cleanup(h);
	return NULL;
}

/* ---- progress ---------------------------------------------------------------------- */

static void progress(struct import *im, double t0, int final)
{
	size_t done = atomic_load(&im->done);
	double secs = clock_mono_s() - t0;
	double mb = (double)atomic_load(&im->bytes_sent) / 1e6;
	double imgs = (double)atomic_load(&im->images_sent);
	double rate = secs > 0 ? (double)done / secs : 0;
	size_t failures = atomic_load(&im->counts[OUT_FAILED]) + atomic_load(&im->counts[OUT_UNSUPPORTED]) +
			  atomic_load(&im->counts[OUT_UNDECODABLE]) + atomic_load(&im->counts[OUT_TOO_LARGE]);
	char eta[32] = "?";
	if (rate > 0 && done < im->n)
		snprintf(eta, sizeof eta, "%lld s", (long long)fmin((double)(im->n - done) / rate, 1e12));
	else if (done >= im->n)
		snprintf(eta, sizeof eta, "0 s");
	pthread_mutex_lock(&im->print_lock);
	fprintf(stderr, "%s%zu of %zu files, %.1f MB/s, %.1f images/s, %s left, %zu not stored%s",
		im->tty ? "\r\033[K" : "", done, im->n, secs > 0 ? mb / secs : 0, secs > 0 ? imgs / secs : 0, eta,
		failures, im->tty && !final ? "" : "\n");
	fflush(stderr);
	pthread_mutex_unlock(&im->print_lock);
}

/* ---- the command ---------------------------------------------------------------------- */

/* The first key of an API key file (the server's format: KEY [scope]). */
static int read_key(const char *path, char *key, size_t len, char *msg, size_t msglen)
{
	FILE *fp = fopen(path, "r");
	if (!fp) {
		snprintf(msg, msglen, "--api-key-file %s: %s", path, strerror(errno));
		return -1;
	}
	char line[1024];
	key[0] = 0;
	while (!key[0] && fgets(line, sizeof line, fp)) {
		char *p = line + strspn(line, " \t");
		if (*p == '#' || *p == '\n' || !*p)
			continue;
		size_t n = strcspn(p, " \t\r\n");
		if (n >= len || n > 256) {
			fclose(fp);
			snprintf(msg, msglen, "--api-key-file %s: the key is too long", path);
			return -1;
		}
		memcpy(key, p, n);
		key[n] = 0;
	}
	fclose(fp);
	if (!key[0]) {
		snprintf(msg, msglen, "--api-key-file %s: no key in the file", path);
		return -1;
	}
	return 0;
}

/* GET /info: the server is there, the key is good, its body limit. 0, or 2
 * (printed). */
static int probe(struct import *im)
{
	CURL *h = curl_easy_init();
	if (!h) {
		fprintf(stderr, "clipd import: cannot start libcurl\n");
		return 2;
	}
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	struct response resp = { 0, DBUF_INIT(MAX_RESPONSE), 0 };
	char url[4200], msg[600];
	snprintf(url, sizeof url, "%s/info", im->url);
	int rc = request(im, h, "GET", url, NULL, &resp, msg, sizeof msg);
	int out = 0;
	if (rc != 0) {
		fprintf(stderr, "clipd import: cannot reach the server: %s\n", msg);
		out = 2;
	} else if (resp.status == 401 || resp.status == 403) {
		fprintf(stderr, "clipd import: the server at %s refused the API key (HTTP %ld): check --api-key-file\n",
			im->url, resp.status);
		out = 2;
	} else if (resp.status != 200) {
		fprintf(stderr, "clipd import: %s answered HTTP %ld: is it a clipd server?\n", url, resp.status);
		out = 2;
	} else {
		cJSON *root = cJSON_ParseWithLength(resp.body.data ? resp.body.data : "", resp.body.len);
		cJSON *mb = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "limits"), "max_body");
		if (cJSON_IsNumber(mb) && mb->valuedouble > 0)
			im->max_body = (long long)mb->valuedouble - 64 * 1024;   /* room for the form around it */
		cJSON_Delete(root);
	}
	dbuf_free(&resp.body);
	curl_easy_cleanup(h);
	return out;
}

static int run_import(const struct cli_command *info, int argc, char **argv)
{
	char *url = NULL, *key_file = NULL, *metadata = NULL;
	long long jobs = 4;
	int dry_run = 0;
	const struct cli_option opts[] = {
		{ "url", CLI_STRING, &url, "URL", "the clipd server (http://127.0.0.1:8080)", 0, 0 },
		{ "api-key-file", CLI_STRING, &key_file, "FILE", "API keys, one per line as serve reads them: the first is sent (a write key)", 0, 0 },
		{ "metadata", CLI_STRING, &metadata, "JSON", "a JSON object stored with every image (with source_path)", 0, 0 },
		{ "jobs", CLI_INT, &jobs, "N", "uploads at once, each on its own connection (4)", 1, 64 },
		{ "dry-run", CLI_FLAG, &dry_run, NULL, "say what would be uploaded; send nothing", 0, 0 },
		{ 0 },
	};
	struct cli_args args;
	int rc = cli_parse(info, opts, argc, argv, &args);
	if (rc != CLI_OK)
		return rc == CLI_HELP ? 0 : 2;
	struct import *im = calloc(1, sizeof *im);
	int status = 2;
	if (!im) {
		fprintf(stderr, "clipd import: out of memory\n");
		cli_args_free(&args);
		return 2;
	}
	pthread_mutex_init(&im->print_lock, NULL);
	im->dry_run = dry_run;
	im->tty = isatty(STDERR_FILENO);
	char base[4096];
	snprintf(base, sizeof base, "%s", url && *url ? url : "http://127.0.0.1:8080");
	size_t bl = strlen(base);
	while (bl > 0 && base[bl - 1] == '/')
		base[--bl] = 0;
	im->url = base;
	if (strncmp(base, "http://", 7) && strncmp(base, "https://", 8)) {
		cli_usage_error(info, "--url: '%s' is not an http:// or https:// URL", base);
		goto out;
	}
	if (args.n_positional == 0) {
		cli_usage_error(info, "name at least one file or folder to import");
		goto out;
	}
	im->metadata = metadata ? cJSON_Parse(metadata) : cJSON_CreateObject();
	if (!cJSON_IsObject(im->metadata)) {
		cli_usage_error(info, "--metadata: must be a JSON object, e.g. '{\"album\": \"2023\"}'");
		goto out;
	}
	if (key_file) {
		char key[300], msg[4400];
		if (read_key(key_file, key, sizeof key, msg, sizeof msg) != 0) {
			cli_usage_error(info, "%s", msg);
			goto out;
		}
		snprintf(im->auth, sizeof im->auth, "Authorization: Bearer %s", key);
	}
	for (size_t i = 0; i < args.n_positional; i++) {
		int w = walk_arg(im, args.positional[i]);
		if (w == -2)
			goto out;
		if (w != 0) {
			fprintf(stderr, "clipd import: out of memory walking %s\n", args.positional[i]);
			goto out;
		}
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fprintf(stderr, "clipd import: cannot start libcurl\n");
		goto out;
	}
	if ((status = probe(im)) != 0) {
		curl_global_cleanup();
		goto out;
	}
	double t0 = clock_mono_s();
	size_t nw = (size_t)jobs < im->n ? (size_t)jobs : im->n;
	pthread_t threads[64];
	size_t started = 0;
	for (; started < nw; started++)
		if (pthread_create(&threads[started], NULL, worker, im) != 0)
			break;
	if (nw && !started) {
		fprintf(stderr, "clipd import: cannot start the upload threads\n");
		curl_global_cleanup();
		status = 2;
		goto out;
	}
	double every = im->tty ? 0.5 : 5.0, last = t0;
	while (atomic_load(&im->done) < im->n && !atomic_load(&im->fatal)) {
		usleep(100000);
		if (clock_mono_s() - last >= every) {
			progress(im, t0, 0);
			last = clock_mono_s();
		}
	}
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	curl_global_cleanup();
	if (atomic_load(&im->fatal)) {
		fprintf(stderr, "%sclipd import: %s\n", im->tty ? "\r\033[K" : "", im->fatal_msg);
		status = 2;
		goto out;
	}
	if (im->n)
		progress(im, t0, 1);
	size_t not_stored = 0;
	printf("%s%zu files: ", dry_run ? "dry run: " : "", im->n);
	for (int o = 0; o < OUT_COUNT; o++) {
		size_t c = atomic_load(&im->counts[o]);
		if (o != OUT_STORED && o != OUT_DUPLICATE)
			not_stored += c;
		printf("%s%zu %s", o ? ", " : "", c, outcome_names[o]);
	}
	if (dry_run)
		printf(", %zu to upload", im->n - atomic_load(&im->counts[OUT_DUPLICATE]) - not_stored);
	printf("\n");
	status = not_stored ? 1 : 0;
out:
	if (im->metadata)
		cJSON_Delete(im->metadata);
	for (size_t i = 0; i < im->n; i++) {
		free(im->files[i].path);
		free(im->files[i].rel);
	}
	free(im->files);
	pthread_mutex_destroy(&im->print_lock);
	free(im);
	cli_args_free(&args);
	return status;
}

const struct clipd_command cmd_import = {
	{ "import", "upload files and folders to a clipd server",
	  "[--url URL] [--api-key-file F] [--metadata JSON] [--jobs N] [--dry-run] PATH...",
	  "Walks the files and folders named (hidden names skipped), skips what the server already has "
	  "(by SHA-256, without sending the bytes), and uploads the rest over --jobs kept-alive connections, "
	  "each with its path relative to the folder named in the metadata key source_path. Refused "
	  "connections, 429 and 503 are retried with backoff. A progress line on a terminal (a line every "
	  "5 s otherwise), then a summary by outcome. Exit 0: every file stored or already there; 1: some "
	  "were not; 2: a usage error, an unreachable server or a refused API key. Rerun after an "
	  "interruption, it uploads only what is missing." },
	run_import,
};
