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
    /// RFC 9106's second recommended option: 64 MiB, 3 iterations, 4
    /// lanes (computed one after the other here: the lanes set the memory
    /// layout, not the threads).
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 4,
        }
    }
}

impl KdfParams {
    /// The weakest parameters accepted, for new keyrings and stored ones:
    /// OWASP's Argon2id minimum (19 MiB, 2 iterations), which is also what
    /// fieldseal used before RFC 9106's became the default, so every
    /// keyring made then still opens.
    pub const FLOOR: KdfParams = KdfParams {
        m_cost_kib: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };

    /// The most expensive parameters accepted: 4 GiB, 64 iterations, 64
    /// lanes. A stored row above them is refused instead of trying to
    /// allocate what it asks for.
    pub const CEILING: KdfParams = KdfParams {
        m_cost_kib: 4 * 1024 * 1024,
        t_cost: 64,
        p_cost: 64,
    };

    /// Checks the parameters against [`FLOOR`](Self::FLOOR) and
    /// [`CEILING`](Self::CEILING).
    ///
    /// # Errors
    /// [`KeyStoreError::KdfParams`] naming the parameter and the range.
    pub fn check(&self) -> Result<()> {
        let (lo, hi) = (Self::FLOOR, Self::CEILING);
        let bad = |what: &str, v: u32, min: u32, max: u32| -> Result<()> {
            if (min..=max).contains(&v) {
                Ok(())
            } else {
                Err(
                    KeyStoreError::KdfParams(format!("{what} is {v}; allowed {min} to {max}"))
                        .into(),
                )
            }
        };
        bad(
            "memory (KiB)",
            self.m_cost_kib,
            lo.m_cost_kib,
            hi.m_cost_kib,
        )?;
        bad("iterations", self.t_cost, lo.t_cost, hi.t_cost)?;
        bad("lanes", self.p_cost, lo.p_cost, hi.p_cost)
    }

    /// Whether these are weaker than the current defaults (a keyring made
    /// with them is upgraded by the next passphrase change).
    pub fn below_default(&self) -> bool {
        let d = Self::default();
        self.m_cost_kib < d.m_cost_kib || self.t_cost < d.t_cost
    }
}

/// The shortest passphrase accepted, in characters.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

/// A passphrase held in memory that zeroizes on drop and never prints.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase. Any text is accepted here, so an existing
    /// keyring opens whatever passphrase made it; creating or changing a
    /// master key checks [`check_strength`](Self::check_strength).
    pub fn new(text: String) -> Self {
        Passphrase(Zeroizing::new(text))
    }

    /// The rule for every passphrase that creates or changes a master
    /// key: at least [`MIN_PASSPHRASE_CHARS`] characters, not counting
    /// surrounding white space.
    ///
    /// # Errors
    /// [`Error::WeakPassphrase`].
    pub fn check_strength(&self) -> Result<()> {
        if self.0.trim().chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(Error::WeakPassphrase {
                min_chars: MIN_PASSPHRASE_CHARS,
            });
        }
        Ok(())
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
    /// For a new master key: a passphrase must pass
    /// [`Passphrase::check_strength`]; a 32-byte key always does.
    ///
    /// # Errors
    /// [`Error::WeakPassphrase`].
    pub fn check_strength(&self) -> Result<()> {
        match self {
            MasterSecret::Key(_) => Ok(()),
            MasterSecret::Passphrase(p) => p.check_strength(),
        }
    }

    /// The master key: the key itself, or Argon2id of the passphrase.
    ///
    /// # Errors
    /// [`Error::KeyStore`] when the stored parameters are unusable.
    pub(crate) fn derive(&self, salt: &[u8], params: KdfParams) -> Result<SecretKey> {
        match self {
            MasterSecret::Key(key) => Ok(key.duplicate()),
            MasterSecret::Passphrase(pass) => {
                params.check()?;
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

/// Reads a master key file: base64 of 32 bytes, a regular file owned by
/// this user (or root), mode 0600 or stricter.
///
/// The file is opened once, without following a symbolic link, and the
/// checks are made on the open file (not on its path, which could be
/// swapped between a check and the read).
///
/// # Errors
/// [`Error::Config`] naming the file: missing, unreadable, a link, not a
/// regular file, owned by someone else, too permissive or not a key.
/// Never the contents.
pub(crate) fn read_key_file(path: &Path) -> Result<SecretKey> {
    use std::io::Read;
    let name = format!("key file {}", path.display());
    let mut file = open_no_follow(path).map_err(|why| Error::config(&name, why))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::config(&name, e.to_string()))?;
    if !meta.is_file() {
        return Err(Error::config(&name, "is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::config(
                &name,
                format!("has mode {mode:04o}; refusing a key file others can read (chmod 600 it)"),
            ));
        }
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me && meta.uid() != 0 {
            return Err(Error::config(
                &name,
                format!(
                    "is owned by user {}, not by this user ({me}) or root",
                    meta.uid()
                ),
            ));
        }
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|_| Error::config(&name, "is not readable text"))?;
    SecretKey::from_base64(&text).map_err(|why| Error::config(&name, why))
}

/// Opens `path` for reading; a symbolic link in its last component is
/// refused rather than followed.
fn open_no_follow(path: &Path) -> std::result::Result<std::fs::File, String> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options.open(path).map_err(|e| {
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        match e.kind() {
            _ if is_link => "is a symbolic link; give the path of the file itself".to_owned(),
            std::io::ErrorKind::NotFound => "does not exist".to_owned(),
            std::io::ErrorKind::PermissionDenied => "cannot be read (permission denied)".to_owned(),
            _ => e.to_string(),
        }
    })
}

const WRAP_NONCE_LEN: usize = 12;
const WRAP_TAG_LEN: usize = 16;

/// Length of a keyring id: random bytes that name one key store.
pub(crate) const KEYRING_ID_LEN: usize = 16;

/// What a wrapped key is bound to: its keyring (from format v2 on), its
/// purpose and its id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binding<'a> {
    /// The keyring's id; `None` for a v1 key table, which had none.
    pub keyring: Option<&'a [u8]>,
    pub purpose: &'static str,
    pub id: u32,
}

impl Binding<'_> {
    /// The wrap's AAD: `fieldseal:wrap:v2:` || keyring id || `:purpose:id`,
    /// or v1's `fieldseal:wrap:v1:purpose:id`.
    fn aad(&self) -> Vec<u8> {
        match self.keyring {
            Some(ring) => {
                let mut aad = b"fieldseal:wrap:v2:".to_vec();
                aad.extend_from_slice(ring);
                aad.extend_from_slice(format!(":{}:{}", self.purpose, self.id).as_bytes());
                aad
            }
            None => format!("fieldseal:wrap:v1:{}:{}", self.purpose, self.id).into_bytes(),
        }
    }
}

/// Wraps `key` under `master`: `nonce || AES-256-GCM(key) || tag`, with
/// the binding as AAD, so a wrapped key cannot be moved to another id,
/// purpose or keyring.
pub(crate) fn wrap_key(master: &SecretKey, binding: Binding<'_>, key: &SecretKey) -> Vec<u8> {
    let cipher = Aes256Gcm::new(master.expose().into());
    let mut nonce = [0u8; WRAP_NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(WRAP_NONCE_LEN + KEY_LEN + WRAP_TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(key.expose());
    let tag = cipher
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &binding.aad(),
            &mut out[WRAP_NONCE_LEN..],
        )
        .unwrap_or_else(|_| unreachable!("32 bytes are within AES-GCM's limits"));
    out.extend_from_slice(&tag);
    out
}

/// Unwraps a key wrapped by [`wrap_key`] with the same binding.
///
/// # Errors
/// [`Error::CorruptWrappedKey`] when authentication fails.
pub(crate) fn unwrap_key(
    master: &SecretKey,
    binding: Binding<'_>,
    wrapped: &[u8],
) -> Result<SecretKey> {
    let corrupt = || Error::CorruptWrappedKey {
        purpose: binding.purpose,
        id: binding.id,
    };
    if wrapped.len() != WRAP_NONCE_LEN + KEY_LEN + WRAP_TAG_LEN {
        return Err(corrupt());
    }
    let cipher = Aes256Gcm::new(master.expose().into());
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    bytes.copy_from_slice(&wrapped[WRAP_NONCE_LEN..WRAP_NONCE_LEN + KEY_LEN]);
    cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&wrapped[..WRAP_NONCE_LEN]),
            &binding.aad(),
            bytes.as_mut_slice(),
            Tag::from_slice(&wrapped[WRAP_NONCE_LEN + KEY_LEN..]),
        )
        .map_err(|_| corrupt())?;
    Ok(SecretKey::from_bytes(&mut bytes))
}

/// One stored key as the key-list MAC sees it.
pub(crate) struct ListedKey<'a> {
    pub purpose: &'a str,
    pub id: u32,
    pub state: &'a str,
    pub wrapped: &'a [u8],
}

/// The MAC over a keyring's whole key list, under a key derived from the
/// master key: `HMAC-SHA256(HMAC-SHA256(master, "fieldseal:key-list-key:v1"),
/// "fieldseal:key-list:v1" || keyring id || version || each key (purpose,
/// id, state, wrapped bytes, all length-prefixed) in (purpose, id) order)`.
/// A deleted, added, re-stated or rolled-back key row changes it.
pub(crate) fn key_list_mac(
    master: &SecretKey,
    keyring_id: &[u8],
    version: i64,
    keys: &[ListedKey<'_>],
) -> Vec<u8> {
    let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(master.expose())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    derive.update(b"fieldseal:key-list-key:v1");
    let mut mac_key = Zeroizing::new([0u8; KEY_LEN]);
    mac_key.copy_from_slice(&derive.finalize().into_bytes());
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(mac_key.as_slice())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"fieldseal:key-list:v1");
    mac.update(keyring_id);
    mac.update(&version.to_be_bytes());
    mac.update(&(keys.len() as u64).to_be_bytes());
    let mut sorted: Vec<&ListedKey<'_>> = keys.iter().collect();
    sorted.sort_by(|a, b| (a.purpose, a.id).cmp(&(b.purpose, b.id)));
    for key in sorted {
        for field in [key.purpose.as_bytes(), key.state.as_bytes(), key.wrapped] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        mac.update(&key.id.to_be_bytes());
    }
    mac.finalize().into_bytes().to_vec()
}

/// Whether `stored` is the MAC of the key list (constant time).
pub(crate) fn verify_key_list_mac(
    master: &SecretKey,
    keyring_id: &[u8],
    version: i64,
    keys: &[ListedKey<'_>],
    stored: &[u8],
) -> bool {
    let expected = key_list_mac(master, keyring_id, version, keys);
    expected.len() == stored.len()
        && expected
            .iter()
            .zip(stored)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A fresh random keyring id.
pub(crate) fn new_keyring_id() -> [u8; KEYRING_ID_LEN] {
    let mut id = [0u8; KEYRING_ID_LEN];
    OsRng.fill_bytes(&mut id);
    id
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
        KdfParams::FLOOR
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
        let ring = [7u8; KEYRING_ID_LEN];
        let other_ring = [8u8; KEYRING_ID_LEN];
        let at = |keyring: Option<&'static [u8]>, purpose, id| Binding {
            keyring,
            purpose,
            id,
        };
        let ring: &'static [u8] = Box::leak(Box::new(ring));
        let other_ring: &'static [u8] = Box::leak(Box::new(other_ring));
        let wrapped = wrap_key(&master, at(Some(ring), "data", 3), &dek);
        assert_eq!(
            unwrap_key(&master, at(Some(ring), "data", 3), &wrapped).unwrap(),
            dek
        );
        assert!(unwrap_key(&master, at(Some(ring), "data", 4), &wrapped).is_err());
        assert!(unwrap_key(&master, at(Some(ring), "index", 3), &wrapped).is_err());
        assert!(unwrap_key(&master, at(Some(other_ring), "data", 3), &wrapped).is_err());
        assert!(unwrap_key(&master, at(None, "data", 3), &wrapped).is_err());
        assert!(unwrap_key(&SecretKey::generate(), at(Some(ring), "data", 3), &wrapped).is_err());
        assert!(unwrap_key(&master, at(Some(ring), "data", 3), &wrapped[1..]).is_err());
        // A v1 wrap (no keyring id) still opens as v1.
        let v1 = wrap_key(&master, at(None, "data", 3), &dek);
        assert_eq!(unwrap_key(&master, at(None, "data", 3), &v1).unwrap(), dek);
    }

    #[test]
    fn key_list_mac_covers_every_row_and_field() {
        let master = SecretKey::generate();
        let ring = [1u8; KEYRING_ID_LEN];
        let keys = [
            ListedKey {
                purpose: "data",
                id: 1,
                state: "decrypt-only",
                wrapped: b"a",
            },
            ListedKey {
                purpose: "data",
                id: 2,
                state: "active",
                wrapped: b"b",
            },
            ListedKey {
                purpose: "index",
                id: 1,
                state: "active",
                wrapped: b"c",
            },
        ];
        let mac = key_list_mac(&master, &ring, 5, &keys);
        assert!(verify_key_list_mac(&master, &ring, 5, &keys, &mac));
        // Order of rows does not matter; everything else does.
        let reversed: Vec<ListedKey<'_>> = keys.iter().rev().map(|k| ListedKey { ..*k }).collect();
        assert!(verify_key_list_mac(&master, &ring, 5, &reversed, &mac));
        assert!(
            !verify_key_list_mac(&master, &ring, 5, &keys[..2], &mac),
            "deleted row"
        );
        assert!(
            !verify_key_list_mac(&master, &ring, 4, &keys, &mac),
            "rolled-back version"
        );
        assert!(!verify_key_list_mac(
            &master,
            &[2; KEYRING_ID_LEN],
            5,
            &keys,
            &mac
        ));
        assert!(!verify_key_list_mac(
            &SecretKey::generate(),
            &ring,
            5,
            &keys,
            &mac
        ));
        let mut restated: Vec<ListedKey<'_>> = keys.iter().map(|k| ListedKey { ..*k }).collect();
        restated[0].state = "active";
        assert!(
            !verify_key_list_mac(&master, &ring, 5, &restated, &mac),
            "state changed"
        );
    }

    #[test]
    fn passphrases_shorter_than_eight_characters_are_refused() {
        for weak in ["", "        ", "short", "  1234567  "] {
            let err = Passphrase::new(weak.into()).check_strength().unwrap_err();
            assert!(
                matches!(err, Error::WeakPassphrase { min_chars: 8 }),
                "{weak:?}"
            );
        }
        assert!(Passphrase::new("12345678".into()).check_strength().is_ok());
        assert!(Passphrase::new("ünïcödé!".into()).check_strength().is_ok());
    }

    #[test]
    fn kdf_parameters_outside_floor_and_ceiling_are_refused_before_argon2_runs() {
        let pass = MasterSecret::Passphrase(Passphrase::new("correct horse".into()));
        let huge = KdfParams {
            m_cost_kib: 2_000_000_000,
            t_cost: 3,
            p_cost: 1,
        };
        let err = pass.derive(b"saltsaltsaltsalt", huge).unwrap_err();
        assert!(
            err.to_string().contains("memory (KiB) is 2000000000"),
            "{err}"
        );
        let weak = KdfParams {
            m_cost_kib: 1024,
            t_cost: 1,
            p_cost: 1,
        };
        assert!(pass.derive(b"saltsaltsaltsalt", weak).is_err());
        assert!(KdfParams::default().check().is_ok());
        assert!(KdfParams::FLOOR.check().is_ok());
        assert!(!KdfParams::default().below_default());
        assert!(KdfParams::FLOOR.below_default());
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

#[cfg(test)]
#[cfg(unix)]
mod key_file_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_symlink_to_a_good_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.key");
        std::fs::write(&real, SecretKey::generate().to_base64().as_bytes()).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("master.key");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = read_key_file(&link).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(read_key_file(&real).is_ok());
    }

    #[test]
    fn a_directory_and_a_missing_file_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = read_key_file(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = read_key_file(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}

#[cfg(test)]
#[cfg(unix)]
mod key_file_owner_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A key file someone else owns is refused even with mode 0600 (it
    /// takes root to hand a file to another user, so only root runs it).
    #[test]
    fn a_key_file_owned_by_another_user_is_refused() {
        if rustix::process::geteuid().as_raw() != 0 {
            eprintln!("SKIPPED: needs root to chown a file to another user");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, SecretKey::generate().to_base64().as_bytes()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_key_file(&path).is_ok(), "root's own file");
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("owned by user 65534"), "{err}");
    }
}
