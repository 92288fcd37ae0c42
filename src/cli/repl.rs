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
  list                list records, newest first, a page at a time
  find NAME           find records by name (find ADDRESS with an @ searches emails)
  email ADDRESS       find the record with this email
  delete ID           delete a record (asks first)
  import FILE         import records from a CSV file (name,email,age)
  export FILE         export all records, decrypted, as CSV
  keys                key status
  help                this list
  quit                leave (Ctrl-D works too)
Ctrl-C cancels the action in progress.";

const MENU: &[(&str, Action)] = &[
    ("Add a record", Action::Add),
    ("List records", Action::List),
    ("Find by name", Action::FindName(None)),
    ("Find by email", Action::FindEmail(None)),
    ("Delete a record", Action::Delete(None)),
    ("Import a CSV file", Action::Import(None)),
    ("Export to CSV", Action::Export(None)),
    ("Key status", Action::KeyStatus),
    ("Help", Action::Help),
    ("Quit", Action::Quit),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Add,
    List,
    FindName(Option<String>),
    FindEmail(Option<String>),
    Delete(Option<String>),
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
    ctrlc::set_handler(|| {}).map_err(|e| anyhow::anyhow!("cannot handle Ctrl-C: {e}"))?;
    // Prompts read one key at a time and restore the terminal in between;
    // with the terminal's own Ctrl-C signal on, a Ctrl-C typed in that
    // instant became a signal and was lost. Off, it is always a key.
    let _keys = CtrlCAsKey::enable();

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
        match perform(&mut session, &theme, action) {
            Ok(()) => {}
            Err(e) if is_cancel(&e) => println!("Cancelled."),
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
    fn enable() -> Self {
        use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
        let stdin = std::io::stdin();
        let Ok(original) = tcgetattr(&stdin) else {
            return CtrlCAsKey(None);
        };
        let mut changed = original.clone();
        changed.local_flags.remove(LocalFlags::ISIG);
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
        "list" | "ls" | "l" => Action::List,
        "find" | "f" => match arg {
            Some(a) if a.contains('@') => Action::FindEmail(Some(a)),
            other => Action::FindName(other),
        },
        "email" => Action::FindEmail(arg),
        "delete" | "del" | "rm" => Action::Delete(arg),
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

fn perform(session: &mut Session, theme: &ColorfulTheme, action: Action) -> anyhow::Result<()> {
    match action {
        Action::Add => add(session, theme),
        Action::List => list(session, theme),
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
            let written = export_file(session, &path)?;
            println!("Exported {written} record(s) to {}.", path.display());
            Ok(())
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

fn list(session: &mut Session, theme: &ColorfulTheme) -> anyhow::Result<()> {
    let total = records::count(session)?;
    if total == 0 {
        println!("No records yet. Type add to create one.");
        return Ok(());
    }
    let mut offset = 0;
    loop {
        let mut shown = Vec::new();
        for result in records::list(session, true, Some(PAGE), offset)? {
            match result {
                Ok(record) => shown.push(record),
                Err(e) => eprintln!("error: {e}"),
            }
        }
        println!("{}", table(&shown));
        offset += PAGE;
        let end = offset.min(total);
        println!(
            "Records {}–{end} of {total}, newest first.",
            offset - PAGE + 1
        );
        if offset >= total {
            return Ok(());
        }
        let more = Confirm::with_theme(theme)
            .with_prompt("Show the next page?")
            .default(true)
            .wait_for_newline(true)
            .interact_opt()?;
        if more != Some(true) {
            return Ok(());
        }
    }
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
    let id_text = match id {
        Some(id) => id,
        None => ask(theme, "Id of the record to delete", |s| {
            s.trim()
                .parse::<i64>()
                .map(drop)
                .map_err(|_| AppError::Invalid {
                    field: "id",
                    message: "id must be a whole number".into(),
                })
        })?,
    };
    let Ok(id) = id_text.trim().parse::<i64>() else {
        bail!("id must be a whole number");
    };
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
    match super::import::run(session, &args) {
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
                super::import::run(session, &args)?;
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
