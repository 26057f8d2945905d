/*
 * http_raw.h - writing an answer on a connection's socket ourselves, for
 * the two moments libmicrohttpd cannot answer: a request line over its
 * memory (answered before it parses the query), and a resumed request
 * whose client has shut down its write side (libmicrohttpd is closing the
 * connection; http.c writes the answer in the completion callback, before
 * the socket is shut down).
 *
 *     // fd: the connection's non-blocking socket
 *     if (http_raw_send(fd, head, head_len, body_len, NULL, body, HTTP_RAW_SEND_TIMEOUT_S) != 0)
 *             ... the client did not take it all (gone, or not reading)
 */
#ifndef CLIPD_HTTP_RAW_H
#define CLIPD_HTTP_RAW_H

#include <stddef.h>
#include <stdint.h>

/* The longest an HTTP thread waits for room in a socket's send buffer
 * while writing one raw answer, in all. The send buffer is first grown to
 * hold the answer (up to HTTP_RAW_SNDBUF_MAX), so only an answer larger
 * than that, to a client that does not read, waits at all. */
#define HTTP_RAW_SEND_TIMEOUT_S 5.0
#define HTTP_RAW_SNDBUF_MAX (4u << 20)

/* Reads up to max bytes of a body at offset pos into buf: how many (> 0),
 * or -1 on failure. */
typedef long (*http_raw_read_fn)(void *ud, uint64_t pos, char *buf, size_t max);

/* Write head (head_len bytes) and then body_len bytes of body on the
 * socket fd: read(ud, ...) gives the body, or with read NULL, ud points
 * at the body_len bytes themselves. Waits for room at most timeout_s
 * seconds in all. 0 when everything went to the kernel, -1 otherwise
 * (the client went away, stopped reading, or the body could not be read). */
int http_raw_send(int fd, const void *head, size_t head_len, uint64_t body_len, http_raw_read_fn read,
		  void *ud, double timeout_s);

#endif
