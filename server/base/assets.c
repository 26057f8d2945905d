#include <string.h>

#include "assets.h"

const struct clipd_asset *clipd_asset_find(const struct clipd_asset *table, const char *name)
{
	for (; table && table->name; table++)
		if (!strcmp(table->name, name))
			return table;
	return NULL;
}

int clipd_migration_version(const char *name)
{
	int v = 0, digits = 0;
	for (; name[digits] >= '0' && name[digits] <= '9'; digits++)
		v = v * 10 + (name[digits] - '0');
	if (digits != 4 || name[4] != '_' || !strstr(name, ".sql"))
		return -1;
	return v;
}
