//! fieldseal on SQLite: the transparent `Encrypted` column type.
//!
//! A table of your own (`patients`) with an encrypted, searchable name and
//! an encrypted note that may be NULL. The keyring is a fresh random one,
//! put in scope with `with_keyring`; the model uses both field forms:
//! plain `String` fields converted through `Encrypted` by
//! `#[diesel(serialize_as/deserialize_as)]`, and `Encrypted` fields
//! themselves. At the end one stored byte is changed behind the
//! library's back, and the error is found with `decrypt_error`.
//!
//! Run it (in memory, or on the SQLite file named by DATABASE_URL):
//!
//! ```sh
//! cargo run -p fieldseal --features sqlite --example sqlite
//! DATABASE_URL=/tmp/demo.db cargo run -p fieldseal --features sqlite --example sqlite
//! ```

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Binary, Integer};
use fieldseal::{decrypt_error, DecryptErrorKind, Encrypted, Keyring};
use std::error::Error;
use std::sync::Arc;

diesel::table! {
    patients (id) {
        id -> Integer,
        // Ciphertext: BLOB here, VARBINARY on MySQL, BYTEA on PostgreSQL.
        name -> Binary,
        // The 16-byte blind index of the name, for WHERE name_bidx = ?.
        name_bidx -> Binary,
        // A nullable encrypted column: NULL stays NULL, it is not encrypted.
        note -> Nullable<Binary>,
    }
}

// One context per encrypted column. It is authenticated with every value,
// so a ciphertext copied into another column does not open there.
fieldseal::context!(PatientName = "patients.name");
fieldseal::context!(PatientNote = "patients.note");

/// Writing, first form: plain fields, sealed through `Encrypted` by Diesel.
#[derive(Insertable)]
#[diesel(table_name = patients)]
struct NewPatient {
    id: i32,
    #[diesel(serialize_as = Encrypted<String, PatientName>)]
    name: String,
    name_bidx: Vec<u8>,
    #[diesel(serialize_as = Encrypted<Option<String>, PatientNote>)]
    note: Option<String>,
}

/// Reading, first form: plain fields, opened through `Encrypted`.
#[derive(Queryable, Selectable)]
#[diesel(table_name = patients)]
struct Patient {
    id: i32,
    #[diesel(deserialize_as = Encrypted<String, PatientName>)]
    name: String,
    #[diesel(deserialize_as = Encrypted<Option<String>, PatientNote>)]
    note: Option<String>,
}

/// Second form: `Encrypted` fields themselves. They deref to the
/// plaintext, and their `Debug` never shows it.
#[derive(Queryable, Selectable, Debug)]
#[diesel(table_name = patients)]
struct PatientFields {
    id: i32,
    name: Encrypted<String, PatientName>,
    note: Encrypted<Option<String>, PatientNote>,
}

const CREATE_TABLE: &str = "CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    name BLOB NOT NULL,
    name_bidx BLOB NOT NULL,
    note BLOB
);
-- Not unique: two patients may share a name.
CREATE INDEX patients_name_bidx ON patients (name_bidx);";

fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| ":memory:".to_owned());
    let mut conn = SqliteConnection::establish(&url)?;
    conn.batch_execute(CREATE_TABLE).map_err(|e| {
        format!("cannot create table patients in {url} ({e}); drop it or use another database")
    })?;
    println!("Created table patients in {url}.");

    // A random keyring: data key 1 and blind-index key 1, gone when the
    // process ends. Production code uses Keyring::from_env() or the key
    // store (see the mysql and postgres examples).
    let keyring = Arc::new(Keyring::generate());

    // Every Encrypted value sealed or opened inside the closure uses this
    // keyring (on this thread only).
    let result = fieldseal::with_keyring(&keyring, || demo(&mut conn, &keyring));

    // Outside the scope no keyring is in effect: reading fails, and says so.
    if result.is_ok() {
        show_missing_keyring(&mut conn)?;
    }

    // Dropped whether the demo worked or not, so it can run again.
    conn.batch_execute("DROP TABLE patients")?;
    println!("Dropped table patients.");
    result
}

fn demo(conn: &mut SqliteConnection, keyring: &Keyring) -> Result<(), Box<dyn Error>> {
    // Insert three patients; one without a note (NULL).
    let people = [
        (1, "Ada Lovelace", Some("allergic to penicillin")),
        (2, "Grace Hopper", None),
        (3, "Zoë Müller", Some("prefers mornings")),
    ];
    let rows: Vec<NewPatient> = people
        .iter()
        .map(|&(id, name, note)| {
            Ok(NewPatient {
                id,
                name: name.to_owned(),
                // The blind index is computed by your code and stored
                // next to the ciphertext.
                name_bidx: keyring.blind_index::<PatientName>(name)?.to_vec(),
                note: note.map(str::to_owned),
            })
        })
        .collect::<Result<_, fieldseal::Error>>()?;
    diesel::insert_into(patients::table)
        .values(rows)
        .execute(conn)?;
    println!("Inserted {} patients.", people.len());

    // The database holds ciphertext only: the plaintext plus 33 bytes.
    let stored: Vec<u8> = patients::table.find(1).select(patients::name).first(conn)?;
    println!(
        "Stored name of patient 1: {} bytes of ciphertext for a {}-byte name.",
        stored.len(),
        people[0].1.len()
    );

    // Equality search through the blind index. Values are normalized
    // (NFKC, case folding, surrounding spaces trimmed) before hashing, so
    // "  ZOË MÜLLER " finds "Zoë Müller". There is no LIKE or range search.
    let wanted = keyring.blind_index::<PatientName>("  ZOË MÜLLER ")?;
    let found: Patient = patients::table
        .filter(patients::name_bidx.eq(wanted.to_vec()))
        .select(Patient::as_select())
        .first(conn)?;
    println!(
        "Search for \"  ZOË MÜLLER \" found patient {}: {}.",
        found.id, found.name
    );

    // A NULL column reads back as None.
    let grace: Patient = patients::table
        .find(2)
        .select(Patient::as_select())
        .first(conn)?;
    assert_eq!(grace.note, None);
    println!("Patient {} ({}) has no note: None.", grace.id, grace.name);

    // The second form: update through an Encrypted value, read Encrypted
    // fields back. Debug output is redacted.
    diesel::update(patients::table.find(2))
        .set(
            patients::note.eq(Encrypted::<Option<String>, PatientNote>::new(Some(
                "new note".to_owned(),
            ))),
        )
        .execute(conn)?;
    let fields: PatientFields = patients::table
        .find(2)
        .select(PatientFields::as_select())
        .first(conn)?;
    assert_eq!(fields.note.as_deref(), Some("new note"));
    println!(
        "Patient {} ({}) now has a note; its Debug output is {:?}.",
        fields.id, *fields.name, fields.note
    );

    // Tamper: flip one bit of patient 3's stored name with raw SQL, as
    // someone with write access to the database could.
    let mut bytes: Vec<u8> = patients::table.find(3).select(patients::name).first(conn)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    diesel::sql_query("UPDATE patients SET name = ? WHERE id = ?")
        .bind::<Binary, _>(bytes)
        .bind::<Integer, _>(3)
        .execute(conn)?;
    println!("Changed one byte of patient 3's stored name.");

    // A query that reads the altered value fails as a whole. Diesel's
    // message names only the field; decrypt_error finds the reason.
    let err = match patients::table
        .select(Patient::as_select())
        .order(patients::id)
        .load(conn)
    {
        Ok(_) => return Err("the altered value was accepted".into()),
        Err(err) => err,
    };
    let decrypt = decrypt_error(&err).ok_or("not a decryption error")?;
    assert_eq!(decrypt.kind, DecryptErrorKind::AuthenticationFailed);
    println!("Loading all patients failed: {decrypt}");
    println!(
        "  kind: {:?}, column: {}. To name the row, load Sealed values and \
         open them one by one (the mysql example does).",
        decrypt.kind, decrypt.context
    );
    Ok(())
}

/// Reading an encrypted column with no keyring in scope and none
/// installed is an error of kind `NoKeyring`, never a panic.
fn show_missing_keyring(conn: &mut SqliteConnection) -> Result<(), Box<dyn Error>> {
    let err = match patients::table
        .find(1)
        .select(Patient::as_select())
        .first(conn)
    {
        Ok(_) => return Err("read without a keyring".into()),
        Err(err) => err,
    };
    let decrypt = decrypt_error(&err).ok_or("not a decryption error")?;
    assert_eq!(decrypt.kind, DecryptErrorKind::NoKeyring);
    println!("Outside with_keyring: {decrypt}");
    Ok(())
}
