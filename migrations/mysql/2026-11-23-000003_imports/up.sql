-- Progress of CSV imports, so an interrupted import resumes exactly after
-- its last committed batch. Updated in the same transaction as each batch.
CREATE TABLE fieldseal_imports (
  fingerprint VARBINARY(32) NOT NULL PRIMARY KEY,
  file_name VARCHAR(1024) NOT NULL,
  records_done BIGINT NOT NULL,
  last_line BIGINT NOT NULL,
  inserted BIGINT NOT NULL,
  rejected BIGINT NOT NULL,
  finished BOOLEAN NOT NULL,
  started_at DATETIME NOT NULL,
  updated_at DATETIME NOT NULL
) ENGINE = InnoDB;
