//! `faxgate convert`: runs the document pipeline offline on files or a saved message
//! and writes the PDF that would be faxed, as a preview.
//!
//! The `[documents]` settings come from the configuration when `--config` or
//! `$FAXGATE_CONFIG` names one, or when the default path exists; otherwise the built-in
//! defaults apply. Files given directly are not filtered by `min_image_pixels`.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{Failure, print_stdout};
use crate::config::Config;
use crate::documents::{self, Converted, DocumentError, Limits, PartOutcome, PartReport};

#[derive(Debug, Args)]
pub(super) struct ConvertArgs {
    /// Documents to convert, merged in the order given
    #[arg(value_name = "FILE", required_unless_present = "eml", conflicts_with = "eml")]
    files: Vec<PathBuf>,
    /// A whole message (RFC 5322, as saved by a mail client) to convert instead of files
    #[arg(long, value_name = "MESSAGE.eml")]
    eml: Option<PathBuf>,
    /// Path of the PDF to write
    #[arg(short = 'o', long = "output", value_name = "OUT.pdf")]
    output: PathBuf,
}

/// Converts the input and writes the PDF. A rejection by the pipeline is an operational
/// failure (exit status 1) whose message is the text of the SMTP reply.
pub(super) fn execute(args: &ConvertArgs, config: Option<&Config>) -> Result<(), Failure> {
    // Logging to stderr only when asked for, so that stderr carries just the one-line
    // reason of a rejection.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }
    let limits = match config {
        Some(config) => Limits::from_settings(&config.documents, config.smtp.max_message_size),
        None => Limits::default(),
    };

    let result = match &args.eml {
        Some(path) => documents::message_to_pdf(&read_input(path)?, &limits),
        None => {
            let mut files = Vec::with_capacity(args.files.len());
            for path in &args.files {
                let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
                files.push((name, read_input(path)?));
            }
            documents::files_to_pdf(&files, &limits)
        }
    };

    let converted = match result {
        Ok(converted) => converted,
        Err(error) => {
            if let DocumentError::NoDocument { skipped } = &error {
                print_stdout(&part_lines(skipped))?;
            }
            // The reason of the SMTP reply, before the reply reduces it to ASCII: a
            // terminal shows the file name as the sender wrote it.
            return Err(Failure::operational(error.to_string()));
        }
    };
    print_stdout(&part_lines(&converted.parts))?;
    write_output(&args.output, &converted)?;
    let pages = if converted.pages == 1 { "1 page".to_string() } else { format!("{} pages", converted.pages) };
    print_stdout(&format!("wrote {} ({pages})\n", args.output.display()))
}

/// Formats one line per part: its name, detected type, and pages or why it was skipped.
fn part_lines(parts: &[PartReport]) -> String {
    parts
        .iter()
        .map(|part| {
            let outcome = match &part.outcome {
                PartOutcome::Faxed { pages: 1 } => "1 page".to_string(),
                PartOutcome::Faxed { pages } => format!("{pages} pages"),
                PartOutcome::Skipped { reason } => format!("skipped: {reason}"),
                PartOutcome::Rejected { reason } => format!("rejected: {reason}"),
            };
            format!("{}\t{}\t{outcome}\n", part.name, part.detected)
        })
        .collect()
}

/// Reads an input file; a file that cannot be read is a usage error.
fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|err| {
        Failure::usage(format!("cannot read {}: {err}; check the path", path.display()))
    })
}

fn write_output(path: &Path, converted: &Converted) -> Result<(), Failure> {
    std::fs::write(path, &converted.pdf).map_err(|err| {
        Failure::operational(format!("cannot write {}: {err}; check the folder exists and is writable", path.display()))
    })
}
