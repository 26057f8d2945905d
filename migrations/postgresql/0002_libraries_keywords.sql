-- clipd's PostgreSQL catalog, version 2: photo libraries and keyword search,
-- what migrations/0003..0005 give the SQLite catalog, with the same meaning
-- (see README "Photo libraries" and "Keywords and hybrid search").

-- A library image's original is its file, not a row of originals: an image
-- no longer needs one (an upload still stores its bytes there).
ALTER TABLE images DROP CONSTRAINT images_sha256_fkey;

-- A library: a folder given to `clipd serve --library`, by its name. id is
-- the key of the advisory lock that lets one node at a time scan it
-- (pg_try_advisory_lock(1668049264, id), held by the scanning node's session).
-- scan_seq counts the scans begun; last_* describe the last finished scan.
CREATE TABLE libraries (
	name             text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
	id               integer GENERATED ALWAYS AS IDENTITY UNIQUE,
	root             text NOT NULL,
	scan_seq         bigint NOT NULL DEFAULT 0,
	last_started_at  bigint,            -- microseconds since the Unix epoch, UTC
	last_finished_at bigint,
	last_added       bigint NOT NULL DEFAULT 0,
	last_changed     bigint NOT NULL DEFAULT 0,
	last_moved       bigint NOT NULL DEFAULT 0,
	last_removed     bigint NOT NULL DEFAULT 0,
	last_failed      bigint NOT NULL DEFAULT 0
);

-- Every file a scan has met under a library root, by its path relative to
-- the root (byte order, as SQLite's): its identity when last read, the
-- digest and the image it is, or why it failed; pending: to be indexed by
-- the running scan; ignored: its image was deleted through the API.
CREATE TABLE library_files (
	library    text NOT NULL REFERENCES libraries (name) ON DELETE CASCADE,
	path       text COLLATE "C" NOT NULL,
	dev        bigint,
	ino        bigint,
	size       bigint,
	mtime_ns   bigint,
	sha256     text CHECK (sha256 IS NULL OR length(sha256) = 64),
	image_id   bigint REFERENCES images (id) ON DELETE SET NULL,
	ignored    boolean NOT NULL DEFAULT false,
	pending    boolean NOT NULL DEFAULT false,
	seen_scan  bigint NOT NULL DEFAULT 0,
	err_code   text,                     -- NULL: no failure
	err_status integer,
	err_msg    text,
	PRIMARY KEY (library, path)
);
CREATE INDEX library_files_image ON library_files (image_id) WHERE image_id IS NOT NULL;
CREATE INDEX library_files_pending ON library_files (library, path) WHERE pending;
CREATE INDEX library_files_failed ON library_files (library, path) WHERE err_code IS NOT NULL;

-- Images whose original is a library file: where it is.
CREATE TABLE library_images (
	image_id bigint PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
	library  text NOT NULL,
	path     text COLLATE "C" NOT NULL
);
CREATE INDEX library_images_library ON library_images (library);

-- Keywords. What FTS5's unicode61 tokenizer (remove_diacritics 2) makes of
-- a text, as near as PostgreSQL spells it: decomposed, diacritics removed,
-- lower-cased by ICU's rules whatever the database's locale, and every run
-- of characters that are neither letters nor digits a separator. The
-- 'simple' configuration then takes each word as it is (no stemming).
CREATE FUNCTION clipd_words(t text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT regexp_replace(lower(regexp_replace(normalize(t, NFD), '[\u0300-\u036f]+', '', 'g')
		COLLATE "und-x-icu"), '[^[:alnum:]]+', ' ', 'g')
$$;

-- An image's keyword text: its filename, every string value of its
-- metadata at any depth (not keys, not numbers), and every library path
-- that is this image (not ignored).
CREATE FUNCTION clipd_keyword_text(image bigint) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT coalesce(i.filename, '') || ' ' ||
		coalesce((SELECT string_agg(v #>> '{}', ' ')
			  FROM jsonb_path_query(i.meta, 'strict $.** ? (@.type() == "string")') v), '') || ' ' ||
		coalesce((SELECT string_agg(lf.path, ' ' ORDER BY lf.library, lf.path) FROM library_files lf
			  WHERE lf.image_id = i.id AND NOT lf.ignored), '')
	FROM images i WHERE i.id = image
$$;

-- One row per image, kept by the triggers below in the same transaction
-- as every change to an image's filename, metadata or library paths.
CREATE TABLE keywords (
	image_id bigint PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
	body     tsvector NOT NULL
);
CREATE INDEX keywords_body ON keywords USING gin (body);

CREATE FUNCTION clipd_keywords_refresh(image bigint) RETURNS void LANGUAGE sql AS $$
	INSERT INTO keywords (image_id, body)
		SELECT i.id, to_tsvector('simple', clipd_words(clipd_keyword_text(i.id))) FROM images i WHERE i.id = image
	ON CONFLICT (image_id) DO UPDATE SET body = excluded.body
$$;

CREATE FUNCTION clipd_keywords_image() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM clipd_keywords_refresh(NEW.id);
	RETURN NULL;
END
$$;

CREATE TRIGGER keywords_insert AFTER INSERT ON images FOR EACH ROW EXECUTE FUNCTION clipd_keywords_image();
CREATE TRIGGER keywords_update AFTER UPDATE OF filename, metadata ON images FOR EACH ROW
	WHEN (OLD.filename IS DISTINCT FROM NEW.filename OR OLD.metadata IS DISTINCT FROM NEW.metadata)
	EXECUTE FUNCTION clipd_keywords_image();

-- A path found to be an image, moved to another image, renamed, ignored or
-- forgotten. A scan marking files seen changes none of these, and
-- refreshes nothing.
CREATE FUNCTION clipd_keywords_path() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.image_id IS NOT NULL THEN
		PERFORM clipd_keywords_refresh(OLD.image_id);
	END IF;
	IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.image_id IS NOT NULL
	   AND (TG_OP = 'INSERT' OR NEW.image_id IS DISTINCT FROM OLD.image_id OR NEW.path <> OLD.path
		OR NEW.ignored <> OLD.ignored) THEN
		PERFORM clipd_keywords_refresh(NEW.image_id);
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER keywords_path_insert AFTER INSERT ON library_files FOR EACH ROW
	WHEN (NEW.image_id IS NOT NULL) EXECUTE FUNCTION clipd_keywords_path();
CREATE TRIGGER keywords_path_update AFTER UPDATE OF image_id, path, ignored ON library_files FOR EACH ROW
	WHEN (OLD.image_id IS DISTINCT FROM NEW.image_id OR OLD.path <> NEW.path OR OLD.ignored <> NEW.ignored)
	EXECUTE FUNCTION clipd_keywords_path();
CREATE TRIGGER keywords_path_delete AFTER DELETE ON library_files FOR EACH ROW
	WHEN (OLD.image_id IS NOT NULL) EXECUTE FUNCTION clipd_keywords_path();

INSERT INTO keywords (image_id, body)
	SELECT id, to_tsvector('simple', clipd_words(clipd_keyword_text(id))) FROM images;
