/* `clipd serve`'s options: defaults, flags, CLIPD_* variables, lists,
 * cross-checks. */
#include <stdarg.h>

#include "harness.h"
#include "srv_config.h"

static const struct cli_command cmd = { "serve", "run the HTTP daemon", "--model DIR --data DIR", NULL };

static int parse(struct srv_config *cfg, int argc, ...)
{
	static char *argv[40];
	static char name[] = "serve";
	va_list ap;
	va_start(ap, argc);
	argv[0] = name;
	for (int i = 1; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	argv[argc] = NULL;
	return srv_config_parse(&cmd, argc, argv, cfg);
}

static void clear_env(void)
{
	unsetenv("CLIPD_MODEL");
	unsetenv("CLIPD_DATA");
	unsetenv("CLIPD_CORS_ORIGIN");
	unsetenv("CLIPD_TRUSTED_PROXY");
	unsetenv("CLIPD_MAX_BODY");
	unsetenv("CLIPD_BATCH_SIZE");
	unsetenv("CLIPD_PRECISION");
}

static void test_defaults(void)
{
	clear_env();
	struct srv_config c;
	REQUIRE(parse(&c, 5, "--model", "m", "--data", "d") == CLI_OK);
	CHECK_EQ_STR(c.model, "m");
	CHECK_EQ_STR(c.listen, "127.0.0.1:8080");
	CHECK_EQ_INT(c.max_body, 32LL << 20);
	CHECK_EQ_INT(c.max_pixels, 64000000);
	CHECK_EQ_INT(c.max_k, 1000);
	CHECK_EQ_INT(c.max_query, 1000);
	CHECK_EQ_INT(c.max_labels, 256);
	CHECK_EQ_INT(c.max_texts, 256);
	CHECK_EQ_INT(c.max_metadata, 16384);
	CHECK_EQ_INT(c.max_metadata_depth, 8);
	CHECK_EQ_INT(c.batch_size, 8);
	CHECK_EQ_INT(c.rate_limit, 0);
	CHECK_EQ_INT(c.n_proxies, 0);
	CHECK_EQ_STR(c.precision, "fp32");
	srv_config_free(&c);
}

static void test_flags_and_environment(void)
{
	clear_env();
	setenv("CLIPD_MODEL", "env-model", 1);
	setenv("CLIPD_DATA", "env-data", 1);
	setenv("CLIPD_CORS_ORIGIN", "https://a.example,http://b.example:8080", 1);
	setenv("CLIPD_TRUSTED_PROXY", "10.0.0.0/8,::1", 1);
	setenv("CLIPD_MAX_BODY", "1M", 1);
	struct srv_config c;
	REQUIRE(parse(&c, 6, "--listen", "[::1]:0", "--batch-size=16", "--rate-limit", "2.5") == CLI_OK);
	CHECK_EQ_STR(c.model, "env-model");
	CHECK_EQ_STR(c.data, "env-data");
	CHECK_EQ_INT(c.cors_origins.n, 2);
	CHECK_EQ_STR(c.cors_origins.items[1], "http://b.example:8080");
	CHECK_EQ_INT(c.n_proxies, 2);
	CHECK_EQ_INT(c.max_body, 1 << 20);
	CHECK_EQ_INT(c.batch_size, 16);
	CHECK_NEAR(c.rate_limit, 2.5, 0);
	CHECK_EQ_INT(c.rate_burst, 5);
	CHECK_EQ_INT(c.listen_addr.ss_family, AF_INET6);
	srv_config_free(&c);
	setenv("CLIPD_PRECISION", "bf16", 1);
	REQUIRE(parse(&c, 1) == CLI_OK);
	CHECK_EQ_STR(c.precision, "bf16");
	srv_config_free(&c);
	unsetenv("CLIPD_PRECISION");
	/* The command line wins over the environment. */
	REQUIRE(parse(&c, 3, "--model", "flag-model") == CLI_OK);
	CHECK_EQ_STR(c.model, "flag-model");
	srv_config_free(&c);
	clear_env();
}

static void test_usage_errors(void)
{
	clear_env();
	struct srv_config c;
	CHECK_EQ_INT(parse(&c, 3, "--data", "d"), CLI_USAGE_ERROR);                     /* no model */
	CHECK_EQ_INT(parse(&c, 3, "--model", "m"), CLI_USAGE_ERROR);                    /* no data */
	CHECK_EQ_INT(parse(&c, 7, "--model", "m", "--data", "d", "--listen", "nowhere"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&c, 7, "--model", "m", "--data", "d", "--trusted-proxy", "x.y"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&c, 7, "--model", "m", "--data", "d", "--cors-origin", "example.com"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&c, 7, "--model", "m", "--data", "d", "--cors-origin", "https://a.example/"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&c, 7, "--model", "m", "--data", "d", "--max-k", "1001"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&c, 7, "--model", "m", "--data", "d", "--max-metadata", "17K"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&c, 7, "--model", "m", "--data", "d", "--log-level", "loud"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&c, 7, "--model", "m", "--data", "d", "--precision", "fp16"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&c, 9, "--model", "m", "--data", "d", "--max-pixels", "100", "--decode-budget", "99"),
		     CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&c, 6, "--model", "m", "--data", "d", "extra"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&c, 6, "--model", "m", "--data", "d", "--bogus"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&c, 2, "--help"), CLI_HELP);
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_flags_and_environment);
	RUN(test_usage_errors);
	return harness_done();
}
