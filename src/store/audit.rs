//! The audit trail's tables (`fieldseal_audit`, `fieldseal_audit_head`)
//! and the settings table: the queries only. What an entry means and how
//! its MAC is made is in [`crate::app::audit`].

use super::retry::Classify as _;
use super::schema::{fieldseal_audit, fieldseal_audit_head, fieldseal_settings};
use super::Db;
use crate::with_conn;
use diesel::prelude::*;

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = fieldseal_audit)]
pub struct EntryRow {
    /// Position in the chain, from 1.
    pub id: i64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// Operating-system user who ran the operation.
    pub os_user: String,
    /// Operation name.
    pub operation: String,
    /// The record it concerned, if one.
    pub record_id: Option<i64>,
    /// How many rows it concerned (imports, exports, lists, rotations).
    pub row_count: Option<i64>,
    /// `ok` or `failed`.
    pub outcome: String,
    /// A short fixed description (never plaintext).
    pub detail: String,
    /// HMAC over the entry and the previous MAC.
    pub mac: Vec<u8>,
}

/// The head row: the last entry, authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = fieldseal_audit_head)]
pub struct HeadRow {
    /// Always 1.
    pub id: i32,
    /// Id of the last entry (0: none yet).
    pub last_id: i64,
    /// Its MAC (empty: none yet).
    pub last_mac: Vec<u8>,
    /// MAC over `last_id` and `last_mac`.
    pub mac: Vec<u8>,
}

/// What [`append`] asks for: the entry and the new head, from the head
/// as read.
pub type MakeEntry<'a> = dyn FnMut(Option<&HeadRow>) -> QueryResult<(EntryRow, HeadRow)> + 'a;

/// Appends one entry: reads the head inside a write transaction, lets
/// `make` build the entry and the new head from it, inserts the entry and
/// swaps the head (only if it is still the one read). `Ok(false)` when
/// another writer appended first: call again. The entry ids are given
/// here, not by the server, so they are consecutive on a cluster too.
///
/// # Errors
/// Database errors (a cluster conflict classified as transient).
pub fn append(db: &mut Db, make: &mut MakeEntry<'_>) -> QueryResult<bool> {
    with_conn!(db, |conn| conn.write_unit(|conn| {
        let head: Option<HeadRow> = fieldseal_audit_head::table
            .find(1)
            .select(HeadRow::as_select())
            .first(conn)
            .optional()?;
        let (entry, new_head) = make(head.as_ref())?;
        diesel::insert_into(fieldseal_audit::table)
            .values(&entry)
            .execute(conn)?;
        match head {
            None => diesel::insert_into(fieldseal_audit_head::table)
                .values(&new_head)
                .execute(conn)
                .map(|n| n == 1),
            Some(old) => diesel::update(
                fieldseal_audit_head::table
                    .filter(fieldseal_audit_head::id.eq(1))
                    .filter(fieldseal_audit_head::last_id.eq(old.last_id)),
            )
            .set(&new_head)
            .execute(conn)
            .map(|n| n == 1),
        }
    }))
}

/// The head row, if any entry was ever written.
///
/// # Errors
/// Database errors.
pub fn head(db: &mut Db) -> QueryResult<Option<HeadRow>> {
    with_conn!(db, |conn| fieldseal_audit_head::table
        .find(1)
        .select(HeadRow::as_select())
        .first(conn)
        .optional())
}

/// Up to `limit` entries after id `after`, in id order (for `verify`).
///
/// # Errors
/// Database errors.
pub fn page(db: &mut Db, after: i64, limit: i64) -> QueryResult<Vec<EntryRow>> {
    with_conn!(db, |conn| fieldseal_audit::table
        .filter(fieldseal_audit::id.gt(after))
        .order(fieldseal_audit::id)
        .limit(limit)
        .select(EntryRow::as_select())
        .load(conn))
}

/// Entries about `record` (any when `None`) at or after `since_ms`, in id
/// order.
///
/// # Errors
/// Database errors.
pub fn select(
    db: &mut Db,
    record: Option<i64>,
    since_ms: Option<i64>,
) -> QueryResult<Vec<EntryRow>> {
    with_conn!(db, |conn| {
        let mut query = fieldseal_audit::table
            .select(EntryRow::as_select())
            .order(fieldseal_audit::id)
            .into_boxed();
        if let Some(id) = record {
            query = query.filter(fieldseal_audit::record_id.eq(id));
        }
        if let Some(ms) = since_ms {
            query = query.filter(fieldseal_audit::at_ms.ge(ms));
        }
        query.load(conn)
    })
}

/// A setting's value.
///
/// # Errors
/// Database errors.
pub fn setting(db: &mut Db, name: &str) -> QueryResult<Option<String>> {
    with_conn!(db, |conn| fieldseal_settings::table
        .find(name)
        .select(fieldseal_settings::value)
        .first(conn)
        .optional())
}

/// Sets a setting (kept if it exists: settings are chosen once).
///
/// # Errors
/// Database errors.
pub fn set_setting_once(db: &mut Db, name: &str, value: &str) -> QueryResult<()> {
    with_conn!(db, |conn| conn.write_unit(|conn| {
        let exists = fieldseal_settings::table
            .find(name)
            .count()
            .get_result::<i64>(conn)?;
        if exists == 0 {
            diesel::insert_into(fieldseal_settings::table)
                .values((
                    fieldseal_settings::name.eq(name),
                    fieldseal_settings::value.eq(value),
                ))
                .execute(conn)?;
        }
        Ok(())
    }))
}
