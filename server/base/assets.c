#include <string.h>

#include "assets.h"

const struct clipd_asset *clipd_asset_find(const struct clipd_asset *table, const char *name)
{
	for (; table && table->name; table++)
		if (!strcmp(table->name, name))
			return table;
	return NULL;
}
