-- Per-user keys: one random key per record, wrapped under a data key of
-- the keyring and bound to its reference (`id`, random, so writers on any
-- node never collide). Forgetting a record sets `wrapped` to NULL (and
-- `erased_at`): every copy of the record's values, backups included, is
-- unreadable from then on. Rows are stored in insertion order (`seq`)
-- with a unique index on the random reference: a table clustered on a
-- random key inserts at random pages, which measured 3 times slower once
-- the table outgrew the buffer pool.
CREATE TABLE IF NOT EXISTS fieldseal_record_keys (
  seq INTEGER PRIMARY KEY,
  id BIGINT NOT NULL UNIQUE,
  wrapped BLOB NULL,
  created_at BIGINT NOT NULL,
  erased_at BIGINT NULL
);
