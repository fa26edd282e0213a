//! Delivery reports: the email a sender gets when a fax job ends, and the status poll
//! for faxes whose result never came by callback.
//!
//! A fax result, from a `FAX_COMPLETED` webhook or a poll of `GET /faxes/{id}`, is first
//! stored in `fax_results` with the details a report shows, then applied to the job
//! with [`Queue::record_fax_result`]. A result that arrives while its job is still
//! `submitting` (Sinch may call back before the submit response is recorded) stays
//! stored and is applied once the job is `submitted`.
//!
//! The report task looks for jobs that reached `completed` or `failed` (including
//! permanent submission failures) and have no row in `fax_reports` for that state
//! change. For each it queues one report email, unless `notifications.on_success` or
//! `on_failure` turns it off or the job has a null sender, and then writes the row.
//! The email job's source names the job and the state change, so a crash between the
//! two steps does not send a second report.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lettre::Message;
use lettre::message::{MultiPart, SinglePart};
use sqlx::Row;
use tokio::sync::watch;

use crate::config::Config;
use crate::fax::{Backend, FaxDetails, FaxStatus};
use crate::queue::{EmailKind, EmailQueue, EmailRequest, Job, JobState, Queue, QueueError, now_ms};
use crate::relay::message::{AutoSubmitted, attachment_name, bracketed, new_message_id, pdf_attachment};
use crate::store::Store;

/// Tables of fax results and of reports decided. Times are milliseconds since the Unix
/// epoch, UTC.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS fax_results (
        fax_id TEXT PRIMARY KEY,
        job_label TEXT,
        status TEXT NOT NULL,
        fax TEXT NOT NULL, -- the fields a report shows, JSON
        received_at INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS fax_reports (
        job_id TEXT NOT NULL,
        version INTEGER NOT NULL, -- the job's updated_at when it ended
        outcome TEXT NOT NULL,
        email_job_id TEXT,
        decided_at INTEGER NOT NULL,
        PRIMARY KEY (job_id, version)
    )",
];

/// Maximum wait of the report task between two reads of the queue. Jobs that end in
/// this process wake it at once, so this bounds the delay for results applied elsewhere.
const TICK: Duration = Duration::from_secs(2);

/// Shortest and longest interval between two status polls.
const MIN_POLL_PERIOD: Duration = Duration::from_secs(1);
const MAX_POLL_PERIOD: Duration = Duration::from_secs(300);

/// Records fax results and queues delivery reports. Cheap to clone.
#[derive(Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    queue: Queue,
    emails: EmailQueue,
    backend: Arc<Backend>,
    config: Arc<Config>,
}

impl Reporter {
    pub fn new(store: Store, queue: Queue, emails: EmailQueue, backend: Arc<Backend>, config: Arc<Config>) -> Reporter {
        Reporter { inner: Arc::new(Inner { store, queue, emails, backend, config }) }
    }

    fn pool(&self) -> &sqlx::SqlitePool {
        self.inner.store.pool()
    }

    /// Stores a final fax result and applies it to its job. Returns the job when it
    /// moved from `submitted` to `completed` or `failed`. Returns `None` when no submitted
    /// job has this fax id yet (the result is kept for later) or the result was applied
    /// before. A status that is not final is ignored.
    pub async fn record_result(&self, details: &FaxDetails) -> Result<Option<Job>, QueueError> {
        let status = match details.status {
            FaxStatus::Completed => "COMPLETED",
            FaxStatus::Failure => "FAILURE",
            _ => return Ok(None),
        };
        let row = (details.id.clone(), details.job_label.clone(), status, details_to_json(details).to_string());
        let store_result = self.inner.store.writer().write(None, row, |conn, (fax_id, job_label, status, fax)| {
            let query = sqlx::query(
                "INSERT INTO fax_results (fax_id, job_label, status, fax, received_at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (fax_id) DO UPDATE SET status = excluded.status, fax = excluded.fax, \
                 job_label = COALESCE(excluded.job_label, job_label)",
            )
            .bind(fax_id)
            .bind(job_label)
            .bind(*status)
            .bind(fax)
            .bind(now_ms());
            Box::pin(async move { query.execute(conn).await.map(drop).map_err(QueueError::from) })
        });
        store_result.await?;
        self.inner.queue.record_fax_result(&details.record()).await
    }

    async fn stored_result(&self, fax_id: &str) -> Result<Option<FaxDetails>, QueueError> {
        let text: Option<String> = sqlx::query_scalar("SELECT fax FROM fax_results WHERE fax_id = ?")
            .bind(fax_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()).and_then(|v: serde_json::Value| FaxDetails::from_json(&v)))
    }

    /// Applies stored results whose job has become `submitted` since they arrived.
    async fn apply_pending_results(&self) -> Result<(), QueueError> {
        let rows = sqlx::query(
            "SELECT r.fax FROM fax_results r JOIN fax_jobs j ON j.fax_id = r.fax_id WHERE j.state = 'submitted'",
        )
        .fetch_all(self.pool())
        .await?;
        for row in rows {
            let text: String = row.try_get("fax")?;
            let Some(details) =
                serde_json::from_str(&text).ok().and_then(|v: serde_json::Value| FaxDetails::from_json(&v))
            else {
                continue;
            };
            if let Some(job) = self.inner.queue.record_fax_result(&details.record()).await? {
                tracing::info!(job_id = %job.id, fax_id = %details.id, state = job.state.as_str(), "applied a fax result that arrived before the job was submitted");
            }
        }
        Ok(())
    }

    /// Polls the fax API for jobs `submitted` longer than `fax.report_poll_after`.
    async fn poll_stale(&self) -> Result<(), QueueError> {
        let jobs = self.inner.queue.submitted_without_result(self.inner.config.fax.report_poll_after).await?;
        for job in jobs {
            let Some(fax_id) = job.fax_id.clone() else { continue };
            match self.inner.backend.fax_details(&fax_id).await {
                Ok(details) => {
                    tracing::info!(job_id = %job.id, fax_id = %fax_id, status = ?details.status, "polled the fax status: no callback came");
                    if let Err(err) = self.record_result(&details).await {
                        tracing::error!(job_id = %job.id, fax_id = %fax_id, error = %err, "cannot record a polled fax result");
                    }
                }
                Err(err) => {
                    tracing::warn!(job_id = %job.id, fax_id = %fax_id, error = %err, "cannot poll the fax status; will try again")
                }
            }
        }
        Ok(())
    }

    /// Queues a report for every job that ended and has none decided yet. Completed and
    /// failed jobs get one per state change. A deleted job gets one only when no report
    /// was decided for it before, so a sender who had a failure report gets no second.
    /// Only jobs that ended within `fax.max_queue_lifetime` are considered, so a store
    /// from an older version does not send reports for old jobs.
    async fn queue_reports(&self) -> Result<(), QueueError> {
        let cutoff = now_ms()
            .saturating_sub(i64::try_from(self.inner.config.fax.max_queue_lifetime.as_millis()).unwrap_or(i64::MAX));
        let rows = sqlx::query(
            "SELECT j.id, j.updated_at FROM fax_jobs j WHERE j.updated_at >= ? AND (\
             (j.state IN ('completed', 'failed') \
              AND NOT EXISTS (SELECT 1 FROM fax_reports r WHERE r.job_id = j.id AND r.version = j.updated_at)) \
             OR (j.state = 'deleted' AND NOT EXISTS (SELECT 1 FROM fax_reports r WHERE r.job_id = j.id))) \
             ORDER BY j.updated_at, j.id",
        )
        .bind(cutoff)
        .fetch_all(self.pool())
        .await?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let version: i64 = row.try_get("updated_at")?;
            let Some(job) = self.inner.queue.job(&id).await? else { continue };
            self.report(&job, version).await?;
        }
        Ok(())
    }

    async fn report(&self, job: &Job, version: i64) -> Result<(), QueueError> {
        let notifications = &self.inner.config.notifications;
        let success = job.state == JobState::Completed;
        let outcome = if success { "delivered" } else { "failed" };
        let enabled = if success { notifications.on_success } else { notifications.on_failure };
        let mut email_job_id = None;
        if !enabled {
            tracing::debug!(job_id = %job.id, outcome, "no delivery report: turned off in notifications");
        } else if job.reverse_path.is_empty() || job.sender.is_empty() {
            tracing::info!(job_id = %job.id, outcome, "no delivery report: the message had a null sender");
        } else {
            let details = match &job.fax_id {
                Some(fax_id) => self.stored_result(fax_id).await?,
                None => None,
            };
            match render_report(&self.inner.config, job, details.as_ref()).await {
                Ok((request, message)) => {
                    let request = EmailRequest { source: format!("report:{}:{version}", job.id), ..request };
                    email_job_id = self.inner.emails.enqueue(request, &message).await?;
                    tracing::info!(
                        job_id = %job.id,
                        fax_id = job.fax_id.as_deref().unwrap_or(""),
                        message_id = job.message_id.as_deref().unwrap_or(""),
                        email_job_id = email_job_id.as_deref().unwrap_or(""),
                        outcome,
                        "delivery report queued"
                    );
                }
                Err(err) => tracing::error!(job_id = %job.id, error = %err, "cannot write the delivery report"),
            }
        }
        let row = (job.id.clone(), version, outcome, email_job_id);
        let store_decision =
            self.inner.store.writer().write(None, row, |conn, (job_id, version, outcome, email_job_id)| {
                let query = sqlx::query(
                "INSERT INTO fax_reports (job_id, version, outcome, email_job_id, decided_at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(job_id)
            .bind(*version)
            .bind(*outcome)
            .bind(email_job_id)
            .bind(now_ms());
                Box::pin(async move { query.execute(conn).await.map(drop).map_err(QueueError::from) })
            });
        store_decision.await?;
        if success && notifications.attach_copy && !self.document_awaits_report(job).await? {
            self.inner.queue.release_completed_document(job).await;
        }
        Ok(())
    }

    /// Reports whether another completed job of the same message still waits for its
    /// report, which may attach the shared PDF.
    async fn document_awaits_report(&self, job: &Job) -> Result<bool, QueueError> {
        let document = job.document.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM fax_jobs j WHERE j.document = ? AND j.id != ? AND j.state = 'completed' \
             AND NOT EXISTS (SELECT 1 FROM fax_reports r WHERE r.job_id = j.id AND r.version = j.updated_at)",
        )
        .bind(&document)
        .bind(&job.id)
        .fetch_one(self.pool())
        .await?;
        Ok(waiting > 0)
    }

    /// Runs the report task until `shutdown` turns true: applies waiting results, polls
    /// stale faxes every `fax.report_poll_after` / 2 (between 1 s and 5 min), and
    /// queues reports.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let poll_period = (self.inner.config.fax.report_poll_after / 2).clamp(MIN_POLL_PERIOD, MAX_POLL_PERIOD);
        let mut last_poll: Option<tokio::time::Instant> = None;
        tracing::info!(poll_every_s = poll_period.as_secs_f64(), "delivery report task started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let finished = self.inner.queue.finished();
            tokio::pin!(finished);
            finished.as_mut().enable();

            if let Err(err) = self.apply_pending_results().await {
                tracing::error!(error = %err, "cannot apply stored fax results");
            }
            if last_poll.is_none_or(|at| at.elapsed() >= poll_period) {
                last_poll = Some(tokio::time::Instant::now());
                if let Err(err) = self.poll_stale().await {
                    tracing::error!(error = %err, "cannot poll stale faxes");
                }
            }
            if let Err(err) = self.queue_reports().await {
                tracing::error!(error = %err, "cannot queue delivery reports");
            }

            tokio::select! {
                _ = &mut finished => {}
                _ = tokio::time::sleep(TICK.min(poll_period)) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        tracing::info!("delivery report task stopped");
    }
}

fn details_to_json(details: &FaxDetails) -> serde_json::Value {
    let status = match &details.status {
        FaxStatus::Queued => "QUEUED".to_string(),
        FaxStatus::InProgress => "IN_PROGRESS".to_string(),
        FaxStatus::Completed => "COMPLETED".to_string(),
        FaxStatus::Failure => "FAILURE".to_string(),
        FaxStatus::Other(other) => other.clone(),
    };
    let mut fax = serde_json::json!({
        "id": details.id,
        "status": status,
        "direction": details.direction,
        "from": details.from,
        "to": details.to,
        "numberOfPages": details.pages,
        "pagesSentSuccessfully": details.pages_sent,
        "errorType": details.error_type,
        "errorCode": details.error_code,
        "errorMessage": details.error_message,
        "completedTime": details.time,
    });
    if let Some(label) = &details.job_label {
        fax["labels"] = serde_json::json!({ crate::fax::JOB_LABEL: label });
    }
    fax
}

/// Renders the report for `job`: subject `Fax to <number> delivered (<n> pages)` or
/// `Fax to <number> failed: <reason>`, in reply to the original message.
async fn render_report(
    config: &Config,
    job: &Job,
    details: Option<&FaxDetails>,
) -> Result<(EmailRequest, Vec<u8>), String> {
    let success = job.state == JobState::Completed;
    let total = details.and_then(|d| d.pages).unwrap_or(u64::from(job.pages));
    let sent = details.and_then(|d| d.pages_sent).unwrap_or(if success { total } else { 0 });
    let time = details.and_then(|d| d.time.clone()).unwrap_or_else(|| format_utc(job.updated_at));
    let fax_id = job.fax_id.clone().unwrap_or_else(|| "none (the fax was not accepted)".to_string());

    let reason = failure_reason(job, details);
    let subject = if success {
        let counted = if sent > 0 { sent } else { total };
        let unit = if counted == 1 { "page" } else { "pages" };
        format!("Fax to {} delivered ({counted} {unit})", job.to_number)
    } else {
        format!("Fax to {} failed: {reason}", job.to_number)
    };

    let mut body = if success {
        format!("Your fax to {} was delivered.\r\n\r\n", job.to_number)
    } else {
        format!("Your fax to {} could not be delivered.\r\n\r\n", job.to_number)
    };
    body.push_str(&format!(
        "Number:      {}\r\nFrom number: {}\r\nPages sent:  {sent} of {total}\r\nTime:        {time} (UTC)\r\nFax id:      {fax_id}\r\nJob:         {}\r\n",
        job.to_number, job.from_number, job.id
    ));
    if !success {
        let error_type = details.and_then(|d| d.error_type.clone()).unwrap_or_else(|| "none".to_string());
        let error_code = details.and_then(|d| d.error_code.clone()).unwrap_or_else(|| "none".to_string());
        body.push_str(&format!("Error type:  {error_type}\r\nError code:  {error_code}\r\nMessage:     {reason}\r\n"));
    }
    if let Some(message_id) = &job.message_id {
        body.push_str(&format!("\r\nThis report answers your message {}.\r\n", bracketed(message_id)));
    }

    let attachment = if success && config.notifications.attach_copy {
        match tokio::fs::read(&job.document).await {
            Ok(pdf) => Some(pdf),
            Err(err) => {
                tracing::warn!(job_id = %job.id, error = %err, "the faxed PDF is no longer available; the report goes without it");
                body.push_str("\r\nThe copy of the faxed document is no longer available.\r\n");
                None
            }
        }
    } else {
        None
    };

    let message_id = new_message_id(&config.gateway.hostname);
    let mut builder = Message::builder()
        .from(config.relay.from.parse().map_err(|err| format!("relay.from: {err}"))?)
        .to(job.sender.parse().map_err(|err| format!("sender {:?}: {err}", job.sender))?)
        .subject(subject.clone())
        .date_now()
        .message_id(Some(format!("<{message_id}>")))
        .header(AutoSubmitted("auto-replied".to_string()));
    if let Some(original) = &job.message_id {
        builder = builder.in_reply_to(bracketed(original)).references(bracketed(original));
    }
    let message = match attachment {
        Some(pdf) => builder.multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(body))
                .singlepart(pdf_attachment(&attachment_name(&job.id), &pdf)?),
        ),
        // A single part, rather than a bare body, so the message carries MIME-Version.
        None => builder.singlepart(SinglePart::plain(body)),
    }
    .map_err(|err| err.to_string())?;

    // NOTE: the envelope sender is relay.from rather than the null reverse path that
    // RFC 3834 suggests for automatic replies, because smarthosts that require AUTH
    // commonly reject MAIL FROM:<>.
    let request = EmailRequest {
        kind: EmailKind::Report,
        source: format!("report:{}", job.id),
        reverse_path: config.relay.from.clone(),
        recipient: job.sender.clone(),
        message_id,
        subject,
    };
    Ok((request, message.formatted()))
}

/// Returns the reason a fax failed, for the subject: the API's message, else its error
/// type and code, else the job's last error.
fn failure_reason(job: &Job, details: Option<&FaxDetails>) -> String {
    let from_details = details.and_then(|d| {
        d.error_message.clone().or_else(|| {
            let error_type = d.error_type.clone()?;
            Some(match &d.error_code {
                Some(code) => format!("{error_type} {code}"),
                None => error_type,
            })
        })
    });
    let reason = from_details.or_else(|| job.last_error.clone()).unwrap_or_else(|| "no reason given".to_string());
    // Keep the subject to one readable line.
    let line: String = reason.split(['\r', '\n']).next().unwrap_or("").chars().take(200).collect();
    line.trim().to_string()
}

/// Formats a time as `YYYY-MM-DDTHH:MM:SSZ` (UTC), the form the fax API uses.
pub fn format_utc(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map(|since| since.as_secs()).unwrap_or(0);
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX / 2);
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", of_day / 3600, of_day % 3600 / 60, of_day % 60)
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day), with
/// Howard Hinnant's `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_utc_known_dates() {
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(UNIX_EPOCH + Duration::from_secs(1_767_225_599)), "2025-12-31T23:59:59Z");
        assert_eq!(format_utc(UNIX_EPOCH + Duration::from_secs(1_767_225_600)), "2026-01-01T00:00:00Z");
        assert_eq!(format_utc(UNIX_EPOCH + Duration::from_secs(1_709_164_800 + 3661)), "2024-02-29T01:01:01Z");
        assert_eq!(format_utc(UNIX_EPOCH + Duration::from_secs(1_798_761_599)), "2026-12-31T23:59:59Z");
    }
}
