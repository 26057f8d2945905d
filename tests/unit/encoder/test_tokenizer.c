/*
 * The CLIP tokenizer against OpenAI's ids: every golden row with the bundled
 * vocabulary and with a Hugging Face vocab.json + merges.txt, the corners
 * of Python's text cleaning one by one, truncation, special tokens, bad
 * UTF-8, bad or missing vocabulary files, and concurrent use.
 */
#include <pthread.h>
#include <stdint.h>

#include <cJSON.h>

#include "clip.h"
#include "harness.h"

#define CTX 77
#define MAX_ROWS 512

struct row {
	char *text;
	int32_t ids[CTX];
	size_t n;
};

static struct row rows[MAX_ROWS];
static size_t n_rows;

/* tests/data/tokenizer/tokens.jsonl: {"text", "ids"} per line. */
static int load_rows(void)
{
	size_t len;
	char *all = (char *)harness_read_file(TEST_DATA_DIR "/tokenizer/tokens.jsonl", &len);
	if (!all)
		return -1;
	for (char *line = strtok(all, "\n"); line && n_rows < MAX_ROWS; line = strtok(NULL, "\n")) {
		cJSON *doc = cJSON_Parse(line);
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(doc, "text");
		const cJSON *ids = cJSON_GetObjectItemCaseSensitive(doc, "ids");
		if (!cJSON_IsString(text) || !cJSON_IsArray(ids) || cJSON_GetArraySize(ids) > CTX) {
			cJSON_Delete(doc);
			free(all);
			return -1;
		}
		struct row *r = &rows[n_rows++];
		r->text = strdup(text->valuestring);
		const cJSON *id;
		cJSON_ArrayForEach(id, ids)
			r->ids[r->n++] = (int32_t)id->valueint;
		cJSON_Delete(doc);
	}
	free(all);
	return n_rows > 0 ? 0 : -1;
}

static int tokenize_str(const clip_tokenizer *tok, const char *text, int32_t *ids, size_t max, size_t *n)
{
	clip_error err = { 0 };
	int rc = clip_tokenize(tok, text, strlen(text), ids, max, n, &err);
	if (rc)
		fprintf(stderr, "  clip_tokenize(\"%s\"): %s\n", text, err.msg);
	return rc;
}

/* Every golden row must come out identical. */
static void check_goldens(const clip_tokenizer *tok)
{
	size_t bad = 0;
	for (size_t i = 0; i < n_rows; i++) {
		int32_t ids[CTX];
		size_t n = 0;
		int same = tokenize_str(tok, rows[i].text, ids, CTX, &n) == 0 && n == rows[i].n &&
			   !memcmp(ids, rows[i].ids, n * sizeof *ids);
		if (!same && bad++ < 5)
			HARNESS_FAIL("row %zu \"%.60s\": %zu ids, expected %zu", i + 1, rows[i].text, n, rows[i].n);
	}
	CHECK_EQ_INT(bad, 0);
}

static clip_tokenizer *bundled;

static void test_goldens_with_bundled_vocabulary(void)
{
	REQUIRE(n_rows >= 200);
	check_goldens(bundled);
}

static void test_goldens_with_hf_vocab_and_merges(void)
{
	clip_tokenizer *tok = NULL;
	clip_error err = { 0 };
	REQUIRE(clip_tokenizer_load(TEST_DATA_DIR "/tiny-clip-hf", &tok, &err) == 0);
	check_goldens(tok);
	clip_tokenizer_free(tok);
}

static void test_openclip_dir_without_tokenizer_files_uses_bundled(void)
{
	clip_tokenizer *tok = NULL;
	clip_error err = { 0 };
	REQUIRE(clip_tokenizer_load(TEST_DATA_DIR "/tiny-clip-openclip", &tok, &err) == 0);
	int32_t ids[CTX];
	size_t n = 0;
	REQUIRE(tokenize_str(tok, "a photo of a cat", ids, CTX, &n) == 0);
	const int32_t want[] = { 49406, 320, 1125, 539, 320, 2368, 49407 };
	CHECK_EQ_INT(n, 7);
	CHECK(n == 7 && !memcmp(ids, want, sizeof want));
	clip_tokenizer_free(tok);
}

struct hand_case {
	const char *text;
	int32_t ids[12];
};

/* Ids from OpenAI's simple_tokenizer (ftfy replaced by NFC). */
static const struct hand_case hand_cases[] = {
	/* str.lower()'s full mapping: U+0130 -> "i" U+0307 */
	{ "\xc4\xb0stanbul", { 49406, 328, 16384, 11231, 49407 } },
	/* final sigma: word-final, alone, before case-ignorables */
	{ "\xce\x9f\xce\x94\xce\x9f\xce\xa3", { 49406, 138, 123, 138, 112, 138, 123, 139, 480, 49407 } },
	{ "\xce\xa3", { 49406, 139, 481, 49407 } },
	{ "a\xce\xa3'", { 49406, 64, 139, 480, 262, 49407 } },
	{ "a\xce\xa3'b", { 49406, 64, 139, 481, 262, 321, 49407 } },
	/* legacy entity without its semicolon, longest prefix */
	{ "&notit;", { 49406, 126, 361, 585, 282, 49407 } },
	{ "&notin;", { 49406, 17788, 487, 49407 } },
	{ "&ampx", { 49406, 261, 343, 49407 } },
	{ "&lt3", { 49406, 283, 274, 49407 } },
	{ "&amp;amp;", { 49406, 261, 49407 } },
	/* numeric references: Windows-1252, invalid, dropped */
	{ "&#x80;", { 49406, 6309, 49407 } },
	{ "&#128;", { 49406, 6309, 49407 } },
	{ "&#0;", { 49406, 39802, 49407 } },
	{ "&#xD800;", { 49406, 39802, 49407 } },
	{ "&#x110000;", { 49406, 39802, 49407 } },
	{ "&#1;x", { 49406, 343, 49407 } },
	{ "&#X41;&#65", { 49406, 3894, 49407 } },
	/* U+0085 is \s; U+001C is not, but str.strip() removes it at the ends */
	{ "a\xc2\x85" "b", { 49406, 320, 321, 49407 } },
	{ "a\x1c" "b", { 49406, 320, 472, 321, 49407 } },
	{ "\x1c" "a\x1c", { 49406, 320, 49407 } },
	{ "\xe2\x80\xa8" "a\xe3\x80\x80" "b\xc2\xa0" "c", { 49406, 320, 321, 322, 49407 } },
	/* U+0345 matches no class of the pattern under IGNORECASE */
	{ "x\xcd\x85y", { 49406, 343, 344, 49407 } },
	/* "'s" matches U+017F case-insensitively; so does the special token's s */
	{ "it'\xc5\xbf", { 49406, 585, 6, 129, 379, 49407 } },
	{ "<|\xc5\xbftartoftext|>", { 49406, 27, 91, 129, 123, 2002, 6659, 18169, 91, 285, 49407 } },
	/* NFC */
	{ "e\xcc\x81", { 49406, 4166, 49407 } },
	{ "A\xcc\x8a", { 49406, 127, 354, 49407 } },
	/* a long run of one letter (BPE merges left to right, no overlap) */
	{ "aaaaaaaaaaaaa", { 49406, 23126, 31095, 49407 } },
};

static size_t id_count(const int32_t *ids)
{
	size_t n = 1;
	while (ids[n - 1] != CLIP_TOKEN_EOT || n == 1)
		n++;
	return n;
}

static void test_hand_picked_cases(void)
{
	for (size_t i = 0; i < sizeof hand_cases / sizeof hand_cases[0]; i++) {
		const struct hand_case *c = &hand_cases[i];
		int32_t ids[CTX];
		size_t n = 0, want = id_count(c->ids);
		REQUIRE(tokenize_str(bundled, c->text, ids, CTX, &n) == 0);
		if (n != want || memcmp(ids, c->ids, n * sizeof *ids)) {
			HARNESS_FAIL("case %zu \"%s\": got %zu ids:", i, c->text, n);
			for (size_t k = 0; k < n; k++)
				fprintf(stderr, " %d", ids[k]);
			fputc('\n', stderr);
		}
	}
}

static void test_special_tokens_in_text(void)
{
	int32_t ids[CTX];
	size_t n = 0;
	REQUIRE(tokenize_str(bundled, "<|startoftext|><|endoftext|>", ids, CTX, &n) == 0);
	CHECK_EQ_INT(n, 4);
	CHECK(ids[0] == 49406 && ids[1] == 49406 && ids[2] == 49407 && ids[3] == 49407);
	REQUIRE(tokenize_str(bundled, "a<|endoftext|>b", ids, CTX, &n) == 0);
	CHECK_EQ_INT(n, 5);
	CHECK(ids[1] == 320 && ids[2] == 49407 && ids[3] == 321 && ids[4] == 49407);
	/* the empty text and whitespace only are start and end alone */
	REQUIRE(tokenize_str(bundled, " \t\r\n\xe3\x80\x80", ids, CTX, &n) == 0);
	CHECK_EQ_INT(n, 2);
	size_t m = 9;
	CHECK(clip_tokenize(bundled, NULL, 0, ids, CTX, &m, NULL) == 0);
	CHECK_EQ_INT(m, 2);
	CHECK(ids[0] == CLIP_TOKEN_SOT && ids[1] == CLIP_TOKEN_EOT);
}

static void test_truncation_keeps_end_token(void)
{
	char text[600] = "";
	for (int i = 0; i < 100; i++)
		strcat(text, "word ");
	int32_t ids[200];
	size_t n = 0;
	REQUIRE(tokenize_str(bundled, text, ids, CTX, &n) == 0);
	CHECK_EQ_INT(n, CTX);
	CHECK_EQ_INT(ids[0], CLIP_TOKEN_SOT);
	CHECK_EQ_INT(ids[CTX - 1], CLIP_TOKEN_EOT);
	CHECK_EQ_INT(ids[CTX - 2], 2653);  /* "word</w>" */
	/* the untruncated form has all 100 words */
	REQUIRE(tokenize_str(bundled, text, ids, 200, &n) == 0);
	CHECK_EQ_INT(n, 102);
	/* the smallest buffers */
	REQUIRE(tokenize_str(bundled, text, ids, 2, &n) == 0);
	CHECK(n == 2 && ids[0] == CLIP_TOKEN_SOT && ids[1] == CLIP_TOKEN_EOT);
	REQUIRE(tokenize_str(bundled, text, ids, 3, &n) == 0);
	CHECK(n == 3 && ids[1] == 2653 && ids[2] == CLIP_TOKEN_EOT);
	/* a word cut in the middle of its BPE pieces */
	REQUIRE(tokenize_str(bundled, "supercalifragilisticexpialidocious", ids, 4, &n) == 0);
	CHECK(n == 4 && ids[1] == 1642 && ids[2] == 2857 && ids[3] == CLIP_TOKEN_EOT);
	/* and fewer than two is refused, writing nothing */
	clip_error err = { 0 };
	ids[0] = -1;
	CHECK_EQ_INT(clip_tokenize(bundled, "a", 1, ids, 1, &n, &err), CLIP_ERR_INVALID);
	CHECK(err.msg[0] != 0);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(ids[0], -1);
}

static void test_invalid_utf8_is_replaced(void)
{
	int32_t a[CTX], b[CTX];
	size_t na = 0, nb = 0;
	/* each maximal invalid subpart is one U+FFFD, as bytes.decode("utf-8", "replace") */
	const char *pairs[][2] = {
		{ "a\xff" "b", "a\xef\xbf\xbd" "b" },
		{ "x\xe2\x82y", "x\xef\xbf\xbdy" },
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xc0\x80z", "\xef\xbf\xbd\xef\xbf\xbdz" },
		{ "end\xf0\x9f\x98", "end\xef\xbf\xbd" },
	};
	for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		REQUIRE(tokenize_str(bundled, pairs[i][0], a, CTX, &na) == 0);
		REQUIRE(tokenize_str(bundled, pairs[i][1], b, CTX, &nb) == 0);
		CHECK(na == nb && !memcmp(a, b, na * sizeof *a));
	}
	/* random bytes, NULs included: never a crash, always SOT ... EOT */
	static const unsigned char alphabet[16] = { '&', '#', ';', 'x', 0xce, 0xa3, 0xcd, 0x85,
						    'a', ' ', 0x80, 0xff, '\'', '<', '|', 0 };
	uint32_t x = 12345;
	unsigned char buf[97];
	for (int round = 0; round < 3000; round++) {
		size_t len = (size_t)round % sizeof buf;
		for (size_t k = 0; k < len; k++) {
			x = x * 1103515245u + 12345u;
			buf[k] = round & 1 ? (unsigned char)(x >> 24) : alphabet[(x >> 24) % 16];
		}
		size_t n = 0;
		clip_error err = { 0 };
		if (clip_tokenize(bundled, (const char *)buf, len, a, CTX, &n, &err) != 0 || n < 2 ||
		    a[0] != CLIP_TOKEN_SOT || a[n - 1] != CLIP_TOKEN_EOT) {
			HARNESS_FAIL("random bytes, round %d: %s", round, err.msg);
			break;
		}
	}
}

static void test_bad_arguments(void)
{
	int32_t ids[4];
	size_t n = 7;
	clip_error err = { 0 };
	CHECK_EQ_INT(clip_tokenize(NULL, "a", 1, ids, 4, &n, &err), CLIP_ERR_INVALID);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(clip_tokenize(bundled, NULL, 3, ids, 4, &n, &err), CLIP_ERR_INVALID);
	CHECK_EQ_INT(clip_tokenize(bundled, "a", 1, NULL, 4, &n, &err), CLIP_ERR_INVALID);
	CHECK_EQ_INT(clip_tokenize(bundled, "a", 1, ids, 4, NULL, &err), CLIP_ERR_INVALID);
	CHECK_EQ_INT(clip_tokenizer_load(NULL, NULL, &err), CLIP_ERR_INVALID);
	clip_tokenizer_free(NULL);
}

/* ---- vocabulary files ---------------------------------------------------- */

static void write_file(const char *dir, const char *name, const char *content)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(content, f);
	fclose(f);
}

static void copy_file(const char *dir, const char *name, const char *src)
{
	size_t len;
	char *data = (char *)harness_read_file(src, &len);
	if (!data) {
		perror(src);
		exit(2);
	}
	write_file(dir, name, data);
	free(data);
}

/* Load dir, expecting failure with code; the message must say something. */
static void expect_load_error(const char *dir, int code, const char *needle)
{
	static char sentinel;
	clip_tokenizer *tok = (clip_tokenizer *)(void *)&sentinel;  /* must come back NULL */
	clip_error err = { 0 };
	int rc = clip_tokenizer_load(dir, &tok, &err);
	if (rc != code)
		HARNESS_FAIL("load %s: got %d, expected %d (%s)", dir, rc, code, err.msg);
	CHECK(tok == NULL);
	CHECK(err.msg[0] != 0);
	if (needle)
		CHECK_CONTAINS(err.msg, needle);
	if (rc == 0)
		clip_tokenizer_free(tok);
}

static void test_missing_vocabulary_files(void)
{
	const char *base = harness_tmpdir();
	char a[600], b[600], c[600];
	snprintf(a, sizeof a, "%s/only-vocab", base);
	snprintf(b, sizeof b, "%s/only-merges", base);
	snprintf(c, sizeof c, "%s/absent", base);
	REQUIRE(mkdir(a, 0700) == 0 && mkdir(b, 0700) == 0);
	copy_file(a, "vocab.json", TEST_DATA_DIR "/tokenizer/vocab.json");
	copy_file(b, "merges.txt", TEST_DATA_DIR "/tokenizer/merges.txt");
	expect_load_error(a, CLIP_ERR_MODEL, "merges.txt");
	expect_load_error(b, CLIP_ERR_MODEL, "vocab.json");
	expect_load_error(c, CLIP_ERR_IO, "not a directory");
	/* the copies are 1.5 MB: do not leave them behind */
	char path[700];
	snprintf(path, sizeof path, "%s/vocab.json", a);
	unlink(path);
	snprintf(path, sizeof path, "%s/merges.txt", b);
	unlink(path);
	rmdir(a);
	rmdir(b);
	rmdir(base);
}

/* A directory holding vocab and merges texts. */
static const char *vocab_dir(const char *name, const char *vocab, const char *merges)
{
	static char path[600];
	static const char *base;
	if (!base)
		base = harness_tmpdir();
	snprintf(path, sizeof path, "%s/%s", base, name);
	if (mkdir(path, 0700) != 0) {
		perror(path);
		exit(2);
	}
	write_file(path, "vocab.json", vocab);
	write_file(path, "merges.txt", merges);
	return path;
}

/* vocab.json for a small BPE: the 512 byte symbols (ids 0-511, as CLIP
 * numbers them), then `extra` (a JSON fragment starting with a comma). */
static char *small_vocab(const char *extra)
{
	size_t cap = 16384 + strlen(extra), len = 0;
	char *s = malloc(cap);
	unsigned n = 0, id = 0;
	s[len++] = '{';
	for (int pass = 0; pass < 2; pass++) {
		n = 0;
		for (unsigned b = 0; b < 256; b++) {
			int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
			unsigned cp = printable ? b : 256 + n++;
			if (!printable)
				continue;
			len += (size_t)snprintf(s + len, cap - len, "%s\"\\u%04x%s\":%u", id ? "," : "", cp,
						pass ? "</w>" : "", id);
			id++;
		}
		for (unsigned k = 0; k < n; k++, id++)
			len += (size_t)snprintf(s + len, cap - len, ",\"\\u%04x%s\":%u", 256 + k, pass ? "</w>" : "", id);
	}
	snprintf(s + len, cap - len, "%s}", extra);
	return s;
}

static void test_small_hf_vocabulary(void)
{
	/* merges apply in rank order: "a b" first, then "ab c</w>" */
	char *v = small_vocab(",\"ab\":600,\"abc</w>\":601,\"bc</w>\":602,"
			      "\"<|startoftext|>\":700,\"<|endoftext|>\":701");
	const char *dir = vocab_dir("small", v, "#version: 0.2\na b\nab c</w>\nb c</w>\n");
	free(v);
	clip_tokenizer *tok = NULL;
	clip_error err = { 0 };
	REQUIRE(clip_tokenizer_load(dir, &tok, &err) == 0);
	int32_t ids[8];
	size_t n = 0;
	REQUIRE(tokenize_str(tok, "ABC", ids, 8, &n) == 0);
	CHECK(n == 3 && ids[0] == 700 && ids[1] == 601 && ids[2] == 701);
	REQUIRE(tokenize_str(tok, "abd", ids, 8, &n) == 0);
	CHECK(n == 4 && ids[1] == 600 && ids[2] == 256 + ('d' - '!') && ids[3] == 701);
	REQUIRE(tokenize_str(tok, "xbc <|endoftext|>", ids, 8, &n) == 0);
	CHECK(n == 5 && ids[1] == 'x' - '!' && ids[2] == 602 && ids[3] == 701 && ids[4] == 701);
	clip_tokenizer_free(tok);
}

static void test_corrupt_vocabulary_files(void)
{
	char *v = small_vocab(",\"ab\":600,\"<|startoftext|>\":700,\"<|endoftext|>\":701");
	char *no_special = small_vocab("");
	expect_load_error(vocab_dir("not-json", "{\"a\": 1,", "#version: 0.2\n"), CLIP_ERR_MODEL, "JSON");
	expect_load_error(vocab_dir("array", "[1, 2]", "#version: 0.2\n"), CLIP_ERR_MODEL, "JSON");
	expect_load_error(vocab_dir("string-id", "{\"a\": \"1\"}", "#version: 0.2\n"), CLIP_ERR_MODEL, "integer");
	expect_load_error(vocab_dir("negative-id", "{\"a\": -4}", "#version: 0.2\n"), CLIP_ERR_MODEL, "integer");
	expect_load_error(vocab_dir("no-bytes", "{\"a\": 1}", "#version: 0.2\n"), CLIP_ERR_MODEL, "byte");
	expect_load_error(vocab_dir("no-special", no_special, "#version: 0.2\n"), CLIP_ERR_MODEL, "<|startoftext|>");
	expect_load_error(vocab_dir("three-fields", v, "#version: 0.2\na b c\n"), CLIP_ERR_MODEL, "line 2");
	expect_load_error(vocab_dir("one-field", v, "#version: 0.2\na b\nab\n"), CLIP_ERR_MODEL, "line 3");
	expect_load_error(vocab_dir("blank-line", v, "#version: 0.2\n\na b\n"), CLIP_ERR_MODEL, "line 2");
	expect_load_error(vocab_dir("unknown-merge", v, "#version: 0.2\na b\nab c\n"), CLIP_ERR_MODEL, "\"abc\"");
	expect_load_error(vocab_dir("empty", "", ""), CLIP_ERR_MODEL, "JSON");
	/* trailing blank lines and CRLF are fine */
	clip_tokenizer *tok = NULL;
	clip_error err = { 0 };
	CHECK(clip_tokenizer_load(vocab_dir("crlf", v, "#version: 0.2\r\na b\r\n\r\n\n"), &tok, &err) == 0);
	clip_tokenizer_free(tok);
	free(v);
	free(no_special);
}

/* ---- threads --------------------------------------------------------------- */

struct worker {
	pthread_t thread;
	size_t bad;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int rep = 0; rep < 3; rep++) {
		for (size_t i = 0; i < n_rows; i++) {
			int32_t ids[CTX];
			size_t n = 0;
			if (clip_tokenize(bundled, rows[i].text, strlen(rows[i].text), ids, CTX, &n, NULL) != 0 ||
			    n != rows[i].n || memcmp(ids, rows[i].ids, n * sizeof *ids))
				w->bad++;
		}
	}
	return NULL;
}

static void test_concurrent_calls_share_one_tokenizer(void)
{
	struct worker w[4] = { 0 };
	for (int i = 0; i < 4; i++)
		REQUIRE(pthread_create(&w[i].thread, NULL, worker_main, &w[i]) == 0);
	size_t bad = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(w[i].thread, NULL);
		bad += w[i].bad;
	}
	CHECK_EQ_INT(bad, 0);
}

int main(void)
{
	clip_error err = { 0 };
	if (load_rows() != 0) {
		fprintf(stderr, "cannot read %s/tokenizer/tokens.jsonl\n", TEST_DATA_DIR);
		return 1;
	}
	if (clip_tokenizer_load(NULL, &bundled, &err) != 0) {
		fprintf(stderr, "bundled vocabulary: %s\n", err.msg);
		return 1;
	}
	RUN(test_goldens_with_bundled_vocabulary);
	RUN(test_goldens_with_hf_vocab_and_merges);
	RUN(test_openclip_dir_without_tokenizer_files_uses_bundled);
	RUN(test_hand_picked_cases);
	RUN(test_special_tokens_in_text);
	RUN(test_truncation_keeps_end_token);
	RUN(test_invalid_utf8_is_replaced);
	RUN(test_bad_arguments);
	RUN(test_missing_vocabulary_files);
	RUN(test_small_hf_vocabulary);
	RUN(test_corrupt_vocabulary_files);
	RUN(test_concurrent_calls_share_one_tokenizer);
	clip_tokenizer_free(bundled);
	for (size_t i = 0; i < n_rows; i++)
		free(rows[i].text);
	return harness_done();
}
