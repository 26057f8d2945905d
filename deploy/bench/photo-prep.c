/*
 * photo-prep - CPU time of clipd's decode and preprocessing (decode,
 * orientation, the model's 224 x 224 crop) per image file, on one thread,
 * exact (--exact-decode) and with the JPEG fast path; and the RMS
 * difference between the two crops. Built by meson as
 * build/deploy/bench/photo-prep; deploy/bench/photos.sh runs it.
 *
 *     photo-prep [--side 224] [--min-short N] [--repeat N] FILE...
 *
 * One line of JSON per file: {"file", "exact_ms", "fast_ms", "scale",
 * "rms", "max"}; the times are the smallest of N runs of CPU time
 * (CLOCK_PROCESS_CPUTIME_ID), the file already in memory.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clip.h"

static double cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
		*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* decode + crop; the crop in out (side * side * 3); CPU ms, or -1 */
static double prep(const unsigned char *buf, size_t len, int min_short, int side,
		   unsigned char *out, int *scale, clip_error *err)
{
	struct clip_decode_params dp = clip_decode_default_params();
	clip_image img;

	dp.max_pixels = (size_t)100 * 1000 * 1000;
	dp.min_short_side = min_short;
	double t0 = cpu_ms();
	if (clip_image_decode_with(buf, len, &dp, &img, err) != 0)
		return -1;
	int rc = clip_image_crop(&img, side, out, (size_t)side * side * 3, err);
	double t = cpu_ms() - t0;
	*scale = img.scale_denom;
	clip_image_free(&img);
	return rc ? -1 : t;
}

int main(int argc, char **argv)
{
	int side = 224, repeat = 3, first = 1, min_short = -1;

	while (first < argc && !strncmp(argv[first], "--", 2)) {
		if (!strcmp(argv[first], "--side") && first + 1 < argc)
			side = atoi(argv[first + 1]);
		else if (!strcmp(argv[first], "--repeat") && first + 1 < argc)
			repeat = atoi(argv[first + 1]);
		else if (!strcmp(argv[first], "--min-short") && first + 1 < argc)
			min_short = atoi(argv[first + 1]);
		else {
			fprintf(stderr, "usage: photo-prep [--side N] [--min-short N] [--repeat N] FILE...\n");
			return 2;
		}
		first += 2;
	}
	if (min_short < 0)
		min_short = 2 * side;
	if (side < 16 || side > 1024 || repeat < 1 || min_short < side || first >= argc) {
		fprintf(stderr, "usage: photo-prep [--side N] [--min-short N] [--repeat N] FILE...\n");
		return 2;
	}
	const size_t n = (size_t)side * side * 3;
	unsigned char *exact = malloc(n), *fast = malloc(n);
	if (!exact || !fast)
		return 1;
	int failed = 0;
	for (int i = first; i < argc; i++) {
		size_t len = 0;
		unsigned char *buf = slurp(argv[i], &len);
		clip_error err = { 0 };
		if (!buf) {
			fprintf(stderr, "photo-prep: cannot read %s\n", argv[i]);
			failed = 1;
			continue;
		}
		double best_exact = 1e30, best_fast = 1e30;
		int scale_exact = 0, scale_fast = 0;
		for (int r = 0; r < repeat; r++) {
			double te = prep(buf, len, 0, side, exact, &scale_exact, &err);
			double tf = te < 0 ? -1 : prep(buf, len, min_short, side, fast, &scale_fast, &err);
			if (te < 0 || tf < 0) {
				fprintf(stderr, "photo-prep: %s: %s\n", argv[i], err.msg);
				failed = 1;
				break;
			}
			best_exact = te < best_exact ? te : best_exact;
			best_fast = tf < best_fast ? tf : best_fast;
		}
		free(buf);
		if (best_exact >= 1e30)
			continue;
		double sum = 0;
		int worst = 0;
		for (size_t k = 0; k < n; k++) {
			int d = abs((int)exact[k] - (int)fast[k]);
			sum += (double)d * d;
			worst = d > worst ? d : worst;
		}
		printf("{\"file\": \"%s\", \"exact_ms\": %.2f, \"fast_ms\": %.2f, \"scale\": %d, "
		       "\"rms\": %.4f, \"max\": %d}\n", argv[i], best_exact, best_fast, scale_fast,
		       sqrt(sum / n), worst);
		fflush(stdout);
	}
	free(exact);
	free(fast);
	return failed;
}
