//! Unlocking the application's keyring: created on first use, unlocked on
//! every later run, installed for the column types.

use super::{AppError, Session};
use crate::store::audit as settings;
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

/// Unlocks the keyring with `secret`, creating it if the key store has
/// none. `keystore` is the key store's own database when it is apart from
/// `db` (`FIELDSEAL_KEYSTORE_URL`); `per_user` asks for a key per record
/// (`FIELDSEAL_PER_USER_KEYS`), which a keyring created now keeps as its
/// setting. Returns the session, which holds the keyring, and whether the
/// keyring was created now.
///
/// # Errors
/// [`fieldseal::Error::WrongMasterKey`] (as [`AppError::Crypto`]) when the
/// secret does not match; nothing is written in that case.
/// [`AppError::Config`] when the database's keys are kept elsewhere and
/// `keystore` does not say where, or the reverse.
pub fn unlock(
    mut db: Db,
    keystore: Option<(Db, DbUrl)>,
    secret: &MasterSecret,
    per_user: bool,
) -> Result<(Session, bool), AppError> {
    let placed = settings::setting(&mut db, KEYSTORE_SETTING)?;
    match (&keystore, placed.as_deref()) {
        (None, Some(SEPARATE)) => {
            return Err(AppError::Config(
                "this database's keys are kept in another database: set FIELDSEAL_KEYSTORE_URL                  to it"
                    .into(),
            ))
        }
        (Some((_, url)), Some(HERE)) => {
            return Err(AppError::Config(format!(
                "this database keeps its own keys, but FIELDSEAL_KEYSTORE_URL names {url}:                  unset it"
            )))
        }
        _ => {}
    }
    let mut keystore = keystore;
    let separate = keystore.is_some();
    let ks = keystore.as_mut().map_or(&mut db, |(d, _)| d);
    let created = if has_keyring(ks)? {
        false
    } else {
        with_conn!(ks, |conn| KeyStore::open_or_create(
            conn,
            secret,
            KdfParams::default()
        ))?
        .1
    };
    // Derive once (Argon2id for a passphrase): the session keeps the key to
    // load keys a rotation adds later.
    let mut keys = with_conn!(ks, |conn| KeyStoreSession::open(conn, secret))?;
    if !keys.keyring().has_audit_key() {
        // A key store from before audit trails: add its audit key.
        with_conn!(ks, |conn| KeyStore::ensure_audit_key(conn, secret))?;
        with_conn!(ks, |conn| keys.refresh(conn))?;
    }
    settings::set_setting_once(
        &mut db,
        KEYSTORE_SETTING,
        if separate { SEPARATE } else { HERE },
    )?;
    if created || per_user {
        settings::set_setting_once(&mut db, PER_USER_SETTING, if per_user { "1" } else { "0" })?;
    }
    let per_user =
        per_user || settings::setting(&mut db, PER_USER_SETTING)?.as_deref() == Some("1");
    let session = Session::new(db, keys)
        .with_keystore(keystore)
        .with_per_user_keys(per_user);
    Ok((session, created))
}

/// The setting that says where the key store is: [`HERE`] or [`SEPARATE`].
const KEYSTORE_SETTING: &str = "keystore";
const HERE: &str = "here";
const SEPARATE: &str = "separate";
/// The setting that turns per-user keys on ("1") for good.
const PER_USER_SETTING: &str = "per_user_keys";

/// Connects to a key store database apart from the data: the key store's
/// tables (the library's DDL) and nothing else.
///
/// # Errors
/// [`StoreError`] naming the database and the cause.
pub fn connect_keystore(url: &DbUrl) -> Result<Db, StoreError> {
    Db::connect_keystore(url)
}

/// Connects to `url` (applying migrations).
///
/// # Errors
/// [`StoreError`] naming the host and the cause.
pub fn connect(url: &DbUrl) -> Result<Db, StoreError> {
    Db::connect(url)
}
