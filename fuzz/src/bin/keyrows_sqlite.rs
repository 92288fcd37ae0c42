//! Cross-checks the `key_rows` hook against the real thing: every input
//! given (files, or directories of them, e.g. `corpus/key_rows`) is
//! written into an in-memory SQLite key store and unlocked there with
//! `KeyStore::unlock`, and unlocked by `fieldseal::fuzzing::unlock_rows`;
//! both must say the same (the same keys, or the same error).
//!
//! `cargo +nightly fuzz build` builds it (with `--cfg fuzzing`); run it
//! from `fuzz/` as `target/<triple>/release/keyrows-sqlite corpus/key_rows`.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Integer, Nullable, Text};
use fieldseal::fuzzing::{unlock_rows, KeyRowIn, KeyringRowIn};
use fieldseal::{Error, KeyStore, Keyring, MasterSecret, SecretKey};
use fieldseal_fuzz::{Col, KeyRowsInput, MASTER};
use std::path::PathBuf;

fn real_unlock(row: &KeyringRowIn, rows: &[KeyRowIn]) -> Result<Keyring, Error> {
    let mut conn = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
    KeyStore::install_schema(&mut conn)?;
    diesel::sql_query(
        "INSERT INTO fieldseal_keyring (id, kdf_salt, kdf_m_cost, kdf_t_cost, kdf_p_cost, \
         key_check, created_at, keyring_id, version, key_list_mac) \
         VALUES (1, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
    )
    .bind::<Binary, _>(row.kdf_salt.clone())
    .bind::<Integer, _>(row.kdf_m_cost)
    .bind::<Integer, _>(row.kdf_t_cost)
    .bind::<Integer, _>(row.kdf_p_cost)
    .bind::<Binary, _>(row.key_check.clone())
    .bind::<Nullable<Binary>, _>(row.keyring_id.clone())
    .bind::<BigInt, _>(row.version)
    .bind::<Nullable<Binary>, _>(row.key_list_mac.clone())
    .execute(&mut conn)?;
    for r in rows {
        diesel::sql_query(
            "INSERT INTO fieldseal_keys (purpose, id, wrapped, state, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind::<Text, _>(r.purpose.clone())
        .bind::<BigInt, _>(r.id)
        .bind::<Binary, _>(r.wrapped.clone())
        .bind::<Text, _>(r.state.clone())
        .bind::<BigInt, _>(r.created_at)
        .execute(&mut conn)?;
    }
    KeyStore::unlock(
        &mut conn,
        &MasterSecret::Key(SecretKey::from_bytes(&mut MASTER.to_owned())),
    )
}

fn same(a: &Keyring, b: &Keyring) -> bool {
    let probe = |from: &Keyring, to: &Keyring| {
        from.seal::<Col, _>("probe")
            .ok()
            .and_then(|s| to.open::<Col, String>(&s).ok())
            .as_deref()
            == Some("probe")
    };
    a.key_ids().eq(b.key_ids())
        && a.active_key_id() == b.active_key_id()
        && a.index_version() == b.index_version()
        && a.index_version_count() == b.index_version_count()
        && probe(a, b)
        && probe(b, a)
        && (1..=a.index_version().unwrap_or(0)).all(|v| {
            a.blind_index_version::<Col>(v, "probe") == b.blind_index_version::<Col>(v, "probe")
        })
}

fn main() {
    let mut files: Vec<PathBuf> = Vec::new();
    for arg in std::env::args_os().skip(1) {
        let path = PathBuf::from(arg);
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&path)
                .expect("readable directory")
                .map(|e| e.expect("entry").path())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path);
        }
    }
    let (mut agreed, mut unlocked, mut differed) = (0, 0, 0);
    for file in &files {
        let data = std::fs::read(file).expect("readable file");
        let input = KeyRowsInput::decode(&data);
        let rows: Vec<KeyRowIn> = input.key_rows().into_iter().map(|(r, _)| r).collect();
        let row = input.keyring_row(&rows);
        let hook = unlock_rows(&MASTER, &row, &rows);
        let real = real_unlock(&row, &rows);
        let ok = match (&hook, &real) {
            (Ok(a), Ok(b)) => {
                unlocked += 1;
                same(a, b)
            }
            (Err(a), Err(b)) => a.to_string() == b.to_string(),
            _ => false,
        };
        if ok {
            agreed += 1;
        } else {
            differed += 1;
            eprintln!(
                "{}: hook says {:?}, KeyStore::unlock says {:?}",
                file.display(),
                hook.map(drop),
                real.map(drop)
            );
        }
    }
    println!("{agreed} inputs agree ({unlocked} unlock), {differed} differ");
    if differed > 0 || files.is_empty() {
        std::process::exit(1);
    }
}
