//! The audit trail: one entry per operation (who, what, which record or
//! how many, whether it worked), chained by HMAC under the keyring's audit
//! key so that `verify` finds an entry changed, deleted, inserted or moved
//! by hand. Entries never hold plaintext or blind-index values: the
//! operation, ids, counts and a short fixed detail only.

use super::{AppError, Session};
use crate::store::audit::{self as table, EntryRow, HeadRow};
use crate::store::retry::retry;

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `add`.
    Add,
    /// `update`, `edit`.
    Update,
    /// `delete`.
    Delete,
    /// `forget`: the record's key destroyed.
    Forget,
    /// `find`.
    Find,
    /// `list`.
    List,
    /// `export`.
    Export,
    /// `import` (one entry per run).
    Import,
    /// `adopt` (one entry per run).
    Adopt,
    /// `keys rotate`.
    Rotate,
    /// `keys change-passphrase`.
    ChangePassphrase,
}

impl Op {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Forget => "forget",
            Op::Find => "find",
            Op::List => "list",
            Op::Export => "export",
            Op::Import => "import",
            Op::Adopt => "adopt",
            Op::Rotate => "rotate",
            Op::ChangePassphrase => "change-passphrase",
        }
    }
}

/// One entry as shown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// Position in the chain.
    pub id: i64,
    /// When, UTC, RFC 3339 with milliseconds.
    pub at: String,
    /// Operating-system user.
    pub user: String,
    /// Operation.
    pub operation: String,
    /// Record concerned.
    pub record: Option<i64>,
    /// Rows concerned.
    pub count: Option<i64>,
    /// `ok` or `failed`.
    pub outcome: String,
    /// Short description.
    pub detail: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry is in place and unchanged.
    Intact {
        /// How many entries.
        entries: i64,
    },
    /// The first place where the chain breaks.
    Broken {
        /// The first entry that does not verify (or where one is missing).
        id: i64,
        /// What is wrong there, one sentence.
        why: String,
    },
}

/// Runs `work` and records it: success with the record and count it
/// reports, or failure with the error's kind. The error of `work` is
/// returned as it was; when `work` succeeded but the entry could not be
/// written, [`AppError::Audit`].
///
/// # Errors
/// `work`'s error; [`AppError::Audit`].
pub fn audited<T>(
    session: &mut Session,
    op: Op,
    record: Option<i64>,
    work: impl FnOnce(&mut Session) -> Result<T, AppError>,
    describe: impl FnOnce(&T) -> (Option<i64>, Option<i64>, String),
) -> Result<T, AppError> {
    match work(session) {
        Ok(value) => {
            let (rec, count, detail) = describe(&value);
            log(session, op, rec.or(record), count, true, &detail)
                .map_err(|e| entry_failed(op, &e))?;
            Ok(value)
        }
        Err(e) => {
            // The failure is what the caller needs to see; an entry that
            // cannot be written on top of it is not reported.
            let _ = log(session, op, record, None, false, e.kind());
            Err(e)
        }
    }
}

/// Records a whole run (an import, export or adoption: one entry, not
/// one per row) after it ended with `result`: `ok`, `count` and `detail`
/// describe it. When the run returned normally, an entry that cannot be
/// written is its error (through `wrap`); after a failure, the failure is
/// what the caller sees.
///
/// # Errors
/// `result`'s error; the entry's, as [`AppError::Audit`].
pub fn log_run<T, E>(
    session: &mut Session,
    op: Op,
    count: Option<i64>,
    ok: bool,
    detail: &str,
    result: Result<T, E>,
    wrap: impl FnOnce(AppError) -> E,
) -> Result<T, E> {
    match log(session, op, None, count, ok, detail) {
        Err(e) if result.is_ok() => Err(wrap(entry_failed(op, &e))),
        _ => result,
    }
}

/// The error of an operation that was done but could not be recorded.
fn entry_failed(op: Op, e: &AppError) -> AppError {
    AppError::Audit {
        operation: op.as_str(),
        cause: e.to_string(),
    }
}

/// Appends one entry.
///
/// # Errors
/// Database errors; [`fieldseal::Error::NoAuditKey`].
pub fn log(
    session: &mut Session,
    op: Op,
    record: Option<i64>,
    count: Option<i64>,
    ok: bool,
    detail: &str,
) -> Result<(), AppError> {
    let keyring = std::sync::Arc::clone(&session.keyring);
    if !keyring.has_audit_key() {
        return Err(fieldseal::Error::NoAuditKey.into());
    }
    let at_ms = chrono::Utc::now().timestamp_millis();
    let user = os_user();
    let detail: String = detail.chars().take(255).collect();
    let mut make = |head: Option<&HeadRow>| {
        let (last_id, last_mac) = head.map_or((0, Vec::new()), |h| (h.last_id, h.last_mac.clone()));
        let mut entry = EntryRow {
            id: last_id + 1,
            at_ms,
            os_user: user.clone(),
            operation: op.as_str().to_owned(),
            record_id: record,
            row_count: count,
            outcome: if ok { "ok" } else { "failed" }.to_owned(),
            detail: detail.clone(),
            mac: Vec::new(),
        };
        // The key is there (checked above), so these cannot fail.
        entry.mac = keyring
            .audit_mac(&entry_message(&entry, &last_mac))
            .map(|m| m.to_vec())
            .unwrap_or_default();
        let head = HeadRow {
            id: 1,
            last_id: entry.id,
            last_mac: entry.mac.clone(),
            mac: keyring
                .audit_mac(&head_message(entry.id, &entry.mac))
                .map(|m| m.to_vec())
                .unwrap_or_default(),
        };
        Ok((entry, head))
    };
    for _ in 0..crate::store::retry::ATTEMPTS * 4 {
        // A writer that appended between our read and our swap makes the
        // swap miss (or the insert collide): read the new head and go again.
        match retry(|| table::append(&mut session.db, &mut make)) {
            Ok(true) => return Ok(()),
            Ok(false)
            | Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(AppError::Busy {
        attempts: crate::store::retry::ATTEMPTS * 4,
    })
}

/// The entries about `record` (all when `None`) from `since_ms` on.
///
/// # Errors
/// Database errors.
pub fn show(
    session: &mut Session,
    record: Option<i64>,
    since_ms: Option<i64>,
) -> Result<Vec<Entry>, AppError> {
    Ok(table::select(&mut session.db, record, since_ms)?
        .into_iter()
        .map(|e| Entry {
            id: e.id,
            at: chrono::DateTime::from_timestamp_millis(e.at_ms).map_or_else(
                || e.at_ms.to_string(),
                |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            ),
            user: e.os_user,
            operation: e.operation,
            record: e.record_id,
            count: e.row_count,
            outcome: e.outcome,
            detail: e.detail,
        })
        .collect())
}

/// Walks the chain from entry 1 and checks every MAC, the ids'
/// succession and the head.
///
/// # Errors
/// Database errors; [`fieldseal::Error::NoAuditKey`].
pub fn verify(session: &mut Session) -> Result<Verdict, AppError> {
    const PAGE: i64 = 10_000;
    let keyring = std::sync::Arc::clone(&session.keyring);
    if !keyring.has_audit_key() {
        return Err(fieldseal::Error::NoAuditKey.into());
    }
    let mut expected = 1i64;
    let mut prev_mac: Vec<u8> = Vec::new();
    loop {
        let page = table::page(&mut session.db, expected - 1, PAGE)?;
        let full = page.len() as i64 == PAGE;
        for entry in page {
            if entry.id != expected {
                return Ok(Verdict::Broken {
                    id: expected,
                    why: format!(
                        "entry {expected} is missing (the next one is {}): entries were deleted \
                         or renumbered",
                        entry.id
                    ),
                });
            }
            if !keyring.verify_audit_mac(&entry_message(&entry, &prev_mac), &entry.mac) {
                return Ok(Verdict::Broken {
                    id: entry.id,
                    why: format!(
                        "entry {} does not match its MAC: it was changed, inserted or moved \
                         by hand, or the entry before it was",
                        entry.id
                    ),
                });
            }
            prev_mac = entry.mac;
            expected += 1;
        }
        if !full {
            break;
        }
    }
    let last = expected - 1;
    let head = table::head(&mut session.db)?;
    let head_ok = match &head {
        None => last == 0,
        Some(h) => {
            keyring.verify_audit_mac(&head_message(h.last_id, &h.last_mac), &h.mac)
                && h.last_id == last
                && h.last_mac == prev_mac
        }
    };
    if !head_ok {
        let said = head.as_ref().map_or(0, |h| h.last_id);
        return Ok(Verdict::Broken {
            id: last + 1,
            why: if said > last {
                format!(
                    "the trail ends at entry {last}, but its head records {said} entries: \
                     entries were deleted from the end"
                )
            } else {
                format!(
                    "the trail's head does not match entry {last} (the head was altered, or \
                     entries were appended by hand)"
                )
            },
        });
    }
    Ok(Verdict::Intact { entries: last })
}

/// What an entry's MAC covers: every field, length-prefixed, then the
/// previous entry's MAC.
fn entry_message(e: &EntryRow, prev_mac: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(128);
    let mut field = |bytes: &[u8]| {
        m.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        m.extend_from_slice(bytes);
    };
    field(b"entry");
    field(&e.id.to_be_bytes());
    field(&e.at_ms.to_be_bytes());
    field(e.os_user.as_bytes());
    field(e.operation.as_bytes());
    field(&opt(e.record_id));
    field(&opt(e.row_count));
    field(e.outcome.as_bytes());
    field(e.detail.as_bytes());
    field(prev_mac);
    m
}

fn head_message(last_id: i64, last_mac: &[u8]) -> Vec<u8> {
    let mut m = b"head".to_vec();
    m.extend_from_slice(&last_id.to_be_bytes());
    m.extend_from_slice(last_mac);
    m
}

fn opt(v: Option<i64>) -> Vec<u8> {
    match v {
        None => vec![0],
        Some(n) => {
            let mut b = vec![1];
            b.extend_from_slice(&n.to_be_bytes());
            b
        }
    }
}

/// The operating-system user running this process, from the user
/// database by uid (not from `$USER`, which anyone can set).
pub fn os_user() -> String {
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name.chars().take(64).collect(),
        _ => format!("uid {uid}"),
    }
}
