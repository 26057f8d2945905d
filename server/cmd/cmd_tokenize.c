/*
 * clipd tokenize [--model DIR] TEXT... - CLIP token ids of each TEXT, one
 * JSON line per text, in argument order:
 *
 *     {"text":"a red bicycle","ids":[49406,320,736,11652,49407]}
 *
 * The ids include the start and end tokens and no padding, truncated to
 * CLIP's context of 77 as the encoder sees them. Without --model, the
 * bundled CLIP vocabulary; with it, the directory's vocab.json and
 * merges.txt, or the bundled vocabulary when it has neither (OpenCLIP).
 * Exit status: 0; 1 if a text could not be tokenised; 2 for a usage error
 * or a tokenizer that cannot be loaded (nothing is printed then).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "clip.h"
#include "commands.h"

#define TOKENIZE_CONTEXT 77  /* CLIP's context length */

/* A copy of s with invalid UTF-8 replaced by U+FFFD, so that the JSON
 * echo of the text is valid. Caller frees; NULL when out of memory. */
static char *valid_utf8(const char *s)
{
	size_t len = strlen(s), o = 0;
	char *out = malloc(3 * len + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
						      (utf8proc_ssize_t)(len - i), &cp);
		if (n > 0) {
			memcpy(out + o, s + i, (size_t)n);
			o += (size_t)n;
			i += (size_t)n;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	out[o] = 0;
	return out;
}

/*
 * Print a line of cJSON output with U+0085, U+2028 and U+2029 escaped:
 * cJSON writes them raw, and line-oriented readers (Python's
 * str.splitlines, JavaScript) take them for line breaks. In valid UTF-8
 * those byte sequences can be nothing else.
 */
static void put_json_line(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)s[0] == 0xC2 && (unsigned char)s[1] == 0x85) {
			fputs("\\u0085", stdout);
			s++;
		} else if ((unsigned char)s[0] == 0xE2 && (unsigned char)s[1] == 0x80 &&
			   ((unsigned char)s[2] == 0xA8 || (unsigned char)s[2] == 0xA9)) {
			fputs((unsigned char)s[2] == 0xA8 ? "\\u2028" : "\\u2029", stdout);
			s += 2;
		} else {
			putchar(*s);
		}
	}
	putchar('\n');
}

/* One output line for text; 0 or -1 (the reason printed to stderr). */
static int print_tokens(const struct cli_command *info, const clip_tokenizer *tok, const char *text)
{
	int32_t ids[TOKENIZE_CONTEXT];
	size_t n = 0;
	clip_error err = { 0 };
	cJSON *obj = NULL;
	cJSON *arr = NULL;
	char *echo = NULL, *line = NULL;
	int rc = -1;

	if (clip_tokenize(tok, text, strlen(text), ids, TOKENIZE_CONTEXT, &n, &err) != 0) {
		fprintf(stderr, "clipd %s: %s\n", info->name, err.msg);
		goto out;
	}
	if (!(echo = valid_utf8(text)) || !(obj = cJSON_CreateObject()) ||
	    !cJSON_AddStringToObject(obj, "text", echo) || !(arr = cJSON_AddArrayToObject(obj, "ids")))
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		cJSON *num = cJSON_CreateNumber(ids[i]);
		if (!num || !cJSON_AddItemToArray(arr, num)) {
			cJSON_Delete(num);
			goto nomem;
		}
	}
	if (!(line = cJSON_PrintUnformatted(obj)))
		goto nomem;
	put_json_line(line);
	rc = 0;
	goto out;
nomem:
	fprintf(stderr, "clipd %s: out of memory\n", info->name);
out:
	cJSON_free(line);
	cJSON_Delete(obj);
	free(echo);
	return rc;
}

static int run_tokenize(const struct cli_command *info, int argc, char **argv)
{
	char *model = NULL;
	const struct cli_option opts[] = {
		{ "model", CLI_STRING, &model, "DIR",
		  "model directory (its vocab.json and merges.txt; default: the bundled CLIP vocabulary)", 0, 0 },
		{ 0 },
	};
	struct cli_args args;
	clip_tokenizer *tok = NULL;
	clip_error err = { 0 };
	int status = 2;

	int rc = cli_parse(info, opts, argc, argv, &args);
	if (rc != CLI_OK)
		return rc == CLI_HELP ? 0 : 2;
	if (!args.n_positional) {
		cli_usage_error(info, "no TEXT given");
		goto out;
	}
	if (clip_tokenizer_load(model && *model ? model : NULL, &tok, &err) != 0) {
		fprintf(stderr, "clipd %s: %s\n", info->name, err.msg);
		goto out;
	}
	status = 0;
	for (size_t i = 0; i < args.n_positional; i++)
		if (print_tokens(info, tok, args.positional[i]) != 0)
			status = 1;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "clipd %s: cannot write the output\n", info->name);
		status = 1;
	}
out:
	clip_tokenizer_free(tok);
	cli_args_free(&args);
	return status;
}

const struct clipd_command cmd_tokenize = {
	{ "tokenize", "print CLIP token ids of texts", "[--model DIR] TEXT...",
	  "Prints one JSON line per TEXT, {\"text\": TEXT, \"ids\": [...]}, with the start and end "
	  "tokens and no padding, truncated to CLIP's 77. Without --model, or when DIR has no "
	  "vocab.json and merges.txt, the bundled CLIP vocabulary is used. Exit status 2 when "
	  "the tokenizer cannot be loaded." },
	run_tokenize,
};
