/*
 * golden_fixture.h - the reference fixtures' golden.json for the encoder's
 * tests: the golden embeddings, the normalised pixels of every golden
 * image's reference crop, the golden texts, and cosines against them.
 */
#ifndef CLIPD_TEST_GOLDEN_FIXTURE_H
#define CLIPD_TEST_GOLDEN_FIXTURE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <cJSON.h>
#include <stb/stb_image.h>  /* declarations only: the implementation is in clip_stb */

#include "harness.h"

#include "clip.h"
#include "internal.h"

struct golden {
	cJSON *root;
	size_t n_images, n_texts, dim;
	const cJSON *images, *texts;
	double logit_scale;
};

static inline int golden_load(const char *dir, struct golden *g)
{
	char path[1024];
	size_t len;
	snprintf(path, sizeof path, "%s/golden.json", dir);
	unsigned char *bytes = harness_read_file(path, &len);
	if (!bytes)
		return -1;
	g->root = cJSON_ParseWithLength((const char *)bytes, len);
	free(bytes);
	if (!g->root)
		return -1;
	g->images = cJSON_GetObjectItem(g->root, "images");
	g->texts = cJSON_GetObjectItem(g->root, "texts");
	g->n_images = (size_t)cJSON_GetArraySize(g->images);
	g->n_texts = (size_t)cJSON_GetArraySize(g->texts);
	g->dim = (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(g->texts, 0), "embedding"));
	g->logit_scale = cJSON_GetObjectItem(g->root, "logit_scale")->valuedouble;
	return 0;
}

static inline double cosine_json(const float *v, const cJSON *ref, size_t dim)
{
	double dot = 0, a = 0, b = 0;
	if ((size_t)cJSON_GetArraySize(ref) != dim)
		return -2;
	size_t i = 0;
	for (const cJSON *x = ref->child; x; x = x->next, i++) {
		dot += v[i] * x->valuedouble;
		a += (double)v[i] * v[i];
		b += x->valuedouble * x->valuedouble;
	}
	return dot / sqrt(a * b);
}

/* The normalised pixels of every golden image's reference crop. */
static inline float *golden_pixels(const clip_model *m, const struct golden *g)
{
	size_t per = clip_model_input_floats(m);
	int side = clip_model_image_size(m);
	float *px = malloc(g->n_images * per * sizeof *px);
	if (!px)
		return NULL;
	for (size_t i = 0; i < g->n_images; i++) {
		const char *crop = cJSON_GetObjectItem(cJSON_GetArrayItem(g->images, (int)i), "crop")->valuestring;
		char path[1024];
		size_t len;
		snprintf(path, sizeof path, "%s/%s", TEST_DATA_DIR, crop);
		unsigned char *bytes = harness_read_file(path, &len);
		int w = 0, h = 0, c = 0;
		unsigned char *rgb = bytes ? stbi_load_from_memory(bytes, (int)len, &w, &h, &c, 3) : NULL;
		free(bytes);
		clip_error err = { 0 };
		if (!rgb || w != side || h != side ||
		    clip_image_normalize(rgb, side, clip_model_mean(m), clip_model_std(m), px + i * per, per,
					 &err) != 0) {
			fprintf(stderr, "  cannot prepare %s\n", path);
			free(rgb);
			free(px);
			return NULL;
		}
		free(rgb);
	}
	return px;
}

static inline const char **golden_texts(const struct golden *g)
{
	const char **t = malloc(g->n_texts * sizeof *t);
	for (size_t i = 0; t && i < g->n_texts; i++)
		t[i] = cJSON_GetObjectItem(cJSON_GetArrayItem(g->texts, (int)i), "text")->valuestring;
	return t;
}

#endif
