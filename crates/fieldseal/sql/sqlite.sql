-- The key store: KDF salt and parameters, the key check value, and the
-- wrapped data and blind-index keys. Never any key in the clear.
CREATE TABLE IF NOT EXISTS fieldseal_keyring (
  id INTEGER NOT NULL PRIMARY KEY,
  kdf_salt BLOB NOT NULL,
  kdf_m_cost INTEGER NOT NULL,
  kdf_t_cost INTEGER NOT NULL,
  kdf_p_cost INTEGER NOT NULL,
  key_check BLOB NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS fieldseal_keys (
  purpose TEXT NOT NULL,
  id BIGINT NOT NULL,
  wrapped BLOB NOT NULL,
  state TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (purpose, id)
);
