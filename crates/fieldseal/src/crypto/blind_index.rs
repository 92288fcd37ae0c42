//! Blind indexes: equality search over encrypted values.
//!
//! A blind index is `HMAC-SHA256(index key, "fieldseal:bidx:v1:" || context
//! || 0x00 || normalize(value))`, truncated to [`BLIND_INDEX_LEN`] bytes and
//! stored in its own indexed column next to the ciphertext. Equal values
//! (after normalization) have equal indexes, so `WHERE email_bidx = ?` finds
//! them and a unique index on that column enforces uniqueness, without the
//! database ever seeing the value.
//!
//! # Normalization, version 1
//!
//! 1. Unicode NFKC (compatibility forms fold: `ﬁ` → `fi`, full-width → ASCII);
//! 2. Unicode default case folding (`Straße` and `STRASSE` match);
//! 3. NFKC again (case folding can denormalize);
//! 4. leading and trailing Unicode whitespace removed.
//!
//! Inner whitespace, accents and punctuation are kept: `Ann Lee` and
//! `AnnLee` are different values. Changing any step changes every index, so
//! the steps are versioned with the domain-separation prefix.
//!
//! # Security
//!
//! A blind index leaks equality: anyone with the table can tell which rows
//! share a (normalized) value, and how often each value occurs. The context
//! is part of the HMAC input, so the same value in two columns gets
//! unrelated indexes. Without the index key, values cannot be confirmed by
//! guessing.

use super::key::SecretKey;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;

/// Bytes kept of the HMAC output.
pub const BLIND_INDEX_LEN: usize = 16;

const DOMAIN: &[u8] = b"fieldseal:bidx:v1:";

/// The documented normalization (version 1) applied before indexing.
pub fn normalize(value: &str) -> String {
    // ASCII is its own NFKC form and folds to its lower case: a fast path
    // with the same result (a property test holds the two together).
    if value.is_ascii() {
        return value.trim().to_ascii_lowercase();
    }
    normalize_unicode(value)
}

fn normalize_unicode(value: &str) -> String {
    let nfkc: String = value.nfkc().collect();
    let folded = caseless::default_case_fold_str(&nfkc);
    let again: String = folded.nfkc().collect();
    again.trim().to_owned()
}

/// Computes the blind index of `value` in `context` with `key`.
pub fn compute(key: &SecretKey, context: &str, value: &str) -> [u8; BLIND_INDEX_LEN] {
    // HMAC accepts keys of any length, so this cannot fail for 32 bytes.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(DOMAIN);
    mac.update(context.as_bytes());
    mac.update(&[0]);
    mac.update(normalize(value).as_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; BLIND_INDEX_LEN];
    out.copy_from_slice(&full[..BLIND_INDEX_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_folds_case_width_and_space() {
        assert_eq!(normalize("  Alice@Example.COM \n"), "alice@example.com");
        assert_eq!(normalize("Straße"), normalize("STRASSE"));
        assert_eq!(normalize("ｆｉｅｌｄ"), "field");
        assert_eq!(normalize("ﬁle"), "file");
        assert_ne!(normalize("Ann Lee"), normalize("AnnLee"));
        assert_ne!(normalize("José"), normalize("Jose"));
    }

    proptest::proptest! {
        #[test]
        fn ascii_fast_path_matches_the_unicode_steps(value in "[ -~\t\n\r\x0b\x0c]{0,40}") {
            proptest::prop_assert_eq!(normalize(&value), normalize_unicode(&value));
        }
    }

    #[test]
    fn index_depends_on_key_context_and_value() {
        let k1 = SecretKey::from_bytes(&mut [1; 32]);
        let k2 = SecretKey::from_bytes(&mut [2; 32]);
        let a = compute(&k1, "users.email", "A@x.org");
        assert_eq!(a, compute(&k1, "users.email", " a@X.ORG"));
        assert_ne!(a, compute(&k2, "users.email", "a@x.org"));
        assert_ne!(a, compute(&k1, "users.name", "a@x.org"));
        assert_ne!(a, compute(&k1, "users.email", "b@x.org"));
    }
}
