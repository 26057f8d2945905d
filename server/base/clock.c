/* The server's clocks. See clock.h. */
#include "clock.h"

static double read_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double clock_mono_s(void)
{
	return read_s(CLOCK_MONOTONIC);
}

double clock_thread_cpu_s(void)
{
	return read_s(CLOCK_THREAD_CPUTIME_ID);
}

double clock_boot_s(void)
{
	return read_s(CLOCK_BOOTTIME);
}

int64_t clock_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct timespec clock_wall_deadline(double seconds)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (seconds < 0)
		seconds = 0;
	time_t whole = (time_t)seconds;
	long nanos = (long)((seconds - (double)whole) * 1e9);
	ts.tv_sec += whole;
	ts.tv_nsec += nanos;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}
