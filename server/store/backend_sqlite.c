/*
 * The SQLite backend of the catalog (backend.h): store.h's functions, each
 * called with the store as the table's handle. Nothing here changes what
 * they do.
 */
#include "backend.h"

static void sq_close(void *db)
{
	store_close(db);
}

static store *sq_hash_cache(void *db)
{
	return db;
}

/* The original is a file in the data directory (the catalog writes it). */
static int sq_insert(void *db, const struct store_new_image *img, const void *data, size_t len, const float *vec,
		     size_t dim, int64_t *id, uint64_t *seq, store_error *err)
{
	(void)data;
	(void)len;
	return store_insert(db, img, vec, dim, id, seq, err);
}

static int sq_delete_image(void *db, int64_t id, char sha256[STORE_SHA256_HEX], uint64_t *seq, store_error *err)
{
	return store_delete(db, id, sha256, seq, err);
}

static int sq_active_model(void *db, struct store_model *out, int *found, store_error *err)
{
	return store_active_model(db, out, found, err);
}

static int sq_set_active_model(void *db, const struct store_model *m, store_error *err)
{
	return store_set_active_model(db, m, err);
}

static int sq_put_model(void *db, const struct store_model *m, store_error *err)
{
	return store_put_model(db, m, err);
}

static int sq_patch_metadata(void *db, int64_t id, const char *patch, size_t len, size_t max_bytes, int max_depth, store_error *err)
{
	return store_patch_metadata(db, id, patch, len, max_bytes, max_depth, err);
}

static int sq_set_taken_at(void *db, const int64_t *ids, const struct store_taken_at *taken, size_t n, size_t *changed, store_error *err)
{
	return store_set_taken_at(db, ids, taken, n, changed, err);
}

static int sq_get(void *db, int64_t id, struct store_image *out, store_error *err)
{
	return store_get(db, id, out, err);
}

static int sq_get_by_sha256(void *db, const char *sha256, struct store_image *out, store_error *err)
{
	return store_get_by_sha256(db, sha256, out, err);
}

static int sq_get_many(void *db, const int64_t *ids, size_t n, struct store_image *out, unsigned char *found, store_error *err)
{
	return store_get_many(db, ids, n, out, found, err);
}

static int sq_sha256_exists(void *db, const char *sha256, store_error *err)
{
	return store_sha256_exists(db, sha256, err);
}

static int sq_list(void *db, const struct store_selection *sel, int64_t before_id, size_t limit, struct store_image **items, size_t *n, store_error *err)
{
	return store_list(db, sel, before_id, limit, items, n, err);
}

static int sq_count(void *db, int64_t *n, store_error *err)
{
	return store_count(db, n, err);
}

static int sq_foreach_image(void *db, store_image_fn fn, void *ud, store_error *err)
{
	return store_foreach_image(db, fn, ud, err);
}

static int sq_get_vector(void *db, int64_t id, const char *fingerprint, float *out, size_t dim, store_error *err)
{
	return store_get_vector(db, id, fingerprint, out, dim, err);
}

static int sq_put_vectors(void *db, const int64_t *ids, size_t n, const char *fingerprint, const float *vecs, size_t dim, store_error *err)
{
	return store_put_vectors(db, ids, n, fingerprint, vecs, dim, err);
}

static int sq_vector_ids(void *db, const char *fingerprint, int64_t after_id, int64_t *ids, size_t max, size_t *n, store_error *err)
{
	return store_vector_ids(db, fingerprint, after_id, ids, max, n, err);
}

static int sq_missing_vectors(void *db, const char *fingerprint, int64_t after_id, int64_t *ids, size_t max, size_t *n, store_error *err)
{
	return store_missing_vectors(db, fingerprint, after_id, ids, max, n, err);
}

static int sq_count_vectors(void *db, const char *fingerprint, int64_t *n, store_error *err)
{
	return store_count_vectors(db, fingerprint, n, err);
}

static int sq_switch_model(void *db, const char *fingerprint, store_error *err)
{
	return store_switch_model(db, fingerprint, err);
}

static int sq_seq(void *db, uint64_t *seq, store_error *err)
{
	return store_seq(db, seq, err);
}

static int sq_load_vectors(void *db, size_t dim, int64_t **ids, float **vecs, size_t *n, uint64_t *seq, store_error *err)
{
	return store_load_vectors(db, dim, ids, vecs, n, seq, err);
}

static int sq_changes_since(void *db, uint64_t seq, size_t dim, struct store_changes *out, store_error *err)
{
	return store_changes_since(db, seq, dim, out, err);
}

static int sq_prune_changes(void *db, uint64_t seq, store_error *err)
{
	return store_prune_changes(db, seq, err);
}

static int sq_scan_selection(void *db, const struct store_selection *sel, size_t dim, size_t limit, store_vector_fn fn, void *ud, int *truncated, store_error *err)
{
	return store_scan_selection(db, sel, dim, limit, fn, ud, truncated, err);
}

static int sq_filter_ids(void *db, const struct store_selection *sel, const int64_t *ids, size_t n, unsigned char *keep, store_error *err)
{
	return store_filter_ids(db, sel, ids, n, keep, err);
}

static int sq_keyword_search(void *db, const char *words, const char *not_words, const struct store_selection *sel, size_t k, int64_t *ids, float *scores, size_t *n, store_error *err)
{
	return store_keyword_search(db, words, not_words, sel, k, ids, scores, n, err);
}

static int sq_check(void *db, store_problem_fn fn, void *ud, store_error *err)
{
	return store_check(db, fn, ud, err);
}

static int sq_db_bytes(void *db, int64_t *bytes, store_error *err)
{
	return store_db_bytes(db, bytes, err);
}

static int sq_library_put(void *db, const char *name, const char *root, store_error *err)
{
	return store_library_put(db, name, root, err);
}

static int sq_library_get(void *db, const char *name, struct store_library *out, store_error *err)
{
	return store_library_get(db, name, out, err);
}

static int sq_library_scan_begin(void *db, const char *name, int64_t *scan, store_error *err)
{
	return store_library_scan_begin(db, name, scan, err);
}

static int sq_lib_file_get(void *db, const char *lib, const char *path, struct store_lib_file *out, store_error *err)
{
	return store_lib_file_get(db, lib, path, out, err);
}

static int sq_lib_mark(void *db, const char *lib, int64_t scan, const struct store_lib_mark *m, size_t n, store_error *err)
{
	return store_lib_mark(db, lib, scan, m, n, err);
}

static int sq_lib_pending(void *db, const char *lib, const char *after, size_t max, struct store_lib_file **out, size_t *n, store_error *err)
{
	return store_lib_pending(db, lib, after, max, out, n, err);
}

static int sq_lib_commit(void *db, const char *lib, struct store_lib_outcome *v, size_t n, size_t dim, store_error *err)
{
	return store_lib_commit(db, lib, v, n, dim, err);
}

static int sq_lib_image_refs(void *db, int64_t id, int64_t *refs, store_error *err)
{
	return store_lib_image_refs(db, id, refs, err);
}

static int sq_lib_other_device(void *db, const char *lib, const char *dir, int64_t dev, store_error *err)
{
	return store_lib_other_device(db, lib, dir, dev, err);
}

static int sq_lib_adopt(void *db, int64_t id, const char *sha256, const void *data, size_t len, store_error *err)
{
	(void)sha256;
	(void)data;
	(void)len;   /* the blob, written by the catalog */
	return store_lib_adopt(db, id, err);
}

static int sq_lib_finish(void *db, const char *lib, int64_t scan, const char *const *keep, size_t n_keep, struct store_lib_scan_figures *fig, struct store_lib_gone *gone, store_error *err)
{
	return store_lib_finish(db, lib, scan, keep, n_keep, fig, gone, err);
}

static int sq_lib_counts(void *db, const char *lib, struct store_lib_counts *out, store_error *err)
{
	return store_lib_counts(db, lib, out, err);
}

static int sq_lib_errors(void *db, const char *lib, const char *after, size_t max, struct store_lib_error **out, size_t *n, store_error *err)
{
	return store_lib_errors(db, lib, after, max, out, n, err);
}

static int sq_lib_source(void *db, int64_t id, char **root, char **path, int64_t *size, int64_t *mtime_ns, store_error *err)
{
	return store_lib_source(db, id, root, path, size, mtime_ns, err);
}

static int sq_copy_in(void *db, const struct store_copy_row *rows, size_t n, size_t dim, const char *key,
		      const char *value, store_error *err)
{
	return store_copy_in(db, rows, n, dim, key, value, err);
}

static int sq_copy_end(void *db, int64_t max_id, uint64_t min_seq, const char *key, const char *value,
		       store_error *err)
{
	return store_copy_end(db, max_id, min_seq, key, value, err);
}

static int sq_max_id(void *db, int64_t *id, store_error *err)
{
	return store_max_id(db, id, err);
}

static int sq_copy_libraries(void *db, struct store_text_row **rows, size_t *n, store_error *err)
{
	return store_copy_libraries(db, rows, n, err);
}

static int sq_copy_files(void *db, const char *after_lib, const char *after_path, size_t max,
			 struct store_text_row **rows, size_t *n, store_error *err)
{
	return store_copy_files(db, after_lib, after_path, max, rows, n, err);
}

static int sq_copy_lib_in(void *db, const struct store_text_row *libs, size_t nlibs, const struct store_text_row *files,
			  size_t nfiles, const char *key, const char *value, store_error *err)
{
	return store_copy_lib_in(db, libs, nlibs, files, nfiles, key, value, err);
}

static int sq_setting_get(void *db, const char *key, char **value, store_error *err)
{
	return store_setting_get(db, key, value, err);
}

static int sq_identity(void *db, char *buf, size_t len, store_error *err)
{
	return store_identity(db, buf, len, err);
}

const struct backend_ops sqlite_backend_ops = {
	.name = "sqlite",
	.stores_originals = 0,
	.close = sq_close,
	.hash_cache = sq_hash_cache,
	.active_model = sq_active_model,
	.set_active_model = sq_set_active_model,
	.put_model = sq_put_model,
	.insert = sq_insert,
	.delete_image = sq_delete_image,
	.patch_metadata = sq_patch_metadata,
	.set_taken_at = sq_set_taken_at,
	.get = sq_get,
	.get_by_sha256 = sq_get_by_sha256,
	.get_many = sq_get_many,
	.sha256_exists = sq_sha256_exists,
	.list = sq_list,
	.count = sq_count,
	.foreach_image = sq_foreach_image,
	.get_vector = sq_get_vector,
	.put_vectors = sq_put_vectors,
	.vector_ids = sq_vector_ids,
	.missing_vectors = sq_missing_vectors,
	.count_vectors = sq_count_vectors,
	.switch_model = sq_switch_model,
	.seq = sq_seq,
	.load_vectors = sq_load_vectors,
	.changes_since = sq_changes_since,
	.prune_changes = sq_prune_changes,
	.scan_selection = sq_scan_selection,
	.filter_ids = sq_filter_ids,
	.keyword_search = sq_keyword_search,
	.check = sq_check,
	.db_bytes = sq_db_bytes,
	.copy_in = sq_copy_in,
	.copy_end = sq_copy_end,
	.max_id = sq_max_id,
	.setting_get = sq_setting_get,
	.copy_libraries = sq_copy_libraries,
	.copy_files = sq_copy_files,
	.copy_lib_in = sq_copy_lib_in,
	.identity = sq_identity,
	.library_put = sq_library_put,
	.library_get = sq_library_get,
	.library_scan_begin = sq_library_scan_begin,
	.lib_file_get = sq_lib_file_get,
	.lib_mark = sq_lib_mark,
	.lib_pending = sq_lib_pending,
	.lib_commit = sq_lib_commit,
	.lib_image_refs = sq_lib_image_refs,
	.lib_other_device = sq_lib_other_device,
	.lib_adopt = sq_lib_adopt,
	.lib_finish = sq_lib_finish,
	.lib_counts = sq_lib_counts,
	.lib_errors = sq_lib_errors,
	.lib_source = sq_lib_source,
};
