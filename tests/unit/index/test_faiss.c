/* The FAISS C API as the bootstrap builds it: an inner-product index with
 * ids, search, remove, and a round trip through a file. */
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include "harness.h"

#define DIM 8

static void unit_vector(float *v, int hot)
{
	memset(v, 0, DIM * sizeof *v);
	v[hot % DIM] = 1.0f;
	v[(hot + 1) % DIM] = 0.25f * (float)(hot / DIM);
	float n = 0;
	for (int i = 0; i < DIM; i++)
		n += v[i] * v[i];
	for (int i = 0; i < DIM; i++)
		v[i] /= sqrtf(n);
}

static FaissIndex *make_index(void)
{
	FaissIndex *index = NULL;
	if (faiss_index_factory(&index, DIM, "IDMap2,Flat", METRIC_INNER_PRODUCT) != 0)
		return NULL;
	float vecs[4 * DIM];
	idx_t ids[4] = { 100, 205, 307, 4001 };
	for (int i = 0; i < 4; i++)
		unit_vector(vecs + i * DIM, i * 3);
	if (faiss_Index_add_with_ids(index, 4, vecs, ids) != 0) {
		faiss_Index_free(index);
		return NULL;
	}
	return index;
}

static void test_inner_product_search_returns_ids(void)
{
	FaissIndex *index = make_index();
	REQUIRE(index != NULL);
	CHECK_EQ_INT(faiss_Index_ntotal(index), 4);
	float q[DIM], scores[2];
	idx_t labels[2];
	unit_vector(q, 3); /* the vector stored under id 205 */
	REQUIRE(faiss_Index_search(index, 1, q, 2, scores, labels) == 0);
	CHECK_EQ_INT(labels[0], 205);
	CHECK_NEAR(scores[0], 1.0, 1e-6);
	CHECK(scores[1] < scores[0]);
	faiss_Index_free(index);
}

static void test_remove_ids(void)
{
	FaissIndex *index = make_index();
	REQUIRE(index != NULL);
	FaissIDSelectorBatch *sel = NULL;
	idx_t gone[1] = { 205 };
	REQUIRE(faiss_IDSelectorBatch_new(&sel, 1, gone) == 0);
	size_t removed = 0;
	CHECK(faiss_Index_remove_ids(index, (FaissIDSelector *)sel, &removed) == 0);
	CHECK_EQ_INT(removed, 1);
	faiss_IDSelector_free((FaissIDSelector *)sel);
	CHECK_EQ_INT(faiss_Index_ntotal(index), 3);

	float q[DIM], scores[3];
	idx_t labels[3];
	unit_vector(q, 3);
	REQUIRE(faiss_Index_search(index, 1, q, 3, scores, labels) == 0);
	for (int i = 0; i < 3; i++)
		CHECK(labels[i] != 205);
	faiss_Index_free(index);
}

static void test_write_and_read_back(void)
{
	FaissIndex *index = make_index();
	REQUIRE(index != NULL);
	char path[600];
	snprintf(path, sizeof path, "%s/index.faiss", harness_tmpdir());
	REQUIRE(faiss_write_index_fname(index, path) == 0);

	FaissIndex *loaded = NULL;
	REQUIRE(faiss_read_index_fname(path, 0, &loaded) == 0);
	CHECK_EQ_INT(faiss_Index_ntotal(loaded), 4);
	CHECK_EQ_INT(faiss_Index_d(loaded), DIM);
	float q[DIM], s1[4], s2[4];
	idx_t l1[4], l2[4];
	unit_vector(q, 9);
	REQUIRE(faiss_Index_search(index, 1, q, 4, s1, l1) == 0);
	REQUIRE(faiss_Index_search(loaded, 1, q, 4, s2, l2) == 0);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ_INT(l1[i], l2[i]);
		CHECK_NEAR(s1[i], s2[i], 0);
	}
	faiss_Index_free(index);
	faiss_Index_free(loaded);
}

static void test_unreadable_file_is_an_error(void)
{
	char path[600];
	snprintf(path, sizeof path, "%s/garbage.faiss", harness_tmpdir());
	FILE *f = fopen(path, "wb");
	REQUIRE(f != NULL);
	fputs("not an index", f);
	fclose(f);
	FaissIndex *loaded = NULL;
	CHECK(faiss_read_index_fname(path, 0, &loaded) != 0);
	CHECK(loaded == NULL);
	const char *msg = faiss_get_last_error();
	CHECK(msg != NULL && *msg);
}

int main(void)
{
	RUN(test_inner_product_search_returns_ids);
	RUN(test_remove_ids);
	RUN(test_write_and_read_back);
	RUN(test_unreadable_file_is_an_error);
	return harness_done();
}
