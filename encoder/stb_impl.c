/*
 * stb_image, compiled once, outside the project's strict warnings, with only
 * the three formats clipd decodes with it: PNG, GIF and BMP (JPEG goes
 * through libjpeg-turbo; Debian's libstb.so enables every format, TGA's
 * headerless guess included, so it is not linked).
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * stb_image's allocations go through a per-thread cap on the size of any
 * one block, which clip_image_decode sets from the header before each
 * decode: stb_image inflates a PNG's zlib stream into a buffer it doubles
 * without bound, so 200 KB of PNG stating 1 x 1 pixel would otherwise cost
 * 200 MB (a decompression bomb). Blocks come from plain malloc, so that
 * clip_image_free can free the pixels.
 *
 * Every byte stb_image gets is zeroed, the whole usable block and what a
 * realloc adds to it: on corrupt input stb_image has read memory it never
 * wrote (issue 17: a JPEG Huffman table indexed from uninitialised memory,
 * an assertion or SIGSEGV with a dirty heap), and whatever such a read
 * finds must not depend on the heap's history.
 */
static _Thread_local size_t alloc_cap;  /* 0: no cap */
static _Thread_local int alloc_refused;

void clip_stbi_cap_allocations(size_t max_block)
{
	alloc_cap = max_block;
	alloc_refused = 0;
}

int clip_stbi_allocation_refused(void)
{
	return alloc_refused;
}

static void *capped_malloc(size_t n)
{
	if (alloc_cap && n > alloc_cap) {
		alloc_refused = 1;
		return NULL;
	}
	void *p = malloc(n);
	if (p)
		memset(p, 0, malloc_usable_size(p));
	return p;
}

static void *capped_realloc(void *p, size_t n)
{
	if (alloc_cap && n > alloc_cap) {
		alloc_refused = 1;
		return NULL;
	}
	size_t old = p ? malloc_usable_size(p) : 0;
	void *q = realloc(p, n);
	if (q) {
		size_t now = malloc_usable_size(q);
		if (now > old)
			memset((char *)q + old, 0, now - old);
	}
	return q;
}

#define STBI_MALLOC(sz) capped_malloc(sz)
#define STBI_REALLOC(p, newsz) capped_realloc(p, newsz)
#define STBI_FREE(p) free(p)

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_GIF
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
/* A hard ceiling on either side; clip_image_decode enforces the configured
 * pixel limit from the header before stb_image allocates anything. */
#define STBI_MAX_DIMENSIONS CLIP_IMAGE_MAX_SIDE
#include <stb/stb_image.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
