//! Known-answer vectors for ciphertext format v1.
//!
//! The expected bytes were computed with an independent AES-GCM
//! implementation (OpenSSL through Python's `cryptography`) from the format
//! as DESIGN.md writes it, so they pin both the cipher and the layout. If
//! one of these fails, the format changed: that needs a new version byte,
//! and v1 must still open.

use super::envelope::DataKey;
use super::key::SecretKey;
use super::keyring::Keyring;

fn key() -> SecretKey {
    let mut bytes: [u8; 32] = std::array::from_fn(|i| i as u8);
    SecretKey::from_bytes(&mut bytes)
}

const NONCE: [u8; 12] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
];

const VECTORS: &[(u32, &str, &str, &str)] = &[
    (
        1,
        "users.name",
        "",
        "0100000001a0a1a2a3a4a5a6a7a8a9aaabed343bc032c20242a245f3c7157c123c",
    ),
    (
        1,
        "users.name",
        "Ada Lovelace",
        "0100000001a0a1a2a3a4a5a6a7a8a9aaaba77c1d0d09a474da0e04e4b6950a62ccbe34db0680f44426a73827ae",
    ),
    (
        7,
        "users.email",
        "zoë@example.org 🦀",
        "0100000007a0a1a2a3a4a5a6a7a8a9aaab9c77bf8605ae7ade0f15ebb62915b2b9505cc6b6122d97b1a54a1ad7466f2b2ab8fd848fcf",
    ),
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn seal_matches_the_golden_bytes() {
    for &(id, context, plaintext, expected) in VECTORS {
        let sealed = DataKey::new(id, key())
            .seal_with_nonce(context, NONCE, plaintext.as_bytes())
            .unwrap();
        assert_eq!(hex(&sealed), expected, "vector {context} {plaintext:?}");
    }
}

#[test]
fn golden_bytes_open_with_the_keyring() {
    for &(id, context, plaintext, expected) in VECTORS {
        let ring = Keyring::new([(id, key())], []).unwrap();
        let bytes: Vec<u8> = (0..expected.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&expected[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            ring.open_bytes(context, &bytes).unwrap(),
            plaintext.as_bytes()
        );
    }
}
