-- User records. name and email hold AES-256-GCM ciphertext (format v1);
-- *_bidx hold 16-byte blind indexes for equality search; key_id is the
-- data key that sealed this row's ciphertexts. key_id is deliberately not
-- indexed: rotation walks the primary key in ranges, and an index on it
-- cost a quarter of the import's throughput in the benchmark.
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
  KEY users_name_bidx (name_bidx)
) ENGINE = InnoDB;
