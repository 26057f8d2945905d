/* The command-line layer: flags, environment fallbacks, bounds, errors. */
#include <stdarg.h>

#include "cli.h"
#include "harness.h"

static char *model;
static long long k, body;
static double score;
static int verbose;
static struct cli_list origins;

static const struct cli_command cmd = { "demo", "a demo command", "[OPTIONS] ARG...", NULL };
static const struct cli_option opts[] = {
	{ "model", CLI_STRING, &model, "DIR", "model directory", 0, 0 },
	{ "k", CLI_INT, &k, "N", "results", 1, 1000 },
	{ "max-body", CLI_SIZE, &body, "BYTES", "body cap", 1, 1LL << 40 },
	{ "min-score", CLI_DOUBLE, &score, "S", "threshold", 0, 0 },
	{ "verbose", CLI_FLAG, &verbose, NULL, "say more", 0, 0 },
	{ "cors-origin", CLI_LIST, &origins, "ORIGIN", "allowed origin", 0, 0 },
	{ 0 },
};

static void reset(void)
{
	model = NULL;
	k = 10;
	body = 0;
	score = 0;
	verbose = 0;
	cli_list_free(&origins);
	unsetenv("CLIPD_MODEL");
	unsetenv("CLIPD_K");
	unsetenv("CLIPD_CORS_ORIGIN");
	unsetenv("CLIPD_VERBOSE");
}

/* argc counts argv[0]: pass argc - 1 strings. */
static int parse(struct cli_args *args, int argc, ...)
{
	static char *argv[32];
	va_list ap;
	va_start(ap, argc);
	static char name[] = "demo";
	argv[0] = name;
	for (int i = 1; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	argv[argc] = NULL;
	return cli_parse(&cmd, opts, argc, argv, args);
}

static void test_flags_and_positionals(void)
{
	reset();
	struct cli_args args;
	int rc = parse(&args, 9, "--model", "m1", "--k=25", "one", "--verbose",
		       "--max-body", "32M", "two");
	REQUIRE(rc == CLI_OK);
	CHECK_EQ_STR(model, "m1");
	CHECK_EQ_INT(k, 25);
	CHECK_EQ_INT(body, 32LL << 20);
	CHECK_EQ_INT(verbose, 1);
	CHECK_EQ_INT(args.n_positional, 2);
	CHECK_EQ_STR(args.positional[0], "one");
	CHECK_EQ_STR(args.positional[1], "two");
	cli_args_free(&args);
}

static void test_environment_fallback_and_precedence(void)
{
	reset();
	setenv("CLIPD_MODEL", "from-env", 1);
	setenv("CLIPD_K", "7", 1);
	setenv("CLIPD_CORS_ORIGIN", "https://a.example,https://b.example", 1);
	setenv("CLIPD_VERBOSE", "true", 1);
	struct cli_args args;
	REQUIRE(parse(&args, 3, "--k", "3") == CLI_OK);
	CHECK_EQ_STR(model, "from-env");
	CHECK_EQ_INT(k, 3); /* the flag wins over the environment */
	CHECK_EQ_INT(verbose, 1);
	CHECK_EQ_INT(origins.n, 2);
	if (origins.n == 2) {
		CHECK_EQ_STR(origins.items[0], "https://a.example");
		CHECK_EQ_STR(origins.items[1], "https://b.example");
	}
	/* the environment itself is left as it was (a re-exec passes it on) */
	CHECK_EQ_STR(getenv("CLIPD_CORS_ORIGIN"), "https://a.example,https://b.example");
	cli_args_free(&args);
	reset();
}

static void test_repeatable_option_keeps_order(void)
{
	reset();
	struct cli_args args;
	REQUIRE(parse(&args, 4, "--cors-origin", "x", "--cors-origin=y") == CLI_OK);
	CHECK_EQ_INT(origins.n, 2);
	CHECK_EQ_STR(origins.items[0], "x");
	CHECK_EQ_STR(origins.items[1], "y");
	cli_args_free(&args);
	reset();
}

static void test_errors_are_usage_errors(void)
{
	struct cli_args args;
	reset();
	CHECK_EQ_INT(parse(&args, 2, "--nope"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&args, 2, "-x"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&args, 2, "--model"), CLI_USAGE_ERROR);      /* missing value */
	CHECK_EQ_INT(parse(&args, 3, "--k", "0"), CLI_USAGE_ERROR);     /* below min */
	CHECK_EQ_INT(parse(&args, 3, "--k", "1001"), CLI_USAGE_ERROR);  /* above max */
	CHECK_EQ_INT(parse(&args, 3, "--k", "12abc"), CLI_USAGE_ERROR); /* not a number */
	CHECK_EQ_INT(parse(&args, 3, "--max-body", "3X"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&args, 3, "--min-score", "high"), CLI_USAGE_ERROR);
	CHECK_EQ_INT(parse(&args, 2, "--verbose=1"), CLI_USAGE_ERROR);
	setenv("CLIPD_K", "many", 1);
	CHECK_EQ_INT(parse(&args, 1), CLI_USAGE_ERROR);                 /* bad environment value */
	reset();
}

static void test_help_and_double_dash(void)
{
	struct cli_args args;
	reset();
	CHECK_EQ_INT(parse(&args, 2, "--help"), CLI_HELP);
	REQUIRE(parse(&args, 4, "--", "--model", "-x") == CLI_OK);
	CHECK(model == NULL);
	CHECK_EQ_INT(args.n_positional, 2);
	CHECK_EQ_STR(args.positional[0], "--model");
	cli_args_free(&args);
}

int main(void)
{
	RUN(test_flags_and_positionals);
	RUN(test_environment_fallback_and_precedence);
	RUN(test_repeatable_option_keeps_order);
	RUN(test_errors_are_usage_errors);
	RUN(test_help_and_double_dash);
	return harness_done();
}
