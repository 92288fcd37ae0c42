//! Per-user keys in the key store: `fieldseal_record_keys`, one row per
//! record key, wrapped under a data key of the keyring
//! ([`Keyring::new_record_key`]), and erased for good by
//! [`RecordKeys::destroy`].
//!
//! The table is not under the key list's MAC (it grows with the data);
//! each wrap is authenticated on its own, bound to its reference, by the
//! data key that made it. Someone who can write the key store can
//! therefore delete a record key (erase a record) or put back one copied
//! from an older backup of the key store: keep those backups short-lived
//! (the README's "Erasure").

use super::tables::RecordKeyRow;
use super::{unix_now as now, KeyStoreConnection};
use crate::crypto::keyring::{Keyring, RecordKeys, WrappedRecordKey};
use crate::error::{DecryptError, DecryptErrorKind, Error, Result};
use std::collections::BTreeSet;

impl RecordKeys {
    /// Stores wrapped record keys, before any value sealed under them is
    /// written.
    ///
    /// # Errors
    /// [`Error::Database`] (a reference taken already is a unique
    /// violation: references are 63 random bits, so in practice never).
    pub fn store<C: KeyStoreConnection>(conn: &mut C, keys: &[WrappedRecordKey]) -> Result<()> {
        let at = now();
        let rows: Vec<RecordKeyRow> = keys
            .iter()
            .map(|k| RecordKeyRow {
                id: to_id(k.reference),
                wrapped: Some(k.wrapped.clone()),
                created_at: at,
                erased_at: None,
            })
            .collect();
        // One transaction: a commit (a log flush) per call, not per
        // statement.
        conn.write_transaction(|conn| conn.insert_record_keys(&rows))?;
        Ok(())
    }

    /// Loads and unwraps the record keys with these references. An erased
    /// key is loaded as erased ([`DecryptErrorKind::Erased`] when a value
    /// sealed under it is opened); a reference the key store does not
    /// hold at all is left out.
    ///
    /// # Errors
    /// [`Error::Decrypt`] when a stored wrap does not open (altered, or
    /// wrapped by a data key this keyring does not hold); [`Error::Database`].
    pub fn load<C: KeyStoreConnection>(
        conn: &mut C,
        keyring: &Keyring,
        references: impl IntoIterator<Item = u64>,
    ) -> Result<RecordKeys> {
        let ids: BTreeSet<i64> = references.into_iter().map(to_id).collect();
        let ids: Vec<i64> = ids.into_iter().collect();
        let mut keys = RecordKeys::new();
        for row in conn.load_record_keys(&ids)? {
            let reference = row.id.unsigned_abs();
            match row.wrapped {
                None => keys.insert_erased(reference),
                Some(wrapped) => keys
                    .insert(keyring.unwrap_record_key(&WrappedRecordKey { reference, wrapped })?),
            }
        }
        Ok(keys)
    }

    /// Removes stored record keys that sealed nothing that was kept (the
    /// rows they were made for were refused after the keys were stored).
    /// Not an erasure: use [`RecordKeys::destroy`] for a key whose values
    /// may exist anywhere.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub fn discard<C: KeyStoreConnection>(conn: &mut C, references: &[u64]) -> Result<()> {
        let ids: Vec<i64> = references.iter().copied().map(to_id).collect();
        conn.delete_record_keys(&ids)?;
        Ok(())
    }

    /// Destroys a record key: its wrapped copy is overwritten with NULL
    /// and the row kept as a tombstone, so a value sealed under it (in the
    /// database or any backup of it) opens as "erased" from now on. A
    /// reference the store never held gets a tombstone too. Returns
    /// whether a key was destroyed now (false: it was erased before).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub fn destroy<C: KeyStoreConnection>(conn: &mut C, reference: u64) -> Result<bool> {
        let id = to_id(reference);
        let at = now();
        conn.write_transaction(|conn| {
            if conn.erase_record_key(id, at)? == 1 {
                return Ok(true);
            }
            if conn.load_record_keys(&[id])?.is_empty() {
                conn.insert_record_keys(&[RecordKeyRow {
                    id,
                    wrapped: None,
                    created_at: at,
                    erased_at: Some(at),
                }])?;
            }
            Ok::<_, Error>(false)
        })
    }

    /// Wraps every stored record key that another data key wraps again
    /// under the keyring's active key, `batch` keys per transaction, and
    /// calls `on_batch` with how many it re-wrapped so far (return
    /// [`std::ops::ControlFlow::Break`] to stop early; running it again
    /// goes on). The rows of data are not touched: this is a rotation in
    /// per-user mode. A key erased meanwhile stays erased (each write is a
    /// compare-and-swap on the old wrap). Returns how many keys it
    /// re-wrapped.
    ///
    /// # Errors
    /// [`Error::Decrypt`] for a wrap that does not open; [`Error::Database`].
    pub fn rewrap_all<C: KeyStoreConnection>(
        conn: &mut C,
        keyring: &Keyring,
        batch: usize,
        on_batch: &mut dyn FnMut(u64) -> std::ops::ControlFlow<()>,
    ) -> Result<u64> {
        let mut after = 0u64;
        let mut done = 0u64;
        loop {
            let step = Self::rewrap_batch(conn, keyring, after, batch)?;
            done += step.rewrapped;
            let Some(next) = step.next else {
                let _ = on_batch(done);
                return Ok(done);
            };
            after = next;
            if on_batch(done).is_break() {
                return Ok(done);
            }
        }
    }

    /// One step of [`RecordKeys::rewrap_all`]: the next `batch` stored keys
    /// after position `after` (0 to start; then [`RewrapStep::next`]),
    /// re-wrapped in one transaction. For callers
    /// that do their own work between batches (progress, a lease).
    ///
    /// # Errors
    /// As [`RecordKeys::rewrap_all`].
    pub fn rewrap_batch<C: KeyStoreConnection>(
        conn: &mut C,
        keyring: &Keyring,
        after: u64,
        batch: usize,
    ) -> Result<RewrapStep> {
        let limit = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        let page = conn.record_key_page(i64::try_from(after).unwrap_or(i64::MAX), limit)?;
        let next = match page.last() {
            Some((seq, _)) if page.len() as i64 == limit => Some(seq.unsigned_abs()),
            _ => None,
        };
        let mut moved = Vec::new();
        for (seq, row) in page {
            let Some(old) = row.wrapped else { continue };
            let current = WrappedRecordKey {
                reference: row.id.unsigned_abs(),
                wrapped: old,
            };
            if let Some(new) = keyring.rewrap_record_key(&current)? {
                moved.push((seq, current.wrapped, new.wrapped));
            }
        }
        let rewrapped = if moved.is_empty() {
            0
        } else {
            conn.write_transaction(|conn| Ok::<_, Error>(conn.swap_record_keys(&moved)? as u64))?
        };
        Ok(RewrapStep { next, rewrapped })
    }

    /// The data keys that wrap stored record keys, read from each wrap's
    /// header: a data key in this set must not be retired.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub fn wrapping_key_ids<C: KeyStoreConnection>(conn: &mut C) -> Result<BTreeSet<u32>> {
        const PAGE: i64 = 20_000;
        let mut ids = BTreeSet::new();
        let mut after = 0i64;
        loop {
            let page = conn.record_key_page(after, PAGE)?;
            let Some((last, _)) = page.last() else {
                return Ok(ids);
            };
            after = *last;
            let full = page.len() as i64 == PAGE;
            for (_, row) in page {
                let wrapped = WrappedRecordKey {
                    reference: row.id.unsigned_abs(),
                    wrapped: row.wrapped.unwrap_or_default(),
                };
                match wrapped.wrapping_key_id() {
                    Some(id) => ids.insert(id),
                    None => {
                        return Err(DecryptError::new(
                            DecryptErrorKind::Malformed("a stored record key is not a wrap"),
                            "fieldseal_record_keys.wrapped",
                        )
                        .into())
                    }
                };
            }
            if !full {
                return Ok(ids);
            }
        }
    }

    /// How many record keys the key store holds, and how many of them are
    /// erased.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub fn count<C: KeyStoreConnection>(conn: &mut C) -> Result<(u64, u64)> {
        let (live, erased) = conn.count_record_keys()?;
        Ok((live.unsigned_abs(), erased.unsigned_abs()))
    }
}

/// What one [`RecordKeys::rewrap_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewrapStep {
    /// Where the next batch starts (its `after`: a position in the table's
    /// storage order), or `None`: this was the last.
    pub next: Option<u64>,
    /// Keys re-wrapped in this batch.
    pub rewrapped: u64,
}

/// References are below 2^63 ([`Keyring::new_record_key`]); one read from
/// a ciphertext header may not be, and maps to a key that does not exist.
fn to_id(reference: u64) -> i64 {
    i64::try_from(reference).unwrap_or(i64::MIN)
}
