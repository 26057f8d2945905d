#include "http_net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int http_parse_listen(const char *text, struct sockaddr_storage *out, socklen_t *len,
		     char *msg, size_t msglen)
{
	char host[HTTP_ADDR_MAX] = "";
	const char *port_text = NULL;
	memset(out, 0, sizeof *out);
	if (!text || !*text) {
		snprintf(msg, msglen, "empty listen address");
		return -1;
	}
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof host) {
			snprintf(msg, msglen, "'%s': expected [IPV6]:PORT", text);
			return -1;
		}
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = 0;
		port_text = close + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (!colon || strchr(text, ':') != colon || (size_t)(colon - text) >= sizeof host) {
			snprintf(msg, msglen, "'%s': expected HOST:PORT", text);
			return -1;
		}
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = 0;
		port_text = colon + 1;
	}
	char *end = NULL;
	long port = strtol(port_text, &end, 10);
	if (!*port_text || *end || port < 0 || port > 65535) {
		snprintf(msg, msglen, "'%s': the port must be 0 to 65535", text);
		return -1;
	}
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	struct sockaddr_in *v4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
	if (!*host) {
		v4->sin_family = AF_INET;
		v4->sin_addr.s_addr = htonl(INADDR_ANY);
		v4->sin_port = htons((uint16_t)port);
		*len = sizeof *v4;
	} else if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		*len = sizeof *v4;
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*len = sizeof *v6;
	} else {
		snprintf(msg, msglen, "'%s': the host must be a numeric address or localhost", text);
		return -1;
	}
	return 0;
}

int http_cidr_parse(const char *text, struct http_cidr *out)
{
	char buf[HTTP_ADDR_MAX];
	memset(out, 0, sizeof *out);
	if (!text || strlen(text) >= sizeof buf)
		return -1;
	strcpy(buf, text);
	char *slash = strchr(buf, '/');
	long prefix = -1;
	if (slash) {
		*slash = 0;
		char *end = NULL;
		prefix = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || prefix < 0)
			return -1;
	}
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		if (prefix > 32)
			return -1;
		out->prefix = prefix < 0 ? 32 : (int)prefix;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		if (prefix > 128)
			return -1;
		out->prefix = prefix < 0 ? 128 : (int)prefix;
		/* A v4-mapped block is a v4 block. */
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (!memcmp(out->addr, mapped, 12) && out->prefix >= 96) {
			memmove(out->addr, out->addr + 12, 4);
			memset(out->addr + 4, 0, 12);
			out->family = AF_INET;
			out->prefix -= 96;
		}
	} else {
		return -1;
	}
	return 0;
}

/* The address bytes of a sockaddr, v4-mapped v6 as v4. */
static int addr_bytes(const struct sockaddr *addr, unsigned char out[16])
{
	if (!addr)
		return -1;
	if (addr->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
		return AF_INET;
	}
	if (addr->sa_family == AF_INET6) {
		const unsigned char *b = ((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr.s6_addr;
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (!memcmp(b, mapped, 12)) {
			memcpy(out, b + 12, 4);
			return AF_INET;
		}
		memcpy(out, b, 16);
		return AF_INET6;
	}
	return -1;
}

static int cidr_contains(const struct http_cidr *c, int family, const unsigned char *b)
{
	if (c->family != family)
		return 0;
	int full = c->prefix / 8, rest = c->prefix % 8;
	if (memcmp(c->addr, b, (size_t)full) != 0)
		return 0;
	if (rest) {
		unsigned char mask = (unsigned char)(0xff << (8 - rest));
		if ((c->addr[full] & mask) != (b[full] & mask))
			return 0;
	}
	return 1;
}

static int match_bytes(const struct http_cidr *blocks, size_t n, int family, const unsigned char *b)
{
	for (size_t i = 0; i < n; i++)
		if (cidr_contains(&blocks[i], family, b))
			return 1;
	return 0;
}

int http_cidr_match_any(const struct http_cidr *blocks, size_t n, const struct sockaddr *addr)
{
	unsigned char b[16];
	int family = addr_bytes(addr, b);
	return family > 0 && match_bytes(blocks, n, family, b);
}

void http_addr_text(const struct sockaddr *addr, char out[HTTP_ADDR_MAX])
{
	unsigned char b[16];
	int family = addr_bytes(addr, b);
	if (family < 0 || !inet_ntop(family, b, out, HTTP_ADDR_MAX))
		snprintf(out, HTTP_ADDR_MAX, "unknown");
}

/* Parse one hop of X-Forwarded-For: an address, possibly "[v6]" or with a
 * ":port" (v4). */
static int parse_hop(const char *s, size_t len, int *family, unsigned char b[16])
{
	char buf[HTTP_ADDR_MAX];
	while (len && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof buf)
		return -1;
	memcpy(buf, s, len);
	buf[len] = 0;
	char *p = buf;
	if (*p == '[') {
		char *close = strchr(p, ']');
		if (!close)
			return -1;
		*close = 0;
		p++;
	} else if (strchr(p, '.') && strchr(p, ':') && strchr(p, ':') == strrchr(p, ':')) {
		*strchr(p, ':') = 0;   /* v4 with a port */
	}
	if (inet_pton(AF_INET, p, b) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, p, b) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (!memcmp(b, mapped, 12)) {
			memmove(b, b + 12, 4);
			*family = AF_INET;
		} else {
			*family = AF_INET6;
		}
		return 0;
	}
	return -1;
}

void http_client_address(const struct sockaddr *peer, const char *xff, const struct http_cidr *proxies,
			size_t n_proxies, char out[HTTP_ADDR_MAX])
{
	http_addr_text(peer, out);
	if (!xff || !n_proxies || !http_cidr_match_any(proxies, n_proxies, peer))
		return;
	size_t len = strnlen(xff, HTTP_MAX_XFF);
	/* Walk from the right: each hop was appended by the one after it. */
	while (len > 0) {
		size_t start = len;
		while (start > 0 && xff[start - 1] != ',')
			start--;
		int family;
		unsigned char b[16];
		if (parse_hop(xff + start, len - start, &family, b) != 0)
			return;   /* keep the last trusted hop (already in out) */
		if (!inet_ntop(family, b, out, HTTP_ADDR_MAX))
			return;
		if (!match_bytes(proxies, n_proxies, family, b))
			return;   /* the first untrusted hop is the client */
		len = start ? start - 1 : 0;
	}
}

/* ---- connections per address ---------------------------------------- */

struct cc_entry {
	struct cc_entry *next;
	size_t count;
	char address[HTTP_ADDR_MAX];
};

#define CC_BUCKETS 1024

struct http_conncount {
	pthread_mutex_t lock;
	size_t limit;
	struct cc_entry *buckets[CC_BUCKETS];
};

static size_t cc_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return (size_t)(h % CC_BUCKETS);
}

struct http_conncount *http_conncount_new(size_t limit_per_address)
{
	struct http_conncount *cc = calloc(1, sizeof *cc);
	if (!cc)
		return NULL;
	pthread_mutex_init(&cc->lock, NULL);
	cc->limit = limit_per_address;
	return cc;
}

void http_conncount_free(struct http_conncount *cc)
{
	if (!cc)
		return;
	for (size_t i = 0; i < CC_BUCKETS; i++)
		for (struct cc_entry *e = cc->buckets[i], *next; e; e = next) {
			next = e->next;
			free(e);
		}
	pthread_mutex_destroy(&cc->lock);
	free(cc);
}

static struct cc_entry **cc_find(struct http_conncount *cc, const char *address)
{
	struct cc_entry **pp = &cc->buckets[cc_hash(address)];
	while (*pp && strcmp((*pp)->address, address))
		pp = &(*pp)->next;
	return pp;
}

size_t http_conncount_get(struct http_conncount *cc, const char *address)
{
	if (!cc)
		return 0;
	pthread_mutex_lock(&cc->lock);
	struct cc_entry *e = *cc_find(cc, address);
	size_t n = e ? e->count : 0;
	pthread_mutex_unlock(&cc->lock);
	return n;
}

int http_conncount_allowed(struct http_conncount *cc, const char *address, size_t extra)
{
	return !cc || cc->limit == 0 || http_conncount_get(cc, address) < cc->limit + extra;
}

size_t http_conncount_add(struct http_conncount *cc, const char *address)
{
	size_t n = 0;
	if (!cc)
		return 0;
	pthread_mutex_lock(&cc->lock);
	struct cc_entry **pp = cc_find(cc, address);
	if (!*pp) {
		struct cc_entry *e = calloc(1, sizeof *e);
		if (e) {
			snprintf(e->address, sizeof e->address, "%s", address);
			*pp = e;
		}
	}
	if (*pp)
		n = ++(*pp)->count;
	pthread_mutex_unlock(&cc->lock);
	return n;
}

void http_conncount_remove(struct http_conncount *cc, const char *address)
{
	if (!cc)
		return;
	pthread_mutex_lock(&cc->lock);
	struct cc_entry **pp = cc_find(cc, address);
	struct cc_entry *e = *pp;
	if (e && --e->count == 0) {
		*pp = e->next;
		free(e);
	}
	pthread_mutex_unlock(&cc->lock);
}
