#include "http_auth.h"
#include "files.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sha256.h"

struct srv_key {
	unsigned char digest[32];
	enum http_scope scope;
};

struct http_keys {
	struct srv_key *keys;
	size_t n;
};

void http_keys_free(struct http_keys *keys)
{
	if (!keys)
		return;
	/* Digests only, but wipe them anyway. */
	if (keys->keys)
		explicit_bzero(keys->keys, keys->n * sizeof *keys->keys);
	free(keys->keys);
	free(keys);
}

size_t http_keys_count(const struct http_keys *keys)
{
	return keys ? keys->n : 0;
}

static void digest(const char *key, size_t len, unsigned char out[32])
{
	struct sha256_ctx s;
	sha256_init(&s);
	sha256_update(&s, "clipd-api-key\n", 14);
	sha256_update(&s, key, len);
	sha256_final(&s, out);
}

static int key_char(int c)
{
	return c > 0x20 && c < 0x7f;
}

int http_keys_parse(const char *text, size_t len, struct http_keys **out, char *msg, size_t msglen)
{
	int rc = -1;
	struct http_keys *keys = calloc(1, sizeof *keys);
	if (!keys) {
		snprintf(msg, msglen, "out of memory");
		goto out;
	}
	size_t line_no = 0, pos = 0;
	while (pos < len) {
		size_t end = pos;
		while (end < len && text[end] != '\n')
			end++;
		line_no++;
		const char *p = text + pos, *stop = text + end;
		pos = end + 1;
		while (p < stop && isspace((unsigned char)*p))
			p++;
		while (stop > p && isspace((unsigned char)stop[-1]))
			stop--;
		if (p == stop || *p == '#')
			continue;
		const char *key = p;
		while (p < stop && key_char((unsigned char)*p))
			p++;
		size_t klen = (size_t)(p - key);
		if (p < stop && !isspace((unsigned char)*p)) {
			snprintf(msg, msglen, "line %zu: a key may hold only printable ASCII characters", line_no);
			goto out;
		}
		while (p < stop && isspace((unsigned char)*p))
			p++;
		enum http_scope scope = HTTP_SCOPE_WRITE;
		if (p < stop) {
			size_t slen = (size_t)(stop - p);
			if (slen == 4 && !strncasecmp(p, "read", 4))
				scope = HTTP_SCOPE_READ;
			else if (slen == 5 && !strncasecmp(p, "write", 5))
				scope = HTTP_SCOPE_WRITE;
			else {
				snprintf(msg, msglen, "line %zu: the scope must be 'read' or 'write'", line_no);
				goto out;
			}
		}
		if (klen < HTTP_MIN_KEY_LEN || klen > HTTP_MAX_KEY_LEN) {
			snprintf(msg, msglen, "line %zu: a key must be %d to %d characters long",
				 line_no, HTTP_MIN_KEY_LEN, HTTP_MAX_KEY_LEN);
			goto out;
		}
		if (keys->n >= HTTP_MAX_KEYS) {
			snprintf(msg, msglen, "more than %d keys", HTTP_MAX_KEYS);
			goto out;
		}
		struct srv_key *grown = realloc(keys->keys, (keys->n + 1) * sizeof *grown);
		if (!grown) {
			snprintf(msg, msglen, "out of memory");
			goto out;
		}
		keys->keys = grown;
		digest(key, klen, keys->keys[keys->n].digest);
		keys->keys[keys->n].scope = scope;
		keys->n++;
	}
	if (keys->n == 0) {
		snprintf(msg, msglen, "no keys");
		goto out;
	}
	*out = keys;
	keys = NULL;
	rc = 0;
out:
	http_keys_free(keys);
	return rc;
}

int http_keys_load(const char *path, struct http_keys **out, char *msg, size_t msglen)
{
	char inner[200];
	unsigned char *buf = NULL;
	size_t n = 0;
	int rc = -1;
	if (files_read_all(path, (size_t)HTTP_MAX_KEYS * (HTTP_MAX_KEY_LEN + 16), &buf, &n, msg, msglen) != 0)
		return -1;
	if (http_keys_parse((const char *)buf, n, out, inner, sizeof inner) != 0) {
		snprintf(msg, msglen, "%s: %s", path, inner);
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(buf, n);
	free(buf);
	return rc;
}

enum http_scope http_keys_check(const struct http_keys *keys, const char *authorization, int *index)
{
	*index = -1;
	if (!keys || !authorization)
		return HTTP_SCOPE_NONE;
	const char *p = authorization;
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
		return HTTP_SCOPE_NONE;
	p += 7;
	while (*p == ' ' || *p == '\t')
		p++;
	size_t len = strlen(p);
	while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (len == 0 || len > HTTP_MAX_KEY_LEN)
		return HTTP_SCOPE_NONE;
	unsigned char d[32];
	digest(p, len, d);
	/* Every key is compared, every byte of it, whatever matched. */
	int found = -1;
	enum http_scope scope = HTTP_SCOPE_NONE;
	for (size_t i = 0; i < keys->n; i++) {
		unsigned diff = 0;
		for (int b = 0; b < 32; b++)
			diff |= (unsigned)(d[b] ^ keys->keys[i].digest[b]);
		/* mask is all ones when diff == 0, without a branch on the key. */
		unsigned mask = ((diff | (0u - diff)) >> 31) - 1u;
		found = (int)(((unsigned)found & ~mask) | ((unsigned)i & mask));
		scope = (enum http_scope)(((unsigned)scope & ~mask) | ((unsigned)keys->keys[i].scope & mask));
	}
	*index = found;
	return scope;
}
