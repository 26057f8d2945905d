/*
 * The SQLite store's keyword search: FTS5 over each image's filename and
 * the string values of its metadata (the keywords table and its triggers,
 * migrations/), ranked by BM25, within a selection. See store.h.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

/* Append the words of text as quoted FTS5 phrases joined by " OR ": every
 * word is a phrase of its own, so nothing a client types is FTS5 syntax.
 * Returns the number of words, or -1 when buf is too small. */
static int fts_words(const char *text, char *buf, size_t len)
{
	int words = 0;
	const char *p = text;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
			p++;
		if (!*p)
			break;
		if (st_appendf(buf, len, "%s\"", words ? " OR " : "") != 0)
			return -1;
		size_t at = strlen(buf);
		for (; *p && !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v'); p++) {
			if (at + 3 >= len)
				return -1;
			if (*p == '"')
				buf[at++] = '"';   /* a quote inside a phrase is doubled */
			buf[at++] = *p;
		}
		buf[at] = 0;
		if (st_appendf(buf, len, "\"") != 0)
			return -1;
		words++;
	}
	return words;
}

int store_keyword_search(store *s, const char *words, const char *not_words, const struct store_selection *sel,
			 size_t k, int64_t *ids, float *scores, size_t *n, store_error *err)
{
	*n = 0;
	if (!words || k == 0)
		return 0;
	size_t len = 4 * (strlen(words) + (not_words ? strlen(not_words) : 0)) + 64;
	char *match = malloc(len);
	if (!match)
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	match[0] = 0;
	int rc = 0;
	st_appendf(match, len, "(");
	int nw = fts_words(words, match, len);
	st_appendf(match, len, ")");
	if (nw > 0 && not_words && *not_words) {
		st_appendf(match, len, " NOT (");
		int nn = fts_words(not_words, match, len);
		if (nn == 0)
			match[strlen(match) - 6] = 0;   /* no words after all: drop " NOT (" */
		else
			st_appendf(match, len, ")");
	}
	if (nw <= 0) {
		free(match);
		return 0;
	}
	char tail[96];
	snprintf(tail, sizeof tail, " ORDER BY 2, i.id LIMIT ?%d", ST_SEL_FIRST_FREE);
	struct store_conn *c = NULL;
	sqlite3_stmt *st = NULL;
	struct st_selection_plan *plan = NULL;
	if ((rc = st_read_begin(s, &c, err)) != 0)
		goto out_free;
	rc = st_selection_prepare(c, "SELECT i.id, bm25(keywords) FROM keywords JOIN images i ON i.id = keywords.rowid "
				  "WHERE keywords MATCH ?1", sel, tail, &st, &plan, err);
	if (rc != 0)
		goto out;
	sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, ST_SEL_FIRST_FREE, (sqlite3_int64)k);
	int r;
	while (*n < k && (r = sqlite3_step(st)) == SQLITE_ROW) {
		ids[*n] = sqlite3_column_int64(st, 0);
		scores[*n] = (float)-sqlite3_column_double(st, 1);   /* bm25 is lower-is-better */
		(*n)++;
	}
	if (*n < k && r != SQLITE_DONE)
		rc = st_dberr(c->db, r, err, "keyword search");
out:
	st_selection_finish(st, plan);
	st_read_end(s, c);
out_free:
	free(match);
	return rc;
}
