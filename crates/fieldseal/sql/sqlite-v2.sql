-- Key-store format 2: a random id that every wrapped key is bound to, a
-- version that every write bumps with a compare-and-swap (so concurrent
-- writers, on one server or on cluster nodes, conflict and one retries),
-- and a MAC under the master key over the whole key list.
ALTER TABLE fieldseal_keyring ADD COLUMN keyring_id BLOB NULL;
ALTER TABLE fieldseal_keyring ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE fieldseal_keyring ADD COLUMN key_list_mac BLOB NULL;
