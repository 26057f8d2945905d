/* http_raw_send: the bounded, non-blocking send loop that writes an answer
 * on a connection's socket (over loopback TCP, as the server's). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "harness.h"
#include "clock.h"
#include "http_raw.h"

/* A connected pair over loopback: *server non-blocking (as libmicrohttpd's
 * sockets), *client with a small receive buffer. */
static int tcp_pair(int *server, int *client)
{
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 1) != 0
	    || getsockname(ls, (struct sockaddr *)&a, &len) != 0)
		return -1;
	*client = socket(AF_INET, SOCK_STREAM, 0);
	int small = 4096;
	setsockopt(*client, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	if (connect(*client, (struct sockaddr *)&a, sizeof a) != 0)
		return -1;
	*server = accept(ls, NULL, NULL);
	close(ls);
	if (*server < 0)
		return -1;
	fcntl(*server, F_SETFL, fcntl(*server, F_GETFL) | O_NONBLOCK);
	return 0;
}

struct reader {
	int fd;
	double delay;       /* seconds before the first read */
	unsigned char *got;
	size_t len, cap;
};

static void *read_all(void *p)
{
	struct reader *rd = p;
	struct timespec ts = { (time_t)rd->delay, (long)((rd->delay - (double)(time_t)rd->delay) * 1e9) };
	nanosleep(&ts, NULL);
	for (;;) {
		if (rd->len == rd->cap)
			break;
		ssize_t k = recv(rd->fd, rd->got + rd->len, rd->cap - rd->len < 1000 ? rd->cap - rd->len : 1000, 0);
		if (k <= 0)
			break;
		rd->len += (size_t)k;
	}
	return NULL;
}

/* A body produced in pieces, as http.c's file and stream bodies are. */
static long pattern(void *ud, uint64_t pos, char *buf, size_t max)
{
	(void)ud;
	size_t n = max < 3000 ? max : 3000;   /* short reads too */
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)((pos + i) * 7 % 251);
	return (long)n;
}

static void check_delivery(int direct)
{
	int s, c;
	REQUIRE(tcp_pair(&s, &c) == 0);
	/* far more than both socket buffers: the loop must wait for room */
	size_t body_len = (size_t)(HTTP_RAW_SNDBUF_MAX + (3u << 20));
	char *body = malloc(body_len);
	REQUIRE(body);
	for (size_t i = 0; i < body_len; i++)
		body[i] = (char)(i * 7 % 251);
	const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";
	struct reader rd = { c, 0.2, malloc(sizeof head - 1 + body_len), 0, sizeof head - 1 + body_len };
	REQUIRE(rd.got);
	pthread_t t;
	pthread_create(&t, NULL, read_all, &rd);
	int rc = direct ? http_raw_send(s, head, sizeof head - 1, body_len, NULL, body, 20.0)
			: http_raw_send(s, head, sizeof head - 1, body_len, pattern, NULL, 20.0);
	CHECK_EQ_INT(rc, 0);
	shutdown(s, SHUT_WR);
	pthread_join(t, NULL);
	CHECK_EQ_INT(rd.len, sizeof head - 1 + body_len);
	CHECK(!memcmp(rd.got, head, sizeof head - 1));
	CHECK(!memcmp(rd.got + sizeof head - 1, body, body_len));
	free(rd.got);
	free(body);
	close(s);
	close(c);
}

static void test_large_body_from_memory(void)
{
	check_delivery(1);
}

static void test_large_body_read_in_pieces(void)
{
	check_delivery(0);
}

static void test_small_answer_needs_no_reader(void)
{
	/* An answer the send buffer holds goes at once, with nobody reading. */
	int s, c;
	REQUIRE(tcp_pair(&s, &c) == 0);
	static char body[200000];
	memset(body, 'x', sizeof body);
	double t0 = clock_mono_s();
	CHECK_EQ_INT(http_raw_send(s, "H\r\n\r\n", 5, sizeof body, NULL, body, 5.0), 0);
	CHECK(clock_mono_s() - t0 < 1.0);
	close(s);
	close(c);
}

static void test_client_that_never_reads_is_let_go(void)
{
	int s, c;
	REQUIRE(tcp_pair(&s, &c) == 0);
	size_t body_len = 64u << 20;   /* more than any send buffer */
	double t0 = clock_mono_s();
	CHECK_EQ_INT(http_raw_send(s, "H\r\n\r\n", 5, body_len, pattern, NULL, 0.5), -1);
	double took = clock_mono_s() - t0;
	CHECK(took >= 0.45 && took < 3.0);
	close(s);
	close(c);
}

static long failing(void *ud, uint64_t pos, char *buf, size_t max)
{
	(void)ud;
	(void)buf;
	(void)max;
	return pos < 5000 ? 5000 : -1;   /* a piece, then a failure */
}

static void test_gone_client_and_bad_body(void)
{
	int s, c;
	REQUIRE(tcp_pair(&s, &c) == 0);
	/* a body source that fails: -1, and nothing more is sent */
	CHECK_EQ_INT(http_raw_send(s, "H\r\n\r\n", 5, 100000, failing, NULL, 1.0), -1);
	close(c);
	/* the client gone (reset): -1 soon, no SIGPIPE */
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	static char body[1 << 20];
	int rc = 0;
	for (int i = 0; i < 4 && rc == 0; i++)
		rc = http_raw_send(s, "H\r\n\r\n", 5, sizeof body, NULL, body, 1.0);
	CHECK_EQ_INT(rc, -1);
	close(s);
	CHECK_EQ_INT(http_raw_send(-1, "H", 1, 0, NULL, NULL, 1.0), -1);
}

int main(void)
{
	RUN(test_large_body_from_memory);
	RUN(test_large_body_read_in_pieces);
	RUN(test_small_answer_needs_no_reader);
	RUN(test_client_that_never_reads_is_let_go);
	RUN(test_gone_client_and_bad_body);
	return harness_done();
}
