/*
 * errors.c - filling an idx_error: every index/ file reports through these.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <faiss/c_api/error_c.h>

#include "internal.h"

int idx_fail(idx_error *err, int code, const char *fmt, ...)
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

int idx_faiss_fail(idx_error *err, const char *what)
{
	const char *m = faiss_get_last_error();  /* first, before any other FAISS call */
	char copy[200];
	snprintf(copy, sizeof copy, "%s", m && *m ? m : "unknown error");
	/* FAISS's messages span lines (file, line, function): keep the first. */
	char *nl = strchr(copy, '\n');
	if (nl)
		*nl = 0;
	return idx_fail(err, IDX_ERR_FAISS, "%s: %s", what, copy);
}
