/* Trained parameters shared between processes (index/shared.c): one
 * training, two indexes built from it over vectors that arrived in other
 * orders answer identically; the parameters read back from an index equal
 * the trained ones; damaged parameters are refused; the retrain rule. */
#include <stdint.h>

#include "idx.h"
#include "harness.h"

#define DIM 32
#define N 1200

static uint64_t mix(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

static void unit_vec(float *v, uint64_t key)
{
	double n = 0;
	for (size_t i = 0; i < DIM; i++) {
		v[i] = (float)((double)(mix(key * 1000003u + i) >> 11) / 9007199254740992.0 - 0.5);
		n += (double)v[i] * v[i];
	}
	for (size_t i = 0; i < DIM; i++)
		v[i] = (float)(v[i] / sqrt(n));
}

static struct idx_params params(size_t threshold)
{
	struct idx_params p = idx_default_params();
	p.dim = DIM;
	p.ivf_threshold = threshold;
	return p;
}

/* ids 1..n with their vectors, in order or reversed */
static void fill(int64_t *ids, float *vecs, size_t n, int reversed)
{
	for (size_t i = 0; i < n; i++) {
		size_t at = reversed ? n - 1 - i : i;
		ids[at] = (int64_t)i + 1;
		unit_vec(vecs + at * DIM, (uint64_t)i + 1);
	}
}

static void test_two_builds_from_one_training_answer_identically(void)
{
	struct idx_params p = params(500);
	int64_t *ids = malloc(N * sizeof *ids), *ids2 = malloc(N * sizeof *ids2);
	float *vecs = malloc(N * DIM * sizeof *vecs), *vecs2 = malloc(N * DIM * sizeof *vecs2);
	REQUIRE(ids && ids2 && vecs && vecs2);
	fill(ids, vecs, N, 0);
	fill(ids2, vecs2, N, 1);
	char type[IDX_MAX_FACTORY];
	void *par = NULL;
	size_t len = 0;
	idx_error err;
	REQUIRE(idx_train(&p, vecs, N, type, &par, &len, &err) == 0);
	CHECK_EQ_STR(type, "IVF16,SQ8");
	REQUIRE(len > 0);

	/* one built from all, the other from 900 then the rest added later */
	idx *a = NULL, *b = NULL;
	REQUIRE(idx_build_trained(&p, type, par, len, N, ids, vecs, N, 7, &a, &err) == 0);
	REQUIRE(idx_build_trained(&p, type, par, len, N, ids2, vecs2, 900, 5, &b, &err) == 0);
	REQUIRE(idx_add(b, ids2 + 900, vecs2 + 900 * DIM, N - 900, 7, &err) == 0);
	CHECK_EQ_STR(idx_type(a), "IVF16,SQ8");
	CHECK_EQ_STR(idx_type(b), "IVF16,SQ8");
	CHECK_EQ_INT(idx_count(a), N);
	CHECK_EQ_INT(idx_count(b), N);
	CHECK_EQ_INT(idx_nprobe(a), idx_nprobe(b));
	CHECK(!idx_wants_build(a));   /* trained for N: no retraining due */

	int same = 1;
	for (uint64_t q = 0; q < 50; q++) {
		float query[DIM], sa[10], sb[10];
		int64_t ia[10], ib[10];
		size_t na = 0, nb = 0;
		unit_vec(query, 100000 + q);
		REQUIRE(idx_search(a, query, 10, sa, ia, &na, &err) == 0);
		REQUIRE(idx_search(b, query, 10, sb, ib, &nb, &err) == 0);
		same &= na == nb && na > 0 && memcmp(ia, ib, na * sizeof *ia) == 0 && memcmp(sa, sb, na * sizeof *sa) == 0;
	}
	CHECK(same);

	/* what each index holds reads back as the very parameters trained */
	void *back = NULL;
	size_t blen = 0;
	REQUIRE(idx_trained_params(b, &back, &blen, &err) == 0);
	CHECK_EQ_INT(blen, len);
	CHECK(back && memcmp(back, par, len) == 0);
	free(back);

	/* a training of other vectors differs */
	void *other = NULL;
	size_t olen = 0;
	REQUIRE(idx_train(&p, vecs + 100 * DIM, N - 100, type, &other, &olen, &err) == 0);
	CHECK(olen != len || memcmp(other, par, len) != 0);
	free(other);

	idx_free(a);
	idx_free(b);
	free(par);
	free(ids);
	free(ids2);
	free(vecs);
	free(vecs2);
}

static void test_exact_below_threshold_and_flat_params(void)
{
	struct idx_params p = params(5000);
	int64_t ids[100];
	float *vecs = malloc(100 * DIM * sizeof *vecs);
	REQUIRE(vecs);
	fill(ids, vecs, 100, 0);
	char type[IDX_MAX_FACTORY];
	void *par = (void *)1;
	size_t len = 1;
	idx_error err;
	REQUIRE(idx_train(&p, vecs, 100, type, &par, &len, &err) == 0);
	CHECK_EQ_STR(type, "Flat");
	CHECK(par == NULL && len == 0);
	idx *ix = NULL;
	REQUIRE(idx_build_trained(&p, "Flat", NULL, 0, 0, ids, vecs, 100, 3, &ix, &err) == 0);
	CHECK(idx_is_exact(ix));
	CHECK_EQ_INT(idx_seq(ix), 3);
	void *back = (void *)1;
	size_t blen = 1;
	REQUIRE(idx_trained_params(ix, &back, &blen, &err) == 0);
	CHECK(back == NULL && blen == 0);
	CHECK(!idx_wants_build(ix));
	idx_free(ix);

	/* past the threshold, an exact index wants a build */
	p.ivf_threshold = 50;
	REQUIRE(idx_build_trained(&p, "Flat", NULL, 0, 0, ids, vecs, 100, 3, &ix, &err) == 0);
	CHECK(idx_wants_build(ix));
	idx_free(ix);
	free(vecs);
}

static void test_damaged_params_are_refused(void)
{
	struct idx_params p = params(500);
	int64_t *ids = malloc(N * sizeof *ids);
	float *vecs = malloc(N * DIM * sizeof *vecs);
	REQUIRE(ids && vecs);
	fill(ids, vecs, N, 0);
	char type[IDX_MAX_FACTORY];
	void *par = NULL;
	size_t len = 0;
	idx_error err;
	REQUIRE(idx_train(&p, vecs, N, type, &par, &len, &err) == 0);
	idx *ix = NULL;

	CHECK_EQ_INT(idx_build_trained(&p, type, par, len / 2, N, ids, vecs, N, 1, &ix, &err), IDX_ERR_CORRUPT);
	CHECK(ix == NULL);
	CHECK_EQ_INT(idx_build_trained(&p, "IVF32,SQ8", par, len, N, ids, vecs, N, 1, &ix, &err), IDX_ERR_CORRUPT);
	CHECK_CONTAINS(err.msg, "IVF32,SQ8");
	CHECK_EQ_INT(idx_build_trained(&p, "HNSW32", par, len, N, ids, vecs, N, 1, &ix, &err), IDX_ERR_CORRUPT);
	CHECK_EQ_INT(idx_build_trained(&p, type, "not an index", 12, N, ids, vecs, N, 1, &ix, &err), IDX_ERR_CORRUPT);
	unsigned char *flipped = malloc(len);
	REQUIRE(flipped);
	memcpy(flipped, par, len);
	flipped[len / 2] ^= 0x10;   /* one bit, inside FAISS's bytes */
	CHECK_EQ_INT(idx_build_trained(&p, type, flipped, len, N, ids, vecs, N, 1, &ix, &err), IDX_ERR_CORRUPT);
	CHECK_CONTAINS(err.msg, "checksum");
	free(flipped);
	CHECK_EQ_INT(idx_build_trained(&p, type, NULL, 0, N, ids, vecs, N, 1, &ix, &err), IDX_ERR_CORRUPT);
	struct idx_params wide = p;
	wide.dim = DIM * 2;
	CHECK_EQ_INT(idx_build_trained(&wide, type, par, len, N, ids, vecs, N / 2, 1, &ix, &err), IDX_ERR_CORRUPT);
	CHECK_CONTAINS(err.msg, "dimension 64");

	/* and the same call with the parameters whole succeeds */
	REQUIRE(idx_build_trained(&p, type, par, len, N, ids, vecs, N, 1, &ix, &err) == 0);
	CHECK_EQ_INT(idx_count(ix), N);
	idx_free(ix);
	free(par);
	free(ids);
	free(vecs);
}

int main(void)
{
	RUN(test_two_builds_from_one_training_answer_identically);
	RUN(test_exact_below_threshold_and_flat_params);
	RUN(test_damaged_params_are_refused);
	return harness_done();
}
