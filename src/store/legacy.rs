//! A `users` table another application left behind, taken over in place by
//! `fieldseal adopt`: renamed to [`LEGACY_TABLE`], read in id order, and
//! moved into fieldseal's own `users` batch by batch, each batch one
//! transaction that inserts the sealed rows under their old ids and
//! deletes them from the legacy table. The legacy table itself is the
//! progress: what is still in it is still to do.

use super::bulk::BulkConn;
use super::imports::{encode_row_into, Committed, StampCache};
use super::retry::Classify;
use super::schema::users;
use super::users::NewUserRow;
use super::Db;
use crate::with_conn;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

/// Where the legacy rows wait while they are adopted; rows `adopt --on-error
/// skip` left out stay here, with their legacy data, until the operator
/// deals with them.
pub const LEGACY_TABLE: &str = "fieldseal_legacy_users";

/// What the database holds, as far as adoption is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableState {
    /// `users` is another application's table: adoption can start.
    Legacy,
    /// An adoption was started and has rows left in [`LEGACY_TABLE`].
    Underway,
    /// Nothing to adopt: no legacy table, and `users` (if any) is
    /// fieldseal's own.
    Nothing,
}

/// Which columns of the legacy table hold what.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap {
    /// The legacy primary key (kept as the record's id).
    pub id: String,
    /// The name column.
    pub name: String,
    /// The email column, if the table has one.
    pub email: Option<String>,
    /// The age column.
    pub age: String,
    /// A creation time column, if mapped or named `created_at`.
    pub created_at: Option<String>,
}

/// One legacy row as stored: values still in the legacy format.
#[derive(Debug, QueryableByName)]
pub struct LegacyRow {
    /// The legacy id.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// The name column's bytes.
    #[diesel(sql_type = Nullable<diesel::sql_types::Binary>)]
    pub name: Option<Vec<u8>>,
    /// The email column's bytes.
    #[diesel(sql_type = Nullable<diesel::sql_types::Binary>)]
    pub email: Option<Vec<u8>>,
    /// The age, as text.
    #[diesel(sql_type = Nullable<Text>)]
    pub age: Option<String>,
    /// The creation time, as text.
    #[diesel(sql_type = Nullable<Text>)]
    pub created_at: Option<String>,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The column names of `table`, in order (empty when it does not exist).
///
/// # Errors
/// Database errors.
pub fn columns(db: &mut Db, table: &str) -> QueryResult<Vec<String>> {
    let names: Vec<Name> = match db {
        Db::Mysql(c) => diesel::sql_query(
            "SELECT CAST(COLUMN_NAME AS CHAR) AS name FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        )
        .bind::<Text, _>(table)
        .load(c)?,
        Db::Sqlite(c) => diesel::sql_query("SELECT name FROM pragma_table_info(?) ORDER BY cid")
            .bind::<Text, _>(table)
            .load(c)?,
    };
    Ok(names.into_iter().map(|n| n.name).collect())
}

/// Whether there is something to adopt.
///
/// # Errors
/// Database errors.
pub fn state(db: &mut Db) -> QueryResult<TableState> {
    if !columns(db, LEGACY_TABLE)?.is_empty() {
        return Ok(TableState::Underway);
    }
    let users = columns(db, "users")?;
    if users.is_empty() || users.iter().any(|c| c == "name_bidx") {
        return Ok(TableState::Nothing);
    }
    Ok(TableState::Legacy)
}

/// Moves the legacy `users` out of the way (one atomic rename), so that
/// fieldseal's migrations can create its own `users`.
///
/// # Errors
/// Database errors.
pub fn take_over(db: &mut Db) -> QueryResult<()> {
    match db {
        Db::Mysql(c) => c.batch_execute(&format!("RENAME TABLE users TO {LEGACY_TABLE}")),
        Db::Sqlite(c) => c.batch_execute(&format!("ALTER TABLE users RENAME TO {LEGACY_TABLE}")),
    }
}

/// Quotes an identifier for the backend.
fn quote(db: &Db, ident: &str) -> String {
    match db {
        Db::Mysql(_) => format!("`{}`", ident.replace('`', "``")),
        Db::Sqlite(_) => format!("\"{}\"", ident.replace('"', "\"\"")),
    }
}

/// Up to `limit` legacy rows after id `after`, in id order, from `table`
/// (the legacy `users` before the take-over, [`LEGACY_TABLE`] after).
///
/// # Errors
/// Database errors.
pub fn read(
    db: &mut Db,
    table: &str,
    map: &ColumnMap,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<LegacyRow>> {
    let (int, bytes, text) = match db {
        Db::Mysql(_) => ("SIGNED", "BINARY", "CHAR"),
        Db::Sqlite(_) => ("INTEGER", "BLOB", "TEXT"),
    };
    let col = |name: &Option<String>, as_type: &str| match name {
        Some(n) => format!("CAST({} AS {as_type})", quote(db, n)),
        None => format!("CAST(NULL AS {as_type})"),
    };
    let id = quote(db, &map.id);
    let sql = format!(
        "SELECT CAST({id} AS {int}) AS id, {} AS name, {} AS email, {} AS age, {} AS created_at \
         FROM {} WHERE {id} > ? ORDER BY {id} LIMIT ?",
        col(&Some(map.name.clone()), bytes),
        col(&map.email, bytes),
        col(&Some(map.age.clone()), text),
        col(&map.created_at, text),
        quote(db, table),
    );
    with_conn!(db, |c| diesel::sql_query(&sql)
        .bind::<BigInt, _>(after)
        .bind::<BigInt, _>(limit)
        .load(c))
}

/// Rows left in [`LEGACY_TABLE`].
///
/// # Errors
/// Database errors.
pub fn remaining(db: &mut Db) -> QueryResult<i64> {
    let sql = format!("SELECT COUNT(*) AS n FROM {LEGACY_TABLE}");
    with_conn!(db, |c| diesel::sql_query(&sql).get_result::<Count>(c)).map(|r| r.n)
}

/// Which of `ids` fieldseal's `users` already holds.
///
/// # Errors
/// Database errors.
pub fn taken_ids(db: &mut Db, ids: &[i64]) -> QueryResult<Vec<i64>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    with_conn!(db, |c| users::table
        .filter(users::id.eq_any(ids))
        .select(users::id)
        .load::<i64>(c))
}

/// Rows per INSERT statement: 9 bound values a row stays under SQLite's
/// 32,766 variables a statement.
const ROWS_PER_INSERT: usize = 3_000;

/// Inserts `rows` under their legacy ids and deletes `ids` (the adopted
/// rows and nothing else) from [`LEGACY_TABLE`], in one transaction, safe
/// to repeat after a transient conflict. On MySQL through LOAD DATA on
/// `bulk` when there is one. [`Committed::DuplicateEmail`] when an email or
/// an id met a unique key: nothing was written.
///
/// # Errors
/// Database errors; the transaction is rolled back.
pub fn move_batch(
    db: &mut Db,
    bulk: Option<&mut BulkConn>,
    rows: &[(i64, NewUserRow)],
    stamps: &mut StampCache,
) -> QueryResult<Committed> {
    let ids: Vec<String> = rows.iter().map(|(id, _)| id.to_string()).collect();
    let delete = if ids.is_empty() {
        None
    } else {
        Some(format!(
            "DELETE FROM {LEGACY_TABLE} WHERE id IN ({})",
            ids.join(",")
        ))
    };
    if let Some(bulk) = bulk {
        let mut bytes = Vec::with_capacity(rows.len() * 256);
        for (id, row) in rows {
            bytes.extend_from_slice(id.to_string().as_bytes());
            bytes.push(b'\t');
            encode_row_into(&mut bytes, row, stamps);
        }
        return bulk.commit_moved(bytes, rows.len(), delete.as_deref());
    }
    let result = with_conn!(db, |c| c.write_unit(|c| {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let values: Vec<_> = chunk
                .iter()
                .map(|(id, row)| (users::id.eq(*id), row.clone()))
                .collect();
            diesel::insert_into(users::table)
                .values(values)
                .execute(c)?;
        }
        if let Some(delete) = &delete {
            c.batch_execute(delete)?;
        }
        Ok(())
    }));
    match result {
        Ok(()) => Ok(Committed::Yes),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(Committed::DuplicateEmail),
        Err(e) => Err(e),
    }
}

/// Ends an adoption: drops [`LEGACY_TABLE`] when nothing is left in it, and
/// on SQLite rewrites the file and empties the WAL, so that no free page
/// or old page image still holds a legacy value. Returns the rows left.
///
/// # Errors
/// Database errors.
pub fn finish(db: &mut Db) -> QueryResult<i64> {
    let left = remaining(db)?;
    if left == 0 {
        with_conn!(db, |c| c
            .batch_execute(&format!("DROP TABLE {LEGACY_TABLE}")))?;
    }
    if let Db::Sqlite(c) = db {
        c.batch_execute("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")?;
    }
    Ok(left)
}

/// On SQLite, makes deletes overwrite what they delete (`secure_delete`),
/// for the whole adoption. Elsewhere nothing.
///
/// # Errors
/// Database errors.
pub fn secure_delete(db: &mut Db) -> QueryResult<()> {
    match db {
        Db::Sqlite(c) => c.batch_execute("PRAGMA secure_delete = ON"),
        Db::Mysql(_) => Ok(()),
    }
}
