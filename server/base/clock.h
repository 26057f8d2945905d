/*
 * clock.h - the server's clocks, one function each:
 *
 *     double t0 = clock_mono_s();                  // intervals, timeouts
 *     ...
 *     log_info("took %.1f ms", (clock_mono_s() - t0) * 1e3);
 *     img.created_at = clock_wall_us();            // timestamps that are stored
 *
 * The monotonic clock never jumps (intervals, deadlines, rates); the wall
 * clock is what a person reads (stored times, logs), and may jump.
 */
#ifndef CLIPD_CLOCK_H
#define CLIPD_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in seconds. */
double clock_mono_s(void);
/* CLOCK_REALTIME in microseconds since the Unix epoch. */
int64_t clock_wall_us(void);
/* This thread's CPU time in seconds (CLOCK_THREAD_CPUTIME_ID). */
double clock_thread_cpu_s(void);
/* CLOCK_BOOTTIME in seconds (counts suspend; /proc's process start times use it). */
double clock_boot_s(void);
/* CLOCK_REALTIME seconds from now, as the absolute struct timespec that
 * pthread_cond_timedwait takes. */
struct timespec clock_wall_deadline(double seconds);

#endif
