//! Application services: add, list, find, update, delete, export, unlock.
//! No terminal I/O and no SQL here: the CLI and REPL call these, and these
//! call [`crate::store`] and the keyring.

mod error;
pub mod import;
pub mod keys;
pub mod record;
pub mod records;

pub use error::AppError;
pub use record::{Record, RecordInput};

use crate::store::Db;
use crate::Keyring;
use std::sync::Arc;

/// An open database with its unlocked keyring: what every service needs.
pub struct Session {
    /// The database.
    pub db: Db,
    /// The unlocked keyring (also installed process-wide for the column types).
    pub keyring: Arc<Keyring>,
}
