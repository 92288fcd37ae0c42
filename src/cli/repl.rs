//! The interactive prompt: a command line for fast operators and a menu
//! (Enter on an empty line) for everyone else. Every action calls the same
//! services as the subcommands; this file only talks to the person.
//!
//! Nothing typed here is written to a history file: the command line keeps
//! an in-memory history of bare commands only (never their arguments), and
//! field prompts keep none.

use super::commands::export_file;
use super::output::table;
use super::unlock;
use anyhow::bail;
use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, FuzzySelect, Input};
use fieldseal_tool::app::import::ImportError;
use fieldseal_tool::app::record::{parse_age, parse_email, parse_name};
use fieldseal_tool::app::records;
use fieldseal_tool::app::{AppError, RecordInput, Session};
use fieldseal_tool::store::DbUrl;
use rustyline::error::ReadlineError;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Records shown per page by `list`.
const PAGE: i64 = 20;

const HELP: &str = "\
Commands (or press Enter on an empty line for the menu):
  add                 add a record
  edit ID             change a record; Enter keeps a field as it is
  list [PAGE]         list records, newest first, 20 a page
  next, prev          the next or the previous page of the list
  find NAME           find records by name (find ADDRESS with an @ searches emails)
  email ADDRESS       find the record with this email
  delete ID           delete a record (asks first)
  forget ID           erase a record for good: destroy its key, delete it (asks first)
  import FILE         import records from a CSV file (name,email,age)
  export FILE         export all records, decrypted, as CSV
  keys                key status
  rotate              make a new data key and re-encrypt every record (asks first)
  passphrase          change the passphrase (asks first)
  help                this list
  quit                leave (Ctrl-D works too)
Short forms: a, e, l or ls, n or more, p, f, del or rm, h or ?, q or exit.
Ctrl-C cancels a question, and stops an import, export, list or rotation
at a safe point.";

const MENU: &[(&str, Action)] = &[
    ("Add a record", Action::Add),
    ("Edit a record", Action::Edit(None)),
    ("List records", Action::List(None)),
    ("Find by name", Action::FindName(None)),
    ("Find by email", Action::FindEmail(None)),
    ("Delete a record", Action::Delete(None)),
    ("Forget a record", Action::Forget(None)),
    ("Import a CSV file", Action::Import(None)),
    ("Export to CSV", Action::Export(None)),
    ("Key status", Action::KeyStatus),
    ("Rotate the data key", Action::Rotate),
    ("Change the passphrase", Action::Passphrase),
    ("Help", Action::Help),
    ("Quit", Action::Quit),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Add,
    Edit(Option<String>),
    List(Option<String>),
    Next,
    Prev,
    Rotate,
    Passphrase,
    FindName(Option<String>),
    FindEmail(Option<String>),
    Delete(Option<String>),
    Forget(Option<String>),
    Export(Option<String>),
    Import(Option<String>),
    KeyStatus,
    Help,
    Quit,
    Unknown(String),
}

/// Runs the prompt until Quit or Ctrl-D.
pub fn run(url: &DbUrl) -> anyhow::Result<ExitCode> {
    if !std::io::stdin().is_terminal() {
        bail!(NotATerminal);
    }
    let mut session = unlock::open_session(url)?;
    let count = records::count(&mut session)?;
    println!("fieldseal: {url}, {count} record(s).");
    println!("Type help for commands, press Enter for the menu, quit or Ctrl-D to leave.");

    // console raises SIGINT for Ctrl-C inside a prompt; with a handler the
    // prompt returns an Interrupted error instead, and we cancel the action.
    // The handler also sets the session's interrupt flag, which stops long
    // work (import, export, list, rotation) at its next safe point.
    let interrupt = session.interrupt_flag();
    ctrlc::set_handler(move || interrupt.store(true, std::sync::atomic::Ordering::SeqCst))
        .map_err(|e| anyhow::anyhow!("cannot handle Ctrl-C: {e}"))?;
    // Prompts read one key at a time and restore the terminal in between;
    // with the terminal's own Ctrl-C signal on, a Ctrl-C typed in that
    // instant became a signal and was lost. Off, it is always a key; long
    // work turns it back on while it runs (see `interruptible`).
    let _keys = CtrlCAsKey::set(false);
    let mut pager = Pager::default();

    let config = rustyline::Config::builder().auto_add_history(false).build();
    let mut editor = rustyline::DefaultEditor::with_config(config)?;
    let theme = ColorfulTheme::default();
    loop {
        let line = match editor.readline("fieldseal> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                println!("(Ctrl-D or quit leaves)");
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let action = if line.trim().is_empty() {
            match menu(&theme) {
                Ok(Some(action)) => action,
                Ok(None) => continue,
                Err(e) if is_cancel(&e) => continue,
                Err(e) => return Err(e),
            }
        } else {
            let action = parse(&line);
            if !matches!(action, Action::Unknown(_)) && !line.trim().contains(' ') {
                let _ = editor.add_history_entry(line.trim());
            }
            action
        };
        if action == Action::Quit {
            break;
        }
        match perform(&mut session, &theme, &mut pager, action) {
            Ok(()) => {}
            Err(e) if is_cancel(&e) => println!("Cancelled."),
            Err(e) if is_interrupt(&e) => println!("Stopped by Ctrl-C."),
            Err(e) => eprintln!("error: {e:#}"),
        }
    }
    println!("Bye.");
    Ok(ExitCode::SUCCESS)
}

/// Turns the terminal's ISIG off for the life of the prompt, and back on
/// when dropped (also on an error return).
struct CtrlCAsKey(Option<nix::sys::termios::Termios>);

impl CtrlCAsKey {
    /// Sets the terminal's ISIG to `signal` until dropped.
    fn set(signal: bool) -> Self {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let stdin = std::io::stdin();
        let Ok(original) = tcgetattr(&stdin) else {
            return CtrlCAsKey(None);
        };
        let mut changed = original.clone();
        changed.local_flags.set(LocalFlags::ISIG, signal);
        match tcsetattr(&stdin, SetArg::TCSANOW, &changed) {
            Ok(()) => CtrlCAsKey(Some(original)),
            Err(_) => CtrlCAsKey(None),
        }
    }
}

impl Drop for CtrlCAsKey {
    fn drop(&mut self) {
        if let Some(original) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                original,
            );
        }
    }
}

/// `fieldseal repl` without a terminal: a usage error.
#[derive(Debug, thiserror::Error)]
#[error(
    "the interactive prompt needs a terminal; use the subcommands in scripts (fieldseal --help)"
)]
pub struct NotATerminal;

fn parse(line: &str) -> Action {
    let line = line.trim();
    let (verb, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let arg = Some(rest.trim().to_owned()).filter(|a| !a.is_empty());
    match verb.to_lowercase().as_str() {
        "add" | "a" => Action::Add,
        "edit" | "e" => Action::Edit(arg),
        "list" | "ls" | "l" => Action::List(arg),
        "next" | "more" | "n" => Action::Next,
        "prev" | "previous" | "p" => Action::Prev,
        "rotate" => Action::Rotate,
        "passphrase" | "change-passphrase" => Action::Passphrase,
        "find" | "f" => match arg {
            Some(a) if a.contains('@') => Action::FindEmail(Some(a)),
            other => Action::FindName(other),
        },
        "email" => Action::FindEmail(arg),
        "delete" | "del" | "rm" => Action::Delete(arg),
        "forget" => Action::Forget(arg),
        "export" => Action::Export(arg),
        "import" => Action::Import(arg),
        "keys" => Action::KeyStatus,
        "help" | "h" | "?" => Action::Help,
        "quit" | "exit" | "q" => Action::Quit,
        _ => Action::Unknown(verb.to_owned()),
    }
}

fn menu(theme: &ColorfulTheme) -> anyhow::Result<Option<Action>> {
    let items: Vec<&str> = MENU.iter().map(|(label, _)| *label).collect();
    let choice = FuzzySelect::with_theme(theme)
        .with_prompt("What do you want to do? (type to filter, Esc to go back)")
        .items(&items)
        .default(0)
        .interact_opt()?;
    Ok(choice.map(|i| MENU[i].1.clone()))
}

fn perform(
    session: &mut Session,
    theme: &ColorfulTheme,
    pager: &mut Pager,
    action: Action,
) -> anyhow::Result<()> {
    match action {
        Action::Add => add(session, theme),
        Action::Edit(id) => edit(session, theme, id),
        Action::List(page) => {
            let page = match page {
                None => 1,
                Some(p) => match p.trim().parse::<i64>() {
                    Ok(n) if n >= 1 => n,
                    _ => bail!("list takes a page number from 1, e.g. list 3"),
                },
            };
            pager.show(session, page)
        }
        Action::Next => pager.show(session, pager.page + 1),
        Action::Prev => {
            if pager.page <= 1 {
                println!("This is the first page.");
                return Ok(());
            }
            pager.show(session, pager.page - 1)
        }
        Action::Rotate => rotate(session, theme),
        Action::Passphrase => change_passphrase(session, theme),
        Action::FindName(name) => {
            let name = match name {
                Some(n) => n,
                None => ask(theme, "Name to find", |s| parse_name(s).map(drop))?,
            };
            show_found(records::find_by_name(session, &name)?, "name")
        }
        Action::FindEmail(email) => {
            let email = match email {
                Some(e) => e,
                None => ask(theme, "Email to find", |s| match parse_email(s)? {
                    Some(_) => Ok(()),
                    None => Err(AppError::Invalid {
                        field: "email",
                        message: "email must not be empty".into(),
                    }),
                })?,
            };
            show_found(records::find_by_email(session, &email)?, "email")
        }
        Action::Delete(id) => delete(session, theme, id),
        Action::Forget(id) => forget(session, theme, id),
        Action::Export(file) => {
            let file = match file {
                Some(f) => f,
                None => Input::<String>::with_theme(theme)
                    .with_prompt("CSV file to write")
                    .default("export.csv".into())
                    .interact_text()?,
            };
            let path = PathBuf::from(file.trim());
            if path.exists()
                && !Confirm::with_theme(theme)
                    .with_prompt(format!("{} exists. Replace it?", path.display()))
                    .default(false)
                    .wait_for_newline(true)
                    .interact()?
            {
                println!("Nothing exported.");
                return Ok(());
            }
            match interruptible(session, |s| export_file(s, &path)) {
                Ok(written) => {
                    println!("Exported {written} record(s) to {}.", path.display());
                    Ok(())
                }
                Err(e) if is_interrupt(&e) => {
                    println!(
                        "Stopped by Ctrl-C: nothing was exported, and {} was not written.",
                        path.display()
                    );
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        Action::Import(file) => import(session, theme, file),
        Action::KeyStatus => super::keys::print_status(session),
        Action::Help => {
            println!("{HELP}");
            Ok(())
        }
        Action::Quit => Ok(()),
        Action::Unknown(verb) => {
            bail!("unknown command {verb:?}; type help for the list, or press Enter for the menu")
        }
    }
}

/// Asks for one field until `check` accepts it. The message shown for a
/// rejected value is the service's own sentence naming the field.
fn ask(
    theme: &ColorfulTheme,
    prompt: &str,
    mut check: impl FnMut(&str) -> Result<(), AppError>,
) -> anyhow::Result<String> {
    Ok(Input::<String>::with_theme(theme)
        .with_prompt(prompt)
        .allow_empty(true)
        .validate_with(|value: &String| check(value).map_err(|e| e.to_string()))
        .interact_text()?)
}

fn add(session: &mut Session, theme: &ColorfulTheme) -> anyhow::Result<()> {
    let name = ask(theme, "Name", |s| parse_name(s).map(drop))?;
    let age = ask(theme, "Age", |s| parse_age(s).map(drop))?;
    let email = ask(theme, "Email (optional)", |s| {
        if let Some(email) = parse_email(s)? {
            if let Some(owner) = records::email_owner(session, &email)? {
                return Err(AppError::Invalid {
                    field: "email",
                    message: format!("email is already used by record {owner}"),
                });
            }
        }
        Ok(())
    })?;
    let input = RecordInput::parse(&name, Some(&email), &age)?;
    let record = records::add(session, &input)?;
    println!("Added record {}.", record.id);
    println!("{}", table(&[record]));
    Ok(())
}

/// Where `list`, `next` and `prev` are in the table.
#[derive(Debug, Default)]
struct Pager {
    /// The page shown last (1 is the newest records), 0 before any.
    page: i64,
}

impl Pager {
    /// Shows page `page` (newest first) and remembers it. Ctrl-C stops the
    /// output between two records.
    fn show(&mut self, session: &mut Session, page: i64) -> anyhow::Result<()> {
        let total = records::count(session)?;
        if total == 0 {
            println!("No records yet. Type add to create one.");
            return Ok(());
        }
        let pages = (total + PAGE - 1) / PAGE;
        if page > pages {
            println!(
                "There {} only {pages} page{} ({total} records); that was the last.",
                if pages == 1 { "is" } else { "are" },
                if pages == 1 { "" } else { "s" },
            );
            return Ok(());
        }
        let offset = (page - 1) * PAGE;
        let mut shown = Vec::new();
        let stopped = interruptible(session, |s| -> anyhow::Result<bool> {
            for result in records::list(s, true, Some(PAGE), offset)? {
                if s.check_interrupt().is_err() {
                    return Ok(true);
                }
                match result {
                    Ok(record) => shown.push(record),
                    Err(e) => eprintln!("error: {e}"),
                }
            }
            Ok(false)
        })?;
        if stopped {
            println!("Stopped by Ctrl-C.");
            return Ok(());
        }
        println!("{}", table(&shown));
        self.page = page;
        let last = (offset + PAGE).min(total);
        println!(
            "Page {page} of {pages}: records {}–{last} of {total}, newest first.{}",
            offset + 1,
            if page < pages {
                " Type next (or more), prev, or list N for page N."
            } else if pages > 1 {
                " Type prev, or list N for page N."
            } else {
                ""
            }
        );
        Ok(())
    }
}

/// Runs long work with the terminal's Ctrl-C signal on, so that Ctrl-C
/// sets the session's interrupt flag and the work stops at its next safe
/// point (see [`Session::check_interrupt`]); the prompt's own handling of
/// Ctrl-C as a key comes back afterwards.
fn interruptible<T>(session: &mut Session, work: impl FnOnce(&mut Session) -> T) -> T {
    session.clear_interrupt();
    let signals = CtrlCAsKey::set(true);
    let result = work(session);
    drop(signals);
    result
}

/// Whether an error is long work stopped by Ctrl-C.
fn is_interrupt(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<AppError>(),
            Some(AppError::Interrupted)
        ) || matches!(
            cause.downcast_ref::<records::ExportError>(),
            Some(records::ExportError::App(AppError::Interrupted))
        )
    })
}

/// Asks for the id of a record.
fn ask_id(theme: &ColorfulTheme, prompt: &str, given: Option<String>) -> anyhow::Result<i64> {
    let text = match given {
        Some(id) => id,
        None => ask(theme, prompt, |s| {
            s.trim()
                .parse::<i64>()
                .map(drop)
                .map_err(|_| AppError::Invalid {
                    field: "id",
                    message: "id must be a whole number".into(),
                })
        })?,
    };
    text.trim()
        .parse::<i64>()
        .map_err(|_| anyhow::anyhow!("id must be a whole number"))
}

/// Asks for one field, pre-filled with its current value: Enter keeps it.
fn ask_prefilled(
    theme: &ColorfulTheme,
    prompt: &str,
    current: &str,
    mut check: impl FnMut(&str) -> Result<(), AppError>,
) -> anyhow::Result<String> {
    Ok(Input::<String>::with_theme(theme)
        .with_prompt(prompt)
        .with_initial_text(current)
        .allow_empty(true)
        .validate_with(|value: &String| check(value).map_err(|e| e.to_string()))
        .interact_text()?)
}

/// `edit ID`: each field pre-filled, checked as it is typed, and written
/// only if the record still holds what was shown; if someone changed it
/// meanwhile, the new values are shown and asked again.
fn edit(session: &mut Session, theme: &ColorfulTheme, id: Option<String>) -> anyhow::Result<()> {
    let id = ask_id(theme, "Id of the record to edit", id)?;
    let mut seen = records::get(session, id)?;
    println!("Editing record {id}. Enter keeps a field as it is; an empty email removes it.");
    loop {
        let name = ask_prefilled(theme, "Name", &seen.name, |s| parse_name(s).map(drop))?;
        let age = ask_prefilled(theme, "Age", &seen.age.to_string(), |s| {
            parse_age(s).map(drop)
        })?;
        let email = ask_prefilled(
            theme,
            "Email (empty for none)",
            seen.email.as_deref().unwrap_or(""),
            |s| {
                if let Some(email) = parse_email(s)? {
                    if let Some(owner) = records::email_owner(session, &email)?.filter(|&o| o != id)
                    {
                        return Err(AppError::Invalid {
                            field: "email",
                            message: format!("email is already used by record {owner}"),
                        });
                    }
                }
                Ok(())
            },
        )?;
        let new_name = parse_name(&name)?;
        let new_age = parse_age(&age)?;
        let new_email = parse_email(&email)?;
        let changes = records::Changes {
            name: (new_name != seen.name).then_some(name.as_str()),
            email: (new_email != seen.email).then_some(email.as_str()),
            age: (new_age != seen.age).then_some(age.as_str()),
        };
        if changes.name.is_none() && changes.email.is_none() && changes.age.is_none() {
            println!("Nothing changed.");
            return Ok(());
        }
        match records::update_if_same(session, &seen, &changes)? {
            records::Edited::Done(record) => {
                println!("Updated record {id}.");
                println!("{}", table(&[record]));
                return Ok(());
            }
            records::Edited::ChangedMeanwhile(now) => {
                println!(
                    "Record {id} was changed by someone else while you edited it; nothing of \
                     yours was written. It now holds:"
                );
                println!("{}", table(std::slice::from_ref(&now)));
                println!("Edit it again (Enter keeps these values), or Ctrl-C to leave it.");
                seen = now;
            }
        }
    }
}

/// "Rotate the data key": asks first, optionally also the index key, then
/// rotates with a progress bar (rows/s). Ctrl-C stops between batches:
/// every row stays readable, and rotating again finishes the work.
fn rotate(session: &mut Session, theme: &ColorfulTheme) -> anyhow::Result<()> {
    let total = records::count(session)?;
    let go = Confirm::with_theme(theme)
        .with_prompt(format!(
            "Make a new data key and re-encrypt all {total} record(s) under it?"
        ))
        .default(false)
        .wait_for_newline(true)
        .interact_opt()?;
    if go != Some(true) {
        println!("Nothing rotated.");
        return Ok(());
    }
    let index = Confirm::with_theme(theme)
        .with_prompt("Also make a new blind-index key and recompute every search index?")
        .default(false)
        .wait_for_newline(true)
        .interact_opt()?;
    let Some(index) = index else {
        println!("Nothing rotated.");
        return Ok(());
    };
    match interruptible(session, |s| super::keys::rotate_all(s, index, 1000)) {
        Err(e) if is_interrupt(&e) => {
            println!(
                "Stopped by Ctrl-C between two batches. Every record is readable; choose \
                 rotate again to finish."
            );
            Ok(())
        }
        other => other,
    }
}

/// "Change the passphrase": asks first, then for the new one twice,
/// hidden, with the same rules as everywhere.
fn change_passphrase(session: &mut Session, theme: &ColorfulTheme) -> anyhow::Result<()> {
    let go = Confirm::with_theme(theme)
        .with_prompt(
            "Re-wrap the keys under a new passphrase? The current one stops working at once.",
        )
        .default(false)
        .wait_for_newline(true)
        .interact_opt()?;
    if go != Some(true) {
        println!("The passphrase is unchanged.");
        return Ok(());
    }
    let new = unlock::ask_new_passphrase()?;
    fieldseal_tool::app::rotate::change_master(session, &new)?;
    println!("The keys are re-wrapped under the new passphrase; the old one no longer opens this database.");
    Ok(())
}

fn show_found(found: Vec<fieldseal_tool::app::Record>, what: &str) -> anyhow::Result<()> {
    if found.is_empty() {
        println!("No record has that {what}.");
    } else {
        println!("{}", table(&found));
    }
    Ok(())
}

fn delete(session: &mut Session, theme: &ColorfulTheme, id: Option<String>) -> anyhow::Result<()> {
    let id = ask_id(theme, "Id of the record to delete", id)?;
    let record = records::get(session, id)?;
    let email = record
        .email
        .as_deref()
        .map(|e| format!(", {e}"))
        .unwrap_or_default();
    let confirmed = Confirm::with_theme(theme)
        .with_prompt(format!(
            "Delete record {id} ({}{email}, age {})?",
            record.name, record.age
        ))
        .default(false)
        .wait_for_newline(true)
        .interact_opt()?;
    if confirmed != Some(true) {
        println!("Nothing deleted.");
        return Ok(());
    }
    records::delete(session, id)?;
    println!("Deleted record {id}.");
    Ok(())
}

fn forget(session: &mut Session, theme: &ColorfulTheme, id: Option<String>) -> anyhow::Result<()> {
    let id = ask_id(theme, "Id of the record to forget", id)?;
    let shown = match records::get(session, id) {
        Ok(record) => format!(
            "record {id} ({}{}, age {})",
            record.name,
            record
                .email
                .as_deref()
                .map(|e| format!(", {e}"))
                .unwrap_or_default(),
            record.age
        ),
        Err(fieldseal_tool::app::AppError::Erased(_)) => format!("record {id} (already erased)"),
        Err(e) => return Err(e.into()),
    };
    let confirmed = Confirm::with_theme(theme)
        .with_prompt(format!(
            "Forget {shown}? Its key is destroyed: it cannot be read again, here or from a backup"
        ))
        .default(false)
        .wait_for_newline(true)
        .interact_opt()?;
    if confirmed != Some(true) {
        println!("Nothing forgotten.");
        return Ok(());
    }
    let how = records::forget(session, id)?;
    println!("{}", super::commands::forgotten_message(id, how));
    Ok(())
}

fn import(
    session: &mut Session,
    theme: &ColorfulTheme,
    file: Option<String>,
) -> anyhow::Result<()> {
    let file = match file {
        Some(f) => f,
        None => ask(theme, "CSV file to import", |s| {
            if s.trim().is_empty() {
                Err(AppError::Invalid {
                    field: "file",
                    message: "give a file name".into(),
                })
            } else {
                Ok(())
            }
        })?,
    };
    let skip = dialoguer::Select::with_theme(theme)
        .with_prompt("On a bad line")
        .items(["stop the import (abort)", "leave it out and go on (skip)"])
        .default(0)
        .interact_opt()?;
    let Some(skip) = skip else {
        println!("Nothing imported.");
        return Ok(());
    };
    let mut args = super::ImportArgs {
        file: PathBuf::from(file.trim()),
        batch_size: fieldseal_tool::app::import::DEFAULT_BATCH_SIZE as u32,
        on_error: if skip == 1 {
            super::OnErrorArg::Skip
        } else {
            super::OnErrorArg::Abort
        },
        rejects: None,
        resume: false,
        map: Vec::new(),
        force: false,
        no_load_data: false,
    };
    match interruptible(session, |s| super::import::run(s, &args)) {
        Err(e)
            if e.downcast_ref::<ImportError>()
                .is_some_and(ImportError::is_resumable) =>
        {
            eprintln!("{e}");
            let resume = Confirm::with_theme(theme)
                .with_prompt("Continue after the last committed line?")
                .default(true)
                .wait_for_newline(true)
                .interact_opt()?;
            if resume == Some(true) {
                args.resume = true;
                interruptible(session, |s| super::import::run(s, &args))?;
            }
            Ok(())
        }
        other => other.map(drop),
    }
}

/// Whether an error is the person cancelling (Ctrl-C in a prompt).
fn is_cancel(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<dialoguer::Error>()
            .is_some_and(|dialoguer::Error::IO(io)| io.kind() == std::io::ErrorKind::Interrupted)
            || cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::Interrupted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_commands_parse() {
        assert_eq!(parse(" add "), Action::Add);
        assert_eq!(parse("edit 12"), Action::Edit(Some("12".into())));
        assert_eq!(parse("list 3"), Action::List(Some("3".into())));
        assert_eq!(parse("more"), Action::Next);
        assert_eq!(parse("prev"), Action::Prev);
        assert_eq!(parse("rotate"), Action::Rotate);
        assert_eq!(
            parse("find alice smith"),
            Action::FindName(Some("alice smith".into()))
        );
        assert_eq!(
            parse("find a@b.org"),
            Action::FindEmail(Some("a@b.org".into()))
        );
        assert_eq!(parse("FIND"), Action::FindName(None));
        assert_eq!(parse("delete 7"), Action::Delete(Some("7".into())));
        assert_eq!(parse("quit"), Action::Quit);
        assert_eq!(parse("frobnicate x"), Action::Unknown("frobnicate".into()));
    }
}
