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
