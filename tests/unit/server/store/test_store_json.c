/*
 * The canonical form of stored metadata (server/store/store_json.c): what
 * it accepts and how it writes it, what it refuses and why, and repair mode
 * for rows written before it (issue 17, defects 2-4).
 */
#include "harness.h"
#include "store_internal.h"

static char *canon(const char *in, int repair, store_error *err)
{
	char *out = NULL;
	if (st_json_canonical(in, strlen(in), 8, repair, "metadata", &out, NULL, err) != 0)
		return NULL;
	return out;
}

static void expect(const char *in, const char *want)
{
	store_error err = { 0 };
	char *got = canon(in, 0, &err);
	if (!got)
		HARNESS_FAIL("%s: refused: %s", in, err.msg);
	else
		CHECK_EQ_STR(got, want);
	/* canonical text is a fixed point */
	char *again = got ? canon(got, 0, &err) : NULL;
	if (got)
		CHECK_EQ_STR(again, got);
	free(got);
	free(again);
}

static void refuse(const char *in, const char *why)
{
	store_error err = { 0 };
	char *got = canon(in, 0, &err);
	if (got) {
		HARNESS_FAIL("%s: accepted as %s", in, got);
		free(got);
		return;
	}
	CHECK_EQ_INT(err.code, STORE_ERR_INVALID);
	if (!strstr(err.msg, why))
		HARNESS_FAIL("%s: message \"%s\" does not say \"%s\"", in, err.msg, why);
}

static void test_canonical_text(void)
{
	expect(" { \"a\" : 1 , \"b\" : [ true, false, null ] } ", "{\"a\":1,\"b\":[true,false,null]}");
	expect("{\"s\":\"\\u00e9\\ud83d\\ude00\\/\"}", "{\"s\":\"\xc3\xa9\xf0\x9f\x98\x80/\"}");
	expect("{\"c\":\"\\u0001\\n\\t\\\"\\\\\"}", "{\"c\":\"\\u0001\\n\\t\\\"\\\\\"}");
	expect("{\"k\":{}}", "{\"k\":{}}");
	expect("{\"k\":[]}", "{\"k\":[]}");
}

static void test_numbers(void)
{
	expect("{\"n\":1.0}", "{\"n\":1}");
	expect("{\"n\":1e3}", "{\"n\":1000}");
	expect("{\"n\":-0}", "{\"n\":0}");
	expect("{\"n\":-0.0}", "{\"n\":0}");
	expect("{\"n\":0.1}", "{\"n\":0.1}");
	expect("{\"n\":1.50}", "{\"n\":1.5}");
	expect("{\"n\":9007199254740992}", "{\"n\":9007199254740992}");
	expect("{\"n\":-9007199254740992}", "{\"n\":-9007199254740992}");
	expect("{\"n\":1e20}", "{\"n\":1e+20}");
	expect("{\"n\":12345678901234567890.0}", "{\"n\":1.2345678901234567e+19}");
	expect("{\"n\":0.30000000000000004}", "{\"n\":0.30000000000000004}");
	/* integral values between 2^53 and 1e17 that are not integer literals
	 * (an exponent, a fraction) keep an exponent: as plain digits they
	 * would be integer literals beyond 2^53, refused when read back (the
	 * json fuzz target found {"n":12345678901234567e0}) */
	expect("{\"n\":12345678901234567e0}", "{\"n\":1.2345678901234568e+16}");
	expect("{\"n\":-9007199254740994.0}", "{\"n\":-9.007199254740994e+15}");
	expect("{\"n\":9007199254740996e0}", "{\"n\":9.007199254740996e+15}");
	expect("{\"n\":9.1e15}", "{\"n\":9.1e+15}");
	expect("{\"n\":99999999999999984e0}", "{\"n\":9.999999999999998e+16}");
	refuse("{\"n\":9007199254740993}", "beyond 2^53");
	refuse("{\"n\":12345678901234567890}", "beyond 2^53");
	refuse("{\"n\":1e999999}", "not finite");
	refuse("{\"n\":-1e400}", "not finite");
	refuse("{\"n\":01}", "separated by");
	refuse("{\"n\":1.}", "not valid JSON");
	refuse("{\"n\":NaN}", "not valid JSON");

	char out[ST_JSON_NUMBER_MAX];
	CHECK_EQ_INT(st_json_number_text(1.0, out), 0);
	CHECK_EQ_STR(out, "1");
	CHECK_EQ_INT(st_json_number_text(25.0, out), 0);
	CHECK_EQ_STR(out, "25");
	CHECK_EQ_INT(st_json_number_text(0.1, out), 0);
	CHECK_EQ_STR(out, "0.1");
	CHECK_EQ_INT(st_json_number_text(1.0 / 0.0, out), -1);
}

static void test_refusals(void)
{
	refuse("{\"x\":\"\\ud800\",\"keep\":1}", "lone UTF-16 surrogate");
	refuse("{\"x\":\"\\udc00\"}", "lone UTF-16 surrogate");
	refuse("{\"x\":\"\\ud800\\u0041\"}", "lone UTF-16 surrogate");
	refuse("{\"bad\":\"\xff\xfe\"}", "not valid UTF-8");
	refuse("{\"bad\":\"\xed\xa0\x80\"}", "not valid UTF-8");       /* a surrogate in UTF-8 */
	refuse("{\"bad\":\"\xc0\xaf\"}", "not valid UTF-8");           /* overlong */
	refuse("{\"k\xff\":1}", "not valid UTF-8");
	refuse("{\"a\":\"a\\u0000b\"}", "NUL");
	refuse("{\"d\":1,\"d\":2}", "key \"d\" more than once");
	refuse("{\"o\":{\"d\":1,\"\\u0064\":2}}", "more than once");   /* the same key, escaped */
	refuse("{\"a\":1} x", "text after the value");
	refuse("{\"a\":\"tab\there\"}", "control character");
	store_error err = { 0 };
	const char nul[] = "{\"a\":\"x\0y\"}";
	char *out = NULL;
	CHECK(st_json_canonical(nul, sizeof nul - 1, 8, 0, "metadata", &out, NULL, &err) != 0);
	CHECK(strstr(err.msg, "NUL") != NULL);
	/* nesting past the limit is too large, not invalid */
	CHECK(st_json_canonical("{\"a\":[[[[[[[[1]]]]]]]]}", 22, 8, 0, "metadata", &out, NULL, &err) != 0);
	CHECK_EQ_INT(err.code, STORE_ERR_TOO_LARGE);
}

static void test_repair(void)
{
	store_error err = { 0 };
	char *got = canon("{\"x\":\"\\ud800\",\"keep\":1}", 1, &err);
	CHECK_EQ_STR(got, "{\"x\":\"\xef\xbf\xbd\",\"keep\":1}");
	free(got);
	got = canon("{\"d\":1,\"e\":3,\"d\":2}", 1, &err);
	CHECK_EQ_STR(got, "{\"d\":1,\"e\":3}");
	free(got);
	got = canon("{\"n\":1e999999,\"b\":12345678901234567890}", 1, &err);
	CHECK_EQ_STR(got, "{\"n\":null,\"b\":1.2345678901234567e+19}");
	free(got);
	got = canon("{\"bad\":\"\xff\"}", 1, &err);
	CHECK_EQ_STR(got, "{\"bad\":\"\xef\xbf\xbd\"}");
	free(got);
}

/* A database whose rows predate the canonical form is rewritten once at
 * open: every row then reads back canonical, and filters see that. */
static void test_upgrade_at_open(void)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/up.db", harness_tmpdir());
	store_error err = { 0 };
	store *s = NULL;
	REQUIRE(store_open(path, NULL, &s, NULL, &err) == 0);
	sqlite3 *db = NULL;
	REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
	REQUIRE(sqlite3_exec(db,
			     "INSERT INTO images (sha256, mime, width, height, bytes, created_at, metadata) VALUES "
			     "('" "0000000000000000000000000000000000000000000000000000000000000001" "', 'image/png', 1, 1, 1, 1, "
			     "'{\"x\":\"\\ud800\",\"n\":1.0,\"d\":1,\"d\":2}');"
			     "DELETE FROM settings WHERE key = 'metadata_form';",
			     NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	store_close(s);
	s = NULL;
	REQUIRE(store_open(path, NULL, &s, NULL, &err) == 0);
	struct store_image img;
	REQUIRE(store_get_by_sha256(s, "0000000000000000000000000000000000000000000000000000000000000001", &img,
				    &err) == 0);
	CHECK_EQ_STR(img.metadata, "{\"x\":\"\xef\xbf\xbd\",\"n\":1,\"d\":1}");
	store_image_clear(&img);
	store_close(s);
}

int main(void)
{
	RUN(test_canonical_text);
	RUN(test_numbers);
	RUN(test_refusals);
	RUN(test_repair);
	RUN(test_upgrade_at_open);
	return harness_done();
}
