//! Test harness shared by the library's and the tool's tests: a fresh
//! database per test on the real servers, dropped afterwards.
//!
//! Server URLs come from `FIELDSEAL_TEST_MYSQL_URL` and
//! `FIELDSEAL_TEST_PG_URL` (defaults: the local servers, user root /
//! postgres). When a server does not answer, the test is skipped with a
//! note, unless `FIELDSEAL_REQUIRE_SERVERS=1` or `CI=true`: then it fails.
//!
//! The [`galera`] module: a shared 3-node Galera cluster, from
//! `FIELDSEAL_TEST_GALERA_URLS`, for tests across nodes and node crashes.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};

pub mod galera;
pub use galera::{Cluster, ClusterDb, NodeStatus};

/// Which server a [`TestDb`] lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// MySQL or MariaDB.
    Mysql,
    /// PostgreSQL.
    Postgres,
}

/// A database that exists for one test and is dropped with it.
pub struct TestDb {
    /// The server.
    pub backend: Backend,
    /// URL of the test database itself.
    pub url: String,
    admin_url: String,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

fn required() -> bool {
    std::env::var("FIELDSEAL_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true")
}

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "fieldseal_t{}_{}_{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

fn skip_or_fail(what: &str, url: &str, err: impl std::fmt::Display) -> Option<TestDb> {
    let msg = format!("{what} at {url} is unreachable: {err}");
    if required() {
        panic!("{msg} (required because CI=true or FIELDSEAL_REQUIRE_SERVERS=1)");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

impl TestDb {
    /// A SQLite file in a fresh temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("test.db");
        TestDb {
            backend: Backend::Sqlite,
            url: path.to_string_lossy().into_owned(),
            admin_url: String::new(),
            name: String::new(),
            _dir: Some(dir),
        }
    }

    /// A fresh MySQL/MariaDB database, or `None` when skipped.
    pub fn mysql() -> Option<TestDb> {
        let server = std::env::var("FIELDSEAL_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
        let server = server.trim_end_matches('/').to_owned();
        let admin_url = format!("{server}/mysql");
        let mut admin = match MysqlConnection::establish(&admin_url) {
            Ok(c) => c,
            Err(e) => return skip_or_fail("MySQL", &server, e),
        };
        let name = unique_name();
        admin
            .batch_execute(&format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            ))
            .expect("create MySQL test database");
        Some(TestDb {
            backend: Backend::Mysql,
            url: format!("{server}/{name}"),
            admin_url,
            name,
            _dir: None,
        })
    }

    /// A fresh PostgreSQL database, or `None` when skipped.
    pub fn postgres() -> Option<TestDb> {
        let server = std::env::var("FIELDSEAL_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let server = server.trim_end_matches('/').to_owned();
        let admin_url = format!("{server}/postgres");
        let mut admin = match PgConnection::establish(&admin_url) {
            Ok(c) => c,
            Err(e) => return skip_or_fail("PostgreSQL", &server, e),
        };
        let name = unique_name();
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create PostgreSQL test database");
        Some(TestDb {
            backend: Backend::Postgres,
            url: format!("{server}/{name}"),
            admin_url,
            name,
            _dir: None,
        })
    }

    /// The column type for ciphertext on this backend.
    pub fn binary(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "BLOB",
            Backend::Mysql => "LONGBLOB",
            Backend::Postgres => "BYTEA",
        }
    }

    /// The database name on the server (empty for SQLite).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything the database holds, as an attacker with a backup would
    /// see it: on MySQL a `mariadb-dump` (or `mysqldump`) of the database,
    /// plain and with `--hex-blob` one after the other; on SQLite the file's
    /// bytes and its WAL's. PostgreSQL is not dumped (empty).
    pub fn dump(&self) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let mut bytes = std::fs::read(&self.url).unwrap_or_default();
                bytes.extend(std::fs::read(format!("{}-wal", self.url)).unwrap_or_default());
                bytes
            }
            Backend::Mysql => {
                let (user, host, port) = server_parts(&self.admin_url);
                let mut bytes = Vec::new();
                for hex_blob in [false, true] {
                    let mut cmd = std::process::Command::new(dump_tool());
                    cmd.args(["-h", &host, "-P", &port, "-u", &user, "--protocol=tcp"]);
                    if hex_blob {
                        cmd.arg("--hex-blob");
                    }
                    let out = cmd.arg(&self.name).output().expect("run mysqldump");
                    assert!(
                        out.status.success(),
                        "mysqldump failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    bytes.extend(out.stdout);
                }
                bytes
            }
            Backend::Postgres => Vec::new(),
        }
    }
}

impl TestDb {
    /// A backup of the database as an operator would take one: on MySQL a
    /// `mariadb-dump --hex-blob` of it, on SQLite the file and its WAL.
    /// [`TestDb::restore`] puts it back. PostgreSQL is not supported.
    pub fn backup(&self) -> Backup {
        match self.backend {
            Backend::Sqlite => Backup {
                main: std::fs::read(&self.url).expect("read the SQLite file"),
                wal: std::fs::read(format!("{}-wal", self.url)).ok(),
            },
            Backend::Mysql => {
                let (user, host, port) = server_parts(&self.admin_url);
                let out = std::process::Command::new(dump_tool())
                    .args(["-h", &host, "-P", &port, "-u", &user, "--protocol=tcp"])
                    .args(["--hex-blob", "--single-transaction", &self.name])
                    .output()
                    .expect("run mysqldump");
                assert!(
                    out.status.success(),
                    "mysqldump failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Backup {
                    main: out.stdout,
                    wal: None,
                }
            }
            Backend::Postgres => panic!("backup is not implemented for PostgreSQL"),
        }
    }

    /// Replaces the database with a [`TestDb::backup`] of it: what a
    /// restore from last month's backup does.
    pub fn restore(&self, backup: &Backup) {
        match self.backend {
            Backend::Sqlite => {
                for suffix in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", self.url));
                }
                std::fs::write(&self.url, &backup.main).expect("write the SQLite file");
                if let Some(wal) = &backup.wal {
                    std::fs::write(format!("{}-wal", self.url), wal).expect("write the WAL");
                }
            }
            Backend::Mysql => {
                let mut admin =
                    MysqlConnection::establish(&self.admin_url).expect("connect to MySQL");
                admin
                    .batch_execute(&format!(
                        "DROP DATABASE `{0}`; CREATE DATABASE `{0}` CHARACTER SET utf8mb4 \
                         COLLATE utf8mb4_bin",
                        self.name
                    ))
                    .expect("recreate the database");
                let (user, host, port) = server_parts(&self.admin_url);
                let client = if dump_tool() == "mariadb-dump" {
                    "mariadb"
                } else {
                    "mysql"
                };
                let mut child = std::process::Command::new(client)
                    .args([
                        "-h",
                        &host,
                        "-P",
                        &port,
                        "-u",
                        &user,
                        "--protocol=tcp",
                        &self.name,
                    ])
                    .stdin(std::process::Stdio::piped())
                    .spawn()
                    .expect("run the mysql client");
                {
                    use std::io::Write;
                    let mut stdin = child.stdin.take().expect("stdin");
                    stdin.write_all(&backup.main).expect("feed the dump");
                }
                assert!(child.wait().expect("wait").success(), "restore failed");
            }
            Backend::Postgres => panic!("restore is not implemented for PostgreSQL"),
        }
    }
}

/// A copy of a database taken by [`TestDb::backup`].
pub struct Backup {
    main: Vec<u8>,
    wal: Option<Vec<u8>>,
}

impl Backup {
    /// The backup's bytes (the dump, or the SQLite file and its WAL).
    pub fn bytes(&self) -> Vec<u8> {
        let mut all = self.main.clone();
        all.extend(self.wal.iter().flatten());
        all
    }
}

fn dump_tool() -> &'static str {
    let which = |tool: &str| {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
    };
    if which("mariadb-dump") {
        "mariadb-dump"
    } else {
        "mysqldump"
    }
}

/// User, host and port of a `mysql://user@host:port/…` URL (the test
/// servers have no password).
fn server_parts(url: &str) -> (String, String, String) {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let (user, rest) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let user = user.split(':').next().unwrap_or(user);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "3306"));
    (user.to_owned(), host.to_owned(), port.to_owned())
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let result = match self.backend {
            Backend::Sqlite => return,
            Backend::Mysql => MysqlConnection::establish(&self.admin_url)
                .map_err(|e| e.to_string())
                .and_then(|mut c| {
                    c.batch_execute(&format!("DROP DATABASE IF EXISTS `{}`", self.name))
                        .map_err(|e| e.to_string())
                }),
            Backend::Postgres => PgConnection::establish(&self.admin_url)
                .map_err(|e| e.to_string())
                .and_then(|mut c| {
                    c.batch_execute(&format!(
                        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                        self.name
                    ))
                    .map_err(|e| e.to_string())
                }),
        };
        if let Err(e) = result {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}
