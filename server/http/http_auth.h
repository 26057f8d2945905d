/*
 * http_auth.h - API keys: a file of keys, one per line, each optionally
 * followed by its scope, "read" or "write" (the default); blank lines and
 * lines starting with '#' are ignored.
 *
 *     struct http_keys *keys = NULL;
 *     char msg[256];
 *     if (http_keys_load("/etc/clipd/keys", &keys, msg, sizeof msg) != 0) die(msg);
 *     int scope = http_keys_check(keys, "Bearer s3cret", &key_index);
 *     // HTTP_SCOPE_NONE (no or unknown key), HTTP_SCOPE_READ or HTTP_SCOPE_WRITE
 *     http_keys_free(keys);
 *
 * Keys are compared in constant time: the presented key is hashed and its
 * digest compared with every stored key's digest without an early exit, so
 * neither the position of the first differing byte nor which key matched
 * shows in the timing. Keys are never logged; a key is identified in logs
 * and rate limits by its index ("key#2").
 */
#ifndef CLIPD_HTTP_AUTH_H
#define CLIPD_HTTP_AUTH_H

#include <stddef.h>

#define HTTP_MAX_KEYS 1024
#define HTTP_MAX_KEY_LEN 256
#define HTTP_MIN_KEY_LEN 8

enum http_scope { HTTP_SCOPE_NONE = 0, HTTP_SCOPE_READ = 1, HTTP_SCOPE_WRITE = 2 };

struct http_keys;

/* 0, or -1 with a message (the file's name and line, never a key's text). */
int http_keys_load(const char *path, struct http_keys **out, char *msg, size_t msglen);
/* From a string holding the file's contents (for tests). */
int http_keys_parse(const char *text, size_t len, struct http_keys **out, char *msg, size_t msglen);
void http_keys_free(struct http_keys *keys);
size_t http_keys_count(const struct http_keys *keys);

/* authorization is the Authorization header's value (may be NULL). Returns
 * the scope of the key it carries and sets *index to the key's index (or -1). */
enum http_scope http_keys_check(const struct http_keys *keys, const char *authorization, int *index);

#endif
