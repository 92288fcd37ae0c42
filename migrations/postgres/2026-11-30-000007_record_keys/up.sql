-- Per-user keys: one random key per record, wrapped under a data key of
-- the keyring and bound to its reference. Forgetting a record sets
-- `wrapped` to NULL (and `erased_at`): every copy of the record's values,
-- backups included, is unreadable from then on.
CREATE TABLE IF NOT EXISTS fieldseal_record_keys (
  id BIGINT NOT NULL PRIMARY KEY,
  wrapped BYTEA NULL,
  created_at BIGINT NOT NULL,
  erased_at BIGINT NULL
);
