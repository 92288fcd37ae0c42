//! Application services: add, list, find, update, delete, export, unlock.
//! No terminal I/O and no SQL here: the CLI and REPL call these, and these
//! call [`crate::store`] and the keyring.

mod error;
pub mod import;
pub mod keys;
pub mod record;
pub mod records;
pub mod rotate;

pub use error::AppError;
pub use record::{Record, RecordInput};

use crate::store::Db;
use fieldseal::Keyring;
use std::sync::Arc;

/// An open database with its unlocked keyring: what every service needs.
pub struct Session {
    /// The database.
    pub db: Db,
    /// The unlocked keyring, passed explicitly to every seal and open.
    pub keyring: Arc<Keyring>,
    /// The master key that unlocked it, to load keys added later (a
    /// rotation in another process) without asking for the passphrase.
    master: fieldseal::MasterSecret,
}

impl Session {
    /// An open session. `master` must be the key that unlocked `keyring`.
    pub fn new(db: Db, keyring: Arc<Keyring>, master: fieldseal::MasterSecret) -> Self {
        Session {
            db,
            keyring,
            master,
        }
    }

    /// Loads the key store again, so keys another process added since
    /// (a rotation) can open rows. Returns whether the keyring changed.
    ///
    /// # Errors
    /// Database and key store errors.
    pub fn reload_keyring(&mut self) -> Result<bool, AppError> {
        let fresh = crate::with_conn!(&mut self.db, |c| fieldseal::KeyStore::unlock(
            c,
            &self.master
        ))?;
        let changed = fresh.key_ids().ne(self.keyring.key_ids());
        if changed {
            self.keyring = Arc::new(fresh);
        }
        Ok(changed)
    }

    /// The master key that unlocked this session.
    pub fn master(&self) -> &fieldseal::MasterSecret {
        &self.master
    }
}
