-- clipd schema, version 1. Applied by store_open in one transaction;
-- PRAGMA user_version is set by the migration runner, not here.

-- Models whose vectors are (or were) stored. The active one is named in
-- settings('active_model').
CREATE TABLE models (
	fingerprint TEXT PRIMARY KEY CHECK (length(fingerprint) = 64),
	name        TEXT NOT NULL,
	dim         INTEGER NOT NULL CHECK (dim > 0),
	layout      TEXT NOT NULL,
	created_at  INTEGER NOT NULL
);

-- One row per stored original. AUTOINCREMENT: an id is never reused after
-- a delete (thumbnails, ETags and client links depend on it).
CREATE TABLE images (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	sha256     TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),
	mime       TEXT NOT NULL,
	width      INTEGER NOT NULL CHECK (width > 0),
	height     INTEGER NOT NULL CHECK (height > 0),
	bytes      INTEGER NOT NULL CHECK (bytes >= 0),
	filename   TEXT,
	created_at INTEGER NOT NULL,          -- microseconds since the Unix epoch, UTC
	metadata   TEXT NOT NULL DEFAULT '{}'
	           CHECK (json_valid(metadata) AND json_type(metadata) = 'object')
);
CREATE INDEX images_created_at ON images (created_at);

-- Each image's embedding under a model: float32 little-endian, L2-normalised.
CREATE TABLE vectors (
	image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
	model    TEXT NOT NULL REFERENCES models (fingerprint),
	vec      BLOB NOT NULL,
	PRIMARY KEY (image_id, model)
);
CREATE INDEX vectors_model ON vectors (model, image_id);

-- The change log: every add and remove gets a sequence number; the saved
-- index records the sequence it covers and start-up replays the rest.
-- 'reset' marks a model switch (an index from before cannot be replayed).
-- Entries the saved index covers are pruned; sqlite_sequence keeps the
-- counter, and settings('log_pruned_through') says how far it was pruned.
CREATE TABLE changes (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT,
	op       TEXT NOT NULL CHECK (op IN ('add', 'remove', 'reset')),
	image_id INTEGER NOT NULL
);

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

-- SHA-256 of model files, so that fingerprinting a model at start-up reads
-- the weights only when they changed (path, size, mtime and inode).
CREATE TABLE file_hashes (
	path     TEXT PRIMARY KEY,
	size     INTEGER NOT NULL,
	mtime_ns INTEGER NOT NULL,
	inode    INTEGER NOT NULL,
	sha256   TEXT NOT NULL
);
