/*
 * Files embedded into the binary at build time (tools/embed.c).
 *
 *   const struct clipd_asset *a = clipd_asset_find(clipd_migrations, "0001_init.sql");
 *   if (a) use(a->data, a->len);
 *
 * Tables end with an entry whose name is NULL. Every blob is followed by a
 * NUL byte that `len` does not count. The data is static and read-only.
 */
#ifndef CLIPD_ASSETS_H
#define CLIPD_ASSETS_H

#include <stddef.h>

struct clipd_asset {
	const char *name;
	const unsigned char *data;
	size_t len;
};

const struct clipd_asset *clipd_asset_find(const struct clipd_asset *table, const char *name);

/* The version of a migration file named "NNNN_name.sql" (four digits), or -1. */
int clipd_migration_version(const char *name);

#endif
