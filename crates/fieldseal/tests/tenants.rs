//! Keyrings passed explicitly: two tenants with two keyrings on two
//! threads never seal or open with each other's keys, through either
//! column type; scopes nest and survive panics; `Sealed` names the row
//! that does not open.

mod support;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use fieldseal::{DecryptErrorKind, Encrypted, Keyring, Sealed, SecretKey};
use std::sync::{Arc, Barrier};
use support::{backend_tests, TestDb};

diesel::table! {
    notes (id) {
        id -> Integer,
        tenant -> Integer,
        body -> Binary,
        extra -> Nullable<Binary>,
    }
}

fieldseal::context!(NoteBody = "notes.body");
fieldseal::context!(NoteExtra = "notes.extra");

/// The transparent form, as a model with plain `Encrypted` fields.
#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = notes)]
struct Note {
    id: i32,
    tenant: i32,
    body: Encrypted<String, NoteBody>,
    extra: Encrypted<Option<String>, NoteExtra>,
}

/// The explicit form: ciphertext the caller opens with its own keyring.
#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = notes)]
struct SealedNote {
    id: i32,
    tenant: i32,
    body: Sealed<NoteBody>,
    extra: Option<Sealed<NoteExtra>>,
}

const ROWS: i32 = 300;

fn create_table(db: &TestDb, conn: &mut impl SimpleConnection) {
    let bin = db.binary();
    conn.batch_execute(&format!(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, tenant INTEGER NOT NULL, \
         body {bin} NOT NULL, extra {bin})"
    ))
    .expect("create table");
}

/// A keyring whose only data key has id 1, like every fresh tenant's: a
/// mix-up cannot be caught by an unknown key id, only by authentication.
fn tenant_keyring() -> Arc<Keyring> {
    Arc::new(Keyring::new([(1, SecretKey::generate())], [(1, SecretKey::generate())]).unwrap())
}

fn connect_like<C: Connection>(_: &C, url: &str) -> C {
    C::establish(url).expect("connect")
}

backend_tests!(two_tenants_on_two_threads_never_mix_keys, |db, conn| {
    create_table(&db, conn);
    if db.backend == support::Backend::Sqlite {
        conn.batch_execute("PRAGMA journal_mode = WAL").unwrap();
    }
    let rings = [tenant_keyring(), tenant_keyring()];
    let start = Arc::new(Barrier::new(2));
    std::thread::scope(|scope| {
        for (tenant, ring) in rings.iter().enumerate() {
            let mut c = connect_like(&*conn, &db.url);
            let start = Arc::clone(&start);
            let url = db.url.clone();
            scope.spawn(move || {
                let _ = url;
                if let Some(sqlite) =
                    (&mut c as &mut dyn std::any::Any).downcast_mut::<diesel::SqliteConnection>()
                {
                    sqlite.batch_execute("PRAGMA busy_timeout = 10000").unwrap();
                }
                start.wait();
                let tenant = tenant as i32;
                for i in 0..ROWS {
                    let note = Note {
                        id: tenant * ROWS + i,
                        tenant,
                        body: Encrypted::new(format!("tenant {tenant} note {i}")),
                        extra: Encrypted::new((i % 2 == 0).then(|| format!("extra {i}"))),
                    };
                    // Each insert in its own scope, so the two threads
                    // switch keyrings hundreds of times while interleaved.
                    fieldseal::with_keyring(ring, || {
                        diesel::insert_into(notes::table)
                            .values(note)
                            .execute(&mut c)
                    })
                    .expect("insert");
                    std::thread::yield_now();
                }
            });
        }
    });

    let rows: Vec<SealedNote> = notes::table
        .select(SealedNote::as_select())
        .order(notes::id)
        .load(conn)
        .unwrap();
    assert_eq!(rows.len(), 2 * ROWS as usize);
    for row in &rows {
        let own = &rings[row.tenant as usize];
        let other = &rings[1 - row.tenant as usize];
        let body: String = own.open(&row.body).unwrap_or_else(|e| {
            panic!(
                "row {} of tenant {} does not open with its own keyring: {e}",
                row.id, row.tenant
            )
        });
        assert_eq!(
            body,
            format!("tenant {} note {}", row.tenant, row.id % ROWS)
        );
        assert_eq!(
            other.open::<_, String>(&row.body).unwrap_err().kind,
            DecryptErrorKind::AuthenticationFailed,
            "row {} opened with the other tenant's keyring",
            row.id
        );
        if let Some(extra) = &row.extra {
            assert!(own.open::<_, String>(extra).is_ok());
            assert!(other.open::<_, String>(extra).is_err());
        }
    }

    // Read back transparently, each tenant in its own scope.
    for (tenant, ring) in rings.iter().enumerate() {
        let loaded: Vec<Note> = fieldseal::with_keyring(ring, || {
            notes::table
                .filter(notes::tenant.eq(tenant as i32))
                .select(Note::as_select())
                .load(conn)
        })
        .unwrap();
        assert_eq!(loaded.len(), ROWS as usize);
        assert!(loaded
            .iter()
            .all(|n| n.body.starts_with(&format!("tenant {tenant} "))));
        assert_eq!(loaded.iter().filter(|n| n.extra.is_some()).count(), 150);
    }
});

backend_tests!(
    sealed_columns_name_the_row_that_does_not_open,
    |db, conn| {
        create_table(&db, conn);
        let ring = tenant_keyring();
        let rows: Vec<SealedNote> = (1..=5)
            .map(|id| SealedNote {
                id,
                tenant: 0,
                body: ring.seal(&format!("body {id}")).unwrap(),
                extra: None,
            })
            .collect();
        diesel::insert_into(notes::table)
            .values(&rows)
            .execute(conn)
            .unwrap();
        // Corrupt row 4's body.
        let mut bytes = rows[3].body.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        diesel::update(notes::table.find(4))
            .set(notes::body.eq(Sealed::<NoteBody>::from_bytes(bytes)))
            .execute(conn)
            .unwrap();

        let loaded: Vec<SealedNote> = notes::table
            .select(SealedNote::as_select())
            .order(notes::id)
            .load(conn)
            .unwrap();
        let failed: Vec<(i32, DecryptErrorKind)> = loaded
            .iter()
            .filter_map(|n| {
                ring.open::<_, String>(&n.body)
                    .err()
                    .map(|e| (n.id, e.kind))
            })
            .collect();
        assert_eq!(failed, [(4, DecryptErrorKind::AuthenticationFailed)]);
    }
);

#[test]
fn scopes_nest_and_are_restored_after_a_panic() {
    let a = tenant_keyring();
    let b = tenant_keyring();
    let current = || fieldseal::current_keyring().ok();
    let is =
        |k: Option<Arc<Keyring>>, want: &Arc<Keyring>| k.is_some_and(|k| Arc::ptr_eq(&k, want));
    fieldseal::with_keyring(&a, || {
        assert!(is(current(), &a));
        fieldseal::with_keyring(&b, || assert!(is(current(), &b)));
        assert!(is(current(), &a));
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fieldseal::with_keyring(&b, || panic!("inside the scope"))
        }));
        assert!(panicked.is_err());
        assert!(is(current(), &a), "the outer scope is back after a panic");
    });
    // Another thread does not see this thread's scope.
    fieldseal::with_keyring(&a, || {
        std::thread::scope(|s| {
            s.spawn(|| {
                let seen = fieldseal::current_keyring().ok();
                assert!(!is(seen, &a));
            });
        });
    });
}

/// `decrypt_error` finds the reason inside Diesel's wrapper, whose own
/// message names only the field.
#[cfg(feature = "sqlite")]
#[test]
fn decrypt_error_looks_through_diesel() {
    let db = TestDb::sqlite();
    let conn = &mut SqliteConnection::establish(&db.url).unwrap();
    create_table(&db, conn);
    let ring = tenant_keyring();
    fieldseal::with_keyring(&ring, || {
        diesel::insert_into(notes::table)
            .values(Note {
                id: 1,
                tenant: 0,
                body: Encrypted::new("x".into()),
                extra: Encrypted::new(None),
            })
            .execute(conn)
    })
    .unwrap();
    let other = tenant_keyring();
    let err = fieldseal::with_keyring(&other, || {
        notes::table.select(Note::as_select()).first(conn)
    })
    .map(|_| ())
    .unwrap_err();
    let found = fieldseal::decrypt_error(&err).expect("a decryption error");
    assert_eq!(found.context, "notes.body");
}
