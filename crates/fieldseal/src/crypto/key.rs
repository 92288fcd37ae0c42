//! 256-bit secret keys that zeroize on drop and never print.

use aes_gcm::aead::{rand_core::RngCore, OsRng};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Length in bytes of every key fieldseal uses (AES-256, HMAC-SHA256, KEK).
pub const KEY_LEN: usize = 32;

/// A 256-bit secret: a data key, a blind-index key or a master key.
///
/// The bytes are zeroized when the value is dropped. `Debug` prints only
/// the type name. There is deliberately no `Display` and no `Clone`: copy a
/// key with [`SecretKey::duplicate`] where you mean to.
pub struct SecretKey(Box<Zeroizing<[u8; KEY_LEN]>>);

impl SecretKey {
    /// A new key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = Box::new(Zeroizing::new([0u8; KEY_LEN]));
        OsRng.fill_bytes(bytes.as_mut_slice());
        SecretKey(bytes)
    }

    /// Takes ownership of raw key bytes (the caller's copy is zeroized).
    pub fn from_bytes(bytes: &mut [u8; KEY_LEN]) -> Self {
        let key = SecretKey(Box::new(Zeroizing::new(*bytes)));
        bytes.zeroize();
        key
    }

    /// Parses standard base64 of exactly 32 bytes. The error text never
    /// contains the input.
    pub fn from_base64(text: &str) -> Result<Self, &'static str> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| "is not valid base64")?,
        );
        let mut bytes: [u8; KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| "must decode to exactly 32 bytes")?;
        Ok(Self::from_bytes(&mut bytes))
    }

    /// Standard base64 of the key, in a buffer that zeroizes on drop.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.expose()))
    }

    /// A second, independent copy of the key.
    pub fn duplicate(&self) -> Self {
        let mut bytes = **self.0;
        Self::from_bytes(&mut bytes)
    }

    /// The raw bytes, for handing to a cipher.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl PartialEq for SecretKey {
    /// Constant-time comparison (via HMAC verification would be overkill;
    /// `subtle`-style fold over all bytes).
    fn eq(&self, other: &Self) -> bool {
        self.expose()
            .iter()
            .zip(other.expose())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl Eq for SecretKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_bytes() {
        let key = SecretKey::from_base64(&STANDARD.encode([0xAB; 32])).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "SecretKey(<redacted>)");
        assert!(!shown.contains("171"));
    }

    #[test]
    fn base64_errors_do_not_echo_input() {
        let err = SecretKey::from_base64("c2VjcmV0LXNob3J0").unwrap_err();
        assert!(!err.contains("c2Vj"));
        assert!(SecretKey::from_base64("!!!").is_err());
    }

    #[test]
    fn round_trips_through_base64() {
        let key = SecretKey::generate();
        let again = SecretKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(key, again);
        assert_ne!(key, SecretKey::generate());
    }
}
