/*
 * bench-fill: a data directory of N synthetic images for the filtered
 * search benchmark (deploy/bench/filtered-search.sh), written through the
 * store layer in large transactions.
 *
 *   bench-fill --data DIR --count N [--batch B] [--seed S]
 *
 * DIR must be a data directory that clipd serve has opened once with the
 * model to be measured (so its database exists with that model active) and
 * that holds no image; nothing may have it open (its lock is taken). Each
 * image i (0 to N-1) gets a random unit vector of the model's dimension
 * (Gaussian components, normalised), distinct made-up bytes' digest, the
 * filename img-NNNNNNN.jpg and metadata {"g50": true} when i is even and
 * {"g1": true, "g50": true} when i is a multiple of 100, so filter.g1=true
 * matches 1% of the images and filter.g50=true 50%. B images (10,000) per
 * transaction: one fsync per batch instead of one per image (catalog_add).
 *
 * No originals are written (a million files of made-up bytes would only
 * fill the disk): search never reads them, but `clipd check` reports every
 * row's blob as missing, and /file and thumbnails of these images fail.
 * The index file is not written either: the script runs `clipd index
 * rebuild` next. Prints one JSON line: {"images", "dim", "g1", "g50",
 * "seconds", "images_per_s"}. Exit status 0, 1 on failure, 2 on usage.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "datadir.h"
#include "sha256.h"
#include "store.h"

#define FILL_MAX_COUNT 100000000L
#define FILL_MAX_BATCH 100000L

static uint64_t rng = 0x853c49e6748fea9bULL;

/* xorshift64*: a uniform double in (0, 1). */
static double uniform(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	uint64_t x = rng * 0x2545F4914F6CDD1DULL;
	return ((double)(x >> 11) + 0.5) / 9007199254740992.0;
}

static void unit_vector(float *v, size_t dim)
{
	double norm = 0;
	for (size_t d = 0; d < dim; d += 2) {
		/* Box-Muller: two standard normals per pair of uniforms */
		double r = sqrt(-2.0 * log(uniform())), t = 2.0 * M_PI * uniform();
		v[d] = (float)(r * cos(t));
		if (d + 1 < dim)
			v[d + 1] = (float)(r * sin(t));
	}
	for (size_t d = 0; d < dim; d++)
		norm += (double)v[d] * v[d];
	norm = sqrt(norm);
	for (size_t d = 0; d < dim; d++)
		v[d] = (float)(v[d] / norm);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int usage(void)
{
	fprintf(stderr, "usage: bench-fill --data DIR --count N [--batch B] [--seed S]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	long count = -1, batch = 10000;
	unsigned long long seed = 1;
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;
		if (!v)
			return usage();
		if (!strcmp(argv[i], "--data"))
			dir = v;
		else if (!strcmp(argv[i], "--count"))
			count = strtol(v, &end, 10);
		else if (!strcmp(argv[i], "--batch"))
			batch = strtol(v, &end, 10);
		else if (!strcmp(argv[i], "--seed"))
			seed = strtoull(v, &end, 10);
		else
			return usage();
		if (end && (*end || end == v))
			return usage();
		i++;
	}
	if (!dir || count < 1 || count > FILL_MAX_COUNT || batch < 1 || batch > FILL_MAX_BATCH)
		return usage();
	rng ^= seed * 0x9E3779B97F4A7C15ULL;

	int rc = 1, lock_fd = -1;
	store *st = NULL;
	store_error err = { 0 };
	struct store_new_image *imgs = NULL;
	float *vecs = NULL;
	char (*sha)[SHA256_HEX] = NULL, (*names)[32] = NULL;
	char db[4096];
	if (datadir_lock(dir, &lock_fd, &err) != 0 || datadir_path(dir, DATADIR_DB, db, sizeof db, &err) != 0 ||
	    access(db, F_OK) != 0) {
		fprintf(stderr, "bench-fill: %s\n", err.msg[0] ? err.msg : "no database in DIR: run clipd serve on it once");
		goto out;
	}
	struct store_params sp = store_default_params();
	if (store_open(db, &sp, &st, NULL, &err) != 0) {
		fprintf(stderr, "bench-fill: %s\n", err.msg);
		goto out;
	}
	struct store_model model;
	int found = 0;
	int64_t have = 0;
	if (store_active_model(st, &model, &found, &err) != 0 || store_count(st, &have, &err) != 0) {
		fprintf(stderr, "bench-fill: %s\n", err.msg);
		goto out;
	}
	if (!found || have != 0) {
		fprintf(stderr, "bench-fill: %s\n", !found ? "the database has no model yet: run clipd serve on it once"
							   : "the data directory already holds images");
		goto out;
	}
	size_t dim = model.dim;
	imgs = calloc((size_t)batch, sizeof *imgs);
	vecs = malloc((size_t)batch * dim * sizeof *vecs);
	sha = malloc((size_t)batch * sizeof *sha);
	names = malloc((size_t)batch * sizeof *names);
	if (!imgs || !vecs || !sha || !names) {
		fprintf(stderr, "bench-fill: out of memory\n");
		goto out;
	}
	double t0 = now_s(), last = t0;
	long g1 = 0, g50 = 0;
	for (long done = 0; done < count;) {
		long n = count - done < batch ? count - done : batch;
		for (long j = 0; j < n; j++) {
			long i = done + j;
			char bytes[64];
			int len = snprintf(bytes, sizeof bytes, "bench-fill %llu %ld", seed, i);
			sha256_hex(bytes, (size_t)len, sha[j]);
			snprintf(names[j], sizeof names[j], "img-%07ld.jpg", i);
			unit_vector(vecs + (size_t)j * dim, dim);
			g1 += i % 100 == 0;
			g50 += i % 2 == 0;
			imgs[j] = (struct store_new_image){
				.sha256 = sha[j], .mime = "image/jpeg", .width = 640, .height = 480, .bytes = 50000,
				.filename = names[j],
				.metadata = i % 100 == 0 ? "{\"g1\":true,\"g50\":true}" : i % 2 == 0 ? "{\"g50\":true}" : NULL,
			};
		}
		if (store_insert_many(st, imgs, vecs, (size_t)n, dim, NULL, NULL, &err) != 0) {
			fprintf(stderr, "bench-fill: after %ld images: %s\n", done, err.msg);
			goto out;
		}
		done += n;
		if (now_s() - last >= 10 || done == count) {
			last = now_s();
			fprintf(stderr, "bench-fill: %ld of %ld images, %.0f s\n", done, count, last - t0);
		}
	}
	double secs = now_s() - t0;
	printf("{\"images\": %ld, \"dim\": %zu, \"g1\": %ld, \"g50\": %ld, \"seconds\": %.1f, \"images_per_s\": %.0f}\n",
	       count, dim, g1, g50, secs, count / (secs > 0 ? secs : 1e-9));
	rc = 0;
out:
	free(imgs);
	free(vecs);
	free(sha);
	free(names);
	store_close(st);
	if (lock_fd >= 0)
		close(lock_fd);
	return rc;
}
