/* SQLite as clipd uses it: a file database in WAL mode, a migration applied
 * in one transaction under PRAGMA user_version. */
#include <sqlite3.h>

#include "harness.h"

static sqlite3 *open_db(const char *path)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

static int user_version(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int v = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void test_wal_file_database(void)
{
	char path[600];
	snprintf(path, sizeof path, "%s/wal.db", harness_tmpdir());
	sqlite3 *db = open_db(path);
	REQUIRE(db != NULL);
	sqlite3_stmt *st = NULL;
	REQUIRE(sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) == SQLITE_OK);
	REQUIRE(sqlite3_step(st) == SQLITE_ROW);
	CHECK_EQ_STR((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	CHECK(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (42);", NULL, NULL, NULL) == SQLITE_OK);
	/* The -wal file exists while the connection is open. */
	char wal[620];
	snprintf(wal, sizeof wal, "%s-wal", path);
	struct stat sb;
	CHECK(stat(wal, &sb) == 0);
	sqlite3_close(db);

	/* A second open sees the committed row. */
	db = open_db(path);
	REQUIRE(db != NULL);
	REQUIRE(sqlite3_prepare_v2(db, "SELECT x FROM t", -1, &st, NULL) == SQLITE_OK);
	REQUIRE(sqlite3_step(st) == SQLITE_ROW);
	CHECK_EQ_INT(sqlite3_column_int(st, 0), 42);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Apply `sql` as migration `version` in one transaction; 0 on success. */
static int migrate(sqlite3 *db, int version, const char *sql)
{
	char bump[64];
	snprintf(bump, sizeof bump, "PRAGMA user_version=%d", version);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, bump, NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int table_exists(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	int found = 0;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		found = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return found;
}

static void test_migration_is_atomic(void)
{
	char path[600];
	snprintf(path, sizeof path, "%s/migrate.db", harness_tmpdir());
	sqlite3 *db = open_db(path);
	REQUIRE(db != NULL);
	CHECK_EQ_INT(user_version(db), 0);
	CHECK_EQ_INT(migrate(db, 1, "CREATE TABLE images(id INTEGER PRIMARY KEY AUTOINCREMENT, sha256 TEXT UNIQUE);"), 0);
	CHECK_EQ_INT(user_version(db), 1);
	CHECK(table_exists(db, "images"));

	/* A migration that fails half-way leaves neither its tables nor its version. */
	CHECK(migrate(db, 2, "CREATE TABLE half(x); INSERT INTO nowhere VALUES (1);") != 0);
	CHECK_EQ_INT(user_version(db), 1);
	CHECK(!table_exists(db, "half"));
	sqlite3_close(db);
}

int main(void)
{
	RUN(test_wal_file_database);
	RUN(test_migration_is_atomic);
	return harness_done();
}
