/*
 * srv_buf.h - a growable byte buffer with a hard cap, for response bodies
 * and request bodies.
 *
 *     struct srv_buf b = SRV_BUF_INIT(1 << 20);   // at most 1 MiB
 *     srv_buf_printf(&b, "%d images\n", n);
 *     if (b.failed) ...                           // over the cap or out of memory
 *     use(b.data, b.len);                         // NUL-terminated when non-empty
 *     srv_buf_free(&b);
 *
 * After a failure the buffer keeps what it had and ignores further appends.
 */
#ifndef CLIPD_SRV_BUF_H
#define CLIPD_SRV_BUF_H

#include <stddef.h>

struct srv_buf {
	char *data;    /* malloc'd, owned */
	size_t len, cap;
	size_t max;    /* the most bytes it may hold (0: no cap) */
	int failed;    /* an append did not fit or memory ran out */
};

#define SRV_BUF_INIT(max_bytes) { NULL, 0, 0, (max_bytes), 0 }

int srv_buf_append(struct srv_buf *b, const void *data, size_t len);
int srv_buf_puts(struct srv_buf *b, const char *s);
int srv_buf_printf(struct srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the data (the caller frees it); the buffer is empty afterwards. */
char *srv_buf_take(struct srv_buf *b, size_t *len);
void srv_buf_free(struct srv_buf *b);

#endif
