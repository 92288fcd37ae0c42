//! The subcommands, each a thin call into `fieldseal_tool::app`.

use super::output::print_records;
use super::{AddArgs, Command, DeleteArgs, ExportArgs, FindArgs, ListArgs, UpdateArgs};
use anyhow::{bail, Context as _};
use fieldseal_tool::app::records::Forgotten;
use fieldseal_tool::app::records::{self, Changes};
use fieldseal_tool::app::AppError;
use fieldseal_tool::app::{RecordInput, Session};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Runs one subcommand against an unlocked session.
pub fn run(session: &mut Session, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Add(args) => add(session, args),
        Command::List(args) => list(session, args),
        Command::Find(args) => find(session, args),
        Command::Update(args) => update(session, args),
        Command::Delete(args) => delete(session, args),
        Command::Forget(args) => forget(session, args),
        Command::Audit(args) => super::audit::run(session, args),
        Command::Export(args) => export(session, args),
        Command::Import(args) => super::import::run(session, &args),
        Command::Repl | Command::Keys { .. } | Command::Completions { .. } | Command::Adopt(_) => {
            bail!("this command is dispatched before a plain session is opened")
        }
    }
}

fn add(session: &mut Session, args: AddArgs) -> anyhow::Result<ExitCode> {
    let input = RecordInput::parse(&args.name, args.email.as_deref(), &args.age)?;
    let record = records::add(session, &input)?;
    print_records(&[record], args.format)?;
    Ok(ExitCode::SUCCESS)
}

fn list(session: &mut Session, args: ListArgs) -> anyhow::Result<ExitCode> {
    let (limit, offset) = match args.page {
        Some(page) => {
            let per_page = args.limit.unwrap_or(20);
            (Some(per_page), (page - 1).saturating_mul(per_page))
        }
        None => (args.limit, 0),
    };
    let mut shown = Vec::new();
    let mut failed = 0usize;
    for result in records::list(session, false, limit, offset)? {
        match result {
            Ok(record) => shown.push(record),
            Err(err) => {
                failed += 1;
                eprintln!("error: {err}");
            }
        }
    }
    print_records(&shown, args.format)?;
    if failed > 0 {
        eprintln!("{failed} record(s) could not be decrypted");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn find(session: &mut Session, args: FindArgs) -> anyhow::Result<ExitCode> {
    let (found, what) = match (&args.name, &args.email) {
        (Some(name), _) => (records::find_by_name(session, name)?, "name"),
        (None, Some(email)) => (records::find_by_email(session, email)?, "email"),
        (None, None) => bail!("give --name or --email"),
    };
    if found.is_empty() {
        eprintln!("no record has that {what}");
        return Ok(ExitCode::from(1));
    }
    print_records(&found, args.format)?;
    Ok(ExitCode::SUCCESS)
}

fn update(session: &mut Session, args: UpdateArgs) -> anyhow::Result<ExitCode> {
    let changes = Changes {
        name: args.name.as_deref(),
        email: args.email.as_deref(),
        age: args.age.as_deref(),
    };
    let record = records::update(session, args.id, &changes)?;
    print_records(&[record], args.format)?;
    Ok(ExitCode::SUCCESS)
}

fn delete(session: &mut Session, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let record = records::get(session, args.id)?;
    if !args.yes && std::io::stdin().is_terminal() {
        let question = format!("Delete record {} ({})?", record.id, record.name);
        let confirmed = confirm(&question)?;
        if !confirmed {
            eprintln!("Nothing deleted.");
            return Ok(ExitCode::from(1));
        }
    }
    records::delete(session, args.id)?;
    eprintln!("Deleted record {}.", args.id);
    Ok(ExitCode::SUCCESS)
}

fn forget(session: &mut Session, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    // A record whose key is gone already (a restored backup) can still be
    // forgotten: its row is deleted.
    let shown = match records::get(session, args.id) {
        Ok(record) => format!("record {} ({})", record.id, record.name),
        Err(AppError::Erased(id)) => format!("record {id} (already erased)"),
        Err(e) => return Err(e.into()),
    };
    if !args.yes && std::io::stdin().is_terminal() {
        let question = format!(
            "Forget {shown}? Its key is destroyed: it cannot be read again, from this database              or from any backup"
        );
        if !confirm(&question)? {
            eprintln!("Nothing forgotten.");
            return Ok(ExitCode::from(1));
        }
    }
    eprintln!(
        "{}",
        forgotten_message(args.id, records::forget(session, args.id)?)
    );
    Ok(ExitCode::SUCCESS)
}

/// What `forget` says it did (also the prompt's).
pub fn forgotten_message(id: i64, how: Forgotten) -> String {
    match how {
        Forgotten::KeyDestroyed => format!(
            "Forgot record {id}: its key is destroyed and its row deleted. Copies of it in              backups of the data no longer open."
        ),
        Forgotten::RowOnly => format!(
            "Deleted record {id}. It had no key of its own (per-user keys were off when it was              written), so backups taken before now still hold it, readable with the keyring."
        ),
    }
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

fn export(session: &mut Session, args: ExportArgs) -> anyhow::Result<ExitCode> {
    if args.file.as_os_str() == "-" {
        let written = records::export(session, std::io::BufWriter::new(std::io::stdout()))?;
        eprintln!("Exported {written} record(s).");
        return Ok(ExitCode::SUCCESS);
    }
    if args.file.exists() && !args.force {
        bail!(
            "{} already exists; use --force to replace it",
            args.file.display()
        );
    }
    let written = export_file(session, &args.file)?;
    eprintln!("Exported {written} record(s) to {}.", args.file.display());
    Ok(ExitCode::SUCCESS)
}

/// Exports every record to `path`, replacing it. Writes beside the target
/// and renames, so a failure never leaves a half-written file under the
/// requested name.
pub fn export_file(session: &mut Session, path: &std::path::Path) -> anyhow::Result<u64> {
    if path.is_dir() {
        bail!("{} is a directory; give a file name", path.display());
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let written = records::export(session, std::io::BufWriter::new(tmp.as_file()))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(written)
}
