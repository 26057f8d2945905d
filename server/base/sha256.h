/*
 * sha256.h - SHA-256 (FIPS 180-4), for content addressing and model
 * fingerprints.
 *
 *     struct sha256_ctx c;
 *     sha256_init(&c);
 *     sha256_update(&c, data, len);           // any number of times
 *     unsigned char digest[SHA256_BYTES];
 *     sha256_final(&c, digest);
 *     char hex[SHA256_HEX];
 *     sha256_to_hex(digest, hex);             // 64 lower-case digits and a NUL
 *
 * or in one call: sha256_hex(data, len, hex).
 */
#ifndef CLIPD_SHA256_H
#define CLIPD_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES 32
#define SHA256_HEX 65

struct sha256_ctx {
	uint32_t h[8];
	uint64_t total;          /* bytes hashed so far */
	unsigned char buf[64];   /* a partial block */
	size_t used;             /* bytes in buf */
};

void sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
void sha256_final(struct sha256_ctx *c, unsigned char out[SHA256_BYTES]);
void sha256_to_hex(const unsigned char digest[SHA256_BYTES], char hex[SHA256_HEX]);
void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX]);
/* 1 if s is exactly 64 lower-case hex digits. */
int sha256_is_hex(const char *s);

#endif
