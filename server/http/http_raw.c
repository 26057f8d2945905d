/*
 * Writing an answer on a connection's socket ourselves (http_raw.h): a
 * bounded, non-blocking send loop.
 */
#include "http_raw.h"
#include "clock.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#define CHUNK (64u << 10)

/* Send n bytes, waiting for room until deadline. */
static int send_all(int fd, const char *p, size_t n, int more, double deadline)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0));
		if (k > 0) {
			p += k;
			n -= (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0 || errno != EAGAIN)   /* Linux: EWOULDBLOCK is EAGAIN */
			return -1;
		double left = deadline - clock_mono_s();
		if (left <= 0)
			return -1;
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		int ms = (int)(left * 1e3) + 1;
		if (poll(&pf, 1, ms) < 0 && errno != EINTR)
			return -1;
		if (pf.revents & (POLLERR | POLLHUP | POLLNVAL))
			return -1;
	}
	return 0;
}

/* Make room in the kernel for the whole answer when it is larger than the
 * send buffer, so that a client that reads slowly (or only after its
 * request is answered) holds no thread. */
static void grow_sndbuf(int fd, uint64_t total)
{
	int have = 0;
	socklen_t len = sizeof have;
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &len) != 0 || have < 0)
		return;
	uint64_t want = total < HTTP_RAW_SNDBUF_MAX ? total : HTTP_RAW_SNDBUF_MAX;
	/* The kernel reports twice what was set (its bookkeeping). */
	if (want * 2 <= (uint64_t)have)
		return;
	int set = (int)want;
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &set, sizeof set);
}

int http_raw_send(int fd, const void *head, size_t head_len, uint64_t body_len, http_raw_read_fn read,
		  void *ud, double timeout_s)
{
	if (fd < 0)
		return -1;
	double deadline = clock_mono_s() + timeout_s;
	grow_sndbuf(fd, head_len + body_len);
	if (send_all(fd, head, head_len, body_len > 0, deadline) != 0)
		return -1;
	if (!read)
		return body_len ? send_all(fd, ud, (size_t)body_len, 0, deadline) : 0;
	char buf[CHUNK];
	for (uint64_t pos = 0; pos < body_len;) {
		size_t want = body_len - pos < CHUNK ? (size_t)(body_len - pos) : CHUNK;
		long got = read(ud, pos, buf, want);
		if (got <= 0 || (size_t)got > want)
			return -1;
		pos += (uint64_t)got;
		if (send_all(fd, buf, (size_t)got, pos < body_len, deadline) != 0)
			return -1;
	}
	return 0;
}
