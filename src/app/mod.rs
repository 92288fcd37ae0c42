//! Application services: add, list, find, update, delete, export, unlock.
//! No terminal I/O and no SQL here: the CLI and REPL call these, and these
//! call [`crate::store`] and the keyring.

pub mod adopt;
pub mod audit;
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
    /// The key store's database when it is not `db`
    /// (`FIELDSEAL_KEYSTORE_URL`).
    keystore: Option<Db>,
    /// Where the key store is, when apart from `db`.
    keystore_url: Option<crate::store::DbUrl>,
    /// Whether new records get their own key (per-user keys).
    per_user: bool,
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
            keystore: None,
            keystore_url: None,
            per_user: false,
        }
    }

    /// The session with its key store in another database.
    #[must_use]
    pub fn with_keystore(mut self, keystore: Option<(Db, crate::store::DbUrl)>) -> Self {
        if let Some((db, url)) = keystore {
            self.keystore = Some(db);
            self.keystore_url = Some(url);
        }
        self
    }

    /// The session sealing each new record under a key of its own.
    #[must_use]
    pub fn with_per_user_keys(mut self, on: bool) -> Self {
        self.per_user = on;
        self
    }

    /// Whether new records get a key of their own (per-user keys).
    pub fn per_user_keys(&self) -> bool {
        self.per_user
    }

    /// The database that holds the key store: `db`, or the one
    /// `FIELDSEAL_KEYSTORE_URL` names.
    pub fn keystore_db(&mut self) -> &mut Db {
        self.keystore.as_mut().unwrap_or(&mut self.db)
    }

    /// The key store's database with the master key, borrowed together
    /// (a key-store write needs both).
    pub(crate) fn keystore_and_master(&mut self) -> (&mut Db, &fieldseal::MasterSecret) {
        (
            self.keystore.as_mut().unwrap_or(&mut self.db),
            self.keys.master(),
        )
    }

    /// Where the key store is, when it is apart from the data.
    pub fn keystore_url(&self) -> Option<&crate::store::DbUrl> {
        self.keystore_url.as_ref()
    }

    /// Stores record keys (wrapped) in the key store, retrying a transient
    /// conflict.
    ///
    /// # Errors
    /// Database errors.
    pub fn store_record_keys(
        &mut self,
        keys: &[fieldseal::WrappedRecordKey],
    ) -> Result<(), AppError> {
        self.keystore_unit(|db| crate::with_conn!(db, |c| fieldseal::RecordKeys::store(c, keys)))
    }

    /// Removes stored record keys whose rows were refused after the keys
    /// were stored (they seal nothing): those in `stored` and not in `kept`.
    ///
    /// # Errors
    /// Database errors.
    pub fn discard_record_keys(
        &mut self,
        stored: impl IntoIterator<Item = u64>,
        kept: &std::collections::HashSet<u64>,
    ) -> Result<(), AppError> {
        let unused: Vec<u64> = stored.into_iter().filter(|r| !kept.contains(r)).collect();
        if unused.is_empty() {
            return Ok(());
        }
        self.keystore_unit(|db| {
            crate::with_conn!(db, |c| fieldseal::RecordKeys::discard(c, &unused))
        })
    }

    /// Runs one key-store unit of work (a whole transaction) on the key
    /// store's database, again while the database reports a transient
    /// conflict (as [`crate::store::retry::retry`] does for the data).
    ///
    /// # Errors
    /// The unit's last error; a conflict that outlasted the retries as
    /// [`AppError::Busy`].
    pub(crate) fn keystore_unit<T>(
        &mut self,
        mut unit: impl FnMut(&mut Db) -> fieldseal::Result<T>,
    ) -> Result<T, AppError> {
        use crate::store::retry::{is_transient, retry_if};
        let db = self.keystore_db();
        retry_if(
            |e: &fieldseal::Error| matches!(e, fieldseal::Error::Database(d) if is_transient(d)),
            || unit(&mut *db),
        )
        .map_err(|e| match e {
            fieldseal::Error::Database(d) => d.into(),
            other => other.into(),
        })
    }

    /// A new record key, stored (wrapped) in the key store before anything
    /// is sealed under it.
    ///
    /// # Errors
    /// Database and key store errors.
    pub fn new_record_key(&mut self) -> Result<fieldseal::RecordKey, AppError> {
        let (key, wrapped) = self.keyring.new_record_key()?;
        self.store_record_keys(std::slice::from_ref(&wrapped))?;
        Ok(key)
    }

    /// The record keys of these references, loaded and unwrapped (the key
    /// store loaded again first when one is wrapped by a data key this
    /// session has not seen: a rotation elsewhere).
    ///
    /// # Errors
    /// Database and key store errors; a wrap that does not open.
    pub fn record_keys(&mut self, references: &[u64]) -> Result<fieldseal::RecordKeys, AppError> {
        if references.is_empty() {
            return Ok(fieldseal::RecordKeys::new());
        }
        let load = |session: &mut Session| {
            let keyring = Arc::clone(&session.keyring);
            crate::with_conn!(session.keystore_db(), |c| fieldseal::RecordKeys::load(
                c,
                &keyring,
                references.iter().copied()
            ))
        };
        match load(self) {
            // Wrapped by a data key this session has not loaded yet.
            Err(fieldseal::Error::Decrypt(_)) => {
                self.refresh()?;
                Ok(load(self)?)
            }
            other => Ok(other?),
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
        let db = self.keystore.as_mut().unwrap_or(&mut self.db);
        let changed = crate::with_conn!(db, |c| keys.refresh(c))?;
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
