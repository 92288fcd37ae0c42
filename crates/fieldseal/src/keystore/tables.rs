//! The key store's two tables on each backend: their Diesel schema, their
//! rows, their DDL, and the few queries the key store runs on them.

use diesel::prelude::*;

diesel::table! {
    fieldseal_keyring (id) {
        id -> Integer,
        kdf_salt -> Binary,
        kdf_m_cost -> Integer,
        kdf_t_cost -> Integer,
        kdf_p_cost -> Integer,
        key_check -> Binary,
        created_at -> BigInt,
        keyring_id -> Nullable<Binary>,
        version -> BigInt,
        key_list_mac -> Nullable<Binary>,
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

diesel::table! {
    fieldseal_record_keys (id) {
        seq -> BigInt,
        id -> BigInt,
        wrapped -> Nullable<Binary>,
        created_at -> BigInt,
        erased_at -> Nullable<BigInt>,
    }
}

/// One record key (per-user keys): wrapped, or erased.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = fieldseal_record_keys)]
#[doc(hidden)]
pub struct RecordKeyRow {
    /// The key's reference.
    pub id: i64,
    /// The key wrapped under a data key; `NULL` once erased.
    pub wrapped: Option<Vec<u8>>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the erasure.
    pub erased_at: Option<i64>,
}

/// The single `fieldseal_keyring` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = fieldseal_keyring, treat_none_as_null = true)]
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
    /// Random id of this key store, bound into every wrapped key (format
    /// 2); `NULL` in a key table from format 1.
    pub keyring_id: Option<Vec<u8>>,
    /// Bumped by every write: the compare-and-swap that serializes
    /// writers, and part of the key-list MAC.
    pub version: i64,
    /// MAC over the whole key list (format 2); `NULL` in format 1.
    pub key_list_mac: Option<Vec<u8>>,
}

/// One wrapped key.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = fieldseal_keys)]
#[doc(hidden)]
pub struct KeyRow {
    /// `data` or `index`.
    pub purpose: String,
    /// Key id (data) or version (index).
    pub id: i64,
    /// The key wrapped under the master key.
    pub wrapped: Vec<u8>,
    /// `active`, `decrypt-only` or `retired`.
    pub state: String,
    /// Unix seconds.
    pub created_at: i64,
}

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

macro_rules! ddl {
    ($file:literal) => {
        include_str!(concat!("../../sql/", $file))
    };
}

/// The DDL of the key store's two tables on `dialect`, for a migration of
/// your own: format 1's `CREATE TABLE IF NOT EXISTS`, then format 2's
/// `ALTER TABLE … ADD COLUMN`, then the record keys' table. Run it once (the `ALTER` statements are
/// not repeatable); [`KeyStore::install_schema`](crate::KeyStore::install_schema)
/// is the repeatable way, and upgrades a format-1 table.
pub fn schema_sql(dialect: SqlDialect) -> &'static str {
    match dialect {
        SqlDialect::Mysql => concat!(
            ddl!("mysql.sql"),
            ddl!("mysql-v2.sql"),
            ddl!("mysql-v3.sql")
        ),
        SqlDialect::Sqlite => concat!(
            ddl!("sqlite.sql"),
            ddl!("sqlite-v2.sql"),
            ddl!("sqlite-v3.sql")
        ),
        SqlDialect::Postgres => concat!(
            ddl!("postgres.sql"),
            ddl!("postgres-v2.sql"),
            ddl!("postgres-v3.sql")
        ),
    }
}

/// A Diesel connection the key store can use: `MysqlConnection`,
/// `SqliteConnection` or `PgConnection`, with the matching feature.
/// Implemented by this crate only.
pub trait KeyStoreConnection: Connection + sealed::Tables {}

pub(crate) mod sealed {
    use super::{KeyRow, KeyringRow, RecordKeyRow};
    use diesel::QueryResult;

    /// The key store's queries on one backend (not public API).
    pub trait Tables {
        /// Creates the tables if they do not exist, and adds format 2's
        /// columns to a format-1 table.
        fn install_keystore_schema(&mut self) -> QueryResult<()>;
        /// The keyring row, if the store is initialized.
        fn load_keyring_row(&mut self) -> QueryResult<Option<KeyringRow>>;
        /// Every key row, in (purpose, id) order.
        fn load_key_rows(&mut self) -> QueryResult<Vec<KeyRow>>;
        /// Inserts the keyring row (fails if one exists).
        fn insert_keyring_row(&mut self, row: &KeyringRow) -> QueryResult<()>;
        /// Writes the keyring row only if its version is still `expected`:
        /// the compare-and-swap every key-store write starts with. Returns
        /// whether it was written.
        fn swap_keyring_row(&mut self, row: &KeyringRow, expected: i64) -> QueryResult<bool>;
        /// Inserts a key row.
        fn insert_key_row(&mut self, row: &KeyRow) -> QueryResult<()>;
        /// Updates a key row's wrapped bytes and state.
        fn update_key_row(&mut self, row: &KeyRow) -> QueryResult<()>;
        /// Inserts record keys, in one statement.
        fn insert_record_keys(&mut self, rows: &[RecordKeyRow]) -> QueryResult<()>;
        /// The record keys with these references (wrapped or erased).
        fn load_record_keys(&mut self, ids: &[i64]) -> QueryResult<Vec<RecordKeyRow>>;
        /// Deletes record keys outright (keys that sealed nothing stored).
        fn delete_record_keys(&mut self, ids: &[i64]) -> QueryResult<usize>;
        /// Erases a record key: `wrapped` to NULL. Returns the rows changed.
        fn erase_record_key(&mut self, id: i64, now: i64) -> QueryResult<usize>;
        /// Up to `limit` wrapped (not erased) record keys after position
        /// `after`, in storage order, each with its position.
        fn record_key_page(
            &mut self,
            after: i64,
            limit: i64,
        ) -> QueryResult<Vec<(i64, RecordKeyRow)>>;
        /// Replaces wrapped record keys (by position), each only if it is
        /// still `old` (never bringing back an erased one), in one
        /// statement. Returns how many it replaced.
        fn swap_record_keys(&mut self, swaps: &[(i64, Vec<u8>, Vec<u8>)]) -> QueryResult<usize>;
        /// (wrapped, erased) record key counts.
        fn count_record_keys(&mut self) -> QueryResult<(i64, i64)>;
        /// A transaction that reads, then writes. On SQLite it takes the
        /// write lock up front (`BEGIN IMMEDIATE`): a deferred transaction
        /// that has read cannot wait for the lock.
        fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
        where
            F: FnOnce(&mut Self) -> Result<T, E>,
            E: From<diesel::result::Error>;
    }
}

/// MySQL: commits from inside the transaction, so that a commit a cluster
/// refuses (a Galera certification conflict, found only at commit) is told
/// apart from other failures before Diesel's rollback clears the error
/// number. Diesel reports such a failed commit as `Unknown`; this reports
/// a deadlock or conflict (1213), a lock wait timeout (1205) and a node
/// that is not ready (1047) as `SerializationFailure`, which key-store
/// writes retry. Diesel's own COMMIT then finds nothing left to commit.
#[cfg(feature = "mysql")]
fn mysql_commit(conn: &mut diesel::MysqlConnection) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    use diesel::result::{DatabaseErrorKind, Error};
    #[derive(QueryableByName)]
    struct Errno {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
        errno: Option<i64>,
    }
    match conn.batch_execute("COMMIT") {
        Err(Error::DatabaseError(DatabaseErrorKind::Unknown, info)) => {
            let errno = conn
                .batch_execute("GET DIAGNOSTICS CONDITION 1 @fieldseal_errno = MYSQL_ERRNO")
                .and_then(|()| {
                    diesel::sql_query("SELECT @fieldseal_errno AS errno").get_result::<Errno>(conn)
                })
                .ok()
                .and_then(|r| r.errno);
            let kind = match errno {
                Some(1205 | 1213 | 1047) => DatabaseErrorKind::SerializationFailure,
                _ => DatabaseErrorKind::Unknown,
            };
            Err(Error::DatabaseError(kind, info))
        }
        other => other,
    }
}

/// One `UPDATE` swapping many record keys, each only where its stored
/// wrap is still the old one: `CASE` on the position (`seq`, the
/// clustered key) for the new value and the condition. The positions are
/// integers and the wraps are written as hex
/// literals (`blob`), so nothing is spliced in as text; a wrap is not
/// secret (it is what the table holds).
#[cfg(any(feature = "mysql", feature = "sqlite", feature = "postgres"))]
fn swap_sql(swaps: &[(i64, Vec<u8>, Vec<u8>)], blob: fn(&[u8]) -> String) -> String {
    use std::fmt::Write as _;
    let mut new = String::from("CASE seq");
    let mut old = String::from("CASE seq");
    let mut ids = String::new();
    for (i, (id, was, now)) in swaps.iter().enumerate() {
        let _ = write!(new, " WHEN {id} THEN {}", blob(now));
        let _ = write!(old, " WHEN {id} THEN {}", blob(was));
        let _ = write!(ids, "{}{id}", if i == 0 { "" } else { "," });
    }
    format!(
        "UPDATE fieldseal_record_keys SET wrapped = {new} END \
         WHERE seq IN ({ids}) AND wrapped = {old} END"
    )
}

/// `X'…'`: MySQL's and SQLite's blob literal.
#[cfg(any(feature = "mysql", feature = "sqlite"))]
fn x_blob(bytes: &[u8]) -> String {
    format!("X'{}'", hex(bytes))
}

/// PostgreSQL's bytea literal.
#[cfg(feature = "postgres")]
fn pg_blob(bytes: &[u8]) -> String {
    format!("decode('{}', 'hex')", hex(bytes))
}

#[cfg(any(feature = "mysql", feature = "sqlite", feature = "postgres"))]
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The other backends: Diesel's own commit follows.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn no_early_commit<C>(_: &mut C) -> QueryResult<()> {
    Ok(())
}

macro_rules! impl_keystore_connection {
    ($feature:literal, $conn:ty, $v1:literal, $v2:literal, $v3:literal, $begin:ident, $commit:ident, $blob:expr) => {
        #[cfg(feature = $feature)]
        impl KeyStoreConnection for $conn {}

        #[cfg(feature = $feature)]
        impl sealed::Tables for $conn {
            fn write_transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
            where
                F: FnOnce(&mut Self) -> Result<T, E>,
                E: From<diesel::result::Error>,
            {
                self.$begin(|c| {
                    let value = f(c)?;
                    $commit(c)?;
                    Ok(value)
                })
            }
            fn install_keystore_schema(&mut self) -> QueryResult<()> {
                use diesel::connection::SimpleConnection;
                self.batch_execute(ddl!($v1))?;
                // Format 2's columns: present, or added now.
                let has_v2 = fieldseal_keyring::table
                    .select((
                        fieldseal_keyring::keyring_id,
                        fieldseal_keyring::version,
                        fieldseal_keyring::key_list_mac,
                    ))
                    .limit(0)
                    .load::<(Option<Vec<u8>>, i64, Option<Vec<u8>>)>(self)
                    .is_ok();
                if !has_v2 {
                    self.batch_execute(ddl!($v2))?;
                }
                self.batch_execute(ddl!($v3))
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
            fn swap_keyring_row(&mut self, row: &KeyringRow, expected: i64) -> QueryResult<bool> {
                diesel::update(
                    fieldseal_keyring::table
                        .filter(fieldseal_keyring::id.eq(row.id))
                        .filter(fieldseal_keyring::version.eq(expected)),
                )
                .set(row.clone())
                .execute(self)
                .map(|n| n == 1)
            }
            fn insert_key_row(&mut self, row: &KeyRow) -> QueryResult<()> {
                diesel::insert_into(fieldseal_keys::table)
                    .values(row.clone())
                    .execute(self)
                    .map(drop)
            }
            fn insert_record_keys(&mut self, rows: &[RecordKeyRow]) -> QueryResult<()> {
                for chunk in rows.chunks(2000) {
                    diesel::insert_into(fieldseal_record_keys::table)
                        .values(chunk)
                        .execute(self)?;
                }
                Ok(())
            }
            fn load_record_keys(&mut self, ids: &[i64]) -> QueryResult<Vec<RecordKeyRow>> {
                let mut rows = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(1000) {
                    rows.extend(
                        fieldseal_record_keys::table
                            .filter(fieldseal_record_keys::id.eq_any(chunk))
                            .select(RecordKeyRow::as_select())
                            .load(self)?,
                    );
                }
                Ok(rows)
            }
            fn delete_record_keys(&mut self, ids: &[i64]) -> QueryResult<usize> {
                let mut n = 0;
                for chunk in ids.chunks(1000) {
                    n += diesel::delete(
                        fieldseal_record_keys::table
                            .filter(fieldseal_record_keys::id.eq_any(chunk)),
                    )
                    .execute(self)?;
                }
                Ok(n)
            }
            fn erase_record_key(&mut self, id: i64, now: i64) -> QueryResult<usize> {
                diesel::update(
                    fieldseal_record_keys::table
                        .filter(fieldseal_record_keys::id.eq(id))
                        .filter(fieldseal_record_keys::erased_at.is_null()),
                )
                .set((
                    fieldseal_record_keys::wrapped.eq(None::<Vec<u8>>),
                    fieldseal_record_keys::erased_at.eq(Some(now)),
                ))
                .execute(self)
            }
            fn record_key_page(
                &mut self,
                after: i64,
                limit: i64,
            ) -> QueryResult<Vec<(i64, RecordKeyRow)>> {
                fieldseal_record_keys::table
                    .filter(fieldseal_record_keys::seq.gt(after))
                    .filter(fieldseal_record_keys::wrapped.is_not_null())
                    .order(fieldseal_record_keys::seq)
                    .limit(limit)
                    .select((fieldseal_record_keys::seq, RecordKeyRow::as_select()))
                    .load(self)
            }
            fn swap_record_keys(
                &mut self,
                swaps: &[(i64, Vec<u8>, Vec<u8>)],
            ) -> QueryResult<usize> {
                let mut n = 0;
                for chunk in swaps.chunks(1000) {
                    n += diesel::sql_query(swap_sql(chunk, $blob)).execute(self)?;
                }
                Ok(n)
            }
            fn count_record_keys(&mut self) -> QueryResult<(i64, i64)> {
                let live = fieldseal_record_keys::table
                    .filter(fieldseal_record_keys::wrapped.is_not_null())
                    .count()
                    .get_result(self)?;
                let erased = fieldseal_record_keys::table
                    .filter(fieldseal_record_keys::wrapped.is_null())
                    .count()
                    .get_result(self)?;
                Ok((live, erased))
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
    "mysql.sql",
    "mysql-v2.sql",
    "mysql-v3.sql",
    transaction,
    mysql_commit,
    x_blob
);
impl_keystore_connection!(
    "sqlite",
    diesel::SqliteConnection,
    "sqlite.sql",
    "sqlite-v2.sql",
    "sqlite-v3.sql",
    immediate_transaction,
    no_early_commit,
    x_blob
);
impl_keystore_connection!(
    "postgres",
    diesel::PgConnection,
    "postgres.sql",
    "postgres-v2.sql",
    "postgres-v3.sql",
    transaction,
    no_early_commit,
    pg_blob
);
