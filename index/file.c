/*
 * file.c - saving and loading an index.
 *
 * The file: a 512-byte header, then FAISS's own serialization of the index
 * (the payload). Header fields are little-endian:
 *
 *     0   8  magic "CLIPDIDX"
 *     8   4  format version (1)
 *     12  4  header size (512)
 *     16  8  dim
 *     24  8  count (vectors)
 *     32  8  seq (the change sequence the index covers)
 *     40  8  trained_n (vectors the approximate index was trained for; 0 if exact)
 *     48  8  payload size in bytes
 *     56  8  payload checksum
 *     64  4  exact (0 or 1)
 *     68  128 model fingerprint, NUL-padded
 *     196 64  type ("Flat" or the factory string), NUL-padded
 *     504 8  header checksum (of bytes 0..503)
 *
 * The payload's checksum is verified before FAISS parses a byte of it, so a
 * damaged file is refused rather than handed to a parser that trusts sizes.
 * Saving writes a temporary file beside the target, fsyncs it, renames it
 * over the target and fsyncs the directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/index_io_c.h>

#include "internal.h"

#define HDR_SIZE 512
#define HDR_VERSION 1
static const char MAGIC[8] = { 'C', 'L', 'I', 'P', 'D', 'I', 'D', 'X' };

/* ---- checksum: 64-bit words, multiply-rotate, streaming ---------------- */

struct hash {
	uint64_t h;
	uint64_t len;
	unsigned char tail[8];
	size_t tail_n;
};

static void hash_init(struct hash *s)
{
	memset(s, 0, sizeof *s);
	s->h = UINT64_C(0x6a09e667f3bcc908);
}

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void hash_word(struct hash *s, uint64_t w)
{
	s->h ^= w * UINT64_C(0x9e3779b97f4a7c15);
	s->h = ((s->h << 31) | (s->h >> 33)) * UINT64_C(0xc2b2ae3d27d4eb4f);
}

static void hash_update(struct hash *s, const void *data, size_t len)
{
	const unsigned char *p = data;
	s->len += len;
	while (s->tail_n && len) {
		s->tail[s->tail_n++] = *p++;
		len--;
		if (s->tail_n == 8) {
			hash_word(s, rd64(s->tail));
			s->tail_n = 0;
		}
	}
	for (; len >= 8; p += 8, len -= 8)
		hash_word(s, rd64(p));
	memcpy(s->tail, p, len);
	s->tail_n += len;
}

static uint64_t hash_final(const struct hash *s)
{
	struct hash t = *s;
	unsigned char last[8] = { 0 };
	memcpy(last, t.tail, t.tail_n);
	hash_word(&t, rd64(last));
	hash_word(&t, t.len);
	uint64_t h = t.h;
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	return h;
}

/* ---- header ------------------------------------------------------------ */

struct header {
	uint64_t dim, count, seq, trained_n, payload_size, payload_hash;
	uint32_t exact;
	char fingerprint[IDX_MAX_FINGERPRINT];
	char type[IDX_MAX_FACTORY];
};

static void put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t idx_checksum(const void *p, size_t n)
{
	struct hash s;
	hash_init(&s);
	hash_update(&s, p, n);
	return hash_final(&s);
}

static void encode_header(const struct header *h, unsigned char *b)
{
	memset(b, 0, HDR_SIZE);
	memcpy(b, MAGIC, 8);
	put32(b + 8, HDR_VERSION);
	put32(b + 12, HDR_SIZE);
	put64(b + 16, h->dim);
	put64(b + 24, h->count);
	put64(b + 32, h->seq);
	put64(b + 40, h->trained_n);
	put64(b + 48, h->payload_size);
	put64(b + 56, h->payload_hash);
	put32(b + 64, h->exact);
	memcpy(b + 68, h->fingerprint, IDX_MAX_FINGERPRINT);
	memcpy(b + 196, h->type, IDX_MAX_FACTORY);
	put64(b + 504, idx_checksum(b, 504));
}

static int decode_header(const unsigned char *b, struct header *h, idx_error *err)
{
	if (memcmp(b, MAGIC, 8) != 0)
		return idx_fail(err, IDX_ERR_CORRUPT, "not a clipd index file");
	if (rd64(b + 504) != idx_checksum(b, 504))
		return idx_fail(err, IDX_ERR_CORRUPT, "index file header is damaged");
	if (rd32(b + 8) != HDR_VERSION || rd32(b + 12) != HDR_SIZE)
		return idx_fail(err, IDX_ERR_CORRUPT, "index file format version %u is not supported", rd32(b + 8));
	h->dim = rd64(b + 16);
	h->count = rd64(b + 24);
	h->seq = rd64(b + 32);
	h->trained_n = rd64(b + 40);
	h->payload_size = rd64(b + 48);
	h->payload_hash = rd64(b + 56);
	h->exact = rd32(b + 64);
	memcpy(h->fingerprint, b + 68, IDX_MAX_FINGERPRINT);
	memcpy(h->type, b + 196, IDX_MAX_FACTORY);
	if (h->fingerprint[IDX_MAX_FINGERPRINT - 1] || h->type[IDX_MAX_FACTORY - 1])
		return idx_fail(err, IDX_ERR_CORRUPT, "index file header is damaged");
	return IDX_OK;
}

/* ---- save -------------------------------------------------------------- */

/* A FILE that writes to fd and checksums on the way (fopencookie). */
struct sink {
	int fd;
	int error;         /* errno of the first failed write */
	struct hash hash;
};

static ssize_t sink_write(void *cookie, const char *buf, size_t size)
{
	struct sink *s = cookie;
	size_t done = 0;
	while (done < size) {
		ssize_t w = write(s->fd, buf + done, size - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (!s->error)
				s->error = errno;
			return -1;
		}
		hash_update(&s->hash, buf + done, (size_t)w);
		done += (size_t)w;
	}
	return (ssize_t)done;
}

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == dir)
		dir[1] = 0;
	else
		*slash = 0;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* The code of a failed write, sync or rename: a full disk or quota is
 * IDX_ERR_NOSPACE, the rest IDX_ERR_IO. */
static int io_code(int e)
{
	return e == ENOSPC || e == EDQUOT ? IDX_ERR_NOSPACE : IDX_ERR_IO;
}

int idx_save(idx *ix, const char *path, const char *fingerprint, idx_error *err)
{
	if (!ix || !path || !*path || !fingerprint)
		return idx_fail(err, IDX_ERR_INVALID, "idx_save: missing argument");
	if (strlen(fingerprint) >= IDX_MAX_FINGERPRINT)
		return idx_fail(err, IDX_ERR_INVALID, "fingerprint longer than %d bytes", IDX_MAX_FINGERPRINT - 1);
	char tmp[PATH_MAX];
	static atomic_uint counter;
	if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(), atomic_fetch_add(&counter, 1)) >= (int)sizeof tmp)
		return idx_fail(err, IDX_ERR_INVALID, "index path too long");

	int rc = IDX_ERR_IO, fd = -1;
	FILE *f = NULL;
	struct sink sink = { .fd = -1 };
	struct header h = { 0 };
	unsigned char hdr[HDR_SIZE];

	/* The read lock keeps changes out while the index is written; searches go on. */
	pthread_rwlock_rdlock(&ix->lock);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		idx_fail(err, rc = io_code(errno), "%s: %s", tmp, strerror(errno));
		goto out;
	}
	memset(hdr, 0, sizeof hdr);
	if (write_all(fd, hdr, sizeof hdr)) {
		idx_fail(err, rc = io_code(errno), "%s: %s", tmp, strerror(errno));
		goto out;
	}
	sink.fd = fd;
	hash_init(&sink.hash);
	cookie_io_functions_t io = { .write = sink_write };
	f = fopencookie(&sink, "w", io);
	if (!f) {
		idx_fail(err, IDX_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (faiss_write_index(ix->cur->index, f)) {
		if (sink.error)
			idx_fail(err, rc = io_code(sink.error), "%s: %s", tmp, strerror(sink.error));
		else
			rc = idx_faiss_fail(err, "writing the index");
		goto out;
	}
	int closed = fclose(f);
	f = NULL;
	if (closed || sink.error) {
		idx_fail(err, rc = io_code(sink.error), "%s: %s", tmp, strerror(sink.error ? sink.error : EIO));
		goto out;
	}
	h.dim = ix->cfg.dim;
	h.count = ix->cur->ids.count;
	h.seq = atomic_load(&ix->seq);
	h.trained_n = ix->cur->trained_n;
	h.payload_size = sink.hash.len;
	h.payload_hash = hash_final(&sink.hash);
	h.exact = (uint32_t)ix->cur->exact;
	snprintf(h.fingerprint, sizeof h.fingerprint, "%s", fingerprint);
	snprintf(h.type, sizeof h.type, "%s", ix->cur->type);
	encode_header(&h, hdr);
	if (pwrite(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) {
		idx_fail(err, rc = io_code(errno), "%s: %s", tmp, strerror(errno ? errno : EIO));
		goto out;
	}
	if (fsync(fd)) {
		idx_fail(err, rc = io_code(errno), "%s: fsync: %s", tmp, strerror(errno));
		goto out;
	}
	int c = close(fd);
	fd = -1;
	if (c) {
		idx_fail(err, rc = io_code(errno), "%s: close: %s", tmp, strerror(errno));
		goto out;
	}
	if (rename(tmp, path)) {
		idx_fail(err, rc = io_code(errno), "rename %s to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	tmp[0] = 0;   /* renamed: nothing to clean up */
	if (fsync_dir_of(path)) {
		idx_fail(err, rc = io_code(errno), "%s: fsync of the directory: %s", path, strerror(errno));
		goto out;
	}
	rc = IDX_OK;
out:
	pthread_rwlock_unlock(&ix->lock);
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (tmp[0] && rc != IDX_OK)
		unlink(tmp);
	return rc;
}

/* ---- load -------------------------------------------------------------- */

static int read_full(int fd, void *buf, size_t n, off_t off)
{
	char *p = buf;
	while (n) {
		ssize_t r = pread(fd, p, n, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = 0;
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

int idx_load(const char *path, const struct idx_params *p, const char *fingerprint, idx **out, idx_error *err)
{
	if (!out)
		return idx_fail(err, IDX_ERR_INVALID, "no output pointer");
	*out = NULL;
	if (!path || !fingerprint)
		return idx_fail(err, IDX_ERR_INVALID, "idx_load: missing argument");
	struct idx_cfg cfg;
	int rc = idx_cfg_from_params(p, &cfg, err);
	if (rc)
		return rc;

	int fd = -1;
	FILE *f = NULL;
	unsigned char *buf = NULL;
	struct idx_gen *g = NULL;
	struct header h;
	unsigned char hdr[HDR_SIZE];
	struct stat st;
	rc = IDX_ERR_IO;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		idx_fail(err, rc, "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = IDX_ERR_CORRUPT;
	if (!S_ISREG(st.st_mode)) {
		idx_fail(err, rc, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_size < HDR_SIZE || read_full(fd, hdr, HDR_SIZE, 0)) {
		idx_fail(err, rc, "%s: truncated (%lld bytes)", path, (long long)st.st_size);
		goto out;
	}
	if (decode_header(hdr, &h, err))
		goto out;
	if (strcmp(h.fingerprint, fingerprint) != 0) {
		rc = idx_fail(err, IDX_ERR_MISMATCH, "%s: built for model %s, not %s", path, h.fingerprint, fingerprint);
		goto out;
	}
	if (h.dim != cfg.dim) {
		rc = idx_fail(err, IDX_ERR_MISMATCH, "%s: dimension %llu, expected %zu", path,
			      (unsigned long long)h.dim, cfg.dim);
		goto out;
	}
	if ((uint64_t)st.st_size - HDR_SIZE != h.payload_size) {
		idx_fail(err, rc, "%s: %lld bytes, the header says %llu", path, (long long)st.st_size,
			 (unsigned long long)(h.payload_size + HDR_SIZE));
		goto out;
	}
	struct idx_family fam;
	idx_error ferr;
	if (idx_parse_factory(h.type, &fam, &ferr) || fam.exact != (h.exact != 0)) {
		idx_fail(err, rc, "%s: unknown index type \"%s\"", path, h.type);
		goto out;
	}

	/* Verify every payload byte before FAISS reads any. */
	enum { CHUNK = 1 << 20 };
	buf = malloc(CHUNK);
	if (!buf) {
		rc = idx_fail(err, IDX_ERR_NOMEM, "out of memory");
		goto out;
	}
	struct hash hs;
	hash_init(&hs);
	for (uint64_t off = 0; off < h.payload_size;) {
		size_t m = h.payload_size - off < CHUNK ? (size_t)(h.payload_size - off) : CHUNK;
		if (read_full(fd, buf, m, (off_t)(HDR_SIZE + off))) {
			if (errno)
				rc = idx_fail(err, IDX_ERR_IO, "%s: %s", path, strerror(errno));
			else
				idx_fail(err, rc, "%s: truncated", path);
			goto out;
		}
		hash_update(&hs, buf, m);
		off += m;
	}
	if (hash_final(&hs) != h.payload_hash) {
		idx_fail(err, rc, "%s: checksum mismatch (the file is damaged)", path);
		goto out;
	}

	f = fdopen(fd, "rb");
	if (!f) {
		rc = idx_fail(err, IDX_ERR_NOMEM, "out of memory");
		goto out;
	}
	fd = -1;   /* the FILE owns it now */
	if (fseeko(f, HDR_SIZE, SEEK_SET)) {
		rc = idx_fail(err, IDX_ERR_IO, "%s: %s", path, strerror(errno));
		goto out;
	}
	g = calloc(1, sizeof *g);
	if (!g) {
		rc = idx_fail(err, IDX_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (faiss_read_index(f, 0, &g->index)) {
		idx_faiss_fail(err, "reading the index");
		if (err)
			err->code = rc;
		goto out;
	}
	g->exact = h.exact != 0;
	g->trained_n = (size_t)h.trained_n;
	snprintf(g->type, sizeof g->type, "%s", h.type);
	if (faiss_Index_d(g->index) != (int)cfg.dim || (uint64_t)faiss_Index_ntotal(g->index) != h.count ||
	    faiss_Index_metric_type(g->index) != METRIC_INNER_PRODUCT ||
	    (g->exact ? !faiss_IndexIDMap2_cast(g->index) : !faiss_IndexIVF_cast(g->index))) {
		idx_fail(err, rc, "%s: the index does not match its header", path);
		goto out;
	}
	if (idx_gen_fill_ids(g, err)) {
		rc = err ? err->code : IDX_ERR_CORRUPT;
		goto out;
	}
	idx_gen_set_nprobe(g, cfg.nprobe);
	rc = idx_wrap(&cfg, g, h.seq, out, err);
	g = NULL;
out:
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	free(buf);
	idx_gen_free(g);
	return rc;
}
