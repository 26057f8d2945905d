/*
 * log.h - the server's log: one line per event on stderr,
 *
 *     2026-11-27T15:04:05.123Z info  listening on 127.0.0.1:8080
 *
 * Only server/ logs; encoder/ and index/ return codes and messages. Lines
 * below the configured level are skipped before any formatting. Never pass
 * a secret (an API key, an Authorization header) to these functions.
 */
#ifndef CLIPD_LOG_H
#define CLIPD_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* "error", "warn", "info" or "debug"; -1 for anything else. */
int log_level_parse(const char *name);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
