//! Import progress (`fieldseal_imports`) and the batch writes it guards.

use super::bulk::{BulkConn, Unavailable};
use super::schema::{fieldseal_imports, users};
use super::users::NewUserRow;
use super::{Db, DbUrl};
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

/// Rows of one batch, sealed, for `users`.
pub type BatchRows = Vec<NewUserRow>;

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
/// transaction: after a crash either both are there or neither is, so the
/// whole call is safe to repeat after a transient conflict (see
/// [`super::retry`]), which it reports as `SerializationFailure`. `first`
/// creates the progress row (the import's first commit), else updates it.
/// On MySQL the rows go in through `LOAD DATA LOCAL INFILE` on the
/// loader's own connection when the server allows it (see [`BulkLoader`]),
/// else as multi-row INSERTs. `encoded` is [`encode_rows`] of `rows`, when
/// it was done ahead.
///
/// # Errors
/// Database errors; the transaction is rolled back.
pub fn commit_batch(
    db: &mut Db,
    rows: &BatchRows,
    encoded: Option<&[u8]>,
    progress: &ImportRow,
    first: bool,
    loader: &mut BulkLoader,
) -> QueryResult<Committed> {
    if let Some(committed) = loader.commit(rows, encoded, progress, first)? {
        return Ok(committed);
    }
    let result = with_conn!(db, |conn| conn.transaction::<_, TxError, _>(|c| {
        let written = if rows.is_empty() {
            Ok(())
        } else {
            c.write_rows(rows)
        };
        let saved = written.and_then(|()| save_progress(c, progress, first).map_err(TxError::Db));
        saved
            .map_err(|e| c.classify(e))
            .and_then(|()| c.commit_now().map_err(TxError::Db))
    }));
    match result {
        Ok(()) => Ok(Committed::Yes),
        // The only unique key a batch can meet: ids are generated, so
        // the primary key never collides.
        Err(TxError::Db(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ))) => Ok(Committed::DuplicateEmail),
        Err(TxError::Db(e)) => Err(e),
    }
}

/// Why a batch transaction rolled back.
#[derive(Debug)]
enum TxError {
    Db(diesel::result::Error),
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
    fn write_rows(&mut self, rows: &BatchRows) -> Result<(), TxError>;
    /// Marks an error a retry of the whole batch can cure (see
    /// [`super::retry`]).
    fn classify(&mut self, e: TxError) -> TxError {
        e
    }
    /// Commits now, classifying a failed commit (see
    /// [`super::retry::commit_now`]).
    fn commit_now(&mut self) -> QueryResult<()> {
        Ok(())
    }
}

/// Rows per INSERT statement: 8 bound values a row stays under MySQL's
/// 65,535 placeholders and SQLite's 32,766 variables a statement. A batch
/// larger than this is several statements in its one transaction.
const ROWS_PER_INSERT: usize = 4_000;

impl WriteRows for diesel::SqliteConnection {
    fn write_rows(&mut self, rows: &BatchRows) -> Result<(), TxError> {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            diesel::insert_into(users::table)
                .values(chunk)
                .execute(self)?;
        }
        Ok(())
    }
}

impl WriteRows for diesel::MysqlConnection {
    fn write_rows(&mut self, rows: &BatchRows) -> Result<(), TxError> {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            diesel::insert_into(users::table)
                .values(chunk)
                .execute(self)?;
        }
        Ok(())
    }

    fn classify(&mut self, e: TxError) -> TxError {
        match e {
            TxError::Db(e) => TxError::Db(super::retry::classify(self, e)),
        }
    }
    fn commit_now(&mut self) -> QueryResult<()> {
        super::retry::commit_now(self)
    }
}

/// MySQL's bulk path: each batch is encoded in LOAD DATA's escaped
/// tab-separated format (binary columns byte-exact, `\N` for NULL) and
/// loaded with `LOAD DATA LOCAL INFILE` on a connection of the loader's
/// own ([`BulkConn`]), whose client serves that batch from memory and no
/// file; the progress row goes in the same transaction on that connection.
/// LOCAL makes duplicate keys skip rows (with a warning) instead of
/// failing, so a short count rolls the batch back as
/// [`Committed::DuplicateEmail`]. Before its first batch the loader opens
/// its connection and probes LOAD DATA with an empty batch; when that
/// fails (the server's `local_infile` is off, or the URL asks for TLS,
/// which the bulk client is built without) it switches itself off and
/// batches go in as multi-row INSERTs on the main connection.
#[derive(Debug, Default)]
pub struct BulkLoader {
    conn: Option<BulkConn>,
    disabled: bool,
    probed: bool,
    /// Why the last probe said no, for the curious (`import` prints it
    /// when LOAD DATA was expected).
    unavailable: Option<String>,
    stamps: StampCache,
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

    /// Whether batches go through LOAD DATA (after [`BulkLoader::probe`]).
    pub fn is_enabled(&self) -> bool {
        self.conn.is_some()
    }

    /// Why LOAD DATA is not used, when the probe said no.
    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// Decides, once and before the first batch, whether LOAD DATA LOCAL
    /// works here: on MySQL (`url`), a connection of its own that can load
    /// an empty batch. Any failure means no, and batches use INSERT.
    pub fn probe(&mut self, url: Option<&DbUrl>) {
        if self.probed || self.disabled {
            return;
        }
        self.probed = true;
        let Some(DbUrl::Mysql(url)) = url else {
            return;
        };
        match BulkConn::connect(url) {
            Ok(mut conn) => {
                if conn.probe() {
                    self.conn = Some(conn);
                } else {
                    self.unavailable = Some("the server refuses LOAD DATA LOCAL".into());
                }
            }
            Err(Unavailable::Tls) => {
                self.unavailable = Some("the database URL asks for TLS".into());
            }
            Err(Unavailable::Connect(why)) => self.unavailable = Some(why),
        }
    }

    /// Loads the rows with their progress; `Ok(None)` when LOAD DATA is
    /// not in use.
    fn commit(
        &mut self,
        rows: &BatchRows,
        encoded: Option<&[u8]>,
        progress: &ImportRow,
        first: bool,
    ) -> QueryResult<Option<Committed>> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        let bytes = match encoded {
            Some(bytes) => bytes.to_vec(),
            None => encode_rows(rows, &mut self.stamps),
        };
        conn.commit_batch(bytes, rows.len(), progress, first)
            .map(Some)
    }
}

/// The last `created_at` formatted, and its text: rows of a batch share
/// their second, so this saves formatting each row's.
#[derive(Debug, Default)]
pub struct StampCache(Option<(NaiveDateTime, String)>);

/// `rows` in LOAD DATA's escaped tab-separated format, in the column order
/// of [`super::bulk::load_sql`].
pub fn encode_rows(rows: &BatchRows, stamps: &mut StampCache) -> Vec<u8> {
    let mut buf = Vec::with_capacity(rows.len() * 256);
    for r in rows {
        encode_row_into(&mut buf, r, stamps);
    }
    buf
}

/// Appends one row in LOAD DATA's format (see [`encode_rows`]).
pub(crate) fn encode_row_into(buf: &mut Vec<u8>, r: &NewUserRow, stamps: &mut StampCache) {
    let stamp = stamp_text(&mut stamps.0, r.created_at);
    encode_row(buf, r, &stamp);
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

fn encode_row(buf: &mut Vec<u8>, r: &NewUserRow, stamp: &str) {
    escape(buf, r.name.as_bytes());
    buf.push(b'\t');
    escape(buf, &r.name_bidx);
    buf.push(b'\t');
    escape_opt(buf, r.email.as_ref().map(fieldseal::Sealed::as_bytes));
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
