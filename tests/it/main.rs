//! Integration tests against real SQLite, MariaDB/MySQL and PostgreSQL.

mod support;

mod canary;
mod cli;
mod columns;
mod golden;
mod import;
mod keys;
mod keystore;
mod props;
mod repl;
