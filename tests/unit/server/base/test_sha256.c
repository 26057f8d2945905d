/* SHA-256 against the FIPS 180-4 / NIST example vectors, one-shot and in
 * pieces split at every offset. */
#include "harness.h"
#include "sha256.h"

static void test_known_vectors(void)
{
	char hex[SHA256_HEX];
	sha256_hex("", 0, hex);
	CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256_hex("abc", 3, hex);
	CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	sha256_hex(m448, strlen(m448), hex);
	CHECK_EQ_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
			   "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	sha256_hex(m896, strlen(m896), hex);
	CHECK_EQ_STR(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_million_a(void)
{
	struct sha256_ctx c;
	unsigned char d[SHA256_BYTES], block[1000];
	char hex[SHA256_HEX];
	memset(block, 'a', sizeof block);
	sha256_init(&c);
	for (int i = 0; i < 1000; i++)
		sha256_update(&c, block, sizeof block);
	sha256_final(&c, d);
	sha256_to_hex(d, hex);
	CHECK_EQ_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_split_updates(void)
{
	unsigned char msg[300];
	for (size_t i = 0; i < sizeof msg; i++)
		msg[i] = (unsigned char)(i * 7 + 3);
	for (size_t len = 0; len <= sizeof msg; len += 13) {
		char whole[SHA256_HEX];
		sha256_hex(msg, len, whole);
		for (size_t cut = 0; cut <= len; cut++) {
			struct sha256_ctx c;
			unsigned char d[SHA256_BYTES];
			char hex[SHA256_HEX];
			sha256_init(&c);
			sha256_update(&c, msg, cut);
			sha256_update(&c, msg + cut, len - cut);
			sha256_final(&c, d);
			sha256_to_hex(d, hex);
			if (strcmp(hex, whole) != 0) {
				HARNESS_FAIL("len %zu cut %zu differs", len, cut);
				return;
			}
		}
	}
}

static void test_is_hex(void)
{
	CHECK(sha256_is_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	CHECK(!sha256_is_hex("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
	CHECK(!sha256_is_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85"));
	CHECK(!sha256_is_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555"));
	CHECK(!sha256_is_hex("../../etc/passwd"));
	CHECK(!sha256_is_hex(NULL));
}

int main(void)
{
	RUN(test_known_vectors);
	RUN(test_million_a);
	RUN(test_split_updates);
	RUN(test_is_hex);
	return harness_done();
}
