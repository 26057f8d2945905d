/*
 * fuzz.h - shared by the fuzz targets (tests/fuzz/fuzz_*.c). Each target
 * defines LLVMFuzzerTestOneInput and checks invariants with FUZZ_CHECK,
 * which aborts (a crash to libFuzzer, a failure to the replay test) with
 * the condition and a message. replay_main.c gives gcc builds a main that
 * replays a corpus; deploy/fuzz.sh links libFuzzer's instead.
 */
#ifndef CLIPD_FUZZ_H
#define CLIPD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
		abort(); \
	} } while (0)

/* A small deterministic generator for choices derived from the input. */
static inline uint64_t fuzz_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static inline uint64_t fuzz_seed(const uint8_t *data, size_t size)
{
	uint64_t h = 1469598103934665603ULL ^ size;
	for (size_t i = 0; i < size && i < 64; i++)
		h = (h ^ data[i]) * 1099511628211ULL;
	return h ? h : 1;
}

/* For parsers that take a path: the input written to path, whole. */
static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	FUZZ_CHECK(fd >= 0, "cannot write %s", path);
	FUZZ_CHECK(write(fd, data, size) == (ssize_t)size, "short write to %s", path);
	close(fd);
}

/* A per-process temporary file name: "/tmp/clipd-fuzz-NAME-PID.EXT". */
static inline void fuzz_temp_path(char *buf, size_t len, const char *name, const char *ext)
{
	snprintf(buf, len, "/tmp/clipd-fuzz-%s-%d.%s", name, (int)getpid(), ext);
}

#endif
