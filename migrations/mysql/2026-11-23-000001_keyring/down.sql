DROP TABLE IF EXISTS fieldseal_keys;
DROP TABLE IF EXISTS fieldseal_keyring;
