//! The library's typed errors.
//!
//! Every message names *what* went wrong and *where* (a column, an
//! environment variable, a key id) and never carries key material, a
//! passphrase or the plaintext of an encrypted field.

use std::fmt;

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the library can report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A stored value could not be decrypted.
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    /// An [`Encrypted`](crate::Encrypted) value was written with no keyring
    /// in scope and none installed.
    #[error(
        "no keyring is in scope: wrap the query in fieldseal::with_keyring, \
         or call fieldseal::install_keyring first"
    )]
    NoKeyring,
    /// The keyring has no blind-index key, so equality search is unavailable.
    #[error("the keyring has no blind-index key (set FIELDSEAL_INDEX_KEY or use a key store)")]
    NoIndexKey,
    /// The keyring would have no data key at all.
    #[error("a keyring needs at least one data key")]
    EmptyKeyring,
    /// The keyring has no audit key (a key store from before audit trails:
    /// see [`KeyStore::ensure_audit_key`](crate::KeyStore::ensure_audit_key)).
    #[error("the keyring has no audit key")]
    NoAuditKey,
    /// A configuration value (environment variable or file) is unusable.
    /// The message names the variable and the problem, never its value.
    #[error("{name}: {reason}")]
    Config {
        /// The variable or file that was wrong.
        name: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A passphrase that would create or change a master key is too weak.
    #[error("the passphrase must be at least {min_chars} characters long (not counting surrounding spaces)")]
    WeakPassphrase {
        /// The minimum length, in characters.
        min_chars: usize,
    },
    /// The master key (or the passphrase it was derived from) does not match
    /// the key check value stored with the key store.
    #[error("wrong passphrase or master key")]
    WrongMasterKey,
    /// A wrapped key in the key store failed authentication although the
    /// master key is right: the key store was altered.
    #[error("wrapped {purpose} key {id} in the key store failed authentication: the key table was altered")]
    CorruptWrappedKey {
        /// `data` or `index`.
        purpose: &'static str,
        /// The key id.
        id: u32,
    },
    /// The key list is not the one its MAC covers: a key row was deleted,
    /// added, re-stated, rolled back or copied in. Nothing was written.
    #[error(
        "the key table was altered: its keys are not the ones its MAC covers \
         (a key row was deleted, added, changed or restored from elsewhere); nothing was written"
    )]
    KeyTableAltered,
    /// Other writers kept changing the key store while this write tried
    /// to apply; nothing of it was written.
    #[error(
        "the key store kept changing under concurrent writers ({attempts} attempts); \
         nothing was written: run the command again"
    )]
    KeyStoreContended {
        /// How many times the write was tried.
        attempts: u32,
    },
    /// The key store cannot be used as it is (see [`KeyStoreError`]).
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    /// A value was too large to encrypt with AES-GCM (over 64 GiB).
    #[error("value too large to encrypt")]
    TooLarge,
    /// A database error from the key store. The server's message is shown
    /// once: it is not also the error's `source`, so printing the chain of
    /// causes never repeats it.
    #[error("key store database error: {0}")]
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        Error::Database(e)
    }
}

impl Error {
    pub(crate) fn config(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// What is wrong with the key store, other than a wrong master key or an
/// altered wrapped key (which have their own [`Error`] variants).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The database has no keyring yet: create one first.
    #[error("this database has no keyring yet")]
    NotInitialized,
    /// [`KeyStore::create`](crate::KeyStore::create) on a database that has
    /// a keyring already.
    #[error("this database already has a keyring")]
    AlreadyInitialized,
    /// The key table holds no data key at all.
    #[error("the key table holds no data key")]
    NoDataKey,
    /// A key row names a purpose other than `data` and `index`.
    #[error("the key table holds a key of unknown purpose {0:?}")]
    UnknownPurpose(String),
    /// A key row's id does not fit a 32-bit key id.
    #[error("the key table holds key id {0}, which is out of range")]
    KeyIdOutOfRange(i64),
    /// The Argon2id parameters are unusable (stored or requested).
    #[error("unusable Argon2id parameters: {0}")]
    KdfParams(String),
}

/// Why a ciphertext could not be opened.
///
/// AES-GCM deliberately cannot tell a tampered value from a wrong key or a
/// value moved from another column, so those three are one kind,
/// [`DecryptErrorKind::AuthenticationFailed`], and the message says so
/// instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecryptErrorKind {
    /// The tag did not verify: tampered bytes, a wrong key, or a value
    /// copied from another column (its context differs).
    AuthenticationFailed,
    /// The header names a key id that the keyring does not hold.
    UnknownKeyId(u32),
    /// The bytes are not a fieldseal ciphertext (too short, unknown version,
    /// or the plaintext does not decode as the column's type).
    Malformed(&'static str),
    /// No keyring was in scope and none was installed, so nothing could
    /// be opened: see [`with_keyring`](crate::with_keyring).
    NoKeyring,
    /// The value is sealed under its own record key (per-user keys), and
    /// that key was not given: open it with
    /// [`Keyring::open_with`](crate::Keyring::open_with) and the
    /// [`RecordKeys`](crate::RecordKeys) loaded for it.
    UnknownRecordKey(u64),
    /// The value's record key was destroyed (the record was forgotten):
    /// nothing can open it any more.
    Erased(u64),
}

/// A decryption failure, naming the column (its context) it happened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptError {
    /// The kind of failure.
    pub kind: DecryptErrorKind,
    /// The context (normally `table.column`) of the value.
    pub context: String,
}

impl DecryptError {
    pub(crate) fn new(kind: DecryptErrorKind, context: &str) -> Self {
        DecryptError {
            kind,
            context: context.to_owned(),
        }
    }
}

impl fmt::Display for DecryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot decrypt {}: ", self.context)?;
        match self.kind {
            DecryptErrorKind::AuthenticationFailed => f.write_str(
                "authentication failed (the stored bytes were altered, the key is wrong, \
                 or the value belongs to another column)",
            ),
            DecryptErrorKind::UnknownKeyId(id) => {
                write!(f, "unknown key id {id} (the keyring does not hold it)")
            }
            DecryptErrorKind::Malformed(why) => write!(f, "malformed ciphertext ({why})"),
            DecryptErrorKind::UnknownRecordKey(r) => write!(
                f,
                "its record key {r:016x} was not loaded (the key store does not hold it)"
            ),
            DecryptErrorKind::Erased(r) => write!(
                f,
                "erased (its record key {r:016x} was destroyed when the record was forgotten)"
            ),
            DecryptErrorKind::NoKeyring => f.write_str(
                "no keyring is in scope (wrap the query in fieldseal::with_keyring, \
                 or call fieldseal::install_keyring first)",
            ),
        }
    }
}

impl std::error::Error for DecryptError {}

/// Finds the [`DecryptError`] inside a Diesel error, if that is what it is.
///
/// Diesel wraps a failing column in `DeserializeFieldError`, whose message
/// only says "Error deserializing field 'name'"; this looks through that
/// wrapping to the reason: tampered, unknown key id, malformed, or no
/// keyring in scope. A query that loads many rows fails as a whole; to
/// name the row that failed, load the rows as [`Sealed`](crate::Sealed)
/// and open each with [`Keyring::open`](crate::Keyring::open), as the
/// README's "Which row failed?" shows.
pub fn decrypt_error(err: &diesel::result::Error) -> Option<&DecryptError> {
    let diesel::result::Error::DeserializationError(inner) = err else {
        return None;
    };
    let mut current: &(dyn std::error::Error + 'static) = inner.as_ref();
    loop {
        if let Some(found) = current.downcast_ref::<DecryptError>() {
            return Some(found);
        }
        if let Some(field) = current.downcast_ref::<diesel::result::DeserializeFieldError>() {
            current = field.error.as_ref();
            continue;
        }
        current = current.source()?;
    }
}
