/*
 * srv_auth.h - API keys: a file of keys, one per line, each optionally
 * followed by its scope, "read" or "write" (the default); blank lines and
 * lines starting with '#' are ignored.
 *
 *     struct srv_keys *keys = NULL;
 *     char msg[256];
 *     if (srv_keys_load("/etc/clipd/keys", &keys, msg, sizeof msg) != 0) die(msg);
 *     int scope = srv_keys_check(keys, "Bearer s3cret", &key_index);
 *     // SRV_SCOPE_NONE (no or unknown key), SRV_SCOPE_READ or SRV_SCOPE_WRITE
 *     srv_keys_free(keys);
 *
 * Keys are compared in constant time: the presented key is hashed and its
 * digest compared with every stored key's digest without an early exit, so
 * neither the position of the first differing byte nor which key matched
 * shows in the timing. Keys are never logged; a key is identified in logs
 * and rate limits by its index ("key#2").
 */
#ifndef CLIPD_SRV_AUTH_H
#define CLIPD_SRV_AUTH_H

#include <stddef.h>

#define SRV_MAX_KEYS 1024
#define SRV_MAX_KEY_LEN 256
#define SRV_MIN_KEY_LEN 8

enum srv_scope { SRV_SCOPE_NONE = 0, SRV_SCOPE_READ = 1, SRV_SCOPE_WRITE = 2 };

struct srv_keys;

/* 0, or -1 with a message (the file's name and line, never a key's text). */
int srv_keys_load(const char *path, struct srv_keys **out, char *msg, size_t msglen);
/* From a string holding the file's contents (for tests). */
int srv_keys_parse(const char *text, size_t len, struct srv_keys **out, char *msg, size_t msglen);
void srv_keys_free(struct srv_keys *keys);
size_t srv_keys_count(const struct srv_keys *keys);

/* authorization is the Authorization header's value (may be NULL). Returns
 * the scope of the key it carries and sets *index to the key's index (or -1). */
enum srv_scope srv_keys_check(const struct srv_keys *keys, const char *authorization, int *index);

#endif
