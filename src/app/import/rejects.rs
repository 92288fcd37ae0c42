//! Rejected lines, and where they go: a rejects file, standard error, or a
//! test's `Vec`.

use std::io::Write;

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

/// Where rejected lines go.
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

fn write_csv_row(out: &mut impl Write, fields: &[&[u8]]) -> std::io::Result<()> {
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    writer.write_record(fields).map_err(std::io::Error::other)?;
    let bytes = writer
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    out.write_all(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_file_quotes_fields_and_skips_its_header_when_appending() {
        let rejection = Rejection {
            line: 7,
            reason: "age must be from 0 to 150".into(),
            fields: vec![b"Lee, Ann".to_vec(), b"".to_vec(), b"151".to_vec()],
        };
        let mut fresh = CsvRejects(Vec::new(), true);
        fresh
            .header(&[b"name".to_vec(), b"email".to_vec(), b"age".to_vec()])
            .unwrap();
        fresh.reject(&rejection).unwrap();
        assert_eq!(
            String::from_utf8(fresh.0).unwrap(),
            "line,reason,name,email,age\n7,age must be from 0 to 150,\"Lee, Ann\",,151\n"
        );
        let mut appended = CsvRejects(Vec::new(), false);
        appended.header(&[b"name".to_vec()]).unwrap();
        assert!(appended.0.is_empty());
    }

    #[test]
    fn debug_never_shows_the_fields() {
        let r = Rejection {
            line: 2,
            reason: "x".into(),
            fields: vec![b"Secret Name".to_vec()],
        };
        assert!(!format!("{r:?}").contains("Secret"));
    }
}
