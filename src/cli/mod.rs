//! Command-line parsing and dispatch. No SQL and no crypto here: every
//! command calls a service in `fieldseal_tool::app`.

mod adopt;
mod audit;
mod commands;
pub mod import;
pub mod keys;
mod output;
mod repl;
mod unlock;

use clap::{Args, Parser, Subcommand};
use fieldseal_tool::app::import::DEFAULT_BATCH_SIZE;
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
    /// Erase a record for good: destroy its own key (per-user keys), delete
    /// its row, and record it in the audit trail
    Forget(DeleteArgs),
    /// Show the audit trail, or check it: fieldseal audit verify
    Audit(audit::AuditArgs),
    /// Export all records, decrypted, as CSV (name,email,age)
    Export(ExportArgs),
    /// Import records from a CSV file with a header name,email,age
    Import(ImportArgs),
    /// Key management: status, rotate, change-passphrase
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Take over another application's users table in place (plaintext,
    /// AES-CBC or Fernet values), keeping its ids
    Adopt(AdoptArgs),
    /// The interactive prompt (also what plain `fieldseal` opens in a terminal)
    Repl,
    /// Print a shell completion script: fieldseal completions bash > …
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
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
    /// At most this many records (with --page: records per page, default 20)
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
    limit: Option<i64>,
    /// Show page N (from 1) of the records, oldest first, --limit a page
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    page: Option<i64>,
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
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["name", "email", "age"])))]
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
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE as u32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
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
    #[arg(long = "map", value_name = "COLUMN=FIELD", value_parser = import::parse_mapping)]
    pub map: Vec<(String, fieldseal_tool::app::import::Field)>,
    /// Replace the rejects file if it exists
    #[arg(long, requires = "rejects")]
    pub force: bool,
    /// MySQL: write batches as multi-row INSERTs instead of LOAD DATA LOCAL
    /// INFILE (slower; for servers with local_infile off this happens by
    /// itself)
    #[arg(long)]
    pub no_load_data: bool,
}

#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// How the legacy app stored names and emails: plaintext, aes-cbc or fernet
    #[arg(long)]
    pub from: String,
    /// The legacy key: 32 raw bytes (aes-cbc) or a urlsafe-base64 Fernet key
    #[arg(long, value_name = "FILE")]
    pub legacy_key_file: Option<PathBuf>,
    /// Name a legacy column: COLUMN=name|email|age|created_at|skip (repeatable)
    #[arg(long = "map", value_name = "COLUMN=FIELD", value_parser = parse_adopt_mapping)]
    pub map: Vec<(String, fieldseal_tool::app::adopt::Target)>,
    /// Rows per batch; each batch is one transaction
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE as u32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// On a row that cannot be adopted: stop (abort), or leave it in the legacy table (skip)
    #[arg(long, value_enum, default_value_t = OnErrorArg::Abort)]
    pub on_error: OnErrorArg,
}

fn parse_adopt_mapping(text: &str) -> Result<(String, fieldseal_tool::app::adopt::Target), String> {
    let (from, to) = text
        .split_once('=')
        .ok_or_else(|| "expected COLUMN=FIELD, e.g. --map full_name=name".to_string())?;
    let field = to.parse().map_err(|e| format!("{from}=…: {e}"))?;
    Ok((from.trim().to_owned(), field))
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
    if let Some(Command::Completions { shell }) = cli.command {
        use clap::CommandFactory;
        use std::io::Write;
        // Into memory first: clap_complete panics on a failed write (a
        // closed pipe), which the error path below turns into success.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "fieldseal", &mut script);
        std::io::stdout().write_all(&script)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(command) = &cli.command {
        check_usage(command)?;
    }
    let url = DbUrl::parse(cli.database_url.as_deref())?;
    match cli.command {
        None | Some(Command::Repl) => repl::run(&url),
        Some(Command::Adopt(args)) => adopt::run(&url, &args),
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

/// A mistake in the command line that clap cannot see (exit 2), found
/// before anything is opened or written.
#[derive(Debug)]
pub struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Checks what depends on more than one argument or on the file system.
fn check_usage(command: &Command) -> Result<(), UsageError> {
    if let Command::Export(args) = command {
        if args.file.as_os_str() != "-" && args.file.exists() && !args.force {
            return Err(UsageError(format!(
                "{} already exists; use --force to replace it",
                args.file.display()
            )));
        }
    }
    Ok(())
}

/// Loads `.env` from the working directory, and from there only:
/// dotenvy's `dotenv()` also searches every parent directory, where a
/// planted file could redirect `DATABASE_URL` or the keys. Variables set
/// in the environment win over the file. A malformed line is named by its
/// number, never shown (it may hold a passphrase), and a file that holds a
/// secret and is readable by others gets a warning.
fn load_dotenv() -> anyhow::Result<()> {
    let path = std::path::Path::new(".env");
    if !path.exists() {
        return Ok(());
    }
    let items: Vec<(String, zeroize::Zeroizing<String>)> = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter
            .map(|item| item.map(|(k, v)| (k, zeroize::Zeroizing::new(v))))
            .collect::<Result<_, _>>()
            .map_err(|e| dotenv_error(path, e))?,
        Err(e) => return Err(dotenv_error(path, e)),
    };
    for (key, value) in &items {
        if std::env::var_os(key).is_none() {
            std::env::set_var(key, value.as_str());
        }
    }
    warn_if_exposed(path, &items);
    Ok(())
}

fn dotenv_error(path: &std::path::Path, e: dotenvy::Error) -> anyhow::Error {
    match e {
        dotenvy::Error::LineParse(line, _) => {
            let line = zeroize::Zeroizing::new(line);
            let number = std::fs::read_to_string(path)
                .ok()
                .map(zeroize::Zeroizing::new)
                .and_then(|text| {
                    let first = line.lines().next().unwrap_or_default().to_owned();
                    text.lines().position(|l| l == first).map(|i| i + 1)
                });
            match number {
                Some(n) => anyhow::anyhow!(
                    ".env:{n}: the line is malformed (expected NAME=value; its text is not shown, \
                     it may hold a secret)"
                ),
                None => anyhow::anyhow!(
                    ".env: a line is malformed (expected NAME=value; its text is not shown, it may \
                     hold a secret)"
                ),
            }
        }
        dotenvy::Error::Io(e) => anyhow::anyhow!("cannot read .env: {e}"),
        _ => anyhow::anyhow!("cannot read .env"),
    }
}

/// Warns when `.env` holds a secret and its mode lets the group or others
/// read it.
fn warn_if_exposed(path: &std::path::Path, items: &[(String, zeroize::Zeroizing<String>)]) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            return;
        }
        let secret = items.iter().find(|(key, value)| {
            matches!(
                key.as_str(),
                "FIELDSEAL_PASSPHRASE"
                    | "FIELDSEAL_MASTER_KEY"
                    | "FIELDSEAL_KEYS"
                    | "FIELDSEAL_INDEX_KEY"
                    | "FIELDSEAL_NEW_PASSPHRASE"
                    | "FIELDSEAL_NEW_MASTER_KEY"
            ) || (matches!(key.as_str(), "DATABASE_URL" | "FIELDSEAL_KEYSTORE_URL")
                && url_has_password(value))
        });
        if let Some((key, _)) = secret {
            eprintln!(
                "warning: .env holds {key} and has mode {mode:04o}, so others on this machine \
                 can read it: chmod 600 .env"
            );
        }
    }
}

fn url_has_password(url: &str) -> bool {
    url.split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// Exit code for an error: 2 for invalid input (a usage error), else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let invalid = err.chain().any(|c| {
        let app = c.downcast_ref::<AppError>().or_else(|| {
            c.downcast_ref::<fieldseal_tool::app::import::ImportError>()
                .and_then(|e| e.app_error())
        });
        matches!(app, Some(AppError::Invalid { .. }))
            || matches!(
                c.downcast_ref::<fieldseal::Error>(),
                Some(fieldseal::Error::WeakPassphrase { .. })
            )
            || matches!(
                c.downcast_ref::<AppError>(),
                Some(AppError::Crypto(fieldseal::Error::WeakPassphrase { .. }))
            )
            || c.is::<repl::NotATerminal>()
            || c.is::<UsageError>()
    });
    if invalid {
        2
    } else {
        1
    }
}
