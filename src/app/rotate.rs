//! Key lifecycle: status, rotation of the data key, and the change of the
//! master key or passphrase.
//!
//! Rotation is online and crash-safe:
//! 1. a new data key is added and made active (one transaction), unless an
//!    earlier rotation was interrupted, which is then simply finished;
//! 2. rows sealed under older keys are re-encrypted in batches, each its
//!    own transaction, each row written with a compare-and-swap on the
//!    ciphertexts that were read, so a concurrent update always wins;
//! 3. once no row uses them, older keys are marked retired (they stay in
//!    the key store, so an old backup still opens).
//!
//! Every row decrypts at every moment: old keys stay in the keyring, and
//! the new key is stored before any row uses it.

use super::audit::{audited, Op};
use super::records::open_field;
use super::{AppError, Session};
use crate::store::locks::{self, Lease};
use crate::store::retry::retry;
use crate::store::users::{self, Reseal};
use crate::with_conn;
use fieldseal::{Context, KdfParams, KeyStore, MasterSecret, RecordKeys, Sealed};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Random 96-bit nonces: one key should seal at most 2^32 values. Status
/// warns from half of that.
pub const NONCE_WARNING: i64 = 1 << 31;

/// One data key in a status report.
#[derive(Debug, Clone)]
pub struct KeyLine {
    /// Key id.
    pub id: u32,
    /// `active`, `decrypt-only` or `retired`.
    pub state: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Rows sealed under it now.
    pub rows: i64,
    /// Values (names and emails) sealed under it now.
    pub values: i64,
}

/// What `keys status` shows.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    /// Every data key, by id.
    pub data_keys: Vec<KeyLine>,
    /// Current blind-index key version.
    pub index_version: Option<u32>,
    /// Rows whose key id names no stored key (should be none).
    pub orphan_rows: i64,
    /// The Argon2id cost of the stored passphrase.
    pub kdf: KdfParams,
    /// Whether new records get a key of their own.
    pub per_user: bool,
    /// Rows sealed under a key of their own.
    pub own_key_rows: i64,
    /// Record keys in the key store (not erased).
    pub record_keys: u64,
    /// Record keys erased (records forgotten).
    pub erased_keys: u64,
}

/// Keys, their states and how much each protects.
///
/// # Errors
/// Database errors.
pub fn status(session: &mut Session) -> Result<KeyStatus, AppError> {
    let keys = with_conn!(session.keystore_db(), |c| KeyStore::keys(c))?;
    let counts = users::count_by_key(&mut session.db)?;
    let mut data_keys: Vec<KeyLine> = keys
        .iter()
        .filter(|k| k.purpose == fieldseal::PURPOSE_DATA)
        .map(|k| {
            let (rows, emails) = counts
                .iter()
                .find(|(id, _, _)| *id == i64::from(k.id))
                .map_or((0, 0), |(_, rows, emails)| (*rows, *emails));
            KeyLine {
                id: k.id,
                state: k.state.clone(),
                created_at: k.created_at,
                rows,
                values: rows + emails,
            }
        })
        .collect();
    data_keys.sort_by_key(|k| k.id);
    let known: Vec<i64> = data_keys.iter().map(|k| i64::from(k.id)).collect();
    let orphan_rows: i64 = counts
        .iter()
        .filter(|(id, _, _)| !known.contains(id))
        .map(|(_, rows, _)| rows)
        .sum();
    let index_version = keys
        .iter()
        .filter(|k| k.purpose == fieldseal::PURPOSE_INDEX)
        .map(|k| k.id)
        .max();
    let kdf = with_conn!(session.keystore_db(), |c| KeyStore::kdf_params(c))?;
    let (record_keys, erased_keys) = with_conn!(session.keystore_db(), |c| RecordKeys::count(c))?;
    let own_key_rows = counts
        .iter()
        .find(|(id, _, _)| *id == users::OWN_KEY)
        .map_or(0, |(_, rows, _)| *rows);
    Ok(KeyStatus {
        data_keys,
        index_version,
        orphan_rows: orphan_rows - own_key_rows,
        kdf,
        per_user: session.per_user_keys(),
        own_key_rows,
        record_keys,
        erased_keys,
    })
}

/// Where a rotation is.
#[derive(Debug, Clone, Copy, Default)]
pub struct RotateProgress {
    /// Rows re-encrypted so far.
    pub rewritten: u64,
    /// Rows still under older keys when this pass started.
    pub pending: u64,
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct RotateReport {
    /// The key created now, or `None` when an interrupted rotation was
    /// finished instead.
    pub new_key: Option<u32>,
    /// The active key at the end.
    pub active: u32,
    /// Rows re-encrypted.
    pub rewritten: u64,
    /// Record keys re-wrapped (per-user keys; their rows are untouched).
    pub rewrapped: u64,
    /// Rows a concurrent writer changed while they were being re-encrypted
    /// (left to the writer, then picked up by a later pass if still old).
    pub raced: u64,
    /// Keys retired at the end.
    pub retired: Vec<u32>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Rotates the data key: see the module docs. The session's master key
/// unlocks the key store to add the new key. Safe to kill at any moment;
/// running it again finishes the work.
///
/// # Errors
/// [`AppError::Crypto`] from the key store; decryption errors name the
/// row; database errors. A batch that fails is rolled back whole.
pub fn rotate(
    session: &mut Session,
    batch_size: usize,
    on_progress: &mut dyn FnMut(&RotateProgress),
) -> Result<RotateReport, AppError> {
    audited(
        session,
        Op::Rotate,
        None,
        |s| with_lease(s, |s, lease| rotate_data(s, lease, batch_size, on_progress)),
        |r| {
            let detail = format!(
                "to data key {}: {} rows re-encrypted, {} own keys re-wrapped",
                r.active, r.rewritten, r.rewrapped
            );
            (
                None,
                Some(i64::try_from(r.rewritten + r.rewrapped).unwrap_or(i64::MAX)),
                detail,
            )
        },
    )
}

fn rotate_data(
    session: &mut Session,
    lease: &Lease,
    batch_size: usize,
    on_progress: &mut dyn FnMut(&RotateProgress),
) -> Result<RotateReport, AppError> {
    let started = Instant::now();
    // Another process may have rotated already.
    session.refresh()?;
    let mut new_key = None;
    let active = i64::from(session.keyring.active_key_id());
    let wrapping = with_conn!(session.keystore_db(), |c| RecordKeys::wrapping_key_ids(c))?;
    let keys_done = wrapping.iter().all(|&id| i64::from(id) == active);
    if keys_done && users::count_not_under(&mut session.db, active)? == 0 {
        let (ks, master) = session.keystore_and_master();
        let ring = with_conn!(ks, |c| KeyStore::add_data_key(c, master))?;
        new_key = Some(ring.active_key_id());
        session.refresh()?;
    }
    let active = session.keyring.active_key_id();
    // Records with keys of their own: their keys are wrapped again under
    // the new data key, and their rows are not touched.
    let rewrapped = rewrap_record_keys(session, lease, batch_size, on_progress)?;
    let pass = DataPass {
        active: i64::from(active),
    };
    let (mut rewritten, mut raced) = run_passes(&pass, session, lease, batch_size, on_progress)?;
    // The key_id column is not authenticated: rows it calls done whose
    // ciphertext headers name another key are re-encrypted too. One scan
    // tells whether there are any, and which keys the headers still name.
    let mut census = users::header_census(&mut session.db)?;
    let mismatched = |census: &[users::HeaderCensus]| {
        census.iter().any(|c| {
            (c.key_id == i64::from(active)
                && [Some(c.name_key), c.email_key.map(Some)]
                    .into_iter()
                    .flatten()
                    .any(|k| k != Some(active)))
                // A row marked as under its own key whose value names a
                // data key.
                || (c.key_id == users::OWN_KEY && c.name_key.is_some())
        })
    };
    if mismatched(&census) && users::mark_header_mismatches(&mut session.db, active)? > 0 {
        let (more, more_raced) = run_passes(&pass, session, lease, batch_size, on_progress)?;
        rewritten += more;
        raced += more_raced;
        census = users::header_census(&mut session.db)?;
    }
    // Keep the active key, and any key a ciphertext still names (a
    // concurrent writer with an older keyring): "retired" means no stored
    // value uses it, as its own header says.
    let mut keep = vec![active];
    keep.extend(
        census
            .iter()
            .flat_map(|c| [c.name_key, c.email_key])
            .flatten(),
    );
    // And any data key that still wraps a record key (one a writer with an
    // older keyring stored meanwhile).
    keep.extend(with_conn!(session.keystore_db(), |c| {
        RecordKeys::wrapping_key_ids(c)
    })?);
    let (ks, master) = session.keystore_and_master();
    let retired = with_conn!(ks, |c| KeyStore::retire_data_keys_except(c, master, &keep))?;
    Ok(RotateReport {
        new_key,
        active,
        rewritten,
        rewrapped,
        raced,
        retired,
        elapsed: started.elapsed(),
    })
}

/// Rotates the blind-index key: a new index key version becomes current
/// (unless an interrupted index rotation is finished instead), then every
/// row's `name_bidx` and `email_bidx` are recomputed under it, in batches,
/// each row a compare-and-swap on its ciphertexts. While it runs, `find`
/// and the duplicate-email check consult every version, so no lookup
/// misses and no duplicate slips in. Older versions are retired at the end.
///
/// # Errors
/// As [`rotate`]; a unique violation if two rows hold the same email.
pub fn rotate_index(
    session: &mut Session,
    batch_size: usize,
    on_progress: &mut dyn FnMut(&RotateProgress),
) -> Result<RotateReport, AppError> {
    audited(
        session,
        Op::Rotate,
        None,
        |s| {
            with_lease(s, |s, lease| {
                rotate_index_keys(s, lease, batch_size, on_progress)
            })
        },
        |r| {
            let detail = format!("to index key {}: {} rows re-indexed", r.active, r.rewritten);
            (
                None,
                Some(i64::try_from(r.rewritten).unwrap_or(i64::MAX)),
                detail,
            )
        },
    )
}

fn rotate_index_keys(
    session: &mut Session,
    lease: &Lease,
    batch_size: usize,
    on_progress: &mut dyn FnMut(&RotateProgress),
) -> Result<RotateReport, AppError> {
    let started = Instant::now();
    session.refresh()?;
    let mut new_key = None;
    let current = i64::from(session.keyring.index_version().unwrap_or(1));
    if users::count_not_indexed_under(&mut session.db, current)? == 0 {
        let (ks, master) = session.keystore_and_master();
        let ring = with_conn!(ks, |c| KeyStore::add_index_key(c, master))?;
        new_key = ring.index_version();
        session.refresh()?;
    }
    let version = session.keyring.index_version().unwrap_or(1);
    let (rewritten, raced) = run_passes(
        &IndexPass { version },
        session,
        lease,
        batch_size,
        on_progress,
    )?;
    let (ks, master) = session.keystore_and_master();
    let retired = with_conn!(ks, |c| KeyStore::retire_index_keys_except(
        c,
        master,
        &[version]
    ))?;
    Ok(RotateReport {
        new_key,
        active: version,
        rewritten,
        rewrapped: 0,
        raced,
        retired,
        elapsed: started.elapsed(),
    })
}

/// How often a running rotation refreshes its lease (it goes stale after
/// [`locks::STALE_AFTER_SECS`]).
const LEASE_REFRESH: Duration = Duration::from_secs(10);

/// The name of the lease every key rotation holds while it runs.
const ROTATION_LEASE: &str = "key-rotation";

/// Runs `f` holding the rotation lease, so two rotations (of the data key
/// or of the index key, from any process or cluster node) never run at
/// once: the second is told who runs the first. The lease is given up
/// when `f` returns, whatever it returns; a killed rotation's lease is
/// taken over by the next one (see [`locks`]).
fn with_lease<T>(
    session: &mut Session,
    f: impl FnOnce(&mut Session, &Lease) -> Result<T, AppError>,
) -> Result<T, AppError> {
    let lease = match locks::acquire(&mut session.db, ROTATION_LEASE)? {
        Ok(lease) => lease,
        Err(holder) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
            return Err(AppError::RotationRunning {
                host: holder.host,
                pid: holder.pid,
                running_secs: (now - holder.acquired_at).max(0),
            });
        }
    };
    let result = f(session, &lease);
    let released = locks::release(&mut session.db, lease);
    let value = result?;
    released?;
    Ok(value)
}

/// Whether an index rotation is under way: some row is indexed under an
/// older version than the current one.
///
/// # Errors
/// Database errors.
pub fn index_rotation_pending(session: &mut Session) -> Result<bool, AppError> {
    if session.keyring.index_version_count() < 2 {
        return Ok(false);
    }
    let current = i64::from(session.keyring.index_version().unwrap_or(1));
    Ok(users::count_not_indexed_under(&mut session.db, current)? > 0)
}

/// Wraps every record key again under the active data key, a batch per
/// transaction, refreshing the lease and stopping at a Ctrl-C between
/// batches. Returns how many keys it re-wrapped.
fn rewrap_record_keys(
    session: &mut Session,
    lease: &Lease,
    batch_size: usize,
    on_progress: &mut dyn FnMut(&RotateProgress),
) -> Result<u64, AppError> {
    let (live, _) = with_conn!(session.keystore_db(), |c| RecordKeys::count(c))?;
    if live == 0 {
        return Ok(0);
    }
    let mut progress = RotateProgress {
        rewritten: 0,
        pending: live,
    };
    let keyring = std::sync::Arc::clone(&session.keyring);
    let mut after = 0u64;
    let mut seen = 0u64;
    let mut refreshed = Instant::now();
    loop {
        session.check_interrupt()?;
        let step = session.keystore_unit(|db| {
            with_conn!(db, |c| RecordKeys::rewrap_batch(
                c, &keyring, after, batch_size
            ))
        })?;
        progress.rewritten += step.rewrapped;
        seen += batch_size as u64;
        if refreshed.elapsed() >= LEASE_REFRESH {
            if !locks::refresh(&mut session.db, lease)? {
                return Err(AppError::RotationTakenOver);
            }
            refreshed = Instant::now();
        }
        on_progress(&RotateProgress {
            rewritten: seen.min(live),
            pending: live,
        });
        match step.next {
            Some(next) => after = next,
            None => return Ok(progress.rewritten),
        }
    }
}

/// One kind of rotation: which rows are still to do, how to read a page of
/// them, how to rewrite one, and the compare-and-swap write of a page.
trait Pass {
    type Row;
    type Write;
    /// The command that finishes this rotation, for the error message.
    const COMMAND: &'static str;
    fn pending(&self, session: &mut Session) -> Result<i64, AppError>;
    fn page(
        &self,
        session: &mut Session,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Self::Row>, AppError>;
    fn id(row: &Self::Row) -> i64;
    /// The record keys a page's rows need to be opened (none by default).
    fn record_keys(
        &self,
        _session: &mut Session,
        _rows: &[Self::Row],
    ) -> Result<RecordKeys, AppError> {
        Ok(RecordKeys::new())
    }
    fn rewrite(
        &self,
        session: &Session,
        keys: &RecordKeys,
        row: Self::Row,
    ) -> Result<Self::Write, AppError>;
    /// Writes a page; returns how many rows were still as read.
    fn swap(&self, session: &mut Session, rows: &[Self::Write]) -> Result<usize, AppError>;
}

/// Passes over the table, each walking the primary key in pages, until no
/// row is left to do (at most 20 passes). Returns the rows rewritten and
/// the rows a concurrent writer changed first.
fn run_passes<P: Pass>(
    pass: &P,
    session: &mut Session,
    lease: &Lease,
    batch_size: usize,
    on_progress: &mut dyn FnMut(&RotateProgress),
) -> Result<(u64, u64), AppError> {
    let batch = i64::try_from(batch_size.max(1)).unwrap_or(1000);
    let mut progress = RotateProgress::default();
    let mut raced = 0u64;
    let mut refreshed = Instant::now();
    for round in 0.. {
        let pending = pass.pending(session)?;
        if !another_pass(pending, round, P::COMMAND)? {
            break;
        }
        progress.pending = u64::try_from(pending).unwrap_or(0);
        let mut after = 0i64;
        loop {
            // Every batch before this one is committed: a safe point to
            // stop, and running the rotation again finishes it.
            session.check_interrupt()?;
            let rows = pass.page(session, after, batch)?;
            let Some(last) = rows.last() else { break };
            after = P::id(last);
            let keys = pass.record_keys(session, &rows)?;
            let work = rows
                .into_iter()
                .map(|row| pass.rewrite(session, &keys, row))
                .collect::<Result<Vec<_>, AppError>>()?;
            let swapped = pass.swap(session, &work)?;
            // The lease goes stale after a minute without a refresh: one
            // every ten seconds keeps it, without a commit per batch.
            if refreshed.elapsed() >= LEASE_REFRESH {
                if !locks::refresh(&mut session.db, lease)? {
                    return Err(AppError::RotationTakenOver);
                }
                refreshed = Instant::now();
            }
            progress.rewritten += swapped as u64;
            raced += (work.len() - swapped) as u64;
            on_progress(&progress);
        }
    }
    Ok((progress.rewritten, raced))
}

/// Re-encrypts rows under the active data key.
struct DataPass {
    active: i64,
}

impl Pass for DataPass {
    type Row = users::SealedRow;
    type Write = Reseal;
    const COMMAND: &'static str = "keys rotate";

    fn pending(&self, session: &mut Session) -> Result<i64, AppError> {
        Ok(users::count_not_under(&mut session.db, self.active)?)
    }

    fn page(
        &self,
        session: &mut Session,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Self::Row>, AppError> {
        Ok(users::sealed_under_other_keys(
            &mut session.db,
            self.active,
            after,
            limit,
        )?)
    }

    fn id(row: &Self::Row) -> i64 {
        row.id
    }

    fn rewrite(
        &self,
        session: &Session,
        _keys: &RecordKeys,
        row: Self::Row,
    ) -> Result<Reseal, AppError> {
        let name = reseal(session, row.id, &row.name)?;
        let email = row
            .email
            .as_ref()
            .map(|e| reseal(session, row.id, e))
            .transpose()?;
        // A value under the record's own key stays as it is (its key is
        // re-wrapped instead); the column says so again.
        let key_id = if row.name.record_key().is_some() {
            users::OWN_KEY
        } else {
            self.active
        };
        Ok(Reseal {
            id: row.id,
            old_name: row.name,
            old_email: row.email,
            name,
            email,
            key_id,
        })
    }

    fn swap(&self, session: &mut Session, rows: &[Reseal]) -> Result<usize, AppError> {
        // One compare-and-swap transaction: a deadlock or a cluster
        // conflict rolls it back whole, and it runs again.
        Ok(retry(|| users::reseal(&mut session.db, rows))?)
    }
}

/// A value re-sealed under the active key (itself if it already is).
fn reseal<C: Context>(
    session: &Session,
    id: i64,
    sealed: &Sealed<C>,
) -> Result<Sealed<C>, AppError> {
    match session.keyring.reseal(sealed) {
        Ok(new) => Ok(new.unwrap_or_else(|| sealed.clone())),
        Err(fieldseal::Error::Decrypt(reason)) => Err(AppError::Decrypt { id, reason }),
        Err(other) => Err(AppError::from(other)),
    }
}

/// Recomputes blind indexes under the current index-key version.
struct IndexPass {
    version: u32,
}

impl Pass for IndexPass {
    type Row = users::IndexedRow;
    type Write = users::Reindex;
    const COMMAND: &'static str = "keys rotate --index";

    fn pending(&self, session: &mut Session) -> Result<i64, AppError> {
        Ok(users::count_not_indexed_under(
            &mut session.db,
            i64::from(self.version),
        )?)
    }

    fn page(
        &self,
        session: &mut Session,
        after: i64,
        limit: i64,
    ) -> Result<Vec<Self::Row>, AppError> {
        Ok(users::indexed_under_other_versions(
            &mut session.db,
            i64::from(self.version),
            after,
            limit,
        )?)
    }

    fn id(row: &Self::Row) -> i64 {
        row.id
    }

    fn record_keys(
        &self,
        session: &mut Session,
        rows: &[Self::Row],
    ) -> Result<RecordKeys, AppError> {
        let refs =
            super::records::record_key_refs(rows.iter().map(|r| (&r.name, r.email.as_ref())));
        session.record_keys(&refs)
    }

    fn rewrite(
        &self,
        session: &Session,
        keys: &RecordKeys,
        row: Self::Row,
    ) -> Result<users::Reindex, AppError> {
        let name_bidx = reindex(session, keys, self.version, row.id, &row.name)?;
        let email_bidx = row
            .email
            .as_ref()
            .map(|e| reindex(session, keys, self.version, row.id, e))
            .transpose()?;
        Ok(users::Reindex {
            id: row.id,
            name: row.name,
            email: row.email,
            name_bidx,
            email_bidx,
            bidx_version: i64::from(self.version),
        })
    }

    fn swap(&self, session: &mut Session, rows: &[users::Reindex]) -> Result<usize, AppError> {
        Ok(retry(|| users::reindex(&mut session.db, rows))?)
    }
}

/// The blind index of a stored value under index-key `version`. The opened
/// value is wiped as soon as it is indexed.
fn reindex<C: Context>(
    session: &Session,
    keys: &RecordKeys,
    version: u32,
    id: i64,
    sealed: &Sealed<C>,
) -> Result<Vec<u8>, AppError> {
    let text = Zeroizing::new(open_field(&session.keyring, keys, id, sealed)?);
    session
        .keyring
        .blind_index_version::<C>(version, &text)
        .map(|b| b.to_vec())
        .ok_or(AppError::Crypto(fieldseal::Error::NoIndexKey))
}

/// Whether a rotation needs another pass over the table: yes while rows
/// are pending, up to 20 passes. Rows that keep coming back belong to a
/// writer still using an older keyring, which has to be restarted.
fn another_pass(pending: i64, pass: u32, command: &str) -> Result<bool, AppError> {
    if pending == 0 {
        return Ok(false);
    }
    if pass >= 20 {
        return Err(AppError::invalid(
            "keys",
            format!(
                "{pending} rows are still being written under an older key by another process \
                 after 20 passes; restart the processes that still use the old keyring, then \
                 run {command} again"
            ),
        ));
    }
    Ok(true)
}

/// Re-wraps the data and index keys under a new master key or passphrase,
/// in one transaction, touching no row. The session's master key is the
/// old one.
///
/// # Errors
/// [`AppError::Crypto`] with [`fieldseal::Error::WrongMasterKey`] when the key
/// store changed master meanwhile; nothing changes then.
pub fn change_master(session: &mut Session, new: &MasterSecret) -> Result<(), AppError> {
    audited(
        session,
        Op::ChangePassphrase,
        None,
        |s| {
            let (ks, master) = s.keystore_and_master();
            Ok(with_conn!(ks, |c| KeyStore::change_master(
                c,
                master,
                new,
                KdfParams::default()
            ))?)
        },
        |()| (None, None, "keys re-wrapped".into()),
    )
}
