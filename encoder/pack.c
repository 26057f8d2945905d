/*
 * pack.c - the layers' weights repacked for the model's kernel (gemm.h:
 * float32 panels for clip_gemm_packed, bf16 ones for clip_gemm_packed_bf16
 * at bf16 precision), once per model load, and a file cache of the result.
 *
 * Packing writes about as many bytes as the weights into fresh memory,
 * and on a virtual machine the first touch of fresh memory can cost
 * seconds. With a cache directory, the packed weights are also written to
 * a file there, and later loads of the same files map that file instead:
 * its pages are page cache, already there and shared by every process
 * that maps them. A cache file is keyed by the model directory's path and
 * checked against the identity (device, inode, size, mtime) of every
 * config and weight file and the shape of every packed product; any
 * mismatch, short file or error means packing afresh, and the cache is
 * rewritten (to a temporary name, flushed, then renamed over the old one).
 * The two precisions have a file each, and the AVX2 kernel's float32
 * panels (16 columns wide, the AVX-512 kernel's 32) one of their own.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gemm.h"
#include "internal.h"
#include "model.h"
#include "team.h"

/*
 * One weight to pack: w [N, K] (w->f or w->b) into dst, then released for
 * its packed copy: the pages of a tensor used in place from a mapping are
 * given back, a converted copy (owned[owned], or -1) is freed. Jobs of one
 * layer run in order on one thread: OpenAI's in_proj holds q, k and v in
 * one converted buffer, which goes with q (its start), packed after k and v.
 */
struct pack_job {
	struct clip_weight *w;
	size_t N, K;
	int layer;      /* which thread packs it: layer mod threads */
	int in_map;
	ptrdiff_t owned;
	void *dst;
};

/* Bytes of a job's packed copy: a multiple of 64 (a panel of 16 or 32
 * columns of float32, or of 32 bf16 pairs), so that every packed weight stays
 * 64-byte aligned after the one before. */
static size_t packed_bytes(const clip_model *m, const struct pack_job *job)
{
	return m->precision == CLIP_PRECISION_BF16 ? clip_gemm_packed_bf16_elems(job->N, job->K) * sizeof(uint16_t)
						   : clip_gemm_packed_floats(m->kernel, job->N, job->K) * sizeof(float);
}

/* The source of a job: its first byte. */
static const char *job_src(const struct pack_job *job)
{
	return job->w->f ? (const char *)job->w->f : (const char *)job->w->b;
}

static size_t tower_jobs(struct clip_layer *L, const struct clip_tower_arch *a, struct pack_job *jobs)
{
	size_t n = 0, W = (size_t)a->width, F = (size_t)a->mlp;
	for (int i = 0; i < a->layers; i++, n += 6) {
		struct clip_layer *l = &L[i];
		if (!jobs)
			continue;
		jobs[n + 0] = (struct pack_job){ &l->k, W, W, i, 0, -1, NULL };
		jobs[n + 1] = (struct pack_job){ &l->v, W, W, i, 0, -1, NULL };
		jobs[n + 2] = (struct pack_job){ &l->q, W, W, i, 0, -1, NULL };
		jobs[n + 3] = (struct pack_job){ &l->o, W, W, i, 0, -1, NULL };
		jobs[n + 4] = (struct pack_job){ &l->fc1, F, W, i, 0, -1, NULL };
		jobs[n + 5] = (struct pack_job){ &l->fc2, W, F, i, 0, -1, NULL };
	}
	return n;
}

/* The whole pages inside [p, p + bytes) of a mapping: given back (clean
 * file pages; touching them again would read them back in). */
static void drop_pages(const void *p, size_t bytes)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), b = ((uintptr_t)p + bytes) & ~(pg - 1);
	if (b > a)
		madvise((void *)a, b - a, MADV_DONTNEED);
}

static void release(clip_model *m, struct pack_job *job, const void *packed)
{
	if (job->in_map) {
		drop_pages(job_src(job), job->N * job->K * (job->w->f ? sizeof(float) : sizeof(uint16_t)));
	} else if (job->owned >= 0) {
		free(m->owned[job->owned]);
		m->owned[job->owned] = NULL;
	}
	job->w->packed = packed;
	job->w->f = NULL;
	job->w->b = NULL;
}

struct pack_run {
	clip_model *m;
	struct pack_job *jobs;
	size_t n;
};

static void task_pack(void *arg, int i, int n)
{
	struct pack_run *r = arg;
	for (size_t j = 0; j < r->n; j++) {
		struct pack_job *job = &r->jobs[j];
		if (job->layer % n != i)
			continue;
		if (r->m->precision == CLIP_PRECISION_BF16)
			clip_gemm_pack_bf16(job->N, job->K, job->w->f, job->w->b, job->K, job->dst);
		else
			clip_gemm_pack(r->m->kernel, job->N, job->K, job->w->f, job->K, job->dst);
		release(r->m, job, job->dst);
	}
}

/* ---- the cache file ------------------------------------------------------ */

#define CACHE_MAGIC "clipdpk1"       /* a new one for any change of the packed layout or job order */
#define CACHE_MAGIC_BF16 "clipdbf1"  /* the same for the bf16 panels */
#define CACHE_DATA 4096         /* the packed floats start here (page-aligned) */

struct file_id {
	uint64_t dev, ino, size, mtime_ns;
};

/* The header: what the packed data was made from. Compared byte for byte. */
struct cache_key {
	char magic[8];
	uint32_t panel, n_files;
	uint64_t floats, shapes;        /* total packed bytes / 4; a hash of every job's N, K */
	struct file_id files[(CACHE_DATA - 32) / sizeof(struct file_id)];
};

_Static_assert(sizeof(struct cache_key) <= CACHE_DATA, "cache header past the data");

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	return h;
}

/* 0, or -1 if a file cannot be identified (then there is no cache). */
static int make_key(const clip_model *m, const struct pack_job *jobs, size_t n, size_t floats,
		    struct cache_key *key)
{
	memset(key, 0, sizeof *key);
	memcpy(key->magic, m->precision == CLIP_PRECISION_BF16 ? CACHE_MAGIC_BF16 : CACHE_MAGIC, sizeof key->magic);
	key->panel = (uint32_t)clip_gemm_panel(m->kernel);
	key->floats = floats;
	key->shapes = 14695981039346656037ull;
	for (size_t j = 0; j < n; j++) {
		uint64_t nk[2] = { jobs[j].N, jobs[j].K };
		key->shapes = fnv1a(key->shapes, nk, sizeof nk);
	}
	if (m->n_files > sizeof key->files / sizeof key->files[0])
		return -1;
	key->n_files = (uint32_t)m->n_files;
	for (size_t i = 0; i < m->n_files; i++) {
		struct stat st;
		if (stat(m->files[i], &st) != 0)
			return -1;
		key->files[i] = (struct file_id){ (uint64_t)st.st_dev, (uint64_t)st.st_ino, (uint64_t)st.st_size,
						  (uint64_t)st.st_mtim.tv_sec * 1000000000u +
							  (uint64_t)st.st_mtim.tv_nsec };
	}
	return 0;
}

/* cache_dir/packed-<hash of the model directory's real path>.bin, or
 * -bf16.bin for the bf16 panels, -avx2.bin for the AVX2 kernel's */
static int cache_path(const char *cache_dir, const char *model_dir, const clip_model *m, char *out, size_t len)
{
	char real[PATH_MAX];
	if (!realpath(model_dir, real))
		return -1;
	uint64_t h = fnv1a(14695981039346656037ull, real, strlen(real));
	int w = snprintf(out, len, "%s/packed-%016llx%s.bin", cache_dir, (unsigned long long)h,
			 m->precision == CLIP_PRECISION_BF16 ? "-bf16" : m->kernel == CLIP_KERNEL_AVX2 ? "-avx2" : "");
	return w > 0 && (size_t)w < len ? 0 : -1;
}

/* The cache file mapped when it matches key: its data, or NULL. */
static const char *cache_map(const char *path, const struct cache_key *key, void **map, size_t *map_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct cache_key got;
	struct stat st;
	size_t len = CACHE_DATA + key->floats * sizeof(float);
	void *p = MAP_FAILED;
	if (pread(fd, &got, sizeof got, 0) == (ssize_t)sizeof got && !memcmp(&got, key, sizeof got) &&
	    fstat(fd, &st) == 0 && (uint64_t)st.st_size == len)
		p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, len, MADV_HUGEPAGE);
	*map = p;
	*map_len = len;
	return (const char *)p + CACHE_DATA;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *b = p;
	while (n) {
		ssize_t w = write(fd, b, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* mkdir -p dir: 0, or -1. */
static int make_dirs(const char *dir)
{
	char p[PATH_MAX];
	size_t n = strlen(dir);
	if (n == 0 || n >= sizeof p)
		return -1;
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			return -1;
		p[i] = c;
	}
	return 0;
}

/* Write the cache file (best effort: a cache that cannot be written is
 * only a slower next load). The directory is created if missing. */
static void cache_write(const char *cache_dir, const char *path, const struct cache_key *key, const void *data)
{
	char tmp[PATH_MAX + 96];
	if (make_dirs(cache_dir) != 0)
		return;
	if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
		return;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	static const char pad[CACHE_DATA];
	/* on disk before it has its name: after a crash the name holds the
	 * whole file or none (a same-sized file of zeros would pass the key) */
	int ok = write_all(fd, key, sizeof *key) == 0 && write_all(fd, pad, CACHE_DATA - sizeof *key) == 0 &&
		 write_all(fd, data, key->floats * sizeof(float)) == 0 && fsync(fd) == 0;
	/* Out of the page cache again: the next load reads it back through a
	 * huge-page mapping, whose readahead fills the cache with 2 MiB folios
	 * that map whole (the 4 KiB ones written here cost a few percent of
	 * speed in TLB misses; measured 0.02 s to map and touch 470 MB). */
	if (ok)
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return;
	}
	int dfd = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
}

/* ---- packing ------------------------------------------------------------- */

int clip_model_pack(clip_model *m, const char *model_dir, const char *cache_dir, clip_error *err)
{
	const struct clip_arch *a = &m->arch;
	if (m->kernel == CLIP_KERNEL_BLAS)
		return 0;
	size_t nv = tower_jobs(m->vis_layers, &a->vision, NULL), nt = tower_jobs(m->txt_layers, &a->text, NULL);
	size_t n = nv + nt + 1, total = 0;
	struct pack_job *jobs = calloc(n, sizeof *jobs);
	if (!jobs)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
	tower_jobs(m->vis_layers, &a->vision, jobs);
	tower_jobs(m->txt_layers, &a->text, jobs + nv);
	for (size_t j = nv; j < n - 1; j++)
		jobs[j].layer += a->vision.layers;
	jobs[n - 1] = (struct pack_job){ &m->patch, (size_t)a->vision.width,
					 3 * (size_t)a->patch_size * (size_t)a->patch_size, 0, 0, -1, NULL };
	for (size_t j = 0; j < n; j++)
		total += packed_bytes(m, &jobs[j]) / sizeof(float);
	for (size_t j = 0; j < n; j++) {
		const char *c = job_src(&jobs[j]);
		for (size_t i = 0; i < m->n_shards; i++) {
			const char *map = m->shards[i]->map;
			jobs[j].in_map |= c >= map && c < map + m->shards[i]->map_len;
		}
		for (size_t i = 0; i < m->n_owned; i++)
			if ((const char *)m->owned[i] == c)
				jobs[j].owned = (ptrdiff_t)i;
	}

	struct cache_key *key = NULL;
	char path[PATH_MAX + 64] = "";
	int cached = 0;
	if (cache_dir && *cache_dir && (key = malloc(sizeof *key)) &&
	    (make_key(m, jobs, n, total, key) != 0 ||
	     cache_path(cache_dir, model_dir, m, path, sizeof path) != 0)) {
		free(key);
		key = NULL;
	}
	const char *data = key ? cache_map(path, key, &m->pack_map, &m->pack_map_len) : NULL;
	struct clip_team *team = NULL;
	int rc = 0;
	if (data) {
		/* the originals were never touched: they go as they are */
		for (size_t j = 0, off = 0; j < n; j++) {
			release(m, &jobs[j], data + off);
			off += packed_bytes(m, &jobs[j]);
		}
		cached = 1;
		goto out;
	}

	/* 2 MiB aligned and offered as huge pages: fewer TLB misses while a
	 * pass streams the weights, and far fewer page faults here */
	size_t huge = (size_t)2 << 20, bytes = (total * sizeof(float) + huge - 1) / huge * huge;
	void *buf = NULL;
	if (posix_memalign(&buf, huge, bytes)) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory packing %zu MB of weights", bytes >> 20);
		goto out;
	}
	madvise(buf, bytes, MADV_HUGEPAGE);
	m->pack = buf;
	for (size_t j = 0, off = 0; j < n; j++) {
		jobs[j].dst = (char *)m->pack + off;
		off += packed_bytes(m, &jobs[j]);
	}
	/* on two threads: most of the cost is the kernel providing the fresh pages */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if ((rc = clip_team_new(cpus > 1 ? 2 : 1, &team, err)))
		goto out;
	struct pack_run run = { m, jobs, n };
	clip_team_run(team, task_pack, &run);
out:
	if (rc == 0 && key && !cached)
		cache_write(cache_dir, path, key, m->pack);
	clip_team_free(team);
	free(key);
	free(jobs);
	return rc;
}
