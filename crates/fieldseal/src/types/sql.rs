//! The Diesel impls of the column types: `FromSql` built on `Vec<u8>`'s,
//! `ToSql` built on `[u8]`'s, so no raw backend value is touched here.

use super::{Context, Encrypted, Sealable, Sealed};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{Binary, Nullable};

fn open_raw<T: Sealable, C: Context, DB>(
    raw: Option<DB::RawValue<'_>>,
) -> deserialize::Result<Encrypted<T, C>>
where
    DB: Backend,
    Vec<u8>: FromSql<Binary, DB>,
{
    let bytes = raw
        .map(<Vec<u8> as FromSql<Binary, DB>>::from_sql)
        .transpose()?;
    // The DecryptError itself is the boxed error, so decrypt_error finds it.
    Ok(Encrypted::open(bytes.as_deref())?)
}

impl<T: Sealable, C: Context, DB> FromSql<Binary, DB> for Encrypted<T, C>
where
    DB: Backend,
    Vec<u8>: FromSql<Binary, DB>,
{
    fn from_sql(raw: DB::RawValue<'_>) -> deserialize::Result<Self> {
        open_raw::<T, C, DB>(Some(raw))
    }

    fn from_nullable_sql(raw: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        open_raw::<T, C, DB>(raw)
    }
}

impl<T: Sealable, C: Context, DB> FromSql<Nullable<Binary>, DB> for Encrypted<T, C>
where
    DB: Backend,
    Vec<u8>: FromSql<Binary, DB>,
{
    fn from_sql(raw: DB::RawValue<'_>) -> deserialize::Result<Self> {
        open_raw::<T, C, DB>(Some(raw))
    }

    fn from_nullable_sql(raw: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        open_raw::<T, C, DB>(raw)
    }
}

/// The sealed bytes of a value, or `None` for SQL `NULL`.
#[cfg(any(feature = "mysql", feature = "sqlite", feature = "postgres"))]
fn sealed<T: Sealable, C: Context>(
    value: &Encrypted<T, C>,
) -> Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
    value
        .seal()
        .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> {
            match e {
                crate::Error::Decrypt(d) => Box::new(d),
                other => Box::new(other),
            }
        })
}

/// MySQL and PostgreSQL take raw bytes: the freshly sealed ciphertext is
/// written out. (One generic impl over raw-bytes backends would conflict
/// with SQLite's, which coherence cannot rule out for a foreign backend.)
macro_rules! raw_bytes_to_sql {
    ($feature:literal, $backend:ty) => {
        #[cfg(feature = $feature)]
        impl<T: Sealable, C: Context> ToSql<Binary, $backend> for Encrypted<T, C> {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, $backend>) -> serialize::Result {
                use std::io::Write;
                match sealed(self)? {
                    None => Ok(diesel::serialize::IsNull::Yes),
                    Some(bytes) => {
                        out.write_all(&bytes)?;
                        Ok(diesel::serialize::IsNull::No)
                    }
                }
            }
        }
    };
}

raw_bytes_to_sql!("mysql", diesel::mysql::Mysql);
raw_bytes_to_sql!("postgres", diesel::pg::Pg);

/// SQLite binds an owned value.
#[cfg(feature = "sqlite")]
impl<T: Sealable, C: Context> ToSql<Binary, diesel::sqlite::Sqlite> for Encrypted<T, C> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::sqlite::Sqlite>) -> serialize::Result {
        match sealed(self)? {
            None => Ok(diesel::serialize::IsNull::Yes),
            Some(bytes) => {
                out.set_value(bytes);
                Ok(diesel::serialize::IsNull::No)
            }
        }
    }
}

impl<C: Context, DB> FromSql<Binary, DB> for Sealed<C>
where
    DB: Backend,
    Vec<u8>: FromSql<Binary, DB>,
{
    fn from_sql(raw: DB::RawValue<'_>) -> deserialize::Result<Self> {
        <Vec<u8> as FromSql<Binary, DB>>::from_sql(raw).map(Sealed::from_bytes)
    }
}

impl<C: Context, DB> ToSql<Binary, DB> for Sealed<C>
where
    DB: Backend,
    [u8]: ToSql<Binary, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        <[u8] as ToSql<Binary, DB>>::to_sql(self.as_bytes(), out)
    }
}
