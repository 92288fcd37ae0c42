//! Envelope mode: data and blind-index keys stored wrapped in the database.
//!
//! Two tables, created by [`KeyStore::install_schema`], or by a migration
//! of your own holding the same DDL ([`schema_sql`], or the files in the
//! library's `sql/` directory):
//!
//! - `fieldseal_keyring`: one row with the Argon2id salt and parameters,
//!   the key check value of the master key, the keyring's random id, a
//!   version counter and a MAC over the key list;
//! - `fieldseal_keys`: `(purpose, id)` → the key wrapped with AES-256-GCM
//!   under the master key (bound to the keyring id, purpose and key id),
//!   its state and creation time.
//!
//! The master key itself is never stored. Changing the passphrase re-wraps
//! the keys and touches no row of user data.
//!
//! # Integrity
//!
//! The key table is authenticated as a whole: the MAC covers every key
//! row (purpose, id, state, wrapped bytes) and the version, so a deleted,
//! added, re-stated or rolled-back row is refused with
//! [`Error::KeyTableAltered`] before anything is written, and a wrapped
//! key copied from another database that shares the master key does not
//! unwrap (its keyring id differs).
//!
//! # Concurrency
//!
//! Every write is a compare-and-swap on the keyring row's version, which
//! every write really changes: two writers (on one server, or on two nodes
//! of a cluster, where only a changed row is certified) always conflict,
//! and the loser reads the new state and applies its change again. No
//! interleaving of creation, rotation and passphrase changes can leave a
//! keyring that no master key opens.
//!
//! A key table of format 1 (no keyring id, no MAC) is upgraded by the
//! first [`KeyStore::unlock`] with the right master key.

mod record_keys;
pub use record_keys::RewrapStep;
pub(crate) mod tables;

pub use tables::{schema_sql, KeyStoreConnection, SqlDialect};

use crate::crypto::key::SecretKey;
use crate::crypto::keyring::Keyring;
use crate::crypto::master::{self, Binding, KdfParams, ListedKey, MasterSecret};
use crate::error::{Error, KeyStoreError, Result};
use tables::{KeyRow, KeyringRow};

/// Purpose of a stored key: seals field values.
pub const PURPOSE_DATA: &str = "data";
/// Purpose of a stored key: computes blind indexes.
pub const PURPOSE_INDEX: &str = "index";
/// Purpose of a stored key: authenticates an audit trail (never rotated
/// with the data keys, so a trail stays verifiable).
pub const PURPOSE_AUDIT: &str = "audit";
/// State of a key that seals new values (data) or indexes (index).
pub const STATE_ACTIVE: &str = "active";
/// State of an older key that still protects rows (a rotation has not
/// finished re-encrypting or re-indexing them).
pub const STATE_DECRYPT_ONLY: &str = "decrypt-only";
/// State of an older key that no row uses any more. It is kept, so a value
/// restored from an old backup still opens.
pub const STATE_RETIRED: &str = "retired";

/// How many times a write is tried when other writers keep changing the
/// key store under it.
const WRITE_ATTEMPTS: u32 = 12;

/// The public facts of a stored key (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// [`PURPOSE_DATA`], [`PURPOSE_INDEX`] or [`PURPOSE_AUDIT`].
    pub purpose: String,
    /// Key id (data) or version (index).
    pub id: u32,
    /// [`STATE_ACTIVE`], [`STATE_DECRYPT_ONLY`] or [`STATE_RETIRED`].
    pub state: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// Creates, unlocks and changes the key store.
#[derive(Debug, Clone, Copy)]
pub struct KeyStore;

/// One unwrapped key with its stored facts.
pub(crate) struct OpenKey {
    purpose: &'static str,
    id: u32,
    state: String,
    created_at: i64,
    key: SecretKey,
}

impl OpenKey {
    /// A new random key, active, created now.
    fn generate(purpose: &'static str, id: u32) -> Self {
        OpenKey {
            purpose,
            id,
            state: STATE_ACTIVE.into(),
            created_at: unix_now(),
            key: SecretKey::generate(),
        }
    }
}

/// The key store as read, checked and unwrapped.
struct Opened {
    row: KeyringRow,
    master: SecretKey,
    keys: Vec<OpenKey>,
}

/// What a write makes of the unwrapped key list.
struct Change {
    keys: Vec<OpenKey>,
    /// A new master key, salt and parameters (a passphrase change).
    new_master: Option<(SecretKey, [u8; 16], KdfParams)>,
}

impl KeyStore {
    /// Creates the key store tables if they are missing, and upgrades a
    /// format-1 `fieldseal_keyring` table to format 2. Safe to run on
    /// every start. (MySQL commits DDL implicitly: call it outside a
    /// transaction.)
    ///
    /// # Errors
    /// [`Error::Database`].
    pub fn install_schema<C: KeyStoreConnection>(conn: &mut C) -> Result<()> {
        Ok(conn.install_keystore_schema()?)
    }

    /// Whether a keyring has been created in this database.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub fn is_initialized<C: KeyStoreConnection>(conn: &mut C) -> Result<bool> {
        Ok(conn.load_keyring_row()?.is_some())
    }

    /// Creates a keyring: a random data key (id 1) and index key (version
    /// 1), wrapped under the master key from `secret`, in one transaction.
    ///
    /// # Errors
    /// [`Error::WeakPassphrase`] for a passphrase under 8 characters;
    /// [`KeyStoreError::KdfParams`] for parameters outside
    /// [`KdfParams::FLOOR`]..[`KdfParams::CEILING`];
    /// [`KeyStoreError::AlreadyInitialized`] if the database already has a
    /// keyring (another process may have just made it); [`Error::Database`].
    pub fn create<C: KeyStoreConnection>(
        conn: &mut C,
        secret: &MasterSecret,
        params: KdfParams,
    ) -> Result<Keyring> {
        secret.check_strength()?;
        params.check()?;
        let salt = master::new_salt();
        let master_key = secret.derive(&salt, params)?;
        let now = unix_now();
        let keys = vec![
            OpenKey::generate(PURPOSE_DATA, 1),
            OpenKey::generate(PURPOSE_INDEX, 1),
            OpenKey::generate(PURPOSE_AUDIT, 1),
        ];
        let keyring_id = master::new_keyring_id().to_vec();
        let key_rows = wrap_all(&master_key, &keyring_id, &keys);
        let row = KeyringRow {
            id: 1,
            kdf_salt: salt.to_vec(),
            kdf_m_cost: to_i32(params.m_cost_kib)?,
            kdf_t_cost: to_i32(params.t_cost)?,
            kdf_p_cost: to_i32(params.p_cost)?,
            key_check: master::key_check_value(&master_key),
            created_at: now,
            version: 1,
            key_list_mac: Some(list_mac(&master_key, &keyring_id, 1, &key_rows)),
            keyring_id: Some(keyring_id),
        };
        let inserted = conn.write_transaction(|conn| {
            if conn.load_keyring_row()?.is_some() {
                return Err(KeyStoreError::AlreadyInitialized.into());
            }
            conn.insert_keyring_row(&row)?;
            key_rows.iter().try_for_each(|r| conn.insert_key_row(r))?;
            Ok::<_, Error>(())
        });
        match inserted {
            Ok(()) => to_keyring(keys),
            // Another process inserted the row first: on one server a
            // duplicate key, on a cluster a certification conflict.
            Err(Error::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation
                | diesel::result::DatabaseErrorKind::SerializationFailure,
                _,
            ))) => Err(KeyStoreError::AlreadyInitialized.into()),
            Err(e) => Err(e),
        }
    }

    /// Unlocks the stored keys with the master key from `secret`, after
    /// checking the key table as a whole. A format-1 key table is upgraded
    /// to format 2 on the way (a write).
    ///
    /// # Errors
    /// [`Error::WrongMasterKey`] at once when the key check value does not
    /// match; [`Error::KeyTableAltered`] when the key list is not the one
    /// its MAC covers; [`Error::CorruptWrappedKey`] when a wrapped key was
    /// altered or copied from elsewhere; [`KeyStoreError::NotInitialized`]
    /// when no keyring exists; [`KeyStoreError::KdfParams`] when the stored
    /// parameters are out of bounds.
    pub fn unlock<C: KeyStoreConnection>(conn: &mut C, secret: &MasterSecret) -> Result<Keyring> {
        unlock_versioned(conn, secret).map(|(keyring, _)| keyring)
    }

    /// Unlocks the keyring, creating it first if the database has none.
    /// Returns the keyring and whether it was created now.
    ///
    /// # Errors
    /// As [`KeyStore::create`] and [`KeyStore::unlock`].
    pub fn open_or_create<C: KeyStoreConnection>(
        conn: &mut C,
        secret: &MasterSecret,
        params: KdfParams,
    ) -> Result<(Keyring, bool)> {
        if Self::is_initialized(conn)? {
            return Self::unlock(conn, secret).map(|k| (k, false));
        }
        match Self::create(conn, secret, params) {
            Ok(keyring) => Ok((keyring, true)),
            Err(Error::KeyStore(KeyStoreError::AlreadyInitialized)) => {
                Self::unlock(conn, secret).map(|k| (k, false))
            }
            Err(e) => Err(e),
        }
    }

    /// The master key from `secret` (Argon2id of a passphrase, or the key
    /// itself), checked against the stored key check value. Keep it as
    /// `MasterSecret::Key` to unlock again later without the passphrase.
    ///
    /// # Errors
    /// [`Error::WrongMasterKey`]; [`KeyStoreError::NotInitialized`].
    pub fn derive_master_key<C: KeyStoreConnection>(
        conn: &mut C,
        secret: &MasterSecret,
    ) -> Result<SecretKey> {
        let row = conn
            .load_keyring_row()?
            .ok_or(KeyStoreError::NotInitialized)?;
        derive_checked(&row, secret)
    }

    /// The stored keys' ids, states and ages (read as they are, without
    /// the master key: for reports).
    ///
    /// # Errors
    /// [`Error::Database`], [`KeyStoreError::KeyIdOutOfRange`].
    pub fn keys<C: KeyStoreConnection>(conn: &mut C) -> Result<Vec<KeyInfo>> {
        conn.load_key_rows()?
            .into_iter()
            .map(|row| {
                Ok(KeyInfo {
                    id: key_id(row.id)?,
                    purpose: row.purpose,
                    state: row.state,
                    created_at: row.created_at,
                })
            })
            .collect()
    }

    /// The Argon2id parameters the stored master key was derived with.
    ///
    /// # Errors
    /// [`KeyStoreError::NotInitialized`]; [`Error::Database`].
    pub fn kdf_params<C: KeyStoreConnection>(conn: &mut C) -> Result<KdfParams> {
        let row = conn
            .load_keyring_row()?
            .ok_or(KeyStoreError::NotInitialized)?;
        stored_params(&row)
    }

    /// The key store's version: it changes with every write, so a
    /// long-running process compares it to know when to unlock again (a
    /// key another process added).
    ///
    /// # Errors
    /// [`KeyStoreError::NotInitialized`]; [`Error::Database`].
    pub fn version<C: KeyStoreConnection>(conn: &mut C) -> Result<i64> {
        Ok(conn
            .load_keyring_row()?
            .ok_or(KeyStoreError::NotInitialized)?
            .version)
    }

    /// Adds a new data key, one above the highest id, and makes it the
    /// active one (the previous active key becomes decrypt-only). Returns
    /// the unlocked keyring with the new key.
    ///
    /// # Errors
    /// As [`KeyStore::unlock`]; [`Error::KeyStoreContended`] when other
    /// writers kept changing the key store.
    pub fn add_data_key<C: KeyStoreConnection>(
        conn: &mut C,
        secret: &MasterSecret,
    ) -> Result<Keyring> {
        add_key(conn, secret, PURPOSE_DATA)
    }

    /// Adds a new blind-index key version and makes it current (the
    /// previous one stays, decrypt-only, so lookups consult both until
    /// every row is re-indexed). Returns the unlocked keyring.
    ///
    /// # Errors
    /// As [`KeyStore::add_data_key`].
    pub fn add_index_key<C: KeyStoreConnection>(
        conn: &mut C,
        secret: &MasterSecret,
    ) -> Result<Keyring> {
        add_key(conn, secret, PURPOSE_INDEX)
    }

    /// Adds an audit key ([`PURPOSE_AUDIT`]) to a key store made before
    /// audit trails, if it has none; key stores made now have one. Returns
    /// the unlocked keyring (with its audit key).
    ///
    /// # Errors
    /// As [`KeyStore::add_data_key`].
    pub fn ensure_audit_key<C: KeyStoreConnection>(
        conn: &mut C,
        secret: &MasterSecret,
    ) -> Result<Keyring> {
        let (keyring, _) = write(conn, secret, |mut keys| {
            if !keys.iter().any(|k| k.purpose == PURPOSE_AUDIT) {
                keys.push(OpenKey::generate(PURPOSE_AUDIT, 1));
            }
            Ok(Change {
                keys,
                new_master: None,
            })
        })?;
        Ok(keyring)
    }

    /// Marks every data key not in `keep` (and not active) as retired,
    /// after a rotation re-encrypted all rows. Returns the ids retired now.
    ///
    /// # Errors
    /// As [`KeyStore::add_data_key`].
    pub fn retire_data_keys_except<C: KeyStoreConnection>(
        conn: &mut C,
        secret: &MasterSecret,
        keep: &[u32],
    ) -> Result<Vec<u32>> {
        retire(conn, secret, PURPOSE_DATA, keep)
    }

    /// Marks every index key version not in `keep` (and not current) as
    /// retired, after every row was re-indexed under the current one.
    ///
    /// # Errors
    /// As [`KeyStore::add_data_key`].
    pub fn retire_index_keys_except<C: KeyStoreConnection>(
        conn: &mut C,
        secret: &MasterSecret,
        keep: &[u32],
    ) -> Result<Vec<u32>> {
        retire(conn, secret, PURPOSE_INDEX, keep)
    }

    /// Re-wraps every stored key under the master key from `new`, with a
    /// fresh salt and `params`, in one transaction. No row of data is
    /// touched; the old passphrase or master key stops working.
    ///
    /// # Errors
    /// [`Error::WeakPassphrase`] for a new passphrase under 8 characters;
    /// [`Error::WrongMasterKey`] when `old` is wrong (nothing changes);
    /// as [`KeyStore::add_data_key`].
    pub fn change_master<C: KeyStoreConnection>(
        conn: &mut C,
        old: &MasterSecret,
        new: &MasterSecret,
        params: KdfParams,
    ) -> Result<()> {
        new.check_strength()?;
        params.check()?;
        let salt = master::new_salt();
        let new_key = new.derive(&salt, params)?;
        let mut new_key = Some(new_key);
        write(conn, old, |keys| {
            let key = new_key
                .take()
                .map_or_else(|| new.derive(&salt, params), Ok)?;
            Ok(Change {
                keys,
                new_master: Some((key, salt, params)),
            })
        })
        .map(drop)
    }
}

/// [`KeyStore::unlock`], with the version of the state it unlocked.
fn unlock_versioned<C: KeyStoreConnection>(
    conn: &mut C,
    secret: &MasterSecret,
) -> Result<(Keyring, i64)> {
    let opened = open(conn, secret, None)?;
    if opened.row.keyring_id.is_none() {
        // Format 1: bind and authenticate it now.
        return write(conn, secret, |keys| {
            Ok(Change {
                keys,
                new_master: None,
            })
        });
    }
    Ok((to_keyring(opened.keys)?, opened.row.version))
}

/// An unlocked key store that follows the changes other processes make to
/// it: what a long-running process holds. The master key is derived once
/// (Argon2id runs at [`open`](Self::open) only); [`refresh`](Self::refresh)
/// costs one small query and unlocks again only when the key store
/// changed, so a data key or blind-index key another process added (a
/// rotation) is used at once, for sealing, opening and lookups alike.
pub struct KeyStoreSession {
    keyring: std::sync::Arc<Keyring>,
    master: MasterSecret,
    version: i64,
}

impl KeyStoreSession {
    /// Unlocks the key store (see [`KeyStore::unlock`]) and keeps the
    /// derived master key to unlock it again later.
    ///
    /// # Errors
    /// As [`KeyStore::unlock`].
    pub fn open<C: KeyStoreConnection>(conn: &mut C, secret: &MasterSecret) -> Result<Self> {
        let master = MasterSecret::Key(KeyStore::derive_master_key(conn, secret)?);
        let (keyring, version) = unlock_versioned(conn, &master)?;
        Ok(KeyStoreSession {
            keyring: std::sync::Arc::new(keyring),
            master,
            version,
        })
    }

    /// The keyring as of the last open or refresh.
    pub fn keyring(&self) -> &std::sync::Arc<Keyring> {
        &self.keyring
    }

    /// The master key that unlocked it (never a passphrase: the key
    /// derived from it), for key-store writes such as a rotation.
    pub fn master(&self) -> &MasterSecret {
        &self.master
    }

    /// Unlocks again if the key store changed since; returns whether it
    /// did.
    ///
    /// # Errors
    /// As [`KeyStore::unlock`]: a passphrase changed meanwhile is
    /// [`Error::WrongMasterKey`].
    pub fn refresh<C: KeyStoreConnection>(&mut self, conn: &mut C) -> Result<bool> {
        if KeyStore::version(conn)? == self.version {
            return Ok(false);
        }
        let (keyring, version) = unlock_versioned(conn, &self.master)?;
        self.keyring = std::sync::Arc::new(keyring);
        self.version = version;
        Ok(true)
    }
}

impl std::fmt::Debug for KeyStoreSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStoreSession")
            .field("keyring", &self.keyring)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn add_key<C: KeyStoreConnection>(
    conn: &mut C,
    secret: &MasterSecret,
    purpose: &'static str,
) -> Result<Keyring> {
    let (keyring, _) = write(conn, secret, |mut keys| {
        let next = keys
            .iter()
            .filter(|k| k.purpose == purpose)
            .map(|k| k.id)
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or(KeyStoreError::KeyIdOutOfRange(i64::from(u32::MAX) + 1))?;
        for k in keys
            .iter_mut()
            .filter(|k| k.purpose == purpose && k.state == STATE_ACTIVE)
        {
            k.state = STATE_DECRYPT_ONLY.into();
        }
        keys.push(OpenKey::generate(purpose, next));
        Ok(Change {
            keys,
            new_master: None,
        })
    })?;
    Ok(keyring)
}

fn retire<C: KeyStoreConnection>(
    conn: &mut C,
    secret: &MasterSecret,
    purpose: &str,
    keep: &[u32],
) -> Result<Vec<u32>> {
    let mut retired = Vec::new();
    write(conn, secret, |mut keys| {
        retired.clear();
        for k in keys.iter_mut().filter(|k| {
            k.purpose == purpose && k.state == STATE_DECRYPT_ONLY && !keep.contains(&k.id)
        }) {
            k.state = STATE_RETIRED.into();
            retired.push(k.id);
        }
        Ok(Change {
            keys,
            new_master: None,
        })
    })?;
    Ok(retired)
}

/// Reads the keyring row and key rows as one consistent state: the
/// version is read before and after the key rows, and every write changes
/// it, so equal versions mean no write came in between.
fn snapshot<C: KeyStoreConnection>(conn: &mut C) -> Result<(KeyringRow, Vec<KeyRow>)> {
    for _ in 0..WRITE_ATTEMPTS {
        let row = conn
            .load_keyring_row()?
            .ok_or(KeyStoreError::NotInitialized)?;
        let keys = conn.load_key_rows()?;
        let again = conn
            .load_keyring_row()?
            .ok_or(KeyStoreError::NotInitialized)?;
        if again.version == row.version && again.key_list_mac == row.key_list_mac {
            return Ok((row, keys));
        }
        backoff(1);
    }
    Err(Error::KeyStoreContended {
        attempts: WRITE_ATTEMPTS,
    })
}

/// The master key from `secret`, checked against the row's key check.
pub(crate) fn derive_checked(row: &KeyringRow, secret: &MasterSecret) -> Result<SecretKey> {
    let key = secret.derive(&row.kdf_salt, stored_params(row)?)?;
    if !master::verify_key_check(&key, &row.key_check) {
        return Err(Error::WrongMasterKey);
    }
    Ok(key)
}

/// Reads, checks and unwraps the key store. `known` is a master key this
/// process derived before for the same salt (to spare Argon2 on a retry).
fn open<C: KeyStoreConnection>(
    conn: &mut C,
    secret: &MasterSecret,
    known: Option<(&[u8], &SecretKey)>,
) -> Result<Opened> {
    let (row, key_rows) = snapshot(conn)?;
    let master = match known {
        Some((salt, key))
            if salt == row.kdf_salt.as_slice() && master::verify_key_check(key, &row.key_check) =>
        {
            key.duplicate()
        }
        _ => derive_checked(&row, secret)?,
    };
    let keys = check_and_unwrap(&row, &key_rows, &master)?;
    Ok(Opened { row, master, keys })
}

/// What unlocking does with the rows it read, once the master key is
/// known: the key-list MAC (format 2), then every key unwrapped under its
/// binding. `key_rows` in (purpose, id) order, as the database gives them.
pub(crate) fn check_and_unwrap(
    row: &KeyringRow,
    key_rows: &[KeyRow],
    master: &SecretKey,
) -> Result<Vec<OpenKey>> {
    if let Some(keyring_id) = &row.keyring_id {
        let listed: Vec<ListedKey<'_>> = key_rows
            .iter()
            .map(|r| {
                Ok(ListedKey {
                    purpose: r.purpose.as_str(),
                    id: key_id(r.id)?,
                    state: r.state.as_str(),
                    wrapped: &r.wrapped,
                })
            })
            .collect::<Result<_>>()?;
        let mac = row.key_list_mac.as_deref().unwrap_or_default();
        if !master::verify_key_list_mac(master, keyring_id, row.version, &listed, mac) {
            return Err(Error::KeyTableAltered);
        }
    }
    let mut keys = Vec::with_capacity(key_rows.len());
    for r in key_rows {
        let purpose = match r.purpose.as_str() {
            PURPOSE_DATA => PURPOSE_DATA,
            PURPOSE_INDEX => PURPOSE_INDEX,
            PURPOSE_AUDIT => PURPOSE_AUDIT,
            other => return Err(KeyStoreError::UnknownPurpose(other.to_owned()).into()),
        };
        let id = key_id(r.id)?;
        let binding = Binding {
            keyring: row.keyring_id.as_deref(),
            purpose,
            id,
        };
        keys.push(OpenKey {
            purpose,
            id,
            state: r.state.clone(),
            created_at: r.created_at,
            key: master::unwrap_key(master, binding, &r.wrapped)?,
        });
    }
    Ok(keys)
}

/// One key-store write: read and check the current state, let `change`
/// compute the new key list, then write it with a compare-and-swap on the
/// version. A writer that lost the swap (or whose transaction the server
/// aborted as a deadlock or a cluster conflict) reads again and applies
/// its change to the new state. Returns the keyring as written.
fn write<C, F>(conn: &mut C, secret: &MasterSecret, mut change: F) -> Result<(Keyring, i64)>
where
    C: KeyStoreConnection,
    F: FnMut(Vec<OpenKey>) -> Result<Change>,
{
    let mut known: Option<(Vec<u8>, SecretKey)> = None;
    for attempt in 0..WRITE_ATTEMPTS {
        let opened = open(
            conn,
            secret,
            known.as_ref().map(|(salt, key)| (salt.as_slice(), key)),
        )?;
        known = Some((opened.row.kdf_salt.clone(), opened.master.duplicate()));
        let expected = opened.row.version;
        // The rows as read: the swap below writes only if nothing changed
        // since, so these are the rows to update rather than insert.
        let stored: Vec<(&'static str, i64)> = opened
            .keys
            .iter()
            .map(|k| (k.purpose, i64::from(k.id)))
            .collect();
        let Change { keys, new_master } = change(opened.keys)?;
        let keyring_id = opened
            .row
            .keyring_id
            .clone()
            .unwrap_or_else(|| master::new_keyring_id().to_vec());
        let mut row = opened.row.clone();
        let master_key = match new_master {
            Some((key, salt, params)) => {
                row.kdf_salt = salt.to_vec();
                row.kdf_m_cost = to_i32(params.m_cost_kib)?;
                row.kdf_t_cost = to_i32(params.t_cost)?;
                row.kdf_p_cost = to_i32(params.p_cost)?;
                row.key_check = master::key_check_value(&key);
                key
            }
            None => opened.master.duplicate(),
        };
        let key_rows = wrap_all(&master_key, &keyring_id, &keys);
        row.version = expected + 1;
        row.key_list_mac = Some(list_mac(&master_key, &keyring_id, row.version, &key_rows));
        row.keyring_id = Some(keyring_id);
        let written = conn.write_transaction(|conn| {
            // The swap first: a concurrent writer waits on this row and
            // then finds the version moved on.
            if !conn.swap_keyring_row(&row, expected)? {
                return Ok(false);
            }
            for r in &key_rows {
                if stored.iter().any(|(p, id)| *p == r.purpose && *id == r.id) {
                    conn.update_key_row(r)?;
                } else {
                    conn.insert_key_row(r)?;
                }
            }
            Ok::<_, Error>(true)
        });
        match written {
            Ok(true) => return Ok((to_keyring(keys)?, row.version)),
            Ok(false) => {}
            Err(Error::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::SerializationFailure
                | diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            ))) => {}
            Err(e) => return Err(e),
        }
        backoff(attempt);
    }
    Err(Error::KeyStoreContended {
        attempts: WRITE_ATTEMPTS,
    })
}

/// Every key wrapped under `master`, bound to `keyring_id`.
fn wrap_all(master: &SecretKey, keyring_id: &[u8], keys: &[OpenKey]) -> Vec<KeyRow> {
    keys.iter()
        .map(|k| KeyRow {
            purpose: k.purpose.to_owned(),
            id: i64::from(k.id),
            wrapped: master::wrap_key(
                master,
                Binding {
                    keyring: Some(keyring_id),
                    purpose: k.purpose,
                    id: k.id,
                },
                &k.key,
            ),
            state: k.state.clone(),
            created_at: k.created_at,
        })
        .collect()
}

/// The key-list MAC of `rows` (see `master::key_list_mac`).
pub(crate) fn list_mac(
    master: &SecretKey,
    keyring_id: &[u8],
    version: i64,
    rows: &[KeyRow],
) -> Vec<u8> {
    let listed: Vec<ListedKey<'_>> = rows
        .iter()
        .map(|r| ListedKey {
            purpose: r.purpose.as_str(),
            id: u32::try_from(r.id).unwrap_or(u32::MAX),
            state: r.state.as_str(),
            wrapped: &r.wrapped,
        })
        .collect();
    master::key_list_mac(master, keyring_id, version, &listed)
}

/// The keyring from unwrapped keys: the highest id of each purpose is the
/// active one, as every write keeps it.
pub(crate) fn to_keyring(keys: Vec<OpenKey>) -> Result<Keyring> {
    let mut data = Vec::new();
    let mut index = Vec::new();
    let mut audit = None;
    for k in keys {
        match k.purpose {
            PURPOSE_DATA => data.push((k.id, k.key)),
            PURPOSE_AUDIT => audit = Some(k.key),
            _ => index.push((k.id, k.key)),
        }
    }
    let keyring = Keyring::new(data, index).map_err(|_| Error::from(KeyStoreError::NoDataKey))?;
    Ok(match audit {
        Some(key) => keyring.with_audit_key(key),
        None => keyring,
    })
}

/// Jittered exponential backoff between attempts: 5 ms doubling, up to
/// about half a second, times a random factor from 0.5 to 1.5.
fn backoff(attempt: u32) {
    use aes_gcm::aead::{rand_core::RngCore, OsRng};
    let base = 5u64 << attempt.min(7);
    let jitter = 500 + u64::from(OsRng.next_u32() % 1000);
    std::thread::sleep(std::time::Duration::from_millis(base * jitter / 1000));
}

fn to_i32(v: u32) -> Result<i32> {
    i32::try_from(v).map_err(|_| KeyStoreError::KdfParams("a parameter is too large".into()).into())
}

fn key_id(id: i64) -> Result<u32> {
    u32::try_from(id).map_err(|_| KeyStoreError::KeyIdOutOfRange(id).into())
}

fn stored_params(row: &KeyringRow) -> Result<KdfParams> {
    let as_u32 = |v: i32| {
        u32::try_from(v)
            .map_err(|_| KeyStoreError::KdfParams("a stored parameter is negative".into()))
    };
    let params = KdfParams {
        m_cost_kib: as_u32(row.kdf_m_cost)?,
        t_cost: as_u32(row.kdf_t_cost)?,
        p_cost: as_u32(row.kdf_p_cost)?,
    };
    params.check()?;
    Ok(params)
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
#[cfg(feature = "sqlite")]
mod tests {
    use super::tables::sealed::Tables as _;
    use super::*;
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    crate::context!(TC = "t.c");

    /// A key table exactly as format 1 wrote it: no keyring id, no MAC,
    /// wraps bound to purpose and id only.
    fn format_1_store(conn: &mut SqliteConnection, master: &SecretKey) -> Keyring {
        conn.batch_execute(include_str!("../../sql/sqlite.sql"))
            .unwrap();
        let (data, index) = (SecretKey::generate(), SecretKey::generate());
        let wrap = |purpose, key: &SecretKey| {
            master::wrap_key(
                master,
                Binding {
                    keyring: None,
                    purpose,
                    id: 1,
                },
                key,
            )
        };
        diesel::sql_query(
            "INSERT INTO fieldseal_keyring (id, kdf_salt, kdf_m_cost, kdf_t_cost, kdf_p_cost, \
             key_check, created_at) VALUES (1, x'00', 19456, 2, 1, ?, 0)",
        )
        .bind::<diesel::sql_types::Binary, _>(master::key_check_value(master))
        .execute(conn)
        .unwrap();
        for (purpose, key) in [(PURPOSE_DATA, &data), (PURPOSE_INDEX, &index)] {
            diesel::sql_query(
                "INSERT INTO fieldseal_keys (purpose, id, wrapped, state, created_at) \
                 VALUES (?, 1, ?, 'active', 0)",
            )
            .bind::<diesel::sql_types::Text, _>(purpose)
            .bind::<diesel::sql_types::Binary, _>(wrap(purpose, key))
            .execute(conn)
            .unwrap();
        }
        Keyring::new([(1, data)], [(1, index)]).unwrap()
    }

    #[test]
    fn a_format_1_key_table_is_upgraded_by_the_first_unlock() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let master = SecretKey::generate();
        let old = format_1_store(&mut conn, &master);
        let sealed = old.seal::<TC, _>("kept").unwrap();

        KeyStore::install_schema(&mut conn).unwrap();
        KeyStore::install_schema(&mut conn).expect("repeatable");
        let secret = MasterSecret::Key(master.duplicate());
        let ring = KeyStore::unlock(&mut conn, &secret).unwrap();
        assert_eq!(ring.open::<_, String>(&sealed).unwrap(), "kept");

        let row = conn.load_keyring_row().unwrap().unwrap();
        assert_eq!(row.version, 1);
        assert_eq!(row.keyring_id.as_ref().map(Vec::len), Some(16));
        assert!(row.key_list_mac.is_some());
        // From now on the table is authenticated: format 2 on every path.
        let again = KeyStore::unlock(&mut conn, &secret).unwrap();
        assert_eq!(again.open::<_, String>(&sealed).unwrap(), "kept");
        conn.batch_execute("DELETE FROM fieldseal_keys WHERE purpose = 'index'")
            .unwrap();
        assert!(matches!(
            KeyStore::unlock(&mut conn, &secret).unwrap_err(),
            Error::KeyTableAltered
        ));
    }
}
