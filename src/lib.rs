//! # fieldseal
//!
//! Field-level encryption for Diesel. Sensitive columns are sealed with
//! AES-256-GCM *in the application*, before they reach the database: the
//! server, its dumps, replicas and backups only ever see ciphertext.
//!
//! - [`Encrypted<T, C>`]: the column type. `T` is the plaintext (`String`,
//!   `Vec<u8>`, `i64`, or `Option` of one for a nullable column); `C` names
//!   the column, and is authenticated with every value.
//! - [`Keyring`]: data keys by id (the highest seals, all open) and
//!   blind-index keys. From `FIELDSEAL_KEYS` ([`Keyring::from_env`]) or from
//!   wrapped keys in the database ([`KeyStore`]).
//! - [`Keyring::blind_index`]: HMAC-SHA256 equality indexes for search.
//!
//! ## A complete example
//!
//! A developer's own table, with a name that is encrypted and searchable,
//! and a nullable encrypted note. The model keeps plain `String` fields;
//! Diesel converts through `Encrypted` on the way in and out.
//!
//! ```
//! use diesel::prelude::*;
//! use fieldseal::{Encrypted, Keyring};
//!
//! diesel::table! {
//!     patients (id) {
//!         id -> Integer,
//!         name -> Binary,          // BLOB / VARBINARY / BYTEA: ciphertext
//!         name_bidx -> Binary,     // blind index, for WHERE name_bidx = ?
//!         note -> Nullable<Binary>,
//!     }
//! }
//!
//! // One context per encrypted column: binds each ciphertext to its column.
//! fieldseal::context!(PatientName = "patients.name");
//! fieldseal::context!(PatientNote = "patients.note");
//!
//! #[derive(Insertable)]
//! #[diesel(table_name = patients)]
//! struct NewPatient {
//!     #[diesel(serialize_as = Encrypted<String, PatientName>)]
//!     name: String,
//!     name_bidx: Vec<u8>,
//!     #[diesel(serialize_as = Encrypted<Option<String>, PatientNote>)]
//!     note: Option<String>,
//! }
//!
//! #[derive(Queryable, Selectable, Debug)]
//! #[diesel(table_name = patients)]
//! struct Patient {
//!     id: i32,
//!     #[diesel(deserialize_as = Encrypted<String, PatientName>)]
//!     name: String,
//!     #[diesel(deserialize_as = Encrypted<Option<String>, PatientNote>)]
//!     note: Option<String>,
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Production code builds the keyring with Keyring::from_env() or
//!     // KeyStore::unlock(); a random one is enough for this example.
//!     fieldseal::install_keyring(Keyring::generate());
//!     let keyring = fieldseal::keyring()?;
//!
//!     let mut conn = SqliteConnection::establish(":memory:")?;
//!     diesel::sql_query(
//!         "CREATE TABLE patients (id INTEGER PRIMARY KEY, name BLOB NOT NULL,
//!          name_bidx BLOB NOT NULL, note BLOB)",
//!     )
//!     .execute(&mut conn)?;
//!
//!     let ada = NewPatient {
//!         name: "Ada Lovelace".into(),
//!         name_bidx: keyring.blind_index(PatientName::NAME, "Ada Lovelace")?.to_vec(),
//!         note: None,
//!     };
//!     diesel::insert_into(patients::table).values(ada).execute(&mut conn)?;
//!
//!     // Equality search through the blind index: normalized, so case and
//!     // surrounding spaces do not matter.
//!     let wanted = keyring.blind_index(PatientName::NAME, "  ada LOVELACE")?;
//!     let found: Patient = patients::table
//!         .filter(patients::name_bidx.eq(wanted.to_vec()))
//!         .select(Patient::as_select())
//!         .first(&mut conn)?;
//!     assert_eq!(found.name, "Ada Lovelace");
//!     assert_eq!(found.note, None);
//!
//!     // What the database holds is ciphertext: 33 bytes longer, no plaintext.
//!     let raw: Vec<u8> = patients::table.select(patients::name).first(&mut conn)?;
//!     assert_eq!(raw.len(), "Ada Lovelace".len() + 33);
//!     assert!(!raw.windows(3).any(|w| w == b"Ada"));
//!     # use fieldseal::Context;
//!     Ok(())
//! }
//! ```
//!
//! ## Errors, and what they never contain
//!
//! Reading a value that fails to open is a Diesel deserialization error;
//! [`decrypt_error`] finds the [`DecryptError`] inside it, which names the
//! column and one of three kinds: authentication failed (tampered, wrong
//! key, or moved from another column: AES-GCM cannot tell which), unknown
//! key id, or malformed. No error, log line or `Debug` output of this crate
//! contains key material, a passphrase or a plaintext.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod app;
pub mod crypto;
mod error;
pub mod keystore;
pub mod store;
pub mod types;

pub use crate::crypto::blind_index::{normalize, BLIND_INDEX_LEN};
pub use crate::crypto::envelope::OVERHEAD;
pub use crate::crypto::key::SecretKey;
pub use crate::crypto::keyring::Keyring;
pub use crate::crypto::master::{EnvSource, KdfParams, MasterKeySource, MasterSecret, Passphrase};
pub use crate::error::{decrypt_error, DecryptError, DecryptErrorKind, Error, Result};
pub use crate::keystore::{KeyStore, KeyStoreConnection};
pub use crate::types::{Context, Encrypted, Plaintext, Sealable};

use std::sync::{Arc, PoisonError, RwLock};

static INSTALLED: RwLock<Option<Arc<Keyring>>> = RwLock::new(None);

/// Installs the process-wide keyring the column types use, replacing (and
/// returning) any previous one.
pub fn install_keyring(keyring: Keyring) -> Option<Arc<Keyring>> {
    install_keyring_arc(Arc::new(keyring))
}

/// [`install_keyring`] for a keyring the caller keeps a handle to.
pub fn install_keyring_arc(keyring: Arc<Keyring>) -> Option<Arc<Keyring>> {
    INSTALLED
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .replace(keyring)
}

/// Removes the installed keyring (its keys are zeroized once the last user
/// drops its handle).
pub fn uninstall_keyring() -> Option<Arc<Keyring>> {
    INSTALLED
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
}

/// The installed keyring.
///
/// # Errors
/// [`Error::NoKeyring`] when none is installed.
pub fn keyring() -> Result<Arc<Keyring>> {
    INSTALLED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .ok_or(Error::NoKeyring)
}
