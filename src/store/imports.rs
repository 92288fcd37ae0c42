//! Import progress (`fieldseal_imports`) and the batch writes it guards.

use super::schema::{fieldseal_imports, users, users_plain};
use super::users::NewUserRow;
use super::Db;
use crate::with_conn;
use chrono::{NaiveDateTime, Timelike};
use diesel::prelude::*;

/// Progress of one import, keyed by the SHA-256 of the file.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = fieldseal_imports)]
pub struct ImportRow {
    /// SHA-256 of the whole file.
    pub fingerprint: Vec<u8>,
    /// The file name given when the import started.
    pub file_name: String,
    /// Data records consumed through the last committed batch.
    pub records_done: i64,
    /// Last line of the last committed batch.
    pub last_line: i64,
    /// Rows inserted so far.
    pub inserted: i64,
    /// Lines rejected so far.
    pub rejected: i64,
    /// Whether the whole file went through.
    pub finished: bool,
    /// When the import started (UTC).
    pub started_at: NaiveDateTime,
    /// When the last batch committed (UTC).
    pub updated_at: NaiveDateTime,
}

/// A plaintext row for the benchmark's `users_plain` table.
#[derive(Clone, Insertable)]
#[diesel(table_name = users_plain, treat_none_as_default_value = false)]
pub struct NewPlainRow {
    /// Name, in the clear.
    pub name: String,
    /// Email, in the clear.
    pub email: Option<String>,
    /// Age.
    pub age: i32,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

impl std::fmt::Debug for NewPlainRow {
    /// Redacted like every type that holds a name or an email.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPlainRow(<redacted>)")
    }
}

/// Rows of one batch, for the encrypted table or the benchmark's plain one.
#[derive(Debug, Clone)]
pub enum BatchRows {
    /// Sealed rows for `users`.
    Sealed(Vec<NewUserRow>),
    /// Plain rows for `users_plain`.
    Plain(Vec<NewPlainRow>),
}

impl BatchRows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            BatchRows::Sealed(r) => r.len(),
            BatchRows::Plain(r) => r.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The progress row of a file, if it was ever imported.
///
/// # Errors
/// Database errors.
pub fn get(db: &mut Db, fingerprint: &[u8]) -> QueryResult<Option<ImportRow>> {
    with_conn!(db, |conn| fieldseal_imports::table
        .find(fingerprint)
        .select(ImportRow::as_select())
        .first(conn)
        .optional())
}

/// How a batch commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The rows and the progress are in.
    Yes,
    /// An email of the batch is already in the table (unique index); the
    /// transaction was rolled back and nothing of the batch is in.
    DuplicateEmail,
}

/// Inserts a batch and records the progress that includes it, in one
/// transaction: after a crash either both are there or neither is. `first`
/// creates the progress row (the import's first commit), else updates it.
/// On MySQL the rows go in through `LOAD DATA LOCAL INFILE` when the server
/// allows it (see [`BulkLoader`]), else as one multi-row INSERT.
///
/// # Errors
/// Database errors; the transaction is rolled back.
pub fn commit_batch(
    db: &mut Db,
    rows: &BatchRows,
    progress: &ImportRow,
    first: bool,
    loader: &mut BulkLoader,
) -> QueryResult<Committed> {
    let result = with_conn!(db, |conn| conn.transaction::<_, TxError, _>(|c| {
        if !rows.is_empty() {
            c.write_rows(rows, loader)?;
        }
        save_progress(c, progress, first)?;
        Ok(())
    }));
    match result {
        Ok(()) => Ok(Committed::Yes),
        Err(TxError::Duplicate) => Ok(Committed::DuplicateEmail),
        Err(TxError::Db(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            info,
        ))) if info.message().contains("email") => Ok(Committed::DuplicateEmail),
        Err(TxError::Db(e)) => Err(e),
    }
}

/// Why a batch transaction rolled back.
#[derive(Debug)]
enum TxError {
    Db(diesel::result::Error),
    /// LOAD DATA skipped rows: an email met the unique index.
    Duplicate,
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Db(e)
    }
}

fn save_progress<C>(conn: &mut C, progress: &ImportRow, first: bool) -> QueryResult<()>
where
    C: Connection,
    C::Backend: diesel::backend::Backend,
    ImportRow: Insertable<fieldseal_imports::table>,
    diesel::query_builder::InsertStatement<
        fieldseal_imports::table,
        <ImportRow as Insertable<fieldseal_imports::table>>::Values,
    >: diesel::query_dsl::methods::ExecuteDsl<C>,
    diesel::dsl::Update<diesel::dsl::Find<fieldseal_imports::table, Vec<u8>>, ImportRow>:
        diesel::query_dsl::methods::ExecuteDsl<C>,
{
    if first {
        diesel::insert_into(fieldseal_imports::table)
            .values(progress.clone())
            .execute(conn)
            .map(drop)
    } else {
        diesel::update(fieldseal_imports::table.find(progress.fingerprint.clone()))
            .set(progress.clone())
            .execute(conn)
            .map(drop)
    }
}

/// Writes a batch's rows on one backend.
trait WriteRows {
    fn write_rows(&mut self, rows: &BatchRows, loader: &mut BulkLoader) -> Result<(), TxError>;
}

/// The batch as one multi-row INSERT, on the connection type `$c` has.
macro_rules! insert_rows {
    ($c:expr, $rows:expr) => {
        match $rows {
            BatchRows::Sealed(rows) => {
                diesel::insert_into(users::table).values(rows).execute($c)?
            }
            BatchRows::Plain(rows) => diesel::insert_into(users_plain::table)
                .values(rows)
                .execute($c)?,
        }
    };
}

impl WriteRows for diesel::SqliteConnection {
    fn write_rows(&mut self, rows: &BatchRows, _: &mut BulkLoader) -> Result<(), TxError> {
        insert_rows!(self, rows);
        Ok(())
    }
}

impl WriteRows for diesel::MysqlConnection {
    fn write_rows(&mut self, rows: &BatchRows, loader: &mut BulkLoader) -> Result<(), TxError> {
        if !loader.load(self, rows)? {
            insert_rows!(self, rows);
        }
        Ok(())
    }
}

/// MySQL's bulk path: each batch is written to a private temporary file in
/// LOAD DATA's escaped tab-separated format (binary columns byte-exact,
/// `\N` for NULL) and loaded with `LOAD DATA LOCAL INFILE`, inside the
/// batch's transaction. LOCAL makes duplicate keys skip rows (with a
/// warning) instead of failing, so any warning rolls the batch back as
/// [`Committed::DuplicateEmail`]. When the server or client
/// refuses LOCAL INFILE, the loader switches itself off and batches go in
/// as multi-row INSERTs.
#[derive(Debug, Default)]
pub struct BulkLoader {
    file: Option<tempfile::NamedTempFile>,
    buf: Vec<u8>,
    disabled: bool,
    /// The last timestamp formatted, and its text: rows of a batch share
    /// their second, so this saves formatting each row's.
    stamp: Option<(NaiveDateTime, String)>,
}

impl BulkLoader {
    /// A loader that will try LOAD DATA on its first MySQL batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// A loader that always uses multi-row INSERT (for measuring both).
    pub fn inserts_only() -> Self {
        BulkLoader {
            disabled: true,
            ..Self::default()
        }
    }

    /// Whether batches still go through LOAD DATA.
    pub fn is_enabled(&self) -> bool {
        !self.disabled
    }

    /// Loads the rows; `Ok(false)` when LOAD DATA is unavailable.
    fn load(
        &mut self,
        conn: &mut diesel::MysqlConnection,
        rows: &BatchRows,
    ) -> Result<bool, TxError> {
        use diesel::connection::SimpleConnection;
        use std::io::{Seek, Write};
        if self.disabled {
            return Ok(false);
        }
        self.buf.clear();
        let (table, charset, columns) = match rows {
            BatchRows::Sealed(rows) => {
                for r in rows {
                    let stamp = stamp_text(&mut self.stamp, r.created_at);
                    encode_sealed(&mut self.buf, r, &stamp);
                }
                (
                    "users",
                    "binary",
                    "(name, name_bidx, email, email_bidx, age, created_at, key_id, bidx_version)",
                )
            }
            BatchRows::Plain(rows) => {
                for r in rows {
                    let stamp = stamp_text(&mut self.stamp, r.created_at);
                    encode_plain(&mut self.buf, r, &stamp);
                }
                ("users_plain", "utf8mb4", "(name, email, age, created_at)")
            }
        };
        let io_err =
            |e: std::io::Error| TxError::Db(diesel::result::Error::SerializationError(Box::new(e)));
        if self.file.is_none() {
            self.file = Some(tempfile::NamedTempFile::new().map_err(io_err)?);
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(false);
        };
        let f = file.as_file_mut();
        f.set_len(0).map_err(io_err)?;
        f.rewind().map_err(io_err)?;
        f.write_all(&self.buf).map_err(io_err)?;
        f.flush().map_err(io_err)?;
        let path = file
            .path()
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('\'', "\\'");
        let sql = format!(
            "LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} CHARACTER SET {charset} \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' {columns}"
        );
        if let Err(e) = conn.batch_execute(&sql) {
            let message = e.to_string().to_lowercase();
            if message.contains("not allowed") || message.contains("disabled") {
                self.disabled = true;
                return Ok(false);
            }
            return Err(e.into());
        }
        // Diesel runs LOAD DATA as a plain statement, so no affected-row
        // count comes back; a skipped row always leaves a warning, and
        // validated rows leave none otherwise.
        let warnings: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "@@warning_count",
        ))
        .get_result(conn)?;
        if warnings > 0 {
            return Err(TxError::Duplicate);
        }
        Ok(true)
    }
}

/// `created_at` as LOAD DATA reads it, reformatted only when the second
/// changes.
fn stamp_text(cache: &mut Option<(NaiveDateTime, String)>, at: NaiveDateTime) -> String {
    let at = at.with_nanosecond(0).unwrap_or(at);
    match cache {
        Some((cached, text)) if *cached == at => text.clone(),
        _ => {
            let text = at.format("%Y-%m-%d %H:%M:%S").to_string();
            *cache = Some((at, text.clone()));
            text
        }
    }
}

fn encode_sealed(buf: &mut Vec<u8>, r: &NewUserRow, stamp: &str) {
    escape(buf, &r.name);
    buf.push(b'\t');
    escape(buf, &r.name_bidx);
    buf.push(b'\t');
    escape_opt(buf, r.email.as_deref());
    buf.push(b'\t');
    escape_opt(buf, r.email_bidx.as_deref());
    buf.push(b'\t');
    buf.extend_from_slice(r.age.to_string().as_bytes());
    buf.push(b'\t');
    buf.extend_from_slice(stamp.as_bytes());
    buf.push(b'\t');
    buf.extend_from_slice(r.key_id.to_string().as_bytes());
    buf.push(b'\t');
    buf.extend_from_slice(r.bidx_version.to_string().as_bytes());
    buf.push(b'\n');
}

fn encode_plain(buf: &mut Vec<u8>, r: &NewPlainRow, stamp: &str) {
    escape(buf, r.name.as_bytes());
    buf.push(b'\t');
    escape_opt(buf, r.email.as_deref().map(str::as_bytes));
    buf.push(b'\t');
    buf.extend_from_slice(r.age.to_string().as_bytes());
    buf.push(b'\t');
    buf.extend_from_slice(stamp.as_bytes());
    buf.push(b'\n');
}

fn escape_opt(buf: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => escape(buf, b),
        None => buf.extend_from_slice(b"\\N"),
    }
}

/// LOAD DATA's escapes with `ESCAPED BY '\\'`: the bytes that would end a
/// field or line, the escape itself, NUL and Ctrl-Z.
fn escape(buf: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            0 => buf.extend_from_slice(b"\\0"),
            0x1a => buf.extend_from_slice(b"\\Z"),
            _ => buf.push(b),
        }
    }
}

/// Which of these email blind indexes are already in `users`, with the id
/// of the record holding each.
///
/// # Errors
/// Database errors.
pub fn existing_email_bidx(db: &mut Db, bidx: &[Vec<u8>]) -> QueryResult<Vec<(Vec<u8>, i64)>> {
    if bidx.is_empty() {
        return Ok(Vec::new());
    }
    with_conn!(db, |conn| users::table
        .filter(users::email_bidx.eq_any(bidx))
        .select((users::email_bidx.assume_not_null(), users::id))
        .load(conn))
}

/// Which of these emails are already in `users_plain` (benchmark path).
///
/// # Errors
/// Database errors.
pub fn existing_plain_emails(db: &mut Db, emails: &[String]) -> QueryResult<Vec<(String, i64)>> {
    if emails.is_empty() {
        return Ok(Vec::new());
    }
    with_conn!(db, |conn| users_plain::table
        .filter(users_plain::email.eq_any(emails))
        .select((users_plain::email.assume_not_null(), users_plain::id))
        .load(conn))
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_what_load_data_would_misread() {
        let mut buf = Vec::new();
        escape(&mut buf, b"a\tb\nc\\d\0e\x1af\rg");
        assert_eq!(buf, b"a\\tb\\nc\\\\d\\0e\\Zf\\rg");
    }
}
