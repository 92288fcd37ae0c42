-- The audit trail: one entry per operation, never plaintext or a blind
-- index. Each entry's MAC (HMAC-SHA256 under the keyring's audit key)
-- covers the entry and the previous entry's MAC; ids are consecutive from
-- 1, given by the writer, so a deleted, inserted or reordered entry
-- breaks the chain. The head row holds the last id and MAC under its own
-- MAC, so entries cut from the end are noticed too; appending updates it,
-- which serializes writers (on a cluster, a certification conflict that
-- is retried).
CREATE TABLE fieldseal_audit (
  id BIGINT NOT NULL PRIMARY KEY,
  at_ms BIGINT NOT NULL,
  os_user VARCHAR(64) NOT NULL,
  operation VARCHAR(32) NOT NULL,
  record_id BIGINT NULL,
  row_count BIGINT NULL,
  outcome VARCHAR(8) NOT NULL,
  detail VARCHAR(255) NOT NULL,
  mac VARBINARY(32) NOT NULL,
  KEY fieldseal_audit_record (record_id),
  KEY fieldseal_audit_at (at_ms)
) ENGINE = InnoDB;
CREATE TABLE fieldseal_audit_head (
  id INTEGER NOT NULL PRIMARY KEY,
  last_id BIGINT NOT NULL,
  last_mac VARBINARY(32) NOT NULL,
  mac VARBINARY(32) NOT NULL
) ENGINE = InnoDB;
-- Choices made when the keyring was created: per-user keys, and whether
-- the key store lives in this database or another one.
CREATE TABLE fieldseal_settings (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  value VARCHAR(255) NOT NULL
) ENGINE = InnoDB;
