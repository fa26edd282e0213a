//! Queue workers: claim due jobs, hand them to the fax backend, record the outcome, and
//! schedule retries with exponential backoff until the job's lifetime runs out.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::futures::Notified;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Change, Job, JobState, Queue, QueueError, ms_from_time};
use crate::config;
use crate::fax::{Backend, FaxRecord, FaxStatus, FaxSubmission, SubmitError};

/// Maximum time an idle fax worker sleeps before it checks the database again. It is
/// kept short because each check costs only one indexed query per worker. Jobs enqueued
/// or retried in this process wake the workers at once.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Minimum age of a spool file that no job uses before it is removed at start. An
/// enqueue writes its file and commits its jobs within moments, so an hour spares any
/// enqueue in progress in this or another process.
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(3600);

/// Pause after a database error in the worker loop.
const ERROR_PAUSE: Duration = Duration::from_secs(5);

/// When transient failures are retried and when they stop.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Wait before the first retry; each later wait doubles.
    pub first: Duration,
    /// Maximum wait between two attempts.
    pub max: Duration,
    /// How long after it was queued a job fails instead of being retried
    /// (`fax.max_queue_lifetime`).
    pub lifetime: Duration,
}

impl Default for RetryPolicy {
    /// First retry after 30 s, doubling up to 30 min, for 5 days.
    fn default() -> RetryPolicy {
        RetryPolicy {
            first: Duration::from_secs(30),
            max: Duration::from_secs(30 * 60),
            lifetime: super::DEFAULT_LIFETIME,
        }
    }
}

impl RetryPolicy {
    pub fn from_config(fax: &config::Fax) -> RetryPolicy {
        RetryPolicy { lifetime: fax.max_queue_lifetime, ..RetryPolicy::default() }
    }

    /// Returns the wait after the `attempts`-th failed attempt: `first`, doubling each
    /// attempt, at most `max`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// Runs `workers` workers until `shutdown` turns true (or its sender is dropped), then
/// waits for the submissions in progress to finish.
///
/// Before the workers start, jobs left in `submitting` by a previous run are put back
/// in the queue to be looked up before any resend, and spool files that no job uses are
/// removed. New and retried jobs get
/// `policy.lifetime` as their lifetime from then on.
pub async fn run_workers(
    queue: Queue,
    backend: Arc<Backend>,
    policy: RetryPolicy,
    workers: usize,
    shutdown: watch::Receiver<bool>,
) {
    queue.set_lifetime(policy.lifetime);
    match queue.recover_interrupted().await {
        Ok(0) => {}
        Ok(count) => tracing::warn!(
            count,
            "fax jobs were interrupted during submission; they will be looked up before any resend"
        ),
        Err(err) => tracing::error!(error = %err, "cannot recover fax jobs interrupted during submission"),
    }

    if let Err(err) = queue.remove_orphaned_documents(ORPHAN_MIN_AGE).await {
        tracing::error!(error = %err, "cannot clean up the spool folder");
    }

    tracing::info!(workers, backend = backend.name(), "fax queue workers started");
    let mut tasks = JoinSet::new();
    for index in 0..workers.max(1) {
        tasks.spawn(worker_loop(index, queue.clone(), backend.clone(), policy, shutdown.clone()));
    }
    while let Some(result) = tasks.join_next().await {
        if let Err(err) = result {
            tracing::error!(error = %err, "a fax queue worker panicked");
        }
    }
    tracing::info!("fax queue workers stopped");
}

async fn worker_loop(
    index: usize,
    queue: Queue,
    backend: Arc<Backend>,
    policy: RetryPolicy,
    shutdown: watch::Receiver<bool>,
) {
    let polling = Polling { interval: POLL_INTERVAL, error_pause: ERROR_PAUSE, items: "fax jobs" };
    let (queue, backend, policy) = (&queue, &backend, &policy);
    poll_until_shutdown(
        polling,
        shutdown,
        || queue.notified(),
        || queue.claim_due(),
        || queue.next_due_in(),
        |job| process(queue, backend, policy, job),
    )
    .await;
    tracing::debug!(worker = index, "fax queue worker stopped");
}

/// The waiting rules of a worker that takes items from the store.
pub(crate) struct Polling {
    /// Maximum sleep between two looks at the store. It bounds how late an item changed
    /// by another process (such as `faxgate queue retry`) is picked up.
    pub(crate) interval: Duration,
    /// Sleep after a store error, so that a broken database is not a busy loop.
    pub(crate) error_pause: Duration,
    /// Plural name of the items for error logs, such as "fax jobs".
    pub(crate) items: &'static str,
}

/// Takes the next due item with `next` and handles it, until `shutdown` turns true (or
/// its sender is dropped). With nothing due, it sleeps until the next item's time
/// (`due_in`), a wake-up from `notified`, or `polling.interval`. It registers for
/// wake-ups before it looks at the store, so that an item stored between the look and
/// the sleep is not missed.
pub(crate) async fn poll_until_shutdown<'a, T, Next, NextFuture, DueIn, DueInFuture, Handle, HandleFuture>(
    polling: Polling,
    mut shutdown: watch::Receiver<bool>,
    notified: impl Fn() -> Notified<'a>,
    next: Next,
    due_in: DueIn,
    handle: Handle,
) where
    Next: Fn() -> NextFuture,
    NextFuture: Future<Output = Result<Option<T>, QueueError>>,
    DueIn: Fn() -> DueInFuture,
    DueInFuture: Future<Output = Result<Option<Duration>, QueueError>>,
    Handle: Fn(T) -> HandleFuture,
    HandleFuture: Future<Output = ()>,
{
    let items = polling.items;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let notified = notified();
        tokio::pin!(notified);
        notified.as_mut().enable();

        let wait = match next().await {
            Ok(Some(item)) => {
                handle(item).await;
                continue;
            }
            Ok(None) => match due_in().await {
                Ok(Some(due_in)) => due_in.min(polling.interval),
                Ok(None) => polling.interval,
                Err(err) => {
                    tracing::error!(error = %err, "cannot read when the next {items} are due");
                    polling.error_pause
                }
            },
            Err(err) => {
                tracing::error!(error = %err, "cannot claim one of the due {items}");
                polling.error_pause
            }
        };

        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(wait) => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Handles one claimed job: looks the fax up first when an earlier attempt may have
/// created it, then submits it, and records the outcome.
async fn process(queue: &Queue, backend: &Backend, policy: &RetryPolicy, job: Job) {
    if job.needs_lookup {
        match backend.find(&job.id, &job.to_number).await {
            Ok(Some(record)) => {
                record_accepted(queue, &job, &record, "found at the fax API after an unknown outcome").await;
                return;
            }
            Ok(None) => {
                tracing::info!(job_id = %job.id, number = %job.to_number, "no fax found for the job; sending it");
            }
            Err(err) => {
                record_failure(queue, policy, &job, &err).await;
                return;
            }
        }
    }

    // Expiry is judged at the claim time (`updated_at`), the same instant the claim
    // used to decide whether it counted an attempt.
    if job.updated_at >= job.expires_at {
        let reason = match &job.last_error {
            Some(error) => format!("gave up after {} attempts: {error}", job.attempts),
            None => "expired before it could be sent".to_string(),
        };
        update(queue, &job, JobState::Failed, Change { last_error: Some(&reason), ..Change::default() }, &reason).await;
        return;
    }

    let pdf = match tokio::fs::read(&job.document).await {
        Ok(pdf) => pdf,
        Err(err) => {
            let reason = format!("cannot read the spooled document {}: {err}", job.document.display());
            tracing::error!(job_id = %job.id, number = %job.to_number, error = %reason, "fax job cannot be sent");
            update(queue, &job, JobState::Failed, Change { last_error: Some(&reason), ..Change::default() }, &reason)
                .await;
            return;
        }
    };

    let submission = FaxSubmission { job_id: &job.id, to: &job.to_number, from: &job.from_number, pdf: &pdf };
    match backend.submit(submission).await {
        Ok(record) => record_accepted(queue, &job, &record, "accepted by the fax API").await,
        Err(err) => record_failure(queue, policy, &job, &err).await,
    }
}

/// Records a fax the backend holds: completed, failed, or submitted and waiting for its
/// result.
async fn record_accepted(queue: &Queue, job: &Job, record: &FaxRecord, how: &str) {
    let fax_id = Some(record.id.as_str());
    let no_lookup = Some(false);
    match &record.status {
        FaxStatus::Completed => {
            let change = Change { fax_id, needs_lookup: no_lookup, ..Change::default() };
            update(queue, job, JobState::Completed, change, &format!("{how}; the fax is completed")).await;
        }
        FaxStatus::Failure => {
            let error = record.error.clone().unwrap_or_else(|| "no reason given".to_string());
            let reason = format!("{how}; the fax API reported the fax failed: {error}");
            let change = Change { fax_id, needs_lookup: no_lookup, last_error: Some(&error), ..Change::default() };
            update(queue, job, JobState::Failed, change, &reason).await;
        }
        _ => {
            let change = Change { fax_id, needs_lookup: no_lookup, ..Change::default() };
            update(queue, job, JobState::Submitted, change, how).await;
        }
    }
}

/// Records a failed attempt: permanent errors fail the job, transient ones put it back
/// in the queue after a backoff (or the API's `Retry-After`) unless that would pass the
/// job's expiry.
async fn record_failure(queue: &Queue, policy: &RetryPolicy, job: &Job, err: &SubmitError) {
    let error = err.to_string();
    if err.is_permanent() {
        tracing::error!(job_id = %job.id, number = %job.to_number, error = %error, "fax submission failed permanently");
        let change = Change { last_error: Some(&error), ..Change::default() };
        update(queue, job, JobState::Failed, change, &error).await;
        return;
    }

    let delay = err.retry_after().unwrap_or_else(|| policy.backoff(job.attempts));
    let next_attempt = SystemTime::now() + delay;
    if next_attempt >= job.expires_at {
        let reason = format!("gave up after {} attempts: {error}", job.attempts);
        tracing::error!(job_id = %job.id, number = %job.to_number, error = %error, attempts = job.attempts, "fax job expired");
        let change = Change { last_error: Some(&reason), ..Change::default() };
        update(queue, job, JobState::Failed, change, &reason).await;
        return;
    }

    // A lookup that failed leaves the flag set, so the next attempt looks again.
    let needs_lookup = job.needs_lookup || err.is_ambiguous();
    tracing::warn!(
        job_id = %job.id,
        number = %job.to_number,
        error = %error,
        attempts = job.attempts,
        retry_in_ms = delay.as_millis() as u64,
        needs_lookup,
        "fax submission failed; will retry"
    );
    let change = Change {
        last_error: Some(&error),
        next_attempt_at: Some(ms_from_time(next_attempt)),
        needs_lookup: Some(needs_lookup),
        ..Change::default()
    };
    let reason = format!("attempt {} failed, retry in {} s: {error}", job.attempts, delay.as_secs_f64());
    update(queue, job, JobState::Queued, change, &reason).await;
}

/// Moves a claimed job out of `submitting`. A database error is logged; the job then
/// stays in `submitting` and is looked up again at the next start.
async fn update(queue: &Queue, job: &Job, to: JobState, change: Change<'_>, reason: &str) {
    if let Err(err) = queue.transition(job, JobState::Submitting, to, change, reason).await {
        tracing::error!(
            job_id = %job.id,
            number = %job.to_number,
            state = to.as_str(),
            error = %err,
            "cannot record the fax job's new state; it will be looked up at the next start"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_secs(30));
        assert_eq!(policy.backoff(2), Duration::from_secs(60));
        assert_eq!(policy.backoff(3), Duration::from_secs(120));
        assert_eq!(policy.backoff(7), Duration::from_secs(30 * 60));
        assert_eq!(policy.backoff(200), Duration::from_secs(30 * 60));
    }
}
