//! `fieldseal import`: the command-line face of `fieldseal_tool::app::import`.

use super::ImportArgs;
use anyhow::Context as _;
use fieldseal_tool::app::import::{
    self, CsvRejects, Field, ImportOptions, ImportReport, OnError, Progress, RejectSink, Rejection,
};
use fieldseal_tool::app::Session;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

/// Runs an import, with a progress bar on a terminal and a one-line
/// summary at the end.
pub fn run(session: &mut Session, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let mapping = args
        .map
        .iter()
        .map(|m| parse_mapping(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = ImportOptions {
        batch_size: args.batch_size as usize,
        on_error: if args.on_error == super::OnErrorArg::Skip {
            OnError::Skip
        } else {
            OnError::Abort
        },
        resume: args.resume,
        mapping,
        ..ImportOptions::default()
    };
    let mut rejects: Box<dyn RejectSink> = match &args.rejects {
        Some(path) => {
            let has_header = args.resume
                && std::fs::metadata(path)
                    .map(|m| m.len() > 0)
                    .unwrap_or(false);
            Box::new(CsvRejects(open_rejects(path, args.resume)?, !has_header))
        }
        None => Box::new(StderrRejects(args.file.display().to_string())),
    };
    let bar = progress_bar();
    let started = std::time::Instant::now();
    let mut on_progress = |p: &Progress| {
        if let Some(bar) = &bar {
            let secs = started.elapsed().as_secs_f64().max(0.001);
            bar.set_length(p.total_bytes);
            bar.set_position(p.bytes);
            bar.set_message(format!(
                "{} rows in, {} rejected, {:.0} rows/s",
                p.inserted,
                p.rejected,
                p.read as f64 / secs
            ));
        }
    };
    let result = import::import(
        session,
        &args.file,
        &options,
        rejects.as_mut(),
        &mut on_progress,
    );
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = result?;
    print_summary(&args.file, &report, args.rejects.as_deref());
    Ok(if report.stopped_at.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Without `--rejects`, each rejected line is reported on stderr as
/// `FILE:LINE: reason` (the reason never holds the values).
struct StderrRejects(String);

impl RejectSink for StderrRejects {
    fn header(&mut self, _: &[Vec<u8>]) -> std::io::Result<()> {
        Ok(())
    }

    fn reject(&mut self, r: &Rejection) -> std::io::Result<()> {
        writeln!(std::io::stderr(), "{}:{}: {}", self.0, r.line, r.reason)
    }
}

fn parse_mapping(text: &str) -> anyhow::Result<(String, Field)> {
    let (from, to) = text
        .split_once('=')
        .with_context(|| "--map takes COLUMN=FIELD, e.g. --map full_name=name".to_string())?;
    let field = to
        .parse::<Field>()
        .map_err(|e| anyhow::anyhow!("--map {from}=…: {e}"))?;
    Ok((from.trim().to_owned(), field))
}

/// The rejects file holds the rejected lines' own fields, plaintext names
/// and emails included: it is created readable by its owner only.
fn open_rejects(path: &Path, append: bool) -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(path)
        .with_context(|| format!("cannot open the rejects file {}", path.display()))?;
    Ok(std::io::BufWriter::new(file))
}

fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{spinner} [{bar:30}] {percent:>3}%  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    Some(bar)
}

fn print_summary(path: &Path, report: &ImportReport, rejects: Option<&Path>) {
    let secs = report.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        report.read as f64 / secs
    } else {
        0.0
    };
    let file = path.display();
    if report.resumed_after > 0 {
        eprintln!(
            "{file}: resumed after {} records already in",
            report.resumed_after
        );
    }
    if let Some(stop) = &report.stopped_at {
        eprintln!("{file}:{}: {}", stop.line, stop.reason);
        match report.last_committed_line {
            Some(line) => {
                eprintln!(
                    "Stopped at line {}. Lines 2–{line} are in the database; nothing after line {line} was written.",
                    stop.line
                );
                eprintln!(
                    "Before importing a corrected copy, remove lines 2–{line} from it: an edited file is a \
                     new file to --resume, and those lines would go in twice."
                );
            }
            None => eprintln!(
                "Stopped at line {}. Nothing from this file was written.",
                stop.line
            ),
        }
    }
    eprintln!(
        "{file}: read {} rows, inserted {}, rejected {} in {secs:.2} s ({rate:.0} rows/s)",
        report.read, report.inserted, report.rejected
    );
    if report.rejected > 0 && report.stopped_at.is_none() {
        match rejects {
            Some(r) => eprintln!(
                "Rejected lines, with their line numbers and reasons, are in {}.",
                r.display()
            ),
            None => eprintln!("Give --rejects FILE to keep the rejected lines."),
        }
    }
}
