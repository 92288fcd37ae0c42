//! fieldseal on PostgreSQL: single-key mode, and a keyring per tenant.
//!
//! One table (`contacts`) is shared by two tenants, each with its own
//! keyring. Every query runs inside `with_keyring` with the keyring of the
//! tenant it serves, so the transparent `Encrypted` fields seal and open
//! with that tenant's keys, and a row sealed for tenant A does not open
//! for tenant B. The name is encrypted and searchable; the birth year is
//! an encrypted number that may be NULL.
//!
//! Tenant A's keyring comes from `FIELDSEAL_KEYS` and `FIELDSEAL_INDEX_KEY`
//! when they are set (single-key mode: the keys live in the environment,
//! not in the database); otherwise it is generated for this run. Generate
//! keys with `openssl rand -base64 32`:
//!
//! ```sh
//! psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE fieldseal_example'
//! export FIELDSEAL_KEYS="1:$(openssl rand -base64 32)"
//! export FIELDSEAL_INDEX_KEY="$(openssl rand -base64 32)"
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/fieldseal_example \
//!     cargo run -p fieldseal --features postgres --example postgres
//! ```

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Integer;
use fieldseal::{decrypt_error, DecryptErrorKind, Encrypted, Keyring};
use std::error::Error;
use std::sync::Arc;

diesel::table! {
    contacts (id) {
        id -> Integer,
        tenant -> Text,
        name -> Binary,
        name_bidx -> Binary,
        birth_year -> Nullable<Binary>,
    }
}

fieldseal::context!(ContactName = "contacts.name");
fieldseal::context!(ContactBirthYear = "contacts.birth_year");

/// `Encrypted` fields: they hold the plaintext in memory and seal it with
/// the keyring in scope when Diesel writes them.
#[derive(Insertable)]
#[diesel(table_name = contacts)]
struct NewContact {
    tenant: &'static str,
    name: Encrypted<String, ContactName>,
    name_bidx: Vec<u8>,
    // An i64 plaintext; None is stored as NULL.
    birth_year: Encrypted<Option<i64>, ContactBirthYear>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = contacts)]
struct Contact {
    id: i32,
    name: Encrypted<String, ContactName>,
    birth_year: Encrypted<Option<i64>, ContactBirthYear>,
}

/// A tenant and its keyring. A service would look the keyring up per
/// request; one with a single keyring for everything calls
/// `fieldseal::install_keyring` once at start-up instead.
struct Tenant {
    id: &'static str,
    keyring: Arc<Keyring>,
}

const CREATE_TABLE: &str = "CREATE TABLE contacts (
    id SERIAL PRIMARY KEY,
    tenant TEXT NOT NULL,
    name BYTEA NOT NULL,
    name_bidx BYTEA NOT NULL,
    birth_year BYTEA
);
CREATE INDEX contacts_tenant_name_bidx ON contacts (tenant, name_bidx);";

fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| {
        "DATABASE_URL is not set: point it at a PostgreSQL database you may create \
         tables in, e.g. postgres://postgres@127.0.0.1:5432/fieldseal_example"
    })?;
    let mut conn = PgConnection::establish(&url)?;

    let a_keyring = if std::env::var_os("FIELDSEAL_KEYS").is_some() {
        let keyring = Keyring::from_env()?;
        if keyring.index_version().is_none() {
            return Err("FIELDSEAL_KEYS is set but FIELDSEAL_INDEX_KEY is not: \
                        searching by name needs a blind-index key"
                .into());
        }
        println!(
            "Tenant A: keyring from FIELDSEAL_KEYS, data key {} seals new values.",
            keyring.active_key_id()
        );
        keyring
    } else {
        println!("Tenant A: FIELDSEAL_KEYS is not set, so a random keyring is used for this run.");
        Keyring::generate()
    };
    let a = Tenant {
        id: "a",
        keyring: Arc::new(a_keyring),
    };
    // Tenant B's keys would come from its own configuration; here they are
    // random. Both keyrings have a data key 1, as fresh keyrings do.
    let b = Tenant {
        id: "b",
        keyring: Arc::new(Keyring::generate()),
    };
    println!("Tenant B: a random keyring for this run.");

    conn.batch_execute(CREATE_TABLE).map_err(|e| {
        format!("cannot create table contacts ({e}); drop it or use another database")
    })?;
    println!("Created table contacts.");
    let result = demo(&mut conn, &a, &b);
    // Dropped whether the demo worked or not, so it can run again.
    conn.batch_execute("DROP TABLE contacts")?;
    println!("Dropped table contacts.");
    result
}

/// Adds a contact for `tenant`, sealed with its keyring; returns the id.
fn add(
    conn: &mut PgConnection,
    tenant: &Tenant,
    name: &str,
    birth_year: Option<i64>,
) -> Result<i32, Box<dyn Error>> {
    let row = NewContact {
        tenant: tenant.id,
        name: Encrypted::new(name.to_owned()),
        // Each tenant's blind-index key differs too: the same name has a
        // different index in each tenant.
        name_bidx: tenant.keyring.blind_index::<ContactName>(name)?.to_vec(),
        birth_year: Encrypted::new(birth_year),
    };
    let id = fieldseal::with_keyring(&tenant.keyring, || {
        diesel::insert_into(contacts::table)
            .values(&row)
            .returning(contacts::id)
            .get_result(conn)
    })?;
    Ok(id)
}

/// Finds `tenant`'s contacts named `name`, opened with its keyring.
fn find(
    conn: &mut PgConnection,
    tenant: &Tenant,
    name: &str,
) -> Result<Vec<Contact>, Box<dyn Error>> {
    let bidx = tenant.keyring.blind_index::<ContactName>(name)?.to_vec();
    let found = fieldseal::with_keyring(&tenant.keyring, || {
        contacts::table
            .filter(contacts::tenant.eq(tenant.id))
            .filter(contacts::name_bidx.eq(bidx))
            .select(Contact::as_select())
            .order(contacts::id)
            .load(conn)
    })?;
    Ok(found)
}

/// Loads contact `id` with `tenant`'s keyring, whoever it belongs to: what
/// a bug that forgets the tenant filter would do.
fn load_as(conn: &mut PgConnection, tenant: &Tenant, id: i32) -> QueryResult<Contact> {
    fieldseal::with_keyring(&tenant.keyring, || {
        contacts::table
            .find(id)
            .select(Contact::as_select())
            .first(conn)
    })
}

fn demo(conn: &mut PgConnection, a: &Tenant, b: &Tenant) -> Result<(), Box<dyn Error>> {
    let ada_a = add(conn, a, "Ada Lovelace", Some(1815))?;
    let grace_a = add(conn, a, "Grace Hopper", None)?;
    let ada_b = add(conn, b, "Ada Lovelace", Some(1990))?;
    println!("Inserted contacts {ada_a} and {grace_a} for tenant A, {ada_b} for tenant B.");

    // Search by name, in each tenant's own scope.
    for tenant in [a, b] {
        for contact in find(conn, tenant, "ada lovelace")? {
            println!(
                "Tenant {}: \"ada lovelace\" found contact {}: {}, born {:?}.",
                tenant.id.to_uppercase(),
                contact.id,
                *contact.name,
                *contact.birth_year
            );
        }
    }

    // A NULL birth year reads back as None.
    let grace = find(conn, a, "Grace Hopper")?
        .pop()
        .ok_or("Grace Hopper not found")?;
    assert_eq!(*grace.birth_year, None);
    println!(
        "Tenant A: contact {} ({}) has no birth year: {:?}.",
        grace.id, *grace.name, *grace.birth_year
    );

    // A row of tenant A read with tenant B's keyring does not open. When
    // the key ids match (fresh keyrings both seal with key 1) it is failed
    // authentication; a key id that B does not hold is UnknownKeyId.
    match load_as(conn, b, ada_a) {
        Ok(_) => return Err("tenant A's row opened with tenant B's keyring".into()),
        Err(err) => {
            let decrypt = decrypt_error(&err).ok_or("not a decryption error")?;
            println!(
                "Tenant B reading contact {ada_a} of tenant A: {:?} in {}.",
                decrypt.kind, decrypt.context
            );
        }
    }

    // Tamper: flip one bit of contact ada_a's stored name with raw SQL
    // (byte 20 counts from 0; the first 17 bytes are the header).
    diesel::sql_query(
        "UPDATE contacts SET name = set_byte(name, 20, get_byte(name, 20) # 1) WHERE id = $1",
    )
    .bind::<Integer, _>(ada_a)
    .execute(conn)?;
    println!("Changed one byte of contact {ada_a}'s stored name.");

    // Now it does not open for tenant A either: decrypt_error finds the
    // reason inside Diesel's error.
    let err = match find(conn, a, "Ada Lovelace") {
        Ok(_) => return Err("the altered value was accepted".into()),
        Err(err) => err,
    };
    let decrypt = err
        .downcast_ref::<diesel::result::Error>()
        .and_then(decrypt_error)
        .ok_or("not a decryption error")?;
    assert_eq!(decrypt.kind, DecryptErrorKind::AuthenticationFailed);
    println!("Tenant A searching \"Ada Lovelace\" again: {decrypt}");

    // Tenant B's rows are untouched.
    let still = find(conn, b, "Ada Lovelace")?;
    println!(
        "Tenant B still finds {} contact(s) named Ada Lovelace.",
        still.len()
    );
    Ok(())
}
