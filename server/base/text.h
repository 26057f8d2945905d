/*
 * text.h - copying a message into a smaller buffer.
 *
 *     char line[256];
 *     text_copy(line, sizeof line, err.msg);   // cut to fit, always terminated
 *
 * For a reply's one line built from a library's longer message; a message
 * that must stay whole (it names a path or a command) gets a buffer of its
 * library's *_MSG_MAX instead.
 */
#ifndef CLIPD_TEXT_H
#define CLIPD_TEXT_H

#include <stddef.h>

/* Copy src (NULL: "") into dst of len bytes, cut at a UTF-8 character
 * boundary when it does not fit; dst is always NUL-terminated when len > 0.
 * Returns the bytes copied. */
size_t text_copy(char *dst, size_t len, const char *src);

#endif
