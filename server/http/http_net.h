/*
 * http_net.h - addresses: the --listen value, trusted proxies (addresses or
 * CIDR blocks), the client address behind them (X-Forwarded-For), and the
 * per-address connection count.
 *
 *     struct sockaddr_storage ss; socklen_t len;
 *     http_parse_listen("127.0.0.1:0", &ss, &len, msg, sizeof msg);
 *
 *     struct http_cidr proxies[2];
 *     http_cidr_parse("10.0.0.0/8", &proxies[0]);
 *     char client[HTTP_ADDR_MAX];
 *     http_client_address(peer, "203.0.113.7, 10.1.2.3", proxies, 1, client);
 *     // "203.0.113.7": the peer is a trusted proxy, so its forwarded chain is
 *     // read from the right, skipping trusted hops
 */
#ifndef CLIPD_HTTP_NET_H
#define CLIPD_HTTP_NET_H

#include <stddef.h>
#include <sys/socket.h>

#define HTTP_ADDR_MAX 64   /* an address as text, with the NUL */
#define HTTP_MAX_XFF 4096  /* bytes of X-Forwarded-For considered */

/* "HOST:PORT", "[V6]:PORT" or ":PORT" (every interface); HOST a numeric
 * address or "localhost". Port 0 picks a free one. 0, or -1 with a message. */
int http_parse_listen(const char *text, struct sockaddr_storage *out, socklen_t *len,
		     char *msg, size_t msglen);

struct http_cidr {
	int family;              /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;              /* bits */
};

/* "10.0.0.1", "10.0.0.0/8", "::1", "fd00::/8". 0, or -1. */
int http_cidr_parse(const char *text, struct http_cidr *out);
/* 1 if addr (AF_INET or AF_INET6, v4-mapped v6 counts as v4) is in one of
 * the n blocks. */
int http_cidr_match_any(const struct http_cidr *blocks, size_t n, const struct sockaddr *addr);

/* The numeric address as text ("127.0.0.1", "::1"; v4-mapped v6 as v4). */
void http_addr_text(const struct sockaddr *addr, char out[HTTP_ADDR_MAX]);

/* The client's address: the peer's, or, when the peer is a trusted proxy
 * and xff (the X-Forwarded-For value, may be NULL) names hops, the rightmost
 * hop that is not a trusted proxy (an unparsable hop ends the walk at the
 * last good one). */
void http_client_address(const struct sockaddr *peer, const char *xff, const struct http_cidr *proxies,
			size_t n_proxies, char out[HTTP_ADDR_MAX]);

/* Open connections per address, bounded by a limit. Thread-safe. */
struct http_conncount;
struct http_conncount *http_conncount_new(size_t limit_per_address);
void http_conncount_free(struct http_conncount *cc);
/* 1 if address has fewer than the limit + extra open. */
int http_conncount_allowed(struct http_conncount *cc, const char *address, size_t extra);
/* Count one more connection from address: the count now (0 when out of memory). */
size_t http_conncount_add(struct http_conncount *cc, const char *address);
void http_conncount_remove(struct http_conncount *cc, const char *address);
size_t http_conncount_get(struct http_conncount *cc, const char *address);

#endif
