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
//! The module is split by stage: `header` maps the columns, `reader`
//! parses and seals on its own thread, `writer` commits, `rejects` is
//! where bad lines go, and `error` says why an import stopped.
//!
//! Accepted on purpose: a UTF-8 BOM, CRLF line ends, quoted fields with
//! commas, quotes and newlines, columns in any order. Rejected with the
//! line number: a wrong or missing header, too few or too many fields,
//! bytes that are not UTF-8, invalid names, ages and emails, and emails
//! that repeat within the file or already exist in the database.

mod error;
mod header;
mod reader;
mod rejects;
mod writer;

pub use error::{ImportError, ImportErrorKind, Position};
pub use header::Field;
pub use rejects::{CsvRejects, RejectSink, Rejection};
pub(crate) use writer::{earlier_repeats, retain_flagged};

use super::records::seal;
use super::{AppError, RecordInput, Session};
use crate::store::imports::{self, BulkLoader, ImportRow};
use crate::store::users::NewUserRow;
use fieldseal::Keyring;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::mpsc::sync_channel;
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

/// Records per batch unless asked otherwise. Each batch is a transaction
/// with its progress row; on MySQL's bulk path larger batches commit less
/// often and keep the server busier (the README's Performance section has
/// the measurements), at the cost of memory (a few batches are in flight)
/// and of the work an aborted batch throws away.
pub const DEFAULT_BATCH_SIZE: usize = 10_000;

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
    /// On MySQL, load batches with `LOAD DATA LOCAL INFILE` when the server
    /// allows it and the session knows its URL (true, the default), or
    /// always use multi-row INSERT (false). The bulk connection serves the
    /// batch from memory and nothing else, whatever file the server asks
    /// for (see [`crate::store::bulk`]).
    pub bulk_load: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            batch_size: DEFAULT_BATCH_SIZE,
            on_error: OnError::Abort,
            resume: false,
            mapping: Vec::new(),
            bulk_load: true,
        }
    }
}

/// Turns a validated record into the row to insert: seals its fields and
/// computes its blind indexes. Runs on the reader thread.
pub trait RecordSealer: Sync {
    /// The row for `input`, and the record's own key when it has one
    /// (per-user keys), to store in the key store before the row.
    ///
    /// # Errors
    /// When sealing fails (no index key); the import stops.
    fn seal(&self, input: &RecordInput) -> Result<Sealed, AppError>;
}

/// A sealed row and, with per-user keys, its record's wrapped key.
pub type Sealed = (NewUserRow, Option<fieldseal::WrappedRecordKey>);

/// The importer's sealer: the session's keyring, passed explicitly.
impl RecordSealer for Keyring {
    fn seal(&self, input: &RecordInput) -> Result<Sealed, AppError> {
        Ok((seal(self, input)?, None))
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
    /// Whether batches went in through LOAD DATA (MySQL's bulk path) rather
    /// than multi-row INSERTs.
    pub bulk_loaded: bool,
    /// Whether the session's interrupt flag stopped the import between two
    /// batches (everything before is committed; resume continues).
    pub interrupted: bool,
}

/// Imports `path` into the session's database, sealing with the session's
/// keyring.
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
    let keyring = std::sync::Arc::clone(&session.keyring);
    let own = OwnKeys(keyring.as_ref());
    let sealer: &dyn RecordSealer = if session.per_user_keys() {
        &own
    } else {
        keyring.as_ref()
    };
    let result = import_with(session, sealer, path, options, rejects, on_progress);
    // One audit entry per run, not one per row.
    let (ok, count, detail) = match &result {
        Ok(r) => (
            r.stopped_at.is_none() && !r.interrupted,
            Some(i64::try_from(r.inserted).unwrap_or(i64::MAX)),
            format!(
                "{} rows inserted, {} rejected{}{}",
                r.inserted,
                r.rejected,
                if r.stopped_at.is_some() {
                    "; stopped at a bad line"
                } else {
                    ""
                },
                if r.interrupted { "; interrupted" } else { "" }
            ),
        ),
        Err(e) => (false, None, e.kind().audit_kind().to_owned()),
    };
    super::audit::log_run(
        session,
        super::audit::Op::Import,
        count,
        ok,
        &detail,
        result,
        |e| ImportError::new(ImportErrorKind::App(e), path),
    )
}

/// The importer's sealer with per-user keys: each record under a new key
/// of its own, returned wrapped for the key store.
struct OwnKeys<'a>(&'a Keyring);

impl RecordSealer for OwnKeys<'_> {
    fn seal(&self, input: &RecordInput) -> Result<Sealed, AppError> {
        let (row, key) = super::records::seal_own(self.0, input)?;
        Ok((row, Some(key)))
    }
}

/// [`import`] with another [`RecordSealer`] (the benchmark measures the
/// same path without encryption through it).
///
/// # Errors
/// As [`import`].
pub fn import_with(
    session: &mut Session,
    sealer: &dyn RecordSealer,
    path: &Path,
    options: &ImportOptions,
    rejects: &mut dyn RejectSink,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let err = |kind: ImportErrorKind| ImportError::new(kind, path);
    if path.is_dir() {
        return Err(err(ImportErrorKind::IsADirectory));
    }
    // Batches rely on the unique index to catch emails already in the
    // database; while the index key rotates, equal emails may sit under
    // two index versions, which that index cannot compare.
    if super::rotate::index_rotation_pending(session).map_err(|e| err(ImportErrorKind::App(e)))? {
        return Err(err(ImportErrorKind::IndexRotationPending));
    }
    let total_bytes = std::fs::metadata(path)
        .map_err(|e| err(ImportErrorKind::Io(e)))?
        .len();
    let fingerprint = fingerprint(path).map_err(|e| err(ImportErrorKind::Io(e)))?;

    let now = chrono::Utc::now().naive_utc();
    let existing = imports::get(&mut session.db, &fingerprint)
        .map_err(|e| err(ImportErrorKind::App(e.into())))?;
    // The progress row is created by the first commit, so an import that
    // stops before committing anything leaves no trace and can simply be
    // run again.
    let first_commit = existing.is_none();
    let progress = match existing {
        Some(row) if row.finished => {
            return Err(err(ImportErrorKind::AlreadyImported {
                inserted: row.inserted,
            }))
        }
        Some(row) if !options.resume => {
            return Err(err(ImportErrorKind::PartlyImported {
                line: row.last_line,
                inserted: row.inserted,
            }))
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

    let file = File::open(path).map_err(|e| err(ImportErrorKind::Io(e)))?;
    let lines = reader::Lines::default();
    let mut reader = reader::csv_reader(file, &lines);
    let (columns, header) = header::read_header(&mut reader, path, &options.mapping)?;
    rejects
        .header(&header)
        .map_err(|e| err(ImportErrorKind::Rejects(e)))?;

    let batch_size = options.batch_size.max(1);
    let (tx, rx) = sync_channel(2);
    let mut writer = writer::Writer {
        session,
        path,
        on_error: options.on_error,
        loader: if options.bulk_load {
            BulkLoader::new()
        } else {
            BulkLoader::inserts_only()
        },
        first_commit,
        report: ImportReport {
            read: 0,
            inserted: 0,
            rejected: 0,
            resumed_after,
            last_committed_line: (progress.inserted > 0).then_some(progress.last_line as u64),
            stopped_at: None,
            elapsed: Duration::ZERO,
            bulk_loaded: false,
            interrupted: false,
        },
        progress,
        shown: Progress {
            total_bytes,
            ..Progress::default()
        },
    };
    // Before the reader starts: whether batches are encoded for LOAD DATA,
    // which the reader's thread then does, with the in-batch duplicate
    // check, so the writer's thread only writes.
    writer.loader.probe(writer.session.url());
    let encode = writer.loader.is_enabled();
    let mut stamps = imports::StampCache::default();
    let prepare: reader::Prepare = Box::new(move |batch| {
        writer::reject_repeats_in_batch(batch);
        if encode {
            batch.encoded = Some(imports::encode_rows(&batch.rows, &mut stamps));
        }
    });
    let setup = reader::ReaderSetup {
        path: path.to_owned(),
        columns,
        batch_size,
        skip: resumed_after,
        abort: options.on_error == OnError::Abort,
        lines,
        prepare: Some(prepare),
    };
    std::thread::scope(|scope| -> Result<(), ImportError> {
        scope.spawn(move || reader::read_batches(reader, setup, sealer, &tx));
        // The writer owns the receiving end: if it returns early, the
        // channel closes and the reader thread stops instead of blocking.
        writer.write_all(rx, rejects, on_progress)
    })?;
    if writer.report.stopped_at.is_none() && !writer.report.interrupted {
        writer.progress.finished = true;
        writer.progress.updated_at = chrono::Utc::now().naive_utc();
        imports::commit_batch(
            &mut writer.session.db,
            &Vec::new(),
            None,
            &writer.progress,
            writer.first_commit,
            &mut BulkLoader::inserts_only(),
        )
        .map_err(|e| err(ImportErrorKind::App(e.into())))?;
    }
    let mut report = writer.report;
    report.elapsed = started.elapsed();
    report.bulk_loaded = writer.loader.is_enabled();
    Ok(report)
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
