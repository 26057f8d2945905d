/* The HTTP server's life: start, answer, stop accepting while clients come
 * and go, drain, stop. Over loopback TCP with libmicrohttpd's own threads. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "harness.h"
#include "http.h"
#include "log.h"

struct client {
	unsigned port;
	atomic_int stop;
	atomic_long answered;
};

/* One request on a fresh connection, its answer read, the connection
 * closed by the client: 1 when an HTTP answer came, 0 when the connection
 * was refused or dropped. */
static int one_request(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	struct timeval tv = { 2, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)port) };
	int ok = 0;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
		const char req[] = "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n";
		char buf[512];
		if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1)) {
			ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
			ok = k > 12 && !memcmp(buf, "HTTP/1.1 ", 9);
		}
	}
	close(fd);
	return ok;
}

static void *hammer(void *p)
{
	struct client *c = p;
	while (!atomic_load(&c->stop))
		if (one_request(c->port))
			atomic_fetch_add(&c->answered, 1);
	return NULL;
}

static int refused(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)port) };
	int r = connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno == ECONNREFUSED;
	if (!r) {
		/* TCP lets a socket whose own port happens to be the one it
		 * dials connect to itself: nobody listening either */
		struct sockaddr_in me;
		socklen_t len = sizeof me;
		r = getsockname(fd, (struct sockaddr *)&me, &len) == 0 && me.sin_port == a.sin_port;
	}
	close(fd);
	return r;
}

/* Stopping to accept while the HTTP threads are busy with connections that
 * open and close: libmicrohttpd 0.9.75 with epoll and a thread pool takes
 * the listening socket out of each thread's epoll set from the caller's
 * thread while the thread may be doing the same, and aborts the process
 * when it loses that race (CI saw `clipd serve` end with SIGABRT on
 * SIGTERM: "Failed to remove listen FD from epoll set"). Many rounds, each
 * stopped at a different moment of the clients' traffic; afterwards the
 * port refuses connections. */
static void test_quiesce_under_traffic(void)
{
	const int rounds = 150, clients = 4;
	long total = 0;
	for (int round = 0; round < rounds; round++) {
		struct http_server_params hp = http_default_params();
		((struct sockaddr_in *)&hp.addr)->sin_port = 0;
		hp.threads = 4;
		struct http_server *srv = NULL;
		char msg[256] = "";
		if (http_server_start(&hp, &srv, msg, sizeof msg) != 0) {
			HARNESS_FAIL("start: %s", msg);
			return;
		}
		struct client c = { .port = http_server_port(srv) };
		pthread_t th[4];
		for (int i = 0; i < clients; i++)
			REQUIRE(pthread_create(&th[i], NULL, hammer, &c) == 0);
		/* from no wait at all to a few milliseconds of traffic */
		struct timespec ts = { 0, (long)(round % 16) * 300 * 1000 };
		nanosleep(&ts, NULL);
		http_server_quiesce(srv);
		int refused_now = refused(c.port);
		if (!refused_now)
			fprintf(stderr, "  round %d: the port still took a connection after quiesce\n", round);
		atomic_store(&c.stop, 1);
		for (int i = 0; i < clients; i++)
			pthread_join(th[i], NULL);
		CHECK(http_server_wait_idle(srv, 5.0) == 0);
		http_server_stop(srv);
		CHECK(refused_now);
		total += atomic_load(&c.answered);
	}
	/* the traffic was real: answers came in most rounds */
	CHECK(total > rounds);
	printf("     %d rounds, %ld requests answered\n", rounds, total);
}

int main(void)
{
	log_set_level(LOG_WARN);
	RUN(test_quiesce_under_traffic);
	return harness_done();
}
