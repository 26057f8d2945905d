/*
 * srv_json.h - the API's JSON shapes and the small parsers behind query
 * parameters: the image object, RFC 3339 times, UTF-8 checks, numbers.
 *
 *     cJSON *obj = srv_image_json(&img);        // {"id", "sha256", ..., "links"}
 *     int64_t t;
 *     srv_time_parse("2024-05-01T12:00:00Z", &t);   // microseconds since the epoch
 */
#ifndef CLIPD_SRV_JSON_H
#define CLIPD_SRV_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "catalog.h"

/* The image object (a new cJSON the caller owns; NULL when out of memory). */
cJSON *srv_image_json(const struct store_image *img);
/* "next_cursor": the id as a string, or null for 0 (no more pages). */
void srv_add_cursor(cJSON *root, int64_t next);
/* Add a file path (bytes a file system gave) as a JSON string: invalid
 * UTF-8 shown as U+FFFD (srv_utf8_clean). */
void srv_add_path_string(cJSON *o, const char *key, const char *path);

/* RFC 3339 in UTC with microseconds: "2024-05-01T12:00:00.000123Z". */
#define SRV_TIME_MAX 96
void srv_time_format(int64_t micros, char out[SRV_TIME_MAX]);
/* RFC 3339 ("T" or " ", optional fraction, "Z" or an offset) to
 * microseconds since the epoch. 0, or -1. */
int srv_time_parse(const char *s, int64_t *micros);

/* A capture time as the encoder gives it (clip_image.taken_at: RFC 3339,
 * or "") into the row's form: the text and its instant; text "" when
 * absent or not a time srv_time_parse reads. */
void srv_taken_at(const char *text, struct store_taken_at *out);

/* Characters (code points) of a UTF-8 string, or -1 if it is not valid UTF-8. */
long srv_utf8_chars(const char *s, size_t len);
/* A copy with each invalid sequence replaced by U+FFFD (malloc'd; NULL on OOM). */
char *srv_utf8_clean(const char *s, size_t len);

/* A whole decimal number within [min, max]. 0, or -1. */
int srv_parse_int(const char *s, long long min, long long max, long long *out);
/* A finite number within [min, max]. 0, or -1. */
int srv_parse_double(const char *s, double min, double max, double *out);

#endif
