//! The keyring: data keys by id (one active for sealing, all for opening)
//! and blind-index keys by version.
//!
//! Build one with [`Keyring::from_env`] (single-key mode, `FIELDSEAL_KEYS`),
//! from a key store (envelope mode, [`crate::KeyStore`]), or with
//! [`Keyring::new`]. Then either hold it and call [`Keyring::seal`] and
//! [`Keyring::open`] on [`Sealed`] columns, or put it in scope
//! ([`with_keyring`](crate::with_keyring), [`install_keyring`](crate::install_keyring))
//! for the transparent [`Encrypted`](crate::Encrypted) columns.

use super::blind_index::{self, BLIND_INDEX_LEN};
use super::envelope::{DataKey, Header, RecordKey};
use super::key::SecretKey;
use crate::error::{DecryptError, DecryptErrorKind, Error, Result};
use crate::types::{Context, Plaintext, Sealed};
use std::collections::BTreeMap;
use std::fmt;

/// Data keys and blind-index keys. Key bytes zeroize when it is dropped;
/// `Debug` shows ids only.
pub struct Keyring {
    data: BTreeMap<u32, DataKey>,
    active: u32,
    index: BTreeMap<u32, SecretKey>,
    audit: Option<SecretKey>,
}

/// A record key wrapped under a data key of the keyring: what the key
/// store keeps (`fieldseal_record_keys`). The wrap is a v1 ciphertext under
/// the data key, bound to the reference, so a wrapped key moved to another
/// reference does not unwrap. Not secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedRecordKey {
    /// The record key's reference.
    pub reference: u64,
    /// The key, sealed under a data key of the keyring.
    pub wrapped: Vec<u8>,
}

impl WrappedRecordKey {
    /// The data key that wraps it, from the wrap's header.
    pub fn wrapping_key_id(&self) -> Option<u32> {
        Header::parse(&self.wrapped).ok().map(|h| h.key_id)
    }
}

/// Record keys a caller loaded, by reference, for
/// [`Keyring::open_with`]: unwrapped keys, and references whose key was
/// destroyed (records forgotten). See
/// [`RecordKeys::load`](crate::RecordKeys::load).
#[derive(Default)]
pub struct RecordKeys {
    keys: std::collections::HashMap<u64, Option<RecordKey>>,
}

impl RecordKeys {
    /// An empty set.
    pub fn new() -> Self {
        RecordKeys::default()
    }

    /// Adds an unwrapped key.
    pub fn insert(&mut self, key: RecordKey) {
        self.keys.insert(key.reference(), Some(key));
    }

    /// Marks `reference` as erased: its key was destroyed.
    pub fn insert_erased(&mut self, reference: u64) {
        self.keys.insert(reference, None);
    }

    /// The key for `reference`: `Ok(None)` when it is not in this set,
    /// [`DecryptErrorKind::Erased`] when it was destroyed.
    pub fn get(&self, reference: u64) -> Result<Option<&RecordKey>, DecryptErrorKind> {
        match self.keys.get(&reference) {
            None => Ok(None),
            Some(None) => Err(DecryptErrorKind::Erased(reference)),
            Some(Some(key)) => Ok(Some(key)),
        }
    }

    /// How many references it holds (erased ones included).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl fmt::Debug for RecordKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordKeys")
            .field("len", &self.keys.len())
            .finish()
    }
}

/// The context a record key is wrapped for: binds the wrap to its
/// reference.
fn record_key_context(reference: u64) -> String {
    format!("fieldseal.record_key:{reference:016x}")
}

impl Keyring {
    /// A keyring from data keys and blind-index keys. The highest data key
    /// id is active for sealing; the highest index version is current.
    ///
    /// # Errors
    /// [`Error::EmptyKeyring`] without any data key.
    pub fn new(
        data_keys: impl IntoIterator<Item = (u32, SecretKey)>,
        index_keys: impl IntoIterator<Item = (u32, SecretKey)>,
    ) -> Result<Self> {
        let data: BTreeMap<u32, DataKey> = data_keys
            .into_iter()
            .map(|(id, key)| (id, DataKey::new(id, key)))
            .collect();
        let active = *data.keys().next_back().ok_or(Error::EmptyKeyring)?;
        Ok(Keyring {
            data,
            active,
            index: index_keys.into_iter().collect(),
            audit: None,
        })
    }

    /// The keyring with `key` as its audit key, which authenticates an
    /// audit trail ([`Keyring::audit_mac`]). Key stores made by this
    /// version hold one; [`KeyStore::ensure_audit_key`](crate::KeyStore::ensure_audit_key)
    /// adds it to an older one.
    #[must_use]
    pub fn with_audit_key(mut self, key: SecretKey) -> Self {
        self.audit = Some(key);
        self
    }

    /// Whether the keyring has an audit key.
    pub fn has_audit_key(&self) -> bool {
        self.audit.is_some()
    }

    /// HMAC-SHA256 of `message` under the audit key: what chains the
    /// entries of an audit trail. The audit key is never rotated with the
    /// data keys, so a trail stays verifiable across rotations and
    /// passphrase changes.
    ///
    /// # Errors
    /// [`Error::NoAuditKey`] when the keyring has none.
    pub fn audit_mac(&self, message: &[u8]) -> Result<[u8; 32]> {
        use hmac::Mac as _;
        Ok(self.audit_hmac(message)?.finalize().into_bytes().into())
    }

    /// Checks an audit MAC ([`Keyring::audit_mac`]) in constant time.
    pub fn verify_audit_mac(&self, message: &[u8], tag: &[u8]) -> bool {
        use hmac::Mac as _;
        self.audit_hmac(message)
            .is_ok_and(|mac| mac.verify_slice(tag).is_ok())
    }

    fn audit_hmac(&self, message: &[u8]) -> Result<hmac::Hmac<sha2::Sha256>> {
        use hmac::Mac as _;
        let key = self.audit.as_ref().ok_or(Error::NoAuditKey)?;
        let mut mac = <hmac::Hmac<sha2::Sha256>>::new_from_slice(key.expose())
            .map_err(|_| Error::NoAuditKey)?;
        mac.update(b"fieldseal:audit:v1:");
        mac.update(message);
        Ok(mac)
    }

    /// A new random record key (per-user keys) with a random reference,
    /// and its copy wrapped under the active data key, to store with
    /// [`RecordKeys::store`](crate::RecordKeys::store) before any value
    /// sealed under it is written.
    ///
    /// ```
    /// fieldseal::context!(UserName = "users.name");
    /// let keyring = fieldseal::Keyring::generate();
    /// let (key, wrapped) = keyring.new_record_key()?;
    /// let sealed = key.seal::<UserName, _>("Ada Lovelace")?;
    /// assert_eq!(sealed.record_key(), Some(key.reference()));
    /// // Later, with the key loaded from the key store:
    /// let mut keys = fieldseal::RecordKeys::new();
    /// keys.insert(keyring.unwrap_record_key(&wrapped)?);
    /// let name: String = keyring.open_with(&keys, &sealed)?;
    /// assert_eq!(name, "Ada Lovelace");
    /// # Ok::<(), fieldseal::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::EmptyKeyring`] (no active data key).
    pub fn new_record_key(&self) -> Result<(RecordKey, WrappedRecordKey)> {
        use aes_gcm::aead::{rand_core::RngCore, OsRng};
        // Positive as a signed 64-bit integer (a BIGINT primary key), and
        // never 0.
        let reference = loop {
            let r = OsRng.next_u64() >> 1;
            if r != 0 {
                break r;
            }
        };
        let secret = SecretKey::generate();
        let wrapped = self.seal_bytes(&record_key_context(reference), secret.expose())?;
        Ok((
            RecordKey::new(reference, &secret),
            WrappedRecordKey { reference, wrapped },
        ))
    }

    /// Unwraps a stored record key with the data key that wrapped it.
    ///
    /// # Errors
    /// A [`DecryptError`] for the wrap (context `fieldseal.record_key:…`):
    /// an unknown data key, a wrap altered or moved to another reference.
    pub fn unwrap_record_key(&self, wrapped: &WrappedRecordKey) -> Result<RecordKey, DecryptError> {
        let context = record_key_context(wrapped.reference);
        let bytes = zeroize::Zeroizing::new(self.open_bytes(&context, &wrapped.wrapped)?);
        let mut array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            DecryptError::new(
                DecryptErrorKind::Malformed("a record key is 32 bytes"),
                &context,
            )
        })?;
        let secret = SecretKey::from_bytes(&mut array);
        Ok(RecordKey::new(wrapped.reference, &secret))
    }

    /// Wraps a stored record key again under the active data key: the
    /// step of a rotation in per-user mode (the record's values are not
    /// touched). `None` when the active key wraps it already.
    ///
    /// # Errors
    /// As [`Keyring::unwrap_record_key`].
    pub fn rewrap_record_key(
        &self,
        wrapped: &WrappedRecordKey,
    ) -> Result<Option<WrappedRecordKey>> {
        if wrapped.wrapping_key_id() == Some(self.active) {
            return Ok(None);
        }
        let context = record_key_context(wrapped.reference);
        let bytes = zeroize::Zeroizing::new(self.open_bytes(&context, &wrapped.wrapped)?);
        Ok(Some(WrappedRecordKey {
            reference: wrapped.reference,
            wrapped: self.seal_bytes(&context, &bytes)?,
        }))
    }

    /// Opens a value of column `C` sealed either by a data key of the ring
    /// (format v1) or under a record key in `keys` (format v2, per-user
    /// keys).
    ///
    /// # Errors
    /// As [`Keyring::open`]; [`DecryptErrorKind::Erased`] for a value whose
    /// record key was destroyed; [`DecryptErrorKind::UnknownRecordKey`]
    /// when `keys` does not hold its key.
    pub fn open_with<C: Context, T: Plaintext>(
        &self,
        keys: &RecordKeys,
        sealed: &Sealed<C>,
    ) -> Result<T, DecryptError> {
        match sealed.record_key() {
            None => self.open(sealed),
            Some(reference) => match keys.get(reference) {
                Ok(Some(key)) => key.open(sealed),
                Ok(None) => Err(DecryptError::new(
                    DecryptErrorKind::UnknownRecordKey(reference),
                    C::NAME,
                )),
                Err(kind) => Err(DecryptError::new(kind, C::NAME)),
            },
        }
    }

    /// A keyring with one fresh random data key (id 1) and one fresh
    /// index key (version 1): for tests and throwaway databases.
    pub fn generate() -> Self {
        Keyring {
            data: BTreeMap::from([(1, DataKey::new(1, SecretKey::generate()))]),
            active: 1,
            index: BTreeMap::from([(1, SecretKey::generate())]),
            audit: Some(SecretKey::generate()),
        }
    }

    /// Single-key mode: reads `FIELDSEAL_KEYS` (`id:base64,id:base64`, the
    /// highest id active) and the optional `FIELDSEAL_INDEX_KEY` (base64)
    /// from the process environment. It reads no `.env` file: loading one
    /// is the application's decision.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable and entry that is wrong; the
    /// message never contains key material.
    pub fn from_env() -> Result<Self> {
        let keys = zeroize::Zeroizing::new(
            std::env::var("FIELDSEAL_KEYS")
                .map_err(|_| Error::config("FIELDSEAL_KEYS", "is not set"))?,
        );
        let mut data = Vec::new();
        for (n, entry) in keys
            .split(',')
            .enumerate()
            .filter(|(_, e)| !e.trim().is_empty())
        {
            let where_ = format!("FIELDSEAL_KEYS entry {}", n + 1);
            let (id, b64) = entry
                .split_once(':')
                .ok_or_else(|| Error::config(&where_, "must look like id:base64"))?;
            let id: u32 = id
                .trim()
                .parse()
                .map_err(|_| Error::config(&where_, "key id must be a whole number"))?;
            let key = SecretKey::from_base64(b64).map_err(|why| Error::config(&where_, why))?;
            data.push((id, key));
        }
        let mut ids: Vec<u32> = data.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::config("FIELDSEAL_KEYS", "names a key id twice"));
        }
        let index = match std::env::var("FIELDSEAL_INDEX_KEY").map(zeroize::Zeroizing::new) {
            Ok(b64) => vec![(
                1,
                SecretKey::from_base64(&b64)
                    .map_err(|why| Error::config("FIELDSEAL_INDEX_KEY", why))?,
            )],
            Err(_) => Vec::new(),
        };
        Keyring::new(data, index).map_err(|_| Error::config("FIELDSEAL_KEYS", "holds no key"))
    }

    /// Id of the key that seals new values.
    pub fn active_key_id(&self) -> u32 {
        self.active
    }

    /// Whether the ring holds data key `id`.
    pub fn has_key(&self, id: u32) -> bool {
        self.data.contains_key(&id)
    }

    /// Ids of every data key, ascending.
    pub fn key_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.data.keys().copied()
    }

    /// Current blind-index key version, if the keyring has index keys.
    pub fn index_version(&self) -> Option<u32> {
        self.index.keys().next_back().copied()
    }

    /// Seals `value` for column `C` under the active key.
    ///
    /// ```
    /// fieldseal::context!(UserName = "users.name");
    /// let keyring = fieldseal::Keyring::generate();
    /// let sealed = keyring.seal::<UserName, _>("Ada Lovelace")?;
    /// let name: String = keyring.open(&sealed)?;
    /// assert_eq!(name, "Ada Lovelace");
    /// # Ok::<(), fieldseal::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::TooLarge`] over AES-GCM's size limit.
    pub fn seal<C: Context, T: Plaintext + ?Sized>(&self, value: &T) -> Result<Sealed<C>> {
        self.seal_bytes(C::NAME, &value.to_plaintext_bytes())
            .map(Sealed::from_bytes)
    }

    /// Opens a value of column `C` sealed by any key of the ring.
    ///
    /// # Errors
    /// A [`DecryptError`] naming the column: malformed bytes, an unknown
    /// key id, failed authentication, or a plaintext that does not decode
    /// as `T`.
    pub fn open<C: Context, T: Plaintext>(&self, sealed: &Sealed<C>) -> Result<T, DecryptError> {
        if let Some(reference) = sealed.record_key() {
            return Err(DecryptError::new(
                DecryptErrorKind::UnknownRecordKey(reference),
                C::NAME,
            ));
        }
        let bytes = zeroize::Zeroizing::new(self.open_bytes(C::NAME, sealed.as_bytes())?);
        T::from_plaintext_bytes(bytes.to_vec())
            .map_err(|why| DecryptError::new(DecryptErrorKind::Malformed(why), C::NAME))
    }

    /// Re-seals a value under the active key when another key of the ring
    /// sealed it: the step of a key rotation. `None` when the value is
    /// already under the active key, so a rotation loop can stop and start
    /// again at any point; `None` too for a value under a record's own key
    /// (per-user keys), whose key a rotation re-wraps instead.
    ///
    /// # Errors
    /// A [`DecryptError`] (as [`Error::Decrypt`]) when the value does not
    /// open; [`Error::TooLarge`].
    pub fn reseal<C: Context>(&self, sealed: &Sealed<C>) -> Result<Option<Sealed<C>>> {
        if sealed.record_key().is_some() {
            // Under its record's own key: a rotation re-wraps that key
            // (RecordKeys::rewrap_all) and leaves the value alone.
            return Ok(None);
        }
        let ciphertext = sealed.as_bytes();
        let header = Header::parse(ciphertext).map_err(|k| DecryptError::new(k, C::NAME))?;
        if header.key_id == self.active {
            return Ok(None);
        }
        let plaintext = zeroize::Zeroizing::new(self.open_bytes(C::NAME, ciphertext)?);
        self.seal_bytes(C::NAME, &plaintext)
            .map(|bytes| Some(Sealed::from_bytes(bytes)))
    }

    /// Seals raw bytes for `context` under the active key.
    pub(crate) fn seal_bytes(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.data
            .get(&self.active)
            .ok_or(Error::EmptyKeyring)?
            .seal(context, plaintext)
    }

    /// Opens raw bytes sealed for `context` by any key in the ring.
    pub(crate) fn open_bytes(
        &self,
        context: &str,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, DecryptError> {
        let header = Header::parse(ciphertext).map_err(|k| DecryptError::new(k, context))?;
        let key = self.data.get(&header.key_id).ok_or_else(|| {
            DecryptError::new(DecryptErrorKind::UnknownKeyId(header.key_id), context)
        })?;
        key.open(context, ciphertext)
    }

    /// The blind index of `value` in column `C` under the current index
    /// key: store it next to the ciphertext, and search with
    /// `WHERE c_bidx = ?` (see [`blind_indexes`](Self::blind_indexes)
    /// while the index key rotates).
    ///
    /// # Errors
    /// [`Error::NoIndexKey`] when the keyring has no index key.
    pub fn blind_index<C: Context>(&self, value: &str) -> Result<[u8; BLIND_INDEX_LEN]> {
        let key = self.index.values().next_back().ok_or(Error::NoIndexKey)?;
        Ok(blind_index::compute(key, C::NAME, value))
    }

    /// The blind index of `value` in column `C` under every index-key
    /// version, current first: what a lookup consults while the index key
    /// rotates, so it misses no row whatever version indexed it.
    pub fn blind_indexes<C: Context>(&self, value: &str) -> Vec<Vec<u8>> {
        self.index
            .values()
            .rev()
            .map(|key| blind_index::compute(key, C::NAME, value).to_vec())
            .collect()
    }

    /// How many index-key versions the ring holds.
    pub fn index_version_count(&self) -> usize {
        self.index.len()
    }

    /// The blind index under a specific index-key version (used while the
    /// index key rotates and rows are re-indexed under the current one).
    pub fn blind_index_version<C: Context>(
        &self,
        version: u32,
        value: &str,
    ) -> Option<[u8; BLIND_INDEX_LEN]> {
        self.index
            .get(&version)
            .map(|key| blind_index::compute(key, C::NAME, value))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .field("index_versions", &self.index.keys().collect::<Vec<_>>())
            .field("audit_key", &self.audit.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DecryptErrorKind;

    crate::context!(TC = "t.c");
    crate::context!(TOther = "t.other");

    fn ring(ids: &[u32]) -> Keyring {
        Keyring::new(
            ids.iter().map(|&id| (id, SecretKey::generate())),
            [(1, SecretKey::generate())],
        )
        .unwrap()
    }

    #[test]
    fn highest_id_is_active_and_old_keys_still_open() {
        let old = Keyring::new([(3, SecretKey::from_bytes(&mut [3; 32]))], []).unwrap();
        let sealed = old.seal_bytes("t.c", b"hello").unwrap();
        let both = Keyring::new(
            [
                (3, SecretKey::from_bytes(&mut [3; 32])),
                (4, SecretKey::from_bytes(&mut [4; 32])),
            ],
            [],
        )
        .unwrap();
        assert_eq!(both.active_key_id(), 4);
        assert_eq!(both.open_bytes("t.c", &sealed).unwrap(), b"hello");
        assert_eq!(
            Header::parse(&both.seal_bytes("t.c", b"x").unwrap())
                .unwrap()
                .key_id,
            4
        );
    }

    #[test]
    fn unknown_key_id_is_named() {
        let sealed = ring(&[7]).seal_bytes("t.c", b"x").unwrap();
        let err = ring(&[1, 2]).open_bytes("t.c", &sealed).unwrap_err();
        assert_eq!(err.kind, DecryptErrorKind::UnknownKeyId(7));
        assert!(err.to_string().contains("unknown key id 7"), "{err}");
    }

    #[test]
    fn wrong_key_with_same_id_fails_authentication() {
        let sealed = ring(&[1]).seal_bytes("t.c", b"x").unwrap();
        let err = ring(&[1]).open_bytes("t.c", &sealed).unwrap_err();
        assert_eq!(err.kind, DecryptErrorKind::AuthenticationFailed);
    }

    #[test]
    fn reseal_moves_old_values_to_the_active_key_once() {
        let old = Keyring::new([(1, SecretKey::from_bytes(&mut [1; 32]))], []).unwrap();
        let sealed = old.seal_bytes("t.c", b"value").unwrap();
        let both = Keyring::new(
            [
                (1, SecretKey::from_bytes(&mut [1; 32])),
                (2, SecretKey::from_bytes(&mut [2; 32])),
            ],
            [],
        )
        .unwrap();
        let moved = both
            .reseal::<TC>(&Sealed::from_bytes(sealed.clone()))
            .unwrap()
            .expect("re-sealed");
        assert_eq!(moved.key_id(), Some(2));
        assert_eq!(both.open_bytes("t.c", moved.as_bytes()).unwrap(), b"value");
        assert!(both.reseal::<TC>(&moved).unwrap().is_none());
        assert!(both.reseal::<TOther>(&Sealed::from_bytes(sealed)).is_err());
    }

    #[test]
    fn empty_keyring_is_refused() {
        assert!(matches!(
            Keyring::new([], []).unwrap_err(),
            Error::EmptyKeyring
        ));
    }

    #[test]
    fn debug_lists_ids_not_keys() {
        let shown = format!("{:?}", ring(&[1, 2]));
        assert_eq!(
            shown,
            "Keyring { data_keys: [1, 2], active: 2, index_versions: [1], audit_key: false }"
        );
    }
}
