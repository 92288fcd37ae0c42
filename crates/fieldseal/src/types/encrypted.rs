//! [`Encrypted<T, C>`]: the transparent column type.

use super::{Context, Sealable};
use crate::error::{DecryptError, DecryptErrorKind, Result};
use std::fmt;
use std::marker::PhantomData;

/// A value stored encrypted in column `C`, sealed and opened transparently.
///
/// Holds the plaintext in memory; seals it under the active key of the
/// keyring in scope ([`with_keyring`](crate::with_keyring), else the
/// installed default) when Diesel writes it, and opens it when Diesel
/// reads it. `Debug` never shows the plaintext.
///
/// Use it as a model field (`name: Encrypted<String, UserName>`, read the
/// plaintext with `*` or [`into_inner`](Self::into_inner)), or keep plain
/// `String` fields and name it in `#[diesel(serialize_as = …)]` and
/// `#[diesel(deserialize_as = …)]`.
///
/// # Errors
/// Reading fails with a Diesel deserialization error wrapping a
/// [`DecryptError`] (find it with [`decrypt_error`](crate::decrypt_error)),
/// including when no keyring is in scope. Writing fails with
/// [`Error::NoKeyring`](crate::Error::NoKeyring) when none is.
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
}

impl<T: Sealable, C: Context> Encrypted<T, C> {
    /// Seals the value with the keyring in scope; `None` for SQL `NULL`.
    #[cfg_attr(
        not(any(feature = "mysql", feature = "sqlite", feature = "postgres")),
        allow(dead_code)
    )]
    pub(crate) fn seal(&self) -> Result<Option<Vec<u8>>> {
        match self.value.sealable_bytes() {
            None => Ok(None),
            Some(bytes) => crate::scope::with_current(|k| k.seal_bytes(C::NAME, &bytes))?.map(Some),
        }
    }

    /// Opens stored bytes (`None` for SQL `NULL`) with the keyring in scope.
    pub(crate) fn open(stored: Option<&[u8]>) -> Result<Self, DecryptError> {
        let opened = match stored {
            None => None,
            Some(bytes) => Some(
                crate::scope::with_current(|k| k.open_bytes(C::NAME, bytes))
                    .map_err(|_| DecryptError::new(DecryptErrorKind::NoKeyring, C::NAME))??,
            ),
        };
        T::from_opened(opened)
            .map(Self::new)
            .map_err(|why| DecryptError::new(DecryptErrorKind::Malformed(why), C::NAME))
    }
}

/// `#[diesel(deserialize_as = Encrypted<T, C>)]` converts with `From`.
/// The orphan rule allows it for each concrete plaintext type only (not
/// for every `T` at once), so it exists for `String`, `Vec<u8>`, `i64` and
/// an `Option` of each; a plaintext type of your own can implement it the
/// same way, or be read through an `Encrypted` field.
macro_rules! plaintext_from_encrypted {
    ($($t:ty),*) => {$(
        impl<C: Context> From<Encrypted<$t, C>> for $t {
            fn from(e: Encrypted<$t, C>) -> Self {
                e.value
            }
        }
        impl<C: Context> From<Encrypted<Option<$t>, C>> for Option<$t> {
            fn from(e: Encrypted<Option<$t>, C>) -> Self {
                e.value
            }
        }
    )*};
}

plaintext_from_encrypted!(String, Vec<u8>, i64);

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
