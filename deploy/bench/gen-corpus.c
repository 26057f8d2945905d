/*
 * gen-corpus: distinct JPEG images for the upload benchmark.
 *
 *   cc -O2 -o gen-corpus deploy/bench/gen-corpus.c -lm
 *   gen-corpus DIR COUNT WIDTH HEIGHT [FIRST_SEED]
 *
 * Writes DIR/img-NNNNNN.jpg: smooth gradients, a few discs and fine noise,
 * different for every seed, so that every file is distinct and compresses
 * like a photograph (tens of kilobytes at 640 x 480), not like a flat colour.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rng_state >> 33);
}

static double frand(void)
{
	return rnd() / 2147483648.0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: gen-corpus DIR COUNT WIDTH HEIGHT [FIRST_SEED]\n");
		return 2;
	}
	const char *dir = argv[1];
	long count = atol(argv[2]);
	int w = atoi(argv[3]), h = atoi(argv[4]);
	long first = argc > 5 ? atol(argv[5]) : 0;
	if (count < 1 || w < 8 || h < 8 || w > 8192 || h > 8192)
		return 2;
	unsigned char *px = malloc((size_t)w * h * 3);
	if (!px)
		return 1;
	char path[4096];
	for (long n = 0; n < count; n++) {
		rng_state = (uint64_t)(first + n) * 0x9E3779B97F4A7C15ULL + 1;
		double base[3], gx[3], gy[3];
		for (int c = 0; c < 3; c++) {
			base[c] = 40 + frand() * 180;
			gx[c] = (frand() - 0.5) * 200.0 / w;
			gy[c] = (frand() - 0.5) * 200.0 / h;
		}
		for (int y = 0; y < h; y++)
			for (int x = 0; x < w; x++)
				for (int c = 0; c < 3; c++) {
					double v = base[c] + gx[c] * x + gy[c] * y + (int)(rnd() % 17) - 8;
					px[((size_t)y * w + x) * 3 + c] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
				}
		int discs = 3 + (int)(rnd() % 6);
		for (int d = 0; d < discs; d++) {
			double cx = frand() * w, cy = frand() * h, r = (0.05 + frand() * 0.25) * (w < h ? w : h);
			unsigned char col[3] = { (unsigned char)rnd(), (unsigned char)rnd(), (unsigned char)rnd() };
			for (int y = (int)fmax(0, cy - r); y < (int)fmin(h, cy + r); y++)
				for (int x = (int)fmax(0, cx - r); x < (int)fmin(w, cx + r); x++)
					if ((x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r)
						for (int c = 0; c < 3; c++)
							px[((size_t)y * w + x) * 3 + c] = (unsigned char)((col[c] * 3 + (rnd() % 32)) / 3);
		}
		snprintf(path, sizeof path, "%s/img-%06ld.jpg", dir, first + n);
		if (!stbi_write_jpg(path, w, h, 3, px, 85)) {
			fprintf(stderr, "gen-corpus: cannot write %s\n", path);
			return 1;
		}
	}
	free(px);
	return 0;
}
