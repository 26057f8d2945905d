/*
 * The catalog's image operations: add (blob, row, vector, index), get,
 * list, count, metadata patch and check, delete, the stored vector, the
 * thumbnail cache. Lifecycle and the index
 * are in catalog.c, searches in catalog_search.c. See catalog.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog_internal.h"
#include "clock.h"
#include "datadir.h"
#include "sha256.h"

int cat_clean_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p;
		int extra;
		if (c < 0x80) {
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return 0;
			p++;
			continue;
		} else if ((c & 0xe0) == 0xc0 && c >= 0xc2) {
			extra = 1;
		} else if ((c & 0xf0) == 0xe0) {
			extra = 2;
		} else if ((c & 0xf8) == 0xf0 && c <= 0xf4) {
			extra = 3;
		} else {
			return 0;
		}
		unsigned cp = c & (0x3f >> extra);
		for (int i = 1; i <= extra; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((extra == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		p += extra + 1;
	}
	return 1;
}

int catalog_add(catalog *c, const struct catalog_new_image *in, struct store_image *out,
		int *duplicate, store_error *err)
{
	char sha[SHA256_HEX];
	char *meta = NULL;
	float *vec = NULL;
	int rc, dup = 0;
	if (out)
		memset(out, 0, sizeof *out);
	if (duplicate)
		*duplicate = 0;
	if (c->readonly || !c->ix)
		return store_fail(err, STORE_ERR_INVALID, "the catalog is not open for adding images");
	if (!in || !in->data || in->len == 0)
		return store_fail(err, STORE_ERR_INVALID, "no image bytes");
	if (!in->mime || !*in->mime || strlen(in->mime) >= STORE_MIME_MAX)
		return store_fail(err, STORE_ERR_INVALID, "bad MIME type");
	if (in->width <= 0 || in->height <= 0)
		return store_fail(err, STORE_ERR_INVALID, "bad image size %dx%d", in->width, in->height);
	if (in->filename && (strlen(in->filename) > CATALOG_MAX_FILENAME || !cat_clean_utf8(in->filename)))
		return store_fail(err, STORE_ERR_INVALID, "the filename must be at most %d bytes of UTF-8 "
				"without control characters", CATALOG_MAX_FILENAME);
	if (!in->vec || in->dim != c->model.dim)
		return store_fail(err, STORE_ERR_INVALID, "the vector has %zu dimensions, the model %zu",
				in->dim, c->model.dim);
	if (in->sha256) {
		if (!sha256_is_hex(in->sha256))
			return store_fail(err, STORE_ERR_INVALID, "bad sha256");
		memcpy(sha, in->sha256, sizeof sha);
	} else {
		sha256_hex(in->data, in->len, sha);
	}
	if (!(vec = malloc(in->dim * sizeof *vec)))
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if ((rc = cat_normalize(in->vec, in->dim, vec, err)) != 0)
		goto out_free;
	if (in->metadata) {
		size_t ml = in->metadata_len ? in->metadata_len : strlen(in->metadata);
		if ((rc = store_check_metadata(NULL, in->metadata, ml, CATALOG_MAX_METADATA_BYTES,
					       CATALOG_MAX_METADATA_DEPTH, &meta, err)) != 0)
			goto out_free;
	}

	/* Already stored? Then nothing is written. (A backend that stores
	 * originals decides in its insert, by the unique constraint on the
	 * digest, answering STORE_ERR_EXISTS below: no lookup first.) */
	struct store_image existing;
	rc = c->be->stores_originals ? STORE_ERR_NOT_FOUND : c->be->get_by_sha256(c->db, sha, &existing, err);
	if (rc == 0) {
		dup = 1;
		if (out)
			*out = existing;
		else
			store_image_clear(&existing);
		goto out_free;
	}
	if (rc != STORE_ERR_NOT_FOUND)
		goto out_free;

	/* The blob first (outside the writer lock: fsyncs of concurrent uploads
	 * overlap); a backend that stores originals takes the bytes in its
	 * transaction instead. */
	int blobs = !c->be->stores_originals;
	if (blobs && (rc = datadir_write_blob(c->dir, sha, in->data, in->len, err)) != 0)
		goto out_free;

	struct store_new_image row = {
		.sha256 = sha, .mime = in->mime, .width = in->width, .height = in->height,
		.bytes = (int64_t)in->len, .filename = in->filename, .metadata = meta,
		.created_at = clock_wall_us(), .taken = in->taken,
	};
	int64_t id = 0;
	uint64_t seq = 0;
	idx_error ie;
	pthread_mutex_lock(&c->wlock);
	/* A delete of the same bytes may have unlinked the blob after we wrote it. */
	if (blobs && !datadir_blob_exists(c->dir, sha, (int64_t)in->len) &&
	    (rc = datadir_write_blob(c->dir, sha, in->data, in->len, err)) != 0) {
		pthread_mutex_unlock(&c->wlock);
		goto out_free;
	}
	rc = c->be->insert(c->db, &row, in->data, in->len, vec, in->dim, &id, &seq, err);
	if (rc == STORE_ERR_EXISTS) {
		/* Stored meanwhile by a concurrent upload: its row owns the blob. */
		pthread_mutex_unlock(&c->wlock);
		dup = 1;
		rc = out ? c->be->get(c->db, id, out, err) : 0;
		goto out_free;
	}
	if (rc != 0) {
		/* Nothing references the blob (no row has this sha256, and the
		 * writer lock keeps it so): remove it. */
		if (blobs && datadir_remove_blob(c->dir, sha, NULL) != 0)
			c->orphan_risk = 1;
		pthread_mutex_unlock(&c->wlock);
		goto out_free;
	}
	/* The index takes the vector in hand: always on a single node; on a
	 * shared catalog when its index is at the change just before this one
	 * (no other node's change between; the writer lock holds the index
	 * still). Otherwise the node applies this change and every one before
	 * it from the catalog. */
	pthread_rwlock_rdlock(&c->ixlock);
	int direct = blobs || idx_seq(c->ix) + 1 == seq;
	int irc = direct ? idx_add(c->ix, &id, vec, 1, seq, &ie) : 0;
	pthread_rwlock_unlock(&c->ixlock);
	if (!direct)
		irc = rc = cat_catch_up_locked(c, NULL, err);
	else if (irc != 0)
		rc = cat_idx_fail(err, &ie, "add to the index");
	if (irc != 0) {
		/* Not searchable, so not acknowledged: take the row back out. */
		uint64_t seq2;
		/* (a shared catalog's index takes the remove at its next catch-up) */
		if (c->be->delete_image(c->db, id, NULL, &seq2, NULL) == 0 && blobs) {
			pthread_rwlock_rdlock(&c->ixlock);
			idx_remove(c->ix, &id, 1, seq2, NULL);
			pthread_rwlock_unlock(&c->ixlock);
			if (datadir_remove_blob(c->dir, sha, NULL) != 0)
				c->orphan_risk = 1;
		}
		pthread_mutex_unlock(&c->wlock);
		goto out_free;
	}
	pthread_mutex_unlock(&c->wlock);
	cat_maybe_retrain(c);

	if (out) {
		out->id = id;
		memcpy(out->sha256, sha, sizeof out->sha256);
		snprintf(out->mime, sizeof out->mime, "%s", in->mime);
		out->width = in->width;
		out->height = in->height;
		out->bytes = (int64_t)in->len;
		out->created_at = row.created_at;
		out->taken = row.taken;
		out->filename = in->filename ? strdup(in->filename) : NULL;
		out->metadata = meta ? meta : strdup("{}");
		meta = NULL;
		if (!out->metadata || (in->filename && !out->filename)) {
			/* The image is stored; only the copy failed. */
			store_image_clear(out);
			rc = c->be->get(c->db, id, out, err);
		}
	}
out_free:
	if (rc == 0 && duplicate)
		*duplicate = dup;
	free(meta);
	free(vec);
	return rc;
}

int catalog_set_taken_at(catalog *c, const int64_t *ids, const struct store_taken_at *taken, size_t n,
			 size_t *changed, store_error *err)
{
	if (c->readonly)
		return store_fail(err, STORE_ERR_INVALID, "the catalog is open read-only");
	int rc = c->be->set_taken_at(c->db, ids, taken, n, changed, err);
	rowcache_invalidate(c->rows, ids, n);
	return rc;
}

int catalog_get(catalog *c, int64_t id, struct store_image *out, store_error *err)
{
	if (c->rows && rowcache_get(c->rows, id, out) == 1)
		return 0;
	uint64_t epoch = c->rows ? rowcache_epoch(c->rows) : 0;
	int rc = c->be->get(c->db, id, out, err);
	if (rc == 0 && c->rows)
		rowcache_put(c->rows, epoch, out);
	return rc;
}

int catalog_get_by_sha256(catalog *c, const char *sha256, struct store_image *out, store_error *err)
{
	return c->be->get_by_sha256(c->db, sha256, out, err);
}

int catalog_blob_path(const catalog *c, const char *sha256, char *buf, size_t len, store_error *err)
{
	return datadir_blob_path(c->dir, sha256, buf, len, err);
}

int catalog_count(catalog *c, int64_t *n, store_error *err)
{
	return c->be->count(c->db, n, err);
}

int catalog_thumb_path(const catalog *c, const char *sha256, int size, char *buf, size_t len,
		       store_error *err)
{
	return datadir_thumb_path(c->dir, sha256, size, buf, len, err);
}

int catalog_put_thumb(catalog *c, const char *sha256, int size, const void *jpeg, size_t len,
		      store_error *err)
{
	return datadir_write_thumb(c->dir, sha256, size, jpeg, len, err);
}

int catalog_list(catalog *c, const struct store_selection *sel, int64_t cursor, size_t limit,
		 struct store_image **items, size_t *n, int64_t *next_cursor, store_error *err)
{
	*items = NULL;
	*n = 0;
	*next_cursor = 0;
	if (limit == 0 || limit > CATALOG_MAX_LIST)
		return store_fail(err, STORE_ERR_INVALID, "limit must be 1 to %d", CATALOG_MAX_LIST);
	if (cursor < 0)
		return store_fail(err, STORE_ERR_INVALID, "bad cursor");
	struct store_image *got = NULL;
	size_t count = 0;
	/* One more than asked, to know whether there is a next page. */
	uint64_t epoch = c->rows ? rowcache_epoch(c->rows) : 0;
	int rc = c->be->list(c->db, sel, cursor, limit + 1, &got, &count, err);
	if (rc != 0)
		return rc;
	for (size_t i = 0; c->rows && i < count; i++)
		rowcache_put(c->rows, epoch, &got[i]);
	if (count > limit) {
		store_image_clear(&got[limit]);
		count = limit;
		*next_cursor = got[limit - 1].id;
	}
	*items = got;
	*n = count;
	return 0;
}

/* A caller's metadata limits, the ceilings for 0 or more. */
static void metadata_limits(size_t *max_bytes, int *max_depth)
{
	if (*max_bytes == 0 || *max_bytes > CATALOG_MAX_METADATA_BYTES)
		*max_bytes = CATALOG_MAX_METADATA_BYTES;
	if (*max_depth <= 0 || *max_depth > CATALOG_MAX_METADATA_DEPTH)
		*max_depth = CATALOG_MAX_METADATA_DEPTH;
}

int catalog_patch_metadata(catalog *c, int64_t id, const char *patch, size_t len, size_t max_bytes,
			   int max_depth, struct store_image *out, store_error *err)
{
	if (out)
		memset(out, 0, sizeof *out);
	if (c->readonly)
		return store_fail(err, STORE_ERR_INVALID, "the catalog is open read-only");
	metadata_limits(&max_bytes, &max_depth);
	int rc = c->be->patch_metadata(c->db, id, patch, len, max_bytes, max_depth, err);
	/* even on failure: a commit whose answer was lost may have changed it */
	rowcache_invalidate(c->rows, &id, 1);
	if (rc == 0 && catalog_shared(c) && c->ix) {
		/* this node applies the patch's number now, so that its answer's
		 * X-Clipd-Seq covers it for a min_seq read through another node
		 * (best effort: else the follower applies it within a second) */
		pthread_mutex_lock(&c->wlock);
		cat_catch_up_locked(c, NULL, NULL);
		pthread_mutex_unlock(&c->wlock);
	}
	if (rc == 0 && out)
		rc = c->be->get(c->db, id, out, err);
	return rc;
}

int catalog_delete(catalog *c, int64_t id, store_error *err)
{
	char sha[STORE_SHA256_HEX];
	uint64_t seq = 0;
	if (c->readonly || !c->ix)
		return store_fail(err, STORE_ERR_INVALID, "the catalog is not open for deleting images");
	pthread_mutex_lock(&c->wlock);
	int rc = c->be->delete_image(c->db, id, sha, &seq, err);
	rowcache_invalidate(c->rows, &id, 1);
	if (rc == 0) {
		/* A failure here leaves a ghost vector whose row is gone:
		 * searches skip it, and the count check at the next open
		 * rebuilds the index. The delete itself is durable. */
		if (c->be->stores_originals) {
			/* a shared catalog: this change and every one before it */
			if (cat_catch_up_locked(c, NULL, NULL) != 0)
				c->index_stale = 1;
		} else {
			pthread_rwlock_rdlock(&c->ixlock);
			if (idx_remove(c->ix, &id, 1, seq, NULL) != 0)
				c->index_stale = 1;
			pthread_rwlock_unlock(&c->ixlock);
		}
		/* Under the writer lock: an upload of the same bytes re-checks
		 * the blob under this lock before it commits. */
		if (datadir_remove_blob(c->dir, sha, NULL) != 0)
			c->orphan_risk = 1;
	}
	pthread_mutex_unlock(&c->wlock);
	/* The thumbnails are a cache: outside the lock, best effort. */
	if (rc == 0)
		datadir_remove_thumbs(c->dir, sha);
	return rc;
}

int catalog_get_vector(catalog *c, int64_t id, float *out, size_t dim, store_error *err)
{
	if (dim != c->model.dim)
		return store_fail(err, STORE_ERR_INVALID, "the model's vectors have %zu dimensions, not %zu",
				c->model.dim, dim);
	return c->be->get_vector(c->db, id, c->model.fingerprint, out, dim, err);
}

int catalog_check_metadata(catalog *c, const char *json, size_t len, size_t max_bytes, int max_depth,
			   char **compact, store_error *err)
{
	(void)c;
	metadata_limits(&max_bytes, &max_depth);
	return store_check_metadata(NULL, json, len, max_bytes, max_depth, compact, err);
}

int catalog_export_page(catalog *c, int64_t after_id, size_t max, struct store_image *rows,
			float *vecs, size_t dim, size_t *n, int64_t *last, store_error *err)
{
	*n = 0;
	*last = 0;
	if (max == 0 || max > CATALOG_MAX_LIST)
		return store_fail(err, STORE_ERR_INVALID, "page size must be 1 to %d", CATALOG_MAX_LIST);
	if (dim != c->model.dim)
		return store_fail(err, STORE_ERR_INVALID, "the model's vectors have %zu dimensions, not %zu",
				c->model.dim, dim);
	int64_t ids[CATALOG_MAX_LIST];
	unsigned char found[CATALOG_MAX_LIST];
	size_t m = 0;
	int rc = c->be->vector_ids(c->db, c->model.fingerprint, after_id, ids, max, &m, err);
	if (rc != 0 || m == 0)
		return rc;
	rc = c->be->get_many(c->db, ids, m, rows, found, err);
	if (rc != 0)
		return rc;
	size_t kept = 0;
	for (size_t i = 0; i < m; i++) {
		if (!found[i])
			continue;
		rc = c->be->get_vector(c->db, ids[i], c->model.fingerprint, vecs + kept * dim, dim, err);
		if (rc == STORE_ERR_NOT_FOUND) {   /* deleted since the ids were read */
			store_image_clear(&rows[i]);
			continue;
		}
		if (rc != 0) {
			for (size_t j = i; j < m; j++)
				store_image_clear(&rows[j]);
			for (size_t j = 0; j < kept; j++)
				store_image_clear(&rows[j]);
			return rc;
		}
		if (kept != i) {
			rows[kept] = rows[i];
			memset(&rows[i], 0, sizeof rows[i]);
		}
		kept++;
	}
	*n = kept;
	*last = ids[m - 1];
	return 0;
}

int catalog_tmp_dir(const catalog *c, char *buf, size_t len, store_error *err)
{
	return datadir_path(c->dir, DATADIR_TMP, buf, len, err);
}

/* A backend that stores originals: the data directory keeps a copy of the
 * ones served (a cache, named like a blob), fetched a piece at a time
 * through DATA/tmp so that a 30 MB original is never in memory at once. */
int cat_cache_original(catalog *c, const char *sha256, int64_t bytes, char *buf, size_t len, store_error *err)
{
	char tmpdir[4096], tmp[4096];
	int rc = datadir_blob_path(c->dir, sha256, buf, len, err);
	if (rc != 0 || datadir_blob_exists(c->dir, sha256, bytes))
		return rc;
	if ((rc = datadir_path(c->dir, DATADIR_TMP, tmpdir, sizeof tmpdir, err)) != 0)
		return rc;
	if (datadir_fmt(tmp, sizeof tmp, "%s/original-XXXXXX", tmpdir) != 0)
		return store_fail(err, STORE_ERR_INVALID, "data directory path too long");
	int fd = mkstemp(tmp);
	if (fd < 0)
		return datadir_errno(err, errno, "create", tmp);
	rc = c->be->read_original(c->db, sha256, fd, err);
	if (close(fd) != 0 && rc == 0)
		rc = datadir_errno(err, errno, "write", tmp);
	if (rc == 0)
		rc = datadir_adopt_blob(c->dir, sha256, tmp, bytes, err);
	if (rc != 0)
		unlink(tmp);
	return rc;
}
