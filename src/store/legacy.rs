//! A `users` table another application left behind, taken over in place by
//! `fieldseal adopt`: renamed to [`LEGACY_TABLE`], read in id order, and
//! copied into fieldseal's own `users` batch by batch, each batch one
//! transaction that inserts the sealed rows under their old ids, records
//! the rows it left out in [`SKIPPED_TABLE`], and moves the cursor in
//! [`PROGRESS_TABLE`] past the batch. A rerun after a crash continues after
//! the cursor, so no row goes in twice or is lost. At the end the legacy
//! table is dropped whole (or, when rows were left out, keeps only those).

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

/// The ids `adopt --on-error skip` left out, with the reason for each.
pub const SKIPPED_TABLE: &str = "fieldseal_adopt_skipped";

/// The adoption's cursor: the last legacy id a committed batch covered.
pub const PROGRESS_TABLE: &str = "fieldseal_adopt_progress";

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

/// Rows in [`LEGACY_TABLE`] after the cursor `after`.
///
/// # Errors
/// Database errors.
pub fn remaining(db: &mut Db, after: i64) -> QueryResult<i64> {
    let sql = format!("SELECT COUNT(*) AS n FROM {LEGACY_TABLE} WHERE id > {after}");
    with_conn!(db, |c| diesel::sql_query(&sql).get_result::<Count>(c)).map(|r| r.n)
}

/// Drops what a finished adoption killed in its last steps left behind
/// (its cursor and skipped-rows tables, once the legacy table is gone).
///
/// # Errors
/// Database errors.
pub fn tidy(db: &mut Db) -> QueryResult<()> {
    if columns(db, LEGACY_TABLE)?.is_empty() {
        let sql =
            format!("DROP TABLE IF EXISTS {SKIPPED_TABLE}; DROP TABLE IF EXISTS {PROGRESS_TABLE}");
        with_conn!(db, |c| c.batch_execute(&sql))?;
    }
    Ok(())
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

/// Starts (or continues) an adoption after the migrations: creates the
/// cursor and the skipped-rows table when this is a new run, and moves
/// `users`' id counter past the largest legacy id, so records added while
/// the adoption is under way never take an id a legacy row still needs.
/// Returns the cursor.
///
/// # Errors
/// Database errors.
pub fn begin(db: &mut Db) -> QueryResult<i64> {
    if columns(db, PROGRESS_TABLE)?.is_empty() {
        let max = with_conn!(db, |c| diesel::sql_query(format!(
            "SELECT COALESCE(MAX(id), 0) AS n FROM {LEGACY_TABLE}"
        ))
        .get_result::<Count>(c))?
        .n;
        let reserve = match db {
            Db::Mysql(_) => format!("ALTER TABLE users AUTO_INCREMENT = {}", max + 1),
            Db::Sqlite(_) => format!(
                "UPDATE sqlite_sequence SET seq = {max} WHERE name = 'users' AND seq < {max}; \
                 INSERT INTO sqlite_sequence (name, seq) SELECT 'users', {max} \
                 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'users')"
            ),
        };
        let setup = format!(
            "CREATE TABLE IF NOT EXISTS {SKIPPED_TABLE} (id BIGINT NOT NULL PRIMARY KEY, \
               reason TEXT NOT NULL); \
             DELETE FROM {SKIPPED_TABLE}; \
             {reserve}; \
             CREATE TABLE {PROGRESS_TABLE} (id INTEGER NOT NULL PRIMARY KEY, \
               after_id BIGINT NOT NULL); \
             INSERT INTO {PROGRESS_TABLE} (id, after_id) VALUES (1, {})",
            i64::MIN
        );
        with_conn!(db, |c| c.batch_execute(&setup))?;
    }
    let sql = format!("SELECT after_id AS n FROM {PROGRESS_TABLE} WHERE id = 1");
    Ok(with_conn!(db, |c| diesel::sql_query(&sql)
        .get_result::<Count>(c)
        .optional())?
    .map_or(i64::MIN, |r| r.n))
}

/// Rows per INSERT statement: 9 bound values a row stays under SQLite's
/// 32,766 variables a statement.
const ROWS_PER_INSERT: usize = 3_000;

/// A text literal for `db`'s SQL (MySQL also reads backslashes as escapes).
fn literal(db: &Db, text: &str) -> String {
    let text = text.replace('\'', "''");
    match db {
        Db::Mysql(_) => format!("'{}'", text.replace('\\', "\\\\")),
        Db::Sqlite(_) => format!("'{text}'"),
    }
}

/// One committed batch: `rows` inserted under their legacy ids, `skipped`
/// (id, reason) recorded, and the cursor moved to `last`, in one
/// transaction, safe to repeat after a transient conflict. On MySQL through
/// LOAD DATA on `bulk` when there is one. [`Committed::DuplicateEmail`]
/// when an email or an id met a unique key: nothing was written.
///
/// # Errors
/// Database errors; the transaction is rolled back.
pub fn commit_batch(
    db: &mut Db,
    bulk: Option<&mut BulkConn>,
    rows: &[(i64, NewUserRow)],
    skipped: &[(i64, String)],
    last: i64,
    stamps: &mut StampCache,
) -> QueryResult<Committed> {
    let mut then = Vec::new();
    if !skipped.is_empty() {
        let values: Vec<String> = skipped
            .iter()
            .map(|(id, reason)| format!("({id}, {})", literal(db, reason)))
            .collect();
        then.push(format!(
            "REPLACE INTO {SKIPPED_TABLE} (id, reason) VALUES {}",
            values.join(", ")
        ));
    }
    then.push(format!(
        "UPDATE {PROGRESS_TABLE} SET after_id = {last} WHERE id = 1"
    ));
    if let Some(bulk) = bulk {
        let mut bytes = Vec::with_capacity(rows.len() * 256);
        for (id, row) in rows {
            bytes.extend_from_slice(id.to_string().as_bytes());
            bytes.push(b'\t');
            encode_row_into(&mut bytes, row, stamps);
        }
        return bulk.commit_moved(bytes, rows.len(), &then);
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
        for statement in &then {
            c.batch_execute(statement)?;
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

/// Ends an adoption that went through the whole legacy table. With no row
/// left out, the legacy table and the adoption's own tables are dropped;
/// otherwise the legacy table keeps only the rows left out (listed with
/// their reasons in [`SKIPPED_TABLE`]) and the cursor is dropped, so the
/// next run looks at them again. On SQLite the file is then rewritten and
/// the WAL emptied, so that no free page or old page image still holds a
/// legacy value. Returns the rows left out.
///
/// # Errors
/// Database errors.
pub fn finish(db: &mut Db) -> QueryResult<i64> {
    let left = with_conn!(db, |c| diesel::sql_query(format!(
        "SELECT COUNT(*) AS n FROM {SKIPPED_TABLE}"
    ))
    .get_result::<Count>(c))?
    .n;
    let cleanup = if left == 0 {
        format!(
            "DROP TABLE {LEGACY_TABLE}; DROP TABLE {SKIPPED_TABLE}; DROP TABLE {PROGRESS_TABLE}"
        )
    } else {
        format!(
            "DELETE FROM {LEGACY_TABLE} WHERE id NOT IN (SELECT id FROM {SKIPPED_TABLE}); \
             DROP TABLE {PROGRESS_TABLE}"
        )
    };
    with_conn!(db, |c| c.batch_execute(&cleanup))?;
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
