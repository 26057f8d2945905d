-- clipd schema, version 2: when a photo was taken (issue 12).
--
-- taken_at is the capture time as the file states it (EXIF
-- DateTimeOriginal, with OffsetTimeOriginal when present), in RFC 3339:
-- "2023-06-17T14:03:22+02:00", or "...-00:00" when the camera stated no
-- offset (its clock's local time, compared as if it were UTC). NULL: the
-- file states none, or the row predates this migration and has not been
-- repaired yet (`clipd check --repair`, or `clipd reembed`, fill it).
-- taken_at_us is the same instant in microseconds since the Unix epoch,
-- UTC: what the taken_after / taken_before filters compare.
ALTER TABLE images ADD COLUMN taken_at TEXT
	CHECK (taken_at IS NULL OR length(taken_at) BETWEEN 20 AND 39);
ALTER TABLE images ADD COLUMN taken_at_us INTEGER
	CHECK ((taken_at IS NULL) = (taken_at_us IS NULL));
CREATE INDEX images_taken_at ON images (taken_at_us) WHERE taken_at_us IS NOT NULL;
