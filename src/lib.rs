//! The `fieldseal` operator tool's services and storage, built on the
//! `fieldseal` library through its public API only, as any application
//! would be: its users model is made of the library's column types.
//!
//! - [`store`]: which database, the connection, the embedded migrations,
//!   the `users` and `fieldseal_imports` tables and their queries;
//! - [`app`]: add, list, find, update, delete, export, import, rotate,
//!   unlock. No terminal I/O and no SQL.
//!
//! The binary (`src/main.rs`, `src/cli/`) is the only place that talks to
//! a person. This crate is not a library for others to depend on: that is
//! `fieldseal`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod app;
pub mod store;

/// Hooks for the cargo-fuzz targets in `fuzz/` (see `fuzz/README.md`):
/// empty unless the crate is built with `--cfg fuzzing`, which cargo-fuzz
/// sets. Not part of the API. (`fuzzing` is not declared to Cargo, hence
/// the `allow`: a `cfg` on this item itself would warn in every build.)
///
/// The importer's own `header.rs` and `reader.rs` are compiled a second
/// time inside this module (the `path` below is their directory), so the
/// fuzzer runs their code, not a copy; the small modules here stand in for
/// their siblings in `app::import`.
#[allow(unexpected_cfgs)]
#[doc(hidden)]
#[path = "app/import"]
pub mod fuzzing {
    #[cfg(fuzzing)]
    pub use self::hooks::*;

    #[cfg(fuzzing)]
    #[allow(dead_code, unused_imports)]
    mod header;
    #[cfg(fuzzing)]
    #[allow(dead_code, unused_imports)]
    mod reader;
    #[cfg(fuzzing)]
    mod error {
        pub(crate) use crate::app::import::{ImportError, ImportErrorKind, Position};
    }
    #[cfg(fuzzing)]
    mod rejects {
        pub(crate) use crate::app::import::Rejection;
    }
    #[cfg(fuzzing)]
    use crate::app::import::{RecordSealer, Sealed};

    /// The import of a CSV file up to the database: header, then every
    /// record parsed, validated and sealed, as `app::import::import_with`
    /// and its reader thread do it.
    #[cfg(fuzzing)]
    mod hooks {
        use super::header::{read_header, Field};
        use super::reader::{csv_reader, read_batches, Lines, ReaderSetup};
        use crate::app::import::{Position, RecordSealer, Rejection};
        use crate::store::users::NewUserRow;
        use std::path::Path;

        /// The header's column positions and fields.
        #[derive(Debug, Clone)]
        pub struct HeaderOut {
            /// Column of the name.
            pub name: usize,
            /// Column of the email.
            pub email: usize,
            /// Column of the age.
            pub age: usize,
            /// Number of columns.
            pub count: usize,
            /// The header's fields (BOM removed).
            pub fields: Vec<Vec<u8>>,
        }

        /// A record the importer would insert.
        #[derive(Debug)]
        pub struct Accepted {
            /// Its line.
            pub line: u64,
            /// Its fields as read.
            pub raw: Vec<Vec<u8>>,
            /// The sealed row.
            pub row: NewUserRow,
        }

        /// What the importer made of a file.
        #[derive(Debug, Default)]
        pub struct ImportRun {
            /// The header, or why it was refused.
            pub header: Option<Result<HeaderOut, String>>,
            /// Records accepted, in order.
            pub accepted: Vec<Accepted>,
            /// Records rejected, in order.
            pub rejected: Vec<Rejection>,
            /// An error that stopped the reader, with its position.
            pub error: Option<(String, Option<Position>)>,
            /// Records consumed (after `skip`), as the last batch says.
            pub records_end: u64,
            /// Batches sent.
            pub batches: usize,
        }

        /// Imports `data` as far as sealing: `mapping` as `--map from=to`
        /// (entries whose target does not parse are left out), batches of
        /// `batch_size`, the first `skip` records passed over (a resume),
        /// stopping at the first bad record when `abort`.
        pub fn import_bytes(
            data: &[u8],
            mapping: &[(String, String)],
            sealer: &dyn RecordSealer,
            batch_size: usize,
            skip: u64,
            abort: bool,
        ) -> ImportRun {
            let path = Path::new("fuzz.csv");
            let mapping: Vec<(String, Field)> = mapping
                .iter()
                .filter_map(|(from, to)| Some((from.clone(), to.parse::<Field>().ok()?)))
                .collect();
            let mut run = ImportRun::default();
            // As import_with.
            let lines = Lines::default();
            let mut reader = csv_reader(data, &lines);
            let (columns, fields) = match read_header(&mut reader, path, &mapping) {
                Ok(header) => header,
                Err(e) => {
                    run.header = Some(Err(e.to_string()));
                    return run;
                }
            };
            run.header = Some(Ok(HeaderOut {
                name: columns.name,
                email: columns.email,
                age: columns.age,
                count: columns.count,
                fields,
            }));
            let batch_size = batch_size.max(1);
            let setup = ReaderSetup {
                path: path.to_owned(),
                columns,
                batch_size,
                skip,
                abort,
                lines,
                prepare: None,
            };
            // Room for every batch the reader can send: it never blocks.
            let (tx, rx) = std::sync::mpsc::sync_channel(data.len() / batch_size + 4);
            read_batches(reader, setup, sealer, &tx);
            drop(tx);
            for sent in rx {
                match sent {
                    Ok(batch) => {
                        run.batches += 1;
                        run.records_end = batch.records_end;
                        for ((row, line), raw) in
                            batch.rows.into_iter().zip(batch.lines).zip(batch.raw)
                        {
                            run.accepted.push(Accepted { line, raw, row });
                        }
                        run.rejected.extend(batch.rejections);
                    }
                    Err(e) => run.error = Some((e.to_string(), e.position())),
                }
            }
            run
        }
    }
}
