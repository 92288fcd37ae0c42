//! The writer: each batch is one transaction holding its rows and the
//! progress row; duplicate emails are found in memory within a batch and
//! by the unique index across batches.

use super::error::{ImportError, ImportErrorKind};
use super::reader::Batch;
use super::rejects::{RejectSink, Rejection};
use super::{ImportReport, OnError, Progress};
use crate::app::Session;
use crate::store::imports::{self, BulkLoader, Committed, ImportRow};
use crate::store::retry::retry;
use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::Receiver;

/// What the writer carries from batch to batch.
pub(super) struct Writer<'a> {
    pub session: &'a mut Session,
    pub path: &'a Path,
    pub on_error: OnError,
    pub loader: BulkLoader,
    /// The progress row as last committed (or as it will be created).
    pub progress: ImportRow,
    /// Whether the next commit creates the progress row.
    pub first_commit: bool,
    pub report: ImportReport,
    pub shown: Progress,
}

impl Writer<'_> {
    /// Drains the reader's batches. Dropping `rx` on return stops the
    /// reader.
    pub(super) fn write_all(
        &mut self,
        rx: Receiver<Result<Batch, ImportError>>,
        rejects: &mut dyn RejectSink,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), ImportError> {
        for batch in rx {
            if self.session.check_interrupt().is_err() {
                // Every batch before this one is committed with its
                // progress: `--resume` continues from here.
                self.report.interrupted = true;
                return Ok(());
            }
            let mut batch = batch?;
            self.report.read += batch.read;
            self.shown.read = self.report.read;
            self.shown.bytes = batch.bytes;
            if !self.commit(&mut batch)? {
                self.report.rejected += 1;
                self.shown.rejected = self.report.rejected;
                on_progress(&self.shown);
                return Ok(());
            }
            let inserted = batch.rows.len() as u64;
            self.report.inserted += inserted;
            self.report.rejected += batch.rejections.len() as u64;
            if inserted > 0 {
                self.report.last_committed_line = Some(batch.last_line);
            }
            for r in &batch.rejections {
                rejects
                    .reject(r)
                    .map_err(|e| ImportError::new(ImportErrorKind::Rejects(e), self.path))?;
            }
            self.shown.inserted = self.report.inserted;
            self.shown.rejected = self.report.rejected;
            on_progress(&self.shown);
        }
        Ok(())
    }

    /// Commits one batch with its progress. Optimistic: most batches hold
    /// no email that exists already, so the batch is written first; only
    /// one that meets the unique index is checked row by row (its
    /// transaction rolled back) and written again. `Ok(false)` when an
    /// aborting import stops at a bad line of this batch (nothing of it is
    /// written; `report.stopped_at` says where).
    fn commit(&mut self, batch: &mut Batch) -> Result<bool, ImportError> {
        let mut checked_existing = false;
        let mut keys_stored = false;
        loop {
            batch.rejections.sort_by_key(|r| r.line);
            if self.on_error == OnError::Abort {
                if let Some(first) = batch.rejections.first() {
                    self.report.stopped_at = Some(first.clone());
                    return Ok(false);
                }
            }
            if !keys_stored {
                // Per-user keys: the rows' own keys go into the key store
                // before the rows (a key without its row seals nothing; a
                // row without its key would never open).
                let keys: Vec<fieldseal::WrappedRecordKey> =
                    batch.record_keys.iter().flatten().cloned().collect();
                if !keys.is_empty() {
                    self.session
                        .store_record_keys(&keys)
                        .map_err(|e| ImportError::new(ImportErrorKind::App(e), self.path))?;
                }
                keys_stored = true;
            }
            let mut next = self.progress.clone();
            next.records_done =
                i64::try_from(self.report.resumed_after + batch.records_end).unwrap_or(i64::MAX);
            next.last_line = batch.last_line as i64;
            next.inserted += batch.rows.len() as i64;
            next.rejected += batch.rejections.len() as i64;
            next.updated_at = chrono::Utc::now().naive_utc();
            // The batch with its progress row is one transaction: a
            // deadlock or a cluster conflict rolls both back, and the
            // batch is written again.
            let (db, loader, first) = (&mut self.session.db, &mut self.loader, self.first_commit);
            let (rows, encoded) = (&batch.rows, batch.encoded.as_deref());
            let committed =
                retry(|| imports::commit_batch(db, rows, encoded, &next, first, loader))
                    .map_err(|e| self.app_error(e))?;
            match committed {
                Committed::Yes => {
                    self.progress = next;
                    self.first_commit = false;
                    return Ok(true);
                }
                Committed::DuplicateEmail if !checked_existing => {
                    let keys: Vec<Vec<u8>> = batch.email_keys.iter().flatten().cloned().collect();
                    let existing = imports::existing_email_bidx(&mut self.session.db, &keys)
                        .map_err(|e| self.app_error(e))?;
                    let stored = own_key_refs(batch);
                    reject_existing(batch, &existing.into_iter().collect());
                    checked_existing = true;
                    // The refused rows' own keys seal nothing: remove them.
                    self.session
                        .discard_record_keys(stored, &own_key_refs(batch))
                        .map_err(|e| ImportError::new(ImportErrorKind::App(e), self.path))?;
                }
                Committed::DuplicateEmail => {
                    return Err(ImportError::new(
                        ImportErrorKind::ConcurrentEmail {
                            first_line: batch.lines.first().copied().unwrap_or(0),
                            last_line: batch.last_line,
                        },
                        self.path,
                    ))
                }
            }
        }
    }

    fn app_error(&self, e: diesel::result::Error) -> ImportError {
        ImportError::new(ImportErrorKind::App(e.into()), self.path)
    }
}

/// The references of a batch's own keys (per-user keys).
fn own_key_refs(batch: &Batch) -> std::collections::HashSet<u64> {
    batch
        .record_keys
        .iter()
        .flatten()
        .map(|k| k.reference)
        .collect()
}

/// Rejects rows whose email repeats an earlier line of the same batch
/// (a check in memory; repeats across batches meet the unique index).
pub(super) fn reject_repeats_in_batch(batch: &mut Batch) {
    let reasons = earlier_repeats(&batch.email_keys)
        .into_iter()
        .map(|first| first.map(|i| format!("email repeats the email on line {}", batch.lines[i])))
        .collect();
    reject_rows(batch, reasons);
}

/// For each key, the index of the first earlier entry with the same key
/// (`None` for a first occurrence or no key): the in-memory duplicate
/// check of a batch, for the importer and the adopter.
pub(crate) fn earlier_repeats(keys: &[Option<Vec<u8>>]) -> Vec<Option<usize>> {
    let mut first: HashMap<&[u8], usize> = HashMap::new();
    keys.iter()
        .enumerate()
        .map(|(i, key)| {
            let key = key.as_deref()?;
            match first.get(key) {
                Some(&earlier) => Some(earlier),
                None => {
                    first.insert(key, i);
                    None
                }
            }
        })
        .collect()
}

/// Keeps the items whose flag in `keep` is true (items past its end stay).
pub(crate) fn retain_flagged<T>(items: &mut Vec<T>, keep: &[bool]) {
    let mut flags = keep.iter();
    items.retain(|_| *flags.next().unwrap_or(&true));
}

/// Rejects rows whose email is already in the database (`existing` maps
/// blind indexes to the record holding them).
fn reject_existing(batch: &mut Batch, existing: &HashMap<Vec<u8>, i64>) {
    let reasons = batch
        .email_keys
        .iter()
        .map(|key| {
            key.as_ref()
                .and_then(|k| existing.get(k))
                .map(|id| format!("email is already used by record {id}"))
        })
        .collect();
    reject_rows(batch, reasons);
}

/// Moves the rows that have a reason from the batch to its rejections,
/// keeping rows, lines, keys and raw fields aligned.
fn reject_rows(batch: &mut Batch, reasons: Vec<Option<String>>) {
    if reasons.iter().all(Option::is_none) {
        return;
    }
    batch.encoded = None;
    let keep: Vec<bool> = reasons.iter().map(Option::is_none).collect();
    for (i, reason) in reasons.into_iter().enumerate() {
        if let Some(reason) = reason {
            batch.rejections.push(Rejection {
                line: batch.lines[i],
                reason,
                fields: std::mem::take(&mut batch.raw[i]),
            });
        }
    }
    retain_flagged(&mut batch.rows, &keep);
    retain_flagged(&mut batch.lines, &keep);
    retain_flagged(&mut batch.email_keys, &keep);
    retain_flagged(&mut batch.raw, &keep);
    retain_flagged(&mut batch.record_keys, &keep);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::users::{NewUserRow, UserName};
    use fieldseal::Sealed;

    fn row(email_key: Option<u8>) -> NewUserRow {
        NewUserRow {
            name: Sealed::<UserName>::from_bytes(vec![1]),
            name_bidx: vec![0; 16],
            email: None,
            email_bidx: email_key.map(|k| vec![k; 16]),
            age: 1,
            created_at: chrono::NaiveDateTime::default(),
            key_id: 1,
            bidx_version: 1,
        }
    }

    fn batch(keys: &[Option<u8>]) -> Batch {
        let mut b = Batch::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            b.email_keys.push(key.map(|k| vec![k; 16]));
            b.rows.push(row(*key));
            b.lines.push(i as u64 + 2);
            b.raw.push(vec![format!("field {i}").into_bytes()]);
        }
        b
    }

    #[test]
    fn repeats_within_a_batch_keep_the_first_and_name_its_line() {
        let mut b = batch(&[Some(1), None, Some(1), Some(2), None]);
        reject_repeats_in_batch(&mut b);
        assert_eq!(b.lines, [2, 3, 5, 6]);
        assert_eq!(b.rows.len(), 4);
        assert_eq!(b.raw.len(), 4);
        assert_eq!(b.rejections.len(), 1);
        assert_eq!(b.rejections[0].line, 4);
        assert_eq!(b.rejections[0].reason, "email repeats the email on line 2");
        assert_eq!(b.rejections[0].fields, [b"field 2".to_vec()]);
    }

    #[test]
    fn existing_emails_name_their_record() {
        let mut b = batch(&[Some(1), Some(2), None]);
        reject_existing(&mut b, &HashMap::from([(vec![2; 16], 41)]));
        assert_eq!(b.lines, [2, 4]);
        assert_eq!(b.rejections[0].reason, "email is already used by record 41");
        assert_eq!(b.email_keys, [Some(vec![1; 16]), None]);
    }
}
