/*
 * Photo libraries: the scanner thread, its walk, the indexing of pending
 * files through the upload path's encoder, and the status it keeps. See
 * srv_library.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "sha256.h"
#include "srv_app.h"
#include "srv_json.h"
#include "srv_library.h"
#include "libpath.h"
#include "text.h"

#define MARK_BATCH 256          /* paths marked per transaction */
#define LOOK_BATCH 256          /* paths walked whose records are read at once */
#define PENDING_BATCH 64        /* pending files read from the catalog at a time */
#define COMMIT_BATCH 64         /* outcomes per commit at most */
#define WINDOW_BYTES (64u << 20) /* bytes of files held by images in the encoder */
#define MAX_KEEP 64             /* unreadable directories remembered per scan */
#define MAX_RETRIES 3           /* an image the encoder refused (queue full) */
#define LOG_SYMLINKS 20         /* symbolic links named in the log per scan */

struct lib {
	struct srv_library_spec spec;
	struct srv_library_status st;   /* under the set's lock */
	int requested;
	double next_due;                /* clock_mono_s(); INFINITY: only on request */
	double index_started;
};

struct job;

struct srv_libraries {
	struct srv_app *app;
	struct lib *libs;
	size_t n;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;            /* a request, a stop, a finished job */
	int stop;
	struct job *done;               /* finished jobs (a list, newest first) */
	size_t inflight, inflight_bytes;
};

/* A file in the encoder. */
struct job {
	struct srv_image_job job;
	struct srv_libraries *set;
	struct catalog_lib_item item;   /* item.path, .sha256 point into this job */
	char *path;
	char sha[SHA256_HEX];
	unsigned char *bytes;
	size_t len;
	float *vec;
	int retries;
	struct job *next;
};

/* Outcomes waiting for a commit, with the strings they own. */
struct batch {
	struct catalog_lib_item items[COMMIT_BATCH];
	char *paths[COMMIT_BATCH];
	char shas[COMMIT_BATCH][SHA256_HEX];
	char msgs[COMMIT_BATCH][SRV_IMAGE_MSG_MAX];
	struct job *jobs[COMMIT_BATCH];   /* the job behind an item, freed after the commit */
	size_t n;
};

/* One scan's state. */
struct scan {
	struct srv_libraries *set;
	struct lib *lib;
	int64_t scan_id;
	char *keep[MAX_KEEP];
	size_t n_keep;
	int keep_overflow;              /* more unreadable directories than remembered: remove nothing */
	struct store_lib_mark marks[MARK_BATCH];
	char *mark_paths[MARK_BATCH];
	size_t n_marks;
	char *look_paths[LOOK_BATCH];   /* files walked, their records not read yet */
	struct stat look_sb[LOOK_BATCH];
	struct store_lib_file look_out[LOOK_BATCH];
	unsigned char look_found[LOOK_BATCH];
	size_t n_look;
	struct batch batch;
	struct store_lib_scan_figures fig;
	int failed;                     /* a catalog error: the scan ends without removing anything */
	int have_data;                  /* clipd's data directory (its device and inode), never walked */
	dev_t data_dev;
	ino_t data_ino;
	double last_counts;
};

static int stopping(struct srv_libraries *set)
{
	pthread_mutex_lock(&set->lock);
	int s = set->stop;
	pthread_mutex_unlock(&set->lock);
	return s;
}

static int64_t mtime_ns_of(const struct stat *sb)
{
	return (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Was the file modified less than settle seconds from now, on either
 * side (a network share's clock may run a little ahead)? A file dated
 * further ahead (a camera's wrong clock, an archive's time stamps) has
 * settled: it would otherwise wait for the next scan for ever. */
static int settling(const struct stat *sb, long long settle)
{
	int64_t age = now_ns() - mtime_ns_of(sb), window = settle * 1000000000LL;
	return age < window && age > -window;
}

/* A status update under the lock. */
#define STATUS(scan, stmt) do { \
	pthread_mutex_lock(&(scan)->set->lock); \
	struct srv_library_status *st_ = &(scan)->lib->st; \
	stmt; \
	pthread_mutex_unlock(&(scan)->set->lock); \
} while (0)

static void refresh_counts(struct srv_libraries *set, struct lib *lib)
{
	struct store_lib_counts c;
	struct store_library last;
	store_error err = { 0 };
	int have_counts = catalog_library_counts(set->app->cat, lib->spec.name, &c, &err) == 0;
	int have_last = catalog_library_get(set->app->cat, lib->spec.name, &last, &err) == 0;
	pthread_mutex_lock(&set->lock);
	if (have_counts) {
		lib->st.images = c.images;
		lib->st.files_failed = c.failed;
		lib->st.bytes = c.bytes;
	}
	if (have_last) {
		free(lib->st.last.root);
		lib->st.last = last;
		lib->st.last.root = NULL;
	}
	pthread_mutex_unlock(&set->lock);
	if (have_last)
		free(last.root);
}

/* ---- committing ------------------------------------------------------------------ */

static void job_free(struct job *j)
{
	if (!j)
		return;
	free(j->path);
	free(j->bytes);
	free(j->vec);
	free(j);
}

/* Commit what the batch holds: one transaction, then the figures. */
static void batch_commit(struct scan *s)
{
	struct batch *b = &s->batch;
	if (b->n == 0)
		return;
	store_error err = { 0 };
	int rc = s->failed ? -1 : catalog_library_commit(s->set->app->cat, s->lib->spec.name, b->items, b->n, &err);
	if (rc != 0 && !s->failed) {
		log_error("library %s: recording %zu files: %s", s->lib->spec.name, b->n, err.msg);
		s->failed = 1;
	}
	int64_t indexed = 0, failed = 0, encoded = 0;
	for (size_t i = 0; rc == 0 && i < b->n; i++) {
		struct catalog_lib_item *it = &b->items[i];
		if (it->kind == CATALOG_LIB_FAILED) {
			failed++;
			s->fig.failed++;
		} else if (it->kind != CATALOG_LIB_GONE) {
			indexed++;
		}
		if (it->kind == CATALOG_LIB_REPLACE)
			s->fig.changed++;
		else if (it->added)
			s->fig.added++;
		encoded += b->jobs[i] != NULL;
	}
	STATUS(s, {
		st_->indexed_this_scan += indexed;
		st_->failed_this_scan += failed;
		st_->to_index -= (int64_t)b->n;
		if (st_->to_index < 0)
			st_->to_index = 0;
		st_->files_indexed += (uint64_t)indexed;
		st_->encoded += (uint64_t)encoded;
		double secs = clock_mono_s() - s->lib->index_started;
		st_->rate_per_s = secs > 0.5 ? (double)(st_->indexed_this_scan + st_->failed_this_scan) / secs : 0;
		st_->eta_s = st_->rate_per_s > 0 && !st_->walking ? (double)st_->to_index / st_->rate_per_s : -1;
	});
	for (size_t i = 0; i < b->n; i++) {
		free(b->paths[i]);
		job_free(b->jobs[i]);
	}
	b->n = 0;
	if (clock_mono_s() - s->last_counts >= 1.0) {
		refresh_counts(s->set, s->lib);
		s->last_counts = clock_mono_s();
	}
}

/* The next free item of the batch (committing first when full); the path
 * is copied. */
static struct catalog_lib_item *batch_add(struct scan *s, const char *path, enum catalog_lib_kind kind,
					  const struct stat *sb)
{
	struct batch *b = &s->batch;
	if (b->n == COMMIT_BATCH)
		batch_commit(s);
	size_t i = b->n;
	struct catalog_lib_item *it = &b->items[i];
	memset(it, 0, sizeof *it);
	b->jobs[i] = NULL;
	b->paths[i] = strdup(path);
	if (!b->paths[i])
		return NULL;
	it->path = b->paths[i];
	it->kind = kind;
	if (sb) {
		it->dev = (int64_t)sb->st_dev;
		it->ino = (int64_t)sb->st_ino;
		it->size = (int64_t)sb->st_size;
		it->mtime_ns = mtime_ns_of(sb);
	}
	b->n++;
	return it;
}

static void add_failure(struct scan *s, const char *path, const struct stat *sb, enum http_err code,
			const char *code_name, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void add_failure(struct scan *s, const char *path, const struct stat *sb, enum http_err code,
			const char *code_name, const char *fmt, ...)
{
	struct catalog_lib_item *it = batch_add(s, path, CATALOG_LIB_FAILED, sb);
	if (!it)
		return;
	size_t i = (size_t)(it - s->batch.items);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->batch.msgs[i], sizeof s->batch.msgs[i], fmt, ap);
	va_end(ap);
	it->err_code = code_name ? code_name : http_error_name(code);
	it->err_status = (int)http_error_status(code);
	it->err_msg = s->batch.msgs[i];
}

/* ---- the encoder ---------------------------------------------------------------- */

/* On the encoder's thread: hand the job back to the scanner. */
static void job_done(struct srv_image_job *ij)
{
	struct job *j = ij->ud;
	struct srv_libraries *set = j->set;
	pthread_mutex_lock(&set->lock);
	j->next = set->done;
	set->done = j;
	pthread_cond_broadcast(&set->cond);
	pthread_mutex_unlock(&set->lock);
}

static int submit(struct srv_libraries *set, struct job *j)
{
	memset(&j->job, 0, sizeof j->job);
	j->job.data = j->bytes;
	j->job.len = j->len;
	j->job.width = j->item.width;
	j->job.height = j->item.height;
	j->job.vec = j->vec;
	j->job.dim = set->app->dim;
	j->job.done = job_done;
	j->job.ud = j;
	return srv_encode_image(set->app->enc, &j->job);
}

/* Finished jobs into the batch (or back to the encoder once more when it
 * was full). */
static void collect(struct scan *s)
{
	struct srv_libraries *set = s->set;
	pthread_mutex_lock(&set->lock);
	struct job *list = set->done;
	set->done = NULL;
	pthread_mutex_unlock(&set->lock);
	while (list) {
		struct job *j = list;
		list = j->next;
		if (j->job.status == SRV_ENC_OVERLOADED && j->retries < MAX_RETRIES && !stopping(set)) {
			j->retries++;
			usleep(50000);
			if (submit(set, j) == 0)
				continue;
		}
		pthread_mutex_lock(&set->lock);
		set->inflight--;
		set->inflight_bytes -= j->len;
		pthread_mutex_unlock(&set->lock);
		if (s->batch.n == COMMIT_BATCH)
			batch_commit(s);
		size_t i = s->batch.n++;
		s->batch.items[i] = j->item;
		s->batch.paths[i] = NULL;   /* the job owns the path */
		s->batch.jobs[i] = j;
		if (j->job.status == 0)
			srv_taken_at(j->job.taken_at, &s->batch.items[i].taken);
		if (j->job.status != 0) {
			enum http_err code = srv_clip_http_error(j->job.status);
			struct catalog_lib_item *it = &s->batch.items[i];
			it->kind = CATALOG_LIB_FAILED;
			it->err_code = http_error_name(code);
			it->err_status = (int)http_error_status(code);
			text_copy(s->batch.msgs[i], sizeof s->batch.msgs[i], j->job.msg);
			it->err_msg = s->batch.msgs[i];
		}
	}
}

/* Wait until the window has room for a job of len bytes, committing what
 * finishes meanwhile. Interactive work queued in the encoder narrows the
 * window to one image. */
static void wait_room(struct scan *s, size_t len)
{
	struct srv_libraries *set = s->set;
	size_t window = (size_t)set->app->cfg->batch_size * 2;
	for (;;) {
		collect(s);
		if (s->batch.n >= COMMIT_BATCH / 2)
			batch_commit(s);
		struct srv_encoder_stats es;
		srv_encoder_get_stats(set->app->enc, &es);
		pthread_mutex_lock(&set->lock);
		size_t mine = set->inflight, bytes = set->inflight_bytes;
		int others = es.decode_queue + es.image_queue.depth > mine;
		size_t room = others ? 1 : window;
		int ok = mine == 0 || (mine < room && bytes + len <= WINDOW_BYTES);
		if (!ok && !set->done) {
			struct timespec until = clock_wall_deadline(0.02);
			pthread_cond_timedwait(&set->cond, &set->lock, &until);
		}
		pthread_mutex_unlock(&set->lock);
		if (ok)
			return;
	}
}

/* Wait for every job of this scan to come back, committing them. */
static void drain(struct scan *s)
{
	struct srv_libraries *set = s->set;
	for (;;) {
		collect(s);
		pthread_mutex_lock(&set->lock);
		size_t mine = set->inflight;
		if (mine && !set->done) {
			struct timespec until = clock_wall_deadline(0.05);
			pthread_cond_timedwait(&set->cond, &set->lock, &until);
		}
		pthread_mutex_unlock(&set->lock);
		if (!mine)
			break;
	}
	collect(s);
	batch_commit(s);
}

/* ---- indexing one pending file ---------------------------------------------------------- */

/* Read exactly sb->st_size bytes of fd; 0, or -1 when the file changed
 * size meanwhile (it is being written). */
static int read_whole(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	unsigned char extra;
	return read(fd, &extra, 1) == 0 ? 0 : -1;
}

/*
 * The type from the file's first bytes (all that clip_image_sniff reads):
 * a file that is no image (a phone's video, an editor's sidecar) is
 * refused as an upload of it would be, without reading the rest of it.
 * 1 when it may be an image, 0 when it failed (recorded).
 */
static int type_known(struct scan *s, const struct store_lib_file *f, int fd, const struct stat *sb, size_t len)
{
	unsigned char head[4096];
	size_t n = len < sizeof head ? len : sizeof head, got = 0;
	while (got < n) {
		ssize_t r = pread(fd, head + got, n - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 1;   /* the whole read says what went wrong */
		got += (size_t)r;
	}
	if (clip_image_sniff(head, n) != CLIP_IMAGE_UNKNOWN)
		return 1;
	int width = 0, height = 0;
	const char *mime = NULL;
	enum http_err code;
	char msg[SRV_IMAGE_MSG_MAX];
	if (srv_check_image(s->set->app, head, n, &width, &height, &mime, &code, msg, sizeof msg) == 0)
		return 1;   /* cannot happen: an unknown type never probes */
	add_failure(s, f->path, sb, code, NULL, "%s", msg);
	return 0;
}

/* A file has not settled: it waits for the next scan (it stays pending). */
static void wait_next_scan(struct scan *s)
{
	STATUS(s, {
		st_->waiting++;
		if (st_->to_index > 0)
			st_->to_index--;
	});
}

static int root_online(const char *root, char *why, size_t len);

/* A file vanished: forgotten, unless the whole root went away (an
 * unmounted disk), which ends the scan with nothing more changed. */
static void file_gone(struct scan *s, const char *path)
{
	char why[sizeof s->lib->st.offline_reason];
	if (root_online(s->lib->spec.root, why, sizeof why) != 0) {
		log_warn("library %s went offline during the scan: %s; nothing more changes", s->lib->spec.name, why);
		s->failed = 1;
		return;
	}
	batch_add(s, path, CATALOG_LIB_GONE, NULL);
}

static void index_file(struct scan *s, const struct store_lib_file *f)
{
	struct srv_libraries *set = s->set;
	struct srv_app *app = set->app;
	const struct srv_config *cfg = app->cfg;
	struct stat sb;
	memset(&sb, 0, sizeof sb);
	/* No link below the root is followed: a folder that became a link
	 * since the walk makes the file gone, not a way out of the root. */
	int fd = libpath_open(s->lib->spec.root, f->path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ENOTDIR || e == ELOOP || e == EINVAL) {
			file_gone(s, f->path);
			return;
		}
		if (e == ENXIO) {   /* a socket (open cannot open one): no image, as a FIFO or a device */
			char full[8192];
			if ((size_t)snprintf(full, sizeof full, "%s/%s", s->lib->spec.root, f->path) < sizeof full &&
			    lstat(full, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
				add_failure(s, f->path, &sb, HTTP_ERR_UNSUPPORTED_MEDIA_TYPE, NULL,
					    "not a regular file (a socket)");
				return;
			}
		}
		/* Recorded without its identity, so that the next walk tries it
		 * again: a failed open costs nothing, and what made it fail (a
		 * permission, which chmod fixes without touching the mtime; no
		 * file descriptor left) is often gone by then. */
		add_failure(s, f->path, NULL, HTTP_ERR_FORBIDDEN, "unreadable", "cannot open the file: %s", strerror(e));
		return;
	}
	unsigned char *bytes = NULL;
	if (fstat(fd, &sb) != 0) {
		add_failure(s, f->path, NULL, HTTP_ERR_FORBIDDEN, "unreadable", "cannot read the file: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		add_failure(s, f->path, &sb, HTTP_ERR_UNSUPPORTED_MEDIA_TYPE, NULL,
			    "not a regular file (%s)", S_ISFIFO(sb.st_mode) ? "a FIFO" : S_ISSOCK(sb.st_mode) ? "a socket"
				    : S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode) ? "a device" : "a special file");
		goto out;
	}
	if (settling(&sb, cfg->library_settle)) {
		wait_next_scan(s);
		goto out;
	}
	if (sb.st_size > cfg->max_body) {
		add_failure(s, f->path, &sb, HTTP_ERR_BODY_TOO_LARGE, NULL, "the file has %lld bytes, over --max-body (%lld)",
			    (long long)sb.st_size, cfg->max_body);
		goto out;
	}
	if (sb.st_size == 0) {
		add_failure(s, f->path, &sb, HTTP_ERR_IMAGE_UNDECODABLE, NULL, "the file is empty");
		goto out;
	}
	size_t len = (size_t)sb.st_size;
	if (!type_known(s, f, fd, &sb, len))
		goto out;
	if (!(bytes = malloc(len))) {
		add_failure(s, f->path, &sb, HTTP_ERR_INTERNAL, NULL, "out of memory");
		goto out;
	}
	if (read_whole(fd, bytes, len) != 0) {
		int e = errno;
		struct stat now;
		if (fstat(fd, &now) == 0 && (now.st_size != sb.st_size || mtime_ns_of(&now) != mtime_ns_of(&sb)))
			wait_next_scan(s);   /* being written */
		else
			add_failure(s, f->path, &sb, HTTP_ERR_FORBIDDEN, "unreadable", "cannot read the file: %s",
				    e ? strerror(e) : "it came up short");
		goto out;
	}
	char sha[SHA256_HEX];
	sha256_hex(bytes, len, sha);
	store_error err = { 0 };
	struct store_image img;
	int rc = catalog_get_by_sha256(app->cat, sha, &img, &err);
	if (rc == 0) {
		store_image_clear(&img);
		struct catalog_lib_item *it = batch_add(s, f->path, CATALOG_LIB_LINK, &sb);
		if (it) {
			snprintf(s->batch.shas[it - s->batch.items], SHA256_HEX, "%s", sha);
			it->sha256 = s->batch.shas[it - s->batch.items];
		}
		goto out;
	}
	if (rc != STORE_ERR_NOT_FOUND) {
		log_error("library %s: %s", s->lib->spec.name, err.msg);
		s->failed = 1;
		goto out;
	}
	int width = 0, height = 0;
	const char *mime = NULL;
	enum http_err code;
	char msg[SRV_IMAGE_MSG_MAX];
	if (srv_check_image(app, bytes, len, &width, &height, &mime, &code, msg, sizeof msg) != 0) {
		add_failure(s, f->path, &sb, code, NULL, "%s", msg);
		goto out;
	}
	int64_t replace_id = 0;
	if (f->image_id > 0) {
		int64_t refs = 0;
		if (catalog_library_image_refs(app->cat, f->image_id, &refs, &err) == 1 && refs <= 1)
			replace_id = f->image_id;
	}
	struct job *j = calloc(1, sizeof *j);
	if (!j || !(j->path = strdup(f->path)) || !(j->vec = malloc(app->dim * sizeof *j->vec))) {
		job_free(j);
		add_failure(s, f->path, &sb, HTTP_ERR_INTERNAL, NULL, "out of memory");
		goto out;
	}
	j->set = set;
	j->bytes = bytes;
	j->len = len;
	bytes = NULL;
	memcpy(j->sha, sha, sizeof sha);
	j->item = (struct catalog_lib_item){
		.path = j->path, .dev = (int64_t)sb.st_dev, .ino = (int64_t)sb.st_ino, .size = (int64_t)sb.st_size,
		.mtime_ns = mtime_ns_of(&sb), .kind = replace_id ? CATALOG_LIB_REPLACE : CATALOG_LIB_NEW,
		.sha256 = j->sha, .mime = mime, .width = width, .height = height, .vec = j->vec, .replace_id = replace_id,
	};
	close(fd);
	fd = -1;
	wait_room(s, len);
	pthread_mutex_lock(&set->lock);
	set->inflight++;
	set->inflight_bytes += len;
	pthread_mutex_unlock(&set->lock);
	while (submit(set, j) != 0) {
		/* the decode queue is full: uploads come first */
		if (stopping(set)) {
			j->job.status = SRV_ENC_OVERLOADED;
			snprintf(j->job.msg, sizeof j->job.msg, "the server is stopping");
			j->retries = MAX_RETRIES;
			job_done(&j->job);
			break;
		}
		usleep(20000);
		collect(s);
	}
out:
	if (fd >= 0)
		close(fd);
	free(bytes);
}

/* ---- walking ------------------------------------------------------------------------ */

static void marks_flush(struct scan *s)
{
	if (s->n_marks == 0)
		return;
	store_error err = { 0 };
	if (!s->failed && catalog_library_mark(s->set->app->cat, s->lib->spec.name, s->scan_id, s->marks, s->n_marks,
					       &err) != 0) {
		log_error("library %s: recording the walk: %s", s->lib->spec.name, err.msg);
		s->failed = 1;
	}
	for (size_t i = 0; i < s->n_marks; i++)
		free(s->mark_paths[i]);
	s->n_marks = 0;
}

static void mark(struct scan *s, const char *path, int pending)
{
	char *copy = strdup(path);
	if (!copy) {
		s->failed = 1;
		return;
	}
	s->mark_paths[s->n_marks] = copy;
	s->marks[s->n_marks].path = copy;
	s->marks[s->n_marks].pending = pending;
	if (++s->n_marks == MARK_BATCH)
		marks_flush(s);
}

/* A file the walk met, known (its record f) or not: unchanged, waiting,
 * or pending. */
static void classify(struct scan *s, const char *rel, const struct stat *sb, int known, const struct store_lib_file *f)
{
	int64_t mt = mtime_ns_of(sb);
	if (known && (f->ignored || (!f->pending && f->dev == (int64_t)sb->st_dev && f->ino == (int64_t)sb->st_ino &&
				    f->size == (int64_t)sb->st_size && f->mtime_ns == mt))) {
		STATUS(s, { st_->files_seen++; st_->unchanged++; });
		mark(s, rel, 0);
	} else if (settling(sb, s->set->app->cfg->library_settle)) {
		STATUS(s, { st_->files_seen++; st_->waiting++; });
		if (known)
			mark(s, rel, 0);
	} else {
		STATUS(s, { st_->files_seen++; st_->to_index++; });
		mark(s, rel, 1);
	}
}

/* The records of the files walked since the last call, read at once (one
 * round trip to a PostgreSQL catalog for a batch, not one a file), then
 * each file classified. */
static void looks_flush(struct scan *s)
{
	store_error err = { 0 };
	if (s->n_look == 0)
		return;
	if (!s->failed && catalog_library_files(s->set->app->cat, s->lib->spec.name, (const char *const *)s->look_paths,
						s->n_look, s->look_out, s->look_found, &err) != 0) {
		log_error("library %s: %s", s->lib->spec.name, err.msg);
		s->failed = 1;
	}
	for (size_t i = 0; i < s->n_look; i++) {
		if (!s->failed)
			classify(s, s->look_paths[i], &s->look_sb[i], s->look_found[i], &s->look_out[i]);
		free(s->look_paths[i]);
	}
	s->n_look = 0;
}

/* A file the walk met: classified with the next batch. */
static void walk_file(struct scan *s, const char *rel, const struct stat *sb)
{
	if (!(s->look_paths[s->n_look] = strdup(rel))) {
		s->failed = 1;
		return;
	}
	s->look_sb[s->n_look] = *sb;
	if (++s->n_look == LOOK_BATCH)
		looks_flush(s);
}

struct dirstack {
	char **items;
	size_t n, cap;
};

static int push(struct dirstack *d, const char *rel)
{
	if (d->n == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 64;
		char **items = realloc(d->items, nc * sizeof *items);
		if (!items)
			return -1;
		d->items = items;
		d->cap = nc;
	}
	if (!(d->items[d->n] = strdup(rel)))
		return -1;
	d->n++;
	return 0;
}

static void keep_dir(struct scan *s, const char *rel)
{
	if (s->n_keep == MAX_KEEP || !(s->keep[s->n_keep] = strdup(rel)))
		s->keep_overflow = 1;
	else
		s->n_keep++;
}

/* An empty folder below the root whose files were last read from another
 * device was a disk's mount point: the disk is not mounted now (as a root
 * that is empty makes the library offline), and what it held is kept. A
 * folder emptied on its own device is empty, and its files are gone. */
static void empty_dir(struct scan *s, int dfd, const char *rel, const char *full)
{
	struct stat sb;
	store_error err = { 0 };
	if (fstat(dfd, &sb) != 0)
		return;
	int other = catalog_library_other_device(s->set->app->cat, s->lib->spec.name, rel, (int64_t)sb.st_dev, &err);
	if (other < 0) {
		log_error("library %s: %s", s->lib->spec.name, err.msg);
		s->failed = 1;
	} else if (other) {
		log_warn("library %s: the folder %s is empty, and its files were on another disk: a disk not "
			 "mounted? (what it held is kept as it was)", s->lib->spec.name, full);
		keep_dir(s, rel);
		STATUS(s, { st_->dirs_unreadable++; });
	}
}

/* Walk the tree. 0 when the whole tree was walked. */
static int walk(struct scan *s)
{
	struct dirstack stack = { 0 };
	const char *root = s->lib->spec.root;
	char rel[LIBPATH_MAX + 1], full[8192], child[LIBPATH_MAX + 1];
	int rc = push(&stack, "");
	int symlinks_logged = 0;
	while (rc == 0 && stack.n > 0 && !s->failed) {
		if (stopping(s->set)) {
			rc = 1;
			break;
		}
		char *top = stack.items[--stack.n];
		snprintf(rel, sizeof rel, "%s", top);   /* each one from libpath_join */
		free(top);
		snprintf(full, sizeof full, "%s%s%s", root, rel[0] ? "/" : "", rel);
		/* the root may be a link (a mount point's alias); nothing under it is followed */
		int dfd = open(full, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (rel[0] ? O_NOFOLLOW : 0));
		DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
		if (!d) {
			log_warn("library %s: cannot read the folder %s: %s (what it holds is kept as it was)",
				 s->lib->spec.name, full, strerror(errno));
			if (dfd >= 0)
				close(dfd);
			keep_dir(s, rel);
			STATUS(s, { st_->dirs_unreadable++; });
			continue;
		}
		struct dirent *e = NULL;
		size_t entries = 0;
		while (!s->failed && (errno = 0, e = readdir(d)) != NULL) {
			const char *name = e->d_name;
			if (strcmp(name, ".") && strcmp(name, ".."))
				entries++;
			if (libpath_hidden(name))
				continue;   /* ".", "..", and hidden files and folders */
			if (libpath_join(rel, name, child, sizeof child) != 0) {
				log_warn("library %s: %s/%s: the path is too long, skipped", s->lib->spec.name, full, name);
				continue;
			}
			struct stat sb;
			if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
				if (errno == ENOENT)
					continue;   /* vanished meanwhile */
				/* a folder that lists its names but lets nothing in it
				 * be looked at (read without search permission): what
				 * it holds is kept, as for a folder that cannot be read */
				log_warn("library %s: cannot look at %s in the folder %s: %s (what it holds is kept as it was)",
					 s->lib->spec.name, name, full, strerror(errno));
				keep_dir(s, rel);
				STATUS(s, { st_->dirs_unreadable++; });
				break;
			}
			if (S_ISLNK(sb.st_mode)) {
				struct stat target;
				int to_dir = fstatat(dfd, name, &target, 0) == 0 && S_ISDIR(target.st_mode);
				if (symlinks_logged++ < LOG_SYMLINKS)
					log_info("library %s: %s is a symbolic link%s: not followed", s->lib->spec.name, child,
						 to_dir ? " to a folder" : "");
				STATUS(s, { st_->symlinks_skipped++; });
			} else if (S_ISDIR(sb.st_mode)) {
				if (s->have_data && sb.st_dev == s->data_dev && sb.st_ino == s->data_ino) {
					/* --data below the root: its thumbnails and originals are not photos */
					log_info("library %s: %s is clipd's data directory: not walked", s->lib->spec.name,
						 child);
					continue;
				}
				if (push(&stack, child) != 0)
					rc = -1;
			} else {
				walk_file(s, child, &sb);
			}
		}
		if (!e && errno != 0 && !s->failed) {
			/* a read that failed part way (a network share): not the end of the folder */
			log_warn("library %s: reading the folder %s failed: %s (what it holds is kept as it was)",
				 s->lib->spec.name, full, strerror(errno));
			keep_dir(s, rel);
			STATUS(s, { st_->dirs_unreadable++; });
		} else if (!e && entries == 0 && rel[0] && !s->failed) {
			empty_dir(s, dfd, rel, full);
		}
		closedir(d);
	}
	looks_flush(s);
	marks_flush(s);
	for (size_t i = 0; i < stack.n; i++)
		free(stack.items[i]);
	free(stack.items);
	if (rc < 0) {
		log_error("library %s: out of memory walking the tree", s->lib->spec.name);
		s->failed = 1;
	}
	return s->failed ? -1 : rc;
}

/* Index every pending file. 0 when none is left to try in this scan. */
static int index_pending(struct scan *s)
{
	char *after = strdup("");
	int rc = after ? 0 : -1;
	while (rc == 0 && !s->failed) {
		struct store_lib_file *files = NULL;
		size_t n = 0;
		store_error err = { 0 };
		if (catalog_library_pending(s->set->app->cat, s->lib->spec.name, after, PENDING_BATCH, &files, &n, &err) != 0) {
			log_error("library %s: %s", s->lib->spec.name, err.msg);
			s->failed = 1;
			break;
		}
		for (size_t i = 0; i < n && !s->failed; i++) {
			if (stopping(s->set)) {
				rc = 1;
				break;
			}
			index_file(s, &files[i]);
		}
		if (n > 0) {
			free(after);
			after = files[n - 1].path;
			files[n - 1].path = NULL;
		}
		store_lib_files_free(files, n);
		if (n < PENDING_BATCH)
			break;
	}
	drain(s);
	free(after);
	return s->failed ? -1 : rc;
}

/* ---- a scan ---------------------------------------------------------------------------- */

/* Is the root usable? 0, or -1 with why. An empty root counts as offline:
 * an unmounted disk's mount point is usually an empty folder. */
static int root_online(const char *root, char *why, size_t len)
{
	struct stat sb;
	if (stat(root, &sb) != 0) {
		snprintf(why, len, "%s: %s", root, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(why, len, "%s is not a folder", root);
		return -1;
	}
	DIR *d = opendir(root);
	if (!d) {
		snprintf(why, len, "%s: %s", root, strerror(errno));
		return -1;
	}
	struct dirent *e;
	int entries = 0;
	errno = 0;
	while (!entries && (e = readdir(d)) != NULL)
		entries = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	int e2 = errno;
	closedir(d);
	if (!entries) {
		snprintf(why, len, e2 ? "%s: %s" : "%s is empty%s", root, e2 ? strerror(e2) : " (not mounted?)");
		return -1;
	}
	return 0;
}

/* One node at a time scans a library (a shared catalog): wait, in state
 * "queued", while another node scans it, then scan after it (what it
 * indexed is then unchanged here). 0 with *held, or -1: no scan (the
 * server is stopping, or the catalog failed). */
static int lock_library(struct srv_libraries *set, struct lib *lib, struct catalog_lib_lock **held)
{
	store_error err = { 0 };
	int said = 0, got;
	while ((got = catalog_library_lock(set->app->cat, lib->spec.name, held, &err)) == 0) {
		if (!said++)
			log_info("library %s: another node is scanning it; this node waits, and scans after it",
				 lib->spec.name);
		pthread_mutex_lock(&set->lock);
		lib->st.state = SRV_LIBRARY_WAITING;
		if (!set->stop) {
			struct timespec until = clock_wall_deadline(1.0);
			pthread_cond_timedwait(&set->cond, &set->lock, &until);
		}
		int stop = set->stop;
		pthread_mutex_unlock(&set->lock);
		if (stop)
			break;
	}
	if (got == 1)
		return 0;
	if (got < 0)
		log_error("library %s: cannot take the scan lock: %s", lib->spec.name, err.msg);
	pthread_mutex_lock(&set->lock);
	if (lib->st.state == SRV_LIBRARY_WAITING)
		lib->st.state = SRV_LIBRARY_IDLE;
	pthread_mutex_unlock(&set->lock);
	return -1;
}

static void scan_library(struct srv_libraries *set, struct lib *lib)
{
	struct scan *s = calloc(1, sizeof *s);
	if (!s) {
		log_error("library %s: out of memory", lib->spec.name);
		return;
	}
	s->set = set;
	s->lib = lib;
	char why[sizeof lib->st.offline_reason];
	if (root_online(lib->spec.root, why, sizeof why) != 0) {
		int was = 0;
		pthread_mutex_lock(&set->lock);
		was = lib->st.state == SRV_LIBRARY_OFFLINE && !strcmp(lib->st.offline_reason, why);
		lib->st.state = SRV_LIBRARY_OFFLINE;
		memcpy(lib->st.offline_reason, why, sizeof lib->st.offline_reason);
		pthread_mutex_unlock(&set->lock);
		if (!was)
			log_warn("library %s is offline: %s; nothing in it changes until it is back", lib->spec.name, why);
		refresh_counts(set, lib);
		free(s);
		return;
	}
	store_error err = { 0 };
	struct catalog_lib_lock *held = NULL;
	if (lock_library(set, lib, &held) != 0) {
		free(s);
		return;
	}
	if (catalog_library_scan_begin(set->app->cat, lib->spec.name, &s->scan_id, &err) != 0) {
		log_error("library %s: %s", lib->spec.name, err.msg);
		catalog_library_unlock(set->app->cat, held);
		free(s);
		return;
	}
	double t0 = clock_mono_s();
	s->fig.started_at = clock_wall_us();
	refresh_counts(set, lib);
	s->last_counts = clock_mono_s();
	pthread_mutex_lock(&set->lock);
	struct srv_library_status *st = &lib->st;
	st->state = SRV_LIBRARY_SCANNING;
	st->offline_reason[0] = 0;
	st->walking = 1;
	st->files_seen = st->to_index = st->indexed_this_scan = st->unchanged = st->waiting = 0;
	st->failed_this_scan = st->symlinks_skipped = st->dirs_unreadable = 0;
	st->rate_per_s = 0;
	st->eta_s = -1;
	st->scans++;
	lib->index_started = t0;
	pthread_mutex_unlock(&set->lock);
	log_info("library %s: scanning %s", lib->spec.name, lib->spec.root);

	struct stat data_sb;
	if (set->app->cfg->data && stat(set->app->cfg->data, &data_sb) == 0) {
		s->have_data = 1;
		s->data_dev = data_sb.st_dev;
		s->data_ino = data_sb.st_ino;
	}
	int walked = walk(s);
	STATUS(s, { st_->walking = 0; });
	/* what the walk found pending, including files a killed scan left */
	struct store_lib_counts c;
	if (walked == 0 && catalog_library_counts(set->app->cat, lib->spec.name, &c, &err) == 0)
		STATUS(s, { st_->to_index = c.pending; });
	lib->index_started = clock_mono_s();
	int indexed = walked == 0 ? index_pending(s) : walked;
	int finished = 0;
	if (walked == 0 && indexed == 0 && !s->failed) {
		if (root_online(lib->spec.root, why, sizeof why) != 0) {
			log_warn("library %s went offline during the scan: %s; nothing is removed", lib->spec.name, why);
		} else if (s->keep_overflow) {
			log_warn("library %s: too many folders could not be read: nothing is removed in this scan",
				 lib->spec.name);
		} else {
			s->fig.finished_at = clock_wall_us();
			if (catalog_library_finish(set->app->cat, lib->spec.name, s->scan_id, (const char *const *)s->keep,
						   s->n_keep, &s->fig, &err) != 0)
				log_error("library %s: finishing the scan: %s", lib->spec.name, err.msg);
			else
				finished = 1;
		}
	}
	refresh_counts(set, lib);
	pthread_mutex_lock(&set->lock);
	st->state = SRV_LIBRARY_IDLE;
	st->eta_s = 0;
	st->to_index = 0;
	int64_t seen = st->files_seen, unchanged = st->unchanged, waiting = st->waiting, images = st->images;
	pthread_mutex_unlock(&set->lock);
	if (finished)
		log_info("library %s: scanned in %.1f s: %lld files (%lld unchanged, %lld waiting to settle), "
			 "%lld added, %lld changed, %lld moved, %lld removed, %lld failed; %lld images",
			 lib->spec.name, clock_mono_s() - t0, (long long)seen, (long long)unchanged, (long long)waiting,
			 (long long)s->fig.added, (long long)s->fig.changed, (long long)s->fig.moved,
			 (long long)s->fig.removed, (long long)s->fig.failed, (long long)images);
	else
		log_info("library %s: scan %s after %.1f s (%lld added, %lld changed; nothing removed)", lib->spec.name,
			 stopping(set) ? "stopped" : "ended early", clock_mono_s() - t0, (long long)s->fig.added,
			 (long long)s->fig.changed);
	catalog_library_unlock(set->app->cat, held);
	for (size_t i = 0; i < s->n_keep; i++)
		free(s->keep[i]);
	free(s);
}

static void *scanner_main(void *arg)
{
	struct srv_libraries *set = arg;
	pthread_setname_np(pthread_self(), "library-scan");
	/* scans are background work: the CPU goes to requests first */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0)
		log_debug("library scanner: cannot lower its priority: %s", strerror(errno));
	for (;;) {
		pthread_mutex_lock(&set->lock);
		struct lib *next = NULL;
		double now = clock_mono_s();
		while (!set->stop) {
			for (size_t i = 0; i < set->n && !next; i++)
				if (set->libs[i].requested || set->libs[i].next_due <= now)
					next = &set->libs[i];
			if (next)
				break;
			struct timespec until = clock_wall_deadline(1.0);
			pthread_cond_timedwait(&set->cond, &set->lock, &until);
			now = clock_mono_s();
		}
		if (set->stop) {
			pthread_mutex_unlock(&set->lock);
			break;
		}
		next->requested = 0;
		pthread_mutex_unlock(&set->lock);
		scan_library(set, next);
		long long every = set->app->cfg->library_rescan;
		pthread_mutex_lock(&set->lock);
		next->next_due = every > 0 ? clock_mono_s() + (double)every : INFINITY;
		pthread_mutex_unlock(&set->lock);
	}
	return NULL;
}

/* ---- the set ------------------------------------------------------------------------------ */

int srv_libraries_start(struct srv_app *app, const struct srv_library_spec *specs, size_t n,
			struct srv_libraries **out, char *msg, size_t msglen)
{
	*out = NULL;
	struct srv_libraries *set = calloc(1, sizeof *set);
	if (!set || (n && !(set->libs = calloc(n, sizeof *set->libs)))) {
		free(set);
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	set->app = app;
	set->n = n;
	pthread_mutex_init(&set->lock, NULL);
	pthread_cond_init(&set->cond, NULL);
	for (size_t i = 0; i < n; i++) {
		struct lib *lib = &set->libs[i];
		lib->spec = specs[i];
		snprintf(lib->st.name, sizeof lib->st.name, "%s", specs[i].name);
		snprintf(lib->st.root, sizeof lib->st.root, "%s", specs[i].root);
		lib->st.eta_s = -1;
		lib->next_due = 0;   /* at once */
		store_error err = { 0 };
		if (catalog_library_put(app->cat, specs[i].name, specs[i].root, &err) != 0) {
			snprintf(msg, msglen, "library %s: %.2000s", specs[i].name, err.msg);
			srv_libraries_stop(set);
			return -1;
		}
		refresh_counts(set, lib);
	}
	if (n > 0) {
		if (pthread_create(&set->thread, NULL, scanner_main, set) != 0) {
			snprintf(msg, msglen, "cannot start the library scanner");
			srv_libraries_stop(set);
			return -1;
		}
		set->started = 1;
	}
	*out = set;
	return 0;
}

void srv_libraries_stop(struct srv_libraries *set)
{
	if (!set)
		return;
	pthread_mutex_lock(&set->lock);
	set->stop = 1;
	pthread_cond_broadcast(&set->cond);
	pthread_mutex_unlock(&set->lock);
	if (set->started)
		pthread_join(set->thread, NULL);
	for (size_t i = 0; i < set->n; i++)
		free(set->libs[i].st.last.root);
	pthread_mutex_destroy(&set->lock);
	pthread_cond_destroy(&set->cond);
	free(set->libs);
	free(set);
}

size_t srv_libraries_count(const struct srv_libraries *set)
{
	return set ? set->n : 0;
}

int srv_libraries_find(const struct srv_libraries *set, const char *name)
{
	for (size_t i = 0; set && name && i < set->n; i++)
		if (!strcmp(set->libs[i].spec.name, name))
			return (int)i;
	return -1;
}

int srv_libraries_request_scan(struct srv_libraries *set, size_t i)
{
	if (!set || i >= set->n)
		return -1;
	pthread_mutex_lock(&set->lock);
	set->libs[i].requested = 1;
	pthread_cond_broadcast(&set->cond);
	pthread_mutex_unlock(&set->lock);
	return 0;
}

void srv_libraries_status(struct srv_libraries *set, size_t i, struct srv_library_status *out)
{
	memset(out, 0, sizeof *out);
	if (!set || i >= set->n)
		return;
	pthread_mutex_lock(&set->lock);
	*out = set->libs[i].st;
	out->last.root = NULL;
	pthread_mutex_unlock(&set->lock);
}
