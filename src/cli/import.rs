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
    let mapping = args.map.clone();
    let options = ImportOptions {
        batch_size: args.batch_size as usize,
        on_error: if args.on_error == super::OnErrorArg::Skip {
            OnError::Skip
        } else {
            OnError::Abort
        },
        resume: args.resume,
        mapping,
        bulk_load: !args.no_load_data,
    };
    let mut rejects_file = match &args.rejects {
        Some(path) => Some(RejectsFile::open(path, args.resume, args.force)?),
        None => None,
    };
    let mut stderr_rejects = StderrRejects(args.file.display().to_string());
    let rejects: &mut dyn RejectSink = match &mut rejects_file {
        Some(file) => &mut file.sink,
        None => &mut stderr_rejects,
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
    let result = import::import(session, &args.file, &options, rejects, &mut on_progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    // The lines of every committed batch are kept, whatever happened after.
    if let Some(file) = rejects_file {
        file.finish()?;
    }
    let report = result?;
    print_summary(&args.file, &report, args.rejects.as_deref());
    if report.interrupted {
        match report.last_committed_line {
            Some(line) => eprintln!(
                "Stopped by Ctrl-C. Lines 2–{line} are in the database; nothing after line {line} \
                 was written."
            ),
            None => eprintln!("Stopped by Ctrl-C. Nothing from this file was written."),
        }
        eprintln!("To finish it, run: {}", resume_command(args));
        return Ok(ExitCode::from(130));
    }
    Ok(if report.stopped_at.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The command that finishes an interrupted import of `args`: the same
/// file and options, with `--resume`.
pub fn resume_command(args: &ImportArgs) -> String {
    let mut words = vec![
        "fieldseal".to_owned(),
        "import".to_owned(),
        shell_quote(&args.file.display().to_string()),
        "--resume".to_owned(),
    ];
    if args.on_error == super::OnErrorArg::Skip {
        words.extend(["--on-error".into(), "skip".into()]);
    }
    if let Some(rejects) = &args.rejects {
        words.extend([
            "--rejects".into(),
            shell_quote(&rejects.display().to_string()),
        ]);
    }
    if args.batch_size as usize != fieldseal_tool::app::import::DEFAULT_BATCH_SIZE {
        words.extend(["--batch-size".into(), args.batch_size.to_string()]);
    }
    for (column, field) in &args.map {
        words.extend(["--map".into(), shell_quote(&format!("{column}={field}"))]);
    }
    if args.no_load_data {
        words.push("--no-load-data".into());
    }
    words.join(" ")
}

/// `text` as one word for a POSIX shell.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=:@,+".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
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

/// Parses `--map COLUMN=FIELD` (a usage error, exit 2, when malformed).
///
/// # Errors
/// A sentence saying what is expected.
pub fn parse_mapping(text: &str) -> Result<(String, Field), String> {
    let (from, to) = text
        .split_once('=')
        .ok_or_else(|| "expected COLUMN=FIELD, e.g. --map full_name=name".to_string())?;
    let field = to.parse::<Field>().map_err(|e| format!("{from}=…: {e}"))?;
    Ok((from.trim().to_owned(), field))
}

/// The rejects file holds the rejected lines' own fields, plaintext names
/// and emails included. It is never written through a symbolic link, and
/// never readable by others: a new file is written privately (mode 0600)
/// beside its destination and renamed into place when the import ends,
/// replacing an existing file only with `--force`; `--resume` appends to
/// an existing one only if it is a private regular file.
struct RejectsFile {
    sink: CsvRejects<std::io::BufWriter<std::fs::File>>,
    /// A new file, and where it goes; `None` when appending in place.
    pending: Option<(tempfile::NamedTempFile, std::path::PathBuf)>,
}

impl RejectsFile {
    fn open(path: &Path, resume: bool, force: bool) -> anyhow::Result<Self> {
        let shown = path.display();
        let existing = match std::fs::symlink_metadata(path) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => anyhow::bail!("cannot use the rejects file {shown}: {e}"),
        };
        match existing {
            Some(meta) if meta.file_type().is_symlink() => anyhow::bail!(
                "the rejects file {shown} is a symbolic link; rejected lines hold plaintext, \
                 so give the path of a file, not of a link"
            ),
            Some(meta) if !meta.is_file() => {
                anyhow::bail!("the rejects file {shown} is not a regular file")
            }
            Some(meta) if resume => Self::append(path, &meta),
            Some(_) if !force => anyhow::bail!(
                "the rejects file {shown} exists; give --force to replace it, or another file"
            ),
            _ => {
                let dir = match path.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                // tempfile creates it 0600, with a name nobody else chose.
                let tmp = tempfile::Builder::new()
                    .prefix(".fieldseal-rejects-")
                    .tempfile_in(dir)
                    .with_context(|| format!("cannot create the rejects file {shown}"))?;
                let writer = std::io::BufWriter::new(tmp.as_file().try_clone()?);
                Ok(RejectsFile {
                    sink: CsvRejects(writer, true),
                    pending: Some((tmp, path.to_owned())),
                })
            }
        }
    }

    /// `--resume`: appends to the file an earlier run began, if it is
    /// still private; opened without following a link.
    fn append(path: &Path, meta: &std::fs::Metadata) -> anyhow::Result<Self> {
        let shown = path.display();
        let mut options = std::fs::OpenOptions::new();
        options.append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            options.custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits());
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                anyhow::bail!(
                    "the rejects file {shown} has mode {mode:04o}; it holds plaintext, so it must \
                     be private (chmod 600 it) before --resume appends to it"
                );
            }
        }
        let file = options
            .open(path)
            .with_context(|| format!("cannot open the rejects file {shown}"))?;
        Ok(RejectsFile {
            sink: CsvRejects(std::io::BufWriter::new(file), meta.len() == 0),
            pending: None,
        })
    }

    /// Flushes, and puts a new file in place (atomically replacing any).
    fn finish(self) -> anyhow::Result<()> {
        let RejectsFile { sink, pending } = self;
        let mut writer = sink.0;
        writer.flush().context("cannot write the rejects file")?;
        if let Some((tmp, dest)) = pending {
            tmp.persist(&dest)
                .with_context(|| format!("cannot write the rejects file {}", dest.display()))?;
        }
        Ok(())
    }
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
