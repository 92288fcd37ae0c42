//! Add, list, find, update, delete and export records.

use super::audit::{self, audited, Op};
use super::record::{parse_age, parse_email, parse_name};
use super::{AppError, Record, RecordInput, Session};
use crate::store::retry::retry;
use crate::store::users::{self, ExportRow, NewUserRow, UserChanges, UserEmail, UserName, UserRow};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use fieldseal::{Context, Keyring, RecordKey, RecordKeys, Sealed, WrappedRecordKey};

pub use crate::store::users::OWN_KEY;

/// A record's sealed form, ready for the database.
///
/// # Errors
/// [`AppError::Crypto`] when sealing fails (no index key).
pub fn seal(keyring: &Keyring, input: &RecordInput) -> Result<NewUserRow, AppError> {
    seal_under(keyring, None, input)
}

/// A record's sealed form under a new key of its own, with that key
/// wrapped for the key store (where it must be stored before the row).
///
/// # Errors
/// As [`seal`].
pub fn seal_own(
    keyring: &Keyring,
    input: &RecordInput,
) -> Result<(NewUserRow, WrappedRecordKey), AppError> {
    let (key, wrapped) = keyring.new_record_key()?;
    Ok((seal_under(keyring, Some(&key), input)?, wrapped))
}

/// Seals under the record's own key when given, else under the keyring's
/// active data key.
fn seal_under(
    keyring: &Keyring,
    own: Option<&RecordKey>,
    input: &RecordInput,
) -> Result<NewUserRow, AppError> {
    let (name, name_bidx, email, email_bidx) =
        seal_fields(keyring, own, &input.name, input.email.as_deref())?;
    Ok(NewUserRow {
        name,
        name_bidx,
        email,
        email_bidx,
        age: input.age,
        created_at: chrono::Utc::now().naive_utc(),
        key_id: own.map_or(i64::from(keyring.active_key_id()), |_| OWN_KEY),
        bidx_version: i64::from(keyring.index_version().unwrap_or(1)),
    })
}

type SealedFields = (
    Sealed<UserName>,
    Vec<u8>,
    Option<Sealed<UserEmail>>,
    Option<Vec<u8>>,
);

fn seal_fields(
    keyring: &Keyring,
    own: Option<&RecordKey>,
    name: &str,
    email: Option<&str>,
) -> Result<SealedFields, AppError> {
    let sealed_name = match own {
        Some(key) => key.seal::<UserName, _>(name)?,
        None => keyring.seal::<UserName, _>(name)?,
    };
    // Blind indexes stay keyring-wide: search and unique emails work
    // across records whatever key sealed them.
    let name_bidx = keyring.blind_index::<UserName>(name)?.to_vec();
    let (sealed_email, email_bidx) = match email {
        Some(e) => (
            Some(match own {
                Some(key) => key.seal::<UserEmail, _>(e)?,
                None => keyring.seal::<UserEmail, _>(e)?,
            }),
            Some(keyring.blind_index::<UserEmail>(e)?.to_vec()),
        ),
        None => (None, None),
    };
    Ok((sealed_name, name_bidx, sealed_email, email_bidx))
}

/// Opens a stored row; `keys` holds the record keys of rows sealed under
/// their own key ([`record_key_refs`]).
///
/// # Errors
/// [`AppError::Decrypt`] naming the record and column; [`AppError::Erased`].
pub fn open(keyring: &Keyring, keys: &RecordKeys, row: UserRow) -> Result<Record, AppError> {
    Ok(Record {
        id: row.id,
        name: open_field(keyring, keys, row.id, &row.name)?,
        email: row
            .email
            .as_ref()
            .map(|e| open_field(keyring, keys, row.id, e))
            .transpose()?,
        age: row.age,
        created_at: row.created_at,
        key_id: row.key_id,
    })
}

/// The record keys the values of `name` and `email` name (per-user keys).
pub fn record_key_refs<'a>(
    fields: impl IntoIterator<Item = (&'a Sealed<UserName>, Option<&'a Sealed<UserEmail>>)>,
) -> Vec<u64> {
    let mut refs: Vec<u64> = fields
        .into_iter()
        .flat_map(|(name, email)| [name.record_key(), email.and_then(Sealed::record_key)])
        .flatten()
        .collect();
    refs.sort_unstable();
    refs.dedup();
    refs
}

/// [`open`] for rows read together: their record keys loaded in one
/// query, and the key store loaded again first if a row names a data key
/// this session does not hold yet (another process rotated meanwhile).
fn open_rows(
    session: &mut Session,
    rows: Vec<UserRow>,
) -> Result<Vec<Result<Record, AppError>>, AppError> {
    let unknown_key = rows
        .iter()
        .flat_map(|row| {
            [
                row.name.key_id(),
                row.email.as_ref().and_then(Sealed::key_id),
            ]
        })
        .flatten()
        .any(|id| !session.keyring.has_key(id));
    if unknown_key {
        session.refresh()?;
    }
    let refs = record_key_refs(rows.iter().map(|r| (&r.name, r.email.as_ref())));
    let keys = session.record_keys(&refs)?;
    Ok(rows
        .into_iter()
        .map(|row| open(&session.keyring, &keys, row))
        .collect())
}

/// [`open_rows`] for one row.
fn open_fresh(session: &mut Session, row: UserRow) -> Result<Record, AppError> {
    open_rows(session, vec![row])?
        .pop()
        .unwrap_or(Err(AppError::NotFound(0)))
}

/// The id of the record that already uses `email`, if any.
///
/// # Errors
/// Database or crypto errors.
pub fn email_owner(session: &mut Session, email: &str) -> Result<Option<i64>, AppError> {
    session.refresh()?;
    owner_of(session, email)
}

/// [`email_owner`] with the keyring as it is: for callers that refreshed
/// it already in the same operation.
fn owner_of(session: &mut Session, email: &str) -> Result<Option<i64>, AppError> {
    let bidx = session.keyring.blind_indexes::<UserEmail>(email);
    Ok(users::by_email_bidx(&mut session.db, &bidx)?
        .first()
        .map(|r| r.id))
}

fn duplicate_email(existing: Option<i64>) -> AppError {
    let owner = existing.map_or_else(String::new, |id| format!(" by record {id}"));
    AppError::invalid("email", format!("email is already used{owner}"))
}

/// Adds a record.
///
/// # Errors
/// [`AppError::Invalid`] for a duplicate email; database errors.
pub fn add(session: &mut Session, input: &RecordInput) -> Result<Record, AppError> {
    audited(
        session,
        Op::Add,
        None,
        |s| add_now(s, input),
        |r| (Some(r.id), None, own_key_detail(r.key_id)),
    )
}

fn add_now(session: &mut Session, input: &RecordInput) -> Result<Record, AppError> {
    session.refresh()?;
    if let Some(email) = &input.email {
        if let Some(owner) = owner_of(session, email)? {
            return Err(duplicate_email(Some(owner)));
        }
    }
    let row = if session.per_user_keys() {
        let key = session.new_record_key()?;
        seal_under(&session.keyring, Some(&key), input)?
    } else {
        seal(&session.keyring, input)?
    };
    let id = retry(|| users::insert(&mut session.db, &row)).map_err(|e| match e {
        // Another writer took the email between our check and our insert.
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => duplicate_email(None),
        other => other.into(),
    })?;
    Ok(Record {
        id,
        name: input.name.clone(),
        email: input.email.clone(),
        age: input.age,
        created_at: row.created_at,
        key_id: row.key_id,
    })
}

/// Records in id order (`newest_first` reverses it), at most `limit`,
/// skipping `offset`. A row that does not decrypt is returned as its
/// error, so the caller can show every other row.
///
/// # Errors
/// Database errors.
pub fn list(
    session: &mut Session,
    newest_first: bool,
    limit: Option<i64>,
    offset: i64,
) -> Result<Vec<Result<Record, AppError>>, AppError> {
    audited(
        session,
        Op::List,
        None,
        |s| {
            let rows = users::list(&mut s.db, newest_first, limit, offset)?;
            open_rows(s, rows)
        },
        |rows| {
            (
                None,
                Some(rows.len() as i64),
                format!("from offset {offset}"),
            )
        },
    )
}

/// Records whose name equals `name` after normalization (case, width and
/// surrounding spaces do not matter), through the blind index.
///
/// # Errors
/// Database, crypto or decryption errors.
pub fn find_by_name(session: &mut Session, name: &str) -> Result<Vec<Record>, AppError> {
    audited(
        session,
        Op::Find,
        None,
        |s| find_by_name_now(s, name),
        found("by name"),
    )
}

fn find_by_name_now(session: &mut Session, name: &str) -> Result<Vec<Record>, AppError> {
    session.refresh()?;
    let bidx = session.keyring.blind_indexes::<UserName>(name);
    let rows = users::by_name_bidx(&mut session.db, &bidx)?;
    open_all(session, rows)
}

/// The record with this email (normalized), through the blind index.
///
/// # Errors
/// Database, crypto or decryption errors.
pub fn find_by_email(session: &mut Session, email: &str) -> Result<Vec<Record>, AppError> {
    audited(
        session,
        Op::Find,
        None,
        |s| find_by_email_now(s, email),
        found("by email"),
    )
}

fn find_by_email_now(session: &mut Session, email: &str) -> Result<Vec<Record>, AppError> {
    session.refresh()?;
    let bidx = session.keyring.blind_indexes::<UserEmail>(email);
    let rows = users::by_email_bidx(&mut session.db, &bidx)?;
    open_all(session, rows)
}

fn open_all(session: &mut Session, rows: Vec<UserRow>) -> Result<Vec<Record>, AppError> {
    open_rows(session, rows)?.into_iter().collect()
}

/// One record by id.
///
/// # Errors
/// [`AppError::NotFound`]; decryption errors.
pub fn get(session: &mut Session, id: i64) -> Result<Record, AppError> {
    let row = users::get(&mut session.db, id)?.ok_or(AppError::NotFound(id))?;
    open_fresh(session, row)
}

/// What an update changes; `None` keeps the field. `email: Some("")`
/// removes the email.
#[derive(Default)]
pub struct Changes<'a> {
    /// New name.
    pub name: Option<&'a str>,
    /// New email, or empty to remove it.
    pub email: Option<&'a str>,
    /// New age, as typed.
    pub age: Option<&'a str>,
}

/// Updates a record: validates the changes, re-seals both encrypted fields
/// under the active key and recomputes the blind indexes, in one statement
/// that applies only if the record is still as read (a compare-and-swap).
/// When another writer changed it in between, the record is read again and
/// only the fields in `changes` are applied to what that writer left.
///
/// # Errors
/// [`AppError::Invalid`], [`AppError::NotFound`], [`AppError::Conflict`]
/// when other writers kept changing the record, decryption and database
/// errors. Nothing is written when any of them occurs.
pub fn update(session: &mut Session, id: i64, changes: &Changes<'_>) -> Result<Record, AppError> {
    audited(
        session,
        Op::Update,
        Some(id),
        |s| update_now(s, id, changes),
        |r| (Some(r.id), None, changed_fields(changes)),
    )
}

fn update_now(session: &mut Session, id: i64, changes: &Changes<'_>) -> Result<Record, AppError> {
    let parsed = ParsedChanges::parse(changes)?;
    session.refresh()?;
    for _ in 0..UPDATE_ATTEMPTS {
        // What is stored now; the write below applies only if it still is.
        let read = users::get(&mut session.db, id)?.ok_or(AppError::NotFound(id))?;
        let record = open_fresh(session, read.clone())?;
        if let Some(written) = write_changes(session, &read, record, &parsed)? {
            return Ok(written);
        }
        // Another writer changed the row since it was read: read it again
        // and apply only the fields this update changes.
    }
    Err(AppError::Conflict(id))
}

/// How [`update_if_same`] ended.
#[derive(Debug)]
pub enum Edited {
    /// The changes are in; the record as stored now.
    Done(Record),
    /// The record is no longer what the editor saw: nothing was written.
    /// The record as stored now, to show and edit again.
    ChangedMeanwhile(Record),
}

/// Applies `changes` to record `id` only if it still holds what `seen`
/// shows (name, email, age): an editor that showed a person the record
/// never overwrites a change made by someone else since. Through the same
/// conditional write as [`update`].
///
/// # Errors
/// As [`update`].
pub fn update_if_same(
    session: &mut Session,
    seen: &Record,
    changes: &Changes<'_>,
) -> Result<Edited, AppError> {
    audited(
        session,
        Op::Update,
        Some(seen.id),
        |s| update_if_same_now(s, seen, changes),
        |edited| match edited {
            Edited::Done(_) => (None, None, changed_fields(changes)),
            Edited::ChangedMeanwhile(_) => {
                (None, Some(0), "changed meanwhile; nothing written".into())
            }
        },
    )
}

fn update_if_same_now(
    session: &mut Session,
    seen: &Record,
    changes: &Changes<'_>,
) -> Result<Edited, AppError> {
    let parsed = ParsedChanges::parse(changes)?;
    session.refresh()?;
    let read = users::get(&mut session.db, seen.id)?.ok_or(AppError::NotFound(seen.id))?;
    let current = open_fresh(session, read.clone())?;
    if !same_fields(&current, seen) {
        return Ok(Edited::ChangedMeanwhile(current));
    }
    match write_changes(session, &read, current, &parsed)? {
        Some(written) => Ok(Edited::Done(written)),
        None => {
            let read = users::get(&mut session.db, seen.id)?.ok_or(AppError::NotFound(seen.id))?;
            Ok(Edited::ChangedMeanwhile(open_fresh(session, read)?))
        }
    }
}

fn same_fields(a: &Record, b: &Record) -> bool {
    a.name == b.name && a.email == b.email && a.age == b.age
}

/// Validated [`Changes`]: `email` is `Some(None)` to remove it.
struct ParsedChanges {
    name: Option<String>,
    email: Option<Option<String>>,
    age: Option<i32>,
}

impl ParsedChanges {
    fn parse(changes: &Changes<'_>) -> Result<Self, AppError> {
        Ok(ParsedChanges {
            name: changes.name.map(parse_name).transpose()?,
            email: changes.email.map(parse_email).transpose()?,
            age: changes.age.map(parse_age).transpose()?,
        })
    }
}

/// Writes `record` (opened from `read`) with `changes` applied, if the row
/// still is `read`. `None` when another writer changed it first.
fn write_changes(
    session: &mut Session,
    read: &users::UserRow,
    mut record: Record,
    changes: &ParsedChanges,
) -> Result<Option<Record>, AppError> {
    let id = record.id;
    if let Some(name) = &changes.name {
        record.name = name.clone();
    }
    if let Some(email) = &changes.email {
        if let Some(new) = email {
            if let Some(owner) = owner_of(session, new)?.filter(|&owner| owner != id) {
                return Err(duplicate_email(Some(owner)));
            }
        }
        record.email = email.clone();
    }
    if let Some(age) = changes.age {
        record.age = age;
    }
    // A record with a key of its own keeps it (a forget must reach every
    // version of it); with per-user keys on, one without gets one now.
    let own = match read.name.record_key() {
        Some(reference) => Some(reference),
        None if session.per_user_keys() => Some(session.new_record_key()?.reference()),
        None => None,
    };
    let keys = session.record_keys(own.as_slice())?;
    let own_key = match own {
        Some(reference) => Some(
            keys.get(reference)
                .map_err(|_| AppError::Erased(id))?
                .ok_or(AppError::Erased(id))?,
        ),
        None => None,
    };
    let (sealed_name, name_bidx, sealed_email, email_bidx) = seal_fields(
        &session.keyring,
        own_key,
        &record.name,
        record.email.as_deref(),
    )?;
    record.key_id = own.map_or(i64::from(session.keyring.active_key_id()), |_| OWN_KEY);
    let update = UserChanges {
        name: sealed_name,
        name_bidx,
        email: sealed_email,
        email_bidx,
        age: record.age,
        key_id: record.key_id,
        bidx_version: i64::from(session.keyring.index_version().unwrap_or(1)),
    };
    let written = retry(|| users::update_if_unchanged(&mut session.db, read, &update)).map_err(
        |e| match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                duplicate_email(None)
            }
            other => other.into(),
        },
    )?;
    Ok(written.then_some(record))
}

/// How many times an update re-reads a record that other writers keep
/// changing before it gives up.
const UPDATE_ATTEMPTS: usize = 5;

/// Deletes a record.
///
/// # Errors
/// [`AppError::NotFound`]; database errors.
pub fn delete(session: &mut Session, id: i64) -> Result<(), AppError> {
    audited(
        session,
        Op::Delete,
        Some(id),
        |s| delete_now(s, id),
        |()| (None, None, String::new()),
    )
}

fn delete_now(session: &mut Session, id: i64) -> Result<(), AppError> {
    match retry(|| users::delete(&mut session.db, id))? {
        0 => Err(AppError::NotFound(id)),
        _ => Ok(()),
    }
}

/// The audit detail of a record written: under its own key or not.
fn own_key_detail(key_id: i64) -> String {
    if key_id == OWN_KEY {
        "own key".into()
    } else {
        format!("data key {key_id}")
    }
}

/// The audit description of a find: how it searched and how many it found.
fn found(how: &'static str) -> impl FnOnce(&Vec<Record>) -> (Option<i64>, Option<i64>, String) {
    move |records| {
        let one = (records.len() == 1).then(|| records[0].id);
        (one, Some(records.len() as i64), how.to_owned())
    }
}

/// Which fields an update changes (names of fields, never values).
fn changed_fields(changes: &Changes<'_>) -> String {
    let fields: Vec<&str> = [
        changes.name.map(|_| "name"),
        changes.email.map(|_| "email"),
        changes.age.map(|_| "age"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if fields.is_empty() {
        "no change".into()
    } else {
        format!("changed {}", fields.join(", "))
    }
}

/// How [`forget`] erased a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgotten {
    /// The record's own key was destroyed and its row deleted: no copy of
    /// its values, in this database or in a backup of it, opens again.
    KeyDestroyed,
    /// The record had no key of its own (sealed under the keyring's data
    /// key): its row is deleted, and backups still hold it.
    RowOnly,
}

/// Forgets a record (the right to erasure): destroys its own key in the
/// key store first, then deletes its row, and records it in the audit
/// trail. Safe to run again after a failure: a record whose key is gone
/// and whose row is still there (a restored backup) is deleted.
///
/// # Errors
/// [`AppError::NotFound`]; database and key store errors.
pub fn forget(session: &mut Session, id: i64) -> Result<Forgotten, AppError> {
    audited(
        session,
        Op::Forget,
        Some(id),
        |s| forget_now(s, id),
        |f| {
            let detail = match f {
                Forgotten::KeyDestroyed => "own key destroyed, row deleted",
                Forgotten::RowOnly => "row deleted; no own key, so backups still hold it",
            };
            (None, None, detail.to_owned())
        },
    )
}

fn forget_now(session: &mut Session, id: i64) -> Result<Forgotten, AppError> {
    let row = users::get(&mut session.db, id)?.ok_or(AppError::NotFound(id))?;
    let refs = record_key_refs([(&row.name, row.email.as_ref())]);
    // The key first: if the row's deletion then fails, the record is
    // already unreadable everywhere, and running forget again deletes it.
    for &reference in &refs {
        session.keystore_unit(|db| {
            crate::with_conn!(db, |c| fieldseal::RecordKeys::destroy(c, reference))
        })?;
    }
    retry(|| users::delete(&mut session.db, id))?;
    Ok(if refs.is_empty() {
        Forgotten::RowOnly
    } else {
        Forgotten::KeyDestroyed
    })
}

/// How many records there are.
///
/// # Errors
/// Database errors.
pub fn count(session: &mut Session) -> Result<i64, AppError> {
    Ok(users::count(&mut session.db)?)
}

/// Writes every record as CSV with the columns an import takes
/// (`name,email,age`), in id order, reading in pages so memory stays
/// flat. Returns how many rows were written; stops at the first row that
/// does not decrypt.
///
/// # Errors
/// Decryption, database and I/O errors.
pub fn export<W: std::io::Write + Send>(session: &mut Session, out: W) -> Result<u64, ExportError> {
    let result = export_now(session, out);
    let (ok, count, detail) = match &result {
        Ok(n) => (
            true,
            Some(i64::try_from(*n).unwrap_or(i64::MAX)),
            "CSV".to_owned(),
        ),
        Err(ExportError::App(e)) => (false, None, e.kind().to_owned()),
        Err(_) => (false, None, "cannot write the CSV".to_owned()),
    };
    audit::log_run(
        session,
        Op::Export,
        count,
        ok,
        &detail,
        result,
        ExportError::App,
    )
}

fn export_now<W: std::io::Write + Send>(session: &mut Session, out: W) -> Result<u64, ExportError> {
    const PAGE: i64 = 5_000;
    // Keys added by a rotation since this session unlocked are needed to
    // read the rows it re-encrypted.
    session.refresh()?;
    let keyring = std::sync::Arc::clone(&session.keyring);
    // Pages are fetched here and decrypted and written by a second thread,
    // so the database and the decryption work at the same time.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Vec<ExportRow>, RecordKeys)>(2);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> Result<u64, ExportError> {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(["name", "email", "age"])?;
            let mut written = 0u64;
            for (page, keys) in rx {
                for row in page {
                    let name =
                        zeroize::Zeroizing::new(open_field(&keyring, &keys, row.id, &row.name)?);
                    let email = match &row.email {
                        Some(e) => Some(open_field(&keyring, &keys, row.id, e)?),
                        None => None,
                    }
                    .map(zeroize::Zeroizing::new);
                    writer.write_record([
                        name.as_bytes(),
                        email.as_ref().map_or("", |e| e.as_str()).as_bytes(),
                        row.age.to_string().as_bytes(),
                    ])?;
                    written += 1;
                }
            }
            writer.flush()?;
            Ok(written)
        });
        let mut after = 0i64;
        let fetched: Result<(), ExportError> = loop {
            if let Err(e) = session.check_interrupt() {
                break Err(e.into());
            }
            let page = match users::export_page(&mut session.db, after, PAGE) {
                Ok(page) => page,
                Err(e) => break Err(AppError::from(e).into()),
            };
            let full = page.len() as i64 == PAGE;
            after = page.last().map_or(after, |r| r.id);
            let refs = record_key_refs(page.iter().map(|r| (&r.name, r.email.as_ref())));
            let keys = match session.record_keys(&refs) {
                Ok(keys) => keys,
                Err(e) => break Err(e.into()),
            };
            if tx.send((page, keys)).is_err() || !full {
                break Ok(());
            }
        };
        drop(tx);
        let written = writer.join().unwrap_or_else(|_| {
            Err(ExportError::Io(std::io::Error::other(
                "the export writer thread failed",
            )))
        });
        fetched.and(written)
    })
}

/// Opens one encrypted field of record `id` as text; a failure names the
/// record and the column.
pub(crate) fn open_field<C: Context>(
    keyring: &Keyring,
    keys: &RecordKeys,
    id: i64,
    sealed: &Sealed<C>,
) -> Result<String, AppError> {
    keyring
        .open_with(keys, sealed)
        .map_err(|reason| match reason.kind {
            fieldseal::DecryptErrorKind::Erased(_) => AppError::Erased(id),
            _ => AppError::Decrypt { id, reason },
        })
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A record failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// Writing the CSV failed.
    #[error("cannot write the CSV: {0}")]
    Csv(#[from] csv::Error),
    /// Writing the file failed.
    #[error("cannot write the CSV: {0}")]
    Io(#[from] std::io::Error),
}
