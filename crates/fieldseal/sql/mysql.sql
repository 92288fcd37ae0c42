-- The key store: KDF salt and parameters, the key check value, and the
-- wrapped data and blind-index keys. Never any key in the clear.
CREATE TABLE IF NOT EXISTS fieldseal_keyring (
  id INTEGER NOT NULL PRIMARY KEY,
  kdf_salt VARBINARY(64) NOT NULL,
  kdf_m_cost INTEGER NOT NULL,
  kdf_t_cost INTEGER NOT NULL,
  kdf_p_cost INTEGER NOT NULL,
  key_check VARBINARY(64) NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS fieldseal_keys (
  purpose VARCHAR(16) NOT NULL,
  id BIGINT NOT NULL,
  wrapped VARBINARY(128) NOT NULL,
  state VARCHAR(16) NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (purpose, id)
);
