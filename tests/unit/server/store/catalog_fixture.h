/*
 * Helpers shared by the catalog tests (test_catalog.c, test_crash.c,
 * test_diskfull.c): a stand-in "model" (files to fingerprint), random
 * vectors and image bytes, opening a data directory.
 */
#ifndef CLIPD_TEST_CATALOG_FIXTURE_H
#define CLIPD_TEST_CATALOG_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "harness.h"
#include "sha256.h"
#include "store.h"

/* A model directory with two small files whose content depends on tag:
 * files[] is what clip_model_files would give. */
struct fake_model {
	char dir[600];
	char config[700], weights[700];
	const char *files[3];
};

static inline void fake_model_paths(struct fake_model *m, const char *base, const char *tag)
{
	snprintf(m->dir, sizeof m->dir, "%s/model-%s", base, tag);
	snprintf(m->config, sizeof m->config, "%s/config.json", m->dir);
	snprintf(m->weights, sizeof m->weights, "%s/model.safetensors", m->dir);
	m->files[0] = m->config;
	m->files[1] = m->weights;
	m->files[2] = NULL;
}

static inline void fake_model_make(struct fake_model *m, const char *base, const char *tag)
{
	fake_model_paths(m, base, tag);
	mkdir(m->dir, 0755);
	FILE *f = fopen(m->config, "w");
	if (f) {
		fprintf(f, "{\"model\": \"%s\"}\n", tag);
		fclose(f);
	}
	f = fopen(m->weights, "w");
	if (f) {
		for (int i = 0; i < 4096; i++)
			fprintf(f, "%s-%d ", tag, i);
		fclose(f);
	}
}

/* xorshift64*: deterministic test randomness. */
static inline uint64_t fx_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static inline float fx_uniform(uint64_t *s)
{
	return (float)((fx_rand(s) >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* A unit vector determined by seed. */
static inline void fx_vec(uint64_t seed, float *v, size_t dim)
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
	double ss = 0;
	for (size_t i = 0; i < dim; i++) {
		v[i] = fx_uniform(&s);
		ss += (double)v[i] * v[i];
	}
	for (size_t i = 0; i < dim; i++)
		v[i] = (float)(v[i] / sqrt(ss));
}

/* The vector of an image is a function of its digest: whoever knows the
 * sha256 can recompute it (the crash test's parent does). */
static inline uint64_t fx_seed_of_sha(const char *sha)
{
	uint64_t s = 0;
	for (int i = 0; i < 16; i++)
		s = s * 16 + (uint64_t)(sha[i] <= '9' ? sha[i] - '0' : sha[i] - 'a' + 10);
	return s;
}

static inline catalog *fx_open(const char *dir, const char *const *files, size_t dim,
			       struct catalog_open_report *rep, store_error *err)
{
	struct catalog_params p = catalog_default_params();
	p.data_dir = dir;
	p.model_files = files;
	p.model_layout = "hf";
	p.index.dim = dim;
	catalog *c = NULL;
	store_error local;
	if (catalog_open(&p, &c, rep, err ? err : &local) != 0)
		return NULL;
	return c;
}

/* Random image bytes (len of them) from seed, and their digest. */
static inline unsigned char *fx_bytes(uint64_t seed, size_t len, char sha[SHA256_HEX])
{
	unsigned char *data = malloc(len ? len : 1);
	uint64_t s = seed * 2654435761u + 7;
	for (size_t i = 0; i < len; i++)
		data[i] = (unsigned char)(fx_rand(&s) >> 56);
	sha256_hex(data, len, sha);
	return data;
}

/* Add an image of random bytes (len from seed); its vector from its sha. */
static inline int64_t fx_add(catalog *c, uint64_t seed, size_t len, const char *meta, char *sha_out,
			     store_error *err)
{
	size_t dim = catalog_dim(c);
	char sha[SHA256_HEX];
	unsigned char *data = fx_bytes(seed, len, sha);
	float *v = malloc(dim * sizeof *v);
	fx_vec(fx_seed_of_sha(sha), v, dim);
	struct catalog_new_image in = { .data = data, .len = len, .mime = "image/png", .width = 4,
					.height = 3, .filename = "f.png", .metadata = meta, .vec = v, .dim = dim };
	struct store_image img;
	int dup = 0;
	int64_t id = -1;
	if (catalog_add(c, &in, &img, &dup, err) == 0) {
		id = img.id;
		store_image_clear(&img);
	}
	if (sha_out)
		memcpy(sha_out, sha, SHA256_HEX);
	free(data);
	free(v);
	return id;
}

/* Top-1 of a search by vector v: its id (0 when empty, -1 on error). */
static inline int64_t fx_top1_vec(catalog *c, const float *v, float *score)
{
	struct catalog_query q = catalog_default_query();
	q.vec = v;
	q.dim = catalog_dim(c);
	q.k = 1;
	struct catalog_results r;
	store_error err;
	int64_t id = -1;
	if (catalog_search(c, &q, &r, &err) == 0) {
		id = r.n ? r.hits[0].image.id : 0;
		if (score)
			*score = r.n ? r.hits[0].score : 0;
		catalog_results_free(&r);
	}
	return id;
}

/* Top-1 of a search by the vector of digest sha. */
static inline int64_t fx_top1(catalog *c, const char *sha, float *score)
{
	size_t dim = catalog_dim(c);
	float *v = malloc(dim * sizeof *v);
	if (!v)
		return -1;
	fx_vec(fx_seed_of_sha(sha), v, dim);
	int64_t id = fx_top1_vec(c, v, score);
	free(v);
	return id;
}

/* Regular files under path (-1 when it cannot be counted). */
static inline int fx_count_files(const char *path)
{
	char cmd[1100];
	snprintf(cmd, sizeof cmd, "find '%s' -type f 2>/dev/null | wc -l", path);
	FILE *p = popen(cmd, "r");
	int n = -1;
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

static inline void fx_count_problem(void *ud, const char *line)
{
	fprintf(stderr, "  problem: %s\n", line);
	(*(int *)ud)++;
}

#endif
