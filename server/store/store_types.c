/*
 * The plain values every store backend shares: failures, status names,
 * image rows. See store_types.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_types.h"

int store_fail(store_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

const char *store_status_name(int status)
{
	switch (status) {
	case STORE_OK: return "ok";
	case STORE_ERR_INVALID: return "bad_parameter";
	case STORE_ERR_NOMEM: return "out_of_memory";
	case STORE_ERR_IO: return "io_error";
	case STORE_ERR_NOSPACE: return "insufficient_storage";
	case STORE_ERR_NOT_FOUND: return "not_found";
	case STORE_ERR_DB: return "database_error";
	case STORE_ERR_LOCKED: return "data_dir_locked";
	case STORE_ERR_SCHEMA: return "schema_version";
	case STORE_ERR_MODEL: return "model_mismatch";
	case STORE_ERR_INDEX: return "index_error";
	case STORE_ERR_TOO_LARGE: return "metadata_too_large";
	case STORE_ERR_EXISTS: return "exists";
	case STORE_ERR_UNAVAILABLE: return "catalog_unavailable";
	default: return "internal_error";
	}
}

void store_image_clear(struct store_image *img)
{
	if (!img)
		return;
	free(img->filename);
	free(img->metadata);
	free(img->source_library);
	free(img->source_path);
	memset(img, 0, sizeof *img);
}

void store_images_free(struct store_image *imgs, size_t n)
{
	if (!imgs)
		return;
	for (size_t i = 0; i < n; i++)
		store_image_clear(&imgs[i]);
	free(imgs);
}

void store_library_clear(struct store_library *l)
{
	if (!l)
		return;
	free(l->root);
	memset(l, 0, sizeof *l);
}

void store_lib_files_free(struct store_lib_file *f, size_t n)
{
	if (!f)
		return;
	for (size_t i = 0; i < n; i++)
		free(f[i].path);
	free(f);
}

void store_lib_errors_free(struct store_lib_error *e, size_t n)
{
	if (!e)
		return;
	for (size_t i = 0; i < n; i++) {
		free(e[i].path);
		free(e[i].code);
		free(e[i].msg);
	}
	free(e);
}
