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
use super::envelope::{DataKey, Header};
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
        })
    }

    /// A keyring with one fresh random data key (id 1) and one fresh
    /// index key (version 1): for tests and throwaway databases.
    pub fn generate() -> Self {
        Keyring {
            data: BTreeMap::from([(1, DataKey::new(1, SecretKey::generate()))]),
            active: 1,
            index: BTreeMap::from([(1, SecretKey::generate())]),
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
        let bytes = zeroize::Zeroizing::new(self.open_bytes(C::NAME, sealed.as_bytes())?);
        T::from_plaintext_bytes(bytes.to_vec())
            .map_err(|why| DecryptError::new(DecryptErrorKind::Malformed(why), C::NAME))
    }

    /// Re-seals a value under the active key when another key of the ring
    /// sealed it: the step of a key rotation. `None` when the value is
    /// already under the active key, so a rotation loop can stop and start
    /// again at any point.
    ///
    /// # Errors
    /// A [`DecryptError`] (as [`Error::Decrypt`]) when the value does not
    /// open; [`Error::TooLarge`].
    pub fn reseal<C: Context>(&self, sealed: &Sealed<C>) -> Result<Option<Sealed<C>>> {
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
            "Keyring { data_keys: [1, 2], active: 2, index_versions: [1] }"
        );
    }
}
