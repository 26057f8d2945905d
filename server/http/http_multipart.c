#include "http_multipart.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum mp_state {
	MP_PREAMBLE,     /* looking for the first delimiter; bytes are discarded */
	MP_AFTER_DELIM,  /* after "--boundary": "--" ends, CRLF starts a part */
	MP_HEADERS,      /* a part's header block, up to the empty line */
	MP_DATA,         /* a part's data, up to the next delimiter */
	MP_END,          /* the epilogue, ignored */
	MP_FAILED,
};

struct http_multipart {
	struct http_multipart_callbacks cb;
	void *ud;
	size_t max_parts, parts;
	/* "\r\n--" boundary: CR occurs only at its start (the boundary
	 * alphabet has no CR), so a mismatch restarts at 0 or 1. */
	char delim[HTTP_MP_MAX_BOUNDARY + 5];
	size_t dlen, matched;
	enum mp_state state;
	int ad_sub;           /* MP_AFTER_DELIM: 0 start, 1 saw '-', 2 saw CR */
	size_t ad_spaces;
	char header[HTTP_MP_MAX_HEADER];
	size_t hlen;
	int error;
	char msg[160];
};

/* RFC 2046: bchars := bcharsnospace / " " ; the last may not be a space. */
static int boundary_char(int c)
{
	return isalnum(c) || (c && strchr("'()+_,-./:=? ", c));
}

int http_multipart_boundary(const char *content_type, char *out, size_t outlen)
{
	if (!content_type || !out || outlen == 0)
		return -1;
	const char *p = content_type;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "multipart/form-data", 19) != 0)
		return -1;
	p += 19;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		const char *key = p;
		while (*p && *p != '=' && *p != ';')
			p++;
		size_t klen = (size_t)(p - key);
		while (klen && (key[klen - 1] == ' ' || key[klen - 1] == '\t'))
			klen--;
		if (*p != '=') {
			continue;
		}
		p++;
		char value[HTTP_MP_MAX_BOUNDARY + 2];
		size_t vlen = 0;
		int too_long = 0;
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				if (vlen < sizeof value - 1)
					value[vlen++] = *p;
				else
					too_long = 1;
				p++;
			}
			if (*p == '"')
				p++;
		} else {
			while (*p && *p != ';' && *p != ' ' && *p != '\t') {
				if (vlen < sizeof value - 1)
					value[vlen++] = *p;
				else
					too_long = 1;
				p++;
			}
		}
		value[vlen] = 0;
		if (klen == 8 && !strncasecmp(key, "boundary", 8)) {
			if (too_long || vlen == 0 || vlen > HTTP_MP_MAX_BOUNDARY || value[vlen - 1] == ' ')
				return -1;
			for (size_t i = 0; i < vlen; i++)
				if (!boundary_char((unsigned char)value[i]))
					return -1;
			if (vlen + 1 > outlen)
				return -1;
			memcpy(out, value, vlen + 1);
			return 0;
		}
	}
	return -1;
}

static int fail(struct http_multipart *mp, int code, const char *msg)
{
	mp->error = code;
	mp->state = MP_FAILED;
	snprintf(mp->msg, sizeof mp->msg, "%s", msg);
	return code;
}

struct http_multipart *http_multipart_new(const char *boundary, const struct http_multipart_callbacks *cb,
					  void *ud, size_t max_parts)
{
	size_t blen = boundary ? strlen(boundary) : 0;
	if (blen == 0 || blen > HTTP_MP_MAX_BOUNDARY || !cb)
		return NULL;
	struct http_multipart *mp = calloc(1, sizeof *mp);
	if (!mp)
		return NULL;
	mp->cb = *cb;
	mp->ud = ud;
	mp->max_parts = max_parts;
	mp->dlen = (size_t)snprintf(mp->delim, sizeof mp->delim, "\r\n--%s", boundary);
	/* The body's first line may be the delimiter itself: act as if a CRLF
	 * preceded the body. */
	mp->matched = 2;
	mp->state = MP_PREAMBLE;
	return mp;
}

void http_multipart_free(struct http_multipart *mp)
{
	free(mp);
}

const char *http_multipart_error(const struct http_multipart *mp)
{
	return mp ? mp->msg : "";
}

size_t http_multipart_parts(const struct http_multipart *mp)
{
	return mp ? mp->parts : 0;
}

/* Copy a header parameter's value (quoted-string or token) from *pp. */
static void param_value(const char **pp, char *out, size_t outlen, int *truncated)
{
	const char *p = *pp;
	size_t n = 0;
	*truncated = 0;
	if (*p == '"') {
		p++;
		while (*p && *p != '"') {
			/* Browsers do not escape backslashes in filenames
			 * (C:\path); only \" and \\ are taken as escapes. */
			if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
				p++;
			if (n + 1 < outlen)
				out[n++] = *p;
			else
				*truncated = 1;
			p++;
		}
		if (*p == '"')
			p++;
	} else {
		while (*p && *p != ';') {
			if (n + 1 < outlen)
				out[n++] = *p;
			else
				*truncated = 1;
			p++;
		}
		while (n && (out[n - 1] == ' ' || out[n - 1] == '\t'))
			n--;
	}
	out[n] = 0;
	*pp = p;
}

/* Cut a UTF-8 string at a character boundary, so truncation never leaves
 * half a character. */
static void utf8_trim(char *s)
{
	size_t n = strlen(s);
	size_t i = n;
	while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	if (n - (i - 1) < need)
		s[i - 1] = 0;
}

static int parse_disposition(struct http_multipart *mp, const char *v, struct http_part *part)
{
	while (*v == ' ' || *v == '\t')
		v++;
	if (strncasecmp(v, "form-data", 9) != 0)
		return fail(mp, HTTP_MP_ERR_SYNTAX, "a part's Content-Disposition is not form-data");
	v += 9;
	while (*v) {
		while (*v == ';' || *v == ' ' || *v == '\t')
			v++;
		const char *key = v;
		while (*v && *v != '=' && *v != ';')
			v++;
		size_t klen = (size_t)(v - key);
		while (klen && (key[klen - 1] == ' ' || key[klen - 1] == '\t'))
			klen--;
		if (*v != '=')
			continue;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		int truncated = 0;
		if (klen == 4 && !strncasecmp(key, "name", 4)) {
			param_value(&v, part->name, sizeof part->name, &truncated);
			if (truncated)
				return fail(mp, HTTP_MP_ERR_SYNTAX, "a part's name is too long");
		} else if (klen == 8 && !strncasecmp(key, "filename", 8)) {
			param_value(&v, part->filename, sizeof part->filename, &truncated);
			if (truncated)
				utf8_trim(part->filename);
			part->has_filename = 1;
		} else {
			char skip[256];
			param_value(&v, skip, sizeof skip, &truncated);
		}
	}
	return 0;
}

static int parse_headers(struct http_multipart *mp, struct http_part *part)
{
	memset(part, 0, sizeof *part);
	/* header[0..hlen) ends with CRLF CRLF (or is a lone CRLF): make lines
	 * NUL-terminated in place. */
	mp->header[mp->hlen - 2] = 0;
	char *line = mp->header;
	while (*line) {
		char *end = strstr(line, "\r\n");
		char *next = end ? end + 2 : line + strlen(line);
		if (end)
			*end = 0;
		if (*line == ' ' || *line == '\t')
			return fail(mp, HTTP_MP_ERR_SYNTAX, "folded part headers are not supported");
		char *colon = strchr(line, ':');
		if (!colon)
			return fail(mp, HTTP_MP_ERR_SYNTAX, "a part header has no colon");
		*colon = 0;
		const char *value = colon + 1;
		while (*value == ' ' || *value == '\t')
			value++;
		if (!strcasecmp(line, "Content-Disposition")) {
			if (parse_disposition(mp, value, part) != 0)
				return mp->error;
		} else if (!strcasecmp(line, "Content-Type")) {
			size_t n = 0;
			while (value[n] && value[n] != ';' && value[n] != ' ' && n < HTTP_MP_MAX_CTYPE) {
				part->content_type[n] = (char)tolower((unsigned char)value[n]);
				n++;
			}
			part->content_type[n] = 0;
		}
		line = next;
	}
	return 0;
}

/* Scan for the delimiter. Data before it goes to the part (emit) or is
 * dropped; returns the bytes consumed, and sets *found when the whole
 * delimiter was matched (consumed then ends right after it). */
static int scan(struct http_multipart *mp, const char *p, size_t n, int emit, size_t *used, int *found)
{
	size_t pending = 0;   /* start of data not yet emitted (matched == 0 region) */
	*found = 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == mp->delim[mp->matched]) {
			if (mp->matched == 0 && emit && i > pending) {
				int rc = mp->cb.part_data(mp->ud, p + pending, i - pending);
				if (rc)
					return rc;
			}
			if (++mp->matched == mp->dlen) {
				mp->matched = 0;
				*used = i + 1;
				*found = 1;
				return 0;
			}
			continue;
		}
		if (mp->matched > 0) {
			/* The held bytes were data after all: they equal the
			 * delimiter's prefix. */
			if (emit) {
				int rc = mp->cb.part_data(mp->ud, mp->delim, mp->matched);
				if (rc)
					return rc;
			}
			if (c == mp->delim[0]) {
				mp->matched = 1;
				continue;
			}
			mp->matched = 0;
			pending = i;
		}
	}
	if (mp->matched == 0 && emit && n > pending) {
		int rc = mp->cb.part_data(mp->ud, p + pending, n - pending);
		if (rc)
			return rc;
	}
	*used = n;
	return 0;
}

int http_multipart_feed(struct http_multipart *mp, const char *data, size_t len)
{
	if (!mp)
		return HTTP_MP_ERR_SYNTAX;
	if (mp->state == MP_FAILED)
		return mp->error;
	size_t i = 0;
	while (i < len) {
		switch (mp->state) {
		case MP_PREAMBLE:
		case MP_DATA: {
			size_t used = 0;
			int found = 0;
			int emit = mp->state == MP_DATA;
			int rc = scan(mp, data + i, len - i, emit, &used, &found);
			if (rc) {
				fail(mp, rc, "stopped by the receiver");
				return rc;
			}
			i += used;
			if (found) {
				if (emit) {
					rc = mp->cb.part_end(mp->ud);
					if (rc) {
						fail(mp, rc, "stopped by the receiver");
						return rc;
					}
				}
				mp->state = MP_AFTER_DELIM;
				mp->ad_sub = 0;
				mp->ad_spaces = 0;
			}
			break;
		}
		case MP_AFTER_DELIM: {
			char c = data[i++];
			if (mp->ad_sub == 0) {
				if (c == '-')
					mp->ad_sub = 1;
				else if (c == '\r')
					mp->ad_sub = 2;
				else if ((c == ' ' || c == '\t') && ++mp->ad_spaces <= 64)
					;
				else
					return fail(mp, HTTP_MP_ERR_SYNTAX, "a boundary line has trailing characters");
			} else if (mp->ad_sub == 1) {
				if (c != '-')
					return fail(mp, HTTP_MP_ERR_SYNTAX, "a boundary line has trailing characters");
				mp->state = MP_END;
			} else {
				if (c != '\n')
					return fail(mp, HTTP_MP_ERR_SYNTAX, "a boundary line does not end in CRLF");
				if (mp->parts >= mp->max_parts)
					return fail(mp, HTTP_MP_ERR_TOO_MANY, "too many parts");
				mp->parts++;
				mp->state = MP_HEADERS;
				mp->hlen = 0;
			}
			break;
		}
		case MP_HEADERS: {
			if (mp->hlen >= sizeof mp->header)
				return fail(mp, HTTP_MP_ERR_SYNTAX, "a part's headers are too long");
			mp->header[mp->hlen++] = data[i++];
			int done = (mp->hlen == 2 && !memcmp(mp->header, "\r\n", 2))
				   || (mp->hlen >= 4 && !memcmp(mp->header + mp->hlen - 4, "\r\n\r\n", 4));
			if (!done)
				break;
			struct http_part part;
			if (parse_headers(mp, &part) != 0)
				return mp->error;
			int rc = mp->cb.part_begin(mp->ud, &part);
			if (rc) {
				fail(mp, rc, "stopped by the receiver");
				return rc;
			}
			mp->state = MP_DATA;
			mp->matched = 0;
			break;
		}
		case MP_END:
			return 0;
		case MP_FAILED:
			return mp->error;
		}
	}
	return 0;
}

int http_multipart_finish(struct http_multipart *mp)
{
	if (!mp)
		return HTTP_MP_ERR_SYNTAX;
	if (mp->state == MP_FAILED)
		return mp->error;
	if (mp->state != MP_END)
		return fail(mp, HTTP_MP_ERR_SYNTAX, mp->parts ? "the body ends inside a part (no closing boundary)"
							       : "no parts (is the boundary right?)");
	return 0;
}
