/*
 * post-files - an upload load generator that costs the machine little:
 * C connections (one thread each, keep-alive) post the files of a manifest
 * to POST /images, each file once, the body straight from the page cache
 * with sendfile(2). wrk's Lua script reads each file into a string and
 * writes it out, about 21 ms of CPU for a 2.5 MB photo; this client needs
 * about a tenth of that, so on a machine of two cores a benchmark measures
 * the daemon rather than its client.
 *
 *     post-files [--connections C] [--seconds S] [--type MIME]
 *                [--token T] HOST:PORT MANIFEST
 *
 * MANIFEST lists files, one path per line. The run ends when every file
 * was posted or S seconds (default 60) passed: responses that arrive later
 * are not counted. Prints one JSON line, the fields of upload.lua's (wrk)
 * and the client's own CPU time:
 *
 *   {"bench":"upload","client":"post-files","requests","created","not_201",
 *    "seconds","images_per_s","p50_ms","p99_ms","socket_errors",
 *    "client_cpu_ms"}
 *
 * images_per_s counts 201 responses over the run's seconds. A bench tool
 * for the loopback daemon it was pointed at: responses are read within
 * fixed bounds, and anything it does not expect counts as an error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 256
#define MAX_FILES 1000000
#define MAX_HEAD 16384          /* a response's status line and headers */
#define MAX_BODY (1 << 20)      /* a response's body */

static struct {
	struct sockaddr_in addr;
	char host[64];
	const char *type, *token;
	char **files;
	size_t nfiles;
	double t0, deadline;    /* seconds, CLOCK_MONOTONIC */
	atomic_size_t next;
} run;

struct conn_stats {
	long requests, created, not_201, errors;
	double last;            /* when its last counted response arrived */
	double *lat;            /* ms of each counted response */
	size_t nlat, cap;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int connect_once(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, (struct sockaddr *)&run.addr, sizeof run.addr) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_MORE);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int send_file(int sock, int fd, off_t size)
{
	off_t off = 0;
	while (off < size) {
		ssize_t k = sendfile(sock, fd, &off, (size_t)(size - off));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
	}
	return 0;
}

/* Reads one response; its status in *status, and in *keep whether the
 * connection stays open. Bodies of Content-Length only (clipd's are).
 * 0, or -1 on a socket error or a response out of bounds. */
static int read_response(int fd, int *status, int *keep)
{
	static _Thread_local char buf[MAX_HEAD + 1];
	size_t have = 0;
	char *end = NULL;

	while (!end) {
		if (have == MAX_HEAD)
			return -1;
		ssize_t k = recv(fd, buf + have, MAX_HEAD - have, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		have += (size_t)k;
		buf[have] = 0;
		end = strstr(buf, "\r\n\r\n");
	}
	if (sscanf(buf, "HTTP/1.%*d %d", status) != 1)
		return -1;
	long length = -1;
	*keep = 1;
	for (char *line = strstr(buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
		const char *h = line + 2;
		if (!strncasecmp(h, "content-length:", 15))
			length = strtol(h + 15, NULL, 10);
		else if (!strncasecmp(h, "connection:", 11) && strcasestr(h, "close") &&
			 strcasestr(h, "close") < strstr(h, "\r\n"))
			*keep = 0;
	}
	if (length < 0 || length > MAX_BODY)
		return -1;
	size_t body_have = have - (size_t)(end + 4 - buf);
	if (body_have > (size_t)length)
		return -1;  /* no pipelining: nothing may follow the body */
	char sink[65536];
	for (size_t left = (size_t)length - body_have; left > 0;) {
		ssize_t k = recv(fd, sink, left < sizeof sink ? left : sizeof sink, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		left -= (size_t)k;
	}
	return 0;
}

static void record(struct conn_stats *s, double ms)
{
	if (s->nlat == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 256;
		double *p = realloc(s->lat, cap * sizeof *p);
		if (!p)
			return;
		s->lat = p;
		s->cap = cap;
	}
	s->lat[s->nlat++] = ms;
}

static void *connection(void *arg)
{
	struct conn_stats *s = arg;
	int sock = -1;

	for (;;) {
		size_t i = atomic_fetch_add(&run.next, 1);
		if (i >= run.nfiles || now() >= run.deadline)
			break;
		int fd = open(run.files[i], O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0) {
			fprintf(stderr, "post-files: cannot read %s\n", run.files[i]);
			if (fd >= 0)
				close(fd);
			s->errors++;
			continue;
		}
		char head[512];
		int hn = snprintf(head, sizeof head,
				  "POST /images HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
				  "Content-Length: %lld\r\n%s%s%s\r\n",
				  run.host, run.type, (long long)st.st_size,
				  run.token ? "Authorization: Bearer " : "", run.token ? run.token : "",
				  run.token ? "\r\n" : "");
		if (sock < 0)
			sock = connect_once();
		double t = now();
		int status = 0, keep = 0;
		int ok = sock >= 0 && hn > 0 && (size_t)hn < sizeof head &&
			 write_all(sock, head, (size_t)hn) == 0 && send_file(sock, fd, st.st_size) == 0 &&
			 read_response(sock, &status, &keep) == 0;
		double done = now();
		close(fd);
		if (!ok || !keep) {
			if (sock >= 0)
				close(sock);
			sock = -1;
		}
		if (done > run.deadline)
			break;  /* after the end of the run: not counted */
		s->requests++;
		s->last = done;
		if (!ok) {
			s->errors++;
			continue;
		}
		if (status == 201)
			s->created++;
		else
			s->not_201++;
		record(s, (done - t) * 1e3);
	}
	if (sock >= 0)
		close(sock);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double percentile(const double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t k = (size_t)(p / 100 * (double)(n - 1) + 0.5);
	return v[k < n ? k : n - 1];
}

static int load_manifest(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096];

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f) && run.nfiles < MAX_FILES) {
		line[strcspn(line, "\r\n")] = 0;
		if (!line[0])
			continue;
		if (run.nfiles % 1024 == 0) {
			char **p = realloc(run.files, (run.nfiles + 1024) * sizeof *p);
			if (!p)
				break;
			run.files = p;
		}
		if (!(run.files[run.nfiles] = strdup(line)))
			break;
		run.nfiles++;
	}
	fclose(f);
	return run.nfiles > 0 ? 0 : -1;
}

static int usage(void)
{
	fprintf(stderr, "usage: post-files [--connections C] [--seconds S] [--type MIME] "
			"[--token T] HOST:PORT MANIFEST\n");
	return 2;
}

int main(int argc, char **argv)
{
	int conns = 8, a = 1;
	double seconds = 60;

	run.type = "image/jpeg";
	for (; a + 1 < argc && !strncmp(argv[a], "--", 2); a += 2) {
		if (!strcmp(argv[a], "--connections"))
			conns = atoi(argv[a + 1]);
		else if (!strcmp(argv[a], "--seconds"))
			seconds = atof(argv[a + 1]);
		else if (!strcmp(argv[a], "--type"))
			run.type = argv[a + 1];
		else if (!strcmp(argv[a], "--token"))
			run.token = argv[a + 1];
		else
			return usage();
	}
	if (argc - a != 2 || conns < 1 || conns > MAX_CONNECTIONS || !(seconds > 0) ||
	    strpbrk(run.type, "\r\n") || (run.token && strpbrk(run.token, "\r\n")))
		return usage();
	/* HOST:PORT, or a URL http://HOST:PORT[/] */
	const char *hp = argv[a];
	if (!strncmp(hp, "http://", 7))
		hp += 7;
	unsigned port = 0;
	char ip[48];
	if (sscanf(hp, "%47[0-9.]:%u", ip, &port) != 2 || port == 0 || port > 65535 ||
	    inet_pton(AF_INET, ip, &run.addr.sin_addr) != 1) {
		fprintf(stderr, "post-files: '%s' is not an IPv4 HOST:PORT\n", argv[a]);
		return 2;
	}
	run.addr.sin_family = AF_INET;
	run.addr.sin_port = htons((uint16_t)port);
	snprintf(run.host, sizeof run.host, "%s:%u", ip, port);
	if (load_manifest(argv[a + 1]) != 0) {
		fprintf(stderr, "post-files: no files in %s\n", argv[a + 1]);
		return 2;
	}

	pthread_t th[MAX_CONNECTIONS];
	struct conn_stats st[MAX_CONNECTIONS];
	memset(st, 0, sizeof st);
	run.t0 = now();
	run.deadline = run.t0 + seconds;
	int started = 0;
	for (; started < conns; started++)
		if (pthread_create(&th[started], NULL, connection, &st[started]) != 0)
			break;
	long requests = 0, created = 0, not_201 = 0, errors = started < conns;
	double last = run.t0;
	size_t nlat = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		requests += st[i].requests;
		created += st[i].created;
		not_201 += st[i].not_201;
		errors += st[i].errors;
		nlat += st[i].nlat;
		last = st[i].last > last ? st[i].last : last;
	}
	double *lat = malloc((nlat ? nlat : 1) * sizeof *lat);
	size_t k = 0;
	for (int i = 0; i < started; i++) {
		if (lat && st[i].nlat)
			memcpy(lat + k, st[i].lat, st[i].nlat * sizeof *lat);
		k += st[i].nlat;
		free(st[i].lat);
	}
	if (!lat)
		nlat = 0;
	qsort(lat, nlat, sizeof *lat, cmp_double);
	/* The run lasts until the deadline, or until the last response when
	 * the files ran out before it. */
	double secs = (last < run.deadline ? last : run.deadline) - run.t0;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
			(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
	printf("{\"bench\":\"upload\",\"client\":\"post-files\",\"requests\":%ld,\"created\":%ld,"
	       "\"not_201\":%ld,\"seconds\":%.2f,\"images_per_s\":%.2f,\"p50_ms\":%.1f,"
	       "\"p99_ms\":%.1f,\"socket_errors\":%ld,\"client_cpu_ms\":%.0f}\n",
	       requests, created, not_201, secs, secs > 0 ? created / secs : 0.0,
	       percentile(lat, nlat, 50), percentile(lat, nlat, 99), errors, cpu_ms);
	free(lat);
	for (size_t i = 0; i < run.nfiles; i++)
		free(run.files[i]);
	free(run.files);
	return 0;
}
