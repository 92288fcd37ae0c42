-- The audit trail: see the MySQL migration of the same name.
CREATE TABLE fieldseal_audit (
  id INTEGER NOT NULL PRIMARY KEY,
  at_ms BIGINT NOT NULL,
  os_user TEXT NOT NULL,
  operation TEXT NOT NULL,
  record_id BIGINT NULL,
  row_count BIGINT NULL,
  outcome TEXT NOT NULL,
  detail TEXT NOT NULL,
  mac BLOB NOT NULL
);
CREATE INDEX fieldseal_audit_record ON fieldseal_audit (record_id);
CREATE INDEX fieldseal_audit_at ON fieldseal_audit (at_ms);
CREATE TABLE fieldseal_audit_head (
  id INTEGER NOT NULL PRIMARY KEY,
  last_id BIGINT NOT NULL,
  last_mac BLOB NOT NULL,
  mac BLOB NOT NULL
);
CREATE TABLE fieldseal_settings (
  name TEXT NOT NULL PRIMARY KEY,
  value TEXT NOT NULL
);
