-- clipd schema: keywords. Full-text search (FTS5) over what a person
-- types to find an image: its filename and every string value in its
-- metadata, at any depth (not the keys, not numbers or booleans). The row
-- of an image has its id as rowid. Triggers keep it in step with images in
-- the same transaction as every insert, update and delete, so a keyword
-- search never sees a row the catalog does not hold, or misses one it does.

CREATE VIRTUAL TABLE keywords USING fts5 (body, tokenize = 'unicode61 remove_diacritics 2');

CREATE TRIGGER keywords_insert AFTER INSERT ON images BEGIN
	INSERT INTO keywords (rowid, body) VALUES (new.id,
		coalesce(new.filename, '') || ' ' ||
		coalesce((SELECT group_concat(value, ' ') FROM json_tree(new.metadata) WHERE type = 'text'), ''));
END;

CREATE TRIGGER keywords_update AFTER UPDATE OF filename, metadata ON images BEGIN
	UPDATE keywords SET body =
		coalesce(new.filename, '') || ' ' ||
		coalesce((SELECT group_concat(value, ' ') FROM json_tree(new.metadata) WHERE type = 'text'), '')
	WHERE rowid = new.id;
END;

CREATE TRIGGER keywords_delete AFTER DELETE ON images BEGIN
	DELETE FROM keywords WHERE rowid = old.id;
END;

INSERT INTO keywords (rowid, body)
	SELECT id, coalesce(filename, '') || ' ' ||
		coalesce((SELECT group_concat(value, ' ') FROM json_tree(images.metadata) WHERE type = 'text'), '')
	FROM images;
