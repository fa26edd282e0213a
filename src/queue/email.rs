//! The durable email queue: received faxes relayed to their receivers, delivery
//! reports to senders, and notices to the postmaster, each one message to one
//! recipient, with a history of every state change.
//!
//! Life of an email job:
//!
//! ```text
//! queued -> sending -> sent
//!             |-> queued (transient failure, retried after a backoff)
//!             \-> failed (permanent failure, or the lifetime ran out)
//! queued | failed -> deleted  (by an administrator)
//! failed -> queued            (by an administrator)
//! ```
//!
//! Each job's message is rendered when the job is created and kept as a file in the
//! mail spool folder, so a retry sends the same bytes with the same `Message-ID`. A job
//! found in `sending` at start was cut off by a crash and goes back to `queued`: email
//! delivery is at least once, because an SMTP relay may have taken the message before
//! the crash.
//!
//! Every job has a `source` key, unique in the table, that names what it was made for
//! (such as one receiver of one received fax). Creating a job whose source exists does
//! nothing, which makes the producers idempotent across crashes and repeated webhooks.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use tokio::sync::Notify;

use super::{QueueError, insert_event, now_ms, spool, time_from_ms};
use crate::store::Store;

/// Tables of the email queue. Times are milliseconds since the Unix epoch, UTC.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS email_jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        source TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL,
        reverse_path TEXT NOT NULL,
        recipient TEXT NOT NULL,
        message_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        message TEXT NOT NULL, -- file name in the mail spool folder
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT
    )",
    "CREATE INDEX IF NOT EXISTS email_jobs_due ON email_jobs (state, next_attempt_at)",
    "CREATE TABLE IF NOT EXISTS email_job_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS email_job_events_job ON email_job_events (job_id, seq)",
];

/// Folder under `data_dir` that contains the rendered messages.
pub const SPOOL_FOLDER: &str = "mail-spool";

macro_rules! email_columns {
    () => {
        "id, kind, source, state, reverse_path, recipient, message_id, subject, message, created_at, \
         updated_at, expires_at, attempts, next_attempt_at, last_error"
    };
}

/// The purpose of an email job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailKind {
    /// A received fax, relayed to one mapped address.
    Inbound,
    /// A delivery report to the sender of a fax.
    Report,
    /// A notice to `relay.postmaster` about an email that could not be delivered.
    Postmaster,
}

impl EmailKind {
    pub const ALL: [EmailKind; 3] = [EmailKind::Inbound, EmailKind::Report, EmailKind::Postmaster];

    pub fn as_str(self) -> &'static str {
        match self {
            EmailKind::Inbound => "inbound",
            EmailKind::Report => "report",
            EmailKind::Postmaster => "postmaster",
        }
    }
}

impl fmt::Display for EmailKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EmailKind {
    type Err = QueueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EmailKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| QueueError::Corrupt { id: String::new(), reason: format!("unknown email kind {s:?}") })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailState {
    Queued,
    Sending,
    Sent,
    Failed,
    Deleted,
}

impl EmailState {
    pub const ALL: [EmailState; 5] =
        [EmailState::Queued, EmailState::Sending, EmailState::Sent, EmailState::Failed, EmailState::Deleted];

    pub fn as_str(self) -> &'static str {
        match self {
            EmailState::Queued => "queued",
            EmailState::Sending => "sending",
            EmailState::Sent => "sent",
            EmailState::Failed => "failed",
            EmailState::Deleted => "deleted",
        }
    }
}

impl fmt::Display for EmailState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EmailState {
    type Err = QueueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EmailState::ALL.into_iter().find(|state| state.as_str() == s).ok_or_else(|| {
            QueueError::UnknownState(format!("{s} (expected one of queued, sending, sent, failed, deleted)"))
        })
    }
}

/// A rendered email to queue.
#[derive(Debug, Clone)]
pub struct EmailRequest {
    pub kind: EmailKind,
    /// The unique key of what the email was made for. A second request with the same
    /// source is dropped.
    pub source: String,
    /// The envelope sender (`MAIL FROM`); empty for the null reverse path.
    pub reverse_path: String,
    /// The envelope recipient (`RCPT TO`).
    pub recipient: String,
    /// The `Message-ID` of the rendered message, without angle brackets.
    pub message_id: String,
    /// The `Subject`, kept for listings and logs.
    pub subject: String,
}

/// One email job as stored.
#[derive(Debug, Clone)]
pub struct EmailJob {
    pub id: String,
    pub kind: EmailKind,
    pub source: String,
    pub state: EmailState,
    pub reverse_path: String,
    pub recipient: String,
    pub message_id: String,
    pub subject: String,
    /// The rendered message in the mail spool folder.
    pub message: PathBuf,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    pub expires_at: SystemTime,
    pub attempts: u32,
    pub next_attempt_at: SystemTime,
    pub last_error: Option<String>,
}

/// One state change of an email job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailEvent {
    pub at: SystemTime,
    pub state: EmailState,
    pub reason: String,
}

/// A handle to the email queue, cheap to clone.
#[derive(Clone)]
pub struct EmailQueue {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    spool_dir: PathBuf,
    notify: Notify,
    lifetime: Duration,
}

impl fmt::Debug for EmailQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailQueue").field("spool_dir", &self.inner.spool_dir).finish_non_exhaustive()
    }
}

impl EmailQueue {
    /// Creates a queue whose messages live in `spool_dir` and whose jobs fail when not
    /// delivered within `lifetime` (`fax.max_queue_lifetime`).
    pub fn new(store: Store, spool_dir: PathBuf, lifetime: Duration) -> EmailQueue {
        EmailQueue { inner: Arc::new(Inner { store, spool_dir, notify: Notify::new(), lifetime }) }
    }

    /// Creates the queue the daemon uses: messages in `<data_dir>/mail-spool`, lifetime
    /// `fax.max_queue_lifetime`. The management API and the CLI open it the same way.
    pub fn from_config(store: Store, config: &crate::config::Config) -> EmailQueue {
        EmailQueue::new(store, config.gateway.data_dir.join(SPOOL_FOLDER), config.fax.max_queue_lifetime)
    }

    pub fn spool_dir(&self) -> &Path {
        &self.inner.spool_dir
    }

    fn pool(&self) -> &sqlx::SqlitePool {
        self.inner.store.pool()
    }

    fn writer(&self) -> &super::writer::Writer {
        self.inner.store.writer()
    }

    /// Stores a rendered message and its job, both flushed to disk before this returns:
    /// the queue writer commits the job after it flushes the spool folder. Returns the
    /// new job id, or `None` when a job with the same source exists; the message is then
    /// discarded.
    pub async fn enqueue(&self, request: EmailRequest, message: &[u8]) -> Result<Option<String>, QueueError> {
        let id = ulid::Ulid::new().to_string();
        let name = format!("{id}.eml");
        let path = spool::stage_in_spool(&self.inner.spool_dir, name.clone(), message.to_vec()).await?;

        let now = now_ms();
        let expires_at = now.saturating_add(i64::try_from(self.inner.lifetime.as_millis()).unwrap_or(i64::MAX));
        let row = JobRow { id: id.clone(), request: request.clone(), message: name, now, expires_at };
        let result =
            self.writer().write(Some(&self.inner.spool_dir), row, |conn, row| Box::pin(insert_job(conn, row))).await;

        match result {
            Ok(true) => {
                tracing::info!(
                    email_job_id = %id,
                    kind = request.kind.as_str(),
                    source = %request.source,
                    recipient = %request.recipient,
                    message_id = %request.message_id,
                    state = "queued",
                    "email job queued"
                );
                self.inner.notify.notify_waiters();
                Ok(Some(id))
            }
            Ok(false) => {
                tracing::debug!(source = %request.source, "email job exists already; the new one is dropped");
                remove_quietly(&path).await;
                Ok(None)
            }
            Err(err) => {
                remove_quietly(&path).await;
                Err(err)
            }
        }
    }

    /// Reports whether a job with this source exists, in any state.
    pub async fn has_source(&self, source: &str) -> Result<bool, QueueError> {
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM email_jobs WHERE source = ?")
            .bind(source)
            .fetch_optional(self.pool())
            .await?;
        Ok(found.is_some())
    }

    pub async fn job(&self, id: &str) -> Result<Option<EmailJob>, QueueError> {
        let row = sqlx::query(concat!("SELECT ", email_columns!(), " FROM email_jobs WHERE id = ?"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(|row| self.job_from_row(row)).transpose()
    }

    /// Lists jobs, oldest first, optionally only those in `state` (such as `"failed"`).
    pub async fn list(&self, state: Option<&str>) -> Result<Vec<EmailJob>, QueueError> {
        let rows = match state {
            Some(state) => {
                let state: EmailState = state.parse()?;
                sqlx::query(concat!(
                    "SELECT ",
                    email_columns!(),
                    " FROM email_jobs WHERE state = ? ORDER BY created_at, id"
                ))
                .bind(state.as_str())
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(concat!("SELECT ", email_columns!(), " FROM email_jobs ORDER BY created_at, id"))
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(|row| self.job_from_row(row)).collect()
    }

    /// Returns the state changes of a job, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<EmailEvent>, QueueError> {
        let rows = sqlx::query("SELECT at, state, reason FROM email_job_events WHERE job_id = ? ORDER BY seq")
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(EmailEvent {
                    at: time_from_ms(row.try_get("at")?),
                    state: row.try_get::<String, _>("state")?.parse()?,
                    reason: row.try_get("reason")?,
                })
            })
            .collect()
    }

    /// Counts the jobs of each kind in each state, for the `faxgate_queue_jobs` gauge.
    /// Every combination is included, with 0 when there are no such jobs.
    pub async fn count_by_kind_state(&self) -> Result<Vec<(EmailKind, EmailState, u64)>, QueueError> {
        let rows = sqlx::query("SELECT kind, state, COUNT(*) AS jobs FROM email_jobs GROUP BY kind, state")
            .fetch_all(self.pool())
            .await?;
        let mut counts = Vec::new();
        for kind in EmailKind::ALL {
            for state in EmailState::ALL {
                counts.push((kind, state, 0));
            }
        }
        for row in &rows {
            let kind: EmailKind = row.try_get::<String, _>("kind")?.parse()?;
            let state: EmailState = row.try_get::<String, _>("state")?.parse()?;
            let jobs: i64 = row.try_get("jobs")?;
            if let Some(entry) = counts.iter_mut().find(|(k, s, _)| *k == kind && *s == state) {
                entry.2 = u64::try_from(jobs).unwrap_or(0);
            }
        }
        Ok(counts)
    }

    /// Makes a job due now. A `failed` job is queued again with a fresh lifetime and its
    /// attempt count reset. A `queued` job keeps its attempt count and lifetime.
    pub async fn retry(&self, id: &str) -> Result<(), QueueError> {
        let now = now_ms();
        let expires_at = now.saturating_add(i64::try_from(self.inner.lifetime.as_millis()).unwrap_or(i64::MAX));
        let mut tx = self.pool().begin().await?;
        let mut reason = "retried by an administrator";
        let mut updated = sqlx::query(
            "UPDATE email_jobs SET state = 'queued', attempts = 0, next_attempt_at = ?, expires_at = ?, \
             updated_at = ? WHERE id = ? AND state = 'failed'",
        )
        .bind(now)
        .bind(expires_at)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            reason = "made due now by an administrator";
            updated = sqlx::query(
                "UPDATE email_jobs SET next_attempt_at = MIN(next_attempt_at, ?), updated_at = ? \
                 WHERE id = ? AND state = 'queued'",
            )
            .bind(now)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        if updated.rows_affected() == 0 {
            return Err(self.wrong_state(id, "retry").await);
        }
        insert_event(&mut tx, id, now, EmailState::Queued, reason).await?;
        tx.commit().await?;
        tracing::info!(email_job_id = %id, state = "queued", reason, "email job retried by an administrator");
        self.inner.notify.notify_waiters();
        Ok(())
    }

    /// Deletes a job that is `queued` or `failed`, so that it is never sent. The row
    /// stays, in state `deleted`, for its history; the message file is removed.
    pub async fn delete(&self, id: &str) -> Result<(), QueueError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE email_jobs SET state = 'deleted', updated_at = ? WHERE id = ? AND state IN ('queued', 'failed')",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(self.wrong_state(id, "delete").await);
        }
        insert_event(&mut tx, id, now, EmailState::Deleted, "deleted by an administrator").await?;
        tx.commit().await?;
        tracing::info!(email_job_id = %id, state = "deleted", "email job deleted by an administrator");
        if let Some(job) = self.job(id).await? {
            remove_quietly(&job.message).await;
        }
        Ok(())
    }

    async fn wrong_state(&self, id: &str, action: &'static str) -> QueueError {
        match self.job(id).await {
            Ok(Some(job)) => QueueError::WrongEmailState { id: id.to_string(), state: job.state, action },
            Ok(None) => QueueError::NotFound(id.to_string()),
            Err(err) => err,
        }
    }

    /// Claims the job that is due first: `queued` becomes `sending` and the attempt
    /// count goes up, committed before the caller contacts the relay.
    pub(crate) async fn claim_due(&self) -> Result<Option<EmailJob>, QueueError> {
        self.writer().write(None, self.clone(), |conn, queue| Box::pin(queue.claim_due_with(conn))).await
    }

    async fn claim_due_with(&self, conn: &mut SqliteConnection) -> Result<Option<EmailJob>, QueueError> {
        let now = now_ms();
        let row = sqlx::query(concat!(
            "UPDATE email_jobs SET state = 'sending', attempts = attempts + 1, updated_at = ? \
             WHERE id = (SELECT id FROM email_jobs WHERE state = 'queued' AND next_attempt_at <= ? \
                         ORDER BY next_attempt_at, id LIMIT 1) \
             AND state = 'queued' RETURNING ",
            email_columns!()
        ))
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let job = self.job_from_row(&row)?;
        let reason = format!("attempt {}", job.attempts);
        insert_event(conn, &job.id, now, EmailState::Sending, &reason).await?;
        Ok(Some(job))
    }

    /// Returns how long until the next `queued` job is due, or `None` when there is none.
    pub(crate) async fn next_due_in(&self) -> Result<Option<Duration>, QueueError> {
        let next: Option<i64> =
            sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM email_jobs WHERE state = 'queued'")
                .fetch_one(self.pool())
                .await?;
        Ok(next.map(|at| Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))))
    }

    /// Puts every job left in `sending` by a previous run back in the queue, due now.
    /// Returns how many there were.
    pub(crate) async fn recover_interrupted(&self) -> Result<usize, QueueError> {
        let mut recovered = 0;
        for job in self.list(Some("sending")).await? {
            let reason = "the previous run stopped during delivery; the email is sent again";
            if self.transition(&job, EmailState::Sending, EmailState::Queued, Some(now_ms()), None, reason).await? {
                recovered += 1;
            }
        }
        Ok(recovered)
    }

    /// Moves a job from `from` to `to` with a history row, in one transaction of the
    /// queue writer. Returns `false` when the job was no longer in `from`.
    pub(crate) async fn transition(
        &self,
        job: &EmailJob,
        from: EmailState,
        to: EmailState,
        next_attempt_at: Option<i64>,
        last_error: Option<&str>,
        reason: &str,
    ) -> Result<bool, QueueError> {
        let update = StateUpdate {
            id: job.id.clone(),
            from,
            to,
            next_attempt_at,
            last_error: last_error.map(str::to_owned),
            reason: reason.to_owned(),
        };
        let updated = self.writer().write(None, update, |conn, update| Box::pin(update_state(conn, update))).await?;
        if !updated {
            tracing::warn!(email_job_id = %job.id, expected = from.as_str(), "email job changed state elsewhere; its update was dropped");
            return Ok(false);
        }
        tracing::info!(
            email_job_id = %job.id,
            kind = job.kind.as_str(),
            recipient = %job.recipient,
            message_id = %job.message_id,
            state = to.as_str(),
            reason,
            "email job state changed"
        );
        if to == EmailState::Queued {
            self.inner.notify.notify_waiters();
        }
        if to == EmailState::Sent {
            remove_quietly(&job.message).await;
        }
        Ok(true)
    }

    /// Deletes message files that no job uses and that are older than `min_age`: files
    /// of a crash between the spool write and the commit, and temporary files.
    pub(crate) async fn remove_orphaned_messages(&self, min_age: Duration) -> Result<usize, QueueError> {
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
                let users: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM email_jobs WHERE message = ? AND state IN ('queued', 'sending', 'failed')",
                )
                .bind(&name)
                .fetch_one(self.pool())
                .await?;
                users == 0
            };
            if orphan {
                remove_quietly(&entry.path()).await;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn job_from_row(&self, row: &SqliteRow) -> Result<EmailJob, QueueError> {
        let id: String = row.try_get("id")?;
        let corrupt = |reason: String| QueueError::Corrupt { id: id.clone(), reason };
        let attempts: i64 = row.try_get("attempts")?;
        Ok(EmailJob {
            kind: row.try_get::<String, _>("kind")?.parse().map_err(|err: QueueError| corrupt(err.to_string()))?,
            source: row.try_get("source")?,
            state: row.try_get::<String, _>("state")?.parse().map_err(|err: QueueError| corrupt(err.to_string()))?,
            reverse_path: row.try_get("reverse_path")?,
            recipient: row.try_get("recipient")?,
            message_id: row.try_get("message_id")?,
            subject: row.try_get("subject")?,
            message: self.inner.spool_dir.join(row.try_get::<String, _>("message")?),
            created_at: time_from_ms(row.try_get("created_at")?),
            updated_at: time_from_ms(row.try_get("updated_at")?),
            expires_at: time_from_ms(row.try_get("expires_at")?),
            attempts: u32::try_from(attempts).map_err(|_| corrupt(format!("attempts is {attempts}")))?,
            next_attempt_at: time_from_ms(row.try_get("next_attempt_at")?),
            last_error: row.try_get("last_error")?,
            id,
        })
    }

    /// Waits until a job may have become due; see [`super::Queue::notified`].
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.notify.notified()
    }
}

/// The row of one rendered message, for [`insert_job`].
struct JobRow {
    id: String,
    request: EmailRequest,
    /// The file name in the mail spool folder.
    message: String,
    now: i64,
    expires_at: i64,
}

/// Inserts the job of `row` and its history row. Returns `false`, with nothing
/// inserted, when a job with the same source exists.
async fn insert_job(conn: &mut SqliteConnection, row: &JobRow) -> Result<bool, QueueError> {
    let JobRow { id, request, message, now, expires_at } = row;
    let inserted = sqlx::query(
        "INSERT INTO email_jobs (id, kind, source, state, reverse_path, recipient, message_id, subject, \
         message, created_at, updated_at, expires_at, attempts, next_attempt_at) \
         VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (source) DO NOTHING",
    )
    .bind(id)
    .bind(request.kind.as_str())
    .bind(&request.source)
    .bind(&request.reverse_path)
    .bind(&request.recipient)
    .bind(&request.message_id)
    .bind(&request.subject)
    .bind(message)
    .bind(now)
    .bind(now)
    .bind(expires_at)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    insert_event(conn, id, *now, EmailState::Queued, &format!("{} email queued", request.kind)).await?;
    Ok(true)
}

/// A state change of one email job, for [`update_state`].
struct StateUpdate {
    id: String,
    from: EmailState,
    to: EmailState,
    next_attempt_at: Option<i64>,
    last_error: Option<String>,
    reason: String,
}

/// Moves a job from `update.from` to `update.to` and adds a history row. Returns
/// `false`, with nothing changed, when the job was no longer in `update.from`.
async fn update_state(conn: &mut SqliteConnection, update: &StateUpdate) -> Result<bool, QueueError> {
    let now = now_ms();
    let updated = sqlx::query(
        "UPDATE email_jobs SET state = ?, updated_at = ?, next_attempt_at = COALESCE(?, next_attempt_at), \
         last_error = COALESCE(?, last_error) WHERE id = ? AND state = ?",
    )
    .bind(update.to.as_str())
    .bind(now)
    .bind(update.next_attempt_at)
    .bind(&update.last_error)
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

async fn remove_quietly(path: &Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => tracing::warn!(path = %path.display(), error = %err, "cannot remove a mail spool file"),
    }
}
