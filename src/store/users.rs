//! The `users` table: row types and the queries on it.
//!
//! The encrypted columns are the library's [`Sealed`] column type, as in
//! any application's schema: rows carry ciphertext, and sealing and opening
//! happen in [`crate::app`], which holds the session's keyring. Loading a
//! `Sealed` value never decrypts, so a row that does not open is reported
//! with its id instead of failing the whole query.

use super::retry::Classify as _;
use super::schema::users;
use super::Db;
use crate::with_conn;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use fieldseal::Sealed;

fieldseal::context!(
    /// The encrypted `users.name` column: authenticated with every name.
    pub UserName = "users.name"
);
fieldseal::context!(
    /// The encrypted `users.email` column: authenticated with every email.
    pub UserEmail = "users.email"
);

/// The `key_id` of a row sealed under a key of its own (per-user keys):
/// rotations re-wrap its key and leave the row alone.
pub const OWN_KEY: i64 = -1;

/// A row to insert, already sealed.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
pub struct NewUserRow {
    /// Ciphertext of the name.
    pub name: Sealed<UserName>,
    /// Blind index of the name.
    pub name_bidx: Vec<u8>,
    /// Ciphertext of the email, or NULL.
    pub email: Option<Sealed<UserEmail>>,
    /// Blind index of the email, or NULL.
    pub email_bidx: Option<Vec<u8>>,
    /// Plain age.
    pub age: i32,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
    /// Data key that sealed `name` and `email`.
    pub key_id: i64,
    /// Blind-index key version of `name_bidx` and `email_bidx`.
    pub bidx_version: i64,
}

/// A stored row, still sealed.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    /// Primary key.
    pub id: i64,
    /// Ciphertext of the name.
    pub name: Sealed<UserName>,
    /// Ciphertext of the email, or NULL.
    pub email: Option<Sealed<UserEmail>>,
    /// Plain age.
    pub age: i32,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
    /// Data key that sealed the row.
    pub key_id: i64,
}

/// The columns an export reads: no timestamps to parse, no key id.
#[derive(Debug, Clone, Queryable)]
pub struct ExportRow {
    /// Primary key.
    pub id: i64,
    /// Ciphertext of the name.
    pub name: Sealed<UserName>,
    /// Ciphertext of the email, or NULL.
    pub email: Option<Sealed<UserEmail>>,
    /// Plain age.
    pub age: i32,
}

/// The sealed fields an update writes.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = users, treat_none_as_null = true)]
pub struct UserChanges {
    /// Ciphertext of the name.
    pub name: Sealed<UserName>,
    /// Blind index of the name.
    pub name_bidx: Vec<u8>,
    /// Ciphertext of the email, or NULL.
    pub email: Option<Sealed<UserEmail>>,
    /// Blind index of the email, or NULL.
    pub email_bidx: Option<Vec<u8>>,
    /// Plain age.
    pub age: i32,
    /// Data key that sealed `name` and `email`.
    pub key_id: i64,
    /// Blind-index key version of the indexes.
    pub bidx_version: i64,
}

/// Inserts one row and returns its id.
///
/// # Errors
/// Database errors, including a unique violation on `email_bidx`.
pub fn insert(db: &mut Db, row: &NewUserRow) -> QueryResult<i64> {
    use diesel::dsl::sql;
    use diesel::sql_types::BigInt;
    // The id this connection just generated: LAST_INSERT_ID() and
    // last_insert_rowid() are per connection, so concurrent writers cannot
    // confuse them.
    let last_id = match db {
        Db::Mysql(_) => "LAST_INSERT_ID()",
        Db::Sqlite(_) => "last_insert_rowid()",
    };
    with_conn!(db, |conn| conn.write_unit(|conn| {
        diesel::insert_into(users::table)
            .values(row.clone())
            .execute(conn)?;
        diesel::select(sql::<BigInt>(last_id)).get_result(conn)
    }))
}

/// One row by id.
///
/// # Errors
/// Database errors.
pub fn get(db: &mut Db, id: i64) -> QueryResult<Option<UserRow>> {
    with_conn!(db, |conn| users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional())
}

/// Rows in id order (`newest_first` reverses it), at most `limit`.
///
/// # Errors
/// Database errors.
pub fn list(
    db: &mut Db,
    newest_first: bool,
    limit: Option<i64>,
    offset: i64,
) -> QueryResult<Vec<UserRow>> {
    with_conn!(db, |conn| {
        let query = users::table.select(UserRow::as_select()).into_boxed();
        let query = if newest_first {
            query.order(users::id.desc())
        } else {
            query.order(users::id.asc())
        };
        query
            .limit(limit.unwrap_or(i64::MAX))
            .offset(offset)
            .load(conn)
    })
}

/// Up to `limit` export rows with ids above `after`, in id order.
///
/// # Errors
/// Database errors.
pub fn export_page(db: &mut Db, after: i64, limit: i64) -> QueryResult<Vec<ExportRow>> {
    with_conn!(db, |conn| users::table
        .filter(users::id.gt(after))
        .select((users::id, users::name, users::email, users::age))
        .order(users::id.asc())
        .limit(limit)
        .load(conn))
}

/// Rows whose name has one of these blind indexes (one per index-key
/// version, so a lookup during an index rotation misses nothing).
///
/// # Errors
/// Database errors.
pub fn by_name_bidx(db: &mut Db, bidx: &[Vec<u8>]) -> QueryResult<Vec<UserRow>> {
    with_conn!(db, |conn| users::table
        .filter(users::name_bidx.eq_any(bidx))
        .select(UserRow::as_select())
        .order(users::id)
        .load(conn))
}

/// Rows whose email has one of these blind indexes (one per index-key
/// version; at most one row per version: the column is unique).
///
/// # Errors
/// Database errors.
pub fn by_email_bidx(db: &mut Db, bidx: &[Vec<u8>]) -> QueryResult<Vec<UserRow>> {
    with_conn!(db, |conn| users::table
        .filter(users::email_bidx.eq_any(bidx))
        .select(UserRow::as_select())
        .order(users::id)
        .load(conn))
}

/// Writes new sealed fields to a row, unconditionally (tests use it to
/// forge rows; the application updates through [`update_if_unchanged`]).
///
/// # Errors
/// Database errors, including a unique violation on `email_bidx`.
pub fn update(db: &mut Db, id: i64, changes: &UserChanges) -> QueryResult<usize> {
    with_conn!(db, |conn| diesel::update(users::table.find(id))
        .set(changes.clone())
        .execute(conn))
}

/// Writes new sealed fields to row `read.id` only if the row still holds
/// exactly what was read (its ciphertexts, which every write renews, and
/// its age): a compare-and-swap, so a change another writer committed in
/// between is never overwritten. Returns whether the row was written.
///
/// # Errors
/// Database errors, including a unique violation on `email_bidx`.
pub fn update_if_unchanged(
    db: &mut Db,
    read: &UserRow,
    changes: &UserChanges,
) -> QueryResult<bool> {
    with_conn!(db, |conn| {
        let row = users::table
            .filter(users::id.eq(read.id))
            .filter(users::name.eq(&read.name))
            .filter(users::age.eq(read.age));
        match &read.email {
            Some(email) => diesel::update(row.filter(users::email.eq(email)))
                .set(changes.clone())
                .execute(conn),
            None => diesel::update(row.filter(users::email.is_null()))
                .set(changes.clone())
                .execute(conn),
        }
    })
    .map(|n| n == 1)
}

/// Deletes a row; returns how many were deleted (0 or 1).
///
/// # Errors
/// Database errors.
pub fn delete(db: &mut Db, id: i64) -> QueryResult<usize> {
    with_conn!(db, |conn| diesel::delete(users::table.find(id))
        .execute(conn)
        .map_err(|e| conn.classify(e)))
}

/// A row as rotation reads it: its id, key and current ciphertexts.
#[derive(Debug, Clone, Queryable)]
pub struct SealedRow {
    /// Primary key.
    pub id: i64,
    /// Ciphertext of the name.
    pub name: Sealed<UserName>,
    /// Ciphertext of the email, or NULL.
    pub email: Option<Sealed<UserEmail>>,
    /// Data key that sealed the row.
    pub key_id: i64,
}

/// A compare-and-swap re-encryption of one row.
#[derive(Debug, Clone)]
pub struct Reseal {
    /// The row.
    pub id: i64,
    /// The name ciphertext that was read (the swap's condition).
    pub old_name: Sealed<UserName>,
    /// The email ciphertext that was read (the swap's condition).
    pub old_email: Option<Sealed<UserEmail>>,
    /// The new name ciphertext.
    pub name: Sealed<UserName>,
    /// The new email ciphertext.
    pub email: Option<Sealed<UserEmail>>,
    /// The key that sealed the new ciphertexts.
    pub key_id: i64,
}

/// Up to `limit` rows above id `after` that are sealed under a key other
/// than `active` (and not under a key of their own), in id order. Walks the primary key (`key_id` has no
/// index on purpose).
///
/// # Errors
/// Database errors.
pub fn sealed_under_other_keys(
    db: &mut Db,
    active: i64,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<SealedRow>> {
    with_conn!(db, |conn| users::table
        .filter(users::id.gt(after))
        .filter(users::key_id.ne(active))
        .filter(users::key_id.ne(OWN_KEY))
        .select((users::id, users::name, users::email, users::key_id))
        .order(users::id.asc())
        .limit(limit)
        .load(conn))
}

/// Writes re-encrypted rows in one transaction, each only where its
/// ciphertexts are still the ones read: a row a writer changed meanwhile
/// is left alone (and found again by the next pass if it is still old).
/// Returns how many rows were swapped.
///
/// # Errors
/// Database errors; the transaction is rolled back.
pub fn reseal(db: &mut Db, rows: &[Reseal]) -> QueryResult<usize> {
    match db {
        Db::Mysql(conn) => reseal_mysql(conn, rows),
        Db::Sqlite(conn) => conn.immediate_transaction(|c| {
            let mut swapped = 0;
            for r in rows {
                let set = (
                    users::name.eq(&r.name),
                    users::email.eq(&r.email),
                    users::key_id.eq(r.key_id),
                );
                let row = users::table
                    .filter(users::id.eq(r.id))
                    .filter(users::name.eq(&r.old_name));
                swapped += match &r.old_email {
                    Some(old) => diesel::update(row.filter(users::email.eq(old)))
                        .set(set)
                        .execute(c)?,
                    None => diesel::update(row.filter(users::email.is_null()))
                        .set(set)
                        .execute(c)?,
                };
            }
            Ok(swapped)
        }),
    }
}

/// The scratch table of [`reseal_mysql`]. Not in [`super::schema`], which
/// holds exactly the tables the migrations create: this one is a
/// per-connection TEMPORARY table that the rotation creates itself, on
/// MySQL only, so no migration (and no `diesel print-schema`) knows it.
mod scratch {
    diesel::table! {
        fieldseal_reseal (id) {
            id -> BigInt,
            old_name -> Binary,
            old_email -> Nullable<Binary>,
            name -> Binary,
            email -> Nullable<Binary>,
            key_id -> BigInt,
        }
    }
}

/// MySQL: the whole batch as one compare-and-swap statement. The new and
/// the read ciphertexts go into a per-connection TEMPORARY table (MEMORY
/// engine: scratch space, emptied before each batch) with one multi-row
/// INSERT, then one UPDATE … JOIN swaps exactly the rows whose ciphertexts
/// are still the ones read (`<=>` compares NULLs too). A thousand round
/// trips become three; rotation went from 0.05 to 0.8 of the import rate.
fn reseal_mysql(conn: &mut diesel::MysqlConnection, rows: &[Reseal]) -> QueryResult<usize> {
    use self::scratch::fieldseal_reseal as scratch;
    use diesel::connection::SimpleConnection;
    #[derive(Insertable)]
    #[diesel(table_name = scratch)]
    struct ScratchRow<'a> {
        id: i64,
        old_name: &'a [u8],
        old_email: Option<&'a [u8]>,
        name: &'a [u8],
        email: Option<&'a [u8]>,
        key_id: i64,
    }
    // Temporary tables are per connection, and creating one does not end
    // the transaction (unlike other DDL on MySQL).
    conn.batch_execute(
        "CREATE TEMPORARY TABLE IF NOT EXISTS fieldseal_reseal (
           id BIGINT NOT NULL PRIMARY KEY,
           old_name VARBINARY(1024) NOT NULL, old_email VARBINARY(1024) NULL,
           name VARBINARY(1024) NOT NULL, email VARBINARY(1024) NULL,
           key_id BIGINT NOT NULL) ENGINE = MEMORY",
    )?;
    let scratch_rows: Vec<ScratchRow<'_>> = rows
        .iter()
        .map(|r| ScratchRow {
            id: r.id,
            old_name: r.old_name.as_bytes(),
            old_email: r.old_email.as_ref().map(Sealed::as_bytes),
            name: r.name.as_bytes(),
            email: r.email.as_ref().map(Sealed::as_bytes),
            key_id: r.key_id,
        })
        .collect();
    conn.write_unit(|c| {
        diesel::delete(scratch::table).execute(c)?;
        diesel::insert_into(scratch::table)
            .values(&scratch_rows)
            .execute(c)?;
        diesel::sql_query(
            "UPDATE users u JOIN fieldseal_reseal t \
               ON u.id = t.id AND u.name = t.old_name AND u.email <=> t.old_email \
             SET u.name = t.name, u.email = t.email, u.key_id = t.key_id",
        )
        .execute(c)
    })
}

/// Per data key: how many rows it sealed, and how many of those have an
/// email (so values = rows + emails).
///
/// # Errors
/// Database errors.
pub fn count_by_key(db: &mut Db) -> QueryResult<Vec<(i64, i64, i64)>> {
    use diesel::dsl::count;
    with_conn!(db, |conn| users::table
        .group_by(users::key_id)
        .select((users::key_id, count(users::id), count(users::email)))
        .order(users::key_id)
        .load(conn))
}

/// Number of rows sealed under a key other than `active`.
///
/// # Errors
/// Database errors.
pub fn count_not_under(db: &mut Db, active: i64) -> QueryResult<i64> {
    with_conn!(db, |conn| users::table
        .filter(users::key_id.ne(active))
        .filter(users::key_id.ne(OWN_KEY))
        .count()
        .get_result(conn))
}

/// A row as index rotation reads it.
#[derive(Debug, Clone, Queryable)]
pub struct IndexedRow {
    /// Primary key.
    pub id: i64,
    /// Ciphertext of the name.
    pub name: Sealed<UserName>,
    /// Ciphertext of the email, or NULL.
    pub email: Option<Sealed<UserEmail>>,
}

/// A compare-and-swap recomputation of one row's blind indexes.
#[derive(Debug, Clone)]
pub struct Reindex {
    /// The row.
    pub id: i64,
    /// The name ciphertext that was read (the swap's condition).
    pub name: Sealed<UserName>,
    /// The email ciphertext that was read (the swap's condition).
    pub email: Option<Sealed<UserEmail>>,
    /// The new name index.
    pub name_bidx: Vec<u8>,
    /// The new email index.
    pub email_bidx: Option<Vec<u8>>,
    /// The index version they were computed under.
    pub bidx_version: i64,
}

/// Up to `limit` rows above id `after` whose indexes are not of `version`.
///
/// # Errors
/// Database errors.
pub fn indexed_under_other_versions(
    db: &mut Db,
    version: i64,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<IndexedRow>> {
    with_conn!(db, |conn| users::table
        .filter(users::id.gt(after))
        .filter(users::bidx_version.ne(version))
        .select((users::id, users::name, users::email))
        .order(users::id.asc())
        .limit(limit)
        .load(conn))
}

/// Number of rows whose indexes are not of `version`.
///
/// # Errors
/// Database errors.
pub fn count_not_indexed_under(db: &mut Db, version: i64) -> QueryResult<i64> {
    with_conn!(db, |conn| users::table
        .filter(users::bidx_version.ne(version))
        .count()
        .get_result(conn))
}

/// Writes recomputed indexes in one transaction, each row only where its
/// ciphertexts are still the ones read. Returns how many were swapped.
///
/// # Errors
/// Database errors (a unique violation if two rows share an email).
pub fn reindex(db: &mut Db, rows: &[Reindex]) -> QueryResult<usize> {
    // The same statements on each backend's own connection type.
    macro_rules! swap_all {
        ($c:ident) => {{
            let mut swapped = 0;
            for r in rows {
                let set = (
                    users::name_bidx.eq(&r.name_bidx),
                    users::email_bidx.eq(&r.email_bidx),
                    users::bidx_version.eq(r.bidx_version),
                );
                let row = users::table
                    .filter(users::id.eq(r.id))
                    .filter(users::name.eq(&r.name));
                swapped += match &r.email {
                    Some(email) => diesel::update(row.filter(users::email.eq(email)))
                        .set(set)
                        .execute($c)?,
                    None => diesel::update(row.filter(users::email.is_null()))
                        .set(set)
                        .execute($c)?,
                };
            }
            Ok(swapped)
        }};
    }
    with_conn!(db, |conn| conn.write_unit(|c| swap_all!(c)))
}

/// What the stored ciphertexts themselves say about their keys: the
/// distinct (key_id column, key id in the name's header, key id in the
/// email's header) of all rows. The `key_id` column is not authenticated;
/// the headers are what opening uses. One full scan (a consistent read,
/// no locks), for the end of a rotation; the answer is a handful of rows.
///
/// # Errors
/// Database errors.
pub fn header_census(db: &mut Db) -> QueryResult<Vec<HeaderCensus>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        key_id: i64,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Binary>)]
        name_key: Option<Vec<u8>>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Binary>)]
        email_key: Option<Vec<u8>>,
    }
    // Only v1 headers name a data key; a v2 value (a record's own key)
    // names none.
    const CENSUS: &str = "SELECT DISTINCT key_id, \
         CASE WHEN SUBSTR(name, 1, 1) = X'01' THEN SUBSTR(name, 2, 4) END AS name_key, \
         CASE WHEN SUBSTR(email, 1, 1) = X'01' THEN SUBSTR(email, 2, 4) END AS email_key \
         FROM users";
    let rows: Vec<Row> = with_conn!(db, |conn| diesel::sql_query(CENSUS).load(conn))?;
    let id = |b: Option<Vec<u8>>| {
        b.and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
            .map(u32::from_be_bytes)
    };
    Ok(rows
        .into_iter()
        .map(|r| HeaderCensus {
            key_id: r.key_id,
            name_key: id(r.name_key),
            email_key: id(r.email_key),
        })
        .collect())
}

/// One line of [`header_census`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderCensus {
    /// The `key_id` column.
    pub key_id: i64,
    /// The key id in the name's header (`None`: not a v1 ciphertext).
    pub name_key: Option<u32>,
    /// The key id in the email's header (`None`: no email, or malformed).
    pub email_key: Option<u32>,
}

/// Marks as pending (`key_id = 0`) the rows whose `key_id` column says
/// `active` while a ciphertext header names another key, so the next
/// rotation pass re-encrypts them. The rows are found with a consistent
/// read, then updated by id: no lock is held on the rest of the table.
/// Returns how many.
///
/// # Errors
/// Database errors.
pub fn mark_header_mismatches(db: &mut Db, active: u32) -> QueryResult<usize> {
    use diesel::sql_types::{BigInt, Binary};
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let header = active.to_be_bytes().to_vec();
    let ids: Vec<Id> = with_conn!(&mut *db, |conn| diesel::sql_query(
        "SELECT id FROM users WHERE (key_id = ? \
         AND (SUBSTR(name, 2, 4) <> ? OR (email IS NOT NULL AND SUBSTR(email, 2, 4) <> ?))) \
         OR (key_id = -1 AND SUBSTR(name, 1, 1) <> X'02')"
    )
    .bind::<BigInt, _>(i64::from(active))
    .bind::<Binary, _>(&header)
    .bind::<Binary, _>(&header)
    .load(conn))?;
    let ids: Vec<i64> = ids.into_iter().map(|r| r.id).collect();
    let mut marked = 0;
    for chunk in ids.chunks(1000) {
        marked += with_conn!(&mut *db, |conn| diesel::update(
            users::table
                .filter(users::id.eq_any(chunk))
                .filter(users::key_id.eq_any([i64::from(active), OWN_KEY]))
        )
        .set(users::key_id.eq(0))
        .execute(conn))?;
    }
    Ok(marked)
}

/// Number of rows.
///
/// # Errors
/// Database errors.
pub fn count(db: &mut Db) -> QueryResult<i64> {
    with_conn!(db, |conn| users::table.count().get_result(conn))
}
