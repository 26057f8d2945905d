/*
 * Reading a stored original back, for the commands that go over a data
 * directory's images again (reembed, check --repair). See commands.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "files.h"

/* Originals are far below this (the server's body cap). */
#define CMD_ORIGINAL_MAX ((size_t)1 << 30)

int cmd_read_original(catalog *c, int64_t id, struct store_image *row, unsigned char **bytes,
		      size_t *len, store_error *err)
{
	char path[4200], why[FILES_MSG_MAX];
	*bytes = NULL;
	*len = 0;
	int rc = catalog_get(c, id, row, err);
	if (rc != 0)
		return rc;
	if ((rc = catalog_blob_path(c, row->sha256, path, sizeof path, err)) != 0)
		goto fail;
	if (files_read_all(path, CMD_ORIGINAL_MAX, bytes, len, why, sizeof why) != 0) {
		rc = store_fail(err, STORE_ERR_IO, "cannot read its original: %s", why);
		goto fail;
	}
	return 0;
fail:
	store_image_clear(row);
	return rc;
}
