//! Opening the database and unlocking its keyring: from the environment
//! for scripts, or a hidden passphrase prompt for people.

use anyhow::{bail, Context as _};
use fieldseal::{EnvSource, MasterKeySource, MasterSecret, Passphrase};
use fieldseal_tool::app::{keys, Session};
use fieldseal_tool::store::{Db, DbUrl};
use std::io::IsTerminal;

/// Connects, migrates and unlocks (creating the keyring on first use).
pub fn open_session(url: &DbUrl) -> anyhow::Result<Session> {
    let from_env = EnvSource.master_secret()?;
    // A weak FIELDSEAL_PASSPHRASE may still open a keyring made with it
    // earlier, but never creates one: for a SQLite file that does not
    // exist yet, say so before anything is written.
    if let (Some(secret), DbUrl::Sqlite(path)) = (&from_env, url) {
        if !std::path::Path::new(path).exists() {
            secret.check_strength().context("FIELDSEAL_PASSPHRASE")?;
        }
    }
    let mut db = keys::connect(url)?;
    let exists = keys::has_keyring(&mut db)?;
    let secret = master_secret(from_env, exists)?;
    unlock_db(url, db, &secret)
}

/// The master secret: `from_env` (FIELDSEAL_*), else a hidden prompt. A
/// passphrase that would create a keyring (`keyring_exists` false) must be
/// strong enough.
///
/// # Errors
/// A weak passphrase; no terminal to prompt on.
pub fn master_secret(
    from_env: Option<MasterSecret>,
    keyring_exists: bool,
) -> anyhow::Result<MasterSecret> {
    match from_env {
        Some(secret) => {
            if !keyring_exists {
                secret.check_strength().context("FIELDSEAL_PASSPHRASE")?;
            }
            Ok(secret)
        }
        None => prompt_secret(keyring_exists),
    }
}

/// Unlocks `db` (migrated) with `secret`, creating the keyring on first use.
///
/// # Errors
/// A wrong secret; database errors.
pub fn unlock_db(url: &DbUrl, db: Db, secret: &MasterSecret) -> anyhow::Result<Session> {
    let (session, created) =
        keys::unlock(db, secret).with_context(|| format!("cannot unlock {url}"))?;
    if created {
        eprintln!(
            "Created a new keyring in {url}. Keep the passphrase or master key safe: \
             without it nothing stored here can be read."
        );
    }
    Ok(session.with_url(url.clone()))
}

fn prompt_secret(keyring_exists: bool) -> anyhow::Result<MasterSecret> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "no master key: set FIELDSEAL_MASTER_KEY, FIELDSEAL_KEY_FILE or FIELDSEAL_PASSPHRASE, \
             or run fieldseal in a terminal to type the passphrase"
        );
    }
    if keyring_exists {
        let pass =
            rpassword::prompt_password("Passphrase: ").context("cannot read the passphrase")?;
        return Ok(MasterSecret::Passphrase(Passphrase::new(pass)));
    }
    eprintln!("This database has no keyring yet: choose a passphrase to protect it.");
    ask_new_passphrase()
}

fn capitalize(sentence: &str) -> String {
    let mut chars = sentence.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// Asks for a new passphrase twice (hidden), up to three times.
pub fn ask_new_passphrase() -> anyhow::Result<MasterSecret> {
    for _ in 0..3 {
        let first = Passphrase::new(rpassword::prompt_password("New passphrase: ")?);
        if let Err(why) = first.check_strength() {
            eprintln!("{}.", capitalize(&why.to_string()));
            continue;
        }
        let second = Passphrase::new(rpassword::prompt_password("Repeat passphrase: ")?);
        if first.expose() != second.expose() {
            eprintln!("The two passphrases differ; try again.");
            continue;
        }
        return Ok(MasterSecret::Passphrase(first));
    }
    bail!("no passphrase chosen after three attempts")
}
