/* Export: the .npy, the JSON lines, the model; GET /export as a tar. See srv_export.h. */
#include "srv_export.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "srv_app.h"
#include "srv_json.h"

#define PAGE 256
/* The .npy header is written last (the count is known only then), so it
 * has a fixed size: magic, version, length, the dict padded with spaces. */
#define NPY_HEADER 128

static int fail(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return -1;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static void npy_header(char out[NPY_HEADER], uint64_t n, size_t dim)
{
	memset(out, ' ', NPY_HEADER);
	memcpy(out, "\x93NUMPY\x01\x00", 8);
	out[8] = (char)(NPY_HEADER - 10);   /* header length, little-endian uint16 */
	out[9] = 0;
	int k = snprintf(out + 10, NPY_HEADER - 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (%llu, %zu), }",
			 (unsigned long long)n, dim);
	out[10 + k] = ' ';   /* snprintf's NUL */
	out[NPY_HEADER - 1] = '\n';
}

/* The vectors as little-endian float32, whatever the host. */
static void to_le(float *v, size_t n)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &v[i], 4);
		u = __builtin_bswap32(u);
		memcpy(&v[i], &u, 4);
	}
#else
	(void)v;
	(void)n;
#endif
}

static int model_json(catalog *c, uint64_t count, char **out)
{
	const struct store_model *m = catalog_model(c);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", m->name);
	cJSON_AddStringToObject(o, "fingerprint", m->fingerprint);
	cJSON_AddNumberToObject(o, "dim", (double)m->dim);
	cJSON_AddStringToObject(o, "layout", m->layout);
	cJSON_AddNumberToObject(o, "count", (double)count);
	*out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return *out ? 0 : -1;
}

enum { F_VECTORS, F_IMAGES, F_MODEL, F_COUNT };
static const char *const names[F_COUNT] = { SRV_EXPORT_VECTORS, SRV_EXPORT_IMAGES, SRV_EXPORT_MODEL };

int srv_export_dir(catalog *c, const char *dir, uint64_t *count, char *msg, size_t len)
{
	char tmp[F_COUNT][4096], final[F_COUNT][4096];
	int fd[F_COUNT] = { -1, -1, -1 };
	int rc = -1;
	size_t dim = catalog_dim(c);
	struct store_image *rows = calloc(PAGE, sizeof *rows);
	float *vecs = malloc(PAGE * dim * sizeof *vecs);
	char *model = NULL;
	uint64_t n = 0;
	for (int f = 0; f < F_COUNT; f++)
		tmp[f][0] = '\0';
	if (!rows || !vecs) {
		fail(msg, len, "out of memory");
		goto out;
	}
	for (int f = 0; f < F_COUNT; f++) {
		if ((size_t)snprintf(tmp[f], sizeof tmp[f], "%s/.%s.tmp", dir, names[f]) >= sizeof tmp[f] ||
		    (size_t)snprintf(final[f], sizeof final[f], "%s/%s", dir, names[f]) >= sizeof final[f]) {
			fail(msg, len, "%s: path too long", dir);
			goto out;
		}
		fd[f] = open(tmp[f], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd[f] < 0) {
			fail(msg, len, "%s: %s", tmp[f], strerror(errno));
			goto out;
		}
	}
	char header[NPY_HEADER];
	npy_header(header, 0, dim);
	if (write_all(fd[F_VECTORS], header, sizeof header) != 0)
		goto io;
	store_error err = { 0 };
	int64_t after = 0;
	for (;;) {
		size_t got = 0;
		int64_t last = 0;
		if (catalog_export_page(c, after, PAGE, rows, vecs, dim, &got, &last, &err) != 0) {
			fail(msg, len, "%s", err.msg);
			goto out;
		}
		if (last == 0)
			break;
		after = last;
		to_le(vecs, got * dim);
		int bad = write_all(fd[F_VECTORS], vecs, got * dim * sizeof *vecs) != 0;
		for (size_t i = 0; i < got; i++) {
			cJSON *o = bad ? NULL : srv_image_json(&rows[i]);
			char *line = o ? cJSON_PrintUnformatted(o) : NULL;
			cJSON_Delete(o);
			if (!bad && (!line || write_all(fd[F_IMAGES], line, strlen(line)) != 0 ||
				     write_all(fd[F_IMAGES], "\n", 1) != 0))
				bad = 1;
			cJSON_free(line);
			store_image_clear(&rows[i]);
		}
		if (bad)
			goto io;
		n += got;
	}
	npy_header(header, n, dim);
	if (pwrite(fd[F_VECTORS], header, sizeof header, 0) != (ssize_t)sizeof header)
		goto io;
	if (model_json(c, n, &model) != 0) {
		fail(msg, len, "out of memory");
		goto out;
	}
	if (write_all(fd[F_MODEL], model, strlen(model)) != 0 || write_all(fd[F_MODEL], "\n", 1) != 0)
		goto io;
	for (int f = 0; f < F_COUNT; f++) {
		if (fsync(fd[f]) != 0)
			goto io;
	}
	for (int f = 0; f < F_COUNT; f++) {
		if (rename(tmp[f], final[f]) != 0) {
			fail(msg, len, "%s: %s", final[f], strerror(errno));
			for (int g = 0; g < f; g++)
				unlink(final[g]);
			goto out;
		}
		tmp[f][0] = '\0';
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	if (count)
		*count = n;
	rc = 0;
	goto out;
io:
	{
		int e = errno ? errno : EIO;
		fail(msg, len, "writing the export into %s: %s", dir, strerror(e));
		if (e == ENOSPC || e == EDQUOT)
			rc = -2;
	}
out:
	for (int f = 0; f < F_COUNT; f++) {
		if (fd[f] >= 0)
			close(fd[f]);
		if (rc != 0 && tmp[f][0])
			unlink(tmp[f]);
	}
	free(model);
	free(vecs);
	free(rows);
	return rc;
}

/* ---- GET /export: the files as a POSIX (ustar) tar ---------------------- */

struct tar_stream {
	int fd[F_COUNT];
	uint64_t size[F_COUNT];
	uint64_t start[F_COUNT];   /* offset of each member's header in the tar */
	uint64_t total;
	int64_t mtime;
};

static uint64_t round512(uint64_t n)
{
	return (n + 511) & ~(uint64_t)511;
}

/* An octal field of width w (w - 1 digits and a NUL), or, for a size too
 * large for it, GNU's base-256 form (a leading 0x80, big-endian). */
static void tar_number(char *field, size_t w, uint64_t v)
{
	if (w >= 12 && v >= (1ULL << 33)) {
		memset(field, 0, w);
		field[0] = (char)0x80;
		for (size_t i = w - 1; i > 0 && v; i--, v >>= 8)
			field[i] = (char)(v & 0xff);
		return;
	}
	field[w - 1] = '\0';
	for (size_t i = w - 1; i > 0; i--, v >>= 3)
		field[i - 1] = (char)('0' + (v & 7));
}

static void tar_header(char h[512], const char *name, uint64_t size, int64_t mtime)
{
	memset(h, 0, 512);
	snprintf(h, 100, "%s", name);
	tar_number(h + 100, 8, 0644);
	tar_number(h + 108, 8, 0);
	tar_number(h + 116, 8, 0);
	tar_number(h + 124, 12, size);
	tar_number(h + 136, 12, (uint64_t)(mtime > 0 ? mtime : 0));
	h[156] = '0';
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += (unsigned char)h[i];
	tar_number(h + 148, 7, sum);   /* six digits, a NUL, then the space kept at 155 */
}

static long tar_read(void *ud, uint64_t pos, char *buf, size_t max)
{
	struct tar_stream *t = ud;
	if (pos >= t->total)
		return -1;
	int f = F_COUNT - 1;
	while (f > 0 && pos < t->start[f])
		f--;
	uint64_t end = t->start[f] + 512 + round512(t->size[f]);
	if (pos >= end) {   /* the two zero blocks that end the archive */
		size_t n = (size_t)(t->total - pos < max ? t->total - pos : max);
		memset(buf, 0, n);
		return (long)n;
	}
	uint64_t off = pos - t->start[f];
	if (off < 512) {
		char h[512];
		tar_header(h, names[f], t->size[f], t->mtime);
		size_t n = 512 - (size_t)off < max ? 512 - (size_t)off : max;
		memcpy(buf, h + off, n);
		return (long)n;
	}
	off -= 512;
	if (off >= t->size[f]) {   /* padding to the block */
		uint64_t left = end - pos;
		size_t n = (size_t)(left < max ? left : max);
		memset(buf, 0, n);
		return (long)n;
	}
	uint64_t left = t->size[f] - off;
	size_t want = (size_t)(left < max ? left : max);
	ssize_t got;
	do
		got = pread(t->fd[f], buf, want, (off_t)off);
	while (got < 0 && errno == EINTR);
	return got > 0 ? (long)got : -1;
}

static void tar_done(void *ud)
{
	struct tar_stream *t = ud;
	for (int f = 0; f < F_COUNT; f++)
		if (t->fd[f] >= 0)
			close(t->fd[f]);
	free(t);
}

/* Write the export into a fresh directory under DATA/tmp, open its files
 * and unlink them at once (the open descriptors keep them until the
 * response ends, and nothing is left behind if clipd dies). */
static int export_tmp(struct srv_app *app, struct tar_stream *t, char *msg, size_t len)
{
	char dir[4096];
	store_error err = { 0 };
	if (catalog_tmp_dir(app->cat, dir, sizeof dir, &err) != 0)
		return fail(msg, len, "%s", err.msg);
	size_t dl = strlen(dir);
	if (dl + 32 >= sizeof dir)
		return fail(msg, len, "%s: path too long", dir);
	memcpy(dir + dl, "/export.XXXXXX", 15);
	if (!mkdtemp(dir))
		return fail(msg, len, "%s: %s", dir, strerror(errno));
	int rc = srv_export_dir(app->cat, dir, NULL, msg, len);
	for (int f = 0; f < F_COUNT; f++) {
		char path[4096 + 32];
		snprintf(path, sizeof path, "%s/%s", dir, names[f]);
		if (rc == 0) {
			t->fd[f] = open(path, O_RDONLY | O_CLOEXEC);
			struct stat st;
			if (t->fd[f] < 0 || fstat(t->fd[f], &st) != 0)
				rc = fail(msg, len, "%s: %s", path, strerror(errno));
			else
				t->size[f] = (uint64_t)st.st_size;
		}
		unlink(path);
	}
	rmdir(dir);
	return rc;
}

void srv_export(struct srv_app *app, struct http_req *r)
{
	struct tar_stream *t = calloc(1, sizeof *t);
	char msg[512] = "";
	if (!t) {
		http_reply_error(r, HTTP_ERR_INTERNAL, "out of memory");
		return;
	}
	for (int f = 0; f < F_COUNT; f++)
		t->fd[f] = -1;
	int rc = export_tmp(app, t, msg, sizeof msg);
	if (rc != 0) {
		log_error("rid=%s: export: %s", r->request_id, msg);
		tar_done(t);
		http_reply_error(r, rc == -2 ? HTTP_ERR_INSUFFICIENT_STORAGE : HTTP_ERR_INTERNAL,
				 "the export could not be written%s", rc == -2 ? ": the disk is full" : "");
		return;
	}
	t->mtime = (int64_t)time(NULL);
	uint64_t pos = 0;
	for (int f = 0; f < F_COUNT; f++) {
		t->start[f] = pos;
		pos += 512 + round512(t->size[f]);
	}
	t->total = pos + 1024;
	const char *h[] = { "Content-Disposition: attachment; filename=\"clipd-export.tar\"", NULL };
	http_reply_stream(r, 200, "application/x-tar", t->total, tar_read, t, tar_done, h);
}
