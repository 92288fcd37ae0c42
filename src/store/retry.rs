//! Transient database errors, and retrying a unit of work that is safe to
//! repeat.
//!
//! A transaction that loses a race is rolled back by the server and can
//! simply run again: a deadlock (MySQL 1213), a lock wait that timed out
//! (1205), and on a Galera cluster a certification failure (reported as
//! 1213), a node that is not ready for queries yet (1047) or one that lost
//! the primary component during a commit (1180). Diesel names
//! only 1213 (`SerializationFailure`); the others arrive as `Unknown`, so
//! [`classify`] asks the server for the error number (`GET DIAGNOSTICS`,
//! on the same connection, before anything else runs) instead of reading
//! the message. [`retry`] runs a unit of work again, with jittered
//! exponential backoff, while it fails that way; each unit is a whole
//! transaction (an import batch with its progress row, a rotation batch,
//! one update), so repeating it never counts or inserts anything twice.

use diesel::connection::SimpleConnection;
use diesel::result::{DatabaseErrorKind, Error};
use diesel::{MysqlConnection, QueryResult, RunQueryDsl};

/// How many times a unit of work is tried before the conflict is reported.
pub const ATTEMPTS: u32 = 8;

/// MySQL/MariaDB error numbers a retry can cure: lock wait timeout,
/// deadlock or cluster certification failure, node not ready (Galera), and
/// a commit the server could not complete (1180: on Galera, a node that
/// lost the primary component for a moment while another node left; the
/// transaction is rolled back).
pub(crate) const TRANSIENT: [i64; 4] = [1205, 1213, 1047, 1180];

/// Whether `e` is a conflict that running the same unit again can cure.
pub fn is_transient(e: &Error) -> bool {
    matches!(
        e,
        Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)
    )
}

/// Reports a MySQL error that a retry can cure as `SerializationFailure`,
/// whatever Diesel called it. Call it on the connection that just failed,
/// before it runs anything else (a rollback included).
pub fn classify(conn: &mut MysqlConnection, e: Error) -> Error {
    let Error::DatabaseError(DatabaseErrorKind::Unknown, info) = e else {
        return e;
    };
    #[derive(diesel::QueryableByName)]
    struct Errno {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
        errno: Option<i64>,
    }
    let errno = conn
        .batch_execute("GET DIAGNOSTICS CONDITION 1 @fieldseal_errno = MYSQL_ERRNO")
        .and_then(|()| {
            diesel::sql_query("SELECT @fieldseal_errno AS errno").get_result::<Errno>(conn)
        })
        .ok()
        .and_then(|r| r.errno);
    let kind = match errno {
        Some(n) if TRANSIENT.contains(&n) => DatabaseErrorKind::SerializationFailure,
        _ => DatabaseErrorKind::Unknown,
    };
    Error::DatabaseError(kind, info)
}

/// Commits the transaction Diesel opened, from inside its closure, so a
/// failed commit is classified before anything else runs on the
/// connection. On a Galera cluster a conflict with another node is found
/// at commit (certification): Diesel's own commit would report it as
/// `Unknown` and roll back, which clears the error number. After this,
/// Diesel's COMMIT finds no open transaction and does nothing.
///
/// # Errors
/// The commit's error, classified.
pub fn commit_now(conn: &mut MysqlConnection) -> QueryResult<()> {
    conn.batch_execute("COMMIT").map_err(|e| classify(conn, e))
}

/// A write transaction that is one retryable unit, on whichever
/// connection: on MySQL a failed statement or commit comes back classified
/// ([`classify`], [`commit_now`]); SQLite takes its write lock up front
/// and waits on its busy timeout instead.
pub trait Classify: Sized {
    /// `e`, marked transient when a retry can cure it.
    fn classify(&mut self, e: Error) -> Error;
    /// Runs `f` in one transaction, failures classified.
    ///
    /// # Errors
    /// `f`'s error or the commit's, classified.
    fn write_unit<T>(&mut self, f: impl FnOnce(&mut Self) -> QueryResult<T>) -> QueryResult<T>;
}

impl Classify for MysqlConnection {
    fn classify(&mut self, e: Error) -> Error {
        classify(self, e)
    }
    fn write_unit<T>(&mut self, f: impl FnOnce(&mut Self) -> QueryResult<T>) -> QueryResult<T> {
        use diesel::Connection;
        self.transaction(|c| {
            let value = f(c).map_err(|e| classify(c, e))?;
            commit_now(c)?;
            Ok(value)
        })
    }
}

impl Classify for diesel::SqliteConnection {
    fn classify(&mut self, e: Error) -> Error {
        e
    }
    fn write_unit<T>(&mut self, f: impl FnOnce(&mut Self) -> QueryResult<T>) -> QueryResult<T> {
        self.immediate_transaction(f)
    }
}

/// Runs `unit` until it succeeds, fails for good, or has failed
/// [`ATTEMPTS`] times with a transient conflict (then that error is
/// returned). `unit` must be safe to repeat: a whole transaction.
///
/// # Errors
/// The unit's last error.
pub fn retry<T>(unit: impl FnMut() -> QueryResult<T>) -> QueryResult<T> {
    retry_if(is_transient, unit)
}

/// [`retry`] for a unit whose error wraps a database error (the library's
/// key-store calls): `transient` says which errors a retry can cure.
///
/// # Errors
/// The unit's last error.
pub fn retry_if<T, E>(
    transient: impl Fn(&E) -> bool,
    mut unit: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut attempt = 0;
    loop {
        match unit() {
            Err(e) if transient(&e) && attempt + 1 < ATTEMPTS => {
                backoff(attempt);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Sleeps 10 ms doubling per attempt (at most about 1.3 s), times a random
/// factor between 0.5 and 1.5, so two losers do not collide again in step.
fn backoff(attempt: u32) {
    let base = 10u64 << attempt.min(7);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let jitter = 500 + u64::from((nanos ^ std::process::id()) % 1000);
    std::thread::sleep(std::time::Duration::from_millis(base * jitter / 1000));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_transient_errors_only_and_gives_up() {
        let transient = || {
            Error::DatabaseError(
                DatabaseErrorKind::SerializationFailure,
                Box::new("Deadlock found when trying to get lock".to_owned()),
            )
        };
        let mut calls = 0;
        let result: QueryResult<u32> = retry(|| {
            calls += 1;
            if calls < 3 {
                Err(transient())
            } else {
                Ok(7)
            }
        });
        assert_eq!(result.ok(), Some(7));
        assert_eq!(calls, 3);

        let mut calls = 0;
        let result: QueryResult<()> = retry(|| {
            calls += 1;
            Err(Error::NotFound)
        });
        assert!(matches!(result, Err(Error::NotFound)));
        assert_eq!(calls, 1, "a lasting error is not retried");

        let mut calls = 0;
        let result: QueryResult<()> = retry(|| {
            calls += 1;
            Err(transient())
        });
        assert!(is_transient(&result.unwrap_err()));
        assert_eq!(calls, ATTEMPTS);
    }
}
