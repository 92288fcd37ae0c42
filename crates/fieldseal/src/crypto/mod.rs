//! The cryptographic core. The only module that names `aes-gcm`, `argon2`
//! and `hmac`; it knows nothing of Diesel or of the application.
//!
//! - [`envelope`]: the v1 ciphertext format and AES-256-GCM seal/open;
//! - [`key`]: 256-bit keys that zeroize and never print;
//! - [`keyring`]: data keys by id and blind-index keys by version;
//! - [`blind_index`]: HMAC-SHA256 equality indexes and their normalization;
//! - [`master`]: master-key sources, Argon2id, key wrapping, key check value.

pub(crate) mod blind_index;
pub(crate) mod envelope;
#[cfg(test)]
mod golden;
pub(crate) mod key;
pub(crate) mod keyring;
pub(crate) mod master;
#[cfg(test)]
mod props;
