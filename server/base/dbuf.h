/*
 * dbuf.h - a growable byte buffer with a hard cap, for response bodies
 * and request bodies.
 *
 *     struct dbuf b = DBUF_INIT(1 << 20);   // at most 1 MiB
 *     dbuf_printf(&b, "%d images\n", n);
 *     if (b.failed) ...                           // over the cap or out of memory
 *     use(b.data, b.len);                         // NUL-terminated when non-empty
 *     dbuf_free(&b);
 *
 * After a failure the buffer keeps what it had and ignores further appends.
 */
#ifndef CLIPD_DBUF_H
#define CLIPD_DBUF_H

#include <stddef.h>

struct dbuf {
	char *data;    /* malloc'd, owned */
	size_t len, cap;
	size_t max;    /* the most bytes it may hold (0: no cap) */
	int failed;    /* an append did not fit or memory ran out */
};

#define DBUF_INIT(max_bytes) { NULL, 0, 0, (max_bytes), 0 }

int dbuf_append(struct dbuf *b, const void *data, size_t len);
int dbuf_puts(struct dbuf *b, const char *s);
int dbuf_printf(struct dbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the data (the caller frees it); the buffer is empty afterwards. */
char *dbuf_take(struct dbuf *b, size_t *len);
void dbuf_free(struct dbuf *b);

#endif
