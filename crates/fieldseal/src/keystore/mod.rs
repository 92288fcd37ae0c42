//! Envelope mode: data and blind-index keys stored wrapped in the database.
//!
//! Two tables, created by [`KeyStore::install_schema`], or by a
//! migration of your own holding the same DDL ([`schema_sql`], or the
//! files in the library's `sql/` directory):
//!
//! - `fieldseal_keyring`: one row with the Argon2id salt and parameters and
//!   the key check value of the master key;
//! - `fieldseal_keys`: `(purpose, id)` → the key wrapped with AES-256-GCM
//!   under the master key, its state and creation time.
//!
//! The master key itself is never stored. Changing the passphrase re-wraps
//! the keys and touches no row of user data.

use crate::crypto::key::SecretKey;
use crate::crypto::keyring::Keyring;
use crate::crypto::master::{self, KdfParams, MasterSecret};
use crate::error::{Error, KeyStoreError, Result};
use diesel::prelude::*;

/// Purpose of a stored key: seals field values.
pub const PURPOSE_DATA: &str = "data";
/// Purpose of a stored key: computes blind indexes.
pub const PURPOSE_INDEX: &str = "index";
/// State of a key that seals new values (data) or indexes (index).
pub const STATE_ACTIVE: &str = "active";
/// State of an older data key that still protects rows (a rotation has
/// not finished re-encrypting them).
pub const STATE_DECRYPT_ONLY: &str = "decrypt-only";
/// State of an older data key that no row uses any more. It is kept, so a
/// value restored from an old backup still opens.
pub const STATE_RETIRED: &str = "retired";

/// The public facts of a stored key (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// [`PURPOSE_DATA`] or [`PURPOSE_INDEX`].
    pub purpose: String,
    /// Key id (data) or version (index).
    pub id: u32,
    /// [`STATE_ACTIVE`], [`STATE_DECRYPT_ONLY`] or [`STATE_RETIRED`].
    pub state: String,
    /// Unix seconds.
    pub created_at: i64,
}

mod schema {
    diesel::table! {
        fieldseal_keyring (id) {
            id -> Integer,
            kdf_salt -> Binary,
            kdf_m_cost -> Integer,
            kdf_t_cost -> Integer,
            kdf_p_cost -> Integer,
            key_check -> Binary,
            created_at -> BigInt,
        }
    }

    diesel::table! {
        fieldseal_keys (purpose, id) {
            purpose -> Text,
            id -> BigInt,
            wrapped -> Binary,
            state -> Text,
            created_at -> BigInt,
        }
    }
}

use schema::{fieldseal_keyring, fieldseal_keys};

/// The single `fieldseal_keyring` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = fieldseal_keyring)]
#[doc(hidden)]
pub struct KeyringRow {
    /// Always 1.
    pub id: i32,
    /// Argon2id salt.
    pub kdf_salt: Vec<u8>,
    /// Argon2id memory cost, KiB.
    pub kdf_m_cost: i32,
    /// Argon2id iterations.
    pub kdf_t_cost: i32,
    /// Argon2id lanes.
    pub kdf_p_cost: i32,
    /// HMAC-SHA256 key check value of the master key.
    pub key_check: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
}

/// One wrapped key.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = fieldseal_keys)]
#[doc(hidden)]
pub struct KeyRow {
    /// [`PURPOSE_DATA`] or [`PURPOSE_INDEX`].
    pub purpose: String,
    /// Key id (data) or version (index).
    pub id: i64,
    /// The key wrapped under the master key.
    pub wrapped: Vec<u8>,
    /// [`STATE_ACTIVE`] or [`STATE_RETIRED`].
    pub state: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A Diesel connection the key store can use: `MysqlConnection`,
/// `SqliteConnection` or `PgConnection`, with the matching feature.
/// Implemented by this crate only.
pub trait KeyStoreConnection: Connection + sealed::Tables {}

mod sealed {
    use super::{KeyRow, KeyringRow};
    use diesel::QueryResult;

    /// The key store's queries on one backend (not public API).
    pub trait Tables {
        /// Creates the key store tables if they do not exist.
        fn install_keystore_schema(&mut self) -> QueryResult<()>;
        /// The keyring row, if the store is initialized.
        fn load_keyring_row(&mut self) -> QueryResult<Option<KeyringRow>>;
        /// Every stored key.
        fn load_key_rows(&mut self) -> QueryResult<Vec<KeyRow>>;
        /// Inserts the keyring row.
        fn insert_keyring_row(&mut self, row: &KeyringRow) -> QueryResult<()>;
        /// Inserts a wrapped key.
        fn insert_key_row(&mut self, row: &KeyRow) -> QueryResult<()>;
        /// Replaces the keyring row (new salt, parameters, key check value).
        fn update_keyring_row(&mut self, row: &KeyringRow) -> QueryResult<()>;
        /// Replaces a key's wrapped bytes and state.
        fn update_key_row(&mut self, row: &KeyRow) -> QueryResult<()>;
        /// Takes the key store's write lock for the rest of the transaction (a
        /// no-op update of the keyring row), so a rotation and a passphrase
        /// change cannot interleave: each checks the master key after taking it.
        fn lock_keyring(&mut self) -> QueryResult<()>;
        /// A transaction that reads, then writes. On SQLite it takes the write
        /// lock up front (`BEGIN IMMEDIATE`): a deferred transaction that has
        /// read cannot wait for the lock and would fail with "database is
        /// locked" under a concurrent writer.
        fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
        where
            F: FnOnce(&mut Self) -> Result<T, E>,
            E: From<diesel::result::Error>;
    }
}

macro_rules! impl_keystore_connection {
    ($feature:literal, $conn:ty, $ddl:literal, $begin:ident) => {
        #[cfg(feature = $feature)]
        impl KeyStoreConnection for $conn {}

        #[cfg(feature = $feature)]
        impl sealed::Tables for $conn {
            fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
            where
                F: FnOnce(&mut Self) -> Result<T, E>,
                E: From<diesel::result::Error>,
            {
                self.$begin(f)
            }
            fn install_keystore_schema(&mut self) -> QueryResult<()> {
                diesel::connection::SimpleConnection::batch_execute(self, include_str!($ddl))
            }
            fn load_keyring_row(&mut self) -> QueryResult<Option<KeyringRow>> {
                fieldseal_keyring::table
                    .find(1)
                    .select(KeyringRow::as_select())
                    .first(self)
                    .optional()
            }
            fn load_key_rows(&mut self) -> QueryResult<Vec<KeyRow>> {
                fieldseal_keys::table
                    .select(KeyRow::as_select())
                    .order((fieldseal_keys::purpose, fieldseal_keys::id))
                    .load(self)
            }
            fn insert_keyring_row(&mut self, row: &KeyringRow) -> QueryResult<()> {
                diesel::insert_into(fieldseal_keyring::table)
                    .values(row.clone())
                    .execute(self)
                    .map(drop)
            }
            fn insert_key_row(&mut self, row: &KeyRow) -> QueryResult<()> {
                diesel::insert_into(fieldseal_keys::table)
                    .values(row.clone())
                    .execute(self)
                    .map(drop)
            }
            fn lock_keyring(&mut self) -> QueryResult<()> {
                diesel::update(fieldseal_keyring::table.find(1))
                    .set(fieldseal_keyring::created_at.eq(fieldseal_keyring::created_at))
                    .execute(self)
                    .map(drop)
            }
            fn update_keyring_row(&mut self, row: &KeyringRow) -> QueryResult<()> {
                diesel::update(fieldseal_keyring::table.find(row.id))
                    .set((
                        fieldseal_keyring::kdf_salt.eq(&row.kdf_salt),
                        fieldseal_keyring::kdf_m_cost.eq(row.kdf_m_cost),
                        fieldseal_keyring::kdf_t_cost.eq(row.kdf_t_cost),
                        fieldseal_keyring::kdf_p_cost.eq(row.kdf_p_cost),
                        fieldseal_keyring::key_check.eq(&row.key_check),
                    ))
                    .execute(self)
                    .map(drop)
            }
            fn update_key_row(&mut self, row: &KeyRow) -> QueryResult<()> {
                diesel::update(fieldseal_keys::table.find((&row.purpose, row.id)))
                    .set((
                        fieldseal_keys::wrapped.eq(&row.wrapped),
                        fieldseal_keys::state.eq(&row.state),
                    ))
                    .execute(self)
                    .map(drop)
            }
        }
    };
}

impl_keystore_connection!(
    "mysql",
    diesel::MysqlConnection,
    "../sql/mysql.sql",
    transaction
);
impl_keystore_connection!(
    "sqlite",
    diesel::SqliteConnection,
    "../sql/sqlite.sql",
    immediate_transaction
);
impl_keystore_connection!(
    "postgres",
    diesel::PgConnection,
    "../sql/postgres.sql",
    transaction
);

/// A backend the key store's DDL is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SqlDialect {
    /// MySQL and MariaDB.
    Mysql,
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The DDL that creates the key store's two tables on `dialect` (what
/// [`KeyStore::install_schema`] runs), for a migration of your own.
/// Idempotent: every statement is `CREATE TABLE IF NOT EXISTS`.
pub fn schema_sql(dialect: SqlDialect) -> &'static str {
    match dialect {
        SqlDialect::Mysql => include_str!("../sql/mysql.sql"),
        SqlDialect::Sqlite => include_str!("../sql/sqlite.sql"),
        SqlDialect::Postgres => include_str!("../sql/postgres.sql"),
    }
}

/// Creates and unlocks the key store.
#[derive(Debug, Clone, Copy)]
pub struct KeyStore;

impl KeyStore {
    /// Creates the key store tables if they are missing.
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
    /// [`Error::KeyStore`] if the database already has a keyring;
    /// [`Error::Database`].
    pub fn create<C: KeyStoreConnection>(
        conn: &mut C,
        secret: &MasterSecret,
        params: KdfParams,
    ) -> Result<Keyring> {
        let salt = master::new_salt();
        let master_key = secret.derive(&salt, params)?;
        let now = unix_now();
        let data_key = SecretKey::generate();
        let index_key = SecretKey::generate();
        let as_i32 = |v: u32| {
            i32::try_from(v)
                .map_err(|_| KeyStoreError::KdfParams("a parameter is too large".into()))
        };
        let keyring_row = KeyringRow {
            id: 1,
            kdf_salt: salt.to_vec(),
            kdf_m_cost: as_i32(params.m_cost_kib)?,
            kdf_t_cost: as_i32(params.t_cost)?,
            kdf_p_cost: as_i32(params.p_cost)?,
            key_check: master::key_check_value(&master_key),
            created_at: now,
        };
        let rows =
            [(PURPOSE_DATA, &data_key), (PURPOSE_INDEX, &index_key)].map(|(purpose, key)| KeyRow {
                purpose: purpose.to_owned(),
                id: 1,
                wrapped: master::wrap_key(&master_key, purpose, 1, key),
                state: STATE_ACTIVE.to_owned(),
                created_at: now,
            });
        conn.write_transaction(|conn| {
            if conn.load_keyring_row()?.is_some() {
                return Err(KeyStoreError::AlreadyInitialized.into());
            }
            conn.insert_keyring_row(&keyring_row)?;
            rows.iter().try_for_each(|row| conn.insert_key_row(row))?;
            Ok(())
        })
        .map_err(|e| match e {
            Error::Database(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => KeyStoreError::AlreadyInitialized.into(),
            other => other,
        })?;
        Keyring::new([(1, data_key)], [(1, index_key)])
    }

    /// Unlocks the stored keys with the master key from `secret`.
    ///
    /// # Errors
    /// [`Error::WrongMasterKey`] at once when the key check value does not
    /// match; [`Error::CorruptWrappedKey`] when a wrapped key was altered;
    /// [`Error::KeyStore`] when no keyring exists.
    pub fn unlock<C: KeyStoreConnection>(conn: &mut C, secret: &MasterSecret) -> Result<Keyring> {
        let row = conn
            .load_keyring_row()?
            .ok_or(KeyStoreError::NotInitialized)?;
        let master_key = secret.derive(&row.kdf_salt, stored_params(&row)?)?;
        if !master::verify_key_check(&master_key, &row.key_check) {
            return Err(Error::WrongMasterKey);
        }
        let mut data = Vec::new();
        let mut index = Vec::new();
        for key in conn.load_key_rows()? {
            let id = key_id(key.id)?;
            match key.purpose.as_str() {
                PURPOSE_DATA => data.push((
                    id,
                    master::unwrap_key(&master_key, PURPOSE_DATA, id, &key.wrapped)?,
                )),
                PURPOSE_INDEX => index.push((
                    id,
                    master::unwrap_key(&master_key, PURPOSE_INDEX, id, &key.wrapped)?,
                )),
                other => return Err(KeyStoreError::UnknownPurpose(other.to_owned()).into()),
            }
        }
        Keyring::new(data, index).map_err(|_| KeyStoreError::NoDataKey.into())
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
            // Another process created it between our check and our insert.
            Err(Error::KeyStore(KeyStoreError::AlreadyInitialized))
                if Self::is_initialized(conn)? =>
            {
                Self::unlock(conn, secret).map(|k| (k, false))
            }
            Err(e) => Err(e),
        }
    }
}

impl KeyStore {
    /// The master key from `secret` (Argon2id of a passphrase, or the key
    /// itself), checked against the stored key check value. Keep it as
    /// `MasterSecret::Key` to unlock again later without the passphrase.
    ///
    /// # Errors
    /// [`Error::WrongMasterKey`]; [`Error::KeyStore`] without a keyring.
    pub fn derive_master_key<C: KeyStoreConnection>(
        conn: &mut C,
        secret: &MasterSecret,
    ) -> Result<SecretKey> {
        master_key(conn, secret).map(|(_, key)| key)
    }

    /// The stored keys' ids, states and ages.
    ///
    /// # Errors
    /// [`Error::Database`], [`Error::KeyStore`] for an id out of range.
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

    /// Adds a new data key, one above the highest id, and makes it the
    /// active one (the previous active key becomes decrypt-only). Returns
    /// the unlocked keyring with the new key.
    ///
    /// # Errors
    /// [`Error::WrongMasterKey`] and the errors of [`KeyStore::unlock`].
    pub fn add_data_key<C: KeyStoreConnection>(
        conn: &mut C,
        secret: &MasterSecret,
    ) -> Result<Keyring> {
        Self::add_key(conn, secret, PURPOSE_DATA)
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
        Self::add_key(conn, secret, PURPOSE_INDEX)
    }

    fn add_key<C: KeyStoreConnection>(
        conn: &mut C,
        secret: &MasterSecret,
        purpose: &'static str,
    ) -> Result<Keyring> {
        conn.write_transaction(|conn| {
            // Lock first, then check the master key: a passphrase change
            // that committed meanwhile makes this one fail as a wrong
            // key instead of storing a key wrapped under the old master.
            conn.lock_keyring()?;
            let (_, master_key) = master_key(conn, secret)?;
            let rows = conn.load_key_rows()?;
            let next = rows
                .iter()
                .filter(|r| r.purpose == purpose)
                .map(|r| r.id)
                .max()
                .unwrap_or(0)
                + 1;
            let id = key_id(next)?;
            for mut row in rows
                .into_iter()
                .filter(|r| r.purpose == purpose && r.state == STATE_ACTIVE)
            {
                row.state = STATE_DECRYPT_ONLY.to_owned();
                conn.update_key_row(&row)?;
            }
            let key = SecretKey::generate();
            conn.insert_key_row(&KeyRow {
                purpose: purpose.to_owned(),
                id: next,
                wrapped: master::wrap_key(&master_key, purpose, id, &key),
                state: STATE_ACTIVE.to_owned(),
                created_at: unix_now(),
            })?;
            Ok::<_, Error>(())
        })?;
        Self::unlock(conn, secret)
    }

    /// Marks every data key not in `keep` as retired (after a rotation
    /// re-encrypted all rows; keep the active key and any that rows still
    /// use).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub fn retire_data_keys_except<C: KeyStoreConnection>(
        conn: &mut C,
        keep: &[u32],
    ) -> Result<Vec<u32>> {
        Self::retire_keys_except(conn, PURPOSE_DATA, keep)
    }

    /// Marks every index key version not in `keep` as retired (after every
    /// row was re-indexed under the current one).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub fn retire_index_keys_except<C: KeyStoreConnection>(
        conn: &mut C,
        keep: &[u32],
    ) -> Result<Vec<u32>> {
        Self::retire_keys_except(conn, PURPOSE_INDEX, keep)
    }

    fn retire_keys_except<C: KeyStoreConnection>(
        conn: &mut C,
        purpose: &str,
        keep: &[u32],
    ) -> Result<Vec<u32>> {
        conn.write_transaction(|conn| {
            let mut retired = Vec::new();
            for mut row in conn.load_key_rows()? {
                if row.purpose == purpose
                    && !keep.iter().any(|&k| i64::from(k) == row.id)
                    && row.state != STATE_RETIRED
                {
                    row.state = STATE_RETIRED.to_owned();
                    conn.update_key_row(&row)?;
                    retired.push(key_id(row.id)?);
                }
            }
            Ok(retired)
        })
    }

    /// Re-wraps every stored key under the master key from `new`, with a
    /// fresh salt, in one transaction. No row of data is touched; the old
    /// passphrase or master key stops working.
    ///
    /// # Errors
    /// [`Error::WrongMasterKey`] when `old` is wrong (nothing changes);
    /// [`Error::CorruptWrappedKey`]; [`Error::Database`].
    pub fn change_master<C: KeyStoreConnection>(
        conn: &mut C,
        old: &MasterSecret,
        new: &MasterSecret,
        params: KdfParams,
    ) -> Result<()> {
        let salt = master::new_salt();
        let new_key = new.derive(&salt, params)?;
        let as_i32 = |v: u32| {
            i32::try_from(v)
                .map_err(|_| KeyStoreError::KdfParams("a parameter is too large".into()))
        };
        conn.write_transaction(|conn| {
            // Under the lock, so a concurrent rotation's new key is either
            // already here (and re-wrapped) or waits and then fails the check.
            conn.lock_keyring()?;
            let (mut keyring_row, old_key) = master_key(conn, old)?;
            keyring_row.kdf_salt = salt.to_vec();
            keyring_row.kdf_m_cost = as_i32(params.m_cost_kib)?;
            keyring_row.kdf_t_cost = as_i32(params.t_cost)?;
            keyring_row.kdf_p_cost = as_i32(params.p_cost)?;
            keyring_row.key_check = master::key_check_value(&new_key);
            for mut row in conn.load_key_rows()? {
                let id = key_id(row.id)?;
                let purpose = match row.purpose.as_str() {
                    PURPOSE_DATA => PURPOSE_DATA,
                    PURPOSE_INDEX => PURPOSE_INDEX,
                    other => return Err(KeyStoreError::UnknownPurpose(other.to_owned()).into()),
                };
                let key = master::unwrap_key(&old_key, purpose, id, &row.wrapped)?;
                row.wrapped = master::wrap_key(&new_key, purpose, id, &key);
                conn.update_key_row(&row)?;
            }
            conn.update_keyring_row(&keyring_row)?;
            Ok(())
        })
    }
}

/// The keyring row and the master key from `secret`, checked against the
/// stored key check value.
fn master_key<C: KeyStoreConnection>(
    conn: &mut C,
    secret: &MasterSecret,
) -> Result<(KeyringRow, SecretKey)> {
    let row = conn
        .load_keyring_row()?
        .ok_or(KeyStoreError::NotInitialized)?;
    let key = secret.derive(&row.kdf_salt, stored_params(&row)?)?;
    if !master::verify_key_check(&key, &row.key_check) {
        return Err(Error::WrongMasterKey);
    }
    Ok((row, key))
}

fn key_id(id: i64) -> Result<u32> {
    u32::try_from(id).map_err(|_| KeyStoreError::KeyIdOutOfRange(id).into())
}

fn stored_params(row: &KeyringRow) -> Result<KdfParams> {
    let as_u32 = |v: i32| {
        u32::try_from(v)
            .map_err(|_| KeyStoreError::KdfParams("a stored parameter is negative".into()))
    };
    Ok(KdfParams {
        m_cost_kib: as_u32(row.kdf_m_cost)?,
        t_cost: as_u32(row.kdf_t_cost)?,
        p_cost: as_u32(row.kdf_p_cost)?,
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
