/*
 * clipd catalog copy: one catalog into another, either kind (a data
 * directory's SQLite and blobs, or PostgreSQL), resumable, verified. The
 * contract is catalog.h's catalog_copy; the rows go through the backends'
 * copy operations (backend.h: copy_in, copy_end, max_id, setting_get,
 * identity).
 *
 * The target's progress record is the setting COPY_KEY:
 *
 *     copying LAST_ID SOURCE     batches up to LAST_ID are committed
 *     done N SOURCE              copied and verified: N images
 *
 * It is written in the same transaction as each batch, so after a kill at
 * any moment it names exactly what the target holds. Photo libraries go
 * after the images, with a record of their own (copy_files): a
 * library image goes as its row, its vector and its library path (its
 * original is its file, which is neither copied nor read): catalog_copylib.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "backend.h"
#include "catalog.h"
#include "catalog_internal.h"
#include "clock.h"
#include "datadir.h"
#include "pgstore.h"
#include "sha256.h"

#define COPY_KEY "copy"
#define COPY_MAX_ORIGINAL ((int64_t)1 << 30)   /* bytes of one original, at most */
#define COPY_BATCH_BYTES ((size_t)64 << 20)     /* originals' bytes held for one batch, about */

struct catalog_copy_params catalog_copy_default_params(void)
{
	struct catalog_copy_params p = { .batch = CATALOG_COPY_BATCH };
	return p;
}

/* One side of the copy: its backend, and the data directory when it is one. */
struct side {
	const struct backend_ops *be;
	void *db;
	const char *dir;
	int lock_fd;
	char name[512];
};

static void side_close(struct side *s)
{
	if (s->be)
		s->be->close(s->db);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->be = NULL;
	s->lock_fd = -1;
}

/* An unlinked temporary file for originals read from a database: in the
 * target directory's tmp/ when there is one, else in $TMPDIR. */
static int temp_fd(const char *dir, store_error *err)
{
	char path[4096];
	const char *t = getenv("TMPDIR");
	if (dir) {
		int rc = datadir_path(dir, DATADIR_TMP, path, sizeof path, err);
		if (rc != 0)
			return rc;
	} else if (datadir_fmt(path, sizeof path, "%s", t && *t ? t : "/tmp") != 0) {
		return store_fail(err, STORE_ERR_INVALID, "TMPDIR is too long");
	}
	size_t n = strlen(path);
	if (datadir_fmt(path + n, sizeof path - n, "/copy-XXXXXX") != 0)
		return store_fail(err, STORE_ERR_INVALID, "temporary path too long");
	int fd = mkstemp(path);
	if (fd < 0)
		return datadir_errno(err, errno, "create", path);
	unlink(path);
	return fd;
}

/* ---- opening both sides ------------------------------------------------------------- */

static int open_dir_store(struct side *s, int readonly, store_error *err)
{
	char db[4096];
	int rc = datadir_path(s->dir, DATADIR_DB, db, sizeof db, err);
	if (rc != 0)
		return rc;
	struct store_params sp = store_default_params();
	sp.readonly = readonly;
	store *st = NULL;
	if ((rc = store_open(db, &sp, &st, NULL, err)) != 0)
		return rc;
	s->be = &sqlite_backend_ops;
	s->db = st;
	return 0;
}

static int open_uri(struct side *s, const char *uri, int readonly, store_error *err)
{
	struct pgstore_params pp = pgstore_default_params();
	pp.readonly = readonly;
	pp.pool = 4;
	pgstore *pg = NULL;
	int rc = pgstore_open(uri, &pp, &pg, NULL, err);
	if (rc != 0)
		return rc;
	s->be = &pgstore_ops;
	s->db = pg;
	return 0;
}

static int open_source(const struct catalog_copy_params *p, struct side *s, store_error *err)
{
	int rc;
	if (p->from_uri)
		rc = open_uri(s, p->from_uri, 1, err);
	else {
		char db[4096];
		struct stat sb;
		if ((rc = datadir_path(s->dir, DATADIR_DB, db, sizeof db, err)) != 0)
			return rc;
		if (stat(db, &sb) != 0)
			return store_fail(err, STORE_ERR_IO, "%s is not a clipd data directory (no clipd.db)", s->dir);
		/* held for the whole copy: no clipd starts on it meanwhile */
		if ((rc = datadir_lock(s->dir, &s->lock_fd, err)) != 0)
			return rc;
		rc = open_dir_store(s, 1, err);
	}
	if (rc == 0)
		rc = s->be->identity(s->db, s->name, sizeof s->name, err);
	return rc;
}

/* A directory to copy into: missing, empty, or a data directory (whose
 * database then says whether it may be used). Other files: refused. */
static int check_target_dir(const char *dir, store_error *err)
{
	/* what a data directory holds (datadir.h); its database decides */
	static const char *const ours[] = { "lock", "clipd.db", "clipd.db-wal", "clipd.db-shm", "blobs", "tmp",
					    "cache", "index.faiss", "clean", NULL };
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : datadir_errno(err, errno, "open", dir);
	struct dirent *e;
	int rc = 0;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		int known = 0;
		for (size_t i = 0; ours[i] && !known; i++)
			known = !strcmp(e->d_name, ours[i]);
		if (!known)
			rc = store_fail(err, STORE_ERR_INVALID, "%s is not empty (it holds %s): copy into an empty or new "
					"directory", dir, e->d_name);
	}
	closedir(d);
	return rc;
}

static int open_target(const struct catalog_copy_params *p, struct side *s, store_error *err)
{
	int rc;
	if (p->to_uri) {
		rc = open_uri(s, p->to_uri, 0, err);
	} else {
		char sub[4096];
		if ((rc = check_target_dir(s->dir, err)) != 0 || (rc = datadir_mkdirs(s->dir, err)) != 0 ||
		    (rc = datadir_lock(s->dir, &s->lock_fd, err)) != 0)
			return rc;
		if ((rc = datadir_path(s->dir, DATADIR_BLOBS, sub, sizeof sub, err)) != 0 ||
		    (rc = datadir_mkdirs(sub, err)) != 0 ||
		    (rc = datadir_path(s->dir, DATADIR_TMP, sub, sizeof sub, err)) != 0 ||
		    (rc = datadir_mkdirs(sub, err)) != 0)
			return rc;
		rc = open_dir_store(s, 0, err);
	}
	if (rc == 0)
		rc = s->be->identity(s->db, s->name, sizeof s->name, err);
	return rc;
}

/* ---- the source's images --------------------------------------------------------------- */

/* Read up to len bytes at offset 0 of fd into buf: 0, or a status. */
static int read_exact(int fd, unsigned char *buf, size_t len, const char *what, store_error *err)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return datadir_errno(err, errno, "read", what);
		if (n == 0)
			return store_fail(err, STORE_ERR_IO, "%s is shorter than its row says", what);
		got += (size_t)n;
	}
	return 0;
}

/* The original of img from side s, checked against its row: its size and
 * its SHA-256. *out malloc'd (img->bytes bytes). tmp: the temporary file
 * for a database's originals. */
static int read_original(struct side *s, const struct store_image *img, int tmp, unsigned char **out,
			 store_error *err)
{
	char path[4096], what[4200];
	int fd = -1, rc = 0;
	struct stat sb;
	*out = NULL;
	if (img->bytes <= 0 || img->bytes > COPY_MAX_ORIGINAL)
		return store_fail(err, STORE_ERR_INVALID, "image %" PRId64 ": its row says %" PRId64 " bytes",
				  img->id, img->bytes);
	if (s->be->stores_originals) {
		if (ftruncate(tmp, 0) != 0 || lseek(tmp, 0, SEEK_SET) != 0)
			return datadir_errno(err, errno, "truncate", "a temporary file");
		if ((rc = s->be->read_original(s->db, img->sha256, tmp, err)) != 0)
			return store_fail(err, rc, "image %" PRId64 ": its original: %s", img->id,
					  rc == STORE_ERR_NOT_FOUND ? "missing from the catalog" : "cannot be read");
		fd = tmp;
		snprintf(what, sizeof what, "the original of image %" PRId64, img->id);
	} else {
		if ((rc = datadir_blob_path(s->dir, img->sha256, path, sizeof path, err)) != 0)
			return rc;
		snprintf(what, sizeof what, "image %" PRId64 "'s original %s", img->id, path);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return errno == ENOENT ? store_fail(err, STORE_ERR_IO, "%s is missing", what)
					       : datadir_errno(err, errno, "open", path);
	}
	if (fstat(fd, &sb) != 0)
		rc = datadir_errno(err, errno, "stat", what);
	else if (sb.st_size != img->bytes)
		rc = store_fail(err, STORE_ERR_IO, "%s has %lld bytes, its row says %" PRId64, what,
				(long long)sb.st_size, img->bytes);
	unsigned char *buf = rc == 0 ? malloc((size_t)img->bytes) : NULL;
	if (rc == 0 && !buf)
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0)
		rc = read_exact(fd, buf, (size_t)img->bytes, what, err);
	if (rc == 0) {
		char hex[STORE_SHA256_HEX];
		sha256_hex(buf, (size_t)img->bytes, hex);
		if (strcmp(hex, img->sha256))
			rc = store_fail(err, STORE_ERR_IO, "%s does not match its digest: its bytes hash to %s", what, hex);
	}
	if (fd != tmp)
		close(fd);
	if (rc != 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

/* ---- copying ----------------------------------------------------------------------------------- */

struct copier {
	const struct catalog_copy_params *p;
	struct side *src, *dst;
	const struct store_model *model;
	int tmp;
	int64_t after;                 /* ids up to here are in the target */
	size_t cap, n, bytes;
	struct store_image *imgs;
	unsigned char **data;
	float *vecs;
	struct store_copy_row *rows;
	int64_t total, done;
	struct catalog_copy_report *rep;
	int rc;
	store_error *err;
};

static void batch_clear(struct copier *k)
{
	for (size_t i = 0; i < k->n; i++) {
		store_image_clear(&k->imgs[i]);
		free(k->data[i]);
		k->data[i] = NULL;
	}
	k->n = 0;
	k->bytes = 0;
}

static int flush(struct copier *k)
{
	char state[700];
	if (k->n == 0)
		return 0;
	int64_t last = k->imgs[k->n - 1].id;
	int rc = 0;
	if (datadir_fmt(state, sizeof state, "copying %" PRId64 " %s", last, k->src->name) != 0)
		return store_fail(k->err, STORE_ERR_INVALID, "the source's name is too long");
	/* a data directory: the originals first, durable, then the rows
	 * (a crash between leaves blobs without rows: orphans, removed at
	 * the next open) */
	for (size_t i = 0; i < k->n && rc == 0 && !k->dst->be->stores_originals; i++)
		if (k->data[i])
			rc = datadir_write_blob(k->dst->dir, k->imgs[i].sha256, k->data[i], (size_t)k->imgs[i].bytes, k->err);
	for (size_t i = 0; i < k->n; i++)
		k->rows[i] = (struct store_copy_row){ .img = &k->imgs[i], .data = k->data[i],
						      .len = k->data[i] ? (size_t)k->imgs[i].bytes : 0,
						      .vec = k->vecs + i * k->model->dim };
	if (rc == 0)
		rc = k->dst->be->copy_in(k->dst->db, k->rows, k->n, k->model->dim, COPY_KEY, state, k->err);
	if (rc == 0) {
		k->rep->copied += (int64_t)k->n;
		k->rep->bytes += (int64_t)k->bytes;
		k->done += (int64_t)k->n;
		k->after = last;
		if (k->p->progress)
			k->p->progress(k->p->ud, "copied", k->done, k->total);
	}
	batch_clear(k);
	return rc;
}

static char *dup_or_null(const char *s, int *failed)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*failed = 1;
	return d;
}

static int copy_one(void *ud, const struct store_image *img)
{
	struct copier *k = ud;
	if (img->id <= k->after) {
		k->done++;
		return 0;
	}
	size_t i = k->n;
	struct store_image *t = &k->imgs[i];
	int failed = 0;
	*t = *img;
	t->filename = dup_or_null(img->filename, &failed);
	t->metadata = dup_or_null(img->metadata ? img->metadata : "{}", &failed);
	t->source_library = dup_or_null(img->source_library, &failed);
	t->source_path = dup_or_null(img->source_path, &failed);
	if (failed) {
		store_image_clear(t);
		k->rc = store_fail(k->err, STORE_ERR_NOMEM, "out of memory");
		return 1;
	}
	/* a library image's original is its file, which stays where it is */
	int rc = img->source_library ? 0 : read_original(k->src, img, k->tmp, &k->data[i], k->err);
	if (rc == 0 && (rc = k->src->be->get_vector(k->src->db, img->id, k->model->fingerprint,
						     k->vecs + i * k->model->dim, k->model->dim, k->err)) != 0)
		rc = store_fail(k->err, rc, "image %" PRId64 ": no vector of model %s in the source", img->id,
				k->model->name);
	if (rc != 0) {
		store_image_clear(t);
		free(k->data[i]);
		k->data[i] = NULL;
		k->rc = rc;
		return 1;
	}
	k->n++;
	k->bytes += img->source_library ? 0 : (size_t)img->bytes;
	if (k->n == k->cap || k->bytes >= COPY_BATCH_BYTES)
		if ((k->rc = flush(k)) != 0)
			return 1;
	return 0;
}

/* ---- verifying --------------------------------------------------------------------------------- */

static int same_text(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

static int same_row(const struct store_image *a, const struct store_image *b)
{
	return a->id == b->id && !strcmp(a->sha256, b->sha256) && !strcmp(a->mime, b->mime) &&
	       a->width == b->width && a->height == b->height && a->bytes == b->bytes &&
	       !a->filename == !b->filename && (!a->filename || !strcmp(a->filename, b->filename)) &&
	       a->created_at == b->created_at && !strcmp(a->metadata, b->metadata) &&
	       !strcmp(a->taken.text, b->taken.text) && a->taken.us == b->taken.us &&
	       same_text(a->source_library, b->source_library) && same_text(a->source_path, b->source_path);
}

struct verifier {
	struct copier *k;
	float *va, *vb;
	int64_t done;
};

static int verify_one(void *ud, const struct store_image *img)
{
	struct verifier *v = ud;
	struct copier *k = v->k;
	struct store_image got;
	unsigned char *bytes = NULL;
	size_t dim = k->model->dim;
	int rc = k->dst->be->get(k->dst->db, img->id, &got, k->err);
	if (rc == STORE_ERR_NOT_FOUND)
		rc = store_fail(k->err, STORE_ERR_IO, "verification: image %" PRId64 " is not in the copy", img->id);
	if (rc != 0)
		goto out;
	if (!same_row(img, &got))
		rc = store_fail(k->err, STORE_ERR_IO, "verification: image %" PRId64 "'s row differs in the copy "
				"(did the source change during the copy?)", img->id);
	store_image_clear(&got);
	/* the original again, from the target, hashed (a library image's
	 * file was not copied: its path was, compared with the row) */
	if (rc == 0 && !img->source_library && (rc = read_original(k->dst, img, k->tmp, &bytes, k->err)) != 0 && k->err) {
		char why[1024];
		snprintf(why, sizeof why, "%.1000s", k->err->msg);
		store_fail(k->err, rc, "verification, in the copy: %s", why);
	}
	free(bytes);
	if (rc == 0 && (rc = k->src->be->get_vector(k->src->db, img->id, k->model->fingerprint, v->va, dim, k->err)) == 0 &&
	    (rc = k->dst->be->get_vector(k->dst->db, img->id, k->model->fingerprint, v->vb, dim, k->err)) == 0 &&
	    memcmp(v->va, v->vb, dim * sizeof *v->va))
		rc = store_fail(k->err, STORE_ERR_IO, "verification: image %" PRId64 "'s vector differs in the copy",
				img->id);
out:
	if (rc != 0) {
		k->rc = rc;
		return 1;
	}
	if (++v->done % 1000 == 0 && k->p->progress)
		k->p->progress(k->p->ud, "verified", v->done, k->total);
	return 0;
}

static int verify(struct copier *k)
{
	store_error *err = k->err;
	int64_t a = 0, b = 0, va = 0, vb = 0;
	int rc;
	if ((rc = k->src->be->count(k->src->db, &a, err)) != 0 || (rc = k->dst->be->count(k->dst->db, &b, err)) != 0 ||
	    (rc = k->src->be->count_vectors(k->src->db, k->model->fingerprint, &va, err)) != 0 ||
	    (rc = k->dst->be->count_vectors(k->dst->db, k->model->fingerprint, &vb, err)) != 0)
		return rc;
	if (a != b)
		return store_fail(err, STORE_ERR_IO, "verification: the source has %" PRId64 " images, the copy %" PRId64
				  " (did the source change during the copy? run the copy again)", a, b);
	if (va != vb || va != a)
		return store_fail(err, STORE_ERR_IO, "verification: the source has %" PRId64 " vectors of %s for %" PRId64
				  " images, the copy %" PRId64, va, k->model->name, a, vb);
	struct verifier v = { .k = k };
	v.va = malloc(k->model->dim * sizeof *v.va);
	v.vb = malloc(k->model->dim * sizeof *v.vb);
	if (!v.va || !v.vb)
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	k->rc = 0;
	if (rc == 0)
		rc = k->src->be->foreach_image(k->src->db, verify_one, &v, err);
	if (rc == 0)
		rc = k->rc;
	if (rc == 0 && v.done != a)
		rc = store_fail(err, STORE_ERR_IO, "verification: %" PRId64 " images read of %" PRId64, v.done, a);
	free(v.va);
	free(v.vb);
	k->rep->verified = v.done;
	k->rep->images = b;
	return rc;
}

/* ---- the copy ------------------------------------------------------------------------------------ */

/* What the target's progress record allows: a fresh copy (*after 0), the
 * continuation of this one (*after its last id), or a refusal. */
static int target_state(struct side *src, struct side *dst, const struct store_model *model, int64_t *after,
			store_error *err)
{
	char *state = NULL;
	int64_t n = 0;
	int rc;
	*after = 0;
	if ((rc = dst->be->setting_get(dst->db, COPY_KEY, &state, err)) != 0 ||
	    (rc = dst->be->count(dst->db, &n, err)) != 0)
		goto out;
	if (state) {
		long long last = -1;
		int pos = 0;
		int copying = sscanf(state, "copying %lld %n", &last, &pos) == 1 && pos > 0;
		int done = !copying && sscanf(state, "done %lld %n", &last, &pos) == 1 && pos > 0;
		if ((!copying && !done) || last < 0) {
			rc = store_fail(err, STORE_ERR_INVALID, "%s: its copy record '%.200s' is not clipd's", dst->name,
					state);
		} else if (strcmp(state + pos, src->name)) {
			rc = store_fail(err, STORE_ERR_INVALID, "%s holds %s copy of %s, not of %s: copy into an empty "
					"catalog", dst->name, copying ? "an unfinished" : "a", state + pos, src->name);
		} else if (done) {
			rc = store_fail(err, STORE_ERR_INVALID, "%s already holds a finished copy of %s (%lld images): "
					"nothing to do", dst->name, src->name, last);
		} else {
			struct store_model m;
			int have = 0;
			if ((rc = dst->be->active_model(dst->db, &m, &have, err)) == 0 &&
			    (!have || strcmp(m.fingerprint, model->fingerprint)))
				rc = store_fail(err, STORE_ERR_MODEL, "%s: an unfinished copy of another model than %s's "
						"(%s)", dst->name, src->name, model->name);
			*after = last;
		}
	} else if (n > 0) {
		rc = store_fail(err, STORE_ERR_INVALID, "%s is not empty (%" PRId64 " images): copy into an empty "
				"catalog", dst->name, n);
	} else {
		/* no image, but a library a node was started with */
		rc = copylib_target_empty(&(struct copy_side){ dst->be, dst->db, dst->name }, err);
	}
out:
	free(state);
	return rc;
}

int catalog_copy(const struct catalog_copy_params *p, struct catalog_copy_report *rep_out, store_error *err)
{
	struct catalog_copy_report rep;
	struct side src = { .lock_fd = -1 }, dst = { .lock_fd = -1 };
	struct copier k = { .p = p, .src = &src, .dst = &dst, .tmp = -1, .rep = &rep, .err = err };
	struct store_model model;
	double t0 = clock_mono_s();
	int rc, have = 0;
	memset(&rep, 0, sizeof rep);
	if (!p || !p->from_dir == !p->from_uri || !p->to_dir == !p->to_uri)
		return store_fail(err, STORE_ERR_INVALID, "give one source (a data directory or a URI) and one target");
	if (p->batch == 0 || p->batch > CATALOG_COPY_MAX_BATCH)
		return store_fail(err, STORE_ERR_INVALID, "a batch is 1 to %d images", CATALOG_COPY_MAX_BATCH);
	src.dir = p->from_dir;
	dst.dir = p->to_dir;
	if (p->from_dir && p->to_dir) {
		char a[PATH_MAX], b[PATH_MAX];
		if (realpath(p->from_dir, a) && realpath(p->to_dir, b) && !strcmp(a, b))
			return store_fail(err, STORE_ERR_INVALID, "the source and the target are the same data directory %s",
					  a);
	}
	if (p->from_uri && p->to_uri && !strcmp(p->from_uri, p->to_uri))
		return store_fail(err, STORE_ERR_INVALID, "the source and the target are the same catalog");

	if ((rc = open_source(p, &src, err)) != 0)
		goto out;
	if ((rc = src.be->active_model(src.db, &model, &have, err)) != 0)
		goto out;
	if (!have) {
		rc = store_fail(err, STORE_ERR_MODEL, "%s has no model yet: nothing to copy", src.name);
		goto out;
	}
	k.model = &model;
	rep.model = model;
	if ((rc = src.be->count(src.db, &k.total, err)) != 0)
		goto out;
	if (p->to_uri && (rc = copylib_fit_postgresql(&(struct copy_side){ src.be, src.db, src.name }, err)) != 0)
		goto out;
	if ((rc = open_target(p, &dst, err)) != 0)
		goto out;
	snprintf(rep.from, sizeof rep.from, "%s", src.name);
	snprintf(rep.to, sizeof rep.to, "%s", dst.name);
	if (!strcmp(src.name, dst.name)) {
		rc = store_fail(err, STORE_ERR_INVALID, "the source and the target are the same catalog (%s)", src.name);
		goto out;
	}
	if ((rc = target_state(&src, &dst, &model, &k.after, err)) != 0)
		goto out;
	rep.resumed = k.after > 0;
	rep.resumed_after = k.after;
	if (!rep.resumed) {
		char state[700];
		if (datadir_fmt(state, sizeof state, "copying 0 %s", src.name) != 0) {
			rc = store_fail(err, STORE_ERR_INVALID, "the source's name is too long");
			goto out;
		}
		/* the model first, and the record: from here on the target is this copy */
		if ((rc = dst.be->set_active_model(dst.db, &model, err)) != 0 ||
		    (rc = dst.be->copy_in(dst.db, NULL, 0, model.dim, COPY_KEY, state, err)) != 0)
			goto out;
	}

	k.cap = p->batch;
	k.imgs = calloc(k.cap, sizeof *k.imgs);
	k.data = calloc(k.cap, sizeof *k.data);
	k.rows = calloc(k.cap, sizeof *k.rows);
	k.vecs = malloc(k.cap * model.dim * sizeof *k.vecs);
	if (!k.imgs || !k.data || !k.rows || !k.vecs) {
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	if ((src.be->stores_originals || dst.be->stores_originals) && (k.tmp = temp_fd(dst.dir, err)) < 0) {
		rc = k.tmp;
		goto out;
	}
	rc = src.be->foreach_image(src.db, copy_one, &k, err);
	if (rc == 0)
		rc = k.rc;
	if (rc == 0)
		rc = flush(&k);
	batch_clear(&k);
	if (rc == 0)
		rc = copylib_copy(&(struct copy_side){ src.be, src.db, src.name }, &(struct copy_side){ dst.be, dst.db, dst.name },
				  k.cap, p->progress, p->ud, err);
	if (rc != 0)
		goto out;

	/* the sequences continue past the source's */
	if ((rc = src.be->max_id(src.db, &rep.max_id, err)) != 0 || (rc = src.be->seq(src.db, &rep.seq, err)) != 0 ||
	    (rc = dst.be->copy_end(dst.db, rep.max_id, rep.seq, NULL, NULL, err)) != 0 ||
	    (rc = dst.be->max_id(dst.db, &rep.max_id, err)) != 0 || (rc = dst.be->seq(dst.db, &rep.seq, err)) != 0)
		goto out;
	if (p->progress)
		p->progress(p->ud, "verifying", 0, k.total);
	if ((rc = verify(&k)) != 0 ||
	    (rc = copylib_verify(&(struct copy_side){ src.be, src.db, src.name }, &(struct copy_side){ dst.be, dst.db, dst.name },
				 &rep.libraries, &rep.library_files, err)) != 0)
		goto out;
	{
		char state[700];
		if (datadir_fmt(state, sizeof state, "done %" PRId64 " %s", rep.images, src.name) != 0)
			rc = store_fail(err, STORE_ERR_INVALID, "the source's name is too long");
		else
			rc = dst.be->copy_in(dst.db, NULL, 0, model.dim, COPY_KEY, state, err);
	}
out:
	if (k.tmp >= 0)
		close(k.tmp);
	free(k.imgs);
	free(k.data);
	free(k.rows);
	free(k.vecs);
	side_close(&dst);
	side_close(&src);
	rep.seconds = clock_mono_s() - t0;
	if (rep_out)
		*rep_out = rep;
	return rc;
}

/* catalog_open's question: is this catalog a copy still under way? */
int catalog_copy_unfinished(const struct backend_ops *be, void *db, char *msg, size_t len)
{
	char *state = NULL;
	long long last = 0;
	int pos = 0;
	if (!be->setting_get || be->setting_get(db, COPY_KEY, &state, NULL) != 0 || !state)
		return 0;
	int copying = sscanf(state, "copying %lld %n", &last, &pos) == 1 && pos > 0;
	if (copying)
		snprintf(msg, len, "%s", state + pos);
	free(state);
	return copying;
}
