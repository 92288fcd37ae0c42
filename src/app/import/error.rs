//! Why an import could not run or had to stop: a kind, the file, and where
//! in it (line and record), as the csv crate reports its own errors.

use crate::app::AppError;
use std::fmt;
use std::path::{Path, PathBuf};

/// A place in the CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line where the record starts (1 is the header).
    pub line: u64,
    /// Data record number, from 1 (the header is not counted); 0 for the
    /// header itself.
    pub record: u64,
}

/// An import that could not run or had to stop.
#[derive(Debug)]
pub struct ImportError {
    kind: ImportErrorKind,
    path: PathBuf,
    position: Option<Position>,
}

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ImportErrorKind {
    /// The path is a directory.
    IsADirectory,
    /// The file cannot be opened or read.
    Io(std::io::Error),
    /// The file has no header line.
    Empty,
    /// A header column is not valid UTF-8 (columns count from 1).
    HeaderNotUtf8 {
        /// The column.
        column: usize,
    },
    /// A header column is not name, email or age, and not mapped.
    UnknownColumn {
        /// The column.
        column: usize,
    },
    /// Two header columns go to the same field.
    DuplicateColumn {
        /// The second one.
        column: usize,
    },
    /// The header lacks fields.
    MissingColumns(Vec<&'static str>),
    /// The CSV itself cannot be read at this position.
    Csv(String),
    /// The file went in completely before.
    AlreadyImported {
        /// Rows it added then.
        inserted: i64,
    },
    /// Part of the file went in before, and `resume` was not asked for.
    PartlyImported {
        /// Last committed line.
        line: i64,
        /// Rows inserted so far.
        inserted: i64,
    },
    /// A blind-index key rotation is under way.
    IndexRotationPending,
    /// Another writer added an email of this batch while it was written.
    ConcurrentEmail {
        /// First line of the batch.
        first_line: u64,
        /// Last line of the batch.
        last_line: u64,
    },
    /// Writing the rejects file failed.
    Rejects(std::io::Error),
    /// The database or the keyring failed.
    App(AppError),
}

impl ImportErrorKind {
    /// A short fixed description for the audit trail (never a value from
    /// the file).
    pub fn audit_kind(&self) -> &'static str {
        match self {
            ImportErrorKind::IsADirectory | ImportErrorKind::Io(_) => "cannot read the file",
            ImportErrorKind::Empty
            | ImportErrorKind::HeaderNotUtf8 { .. }
            | ImportErrorKind::UnknownColumn { .. }
            | ImportErrorKind::DuplicateColumn { .. }
            | ImportErrorKind::MissingColumns(_)
            | ImportErrorKind::Csv(_) => "the file is not a usable CSV",
            ImportErrorKind::AlreadyImported { .. } => "already imported",
            ImportErrorKind::PartlyImported { .. } => "partly imported before",
            ImportErrorKind::IndexRotationPending => "index rotation pending",
            ImportErrorKind::ConcurrentEmail { .. } => "concurrent writer took an email",
            ImportErrorKind::Rejects(_) => "cannot write the rejects file",
            ImportErrorKind::App(e) => e.kind(),
        }
    }
}

impl ImportError {
    pub(crate) fn new(kind: ImportErrorKind, path: &Path) -> Self {
        ImportError {
            kind,
            path: path.to_owned(),
            position: None,
        }
    }

    pub(crate) fn at(mut self, position: Position) -> Self {
        self.position = Some(position);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &ImportErrorKind {
        &self.kind
    }

    /// The file being imported.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where in the file, when the error is about one place.
    pub fn position(&self) -> Option<Position> {
        self.position
    }

    /// Whether running again with `resume` continues this import.
    pub fn is_resumable(&self) -> bool {
        matches!(
            self.kind,
            ImportErrorKind::PartlyImported { .. } | ImportErrorKind::ConcurrentEmail { .. }
        )
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(p) = self.position {
            write!(f, ":{}", p.line)?;
        }
        f.write_str(": ")?;
        match &self.kind {
            ImportErrorKind::IsADirectory => f.write_str("is a directory, not a CSV file"),
            ImportErrorKind::Io(e) => match e.kind() {
                std::io::ErrorKind::NotFound => f.write_str("no such file"),
                std::io::ErrorKind::PermissionDenied => f.write_str("permission denied"),
                _ => write!(f, "{e}"),
            },
            ImportErrorKind::Empty => {
                f.write_str("is empty; expected a header line name,email,age")
            }
            ImportErrorKind::HeaderNotUtf8 { column } => {
                write!(f, "column {column} of the header is not valid UTF-8")
            }
            ImportErrorKind::UnknownColumn { column } => write!(
                f,
                "column {column} of the header is not name, email or age \
                 (map it with --map COLUMN=name|email|age|skip); is the header line missing?"
            ),
            ImportErrorKind::DuplicateColumn { column } => {
                write!(f, "the header names a column twice (column {column})")
            }
            ImportErrorKind::MissingColumns(missing) => write!(
                f,
                "the header lacks the column{} {} (expected name,email,age)",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", ")
            ),
            ImportErrorKind::Csv(why) => write!(f, "cannot read the CSV: {why}"),
            ImportErrorKind::AlreadyImported { inserted } => {
                write!(f, "was already imported ({inserted} rows); nothing to do")
            }
            ImportErrorKind::PartlyImported { line, inserted } => write!(
                f,
                "was partly imported (through line {line}, {inserted} rows); \
                 run again with --resume to continue after that line"
            ),
            ImportErrorKind::IndexRotationPending => f.write_str(
                "not imported: a blind-index key rotation is under way; finish it \
                 with fieldseal keys rotate --index, then import",
            ),
            ImportErrorKind::ConcurrentEmail {
                first_line,
                last_line,
            } => write!(
                f,
                "another writer added an email of lines {first_line}–{last_line} during the \
                 import; run again with --resume"
            ),
            ImportErrorKind::Rejects(e) => write!(f, "cannot write the rejects file: {e}"),
            ImportErrorKind::App(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ImportError {
    /// The message already holds the wrapped error's own message, so the
    /// chain goes on below it: printing the chain never repeats a line.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ImportErrorKind::App(e) => std::error::Error::source(e),
            _ => None,
        }
    }
}

impl ImportError {
    /// The service error inside, if that is what stopped the import.
    pub fn app_error(&self) -> Option<&AppError> {
        match &self.kind {
            ImportErrorKind::App(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_line() {
        let path = Path::new("users.csv");
        let err = ImportError::new(ImportErrorKind::UnknownColumn { column: 3 }, path)
            .at(Position { line: 1, record: 0 });
        assert!(
            err.to_string().starts_with("users.csv:1: column 3 "),
            "{err}"
        );
        let err = ImportError::new(ImportErrorKind::Empty, path);
        assert_eq!(
            err.to_string(),
            "users.csv: is empty; expected a header line name,email,age"
        );
        assert!(ImportError::new(
            ImportErrorKind::PartlyImported {
                line: 9,
                inserted: 8
            },
            path
        )
        .is_resumable());
        assert!(!ImportError::new(ImportErrorKind::Empty, path).is_resumable());
    }

    #[test]
    fn the_server_message_is_printed_once() {
        let server = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("Table 'x' is full".to_owned()),
        );
        let err = ImportError::new(ImportErrorKind::App(server.into()), Path::new("u.csv"));
        let shown = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(shown, "u.csv: database error: Table 'x' is full");
        let busy = ImportError::new(
            ImportErrorKind::App(AppError::Busy { attempts: 8 }),
            Path::new("u.csv"),
        );
        let shown = format!("{:#}", anyhow::Error::from(busy));
        assert_eq!(shown.matches("conflict").count(), 1, "{shown}");
    }
}
