//! Envelope mode on every backend: create, unlock, wrong passphrase,
//! master key from the environment's form, altered wrapped keys.

mod support;
use diesel::connection::SimpleConnection;
use fieldseal::{Error, KeyStore, KeyStoreError, MasterSecret, Passphrase, SecretKey};
use support::{backend_tests, fast_kdf, Backend};

fieldseal::context!(UsersName = "users.name");
fieldseal::context!(TC = "t.c");

fn pass(text: &str) -> MasterSecret {
    MasterSecret::Passphrase(Passphrase::new(text.to_owned()))
}

backend_tests!(passphrase_unlocks_and_wrong_one_is_named, |db, conn| {
    let _ = &db;
    KeyStore::install_schema(conn).unwrap();
    KeyStore::install_schema(conn).expect("install_schema is idempotent");
    assert!(!KeyStore::is_initialized(conn).unwrap());

    let created = KeyStore::create(conn, &pass("correct horse"), fast_kdf()).unwrap();
    let sealed = created.seal::<UsersName, _>("Grace Hopper").unwrap();
    let bidx = created.blind_index::<UsersName>("Grace Hopper").unwrap();
    drop(created);

    let unlocked = KeyStore::unlock(conn, &pass("correct horse")).unwrap();
    assert_eq!(unlocked.open::<_, String>(&sealed).unwrap(), "Grace Hopper");
    assert_eq!(
        unlocked.blind_index::<UsersName>("grace hopper").unwrap(),
        bidx
    );

    let err = KeyStore::unlock(conn, &pass("correct horsE")).unwrap_err();
    assert!(matches!(err, Error::WrongMasterKey), "{err:?}");
    assert_eq!(err.to_string(), "wrong passphrase or master key");

    // A second create is refused and leaves the first intact.
    let again = KeyStore::create(conn, &pass("other"), fast_kdf()).unwrap_err();
    assert!(
        matches!(again, Error::KeyStore(KeyStoreError::AlreadyInitialized)),
        "{again:?}"
    );
    let (ring, created_now) =
        KeyStore::open_or_create(conn, &pass("correct horse"), fast_kdf()).unwrap();
    assert!(!created_now);
    assert_eq!(ring.open::<_, String>(&sealed).unwrap(), "Grace Hopper");
});

backend_tests!(master_key_mode_and_altered_wrapped_key, |db, conn| {
    KeyStore::install_schema(conn).unwrap();
    let master = SecretKey::generate();
    let (ring, created_now) =
        KeyStore::open_or_create(conn, &MasterSecret::Key(master.duplicate()), fast_kdf()).unwrap();
    assert!(created_now);
    let sealed = ring.seal::<TC, _>("v").unwrap();

    let err = KeyStore::unlock(conn, &MasterSecret::Key(SecretKey::generate())).unwrap_err();
    assert!(matches!(err, Error::WrongMasterKey), "{err:?}");

    let unlocked = KeyStore::unlock(conn, &MasterSecret::Key(master.duplicate())).unwrap();
    assert_eq!(unlocked.open::<_, String>(&sealed).unwrap(), "v");

    // Replace the wrapped data key: the master key is right, so this is
    // reported as an altered key table, not as a wrong passphrase.
    let forged = "ab".repeat(60);
    let literal = match db.backend {
        Backend::Postgres => format!("decode('{forged}', 'hex')"),
        _ => format!("X'{forged}'"),
    };
    conn.batch_execute(&format!(
        "UPDATE fieldseal_keys SET wrapped = {literal} WHERE purpose = 'data'"
    ))
    .unwrap();
    let err = KeyStore::unlock(conn, &MasterSecret::Key(master.duplicate())).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CorruptWrappedKey {
                purpose: "data",
                id: 1
            }
        ),
        "{err:?}"
    );
});

backend_tests!(
    a_rotation_after_a_passphrase_change_cannot_use_the_old_one,
    |db, conn| {
        let _ = &db;
        KeyStore::install_schema(conn).unwrap();
        KeyStore::create(conn, &pass("first passphrase"), fast_kdf()).unwrap();
        KeyStore::change_master(
            conn,
            &pass("first passphrase"),
            &pass("second passphrase"),
            fast_kdf(),
        )
        .unwrap();
        // A rotation that still holds the old passphrase is refused under the
        // key store lock instead of storing a key wrapped under the old master.
        let err = KeyStore::add_data_key(conn, &pass("first passphrase")).unwrap_err();
        assert!(matches!(err, Error::WrongMasterKey), "{err:?}");
        let ring = KeyStore::add_data_key(conn, &pass("second passphrase")).unwrap();
        assert_eq!(ring.active_key_id(), 2);
        assert_eq!(
            KeyStore::unlock(conn, &pass("second passphrase"))
                .unwrap()
                .active_key_id(),
            2
        );
    }
);

/// A developer's own migration: the DDL from `schema_sql`, run by hand,
/// gives a key store that a passphrase creates and a master key opens.
backend_tests!(own_migration_with_schema_sql, |db, conn| {
    let dialect = match db.backend {
        Backend::Sqlite => fieldseal::SqlDialect::Sqlite,
        Backend::Mysql => fieldseal::SqlDialect::Mysql,
        Backend::Postgres => fieldseal::SqlDialect::Postgres,
    };
    conn.batch_execute(fieldseal::schema_sql(dialect)).unwrap();
    assert!(!KeyStore::is_initialized(conn).unwrap());
    let err = KeyStore::unlock(conn, &pass("correct horse")).unwrap_err();
    assert!(
        matches!(err, Error::KeyStore(KeyStoreError::NotInitialized)),
        "{err:?}"
    );
    let (ring, created) =
        KeyStore::open_or_create(conn, &pass("correct horse"), fast_kdf()).unwrap();
    assert!(created);
    let sealed = ring.seal::<TC, _>("value").unwrap();
    // The master key derived from the passphrase opens it as well.
    let master = KeyStore::derive_master_key(conn, &pass("correct horse")).unwrap();
    let again = KeyStore::unlock(conn, &MasterSecret::Key(master)).unwrap();
    assert_eq!(again.open::<_, String>(&sealed).unwrap(), "value");
});
