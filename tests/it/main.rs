//! Integration tests of the `fieldseal` tool against real SQLite and
//! MariaDB/MySQL: the binary, the prompt, import and key lifecycle.

mod adopt;
mod cli;
mod erasure;
mod galera;
mod hardening;
mod import;
mod keys;
mod repl;

/// The databases come from the shared harness.
mod support {
    pub use fieldseal_testdb::TestDb;
}
