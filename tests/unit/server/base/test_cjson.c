/* cJSON round trips: what clipd relies on for requests, metadata and output. */
#include <cJSON.h>

#include "harness.h"

static void test_roundtrip_preserves_values(void)
{
	const char *src = "{\"name\":\"caf\\u00e9 \\\"x\\\"\",\"n\":-12.5,\"ok\":true,"
			  "\"tags\":[\"a\",\"b\"],\"nested\":{\"k\":null}}";
	cJSON *doc = cJSON_Parse(src);
	REQUIRE(doc != NULL);
	char *out = cJSON_PrintUnformatted(doc);
	REQUIRE(out != NULL);
	cJSON *again = cJSON_Parse(out);
	REQUIRE(again != NULL);
	CHECK(cJSON_Compare(doc, again, 1));
	CHECK_EQ_STR(cJSON_GetObjectItemCaseSensitive(again, "name")->valuestring, "caf\xc3\xa9 \"x\"");
	CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(again, "n")->valuedouble, -12.5, 0);
	CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(again, "ok")));
	CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(again, "tags")), 2);
	CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(again, "nested"), "k")));
	cJSON_free(out);
	cJSON_Delete(doc);
	cJSON_Delete(again);
}

static void test_float_precision_survives(void)
{
	/* Embeddings are printed with %.9g: a float must come back bit-exact. */
	float values[] = { 0.1f, -3.4028235e38f, 1.17549435e-38f, 0.123456789f };
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		char buf[64];
		snprintf(buf, sizeof buf, "[%.9g]", (double)values[i]);
		cJSON *arr = cJSON_Parse(buf);
		REQUIRE(arr != NULL);
		float back = (float)cJSON_GetArrayItem(arr, 0)->valuedouble;
		CHECK(back == values[i]);
		cJSON_Delete(arr);
	}
}

static void test_malformed_input_is_refused(void)
{
	const char *bad[] = { "", "{", "{\"a\":}", "[1,2", "{\"a\" 1}", "nul", "\"unterminated" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cJSON *doc = cJSON_Parse(bad[i]);
		CHECK(doc == NULL);
		cJSON_Delete(doc);
	}
}

int main(void)
{
	RUN(test_roundtrip_preserves_values);
	RUN(test_float_precision_survives);
	RUN(test_malformed_input_is_refused);
	return harness_done();
}
