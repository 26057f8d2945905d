/*
 * text.h - copying a message into a smaller buffer; numbers as JSON
 * spells them.
 *
 *     char line[256];
 *     text_copy(line, sizeof line, err.msg);   // cut to fit, always terminated
 *     if (text_is_number(v, 0)) ...             // "1.5e3" yes, " 1", "+1", "0x1", "inf" no
 *
 * text_copy: for a reply's one line built from a library's longer
 * message; a message that must stay whole (it names a path or a command)
 * gets a buffer of its library's *_MSG_MAX instead.
 */
#ifndef CLIPD_TEXT_H
#define CLIPD_TEXT_H

#include <stddef.h>

/* Copy src (NULL: "") into dst of len bytes, cut at a UTF-8 character
 * boundary when it does not fit; dst is always NUL-terminated when len > 0.
 * Returns the bytes copied. */
size_t text_copy(char *dst, size_t len, const char *src);

/* 1 if the whole of s (not NULL) is a number in RFC 8259's grammar: an
 * optional '-', digits without a leading zero, an optional fraction and
 * exponent; else 0. Nothing around it: no white space, '+', hexadecimal,
 * "inf" or "nan", which strtod and strtoll also take. flags: */
#define TEXT_NUMBER_INTEGER 1u        /* digits only: no fraction, no exponent */
#define TEXT_NUMBER_LEADING_ZEROS 2u  /* "007" too */
int text_is_number(const char *s, unsigned flags);

#endif
