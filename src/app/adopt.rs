//! `fieldseal adopt`: takes over a `users` table another application left
//! behind (plaintext, AES-CBC or Fernet values) in place. Every row keeps
//! its id; names and emails are opened with the legacy scheme, validated
//! as any new record is, sealed, and indexed; ages are kept. See
//! [`crate::store::legacy`] for how the rows move and why a rerun after a
//! crash finishes with exactly the legacy rows.

use super::import::{earlier_repeats, retain_flagged};
use super::record::RecordInput;
use super::records::{seal, seal_own};
use super::{AppError, Session};
use crate::store::bulk::BulkConn;
use crate::store::imports::{Committed, StampCache};
use crate::store::legacy::{self, ColumnMap, LegacyRow, TableState, LEGACY_TABLE};
use crate::store::retry::retry;
use crate::store::users::NewUserRow;
use crate::store::{Db, DbUrl};
use base64::Engine as _;
use chrono::NaiveDateTime;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How the legacy application stored names and emails.
pub enum Source {
    /// As text.
    Plaintext,
    /// base64 of a 16-byte IV and AES-256-CBC ciphertext with PKCS#7
    /// padding, under a 32-byte key.
    AesCbc(Zeroizing<[u8; 32]>),
    /// Fernet tokens under one key.
    Fernet(Box<fernet::Fernet>),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Plaintext => "Source::Plaintext",
            Source::AesCbc(_) => "Source::AesCbc(..)",
            Source::Fernet(_) => "Source::Fernet(..)",
        })
    }
}

/// What went wrong before or during an adoption.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// The command line or the legacy key file is wrong; nothing changed.
    #[error("{0}")]
    Setup(String),
    /// The legacy table cannot be adopted as it is; nothing changed.
    #[error("{0}")]
    Table(String),
    /// The legacy key opens none of the first rows; nothing changed.
    #[error("the legacy key does not open the first rows of users ({0}); nothing was changed")]
    WrongKey(String),
    /// Database or key store errors.
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<diesel::result::Error> for AdoptError {
    fn from(e: diesel::result::Error) -> Self {
        AdoptError::App(e.into())
    }
}

impl Source {
    /// The `--from` name.
    pub fn name(&self) -> &'static str {
        match self {
            Source::Plaintext => "plaintext",
            Source::AesCbc(_) => "aes-cbc",
            Source::Fernet(_) => "fernet",
        }
    }

    /// The source named by `--from`, with its key from `key_file`.
    ///
    /// # Errors
    /// [`AdoptError::Setup`]: an unknown source, a missing or unreadable key
    /// file, a key of the wrong form (the key itself is never shown).
    pub fn parse(from: &str, key_file: Option<&Path>) -> Result<Source, AdoptError> {
        let read_key = |what: &str| -> Result<Zeroizing<Vec<u8>>, AdoptError> {
            let path = key_file.ok_or_else(|| {
                AdoptError::Setup(format!(
                    "--from {from} needs --legacy-key-file FILE with the {what}"
                ))
            })?;
            std::fs::read(path).map(Zeroizing::new).map_err(|e| {
                AdoptError::Setup(format!(
                    "cannot read the legacy key file {}: {e}",
                    path.display()
                ))
            })
        };
        match from {
            "plaintext" => Ok(Source::Plaintext),
            "aes-cbc" => {
                let bytes = read_key("32-byte AES key")?;
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    AdoptError::Setup(format!(
                        "the legacy key file holds {} bytes; an AES-256 key is 32 raw bytes",
                        bytes.len()
                    ))
                })?;
                Ok(Source::AesCbc(Zeroizing::new(key)))
            }
            "fernet" => {
                let bytes = read_key("Fernet key")?;
                let text = std::str::from_utf8(&bytes).unwrap_or("").trim();
                fernet::Fernet::new(text)
                    .map(|f| Source::Fernet(Box::new(f)))
                    .ok_or_else(|| {
                        AdoptError::Setup(
                            "the legacy key file does not hold a Fernet key (32 bytes in urlsafe \
                             base64)"
                                .into(),
                        )
                    })
            }
            other => Err(AdoptError::Setup(format!(
                "--from {other:?} is not a source fieldseal knows: use plaintext, aes-cbc or fernet"
            ))),
        }
    }

    /// The text of one legacy value as the database stores it; the error
    /// says why not, without the value. Never panics, whatever the bytes
    /// (a fuzz target holds it to that).
    ///
    /// # Errors
    /// One sentence: not base64, not whole AES blocks, wrong padding, a
    /// Fernet token that does not verify, not UTF-8.
    pub fn open(&self, stored: &[u8]) -> Result<Zeroizing<String>, String> {
        let bytes: Zeroizing<Vec<u8>> = match self {
            Source::Plaintext => Zeroizing::new(stored.to_vec()),
            Source::AesCbc(key) => {
                use cbc::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(trim_ascii(stored))
                    .map_err(|_| "it is not valid base64".to_owned())?;
                if raw.len() < 32 || raw.len() % 16 != 0 {
                    return Err(format!(
                        "it holds {} bytes, not a 16-byte IV and whole AES blocks",
                        raw.len()
                    ));
                }
                let (iv, ciphertext) = raw.split_at(16);
                cbc::Decryptor::<aes::Aes256>::new(key.as_ref().into(), iv.into())
                    .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
                    .map(Zeroizing::new)
                    .map_err(|_| {
                        "its padding is wrong (a wrong key or a damaged value)".to_owned()
                    })?
            }
            Source::Fernet(f) => {
                let token = std::str::from_utf8(trim_ascii(stored))
                    .map_err(|_| "it is not a Fernet token".to_owned())?;
                f.decrypt(token).map(Zeroizing::new).map_err(|_| {
                    "its Fernet token does not verify (a wrong key or a damaged value)".to_owned()
                })?
            }
        };
        String::from_utf8(bytes.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| "it is not UTF-8 text".to_owned())
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// Where `--map COLUMN=FIELD` sends a legacy column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The record's name.
    Name,
    /// The record's email.
    Email,
    /// The record's age.
    Age,
    /// The record's creation time.
    CreatedAt,
    /// Dropped on purpose.
    Skip,
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "name" => Ok(Target::Name),
            "email" => Ok(Target::Email),
            "age" => Ok(Target::Age),
            "created_at" => Ok(Target::CreatedAt),
            "skip" | "-" => Ok(Target::Skip),
            _ => Err("a legacy column maps to name, email, age, created_at or skip".into()),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Name => "name",
            Target::Email => "email",
            Target::Age => "age",
            Target::CreatedAt => "created_at",
            Target::Skip => "skip",
        })
    }
}

/// What to do with a legacy row that cannot be adopted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnBadRow {
    /// Stop at it (earlier batches stay adopted).
    #[default]
    Abort,
    /// Leave it in the legacy table and go on.
    Skip,
}

/// How to adopt.
#[derive(Debug)]
pub struct AdoptOptions {
    /// How the legacy values are stored.
    pub source: Source,
    /// `--map` entries: legacy column → field.
    pub mapping: Vec<(String, Target)>,
    /// Rows per batch (and per transaction).
    pub batch_size: usize,
    /// What to do with a bad row.
    pub on_error: OnBadRow,
}

/// A legacy row that was not adopted, and why (never its values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// Its legacy id.
    pub id: i64,
    /// One sentence.
    pub reason: String,
}

/// How an adoption went.
#[derive(Debug, Default)]
pub struct AdoptReport {
    /// Rows adopted in this run.
    pub adopted: u64,
    /// Rows skipped (`--on-error skip`), left in the legacy table.
    pub skipped: Vec<BadRow>,
    /// The bad row that stopped an `abort` adoption.
    pub stopped_at: Option<BadRow>,
    /// Rows still in the legacy table afterwards.
    pub left: i64,
    /// Whether batches went in through LOAD DATA.
    pub bulk_loaded: bool,
    /// Wall time.
    pub elapsed: Duration,
}

/// Progress, after every batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdoptProgress {
    /// Legacy rows when this run started.
    pub total: u64,
    /// Rows looked at so far.
    pub seen: u64,
    /// Rows adopted so far.
    pub adopted: u64,
}

/// Rows the legacy key is tried on before anything changes.
const CHECK_ROWS: i64 = 20;

/// What [`prepare`] found.
#[derive(Debug)]
pub enum Prepared {
    /// There is nothing to adopt.
    Nothing,
    /// The legacy table is checked and (if it was still `users`) moved
    /// aside; migrations can run.
    Ready(ColumnMap),
}

/// Checks the legacy table and the legacy key against its first rows, and
/// only then moves it aside (one rename). Runs before migrations, on a
/// database that may not have any fieldseal table yet.
///
/// # Errors
/// [`AdoptError::Table`] (an unknown column, a missing one) and
/// [`AdoptError::WrongKey`]; in both cases nothing was changed.
pub fn prepare(db: &mut Db, options: &AdoptOptions) -> Result<Prepared, AdoptError> {
    let state = legacy::state(db)?;
    let table = match state {
        TableState::Nothing => {
            legacy::tidy(db)?;
            return Ok(Prepared::Nothing);
        }
        TableState::Legacy => "users",
        TableState::Underway => LEGACY_TABLE,
    };
    let map = column_map(&legacy::columns(db, table)?, &options.mapping)?;
    check_key(db, table, &map, &options.source)?;
    if state == TableState::Legacy {
        legacy::take_over(db)?;
    }
    Ok(Prepared::Ready(map))
}

/// Resolves which legacy column holds what.
fn column_map(columns: &[String], mapping: &[(String, Target)]) -> Result<ColumnMap, AdoptError> {
    for (column, _) in mapping {
        if !columns.iter().any(|c| c == column) {
            return Err(AdoptError::Table(format!(
                "--map names the column {column:?}, which users does not have"
            )));
        }
    }
    let mut map = ColumnMap::default();
    let set = |slot: &mut Option<String>, field: &str, column: &str| {
        if let Some(earlier) = slot.replace(column.to_owned()) {
            return Err(AdoptError::Table(format!(
                "both {earlier:?} and {column:?} would be the {field}; map one of them to skip"
            )));
        }
        Ok(())
    };
    let (mut id, mut name, mut email, mut age, mut created) = (None, None, None, None, None);
    for column in columns {
        let target = mapping
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, t)| *t)
            .or(match column.as_str() {
                "name" => Some(Target::Name),
                "email" => Some(Target::Email),
                "age" => Some(Target::Age),
                "created_at" => Some(Target::CreatedAt),
                _ => None,
            });
        match (column.as_str(), target) {
            ("id", None) => id = Some(column.clone()),
            (_, Some(Target::Name)) => set(&mut name, "name", column)?,
            (_, Some(Target::Email)) => set(&mut email, "email", column)?,
            (_, Some(Target::Age)) => set(&mut age, "age", column)?,
            (_, Some(Target::CreatedAt)) => set(&mut created, "creation time", column)?,
            (_, Some(Target::Skip)) => {}
            (_, None) => {
                return Err(AdoptError::Table(format!(
                    "users has a column {column:?} that fieldseal would not keep; map it with \
                     --map {column}=name|email|age|created_at, or drop it on purpose with \
                     --map {column}=skip"
                )))
            }
        }
    }
    let missing = |what: &str| AdoptError::Table(format!("users has no {what} column"));
    map.id = id.ok_or_else(|| missing("id"))?;
    map.name = name.ok_or_else(|| missing("name (map one with --map COLUMN=name)"))?;
    map.age = age.ok_or_else(|| missing("age (map one with --map COLUMN=age)"))?;
    map.email = email;
    map.created_at = created;
    Ok(map)
}

/// Tries the legacy key on the first rows: the key is wrong when it opens
/// none of them (a damaged row among good ones is a bad row, found later).
fn check_key(db: &mut Db, table: &str, map: &ColumnMap, source: &Source) -> Result<(), AdoptError> {
    if matches!(source, Source::Plaintext) {
        return Ok(());
    }
    let rows = legacy::read(db, table, map, i64::MIN, CHECK_ROWS)?;
    let mut first_failure = None;
    for row in &rows {
        match row.name.as_deref().map(|n| source.open(n)) {
            Some(Ok(_)) => return Ok(()),
            Some(Err(why)) => {
                first_failure.get_or_insert(format!("row id {}: the name: {why}", row.id));
            }
            None => {}
        }
    }
    match first_failure {
        Some(why) => Err(AdoptError::WrongKey(why)),
        None => Ok(()),
    }
}

/// A batch on its way: legacy rows opened, validated and sealed.
struct SealedBatch {
    rows: Vec<(i64, NewUserRow)>,
    /// Email blind index of each row in `rows`, for the duplicate checks.
    email_keys: Vec<Option<Vec<u8>>>,
    /// Each row's own key, wrapped (per-user keys), aligned with `rows`.
    record_keys: Vec<Option<fieldseal::WrappedRecordKey>>,
    bad: Vec<BadRow>,
    seen: u64,
    /// The last legacy id read into this batch: the cursor once it commits.
    last_read: i64,
}

/// Opens, validates and seals one legacy row.
fn convert(
    session_keyring: &fieldseal::Keyring,
    own_keys: bool,
    source: &Source,
    row: &LegacyRow,
    now: NaiveDateTime,
) -> Result<(NewUserRow, Option<fieldseal::WrappedRecordKey>), String> {
    let name = match &row.name {
        Some(n) => source.open(n).map_err(|why| format!("the name: {why}"))?,
        None => return Err("the name is NULL".into()),
    };
    let email = match &row.email {
        Some(e) if !trim_ascii(e).is_empty() => {
            Some(source.open(e).map_err(|why| format!("the email: {why}"))?)
        }
        _ => None,
    };
    let age = row.age.as_deref().unwrap_or("");
    let input = RecordInput::parse(&name, email.as_deref().map(|e| e.as_str()), age)
        .map_err(|e| e.to_string())?;
    let (mut sealed, key) = if own_keys {
        let (row, key) = seal_own(session_keyring, &input).map_err(|e| e.to_string())?;
        (row, Some(key))
    } else {
        (
            seal(session_keyring, &input).map_err(|e| e.to_string())?,
            None,
        )
    };
    sealed.created_at = match row.created_at.as_deref() {
        Some(text) => parse_time(text)
            .ok_or_else(|| "created_at is not a date and time (YYYY-MM-DD HH:MM:SS)".to_owned())?,
        None => now,
    };
    Ok((sealed, key))
}

fn parse_time(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// Adopts every row left in the legacy table, in batches, after
/// [`prepare`] and the migrations. On MySQL with `url`, batches go in
/// through LOAD DATA on a connection of their own (see
/// [`crate::store::bulk`]). A batch is read, opened and sealed in a second
/// thread while the one before it is written.
///
/// # Errors
/// Database and key store errors. A bad row is not an error: see
/// [`AdoptReport::stopped_at`] and [`AdoptReport::skipped`].
pub fn adopt(
    session: &mut Session,
    map: &ColumnMap,
    options: &AdoptOptions,
    on_progress: &mut dyn FnMut(&AdoptProgress),
) -> Result<AdoptReport, AdoptError> {
    let result = adopt_now(session, map, options, on_progress);
    // One audit entry per run.
    let (ok, count, detail) = match &result {
        Ok(r) => (
            r.stopped_at.is_none(),
            Some(i64::try_from(r.adopted).unwrap_or(i64::MAX)),
            format!(
                "from {}: {} rows adopted, {} left out",
                options.source.name(),
                r.adopted,
                r.left
            ),
        ),
        Err(AdoptError::App(e)) => (false, None, e.kind().to_owned()),
        Err(_) => (
            false,
            None,
            format!("from {}: failed", options.source.name()),
        ),
    };
    super::audit::log_run(
        session,
        super::audit::Op::Adopt,
        count,
        ok,
        &detail,
        result,
        AdoptError::App,
    )
}

fn adopt_now(
    session: &mut Session,
    map: &ColumnMap,
    options: &AdoptOptions,
    on_progress: &mut dyn FnMut(&AdoptProgress),
) -> Result<AdoptReport, AdoptError> {
    let started = Instant::now();
    session.refresh()?;
    legacy::secure_delete(&mut session.db)?;
    let mut bulk = match session.url() {
        Some(DbUrl::Mysql(url)) => BulkConn::connect(url).ok(),
        _ => None,
    };
    if let Some(conn) = bulk.as_mut() {
        if !conn.probe() {
            bulk = None;
        }
    }
    let mut report = AdoptReport {
        bulk_loaded: bulk.is_some(),
        ..AdoptReport::default()
    };
    let mut after = legacy::begin(&mut session.db)?;
    let mut progress = AdoptProgress {
        total: u64::try_from(legacy::remaining(&mut session.db, after)?).unwrap_or(0),
        ..AdoptProgress::default()
    };
    let limit = i64::try_from(options.batch_size.max(1)).unwrap_or(1000);
    let keyring = std::sync::Arc::clone(&session.keyring);
    let own_keys = session.per_user_keys();
    let now = chrono::Utc::now().naive_utc();
    let mut stamps = StampCache::default();
    let mut cursor = after;
    let source = &options.source;
    // The legacy rows are read on a connection of their own, in the
    // sealing thread, so that reading and sealing batch k+1 overlap the
    // writing of batch k on this one.
    let url = session
        .url()
        .cloned()
        .ok_or_else(|| AdoptError::Setup("adopt needs the database URL of the session".into()))?;
    let mut reader = Db::open(&url).map_err(|e| AdoptError::Setup(e.to_string()))?;
    std::thread::scope(|scope| -> Result<(), AdoptError> {
        // The channel lives in this closure: whatever way it returns, it
        // closes, and the sealing thread ends instead of blocking.
        let (to_write, sealed) =
            std::sync::mpsc::sync_channel::<Result<SealedBatch, AdoptError>>(1);
        scope.spawn(move || loop {
            let rows = match legacy::read(&mut reader, LEGACY_TABLE, map, after, limit) {
                Ok(rows) => rows,
                Err(e) => {
                    let _ = to_write.send(Err(e.into()));
                    return;
                }
            };
            let Some(last) = rows.last() else { return };
            after = last.id;
            let mut batch = SealedBatch {
                rows: Vec::with_capacity(rows.len()),
                email_keys: Vec::with_capacity(rows.len()),
                record_keys: Vec::new(),
                bad: Vec::new(),
                seen: rows.len() as u64,
                last_read: after,
            };
            for row in &rows {
                match convert(&keyring, own_keys, source, row, now) {
                    Ok((sealed, key)) => {
                        batch.record_keys.push(key);
                        batch.email_keys.push(sealed.email_bidx.clone());
                        batch.rows.push((row.id, sealed));
                    }
                    Err(reason) => batch.bad.push(BadRow { id: row.id, reason }),
                }
            }
            if to_write.send(Ok(batch)).is_err() {
                return;
            }
        });
        for batch in &sealed {
            session.check_interrupt()?;
            let mut batch = batch?;
            progress.seen += batch.seen;
            reject_repeats(&mut batch);
            let stop = write(
                session,
                bulk.as_mut(),
                &mut batch,
                &mut stamps,
                options.on_error,
            )?;
            if !stop {
                cursor = batch.last_read;
            }
            report.adopted += batch.rows.len() as u64;
            progress.adopted = report.adopted;
            batch.bad.sort_by_key(|b| b.id);
            if stop {
                report.stopped_at = batch.bad.into_iter().next();
                break;
            }
            report.skipped.extend(batch.bad);
            on_progress(&progress);
        }
        drop(sealed);
        Ok(())
    })?;
    report.left = if report.stopped_at.is_none() {
        legacy::finish(&mut session.db)?
    } else {
        legacy::remaining(&mut session.db, cursor)?
    };
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Writes one batch. Returns true when an `abort` adoption must stop here
/// (a bad row in the batch; nothing of it was written).
fn write(
    session: &mut Session,
    mut bulk: Option<&mut BulkConn>,
    batch: &mut SealedBatch,
    stamps: &mut StampCache,
    on_error: OnBadRow,
) -> Result<bool, AdoptError> {
    let mut checked = false;
    let own_keys = |batch: &SealedBatch| -> Vec<fieldseal::WrappedRecordKey> {
        batch.record_keys.iter().flatten().cloned().collect()
    };
    let stored = own_keys(batch);
    let stops_here = on_error == OnBadRow::Abort && !batch.bad.is_empty();
    if !stops_here && !stored.is_empty() {
        // Per-user keys: the rows' own keys go into the key store before
        // the rows.
        session.store_record_keys(&stored)?;
    }
    loop {
        if on_error == OnBadRow::Abort && !batch.bad.is_empty() {
            return Ok(true);
        }
        let skipped: Vec<(i64, String)> =
            batch.bad.iter().map(|b| (b.id, b.reason.clone())).collect();
        let committed = retry(|| {
            legacy::commit_batch(
                &mut session.db,
                bulk.as_deref_mut(),
                &batch.rows,
                &skipped,
                batch.last_read,
                stamps,
            )
        })?;
        match committed {
            Committed::Yes => return Ok(false),
            Committed::DuplicateEmail if !checked => {
                checked = true;
                reject_existing(session, batch)?;
                // The refused rows' own keys seal nothing: remove them.
                let kept = own_keys(batch).iter().map(|k| k.reference).collect();
                session.discard_record_keys(stored.iter().map(|k| k.reference), &kept)?;
            }
            Committed::DuplicateEmail => {
                return Err(AdoptError::Table(format!(
                    "another writer added a record with an email or id of legacy rows {}–{} \
                     while they were adopted; run adopt again",
                    batch.rows.first().map_or(0, |r| r.0),
                    batch.rows.last().map_or(0, |r| r.0)
                )))
            }
        }
    }
}

/// Moves rows out of the batch as bad, keeping rows and keys aligned.
fn reject(batch: &mut SealedBatch, reasons: Vec<Option<String>>) {
    if reasons.iter().all(Option::is_none) {
        return;
    }
    let keep: Vec<bool> = reasons.iter().map(Option::is_none).collect();
    for (i, reason) in reasons.into_iter().enumerate() {
        if let Some(reason) = reason {
            batch.bad.push(BadRow {
                id: batch.rows[i].0,
                reason,
            });
        }
    }
    retain_flagged(&mut batch.rows, &keep);
    retain_flagged(&mut batch.email_keys, &keep);
    retain_flagged(&mut batch.record_keys, &keep);
}

/// Rows whose email repeats an earlier row of the batch.
fn reject_repeats(batch: &mut SealedBatch) {
    let reasons = earlier_repeats(&batch.email_keys)
        .into_iter()
        .map(|first| {
            first.map(|i| {
                format!(
                    "its email repeats the email of legacy row {}",
                    batch.rows[i].0
                )
            })
        })
        .collect();
    reject(batch, reasons);
}

/// Rows whose email or id fieldseal's `users` already holds.
fn reject_existing(session: &mut Session, batch: &mut SealedBatch) -> Result<(), AdoptError> {
    let keys: Vec<Vec<u8>> = batch.email_keys.iter().flatten().cloned().collect();
    let owners: HashMap<Vec<u8>, i64> =
        crate::store::imports::existing_email_bidx(&mut session.db, &keys)?
            .into_iter()
            .collect();
    let ids: Vec<i64> = batch.rows.iter().map(|(id, _)| *id).collect();
    let taken: std::collections::HashSet<i64> = legacy::taken_ids(&mut session.db, &ids)?
        .into_iter()
        .collect();
    let reasons = batch
        .rows
        .iter()
        .zip(&batch.email_keys)
        .map(|((id, _), key)| {
            if taken.contains(id) {
                Some(format!("id {id} is already taken by a fieldseal record"))
            } else {
                key.as_ref()
                    .and_then(|k| owners.get(k))
                    .map(|owner| format!("its email is already used by record {owner}"))
            }
        })
        .collect();
    reject(batch, reasons);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn unknown_columns_are_named_and_maps_resolve_them() {
        let err = column_map(&cols(&["id", "name", "age", "phone"]), &[]).unwrap_err();
        assert!(err.to_string().contains("\"phone\""), "{err}");
        let map = column_map(
            &cols(&["id", "full_name", "age", "phone", "joined"]),
            &[
                ("full_name".into(), Target::Name),
                ("phone".into(), Target::Skip),
                ("joined".into(), Target::CreatedAt),
            ],
        )
        .unwrap();
        assert_eq!(map.name, "full_name");
        assert_eq!(map.email, None);
        assert_eq!(map.created_at.as_deref(), Some("joined"));
        let err = column_map(&cols(&["id", "name"]), &[]).unwrap_err();
        assert!(err.to_string().contains("no age"), "{err}");
        let err = column_map(
            &cols(&["id", "name", "nick", "age"]),
            &[("nick".into(), Target::Name)],
        )
        .unwrap_err();
        assert!(err.to_string().contains("both"), "{err}");
    }

    #[test]
    fn aes_cbc_values_open_and_damage_is_named_without_the_value() {
        use cbc::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
        let key = [7u8; 32];
        let iv = [9u8; 16];
        let ct = cbc::Encryptor::<aes::Aes256>::new(&key.into(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>("Zoë Müller".as_bytes());
        let stored = base64::engine::general_purpose::STANDARD.encode([&iv[..], &ct].concat());
        let source = Source::AesCbc(Zeroizing::new(key));
        assert_eq!(
            source.open(stored.as_bytes()).unwrap().as_str(),
            "Zoë Müller"
        );
        let wrong = Source::AesCbc(Zeroizing::new([8u8; 32]));
        let why = wrong.open(stored.as_bytes()).unwrap_err();
        assert!(!why.contains("Zo"), "{why}");
        assert!(source.open(b"%%%").unwrap_err().contains("base64"));
    }

    #[test]
    fn fernet_tokens_open_and_a_changed_token_fails() {
        let key = fernet::Fernet::generate_key();
        let f = fernet::Fernet::new(&key).unwrap();
        let token = f.encrypt(b"Ada Lovelace");
        let source = Source::Fernet(Box::new(fernet::Fernet::new(&key).unwrap()));
        assert_eq!(
            source.open(token.as_bytes()).unwrap().as_str(),
            "Ada Lovelace"
        );
        let mut bad = token.into_bytes();
        let n = bad.len() - 5;
        bad[n] = if bad[n] == b'A' { b'B' } else { b'A' };
        assert!(source.open(&bad).unwrap_err().contains("does not verify"));
    }

    #[test]
    fn times_parse_in_the_usual_forms() {
        assert!(parse_time("2024-02-29 13:14:15").is_some());
        assert!(parse_time("2024-02-29T13:14:15.123").is_some());
        assert!(parse_time("2024-02-29").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}
