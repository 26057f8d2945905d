/*
 * Metadata JSON from a client (an upload's metadata, a PATCH body) against
 * a real SQLite store in a temporary directory: the checks, the canonical
 * form, the merge patch, filter compilation, and the list cursor.
 * Invariants: accepted metadata is strict JSON that cJSON reads back as an
 * object (what every reader gets); its canonical text is a fixed point;
 * what is stored is exactly that text (stored = shown); every top-level
 * string, number or boolean, given as a filter the way a client writes
 * it, matches the image (what filters see = what is shown); a merge
 * result is canonical and within the limits; a refusal says why and
 * changes nothing; a list page under any cursor holds ids below it,
 * newest first.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fuzz.h"
#include "store.h"

#define DIM 4
#define MAX_BYTES 4096
#define MAX_DEPTH 8

static store *st;
static uint64_t serial;
static char dir[] = "/dev/shm/clipd-fuzz-json-XXXXXX";   /* memory: no disk flush per write */

static void cleanup(void)
{
	static const char *const names[] = { "f.db", "f.db-wal", "f.db-shm" };
	char path[96];
	store_close(st);
	st = NULL;
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static const struct store_model model = {
	"f000000000000000000000000000000000000000000000000000000000000000", "fuzz", DIM, "hf" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!mkdtemp(dir)) {
		memcpy(dir, "/tmp/clipd-fuzz-json-XXXXXX", sizeof "/tmp/clipd-fuzz-json-XXXXXX");
		FUZZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	}
	char path[64];
	snprintf(path, sizeof path, "%s/f.db", dir);
	store_error err = { 0 };
	FUZZ_CHECK(store_open(path, NULL, &st, NULL, &err) == 0, "open: %s", err.msg);
	FUZZ_CHECK(store_set_active_model(st, &model, &err) == 0, "model: %s", err.msg);
	atexit(cleanup);   /* libFuzzer ends with exit(), the replay with a return from main */
	return 0;
}

static int64_t insert(const char *metadata)
{
	char sha[65];
	snprintf(sha, sizeof sha, "%064llx", (unsigned long long)++serial);
	struct store_new_image img = { .sha256 = sha, .mime = "image/png", .width = 1, .height = 1, .bytes = 1,
				       .metadata = metadata };
	float vec[DIM] = { 1, 0, 0, 0 };
	int64_t id = 0;
	uint64_t seq = 0;
	store_error err = { 0 };
	FUZZ_CHECK(store_insert(st, &img, vec, DIM, &id, &seq, &err) == 0, "insert %s: %s", metadata, err.msg);
	return id;
}

static void drop(int64_t id)
{
	store_error err = { 0 };
	FUZZ_CHECK(store_delete(st, id, NULL, NULL, &err) == 0, "delete: %s", err.msg);
}

/* Each top-level scalar, as a filter a client would write, finds the image. */
static void check_filters(int64_t id, const char *shown)
{
	cJSON *o = cJSON_Parse(shown);
	FUZZ_CHECK(cJSON_IsObject(o), "cJSON cannot read the stored metadata %s", shown);
	for (cJSON *v = o->child; v; v = v->next) {
		char num[64];
		const char *value = NULL;
		if (cJSON_IsString(v))
			value = v->valuestring;
		else if (cJSON_IsBool(v))
			value = cJSON_IsTrue(v) ? "true" : "false";
		else if (cJSON_IsNumber(v)) {
			snprintf(num, sizeof num, "%.17g", v->valuedouble);   /* any spelling of the number */
			value = num;
		}
		if (!value)
			continue;
		/* the key as a client writes it: a dot or a backslash escaped
		 * (a dot separates path segments) */
		char key[2 * STORE_MAX_FILTER_KEY + 2];
		size_t k = 0;
		for (const char *c = v->string; *c && k + 2 < sizeof key; c++) {
			if (*c == '.' || *c == '\\')
				key[k++] = '\\';
			key[k++] = *c;
		}
		key[k] = 0;
		struct store_filter f = { key, value };
		struct store_selection sel = { .filters = &f, .n_filters = 1 };
		store_error err = { 0 };
		if (store_check_selection(&sel, &err) != 0)
			continue;   /* a key or value no filter may name */
		unsigned char keep = 0;
		FUZZ_CHECK(store_filter_ids(st, &sel, &id, 1, &keep, &err) == 0, "filter: %s", err.msg);
		FUZZ_CHECK(keep == 1, "filter.%s=%s does not find %s", v->string, value, shown);
	}
	cJSON_Delete(o);
}

static void check_list(const uint8_t *data, size_t size)
{
	uint64_t bits = 0;
	for (size_t i = 0; i < 8 && i < size; i++)
		bits = bits << 8 | data[i];
	int64_t cursor = (int64_t)(bits & INT64_MAX);   /* any cursor a client may send */
	struct store_image *items = NULL;
	size_t n = 0;
	store_error err = { 0 };
	if (store_list(st, NULL, cursor, 5, &items, &n, &err) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(cursor == 0 || items[i].id < cursor, "id %lld under cursor %lld", (long long)items[i].id,
			   (long long)cursor);
		FUZZ_CHECK(i == 0 || items[i].id < items[i - 1].id, "not newest first");
	}
	store_images_free(items, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	char *compact = NULL;
	store_error err = { 0 };
	int rc = store_check_metadata(st, text, size, MAX_BYTES, MAX_DEPTH, &compact, &err);
	if (rc != 0) {
		FUZZ_CHECK(rc == STORE_ERR_INVALID || rc == STORE_ERR_TOO_LARGE, "status %d: %s", rc, err.msg);
		FUZZ_CHECK(err.msg[0], "a refusal without a reason");
		FUZZ_CHECK(compact == NULL, "a refusal with a result");
	} else {
		size_t n = strlen(compact);
		FUZZ_CHECK(n <= MAX_BYTES && compact[0] == '{', "accepted %s", compact);
		char *again = NULL;
		FUZZ_CHECK(store_check_metadata(st, compact, n, MAX_BYTES, MAX_DEPTH, &again, &err) == 0,
			   "canonical text refused: %s", err.msg);
		FUZZ_CHECK(!strcmp(again, compact), "not a fixed point: %s -> %s", compact, again);
		free(again);
		int64_t id = insert(compact);
		struct store_image img;
		FUZZ_CHECK(store_get(st, id, &img, &err) == 0, "get: %s", err.msg);
		FUZZ_CHECK(!strcmp(img.metadata, compact), "stored %s, checked %s", img.metadata, compact);
		check_filters(id, img.metadata);
		store_image_clear(&img);
		drop(id);
	}
	free(compact);

	/* the same bytes as a merge patch onto a small object */
	int64_t id = insert("{\"a\":1,\"b\":{\"c\":\"d\"},\"e\":[1,2]}");
	struct store_image before, after;
	FUZZ_CHECK(store_get(st, id, &before, &err) == 0, "get: %s", err.msg);
	rc = store_patch_metadata(st, id, text, size, MAX_BYTES, MAX_DEPTH, &err);
	FUZZ_CHECK(store_get(st, id, &after, &err) == 0, "get: %s", err.msg);
	if (rc != 0) {
		FUZZ_CHECK(rc == STORE_ERR_INVALID || rc == STORE_ERR_TOO_LARGE, "patch status %d: %s", rc, err.msg);
		FUZZ_CHECK(!strcmp(before.metadata, after.metadata), "a refused patch changed %s to %s",
			   before.metadata, after.metadata);
	} else {
		size_t n = strlen(after.metadata);
		FUZZ_CHECK(n <= MAX_BYTES, "merged %zu bytes", n);
		char *again = NULL;
		FUZZ_CHECK(store_check_metadata(st, after.metadata, n, MAX_BYTES, MAX_DEPTH, &again, &err) == 0,
			   "merged text refused: %s", err.msg);
		FUZZ_CHECK(!strcmp(again, after.metadata), "merged text not canonical: %s", after.metadata);
		free(again);
		check_filters(id, after.metadata);
	}
	store_image_clear(&before);
	store_image_clear(&after);
	drop(id);
	check_list(data, size);
	return 0;
}
