/*
 * tokenizer.c - OpenAI's CLIP tokenizer (clip/simple_tokenizer.py), to the
 * id. Each step reproduces the Python it replaces, including the corners:
 *
 *   1. UTF-8 to text: each maximal invalid subpart becomes one U+FFFD
 *      (bytes.decode("utf-8", "replace")).
 *   2. NFC (what ftfy.fix_text ends with; ftfy's repairs are not done).
 *   3. html.unescape, twice: numeric references with the Windows-1252
 *      remapping, the HTML5 named references with Python's longest-prefix
 *      rule for the legacy names that need no semicolon.
 *   4. str.strip(); regex's \s+ (Unicode White_Space) to one space;
 *      str.strip() (which also strips U+001C-U+001F, unlike \s).
 *   5. str.lower(): U+0130 becomes "i" U+0307, a final capital sigma "ς".
 *   6. The split pattern, matched by hand with the `regex` module's
 *      case-insensitive semantics.
 *   7. Byte-level BPE with "</w>" on a word's last byte; a literal
 *      "<|startoftext|>" or "<|endoftext|>" is that token.
 *   8. SOT, the ids, EOT; truncated to max_ids with EOT kept last.
 *
 * The Unicode and HTML tables that Python's behaviour depends on come from
 * Python itself: tokenizer_tables.inc, written by gen_tokenizer_tables.py.
 *
 * A clip_tokenizer is immutable after load: clip_tokenize allocates its
 * scratch per call, so any number of threads may share one tokenizer.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>
#include <zlib.h>

#include "bpe_vocab.h"
#include "internal.h"

/* CLIP uses lines 2 to 48,895 of the merges file (simple_tokenizer's
 * merges[1:49152-256-2+1]; Hugging Face's CLIPTokenizer reads the same). */
#define BPE_MERGES_USED 48894
#define BPE_BYTE_SYMBOLS 256
/* Limits on tokenizer files, which a model directory supplies. */
#define TOK_MAX_FILE_BYTES ((size_t)64 << 20)   /* vocab.json, merges.txt */
#define TOK_MAX_VOCAB ((size_t)1 << 20)         /* entries in vocab.json */
#define TOK_MAX_SYMBOL_BYTES 1024               /* one vocabulary entry */
/* Longest name html.unescape looks at: [^\t\n\f <&#;]{1,32} */
#define HTML_MAX_NAME 32

static const char SOT_TEXT[] = "<|startoftext|>";
static const char EOT_TEXT[] = "<|endoftext|>";
static const char END_OF_WORD[] = "</w>";

struct cp_range {
	uint32_t lo, hi;
};
struct cp_pair {
	uint32_t from, to;
};
struct html_entity {
	const char *name;
	uint32_t cp[2];  /* one or two code points; cp[1] == 0 for one */
};

#include "tokenizer_tables.inc"

/* ---- the loaded tokenizer -------------------------------------------- */

/* A merge rule: the pair (left, right) of symbols, by symbol index. */
struct merge {
	uint64_t key;     /* left << 32 | right; MERGE_EMPTY for a free slot */
	uint32_t rank;    /* line order: lower merges first */
	uint32_t result;  /* the symbol of left + right */
};
#define MERGE_EMPTY UINT64_MAX

struct clip_tokenizer {
	int32_t *ids;                          /* symbol index -> token id */
	size_t n_sym;
	uint32_t byte_sym[BPE_BYTE_SYMBOLS];   /* a byte inside a word */
	uint32_t byte_end_sym[BPE_BYTE_SYMBOLS];  /* a byte ending a word ("</w>") */
	struct merge *merges;                  /* open addressing, merge_mask + 1 slots */
	size_t merge_mask;
	int32_t sot, eot;
};

static uint64_t hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ull;  /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static size_t hash_key(uint64_t key)
{
	key *= 0x9e3779b97f4a7c15ull;
	return (size_t)(key ^ (key >> 31));
}

static const struct merge *merge_find(const struct clip_tokenizer *tok, uint32_t left, uint32_t right)
{
	uint64_t key = (uint64_t)left << 32 | right;
	for (size_t i = hash_key(key) & tok->merge_mask;; i = (i + 1) & tok->merge_mask) {
		const struct merge *m = &tok->merges[i];
		if (m->key == key)
			return m;
		if (m->key == MERGE_EMPTY)
			return NULL;
	}
}

void clip_tokenizer_free(clip_tokenizer *tok)
{
	if (!tok)
		return;
	free(tok->ids);
	free(tok->merges);
	free(tok);
}

/* ---- loading: a string -> symbol table, used only while loading ------- */

struct symtab {
	char *pool;                 /* the symbols' bytes, back to back */
	size_t pool_len, pool_cap;
	struct sym {
		size_t off;
		uint32_t len;
		int32_t id;
	} *syms;
	size_t n, cap;
	struct slot {
		uint32_t index;     /* symbol index + 1; 0 is free */
		uint32_t hash;      /* its hash's high half: most misses end here */
	} *slots;
	size_t n_slots;             /* a power of two */
};

static void symtab_free(struct symtab *st)
{
	free(st->pool);
	free(st->syms);
	free(st->slots);
	memset(st, 0, sizeof *st);
}

static long symtab_find_hashed(const struct symtab *st, const char *s, size_t len, uint64_t h)
{
	if (!st->n_slots)
		return -1;
	size_t mask = st->n_slots - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct slot slot = st->slots[i];
		if (!slot.index)
			return -1;
		if (slot.hash != (uint32_t)(h >> 32))
			continue;
		const struct sym *y = &st->syms[slot.index - 1];
		if (y->len == len && !memcmp(st->pool + y->off, s, len))
			return (long)(slot.index - 1);
	}
}

static long symtab_find(const struct symtab *st, const char *s, size_t len)
{
	return symtab_find_hashed(st, s, len, hash_bytes(s, len));
}

static void slot_insert(struct slot *slots, size_t mask, uint64_t h, size_t index)
{
	size_t i = h & mask;
	while (slots[i].index)
		i = (i + 1) & mask;
	slots[i] = (struct slot){ (uint32_t)index + 1, (uint32_t)(h >> 32) };
}

/* Room for at least n symbols without rehashing. */
static int symtab_reserve(struct symtab *st, size_t n)
{
	size_t n_slots = st->n_slots ? st->n_slots : 1024;
	while (n_slots < 2 * n)
		n_slots *= 2;
	if (n_slots == st->n_slots)
		return 0;
	struct slot *slots = calloc(n_slots, sizeof *slots);
	if (!slots)
		return -1;
	for (size_t k = 0; k < st->n; k++) {
		const struct sym *y = &st->syms[k];
		slot_insert(slots, n_slots - 1, hash_bytes(st->pool + y->off, y->len), k);
	}
	free(st->slots);
	st->slots = slots;
	st->n_slots = n_slots;
	return 0;
}

/* Map s to id; a string already present takes the new id (a Python dict
 * built from a list keeps the last). The bytes are copied. */
static int symtab_put(struct symtab *st, const char *s, size_t len, int32_t id, clip_error *err)
{
	uint64_t h = hash_bytes(s, len);
	long found = symtab_find_hashed(st, s, len, h);
	if (found >= 0) {
		st->syms[found].id = id;
		return 0;
	}
	if (len == 0 || len > TOK_MAX_SYMBOL_BYTES)
		return clip_fail(err, CLIP_ERR_MODEL, "vocabulary entry of %zu bytes (1 to %d allowed)",
				 len, TOK_MAX_SYMBOL_BYTES);
	if (st->n >= TOK_MAX_VOCAB)
		return clip_fail(err, CLIP_ERR_MODEL, "vocabulary has more than %zu entries", TOK_MAX_VOCAB);
	if (symtab_reserve(st, st->n + 1) != 0)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory loading the vocabulary");
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 1024;
		struct sym *syms = realloc(st->syms, cap * sizeof *syms);
		if (!syms)
			return clip_fail(err, CLIP_ERR_NOMEM, "out of memory loading the vocabulary");
		st->syms = syms;
		st->cap = cap;
	}
	if (st->pool_len + len > st->pool_cap) {
		size_t cap = st->pool_cap ? st->pool_cap : 65536;
		while (cap < st->pool_len + len)
			cap *= 2;
		char *pool = realloc(st->pool, cap);
		if (!pool)
			return clip_fail(err, CLIP_ERR_NOMEM, "out of memory loading the vocabulary");
		st->pool = pool;
		st->pool_cap = cap;
	}
	memcpy(st->pool + st->pool_len, s, len);
	st->syms[st->n] = (struct sym){ st->pool_len, (uint32_t)len, id };
	st->pool_len += len;
	slot_insert(st->slots, st->n_slots - 1, h, st->n);
	st->n++;
	return 0;
}

/* ---- loading: the byte alphabet and the merge list ---------------------- */

/* simple_tokenizer's bytes_to_unicode(): printable Latin-1 bytes stand for
 * themselves, the others for 256 + n, in byte order. Index i of the result
 * is the i-th entry of its dict, which is also vocabulary id i. */
static void byte_alphabet(uint32_t order[BPE_BYTE_SYMBOLS], uint32_t cp_of_byte[BPE_BYTE_SYMBOLS])
{
	size_t k = 0;
	uint32_t extra = 0;
	for (uint32_t b = 0; b < BPE_BYTE_SYMBOLS; b++)
		if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
			order[k++] = b;
	for (uint32_t b = 0; b < BPE_BYTE_SYMBOLS; b++) {
		if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))
			cp_of_byte[b] = b;
		else {
			cp_of_byte[b] = 256 + extra++;
			order[k++] = b;
		}
	}
}

/* UTF-8 of one code point (a valid scalar value) into out[4]; its length. */
static size_t utf8_put(uint32_t cp, unsigned char *out)
{
	if (cp < 0x80) {
		out[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (unsigned char)(0xC0 | cp >> 6);
		out[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (unsigned char)(0xE0 | cp >> 12);
		out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		out[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (unsigned char)(0xF0 | cp >> 18);
	out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
	out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
	out[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}

/* One line of a merges file: two symbols separated by blanks. */
struct merge_line {
	const char *a, *b;
	uint32_t alen, blen;
};

/*
 * Split up to max merge lines out of text (which stays owned by the caller
 * and must outlive *out). The first line is skipped when skip_first is set
 * (the bundled file's header), or when it is a "#version" header. Empty
 * lines at the end are allowed; anything else that is not two symbols is an
 * error naming the line. *out is malloc'd.
 */
static int split_merges(const char *text, size_t len, int skip_first, size_t max, const char *what,
			struct merge_line **out, size_t *n_out, clip_error *err)
{
	struct merge_line *lines = malloc((max ? max : 1) * sizeof *lines);
	size_t n = 0, line_no = 0, pos = 0;
	int rc = CLIP_OK;
	if (!lines)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory reading %s", what);
	while (pos < len && n < max) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - line) : len - pos;
		pos += ll + (nl ? 1 : 0);
		line_no++;
		if (line_no == 1 && (skip_first || (ll >= 8 && !memcmp(line, "#version", 8))))
			continue;
		while (ll && (line[ll - 1] == '\r' || line[ll - 1] == ' ' || line[ll - 1] == '\t'))
			ll--;
		if (ll == 0) {
			/* only blank lines may follow */
			size_t rest = pos;
			while (rest < len && (text[rest] == '\n' || text[rest] == '\r' ||
					      text[rest] == ' ' || text[rest] == '\t'))
				rest++;
			if (rest == len)
				break;
			rc = clip_fail(err, CLIP_ERR_MODEL, "%s line %zu: empty line", what, line_no);
			goto out;
		}
		const char *f[3];
		size_t fl[3], nf = 0, i = 0;
		while (i < ll && nf < 3) {
			while (i < ll && (line[i] == ' ' || line[i] == '\t'))
				i++;
			if (i == ll)
				break;
			f[nf] = line + i;
			while (i < ll && line[i] != ' ' && line[i] != '\t')
				i++;
			fl[nf] = (size_t)(line + i - f[nf]);
			nf++;
		}
		if (nf != 2) {
			rc = clip_fail(err, CLIP_ERR_MODEL, "%s line %zu: expected two symbols, got %s",
				       what, line_no, nf < 2 ? "one" : "more");
			goto out;
		}
		if (fl[0] + fl[1] > TOK_MAX_SYMBOL_BYTES) {
			rc = clip_fail(err, CLIP_ERR_MODEL, "%s line %zu: symbols longer than %d bytes",
				       what, line_no, TOK_MAX_SYMBOL_BYTES);
			goto out;
		}
		lines[n++] = (struct merge_line){ f[0], f[1], (uint32_t)fl[0], (uint32_t)fl[1] };
	}
	*out = lines;
	*n_out = n;
	lines = NULL;
out:
	free(lines);
	return rc;
}

/*
 * Finish a tokenizer from its vocabulary st and merge list: resolve the byte
 * symbols, the special tokens and every merge to symbol indexes, and copy the
 * ids. Every symbol the BPE can produce is then in the vocabulary, so
 * clip_tokenize cannot meet an unknown one.
 */
static int finish(clip_tokenizer *tok, const struct symtab *st, const struct merge_line *lines,
		  size_t n_lines, const char *what, clip_error *err)
{
	uint32_t order[BPE_BYTE_SYMBOLS], cp_of_byte[BPE_BYTE_SYMBOLS];
	char buf[2 * TOK_MAX_SYMBOL_BYTES + 8];
	byte_alphabet(order, cp_of_byte);

	for (int b = 0; b < BPE_BYTE_SYMBOLS; b++) {
		size_t n = utf8_put(cp_of_byte[b], (unsigned char *)buf);
		long s = symtab_find(st, buf, n);
		memcpy(buf + n, END_OF_WORD, 4);
		long e = symtab_find(st, buf, n + 4);
		if (s < 0 || e < 0)
			return clip_fail(err, CLIP_ERR_MODEL, "vocabulary lacks the symbol for byte 0x%02x%s",
					 b, s < 0 ? "" : " + </w>");
		tok->byte_sym[b] = (uint32_t)s;
		tok->byte_end_sym[b] = (uint32_t)e;
	}
	long sot = symtab_find(st, SOT_TEXT, strlen(SOT_TEXT));
	long eot = symtab_find(st, EOT_TEXT, strlen(EOT_TEXT));
	if (sot < 0 || eot < 0)
		return clip_fail(err, CLIP_ERR_MODEL, "vocabulary lacks %s", sot < 0 ? SOT_TEXT : EOT_TEXT);
	tok->sot = st->syms[sot].id;
	tok->eot = st->syms[eot].id;

	size_t slots = 1024;
	while (slots < 2 * n_lines + 2)
		slots *= 2;
	tok->merges = malloc(slots * sizeof *tok->merges);
	tok->ids = malloc((st->n ? st->n : 1) * sizeof *tok->ids);
	if (!tok->merges || !tok->ids)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory loading the vocabulary");
	for (size_t i = 0; i < slots; i++)
		tok->merges[i].key = MERGE_EMPTY;
	tok->merge_mask = slots - 1;
	for (size_t k = 0; k < st->n; k++)
		tok->ids[k] = st->syms[k].id;
	tok->n_sym = st->n;

	for (size_t k = 0; k < n_lines; k++) {
		const struct merge_line *m = &lines[k];
		long a = symtab_find(st, m->a, m->alen);
		long b = symtab_find(st, m->b, m->blen);
		memcpy(buf, m->a, m->alen);
		memcpy(buf + m->alen, m->b, m->blen);
		long r = symtab_find(st, buf, m->alen + m->blen);
		if (a < 0 || b < 0 || r < 0)
			return clip_fail(err, CLIP_ERR_MODEL, "%s merge %zu (\"%.*s %.*s\"): \"%.*s\" is not in the vocabulary",
					 what, k + 1, (int)m->alen, m->a, (int)m->blen, m->b,
					 a < 0 ? (int)m->alen : b < 0 ? (int)m->blen : (int)(m->alen + m->blen),
					 a < 0 ? m->a : b < 0 ? m->b : buf);
		uint64_t key = (uint64_t)a << 32 | (uint64_t)b;
		size_t i = hash_key(key) & tok->merge_mask;
		while (tok->merges[i].key != MERGE_EMPTY && tok->merges[i].key != key)
			i = (i + 1) & tok->merge_mask;
		/* a repeated pair keeps its last rank, as dict(zip(merges, range)) does */
		tok->merges[i] = (struct merge){ key, (uint32_t)k, (uint32_t)r };
	}
	return CLIP_OK;
}

/* ---- loading: the bundled vocabulary ------------------------------------- */

/* Inflate the gzip blob until it holds `lines` newlines (or ends). */
static int gunzip_lines(const unsigned char *gz, size_t gz_len, size_t lines,
			char **out, size_t *out_len, clip_error *err)
{
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
		return clip_fail(err, CLIP_ERR_NOMEM, "cannot start zlib");
	size_t cap = (size_t)1 << 20, len = 0, seen = 0;
	char *buf = malloc(cap);
	int rc = CLIP_OK;
	if (!buf) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory inflating the bundled vocabulary");
		goto out;
	}
	zs.next_in = (unsigned char *)(uintptr_t)gz;  /* zlib does not write the input */
	zs.avail_in = (uInt)gz_len;
	for (;;) {
		if (cap - len < 65536) {
			if (cap >= TOK_MAX_FILE_BYTES) {
				rc = clip_fail(err, CLIP_ERR_MODEL, "bundled vocabulary: too large");
				goto out;
			}
			char *grown = realloc(buf, cap * 2);
			if (!grown) {
				rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory inflating the bundled vocabulary");
				goto out;
			}
			buf = grown;
			cap *= 2;
		}
		zs.next_out = (unsigned char *)buf + len;
		zs.avail_out = (uInt)(cap - len);
		int z = inflate(&zs, Z_NO_FLUSH);
		size_t got = (size_t)((char *)zs.next_out - (buf + len));
		for (size_t i = len; i < len + got; i++)
			seen += buf[i] == '\n';
		len += got;
		if (seen >= lines || z == Z_STREAM_END)
			break;
		if (z != Z_OK) {
			rc = clip_fail(err, CLIP_ERR_MODEL, "bundled vocabulary: corrupt gzip data (%s)",
				       zs.msg ? zs.msg : "zlib error");
			goto out;
		}
	}
	*out = buf;
	*out_len = len;
	buf = NULL;
out:
	inflateEnd(&zs);
	free(buf);
	return rc;
}

/* simple_tokenizer's vocabulary: the 256 byte symbols, the same with
 * "</w>", each merge joined, then the two special tokens. */
static int load_bundled(clip_tokenizer *tok, clip_error *err)
{
	struct symtab st = { 0 };
	struct merge_line *lines = NULL;
	size_t n_lines = 0, text_len = 0;
	char *text = NULL;
	uint32_t order[BPE_BYTE_SYMBOLS], cp_of_byte[BPE_BYTE_SYMBOLS];
	unsigned char sym[2 * TOK_MAX_SYMBOL_BYTES + 8];
	int rc;

	if (!clip_bpe_vocab_gz_len)
		return clip_fail(err, CLIP_ERR_MODEL, "no bundled vocabulary in this build");
	rc = gunzip_lines(clip_bpe_vocab_gz, clip_bpe_vocab_gz_len, BPE_MERGES_USED + 1, &text, &text_len, err);
	if (rc)
		goto out;
	rc = split_merges(text, text_len, 1, BPE_MERGES_USED, "bundled vocabulary", &lines, &n_lines, err);
	if (rc)
		goto out;
	if (n_lines != BPE_MERGES_USED) {
		rc = clip_fail(err, CLIP_ERR_MODEL, "bundled vocabulary: %zu merges, expected %d",
			       n_lines, BPE_MERGES_USED);
		goto out;
	}

	byte_alphabet(order, cp_of_byte);
	if (symtab_reserve(&st, 2 * BPE_BYTE_SYMBOLS + n_lines + 2) != 0) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory loading the vocabulary");
		goto out;
	}
	int32_t id = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < BPE_BYTE_SYMBOLS; i++) {
			size_t n = utf8_put(cp_of_byte[order[i]], sym);
			if (pass) {
				memcpy(sym + n, END_OF_WORD, 4);
				n += 4;
			}
			if ((rc = symtab_put(&st, (const char *)sym, n, id++, err)))
				goto out;
		}
	}
	for (size_t k = 0; k < n_lines; k++) {
		memcpy(sym, lines[k].a, lines[k].alen);
		memcpy(sym + lines[k].alen, lines[k].b, lines[k].blen);
		if ((rc = symtab_put(&st, (const char *)sym, lines[k].alen + lines[k].blen, id++, err)))
			goto out;
	}
	if ((rc = symtab_put(&st, SOT_TEXT, strlen(SOT_TEXT), id++, err)) ||
	    (rc = symtab_put(&st, EOT_TEXT, strlen(EOT_TEXT), id++, err)))
		goto out;
	rc = finish(tok, &st, lines, n_lines, "bundled vocabulary", err);
out:
	free(lines);
	free(text);
	symtab_free(&st);
	return rc;
}

/* ---- loading: vocab.json + merges.txt ------------------------------------- */

/* Read a whole file of at most TOK_MAX_FILE_BYTES; *out is malloc'd and
 * NUL-terminated. */
static int read_file(const char *path, char **out, size_t *out_len, clip_error *err)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	int rc = CLIP_OK;
	struct stat sb;
	if (!f)
		return clip_fail(err, CLIP_ERR_IO, "cannot open %s: %s", path, strerror(errno));
	if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
		rc = clip_fail(err, CLIP_ERR_IO, "%s: not a regular file", path);
		goto out;
	}
	if ((unsigned long long)sb.st_size > TOK_MAX_FILE_BYTES) {
		rc = clip_fail(err, CLIP_ERR_MODEL, "%s: %lld bytes, more than the %zu allowed",
			       path, (long long)sb.st_size, TOK_MAX_FILE_BYTES);
		goto out;
	}
	size_t len = (size_t)sb.st_size;
	buf = malloc(len + 1);
	if (!buf) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory reading %s", path);
		goto out;
	}
	if (fread(buf, 1, len, f) != len) {
		rc = clip_fail(err, CLIP_ERR_IO, "cannot read %s", path);
		goto out;
	}
	buf[len] = 0;
	*out = buf;
	*out_len = len;
	buf = NULL;
out:
	free(buf);
	fclose(f);
	return rc;
}

static int load_files(clip_tokenizer *tok, const char *vocab_path, const char *merges_path, clip_error *err)
{
	struct symtab st = { 0 };
	struct merge_line *lines = NULL;
	char *vocab_text = NULL, *merges_text = NULL;
	size_t vocab_len = 0, merges_len = 0, n_lines = 0;
	cJSON *root = NULL;
	int rc;

	if ((rc = read_file(vocab_path, &vocab_text, &vocab_len, err)))
		goto out;
	root = cJSON_ParseWithLength(vocab_text, vocab_len);
	if (!cJSON_IsObject(root)) {
		rc = clip_fail(err, CLIP_ERR_MODEL, "%s: not a JSON object", vocab_path);
		goto out;
	}
	size_t n_entries = 0;
	for (const cJSON *it = root->child; it && n_entries <= TOK_MAX_VOCAB; it = it->next)
		n_entries++;
	if (symtab_reserve(&st, n_entries) != 0) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory loading the vocabulary");
		goto out;
	}
	for (const cJSON *it = root->child; it; it = it->next) {
		double v = it->valuedouble;
		if (!cJSON_IsNumber(it) || !(v >= 0 && v <= INT32_MAX) || v != (double)(int32_t)v) {
			rc = clip_fail(err, CLIP_ERR_MODEL, "%s: the id of \"%.40s\" is not an integer from 0 to %d",
				       vocab_path, it->string ? it->string : "", INT32_MAX);
			goto out;
		}
		if (!it->string || !*it->string) {
			rc = clip_fail(err, CLIP_ERR_MODEL, "%s: an empty token", vocab_path);
			goto out;
		}
		if ((rc = symtab_put(&st, it->string, strlen(it->string), (int32_t)v, err))) {
			char why[sizeof err->msg] = "";
			if (err)
				memcpy(why, err->msg, sizeof why);
			rc = clip_fail(err, rc, "%s: %s", vocab_path, why);
			goto out;
		}
	}
	cJSON_Delete(root);
	root = NULL;

	if ((rc = read_file(merges_path, &merges_text, &merges_len, err)) ||
	    (rc = split_merges(merges_text, merges_len, 0, BPE_MERGES_USED, merges_path, &lines, &n_lines, err)))
		goto out;
	rc = finish(tok, &st, lines, n_lines, merges_path, err);
out:
	cJSON_Delete(root);
	free(lines);
	free(merges_text);
	free(vocab_text);
	symtab_free(&st);
	return rc;
}

static int file_exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

int clip_tokenizer_load(const char *dir, clip_tokenizer **out, clip_error *err)
{
	char vocab[PATH_MAX], merges[PATH_MAX];
	clip_tokenizer *tok = NULL;
	int rc;

	if (!out)
		return clip_fail(err, CLIP_ERR_INVALID, "clip_tokenizer_load: out is NULL");
	*out = NULL;
	tok = calloc(1, sizeof *tok);
	if (!tok)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory loading the tokenizer");

	int have_vocab = 0, have_merges = 0;
	if (dir) {
		struct stat sb;
		if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
			rc = clip_fail(err, CLIP_ERR_IO, "%s: not a directory", dir);
			goto out;
		}
		if ((size_t)snprintf(vocab, sizeof vocab, "%s/vocab.json", dir) >= sizeof vocab ||
		    (size_t)snprintf(merges, sizeof merges, "%s/merges.txt", dir) >= sizeof merges) {
			rc = clip_fail(err, CLIP_ERR_INVALID, "model path too long");
			goto out;
		}
		have_vocab = file_exists(vocab);
		have_merges = file_exists(merges);
	}
	if (have_vocab != have_merges)
		rc = clip_fail(err, CLIP_ERR_MODEL, "%s has %s but no %s", dir,
			       have_vocab ? "vocab.json" : "merges.txt", have_vocab ? "merges.txt" : "vocab.json");
	else if (have_vocab)
		rc = load_files(tok, vocab, merges, err);
	else
		rc = load_bundled(tok, err);
	if (rc)
		goto out;
	*out = tok;
	tok = NULL;
out:
	clip_tokenizer_free(tok);
	return rc;
}

/* ---- Unicode classes, as Python and the `regex` module see them ------------ */

static int in_ranges(const struct cp_range *r, size_t n, uint32_t cp)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cp < r[mid].lo)
			hi = mid;
		else if (cp > r[mid].hi)
			lo = mid + 1;
		else
			return 1;
	}
	return 0;
}
#define IN_TABLE(table, cp) in_ranges((table), sizeof(table) / sizeof((table)[0]), (cp))

/* str.isspace(): str.strip() removes these. */
static int py_space(uint32_t cp)
{
	return IN_TABLE(py_space_ranges, cp);
}

/* regex's \s: Unicode White_Space, which is str.isspace() without the
 * information separators U+001C-U+001F. */
static int white_space(uint32_t cp)
{
	return py_space(cp) && !(cp >= 0x1C && cp <= 0x1F);
}

static int is_letter(uint32_t cp)
{
	utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
	return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

static int is_number(uint32_t cp)
{
	utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
	return c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
}

/* ---- per-call scratch ---------------------------------------------------- */

struct heap_entry {
	uint32_t rank, pos;   /* ordered by rank, then position */
	uint32_t left, right, result;
};

struct scratch {
	uint32_t *a, *b;          /* code point buffers, cap_cp each */
	size_t cap_cp;
	unsigned char *bytes;     /* one piece's UTF-8 */
	uint32_t *sym, *prev, *next;
	struct heap_entry *heap, *round;
	size_t cap_bytes, cap_heap;
};

static void scratch_free(struct scratch *s)
{
	free(s->a);
	free(s->b);
	free(s->bytes);
	free(s->sym);
	free(s->prev);
	free(s->next);
	free(s->heap);
	free(s->round);
}

static int grow(void *pp, size_t n, size_t size)
{
	void **p = pp;
	if (n > SIZE_MAX / size)
		return -1;
	void *q = realloc(*p, n * size);
	if (!q)
		return -1;
	*p = q;
	return 0;
}

/* Room for a piece of n bytes. */
static int scratch_piece(struct scratch *s, size_t n)
{
	if (n <= s->cap_bytes)
		return 0;
	size_t cap = n < 64 ? 64 : n;
	if (cap > SIZE_MAX / 3 || grow(&s->bytes, cap, 1) || grow(&s->sym, cap, sizeof(uint32_t)) ||
	    grow(&s->prev, cap, sizeof(uint32_t)) || grow(&s->next, cap, sizeof(uint32_t)) ||
	    grow(&s->heap, 3 * cap, sizeof(struct heap_entry)) ||
	    grow(&s->round, 3 * cap, sizeof(struct heap_entry)))
		return -1;
	s->cap_bytes = cap;
	s->cap_heap = 3 * cap;
	return 0;
}

/* ---- steps 1-2: UTF-8, NFC ----------------------------------------------- */

/* Copy len bytes of s to out as valid UTF-8, replacing each maximal
 * subpart of an invalid sequence by U+FFFD (Unicode's recommended practice,
 * which Python's "replace" follows). out holds 3 * len bytes. */
static size_t utf8_sanitize(const unsigned char *s, size_t len, unsigned char *out)
{
	size_t i = 0, o = 0;
	while (i < len) {
		unsigned char c = s[i];
		unsigned char lo = 0x80, hi = 0xBF;
		size_t need;
		if (c < 0x80) {
			out[o++] = c;
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			need = 1;
		else if (c == 0xE0)
			need = 2, lo = 0xA0;
		else if (c == 0xED)
			need = 2, hi = 0x9F;
		else if (c >= 0xE1 && c <= 0xEF)
			need = 2;
		else if (c == 0xF0)
			need = 3, lo = 0x90;
		else if (c == 0xF4)
			need = 3, hi = 0x8F;
		else if (c >= 0xF1 && c <= 0xF3)
			need = 3;
		else
			need = 0;  /* 80-C1, F5-FF never start a sequence */
		size_t k = 1;
		while (need && k <= need && i + k < len) {
			unsigned char d = s[i + k];
			if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF))
				break;
			k++;
		}
		if (need && k == need + 1) {
			memcpy(out + o, s + i, k);
			o += k;
		} else {
			o += utf8_put(0xFFFD, out + o);
		}
		i += k;
	}
	return o;
}

/* Text -> NFC code points in s->a (allocated here, with room for the later
 * steps); their count in *n. */
static int decode_nfc(struct scratch *s, const char *text, size_t len, size_t *n, clip_error *err)
{
	unsigned char *clean = NULL;
	int rc = CLIP_OK;
	const utf8proc_option_t opts = UTF8PROC_STABLE | UTF8PROC_COMPOSE;

	*n = 0;
	if (len > (SIZE_MAX - 1) / 3 || !(clean = malloc(3 * len + 1)))
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
	size_t clen = utf8_sanitize((const unsigned char *)text, len, clean);
	utf8proc_ssize_t need = clen ? utf8proc_decompose(clean, (utf8proc_ssize_t)clen, NULL, 0, opts) : 0;
	if (need < 0) {
		rc = clip_fail(err, CLIP_ERR_INVALID, "NFC: %s", utf8proc_errmsg(need));
		goto out;
	}
	/* unescape and whitespace never lengthen; lower() at most doubles */
	size_t cap = 2 * (size_t)need + 1;
	if (cap > SIZE_MAX / sizeof(uint32_t) || grow(&s->a, cap, sizeof(uint32_t)) ||
	    grow(&s->b, cap, sizeof(uint32_t))) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
		goto out;
	}
	s->cap_cp = cap;
	if (need) {
		utf8proc_int32_t *buf = (utf8proc_int32_t *)s->a;
		utf8proc_ssize_t got = utf8proc_decompose(clean, (utf8proc_ssize_t)clen, buf, need, opts);
		if (got != need || (got = utf8proc_normalize_utf32(buf, got, opts)) < 0) {
			rc = clip_fail(err, CLIP_ERR_INVALID, "NFC: %s", utf8proc_errmsg(got < 0 ? got : UTF8PROC_ERROR_INVALIDUTF8));
			goto out;
		}
		*n = (size_t)got;
	}
out:
	free(clean);
	return rc;
}

/* ---- step 3: html.unescape -------------------------------------------------- */

static int entity_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct html_entity *)elem)->name);
}

/* The entity named by n code points, which must all be ASCII to match. */
static const struct html_entity *entity_find(const uint32_t *name, size_t n)
{
	char key[HTML_MAX_NAME + 2];
	if (n > HTML_MAX_NAME + 1)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (name[i] == 0 || name[i] > 0x7F)
			return NULL;
		key[i] = (char)name[i];
	}
	key[n] = 0;
	return bsearch(key, html_entities, sizeof html_entities / sizeof html_entities[0],
		       sizeof html_entities[0], entity_cmp);
}

static int is_digit(uint32_t c)
{
	return c >= '0' && c <= '9';
}

static int hex_value(uint32_t c)
{
	if (c >= '0' && c <= '9')
		return (int)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (int)(c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (int)(c - 'A' + 10);
	return -1;
}

/* html.unescape's answer for a numeric reference to num: the code point to
 * write, or -1 for nothing. */
static long numeric_ref(uint32_t num)
{
	for (size_t i = 0; i < sizeof html_charref_remap / sizeof html_charref_remap[0]; i++)
		if (html_charref_remap[i].from == num)
			return html_charref_remap[i].to;
	if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF)
		return 0xFFFD;
	if (IN_TABLE(html_charref_dropped, num))
		return -1;
	return num;
}

/*
 * One pass of Python's html.unescape from in[0..n) to out; returns the new
 * length (never more than n). The references it replaces match
 *     &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
 */
static size_t html_unescape(const uint32_t *in, size_t n, uint32_t *out)
{
	size_t i = 0, o = 0;
	while (i < n) {
		if (in[i] != '&' || i + 1 >= n) {
			out[o++] = in[i++];
			continue;
		}
		size_t p = i + 1;
		if (in[p] == '#') {
			int hex = p + 1 < n && (in[p + 1] == 'x' || in[p + 1] == 'X');
			size_t q = p + 1 + (size_t)hex, start = q;
			uint32_t num = 0;
			while (q < n && (hex ? hex_value(in[q]) >= 0 : is_digit(in[q]))) {
				uint32_t d = (uint32_t)(hex ? hex_value(in[q]) : (int)(in[q] - '0'));
				/* saturate: anything past U+10FFFF answers the same */
				num = num > 0x10FFFF ? num : num * (hex ? 16 : 10) + d;
				q++;
			}
			if (q == start) {
				/* "&#" followed by no digits: not a reference */
				out[o++] = in[i++];
				continue;
			}
			if (q < n && in[q] == ';')
				q++;
			long cp = numeric_ref(num);
			if (cp >= 0)
				out[o++] = (uint32_t)cp;
			i = q;
			continue;
		}
		/* a name: up to 32 code points outside \t \n \f space < & # ; */
		size_t q = p;
		while (q < n && q - p < HTML_MAX_NAME) {
			uint32_t c = in[q];
			if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' ||
			    c == '#' || c == ';')
				break;
			q++;
		}
		if (q == p) {
			out[o++] = in[i++];
			continue;
		}
		if (q < n && in[q] == ';')
			q++;
		/* s = in[p..q): the whole of it, else its longest prefix of at
		 * least two (a legacy name; the prefix never includes the ';') */
		const struct html_entity *e = entity_find(in + p, q - p);
		size_t used = q - p;
		for (size_t x = q - p - 1; !e && x >= 2; x--) {
			e = entity_find(in + p, x);
			used = x;
		}
		if (!e) {
			/* "&" + s unchanged */
			while (i < q)
				out[o++] = in[i++];
			continue;
		}
		out[o++] = e->cp[0];
		if (e->cp[1])
			out[o++] = e->cp[1];
		for (size_t k = p + used; k < q; k++)
			out[o++] = in[k];
		i = q;
	}
	return o;
}

/* ---- steps 4-5: whitespace, lower() --------------------------------------------- */

/* str.strip(), then runs of \s to one space, then str.strip() again. */
static size_t clean_whitespace(const uint32_t *in, size_t n, uint32_t *out)
{
	size_t lo = 0, hi = n, o = 0;
	while (lo < hi && py_space(in[lo]))
		lo++;
	while (hi > lo && py_space(in[hi - 1]))
		hi--;
	for (size_t i = lo; i < hi;) {
		if (white_space(in[i])) {
			while (i < hi && white_space(in[i]))
				i++;
			out[o++] = ' ';
		} else {
			out[o++] = in[i++];
		}
	}
	size_t start = 0;
	while (start < o && py_space(out[start]))
		start++;
	while (o > start && py_space(out[o - 1]))
		o--;
	if (start)
		memmove(out, out + start, (o - start) * sizeof *out);
	return o - start;
}

static int case_ignorable(uint32_t cp)
{
	return IN_TABLE(case_ignorable_ranges, cp);
}

static int cased(uint32_t cp)
{
	return IN_TABLE(cased_ranges, cp);
}

/* Python's Final_Sigma test for the capital sigma at t[i]: a cased letter
 * before it and none after it, skipping case-ignorable code points. */
static int final_sigma(const uint32_t *t, size_t n, size_t i)
{
	size_t j = i;
	while (j > 0 && case_ignorable(t[j - 1]))
		j--;
	if (j == 0 || !cased(t[j - 1]))
		return 0;
	for (j = i + 1; j < n && case_ignorable(t[j]); j++)
		;
	return j == n || !cased(t[j]);
}

/* str.lower(): out holds 2 * n. Python's full mapping differs from the
 * simple one only for U+0130 (SpecialCasing's unconditional entries) and
 * the capital sigma's context; gen_tokenizer_tables.py's Python agrees with
 * utf8proc_tolower everywhere else (checked over every code point). */
static size_t lower(const uint32_t *in, size_t n, uint32_t *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t c = in[i];
		if (c == 0x130) {
			out[o++] = 'i';
			out[o++] = 0x307;
		} else if (c == 0x3A3) {
			out[o++] = final_sigma(in, n, i) ? 0x3C2 : 0x3C3;
		} else {
			out[o++] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
		}
	}
	return o;
}

/* ---- step 6: the split pattern ------------------------------------------------------ */

/* Does lit (ASCII) match t at i, case-insensitively as `regex` matches a
 * literal: a letter also matches its capital, "s" also U+017F (long s),
 * "k" also U+212A (Kelvin). */
static int literal_at(const uint32_t *t, size_t n, size_t i, const char *lit)
{
	for (; *lit; lit++, i++) {
		uint32_t want = (unsigned char)*lit;
		if (i >= n)
			return 0;
		uint32_t c = t[i];
		if (c == want)
			continue;
		if (want >= 'a' && want <= 'z' &&
		    (c == want - 32 || (want == 's' && c == 0x17F) || (want == 'k' && c == 0x212A)))
			continue;
		return 0;
	}
	return 1;
}

/*
 * The next piece of
 *   <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 * at or after *pos (findall's scan): [*start, *end). 0 when none is left.
 * Under IGNORECASE, `regex` lets no class match U+0345 (a combining mark
 * that case-folds to a letter), so it belongs to no piece.
 */
static int next_piece(const uint32_t *t, size_t n, size_t *pos, size_t *start, size_t *end)
{
	static const char *const contractions[] = { "'s", "'t", "'re", "'ve", "'m", "'ll", "'d" };
	for (size_t i = *pos; i < n; i++) {
		uint32_t c = t[i];
		size_t e = i;
		if (c == '<' && literal_at(t, n, i, SOT_TEXT))
			e = i + strlen(SOT_TEXT);
		else if (c == '<' && literal_at(t, n, i, EOT_TEXT))
			e = i + strlen(EOT_TEXT);
		if (e == i && c == '\'') {
			for (size_t k = 0; k < sizeof contractions / sizeof contractions[0]; k++) {
				if (literal_at(t, n, i, contractions[k])) {
					e = i + strlen(contractions[k]);
					break;
				}
			}
		}
		if (e == i) {
			if (is_letter(c)) {
				while (e < n && is_letter(t[e]))
					e++;
			} else if (is_number(c)) {
				e = i + 1;
			} else if (!white_space(c) && c != 0x345) {
				while (e < n && !white_space(t[e]) && !is_letter(t[e]) && !is_number(t[e]) &&
				       t[e] != 0x345)
					e++;
			} else {
				continue;
			}
		}
		*start = i;
		*end = e;
		*pos = e;
		return 1;
	}
	*pos = n;
	return 0;
}

/* ---- step 7: byte-level BPE ------------------------------------------------------------- */

#define NONE UINT32_MAX

static int heap_less(const struct heap_entry *a, const struct heap_entry *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct heap_entry *h, size_t *n, struct heap_entry e)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!heap_less(&e, &h[parent]))
			break;
		h[i] = h[parent];
		i = parent;
	}
	h[i] = e;
}

static struct heap_entry heap_pop(struct heap_entry *h, size_t *n)
{
	struct heap_entry top = h[0], last = h[--*n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && heap_less(&h[c + 1], &h[c]))
			c++;
		if (!heap_less(&h[c], &last))
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n)
		h[i] = last;
	return top;
}

/* Queue the pair starting at node p if it is a merge rule. */
static void push_pair(const struct clip_tokenizer *tok, struct scratch *s, size_t *n_heap, uint32_t p)
{
	uint32_t q = s->next[p];
	if (q == NONE)
		return;
	const struct merge *m = merge_find(tok, s->sym[p], s->sym[q]);
	if (m)
		heap_push(s->heap, n_heap, (struct heap_entry){ m->rank, p, s->sym[p], s->sym[q], m->result });
}

/*
 * BPE of one piece of nb bytes (s->bytes); writes at most room ids to out
 * and returns how many. Same result as simple_tokenizer's bpe(): take the
 * lowest-ranked adjacent pair, merge every occurrence left to right without
 * overlap, repeat. A heap ordered by (rank, position) makes it
 * O(n log n): a round pops every entry of the lowest rank first (merges
 * never create a pair of the rank being merged), then merges those still
 * present, in order.
 */
static size_t bpe(const struct clip_tokenizer *tok, struct scratch *s, size_t nb, int32_t *out, size_t room)
{
	if (nb == 1) {
		out[0] = tok->ids[tok->byte_end_sym[s->bytes[0]]];
		return 1;
	}
	for (size_t i = 0; i < nb; i++) {
		s->sym[i] = i + 1 < nb ? tok->byte_sym[s->bytes[i]] : tok->byte_end_sym[s->bytes[i]];
		s->prev[i] = i ? (uint32_t)i - 1 : NONE;
		s->next[i] = i + 1 < nb ? (uint32_t)i + 1 : NONE;
	}
	size_t n_heap = 0;
	for (size_t i = 0; i + 1 < nb; i++)
		push_pair(tok, s, &n_heap, (uint32_t)i);
	while (n_heap) {
		uint32_t rank = s->heap[0].rank;
		size_t n_round = 0;
		while (n_heap && s->heap[0].rank == rank)
			s->round[n_round++] = heap_pop(s->heap, &n_heap);
		for (size_t k = 0; k < n_round; k++) {
			const struct heap_entry *e = &s->round[k];
			uint32_t p = e->pos, q = s->next[p];
			if (s->sym[p] == NONE || q == NONE || s->sym[p] != e->left || s->sym[q] != e->right)
				continue;  /* gone: overlapped or merged since */
			s->sym[p] = e->result;
			s->next[p] = s->next[q];
			if (s->next[q] != NONE)
				s->prev[s->next[q]] = p;
			s->sym[q] = NONE;
			if (s->prev[p] != NONE)
				push_pair(tok, s, &n_heap, s->prev[p]);
			push_pair(tok, s, &n_heap, p);
		}
	}
	size_t n = 0;
	for (uint32_t p = 0; p != NONE && n < room; p = s->next[p])
		out[n++] = tok->ids[s->sym[p]];
	return n;
}

/* Is the piece p[0..n) exactly the ASCII string lit? */
static int piece_is(const uint32_t *p, size_t n, const char *lit)
{
	size_t i = 0;
	for (; i < n && lit[i]; i++)
		if (p[i] != (unsigned char)lit[i])
			return 0;
	return i == n && !lit[i];
}

/* ---- clip_tokenize ------------------------------------------------------------------------ */

int clip_tokenize(const clip_tokenizer *tok, const char *text, size_t len,
		  int32_t *ids, size_t max_ids, size_t *n_ids, clip_error *err)
{
	struct scratch s = { 0 };
	size_t n = 0, count = 0;
	int rc;

	if (n_ids)
		*n_ids = 0;
	if (!tok || !ids || !n_ids || (!text && len))
		return clip_fail(err, CLIP_ERR_INVALID, "clip_tokenize: NULL argument");
	if (max_ids < 2)
		return clip_fail(err, CLIP_ERR_INVALID, "clip_tokenize: max_ids %zu, at least 2 needed", max_ids);

	if ((rc = decode_nfc(&s, text, len, &n, err)))
		goto out;
	n = html_unescape(s.a, n, s.b);
	n = html_unescape(s.b, n, s.a);
	n = clean_whitespace(s.a, n, s.b);
	n = lower(s.b, n, s.a);

	const uint32_t *t = s.a;
	size_t room = max_ids - 2, pos = 0, start, end;
	ids[count++] = tok->sot;
	while (count - 1 < room && next_piece(t, n, &pos, &start, &end)) {
		size_t left = room - (count - 1);
		/* simple_tokenizer's cache maps exactly these two to themselves
		 * (the pattern also matches, say, "<|\u017ftartoftext|>") */
		if (piece_is(t + start, end - start, SOT_TEXT)) {
			ids[count++] = tok->sot;
			continue;
		}
		if (piece_is(t + start, end - start, EOT_TEXT)) {
			ids[count++] = tok->eot;
			continue;
		}
		size_t nb = 0;
		if (end - start > (SIZE_MAX / 4) || scratch_piece(&s, 4 * (end - start))) {
			rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory tokenizing %zu bytes", len);
			goto out;
		}
		for (size_t i = start; i < end; i++)
			nb += utf8_put(t[i], s.bytes + nb);
		count += bpe(tok, &s, nb, ids + count, left);
	}
	ids[count++] = tok->eot;
	*n_ids = count;
	rc = CLIP_OK;
out:
	scratch_free(&s);
	return rc;
}
