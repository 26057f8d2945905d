/*
 * srv_library.h - photo libraries: folders indexed in place, kept in step
 * by a scanner thread (at start, every --library-rescan seconds, and on
 * POST /libraries/{name}/scan).
 *
 *     struct srv_libraries *libs = NULL;
 *     if (srv_libraries_start(app, cfg->libraries, cfg->n_libraries, &libs, msg, sizeof msg) != 0)
 *             die("%s", msg);
 *     srv_libraries_request_scan(libs, "photos");      // 0, or -1: no such library
 *     struct srv_library_status st;
 *     srv_libraries_status(libs, 0, &st);              // for GET /libraries and /metrics
 *     srv_libraries_stop(libs);                        // before the encoder stops
 *
 * A scan, one library at a time:
 *   1. The root must be a readable directory with at least one entry;
 *      otherwise the library is "offline" and nothing changes (an
 *      unmounted disk deletes nothing).
 *   2. Walk: an explicit stack of directories (no recursion), entries
 *      read in batches. Hidden names (a leading '.') are skipped; symbolic
 *      links are not followed (counted, and logged); a directory that
 *      cannot be read keeps everything recorded under it. Each file's
 *      identity (device, inode, size, mtime in ns) is compared with the
 *      catalog's: unchanged files are only marked seen, new or changed ones
 *      are recorded as pending, a file modified in the last
 *      --library-settle seconds waits for the next scan.
 *   3. Index the pending files from the catalog, in path order: read
 *      (at most --max-body), hash; bytes already stored become a link (a
 *      move or a copy keeps the image's id and metadata); new bytes go
 *      through the upload path's checks, decode budget and batcher, and
 *      are committed a batch at a time. A file whose pixels changed keeps
 *      its image id. Failures are recorded with the API's error code.
 *      Everything committed is durable: a scan killed here resumes from
 *      the files still pending.
 *   4. Only after the whole tree was walked and every pending file
 *      indexed: paths not seen are forgotten and images left without a
 *      file are removed (catalog_library_finish).
 * The scanner yields to interactive work: it keeps at most a window of
 * images in the encoder, submits none while uploads are queued there, and
 * runs at a lower CPU priority.
 */
#ifndef CLIPD_SRV_LIBRARY_H
#define CLIPD_SRV_LIBRARY_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "srv_config.h"

struct srv_app;
struct srv_libraries;

/* WAITING ("queued"): another node of a shared catalog is scanning the
 * library; this one scans after it. */
enum srv_library_state { SRV_LIBRARY_IDLE, SRV_LIBRARY_SCANNING, SRV_LIBRARY_OFFLINE, SRV_LIBRARY_WAITING };

/* One library as GET /libraries shows it. */
struct srv_library_status {
	char name[SRV_LIBRARY_NAME_MAX + 1];
	char root[4096];
	enum srv_library_state state;
	char offline_reason[4400];       /* why, when offline */
	/* the running scan, or the last one */
	int walking;                     /* still walking the tree (to_index still growing) */
	int64_t files_seen, to_index, indexed_this_scan, unchanged, waiting, failed_this_scan;
	int64_t symlinks_skipped, dirs_unreadable;
	double rate_per_s;               /* files indexed per second in this scan */
	double eta_s;                    /* -1: unknown */
	/* the catalog's figures */
	int64_t images, files_failed, bytes;
	struct store_library last;       /* the last finished scan (last.root not filled) */
	/* totals since start-up, for /metrics */
	uint64_t scans, files_indexed, encoded;
};

/* Record each library in the catalog and start the scanner (which scans
 * them all at once). n may be 0: then *out is a set without libraries. */
int srv_libraries_start(struct srv_app *app, const struct srv_library_spec *specs, size_t n,
			struct srv_libraries **out, char *msg, size_t msglen);
/* Stop the scanner (a scan in progress stops between files; what it
 * committed stays), free everything. NULL is fine. */
void srv_libraries_stop(struct srv_libraries *l);

size_t srv_libraries_count(const struct srv_libraries *l);
/* The index of a library by name, or -1. */
int srv_libraries_find(const struct srv_libraries *l, const char *name);
/* Ask for a scan (now, or right after the running one). 0, or -1 for no such library. */
int srv_libraries_request_scan(struct srv_libraries *l, size_t i);
/* A copy of library i's status. */
void srv_libraries_status(struct srv_libraries *l, size_t i, struct srv_library_status *out);

#endif
