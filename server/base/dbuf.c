#include "dbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reserve(struct dbuf *b, size_t extra)
{
	if (b->failed)
		return -1;
	if (extra > ((size_t)-1) / 2 - b->len || (b->max && b->len + extra > b->max)) {
		b->failed = 1;
		return -1;
	}
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	if (b->max && cap > b->max + 1)
		cap = b->max + 1;
	char *grown = realloc(b->data, cap);
	if (!grown) {
		b->failed = 1;
		return -1;
	}
	b->data = grown;
	b->cap = cap;
	return 0;
}

int dbuf_append(struct dbuf *b, const void *data, size_t len)
{
	if (reserve(b, len) != 0)
		return -1;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = 0;
	return 0;
}

int dbuf_puts(struct dbuf *b, const char *s)
{
	return dbuf_append(b, s, strlen(s));
}

int dbuf_printf(struct dbuf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return -1;
	}
	if ((size_t)n < sizeof small)
		return dbuf_append(b, small, (size_t)n);
	if (reserve(b, (size_t)n) != 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

char *dbuf_take(struct dbuf *b, size_t *len)
{
	char *d = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}

void dbuf_free(struct dbuf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = 0;
}
