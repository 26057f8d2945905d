-- clipd's PostgreSQL catalog, version 1: what migrations/0001..0004 give the
-- SQLite catalog, except libraries and keyword search (not available on
-- PostgreSQL yet). Applied by pgstore_open in one transaction under an
-- advisory lock; clipd_schema records the version.

-- Models whose vectors are (or were) stored; settings('active_model') names
-- the one served.
CREATE TABLE models (
	fingerprint text PRIMARY KEY CHECK (length(fingerprint) = 64),
	name        text NOT NULL,
	dim         integer NOT NULL CHECK (dim > 0),
	layout      text NOT NULL,
	created_at  bigint NOT NULL
);

CREATE TABLE settings (
	key   text PRIMARY KEY,
	value text NOT NULL
);

-- The originals, keyed by their SHA-256: bytea stored EXTERNAL (out of
-- line, uncompressed), so that substring() reads only the TOAST chunks of
-- the piece asked for and an original is served a piece at a time.
CREATE TABLE originals (
	sha256 text PRIMARY KEY CHECK (length(sha256) = 64),
	data   bytea NOT NULL
);
ALTER TABLE originals ALTER COLUMN data SET STORAGE EXTERNAL;

-- One row per image. metadata is the canonical JSON text the API shows
-- (key order kept); meta is the same as jsonb, for filters.
CREATE TABLE images (
	id          bigserial PRIMARY KEY,
	sha256      text NOT NULL UNIQUE REFERENCES originals (sha256),
	mime        text NOT NULL,
	width       integer NOT NULL CHECK (width > 0),
	height      integer NOT NULL CHECK (height > 0),
	bytes       bigint NOT NULL CHECK (bytes >= 0),
	filename    text,
	created_at  bigint NOT NULL,
	metadata    text NOT NULL DEFAULT '{}',
	meta        jsonb GENERATED ALWAYS AS (metadata::jsonb) STORED CHECK (jsonb_typeof(meta) = 'object'),
	taken_at    text CHECK (taken_at IS NULL OR length(taken_at) BETWEEN 20 AND 39),
	taken_at_us bigint CHECK ((taken_at IS NULL) = (taken_at_us IS NULL))
);
CREATE INDEX images_created_at ON images (created_at);
CREATE INDEX images_taken_at ON images (taken_at_us) WHERE taken_at_us IS NOT NULL;
CREATE INDEX images_meta ON images USING gin (meta jsonb_path_ops);

-- Each image's embedding under a model: float32 little-endian, L2-normalised.
CREATE TABLE vectors (
	image_id bigint NOT NULL REFERENCES images (id) ON DELETE CASCADE,
	model    text NOT NULL REFERENCES models (fingerprint),
	vec      bytea NOT NULL,
	PRIMARY KEY (image_id, model)
);
CREATE INDEX vectors_model ON vectors (model, image_id);

-- The change sequence. Every writing transaction takes its number from
-- the one counter row (UPDATE ... RETURNING): the row stays locked until
-- the transaction ends, so numbers are given in commit order and a reader
-- that has seen number N has seen every change up to N (a bigserial would
-- let a later number commit first, and a follower skip the earlier one).
CREATE TABLE clipd_counter (
	id  integer PRIMARY KEY CHECK (id = 1),
	seq bigint NOT NULL
);
INSERT INTO clipd_counter VALUES (1, 0);

CREATE TABLE changes (
	seq      bigint PRIMARY KEY,
	op       text NOT NULL CHECK (op IN ('add', 'remove', 'reset')),
	image_id bigint NOT NULL
);
