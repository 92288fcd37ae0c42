//! The Diesel impls of [`Encrypted`]: one generic `FromSql` built on
//! `Vec<u8>`'s, one short `ToSql` per backend.

use super::{into_diesel_error, Context, Encrypted, Sealable};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, IsNull, Output, ToSql};
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
    Encrypted::open(bytes.as_deref()).map_err(into_diesel_error)
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

type Sealed = Result<Option<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>>;

fn sealed<T: Sealable, C: Context>(value: &Encrypted<T, C>) -> Sealed {
    value.seal().map_err(into_diesel_error)
}

#[cfg(feature = "mysql")]
impl<T: Sealable, C: Context> ToSql<Binary, diesel::mysql::Mysql> for Encrypted<T, C> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::mysql::Mysql>) -> serialize::Result {
        use std::io::Write;
        match sealed(self)? {
            None => Ok(IsNull::Yes),
            Some(bytes) => {
                out.write_all(&bytes)?;
                Ok(IsNull::No)
            }
        }
    }
}

#[cfg(feature = "postgres")]
impl<T: Sealable, C: Context> ToSql<Binary, diesel::pg::Pg> for Encrypted<T, C> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::pg::Pg>) -> serialize::Result {
        use std::io::Write;
        match sealed(self)? {
            None => Ok(IsNull::Yes),
            Some(bytes) => {
                out.write_all(&bytes)?;
                Ok(IsNull::No)
            }
        }
    }
}

#[cfg(feature = "sqlite")]
impl<T: Sealable, C: Context> ToSql<Binary, diesel::sqlite::Sqlite> for Encrypted<T, C> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, diesel::sqlite::Sqlite>) -> serialize::Result {
        match sealed(self)? {
            None => Ok(IsNull::Yes),
            Some(bytes) => {
                out.set_value(bytes);
                Ok(IsNull::No)
            }
        }
    }
}
