//! Leases (`fieldseal_locks`): one process at a time runs a long operation
//! such as a key rotation, across processes and cluster nodes, and a
//! crashed holder never blocks it for long.
//!
//! A lease is a row named after the operation. Taking it is an INSERT, so
//! two takers conflict on the primary key (on a cluster, at
//! certification). The holder refreshes it as it works; it goes stale
//! after [`STALE_AFTER_SECS`] without a refresh, or at once when its
//! holder ran on this host and that process is gone (a `kill -9`), and a
//! stale lease is taken over with a compare-and-swap on its holder.

use super::schema::fieldseal_locks;
use super::Db;
use crate::with_conn;
use diesel::prelude::*;

/// A lease nobody refreshed for this long may be taken over.
pub const STALE_AFTER_SECS: i64 = 60;

/// A lease this process holds.
#[derive(Debug)]
pub struct Lease {
    name: &'static str,
    holder: Vec<u8>,
}

/// Who holds a lease someone else has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The host its process runs on.
    pub host: String,
    /// Its process id.
    pub pid: i64,
    /// When it took the lease (Unix seconds).
    pub acquired_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = fieldseal_locks)]
struct LockRow {
    name: String,
    holder: Vec<u8>,
    host: String,
    pid: i64,
    acquired_at: i64,
    heartbeat_at: i64,
}

/// Takes the lease `name`, or says who holds it.
///
/// # Errors
/// Database errors.
pub fn acquire(db: &mut Db, name: &'static str) -> QueryResult<Result<Lease, Holder>> {
    // Tells this taking of the lease from any other: the time to the
    // nanosecond, and this process.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let token = (nanos ^ (u128::from(std::process::id()) << 96)).to_be_bytes();
    let now = unix_now();
    let mine = LockRow {
        name: name.to_owned(),
        holder: token.to_vec(),
        host: host_name(),
        pid: i64::from(std::process::id()),
        acquired_at: now,
        heartbeat_at: now,
    };
    let lease = || Lease {
        name,
        holder: token.to_vec(),
    };
    for _ in 0..5 {
        let inserted = with_conn!(&mut *db, |c| diesel::insert_into(fieldseal_locks::table)
            .values(mine.clone())
            .execute(c));
        match inserted {
            Ok(_) => return Ok(Ok(lease())),
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation
                | diesel::result::DatabaseErrorKind::SerializationFailure,
                _,
            )) => {}
            Err(e) => return Err(e),
        }
        let Some(current) = with_conn!(&mut *db, |c| fieldseal_locks::table
            .find(name)
            .select(LockRow::as_select())
            .first(c)
            .optional())?
        else {
            continue; // released meanwhile: try again
        };
        if !is_stale(&current, now) {
            return Ok(Err(Holder {
                host: current.host,
                pid: current.pid,
                acquired_at: current.acquired_at,
            }));
        }
        // Take it over, only if nobody else did first.
        let taken = with_conn!(&mut *db, |c| diesel::update(
            fieldseal_locks::table
                .filter(fieldseal_locks::name.eq(name))
                .filter(fieldseal_locks::holder.eq(&current.holder))
        )
        .set((
            fieldseal_locks::holder.eq(&mine.holder),
            fieldseal_locks::host.eq(&mine.host),
            fieldseal_locks::pid.eq(mine.pid),
            fieldseal_locks::acquired_at.eq(now),
            fieldseal_locks::heartbeat_at.eq(now),
        ))
        .execute(c))?;
        if taken == 1 {
            return Ok(Ok(lease()));
        }
    }
    let current = with_conn!(&mut *db, |c| fieldseal_locks::table
        .find(name)
        .select(LockRow::as_select())
        .first(c))?;
    Ok(Err(Holder {
        host: current.host,
        pid: current.pid,
        acquired_at: current.acquired_at,
    }))
}

/// Refreshes a lease; `false` when it is no longer this process's (it went
/// stale and another process took it over).
///
/// # Errors
/// Database errors.
pub fn refresh(db: &mut Db, lease: &Lease) -> QueryResult<bool> {
    let now = unix_now();
    with_conn!(db, |c| diesel::update(
        fieldseal_locks::table
            .filter(fieldseal_locks::name.eq(lease.name))
            .filter(fieldseal_locks::holder.eq(&lease.holder))
    )
    .set(fieldseal_locks::heartbeat_at.eq(now))
    .execute(c))
    .map(|n| n == 1)
}

/// Gives a lease up.
///
/// # Errors
/// Database errors.
pub fn release(db: &mut Db, lease: Lease) -> QueryResult<()> {
    with_conn!(db, |c| diesel::delete(
        fieldseal_locks::table
            .filter(fieldseal_locks::name.eq(lease.name))
            .filter(fieldseal_locks::holder.eq(&lease.holder))
    )
    .execute(c))
    .map(drop)
}

fn is_stale(row: &LockRow, now: i64) -> bool {
    if now - row.heartbeat_at > STALE_AFTER_SECS {
        return true;
    }
    // Same host: a holder whose process is gone is stale at once.
    row.host == host_name() && !process_exists(row.pid)
}

/// Whether process `pid` runs on this host (Linux: its /proc entry).
fn process_exists(pid: i64) -> bool {
    let proc_root = std::path::Path::new("/proc/self");
    if !proc_root.exists() {
        return true; // cannot tell: rely on the lease going stale
    }
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this host".to_owned())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
