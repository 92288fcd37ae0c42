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
    let db = keys::connect(url)?;
    let mut keystore = keystore()?;
    let exists = match &mut keystore {
        Some((ks, _)) => keys::has_keyring(ks)?,
        None => {
            let mut db = db;
            let exists = keys::has_keyring(&mut db)?;
            let secret = master_secret(from_env, exists)?;
            return unlock_db(url, db, None, &secret);
        }
    };
    let secret = master_secret(from_env, exists)?;
    unlock_db(url, db, keystore, &secret)
}

/// The key store's own database, when `FIELDSEAL_KEYSTORE_URL` names one.
pub fn keystore() -> anyhow::Result<Option<(Db, DbUrl)>> {
    let Some(value) = std::env::var("FIELDSEAL_KEYSTORE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(None);
    };
    let url =
        DbUrl::parse(Some(&value)).map_err(|e| anyhow::anyhow!("FIELDSEAL_KEYSTORE_URL: {e}"))?;
    let db = keys::connect_keystore(&url)?;
    Ok(Some((db, url)))
}

/// Whether `FIELDSEAL_PER_USER_KEYS` asks for a key per record.
///
/// # Errors
/// A value that is neither on nor off.
pub fn per_user_keys() -> anyhow::Result<bool> {
    match std::env::var("FIELDSEAL_PER_USER_KEYS") {
        Err(_) => Ok(false),
        Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
            "" | "0" | "false" | "no" | "off" => Ok(false),
            "1" | "true" | "yes" | "on" => Ok(true),
            _ => bail!("FIELDSEAL_PER_USER_KEYS must be 1 or 0"),
        },
    }
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
pub fn unlock_db(
    url: &DbUrl,
    db: Db,
    keystore: Option<(Db, DbUrl)>,
    secret: &MasterSecret,
) -> anyhow::Result<Session> {
    let at = match &keystore {
        Some((_, ks)) => format!("{url} (key store in {ks})"),
        None => url.to_string(),
    };
    let (session, created) = keys::unlock(db, keystore, secret, per_user_keys()?)
        .with_context(|| format!("cannot unlock {at}"))?;
    if created {
        eprintln!(
            "Created a new keyring in {}. Keep the passphrase or master key safe: \
             without it nothing stored here can be read.",
            session.keystore_url().unwrap_or(url)
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
