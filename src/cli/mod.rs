//! Command-line parsing and dispatch. No SQL and no crypto here: every
//! command calls a service in `fieldseal_tool::app`.

mod commands;
pub mod import;
pub mod keys;
mod output;
mod repl;
mod unlock;

use clap::{Args, Parser, Subcommand};
use fieldseal_tool::app::AppError;
use fieldseal_tool::store::DbUrl;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Keeps names and emails encrypted in MySQL (or a SQLite file).
#[derive(Debug, Parser)]
#[command(
    name = "fieldseal",
    version,
    about = "Keeps the names and emails of user records encrypted in MySQL or a SQLite file",
    long_about = None
)]
pub struct Cli {
    /// Database: mysql://user:pass@host:port/db, or a SQLite file
    /// [default: fieldseal.db]
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add a record
    Add(AddArgs),
    /// List records
    List(ListArgs),
    /// Find records by name or email (exact match after normalization)
    Find(FindArgs),
    /// Change fields of a record (re-encrypts it)
    Update(UpdateArgs),
    /// Delete a record
    Delete(DeleteArgs),
    /// Export all records, decrypted, as CSV (name,email,age)
    Export(ExportArgs),
    /// Import records from a CSV file with a header name,email,age
    Import(ImportArgs),
    /// Key management: status, rotate, change-passphrase
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// The interactive prompt (also what plain `fieldseal` opens in a terminal)
    Repl,
}

#[derive(Debug, Args)]
struct AddArgs {
    /// Full name (1–200 characters)
    #[arg(long)]
    name: String,
    /// Age, a whole number from 0 to 150
    #[arg(long, allow_hyphen_values = true)]
    age: String,
    /// Email address (unique)
    #[arg(long)]
    email: Option<String>,
    /// Output format of the added record
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// At most this many records
    #[arg(long)]
    limit: Option<i64>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["name", "email"])))]
struct FindArgs {
    /// Name to look for
    #[arg(long)]
    name: Option<String>,
    /// Email to look for
    #[arg(long)]
    email: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Args)]
struct UpdateArgs {
    /// Id of the record
    id: i64,
    /// New name
    #[arg(long)]
    name: Option<String>,
    /// New email ("" removes it)
    #[arg(long)]
    email: Option<String>,
    /// New age
    #[arg(long, allow_hyphen_values = true)]
    age: Option<String>,
    /// Output format of the updated record
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Args)]
struct DeleteArgs {
    /// Id of the record
    id: i64,
    /// Do not ask for confirmation
    #[arg(long, short)]
    yes: bool,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// CSV file to write, or - for standard output
    file: PathBuf,
    /// Replace the file if it exists
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// CSV file with a header line naming the columns name, email and age
    pub file: PathBuf,
    /// Records per batch; each batch is one transaction
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// On a bad line: stop (abort), or leave it out and go on (skip)
    #[arg(long, value_enum, default_value_t = OnErrorArg::Abort)]
    pub on_error: OnErrorArg,
    /// Write rejected lines here (CSV: line, reason, then the line's fields)
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Continue an interrupted import of the same file after its last committed batch
    #[arg(long)]
    pub resume: bool,
    /// Map an extra header column: COLUMN=name|email|age|skip (repeatable)
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    pub map: Vec<String>,
}

/// `--on-error` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnErrorArg {
    /// Stop at the first bad line
    Abort,
    /// Leave bad lines out and go on
    Skip,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A readable table
    Table,
    /// CSV with a header
    Csv,
    /// A JSON array
    Json,
}

/// Parses the command line and runs it.
pub fn run() -> anyhow::Result<ExitCode> {
    load_dotenv()?;
    let cli = Cli::parse();
    let interactive = std::io::stdin().is_terminal();
    if cli.command.is_none() && !interactive {
        use clap::CommandFactory;
        Cli::command().print_help()?;
        return Ok(ExitCode::from(2));
    }
    let url = DbUrl::parse(cli.database_url.as_deref())?;
    match cli.command {
        None | Some(Command::Repl) => repl::run(&url),
        Some(Command::Keys { command }) => {
            let mut session = unlock::open_session(&url)?;
            keys::run(&mut session, &command)
        }
        Some(command) => {
            let mut session = unlock::open_session(&url)?;
            commands::run(&mut session, command)
        }
    }
}

fn load_dotenv() -> anyhow::Result<()> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot read .env: {e}")),
    }
}

/// Exit code for an error: 2 for invalid input (a usage error), else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let invalid = err.chain().any(|c| {
        matches!(c.downcast_ref::<AppError>(), Some(AppError::Invalid { .. }))
            || c.is::<repl::NotATerminal>()
    });
    if invalid {
        2
    } else {
        1
    }
}
