//! Opening untrusted ciphertext: any bytes as a stored value of a column,
//! opened with a fixed keyring (data keys 1 and 2, 2 active) as `String`,
//! `Vec<u8>` and `i64`, and re-sealed (a rotation step); and the round
//! trip `open(seal(x)) == x` for any plaintext.
//!
//! The first byte picks the mode:
//! - 0, 3: the rest is a stored value (of `Col`; of `OtherCol` for 3);
//! - 1: a bit index (u16 LE), then a plaintext: round trip, re-seal from
//!   key 1 to key 2, another column, and one flipped bit of the sealed
//!   value, which must not open;
//! - 2: an i64 (LE): round trip as `i64`;
//! - 4: a bit index (u16 LE), then a plaintext, under a record's own key
//!   (per-user keys, format v2): round trip through `open_with`, another
//!   column, a flipped bit, and the key erased.
//!
//! Stored values are also opened with `open_with` and a set of record
//! keys (one live, one erased): a v2 value names its record key, and
//! opens only under it.
//!
//! Asserts: no panic; malformed values (short, unknown version) and
//! unknown key ids are reported as such, with the column; the three
//! plaintext types agree with one another; a re-seal never yields a value
//! that does not open to the same plaintext.

#![no_main]

use fieldseal::{
    Context, DecryptErrorKind, Error, Keyring, RecordKey, RecordKeys, Sealed, WrappedRecordKey,
    OVERHEAD,
};
use fieldseal_fuzz::{keyring, old_keyring, Col, OtherCol, Reader};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn ring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(keyring)
}

fn old_ring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(old_keyring)
}

/// A record key of the ring, and its wrapped copy.
fn record_key() -> &'static (RecordKey, WrappedRecordKey) {
    static KEY: OnceLock<(RecordKey, WrappedRecordKey)> = OnceLock::new();
    KEY.get_or_init(|| ring().new_record_key().expect("a record key"))
}

/// The record keys a page of rows would load: the live one, and one
/// erased reference (1).
fn loaded() -> &'static RecordKeys {
    static KEYS: OnceLock<RecordKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys = RecordKeys::new();
        keys.insert(ring().unwrap_record_key(&record_key().1).expect("unwraps"));
        keys.insert_erased(1);
        keys
    })
}

/// Opens stored bytes every way there is, and checks they agree.
fn open_stored<C: Context>(bytes: &[u8]) {
    let ring = ring();
    let sealed = Sealed::<C>::from_bytes(bytes.to_vec());
    let _ = format!("{sealed:?}");
    let as_bytes = ring.open::<C, Vec<u8>>(&sealed);
    let as_string = ring.open::<C, String>(&sealed);
    let as_i64 = ring.open::<C, i64>(&sealed);
    for err in [
        as_bytes.as_ref().err(),
        as_string.as_ref().err(),
        as_i64.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(err.context, C::NAME);
        let _ = err.to_string();
    }

    let header_ok = bytes.len() >= OVERHEAD && bytes[0] == 1;
    let key_id = header_ok.then(|| u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]));
    assert_eq!(sealed.key_id(), key_id);
    let record = (bytes.len() >= OVERHEAD + 4 && bytes[0] == 2).then(|| {
        let mut r = [0u8; 8];
        r.copy_from_slice(&bytes[1..9]);
        u64::from_be_bytes(r)
    });
    assert_eq!(sealed.record_key(), record);
    // With record keys loaded: a v1 value opens as with the ring; a v2
    // value by its own key only, erased when its key is.
    let with_keys = ring.open_with::<C, Vec<u8>>(loaded(), &sealed);
    match record {
        None => assert_eq!(
            with_keys.as_ref().map_err(|e| e.kind),
            as_bytes.as_ref().map_err(|e| e.kind)
        ),
        Some(1) => assert_eq!(with_keys.unwrap_err().kind, DecryptErrorKind::Erased(1)),
        Some(r) if r == record_key().0.reference() => {
            if let Ok(plain) = &with_keys {
                assert_eq!(plain.len(), bytes.len() - OVERHEAD - 4);
            }
        }
        Some(r) => assert_eq!(
            with_keys.unwrap_err().kind,
            DecryptErrorKind::UnknownRecordKey(r)
        ),
    }
    if let Some(r) = record {
        for err in [
            as_bytes.as_ref().err(),
            as_string.as_ref().err(),
            as_i64.as_ref().err(),
        ] {
            assert_eq!(
                err.expect("the ring alone opens no v2 value").kind,
                DecryptErrorKind::UnknownRecordKey(r)
            );
        }
    }
    match key_id {
        None if record.is_some() => {}
        None => {
            for kind in [
                &as_bytes.as_ref().map(drop),
                &as_string.as_ref().map(drop),
                &as_i64.as_ref().map(drop),
            ] {
                assert!(
                    matches!(kind, Err(e) if matches!(e.kind, DecryptErrorKind::Malformed(_))),
                    "{kind:?}"
                );
            }
        }
        Some(id) if !ring.has_key(id) => {
            let err = as_bytes.as_ref().expect_err("unknown key id opened");
            assert_eq!(err.kind, DecryptErrorKind::UnknownKeyId(id));
        }
        Some(_) => {}
    }
    match &as_bytes {
        Ok(plain) => {
            assert_eq!(plain.len(), bytes.len() - OVERHEAD);
            assert_eq!(
                as_string.as_ref().ok(),
                std::str::from_utf8(plain).ok().map(str::to_owned).as_ref()
            );
            assert_eq!(
                as_i64.as_ref().ok().copied(),
                <[u8; 8]>::try_from(plain.as_slice())
                    .ok()
                    .map(i64::from_be_bytes)
            );
        }
        Err(e) => {
            assert!(as_string.is_err() && as_i64.is_err());
            assert!(!matches!(e.kind, DecryptErrorKind::NoKeyring));
        }
    }

    match ring.reseal(&sealed) {
        Ok(None) => assert!(key_id == Some(ring.active_key_id()) || record.is_some()),
        Ok(Some(moved)) => {
            assert_ne!(key_id, Some(ring.active_key_id()));
            assert_eq!(moved.key_id(), Some(ring.active_key_id()));
            let plain = as_bytes
                .as_ref()
                .expect("only a value that opens is re-sealed");
            assert_eq!(
                &ring.open::<C, Vec<u8>>(&moved).expect("re-sealed opens"),
                plain
            );
        }
        Err(Error::Decrypt(e)) => {
            assert!(as_bytes.is_err());
            assert_eq!(e.context, C::NAME);
        }
        Err(e) => panic!("reseal failed with {e}"),
    }
}

fn round_trip(flip: u16, plain: &[u8]) {
    let ring = ring();
    let sealed = ring.seal::<Col, _>(plain).expect("seals");
    assert_eq!(sealed.as_bytes().len(), plain.len() + OVERHEAD);
    assert_eq!(sealed.key_id(), Some(ring.active_key_id()));
    assert_eq!(ring.open::<Col, Vec<u8>>(&sealed).expect("opens"), plain);
    if let Ok(text) = std::str::from_utf8(plain) {
        let sealed = ring.seal::<Col, _>(text).expect("seals");
        assert_eq!(ring.open::<Col, String>(&sealed).expect("opens"), text);
    }
    // Another column never opens it.
    let moved = Sealed::<OtherCol>::from_bytes(sealed.as_bytes().to_vec());
    assert_eq!(
        ring.open::<OtherCol, Vec<u8>>(&moved)
            .expect_err("opened in another column")
            .kind,
        DecryptErrorKind::AuthenticationFailed
    );
    // One flipped bit anywhere: never opens.
    let mut bytes = sealed.as_bytes().to_vec();
    let bit = usize::from(flip) % (bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
    assert!(
        ring.open::<Col, Vec<u8>>(&Sealed::from_bytes(bytes))
            .is_err(),
        "bit {bit} flipped, still opens"
    );
    // A rotation step: sealed under key 1, re-sealed under key 2, once.
    let old = old_ring().seal::<Col, _>(plain).expect("seals");
    let new = ring
        .reseal(&old)
        .expect("re-seals")
        .expect("key 1 is not active");
    assert_eq!(new.key_id(), Some(2));
    assert_eq!(ring.open::<Col, Vec<u8>>(&new).expect("opens"), plain);
    assert!(ring.reseal(&new).expect("re-seals").is_none());
    assert!(old_ring().open::<Col, Vec<u8>>(&new).is_err());
}

fn round_trip_own_key(flip: u16, plain: &[u8]) {
    let ring = ring();
    let (key, _) = record_key();
    let sealed = key.seal::<Col, _>(plain).expect("seals");
    assert_eq!(sealed.as_bytes().len(), plain.len() + OVERHEAD + 4);
    assert_eq!(sealed.record_key(), Some(key.reference()));
    assert_eq!(sealed.key_id(), None);
    assert_eq!(ring.open_with::<Col, Vec<u8>>(loaded(), &sealed).expect("opens"), plain);
    let moved = Sealed::<OtherCol>::from_bytes(sealed.as_bytes().to_vec());
    assert_eq!(
        ring.open_with::<OtherCol, Vec<u8>>(loaded(), &moved)
            .expect_err("opened in another column")
            .kind,
        DecryptErrorKind::AuthenticationFailed
    );
    let mut bytes = sealed.as_bytes().to_vec();
    let bit = usize::from(flip) % (bytes.len() * 8);
    bytes[bit / 8] ^= 1 << (bit % 8);
    assert!(
        ring.open_with::<Col, Vec<u8>>(loaded(), &Sealed::from_bytes(bytes))
            .is_err(),
        "bit {bit} flipped, still opens"
    );
    let mut erased = RecordKeys::new();
    erased.insert_erased(key.reference());
    assert_eq!(
        ring.open_with::<Col, Vec<u8>>(&erased, &sealed).unwrap_err().kind,
        DecryptErrorKind::Erased(key.reference())
    );
    // A rotation leaves the value alone.
    assert!(ring.reseal(&sealed).expect("nothing to do").is_none());
}

fn round_trip_i64(value: i64) {
    let ring = ring();
    let sealed = ring.seal::<Col, _>(&value).expect("seals");
    assert_eq!(ring.open::<Col, i64>(&sealed).expect("opens"), value);
    assert_eq!(
        ring.open::<Col, Vec<u8>>(&sealed).expect("opens"),
        value.to_be_bytes()
    );
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    match r.u8() % 5 {
        0 => open_stored::<Col>(r.rest()),
        1 => {
            let flip = r.u16();
            round_trip(flip, r.rest());
        }
        2 => round_trip_i64(r.i64()),
        4 => {
            let flip = r.u16();
            round_trip_own_key(flip, r.rest());
        }
        _ => open_stored::<OtherCol>(r.rest()),
    }
});
