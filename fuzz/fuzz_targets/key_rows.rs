//! Opening untrusted key rows: a keyring row and key rows as a database
//! could hold them (altered, corrupt, hostile), unlocked by the same steps
//! as `KeyStore::unlock` (`fieldseal::fuzzing::unlock_rows`), with the
//! master key itself (no Argon2id runs; the stored parameters are still
//! checked).
//!
//! Asserts: no panic; the outcome is the one `KeyStore::unlock` documents,
//! check by check and in order (parameters, key check, key-list MAC,
//! purposes and ids, each wrapped key, a data key at all); an unlocked
//! keyring holds exactly the stored keys (highest data id active, highest
//! index version current), each of them the key that was wrapped; another
//! master key never unlocks.

#![no_main]

use fieldseal::fuzzing::{unlock_rows, KeyRowIn};
use fieldseal::{Keyring, SecretKey};
use fieldseal_fuzz::{Col, Expected, KeyRowsInput, MASTER, OTHER_MASTER};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;

fn key(b: u8) -> SecretKey {
    SecretKey::from_bytes(&mut [b; 32])
}

fuzz_target!(|data: &[u8]| {
    let input = KeyRowsInput::decode(data);
    let rows = input.key_rows();
    let plain: Vec<KeyRowIn> = rows.iter().map(|(r, _)| r.clone()).collect();
    let row = input.keyring_row(&plain);

    let result = unlock_rows(&MASTER, &row, &plain);
    let expected = Expected::of(&row, &rows);
    assert!(
        expected.matches(&result),
        "expected {expected:?}, got {result:?}"
    );
    assert!(
        unlock_rows(&OTHER_MASTER, &row, &plain).is_err(),
        "another master key unlocked the key table"
    );

    let Ok(keyring) = result else { return };
    let ids = |purpose: &str| -> BTreeSet<u32> {
        rows.iter()
            .filter(|(r, _)| r.purpose == purpose)
            .map(|(r, _)| u32::try_from(r.id).expect("unlocked ids fit"))
            .collect()
    };
    let (data_ids, index_ids) = (ids("data"), ids("index"));
    assert_eq!(
        keyring.key_ids().collect::<Vec<_>>(),
        data_ids.iter().copied().collect::<Vec<_>>()
    );
    assert_eq!(Some(keyring.active_key_id()), data_ids.last().copied());
    assert_eq!(keyring.index_version(), index_ids.last().copied());
    assert_eq!(keyring.index_version_count(), index_ids.len());
    for (r, b) in &rows {
        let (id, b) = (
            r.id as u32,
            b.expect("every row of an unlocked table unwrapped"),
        );
        if r.purpose == "data" {
            let alone = Keyring::new([(id, key(b))], []).expect("a data key");
            let sealed = alone.seal::<Col, _>("probe").expect("seals");
            assert_eq!(
                keyring.open::<Col, String>(&sealed).expect("opens"),
                "probe"
            );
        } else {
            let alone = Keyring::new([(1, key(0))], [(id, key(b))]).expect("a data key");
            assert_eq!(
                keyring.blind_index_version::<Col>(id, "probe"),
                Some(alone.blind_index::<Col>("probe").expect("an index key"))
            );
        }
    }
});
