//! Opening the database and unlocking its keyring: from the environment
//! for scripts, or a hidden passphrase prompt for people.

use anyhow::{bail, Context as _};
use fieldseal::{EnvSource, MasterKeySource, MasterSecret, Passphrase};
use fieldseal_tool::app::{keys, Session};
use fieldseal_tool::store::DbUrl;
use std::io::IsTerminal;

/// Shortest passphrase accepted when creating a keyring.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

/// Connects, migrates and unlocks (creating the keyring on first use).
pub fn open_session(url: &DbUrl) -> anyhow::Result<Session> {
    let mut db = keys::connect(url)?;
    let secret = match EnvSource.master_secret()? {
        Some(secret) => secret,
        None => {
            let exists = keys::has_keyring(&mut db)?;
            prompt_secret(exists)?
        }
    };
    let (session, created) =
        keys::unlock(db, &secret).with_context(|| format!("cannot unlock {url}"))?;
    if created {
        eprintln!(
            "Created a new keyring in {url}. Keep the passphrase or master key safe: \
             without it nothing stored here can be read."
        );
    }
    Ok(session)
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

/// Asks for a new passphrase twice (hidden), up to three times.
pub fn ask_new_passphrase() -> anyhow::Result<MasterSecret> {
    for _ in 0..3 {
        let first = Passphrase::new(rpassword::prompt_password("New passphrase: ")?);
        if first.expose().chars().count() < MIN_PASSPHRASE_CHARS {
            eprintln!("The passphrase must be at least {MIN_PASSPHRASE_CHARS} characters.");
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
