//! Canary: after 1,000 known names go in through the column types, neither
//! a `mysqldump` of the database nor the raw SQLite file contains any of
//! them, in any encoding we could think of.

// Both canaries share their helpers; they run with both backends on (the
// workspace's all-features run).
#![cfg(all(feature = "mysql", feature = "sqlite"))]

mod support;
use base64::Engine as _;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use fieldseal::Encrypted;
use support::{install_test_keyring, TestDb};

diesel::table! {
    people (id) {
        id -> Integer,
        name -> Binary,
    }
}

fieldseal::context!(PeopleName = "people.name");

#[derive(Insertable)]
#[diesel(table_name = people)]
struct NewPerson {
    id: i32,
    #[diesel(serialize_as = Encrypted<String, PeopleName>)]
    name: String,
}

fn canary_names() -> Vec<String> {
    (0..1000)
        .map(|i| format!("Canary Müller-Øster {i:04} «ZEBRA»"))
        .collect()
}

/// Every encoding of `name` that a leak could take.
fn encodings(name: &str) -> Vec<(&'static str, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
    vec![
        ("UTF-8", name.as_bytes().to_vec()),
        ("base64", b64.encode(name).into_bytes()),
        ("hex", hex.clone().into_bytes()),
        ("HEX", hex.to_uppercase().into_bytes()),
        ("UTF-16LE", utf16),
        // The name without its ending, in case values are stored split.
        (
            "prefix",
            name.split(" «").next().unwrap_or(name).as_bytes().to_vec(),
        ),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_canary(what: &str, bytes: &[u8]) {
    assert!(
        bytes.len() > 1000 * 50,
        "{what} is suspiciously small: {} bytes",
        bytes.len()
    );
    // Sanity check of the checker itself: the column's context is stored in
    // no row, but the table name is in every dump.
    assert!(
        contains(bytes, b"people"),
        "{what} does not look like a dump of the table"
    );
    for name in canary_names().iter().step_by(7) {
        for (encoding, needle) in encodings(name) {
            assert!(
                !contains(bytes, &needle),
                "{what} contains a name in {encoding}"
            );
        }
    }
    assert!(
        !contains(bytes, "Müller".as_bytes()),
        "{what} contains plaintext"
    );
}

#[test]
fn mysqldump_holds_no_plaintext() {
    install_test_keyring();
    let Some(db) = TestDb::mysql() else { return };
    let conn = &mut MysqlConnection::establish(&db.url).unwrap();
    conn.batch_execute(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name VARBINARY(255) NOT NULL)",
    )
    .unwrap();
    for (i, name) in canary_names().into_iter().enumerate() {
        diesel::insert_into(people::table)
            .values(NewPerson { id: i as i32, name })
            .execute(conn)
            .unwrap();
    }
    assert_no_canary("mysqldump, plain and --hex-blob", &db.dump());
    // And the data is still there and readable through the type.
    let names: Vec<Encrypted<String, PeopleName>> = people::table
        .select(people::name)
        .order(people::id)
        .load(conn)
        .unwrap();
    assert_eq!(names.len(), 1000);
    assert_eq!(names[42].as_str(), canary_names()[42]);
}

#[test]
fn sqlite_file_holds_no_plaintext() {
    install_test_keyring();
    let db = TestDb::sqlite();
    {
        let conn = &mut SqliteConnection::establish(&db.url).unwrap();
        conn.batch_execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name BLOB NOT NULL)")
            .unwrap();
        for (i, name) in canary_names().into_iter().enumerate() {
            diesel::insert_into(people::table)
                .values(NewPerson { id: i as i32, name })
                .execute(conn)
                .unwrap();
        }
    }
    assert_no_canary("the SQLite file", &db.dump());
}
