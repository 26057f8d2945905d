/*
 * files.h - whole files and path names.
 *
 *     unsigned char *bytes = NULL;
 *     size_t len = 0;
 *     char msg[FILES_MSG_MAX];
 *     if (files_read_all("photo.jpg", 64 << 20, &bytes, &len, msg, sizeof msg) != 0)
 *             die("%s", msg);             // "photo.jpg: 70123456 bytes, over the limit of 67108864"
 *     ...
 *     free(bytes);
 *
 *     char name[256];
 *     files_base_name("models/ViT-B-32/", name, sizeof name);   // "ViT-B-32"
 */
#ifndef CLIPD_FILES_H
#define CLIPD_FILES_H

#include <stddef.h>

/* Room for any message files_read_all writes: the path plus a reason. */
#define FILES_MSG_MAX 4352

enum files_status {
	FILES_OK = 0,
	FILES_ERR_OPEN = -1,      /* missing, unreadable (errno's text in the message) */
	FILES_ERR_TYPE = -2,      /* not a regular file */
	FILES_ERR_TOO_LARGE = -3, /* more than max bytes */
	FILES_ERR_NOMEM = -4,
	FILES_ERR_READ = -5,      /* a read failed or came up short */
};

/*
 * Read the whole regular file at path, of at most max bytes, into *out
 * (malloc'd, owned by the caller; never NULL on success, even for an empty
 * file) and its length into *len. Returns FILES_OK, or a negative
 * files_status with a message naming the path in msg (never cut off when
 * msglen >= FILES_MSG_MAX and the path is at most PATH_MAX).
 */
int files_read_all(const char *path, size_t max, unsigned char **out, size_t *len,
		   char *msg, size_t msglen);

/*
 * The last component of path, trailing slashes dropped, copied into out:
 * "a/b" and "a/b/" both give "b", "/" gives "/", "" gives "". Returns the
 * length of the name, or -1 (out left empty) when it does not fit.
 */
int files_base_name(const char *path, char *out, size_t outlen);

#endif
