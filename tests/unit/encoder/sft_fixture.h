/*
 * sft_fixture.h - write safetensors files and model directories for the
 * encoder's tests: a raw file from a header string and data bytes, or a
 * copy of a fixture model whose header a test has changed.
 */
#ifndef CLIPD_TEST_SFT_FIXTURE_H
#define CLIPD_TEST_SFT_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

/* buf <- a/b; -1 when it does not fit. */
static inline int sft_join(char *buf, size_t len, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la + lb + 2 > len)
		return -1;
	memcpy(buf, a, la);
	buf[la] = '/';
	memcpy(buf + la + 1, b, lb + 1);
	return 0;
}

/* path <- 8-byte length of header (padded with `pad` spaces), header, data. */
static inline int sft_write_raw(const char *path, const char *header, size_t pad, const void *data,
				size_t data_len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	uint64_t n = strlen(header) + pad;
	unsigned char len[8];
	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)(n >> (8 * i));
	int ok = fwrite(len, 1, 8, f) == 8 && fwrite(header, 1, strlen(header), f) == strlen(header);
	for (size_t i = 0; ok && i < pad; i++)
		ok = fputc(' ', f) != EOF;
	if (ok && data_len)
		ok = fwrite(data, 1, data_len, f) == data_len;
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* Read a safetensors file into its parsed header and a copy of its data. */
static inline cJSON *sft_read(const char *path, unsigned char **data, size_t *data_len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	unsigned char len[8];
	cJSON *h = NULL;
	char *json = NULL;
	*data = NULL;
	if (fread(len, 1, 8, f) != 8)
		goto out;
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | len[i];
	json = malloc(n + 1);
	if (!json || fread(json, 1, n, f) != n)
		goto out;
	json[n] = 0;
	long start = ftell(f);
	fseek(f, 0, SEEK_END);
	*data_len = (size_t)(ftell(f) - start);
	fseek(f, start, SEEK_SET);
	*data = malloc(*data_len ? *data_len : 1);
	if (!*data || fread(*data, 1, *data_len, f) != *data_len) {
		free(*data);
		*data = NULL;
		goto out;
	}
	h = cJSON_Parse(json);
out:
	free(json);
	fclose(f);
	return h;
}

/* Write header h (data offsets unchanged) and data to path; the header is
 * padded so that the data starts at an offset = `misalign` (mod 8). */
static inline int sft_write_json(const char *path, const cJSON *h, const unsigned char *data, size_t data_len,
				 int misalign)
{
	char *json = cJSON_PrintUnformatted(h);
	if (!json)
		return -1;
	size_t n = strlen(json), pad = 0;
	while ((8 + n + pad) % 8 != (size_t)misalign)
		pad++;
	int rc = sft_write_raw(path, json, pad, data, data_len);
	cJSON_free(json);
	return rc;
}

/* dst/NAME -> src/NAME for each non-weight file of a model directory. */
static inline void sft_link_model_files(const char *src, const char *dst)
{
	static const char *const names[] = { "config.json", "preprocessor_config.json", "vocab.json",
					     "merges.txt", "open_clip_config.json" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char a[1024], b[1024];
		if (sft_join(a, sizeof a, src, names[i]) || sft_join(b, sizeof b, dst, names[i]))
			continue;
		if (access(a, F_OK) == 0)
			(void)!symlink(a, b);
	}
}

/*
 * A copy of model directory src at dst (created) whose weights file
 * `weights` has its header changed by mutate(h, extra, &extra_len) (which
 * may append up to 4096 bytes of data after the original data) and the data
 * start at `misalign` mod 8.
 */
static inline int sft_copy_model(const char *src, const char *dst, const char *weights,
				 void (*mutate)(cJSON *h, unsigned char *extra, size_t *extra_len, size_t data_len),
				 int misalign)
{
	char path[1024];
	unsigned char *data = NULL;
	size_t data_len = 0, extra_len = 0;
	mkdir(dst, 0755);
	sft_link_model_files(src, dst);
	if (sft_join(path, sizeof path, src, weights))
		return -1;
	cJSON *h = sft_read(path, &data, &data_len);
	if (!h)
		return -1;
	unsigned char *all = realloc(data, data_len + 4096);
	if (!all) {
		free(data);
		cJSON_Delete(h);
		return -1;
	}
	if (mutate)
		mutate(h, all + data_len, &extra_len, data_len);
	int rc = sft_join(path, sizeof path, dst, weights) ? -1
		 : sft_write_json(path, h, all, data_len + extra_len, misalign);
	free(all);
	cJSON_Delete(h);
	return rc;
}

#endif
