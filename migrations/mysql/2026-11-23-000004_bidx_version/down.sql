ALTER TABLE users DROP COLUMN bidx_version;
