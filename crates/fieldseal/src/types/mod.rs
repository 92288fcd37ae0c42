//! The column types, and what they are generic over.
//!
//! - [`Encrypted<T, C>`]: transparent. Holds the plaintext; seals on write
//!   and opens on read with the keyring in scope
//!   ([`with_keyring`](crate::with_keyring), else the installed default).
//! - [`Sealed<C>`]: explicit. Holds the ciphertext; the caller seals and
//!   opens it with a keyring it holds ([`Keyring::seal`](crate::Keyring::seal),
//!   [`Keyring::open`](crate::Keyring::open)). Loading never fails on a bad
//!   value, so the caller can name the row that does not open.
//!
//! Both are generic over a [`Context`] marker `C` naming the column
//! (`"users.email"`), authenticated with every value so a ciphertext copied
//! to another column does not open there; declare one with
//! [`context!`](crate::context). `T` is a [`Plaintext`] (`String`,
//! `Vec<u8>`, `i64`, or your own), or an `Option` of one for a nullable
//! column.
//!
//! The SQL type of both is plain [`Binary`](diesel::sql_types::Binary)
//! (`VARBINARY`/`BLOB` on MySQL, `BLOB` on SQLite, `BYTEA` on PostgreSQL),
//! or `Nullable<Binary>`.

mod encrypted;
mod sealed;
mod sql;

pub use encrypted::Encrypted;
pub use sealed::Sealed;

use std::borrow::Cow;

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
/// before sealing and comes back after opening. `str` and `[u8]` can be
/// sealed too (they open as `String` and `Vec<u8>`).
pub trait Plaintext {
    /// The bytes to seal.
    fn to_plaintext_bytes(&self) -> Cow<'_, [u8]>;
    /// The value from opened bytes.
    ///
    /// # Errors
    /// A short reason when the bytes do not decode (reported as malformed).
    fn from_plaintext_bytes(bytes: Vec<u8>) -> Result<Self, &'static str>
    where
        Self: Sized;
}

impl Plaintext for str {
    fn to_plaintext_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl Plaintext for [u8] {
    fn to_plaintext_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Encrypted;

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
