#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int current_level = LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (name && !strcmp(name, level_names[i]))
			return i;
	return -1;
}

void log_set_level(enum log_level level)
{
	atomic_store(&current_level, (int)level);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&current_level);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if ((int)level > atomic_load(&current_level))
		return;
	char line[4096];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	n += snprintf(line + n, sizeof line - (size_t)n, ".%03dZ %-5s ",
		      (int)(tv.tv_usec / 1000), level_names[level]);
	va_list ap, again;
	va_start(ap, fmt);
	va_copy(again, ap);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	char *out = line;
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2) {
		/* A long message (a warning naming long paths) is never cut: it
		 * gets a buffer of its size; only without memory is it cut. */
		char *big = malloc(len + 2);
		if (big) {
			memcpy(big, line, (size_t)n);
			vsnprintf(big + n, (size_t)m + 1, fmt, again);
			out = big;
		} else {
			len = sizeof line - 2;
		}
	}
	va_end(again);
	/* One write per line, so that lines from threads never interleave;
	 * control characters from client input never reach the terminal. */
	for (size_t i = (size_t)n; i < len; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			out[i] = '?';
	out[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, out, len);
	(void)w;
	if (out != line)
		free(out);
}
