//! CSV import: streaming, batched, resumable, and every bad line reported
//! with its number.
//!
//! - The file is read with the `csv` crate, a record at a time: memory
//!   stays flat whatever the file size.
//! - A reader thread parses, validates and seals batch *n + 1* while the
//!   caller's thread writes batch *n*: encryption overlaps the database.
//! - Each batch is one transaction: a multi-row INSERT plus the progress
//!   row (`fieldseal_imports`: SHA-256 of the file, records done, last
//!   line). After a crash or a kill, `resume` continues exactly after the
//!   last committed batch: no duplicates, no gaps.
//! - `OnError::Abort` stops at the first bad line; its batch is not
//!   written, earlier batches stay, and the report says which lines are
//!   in. `OnError::Skip` writes good lines and reports each bad one.
//!
//! Accepted on purpose: a UTF-8 BOM, CRLF line ends, quoted fields with
//! commas, quotes and newlines, columns in any order. Rejected with the
//! line number: a wrong or missing header, too few or too many fields,
//! bytes that are not UTF-8, invalid names, ages and emails, and emails
//! that repeat within the file or already exist in the database.

use super::record::{parse_age, parse_email, parse_name};
use super::records::seal;
use super::{AppError, RecordInput, Session};
use crate::store::imports::{self, BatchRows, BulkLoader, Committed, ImportRow, NewPlainRow};
use crate::Keyring;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to do with a bad line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Stop at the first bad line; its batch is not written.
    #[default]
    Abort,
    /// Leave bad lines out, report each, and go on.
    Skip,
}

/// Where a CSV column goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The record's name.
    Name,
    /// The record's email.
    Email,
    /// The record's age.
    Age,
    /// Ignored.
    Skip,
}

impl std::str::FromStr for Field {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "name" => Ok(Field::Name),
            "email" => Ok(Field::Email),
            "age" => Ok(Field::Age),
            "skip" | "-" => Ok(Field::Skip),
            _ => Err("a column maps to name, email, age or skip".into()),
        }
    }
}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Records per batch (and per transaction).
    pub batch_size: usize,
    /// What to do with a bad line.
    pub on_error: OnError,
    /// Continue an interrupted import of the same file.
    pub resume: bool,
    /// Extra header names and where they go (`full_name` → name, …).
    pub mapping: Vec<(String, Field)>,
    /// Seal into `users` (true), or write plaintext into the benchmark's
    /// `users_plain` table (false: the benchmark's baseline).
    pub encrypt: bool,
    /// On MySQL, load batches with `LOAD DATA LOCAL INFILE` when the server
    /// allows it (true), or always use multi-row INSERT (false).
    pub bulk_load: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            batch_size: 1_000,
            on_error: OnError::Abort,
            resume: false,
            mapping: Vec::new(),
            encrypt: true,
            bulk_load: true,
        }
    }
}

/// A line that was not imported, and why.
#[derive(Clone)]
pub struct Rejection {
    /// Line where the record starts (1 is the header).
    pub line: u64,
    /// One sentence; never contains the rejected values.
    pub reason: String,
    /// The record's fields as read, for the rejects file.
    pub fields: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Rejection {
    /// Line and reason only: the fields may hold names and emails.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejection")
            .field("line", &self.line)
            .field("reason", &self.reason)
            .finish_non_exhaustive()
    }
}

/// Where rejected lines go: a rejects file, standard error, a test's Vec.
pub trait RejectSink {
    /// Called once, before any rejection, with the file's header fields.
    ///
    /// # Errors
    /// I/O errors stop the import.
    fn header(&mut self, fields: &[Vec<u8>]) -> std::io::Result<()>;
    /// Called for each rejected line, after its batch committed.
    ///
    /// # Errors
    /// I/O errors stop the import.
    fn reject(&mut self, rejection: &Rejection) -> std::io::Result<()>;
}

/// Writes rejections as CSV: `line`, `reason`, then the line's own fields.
/// The bool says whether to write the header row (not when appending to a
/// rejects file that has one, on `--resume`).
pub struct CsvRejects<W: Write>(pub W, pub bool);

impl<W: Write> RejectSink for CsvRejects<W> {
    fn header(&mut self, fields: &[Vec<u8>]) -> std::io::Result<()> {
        if !self.1 {
            return Ok(());
        }
        let mut head: Vec<&[u8]> = vec![b"line", b"reason"];
        head.extend(fields.iter().map(Vec::as_slice));
        write_csv_row(&mut self.0, &head)
    }

    fn reject(&mut self, r: &Rejection) -> std::io::Result<()> {
        let line = r.line.to_string();
        let mut row: Vec<&[u8]> = vec![line.as_bytes(), r.reason.as_bytes()];
        row.extend(r.fields.iter().map(Vec::as_slice));
        write_csv_row(&mut self.0, &row)?;
        self.0.flush()
    }
}

/// Where an import is, for progress bars.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Bytes of the file consumed.
    pub bytes: u64,
    /// Size of the file.
    pub total_bytes: u64,
    /// Records read (this run).
    pub read: u64,
    /// Rows inserted (this run).
    pub inserted: u64,
    /// Lines rejected (this run).
    pub rejected: u64,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// Records read in this run (after any resumed part).
    pub read: u64,
    /// Rows inserted in this run.
    pub inserted: u64,
    /// Lines rejected in this run.
    pub rejected: u64,
    /// Records an earlier run had already committed (with `resume`).
    pub resumed_after: u64,
    /// Last line committed to the database (over all runs), if any.
    pub last_committed_line: Option<u64>,
    /// The bad line that stopped an `Abort` import.
    pub stopped_at: Option<Rejection>,
    /// Wall time of this run.
    pub elapsed: Duration,
}

/// Why an import could not run or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file cannot be opened or read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A problem at a line of the file (header, unreadable record).
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// Why.
        message: String,
    },
    /// The file went in completely before.
    #[error("{path} was already imported ({inserted} rows); nothing to do")]
    AlreadyImported {
        /// The file.
        path: PathBuf,
        /// Rows it added then.
        inserted: i64,
    },
    /// Part of the file went in before, and `resume` was not asked for.
    #[error(
        "{path} was partly imported (through line {line}, {inserted} rows); \
         run again with --resume to continue after that line"
    )]
    PartlyImported {
        /// The file.
        path: PathBuf,
        /// Last committed line.
        line: i64,
        /// Rows inserted so far.
        inserted: i64,
    },
    /// Writing the rejects file failed.
    #[error("cannot write the rejects file: {0}")]
    Rejects(std::io::Error),
    /// The database or the keyring failed.
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<diesel::result::Error> for ImportError {
    fn from(e: diesel::result::Error) -> Self {
        ImportError::App(e.into())
    }
}

/// One batch from the reader thread.
struct Batch {
    rows: BatchRows,
    /// Line of each row in `rows`.
    lines: Vec<u64>,
    /// Duplicate-detection key of each row's email (blind index, or the
    /// normalized email on the plain path).
    email_keys: Vec<Option<Vec<u8>>>,
    /// Raw fields of each row, in case it turns out to be a duplicate.
    raw: Vec<Vec<Vec<u8>>>,
    rejections: Vec<Rejection>,
    /// Records consumed through this batch, counted from the first one.
    records_end: u64,
    last_line: u64,
    bytes: u64,
    read: u64,
}

/// The column positions of the three fields.
#[derive(Debug, Clone, Copy)]
struct Columns {
    name: usize,
    email: usize,
    age: usize,
    count: usize,
}

/// Imports `path` into the session's database.
///
/// `rejects` receives every rejected line of a `Skip` import, after the
/// batch it belongs to committed. `on_progress` is called after every
/// batch.
///
/// # Errors
/// [`ImportError`]; an `Abort` import that meets a bad line is *not* an
/// error: the report's `stopped_at` says where it stopped.
pub fn import(
    session: &mut Session,
    path: &Path,
    options: &ImportOptions,
    rejects: &mut dyn RejectSink,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let file_err = |message: String| ImportError::File {
        path: path.to_owned(),
        message,
    };
    if path.is_dir() {
        return Err(file_err("is a directory, not a CSV file".into()));
    }
    // Batches rely on the unique index to catch emails already in the
    // database; while the index key rotates, equal emails may sit under
    // two index versions, which that index cannot compare.
    if options.encrypt && super::rotate::index_rotation_pending(session)? {
        return Err(ImportError::File {
            path: path.to_owned(),
            message: "not imported: a blind-index key rotation is under way; finish it \
                      with fieldseal keys rotate --index, then import"
                .into(),
        });
    }
    let total_bytes = std::fs::metadata(path)
        .map_err(|e| file_err(describe_io(&e)))?
        .len();
    let fingerprint = fingerprint(path).map_err(|e| file_err(describe_io(&e)))?;

    let now = chrono::Utc::now().naive_utc();
    let existing = imports::get(&mut session.db, &fingerprint)?;
    // The progress row is created by the first commit, so an import that
    // stops before committing anything leaves no trace and can simply be
    // run again.
    let mut first_commit = existing.is_none();
    let mut progress = match existing {
        Some(row) if row.finished => {
            return Err(ImportError::AlreadyImported {
                path: path.to_owned(),
                inserted: row.inserted,
            })
        }
        Some(row) if !options.resume => {
            return Err(ImportError::PartlyImported {
                path: path.to_owned(),
                line: row.last_line,
                inserted: row.inserted,
            })
        }
        Some(row) => row,
        None => ImportRow {
            fingerprint: fingerprint.to_vec(),
            file_name: path.display().to_string(),
            records_done: 0,
            last_line: 1,
            inserted: 0,
            rejected: 0,
            finished: false,
            started_at: now,
            updated_at: now,
        },
    };
    let resumed_after = u64::try_from(progress.records_done).unwrap_or(0);

    let file = File::open(path).map_err(|e| file_err(describe_io(&e)))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(BufReader::with_capacity(1 << 16, file));
    let (columns, header) = read_header(&mut reader, path, &options.mapping)?;
    // The csv crate counts a CRLF line end only when the next record starts,
    // so its line numbers run one behind in CRLF files; correct for that.
    let line_offset = u64::from(reader.position().line() == 1);
    rejects.header(&header).map_err(ImportError::Rejects)?;

    let keyring = Arc::clone(&session.keyring);
    let batch_size = options.batch_size.max(1);
    let (tx, rx) = sync_channel::<Result<Batch, ImportError>>(2);
    let mut report = ImportReport {
        read: 0,
        inserted: 0,
        rejected: 0,
        resumed_after,
        last_committed_line: (progress.inserted > 0).then_some(progress.last_line as u64),
        stopped_at: None,
        elapsed: Duration::ZERO,
    };
    let mut shown = Progress {
        total_bytes,
        ..Progress::default()
    };
    let reader_options = ReaderSetup {
        path: path.to_owned(),
        columns,
        batch_size,
        skip: resumed_after,
        abort: options.on_error == OnError::Abort,
        encrypt: options.encrypt,
        line_offset,
    };
    std::thread::scope(|scope| -> Result<(), ImportError> {
        scope.spawn(move || read_batches(reader, reader_options, &keyring, &tx));
        // The writer owns the receiving end: if it returns early, the
        // channel closes and the reader thread stops instead of blocking.
        write_batches(
            session,
            rx,
            options,
            &mut progress,
            &mut first_commit,
            &mut report,
            &mut shown,
            rejects,
            on_progress,
        )
    })?;
    if report.stopped_at.is_none() {
        progress.finished = true;
        progress.updated_at = chrono::Utc::now().naive_utc();
        imports::commit_batch(
            &mut session.db,
            &BatchRows::Plain(Vec::new()),
            &progress,
            first_commit,
            &mut BulkLoader::new(),
        )?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Drains the reader's batches: duplicate checks, one transaction each,
/// rejects, progress. Dropping `rx` on return stops the reader.
#[allow(clippy::too_many_arguments)]
fn write_batches(
    session: &mut Session,
    rx: Receiver<Result<Batch, ImportError>>,
    options: &ImportOptions,
    progress: &mut ImportRow,
    first_commit: &mut bool,
    report: &mut ImportReport,
    shown: &mut Progress,
    rejects: &mut dyn RejectSink,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<(), ImportError> {
    let base_records = report.resumed_after;
    let mut loader = if options.bulk_load {
        BulkLoader::new()
    } else {
        BulkLoader::inserts_only()
    };
    let loader = &mut loader;
    for batch in rx {
        let mut batch = batch?;
        reject_repeats_in_batch(&mut batch);
        report.read += batch.read;
        shown.read = report.read;
        shown.bytes = batch.bytes;
        // Optimistic: most batches hold no email that exists already, so
        // write first; only a batch that meets the unique index is checked
        // row by row (its transaction rolled back) and written again.
        let mut checked_existing = false;
        loop {
            batch.rejections.sort_by_key(|r| r.line);
            if options.on_error == OnError::Abort {
                if let Some(first) = batch.rejections.first() {
                    report.stopped_at = Some(first.clone());
                    report.rejected += 1;
                    shown.rejected = report.rejected;
                    on_progress(shown);
                    return Ok(());
                }
            }
            let mut next = progress.clone();
            next.records_done = i64::try_from(base_records + batch.records_end).unwrap_or(i64::MAX);
            next.last_line = batch.last_line as i64;
            next.inserted += batch.rows.len() as i64;
            next.rejected += batch.rejections.len() as i64;
            next.updated_at = chrono::Utc::now().naive_utc();
            match imports::commit_batch(&mut session.db, &batch.rows, &next, *first_commit, loader)? {
                Committed::Yes => {
                    *progress = next;
                    break;
                }
                Committed::DuplicateEmail if !checked_existing => {
                    reject_existing_emails(session, &mut batch, options.encrypt)?;
                    checked_existing = true;
                }
                Committed::DuplicateEmail => {
                    return Err(ImportError::App(AppError::invalid(
                        "email",
                        format!(
                            "another writer added an email of lines {}–{} during the import; run again with --resume",
                            batch.lines.first().copied().unwrap_or(0),
                            batch.last_line
                        ),
                    )))
                }
            }
        }
        *first_commit = false;
        let inserted = batch.rows.len() as u64;
        let rejected = batch.rejections.len() as u64;
        report.inserted += inserted;
        report.rejected += rejected;
        if inserted > 0 {
            report.last_committed_line = Some(batch.last_line);
        }
        for r in &batch.rejections {
            rejects.reject(r).map_err(ImportError::Rejects)?;
        }
        shown.inserted = report.inserted;
        shown.rejected = report.rejected;
        on_progress(shown);
    }
    Ok(())
}

/// Rejects rows whose email repeats an earlier line of the same batch
/// (a check in memory; repeats across batches meet the unique index).
fn reject_repeats_in_batch(batch: &mut Batch) {
    let mut first_line: HashMap<&[u8], u64> = HashMap::new();
    let mut reasons: Vec<Option<String>> = vec![None; batch.lines.len()];
    for (i, key) in batch.email_keys.iter().enumerate() {
        if let Some(key) = key {
            match first_line.get(key.as_slice()) {
                Some(line) => reasons[i] = Some(format!("email repeats the email on line {line}")),
                None => {
                    first_line.insert(key, batch.lines[i]);
                }
            }
        }
    }
    reject_rows(batch, reasons);
}

/// Rejects rows whose email is already in the database. Only asked after
/// a batch met the unique index, so the common case costs no query.
fn reject_existing_emails(
    session: &mut Session,
    batch: &mut Batch,
    encrypt: bool,
) -> Result<(), ImportError> {
    let keys: Vec<Vec<u8>> = batch.email_keys.iter().flatten().cloned().collect();
    let existing: HashMap<Vec<u8>, i64> = if encrypt {
        imports::existing_email_bidx(&mut session.db, &keys)?
            .into_iter()
            .collect()
    } else {
        let emails: Vec<String> = match &batch.rows {
            BatchRows::Plain(rows) => rows.iter().filter_map(|r| r.email.clone()).collect(),
            BatchRows::Sealed(_) => Vec::new(),
        };
        imports::existing_plain_emails(&mut session.db, &emails)?
            .into_iter()
            .map(|(email, id)| (crate::normalize(&email).into_bytes(), id))
            .collect()
    };
    let reasons = batch
        .email_keys
        .iter()
        .map(|key| {
            key.as_ref()
                .and_then(|k| existing.get(k))
                .map(|id| format!("email is already used by record {id}"))
        })
        .collect();
    reject_rows(batch, reasons);
    Ok(())
}

/// Moves the rows that have a reason from the batch to its rejections,
/// keeping rows, lines, keys and raw fields aligned.
fn reject_rows(batch: &mut Batch, reasons: Vec<Option<String>>) {
    if reasons.iter().all(Option::is_none) {
        return;
    }
    let keep: Vec<bool> = reasons.iter().map(Option::is_none).collect();
    for (i, reason) in reasons.into_iter().enumerate() {
        if let Some(reason) = reason {
            batch.rejections.push(Rejection {
                line: batch.lines[i],
                reason,
                fields: std::mem::take(&mut batch.raw[i]),
            });
        }
    }
    fn retain<T>(items: &mut Vec<T>, keep: &[bool]) {
        let mut flags = keep.iter();
        items.retain(|_| *flags.next().unwrap_or(&true));
    }
    match &mut batch.rows {
        BatchRows::Sealed(rows) => retain(rows, &keep),
        BatchRows::Plain(rows) => retain(rows, &keep),
    }
    retain(&mut batch.lines, &keep);
    retain(&mut batch.email_keys, &keep);
    retain(&mut batch.raw, &keep);
}

struct ReaderSetup {
    path: PathBuf,
    columns: Columns,
    batch_size: usize,
    skip: u64,
    abort: bool,
    encrypt: bool,
    line_offset: u64,
}

/// The reader thread: parses, validates and seals batches and sends them
/// on. Stops at the end of the file, at the first bad line when aborting,
/// or when the writer hangs up.
fn read_batches<R: Read>(
    mut reader: csv::Reader<R>,
    setup: ReaderSetup,
    keyring: &Keyring,
    tx: &SyncSender<Result<Batch, ImportError>>,
) {
    let mut record = csv::ByteRecord::new();
    let mut index: u64 = 0;
    let mut batch = new_batch(&setup);
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                let _ = tx.send(Err(ImportError::Line {
                    path: setup.path.clone(),
                    line,
                    message: format!("cannot read the CSV: {}", e.kind_message()),
                }));
                return;
            }
        }
        index += 1;
        if index <= setup.skip {
            continue;
        }
        let line = record.position().map_or(0, csv::Position::line) + setup.line_offset;
        batch.read += 1;
        batch.records_end = index - setup.skip;
        batch.last_line = line;
        batch.bytes = reader.position().byte();
        let stop = match parse_record(&record, setup.columns) {
            Ok(input) => match sealed_row(keyring, &input, setup.encrypt) {
                Ok((row, key)) => {
                    push_row(&mut batch, row, line, key, &record);
                    false
                }
                Err(e) => {
                    let _ = tx.send(Err(e.into()));
                    return;
                }
            },
            Err(reason) => {
                batch.rejections.push(Rejection {
                    line,
                    reason,
                    fields: record.iter().map(<[u8]>::to_vec).collect(),
                });
                setup.abort
            }
        };
        if stop {
            let _ = tx.send(Ok(batch));
            return;
        }
        if batch.read as usize >= setup.batch_size {
            let full = std::mem::replace(&mut batch, new_batch(&setup));
            if tx.send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if batch.read > 0 {
        let _ = tx.send(Ok(batch));
    }
}

fn new_batch(setup: &ReaderSetup) -> Batch {
    let cap = setup.batch_size;
    Batch {
        rows: if setup.encrypt {
            BatchRows::Sealed(Vec::with_capacity(cap))
        } else {
            BatchRows::Plain(Vec::with_capacity(cap))
        },
        lines: Vec::with_capacity(cap),
        email_keys: Vec::with_capacity(cap),
        raw: Vec::with_capacity(cap),
        rejections: Vec::new(),
        records_end: 0,
        last_line: 0,
        bytes: 0,
        read: 0,
    }
}

enum OneRow {
    Sealed(crate::store::users::NewUserRow),
    Plain(NewPlainRow),
}

fn sealed_row(
    keyring: &Keyring,
    input: &RecordInput,
    encrypt: bool,
) -> Result<(OneRow, Option<Vec<u8>>), AppError> {
    if encrypt {
        let row = seal(keyring, input)?;
        let key = row.email_bidx.clone();
        Ok((OneRow::Sealed(row), key))
    } else {
        // The baseline path: the same parsing and validation, no sealing
        // and no blind index; duplicates are found by the normalized email.
        let key = input
            .email
            .as_deref()
            .map(|e| crate::normalize(e).into_bytes());
        let row = NewPlainRow {
            name: input.name.clone(),
            email: input.email.clone(),
            age: input.age,
            created_at: chrono::Utc::now().naive_utc(),
        };
        Ok((OneRow::Plain(row), key))
    }
}

fn push_row(
    batch: &mut Batch,
    row: OneRow,
    line: u64,
    key: Option<Vec<u8>>,
    record: &csv::ByteRecord,
) {
    match (&mut batch.rows, row) {
        (BatchRows::Sealed(rows), OneRow::Sealed(row)) => rows.push(row),
        (BatchRows::Plain(rows), OneRow::Plain(row)) => rows.push(row),
        _ => return,
    }
    batch.lines.push(line);
    batch.email_keys.push(key);
    batch.raw.push(record.iter().map(<[u8]>::to_vec).collect());
}

/// Validates one record; the error is the sentence for its line.
fn parse_record(record: &csv::ByteRecord, columns: Columns) -> Result<RecordInput, String> {
    if record.len() != columns.count {
        return Err(format!(
            "expected {} fields, found {}",
            columns.count,
            record.len()
        ));
    }
    let text = |i: usize, field: &str| -> Result<&str, String> {
        std::str::from_utf8(&record[i]).map_err(|_| format!("field {field} is not valid UTF-8"))
    };
    let name = parse_name(text(columns.name, "name")?).map_err(|e| e.to_string())?;
    let email = parse_email(text(columns.email, "email")?).map_err(|e| e.to_string())?;
    let age = parse_age(text(columns.age, "age")?).map_err(|e| e.to_string())?;
    Ok(RecordInput { name, email, age })
}

/// Reads and checks the header: the columns name, email and age in any
/// order, nothing else unless mapped. Returns the positions and the
/// header's own fields (for the rejects file).
fn read_header<R: Read>(
    reader: &mut csv::Reader<R>,
    path: &Path,
    mapping: &[(String, Field)],
) -> Result<(Columns, Vec<Vec<u8>>), ImportError> {
    let line_err = |message: String| ImportError::Line {
        path: path.to_owned(),
        line: 1,
        message,
    };
    let mut header = csv::ByteRecord::new();
    match reader.read_byte_record(&mut header) {
        Ok(true) => {}
        Ok(false) => {
            return Err(ImportError::File {
                path: path.to_owned(),
                message: "is empty; expected a header line name,email,age".into(),
            })
        }
        Err(e) => {
            return Err(line_err(format!(
                "cannot read the header: {}",
                e.kind_message()
            )))
        }
    }
    let mut fields: Vec<Vec<u8>> = header.iter().map(<[u8]>::to_vec).collect();
    if let Some(first) = fields.first_mut() {
        if first.starts_with(b"\xEF\xBB\xBF") {
            first.drain(..3);
        }
    }
    let (mut name, mut email, mut age) = (None, None, None);
    for (i, raw) in fields.iter().enumerate() {
        let Ok(label) = std::str::from_utf8(raw) else {
            return Err(line_err(format!(
                "column {} of the header is not valid UTF-8",
                i + 1
            )));
        };
        let label = label.trim().to_ascii_lowercase();
        let target = mapping
            .iter()
            .find(|(from, _)| from.trim().eq_ignore_ascii_case(&label))
            .map(|(_, to)| *to)
            .or_else(|| label.parse::<Field>().ok().filter(|f| *f != Field::Skip));
        let slot = match target {
            Some(Field::Name) => &mut name,
            Some(Field::Email) => &mut email,
            Some(Field::Age) => &mut age,
            Some(Field::Skip) => continue,
            None => {
                return Err(line_err(format!(
                    "column {} of the header is not name, email or age \
                     (map it with --map COLUMN=name|email|age|skip); \
                     is the header line missing?",
                    i + 1
                )))
            }
        };
        if slot.replace(i).is_some() {
            return Err(line_err(format!(
                "the header names a column twice (column {})",
                i + 1
            )));
        }
    }
    let missing: Vec<&str> = [("name", name), ("email", email), ("age", age)]
        .iter()
        .filter(|(_, pos)| pos.is_none())
        .map(|(label, _)| *label)
        .collect();
    if !missing.is_empty() {
        return Err(line_err(format!(
            "the header lacks the column{} {} (expected name,email,age)",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", ")
        )));
    }
    let columns = Columns {
        name: name.unwrap_or_default(),
        email: email.unwrap_or_default(),
        age: age.unwrap_or_default(),
        count: fields.len(),
    };
    Ok((columns, fields))
}

fn write_csv_row(out: &mut impl Write, fields: &[&[u8]]) -> std::io::Result<()> {
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    writer.write_record(fields).map_err(std::io::Error::other)?;
    let bytes = writer
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    out.write_all(&bytes)
}

/// SHA-256 of the whole file: the identity of an import for `resume`.
fn fingerprint(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut file = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// What a csv error says, without positions (the caller adds the line).
trait KindMessage {
    fn kind_message(&self) -> String;
}

impl KindMessage for csv::Error {
    fn kind_message(&self) -> String {
        match self.kind() {
            csv::ErrorKind::Io(e) => e.to_string(),
            _ => self.to_string(),
        }
    }
}
