//! `fieldseal adopt`'s decoding of a legacy value, as another application
//! stored it: plaintext, base64(IV ‖ AES-256-CBC) or a Fernet token.
//!
//! The first byte picks the scheme, the rest is the stored value. Asserts:
//! no panic on any bytes; plaintext opens exactly when it is UTF-8; and
//! (fourth scheme) any UTF-8 text encrypted the way the legacy apps did
//! opens to itself with both AES-CBC and Fernet.

#![no_main]

use base64::Engine as _;
use cbc::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use fieldseal_tool::app::adopt::Source;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const AES_KEY: [u8; 32] = [0x42; 32];
/// A fixed Fernet key (urlsafe base64 of 32 bytes).
const FERNET_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

fn aes() -> &'static Source {
    static S: OnceLock<Source> = OnceLock::new();
    S.get_or_init(|| Source::AesCbc(zeroize::Zeroizing::new(AES_KEY)))
}

fn fernet() -> &'static Source {
    static S: OnceLock<Source> = OnceLock::new();
    S.get_or_init(|| Source::Fernet(Box::new(fernet::Fernet::new(FERNET_KEY).unwrap())))
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, stored)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            let opened = Source::Plaintext.open(stored);
            assert_eq!(opened.is_ok(), std::str::from_utf8(stored).is_ok());
        }
        1 => {
            let _ = aes().open(stored);
        }
        2 => {
            let _ = fernet().open(stored);
        }
        _ => {
            let Ok(text) = std::str::from_utf8(stored) else {
                return;
            };
            let iv = [kind; 16];
            let ct = cbc::Encryptor::<aes::Aes256>::new(&AES_KEY.into(), &iv.into())
                .encrypt_padded_vec_mut::<Pkcs7>(stored);
            let value = base64::engine::general_purpose::STANDARD.encode([&iv[..], &ct].concat());
            assert_eq!(aes().open(value.as_bytes()).unwrap().as_str(), text);
            let token = fernet::Fernet::new(FERNET_KEY).unwrap().encrypt(stored);
            assert_eq!(fernet().open(token.as_bytes()).unwrap().as_str(), text);
        }
    }
});
