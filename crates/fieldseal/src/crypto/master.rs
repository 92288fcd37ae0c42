//! The master key (key-encryption key): where it comes from, how a
//! passphrase becomes one, and how it wraps data keys.
//!
//! ```text
//! passphrase ──Argon2id(salt, params)──► master key (never stored)
//! master key ──AES-256-GCM wrap────────► data and index keys, stored wrapped
//! master key ──HMAC-SHA256─────────────► key check value, stored
//! ```
//!
//! The key check value lets a wrong passphrase be reported as exactly that,
//! at once, instead of as a failure on some wrapped key or row later.

use super::key::{SecretKey, KEY_LEN};
use crate::error::{Error, KeyStoreError, Result};
use aes_gcm::aead::{rand_core::RngCore, AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::Path;
use zeroize::Zeroizing;

/// Argon2id cost parameters, stored next to the salt so a database keeps
/// working when the defaults change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Parallelism (lanes).
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// OWASP's recommended Argon2id minimum: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// A passphrase held in memory that zeroizes on drop and never prints.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase.
    pub fn new(text: String) -> Self {
        Passphrase(Zeroizing::new(text))
    }

    /// The passphrase text (for comparisons such as "type it again").
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// What unlocks a key store: a master key itself, or a passphrase that
/// derives it.
#[derive(Debug)]
pub enum MasterSecret {
    /// A 32-byte master key (from `FIELDSEAL_MASTER_KEY`, a key file or a KMS).
    Key(SecretKey),
    /// A passphrase, stretched with Argon2id and the stored salt.
    Passphrase(Passphrase),
}

impl MasterSecret {
    /// The master key: the key itself, or Argon2id of the passphrase.
    ///
    /// # Errors
    /// [`Error::KeyStore`] when the stored parameters are unusable.
    pub(crate) fn derive(&self, salt: &[u8], params: KdfParams) -> Result<SecretKey> {
        match self {
            MasterSecret::Key(key) => Ok(key.duplicate()),
            MasterSecret::Passphrase(pass) => {
                let params = argon2::Params::new(
                    params.m_cost_kib,
                    params.t_cost,
                    params.p_cost,
                    Some(KEY_LEN),
                )
                .map_err(|e| KeyStoreError::KdfParams(e.to_string()))?;
                let argon = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params,
                );
                let mut out = Zeroizing::new([0u8; KEY_LEN]);
                argon
                    .hash_password_into(pass.expose().as_bytes(), salt, out.as_mut_slice())
                    .map_err(|e| KeyStoreError::KdfParams(e.to_string()))?;
                Ok(SecretKey::from_bytes(&mut out))
            }
        }
    }
}

/// Somewhere a master secret can come from. Implement it to fetch the
/// master key from a KMS or a hardware token.
pub trait MasterKeySource {
    /// The secret, or `None` when this source has nothing configured.
    ///
    /// # Errors
    /// When the source is configured but unusable (bad encoding, a key
    /// file with loose permissions); the message names the source.
    fn master_secret(&self) -> Result<Option<MasterSecret>>;
}

/// The process environment: `FIELDSEAL_MASTER_KEY` (base64), then
/// `FIELDSEAL_KEY_FILE` (base64 inside, refused unless mode 0600 or
/// stricter), then `FIELDSEAL_PASSPHRASE`. First found wins. It reads no
/// `.env` file: loading one is the application's decision.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvSource;

impl MasterKeySource for EnvSource {
    fn master_secret(&self) -> Result<Option<MasterSecret>> {
        if let Ok(b64) = std::env::var("FIELDSEAL_MASTER_KEY") {
            let b64 = Zeroizing::new(b64);
            let key = SecretKey::from_base64(&b64)
                .map_err(|why| Error::config("FIELDSEAL_MASTER_KEY", why))?;
            return Ok(Some(MasterSecret::Key(key)));
        }
        if let Some(path) = std::env::var_os("FIELDSEAL_KEY_FILE") {
            return read_key_file(Path::new(&path)).map(|k| Some(MasterSecret::Key(k)));
        }
        if let Ok(pass) = std::env::var("FIELDSEAL_PASSPHRASE") {
            return Ok(Some(MasterSecret::Passphrase(Passphrase::new(pass))));
        }
        Ok(None)
    }
}

/// Reads a master key file: base64 of 32 bytes, permissions 0600 or
/// stricter (no group or other access).
///
/// # Errors
/// [`Error::Config`] naming the file: missing, unreadable, too permissive
/// or not a key. Never the contents.
pub(crate) fn read_key_file(path: &Path) -> Result<SecretKey> {
    let name = format!("key file {}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| Error::config(&name, e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::config(
                &name,
                format!("has mode {mode:04o}; refusing a key file others can read (chmod 600 it)"),
            ));
        }
    }
    if !meta.is_file() {
        return Err(Error::config(&name, "is not a regular file"));
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| Error::config(&name, e.to_string()))?,
    );
    SecretKey::from_base64(&text).map_err(|why| Error::config(&name, why))
}

const WRAP_NONCE_LEN: usize = 12;
const WRAP_TAG_LEN: usize = 16;

/// Wraps `key` under `master`: `nonce || AES-256-GCM(key) || tag`, with
/// AAD `fieldseal:wrap:v1:{purpose}:{id}` so a wrapped key cannot be moved
/// to another id or purpose.
pub(crate) fn wrap_key(master: &SecretKey, purpose: &str, id: u32, key: &SecretKey) -> Vec<u8> {
    let cipher = Aes256Gcm::new(master.expose().into());
    let mut nonce = [0u8; WRAP_NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(WRAP_NONCE_LEN + KEY_LEN + WRAP_TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(key.expose());
    let tag = cipher
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            wrap_aad(purpose, id).as_bytes(),
            &mut out[WRAP_NONCE_LEN..],
        )
        .unwrap_or_else(|_| unreachable!("32 bytes are within AES-GCM's limits"));
    out.extend_from_slice(&tag);
    out
}

/// Unwraps a key wrapped by [`wrap_key`] with the same purpose and id.
///
/// # Errors
/// [`Error::CorruptWrappedKey`] when authentication fails.
pub(crate) fn unwrap_key(
    master: &SecretKey,
    purpose: &'static str,
    id: u32,
    wrapped: &[u8],
) -> Result<SecretKey> {
    let corrupt = || Error::CorruptWrappedKey { purpose, id };
    if wrapped.len() != WRAP_NONCE_LEN + KEY_LEN + WRAP_TAG_LEN {
        return Err(corrupt());
    }
    let cipher = Aes256Gcm::new(master.expose().into());
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    bytes.copy_from_slice(&wrapped[WRAP_NONCE_LEN..WRAP_NONCE_LEN + KEY_LEN]);
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&wrapped[..WRAP_NONCE_LEN]),
            wrap_aad(purpose, id).as_bytes(),
            bytes.as_mut_slice(),
            Tag::from_slice(&wrapped[WRAP_NONCE_LEN + KEY_LEN..]),
        )
        .map_err(|_| corrupt())?;
    Ok(SecretKey::from_bytes(&mut bytes))
}

fn wrap_aad(purpose: &str, id: u32) -> String {
    format!("fieldseal:wrap:v1:{purpose}:{id}")
}

const KEY_CHECK_LABEL: &[u8] = b"fieldseal:key-check:v1";

fn key_check_mac(master: &SecretKey) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master.expose())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(KEY_CHECK_LABEL);
    mac
}

/// The key check value stored beside the wrapped keys:
/// `HMAC-SHA256(master, "fieldseal:key-check:v1")`.
pub(crate) fn key_check_value(master: &SecretKey) -> Vec<u8> {
    key_check_mac(master).finalize().into_bytes().to_vec()
}

/// Whether `master` matches a stored key check value (constant time).
pub(crate) fn verify_key_check(master: &SecretKey, stored: &[u8]) -> bool {
    key_check_mac(master).verify_slice(stored).is_ok()
}

/// A fresh random salt for Argon2id.
pub(crate) fn new_salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    salt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    #[test]
    fn passphrase_derivation_is_deterministic_per_salt() {
        let p = MasterSecret::Passphrase(Passphrase::new("correct horse".into()));
        let a = p.derive(b"saltsaltsaltsalt", fast()).unwrap();
        assert_eq!(a, p.derive(b"saltsaltsaltsalt", fast()).unwrap());
        assert_ne!(a, p.derive(b"othersaltothersa", fast()).unwrap());
        let q = MasterSecret::Passphrase(Passphrase::new("correct horsf".into()));
        assert_ne!(a, q.derive(b"saltsaltsaltsalt", fast()).unwrap());
    }

    #[test]
    fn wrap_round_trip_and_binding() {
        let master = SecretKey::generate();
        let dek = SecretKey::generate();
        let wrapped = wrap_key(&master, "data", 3, &dek);
        assert_eq!(unwrap_key(&master, "data", 3, &wrapped).unwrap(), dek);
        assert!(unwrap_key(&master, "data", 4, &wrapped).is_err());
        assert!(unwrap_key(&master, "index", 3, &wrapped).is_err());
        assert!(unwrap_key(&SecretKey::generate(), "data", 3, &wrapped).is_err());
        assert!(unwrap_key(&master, "data", 3, &wrapped[1..]).is_err());
    }

    #[test]
    fn key_check_detects_wrong_master() {
        let master = SecretKey::generate();
        let kcv = key_check_value(&master);
        assert!(verify_key_check(&master, &kcv));
        assert!(!verify_key_check(&SecretKey::generate(), &kcv));
    }

    #[cfg(unix)]
    #[test]
    fn key_file_with_loose_mode_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = SecretKey::generate();
        std::fs::write(&path, key.to_base64().as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("0644"), "{err}");
        assert!(!err.contains(key.to_base64().as_str()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_key_file(&path).unwrap(), key);
    }
}
