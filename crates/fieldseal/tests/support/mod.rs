//! What the library's test binaries share: the backend test macro, the
//! installed test keyring, fast KDF parameters. The databases themselves
//! come from `fieldseal-testdb`.

#![allow(dead_code, unused_macros, unused_imports)]

use fieldseal::{Keyring, SecretKey};
pub use fieldseal_testdb::{Backend, TestDb};
use std::sync::Once;

/// Installs the default keyring of this test binary: data keys 1 and 2
/// (2 active) and index key 1. Tests that need another keyring use a
/// `with_keyring` scope or a `Sealed` column, never replacing this one.
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

/// The cheapest Argon2 parameters the key store accepts: tests check
/// behaviour, not hardness.
pub fn fast_kdf() -> fieldseal::KdfParams {
    fieldseal::KdfParams::FLOOR
}

/// Generates one `#[test]` per backend the library is built with, from
/// one body. The body sees `db` (the [`TestDb`]) and `conn` (an
/// established connection of that backend).
macro_rules! backend_tests {
    ($name:ident, |$db:ident, $conn:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[cfg(feature = "sqlite")]
            #[test]
            fn sqlite() {
                let $db = $crate::support::TestDb::sqlite();
                let $conn =
                    &mut <diesel::SqliteConnection as diesel::Connection>::establish(&$db.url)
                        .expect("connect SQLite");
                $body
            }

            #[cfg(feature = "mysql")]
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

            #[cfg(feature = "postgres")]
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
