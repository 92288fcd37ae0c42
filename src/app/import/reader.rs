//! The reader thread: parses, validates and seals records into batches,
//! while the writer commits the previous batch.

use super::error::{ImportError, ImportErrorKind, Position};
use super::header::{csv_reason, Columns};
use super::rejects::Rejection;
use super::RecordSealer;
use crate::app::record::{parse_age, parse_email, parse_name};
use crate::app::RecordInput;
use crate::store::imports::BatchRows;
use std::collections::VecDeque;
use std::io::Read;
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};

/// The true line numbers of a file the CSV reader reads. The csv crate
/// counts a CRLF line end only when the next record starts (so its
/// numbers run one behind after every CRLF, differently in files that mix
/// LF and CRLF), and it reports a record's start inside the line ends and
/// blank lines before it. This notes every run of line-end bytes (CR and
/// LF) as [`CountLines`] passes the bytes to the reader, and numbers a
/// record by the line its first byte after such a run is on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lines(Arc<Mutex<LineBreaks>>);

#[derive(Debug, Default)]
struct LineBreaks {
    /// Bytes passed on so far.
    consumed: u64,
    /// Runs of CR and LF bytes not yet passed by a record: (first byte,
    /// line feeds in it).
    ahead: VecDeque<(u64, u64)>,
    /// The run still open at the end of the last read, if any.
    open: Option<(u64, u64)>,
    /// Line feeds before the last record asked about.
    behind: u64,
}

impl Lines {
    /// The line (from 1) of a record the csv crate says starts at byte
    /// `offset`. Offsets must be asked in increasing order (records come
    /// in file order).
    pub(crate) fn line_at(&self, offset: u64) -> u64 {
        let mut breaks = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(run) = breaks.open.take() {
            // A run reaching the end of what was read so far: the reader
            // has seen all of it when it asks about a record after it.
            breaks.ahead.push_back(run);
        }
        // Runs before the record, and the one its reported start falls in.
        while let Some(&(start, feeds)) = breaks.ahead.front() {
            if start <= offset {
                breaks.ahead.pop_front();
                breaks.behind += feeds;
            } else {
                break;
            }
        }
        breaks.behind + 1
    }
}

/// A reader that notes where the runs of line-end bytes are, for [`Lines`].
pub(crate) struct CountLines<R> {
    inner: R,
    lines: Lines,
}

impl<R: Read> CountLines<R> {
    /// Wraps `inner`; `lines` answers for the bytes read through it.
    pub(crate) fn new(inner: R, lines: Lines) -> Self {
        CountLines { inner, lines }
    }
}

impl<R: Read> Read for CountLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut breaks = self.lines.0.lock().unwrap_or_else(PoisonError::into_inner);
        let base = breaks.consumed;
        for (i, &b) in buf[..n].iter().enumerate() {
            let at = base + i as u64;
            match (b, breaks.open) {
                (b'\r' | b'\n', Some((start, feeds))) => {
                    breaks.open = Some((start, feeds + u64::from(b == b'\n')));
                }
                (b'\r' | b'\n', None) => breaks.open = Some((at, u64::from(b == b'\n'))),
                (_, Some(run)) => {
                    breaks.ahead.push_back(run);
                    breaks.open = None;
                }
                (_, None) => {}
            }
        }
        breaks.consumed += n as u64;
        Ok(n)
    }
}

/// The CSV reader an import reads `input` with: raw records (the header
/// too), a flexible field count (checked per record), 64 KiB buffers, and
/// the file's true line numbers in `lines`.
pub(crate) fn csv_reader<R: Read>(
    input: R,
    lines: &Lines,
) -> csv::Reader<std::io::BufReader<CountLines<R>>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(std::io::BufReader::with_capacity(
            1 << 16,
            CountLines::new(input, lines.clone()),
        ))
}

/// One batch from the reader thread.
pub(super) struct Batch {
    pub rows: BatchRows,
    /// Line of each row in `rows`.
    pub lines: Vec<u64>,
    /// Duplicate-detection key of each row's email (its blind index).
    pub email_keys: Vec<Option<Vec<u8>>>,
    /// Raw fields of each row, in case it turns out to be a duplicate.
    pub raw: Vec<Vec<Vec<u8>>>,
    pub rejections: Vec<Rejection>,
    /// Records consumed through this batch, counted from the first one.
    pub records_end: u64,
    pub last_line: u64,
    pub bytes: u64,
    pub read: u64,
    /// The rows as the bulk loader sends them, when the reader's
    /// [`ReaderSetup::prepare`] encoded them; cleared when a row leaves.
    pub encoded: Option<Vec<u8>>,
    /// Each row's own key, wrapped (per-user keys), stored in the key
    /// store before the batch.
    pub record_keys: Vec<Option<fieldseal::WrappedRecordKey>>,
}

impl Batch {
    pub(super) fn with_capacity(cap: usize) -> Self {
        Batch {
            rows: Vec::with_capacity(cap),
            lines: Vec::with_capacity(cap),
            email_keys: Vec::with_capacity(cap),
            raw: Vec::with_capacity(cap),
            rejections: Vec::new(),
            records_end: 0,
            last_line: 0,
            bytes: 0,
            read: 0,
            encoded: None,
            record_keys: Vec::new(),
        }
    }

    fn push(&mut self, sealed: super::Sealed, line: u64, record: &csv::ByteRecord) {
        let (row, key) = sealed;
        if key.is_some() || !self.record_keys.is_empty() {
            self.record_keys.resize(self.rows.len(), None);
            self.record_keys.push(key);
        }
        self.email_keys.push(row.email_bidx.clone());
        self.rows.push(row);
        self.lines.push(line);
        self.raw.push(record.iter().map(<[u8]>::to_vec).collect());
    }
}

pub(super) struct ReaderSetup {
    pub path: PathBuf,
    pub columns: Columns,
    pub batch_size: usize,
    /// Records an earlier run committed: read past, not imported again.
    pub skip: u64,
    pub abort: bool,
    /// The file's true line numbers (the reader reads through
    /// [`CountLines`] over the same `Lines`).
    pub lines: Lines,
    /// Work done on each batch in the reader's thread before it is sent,
    /// so the writer's thread only writes (duplicate checks, encoding).
    pub prepare: Option<Prepare>,
}

/// See [`ReaderSetup::prepare`].
pub(super) type Prepare = Box<dyn FnMut(&mut Batch) + Send>;

/// Prepares and sends a batch; false when the writer hung up.
fn send(
    tx: &SyncSender<Result<Batch, ImportError>>,
    mut batch: Batch,
    prepare: &mut Option<Prepare>,
) -> bool {
    if let Some(prepare) = prepare {
        prepare(&mut batch);
    }
    tx.send(Ok(batch)).is_ok()
}

/// Reads batches and sends them on. Stops at the end of the file, at the
/// first bad line when aborting, or when the writer hangs up.
pub(super) fn read_batches<R: Read>(
    mut reader: csv::Reader<R>,
    mut setup: ReaderSetup,
    sealer: &dyn RecordSealer,
    tx: &SyncSender<Result<Batch, ImportError>>,
) {
    let mut record = csv::ByteRecord::new();
    let mut index: u64 = 0;
    let mut batch = Batch::with_capacity(setup.batch_size);
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let position = Position {
                    line: e.position().map_or(0, |p| setup.lines.line_at(p.byte())),
                    record: index + 1,
                };
                let _ = tx.send(Err(ImportError::new(
                    ImportErrorKind::Csv(csv_reason(&e)),
                    &setup.path,
                )
                .at(position)));
                return;
            }
        }
        index += 1;
        if index <= setup.skip {
            continue;
        }
        let line = record
            .position()
            .map_or(0, |p| setup.lines.line_at(p.byte()));
        batch.read += 1;
        batch.records_end = index - setup.skip;
        batch.last_line = line;
        batch.bytes = reader.position().byte();
        let stop = match parse_record(&record, setup.columns) {
            Ok(input) => match sealer.seal(&input) {
                Ok(row) => {
                    batch.push(row, line, &record);
                    false
                }
                Err(e) => {
                    let position = Position {
                        line,
                        record: index,
                    };
                    let _ = tx.send(Err(
                        ImportError::new(ImportErrorKind::App(e), &setup.path).at(position)
                    ));
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
            send(tx, batch, &mut setup.prepare);
            return;
        }
        if batch.read as usize >= setup.batch_size {
            let full = std::mem::replace(&mut batch, Batch::with_capacity(setup.batch_size));
            if !send(tx, full, &mut setup.prepare) {
                return;
            }
        }
    }
    if batch.read > 0 {
        send(tx, batch, &mut setup.prepare);
    }
}

/// Validates one record; the error is the sentence for its line.
pub(super) fn parse_record(
    record: &csv::ByteRecord,
    columns: Columns,
) -> Result<RecordInput, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: Columns = Columns {
        name: 0,
        email: 1,
        age: 2,
        count: 3,
    };

    fn record(fields: &[&[u8]]) -> csv::ByteRecord {
        csv::ByteRecord::from(fields.to_vec())
    }

    /// Each record's line is the line its first byte is on, whatever mix
    /// of LF and CRLF the file uses (fuzzing found the old per-file
    /// correction wrong for mixed files).
    #[test]
    fn line_numbers_hold_in_files_that_mix_lf_and_crlf() {
        for (data, want) in [
            (&b"name,email,age\r\nA,,1\nB,,2\n"[..], [2, 3]),
            (b"name,email,age\nA,,1\r\nB,,2\n", [2, 3]),
            (b"name,email,age\r\nA,,1\r\nB,,2\r\n", [2, 3]),
            (b"name,email,age\n\"A\nB\",,1\r\nC,,2", [2, 4]),
            (b"name,email,age\n\n\nA,,1\n\r\n\nB,,2\n", [4, 7]),
        ] {
            let lines = Lines::default();
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(CountLines::new(data, lines.clone()));
            let mut record = csv::ByteRecord::new();
            let mut got = Vec::new();
            while reader.read_byte_record(&mut record).unwrap() {
                got.push(lines.line_at(record.position().unwrap().byte()));
            }
            assert_eq!(got[0], 1, "header");
            assert_eq!(got[1..], want, "{:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn a_valid_record_is_trimmed_and_typed() {
        let input = parse_record(&record(&[b" Ada ", b"ada@example.org", b"36"]), COLUMNS).unwrap();
        assert_eq!(input.name, "Ada");
        assert_eq!(input.email.as_deref(), Some("ada@example.org"));
        assert_eq!(input.age, 36);
        let no_email = parse_record(&record(&[b"Ada", b"", b"0"]), COLUMNS).unwrap();
        assert_eq!(no_email.email, None);
    }

    #[test]
    fn each_bad_field_gets_its_own_sentence_without_the_value() {
        let cases: [(&[&[u8]], &str); 5] = [
            (&[b"Ada", b"", b"36", b"x"], "expected 3 fields, found 4"),
            (&[b"\xff", b"", b"36"], "field name is not valid UTF-8"),
            (&[b" ", b"", b"36"], "name must not be empty"),
            (
                &[b"Ada", b"not-an-email", b"36"],
                "email is not a valid address",
            ),
            (&[b"Ada", b"", b"151"], "age must be from 0 to 150"),
        ];
        for (fields, expected) in cases {
            let err = parse_record(&record(fields), COLUMNS).unwrap_err();
            assert!(err.starts_with(expected), "{err}");
            assert!(!err.contains("not-an-email"), "{err}");
        }
    }
}
