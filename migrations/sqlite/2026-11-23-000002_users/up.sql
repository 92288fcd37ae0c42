-- User records. name and email hold AES-256-GCM ciphertext (format v1);
-- *_bidx hold 16-byte blind indexes for equality search; key_id is the
-- data key that sealed this row's ciphertexts (not indexed: rotation walks
-- the primary key in ranges).
CREATE TABLE users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name BLOB NOT NULL,
  name_bidx BLOB NOT NULL,
  email BLOB,
  email_bidx BLOB,
  age INTEGER NOT NULL CHECK (age BETWEEN 0 AND 150),
  created_at TIMESTAMP NOT NULL,
  key_id BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_bidx ON users (email_bidx);
CREATE INDEX users_name_bidx ON users (name_bidx);
