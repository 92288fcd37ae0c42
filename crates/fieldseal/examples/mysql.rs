//! fieldseal on MySQL or MariaDB: envelope mode and the explicit `Sealed`
//! column type.
//!
//! The keys live in the database, wrapped under a master key derived from
//! a passphrase (the key store). A table of your own (`customers`) has an
//! encrypted email that is searchable and unique through its blind index,
//! and an encrypted phone number that may be NULL. The code holds the
//! keyring and seals and opens each value itself, so when one stored value
//! has been altered it can say which row it is in.
//!
//! Run it against a database you may create tables in:
//!
//! ```sh
//! mysql -uroot -e 'CREATE DATABASE fieldseal_example'
//! DATABASE_URL=mysql://root@127.0.0.1:3306/fieldseal_example \
//!     cargo run -p fieldseal --features mysql --example mysql
//! ```
//!
//! The master secret comes from `FIELDSEAL_MASTER_KEY`, `FIELDSEAL_KEY_FILE`
//! or `FIELDSEAL_PASSPHRASE`; with none of them set the example uses a
//! fixed demo passphrase, which is only fit for a demo. The key store's two
//! tables stay in the database after the run (that is where the keys
//! live); `customers` is dropped.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use fieldseal::{
    decrypt_error, EnvSource, Error as SealError, KdfParams, KeyStore, Keyring, MasterKeySource,
    MasterSecret, Passphrase, Sealed,
};
use std::error::Error;
use std::sync::Arc;

diesel::table! {
    customers (id) {
        id -> Integer,
        email -> Binary,
        email_bidx -> Binary,
        phone -> Nullable<Binary>,
    }
}

fieldseal::context!(CustomerEmail = "customers.email");
fieldseal::context!(CustomerPhone = "customers.phone");

/// The explicit form: the fields hold ciphertext. Loading such a row never
/// decrypts anything, so it never fails on an altered value.
#[derive(Insertable, Queryable, Selectable)]
#[diesel(table_name = customers)]
struct CustomerRow {
    id: i32,
    email: Sealed<CustomerEmail>,
    email_bidx: Vec<u8>,
    phone: Option<Sealed<CustomerPhone>>,
}

/// The same table read through the transparent form, for comparison: it
/// decrypts while loading, with the keyring in scope.
#[derive(Queryable, Selectable)]
#[diesel(table_name = customers)]
struct Customer {
    id: i32,
    #[diesel(deserialize_as = fieldseal::Encrypted<String, CustomerEmail>)]
    email: String,
}

// Column sizes: a ciphertext is the plaintext plus 33 bytes. Emails are at
// most 254 bytes, phone numbers at most 32; a blind index is 16 bytes. The
// email is unique, so its blind index gets a unique index.
const CREATE_TABLE: &str = "CREATE TABLE customers (
    id INTEGER NOT NULL PRIMARY KEY,
    email VARBINARY(287) NOT NULL,
    email_bidx BINARY(16) NOT NULL,
    phone VARBINARY(65) NULL,
    UNIQUE KEY customers_email_bidx (email_bidx)
)";

/// For this example only. A real application never has its passphrase in
/// its source: it comes from the environment, a file or a prompt.
const DEMO_PASSPHRASE: &str = "demo only: not a secret";

fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| {
        "DATABASE_URL is not set: point it at a MySQL or MariaDB database you may \
         create tables in, e.g. mysql://root@127.0.0.1:3306/fieldseal_example"
    })?;
    let mut conn = MysqlConnection::establish(&url)?;

    // The key store: two tables, created if missing. A migration of your
    // own can hold the same DDL instead: fieldseal::schema_sql(SqlDialect::Mysql).
    KeyStore::install_schema(&mut conn)?;

    // The master secret: from the environment if configured, else the
    // demo passphrase.
    let secret = match EnvSource.master_secret()? {
        Some(secret) => secret,
        None => {
            println!("No FIELDSEAL_PASSPHRASE or master key set: using the demo passphrase.");
            MasterSecret::Passphrase(Passphrase::new(DEMO_PASSPHRASE.to_owned()))
        }
    };

    // Unlock the keys, or create them on the first run. Argon2id with the
    // default parameters (19 MiB, 2 iterations) takes a moment on purpose.
    let (keyring, created) = KeyStore::open_or_create(&mut conn, &secret, KdfParams::default())
        .map_err(|e| match e {
            SealError::WrongMasterKey => format!(
                "{e}: this database already has a key store, made with another secret \
                 (drop fieldseal_keyring and fieldseal_keys to start over)"
            ),
            other => other.to_string(),
        })?;
    println!(
        "{} the key store: data key {} seals new values.",
        if created { "Created" } else { "Unlocked" },
        keyring.active_key_id()
    );

    conn.batch_execute(CREATE_TABLE).map_err(|e| {
        format!("cannot create table customers ({e}); drop it or use another database")
    })?;
    println!("Created table customers.");
    let result = demo(&mut conn, Arc::new(keyring));
    // Dropped whether the demo worked or not, so it can run again.
    conn.batch_execute("DROP TABLE customers")?;
    println!("Dropped table customers.");
    result
}

fn demo(conn: &mut MysqlConnection, keyring: Arc<Keyring>) -> Result<(), Box<dyn Error>> {
    let people = [
        (1, "ada@example.org", Some("+44 20 7946 0001")),
        (2, "grace@example.org", None),
        (3, "zoe.muller@example.org", Some("+49 30 901820")),
    ];
    for (id, email, phone) in people {
        // seal::<C, _> takes C from the field's type: Sealed<CustomerEmail>.
        let row = CustomerRow {
            id,
            email: keyring.seal(email)?,
            email_bidx: keyring.blind_index::<CustomerEmail>(email)?.to_vec(),
            phone: phone.map(|p| keyring.seal(p)).transpose()?,
        };
        diesel::insert_into(customers::table)
            .values(&row)
            .execute(conn)?;
    }
    println!("Inserted {} customers.", people.len());

    // The unique index on the blind index refuses a second customer with
    // the same email, after normalization, without the database ever
    // seeing an email.
    let again = "  ADA@Example.org";
    let duplicate = CustomerRow {
        id: 4,
        email: keyring.seal(again)?,
        email_bidx: keyring.blind_index::<CustomerEmail>(again)?.to_vec(),
        phone: None,
    };
    match diesel::insert_into(customers::table)
        .values(&duplicate)
        .execute(conn)
    {
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            println!("A second customer with email \"{again}\" was refused by the unique index.")
        }
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("the duplicate email was accepted".into()),
    }

    // Search by email. blind_indexes gives the index under every index-key
    // version the keyring holds, so a lookup keeps working while the index
    // key rotates (today there is one version).
    let wanted = keyring.blind_indexes::<CustomerEmail>("Grace@Example.org");
    let grace: CustomerRow = customers::table
        .filter(customers::email_bidx.eq_any(wanted))
        .select(CustomerRow::as_select())
        .first(conn)?;
    let email: String = keyring.open(&grace.email)?;
    // A NULL phone is None: there is nothing to open.
    let phone: Option<String> = grace.phone.as_ref().map(|p| keyring.open(p)).transpose()?;
    println!(
        "Search for \"Grace@Example.org\" found customer {}: {email}, phone {phone:?}.",
        grace.id
    );

    // The same keyring can also be put in scope for the transparent form.
    let all: Vec<Customer> = fieldseal::with_keyring(&keyring, || {
        customers::table
            .select(Customer::as_select())
            .order(customers::id)
            .load(conn)
    })?;
    let listed: Vec<String> = all
        .iter()
        .map(|c| format!("{} {}", c.id, c.email))
        .collect();
    println!("Loaded through Encrypted: {}.", listed.join(", "));

    // Tamper: someone with write access flips one bit of customer 2's
    // stored email, inside the encrypted part (after the 17-byte header).
    conn.batch_execute(
        "UPDATE customers
         SET email = CONCAT(LEFT(email, 20), CHAR(ASCII(SUBSTRING(email, 21, 1)) ^ 1),
                            SUBSTRING(email, 22))
         WHERE id = 2",
    )?;
    println!("Changed one byte of customer 2's stored email.");

    // Through Encrypted, the whole query fails: decrypt_error finds the
    // reason and the column inside Diesel's error, but not the row.
    let err = match fieldseal::with_keyring(&keyring, || {
        customers::table
            .select(Customer::as_select())
            .order(customers::id)
            .load(conn)
    }) {
        Ok(_) => return Err("the altered value was accepted".into()),
        Err(err) => err,
    };
    let decrypt = decrypt_error(&err).ok_or("not a decryption error")?;
    println!("Loading through Encrypted failed as a whole: {decrypt}");

    // Which row failed? Load Sealed values (this never fails on a bad
    // value) and open them one by one.
    let rows: Vec<CustomerRow> = customers::table
        .select(CustomerRow::as_select())
        .order(customers::id)
        .load(conn)?;
    let mut failed = Vec::new();
    for row in &rows {
        match keyring.open::<_, String>(&row.email) {
            Ok(_) => {}
            Err(e) => {
                println!("  customer {}: {:?} in {}", row.id, e.kind, e.context);
                failed.push(row.id);
            }
        }
    }
    println!(
        "Opened {} of {} customers one by one; customer(s) {failed:?} did not open.",
        rows.len() - failed.len(),
        rows.len()
    );
    if failed != [2] {
        return Err("expected exactly customer 2 to fail".into());
    }
    Ok(())
}
