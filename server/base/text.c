/* Copying a message into a smaller buffer. See text.h. */
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
