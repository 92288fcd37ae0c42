//! The reader thread: parses, validates and seals records into batches,
//! while the writer commits the previous batch.

use super::error::{ImportError, ImportErrorKind, Position};
use super::header::{csv_reason, Columns};
use super::rejects::Rejection;
use super::RecordSealer;
use crate::app::record::{parse_age, parse_email, parse_name};
use crate::app::RecordInput;
use crate::store::imports::BatchRows;
use crate::store::users::NewUserRow;
use std::io::Read;
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;

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
        }
    }

    fn push(&mut self, row: NewUserRow, line: u64, record: &csv::ByteRecord) {
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
    /// Added to the csv crate's line numbers (see the caller).
    pub line_offset: u64,
}

/// Reads batches and sends them on. Stops at the end of the file, at the
/// first bad line when aborting, or when the writer hangs up.
pub(super) fn read_batches<R: Read>(
    mut reader: csv::Reader<R>,
    setup: ReaderSetup,
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
                    line: e.position().map_or(0, csv::Position::line),
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
        let line = record.position().map_or(0, csv::Position::line) + setup.line_offset;
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
            let _ = tx.send(Ok(batch));
            return;
        }
        if batch.read as usize >= setup.batch_size {
            let full = std::mem::replace(&mut batch, Batch::with_capacity(setup.batch_size));
            if tx.send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if batch.read > 0 {
        let _ = tx.send(Ok(batch));
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
