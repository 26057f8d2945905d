/*
 * The PostgreSQL backend's keyword search: the meaning of the SQLite
 * store's (store_keywords.c) over PostgreSQL's full-text search. The
 * keywords table holds each image's tsvector (filename, metadata strings,
 * library paths), kept by triggers in the same transaction as each write
 * (migrations/postgresql/0002), words spelled by clipd_words() as FTS5's
 * unicode61 tokenizer spells them, under the 'simple' configuration (no
 * stemming, no stop words).
 *
 * The query. Every whitespace-separated word of the client's text is a
 * phrase of its own (phraseto_tsquery over the word: its tokens, adjacent,
 * in order, as FTS5's quoted phrase), the phrases are ORed, and an image
 * matching any phrase of not_words is left out. The client's text reaches
 * the server only as parameters ($1, $2), split and turned into tsquery
 * values there: nothing a client types is tsquery syntax.
 *
 * The ranking. Each matched phrase counts its inverse document frequency,
 * BM25's ln(1 + (N - n + 0.5) / (n + 0.5)) (N images, n of them matching
 * the phrase); an image's score is the sum over the phrases it matches, so
 * images matching more, and rarer, words come first; ties by id. Unlike
 * BM25 it ignores how often a word occurs in an image and the length of
 * the image's text (README "Keywords and hybrid search").
 */
#include <stdlib.h>
#include <string.h>

#include "pgstore_internal.h"

#define RUN_FAIL(err) ((err) ? (err)->code : STORE_ERR_DB)

/* The phrases of a text parameter ($N), one per word (split on the six
 * ASCII white-space characters, as the SQLite store splits). */
#define PHRASES(n) "SELECT DISTINCT phraseto_tsquery('simple', t.w) AS tq FROM (SELECT clipd_words(x) AS w FROM " \
	"regexp_split_to_table(" n ", '[ \\t\\n\\r\\f\\v]+') x) t WHERE btrim(t.w) <> ''"

static const char search_sql[] =
	"WITH w AS (" PHRASES("$1") "), nw AS (" PHRASES("$2") "), "
	"total AS (SELECT count(*)::float8 AS n FROM keywords), "
	"d AS (SELECT w.tq, ln(1 + (total.n - df.n + 0.5) / (df.n + 0.5)) AS idf FROM w CROSS JOIN total "
	"CROSS JOIN LATERAL (SELECT count(*)::float8 AS n FROM keywords k WHERE k.body @@ w.tq) df) "
	"SELECT i.id, sum(d.idf) FROM d JOIN keywords k ON k.body @@ d.tq JOIN images i ON i.id = k.image_id "
	"WHERE NOT EXISTS (SELECT 1 FROM nw WHERE k.body @@ nw.tq)";

int pgk_keyword_search(void *db, const char *words, const char *not_words, const struct store_selection *sel,
		       size_t k, int64_t *ids, float *scores, size_t *n, store_error *err)
{
	struct pg_stmt q = { .sql = DBUF_INIT(256 * 1024) };
	struct pg_conn *c = NULL;
	PGresult *r = NULL;
	*n = 0;
	if (!words || k == 0)
		return 0;
	if (!not_words)
		not_words = "";
	if (!pg_valid_utf8(words) || !pg_valid_utf8(not_words))
		return store_fail(err, STORE_ERR_INVALID, "keyword search: the words must be UTF-8");
	int rc = 0;
	if (pg_param(&q, words, strlen(words)) != 1 || pg_param(&q, not_words, strlen(not_words)) != 2 ||
	    pg_param_i64(&q, (int64_t)k) != 3 || dbuf_puts(&q.sql, search_sql) != 0)
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0)
		rc = pg_selection_sql(&q, sel, err);
	if (rc == 0 && (dbuf_puts(&q.sql, " GROUP BY i.id ORDER BY 2 DESC, i.id LIMIT $3::bigint") != 0 ||
			dbuf_append(&q.sql, "", 1) != 0))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc == 0)
		rc = pg_take(db, &c, err);
	if (rc == 0 && !(r = pg_run(c, q.sql.data, q.n, q.vals, NULL, NULL, 0, PGRES_TUPLES_OK, 2, "keyword search",
				    err)))
		rc = RUN_FAIL(err);
	if (rc == 0 && (size_t)PQntuples(r) > k)
		rc = store_fail(err, STORE_ERR_DB, "catalog database: more rows than asked");
	for (int row = 0; rc == 0 && row < PQntuples(r); row++) {
		const char *v = PQgetvalue(r, row, 1);
		char *end = NULL;
		double score = strtod(v, &end);
		if ((rc = pg_col_i64(r, row, 0, 0, &ids[row], err)) != 0)
			break;
		if (PQgetisnull(r, row, 1) || end == v || *end)
			rc = store_fail(err, STORE_ERR_DB, "catalog database: keyword search: a score is not a number");
		scores[row] = (float)score;
	}
	if (rc == 0)
		*n = (size_t)PQntuples(r);
	PQclear(r);
	pg_give(db, c);
	pg_stmt_free(&q);
	return rc;
}
