/*
 * catalog_check: is a data directory consistent? The database (SQLite's
 * own checks, vectors of the active model), every row's blob, and the
 * saved index brought up to date against the rows. See catalog.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "catalog_internal.h"
#include "datadir.h"

struct check_ctx {
	catalog *c;
	store_problem_fn fn;
	void *ud;
	int problems;
};

static void report(struct check_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(struct check_ctx *x, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	x->problems++;
	if (x->fn)
		x->fn(x->ud, line);
}

static int check_blob(void *ud, const struct store_image *img)
{
	struct check_ctx *x = ud;
	char path[4096];
	struct stat sb;
	if (img->source_library || x->c->be->stores_originals)
		return 0;   /* a library image (the library's file), or an original in the database */
	if (datadir_blob_path(x->c->dir, img->sha256, path, sizeof path, NULL) != 0) {
		report(x, "image %lld: bad sha256 '%s'", (long long)img->id, img->sha256);
		return 0;
	}
	int missing = stat(path, &sb) != 0, wrong = !missing && sb.st_size != img->bytes;
	if (!missing && !wrong)
		return 0;
	/* Deleted meanwhile (a server is running)? Then it is no problem. */
	struct store_image again;
	if (x->c->be->get(x->c->db, img->id, &again, NULL) != 0)
		return 0;
	store_image_clear(&again);
	if (missing)
		report(x, "image %lld: original %s is missing", (long long)img->id, path);
	else
		report(x, "image %lld: original %s has %lld bytes, expected %lld", (long long)img->id,
		       path, (long long)sb.st_size, (long long)img->bytes);
	return 0;
}

/* Load the saved index, replay the change log and compare with the rows.
 * A server may be writing meanwhile: retry when the sequence moved or the
 * index file was replaced. */
static int check_index(struct check_ctx *x, store_error *err)
{
	catalog *c = x->c;
	struct idx_params ip = c->ip;
	ip.dim = c->model.dim;
	struct stat sb;
	int64_t images = 0;
	int rc;
	if (stat(c->index_path, &sb) != 0) {
		if (catalog_shared(c))
			return 0;   /* a node's cache: it builds one from the catalog at start */
		if ((rc = c->be->count(c->db, &images, err)) != 0)
			return rc;
		if (images > 0)
			report(x, "index: %s is missing (%lld images; the next start rebuilds it)",
			       c->index_path, (long long)images);
		return 0;
	}
	char last[256] = "";
	for (int attempt = 0; attempt < 5; attempt++) {
		idx *ix = NULL;
		idx_error ie;
		struct stat loaded;
		if (stat(c->index_path, &loaded) != 0)
			memset(&loaded, 0, sizeof loaded);
		if (idx_load(c->index_path, &ip, c->model.fingerprint, &ix, &ie) != 0) {
			report(x, "index: cannot load %s: %s", c->index_path, ie.msg);
			return 0;
		}
		struct store_changes ch;
		store_error se;
		uint64_t file_seq = idx_seq(ix);
		rc = c->be->changes_since(c->db, file_seq, c->model.dim, &ch, &se);
		if (rc == STORE_ERR_NOT_FOUND) {
			idx_free(ix);
			/* A server saves a newer index and only then forgets the
			 * changes it covers: if the file was replaced since it was
			 * read, read it again. */
			struct stat now;
			if (attempt + 1 < 5 && stat(c->index_path, &now) == 0 &&
			    (now.st_ino != loaded.st_ino || now.st_mtim.tv_sec != loaded.st_mtim.tv_sec ||
			     now.st_mtim.tv_nsec != loaded.st_mtim.tv_nsec))
				continue;
			report(x, "index: %s cannot be brought up to date: %s", c->index_path, se.msg);
			return 0;
		}
		if (rc != 0) {
			idx_free(ix);
			if (err)
				*err = se;
			return rc;
		}
		if (idx_remove(ix, ch.remove_ids, ch.n_remove, ch.last, &ie) != 0 ||
		    idx_add(ix, ch.add_ids, ch.add_vecs, ch.n_add, ch.last, &ie) != 0) {
			store_changes_clear(&ch);
			idx_free(ix);
			report(x, "index: replaying the change log failed: %s", ie.msg);
			return 0;
		}
		uint64_t seq_before = ch.last, seq_after = 0;
		store_changes_clear(&ch);
		size_t count = idx_count(ix);
		idx_free(ix);
		if ((rc = c->be->count(c->db, &images, err)) != 0 || (rc = c->be->seq(c->db, &seq_after, err)) != 0)
			return rc;
		if ((int64_t)count == images)
			return 0;
		snprintf(last, sizeof last, "index: holds %zu vectors, the database %lld images",
			 count, (long long)images);
		if (seq_after == seq_before)
			break;
	}
	report(x, "%s", last);
	return 0;
}

int catalog_check(catalog *c, store_problem_fn fn, void *ud, store_error *err)
{
	struct check_ctx x = { .c = c, .fn = fn, .ud = ud };
	int n = c->be->check(c->db, fn, ud, err);
	if (n < 0)
		return n;
	x.problems += n;
	int rc = c->be->foreach_image(c->db, check_blob, &x, err);
	if (rc != 0)
		return rc;
	if ((rc = check_index(&x, err)) != 0)
		return rc;
	return x.problems;
}
