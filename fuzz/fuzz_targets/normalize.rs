//! The blind-index normalizer on any text (invalid UTF-8 is replaced, so
//! every input is text).
//!
//! Asserts: no panic; the result is what the documented steps give (NFKC,
//! Unicode default case folding, NFKC, trim), so the ASCII fast path agrees
//! with them on every input; it has no surrounding white space and is in
//! NFKC; normalizing is idempotent, so a value and its normalized form
//! have the same blind index.

#![no_main]

use fieldseal::{normalize, Keyring};
use fieldseal_fuzz::{keyring, Col};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;

fn ring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(keyring)
}

/// Version 1 of the normalization, step by step as documented.
fn documented(value: &str) -> String {
    let nfkc: String = value.nfkc().collect();
    let folded = caseless::default_case_fold_str(&nfkc);
    let again: String = folded.nfkc().collect();
    again.trim().to_owned()
}

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data);
    let once = normalize(&value);
    assert_eq!(
        once,
        documented(&value),
        "differs from the documented steps"
    );
    assert_eq!(once.trim(), once, "surrounding white space kept");
    assert!(unicode_normalization::is_nfkc(&once), "not NFKC");
    let twice = normalize(&once);
    assert_eq!(
        twice, once,
        "not idempotent: {value:?} -> {once:?} -> {twice:?}"
    );
    assert_eq!(
        ring().blind_index::<Col>(&value).expect("an index key"),
        ring().blind_index::<Col>(&once).expect("an index key"),
    );
});
