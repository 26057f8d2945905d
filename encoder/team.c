/*
 * team.c - the encoder's thread team (team.h): persistent workers that
 * wait for the next task by spinning briefly, then sleeping on a futex.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include "internal.h"
#include "team.h"

/* How long a waiting thread spins before it sleeps: long enough to cover
 * the gap between two steps of one forward pass, short enough that an
 * idle team leaves the CPUs to others at once. */
#define SPIN_NS 100000L

struct clip_team {
	int n;                          /* threads, the caller included */
	int started;                    /* workers running */
	pthread_t *threads;
	_Atomic uint32_t gen;           /* futex word: bumped to start a task */
	_Atomic int sleepers;           /* workers asleep on gen */
	_Atomic int pending;            /* workers still in the current task */
	_Atomic uint32_t done;          /* futex word: 1 when pending reaches 0 */
	_Atomic int caller_sleeping;
	clip_task_fn fn;                /* written before gen is bumped */
	void *arg;
	int stop;
};

struct worker_start {
	struct clip_team *team;
	int index;
};

static void futex_wait(_Atomic uint32_t *word, uint32_t val)
{
	syscall(SYS_futex, (uint32_t *)(uintptr_t)word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, (uint32_t *)(uintptr_t)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static long elapsed_ns(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

/* Spin until *word != old or SPIN_NS pass; 1 if it changed. */
static int spin_while_equal(_Atomic uint32_t *word, uint32_t old)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned i = 1;; i++) {
		if (atomic_load_explicit(word, memory_order_acquire) != old)
			return 1;
		cpu_relax();
		if ((i & 127) == 0 && elapsed_ns(&t0) > SPIN_NS)
			return 0;
	}
}

static void *worker_main(void *p)
{
	struct worker_start *ws = p;
	struct clip_team *team = ws->team;
	int index = ws->index;
	free(ws);
	pthread_setname_np(pthread_self(), "encoder");
	uint32_t seen = 0;
	for (;;) {
		if (!spin_while_equal(&team->gen, seen)) {
			atomic_fetch_add(&team->sleepers, 1);
			while (atomic_load(&team->gen) == seen)
				futex_wait(&team->gen, seen);
			atomic_fetch_sub(&team->sleepers, 1);
		}
		seen = atomic_load(&team->gen);
		if (team->stop)
			break;
		team->fn(team->arg, index, team->n);
		if (atomic_fetch_sub(&team->pending, 1) == 1) {
			atomic_store(&team->done, 1);
			if (atomic_load(&team->caller_sleeping))
				futex_wake(&team->done, 1);
		}
	}
	return NULL;
}

/* Start the next task: workers see fn and arg once gen moves. */
static void team_release(struct clip_team *team)
{
	atomic_store(&team->pending, team->started);
	atomic_store(&team->done, team->started ? 0 : 1);
	atomic_fetch_add(&team->gen, 1);
	if (atomic_load(&team->sleepers))
		futex_wake(&team->gen, INT_MAX);
}

static void team_join(struct clip_team *team)
{
	if (spin_while_equal(&team->done, 0))
		return;
	atomic_store(&team->caller_sleeping, 1);
	while (atomic_load(&team->done) == 0)
		futex_wait(&team->done, 0);
	atomic_store(&team->caller_sleeping, 0);
}

void clip_team_run(struct clip_team *team, clip_task_fn fn, void *arg)
{
	if (team->n == 1) {
		fn(arg, 0, 1);
		return;
	}
	team->fn = fn;
	team->arg = arg;
	team_release(team);
	fn(arg, 0, team->n);
	team_join(team);
}

int clip_team_size(const struct clip_team *team)
{
	return team->n;
}

void clip_team_free(struct clip_team *team)
{
	if (!team)
		return;
	if (team->started) {
		team->stop = 1;
		team_release(team);
		for (int i = 0; i < team->started; i++)
			pthread_join(team->threads[i], NULL);
	}
	free(team->threads);
	free(team);
}

int clip_team_new(int n_threads, struct clip_team **out, clip_error *err)
{
	int rc = CLIP_ERR_NOMEM;
	struct clip_team *team = calloc(1, sizeof *team);
	*out = NULL;
	if (!team)
		return clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
	team->n = n_threads;
	team->threads = calloc((size_t)n_threads, sizeof *team->threads);
	if (!team->threads) {
		rc = clip_fail(err, CLIP_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* Workers block every signal: signals are the application's, and go
	 * to its own threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 1; i < n_threads; i++) {
		struct worker_start *ws = malloc(sizeof *ws);
		int e = ws ? 0 : ENOMEM;
		if (ws) {
			ws->team = team;
			ws->index = i;
			e = pthread_create(&team->threads[team->started], NULL, worker_main, ws);
			if (e)
				free(ws);
		}
		if (e) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			rc = clip_fail(err, CLIP_ERR_THREAD, "cannot start worker thread %d of %d: %s", i, n_threads,
				       strerror(e));
			goto out;
		}
		team->started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	*out = team;
	team = NULL;
	rc = 0;
out:
	clip_team_free(team);
	return rc;
}
