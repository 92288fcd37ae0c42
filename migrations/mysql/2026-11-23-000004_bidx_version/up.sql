-- Which blind-index key version computed name_bidx and email_bidx, so the
-- index key can rotate row by row while lookups consult every version.
ALTER TABLE users ADD COLUMN bidx_version BIGINT NOT NULL DEFAULT 1;
