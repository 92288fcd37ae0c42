//! `fieldseal audit [--record ID] [--since DATE] [--format …]` and
//! `fieldseal audit verify`.

use super::Format;
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use fieldseal_tool::app::audit::{self, Entry, Verdict};
use fieldseal_tool::app::Session;
use std::process::ExitCode;

/// `audit` arguments.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: Option<AuditCommand>,
    /// Only entries about this record
    #[arg(long)]
    record: Option<i64>,
    /// Only entries from this day (YYYY-MM-DD, UTC) or moment (RFC 3339) on
    #[arg(long, value_parser = parse_since)]
    since: Option<i64>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the chain: exit 0 when intact, 1 naming the first broken entry
    Verify,
}

/// `--since`: a date (midnight UTC) or an RFC 3339 time, as Unix
/// milliseconds.
fn parse_since(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| "expected a date YYYY-MM-DD or a time like 2026-11-30T12:00:00Z".into())
}

/// Runs `audit`.
pub fn run(session: &mut Session, args: AuditArgs) -> anyhow::Result<ExitCode> {
    if let Some(AuditCommand::Verify) = args.command {
        return match audit::verify(session)? {
            Verdict::Intact { entries } => {
                println!(
                    "The audit trail is intact: {entries} entries, each chained to the one before."
                );
                Ok(ExitCode::SUCCESS)
            }
            Verdict::Broken { id, why } => {
                eprintln!("The audit trail is broken at entry {id}: {why}.");
                Ok(ExitCode::from(1))
            }
        };
    }
    let entries = audit::show(session, args.record, args.since)?;
    print_entries(&entries, args.format)?;
    Ok(ExitCode::SUCCESS)
}

/// An entry's cells, in the columns' order (CSV and table alike).
fn row(e: &Entry) -> [String; 8] {
    let cell = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    [
        e.id.to_string(),
        e.at.clone(),
        e.user.clone(),
        e.operation.clone(),
        cell(e.record),
        cell(e.count),
        e.outcome.clone(),
        e.detail.clone(),
    ]
}

fn print_entries(entries: &[Entry], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(entries)?),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout());
            w.write_record([
                "id",
                "at",
                "user",
                "operation",
                "record",
                "count",
                "outcome",
                "detail",
            ])?;
            for e in entries {
                w.write_record(row(e))?;
            }
            w.flush()?;
        }
        Format::Table => {
            if entries.is_empty() {
                println!("No audit entries.");
                return Ok(());
            }
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED).set_header([
                "#",
                "at (UTC)",
                "user",
                "operation",
                "record",
                "count",
                "outcome",
                "detail",
            ]);
            for e in entries {
                table.add_row(row(e));
            }
            println!("{table}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_takes_a_day_or_a_moment() {
        assert_eq!(parse_since("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_since("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert!(parse_since("yesterday").is_err());
    }
}
