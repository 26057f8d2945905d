/* Rate limits (token buckets), addresses, trusted proxies, connection counts. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "harness.h"
#include "http_net.h"
#include "http_ratelimit.h"

static void test_token_bucket(void)
{
	struct http_ratelimit *rl = http_ratelimit_new(2, 4, 16);
	REQUIRE(rl);
	double retry;
	/* A burst of 4, then refused. */
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(http_ratelimit_take(rl, "a", 100.0, &retry), 1);
	CHECK_EQ_INT(http_ratelimit_take(rl, "a", 100.0, &retry), 0);
	CHECK_NEAR(retry, 0.5, 1e-9);
	/* Another client is not affected. */
	CHECK_EQ_INT(http_ratelimit_take(rl, "b", 100.0, &retry), 1);
	/* Half a second later one more token. */
	CHECK_EQ_INT(http_ratelimit_take(rl, "a", 100.5, &retry), 1);
	CHECK_EQ_INT(http_ratelimit_take(rl, "a", 100.5, &retry), 0);
	/* Long idle: full bucket again, never more than the burst. */
	int allowed = 0;
	for (int i = 0; i < 10; i++)
		allowed += http_ratelimit_take(rl, "a", 1000.0, &retry);
	CHECK_EQ_INT(allowed, 4);
	/* A clock going backwards adds nothing. */
	CHECK_EQ_INT(http_ratelimit_take(rl, "a", 10.0, &retry), 0);
	http_ratelimit_free(rl);
	CHECK(http_ratelimit_new(0, 1, 16) == NULL);
	CHECK(http_ratelimit_new(1, 0.5, 16) == NULL);
}

static void test_table_is_bounded(void)
{
	/* Far more clients than slots: every new client is admitted (its
	 * slot reused) and the limiter keeps working for a hot client. */
	struct http_ratelimit *rl = http_ratelimit_new(1, 1, 8);
	REQUIRE(rl);
	double retry;
	char name[32];
	for (int i = 0; i < 10000; i++) {
		snprintf(name, sizeof name, "client-%d", i);
		CHECK_EQ_INT(http_ratelimit_take(rl, name, 5.0, &retry), 1);
	}
	CHECK_EQ_INT(http_ratelimit_take(rl, "hot", 6.0, &retry), 1);
	CHECK_EQ_INT(http_ratelimit_take(rl, "hot", 6.0, &retry), 0);
	http_ratelimit_free(rl);
}

static void test_listen_addresses(void)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char msg[256];
	REQUIRE(http_parse_listen("127.0.0.1:0", &ss, &len, msg, sizeof msg) == 0);
	CHECK_EQ_INT(ss.ss_family, AF_INET);
	CHECK_EQ_INT(len, sizeof(struct sockaddr_in));
	REQUIRE(http_parse_listen("[::1]:8080", &ss, &len, msg, sizeof msg) == 0);
	CHECK_EQ_INT(ss.ss_family, AF_INET6);
	CHECK_EQ_INT(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 8080);
	REQUIRE(http_parse_listen(":9000", &ss, &len, msg, sizeof msg) == 0);
	CHECK_EQ_INT(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9000);
	REQUIRE(http_parse_listen("localhost:1", &ss, &len, msg, sizeof msg) == 0);
	CHECK(http_parse_listen("127.0.0.1", &ss, &len, msg, sizeof msg) != 0);
	CHECK(http_parse_listen("127.0.0.1:65536", &ss, &len, msg, sizeof msg) != 0);
	CHECK(http_parse_listen("127.0.0.1:", &ss, &len, msg, sizeof msg) != 0);
	CHECK(http_parse_listen("example.com:80", &ss, &len, msg, sizeof msg) != 0);
	CHECK(http_parse_listen("::1:80", &ss, &len, msg, sizeof msg) != 0);
	CHECK_CONTAINS(msg, "::1:80");
}

static struct sockaddr_storage v4(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;
	a->sin_family = AF_INET;
	inet_pton(AF_INET, text, &a->sin_addr);
	return ss;
}

static struct sockaddr_storage v6(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
	a->sin6_family = AF_INET6;
	inet_pton(AF_INET6, text, &a->sin6_addr);
	return ss;
}

static void test_cidr(void)
{
	struct http_cidr c[3];
	REQUIRE(http_cidr_parse("10.0.0.0/8", &c[0]) == 0);
	REQUIRE(http_cidr_parse("192.168.1.7", &c[1]) == 0);
	REQUIRE(http_cidr_parse("fd00::/8", &c[2]) == 0);
	struct sockaddr_storage a = v4("10.200.3.4"), b = v4("11.0.0.1"), d = v4("192.168.1.7"),
				e = v4("192.168.1.8"), f = v6("fd12::1"), g = v6("::ffff:10.1.1.1"), h = v6("fe80::1");
	CHECK_EQ_INT(http_cidr_match_any(c, 3, (struct sockaddr *)&a), 1);
	CHECK_EQ_INT(http_cidr_match_any(c, 3, (struct sockaddr *)&b), 0);
	CHECK_EQ_INT(http_cidr_match_any(c, 3, (struct sockaddr *)&d), 1);
	CHECK_EQ_INT(http_cidr_match_any(c, 3, (struct sockaddr *)&e), 0);
	CHECK_EQ_INT(http_cidr_match_any(c, 3, (struct sockaddr *)&f), 1);
	CHECK_EQ_INT(http_cidr_match_any(c, 3, (struct sockaddr *)&g), 1);
	CHECK_EQ_INT(http_cidr_match_any(c, 3, (struct sockaddr *)&h), 0);
	struct http_cidr x;
	CHECK(http_cidr_parse("10.0.0.0/33", &x) != 0);
	CHECK(http_cidr_parse("10.0.0.0/", &x) != 0);
	CHECK(http_cidr_parse("nonsense", &x) != 0);
	CHECK(http_cidr_parse("fd00::/129", &x) != 0);
	REQUIRE(http_cidr_parse("10.1.2.3/20", &x) == 0);
	struct sockaddr_storage in = v4("10.1.15.255"), out = v4("10.1.16.0");
	CHECK_EQ_INT(http_cidr_match_any(&x, 1, (struct sockaddr *)&in), 1);
	CHECK_EQ_INT(http_cidr_match_any(&x, 1, (struct sockaddr *)&out), 0);
}

static void test_forwarded_client(void)
{
	struct http_cidr proxies[2];
	http_cidr_parse("127.0.0.1", &proxies[0]);
	http_cidr_parse("10.0.0.0/8", &proxies[1]);
	struct sockaddr_storage proxy = v4("127.0.0.1"), stranger = v4("198.51.100.9");
	char out[HTTP_ADDR_MAX];
	/* Not from a proxy: the header is ignored. */
	http_client_address((struct sockaddr *)&stranger, "203.0.113.7", proxies, 2, out);
	CHECK_EQ_STR(out, "198.51.100.9");
	/* From a proxy: the rightmost untrusted hop. */
	http_client_address((struct sockaddr *)&proxy, "1.1.1.1, 203.0.113.7, 10.2.3.4", proxies, 2, out);
	CHECK_EQ_STR(out, "203.0.113.7");
	http_client_address((struct sockaddr *)&proxy, "203.0.113.7:5555", proxies, 2, out);
	CHECK_EQ_STR(out, "203.0.113.7");
	http_client_address((struct sockaddr *)&proxy, "[2001:db8::1]", proxies, 2, out);
	CHECK_EQ_STR(out, "2001:db8::1");
	/* Garbage stops the walk at the last good hop. */
	http_client_address((struct sockaddr *)&proxy, "203.0.113.7, garbage, 10.9.9.9", proxies, 2, out);
	CHECK_EQ_STR(out, "10.9.9.9");
	http_client_address((struct sockaddr *)&proxy, "garbage", proxies, 2, out);
	CHECK_EQ_STR(out, "127.0.0.1");
	http_client_address((struct sockaddr *)&proxy, NULL, proxies, 2, out);
	CHECK_EQ_STR(out, "127.0.0.1");
	/* No proxies configured: the peer. */
	http_client_address((struct sockaddr *)&proxy, "203.0.113.7", proxies, 0, out);
	CHECK_EQ_STR(out, "127.0.0.1");
	struct sockaddr_storage mapped = v6("::ffff:192.0.2.1");
	http_addr_text((struct sockaddr *)&mapped, out);
	CHECK_EQ_STR(out, "192.0.2.1");
}

static void test_connection_counts(void)
{
	struct http_conncount *cc = http_conncount_new(2);
	REQUIRE(cc);
	CHECK_EQ_INT(http_conncount_allowed(cc, "1.2.3.4", 0), 1);
	CHECK_EQ_INT(http_conncount_add(cc, "1.2.3.4"), 1);
	CHECK_EQ_INT(http_conncount_add(cc, "1.2.3.4"), 2);
	CHECK_EQ_INT(http_conncount_allowed(cc, "1.2.3.4", 0), 0);
	/* the slots kept for health probes above the cap */
	CHECK_EQ_INT(http_conncount_allowed(cc, "1.2.3.4", 1), 1);
	CHECK_EQ_INT(http_conncount_allowed(cc, "5.6.7.8", 0), 1);
	http_conncount_remove(cc, "1.2.3.4");
	CHECK_EQ_INT(http_conncount_allowed(cc, "1.2.3.4", 0), 1);
	CHECK_EQ_INT(http_conncount_get(cc, "1.2.3.4"), 1);
	http_conncount_remove(cc, "1.2.3.4");
	CHECK_EQ_INT(http_conncount_get(cc, "1.2.3.4"), 0);
	http_conncount_remove(cc, "never-seen");
	http_conncount_free(cc);
}

int main(void)
{
	RUN(test_token_bucket);
	RUN(test_table_is_bounded);
	RUN(test_listen_addresses);
	RUN(test_cidr);
	RUN(test_forwarded_client);
	RUN(test_connection_counts);
	return harness_done();
}
