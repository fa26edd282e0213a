//! Email workers: claim due email jobs, hand each message to the relay, and retry
//! temporary failures with the fax queue's backoff until the job's lifetime runs out.
//! A job that fails for good is logged. When `relay.postmaster` is set, the postmaster
//! gets one notice about it. A notice to the postmaster that fails is only logged.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lettre::Message;
use lettre::message::SinglePart;
use tokio::sync::watch;

use super::Relay;
use super::message::{AutoSubmitted, new_message_id};
use crate::queue::{
    EmailJob, EmailKind, EmailQueue, EmailRequest, EmailState, Polling, RetryPolicy, ms_from_time, poll_until_shutdown,
};

/// Maximum sleep of an idle worker before it reads the database again, which bounds
/// how late a job retried by another process is picked up.
const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Pause after a database error, so that a broken database is not a busy loop.
const ERROR_PAUSE: Duration = Duration::from_secs(5);

/// Minimum age of an unused mail spool file before it is removed at start.
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(3600);

/// The recipient of failure notices (`relay.postmaster`) and their sender (`relay.from`).
#[derive(Debug, Clone)]
pub struct Postmaster {
    pub address: String,
    pub from: String,
    pub hostname: String,
}

/// Runs one email worker until `shutdown` turns true. Jobs left in `sending` by a
/// previous run are queued again first.
pub async fn run_email_workers(
    queue: EmailQueue,
    relay: Arc<Relay>,
    policy: RetryPolicy,
    postmaster: Option<Postmaster>,
    shutdown: watch::Receiver<bool>,
) {
    match queue.recover_interrupted().await {
        Ok(0) => {}
        Ok(count) => tracing::warn!(count, "email jobs were interrupted during delivery; they are sent again"),
        Err(err) => tracing::error!(error = %err, "cannot recover email jobs interrupted during delivery"),
    }
    if let Err(err) = queue.remove_orphaned_messages(ORPHAN_MIN_AGE).await {
        tracing::error!(error = %err, "cannot clean up the mail spool folder");
    }
    tracing::info!(relay = relay.name(), "email worker started");

    let polling = Polling { interval: POLL_INTERVAL, error_pause: ERROR_PAUSE, items: "email jobs" };
    let (queue, relay, policy, postmaster) = (&queue, &relay, &policy, postmaster.as_ref());
    poll_until_shutdown(
        polling,
        shutdown,
        || queue.notified(),
        || queue.claim_due(),
        || queue.next_due_in(),
        |job| process(queue, relay, policy, postmaster, job),
    )
    .await;
    tracing::info!("email worker stopped");
}

async fn process(
    queue: &EmailQueue,
    relay: &Relay,
    policy: &RetryPolicy,
    postmaster: Option<&Postmaster>,
    job: EmailJob,
) {
    let message = match tokio::fs::read(&job.message).await {
        Ok(message) => message,
        Err(err) => {
            let reason = format!("cannot read the spooled message {}: {err}", job.message.display());
            tracing::error!(email_job_id = %job.id, error = %reason, "email job cannot be sent");
            fail(queue, postmaster, &job, &reason).await;
            return;
        }
    };

    let result = relay.deliver(&job.reverse_path, &job.recipient, &message).await;
    let err = match result {
        Ok(()) => {
            crate::metrics::relay_delivery("delivered");
            let reason = format!("delivered through {}", relay.name());
            update(queue, &job, EmailState::Sent, None, None, &reason).await;
            return;
        }
        Err(err) => err,
    };

    let error = err.to_string();
    if err.is_permanent() {
        crate::metrics::relay_delivery("failed");
        tracing::error!(email_job_id = %job.id, recipient = %job.recipient, error = %error, "email rejected by the relay");
        fail(queue, postmaster, &job, &error).await;
        return;
    }

    let delay = policy.backoff(job.attempts);
    let next_attempt = SystemTime::now() + delay;
    if next_attempt >= job.expires_at {
        crate::metrics::relay_delivery("failed");
        let reason = format!("gave up after {} attempts: {error}", job.attempts);
        tracing::error!(email_job_id = %job.id, recipient = %job.recipient, error = %error, attempts = job.attempts, "email job expired");
        fail(queue, postmaster, &job, &reason).await;
        return;
    }

    crate::metrics::relay_delivery("deferred");
    let summary = if err.is_tls() { "TLS failure at the relay; will retry" } else { "email delivery failed; will retry" };
    tracing::warn!(
        email_job_id = %job.id,
        recipient = %job.recipient,
        message_id = %job.message_id,
        error = %error,
        tls = err.is_tls(),
        attempts = job.attempts,
        retry_in_ms = delay.as_millis() as u64,
        "{summary}"
    );
    let reason = format!("attempt {} failed, retry in {} s: {error}", job.attempts, delay.as_secs_f64());
    update(queue, &job, EmailState::Queued, Some(ms_from_time(next_attempt)), Some(&error), &reason).await;
}

/// Marks a job failed and queues a notice to the postmaster. A failed notice gets no
/// notice of its own, so a broken relay cannot start a loop of notices.
async fn fail(queue: &EmailQueue, postmaster: Option<&Postmaster>, job: &EmailJob, reason: &str) {
    update(queue, job, EmailState::Failed, None, Some(reason), reason).await;
    let Some(postmaster) = postmaster.filter(|_| job.kind != EmailKind::Postmaster) else {
        return;
    };
    let message_id = new_message_id(&postmaster.hostname);
    let subject = format!("Undelivered fax email to {}", job.recipient);
    let body = format!(
        "faxgate could not deliver an email and gave up.\r\n\r\n\
         Recipient:   {}\r\nKind:        {}\r\nSubject:     {}\r\nMessage-ID:  <{}>\r\nEmail job:   {}\r\n\
         Attempts:    {}\r\nError:       {reason}\r\n\r\n\
         Retry it with `faxgate queue` once the cause is fixed.\r\n",
        job.recipient, job.kind, job.subject, job.message_id, job.id, job.attempts
    );
    let built = (|| -> Result<Message, String> {
        Message::builder()
            .from(postmaster.from.parse().map_err(|err| format!("relay.from: {err}"))?)
            .to(postmaster.address.parse().map_err(|err| format!("relay.postmaster: {err}"))?)
            .subject(subject.clone())
            .message_id(Some(format!("<{message_id}>")))
            .date_now()
            .header(AutoSubmitted("auto-generated".to_string()))
            .singlepart(SinglePart::plain(body))
            .map_err(|err| err.to_string())
    })();
    let message = match built {
        Ok(message) => message,
        Err(err) => {
            tracing::error!(email_job_id = %job.id, error = %err, "cannot write the notice to the postmaster");
            return;
        }
    };
    let request = EmailRequest {
        kind: EmailKind::Postmaster,
        source: format!("postmaster:{}", job.id),
        reverse_path: String::new(),
        recipient: postmaster.address.clone(),
        message_id,
        subject,
    };
    if let Err(err) = queue.enqueue(request, &message.formatted()).await {
        tracing::error!(email_job_id = %job.id, error = %err, "cannot queue the notice to the postmaster");
    }
}

async fn update(
    queue: &EmailQueue,
    job: &EmailJob,
    to: EmailState,
    next_attempt_at: Option<i64>,
    last_error: Option<&str>,
    reason: &str,
) {
    if let Err(err) = queue.transition(job, EmailState::Sending, to, next_attempt_at, last_error, reason).await {
        tracing::error!(
            email_job_id = %job.id,
            state = to.as_str(),
            error = %err,
            "cannot record the email job's new state; it is sent again at the next start"
        );
    }
}
