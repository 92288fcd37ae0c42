//! `Encrypted<T, C>`: a Diesel column type that seals on write and opens on
//! read, with the installed keyring.
//!
//! - `T` is the plaintext type ([`Plaintext`]: `String`, `Vec<u8>`, `i64`,
//!   or your own), or `Option<T>` for a nullable column;
//! - `C` is a [`Context`] marker naming the column (`"users.email"`), which
//!   is authenticated with every value so a ciphertext copied to another
//!   column does not open there. Declare one with [`context!`](crate::context).
//!
//! The SQL type is plain [`Binary`](diesel::sql_types::Binary)
//! (`VARBINARY`/`BLOB` on MySQL, `BLOB` on SQLite, `BYTEA` on PostgreSQL),
//! or `Nullable<Binary>`. Models can keep plain `String` fields and use
//! `#[diesel(serialize_as = …, deserialize_as = …)]`; see the crate docs.

mod sql;

use crate::error::{DecryptError, DecryptErrorKind, Error, Result};
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// Names the column a value belongs to; part of every ciphertext's AAD.
pub trait Context: 'static {
    /// The context string, by convention `table.column`.
    const NAME: &'static str;
}

/// Declares a [`Context`] marker type.
///
/// ```
/// fieldseal::context!(pub UsersEmail = "users.email");
/// use fieldseal::Context;
/// assert_eq!(UsersEmail::NAME, "users.email");
/// ```
#[macro_export]
macro_rules! context {
    ($(#[$meta:meta])* $vis:vis $name:ident = $ctx:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        $vis struct $name;
        impl $crate::Context for $name {
            const NAME: &'static str = $ctx;
        }
    };
}

/// A plaintext type that can be stored encrypted: how it becomes bytes
/// before sealing and comes back after opening.
pub trait Plaintext: Sized {
    /// The bytes to seal.
    fn to_plaintext_bytes(&self) -> Cow<'_, [u8]>;
    /// The value from opened bytes.
    ///
    /// # Errors
    /// A short reason when the bytes do not decode (reported as malformed).
    fn from_plaintext_bytes(bytes: Vec<u8>) -> Result<Self, &'static str>;
}

impl Plaintext for String {
    fn to_plaintext_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
    fn from_plaintext_bytes(bytes: Vec<u8>) -> Result<Self, &'static str> {
        String::from_utf8(bytes).map_err(|_| "plaintext is not valid UTF-8")
    }
}

impl Plaintext for Vec<u8> {
    fn to_plaintext_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
    fn from_plaintext_bytes(bytes: Vec<u8>) -> Result<Self, &'static str> {
        Ok(bytes)
    }
}

impl Plaintext for i64 {
    /// Eight bytes, big-endian.
    fn to_plaintext_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.to_be_bytes().to_vec())
    }
    fn from_plaintext_bytes(bytes: Vec<u8>) -> Result<Self, &'static str> {
        let arr: [u8; 8] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| "an i64 plaintext must be 8 bytes")?;
        Ok(i64::from_be_bytes(arr))
    }
}

/// What [`Encrypted`] can hold: a [`Plaintext`], or an `Option` of one for a
/// nullable column (`None` is stored as SQL `NULL`, not encrypted).
pub trait Sealable: Sized {
    /// The bytes to seal, or `None` for SQL `NULL`.
    fn sealable_bytes(&self) -> Option<Cow<'_, [u8]>>;
    /// The value from opened bytes, or from `NULL`.
    ///
    /// # Errors
    /// A short reason (unexpected NULL, undecodable plaintext).
    fn from_opened(bytes: Option<Vec<u8>>) -> Result<Self, &'static str>;
}

impl<T: Plaintext> Sealable for T {
    fn sealable_bytes(&self) -> Option<Cow<'_, [u8]>> {
        Some(self.to_plaintext_bytes())
    }
    fn from_opened(bytes: Option<Vec<u8>>) -> Result<Self, &'static str> {
        T::from_plaintext_bytes(bytes.ok_or("unexpected NULL in a non-nullable column")?)
    }
}

impl<T: Plaintext> Sealable for Option<T> {
    fn sealable_bytes(&self) -> Option<Cow<'_, [u8]>> {
        self.as_ref().map(Plaintext::to_plaintext_bytes)
    }
    fn from_opened(bytes: Option<Vec<u8>>) -> Result<Self, &'static str> {
        bytes.map(T::from_plaintext_bytes).transpose()
    }
}

/// A value stored encrypted in column `C`.
///
/// Holds the plaintext in memory; seals it with the installed keyring's
/// active key when Diesel writes it, and opens it when Diesel reads it.
/// `Debug` never shows the plaintext.
///
/// # Errors
/// Reading fails with a Diesel deserialization error wrapping a
/// [`DecryptError`] (find it with [`decrypt_error`](crate::decrypt_error)).
/// Writing fails when no keyring is installed.
#[derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Binary)]
pub struct Encrypted<T, C> {
    value: T,
    column: PhantomData<fn() -> C>,
}

impl<T, C: Context> Encrypted<T, C> {
    /// Wraps a plaintext value.
    pub fn new(value: T) -> Self {
        Encrypted {
            value,
            column: PhantomData,
        }
    }

    /// The plaintext.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The context (column) this type belongs to.
    pub fn context() -> &'static str {
        C::NAME
    }

    /// Conversion used by `#[diesel(deserialize_as = Encrypted<T, C>)]`,
    /// which calls `.try_into()`: an inherent method, because the orphan
    /// rule forbids `impl From<Encrypted<T, C>> for T`.
    #[allow(clippy::should_implement_trait)]
    pub fn try_into(self) -> Result<T, std::convert::Infallible> {
        Ok(self.value)
    }
}

impl<T: Sealable, C: Context> Encrypted<T, C> {
    /// Seals the value with the installed keyring; `None` for SQL `NULL`.
    ///
    /// # Errors
    /// [`Error::NoKeyring`], or [`Error::TooLarge`].
    pub fn seal(&self) -> Result<Option<Vec<u8>>> {
        match self.value.sealable_bytes() {
            None => Ok(None),
            Some(bytes) => crate::keyring()?.seal(C::NAME, &bytes).map(Some),
        }
    }

    /// Opens stored bytes (`None` for SQL `NULL`) with the installed keyring.
    ///
    /// # Errors
    /// [`Error::Decrypt`] naming the column, or [`Error::NoKeyring`].
    pub fn open(stored: Option<&[u8]>) -> Result<Self> {
        let opened = match stored {
            None => None,
            Some(bytes) => Some(crate::keyring()?.open(C::NAME, bytes)?),
        };
        T::from_opened(opened)
            .map(Self::new)
            .map_err(|why| DecryptError::new(DecryptErrorKind::Malformed(why), C::NAME).into())
    }
}

impl<T, C: Context> From<T> for Encrypted<T, C> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T, C: Context> std::ops::Deref for Encrypted<T, C> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Clone, C: Context> Clone for Encrypted<T, C> {
    fn clone(&self) -> Self {
        Self::new(self.value.clone())
    }
}

impl<T: PartialEq, C: Context> PartialEq for Encrypted<T, C> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Eq, C: Context> Eq for Encrypted<T, C> {}

impl<T, C: Context> fmt::Debug for Encrypted<T, C> {
    /// Prints the column only: `Encrypted<users.email>(<redacted>)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encrypted<{}>(<redacted>)", C::NAME)
    }
}

/// Boxes a library error the way Diesel expects from `FromSql`/`ToSql`,
/// keeping a [`DecryptError`] directly findable.
fn into_diesel_error(err: Error) -> Box<dyn std::error::Error + Send + Sync> {
    match err {
        Error::Decrypt(d) => Box::new(d),
        other => Box::new(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::context!(Notes = "t.notes");

    #[test]
    fn debug_is_redacted() {
        let e: Encrypted<String, Notes> = "top secret".to_string().into();
        let shown = format!("{e:?}");
        assert_eq!(shown, "Encrypted<t.notes>(<redacted>)");
        assert!(!shown.contains("secret"));
    }

    #[test]
    fn plaintext_codecs_round_trip() {
        assert_eq!(
            i64::from_plaintext_bytes((-5i64).to_plaintext_bytes().into_owned()),
            Ok(-5)
        );
        assert!(i64::from_plaintext_bytes(vec![1, 2]).is_err());
        assert!(String::from_plaintext_bytes(vec![0xff, 0xfe]).is_err());
        assert_eq!(Option::<String>::from_opened(None), Ok(None));
        assert!(String::from_opened(None).is_err());
    }
}
