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
    let again = KeyStore::create(conn, &pass("other passphrase"), fast_kdf()).unwrap_err();
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
    // reported as an altered key table (the key-list MAC no longer
    // matches), not as a wrong passphrase.
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
    assert!(matches!(err, Error::KeyTableAltered), "{err:?}");
});

// Deleting the newest data key must not make the keyring seal under an
// older one: the key list no longer matches its MAC, and every write is
// refused before it starts.
backend_tests!(
    a_deleted_key_row_is_refused_before_anything_is_written,
    |db, conn| {
        let _ = &db;
        KeyStore::install_schema(conn).unwrap();
        let secret = pass("correct horse");
        KeyStore::create(conn, &secret, fast_kdf()).unwrap();
        let ring = KeyStore::add_data_key(conn, &secret).unwrap();
        assert_eq!(ring.active_key_id(), 2);
        let before = KeyStore::version(conn).unwrap();
        conn.batch_execute("DELETE FROM fieldseal_keys WHERE purpose = 'data' AND id = 2")
            .unwrap();
        for attempt in [
            KeyStore::unlock(conn, &secret).map(drop),
            KeyStore::add_data_key(conn, &secret).map(drop),
            KeyStore::add_index_key(conn, &secret).map(drop),
            KeyStore::change_master(conn, &secret, &pass("new passphrase"), fast_kdf()),
        ] {
            let err = attempt.unwrap_err();
            assert!(matches!(err, Error::KeyTableAltered), "{err:?}");
        }
        assert_eq!(
            KeyStore::version(conn).unwrap(),
            before,
            "nothing was written"
        );
        // Re-stating a key (making the old one active again) is caught too.
        conn.batch_execute("UPDATE fieldseal_keys SET state = 'active' WHERE purpose = 'data'")
            .unwrap();
        assert!(matches!(
            KeyStore::unlock(conn, &secret).unwrap_err(),
            Error::KeyTableAltered
        ));
    }
);

// A wrapped key copied from another database that shares the master key
// does not open here: each wrap is bound to its own keyring's id.
#[cfg(feature = "sqlite")]
#[test]
fn a_transplanted_key_row_does_not_open() {
    use diesel::prelude::*;
    let master = SecretKey::generate();
    let (a, b) = (support::TestDb::sqlite(), support::TestDb::sqlite());
    let mut ca = diesel::SqliteConnection::establish(&a.url).unwrap();
    let mut cb = diesel::SqliteConnection::establish(&b.url).unwrap();
    for c in [&mut ca, &mut cb] {
        KeyStore::install_schema(c).unwrap();
        KeyStore::create(c, &MasterSecret::Key(master.duplicate()), fast_kdf()).unwrap();
    }
    let wrapped: Vec<u8> =
        diesel::sql_query("SELECT wrapped FROM fieldseal_keys WHERE purpose = 'data'")
            .load::<Wrapped>(&mut ca)
            .unwrap()
            .remove(0)
            .wrapped;
    // Copy A's wrapped data key over B's, MAC and all of B left as is.
    diesel::sql_query("UPDATE fieldseal_keys SET wrapped = ? WHERE purpose = 'data'")
        .bind::<diesel::sql_types::Binary, _>(&wrapped)
        .execute(&mut cb)
        .unwrap();
    let err = KeyStore::unlock(&mut cb, &MasterSecret::Key(master.duplicate())).unwrap_err();
    assert!(matches!(err, Error::KeyTableAltered), "{err:?}");
}

#[cfg(feature = "sqlite")]
#[derive(diesel::QueryableByName)]
struct Wrapped {
    #[diesel(sql_type = diesel::sql_types::Binary)]
    wrapped: Vec<u8>,
}

// Out-of-range Argon2 parameters written into the keyring row are one
// sentence, not a 2 TB allocation.
backend_tests!(absurd_stored_kdf_parameters_are_refused, |db, conn| {
    let _ = &db;
    KeyStore::install_schema(conn).unwrap();
    KeyStore::create(conn, &pass("correct horse"), fast_kdf()).unwrap();
    conn.batch_execute("UPDATE fieldseal_keyring SET kdf_m_cost = 2000000000")
        .unwrap();
    let err = KeyStore::unlock(conn, &pass("correct horse")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unusable Argon2id parameters: memory (KiB) is 2000000000; allowed 19456 to 4194304"
    );
});

// Weak passphrases never create or change a master key.
backend_tests!(weak_passphrases_create_nothing, |db, conn| {
    let _ = &db;
    KeyStore::install_schema(conn).unwrap();
    for weak in ["", "       ", "short"] {
        let err = KeyStore::create(conn, &pass(weak), fast_kdf()).unwrap_err();
        assert!(matches!(err, Error::WeakPassphrase { .. }), "{err:?}");
        assert!(!KeyStore::is_initialized(conn).unwrap());
    }
    KeyStore::create(conn, &pass("correct horse"), fast_kdf()).unwrap();
    let err = KeyStore::change_master(conn, &pass("correct horse"), &pass("1234567"), fast_kdf())
        .unwrap_err();
    assert!(matches!(err, Error::WeakPassphrase { .. }), "{err:?}");
    assert!(KeyStore::unlock(conn, &pass("correct horse")).is_ok());
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

// A developer's own migration: the DDL from `schema_sql`, run by hand,
// gives a key store that a passphrase creates and a master key opens.
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

fn connect_like<C: diesel::Connection>(_: &C, url: &str) -> C {
    C::establish(url).expect("connect")
}

// Rotations racing passphrase changes on two connections, many rounds:
// every write is a compare-and-swap on the keyring's version, so at the
// end exactly one of the two passphrases opens the keyring, every key the
// rotations reported is in it, and every key unwraps.
backend_tests!(
    rotations_racing_passphrase_changes_leave_one_openable_keyring,
    |db, conn| {
        KeyStore::install_schema(conn).unwrap();
        if db.backend == Backend::Sqlite {
            conn.batch_execute("PRAGMA journal_mode = WAL").unwrap();
        }
        let passes = [pass("first passphrase"), pass("second passphrase")];
        KeyStore::create(conn, &passes[0], fast_kdf()).unwrap();
        const ROUNDS: usize = 12;
        let added = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            let mut c1 = connect_like(&*conn, &db.url);
            let mut c2 = connect_like(&*conn, &db.url);
            for c in [&mut c1 as &mut dyn std::any::Any, &mut c2] {
                if let Some(sqlite) = c.downcast_mut::<diesel::SqliteConnection>() {
                    sqlite.batch_execute("PRAGMA busy_timeout = 20000").unwrap();
                }
            }
            let passes = &passes;
            let added = &added;
            s.spawn(move || {
                for _ in 0..ROUNDS {
                    // The rotation holds whichever passphrase is current.
                    let ring = passes
                        .iter()
                        .find_map(|p| KeyStore::add_data_key(&mut c1, p).ok());
                    if let Some(ring) = ring {
                        added.lock().unwrap().push(ring.active_key_id());
                    }
                }
            });
            s.spawn(move || {
                for round in 0..ROUNDS {
                    let (old, new) = (&passes[round % 2], &passes[(round + 1) % 2]);
                    KeyStore::change_master(&mut c2, old, new, fast_kdf())
                        .expect("change passphrase");
                }
            });
        });
        let opened: Vec<_> = passes
            .iter()
            .filter_map(|p| KeyStore::unlock(conn, p).ok())
            .collect();
        assert_eq!(opened.len(), 1, "exactly one passphrase opens the keyring");
        let ring = &opened[0];
        let added = added.into_inner().unwrap();
        assert!(!added.is_empty(), "some rotation succeeded");
        for id in &added {
            assert!(
                ring.has_key(*id),
                "key {id} that a rotation reported is kept"
            );
        }
        assert_eq!(ring.key_ids().count(), added.len() + 1);
        assert_eq!(ring.active_key_id(), added.iter().copied().max().unwrap());
    }
);
