-- Progress of CSV imports, so an interrupted import resumes exactly after
-- its last committed batch. Updated in the same transaction as each batch.
CREATE TABLE fieldseal_imports (
  fingerprint BLOB NOT NULL PRIMARY KEY,
  file_name TEXT NOT NULL,
  records_done BIGINT NOT NULL,
  last_line BIGINT NOT NULL,
  inserted BIGINT NOT NULL,
  rejected BIGINT NOT NULL,
  finished BOOLEAN NOT NULL,
  started_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
