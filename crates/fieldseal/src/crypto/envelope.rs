//! The ciphertext format, v1, and AES-256-GCM seal/open.
//!
//! ```text
//! 0      1          5              17                      len-16    len
//! | ver  | key id   | nonce (96b)  | AES-256-GCM ciphertext | tag (128b) |
//!   0x01   u32 BE     random
//! AAD = "fieldseal:v1:" || key id (u32 BE) || ":" || context
//! ```
//!
//! Format v2 is a value sealed under its own record key (per-user keys,
//! see [`RecordKey`]): the header names the record key instead of a data
//! key.
//!
//! ```text
//! 0      1               9              21                      len-16    len
//! | ver  | record key    | nonce (96b)  | AES-256-GCM ciphertext | tag (128b) |
//!   0x02   u64 BE          random
//! AAD = "fieldseal:v2:" || record key (u64 BE) || ":" || context
//! ```
//!
//! The context (normally `table.column`) is authenticated but not stored:
//! a value copied into another column fails to open there. The header
//! bytes themselves are authenticated through the AAD (the key id) and the
//! nonce, so no header bit can change unnoticed.
//!
//! # Security
//!
//! Nonces are 96 random bits drawn from the operating system for every
//! seal (no buffer in the process that a cloned process could repeat). By
//! the birthday bound, one key must not seal more than 2^32 values; rotate
//! data keys well before that (`fieldseal keys status` reports counts).

use super::key::SecretKey;
use crate::error::{DecryptError, DecryptErrorKind, Error};
use crate::types::{Context, Plaintext, Sealed};
use aes_gcm::aead::{rand_core::RngCore, AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use std::fmt;
use zeroize::Zeroize as _;

/// Version byte of the format described in this module.
pub const VERSION_V1: u8 = 0x01;
/// Bytes before the ciphertext: version, key id, nonce.
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// AES-GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Total bytes a ciphertext adds to its plaintext (33).
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Version byte of a value sealed under a record key.
pub const VERSION_V2: u8 = 0x02;
/// Bytes before the ciphertext in format v2: version, record key, nonce.
pub const HEADER_LEN_V2: usize = 1 + 8 + NONCE_LEN;
/// Total bytes a v2 ciphertext adds to its plaintext (37).
pub const OVERHEAD_V2: usize = HEADER_LEN_V2 + TAG_LEN;

const AAD_PREFIX: &[u8] = b"fieldseal:v1:";
const AAD_PREFIX_V2: &[u8] = b"fieldseal:v2:";

/// One data key, ready to seal and open: its id and the expanded cipher.
pub struct DataKey {
    id: u32,
    cipher: Aes256Gcm,
}

impl DataKey {
    /// Builds the cipher for `secret` under key id `id`. The cipher's
    /// expanded AES key schedule and its GHASH key are wiped on drop (the
    /// `zeroize` features of aes-gcm, aes, ghash and polyval).
    pub fn new(id: u32, secret: SecretKey) -> Self {
        let cipher = Aes256Gcm::new(secret.expose().into());
        DataKey { id, cipher }
    }

    /// Seals `plaintext` for `context` with a fresh random nonce.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for plaintexts over AES-GCM's 64 GiB limit.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        seal_with(&self.cipher, self.id, context, random_nonce(), plaintext)
    }

    /// Seals with a caller-chosen nonce. Only for known-answer tests:
    /// reusing a nonce under one key destroys AES-GCM's security, so it
    /// does not exist outside them.
    #[cfg(test)]
    pub(crate) fn seal_with_nonce(
        &self,
        context: &str,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        seal_with(&self.cipher, self.id, context, nonce, plaintext)
    }

    /// Opens a ciphertext whose header names this key.
    pub(crate) fn open(&self, context: &str, ciphertext: &[u8]) -> Result<Vec<u8>, DecryptError> {
        let header = Header::parse(ciphertext).map_err(|k| DecryptError::new(k, context))?;
        open_raw(
            &self.cipher,
            HEADER_LEN,
            &aad(header.key_id, context),
            context,
            ciphertext,
        )
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn seal_with(
    cipher: &Aes256Gcm,
    id: u32,
    context: &str,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut header = [0u8; 5];
    header[0] = VERSION_V1;
    header[1..].copy_from_slice(&id.to_be_bytes());
    seal_raw(cipher, &header, &aad(id, context), nonce, plaintext)
}

/// Seals `plaintext` after `key_header` (version and key reference) and
/// `nonce`, authenticating `aad`.
fn seal_raw(
    cipher: &Aes256Gcm,
    key_header: &[u8],
    aad: &[u8],
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let start = key_header.len() + NONCE_LEN;
    let mut out = Vec::with_capacity(start + plaintext.len() + TAG_LEN);
    out.extend_from_slice(key_header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut out[start..])
        .map_err(|_| Error::TooLarge)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens the body after `header_len` bytes (nonce last), authenticating
/// `aad`. The caller checked the length.
fn open_raw(
    cipher: &Aes256Gcm,
    header_len: usize,
    aad: &[u8],
    context: &str,
    ciphertext: &[u8],
) -> Result<Vec<u8>, DecryptError> {
    let body_end = ciphertext.len() - TAG_LEN;
    let nonce = &ciphertext[header_len - NONCE_LEN..header_len];
    let mut plaintext = ciphertext[header_len..body_end].to_vec();
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            aad,
            &mut plaintext,
            Tag::from_slice(&ciphertext[body_end..]),
        )
        .map_err(|_| {
            plaintext.zeroize();
            DecryptError::new(DecryptErrorKind::AuthenticationFailed, context)
        })?;
    Ok(plaintext)
}

/// A record's own data key (per-user keys): seals that record's fields in
/// format v2, whose header names the key by a random 64-bit reference. A
/// record key is kept wrapped under the keyring's active data key
/// ([`Keyring::new_record_key`](crate::Keyring::new_record_key)); destroying
/// the wrapped copy makes every value sealed under it unreadable, in the
/// live database and in every backup of it (crypto-shredding).
///
/// `Debug` shows the reference only; the key is wiped on drop.
pub struct RecordKey {
    reference: u64,
    cipher: Aes256Gcm,
}

impl RecordKey {
    pub(crate) fn new(reference: u64, secret: &SecretKey) -> Self {
        RecordKey {
            reference,
            cipher: Aes256Gcm::new(secret.expose().into()),
        }
    }

    /// The key's reference: what a v2 header names, and the key's id in
    /// the key store.
    pub fn reference(&self) -> u64 {
        self.reference
    }

    /// Seals `value` for column `C` under this record key.
    ///
    /// # Errors
    /// [`Error::TooLarge`] over AES-GCM's size limit.
    pub fn seal<C: Context, T: Plaintext + ?Sized>(&self, value: &T) -> Result<Sealed<C>, Error> {
        self.seal_bytes(C::NAME, &value.to_plaintext_bytes())
            .map(Sealed::from_bytes)
    }

    /// Opens a value of column `C` sealed under this record key.
    ///
    /// # Errors
    /// A [`DecryptError`]: malformed bytes, a value sealed under another
    /// key, failed authentication, a plaintext that is not a `T`.
    pub fn open<C: Context, T: Plaintext>(&self, sealed: &Sealed<C>) -> Result<T, DecryptError> {
        let bytes = zeroize::Zeroizing::new(self.open_bytes(C::NAME, sealed.as_bytes())?);
        T::from_plaintext_bytes(bytes.to_vec())
            .map_err(|why| DecryptError::new(DecryptErrorKind::Malformed(why), C::NAME))
    }

    pub(crate) fn seal_bytes(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let mut header = [0u8; 9];
        header[0] = VERSION_V2;
        header[1..].copy_from_slice(&self.reference.to_be_bytes());
        seal_raw(
            &self.cipher,
            &header,
            &aad_v2(self.reference, context),
            random_nonce(),
            plaintext,
        )
    }

    pub(crate) fn open_bytes(
        &self,
        context: &str,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, DecryptError> {
        let reference = record_reference(ciphertext).map_err(|k| DecryptError::new(k, context))?;
        if reference != self.reference {
            return Err(DecryptError::new(
                DecryptErrorKind::UnknownRecordKey(reference),
                context,
            ));
        }
        open_raw(
            &self.cipher,
            HEADER_LEN_V2,
            &aad_v2(reference, context),
            context,
            ciphertext,
        )
    }
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordKey")
            .field("reference", &self.reference)
            .finish_non_exhaustive()
    }
}

/// The record key a v2 ciphertext names.
///
/// # Errors
/// [`DecryptErrorKind::Malformed`] when the bytes cannot be a v2 value.
pub fn record_reference(ciphertext: &[u8]) -> Result<u64, DecryptErrorKind> {
    if ciphertext.len() < OVERHEAD_V2 {
        return Err(DecryptErrorKind::Malformed(
            "shorter than the 37-byte minimum of a per-record value",
        ));
    }
    if ciphertext[0] != VERSION_V2 {
        return Err(DecryptErrorKind::Malformed("unknown format version"));
    }
    let mut reference = [0u8; 8];
    reference.copy_from_slice(&ciphertext[1..9]);
    Ok(u64::from_be_bytes(reference))
}

fn aad_v2(reference: u64, context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX_V2.len() + 9 + context.len());
    aad.extend_from_slice(AAD_PREFIX_V2);
    aad.extend_from_slice(&reference.to_be_bytes());
    aad.push(b':');
    aad.extend_from_slice(context.as_bytes());
    aad
}

/// The parsed fixed-size header of a v1 ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Id of the data key that sealed the value.
    pub key_id: u32,
    /// The random nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    /// Reads the header, checking version and minimum length.
    ///
    /// # Errors
    /// [`DecryptErrorKind::Malformed`] when the bytes cannot be a v1 value.
    pub fn parse(ciphertext: &[u8]) -> Result<Self, DecryptErrorKind> {
        if ciphertext.len() < OVERHEAD {
            return Err(DecryptErrorKind::Malformed(
                "shorter than the 33-byte minimum",
            ));
        }
        if ciphertext[0] != VERSION_V1 {
            return Err(DecryptErrorKind::Malformed("unknown format version"));
        }
        let mut id = [0u8; 4];
        id.copy_from_slice(&ciphertext[1..5]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&ciphertext[5..HEADER_LEN]);
        Ok(Header {
            key_id: u32::from_be_bytes(id),
            nonce,
        })
    }
}

/// A fresh 96-bit nonce from the operating system's CSPRNG, drawn anew
/// for every seal. There is deliberately no buffer of random bytes in the
/// process: a copy of the process (fork, a VM snapshot, a checkpoint and
/// restore) would hand the same buffered nonces to both copies, and one
/// repeated nonce under a key breaks AES-GCM.
fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    nonce
}

fn aad(key_id: u32, context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + 5 + context.len());
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.push(b':');
    aad.extend_from_slice(context.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32, byte: u8) -> DataKey {
        DataKey::new(id, SecretKey::from_bytes(&mut [byte; 32]))
    }

    #[test]
    fn two_seals_differ_and_both_open() {
        let k = key(1, 7);
        let a = k.seal("t.c", b"same").unwrap();
        let b = k.seal("t.c", b"same").unwrap();
        assert_ne!(a, b);
        assert_eq!(k.open("t.c", &a).unwrap(), b"same");
        assert_eq!(k.open("t.c", &b).unwrap(), b"same");
        assert_eq!(a.len(), 4 + OVERHEAD);
    }

    #[test]
    fn context_is_bound() {
        let k = key(1, 7);
        let sealed = k.seal("users.email", b"x@example.com").unwrap();
        let err = k.open("users.name", &sealed).unwrap_err();
        assert_eq!(err.kind, DecryptErrorKind::AuthenticationFailed);
        assert_eq!(err.context, "users.name");
    }

    #[test]
    fn short_and_unknown_version_are_malformed() {
        let k = key(1, 7);
        assert!(matches!(
            k.open("t.c", &[1u8; 32]).unwrap_err().kind,
            DecryptErrorKind::Malformed(_)
        ));
        let mut sealed = k.seal("t.c", b"").unwrap();
        sealed[0] = 2;
        assert!(matches!(
            k.open("t.c", &sealed).unwrap_err().kind,
            DecryptErrorKind::Malformed(_)
        ));
    }

    #[test]
    fn nonces_never_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(random_nonce()), "a nonce repeated");
        }
    }

    #[test]
    fn debug_shows_id_only() {
        assert_eq!(format!("{:?}", key(9, 1)), "DataKey { id: 9, .. }");
    }
}
