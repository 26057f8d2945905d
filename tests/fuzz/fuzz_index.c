/*
 * The index file (DIR/index.faiss): clipd's 512-byte header and FAISS's
 * payload behind a checksum. The fingerprint and dimension expected are
 * taken from the input's own header, so that a file made by idx_save (the
 * corpus) loads and its mutations reach every check. Invariants: a file
 * is loaded or refused as corrupt, mismatched or unreadable, never
 * anything else; a loaded index has the dimension asked for and answers a
 * search with at most k results, ids from the file and finite scores.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "idx.h"

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_temp_path(path, sizeof path, "idx", "faiss");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t dim = 4;
	char fp[129] = "fuzz";
	if (size >= 512) {
		memcpy(&dim, data + 16, 8);
		memcpy(fp, data + 68, 128);
		fp[128] = 0;
		if (dim == 0 || dim > 4096)
			dim = 4;
	}
	fuzz_write_file(path, data, size);
	struct idx_params p = idx_default_params();
	p.dim = (size_t)dim;
	idx *ix = NULL;
	idx_error err;
	int rc = idx_load(path, &p, fp, &ix, &err);
	unlink(path);
	if (rc != 0) {
		FUZZ_CHECK(rc == IDX_ERR_CORRUPT || rc == IDX_ERR_MISMATCH || rc == IDX_ERR_IO || rc == IDX_ERR_INVALID,
			   "status %d: %s", rc, err.msg);
		FUZZ_CHECK(ix == NULL, "a refusal with an index");
		return 0;
	}
	float *q = calloc((size_t)dim, sizeof *q);
	FUZZ_CHECK(q != NULL, "out of memory");
	q[0] = 1;
	float scores[8];
	int64_t ids[8];
	size_t n = 0;
	if (idx_search(ix, q, 8, scores, ids, &n, &err) == 0) {
		FUZZ_CHECK(n <= 8 && n <= idx_count(ix), "%zu results of %zu", n, (size_t)idx_count(ix));
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(ids[i] >= 0 && isfinite(scores[i]), "result %zu: id %lld score %g", i,
				   (long long)ids[i], scores[i]);
	}
	free(q);
	idx_free(ix);
	return 0;
}
