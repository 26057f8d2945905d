/*
 * The catalog's libraries: folders indexed in place. Outcomes of a scan
 * go to the store in one transaction and then to the index, under the
 * writer lock as an upload's do; the original of a library image is its
 * file. See catalog.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_internal.h"
#include "clock.h"
#include "datadir.h"
#include "libpath.h"
#include "sha256.h"

int catalog_original(catalog *c, const struct store_image *img, char *buf, size_t len, size_t *rel_at,
		     int64_t *size, int64_t *mtime_ns, store_error *err)
{
	*rel_at = 0;
	if (!img->source_library) {
		*size = img->bytes;
		*mtime_ns = -1;
		if (c->be->stores_originals)
			return cat_cache_original(c, img->sha256, img->bytes, buf, len, err);
		return datadir_blob_path(c->dir, img->sha256, buf, len, err);
	}
	char *root = NULL, *path = NULL;
	int rc = CAT_DB(c, lib_source, img->id, &root, &path, size, mtime_ns, err);
	if (rc != 0)
		return rc;
	int n = snprintf(buf, len, "%s/%s", root, path);
	if (!libpath_valid(path, strlen(path)))
		rc = store_fail(err, STORE_ERR_NOT_FOUND, "image %lld: its library path is not a path inside the library",
				(long long)img->id);
	else if (n < 0 || (size_t)n >= len)
		rc = store_fail(err, STORE_ERR_INVALID, "the library path of image %lld is too long", (long long)img->id);
	else
		*rel_at = strlen(root) + 1;
	free(root);
	free(path);
	return rc;
}

int catalog_library_put(catalog *c, const char *name, const char *root, store_error *err)
{
	if (c->readonly)
		return store_fail(err, STORE_ERR_INVALID, "the catalog is open read-only");
	return CAT_DB(c, library_put, name, root, err);
}

int catalog_library_get(catalog *c, const char *name, struct store_library *out, store_error *err)
{
	return CAT_DB(c, library_get, name, out, err);
}

int catalog_library_scan_begin(catalog *c, const char *name, int64_t *scan, store_error *err)
{
	return CAT_DB(c, library_scan_begin, name, scan, err);
}

int catalog_library_lock(catalog *c, const char *name, struct catalog_lib_lock **lock, store_error *err)
{
	void *held = NULL;
	*lock = NULL;
	if (!c->be->library_lock)
		return 1;
	int rc = c->be->library_lock(c->db, name, &held, err);
	*lock = held;
	return rc;
}

void catalog_library_unlock(catalog *c, struct catalog_lib_lock *lock)
{
	if (lock && c->be->library_unlock)
		c->be->library_unlock(c->db, lock);
}

int catalog_library_file(catalog *c, const char *lib, const char *path, struct store_lib_file *out,
			 store_error *err)
{
	return CAT_DB(c, lib_file_get, lib, path, out, err);
}

int catalog_library_files(catalog *c, const char *lib, const char *const *paths, size_t n, struct store_lib_file *out,
			  unsigned char *found, store_error *err)
{
	if (c->be->lib_files_get)
		return c->be->lib_files_get(c->db, lib, paths, n, out, found, err);
	for (size_t i = 0; i < n; i++) {
		int rc = catalog_library_file(c, lib, paths[i], &out[i], err);
		if (rc != 0 && rc != STORE_ERR_NOT_FOUND)
			return rc;
		found[i] = rc == 0;
	}
	return 0;
}

int catalog_library_mark(catalog *c, const char *lib, int64_t scan, const struct store_lib_mark *m, size_t n,
			 store_error *err)
{
	return CAT_DB(c, lib_mark, lib, scan, m, n, err);
}

int catalog_library_pending(catalog *c, const char *lib, const char *after, size_t max,
			    struct store_lib_file **out, size_t *n, store_error *err)
{
	return CAT_DB(c, lib_pending, lib, after, max, out, n, err);
}

int catalog_library_image_refs(catalog *c, int64_t id, int64_t *refs, store_error *err)
{
	return CAT_DB(c, lib_image_refs, id, refs, err);
}

int catalog_library_other_device(catalog *c, const char *lib, const char *dir, int64_t dev, store_error *err)
{
	return CAT_DB(c, lib_other_device, lib, dir, dev, err);
}

int catalog_library_adopt(catalog *c, int64_t id, const char *sha256, const void *data, size_t len,
			  store_error *err)
{
	int64_t refs = 0;
	if (c->readonly)
		return store_fail(err, STORE_ERR_INVALID, "the catalog is not open for changes");
	/* most duplicates have their own copy: known without the writer lock */
	int rc = catalog_library_image_refs(c, id, &refs, err);
	if (rc <= 0)
		return rc;
	/* again under the writer lock: a scan's end (catalog_library_finish)
	 * or a delete may be removing this very image */
	pthread_mutex_lock(&c->wlock);
	rc = catalog_library_image_refs(c, id, &refs, err);
	if (rc > 0) {
		int blob = !c->be->stores_originals;
		rc = blob ? datadir_write_blob(c->dir, sha256, data, len, err) : 0;
		if (rc == 0) {
			rc = CAT_DB(c, lib_adopt, id, sha256, data, len, err);
			/* rolled back: the image is still its file's, the blob no one's */
			if (rc < 0 && blob)
				datadir_remove_blob(c->dir, sha256, NULL);
		}
		rowcache_flush(c->rows);   /* the image's source changed */
	}
	pthread_mutex_unlock(&c->wlock);
	return rc;   /* 1 adopted, 0 its own copy already, or an error */
}

int catalog_library_counts(catalog *c, const char *lib, struct store_lib_counts *out, store_error *err)
{
	return CAT_DB(c, lib_counts, lib, out, err);
}

int catalog_library_errors(catalog *c, const char *lib, const char *after, size_t max,
			   struct store_lib_error **out, size_t *n, store_error *err)
{
	return CAT_DB(c, lib_errors, lib, after, max, out, n, err);
}

/* The base name of a library path as an image's filename: NULL when it is
 * too long or not clean UTF-8 (the path itself is the source). */
static const char *file_name_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (strlen(base) > CATALOG_MAX_FILENAME || !cat_clean_utf8(base))
		return NULL;
	return base;
}

/* The index's share of committed outcomes; a failure leaves the index
 * stale (the next open rebuilds it from the rows, which are durable). */
static void index_outcomes(catalog *c, const struct store_lib_outcome *o, const float *vecs, size_t n)
{
	size_t dim = c->model.dim;
	pthread_rwlock_rdlock(&c->ixlock);
	for (size_t i = 0; i < n; i++) {
		if (o[i].seq == 0)
			continue;
		int64_t id = o[i].image_id;
		if (o[i].remove_seq && idx_remove(c->ix, &id, 1, o[i].remove_seq, NULL) != 0)
			c->index_stale = 1;
		if (idx_add(c->ix, &id, vecs + i * dim, 1, o[i].seq, NULL) != 0)
			c->index_stale = 1;
	}
	pthread_rwlock_unlock(&c->ixlock);
}

int catalog_library_commit(catalog *c, const char *lib, struct catalog_lib_item *v, size_t n, store_error *err)
{
	size_t dim = c->model.dim;
	int rc = 0;
	if (c->readonly || !c->ix)
		return store_fail(err, STORE_ERR_INVALID, "the catalog is not open for adding images");
	if (n == 0)
		return 0;
	struct store_lib_outcome *o = calloc(n, sizeof *o);
	struct store_new_image *rows = calloc(n, sizeof *rows);
	float *vecs = calloc(n * dim, sizeof *vecs);
	if (!o || !rows || !vecs) {
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	int64_t now = clock_wall_us();
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct catalog_lib_item *it = &v[i];
		it->image_id = 0;
		it->added = it->replaced = 0;
		o[i] = (struct store_lib_outcome){
			.path = it->path, .dev = it->dev, .ino = it->ino, .size = it->size, .mtime_ns = it->mtime_ns,
			.sha256 = it->sha256, .replace_id = it->replace_id,
			.err_code = it->err_code, .err_msg = it->err_msg, .err_status = it->err_status,
		};
		switch (it->kind) {
		case CATALOG_LIB_NEW: o[i].kind = STORE_LIB_NEW; break;
		case CATALOG_LIB_REPLACE: o[i].kind = STORE_LIB_REPLACE; break;
		case CATALOG_LIB_LINK: o[i].kind = STORE_LIB_LINK; break;
		case CATALOG_LIB_FAILED: o[i].kind = STORE_LIB_FAILED; break;
		case CATALOG_LIB_GONE: o[i].kind = STORE_LIB_GONE; break;
		}
		if (!it->path || !*it->path) {
			rc = store_fail(err, STORE_ERR_INVALID, "a library file needs a path");
			break;
		}
		if (it->kind == CATALOG_LIB_LINK && (!it->sha256 || !sha256_is_hex(it->sha256)))
			rc = store_fail(err, STORE_ERR_INVALID, "bad sha256");
		if (it->kind != CATALOG_LIB_NEW && it->kind != CATALOG_LIB_REPLACE)
			continue;
		if (!it->sha256 || !sha256_is_hex(it->sha256) || !it->vec) {
			rc = store_fail(err, STORE_ERR_INVALID, "a new library image needs its sha256 and vector");
			break;
		}
		if ((rc = cat_normalize(it->vec, dim, vecs + i * dim, err)) != 0)
			break;
		rows[i] = (struct store_new_image){
			.sha256 = it->sha256, .mime = it->mime, .width = it->width, .height = it->height,
			.bytes = it->size, .filename = file_name_of(it->path), .metadata = NULL, .created_at = now,
			.taken = it->taken,
		};
		o[i].img = &rows[i];
		o[i].vec = vecs + i * dim;
	}
	if (rc != 0)
		goto out;
	pthread_mutex_lock(&c->wlock);
	rc = CAT_DB(c, lib_commit, lib, o, n, dim, err);
	if (rc == 0)
		index_outcomes(c, o, vecs, n);
	/* rows whose source, bytes or capture time changed (their ids, or
	 * when the transaction's fate is not known, any) */
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rowcache_invalidate(c->rows, &o[i].image_id, 1);
		rowcache_invalidate(c->rows, &o[i].replace_id, 1);
	}
	if (rc != 0)
		rowcache_flush(c->rows);
	pthread_mutex_unlock(&c->wlock);
	if (rc != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		v[i].image_id = o[i].image_id;
		v[i].added = o[i].seq != 0 && o[i].remove_seq == 0;
		v[i].replaced = o[i].remove_seq != 0;
		if (o[i].remove_seq && o[i].old_sha256[0] && strcmp(o[i].old_sha256, v[i].sha256))
			datadir_remove_thumbs(c->dir, o[i].old_sha256);
	}
	cat_maybe_retrain(c);
out:
	free(o);
	free(rows);
	free(vecs);
	return rc;
}

int catalog_library_finish(catalog *c, const char *lib, int64_t scan, const char *const *keep, size_t n_keep,
			   struct store_lib_scan_figures *fig, store_error *err)
{
	struct store_lib_gone gone;
	if (c->readonly || !c->ix)
		return store_fail(err, STORE_ERR_INVALID, "the catalog is not open for changes");
	pthread_mutex_lock(&c->wlock);
	int rc = CAT_DB(c, lib_finish, lib, scan, keep, n_keep, fig, &gone, err);
	/* images gone, and sources moved to another path of the same bytes */
	rowcache_flush(c->rows);
	if (rc == 0 && gone.n) {
		pthread_rwlock_rdlock(&c->ixlock);
		for (size_t i = 0; i < gone.n; i++)
			if (idx_remove(c->ix, &gone.ids[i], 1, gone.seqs[i], NULL) != 0)
				c->index_stale = 1;
		pthread_rwlock_unlock(&c->ixlock);
	}
	pthread_mutex_unlock(&c->wlock);
	for (size_t i = 0; rc == 0 && i < gone.n; i++)
		datadir_remove_thumbs(c->dir, gone.sha256[i]);
	store_lib_gone_clear(&gone);
	return rc;
}
