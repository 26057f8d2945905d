/* Copying a message into a smaller buffer; JSON's numbers. See text.h. */
#include "text.h"

#include <string.h>

size_t text_copy(char *dst, size_t len, const char *src)
{
	if (!dst || len == 0)
		return 0;
	if (!src)
		src = "";
	size_t n = strnlen(src, len - 1);
	if (src[n] != 0)   /* cut: not inside a UTF-8 sequence */
		while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
			n--;
	memcpy(dst, src, n);
	dst[n] = 0;
	return n;
}

static const char *digits(const char *p)
{
	while (*p >= '0' && *p <= '9')
		p++;
	return p;
}

int text_is_number(const char *s, unsigned flags)
{
	const char *p = s + (*s == '-');
	if (*p < '0' || *p > '9')
		return 0;
	p = *p == '0' && !(flags & TEXT_NUMBER_LEADING_ZEROS) ? p + 1 : digits(p);
	if (flags & TEXT_NUMBER_INTEGER)
		return *p == 0;
	if (*p == '.') {
		if (p[1] < '0' || p[1] > '9')
			return 0;
		p = digits(p + 1);
	}
	if (*p == 'e' || *p == 'E') {
		p += 1 + (p[1] == '+' || p[1] == '-');
		if (*p < '0' || *p > '9')
			return 0;
		p = digits(p);
	}
	return *p == 0;
}
