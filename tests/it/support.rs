//! Test harness: a fresh database per test on the real servers, dropped
//! afterwards, and the test keyring.
//!
//! Server URLs come from `FIELDSEAL_TEST_MYSQL_URL` and
//! `FIELDSEAL_TEST_PG_URL` (defaults: the local servers, user root /
//! postgres). When a server does not answer, the test is skipped with a
//! note, unless `FIELDSEAL_REQUIRE_SERVERS=1` or `CI=true`: then it fails.

#![allow(dead_code)]

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use fieldseal::{Keyring, SecretKey};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// Which server a [`TestDb`] lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mysql,
    Postgres,
}

/// A database that exists for one test and is dropped with it.
pub struct TestDb {
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

/// Installs the keyring shared by this test binary: data keys 1 and 2
/// (2 active) and index key 1. Tests that need another keyring build a
/// local one and use its `seal`/`open` directly, never replacing this.
pub fn install_test_keyring() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let ring = Keyring::new(
            [(1, SecretKey::generate()), (2, SecretKey::generate())],
            [(1, SecretKey::generate())],
        )
        .expect("keyring");
        fieldseal::install_keyring(ring);
    });
}

/// Fast Argon2 parameters: tests check behaviour, not hardness.
pub fn fast_kdf() -> fieldseal::KdfParams {
    fieldseal::KdfParams {
        m_cost_kib: 256,
        t_cost: 1,
        p_cost: 1,
    }
}

/// Generates one `#[test]` per backend from one body. The body sees `db`
/// (the [`TestDb`]) and `conn` (an established connection of that backend).
macro_rules! backend_tests {
    ($name:ident, |$db:ident, $conn:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn sqlite() {
                let $db = $crate::support::TestDb::sqlite();
                let $conn =
                    &mut <diesel::SqliteConnection as diesel::Connection>::establish(&$db.url)
                        .expect("connect SQLite");
                $body
            }

            #[test]
            fn mysql() {
                let Some($db) = $crate::support::TestDb::mysql() else {
                    return;
                };
                let $conn =
                    &mut <diesel::MysqlConnection as diesel::Connection>::establish(&$db.url)
                        .expect("connect MySQL");
                $body
            }

            #[test]
            fn postgres() {
                let Some($db) = $crate::support::TestDb::postgres() else {
                    return;
                };
                let $conn = &mut <diesel::PgConnection as diesel::Connection>::establish(&$db.url)
                    .expect("connect PostgreSQL");
                $body
            }
        }
    };
}
pub(crate) use backend_tests;
