#include "srv_json.h"
#include "text.h"
#include "utf8.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void srv_time_format(int64_t micros, char out[SRV_TIME_MAX])
{
	int64_t secs = micros / 1000000, frac = micros % 1000000;
	if (frac < 0) {
		frac += 1000000;
		secs--;
	}
	time_t t = (time_t)secs;
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, SRV_TIME_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int srv_time_parse(const char *s, int64_t *micros)
{
	int y, mo, d, h, mi, sec;
	if (!s)
		return -1;
	const char *p = s;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
		return -1;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -1;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &sec))
		return -1;
	int64_t frac = 0;
	if (*p == '.') {
		p++;
		int n = 0;
		while (*p >= '0' && *p <= '9') {
			if (n < 6) {
				frac = frac * 10 + (*p - '0');
				n++;
			}
			p++;
		}
		if (n == 0)
			return -1;
		while (n++ < 6)
			frac *= 10;
	}
	int offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
			return -1;
		offset = sign * (oh * 60 + om);
	} else {
		return -1;
	}
	if (*p)
		return -1;
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
		return -1;
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo == 2 && d == 29 && !leap)
		return -1;
	if (sec == 60)
		sec = 59;   /* a leap second: close enough */
	int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - (int64_t)offset * 60;
	*micros = t * 1000000 + frac;
	return 0;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned cp;
	return utf8_decode(p, n, &cp);
}

long srv_utf8_chars(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	long n = 0;
	for (size_t i = 0; i < len;) {
		size_t k = utf8_seq(p + i, len - i);
		if (!k)
			return -1;
		i += k;
		n++;
	}
	return n;
}

char *srv_utf8_clean(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = malloc(len * 3 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t k = utf8_seq(p + i, len - i);
		if (k && p[i] != 0) {
			memcpy(out + o, p + i, k);
			o += k;
			i += k;
		} else {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		}
	}
	out[o] = 0;
	return out;
}

int srv_parse_int(const char *s, long long min, long long max, long long *out)
{
	/* JSON's grammar (text_is_number), leading zeros allowed: strtoll and
	 * strtod alone would also take leading white space (a tab: "k=%095"), a
	 * '+', hexadecimal, "inf" and "nan" (found by tests/fuzz/fuzz_request). */
	if (!s || !text_is_number(s, TEXT_NUMBER_INTEGER | TEXT_NUMBER_LEADING_ZEROS))
		return -1;
	char *end = NULL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int srv_parse_double(const char *s, double min, double max, double *out)
{
	if (!s || !text_is_number(s, TEXT_NUMBER_LEADING_ZEROS))
		return -1;
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || end == s || !isfinite(v) || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

void srv_add_path_string(cJSON *o, const char *key, const char *path)
{
	char *clean = srv_utf8_clean(path, strlen(path));
	cJSON_AddStringToObject(o, key, clean ? clean : "");
	free(clean);
}

cJSON *srv_image_json(const struct store_image *img)
{
	char buf[96];
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "id", (double)img->id);
	cJSON_AddStringToObject(o, "sha256", img->sha256);
	cJSON_AddStringToObject(o, "mime", img->mime);
	cJSON_AddNumberToObject(o, "width", img->width);
	cJSON_AddNumberToObject(o, "height", img->height);
	cJSON_AddNumberToObject(o, "bytes", (double)img->bytes);
	if (img->filename)
		cJSON_AddStringToObject(o, "filename", img->filename);
	else
		cJSON_AddNullToObject(o, "filename");
	srv_time_format(img->created_at, buf);
	cJSON_AddStringToObject(o, "created_at", buf);
	if (img->taken.text[0])
		cJSON_AddStringToObject(o, "taken_at", img->taken.text);
	else
		cJSON_AddNullToObject(o, "taken_at");
	/* The stored text, verbatim: the store keeps metadata in one canonical
	 * form (strict JSON, valid UTF-8, numbers as stored), so what is shown
	 * is exactly what filters compare. */
	cJSON_AddItemToObject(o, "metadata", cJSON_CreateRaw(img->metadata && img->metadata[0] == '{'
								     ? img->metadata : "{}"));
	if (img->source_library && img->source_path) {
		cJSON *src = cJSON_AddObjectToObject(o, "source");
		cJSON_AddStringToObject(src, "library", img->source_library);
		srv_add_path_string(src, "path", img->source_path);
	} else {
		cJSON_AddNullToObject(o, "source");
	}
	cJSON *links = cJSON_AddObjectToObject(o, "links");
	snprintf(buf, sizeof buf, "/images/%lld/file", (long long)img->id);
	cJSON_AddStringToObject(links, "file", buf);
	snprintf(buf, sizeof buf, "/images/%lld/thumbnail", (long long)img->id);
	cJSON_AddStringToObject(links, "thumbnail", buf);
	return o;
}

void srv_taken_at(const char *text, struct store_taken_at *out)
{
	memset(out, 0, sizeof *out);
	if (!text || strlen(text) >= sizeof out->text || srv_time_parse(text, &out->us) != 0) {
		out->us = 0;
		return;
	}
	snprintf(out->text, sizeof out->text, "%s", text);
}

void srv_add_cursor(cJSON *root, int64_t next)
{
	if (next) {
		char buf[32];
		snprintf(buf, sizeof buf, "%lld", (long long)next);
		cJSON_AddStringToObject(root, "next_cursor", buf);
	} else {
		cJSON_AddNullToObject(root, "next_cursor");
	}
}
