/*
 * utf8.h - one UTF-8 sequence at a time, strictly (RFC 3629): no overlong
 * forms, no surrogates, nothing above U+10FFFF.
 *
 *     unsigned cp;
 *     size_t n = utf8_decode(p, len, &cp);   // 1..4, or 0 if invalid
 */
#ifndef CLIPD_UTF8_H
#define CLIPD_UTF8_H

#include <stddef.h>

/* The code point at s (at most n bytes, n >= 1) in *cp and its length, or
 * 0 when the bytes there are not a valid sequence (*cp untouched). */
size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp);

#endif
