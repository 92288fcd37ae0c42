//! Errors of the services: one clear sentence each, naming the field or
//! the record, never a plaintext.

use fieldseal::DecryptError;

/// What a service can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// A field of the input is invalid. `message` is a whole sentence that
    /// names the field; it never repeats a name or email back.
    #[error("{message}")]
    Invalid {
        /// `name`, `email` or `age`.
        field: &'static str,
        /// The sentence to show.
        message: String,
    },
    /// No record has this id.
    #[error("no record with id {0}")]
    NotFound(i64),
    /// The person stopped the work (Ctrl-C at the prompt) at a point where
    /// everything written so far is consistent.
    #[error("stopped by Ctrl-C")]
    Interrupted,
    /// Other writers kept changing the record while an update tried to
    /// apply; nothing was written.
    #[error(
        "record {0} kept changing under other writers while this update tried to apply; \
         nothing was written: run it again"
    )]
    Conflict(i64),
    /// Another key rotation holds the rotation lease.
    #[error(
        "another key rotation is running (process {pid} on {host}, for {running_secs} s); \
         wait for it to finish (running this again afterwards finishes anything left)"
    )]
    RotationRunning {
        /// Its host.
        host: String,
        /// Its process id.
        pid: i64,
        /// How long it has held the lease.
        running_secs: i64,
    },
    /// This rotation's lease went stale and another process took it over.
    #[error("another process took over this key rotation; it goes on there")]
    RotationTakenOver,
    /// A stored value of a record does not decrypt.
    #[error("record {id}: {reason}")]
    Decrypt {
        /// The record's id.
        id: i64,
        /// Which column and why (in the message, so not also a `source`).
        reason: DecryptError,
    },
    /// Keyring or crypto failure.
    #[error(transparent)]
    Crypto(#[from] fieldseal::Error),
    /// The database kept reporting a conflict with another writer (a
    /// deadlock, a lock wait timeout, a cluster certification failure)
    /// after every retry; the unit of work was rolled back.
    #[error(
        "the database reported a conflict with another writer {attempts} times in a row (a \
         deadlock, a lock wait timeout or a cluster certification failure); nothing of this \
         step was written: run the command again (an import: with --resume)"
    )]
    Busy {
        /// How many times it was tried.
        attempts: u32,
    },
    /// The operation was done, but its audit entry could not be written.
    #[error("{operation}: done, but the audit trail could not record it: {cause}")]
    Audit {
        /// The operation.
        operation: &'static str,
        /// Why.
        cause: String,
    },
    /// The configuration does not fit the database (one sentence).
    #[error("{0}")]
    Config(String),
    /// The record's key was destroyed (`forget`): its values are gone.
    #[error("record {0} was erased (its key was destroyed): it cannot be read")]
    Erased(i64),
    /// The database failed. The message is the server's, once (it is not
    /// also a `source`, so a chain of causes never repeats it).
    #[error("database error: {0}")]
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        if crate::store::retry::is_transient(&e) {
            AppError::Busy {
                attempts: crate::store::retry::ATTEMPTS,
            }
        } else {
            AppError::Database(e)
        }
    }
}

impl AppError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        AppError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// A short fixed description of the failure for the audit trail: the
    /// kind, never the message (which may name a field's problem).
    pub fn kind(&self) -> &'static str {
        match self {
            AppError::Invalid { field, .. } => match *field {
                "name" => "invalid name",
                "email" => "invalid email",
                "age" => "invalid age",
                _ => "invalid input",
            },
            AppError::NotFound(_) => "no such record",
            AppError::Interrupted => "interrupted",
            AppError::Conflict(_) => "concurrent changes",
            AppError::RotationRunning { .. } => "another rotation is running",
            AppError::RotationTakenOver => "rotation taken over",
            AppError::Decrypt { .. } => "a value did not decrypt",
            AppError::Crypto(_) => "key or crypto error",
            AppError::Busy { .. } => "database conflicts",
            AppError::Audit { .. } => "audit trail error",
            AppError::Erased(_) => "record erased",
            AppError::Config(_) => "configuration",
            AppError::Database(_) => "database error",
        }
    }

    /// The field an [`AppError::Invalid`] is about.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            AppError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}
