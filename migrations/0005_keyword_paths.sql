-- clipd schema, version 5: a library image's paths in its keywords. What
-- people type to find a photo in a library is often a folder's name
-- ("Paris 2019/beach"), which is in the file's path, not in its filename
-- (the base name). An image's keyword text becomes its filename, the
-- string values of its metadata and every library path that is this
-- image (not ignored), kept in step by triggers on images and on
-- library_files in the same transaction as each change, as before.

-- The keyword text of each image, spelled once for the triggers below.
CREATE VIEW keyword_bodies (id, body) AS
	SELECT i.id,
		coalesce(i.filename, '') || ' ' ||
		coalesce((SELECT group_concat(value, ' ') FROM json_tree(i.metadata) WHERE type = 'text'), '') || ' ' ||
		coalesce((SELECT group_concat(lf.path, ' ') FROM library_files lf
			  WHERE lf.image_id = i.id AND lf.ignored = 0), '')
	FROM images i;

DROP TRIGGER keywords_insert;
DROP TRIGGER keywords_update;

CREATE TRIGGER keywords_insert AFTER INSERT ON images BEGIN
	INSERT INTO keywords (rowid, body) SELECT id, body FROM keyword_bodies WHERE id = new.id;
END;

CREATE TRIGGER keywords_update AFTER UPDATE OF filename, metadata ON images BEGIN
	UPDATE keywords SET body = (SELECT body FROM keyword_bodies WHERE id = new.id) WHERE rowid = new.id;
END;

-- A path found to be an image, moved to another image, renamed, ignored
-- (the image deleted through the API) or forgotten. A scan marking files
-- seen changes none of these columns' values, and refreshes nothing.
CREATE TRIGGER keywords_path_insert AFTER INSERT ON library_files WHEN new.image_id IS NOT NULL BEGIN
	UPDATE keywords SET body = (SELECT body FROM keyword_bodies WHERE id = new.image_id) WHERE rowid = new.image_id;
END;

CREATE TRIGGER keywords_path_update AFTER UPDATE OF image_id, path, ignored ON library_files
	WHEN old.image_id IS NOT new.image_id OR old.path IS NOT new.path OR old.ignored IS NOT new.ignored BEGIN
	UPDATE keywords SET body = (SELECT body FROM keyword_bodies WHERE id = old.image_id) WHERE rowid = old.image_id;
	UPDATE keywords SET body = (SELECT body FROM keyword_bodies WHERE id = new.image_id) WHERE rowid = new.image_id;
END;

CREATE TRIGGER keywords_path_delete AFTER DELETE ON library_files WHEN old.image_id IS NOT NULL BEGIN
	UPDATE keywords SET body = (SELECT body FROM keyword_bodies WHERE id = old.image_id) WHERE rowid = old.image_id;
END;

DELETE FROM keywords;
INSERT INTO keywords (rowid, body) SELECT id, body FROM keyword_bodies;
