//! `fieldseal adopt`: take over another application's `users` table.

use super::unlock;
use anyhow::Context as _;
use fieldseal::{EnvSource, MasterKeySource};
use fieldseal_tool::app::adopt::{self, AdoptOptions, AdoptProgress, OnBadRow, Prepared, Source};
use fieldseal_tool::app::keys;
use fieldseal_tool::store::{legacy, Db, DbUrl};
use std::process::ExitCode;

/// Runs an adoption: checks, moves the legacy table aside, migrates,
/// unlocks, adopts, and prints a summary.
pub fn run(url: &DbUrl, args: &super::AdoptArgs) -> anyhow::Result<ExitCode> {
    let options = AdoptOptions {
        source: Source::parse(&args.from, args.legacy_key_file.as_deref())?,
        mapping: args.map.clone(),
        batch_size: args.batch_size as usize,
        on_error: if args.on_error == super::OnErrorArg::Skip {
            OnBadRow::Skip
        } else {
            OnBadRow::Abort
        },
    };
    let mut db = Db::open(url)?;
    // The master secret first: a weak passphrase that would create the
    // keyring is refused before anything is touched.
    let mut keystore = unlock::keystore()?;
    let keyring_exists = match &mut keystore {
        Some((ks, _)) => keys::has_keyring(ks)?,
        None => {
            !legacy::columns(&mut db, "fieldseal_keyring")?.is_empty()
                && keys::has_keyring(&mut db)?
        }
    };
    let secret = unlock::master_secret(EnvSource.master_secret()?, keyring_exists)?;
    let map = match adopt::prepare(&mut db, &options)? {
        Prepared::Nothing => {
            eprintln!(
                "Nothing to adopt: users is already fieldseal's own table (or there is none)."
            );
            return Ok(ExitCode::SUCCESS);
        }
        Prepared::Ready(map) => map,
    };
    db.migrate(url)?;
    let mut session = unlock::unlock_db(url, db, keystore, &secret)?;
    let bar = super::keys::rows_bar();
    let mut on_progress = |p: &AdoptProgress| {
        if let Some(bar) = &bar {
            bar.set_length(p.total);
            bar.set_position(p.seen);
        }
    };
    let report = adopt::adopt(&mut session, &map, &options, &mut on_progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = report.context("adopt")?;
    for bad in &report.skipped {
        eprintln!("legacy row {}: skipped: {}", bad.id, bad.reason);
    }
    let secs = report.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        report.adopted as f64 / secs
    } else {
        0.0
    };
    if let Some(bad) = &report.stopped_at {
        eprintln!("legacy row {}: {}", bad.id, bad.reason);
        eprintln!(
            "Stopped at legacy row {}: rows before it are adopted, {} are left in {}. Fix the \
             row (or run again with --on-error skip to leave it out), then run adopt again.",
            bad.id,
            report.left,
            legacy::LEGACY_TABLE
        );
        eprintln!(
            "Adopted {} rows in {secs:.2} s ({rate:.0} rows/s).",
            report.adopted
        );
        return Ok(ExitCode::from(1));
    }
    eprintln!(
        "Adopted {} rows in {secs:.2} s ({rate:.0} rows/s).",
        report.adopted
    );
    if report.left > 0 {
        eprintln!(
            "{} legacy row(s) were left out and are kept, with their legacy values, in {}; \
             fix them and run adopt again, or drop that table.",
            report.left,
            legacy::LEGACY_TABLE
        );
    } else {
        eprintln!("The legacy table is gone.");
    }
    Ok(ExitCode::SUCCESS)
}
