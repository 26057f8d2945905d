/* API keys: the file format, scopes, bearer parsing, wrong keys. */
#include "harness.h"
#include "http_auth.h"

static void test_parse_and_check(void)
{
	const char *text = "# clipd keys\n\nreadonly-key-123 read\n  writer-key-4567   write  \n"
			   "default-scope-key\n";
	struct http_keys *keys = NULL;
	char msg[256];
	REQUIRE(http_keys_parse(text, strlen(text), &keys, msg, sizeof msg) == 0);
	CHECK_EQ_INT(http_keys_count(keys), 3);
	int idx;
	CHECK_EQ_INT(http_keys_check(keys, "Bearer readonly-key-123", &idx), HTTP_SCOPE_READ);
	CHECK_EQ_INT(idx, 0);
	CHECK_EQ_INT(http_keys_check(keys, "bearer   writer-key-4567 ", &idx), HTTP_SCOPE_WRITE);
	CHECK_EQ_INT(idx, 1);
	CHECK_EQ_INT(http_keys_check(keys, "Bearer default-scope-key", &idx), HTTP_SCOPE_WRITE);
	CHECK_EQ_INT(idx, 2);
	CHECK_EQ_INT(http_keys_check(keys, "Bearer readonly-key-12", &idx), HTTP_SCOPE_NONE);
	CHECK_EQ_INT(idx, -1);
	CHECK_EQ_INT(http_keys_check(keys, "Bearer readonly-key-1234", &idx), HTTP_SCOPE_NONE);
	CHECK_EQ_INT(http_keys_check(keys, "Basic readonly-key-123", &idx), HTTP_SCOPE_NONE);
	CHECK_EQ_INT(http_keys_check(keys, "Bearerreadonly-key-123", &idx), HTTP_SCOPE_NONE);
	CHECK_EQ_INT(http_keys_check(keys, "readonly-key-123", &idx), HTTP_SCOPE_NONE);
	CHECK_EQ_INT(http_keys_check(keys, "Bearer ", &idx), HTTP_SCOPE_NONE);
	CHECK_EQ_INT(http_keys_check(keys, NULL, &idx), HTTP_SCOPE_NONE);
	CHECK_EQ_INT(http_keys_check(NULL, "Bearer readonly-key-123", &idx), HTTP_SCOPE_NONE);
	http_keys_free(keys);
}

static void test_bad_files(void)
{
	struct http_keys *keys = NULL;
	char msg[256];
	const char *bad_scope = "good-key-000 admin\n";
	CHECK(http_keys_parse(bad_scope, strlen(bad_scope), &keys, msg, sizeof msg) != 0);
	CHECK_CONTAINS(msg, "line 1");
	CHECK(strstr(msg, "good-key-000") == NULL);   /* never echo a key */
	const char *short_key = "# c\nshort\n";
	CHECK(http_keys_parse(short_key, strlen(short_key), &keys, msg, sizeof msg) != 0);
	CHECK_CONTAINS(msg, "line 2");
	const char *empty = "# nothing\n\n";
	CHECK(http_keys_parse(empty, strlen(empty), &keys, msg, sizeof msg) != 0);
	CHECK(http_keys_load("/nonexistent/keys", &keys, msg, sizeof msg) != 0);
	CHECK_CONTAINS(msg, "/nonexistent/keys");
	CHECK(keys == NULL);
}

static void test_load_file(void)
{
	char path[600];
	snprintf(path, sizeof path, "%s/keys", harness_tmpdir());
	FILE *f = fopen(path, "w");
	REQUIRE(f);
	fputs("file-key-abcdef read\r\n", f);
	fclose(f);
	struct http_keys *keys = NULL;
	char msg[256];
	REQUIRE(http_keys_load(path, &keys, msg, sizeof msg) == 0);
	int idx;
	CHECK_EQ_INT(http_keys_check(keys, "Bearer file-key-abcdef", &idx), HTTP_SCOPE_READ);
	http_keys_free(keys);
	http_keys_free(NULL);
}

int main(void)
{
	RUN(test_parse_and_check);
	RUN(test_bad_files);
	RUN(test_load_file);
	return harness_done();
}
