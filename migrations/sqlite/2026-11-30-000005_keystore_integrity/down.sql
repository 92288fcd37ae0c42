-- Format 2's columns cannot be dropped without losing the key table's
-- integrity: go back by restoring a backup taken before this migration.
SELECT 1;
