//! [`Sealed<C>`]: the explicit column type.

use super::Context;
use crate::crypto::envelope::Header;
use std::fmt;
use std::marker::PhantomData;

/// A ciphertext of column `C`, as stored: what [`Keyring::seal`] makes and
/// [`Keyring::open`] opens.
///
/// Use it as a model field when the code holds its keyring explicitly (a
/// keyring per tenant, a request-scoped keyring), or when it must report
/// *which* row failed to open: loading a `Sealed` never decrypts, so a
/// query never fails on a bad value; opening each row afterwards does, with
/// the row in hand. `Option<Sealed<C>>` is a nullable column.
///
/// The bytes are not secret (they are what the database holds), but
/// `Debug` prints only the column, the key id and the length.
///
/// [`Keyring::seal`]: crate::Keyring::seal
/// [`Keyring::open`]: crate::Keyring::open
#[derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Binary)]
pub struct Sealed<C> {
    bytes: Vec<u8>,
    column: PhantomData<fn() -> C>,
}

impl<C: Context> Sealed<C> {
    /// Takes stored bytes as a ciphertext of column `C`. Nothing is checked
    /// until it is opened.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Sealed {
            bytes,
            column: PhantomData,
        }
    }

    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The stored bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The id of the data key that sealed it, read from the header (not
    /// authenticated until the value is opened); `None` when the bytes are
    /// not a fieldseal ciphertext.
    pub fn key_id(&self) -> Option<u32> {
        Header::parse(&self.bytes).ok().map(|h| h.key_id)
    }

    /// The record key that sealed it (format v2, per-user keys), read
    /// from the header; `None` for a value sealed by a keyring data key.
    pub fn record_key(&self) -> Option<u64> {
        crate::crypto::envelope::record_reference(&self.bytes).ok()
    }

    /// The column's context.
    pub fn context() -> &'static str {
        C::NAME
    }
}

impl<C> Clone for Sealed<C> {
    fn clone(&self) -> Self {
        Sealed {
            bytes: self.bytes.clone(),
            column: PhantomData,
        }
    }
}

impl<C> PartialEq for Sealed<C> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl<C> Eq for Sealed<C> {}

impl<C: Context> fmt::Debug for Sealed<C> {
    /// `Sealed<users.email>(key 2, 61 bytes)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(reference) = self.record_key() {
            return write!(
                f,
                "Sealed<{}>(record key {reference:016x}, {} bytes)",
                C::NAME,
                self.bytes.len()
            );
        }
        match self.key_id() {
            Some(id) => write!(
                f,
                "Sealed<{}>(key {id}, {} bytes)",
                C::NAME,
                self.bytes.len()
            ),
            None => write!(
                f,
                "Sealed<{}>(malformed, {} bytes)",
                C::NAME,
                self.bytes.len()
            ),
        }
    }
}
