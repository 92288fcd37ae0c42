//! Unlocking the application's keyring: created on first use, unlocked on
//! every later run, installed for the column types.

use super::{AppError, Session};
use crate::store::{Db, DbUrl, StoreError};
use crate::with_conn;
use fieldseal::{KdfParams, KeyStore, KeyStoreSession, MasterSecret};

/// Whether this database already has a keyring (so the caller knows to ask
/// for a new passphrase twice, or for the existing one once).
///
/// # Errors
/// Database errors.
pub fn has_keyring(db: &mut Db) -> Result<bool, AppError> {
    Ok(with_conn!(db, |conn| KeyStore::is_initialized(conn))?)
}

/// Unlocks the keyring with `secret`, creating it if the database has none.
/// Returns the session, which holds the keyring, and whether the keyring
/// was created now.
///
/// # Errors
/// [`fieldseal::Error::WrongMasterKey`] (as [`AppError::Crypto`]) when the
/// secret does not match; nothing is written in that case.
pub fn unlock(mut db: Db, secret: &MasterSecret) -> Result<(Session, bool), AppError> {
    let created = if has_keyring(&mut db)? {
        false
    } else {
        with_conn!(&mut db, |conn| KeyStore::open_or_create(
            conn,
            secret,
            KdfParams::default()
        ))?
        .1
    };
    // Derive once (Argon2id for a passphrase): the session keeps the key to
    // load keys a rotation adds later.
    let keys = with_conn!(&mut db, |conn| KeyStoreSession::open(conn, secret))?;
    Ok((Session::new(db, keys), created))
}

/// Connects to `url` (applying migrations).
///
/// # Errors
/// [`StoreError`] naming the host and the cause.
pub fn connect(url: &DbUrl) -> Result<Db, StoreError> {
    Db::connect(url)
}
