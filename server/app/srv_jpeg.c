#include "srv_jpeg.h"

#include <stdlib.h>
#include <string.h>

/* Private to this file: no clash with the encoder's copy of stb. */
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>

struct sink {
	unsigned char *data;
	size_t len, cap;
	int failed;
};

static void put(void *ctx, void *data, int size)
{
	struct sink *s = ctx;
	if (s->failed || size <= 0)
		return;
	if (s->len + (size_t)size > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16384;
		while (cap < s->len + (size_t)size)
			cap *= 2;
		unsigned char *grown = realloc(s->data, cap);
		if (!grown) {
			s->failed = 1;
			return;
		}
		s->data = grown;
		s->cap = cap;
	}
	memcpy(s->data + s->len, data, (size_t)size);
	s->len += (size_t)size;
}

int srv_jpeg_encode(const unsigned char *rgb, int w, int h, int quality, unsigned char **jpeg, size_t *len)
{
	struct sink s = { 0 };
	if (!rgb || w < 1 || h < 1 || !stbi_write_jpg_to_func(put, &s, w, h, 3, rgb, quality) || s.failed) {
		free(s.data);
		return -1;
	}
	*jpeg = s.data;
	*len = s.len;
	return 0;
}
