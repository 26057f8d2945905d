/*
 * srv_export.h - a collection as files other tools read (clip-retrieval,
 * autofaiss, NumPy): the vectors, the image objects and the model.
 *
 *     char msg[256];
 *     uint64_t n;
 *     if (srv_export_dir(cat, "/tmp/out", &n, msg, sizeof msg) != 0)
 *             fprintf(stderr, "%s\n", msg);
 *
 * The files, in one order (ascending id):
 *
 *   vectors.npy    NumPy format 1.0: little-endian float32, shape (n, dim),
 *                  C order, the stored L2-normalised vectors
 *   images.jsonl   one image object per line, as GET /images/{id} shows it
 *   model.json     {"name", "fingerprint", "dim", "layout", "count"}
 *
 * srv_export_dir is `clipd export`; srv_export (the GET /export handler,
 * srv_app.h) writes the same files into the data directory's tmp/ and
 * streams them as an uncompressed POSIX tar, read from the open files, so
 * memory stays bounded whatever the collection's size.
 */
#ifndef CLIPD_SRV_EXPORT_H
#define CLIPD_SRV_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"

#define SRV_EXPORT_VECTORS "vectors.npy"
#define SRV_EXPORT_IMAGES "images.jsonl"
#define SRV_EXPORT_MODEL "model.json"

/* Write the three files into the existing directory dir, each through a
 * temporary name (".NAME.tmp"), fsynced and renamed once all three are
 * complete. *count (may be NULL) is the number of images. 0, or -1 with
 * the reason in msg (temporary files removed), -2 when the disk is full. */
int srv_export_dir(catalog *c, const char *dir, uint64_t *count, char *msg, size_t len);

#endif
