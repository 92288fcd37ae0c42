-- User records. name and email hold AES-256-GCM ciphertext (format v1);
-- *_bidx hold 16-byte blind indexes for equality search; key_id is the
-- data key that sealed this row's ciphertexts, so rotation finds old rows
-- through an index.
CREATE TABLE users (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARBINARY(1024) NOT NULL,
  name_bidx VARBINARY(16) NOT NULL,
  email VARBINARY(1024) NULL,
  email_bidx VARBINARY(16) NULL,
  age INTEGER NOT NULL,
  created_at DATETIME NOT NULL,
  key_id BIGINT NOT NULL,
  CONSTRAINT users_age_range CHECK (age BETWEEN 0 AND 150),
  UNIQUE KEY users_email_bidx (email_bidx),
  KEY users_name_bidx (name_bidx),
  KEY users_key_id (key_id)
) ENGINE = InnoDB;
