//! MySQL's bulk path: each import batch goes in through `LOAD DATA LOCAL
//! INFILE` on a connection of its own, whose client serves the batch from
//! memory and nothing else.
//!
//! With LOAD DATA LOCAL the server, not the client, names the file the
//! client must send. The C client library Diesel links sends whatever file
//! the server names after a LOAD statement, and Diesel cannot install a
//! handler that would restrict it. This connection uses the pure-Rust
//! `mysql` client instead, whose only source of "files" is the handler
//! installed here: it answers a request for [`BATCH_NAME`] with the batch's
//! bytes, and any other request with nothing, which the batch then reports
//! as an error. The client never opens a file.

use super::imports::{Committed, ImportRow};
use super::retry::TRANSIENT;
use chrono::{Datelike, NaiveDateTime, Timelike};
use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error};
use mysql::params;
use mysql::prelude::Queryable;
use std::sync::{Arc, Mutex, PoisonError};

/// The only name the handler serves: not a path, so no file by that name
/// is ever read, here or on the server.
pub const BATCH_NAME: &str = "fieldseal-batch";

/// What the handler serves, and what it refused.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// A file name the server asked for instead of the batch.
    refused: Option<String>,
}

/// A connection for LOAD DATA batches, serving only [`BATCH_NAME`].
pub struct BulkConn {
    conn: mysql::Conn,
    pending: Arc<Mutex<Pending>>,
}

impl std::fmt::Debug for BulkConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkConn")
            .field("connection_id", &self.conn.connection_id())
            .finish_non_exhaustive()
    }
}

/// Why there is no bulk connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// The URL asks for TLS, which this client is built without: the batch
    /// would travel in the clear where the main connection encrypts.
    Tls,
    /// The URL or the connection failed (the text never holds the
    /// password).
    Connect(String),
}

impl BulkConn {
    /// Connects to the MySQL `url` (a `DATABASE_URL` as Diesel reads it:
    /// `mysql://user:password@host:port/db?unix_socket=…`).
    ///
    /// # Errors
    /// [`Unavailable::Tls`] when the URL has `ssl_mode` (other than
    /// `DISABLED`), `ssl_ca`, `ssl_cert` or `ssl_key`;
    /// [`Unavailable::Connect`] when it cannot connect.
    pub fn connect(url: &str) -> Result<Self, Unavailable> {
        let opts = options(url)?;
        let pending = Arc::new(Mutex::new(Pending::default()));
        let served = Arc::clone(&pending);
        let handler = mysql::LocalInfileHandler::new(move |name, out| {
            let mut p = served.lock().unwrap_or_else(PoisonError::into_inner);
            if name == BATCH_NAME.as_bytes() {
                std::io::Write::write_all(out, &p.bytes)
            } else {
                // An empty file: the statement ends normally, loads
                // nothing, and the batch reports the refusal.
                p.refused = Some(String::from_utf8_lossy(name).into_owned());
                Ok(())
            }
        });
        let opts = mysql::OptsBuilder::from_opts(opts).local_infile_handler(Some(handler));
        let conn = mysql::Conn::new(opts).map_err(|e| Unavailable::Connect(e.to_string()))?;
        Ok(BulkConn { conn, pending })
    }

    /// Whether the server takes LOAD DATA LOCAL here: an empty batch is
    /// loaded into `users`, outside any transaction, which writes nothing.
    /// No when the server's `local_infile` is off.
    pub fn probe(&mut self) -> bool {
        self.set_batch(Vec::new());
        self.conn.query_drop(load_sql(BATCH_NAME)).is_ok() && self.take_refused().is_none()
    }

    /// Runs one statement that may request a local file, outside a
    /// transaction; returns the rows it affected. For tests of the
    /// handler: a statement naming any other file loads nothing.
    ///
    /// # Errors
    /// The server's error; [`Error::QueryBuilderError`] when the server
    /// asked for a file other than the batch.
    pub fn execute(&mut self, sql: &str, batch: Vec<u8>) -> Result<u64, Error> {
        self.set_batch(batch);
        self.conn.query_drop(sql).map_err(db_error)?;
        if let Some(name) = self.take_refused() {
            return Err(refused(&name));
        }
        Ok(self.conn.affected_rows())
    }

    /// Loads `batch` (LOAD DATA's escaped tab-separated text of `rows`
    /// rows) into `users` and records `progress`, in one transaction.
    /// [`Committed::DuplicateEmail`] when fewer rows went in (LOCAL turns a
    /// duplicate key into a skipped row and a warning): the transaction is
    /// rolled back. A transient conflict comes back as
    /// `SerializationFailure`, for [`super::retry::retry`].
    ///
    /// # Errors
    /// Database errors; the transaction is rolled back.
    pub fn commit_batch(
        &mut self,
        batch: Vec<u8>,
        rows: usize,
        progress: &ImportRow,
        first: bool,
    ) -> Result<Committed, Error> {
        self.load_then_commit(&load_sql(BATCH_NAME), batch, rows, |tx| {
            save_progress(tx, progress, first)
        })
    }

    /// Loads `batch` (rows encoded with their `id` first, see
    /// [`load_with_id_sql`]) into `users` and runs the statements `then`
    /// (such as a progress update), in one transaction.
    /// [`Committed::DuplicateEmail`] when fewer rows went in (a duplicate
    /// email or id): rolled back.
    ///
    /// # Errors
    /// As [`BulkConn::commit_batch`].
    pub fn commit_moved(
        &mut self,
        batch: Vec<u8>,
        rows: usize,
        then: &[String],
    ) -> Result<Committed, Error> {
        self.load_then_commit(&load_with_id_sql(), batch, rows, |tx| {
            then.iter()
                .try_for_each(|statement| tx.query_drop(statement))
        })
    }

    /// Runs `load` (a LOAD DATA LOCAL of `batch`, `rows` rows), then `then`,
    /// and commits, in one transaction; a short count or a warning rolls it
    /// back as [`Committed::DuplicateEmail`].
    fn load_then_commit(
        &mut self,
        load: &str,
        batch: Vec<u8>,
        rows: usize,
        then: impl FnOnce(&mut mysql::Transaction<'_>) -> mysql::Result<()>,
    ) -> Result<Committed, Error> {
        self.set_batch(batch);
        let mut tx = self
            .conn
            .start_transaction(mysql::TxOpts::default())
            .map_err(db_error)?;
        tx.query_drop(load).map_err(db_error)?;
        let (loaded, warnings) = (tx.affected_rows(), tx.warnings());
        let refused_name = {
            let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            p.refused.take()
        };
        if let Some(name) = refused_name {
            return Err(refused(&name));
        }
        if loaded != rows as u64 || warnings > 0 {
            // Dropping the transaction rolls it back.
            return Ok(Committed::DuplicateEmail);
        }
        then(&mut tx).map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(Committed::Yes)
    }

    fn set_batch(&mut self, bytes: Vec<u8>) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.bytes = bytes;
        p.refused = None;
    }

    fn take_refused(&mut self) -> Option<String> {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.refused.take()
    }
}

/// The LOAD DATA statement for the batch. Its columns are `users`' own, in
/// the order [`super::imports`] encodes them.
pub fn load_sql(name: &str) -> String {
    format!(
        "LOAD DATA LOCAL INFILE '{name}' INTO TABLE users CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' \
         (name, name_bidx, email, email_bidx, age, created_at, key_id, bidx_version)"
    )
}

/// [`load_sql`] with the `id` column first, for rows that keep their ids.
pub fn load_with_id_sql() -> String {
    format!(
        "LOAD DATA LOCAL INFILE '{BATCH_NAME}' INTO TABLE users CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' \
         (id, name, name_bidx, email, email_bidx, age, created_at, key_id, bidx_version)"
    )
}

fn save_progress(tx: &mut mysql::Transaction<'_>, p: &ImportRow, first: bool) -> mysql::Result<()> {
    let sql = if first {
        "INSERT INTO fieldseal_imports (fingerprint, file_name, records_done, last_line, \
         inserted, rejected, finished, started_at, updated_at) VALUES (:fingerprint, \
         :file_name, :records_done, :last_line, :inserted, :rejected, :finished, :started_at, \
         :updated_at)"
    } else {
        "UPDATE fieldseal_imports SET file_name = :file_name, records_done = :records_done, \
         last_line = :last_line, inserted = :inserted, rejected = :rejected, \
         finished = :finished, started_at = :started_at, updated_at = :updated_at \
         WHERE fingerprint = :fingerprint"
    };
    tx.exec_drop(
        sql,
        params! {
            "fingerprint" => p.fingerprint.clone(),
            "file_name" => p.file_name.clone(),
            "records_done" => p.records_done,
            "last_line" => p.last_line,
            "inserted" => p.inserted,
            "rejected" => p.rejected,
            "finished" => p.finished,
            "started_at" => date(p.started_at),
            "updated_at" => date(p.updated_at),
        },
    )
}

fn date(at: NaiveDateTime) -> mysql::Value {
    let to_u8 = |v: u32| u8::try_from(v).unwrap_or(0);
    mysql::Value::Date(
        u16::try_from(at.year()).unwrap_or(0),
        to_u8(at.month()),
        to_u8(at.day()),
        to_u8(at.hour()),
        to_u8(at.minute()),
        to_u8(at.second()),
        at.nanosecond() / 1_000 % 1_000_000,
    )
}

/// The connection options for `url`, or why there is no bulk connection.
fn options(url: &str) -> Result<mysql::Opts, Unavailable> {
    let bad = |what: &str| Unavailable::Connect(format!("DATABASE_URL: {what}"));
    let parsed = url::Url::parse(url).map_err(|_| bad("not a valid URL"))?;
    let mut socket = None;
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "unix_socket" => socket = Some(value.into_owned()),
            "ssl_mode" if value.eq_ignore_ascii_case("disabled") => {}
            "ssl_mode" | "ssl_ca" | "ssl_cert" | "ssl_key" => return Err(Unavailable::Tls),
            _ => {}
        }
    }
    let mut base = parsed.clone();
    base.set_query(None);
    let opts = mysql::Opts::from_url(base.as_str()).map_err(|_| bad("not a MySQL URL"))?;
    // As the C client behind Diesel: `localhost` means the local socket, an
    // address means TCP. (This client would otherwise switch any loopback
    // address to the socket, where the server may match the user to
    // another account, such as 'app'@'localhost' instead of
    // 'app'@'127.0.0.1'.)
    let local = parsed.host_str() == Some("localhost");
    Ok(mysql::OptsBuilder::from_opts(opts)
        .socket(socket)
        .prefer_socket(local)
        .into())
}

/// A server's refusal or a driver failure, as Diesel reports database
/// errors: MySQL's transient error numbers as `SerializationFailure` (see
/// [`super::retry`]), a duplicate key as `UniqueViolation`.
fn db_error(e: mysql::Error) -> Error {
    match e {
        mysql::Error::MySqlError(e) => {
            let kind = match i64::from(e.code) {
                n if TRANSIENT.contains(&n) => DatabaseErrorKind::SerializationFailure,
                1062 => DatabaseErrorKind::UniqueViolation,
                _ => DatabaseErrorKind::Unknown,
            };
            Error::DatabaseError(kind, Box::new(ServerMessage(e.message)))
        }
        other => Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new(ServerMessage(other.to_string())),
        ),
    }
}

fn refused(name: &str) -> Error {
    Error::QueryBuilderError(
        format!(
            "the server asked for the local file {name:?} instead of the batch; \
             the client sent nothing"
        )
        .into(),
    )
}

/// A database error's text, for Diesel's error type.
#[derive(Debug)]
struct ServerMessage(String);

impl DatabaseErrorInformation for ServerMessage {
    fn message(&self) -> &str {
        &self.0
    }
    fn details(&self) -> Option<&str> {
        None
    }
    fn hint(&self) -> Option<&str> {
        None
    }
    fn table_name(&self) -> Option<&str> {
        None
    }
    fn column_name(&self) -> Option<&str> {
        None
    }
    fn constraint_name(&self) -> Option<&str> {
        None
    }
    fn statement_position(&self) -> Option<i32> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_urls_get_no_bulk_connection() {
        for url in [
            "mysql://u:p@h/db?ssl_mode=REQUIRED",
            "mysql://u:p@h/db?ssl_mode=preferred",
            "mysql://u:p@h/db?ssl_ca=/ca.pem",
            "mysql://u:p@h/db?unix_socket=/s&ssl_cert=/c.pem",
        ] {
            assert_eq!(options(url).err(), Some(Unavailable::Tls), "{url}");
        }
    }

    #[test]
    fn urls_keep_their_user_password_database_and_socket() {
        let opts = options(
            "mysql://us%40r:p%3Ass@db.example:3307/my_db?unix_socket=/run/m.sock&ssl_mode=DISABLED",
        )
        .unwrap();
        assert_eq!(opts.get_user(), Some("us@r"));
        assert_eq!(opts.get_pass(), Some("p:ss"));
        assert_eq!(opts.get_db_name(), Some("my_db"));
        assert_eq!(opts.get_tcp_port(), 3307);
        assert_eq!(opts.get_ip_or_hostname(), "db.example");
        assert_eq!(opts.get_socket(), Some("/run/m.sock"));
        // An address means TCP, as for the main connection.
        assert!(!options("mysql://u@127.0.0.1:3306/db")
            .unwrap()
            .get_prefer_socket());
        assert!(options("mysql://u@localhost/db")
            .unwrap()
            .get_prefer_socket());
    }

    #[test]
    fn the_statement_names_the_batch_not_a_path() {
        assert!(load_sql(BATCH_NAME).starts_with("LOAD DATA LOCAL INFILE 'fieldseal-batch'"));
    }
}
