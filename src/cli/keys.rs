//! `fieldseal keys status | rotate | change-passphrase`.

use super::unlock;
use anyhow::{bail, Context as _};
use clap::Subcommand;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use fieldseal::{MasterSecret, Passphrase, SecretKey};
use fieldseal_tool::app::rotate::{self, RotateProgress, NONCE_WARNING};
use fieldseal_tool::app::Session;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Key management.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Every data key: id, state, age, rows and values it protects
    Status,
    /// Make a new data key and re-encrypt every row under it (online,
    /// safe to interrupt: run it again to finish)
    Rotate {
        /// Rows per batch; each batch is one transaction
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch_size: u32,
        /// Also rotate the blind-index key and recompute every row's indexes
        #[arg(long)]
        index: bool,
    },
    /// Re-wrap the keys under a new passphrase (or FIELDSEAL_NEW_MASTER_KEY /
    /// FIELDSEAL_NEW_PASSPHRASE), touching no row
    ChangePassphrase,
}

/// Runs a keys command.
pub fn run(session: &mut Session, command: &KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Status => {
            print_status(session)?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate { batch_size, index } => {
            rotate_all(session, *index, *batch_size as usize)?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::ChangePassphrase => {
            let new = new_secret()?;
            rotate::change_master(session, &new)?;
            eprintln!(
                "The keys are re-wrapped under the new {}; the old one no longer opens this database. No row was touched.",
                match new {
                    MasterSecret::Key(_) => "master key",
                    MasterSecret::Passphrase(_) => "passphrase",
                }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints the key table (also used by the REPL's Key status).
pub fn print_status(session: &mut Session) -> anyhow::Result<()> {
    let status = rotate::status(session)?;
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "data key",
        "state",
        "created (UTC)",
        "rows",
        "values",
    ]);
    for k in &status.data_keys {
        let created = chrono::DateTime::from_timestamp(k.created_at, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        table.add_row([
            k.id.to_string(),
            k.state.clone(),
            created,
            k.rows.to_string(),
            k.values.to_string(),
        ]);
    }
    println!("{table}");
    match status.index_version {
        Some(v) => println!("Blind-index key: version {v}."),
        None => println!("No blind-index key."),
    }
    println!(
        "Per-user keys: {}. {} record(s) sealed under their own key; {} own key(s) in the key \
         store, {} erased.",
        if status.per_user { "on" } else { "off" },
        status.own_key_rows,
        status.record_keys,
        status.erased_keys
    );
    let kdf = status.kdf;
    println!(
        "Passphrase stretching: Argon2id, {} MiB, {} iterations, {} lane(s).",
        kdf.m_cost_kib / 1024,
        kdf.t_cost,
        kdf.p_cost
    );
    if kdf.below_default() {
        let d = fieldseal::KdfParams::default();
        println!(
            "Warning: that is below the current default ({} MiB, {} iterations): run \
             fieldseal keys change-passphrase to raise it.",
            d.m_cost_kib / 1024,
            d.t_cost
        );
    }
    for k in status
        .data_keys
        .iter()
        .filter(|k| k.values >= NONCE_WARNING)
    {
        println!(
            "Warning: key {} protects {} values, past half of the 2^32 that one key may seal \
             with random nonces; run fieldseal keys rotate.",
            k.id, k.values
        );
    }
    if status.orphan_rows > 0 {
        println!(
            "Warning: {} rows name a key id the key store does not hold.",
            status.orphan_rows
        );
    }
    Ok(())
}

/// Rotates the data key, and with `index` the blind-index key after it.
/// An interrupted index rotation is only finished: re-running `keys rotate
/// --index` after a kill does not make another data key and re-encrypt
/// every row again. (Also the prompt's "Rotate the data key".)
pub fn rotate_all(session: &mut Session, index: bool, batch_size: usize) -> anyhow::Result<()> {
    if index && rotate::index_rotation_pending(session)? {
        eprintln!("An index-key rotation was interrupted; finishing only that.");
    } else {
        rotate_keys(session, batch_size)?;
    }
    if index {
        rotate_index(session, batch_size)?;
    }
    Ok(())
}

/// A progress bar on a terminal's stderr, with rows/s (none elsewhere).
pub(super) fn rows_bar() -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} rows  {per_sec}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    })
}

/// Runs a rotation with [`rows_bar`].
fn with_bar<T>(run: impl FnOnce(&mut dyn FnMut(&RotateProgress)) -> T) -> T {
    let bar = rows_bar();
    let mut on_progress = |p: &RotateProgress| {
        if let Some(bar) = &bar {
            bar.set_length(p.pending);
            bar.set_position(p.rewritten.min(p.pending));
        }
    };
    let result = run(&mut on_progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    result
}

fn rotate_keys(session: &mut Session, batch_size: usize) -> anyhow::Result<()> {
    let report = with_bar(|on_progress| rotate::rotate(session, batch_size, on_progress))?;
    let secs = report.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        report.rewritten as f64 / secs
    } else {
        0.0
    };
    match report.new_key {
        Some(id) => eprintln!("New data key {id} is active."),
        None => eprintln!("Finishing the rotation to data key {}.", report.active),
    }
    eprintln!(
        "Re-encrypted {} rows in {secs:.2} s ({rate:.0} rows/s).",
        report.rewritten
    );
    if report.rewrapped > 0 {
        eprintln!(
            "Re-wrapped {} records' own keys under it; their rows were not touched.",
            report.rewrapped
        );
    }
    if report.raced > 0 {
        eprintln!(
            "{} rows were changed by another writer meanwhile; their new values were kept.",
            report.raced
        );
    }
    if !report.retired.is_empty() {
        let ids: Vec<String> = report.retired.iter().map(u32::to_string).collect();
        eprintln!(
            "Retired data key(s) {}: no row uses them any more.",
            ids.join(", ")
        );
    }
    Ok(())
}

fn rotate_index(session: &mut Session, batch_size: usize) -> anyhow::Result<()> {
    let report = with_bar(|on_progress| rotate::rotate_index(session, batch_size, on_progress))?;
    let secs = report.elapsed.as_secs_f64();
    match report.new_key {
        Some(v) => eprintln!("New blind-index key version {v} is current."),
        None => eprintln!(
            "Finishing the rotation to blind-index key version {}.",
            report.active
        ),
    }
    eprintln!("Re-indexed {} rows in {secs:.2} s.", report.rewritten);
    if !report.retired.is_empty() {
        let ids: Vec<String> = report.retired.iter().map(u32::to_string).collect();
        eprintln!("Retired blind-index key version(s) {}.", ids.join(", "));
    }
    Ok(())
}

/// The new master secret: from the environment for scripts, else typed
/// twice at a hidden prompt.
fn new_secret() -> anyhow::Result<MasterSecret> {
    if let Ok(b64) = std::env::var("FIELDSEAL_NEW_MASTER_KEY").map(zeroize::Zeroizing::new) {
        let key = SecretKey::from_base64(&b64)
            .map_err(|why| anyhow::anyhow!("FIELDSEAL_NEW_MASTER_KEY {why}"))?;
        return Ok(MasterSecret::Key(key));
    }
    if let Ok(pass) = std::env::var("FIELDSEAL_NEW_PASSPHRASE") {
        let pass = Passphrase::new(pass);
        pass.check_strength().context("FIELDSEAL_NEW_PASSPHRASE")?;
        return Ok(MasterSecret::Passphrase(pass));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no new passphrase: set FIELDSEAL_NEW_PASSPHRASE or FIELDSEAL_NEW_MASTER_KEY, or run in a terminal");
    }
    unlock::ask_new_passphrase().context("cannot read the new passphrase")
}
