/*
 * Text from a client (a search query, labels, texts to embed) through
 * CLIP's tokenizer with the bundled vocabulary. Invariants: the ids start
 * with the start token and end with the end token, fit the context (77),
 * every id is a vocabulary id (below the start token) in between, and the
 * same text tokenizes the same twice; a longer buffer never changes a
 * text that fits.
 */
#include <string.h>

#include "clip.h"
#include "fuzz.h"

static clip_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	clip_error err;
	FUZZ_CHECK(clip_tokenizer_load(NULL, &tok, &err) == 0, "load: %s", err.msg);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 16384)
		return 0;
	int32_t ids[77], again[77], wide[512];
	size_t n = 0, n2 = 0, nw = 0;
	clip_error err;
	const char *text = (const char *)data;
	FUZZ_CHECK(clip_tokenize(tok, text, size, ids, 77, &n, &err) == 0, "tokenize: %s", err.msg);
	FUZZ_CHECK(n >= 2 && n <= 77, "%zu ids", n);
	FUZZ_CHECK(ids[0] == CLIP_TOKEN_SOT && ids[n - 1] == CLIP_TOKEN_EOT, "not bracketed: %d ... %d", ids[0],
		   ids[n - 1]);
	for (size_t i = 1; i + 1 < n; i++)
		FUZZ_CHECK(ids[i] >= 0 && ids[i] < CLIP_TOKEN_SOT, "id %d at %zu", ids[i], i);
	FUZZ_CHECK(clip_tokenize(tok, text, size, again, 77, &n2, &err) == 0 && n2 == n
			   && !memcmp(ids, again, n * sizeof *ids),
		   "not deterministic");
	FUZZ_CHECK(clip_tokenize(tok, text, size, wide, 512, &nw, &err) == 0, "tokenize: %s", err.msg);
	if (nw <= 77)
		FUZZ_CHECK(nw == n && !memcmp(ids, wide, n * sizeof *ids), "a wider buffer changed the ids");
	else
		FUZZ_CHECK(n == 77 && !memcmp(ids, wide, 76 * sizeof *ids), "truncation is not a prefix");
	size_t two = 0;
	FUZZ_CHECK(clip_tokenize(tok, text, size, again, 2, &two, &err) == 0 && two == 2
			   && again[0] == CLIP_TOKEN_SOT && again[1] == CLIP_TOKEN_EOT,
		   "two ids");
	return 0;
}
