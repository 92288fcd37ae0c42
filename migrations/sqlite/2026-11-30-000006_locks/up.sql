-- Leases that serialize long operations across processes (key
-- rotations): one row per operation while it runs, refreshed by its
-- holder, taken over when it goes stale or its process is gone.
CREATE TABLE fieldseal_locks (
  name TEXT NOT NULL PRIMARY KEY,
  holder BLOB NOT NULL,
  host TEXT NOT NULL,
  pid BIGINT NOT NULL,
  acquired_at BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL
);
