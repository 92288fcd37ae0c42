//! Storage: which database, the connection, and the embedded migrations.
//!
//! `DATABASE_URL` chooses the backend: `mysql://…` (the production target)
//! or a SQLite file (`sqlite://path` or a plain path). Unset, the
//! application uses `fieldseal.db` in the working directory, so a first run
//! needs no server. Migrations are embedded in the binary, one directory
//! per backend, and applied on connect.

pub mod audit;
pub mod bulk;
pub mod imports;
pub mod legacy;
pub mod locks;
pub mod retry;
pub mod schema;
pub mod users;

use diesel::prelude::*;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::fmt;

const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The SQLite file used when `DATABASE_URL` is not set.
pub const DEFAULT_SQLITE_FILE: &str = "fieldseal.db";

/// A parsed `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// `mysql://user:password@host:port/database`.
    Mysql(String),
    /// A SQLite file path.
    Sqlite(String),
}

impl DbUrl {
    /// Parses a `DATABASE_URL` value; `None` means the embedded default.
    ///
    /// # Errors
    /// A sentence naming the problem (never the password).
    pub fn parse(value: Option<&str>) -> Result<Self, StoreError> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(DbUrl::Sqlite(DEFAULT_SQLITE_FILE.to_owned()));
        };
        if value.starts_with("mysql://") || value.starts_with("mariadb://") {
            let url = value.replacen("mariadb://", "mysql://", 1);
            let rest = url.strip_prefix("mysql://").unwrap_or(url.as_str());
            let path = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            if !path.contains('/') || path.ends_with('/') {
                return Err(StoreError::BadUrl(format!(
                    "DATABASE_URL {} names no database (add /name after the host)",
                    DbUrl::Mysql(url.clone())
                )));
            }
            return Ok(DbUrl::Mysql(url));
        }
        if let Some(path) = value
            .strip_prefix("sqlite://")
            .or_else(|| value.strip_prefix("sqlite:"))
        {
            return Ok(DbUrl::Sqlite(path.to_owned()));
        }
        if value.contains("://") {
            let scheme = value.split("://").next().unwrap_or_default();
            return Err(StoreError::BadUrl(format!(
                "DATABASE_URL uses {scheme}://, but the application supports mysql:// and SQLite files"
            )));
        }
        Ok(DbUrl::Sqlite(value.to_owned()))
    }

    /// Where the database is, for messages: the URL without its password,
    /// or the file path.
    pub fn redacted(&self) -> String {
        match self {
            DbUrl::Sqlite(path) => format!("SQLite file {path}"),
            DbUrl::Mysql(url) => {
                let rest = url.strip_prefix("mysql://").unwrap_or(url.as_str());
                match rest.rsplit_once('@') {
                    Some((userinfo, host)) => {
                        let user = userinfo.split(':').next().unwrap_or_default();
                        format!("mysql://{user}@{host}")
                    }
                    None => url.clone(),
                }
            }
        }
    }

    /// The host (and port) part, for connection errors.
    pub fn host(&self) -> String {
        match self {
            DbUrl::Sqlite(path) => path.clone(),
            DbUrl::Mysql(url) => {
                let rest = url.strip_prefix("mysql://").unwrap_or(url.as_str());
                let hostpart = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
                hostpart.split('/').next().unwrap_or(hostpart).to_owned()
            }
        }
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", self.redacted())
    }
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `DATABASE_URL` cannot be used.
    #[error("{0}")]
    BadUrl(String),
    /// The database did not accept a connection.
    #[error("cannot connect to {target}: {cause}")]
    Connect {
        /// Host and port (MySQL) or file (SQLite); never a password.
        target: String,
        /// What the driver said.
        cause: String,
    },
    /// Applying the embedded migrations failed.
    #[error("cannot migrate {target}: {cause}")]
    Migrate {
        /// Where.
        target: String,
        /// Why.
        cause: String,
    },
}

/// An open connection to the application's database.
pub enum Db {
    /// MySQL or MariaDB.
    Mysql(MysqlConnection),
    /// A SQLite file.
    Sqlite(SqliteConnection),
}

/// Runs the same Diesel code against whichever connection `Db` holds.
/// Each arm is compiled for its own backend, so batch inserts and other
/// backend-specific query shapes work (they would not through a
/// `MultiConnection`).
#[macro_export]
#[doc(hidden)]
macro_rules! with_conn {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Mysql($conn) => $body,
            $crate::store::Db::Sqlite($conn) => $body,
        }
    };
}

impl Db {
    /// Connects and applies pending migrations.
    ///
    /// # Errors
    /// [`StoreError::Connect`] naming the host or file and the cause;
    /// [`StoreError::Migrate`].
    pub fn connect(url: &DbUrl) -> Result<Self, StoreError> {
        let mut db = Db::open(url)?;
        db.migrate(url)?;
        Ok(db)
    }

    /// Applies pending migrations (`url` names the database in errors).
    ///
    /// # Errors
    /// [`StoreError::Migrate`].
    pub fn migrate(&mut self, url: &DbUrl) -> Result<(), StoreError> {
        let migrate_err = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migrate {
            target: url.redacted(),
            cause: e.to_string(),
        };
        match self {
            Db::Mysql(conn) => migrate(conn, || MYSQL_MIGRATIONS).map_err(migrate_err),
            Db::Sqlite(conn) => {
                // WAL (readers never wait for the writer) is set here, not
                // in `open`: it is stored in the file's header, and `adopt`
                // must leave a file it refuses byte-for-byte as it was.
                let mode: Vec<JournalMode> = diesel::sql_query("PRAGMA journal_mode")
                    .load(conn)
                    .map_err(|e| migrate_err(Box::new(e)))?;
                if !mode
                    .iter()
                    .any(|m| m.journal_mode.eq_ignore_ascii_case("wal"))
                {
                    use diesel::connection::SimpleConnection;
                    conn.batch_execute("PRAGMA journal_mode = WAL")
                        .map_err(|e| migrate_err(Box::new(e)))?;
                }
                migrate(conn, || SQLITE_MIGRATIONS).map_err(migrate_err)
            }
        }
    }

    /// Connects to a key store kept apart from the data
    /// (`FIELDSEAL_KEYSTORE_URL`) and creates the key store's tables there
    /// (the library's schema; none of the application's tables).
    ///
    /// # Errors
    /// [`StoreError::Connect`], [`StoreError::Migrate`].
    pub fn connect_keystore(url: &DbUrl) -> Result<Self, StoreError> {
        let mut db = Db::open(url)?;
        let failed = |cause: String| StoreError::Migrate {
            target: format!("the key store in {}", url.redacted()),
            cause,
        };
        if let Db::Sqlite(conn) = &mut db {
            use diesel::connection::SimpleConnection;
            conn.batch_execute("PRAGMA journal_mode = WAL")
                .map_err(|e| failed(e.to_string()))?;
        }
        with_conn!(&mut db, |c| fieldseal::KeyStore::install_schema(c))
            .map_err(|e| failed(e.to_string()))?;
        Ok(db)
    }

    /// Connects without migrating: for `adopt`, which must move another
    /// application's `users` aside before fieldseal's migrations run.
    ///
    /// # Errors
    /// [`StoreError::Connect`] naming the host or file and the cause.
    pub fn open(url: &DbUrl) -> Result<Self, StoreError> {
        let connect_err = |e: ConnectionError| StoreError::Connect {
            target: url.host(),
            cause: strip_password(&e.to_string(), url),
        };
        match url {
            DbUrl::Mysql(u) => {
                let mut conn = MysqlConnection::establish(u).map_err(connect_err)?;
                causal_reads(&mut conn);
                Ok(Db::Mysql(conn))
            }
            DbUrl::Sqlite(path) => {
                if std::path::Path::new(path).is_dir() {
                    return Err(StoreError::Connect {
                        target: path.clone(),
                        cause: "it is a directory, not a database file".into(),
                    });
                }
                create_private(path).map_err(|e| StoreError::Connect {
                    target: path.clone(),
                    cause: format!("cannot create the file: {e}"),
                })?;
                let mut conn = SqliteConnection::establish(path).map_err(connect_err)?;
                use diesel::connection::SimpleConnection;
                // The busy timeout first: everything after it, switching to
                // WAL and migrating included, then waits for a concurrent
                // writer instead of failing with "database is locked".
                conn.batch_execute("PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;")
                    .map_err(|e| connect_err(ConnectionError::CouldntSetupConfiguration(e)))?;
                Ok(Db::Sqlite(conn))
            }
        }
    }

    /// `mysql` or `sqlite`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Mysql(_) => "mysql",
            Db::Sqlite(_) => "sqlite",
        }
    }
}

/// On a Galera node, makes this session's reads wait until the node has
/// applied every write the cluster certified before them, so a record
/// committed through one node is there when the next command reads it
/// through another (`wsrep_sync_wait = 1`). Elsewhere it does nothing.
fn causal_reads(conn: &mut MysqlConnection) {
    use diesel::connection::SimpleConnection;
    #[derive(QueryableByName)]
    struct WsrepOn {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        on: bool,
    }
    let galera = diesel::sql_query("SELECT @@wsrep_on AS `on`")
        .get_result::<WsrepOn>(conn)
        .is_ok_and(|r| r.on);
    if galera {
        // Best effort: a server that refuses it still works, with reads
        // that may trail other nodes by a moment.
        let _ = conn.batch_execute("SET SESSION wsrep_sync_wait = 1");
    }
}

#[derive(QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = diesel::sql_types::Text)]
    journal_mode: String,
}

/// Creates a SQLite database file readable by its owner only (mode 0600),
/// unless it exists. SQLite gives its `-wal` and `-shm` files the mode of
/// the database file, so they are private too. (SQLite itself would create
/// the file with the umask's mode, typically 0644.)
fn create_private(path: &str) -> std::io::Result<()> {
    if path == ":memory:" || path.starts_with("file:") {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Applies pending migrations. Two processes starting on a fresh database
/// can race to record the same migration; the loser tries once more and
/// then finds nothing pending.
fn migrate<C>(
    conn: &mut C,
    migrations: impl Fn() -> EmbeddedMigrations,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    C: MigrationHarness<C::Backend> + Connection,
{
    // Concurrent starters on a fresh database can both find a migration
    // pending; the loser's attempt fails, and once the winner committed
    // nothing is pending any more.
    let mut attempt = 0u64;
    loop {
        match conn.run_pending_migrations(migrations()) {
            Ok(_) => return Ok(()),
            Err(_) if attempt < 5 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(100 * attempt));
            }
            Err(e) => return Err(e),
        }
    }
}

fn strip_password(message: &str, url: &DbUrl) -> String {
    let DbUrl::Mysql(u) = url else {
        return message.to_owned();
    };
    let rest = u.strip_prefix("mysql://").unwrap_or(u.as_str());
    match rest
        .rsplit_once('@')
        .and_then(|(info, _)| info.split_once(':'))
    {
        Some((_, password)) if !password.is_empty() => message.replace(password, "***"),
        _ => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_passwords() {
        assert_eq!(
            DbUrl::parse(None).unwrap(),
            DbUrl::Sqlite("fieldseal.db".into())
        );
        assert_eq!(
            DbUrl::parse(Some("sqlite://x.db")).unwrap(),
            DbUrl::Sqlite("x.db".into())
        );
        assert_eq!(
            DbUrl::parse(Some("data/x.db")).unwrap(),
            DbUrl::Sqlite("data/x.db".into())
        );
        let url = DbUrl::parse(Some("mysql://app:s3cr3t@db.internal:3306/records")).unwrap();
        assert_eq!(url.redacted(), "mysql://app@db.internal:3306/records");
        assert_eq!(url.host(), "db.internal:3306");
        assert!(!format!("{url:?} {url}").contains("s3cr3t"));
        let err = DbUrl::parse(Some("mysql://app:s3cr3t@db.internal:3306")).unwrap_err();
        assert!(err.to_string().contains("names no database"), "{err}");
        assert!(!err.to_string().contains("s3cr3t"));
        assert!(DbUrl::parse(Some("postgres://x/y")).is_err());
    }
}
