/*
 * clipd catalog copy's photo libraries (catalog_copy.c copies the images,
 * a library image with its path; this file the rest): the libraries' rows
 * and their files' records, after the images (library_files refer to
 * them), as text rows through the backends' copy_libraries, copy_files
 * and copy_lib_in (store.h, "Photo libraries in a copy"); their
 * verification row by row; and the refusals a library brings (a target
 * that knows a library, a path PostgreSQL cannot hold).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_internal.h"
#include "utf8.h"

static int same_col(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

/* After the images (library_files refer to them): the libraries' rows, then
 * their files in (library, path) order, a batch (--batch files) a
 * transaction, each with
 * the record FILES_KEY saying how far the files are:
 *
 *     start                   the libraries are in, no file yet
 *     after HEXLIB HEXPATH    the files up to this key are in
 *
 * (the key in hex: a path may hold any byte but NUL). */
#define FILES_KEY "copy_files"
#define FILES_BATCH 1000   /* files compared at a time in the verification */

static char *files_state(const char *lib, const char *path)
{
	size_t a = strlen(lib), b = strlen(path);
	char *out = malloc(6 + 2 * a + 1 + 2 * b + 1), *o = out;
	if (!out)
		return NULL;
	o += sprintf(o, "after ");
	for (size_t i = 0; i < a; i++)
		o += sprintf(o, "%02x", (unsigned char)lib[i]);
	*o++ = ' ';
	for (size_t i = 0; i < b; i++)
		o += sprintf(o, "%02x", (unsigned char)path[i]);
	*o = 0;
	return out;
}

/* The hex text of n bytes at s, decoded (malloc'd), or NULL. */
static char *unhex(const char *s, size_t n)
{
	char *out = n % 2 == 0 ? malloc(n / 2 + 1) : NULL;
	for (size_t i = 0; out && i < n / 2; i++) {
		unsigned v = 0;
		if (sscanf(s + 2 * i, "%2x", &v) != 1 || v == 0 || !strchr("0123456789abcdef", s[2 * i]) ||
		    !strchr("0123456789abcdef", s[2 * i + 1])) {
			free(out);
			return NULL;
		}
		out[i] = (char)v;
	}
	if (out)
		out[n / 2] = 0;
	return out;
}

/* Where a copy's files stand on the target: *started 0 (not begun), or 1
 * with *lib, *path the last file copied (NULL: none yet). */
static int files_resume(const struct copy_side *dst, int *started, char **lib, char **path, store_error *err)
{
	char *state = NULL;
	*started = 0;
	*lib = *path = NULL;
	int rc = dst->be->setting_get(dst->db, FILES_KEY, &state, err);
	if (rc != 0 || !state)
		return rc;
	*started = 1;
	const char *sp = strncmp(state, "after ", 6) ? NULL : strchr(state + 6, ' ');
	if (strcmp(state, "start") && sp) {
		*lib = unhex(state + 6, (size_t)(sp - state - 6));
		*path = unhex(sp + 1, strlen(sp + 1));
	}
	if (strcmp(state, "start") && (!*lib || !*path || !**lib)) {
		free(*lib);
		free(*path);
		*lib = *path = NULL;
		rc = store_fail(err, STORE_ERR_INVALID, "%s: its record of the library files copied '%.100s' is not "
				"clipd's", dst->name, state);
	}
	free(state);
	return rc;
}

int copylib_copy(const struct copy_side *src, const struct copy_side *dst, size_t batch,
		 void (*progress)(void *ud, const char *stage, int64_t done, int64_t total), void *ud, store_error *err)
{
	struct store_text_row *libs = NULL, *rows = NULL;
	size_t nlibs = 0, n = 0;
	char *lib = NULL, *path = NULL, *state = NULL;
	int started = 0;
	int64_t files = 0;
	int rc = src->be->copy_libraries(src->db, &libs, &nlibs, err);
	if (rc == 0)
		rc = files_resume(dst, &started, &lib, &path, err);
	if (rc != 0 || (nlibs == 0 && !started))
		goto out;
	if (!started && (rc = dst->be->copy_lib_in(dst->db, libs, nlibs, NULL, 0, FILES_KEY, "start", err)) != 0)
		goto out;
	for (;;) {
		if ((rc = src->be->copy_files(src->db, lib, path, batch, &rows, &n, err)) != 0 || n == 0)
			break;
		const struct store_text_row *last = &rows[n - 1];
		free(state);
		if (!last->col[0] || !last->col[1] || !(state = files_state(last->col[0], last->col[1]))) {
			rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
			break;
		}
		if ((rc = dst->be->copy_lib_in(dst->db, NULL, 0, rows, n, FILES_KEY, state, err)) != 0)
			break;
		free(lib);
		free(path);
		lib = strdup(last->col[0]);
		path = strdup(last->col[1]);
		store_text_rows_free(rows, n);
		rows = NULL;
		if (!lib || !path) {
			rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
			break;
		}
		files += (int64_t)n;
		if (progress)
			progress(ud, "copied library files", files, 0);
		if (n < batch)
			break;
	}
out:
	store_text_rows_free(rows, n);
	store_text_rows_free(libs, nlibs);
	free(lib);
	free(path);
	free(state);
	return rc;
}

static int is_utf8(const char *s)
{
	size_t n = strlen(s), i = 0;
	unsigned cp;
	while (i < n) {
		size_t k = utf8_decode((const unsigned char *)s + i, n - i, &cp);
		if (k == 0)
			return 0;
		i += k;
	}
	return 1;
}

/* s with every byte outside printable ASCII as \xNN, at most about len. */
static void escaped(const char *s, char *out, size_t len)
{
	size_t o = 0;
	for (; *s && o + 5 < len; s++) {
		unsigned char c = (unsigned char)*s;
		o += (size_t)snprintf(out + o, len - o, c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
	}
	out[o] = 0;
}

static const char *what_col(int cols, int c)
{
	if (cols == STORE_LIB_ROW_COLS)
		return c == 0 ? "(its name)" : c == 1 ? "(its folder)" : "(its record)";
	return c == 0 ? "(its library's name)" : c == 1 ? "(its path)" : "(its record)";
}

/* A PostgreSQL catalog's text is UTF-8: a source whose libraries hold a
 * name, path or message that is not is refused before anything is copied
 * (a data directory's library records the path of every file it meets). */
int copylib_fit_postgresql(const struct copy_side *src, store_error *err)
{
	struct store_text_row *rows = NULL;
	size_t n = 0;
	char *lib = NULL, *path = NULL, shown[600];
	int rc = src->be->copy_libraries(src->db, &rows, &n, err), cols = STORE_LIB_ROW_COLS;
	while (rc == 0) {
		for (size_t i = 0; rc == 0 && i < n; i++)
			for (int c = 0; rc == 0 && c < cols; c++)
				if (rows[i].col[c] && !is_utf8(rows[i].col[c])) {
					escaped(rows[i].col[cols == STORE_LIB_ROW_COLS ? 0 : 1], shown, sizeof shown);
					rc = store_fail(err, STORE_ERR_INVALID, "%s: %s '%s' %s is not UTF-8, which a "
							"PostgreSQL catalog cannot hold: rename it, scan the library again, "
							"and copy then", src->name, cols == STORE_LIB_ROW_COLS ? "the library"
							: "the library file", shown, what_col(cols, c));
				}
		if (rc != 0 || (cols == STORE_FILE_ROW_COLS && n < FILES_BATCH))
			break;
		if (cols == STORE_FILE_ROW_COLS) {
			free(lib);
			free(path);
			lib = strdup(rows[n - 1].col[0] ? rows[n - 1].col[0] : "");
			path = strdup(rows[n - 1].col[1] ? rows[n - 1].col[1] : "");
			if (!lib || !path) {
				rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
				break;
			}
		}
		store_text_rows_free(rows, n);
		rows = NULL;
		n = 0;
		cols = STORE_FILE_ROW_COLS;
		rc = src->be->copy_files(src->db, lib, path, FILES_BATCH, &rows, &n, err);
	}
	store_text_rows_free(rows, n);
	free(lib);
	free(path);
	return rc;
}

static int same_rows(const struct store_text_row *a, const struct store_text_row *b, size_t n, int cols)
{
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < cols; c++)
			if (!same_col(a[i].col[c], b[i].col[c]))
				return 0;
	return 1;
}

/* Every library and library file in the target as in the source, column
 * by column, and no other. */
int copylib_verify(const struct copy_side *src, const struct copy_side *dst, int64_t *libraries, int64_t *files,
		   store_error *err)
{
	struct store_text_row *a = NULL, *b = NULL;
	size_t na = 0, nb = 0;
	char *lib = NULL, *path = NULL;
	int rc;
	*libraries = *files = 0;
	if ((rc = src->be->copy_libraries(src->db, &a, &na, err)) != 0 ||
	    (rc = dst->be->copy_libraries(dst->db, &b, &nb, err)) != 0)
		goto out;
	if (na != nb || !same_rows(a, b, na, STORE_LIB_ROW_COLS))
		rc = store_fail(err, STORE_ERR_IO, "verification: the libraries differ in the copy (%zu in the source, "
				"%zu in the copy; did a scan run on the source during the copy?)", na, nb);
	*libraries = (int64_t)nb;
	while (rc == 0) {
		store_text_rows_free(a, na);
		store_text_rows_free(b, nb);
		a = b = NULL;
		na = nb = 0;
		if ((rc = src->be->copy_files(src->db, lib, path, FILES_BATCH, &a, &na, err)) != 0 ||
		    (rc = dst->be->copy_files(dst->db, lib, path, FILES_BATCH, &b, &nb, err)) != 0)
			break;
		if (na != nb || !same_rows(a, b, na, STORE_FILE_ROW_COLS)) {
			rc = store_fail(err, STORE_ERR_IO, "verification: library files after '%.200s' differ in the copy "
					"(did a scan run on the source during the copy?)", path ? path : "");
			break;
		}
		*files += (int64_t)na;
		if (na < FILES_BATCH)
			break;
		free(lib);
		free(path);
		lib = strdup(a[na - 1].col[0] ? a[na - 1].col[0] : "");
		path = strdup(a[na - 1].col[1] ? a[na - 1].col[1] : "");
		if (!lib || !path)
			rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
	}
out:
	store_text_rows_free(a, na);
	store_text_rows_free(b, nb);
	free(lib);
	free(path);
	return rc;
}

int copylib_target_empty(const struct copy_side *dst, store_error *err)
{
	struct store_text_row *libs = NULL;
	size_t nlibs = 0;
	int rc = dst->be->copy_libraries(dst->db, &libs, &nlibs, err);
	if (rc == 0 && nlibs > 0)
		rc = store_fail(err, STORE_ERR_INVALID, "%s is not empty (it knows the photo library '%.100s'): copy into "
				"an empty catalog", dst->name, libs[0].col[0] ? libs[0].col[0] : "");
	store_text_rows_free(libs, nlibs);
	return rc;
}
