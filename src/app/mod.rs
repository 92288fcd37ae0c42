//! Application services: add, list, find, update, delete, export, unlock.
//! No terminal I/O and no SQL here: the CLI and REPL call these, and these
//! call [`crate::store`] and the keyring.

pub mod adopt;
mod error;
pub mod import;
pub mod keys;
pub mod record;
pub mod records;
pub mod rotate;

pub use error::AppError;
pub use record::{Record, RecordInput};

use crate::store::Db;
use fieldseal::{KeyStoreSession, Keyring};
use std::sync::Arc;

/// An open database with its unlocked keyring: what every service needs.
pub struct Session {
    /// The database.
    pub db: Db,
    /// The unlocked keyring, passed explicitly to every seal and open; kept
    /// current by [`Session::refresh`].
    pub keyring: Arc<Keyring>,
    /// The library's view of the key store, which notices keys another
    /// process added (a rotation, an index-key rotation).
    keys: KeyStoreSession,
    /// Where `db` connects, for work that opens a connection of its own
    /// (an import's bulk loader); `None` when unknown.
    url: Option<crate::store::DbUrl>,
    /// Set (by a Ctrl-C handler) to stop long work at its next consistent
    /// point: an import or rotation between batches, an export between
    /// pages.
    interrupt: Arc<std::sync::atomic::AtomicBool>,
}

impl Session {
    /// An open session over `db`, whose key store `keys` unlocked.
    pub fn new(db: Db, keys: KeyStoreSession) -> Self {
        Session {
            db,
            keyring: Arc::clone(keys.keyring()),
            keys,
            url: None,
            interrupt: Arc::default(),
        }
    }

    /// The flag that stops long work (see [`Session::check_interrupt`]);
    /// a Ctrl-C handler sets it. Cleared by [`Session::clear_interrupt`].
    pub fn interrupt_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        Arc::clone(&self.interrupt)
    }

    /// Clears the interrupt flag before new work starts.
    pub fn clear_interrupt(&self) {
        self.interrupt
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// [`AppError::Interrupted`] when the interrupt flag is set.
    ///
    /// # Errors
    /// [`AppError::Interrupted`].
    pub fn check_interrupt(&self) -> Result<(), AppError> {
        if self.interrupt.load(std::sync::atomic::Ordering::SeqCst) {
            Err(AppError::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Remembers where the database is, so work that needs a connection of
    /// its own (an import's LOAD DATA batches) can open one.
    #[must_use]
    pub fn with_url(mut self, url: crate::store::DbUrl) -> Self {
        self.url = Some(url);
        self
    }

    /// Where the database is, when known.
    pub fn url(&self) -> Option<&crate::store::DbUrl> {
        self.url.as_ref()
    }

    /// Unlocks the key store again if another process changed it since
    /// (a rotation of the data or the blind-index key): one small query
    /// when nothing changed. Every lookup and write calls it first, so a
    /// long-running prompt never misses a record or a duplicate email
    /// indexed under a key it has not seen. Returns whether it changed.
    ///
    /// # Errors
    /// Database and key store errors.
    pub fn refresh(&mut self) -> Result<bool, AppError> {
        let keys = &mut self.keys;
        let changed = crate::with_conn!(&mut self.db, |c| keys.refresh(c))?;
        if changed {
            self.keyring = Arc::clone(self.keys.keyring());
        }
        Ok(changed)
    }

    /// The master key that unlocked this session (derived once; never the
    /// passphrase itself).
    pub fn master(&self) -> &fieldseal::MasterSecret {
        self.keys.master()
    }
}
