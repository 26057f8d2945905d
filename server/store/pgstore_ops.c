/*
 * The PostgreSQL backend's table of operations (backend.h): pgstore.c's
 * and pgstore_rows.c's functions. Keyword search and libraries are NULL:
 * not on PostgreSQL yet (the catalog says so to the caller).
 */
#include "pgstore_internal.h"

const struct backend_ops pgstore_ops = {
	.name = "PostgreSQL",
	.stores_originals = 1,
	.close = pgstore_close,
	.hash_cache = pgs_hash_cache,
	.active_model = pgs_active_model,
	.set_active_model = pgs_set_active_model,
	.put_model = pgs_put_model,
	.insert = pgr_insert,
	.delete_image = pgr_delete,
	.patch_metadata = pgr_patch_metadata,
	.set_taken_at = pgr_set_taken_at,
	.get = pgr_get,
	.get_by_sha256 = pgr_get_by_sha256,
	.get_many = pgr_get_many,
	.sha256_exists = pgr_sha256_exists,
	.list = pgr_list,
	.count = pgr_count,
	.foreach_image = pgr_foreach_image,
	.read_original = pgr_read_original,
	.get_vector = pgr_get_vector,
	.put_vectors = pgr_put_vectors,
	.vector_ids = pgr_vector_ids,
	.missing_vectors = pgr_missing_vectors,
	.count_vectors = pgr_count_vectors,
	.switch_model = pgs_switch_model,
	.seq = pgr_seq,
	.load_vectors = pgr_load_vectors,
	.changes_since = pgr_changes_since,
	.prune_changes = pgs_prune_changes,
	.scan_selection = pgr_scan_selection,
	.filter_ids = pgr_filter_ids,
	.check = pgr_check,
	.db_bytes = pgs_db_bytes,
	.wait_changes = pgs_wait_changes,
	.copy_in = pgc_copy_in,
	.copy_end = pgc_copy_end,
	.max_id = pgc_max_id,
	.setting_get = pgc_setting_get,
	.identity = pgc_identity,
	/* not on PostgreSQL yet: keyword search, libraries (NULL) */
};
