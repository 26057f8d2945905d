/* base/files, base/clock, base/text: whole-file reads under a cap, base
 * names, clocks, messages cut to fit. */
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "files.h"
#include "harness.h"
#include "text.h"

static void write_bytes(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (f) {
		fwrite(data, 1, len, f);
		fclose(f);
	}
}

static void test_read_all(void)
{
	char path[600], msg[FILES_MSG_MAX];
	unsigned char *bytes = NULL;
	size_t len = 99;
	snprintf(path, sizeof path, "%s/ten", harness_tmpdir());
	write_bytes(path, "0123456789", 10);
	REQUIRE(files_read_all(path, 10, &bytes, &len, msg, sizeof msg) == FILES_OK);
	CHECK_EQ_INT(len, 10);
	CHECK(bytes && !memcmp(bytes, "0123456789", 10));
	free(bytes);

	/* one byte over the cap: refused, nothing handed out, the message names the path */
	static unsigned char sentinel[1];
	bytes = sentinel;
	CHECK_EQ_INT(files_read_all(path, 9, &bytes, &len, msg, sizeof msg), FILES_ERR_TOO_LARGE);
	CHECK(bytes == NULL);
	CHECK_EQ_INT(len, 0);
	CHECK_CONTAINS(msg, path);
	CHECK_CONTAINS(msg, "over the limit of 9");
}

static void test_read_all_empty_missing_dir(void)
{
	char path[600], msg[FILES_MSG_MAX];
	unsigned char *bytes = NULL;
	size_t len = 5;
	snprintf(path, sizeof path, "%s/empty", harness_tmpdir());
	write_bytes(path, "", 0);
	REQUIRE(files_read_all(path, 10, &bytes, &len, msg, sizeof msg) == FILES_OK);
	CHECK(bytes != NULL);
	CHECK_EQ_INT(len, 0);
	free(bytes);

	snprintf(path, sizeof path, "%s/missing", harness_tmpdir());
	CHECK_EQ_INT(files_read_all(path, 10, &bytes, &len, msg, sizeof msg), FILES_ERR_OPEN);
	CHECK_CONTAINS(msg, "cannot open");
	CHECK_EQ_INT(files_read_all(harness_tmpdir(), 10, &bytes, &len, msg, sizeof msg), FILES_ERR_TYPE);
	CHECK_CONTAINS(msg, "not a regular file");
}

/* A long path is never cut off in the message. */
static void test_read_all_long_path_message(void)
{
	char path[4200], msg[FILES_MSG_MAX];
	unsigned char *bytes = NULL;
	size_t len = 0;
	size_t n = (size_t)snprintf(path, sizeof path, "%s/", harness_tmpdir());
	while (n + 1 < 4000)
		path[n++] = 'd';
	path[n] = 0;
	CHECK_EQ_INT(files_read_all(path, 10, &bytes, &len, msg, sizeof msg), FILES_ERR_OPEN);
	CHECK(strncmp(msg, path, strlen(path)) == 0);
}

static void test_base_name(void)
{
	char out[64];
	CHECK_EQ_INT(files_base_name("models/ViT-B-32", out, sizeof out), 8);
	CHECK_EQ_STR(out, "ViT-B-32");
	/* the two spellings of a directory give one name */
	CHECK_EQ_INT(files_base_name("models/ViT-B-32/", out, sizeof out), 8);
	CHECK_EQ_STR(out, "ViT-B-32");
	CHECK_EQ_INT(files_base_name("models/ViT-B-32///", out, sizeof out), 8);
	CHECK_EQ_STR(out, "ViT-B-32");
	files_base_name("plain", out, sizeof out);
	CHECK_EQ_STR(out, "plain");
	files_base_name("/", out, sizeof out);
	CHECK_EQ_STR(out, "/");
	files_base_name("", out, sizeof out);
	CHECK_EQ_STR(out, "");
	/* too small: -1 and an empty string, never a cut name */
	CHECK_EQ_INT(files_base_name("a/abcdef", out, 4), -1);
	CHECK_EQ_STR(out, "");
}

static void test_clocks(void)
{
	double a = clock_mono_s(), b = clock_mono_s();
	CHECK(b >= a);
	CHECK(clock_wall_us() > 1600000000LL * 1000000);   /* after 2020 */
	CHECK(clock_thread_cpu_s() >= 0);
	struct timespec now, d;
	clock_gettime(CLOCK_REALTIME, &now);
	d = clock_wall_deadline(1.75);
	double delta = (double)(d.tv_sec - now.tv_sec) + (double)(d.tv_nsec - now.tv_nsec) * 1e-9;
	CHECK(delta > 1.7 && delta < 2.5);
	CHECK(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
}

static void test_text_copy(void)
{
	char out[8];
	CHECK_EQ_INT(text_copy(out, sizeof out, "short"), 5);
	CHECK_EQ_STR(out, "short");
	CHECK_EQ_INT(text_copy(out, sizeof out, "a longer line"), 7);
	CHECK_EQ_STR(out, "a longe");
	/* never half a UTF-8 character: "abcde\xc3\xa9f" cut before the e-acute */
	CHECK_EQ_INT(text_copy(out, 7, "abcde\xc3\xa9" "f"), 5);
	CHECK_EQ_STR(out, "abcde");
	CHECK_EQ_INT(text_copy(out, sizeof out, NULL), 0);
	CHECK_EQ_STR(out, "");
	CHECK_EQ_INT(text_copy(out, 0, "x"), 0);
}

static void test_text_is_number(void)
{
	static const char *const json[] = { "0", "-0", "7", "-12", "0.5", "1e3", "1E+3", "2.5e-7", "-0.0", NULL };
	static const char *const not_json[] = { "", "-", "+1", " 1", "1 ", "\t1", ".5", "1.", "1e", "1e+", "0x1", "inf",
						"nan", "1.5.2", "--1", "1a", NULL };
	for (int i = 0; json[i]; i++)
		CHECK_EQ_INT(text_is_number(json[i], 0), 1);
	for (int i = 0; not_json[i]; i++) {
		CHECK_EQ_INT(text_is_number(not_json[i], 0), 0);
		CHECK_EQ_INT(text_is_number(not_json[i], TEXT_NUMBER_LEADING_ZEROS), 0);
	}
	/* leading zeros: only when asked for */
	CHECK_EQ_INT(text_is_number("007", 0), 0);
	CHECK_EQ_INT(text_is_number("00.5", 0), 0);
	CHECK_EQ_INT(text_is_number("007", TEXT_NUMBER_LEADING_ZEROS), 1);
	CHECK_EQ_INT(text_is_number("-00.5e1", TEXT_NUMBER_LEADING_ZEROS), 1);
	/* integers: digits only */
	CHECK_EQ_INT(text_is_number("-42", TEXT_NUMBER_INTEGER), 1);
	CHECK_EQ_INT(text_is_number("4.2", TEXT_NUMBER_INTEGER), 0);
	CHECK_EQ_INT(text_is_number("4e2", TEXT_NUMBER_INTEGER), 0);
	CHECK_EQ_INT(text_is_number("042", TEXT_NUMBER_INTEGER), 0);
	CHECK_EQ_INT(text_is_number("042", TEXT_NUMBER_INTEGER | TEXT_NUMBER_LEADING_ZEROS), 1);
}

int main(void)
{
	RUN(test_read_all);
	RUN(test_read_all_empty_missing_dir);
	RUN(test_read_all_long_path_message);
	RUN(test_base_name);
	RUN(test_clocks);
	RUN(test_text_copy);
	RUN(test_text_is_number);
	return harness_done();
}
