-- Leases that serialize long operations across processes and cluster
-- nodes (key rotations): one row per operation while it runs, refreshed
-- by its holder, taken over when it goes stale or its process is gone.
CREATE TABLE fieldseal_locks (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  holder VARBINARY(16) NOT NULL,
  host VARCHAR(255) NOT NULL,
  pid BIGINT NOT NULL,
  acquired_at BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL
) ENGINE = InnoDB;
