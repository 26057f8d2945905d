-- clipd schema, version 4: photo libraries indexed in place (issue 13).
-- Applied by store_open in one transaction; PRAGMA user_version is set by
-- the migration runner (which also applies a lower-numbered migration that
-- arrives later: see server/store/store.c).

-- A library: a folder given to `clipd serve --library`, by its name.
-- scan_seq counts the scans begun (library_files.seen_scan refers to it);
-- last_* describe the last scan that finished.
CREATE TABLE libraries (
	name             TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
	root             TEXT NOT NULL,
	scan_seq         INTEGER NOT NULL DEFAULT 0,
	last_started_at  INTEGER,            -- microseconds since the Unix epoch, UTC
	last_finished_at INTEGER,
	last_added       INTEGER NOT NULL DEFAULT 0,
	last_changed     INTEGER NOT NULL DEFAULT 0,
	last_moved       INTEGER NOT NULL DEFAULT 0,
	last_removed     INTEGER NOT NULL DEFAULT 0,
	last_failed      INTEGER NOT NULL DEFAULT 0
);

-- Every file a scan has met under a library root, by its path relative to
-- the root: its identity when it was last read (an unchanged identity is
-- not read again), the digest of its bytes and the image they are, or why
-- it failed. pending: found new or changed by the running scan and not yet
-- indexed (a scan killed half-way resumes from these). ignored: the image
-- was deleted through the API, so the path is left alone from then on.
CREATE TABLE library_files (
	library    TEXT NOT NULL REFERENCES libraries (name) ON DELETE CASCADE,
	path       TEXT NOT NULL,
	dev        INTEGER,
	ino        INTEGER,
	size       INTEGER,
	mtime_ns   INTEGER,
	sha256     TEXT CHECK (sha256 IS NULL OR length(sha256) = 64),
	image_id   INTEGER REFERENCES images (id) ON DELETE SET NULL,
	ignored    INTEGER NOT NULL DEFAULT 0,
	pending    INTEGER NOT NULL DEFAULT 0,
	seen_scan  INTEGER NOT NULL DEFAULT 0,
	err_code   TEXT,                     -- NULL: no failure
	err_status INTEGER,
	err_msg    TEXT,
	PRIMARY KEY (library, path)
) WITHOUT ROWID;
CREATE INDEX library_files_image ON library_files (image_id) WHERE image_id IS NOT NULL;
CREATE INDEX library_files_pending ON library_files (library, pending, path) WHERE pending = 1;
CREATE INDEX library_files_failed ON library_files (library, path) WHERE err_code IS NOT NULL;

-- Images whose original is a library file (no copy in the data directory):
-- where it is. An image uploaded through the API that is also found in a
-- library keeps its copy and has no row here.
CREATE TABLE library_images (
	image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
	library  TEXT NOT NULL,
	path     TEXT NOT NULL
);
CREATE INDEX library_images_library ON library_images (library);
