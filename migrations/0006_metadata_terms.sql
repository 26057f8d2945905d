-- clipd schema, version 6: an index of metadata values, so that a filter
-- on a top-level key (filter.camera=X100) finds its images without reading
-- every row's metadata. A filtered search over a million images read them
-- all, whichever few matched.
--
-- metadata_terms holds, for each image, one row per scalar value of a
-- top-level key whose name is plain (letters, digits, _ and -), and per
-- scalar element when that value is an array: the key and a term, the
-- value spelled so that the values an equality filter matches spell it
-- alike: 't' and the text, 'n' and the number as a REAL (3 and 3.0 are one
-- number), 'b' and true or false. null, objects and nested arrays match no
-- equality filter and have no term, nor does a text longer than a filter
-- value may be (1024 bytes). Triggers keep it in step with images
-- in the same transaction as each change. It narrows the rows a filter
-- reads; the filter's own condition still decides each of them.
CREATE TABLE metadata_terms (
	key      TEXT NOT NULL,
	term     TEXT NOT NULL,
	image_id INTEGER NOT NULL,
	PRIMARY KEY (key, term, image_id)
) WITHOUT ROWID;
CREATE INDEX metadata_terms_image ON metadata_terms (image_id);

-- The terms of each image, spelled once for the triggers below: for each
-- top-level key k, json_each at k's own path gives k's value, or each
-- element when it is an array (as the filter's own condition reads it).
CREATE VIEW metadata_terms_of (image_id, key, term) AS
	SELECT i.id, k.key,
		CASE a.type WHEN 'text' THEN 't' || a.atom
			    WHEN 'integer' THEN 'n' || CAST(a.atom AS REAL)
			    WHEN 'real' THEN 'n' || CAST(a.atom AS REAL)
			    ELSE 'b' || a.type END
	FROM images i, json_each(i.metadata) k, json_each(i.metadata, k.fullkey) a
	WHERE k.type IN ('text', 'integer', 'real', 'true', 'false', 'array')
	  AND k.key NOT GLOB '*[^A-Za-z0-9_-]*' AND length(k.key) BETWEEN 1 AND 128
	  AND a.type IN ('text', 'integer', 'real', 'true', 'false')
	  AND (a.type <> 'text' OR length(CAST(a.atom AS BLOB)) <= 1024);

INSERT OR IGNORE INTO metadata_terms (image_id, key, term) SELECT image_id, key, term FROM metadata_terms_of;

CREATE TRIGGER metadata_terms_insert AFTER INSERT ON images BEGIN
	INSERT OR IGNORE INTO metadata_terms (image_id, key, term)
		SELECT image_id, key, term FROM metadata_terms_of WHERE image_id = NEW.id;
END;

CREATE TRIGGER metadata_terms_update AFTER UPDATE OF metadata ON images BEGIN
	DELETE FROM metadata_terms WHERE image_id = OLD.id;
	INSERT OR IGNORE INTO metadata_terms (image_id, key, term)
		SELECT image_id, key, term FROM metadata_terms_of WHERE image_id = NEW.id;
END;

CREATE TRIGGER metadata_terms_delete AFTER DELETE ON images BEGIN
	DELETE FROM metadata_terms WHERE image_id = OLD.id;
END;
