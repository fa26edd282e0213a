//! The `faxgate` command line: `run`, `check-config`, and the `emails`, `queue`
//! and `convert` commands.
//!
//! [`main`] parses the arguments with clap and returns the exit status. It is 0 on
//! success and 1 on an operational error, such as a store that cannot be opened or a
//! mapping that exists or is missing. It is 2 on a usage or configuration error,
//! clap's own usage errors included.
//! Every error is printed to stderr as one line, `faxgate: <what failed>; <what to do>`.

mod convert;
mod emails;
mod queue;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{self, Config, ConfigError};

/// Exit status of an operational error: the request was valid but could not be done.
const EXIT_OPERATIONAL: i32 = 1;

/// Exit status of a usage or configuration error, the same as clap's.
const EXIT_USAGE: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "faxgate",
    version,
    about = "Fax by email and receive faxes as email through the Sinch Fax API",
    arg_required_else_help = true
)]
struct Cli {
    /// Configuration file to read [default: $FAXGATE_CONFIG, then /etc/faxgate/faxgate.toml]
    // `$FAXGATE_CONFIG` is read by `config_path` rather than clap's `env`, so that an
    // empty variable falls back to the default path.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground
    Run,
    /// Validate the configuration and print it with secrets masked
    CheckConfig,
    /// Manage which email addresses may send from or receive for which fax numbers
    #[command(subcommand)]
    Emails(emails::EmailsCommand),
    /// List, show, retry and delete fax jobs
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Convert files or a saved message to the PDF that would be faxed, as a preview
    Convert(convert::ConvertArgs),
}

/// An error ready for the user: the one-line message and the exit status.
#[derive(Debug)]
struct Failure {
    status: i32,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure { status: EXIT_USAGE, message: message.into() }
    }

    fn operational(message: impl Into<String>) -> Self {
        Failure { status: EXIT_OPERATIONAL, message: message.into() }
    }
}

/// The origin of the configuration path, named in the hint when the file is missing.
#[derive(Debug, Clone, Copy)]
enum ConfigSource {
    Flag,
    Environment,
    Default,
}

/// Runs the command line and returns the process exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap returns the help and version texts as errors too, with status 0.
            let _ = err.print();
            return err.exit_code();
        }
    };

    match execute(cli) {
        Ok(()) => 0,
        Err(failure) => {
            // One line, even when a library's message spans several.
            let message = failure.message.lines().map(str::trim).collect::<Vec<_>>().join(" ");
            eprintln!("faxgate: {message}");
            failure.status
        }
    }
}

fn execute(cli: Cli) -> Result<(), Failure> {
    let (path, source) = config_path(cli.config, std::env::var_os("FAXGATE_CONFIG"));
    if let Command::Convert(args) = &cli.command {
        // The preview runs without a configuration file: a missing default file means
        // the built-in settings.
        let config = match source {
            ConfigSource::Default if !path.exists() => None,
            _ => Some(load_config(&path, source)?),
        };
        return convert::execute(args, config.as_ref());
    }
    let config = load_config(&path, source)?;
    match cli.command {
        Command::Run => run_daemon(config),
        // Handled above, before the configuration is required.
        Command::Convert(_) => Ok(()),
        Command::CheckConfig => print_stdout(&config.to_masked_toml()),
        Command::Emails(command) => block_on(emails::execute(command, &config)),
        Command::Queue(command) => block_on(queue::execute(command, &config)),
    }
}

/// Runs a command's future on a single-threaded runtime.
fn block_on(command: impl std::future::Future<Output = Result<(), Failure>>) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure::operational(format!("cannot start the async runtime: {err}")))?;
    runtime.block_on(command)
}

/// Writes `text` to stdout. A closed pipe, as when the output goes to `head`, ends the
/// output quietly, because the reader has what it wanted.
fn print_stdout(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => Err(Failure::operational(format!("cannot write to standard output: {err}"))),
    }
}

/// Returns the configuration path: `--config`, else a non-empty `$FAXGATE_CONFIG`, else
/// [`config::DEFAULT_PATH`].
fn config_path(flag: Option<PathBuf>, environment: Option<OsString>) -> (PathBuf, ConfigSource) {
    if let Some(path) = flag {
        return (path, ConfigSource::Flag);
    }
    match environment {
        Some(value) if !value.is_empty() => (PathBuf::from(value), ConfigSource::Environment),
        _ => (PathBuf::from(config::DEFAULT_PATH), ConfigSource::Default),
    }
}

/// Loads the configuration; every failure is a configuration error (exit status 2).
fn load_config(path: &Path, source: ConfigSource) -> Result<Config, Failure> {
    config::load(path).map_err(|err| match &err {
        ConfigError::Read { path, source: io } if io.kind() == std::io::ErrorKind::NotFound => {
            let origin = match source {
                ConfigSource::Flag => "given with --config",
                ConfigSource::Environment => "named by $FAXGATE_CONFIG",
                ConfigSource::Default => "the default path",
            };
            Failure::usage(format!(
                "configuration file {} ({origin}) not found; give its path with --config PATH or $FAXGATE_CONFIG",
                path.display()
            ))
        }
        ConfigError::Read { .. } => {
            Failure::usage(format!("{err}; check the file's permissions or give another path with --config"))
        }
        ConfigError::Syntax { .. } | ConfigError::Invalid { .. } => {
            Failure::usage(format!("{err}; fix the file, then check it with \"faxgate check-config\""))
        }
    })
}

/// Runs the daemon on a multi-threaded tokio runtime with logging to stderr, filtered by
/// `RUST_LOG` (default `info`).
fn run_daemon(config: Config) -> Result<(), Failure> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // `try_init` leaves a subscriber that is already installed in place.
    // Colours only on a terminal: under systemd the journal stores the raw bytes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure::operational(format!("cannot start the async runtime: {err}")))?;
    let result = runtime.block_on(crate::server::run(config));
    // Blocking work still running at exit (a document conversion, the LibreOffice
    // probe) holds no job state, so the process need not wait long for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result.map_err(|err| Failure::operational(format!("{err:#}")))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_names_default_config_path() {
        let help = Cli::command().render_help().to_string();
        assert!(help.contains(config::DEFAULT_PATH), "{help}");
        assert!(help.contains("$FAXGATE_CONFIG"), "{help}");
    }

    #[test]
    fn config_flag_after_subcommand() {
        let cli = Cli::try_parse_from(["faxgate", "emails", "list", "--config", "/tmp/x.toml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/tmp/x.toml")));
        let cli = Cli::try_parse_from(["faxgate", "--config", "/tmp/y.toml", "check-config"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/tmp/y.toml")));
    }

    #[test]
    fn config_path_precedence() {
        let flag = Some(PathBuf::from("/flag.toml"));
        let environment = Some(OsString::from("/env.toml"));
        let (path, _) = config_path(flag, environment.clone());
        assert_eq!(path, PathBuf::from("/flag.toml"));
        let (path, _) = config_path(None, environment);
        assert_eq!(path, PathBuf::from("/env.toml"));
        let (path, _) = config_path(None, Some(OsString::new()));
        assert_eq!(path, PathBuf::from(config::DEFAULT_PATH));
        let (path, _) = config_path(None, None);
        assert_eq!(path, PathBuf::from(config::DEFAULT_PATH));
    }

    #[test]
    fn queue_retry_needs_id_or_all() {
        let err = Cli::try_parse_from(["faxgate", "queue", "retry"]).unwrap_err();
        assert_eq!(err.exit_code(), EXIT_USAGE);
        let err = Cli::try_parse_from(["faxgate", "queue", "retry", "01J", "--all"]).unwrap_err();
        assert_eq!(err.exit_code(), EXIT_USAGE);
        assert!(Cli::try_parse_from(["faxgate", "queue", "retry", "--all"]).is_ok());
    }

    #[test]
    fn add_needs_a_number() {
        let err = Cli::try_parse_from(["faxgate", "emails", "add", "alice@example.com"]).unwrap_err();
        assert_eq!(err.exit_code(), EXIT_USAGE);
    }
}
