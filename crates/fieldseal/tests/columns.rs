//! `Encrypted<T, C>` through Diesel on every backend: round trips, NULL,
//! tampering, values moved between columns, unknown and wrong keys.

mod support;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use fieldseal::{decrypt_error, DecryptErrorKind, Encrypted, Keyring, SecretKey};
use support::{backend_tests, install_test_keyring, TestDb};

diesel::table! {
    secrets (id) {
        id -> Integer,
        body -> Binary,
        other -> Binary,
        note -> Nullable<Binary>,
        payload -> Nullable<Binary>,
        num -> Nullable<Binary>,
    }
}

fieldseal::context!(Body = "secrets.body");
fieldseal::context!(Other = "secrets.other");
fieldseal::context!(Note = "secrets.note");
fieldseal::context!(Payload = "secrets.payload");
fieldseal::context!(Num = "secrets.num");

#[derive(Insertable, Clone)]
#[diesel(table_name = secrets)]
struct NewSecret {
    id: i32,
    #[diesel(serialize_as = Encrypted<String, Body>)]
    body: String,
    #[diesel(serialize_as = Encrypted<String, Other>)]
    other: String,
    #[diesel(serialize_as = Encrypted<Option<String>, Note>)]
    note: Option<String>,
    #[diesel(serialize_as = Encrypted<Option<Vec<u8>>, Payload>)]
    payload: Option<Vec<u8>>,
    #[diesel(serialize_as = Encrypted<Option<i64>, Num>)]
    num: Option<i64>,
}

#[derive(Queryable, Selectable, Debug, PartialEq)]
#[diesel(table_name = secrets)]
struct Secret {
    id: i32,
    #[diesel(deserialize_as = Encrypted<String, Body>)]
    body: String,
    #[diesel(deserialize_as = Encrypted<String, Other>)]
    other: String,
    #[diesel(deserialize_as = Encrypted<Option<String>, Note>)]
    note: Option<String>,
    #[diesel(deserialize_as = Encrypted<Option<Vec<u8>>, Payload>)]
    payload: Option<Vec<u8>>,
    #[diesel(deserialize_as = Encrypted<Option<i64>, Num>)]
    num: Option<i64>,
}

fn create_table(db: &TestDb, conn: &mut impl SimpleConnection) {
    install_test_keyring();
    let bin = db.binary();
    conn.batch_execute(&format!(
        "CREATE TABLE secrets (id INTEGER PRIMARY KEY, body {bin} NOT NULL, \
         other {bin} NOT NULL, note {bin}, payload {bin}, num {bin})"
    ))
    .expect("create table");
}

fn secret(id: i32, body: &str) -> NewSecret {
    NewSecret {
        id,
        body: body.to_owned(),
        other: format!("other {id}"),
        note: None,
        payload: None,
        num: None,
    }
}

fn samples() -> Vec<NewSecret> {
    let all_bytes: Vec<u8> = (0..=255).collect();
    vec![
        secret(1, ""),
        NewSecret {
            note: Some("Zoë 🦀 日本語 مرحبا \u{0}nul".into()),
            payload: Some(all_bytes),
            num: Some(i64::MIN),
            ..secret(2, "Ünïcödé ✓ 👩‍👩‍👧")
        },
        NewSecret {
            note: Some(String::new()),
            payload: Some(Vec::new()),
            num: Some(i64::MAX),
            ..secret(3, &"a".repeat(1 << 20))
        },
    ]
}

backend_tests!(round_trip, |db, conn| {
    create_table(&db, conn);
    let rows = samples();
    for row in rows.clone() {
        diesel::insert_into(secrets::table)
            .values(row)
            .execute(conn)
            .unwrap();
    }
    let loaded: Vec<Secret> = secrets::table
        .select(Secret::as_select())
        .order(secrets::id)
        .load(conn)
        .unwrap();
    assert_eq!(loaded.len(), rows.len());
    for (got, want) in loaded.iter().zip(&rows) {
        assert_eq!(got.id, want.id);
        assert_eq!(got.body, want.body);
        assert_eq!(got.other, want.other);
        assert_eq!(got.note, want.note);
        assert_eq!(got.payload, want.payload);
        assert_eq!(got.num, want.num);
    }

    // What the database holds: ciphertext 33 bytes longer, NULL kept NULL.
    let raw: Vec<(i32, Vec<u8>, Option<Vec<u8>>)> = secrets::table
        .select((secrets::id, secrets::body, secrets::note))
        .order(secrets::id)
        .load(conn)
        .unwrap();
    assert_eq!(raw[0].1.len(), fieldseal::OVERHEAD);
    assert_eq!(
        raw[0].2, None,
        "a NULL note must stay NULL, not become ciphertext"
    );
    assert_eq!(raw[2].1.len(), (1 << 20) + fieldseal::OVERHEAD);
    assert!(!raw[1].1.windows(4).any(|w| w == "Ünï".as_bytes()));
    assert_eq!(raw[0].1[0], 1, "format version byte");
    assert_eq!(
        &raw[0].1[1..5],
        &2u32.to_be_bytes(),
        "sealed under the active key 2"
    );

    // Updates re-seal through the same type.
    diesel::update(secrets::table.find(1))
        .set(secrets::body.eq(Encrypted::<String, Body>::new("changed".into())))
        .execute(conn)
        .unwrap();
    let body: Encrypted<String, Body> = secrets::table
        .find(1)
        .select(secrets::body)
        .first(conn)
        .unwrap();
    assert_eq!(body.into_inner(), "changed");
});

backend_tests!(every_bit_flip_is_rejected, |db, conn| {
    create_table(&db, conn);
    diesel::insert_into(secrets::table)
        .values(secret(1, "hi!"))
        .execute(conn)
        .unwrap();
    let original: Vec<u8> = secrets::table
        .find(1)
        .select(secrets::body)
        .first(conn)
        .unwrap();
    for bit in 0..original.len() * 8 {
        let mut flipped = original.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        diesel::update(secrets::table.find(1))
            .set(secrets::body.eq(&flipped))
            .execute(conn)
            .unwrap();
        let err = secrets::table
            .find(1)
            .select(Secret::as_select())
            .first(conn)
            .expect_err(&format!("bit {bit} flipped must not decrypt"));
        let found =
            decrypt_error(&err).unwrap_or_else(|| panic!("bit {bit}: not a decrypt error: {err}"));
        assert_eq!(found.context, "secrets.body");
        let expected_kind_ok = match bit / 8 {
            0 => matches!(found.kind, DecryptErrorKind::Malformed(_)),
            1..=4 => matches!(found.kind, DecryptErrorKind::UnknownKeyId(_)),
            _ => found.kind == DecryptErrorKind::AuthenticationFailed,
        };
        assert!(
            expected_kind_ok,
            "bit {bit}: unexpected kind {:?}",
            found.kind
        );
    }
    // And the untouched value still opens.
    diesel::update(secrets::table.find(1))
        .set(secrets::body.eq(&original))
        .execute(conn)
        .unwrap();
    let row: Secret = secrets::table
        .find(1)
        .select(Secret::as_select())
        .first(conn)
        .unwrap();
    assert_eq!(row.body, "hi!");
});

backend_tests!(value_moved_to_another_column_is_rejected, |db, conn| {
    create_table(&db, conn);
    diesel::insert_into(secrets::table)
        .values(secret(1, "alice@example.org"))
        .execute(conn)
        .unwrap();
    let body: Vec<u8> = secrets::table
        .find(1)
        .select(secrets::body)
        .first(conn)
        .unwrap();
    diesel::update(secrets::table.find(1))
        .set(secrets::other.eq(&body))
        .execute(conn)
        .unwrap();
    let err = secrets::table
        .find(1)
        .select(Secret::as_select())
        .first(conn)
        .unwrap_err();
    let found = decrypt_error(&err).expect("decrypt error");
    assert_eq!(found.kind, DecryptErrorKind::AuthenticationFailed);
    assert_eq!(found.context, "secrets.other");
    // Diesel's own message names the field; ours names the column and why.
    assert!(err.to_string().contains("other"), "{err}");
    let message = found.to_string();
    assert!(message.contains("secrets.other"), "{message}");
    assert!(message.contains("authentication failed"), "{message}");
    assert!(!message.contains("alice"), "{message}");
});

backend_tests!(unknown_and_wrong_keys_are_named, |db, conn| {
    create_table(&db, conn);
    diesel::insert_into(secrets::table)
        .values(secret(1, "x"))
        .execute(conn)
        .unwrap();

    let stranger = Keyring::new([(99, SecretKey::generate())], []).unwrap();
    let sealed = stranger.seal::<Body, _>("from elsewhere").unwrap();
    diesel::update(secrets::table.find(1))
        .set(secrets::body.eq(&sealed))
        .execute(conn)
        .unwrap();
    let err = secrets::table
        .find(1)
        .select(Secret::as_select())
        .first(conn)
        .unwrap_err();
    let found = decrypt_error(&err).expect("decrypt error");
    assert_eq!(found.kind, DecryptErrorKind::UnknownKeyId(99));
    assert!(found.to_string().contains("unknown key id 99"), "{found}");

    // Same key id as the installed active key, different key bytes.
    let impostor = Keyring::new([(2, SecretKey::generate())], []).unwrap();
    let sealed = impostor.seal::<Body, _>("forged").unwrap();
    diesel::update(secrets::table.find(1))
        .set(secrets::body.eq(&sealed))
        .execute(conn)
        .unwrap();
    let err = secrets::table
        .find(1)
        .select(Secret::as_select())
        .first(conn)
        .unwrap_err();
    assert_eq!(
        decrypt_error(&err).expect("decrypt error").kind,
        DecryptErrorKind::AuthenticationFailed
    );

    // Truncated bytes are malformed, not a panic.
    diesel::update(secrets::table.find(1))
        .set(secrets::body.eq(vec![1u8, 0, 0]))
        .execute(conn)
        .unwrap();
    let err = secrets::table
        .find(1)
        .select(Secret::as_select())
        .first(conn)
        .unwrap_err();
    assert!(matches!(
        decrypt_error(&err).expect("decrypt error").kind,
        DecryptErrorKind::Malformed(_)
    ));
});
