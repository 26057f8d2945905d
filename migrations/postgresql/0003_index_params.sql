-- clipd's PostgreSQL catalog, version 3: the approximate index's trained
-- parameters, trained by one node and shared by all (README, "Several
-- nodes on PostgreSQL").

-- A generation of the index: what one node trained, under the
-- transaction-level advisory lock pg_try_advisory_xact_lock(7164217038677567864, "clipd-ix" in ASCII),
-- for the model's vectors as they were at change trained_seq (trained_n of
-- them). params: FAISS's serialised index, trained and empty (an IVF's
-- coarse centroids and its codes' training), behind a magic and a checksum
-- (index/shared.c); NULL for the exact family
-- ('Flat'). seq: the change of op 'index' (image_id = generation) appended
-- in the same transaction, which nodes following the sequence apply by
-- building their index from these parameters and their vectors.
CREATE TABLE index_params (
	generation  bigint PRIMARY KEY CHECK (generation > 0),
	model       text NOT NULL REFERENCES models (fingerprint),
	factory     text NOT NULL CHECK (length(factory) BETWEEN 1 AND 63),
	trained_n   bigint NOT NULL CHECK (trained_n >= 0),
	trained_seq bigint NOT NULL CHECK (trained_seq >= 0),
	seq         bigint NOT NULL UNIQUE,
	params      bytea,
	created_at  bigint NOT NULL,        -- microseconds since the Unix epoch, UTC
	CHECK ((factory = 'Flat') = (params IS NULL))
);
CREATE INDEX index_params_model_seq ON index_params (model, seq);

ALTER TABLE changes DROP CONSTRAINT changes_op_check;
ALTER TABLE changes ADD CONSTRAINT changes_op_check CHECK (op IN ('add', 'remove', 'reset', 'index'));
