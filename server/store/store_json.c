/*
 * The canonical form of stored metadata (issue 17). Every metadata object
 * the store writes is first rewritten here, so that what the API shows
 * (the stored text, verbatim), what filters compare (the stored text of a
 * value) and what was stored are one and the same:
 *
 *   - strict JSON (RFC 8259) in valid UTF-8: no lone surrogate (escaped or
 *     encoded), no NUL (raw or \u0000), no raw control character in a
 *     string, no duplicate key in any object, no trailing text;
 *   - no whitespace; strings as UTF-8 with only '"', '\' and the control
 *     characters escaped (\b \f \n \r \t, else \u00XX);
 *   - numbers must be finite. A number is stored as the nearest IEEE double
 *     (what JSON parsers on the other end read anyway): an integral value
 *     of magnitude at most 2^53 as a plain integer ("1.0", "1e3" and "-0"
 *     become "1", "1000" and "0"), any other value in the shortest form
 *     that reads back to the same double ("0.1", "1e+20"; beyond 2^53
 *     always with an exponent, "1.2345678901234568e+16"). An integer
 *     literal beyond 2^53 in magnitude is refused: it cannot be stored
 *     exactly, and the caller should send it as a string.
 *
 * In repair mode (rows written before this form existed) nothing is
 * refused: bad UTF-8, lone surrogates and NUL become U+FFFD, a duplicate key
 * keeps its first value (the one SQLite's filters saw), a number out of
 * range becomes null (what the API showed), a big integer its nearest
 * double.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbuf.h"
#include "utf8.h"
#include "store_internal.h"

#define TWO53 9007199254740992.0

struct jp {
	const unsigned char *s;
	size_t len, pos;
	int max_depth, repair;
	struct dbuf out;
	store_error *err;
	const char *what;
};

static int jp_fail(struct jp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int jp_fail(struct jp *p, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return store_fail(p->err, STORE_ERR_INVALID, "%s: %s (at byte %zu)", p->what, msg, p->pos);
}

static void skip_ws(struct jp *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n'
				  || p->s[p->pos] == '\r'))
		p->pos++;
}

/* Append code point cp (valid, not a surrogate, not NUL) as canonical text. */
static void put_cp(struct dbuf *b, unsigned cp)
{
	char u[8];
	switch (cp) {
	case '"': dbuf_append(b, "\\\"", 2); return;
	case '\\': dbuf_append(b, "\\\\", 2); return;
	case '\b': dbuf_append(b, "\\b", 2); return;
	case '\f': dbuf_append(b, "\\f", 2); return;
	case '\n': dbuf_append(b, "\\n", 2); return;
	case '\r': dbuf_append(b, "\\r", 2); return;
	case '\t': dbuf_append(b, "\\t", 2); return;
	default: break;
	}
	if (cp < 0x20) {
		snprintf(u, sizeof u, "\\u%04x", cp);
		dbuf_append(b, u, 6);
	} else if (cp < 0x80) {
		u[0] = (char)cp;
		dbuf_append(b, u, 1);
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		dbuf_append(b, u, 2);
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		dbuf_append(b, u, 3);
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		dbuf_append(b, u, 4);
	}
}

static int hex4(const unsigned char *s, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned c = s[i], d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		*v = *v * 16 + d;
	}
	return 0;
}

/* A string at p->pos (at its opening quote), appended in canonical form. */
static int parse_string(struct jp *p)
{
	p->pos++;
	dbuf_append(&p->out, "\"", 1);
	for (;;) {
		if (p->pos >= p->len)
			return jp_fail(p, "a string is not closed");
		unsigned c = p->s[p->pos];
		if (c == '"') {
			p->pos++;
			break;
		}
		unsigned cp;
		if (c == '\\') {
			if (p->pos + 1 >= p->len)
				return jp_fail(p, "a string is not closed");
			unsigned e = p->s[p->pos + 1];
			static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
			const char *k = e ? strchr(from, (int)e) : NULL;
			if (k) {
				put_cp(&p->out, (unsigned char)to[k - from]);
				p->pos += 2;
				continue;
			}
			if (e != 'u' || p->pos + 6 > p->len || hex4(p->s + p->pos + 2, &cp) != 0)
				return jp_fail(p, "a string has an invalid escape");
			size_t used = 6;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				unsigned lo;
				if (p->pos + 12 <= p->len && p->s[p->pos + 6] == '\\' && p->s[p->pos + 7] == 'u'
				    && hex4(p->s + p->pos + 8, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					used = 12;
				} else if (p->repair) {
					cp = 0xFFFD;
				} else {
					return jp_fail(p, "a string has a lone UTF-16 surrogate (\\ud800-\\udbff without a low half)");
				}
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				if (!p->repair)
					return jp_fail(p, "a string has a lone UTF-16 surrogate (\\udc00-\\udfff)");
				cp = 0xFFFD;
			}
			if (cp == 0) {
				if (!p->repair)
					return jp_fail(p, "a string contains a NUL character (\\u0000)");
				cp = 0xFFFD;
			}
			put_cp(&p->out, cp);
			p->pos += used;
			continue;
		}
		if (c < 0x20) {
			if (!p->repair)
				return jp_fail(p, c == 0 ? "a string contains a NUL byte"
							 : "a string contains a raw control character");
			put_cp(&p->out, c == 0 ? 0xFFFD : c);
			p->pos++;
			continue;
		}
		size_t n = utf8_decode(p->s + p->pos, p->len - p->pos, &cp);
		if (!n) {
			if (!p->repair)
				return jp_fail(p, "a string is not valid UTF-8");
			cp = 0xFFFD;
			n = 1;
		}
		put_cp(&p->out, cp);
		p->pos += n;
	}
	dbuf_append(&p->out, "\"", 1);
	return 0;
}

int st_json_number_text(double v, char out[ST_JSON_NUMBER_MAX])
{
	if (!isfinite(v))
		return -1;
	if (v == floor(v) && fabs(v) <= TWO53) {
		snprintf(out, ST_JSON_NUMBER_MAX, "%lld", (long long)v);   /* -0 becomes 0 */
		return 0;
	}
	int prec = 15;
	for (; prec <= 17; prec++) {
		snprintf(out, ST_JSON_NUMBER_MAX, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			break;
	}
	/* Beyond 2^53 an integral value keeps an exponent: below 1e17 %g
	 * writes it as plain digits ("12345678901234568"), an integer literal
	 * beyond 2^53, which this form refuses when it reads it back. The
	 * same digits with an exponent, trailing zeros dropped. */
	if (fabs(v) > TWO53 && !strchr(out, 'e')) {
		char m[ST_JSON_NUMBER_MAX];
		snprintf(m, sizeof m, "%.*e", (prec > 17 ? 17 : prec) - 1, v);
		char *e = strchr(m, 'e'), *z = e;
		while (z > m && z[-1] == '0')
			z--;
		if (z > m && z[-1] == '.')
			z--;
		snprintf(out, ST_JSON_NUMBER_MAX, "%.*s%s", (int)(z - m), m, e);
	}
	return 0;
}

/* Length of a JSON number at s (grammar only), or 0; *integer is set when
 * it has neither fraction nor exponent. */
static size_t number_span(const unsigned char *s, size_t n, int *integer)
{
	size_t i = 0;
	*integer = 1;
	if (i < n && s[i] == '-')
		i++;
	if (i >= n || s[i] < '0' || s[i] > '9')
		return 0;
	if (s[i] == '0')
		i++;
	else
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	if (i < n && s[i] == '.') {
		*integer = 0;
		i++;
		if (i >= n || s[i] < '0' || s[i] > '9')
			return 0;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		*integer = 0;
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || s[i] < '0' || s[i] > '9')
			return 0;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	return i;
}

/* 1 if the integer literal s (optional '-', digits, no leading zeros) is
 * beyond 2^53 in magnitude. */
static int integer_too_big(const unsigned char *s, size_t n)
{
	if (n && s[0] == '-') {
		s++;
		n--;
	}
	static const char limit[] = "9007199254740992";
	if (n != sizeof limit - 1)
		return n > sizeof limit - 1;
	return memcmp(s, limit, n) > 0;
}

/* The value of a number span (at most 1 KiB of text is converted). */
static int number_value(const unsigned char *s, size_t n, double *v)
{
	char buf[1024];
	if (n >= sizeof buf)
		return -1;   /* refused: no number a person means is this long */
	memcpy(buf, s, n);
	buf[n] = 0;
	errno = 0;
	*v = strtod(buf, NULL);
	return 0;
}

static int parse_number(struct jp *p)
{
	int integer;
	size_t n = number_span(p->s + p->pos, p->len - p->pos, &integer);
	if (!n)
		return jp_fail(p, "not valid JSON");
	const unsigned char *s = p->s + p->pos;
	char text[ST_JSON_NUMBER_MAX];
	double v = 0;
	int too_long = number_value(s, n, &v) != 0;
	int bad = too_long || !isfinite(v);
	if (!bad && integer && integer_too_big(s, n) && !p->repair) {
		char lit[48];
		snprintf(lit, sizeof lit, "%.*s%s", (int)(n > 40 ? 40 : n), (const char *)s, n > 40 ? "..." : "");
		return jp_fail(p, "the integer %s is beyond 2^53 and cannot be stored exactly "
				  "(send it as a string)", lit);
	}
	if (bad) {
		if (!p->repair) {
			char lit[48];
			snprintf(lit, sizeof lit, "%.*s%s", (int)(n > 40 ? 40 : n), (const char *)s,
				 n > 40 ? "..." : "");
			return too_long ? jp_fail(p, "the number %s has more than 1,000 characters", lit)
					: jp_fail(p, "the number %s is not finite (out of a double's range)", lit);
		}
		dbuf_append(&p->out, "null", 4);
	} else {
		st_json_number_text(v, text);
		dbuf_puts(&p->out, text);
	}
	p->pos += n;
	return 0;
}

static int parse_value(struct jp *p, int depth);

struct key_ref {
	size_t off, len;   /* the canonical key text in p->out, quotes included */
	size_t start, end; /* the whole member in p->out (comma excluded) */
};

static int key_cmp(const void *a, const void *b, void *base)
{
	const struct key_ref *x = a, *y = b;
	const char *key_base = base;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(key_base + x->off, key_base + y->off, n);
	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* Repair mode: drop every member whose key appeared before in the object
 * starting at obj (members from keys[]); the first one stays. */
static void drop_duplicates(struct jp *p, size_t obj, struct key_ref *keys, size_t n)
{
	unsigned char *drop = calloc(n, 1);
	struct key_ref *sorted = malloc(n * sizeof *sorted);
	if (!drop || !sorted) {
		free(drop);
		free(sorted);
		p->out.failed = 1;
		return;
	}
	memcpy(sorted, keys, n * sizeof *sorted);
	qsort_r(sorted, n, sizeof *sorted, key_cmp, p->out.data);
	for (size_t i = 1; i < n; i++)
		if (sorted[i].len == sorted[i - 1].len
		    && !memcmp(p->out.data + sorted[i].off, p->out.data + sorted[i - 1].off, sorted[i].len))
			for (size_t k = 0; k < n; k++)
				if (keys[k].start == sorted[i].start)
					drop[k] = 1;
	/* Rebuild the members after '{' in place. */
	size_t w = obj + 1;
	int first = 1;
	for (size_t k = 0; k < n; k++) {
		if (drop[k])
			continue;
		if (!first)
			p->out.data[w++] = ',';
		size_t len = keys[k].end - keys[k].start;
		memmove(p->out.data + w, p->out.data + keys[k].start, len);
		w += len;
		first = 0;
	}
	p->out.len = w;
	free(sorted);
	free(drop);
}

static int parse_object(struct jp *p, int depth)
{
	size_t obj = p->out.len, n = 0, cap = 0;
	struct key_ref *keys = NULL;
	int rc = 0;
	p->pos++;
	dbuf_append(&p->out, "{", 1);
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == '}') {
		p->pos++;
		dbuf_append(&p->out, "}", 1);
		return 0;
	}
	for (;;) {
		skip_ws(p);
		if (p->pos >= p->len || p->s[p->pos] != '"') {
			rc = jp_fail(p, "an object key must be a string");
			goto out;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct key_ref *k = realloc(keys, nc * sizeof *k);
			if (!k) {
				rc = store_fail(p->err, STORE_ERR_NOMEM, "out of memory");
				goto out;
			}
			keys = k;
			cap = nc;
		}
		if (n)
			dbuf_append(&p->out, ",", 1);
		keys[n].start = keys[n].off = p->out.len;
		if ((rc = parse_string(p)) != 0)
			goto out;
		keys[n].len = p->out.len - keys[n].off;
		skip_ws(p);
		if (p->pos >= p->len || p->s[p->pos] != ':') {
			rc = jp_fail(p, "an object key must be followed by ':'");
			goto out;
		}
		p->pos++;
		dbuf_append(&p->out, ":", 1);
		if ((rc = parse_value(p, depth)) != 0)
			goto out;
		keys[n].end = p->out.len;
		n++;
		skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == '}') {
			p->pos++;
			break;
		}
		rc = jp_fail(p, "an object's members must be separated by ',' and closed by '}'");
		goto out;
	}
	if (p->out.failed) {
		rc = store_fail(p->err, STORE_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* Duplicate keys: compare the canonical key texts, sorted. */
	if (n > 1) {
		struct key_ref *sorted = malloc(n * sizeof *sorted);
		if (!sorted) {
			rc = store_fail(p->err, STORE_ERR_NOMEM, "out of memory");
			goto out;
		}
		memcpy(sorted, keys, n * sizeof *sorted);
		qsort_r(sorted, n, sizeof *sorted, key_cmp, p->out.data);
		size_t dup = 0;
		for (size_t i = 1; i < n && !dup; i++)
			if (sorted[i].len == sorted[i - 1].len
			    && !memcmp(p->out.data + sorted[i].off, p->out.data + sorted[i - 1].off, sorted[i].len))
				dup = i;
		if (dup && !p->repair) {
			char key[80];
			size_t kl = sorted[dup].len - 2;
			snprintf(key, sizeof key, "%.*s%s", (int)(kl > 64 ? 64 : kl),
				 p->out.data + sorted[dup].off + 1, kl > 64 ? "..." : "");
			free(sorted);
			rc = jp_fail(p, "an object has the key \"%s\" more than once", key);
			goto out;
		}
		free(sorted);
		if (dup)
			drop_duplicates(p, obj, keys, n);
	}
	dbuf_append(&p->out, "}", 1);
out:
	free(keys);
	return rc;
}

static int parse_array(struct jp *p, int depth)
{
	p->pos++;
	dbuf_append(&p->out, "[", 1);
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == ']') {
		p->pos++;
		dbuf_append(&p->out, "]", 1);
		return 0;
	}
	for (int first = 1;; first = 0) {
		if (!first)
			dbuf_append(&p->out, ",", 1);
		int rc = parse_value(p, depth);
		if (rc != 0)
			return rc;
		skip_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == ']') {
			p->pos++;
			break;
		}
		return jp_fail(p, "an array's items must be separated by ',' and closed by ']'");
	}
	dbuf_append(&p->out, "]", 1);
	return 0;
}

static int literal(struct jp *p, const char *word)
{
	size_t n = strlen(word);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return jp_fail(p, "not valid JSON");
	p->pos += n;
	dbuf_append(&p->out, word, n);
	return 0;
}

static int parse_value(struct jp *p, int depth)
{
	skip_ws(p);
	if (p->pos >= p->len)
		return jp_fail(p, "not valid JSON (it ends early)");
	unsigned c = p->s[p->pos];
	if (c == '{' || c == '[') {
		if (depth + 1 > p->max_depth)
			return store_fail(p->err, STORE_ERR_TOO_LARGE,
				       "%s nests more than %d levels deep (at byte %zu)", p->what, p->max_depth, p->pos);
		return c == '{' ? parse_object(p, depth + 1) : parse_array(p, depth + 1);
	}
	if (c == '"')
		return parse_string(p);
	if (c == 't')
		return literal(p, "true");
	if (c == 'f')
		return literal(p, "false");
	if (c == 'n')
		return literal(p, "null");
	return parse_number(p);
}

int st_json_canonical(const char *in, size_t len, int max_depth, int repair, const char *what,
		      char **out, size_t *out_len, store_error *err)
{
	struct jp p = { .s = (const unsigned char *)in, .len = len, .max_depth = max_depth,
			.repair = repair, .err = err, .what = what ? what : "metadata" };
	p.out = (struct dbuf)DBUF_INIT(0);
	*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!in)
		return store_fail(err, STORE_ERR_INVALID, "%s is empty", p.what);
	skip_ws(&p);
	if (p.pos >= p.len)
		return store_fail(err, STORE_ERR_INVALID, "%s is empty", p.what);
	int rc = parse_value(&p, 0);
	if (rc == 0) {
		skip_ws(&p);
		if (p.pos != p.len)
			rc = jp_fail(&p, "not valid JSON (text after the value)");
	}
	if (rc == 0 && (p.out.failed || !p.out.data))
		rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	if (rc != 0) {
		dbuf_free(&p.out);
		return rc;
	}
	size_t n = 0;
	*out = dbuf_take(&p.out, &n);
	if (out_len)
		*out_len = n;
	return 0;
}
