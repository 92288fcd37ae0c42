//! Per-user keys on every backend: a key per record in the key store,
//! erasure that no copy of the data survives, rotation by re-wrapping.

mod support;
use fieldseal::{
    DecryptErrorKind, Error, KeyStore, MasterSecret, RecordKeys, SecretKey, PURPOSE_AUDIT,
};
use support::{backend_tests, fast_kdf};

fieldseal::context!(UsersName = "users.name");
fieldseal::context!(UsersEmail = "users.email");

backend_tests!(a_destroyed_record_key_erases_every_copy, |db, conn| {
    let _ = &db;
    KeyStore::install_schema(conn).unwrap();
    let master = MasterSecret::Key(SecretKey::generate());
    let (ring, _) = KeyStore::open_or_create(conn, &master, fast_kdf()).unwrap();
    // Two records, each with its own key; the blind index stays keyring-wide.
    let (ada, ada_wrapped) = ring.new_record_key().unwrap();
    let (bob, bob_wrapped) = ring.new_record_key().unwrap();
    assert_ne!(ada.reference(), bob.reference());
    RecordKeys::store(conn, &[ada_wrapped.clone(), bob_wrapped]).unwrap();
    let ada_name = ada.seal::<UsersName, _>("Ada Lovelace").unwrap();
    let ada_email = ada.seal::<UsersEmail, _>("ada@example.org").unwrap();
    let bob_name = bob.seal::<UsersName, _>("Bob").unwrap();
    assert_eq!(ada_name.key_id(), None);
    assert_eq!(ada_name.record_key(), Some(ada.reference()));
    // Without the record key, the keyring alone says which key it needs.
    assert_eq!(
        ring.open::<_, String>(&ada_name).unwrap_err().kind,
        DecryptErrorKind::UnknownRecordKey(ada.reference())
    );
    // A value moved to another column, or sealed under another record's key, does not open.
    let keys = RecordKeys::load(conn, &ring, [ada.reference(), bob.reference()]).unwrap();
    assert_eq!(
        ring.open_with::<_, String>(&keys, &ada_name).unwrap(),
        "Ada Lovelace"
    );
    assert_eq!(
        ring.open_with::<_, String>(&keys, &ada_email).unwrap(),
        "ada@example.org"
    );
    let moved = fieldseal::Sealed::<UsersEmail>::from_bytes(ada_name.as_bytes().to_vec());
    assert_eq!(
        ring.open_with::<_, String>(&keys, &moved).unwrap_err().kind,
        DecryptErrorKind::AuthenticationFailed
    );
    assert!(bob.open::<_, String>(&ada_name).is_err());

    // Erase Ada: her values, wherever they were copied, no longer open; Bob's do.
    assert!(RecordKeys::destroy(conn, ada.reference()).unwrap());
    assert!(
        !RecordKeys::destroy(conn, ada.reference()).unwrap(),
        "erased once"
    );
    let keys = RecordKeys::load(conn, &ring, [ada.reference(), bob.reference()]).unwrap();
    let err = ring.open_with::<_, String>(&keys, &ada_name).unwrap_err();
    assert_eq!(err.kind, DecryptErrorKind::Erased(ada.reference()));
    assert!(err.to_string().contains("erased"), "{err}");
    assert_eq!(
        ring.open_with::<_, String>(&keys, &bob_name).unwrap(),
        "Bob"
    );
    assert_eq!(RecordKeys::count(conn).unwrap(), (1, 1));
    // Putting the old wrap back needs a write to the key store: the erased
    // row stays erased through a rotation (below) and a second destroy.
    let _ = ada_wrapped;
});

backend_tests!(
    rotation_rewraps_record_keys_and_touches_no_value,
    |db, conn| {
        let _ = &db;
        KeyStore::install_schema(conn).unwrap();
        let master = MasterSecret::Key(SecretKey::generate());
        let (ring, _) = KeyStore::open_or_create(conn, &master, fast_kdf()).unwrap();
        let mut sealed = Vec::new();
        let mut wrapped = Vec::new();
        for n in 0..25 {
            let (key, w) = ring.new_record_key().unwrap();
            sealed.push((
                key.reference(),
                key.seal::<UsersName, _>(&format!("user {n}")).unwrap(),
            ));
            wrapped.push(w);
        }
        RecordKeys::store(conn, &wrapped).unwrap();
        RecordKeys::destroy(conn, sealed[3].0).unwrap();
        assert_eq!(
            RecordKeys::wrapping_key_ids(conn)
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [1]
        );

        let rotated = KeyStore::add_data_key(conn, &master).unwrap();
        assert_eq!(rotated.active_key_id(), 2);
        // A value under its own key is not re-sealed: its key is re-wrapped.
        assert!(rotated.reseal(&sealed[0].1).unwrap().is_none());
        let mut calls = 0;
        let n = RecordKeys::rewrap_all(conn, &rotated, 10, &mut |_| {
            calls += 1;
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(n, 24);
        assert_eq!(calls, 3);
        assert_eq!(
            RecordKeys::wrapping_key_ids(conn)
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [2]
        );
        assert_eq!(
            RecordKeys::rewrap_all(conn, &rotated, 10, &mut |_| {
                std::ops::ControlFlow::Continue(())
            })
            .unwrap(),
            0
        );
        // The values are as they were, and open through keys wrapped by key 2
        // alone: a keyring without data key 1 still opens them.
        let only_two = KeyStore::unlock(conn, &master).unwrap();
        let keys = RecordKeys::load(conn, &only_two, sealed.iter().map(|(r, _)| *r)).unwrap();
        for (n, (reference, value)) in sealed.iter().enumerate() {
            let opened = only_two.open_with::<_, String>(&keys, value);
            if n == 3 {
                assert_eq!(
                    opened.unwrap_err().kind,
                    DecryptErrorKind::Erased(*reference)
                );
            } else {
                assert_eq!(opened.unwrap(), format!("user {n}"));
            }
        }
        assert_eq!(RecordKeys::count(conn).unwrap(), (24, 1));
    }
);

backend_tests!(audit_key_is_kept_and_added_to_older_stores, |db, conn| {
    let _ = &db;
    KeyStore::install_schema(conn).unwrap();
    let master = MasterSecret::Key(SecretKey::generate());
    let (ring, _) = KeyStore::open_or_create(conn, &master, fast_kdf()).unwrap();
    assert!(ring.has_audit_key());
    let mac = ring.audit_mac(b"entry").unwrap();
    // Rotations and a passphrase change leave the audit key as it was.
    KeyStore::add_data_key(conn, &master).unwrap();
    KeyStore::add_index_key(conn, &master).unwrap();
    let new_master = MasterSecret::Key(SecretKey::generate());
    KeyStore::change_master(conn, &master, &new_master, fast_kdf()).unwrap();
    let again = KeyStore::unlock(conn, &new_master).unwrap();
    assert!(again.verify_audit_mac(b"entry", &mac));
    assert!(!again.verify_audit_mac(b"entrY", &mac));
    assert!(KeyStore::keys(conn)
        .unwrap()
        .iter()
        .any(|k| k.purpose == PURPOSE_AUDIT));
    // ensure_audit_key is a no-op when there is one.
    let same = KeyStore::ensure_audit_key(conn, &new_master).unwrap();
    assert!(same.verify_audit_mac(b"entry", &mac));
    let no_audit = fieldseal::Keyring::new([(1, SecretKey::generate())], []).unwrap();
    assert!(matches!(
        no_audit.audit_mac(b"x").unwrap_err(),
        Error::NoAuditKey
    ));
});
