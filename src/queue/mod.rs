//! The durable fax job queue: one job per recipient of an accepted message, kept in the
//! store's SQLite database with a history of every state change, and the message's PDF
//! kept in the spool folder.
//!
//! Life of a job:
//!
//! ```text
//! queued -> submitting -> submitted -> completed | failed   (Sinch: the result comes later)
//!              |      \-> completed                          (outbox)
//!              |-> queued (transient failure, retried after a backoff)
//!              \-> failed (permanent failure, or the lifetime ran out)
//! queued | failed -> deleted  (by an administrator; the job is never submitted)
//! failed -> queued            (by an administrator)
//! ```
//!
//! A job is claimed by switching it from `queued` to `submitting` in the database
//! before the backend is called. A job found in `submitting` at start was cut off by a
//! crash, so its outcome is unknown. It goes back to `queued` with `needs_lookup` set,
//! and the worker then searches the backend for a fax with the job's label before it
//! sends anything. Timeouts after the request was sent are handled the same way, so a job is
//! never submitted twice as long as the backend can find its faxes.
//!
//! The spooled PDF is shared by the jobs of one message. It is kept while any of them
//! is queued, submitting, submitted or failed (so that `retry` can send it again and a
//! report can attach it), and deleted when all of them are completed or deleted.

pub mod email;
mod spool;
mod worker;
pub(crate) mod writer;

pub use email::{EmailEvent, EmailJob, EmailKind, EmailQueue, EmailRequest, EmailState};
pub(crate) use spool::{stage_in_spool, write_atomic};
pub use worker::{RetryPolicy, run_workers};
pub(crate) use worker::{Polling, poll_until_shutdown};

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use tokio::sync::Notify;

use crate::fax::{FaxRecord, FaxStatus};
use crate::number::Number;
use crate::store::Store;

/// Tables of the fax queue. Times are milliseconds since the Unix epoch, UTC.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS fax_jobs (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        session_id TEXT NOT NULL,
        message_id TEXT,
        reverse_path TEXT NOT NULL,
        sender TEXT NOT NULL,
        from_number TEXT NOT NULL,
        to_number TEXT NOT NULL,
        pages INTEGER NOT NULL,
        document TEXT NOT NULL, -- file name in the spool folder
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        needs_lookup INTEGER NOT NULL DEFAULT 0,
        fax_id TEXT,
        last_error TEXT
    )",
    "CREATE INDEX IF NOT EXISTS fax_jobs_due ON fax_jobs (state, next_attempt_at)",
    "CREATE INDEX IF NOT EXISTS fax_jobs_fax_id ON fax_jobs (fax_id)",
    "CREATE INDEX IF NOT EXISTS fax_jobs_document ON fax_jobs (document)",
    "CREATE TABLE IF NOT EXISTS fax_job_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS fax_job_events_job ON fax_job_events (job_id, seq)",
];

/// Default time a job may wait for a successful submission before it fails, equal to
/// the default of `fax.max_queue_lifetime` (5 days). [`Queue::with_lifetime`] and
/// [`run_workers`] set another.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 24 * 3600);

/// The last error of a job an administrator deleted.
const DELETED_REASON: &str = "deleted by an administrator";

/// The columns of `fax_jobs` that [`Queue::job_from_row`] reads.
macro_rules! job_columns {
    () => {
        "id, state, session_id, message_id, reverse_path, sender, from_number, to_number, pages, document, \
         created_at, updated_at, expires_at, attempts, next_attempt_at, needs_lookup, fax_id, last_error"
    };
}

/// An accepted message to fax: what the SMTP intake hands to the queue.
#[derive(Debug, Clone)]
pub struct FaxRequest {
    pub session_id: String,
    pub message_id: Option<String>,
    pub reverse_path: String,
    /// The mapped email address the fax is sent for.
    pub sender: String,
    pub from_number: Number,
    pub recipients: Vec<Number>,
    pub pages: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
    Submitting,
    /// Accepted by the fax API, waiting for its result.
    Submitted,
    Completed,
    Failed,
    Deleted,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Submitting,
        JobState::Submitted,
        JobState::Completed,
        JobState::Failed,
        JobState::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Submitting => "submitting",
            JobState::Submitted => "submitted",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Deleted => "deleted",
        }
    }

    /// Whether the job has ended and no worker will touch it again.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Completed | JobState::Failed | JobState::Deleted)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = QueueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| QueueError::UnknownState(s.to_string()))
    }
}

/// One fax job as stored.
#[derive(Debug, Clone)]
pub struct Job {
    /// A ULID, also sent to the fax API as the `faxgateJob` label.
    pub id: String,
    pub state: JobState,
    pub session_id: String,
    pub message_id: Option<String>,
    pub reverse_path: String,
    pub sender: String,
    pub from_number: Number,
    pub to_number: Number,
    pub pages: u32,
    /// The spooled PDF: the spool folder joined with the stored file name, so that a
    /// moved `data_dir` still finds it.
    pub document: PathBuf,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    /// When retries stop and the job fails.
    pub expires_at: SystemTime,
    /// Claims by a worker since the job was created or last retried by hand.
    pub attempts: u32,
    /// When a `queued` job is due.
    pub next_attempt_at: SystemTime,
    /// Whether an earlier attempt may have created the fax, so the backend must be
    /// searched before the next send.
    pub needs_lookup: bool,
    pub fax_id: Option<String>,
    pub last_error: Option<String>,
}

/// One state change of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub at: SystemTime,
    pub state: JobState,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("cannot write the spool file in {path}: {source}")]
    Spool { path: String, source: std::io::Error },
    #[error("a fax request needs at least one recipient")]
    NoRecipients,
    #[error("the document to fax is empty")]
    EmptyDocument,
    #[error("job {0} not found")]
    NotFound(String),
    #[error("cannot {action} job {id}: it is {state}")]
    WrongState { id: String, state: JobState, action: &'static str },
    #[error("cannot {action} email job {id}: it is {state}")]
    WrongEmailState { id: String, state: EmailState, action: &'static str },
    #[error("unknown job state {0:?}; expected one of queued, submitting, submitted, completed, failed, deleted")]
    UnknownState(String),
    #[error("job {id} has an invalid stored value: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("the queue writer has stopped, so the change was not stored")]
    WriterStopped,
}

/// A handle to the queue, cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("spool_dir", &self.inner.spool_dir).finish_non_exhaustive()
    }
}

struct Inner {
    store: Store,
    spool_dir: PathBuf,
    /// Wakes idle workers when a job becomes due now.
    notify: Notify,
    /// The lifetime given to new and retried jobs, in milliseconds.
    lifetime_ms: AtomicU64,
    /// Wakes the report task when a job reaches `completed` or `failed`.
    finished: Notify,
    /// Whether completed jobs keep their spooled PDF until
    /// [`Queue::release_completed_document`], so that a delivery report can attach it.
    keep_completed_documents: AtomicBool,
}

/// The fields a state change sets besides `state`; `None` keeps the stored value.
#[derive(Debug, Default, Clone, Copy)]
struct Change<'a> {
    fax_id: Option<&'a str>,
    last_error: Option<&'a str>,
    next_attempt_at: Option<i64>,
    needs_lookup: Option<bool>,
}

impl Queue {
    pub fn new(store: Store, spool_dir: PathBuf) -> Queue {
        Queue {
            inner: Arc::new(Inner {
                store,
                spool_dir,
                notify: Notify::new(),
                lifetime_ms: AtomicU64::new(DEFAULT_LIFETIME.as_millis() as u64),
                finished: Notify::new(),
                keep_completed_documents: AtomicBool::new(false),
            }),
        }
    }

    /// Sets the lifetime of jobs enqueued or retried from now on (`fax.max_queue_lifetime`).
    pub fn with_lifetime(self, lifetime: Duration) -> Queue {
        self.set_lifetime(lifetime);
        self
    }

    pub(crate) fn set_lifetime(&self, lifetime: Duration) {
        let millis = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        self.inner.lifetime_ms.store(millis, Ordering::Relaxed);
    }

    /// Keeps the PDF of completed jobs until [`Queue::release_completed_document`] is
    /// called, for delivery reports that attach a copy (`notifications.attach_copy`).
    pub fn keep_completed_documents(&self, keep: bool) {
        self.inner.keep_completed_documents.store(keep, Ordering::Relaxed);
    }

    /// Deletes the spooled PDF of a completed job that was kept for its report, unless a
    /// job that is not completed or deleted still uses it. The caller checks the
    /// completed jobs whose reports still need the file.
    pub async fn release_completed_document(&self, job: &Job) {
        self.release_document(job).await;
    }

    /// Waits until a job may have reached `completed` or `failed`. Create the future
    /// before reading the queue, as with [`Queue::notified`].
    pub fn finished(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.finished.notified()
    }

    fn lifetime_ms(&self) -> i64 {
        i64::try_from(self.inner.lifetime_ms.load(Ordering::Relaxed)).unwrap_or(i64::MAX)
    }

    pub fn spool_dir(&self) -> &std::path::Path {
        &self.inner.spool_dir
    }

    fn pool(&self) -> &sqlx::SqlitePool {
        self.inner.store.pool()
    }

    /// Stores an accepted message: writes the PDF to the spool, then inserts one job per
    /// recipient and a history row for each in one transaction, shared with the other
    /// requests of the writer's batch. Returns the job ids only when both are on disk:
    /// the file is flushed and renamed and its folder flushed, and the transaction is
    /// committed under `synchronous=FULL`.
    ///
    /// A crash between the rename and the commit leaves a spool file that no job uses.
    /// [`run_workers`] removes such files at start.
    pub async fn enqueue_faxes(&self, request: FaxRequest, pdf: &[u8]) -> Result<Vec<String>, QueueError> {
        if request.recipients.is_empty() {
            return Err(QueueError::NoRecipients);
        }
        if pdf.is_empty() {
            return Err(QueueError::EmptyDocument);
        }

        let document = self.write_document(pdf).await?;
        let rows =
            JobRows { request: request.clone(), document: document_name(&document), lifetime_ms: self.lifetime_ms() };
        let result = self
            .writer()
            .write(Some(&self.inner.spool_dir), rows, |conn, rows| Box::pin(insert_jobs(conn, rows)))
            .await;
        match result {
            Ok(ids) => {
                for (id, number) in ids.iter().zip(&request.recipients) {
                    tracing::info!(
                        job_id = %id,
                        number = %number,
                        session_id = %request.session_id,
                        pages = request.pages,
                        state = "queued",
                        "fax job queued"
                    );
                }
                self.inner.notify.notify_waiters();
                Ok(ids)
            }
            Err(err) => {
                if let Err(remove_err) = tokio::fs::remove_file(&document).await {
                    tracing::warn!(path = %document.display(), error = %remove_err, "cannot remove the spool file of a failed enqueue");
                }
                Err(err)
            }
        }
    }

    async fn write_document(&self, pdf: &[u8]) -> Result<PathBuf, QueueError> {
        let name = format!("{}.pdf", ulid::Ulid::new());
        spool::stage_in_spool(&self.inner.spool_dir, name, pdf.to_vec()).await
    }

    fn writer(&self) -> &writer::Writer {
        self.inner.store.writer()
    }

    pub async fn job(&self, id: &str) -> Result<Option<Job>, QueueError> {
        let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM fax_jobs WHERE id = ?"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(|row| self.job_from_row(row)).transpose()
    }

    /// Returns the job that was submitted as fax `fax_id`, for the webhook receiver.
    pub async fn job_by_fax_id(&self, fax_id: &str) -> Result<Option<Job>, QueueError> {
        let row = sqlx::query(concat!("SELECT ", job_columns!(), " FROM fax_jobs WHERE fax_id = ?"))
            .bind(fax_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(|row| self.job_from_row(row)).transpose()
    }

    /// Returns the state changes of a job, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<JobEvent>, QueueError> {
        let rows = sqlx::query("SELECT at, state, reason FROM fax_job_events WHERE job_id = ? ORDER BY seq")
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(JobEvent {
                    at: time_from_ms(row.try_get("at")?),
                    state: row.try_get::<String, _>("state")?.parse()?,
                    reason: row.try_get("reason")?,
                })
            })
            .collect()
    }

    /// Lists jobs, oldest first, optionally only those in `state` (such as `"failed"`).
    pub async fn list(&self, state: Option<&str>) -> Result<Vec<Job>, QueueError> {
        let rows = match state {
            Some(state) => {
                let state: JobState = state.parse()?;
                sqlx::query(concat!(
                    "SELECT ",
                    job_columns!(),
                    " FROM fax_jobs WHERE state = ? ORDER BY created_at, id"
                ))
                .bind(state.as_str())
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(concat!("SELECT ", job_columns!(), " FROM fax_jobs ORDER BY created_at, id"))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(|row| self.job_from_row(row)).collect()
    }

    /// Counts the jobs in each state, for the `faxgate_queue_jobs` gauge. States without
    /// jobs are included with 0.
    pub async fn count_by_state(&self) -> Result<Vec<(JobState, u64)>, QueueError> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS jobs FROM fax_jobs GROUP BY state").fetch_all(self.pool()).await?;
        let mut counts: Vec<(JobState, u64)> = JobState::ALL.iter().map(|state| (*state, 0)).collect();
        for row in &rows {
            let state: JobState = row.try_get::<String, _>("state")?.parse()?;
            let jobs: i64 = row.try_get("jobs")?;
            if let Some(entry) = counts.iter_mut().find(|(s, _)| *s == state) {
                entry.1 = u64::try_from(jobs).unwrap_or(0);
            }
        }
        Ok(counts)
    }

    /// Lists the `submitted` jobs that entered that state more than `age` ago, oldest
    /// first: faxes whose result has not come by callback, for a status poll after
    /// `fax.report_poll_after`.
    pub async fn submitted_without_result(&self, age: Duration) -> Result<Vec<Job>, QueueError> {
        let cutoff = now_ms().saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM fax_jobs WHERE state = 'submitted' AND updated_at <= ? ORDER BY updated_at, id"
        ))
        .bind(cutoff)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|row| self.job_from_row(row)).collect()
    }

    /// Makes a job due now. A `failed` job is queued again with a fresh lifetime and an
    /// attempt count of 0. A `queued` job waiting for its next attempt keeps its attempt
    /// count and lifetime. Jobs in other states are left alone. A job whose earlier
    /// attempt may have created a fax is still looked up before it is sent.
    pub async fn retry(&self, id: &str) -> Result<(), QueueError> {
        let job = self.job(id).await?.ok_or_else(|| QueueError::NotFound(id.to_string()))?;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let (updated, reason) = match job.state {
            JobState::Failed => {
                let updated = sqlx::query(
                    "UPDATE fax_jobs SET state = 'queued', attempts = 0, next_attempt_at = ?, expires_at = ?, \
                     updated_at = ? WHERE id = ? AND state = 'failed'",
                )
                .bind(now)
                .bind(now.saturating_add(self.lifetime_ms()))
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                (updated, "retried by an administrator")
            }
            JobState::Queued => {
                let updated = sqlx::query(
                    "UPDATE fax_jobs SET next_attempt_at = MIN(next_attempt_at, ?), updated_at = ? \
                     WHERE id = ? AND state = 'queued'",
                )
                .bind(now)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                (updated, "made due now by an administrator")
            }
            state => return Err(QueueError::WrongState { id: id.to_string(), state, action: "retry" }),
        };
        if updated.rows_affected() == 0 {
            return Err(self.wrong_state(id, "retry").await);
        }
        insert_event(&mut tx, id, now, JobState::Queued, reason).await?;
        tx.commit().await?;
        log_change(&job, JobState::Queued, None, reason);
        self.inner.notify.notify_waiters();
        Ok(())
    }

    /// Retries every failed job and makes every queued job due now; returns their ids.
    pub async fn retry_all(&self) -> Result<Vec<String>, QueueError> {
        let mut ids = Vec::new();
        for state in [JobState::Failed, JobState::Queued] {
            for job in self.list(Some(state.as_str())).await? {
                match self.retry(&job.id).await {
                    Ok(()) => ids.push(job.id),
                    // Another process or a worker changed the job in the meantime.
                    Err(QueueError::WrongState { .. } | QueueError::NotFound(_)) => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(ids)
    }

    /// Deletes a job that is `queued` or `failed`, so that it is never submitted. The row
    /// stays, in state `deleted`, for its history. Jobs being or already submitted
    /// cannot be deleted, because the fax may already be on its way. The reason is kept
    /// as the job's last error, for the failure report its sender gets when none was
    /// sent before.
    pub async fn delete(&self, id: &str) -> Result<(), QueueError> {
        let job = self.job(id).await?.ok_or_else(|| QueueError::NotFound(id.to_string()))?;
        if !matches!(job.state, JobState::Queued | JobState::Failed) {
            return Err(QueueError::WrongState { id: id.to_string(), state: job.state, action: "delete" });
        }
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE fax_jobs SET state = 'deleted', updated_at = ?, last_error = ? WHERE id = ? \
             AND state IN ('queued', 'failed')",
        )
        .bind(now)
        .bind(DELETED_REASON)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(self.wrong_state(id, "delete").await);
        }
        insert_event(&mut tx, id, now, JobState::Deleted, DELETED_REASON).await?;
        tx.commit().await?;
        log_change(&job, JobState::Deleted, None, DELETED_REASON);
        self.release_document(&job).await;
        Ok(())
    }

    /// Records the final result of a submitted fax, as reported by the fax API's
    /// callback or a status poll. Returns the job, or `None` when no submitted job has
    /// this fax id (unknown, or the result was already recorded).
    pub async fn record_fax_result(&self, record: &FaxRecord) -> Result<Option<Job>, QueueError> {
        let Some(job) = self.job_by_fax_id(&record.id).await? else {
            return Ok(None);
        };
        let (state, reason, error) = match &record.status {
            FaxStatus::Completed => (JobState::Completed, "the fax API reported the fax completed".to_string(), None),
            FaxStatus::Failure => {
                let error = record.error.clone().unwrap_or_else(|| "no reason given".to_string());
                (JobState::Failed, format!("the fax API reported the fax failed: {error}"), Some(error))
            }
            _ => return Ok(None),
        };
        let change = Change { last_error: error.as_deref(), ..Change::default() };
        if self.transition(&job, JobState::Submitted, state, change, &reason).await? {
            Ok(self.job(&job.id).await?)
        } else {
            Ok(None)
        }
    }

    async fn wrong_state(&self, id: &str, action: &'static str) -> QueueError {
        match self.job(id).await {
            Ok(Some(job)) => QueueError::WrongState { id: id.to_string(), state: job.state, action },
            Ok(None) => QueueError::NotFound(id.to_string()),
            Err(err) => err,
        }
    }

    /// Claims the job that is due first: `queued` becomes `submitting` and the attempt
    /// count goes up, committed before the caller calls the backend.
    pub(crate) async fn claim_due(&self) -> Result<Option<Job>, QueueError> {
        let claimed =
            self.writer().write(None, self.clone(), |conn, queue| Box::pin(queue.claim_due_with(conn))).await?;
        if let Some(job) = &claimed {
            let reason = claim_reason(job);
            log_change(job, JobState::Submitting, None, &reason);
        }
        Ok(claimed)
    }

    async fn claim_due_with(&self, conn: &mut SqliteConnection) -> Result<Option<Job>, QueueError> {
        let now = now_ms();
        let row = sqlx::query(concat!(
            "UPDATE fax_jobs SET state = 'submitting', \
             attempts = attempts + (CASE WHEN expires_at > ? THEN 1 ELSE 0 END), updated_at = ? \
             WHERE id = (SELECT id FROM fax_jobs WHERE state = 'queued' AND next_attempt_at <= ? \
                         ORDER BY next_attempt_at, id LIMIT 1) \
             AND state = 'queued' RETURNING ",
            job_columns!()
        ))
        // A job claimed after its lifetime is failed without a send, so the claim is
        // not counted as an attempt.
        .bind(now)
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let job = self.job_from_row(&row)?;
        insert_event(conn, &job.id, now, JobState::Submitting, &claim_reason(&job)).await?;
        Ok(Some(job))
    }

    /// Returns how long until the next `queued` job is due, or `None` when there is none.
    pub(crate) async fn next_due_in(&self) -> Result<Option<Duration>, QueueError> {
        let next: Option<i64> = sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM fax_jobs WHERE state = 'queued'")
            .fetch_one(self.pool())
            .await?;
        Ok(next.map(|at| Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))))
    }

    /// Puts every job left in `submitting` by a previous run back in the queue with
    /// `needs_lookup` set, because the process stopped before its outcome was recorded.
    /// Returns how many there were.
    pub(crate) async fn recover_interrupted(&self) -> Result<usize, QueueError> {
        let jobs = self.list(Some("submitting")).await?;
        let reason = "the previous run stopped during submission; the fax will be looked up before any resend";
        let change = Change { needs_lookup: Some(true), next_attempt_at: Some(now_ms()), ..Change::default() };
        let mut recovered = 0;
        for job in &jobs {
            if self.transition(job, JobState::Submitting, JobState::Queued, change, reason).await? {
                recovered += 1;
            }
        }
        Ok(recovered)
    }

    /// Deletes spool files that no job uses and that were last modified more than
    /// `min_age` ago: documents left by a crash between the spool write and the commit,
    /// and temporary files of interrupted writes. The age guard spares the files of
    /// enqueues still in progress. Returns how many files were removed.
    pub(crate) async fn remove_orphaned_documents(&self, min_age: Duration) -> Result<usize, QueueError> {
        let dir = &self.inner.spool_dir;
        let spool_error = |source| QueueError::Spool { path: dir.display().to_string(), source };
        let mut entries = match tokio::fs::read_dir(dir).await {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(err) => return Err(spool_error(err)),
        };

        let mut removed = 0;
        while let Some(entry) = entries.next_entry().await.map_err(spool_error)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let metadata = entry.metadata().await.map_err(spool_error)?;
            let age = metadata.modified().ok().and_then(|modified| modified.elapsed().ok());
            if !metadata.is_file() || age.is_none_or(|age| age < min_age) {
                continue;
            }
            let orphan = if name.starts_with('.') && name.ends_with(".tmp") {
                true
            } else {
                let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM fax_jobs WHERE document = ?")
                    .bind(&name)
                    .fetch_one(self.pool())
                    .await?;
                users == 0
            };
            if orphan {
                match tokio::fs::remove_file(entry.path()).await {
                    Ok(()) => {
                        tracing::warn!(path = %entry.path().display(), "removed a spool file that no job uses");
                        removed += 1;
                    }
                    Err(err) => {
                        tracing::warn!(path = %entry.path().display(), error = %err, "cannot remove an unused spool file")
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Moves `job` from `from` to `to` with the fields of `change`, and adds a history
    /// row, in one transaction of the queue writer. Returns `false` when the job was no longer in `from`,
    /// which happens when another process changed it.
    async fn transition(
        &self,
        job: &Job,
        from: JobState,
        to: JobState,
        change: Change<'_>,
        reason: &str,
    ) -> Result<bool, QueueError> {
        let update = StateUpdate {
            id: job.id.clone(),
            from,
            to,
            fax_id: change.fax_id.map(str::to_owned),
            last_error: change.last_error.map(str::to_owned),
            next_attempt_at: change.next_attempt_at,
            needs_lookup: change.needs_lookup,
            reason: reason.to_owned(),
        };
        let updated = self.writer().write(None, update, |conn, update| Box::pin(update_state(conn, update))).await?;
        if !updated {
            tracing::warn!(job_id = %job.id, number = %job.to_number, expected = from.as_str(), "fax job changed state elsewhere; its update was dropped");
            return Ok(false);
        }

        log_change(job, to, change.fax_id, reason);
        count_change(from, to);
        if to == JobState::Queued {
            self.inner.notify.notify_waiters();
        }
        if matches!(to, JobState::Completed | JobState::Failed) {
            self.inner.finished.notify_waiters();
        }
        let keep = to == JobState::Completed && self.inner.keep_completed_documents.load(Ordering::Relaxed);
        if matches!(to, JobState::Completed | JobState::Deleted) && !keep {
            self.release_document(job).await;
        }
        Ok(true)
    }

    /// Deletes the job's spooled PDF when no job that may still need it uses it.
    async fn release_document(&self, job: &Job) {
        let document = document_name(&job.document);
        let in_use: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "SELECT COUNT(*) FROM fax_jobs WHERE document = ? AND state NOT IN ('completed', 'deleted')",
        )
        .bind(&document)
        .fetch_one(self.pool())
        .await;
        match in_use {
            Ok(0) => match tokio::fs::remove_file(&job.document).await {
                Ok(()) => tracing::debug!(job_id = %job.id, path = %document, "removed the spooled document"),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::warn!(job_id = %job.id, path = %document, error = %err, "cannot remove the spooled document")
                }
            },
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(job_id = %job.id, error = %err, "cannot check whether the spooled document is still in use")
            }
        }
    }

    fn job_from_row(&self, row: &SqliteRow) -> Result<Job, QueueError> {
        let id: String = row.try_get("id")?;
        let corrupt = |reason: String| QueueError::Corrupt { id: id.clone(), reason };
        let number = |column: &str| -> Result<Number, QueueError> {
            let text: String = row.try_get(column)?;
            text.parse().map_err(|err| corrupt(format!("{column}: {err}")))
        };
        let count = |column: &str| -> Result<u32, QueueError> {
            let value: i64 = row.try_get(column)?;
            u32::try_from(value).map_err(|_| corrupt(format!("{column} is {value}")))
        };
        Ok(Job {
            state: row.try_get::<String, _>("state")?.parse().map_err(|err: QueueError| corrupt(err.to_string()))?,
            session_id: row.try_get("session_id")?,
            message_id: row.try_get("message_id")?,
            reverse_path: row.try_get("reverse_path")?,
            sender: row.try_get("sender")?,
            from_number: number("from_number")?,
            to_number: number("to_number")?,
            pages: count("pages")?,
            document: self.inner.spool_dir.join(row.try_get::<String, _>("document")?),
            created_at: time_from_ms(row.try_get("created_at")?),
            updated_at: time_from_ms(row.try_get("updated_at")?),
            expires_at: time_from_ms(row.try_get("expires_at")?),
            attempts: count("attempts")?,
            next_attempt_at: time_from_ms(row.try_get("next_attempt_at")?),
            needs_lookup: row.try_get("needs_lookup")?,
            fax_id: row.try_get("fax_id")?,
            last_error: row.try_get("last_error")?,
            id,
        })
    }

    /// Waits until a job may have become due, for idle workers. The returned future must
    /// be created before the queue is checked, so that a wake-up in between is not lost.
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.notify.notified()
    }
}

/// Returns the history reason of a claim.
fn claim_reason(job: &Job) -> String {
    if job.needs_lookup {
        format!("attempt {}: looking up the fax before any resend", job.attempts)
    } else {
        format!("attempt {}", job.attempts)
    }
}

/// The rows of one accepted message, for [`insert_jobs`].
struct JobRows {
    request: FaxRequest,
    /// The file name in the spool folder.
    document: String,
    lifetime_ms: i64,
}

/// Inserts one job per recipient of `rows` and a history row for each. Each run makes
/// new ids, so a batch that is run again gives the ids that were committed.
async fn insert_jobs(conn: &mut SqliteConnection, rows: &JobRows) -> Result<Vec<String>, QueueError> {
    let JobRows { request, document, lifetime_ms } = rows;
    let now = now_ms();
    let expires_at = now.saturating_add(*lifetime_ms);
    let reason = format!("accepted from <{}> in SMTP session {}", request.reverse_path, request.session_id);

    let mut ids = Vec::with_capacity(request.recipients.len());
    // A monotonic generator, so that the ids of one message sort in recipient order.
    let mut generator = ulid::Generator::new();
    for number in &request.recipients {
        let id = generator.generate().unwrap_or_else(|_| ulid::Ulid::new()).to_string();
        sqlx::query(
            "INSERT INTO fax_jobs (id, state, session_id, message_id, reverse_path, sender, from_number, \
             to_number, pages, document, created_at, updated_at, expires_at, attempts, next_attempt_at) \
             VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
        )
        .bind(&id)
        .bind(&request.session_id)
        .bind(&request.message_id)
        .bind(&request.reverse_path)
        .bind(&request.sender)
        .bind(request.from_number.as_str())
        .bind(number.as_str())
        .bind(i64::from(request.pages))
        .bind(document)
        .bind(now)
        .bind(now)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        insert_event(conn, &id, now, JobState::Queued, &reason).await?;
        ids.push(id);
    }
    Ok(ids)
}

/// A state change of one job, for [`update_state`].
struct StateUpdate {
    id: String,
    from: JobState,
    to: JobState,
    fax_id: Option<String>,
    last_error: Option<String>,
    next_attempt_at: Option<i64>,
    needs_lookup: Option<bool>,
    reason: String,
}

/// Moves a job from `update.from` to `update.to` and adds a history row. Returns
/// `false`, with nothing changed, when the job was no longer in `update.from`.
async fn update_state(conn: &mut SqliteConnection, update: &StateUpdate) -> Result<bool, QueueError> {
    let now = now_ms();
    let updated = sqlx::query(
        "UPDATE fax_jobs SET state = ?, updated_at = ?, fax_id = COALESCE(?, fax_id), \
         last_error = COALESCE(?, last_error), next_attempt_at = COALESCE(?, next_attempt_at), \
         needs_lookup = COALESCE(?, needs_lookup) WHERE id = ? AND state = ?",
    )
    .bind(update.to.as_str())
    .bind(now)
    .bind(&update.fax_id)
    .bind(&update.last_error)
    .bind(update.next_attempt_at)
    .bind(update.needs_lookup)
    .bind(&update.id)
    .bind(update.from.as_str())
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    insert_event(conn, &update.id, now, update.to, &update.reason).await?;
    Ok(true)
}

/// A job state that is recorded in a history table.
trait EventState: Copy {
    /// The statement that adds a row to the history table of this kind of job.
    const INSERT_EVENT: &'static str;

    fn name(self) -> &'static str;
}

impl EventState for JobState {
    const INSERT_EVENT: &'static str = "INSERT INTO fax_job_events (job_id, at, state, reason) VALUES (?, ?, ?, ?)";

    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl EventState for email::EmailState {
    const INSERT_EVENT: &'static str =
        "INSERT INTO email_job_events (job_id, at, state, reason) VALUES (?, ?, ?, ?)";

    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// Adds one row to the history of a fax or email job.
async fn insert_event<S: EventState>(
    conn: &mut SqliteConnection,
    job_id: &str,
    at: i64,
    state: S,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(S::INSERT_EVENT)
        .bind(job_id)
        .bind(at)
        .bind(state.name())
        .bind(reason)
        .execute(conn)
        .await?;
    Ok(())
}

/// Counts faxes for the `faxgate_faxes_total` metric. A backend that finishes at once,
/// like the outbox, goes from submitting straight to completed, which is a submission too.
fn count_change(from: JobState, to: JobState) {
    match to {
        JobState::Submitted => crate::metrics::fax("submitted"),
        JobState::Completed => {
            if from == JobState::Submitting {
                crate::metrics::fax("submitted");
            }
            crate::metrics::fax("completed");
        }
        JobState::Failed => crate::metrics::fax("failed"),
        _ => {}
    }
}

/// Logs one state change as a single info line with the ids that tie it to the
/// message and the fax.
fn log_change(job: &Job, state: JobState, fax_id: Option<&str>, reason: &str) {
    let fax_id = fax_id.or(job.fax_id.as_deref());
    tracing::info!(
        job_id = %job.id,
        session_id = %job.session_id,
        fax_id,
        message_id = job.message_id.as_deref().unwrap_or(""),
        number = %job.to_number,
        state = state.as_str(),
        reason,
        "fax job state changed"
    );
}

pub(crate) fn now_ms() -> i64 {
    ms_from_time(SystemTime::now())
}

pub(crate) fn ms_from_time(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// Returns the file name of a spooled document, as stored in the `document` column.
fn document_name(path: &std::path::Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

pub(crate) fn time_from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
