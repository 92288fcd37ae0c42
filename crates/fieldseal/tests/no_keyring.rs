//! With no keyring in scope and none installed, writing and reading an
//! `Encrypted` column fail with one clear, findable error. Its own test
//! binary: no test here ever installs a keyring.

mod support;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use fieldseal::{decrypt_error, DecryptErrorKind, Encrypted, Keyring, Sealed};
use support::backend_tests;

diesel::table! {
    items (id) {
        id -> Integer,
        secret -> Binary,
    }
}

fieldseal::context!(ItemSecret = "items.secret");

backend_tests!(missing_keyring_is_one_clear_error, |db, conn| {
    conn.batch_execute(&format!(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, secret {} NOT NULL)",
        db.binary()
    ))
    .unwrap();
    assert!(fieldseal::current_keyring().is_err());

    // Writing: the error says what to do.
    let err = diesel::insert_into(items::table)
        .values((
            items::id.eq(1),
            items::secret.eq(Encrypted::<String, ItemSecret>::new("x".into())),
        ))
        .execute(conn)
        .unwrap_err();
    let message = format!("{err}");
    assert!(message.contains("no keyring is in scope"), "{message}");
    assert!(message.contains("with_keyring"), "{message}");

    // Reading a value stored through an explicit keyring.
    let ring = Keyring::generate();
    let sealed: Sealed<ItemSecret> = ring.seal("stored").unwrap();
    diesel::insert_into(items::table)
        .values((items::id.eq(1), items::secret.eq(&sealed)))
        .execute(conn)
        .unwrap();
    let err = items::table
        .select(items::secret)
        .first::<Encrypted<String, ItemSecret>>(conn)
        .map(|_| ())
        .unwrap_err();
    let found = decrypt_error(&err).expect("the missing keyring is findable");
    assert_eq!(found.kind, DecryptErrorKind::NoKeyring);
    assert_eq!(found.context, "items.secret");
    assert_eq!(
        found.to_string(),
        "cannot decrypt items.secret: no keyring is in scope (wrap the query in \
         fieldseal::with_keyring, or call fieldseal::install_keyring first)"
    );
});
