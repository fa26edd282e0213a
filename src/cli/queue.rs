//! `faxgate queue`: list, show, retry and delete jobs: fax submissions (kind `fax`)
//! and outgoing emails (kinds `inbound`, `report`, `postmaster`). The commands open the
//! daemon's own store, so they work while it runs. A running daemon's workers poll the
//! store, so they pick up a retried job within seconds, and never claim a deleted one.

use std::fmt::Write as _;
use std::time::SystemTime;

use clap::Subcommand;

use super::{Failure, print_stdout};
use crate::config::Config;
use crate::queue::{EmailEvent, EmailJob, EmailQueue, EmailState, Job, JobState, Queue, QueueError};
use crate::reports::format_utc;
use crate::store::Store;

/// The kind of the jobs of the fax queue; email jobs carry their own kind.
const FAX_KIND: &str = "fax";

#[derive(Debug, Subcommand)]
pub(super) enum QueueCommand {
    /// List jobs, oldest first, one line each: id, kind, state, attempts, next try, target
    List {
        /// Only the jobs in this state: queued, submitting, submitted, completed, failed
        /// or deleted for faxes; queued, sending, sent, failed or deleted for emails
        #[arg(long, value_name = "STATE", value_parser = parse_state)]
        state: Option<String>,
    },
    /// Show the fields of a job and the history of its state changes
    Show {
        /// Job id, as printed by "faxgate queue list" and in the SMTP reply
        id: String,
    },
    /// Put a failed job back in the queue, due now, with a fresh lifetime, or make a
    /// queued job due now, keeping its attempt count
    #[command(override_usage = "faxgate queue retry [OPTIONS] <ID|--all>")]
    Retry {
        /// Job id of a failed or queued job
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Retry every failed job and make every queued job due now, in both queues
        #[arg(long)]
        all: bool,
    },
    /// Delete a queued or failed job, so that it is never submitted; its history is kept
    Delete {
        /// Job id of a queued or failed job
        id: String,
    },
}

/// Runs one `queue` command against the store named by `config`. An id is looked up
/// among the fax jobs first, then among the email jobs.
pub(super) async fn execute(command: QueueCommand, config: &Config) -> Result<(), Failure> {
    let (queue, emails) = open(config).await?;
    let fail = |err| queue_failure(err, config);
    match command {
        QueueCommand::List { state } => {
            let state = state.as_deref();
            let mut lines = String::new();
            if state.is_none_or(|s| s.parse::<JobState>().is_ok()) {
                for job in queue.list(state).await.map_err(fail)? {
                    lines.push_str(&(format_line(&job) + "\n"));
                }
            }
            if state.is_none_or(|s| s.parse::<EmailState>().is_ok()) {
                for job in emails.list(state).await.map_err(fail)? {
                    lines.push_str(&(format_email_line(&job) + "\n"));
                }
            }
            print_stdout(&lines)
        }
        QueueCommand::Show { id } => {
            if let Some(job) = queue.job(&id).await.map_err(fail)? {
                let history = queue.history(&id).await.map_err(fail)?;
                return print_stdout(&format_job(&job, &history));
            }
            let job = emails.job(&id).await.map_err(fail)?.ok_or_else(|| fail(QueueError::NotFound(id.clone())))?;
            let history = emails.history(&id).await.map_err(fail)?;
            print_stdout(&format_email_job(&job, &history))
        }
        QueueCommand::Retry { id: Some(id), .. } => {
            match queue.retry(&id).await {
                Err(QueueError::NotFound(_)) => emails.retry(&id).await.map_err(fail)?,
                other => other.map_err(fail)?,
            }
            print_stdout(&format!("retried {id}: queued, due now\n"))
        }
        QueueCommand::Retry { id: None, .. } => {
            let mut ids = queue.retry_all().await.map_err(fail)?;
            for state in [EmailState::Failed, EmailState::Queued] {
                for job in emails.list(Some(state.as_str())).await.map_err(fail)? {
                    match emails.retry(&job.id).await {
                        Ok(()) => ids.push(job.id),
                        // The daemon sent or failed the email in the meantime.
                        Err(QueueError::WrongEmailState { .. } | QueueError::NotFound(_)) => {}
                        Err(err) => return Err(fail(err)),
                    }
                }
            }
            if ids.is_empty() {
                return print_stdout("no failed or queued jobs to retry\n");
            }
            let lines: String = ids.iter().map(|id| format!("retried {id}: queued, due now\n")).collect();
            print_stdout(&lines)
        }
        QueueCommand::Delete { id } => {
            match queue.delete(&id).await {
                Err(QueueError::NotFound(_)) => emails.delete(&id).await.map_err(fail)?,
                other => other.map_err(fail)?,
            }
            print_stdout(&format!("deleted {id}\n"))
        }
    }
}

/// Accepts a state of either queue.
fn parse_state(written: &str) -> Result<String, String> {
    match (written.parse::<JobState>(), written.parse::<EmailState>()) {
        (Err(err), Err(_)) => Err(format!("{err}; email jobs also have sending and sent")),
        _ => Ok(written.to_string()),
    }
}

/// Opens both queues with the daemon's settings, so that a retried job gets the
/// configured `fax.max_queue_lifetime`.
async fn open(config: &Config) -> Result<(Queue, EmailQueue), Failure> {
    let store = Store::open(&config.database_path()).await.map_err(|err| {
        Failure::operational(format!(
            "{err}; check that gateway.data_dir ({}) is writable by this user",
            config.gateway.data_dir.display()
        ))
    })?;
    let emails = EmailQueue::from_config(store.clone(), config);
    Ok((Queue::new(store, config.spool_dir()).with_lifetime(config.fax.max_queue_lifetime), emails))
}

/// Turns a queue error into a one-line failure that names what is allowed.
fn queue_failure(err: QueueError, config: &Config) -> Failure {
    match &err {
        QueueError::NotFound(_) => {
            Failure::operational(format!("{err}; \"faxgate queue list\" shows the ids of the jobs"))
        }
        QueueError::WrongState { id, action: "retry", state } => {
            let status = match state {
                JobState::Submitting => "it is being submitted now".to_string(),
                JobState::Submitted => "it is submitted and waits for the result of the fax API".to_string(),
                _ => format!("it is {state}"),
            };
            Failure::operational(format!("cannot retry job {id}: {status}; only failed or queued jobs can be retried"))
        }
        QueueError::WrongState { id, action: "delete", state: JobState::Deleted } => {
            Failure::operational(format!("job {id} is deleted already"))
        }
        QueueError::WrongState { id, action: "delete", state } => {
            let status = match state {
                JobState::Submitting | JobState::Submitted => format!("it is {state}, so the fax may already be on its way"),
                _ => format!("it is {state}"),
            };
            Failure::operational(format!("cannot delete job {id}: {status}; only queued or failed jobs can be deleted"))
        }
        QueueError::WrongEmailState { id, action: "delete", state: EmailState::Deleted } => {
            Failure::operational(format!("email job {id} is deleted already"))
        }
        QueueError::WrongEmailState { action, .. } => {
            let allowed = if *action == "retry" {
                "only failed or queued emails can be retried"
            } else {
                "only queued or failed emails can be deleted"
            };
            Failure::operational(format!("{err}; {allowed}"))
        }
        _ => Failure::operational(format!("{}: {err}", config.database_path().display())),
    }
}

/// Formats a job as one line: id, kind, state, attempts, next try and target, such as
/// `01JEB3ZQ3V6JQ0K7W1Y2Z3X4Y5  fax  queued  attempts 2  next try 2026-12-04T21:30:05Z  to +14155552222`.
/// The next try is `-` unless the job is queued.
fn format_line(job: &Job) -> String {
    format!(
        "{}  {FAX_KIND}  {:<10}  attempts {}  next try {}  to {}",
        job.id,
        job.state.as_str(),
        job.attempts,
        next_try(job),
        job.to_number
    )
}

fn next_try(job: &Job) -> String {
    if job.state == JobState::Queued { format_utc(job.next_attempt_at) } else { "-".to_string() }
}

/// Formats every field of a job and then its history, one state change a line.
fn format_job(job: &Job, history: &[crate::queue::JobEvent]) -> String {
    let optional = |value: Option<&str>| value.unwrap_or("-").to_string();
    let fields = [
        ("id", job.id.clone()),
        ("kind", FAX_KIND.to_string()),
        ("state", job.state.as_str().to_string()),
        ("to", job.to_number.to_string()),
        ("from", job.from_number.to_string()),
        ("sender", job.sender.clone()),
        ("reverse path", job.reverse_path.clone()),
        ("session id", job.session_id.clone()),
        ("message id", optional(job.message_id.as_deref())),
        ("pages", job.pages.to_string()),
        ("attempts", job.attempts.to_string()),
        ("next try", next_try(job)),
        ("created", format_utc(job.created_at)),
        ("updated", format_utc(job.updated_at)),
        ("expires", format_utc(job.expires_at)),
        ("fax id", optional(job.fax_id.as_deref())),
        ("last error", optional(job.last_error.as_deref())),
        ("document", job.document.display().to_string()),
    ];
    let events = history.iter().map(|e| (e.at, e.state.as_str(), e.reason.as_str()));
    format_fields(&fields, events)
}

/// Formats an email job as one line, in the columns of [`format_line`].
fn format_email_line(job: &EmailJob) -> String {
    format!(
        "{}  {}  {:<10}  attempts {}  next try {}  to {}",
        job.id,
        job.kind.as_str(),
        job.state.as_str(),
        job.attempts,
        email_next_try(job),
        job.recipient
    )
}

fn email_next_try(job: &EmailJob) -> String {
    if job.state == EmailState::Queued { format_utc(job.next_attempt_at) } else { "-".to_string() }
}

/// Formats every field of an email job and then its history, one state change a line.
fn format_email_job(job: &EmailJob, history: &[EmailEvent]) -> String {
    let fields = [
        ("id", job.id.clone()),
        ("kind", job.kind.as_str().to_string()),
        ("state", job.state.as_str().to_string()),
        ("to", job.recipient.clone()),
        ("reverse path", job.reverse_path.clone()),
        ("subject", job.subject.clone()),
        ("message id", job.message_id.clone()),
        ("source", job.source.clone()),
        ("attempts", job.attempts.to_string()),
        ("next try", email_next_try(job)),
        ("created", format_utc(job.created_at)),
        ("updated", format_utc(job.updated_at)),
        ("expires", format_utc(job.expires_at)),
        ("last error", job.last_error.clone().unwrap_or_else(|| "-".to_string())),
        ("message", job.message.display().to_string()),
    ];
    let events = history.iter().map(|e| (e.at, e.state.as_str(), e.reason.as_str()));
    format_fields(&fields, events)
}

/// Formats named fields, one a line, then `history:` and one line per state change.
fn format_fields<'a>(fields: &[(&str, String)], history: impl Iterator<Item = (SystemTime, &'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (name, value) in fields {
        let _ = writeln!(out, "{:<13} {value}", format!("{name}:"));
    }
    let _ = writeln!(out, "history:");
    for (at, state, reason) in history {
        let _ = writeln!(out, "  {}  {state:<10}  {reason}", format_utc(at));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure_message(state: JobState, action: &'static str) -> String {
        let config = crate::config::parse("", std::path::Path::new("/etc/faxgate/faxgate.toml")).unwrap();
        queue_failure(QueueError::WrongState { id: "01J".to_string(), state, action }, &config).message
    }

    #[test]
    fn delete_of_deleted_job_says_so_once() {
        assert_eq!(failure_message(JobState::Deleted, "delete"), "job 01J is deleted already");
    }

    #[test]
    fn delete_of_submitted_job_names_risk() {
        let message = failure_message(JobState::Submitted, "delete");
        assert_eq!(
            message,
            "cannot delete job 01J: it is submitted, so the fax may already be on its way; \
             only queued or failed jobs can be deleted"
        );
    }

    #[test]
    fn retry_of_completed_job_names_allowed_states() {
        let message = failure_message(JobState::Completed, "retry");
        assert_eq!(message, "cannot retry job 01J: it is completed; only failed or queued jobs can be retried");
    }

    #[test]
    fn retry_usage_shows_all() {
        use clap::CommandFactory;
        let mut command = super::super::Cli::command();
        let retry = command.find_subcommand_mut("queue").unwrap().find_subcommand_mut("retry").unwrap();
        let usage = retry.render_usage().to_string();
        assert!(usage.contains("<ID|--all>"), "{usage}");
    }

    #[test]
    fn state_argument_is_checked() {
        assert_eq!(parse_state("failed").as_deref(), Ok("failed"));
        assert_eq!(parse_state("sent").as_deref(), Ok("sent"));
        let err = parse_state("stuck").unwrap_err();
        assert!(err.contains("\"stuck\""), "{err}");
        assert!(err.contains("queued"), "{err}");
    }
}
