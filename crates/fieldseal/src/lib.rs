//! # fieldseal
//!
//! Field-level encryption for Diesel. Sensitive columns are sealed with
//! AES-256-GCM *in the application*, before they reach the database: the
//! server, its dumps, replicas and backups only ever see ciphertext.
//!
//! - [`Encrypted<T, C>`]: the transparent column type. `T` is the
//!   plaintext (`String`, `Vec<u8>`, `i64`, or `Option` of one for a
//!   nullable column); `C` names the column, and is authenticated with every
//!   value. It seals and opens with the keyring in scope: [`with_keyring`]
//!   (per thread, nestable), else the default from [`install_keyring`].
//! - [`Sealed<C>`]: the explicit column type, holding ciphertext. The code
//!   seals and opens it with a keyring it holds: [`Keyring::seal`],
//!   [`Keyring::open`]. One process can serve many tenants, each with its
//!   own keyring, and name the row of a value that does not open.
//! - [`Keyring`]: data keys by id (the highest seals, all open) and
//!   blind-index keys. From `FIELDSEAL_KEYS` ([`Keyring::from_env`]) or from
//!   wrapped keys in the database ([`KeyStore`]).
//! - [`Keyring::blind_index`]: HMAC-SHA256 equality indexes for search.
//!
//! Features: `mysql`, `sqlite`, `postgres` (none by default; each links
//! only its own client library). The README covers setup, the key store,
//! column sizes, what encrypted columns cannot do, and what blind indexes
//! leak; `examples/` holds a complete program per backend.
//!
//! ## A complete example
//!
//! A developer's own table, with a name that is encrypted and searchable,
//! and a nullable encrypted note. The model keeps plain `String` fields;
//! Diesel converts through `Encrypted` on the way in and out.
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! use diesel::prelude::*;
//! use fieldseal::{Encrypted, Keyring};
//! use std::sync::Arc;
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
//! // Reading: either keep plain fields and convert through Encrypted ...
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
//! // ... or hold Encrypted fields themselves (deref to the plaintext).
//! #[derive(Queryable, Selectable, Debug)]
//! #[diesel(table_name = patients)]
//! struct PatientFields {
//!     name: Encrypted<String, PatientName>,
//!     note: Encrypted<Option<String>, PatientNote>,
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Production code builds the keyring with Keyring::from_env() or
//!     // KeyStore::unlock(); a random one is enough for this example. It is
//!     // put in scope for this thread's queries with with_keyring.
//!     let keyring = Arc::new(Keyring::generate());
//!     fieldseal::with_keyring(&keyring, || run(&keyring))
//! }
//!
//! fn run(keyring: &Keyring) -> Result<(), Box<dyn std::error::Error>> {//!
//!     let mut conn = SqliteConnection::establish(":memory:")?;
//!     diesel::sql_query(
//!         "CREATE TABLE patients (id INTEGER PRIMARY KEY, name BLOB NOT NULL,
//!          name_bidx BLOB NOT NULL, note BLOB)",
//!     )
//!     .execute(&mut conn)?;
//!
//!     let ada = NewPatient {
//!         name: "Ada Lovelace".into(),
//!         name_bidx: keyring.blind_index::<PatientName>("Ada Lovelace")?.to_vec(),
//!         note: None,
//!     };
//!     diesel::insert_into(patients::table).values(ada).execute(&mut conn)?;
//!
//!     // Equality search through the blind index: normalized, so case and
//!     // surrounding spaces do not matter.
//!     let wanted = keyring.blind_index::<PatientName>("  ada LOVELACE")?;
//!     let found: Patient = patients::table
//!         .filter(patients::name_bidx.eq(wanted.to_vec()))
//!         .select(Patient::as_select())
//!         .first(&mut conn)?;
//!     assert_eq!(found.name, "Ada Lovelace");
//!     assert_eq!(found.note, None);
//!     let fields: PatientFields = patients::table
//!         .select(PatientFields::as_select())
//!         .first(&mut conn)?;
//!     assert_eq!(*fields.name, "Ada Lovelace");
//!
//!     // What the database holds is ciphertext: 33 bytes longer, no plaintext.
//!     let raw: Vec<u8> = patients::table.select(patients::name).first(&mut conn)?;
//!     assert_eq!(raw.len(), "Ada Lovelace".len() + 33);
//!     assert!(!raw.windows(3).any(|w| w == b"Ada"));
//!     Ok(())
//! }
//! # main().unwrap();
//! # }
//! ```
//!
//! ## Errors, and what they never contain
//!
//! Reading an [`Encrypted`] value that fails to open is a Diesel
//! deserialization error; [`decrypt_error`] finds the [`DecryptError`]
//! inside it, which names the column and the kind: authentication failed
//! (tampered, wrong key, or moved from another column: AES-GCM cannot tell
//! which), unknown key id, malformed, or no keyring in scope. Such a query
//! fails as a whole; load [`Sealed`] values and open them one by one to
//! name the row. No error, log line or `Debug` output of this crate
//! contains key material, a passphrase or a plaintext.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod crypto;
mod error;
mod keystore;
mod scope;
mod types;

pub use crate::crypto::blind_index::{normalize, BLIND_INDEX_LEN};
pub use crate::crypto::envelope::OVERHEAD;
pub use crate::crypto::key::SecretKey;
pub use crate::crypto::keyring::Keyring;
pub use crate::crypto::master::{
    EnvSource, KdfParams, MasterKeySource, MasterSecret, Passphrase, MIN_PASSPHRASE_CHARS,
};
pub use crate::error::{
    decrypt_error, DecryptError, DecryptErrorKind, Error, KeyStoreError, Result,
};
pub use crate::keystore::{
    schema_sql, KeyInfo, KeyStore, KeyStoreConnection, KeyStoreSession, SqlDialect, PURPOSE_DATA,
    PURPOSE_INDEX, STATE_ACTIVE, STATE_DECRYPT_ONLY, STATE_RETIRED,
};
pub use crate::scope::{
    current_keyring, install_keyring, install_keyring_arc, uninstall_keyring, with_keyring,
};
pub use crate::types::{Context, Encrypted, Plaintext, Sealable, Sealed};

/// The README's Rust examples, compiled (and run) as doc tests.
#[cfg(all(doctest, feature = "sqlite", feature = "mysql", feature = "postgres"))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
