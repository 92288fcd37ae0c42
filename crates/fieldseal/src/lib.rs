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
//! - Per-user keys: a [`RecordKey`] per row or person
//!   ([`Keyring::new_record_key`]), kept wrapped in the key store
//!   ([`RecordKeys::store`], [`RecordKeys::load`]), re-wrapped by a
//!   rotation ([`RecordKeys::rewrap_all`]) and destroyed to erase every
//!   copy of that row's values, backups included ([`RecordKeys::destroy`]);
//!   [`Keyring::open_with`] opens values of either kind.
//! - [`Keyring::audit_mac`]: an HMAC under the key store's audit key, for
//!   a tamper-evident audit trail.
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
pub use crate::crypto::envelope::RecordKey;
pub use crate::crypto::envelope::OVERHEAD;
pub use crate::crypto::key::SecretKey;
pub use crate::crypto::keyring::{Keyring, RecordKeys, WrappedRecordKey};
pub use crate::crypto::master::{
    EnvSource, KdfParams, MasterKeySource, MasterSecret, Passphrase, MIN_PASSPHRASE_CHARS,
};
pub use crate::error::{
    decrypt_error, DecryptError, DecryptErrorKind, Error, KeyStoreError, Result,
};
pub use crate::keystore::{
    schema_sql, KeyInfo, KeyStore, KeyStoreConnection, KeyStoreSession, RewrapStep, SqlDialect,
    PURPOSE_AUDIT, PURPOSE_DATA, PURPOSE_INDEX, STATE_ACTIVE, STATE_DECRYPT_ONLY, STATE_RETIRED,
};
pub use crate::scope::{
    current_keyring, install_keyring, install_keyring_arc, uninstall_keyring, with_keyring,
};
pub use crate::types::{Context, Encrypted, Plaintext, Sealable, Sealed};

/// The README's Rust examples, compiled (and run) as doc tests.
#[cfg(all(doctest, feature = "sqlite", feature = "mysql", feature = "postgres"))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// Hooks for the cargo-fuzz targets in `fuzz/` (see `fuzz/README.md`):
/// empty unless the crate is built with `--cfg fuzzing`, which cargo-fuzz
/// sets. Not part of the API. (`fuzzing` is not declared to Cargo, hence
/// the `allow`: a `cfg` on this item itself would warn in every build.)
#[allow(unexpected_cfgs)]
#[doc(hidden)]
pub mod fuzzing {
    #[cfg(fuzzing)]
    pub use self::hooks::*;

    /// What `KeyStore::unlock` does with the rows it read, without a
    /// database: the key store's own `derive_checked`, `check_and_unwrap`
    /// and `to_keyring` on rows the caller supplies (`keystore::open` runs
    /// the same after reading them). `fuzz/src/bin/keyrows_sqlite.rs`
    /// checks it against the real `KeyStore::unlock` on SQLite.
    #[cfg(fuzzing)]
    mod hooks {
        use crate::crypto::key::SecretKey;
        use crate::crypto::keyring::Keyring;
        use crate::crypto::master::{self, Binding, MasterSecret};
        use crate::error::Result;
        use crate::keystore::tables::{KeyRow, KeyringRow};
        use crate::keystore::{self, PURPOSE_AUDIT, PURPOSE_DATA, PURPOSE_INDEX};

        /// The `fieldseal_keyring` row, as read.
        #[derive(Debug, Clone)]
        pub struct KeyringRowIn {
            /// Argon2id salt.
            pub kdf_salt: Vec<u8>,
            /// Argon2id memory cost, KiB.
            pub kdf_m_cost: i32,
            /// Argon2id iterations.
            pub kdf_t_cost: i32,
            /// Argon2id lanes.
            pub kdf_p_cost: i32,
            /// Key check value.
            pub key_check: Vec<u8>,
            /// Keyring id (`None`: format 1).
            pub keyring_id: Option<Vec<u8>>,
            /// Version.
            pub version: i64,
            /// Key-list MAC.
            pub key_list_mac: Option<Vec<u8>>,
        }

        /// A `fieldseal_keys` row, as read.
        #[derive(Debug, Clone)]
        pub struct KeyRowIn {
            /// Purpose.
            pub purpose: String,
            /// Id.
            pub id: i64,
            /// Wrapped key.
            pub wrapped: Vec<u8>,
            /// State.
            pub state: String,
            /// Unix seconds.
            pub created_at: i64,
        }

        fn master_secret(master: &[u8; 32]) -> MasterSecret {
            MasterSecret::Key(SecretKey::from_bytes(&mut master.to_owned()))
        }

        fn key_rows(rows: &[KeyRowIn]) -> Vec<KeyRow> {
            rows.iter()
                .map(|r| KeyRow {
                    purpose: r.purpose.clone(),
                    id: r.id,
                    wrapped: r.wrapped.clone(),
                    state: r.state.clone(),
                    created_at: r.created_at,
                })
                .collect()
        }

        fn static_purpose(purpose: &str) -> Option<&'static str> {
            match purpose {
                PURPOSE_DATA => Some(PURPOSE_DATA),
                PURPOSE_INDEX => Some(PURPOSE_INDEX),
                PURPOSE_AUDIT => Some(PURPOSE_AUDIT),
                _ => None,
            }
        }

        /// Unlocks `key_rows` (as a database holds them: one per purpose
        /// and id) under `row` with the master key `master`: the key
        /// store's own steps after it read the rows (parameter bounds, key
        /// check, key-list MAC, unwrapping, the keyring), without a
        /// database.
        ///
        /// # Errors
        /// As `KeyStore::unlock`, but for database errors.
        pub fn unlock_rows(
            master: &[u8; 32],
            row: &KeyringRowIn,
            key_rows: &[KeyRowIn],
        ) -> Result<Keyring> {
            let row = KeyringRow {
                id: 1,
                kdf_salt: row.kdf_salt.clone(),
                kdf_m_cost: row.kdf_m_cost,
                kdf_t_cost: row.kdf_t_cost,
                kdf_p_cost: row.kdf_p_cost,
                key_check: row.key_check.clone(),
                created_at: 0,
                keyring_id: row.keyring_id.clone(),
                version: row.version,
                key_list_mac: row.key_list_mac.clone(),
            };
            // load_key_rows: ORDER BY purpose, id.
            let mut key_rows = self::key_rows(key_rows);
            key_rows.sort_by(|a, b| (&a.purpose, a.id).cmp(&(&b.purpose, b.id)));
            let master = keystore::derive_checked(&row, &master_secret(master))?;
            let keys = keystore::check_and_unwrap(&row, &key_rows, &master)?;
            keystore::to_keyring(keys)
        }

        /// The key check value of `master`.
        pub fn key_check_value(master: &[u8; 32]) -> Vec<u8> {
            master::key_check_value(&SecretKey::from_bytes(&mut master.to_owned()))
        }

        /// `key` wrapped under `master` for a key row; `None` for a purpose
        /// other than `data` and `index`.
        pub fn wrap_key(
            master: &[u8; 32],
            keyring_id: Option<&[u8]>,
            purpose: &str,
            id: u32,
            key: &[u8; 32],
        ) -> Option<Vec<u8>> {
            let binding = Binding {
                keyring: keyring_id,
                purpose: static_purpose(purpose)?,
                id,
            };
            Some(master::wrap_key(
                &SecretKey::from_bytes(&mut master.to_owned()),
                binding,
                &SecretKey::from_bytes(&mut key.to_owned()),
            ))
        }

        /// The key-list MAC a key store writes for `rows`.
        pub fn key_list_mac(
            master: &[u8; 32],
            keyring_id: &[u8],
            version: i64,
            rows: &[KeyRowIn],
        ) -> Vec<u8> {
            keystore::list_mac(
                &SecretKey::from_bytes(&mut master.to_owned()),
                keyring_id,
                version,
                &key_rows(rows),
            )
        }
    }
}
