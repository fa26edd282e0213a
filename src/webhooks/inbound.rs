//! Received faxes: the durable record of each `INCOMING_FAX` event, and the dispatcher
//! that turns it into one email job per receiver.
//!
//! The webhook handler stores the event (and the PDF, when the request carried one)
//! before it replies 200. The pair (`event`, `fax_id`) is unique in the table and the
//! insert is `ON CONFLICT DO NOTHING`, so repeated and concurrent deliveries of one
//! event store it once. The dispatcher then downloads a missing PDF, renders one email
//! per address mapped to `fax.to` with `receive` or `both` (or one to
//! `relay.postmaster` when none is), and queues them. When the fax API cannot provide
//! the PDF, the emails go out without it and state why. Each email job's source names
//! the fax and the receiver, so a dispatch repeated after a crash adds no second email.
//!
//! Event states: `received -> dispatched | dropped | failed`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lettre::Message;
use lettre::message::{MultiPart, SinglePart};
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;
use tokio::sync::{Notify, watch};

use super::Payload;
use crate::config::Config;
use crate::fax::{Backend, FaxDetails};
use crate::mappings::Mappings;
use crate::number::Number;
use crate::queue::{
    EmailKind, EmailQueue, EmailRequest, Polling, QueueError, RetryPolicy, now_ms, poll_until_shutdown, stage_in_spool,
};
use crate::relay::message::{attachment_name, new_message_id, pdf_attachment};
use crate::reports::format_utc;
use crate::store::Store;

/// Tables of received events. Times are milliseconds since the Unix epoch, UTC.
pub const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS webhook_events (
        id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        fax_id TEXT NOT NULL,
        state TEXT NOT NULL,
        fax TEXT NOT NULL, -- the Fax object as received, JSON
        event_time TEXT,
        document TEXT, -- PDF file name in the inbound spool folder
        received_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error TEXT,
        UNIQUE (event, fax_id)
    )"];

/// Maximum sleep of the idle dispatcher before it reads the database again.
const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// A handle to the stored events, cheap to clone.
#[derive(Clone)]
pub struct InboundEvents {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    spool_dir: PathBuf,
    notify: Notify,
    lifetime: Duration,
}

/// One stored `INCOMING_FAX` event waiting for dispatch.
#[derive(Debug, Clone)]
struct StoredEvent {
    id: String,
    fax_id: String,
    fax: serde_json::Value,
    event_time: Option<String>,
    document: Option<String>,
    attempts: u32,
    expires_at: i64,
}

impl InboundEvents {
    /// Creates a handle whose PDFs live in `spool_dir`; events whose PDF cannot be
    /// downloaded within `lifetime` fail.
    pub fn new(store: Store, spool_dir: PathBuf, lifetime: Duration) -> InboundEvents {
        InboundEvents { inner: Arc::new(Inner { store, spool_dir, notify: Notify::new(), lifetime }) }
    }

    fn pool(&self) -> &sqlx::SqlitePool {
        self.inner.store.pool()
    }

    /// Stores an event durably: the PDF is written and flushed, then the row committed
    /// under `synchronous=FULL`. Returns the new event id, or `None` when the same
    /// event for the same fax is stored already.
    pub async fn record(&self, payload: &Payload) -> Result<Option<String>, QueueError> {
        let id = ulid::Ulid::new().to_string();
        let document = match &payload.file {
            Some(pdf) => Some(self.write_pdf(&id, pdf).await?),
            None => None,
        };
        let now = now_ms();
        let expires_at = now.saturating_add(i64::try_from(self.inner.lifetime.as_millis()).unwrap_or(i64::MAX));
        let row = EventRow {
            id: id.clone(),
            event: payload.event.clone(),
            fax_id: payload.details.id.clone(),
            fax: payload.fax.to_string(),
            event_time: payload.event_time.clone(),
            document: document.clone(),
            now,
            expires_at,
        };
        let sync_folder = document.as_ref().map(|_| self.inner.spool_dir.as_path());
        let inserted =
            self.inner.store.writer().write(sync_folder, row, |conn, row| Box::pin(insert_event(conn, row))).await;
        let inserted = match inserted {
            Ok(inserted) => inserted,
            Err(err) => {
                self.remove_document(document.as_deref()).await;
                return Err(err);
            }
        };
        if !inserted {
            self.remove_document(document.as_deref()).await;
            return Ok(None);
        }
        self.inner.notify.notify_waiters();
        Ok(Some(id))
    }

    /// Counts the stored events of `event` for `fax_id`, for tests and diagnostics.
    pub async fn count(&self, event: &str, fax_id: &str) -> Result<u64, QueueError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE event = ? AND fax_id = ?")
            .bind(event)
            .bind(fax_id)
            .fetch_one(self.pool())
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Writes a received PDF to the spool folder. The folder is flushed by the queue
    /// writer when it commits the row that names the file.
    async fn write_pdf(&self, id: &str, pdf: &[u8]) -> Result<String, QueueError> {
        let name = format!("{id}.pdf");
        stage_in_spool(&self.inner.spool_dir, name.clone(), pdf.to_vec()).await?;
        Ok(name)
    }

    async fn remove_document(&self, name: Option<&str>) {
        let Some(name) = name else { return };
        let path = self.inner.spool_dir.join(name);
        if let Err(err) = tokio::fs::remove_file(&path).await
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %err, "cannot remove a received fax file");
        }
    }

    async fn next_due(&self) -> Result<Option<StoredEvent>, QueueError> {
        let row = sqlx::query(
            "SELECT id, fax_id, fax, event_time, document, attempts, expires_at FROM webhook_events \
             WHERE state = 'received' AND event = 'INCOMING_FAX' AND next_attempt_at <= ? \
             ORDER BY next_attempt_at, id LIMIT 1",
        )
        .bind(now_ms())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let fax_text: String = row.try_get("fax")?;
        let fax = serde_json::from_str(&fax_text)
            .map_err(|err| QueueError::Corrupt { id: id.clone(), reason: format!("fax: {err}") })?;
        let attempts: i64 = row.try_get("attempts")?;
        Ok(Some(StoredEvent {
            fax_id: row.try_get("fax_id")?,
            fax,
            event_time: row.try_get("event_time")?,
            document: row.try_get("document")?,
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            expires_at: row.try_get("expires_at")?,
            id,
        }))
    }

    async fn next_due_in(&self) -> Result<Option<Duration>, QueueError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM webhook_events WHERE state = 'received' AND event = 'INCOMING_FAX'",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(next.map(|at| Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))))
    }

    /// Names the PDF written by [`InboundEvents::write_pdf`] in the event, after the
    /// spool folder is flushed.
    async fn set_document(&self, id: &str, document: &str) -> Result<(), QueueError> {
        let row = (id.to_owned(), document.to_owned());
        let sync_folder = Some(self.inner.spool_dir.as_path());
        let update = self.inner.store.writer().write(sync_folder, row, |conn, (id, document)| {
            let query = sqlx::query("UPDATE webhook_events SET document = ?, updated_at = ? WHERE id = ?")
                .bind(document)
                .bind(now_ms())
                .bind(id);
            Box::pin(async move { query.execute(conn).await.map(drop).map_err(QueueError::from) })
        });
        update.await
    }

    async fn reschedule(&self, id: &str, next_attempt_at: i64, error: &str) -> Result<(), QueueError> {
        let row = (id.to_owned(), next_attempt_at, error.to_owned());
        let update = self.inner.store.writer().write(None, row, |conn, (id, next_attempt_at, error)| {
            let query = sqlx::query(
                "UPDATE webhook_events SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, \
                 updated_at = ? WHERE id = ?",
            )
            .bind(*next_attempt_at)
            .bind(error)
            .bind(now_ms())
            .bind(id);
            Box::pin(async move { query.execute(conn).await.map(drop).map_err(QueueError::from) })
        });
        update.await
    }

    async fn finish(&self, event: &StoredEvent, state: &str, error: Option<&str>) -> Result<(), QueueError> {
        let row = (event.id.clone(), state.to_owned(), error.map(str::to_owned));
        let update = self.inner.store.writer().write(None, row, |conn, (id, state, error)| {
            let query = sqlx::query(
                "UPDATE webhook_events SET state = ?, last_error = COALESCE(?, last_error), updated_at = ? \
                 WHERE id = ?",
            )
            .bind(state)
            .bind(error)
            .bind(now_ms())
            .bind(id);
            Box::pin(async move { query.execute(conn).await.map(drop).map_err(QueueError::from) })
        });
        update.await?;
        self.remove_document(event.document.as_deref()).await;
        Ok(())
    }
}

/// The row of one received event, for [`insert_event`].
struct EventRow {
    id: String,
    event: String,
    fax_id: String,
    fax: String,
    event_time: Option<String>,
    document: Option<String>,
    now: i64,
    expires_at: i64,
}

/// Inserts the event of `row`. Returns `false`, with nothing inserted, when the same
/// event for the same fax is stored already.
async fn insert_event(conn: &mut SqliteConnection, row: &EventRow) -> Result<bool, QueueError> {
    let inserted = sqlx::query(
        "INSERT INTO webhook_events (id, event, fax_id, state, fax, event_time, document, received_at, \
         updated_at, expires_at, attempts, next_attempt_at) VALUES (?, ?, ?, 'received', ?, ?, ?, ?, ?, ?, 0, ?) \
         ON CONFLICT (event, fax_id) DO NOTHING",
    )
    .bind(&row.id)
    .bind(&row.event)
    .bind(&row.fax_id)
    .bind(&row.fax)
    .bind(&row.event_time)
    .bind(&row.document)
    .bind(row.now)
    .bind(row.now)
    .bind(row.expires_at)
    .bind(row.now)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The received-fax dispatcher and the handles it uses.
pub struct Dispatcher {
    pub events: InboundEvents,
    pub emails: EmailQueue,
    pub mappings: Mappings,
    pub backend: Arc<Backend>,
    pub config: Arc<Config>,
    pub policy: RetryPolicy,
}

/// Runs the dispatcher until `shutdown` turns true.
pub async fn run_inbound_dispatcher(dispatcher: Dispatcher, shutdown: watch::Receiver<bool>) {
    tracing::info!("received-fax dispatcher started");
    // A store error is retried at the next poll.
    let polling = Polling { interval: POLL_INTERVAL, error_pause: POLL_INTERVAL, items: "received faxes" };
    let (dispatcher, events) = (&dispatcher, &dispatcher.events);
    poll_until_shutdown(
        polling,
        shutdown,
        || events.inner.notify.notified(),
        || events.next_due(),
        || events.next_due_in(),
        |event| dispatcher.dispatch(event),
    )
    .await;
    tracing::info!("received-fax dispatcher stopped");
}

impl Dispatcher {
    async fn dispatch(&self, mut event: StoredEvent) {
        let Some(details) = FaxDetails::from_json(&event.fax) else {
            self.finish(&event, "failed", Some("the stored fax has no id")).await;
            return;
        };
        let Some(document) = self.document(&mut event).await else {
            return;
        };
        let Some(to) = details.to.as_deref().and_then(|to| to.parse::<Number>().ok()) else {
            self.finish(&event, "failed", Some("the stored fax has no valid fax.to")).await;
            return;
        };

        let receivers = match self.events_receivers(&to).await {
            Ok(receivers) => receivers,
            Err(err) => {
                tracing::error!(fax_id = %event.fax_id, error = %err, "cannot read the mappings; dispatch retried");
                let _ = self.events.reschedule(&event.id, now_ms() + 5_000, &err).await;
                return;
            }
        };
        if receivers.is_empty() {
            tracing::warn!(
                event = "INCOMING_FAX",
                fax_id = %event.fax_id,
                number = %to,
                "received fax dropped: no address receives this number and relay.postmaster is empty"
            );
            self.finish(&event, "dropped", Some("no receiver and no postmaster")).await;
            return;
        }

        let mut email_job_ids = Vec::new();
        for receiver in &receivers {
            let (request, message) = match render_inbound(
                &self.config,
                &details,
                event.event_time.as_deref(),
                &to,
                receiver,
                &document,
            ) {
                Ok(rendered) => rendered,
                Err(err) => {
                    tracing::error!(fax_id = %event.fax_id, recipient = %receiver, error = %err, "cannot write the email for a received fax");
                    continue;
                }
            };
            match self.emails.enqueue(request, &message).await {
                Ok(Some(id)) => email_job_ids.push(id),
                Ok(None) => {}
                Err(err) => {
                    tracing::error!(fax_id = %event.fax_id, recipient = %receiver, error = %err, "cannot queue the email for a received fax; dispatch retried");
                    let _ = self.events.reschedule(&event.id, now_ms() + 5_000, &err.to_string()).await;
                    return;
                }
            }
        }
        tracing::info!(
            event = "INCOMING_FAX",
            fax_id = %event.fax_id,
            number = %to,
            receivers = receivers.len(),
            email_job_ids = ?email_job_ids,
            attached = matches!(document, Document::Pdf(_)),
            "received fax dispatched"
        );
        let reason = match &document {
            Document::Pdf(_) => None,
            Document::Unavailable(reason) => Some(reason.as_str()),
        };
        self.finish(&event, "dispatched", reason).await;
    }

    /// Returns the receivers of `to`, or the postmaster when there are none.
    async fn events_receivers(&self, to: &Number) -> Result<Vec<String>, String> {
        let receivers = self.mappings.receivers(to).await.map_err(|err| err.to_string())?;
        if receivers.is_empty() && !self.config.relay.postmaster.is_empty() {
            tracing::info!(number = %to, postmaster = %self.config.relay.postmaster, "no address receives this number; the fax goes to the postmaster");
            return Ok(vec![self.config.relay.postmaster.clone()]);
        }
        Ok(receivers)
    }

    /// Reads the event's PDF, downloading it first when the webhook carried none.
    /// Returns `None` when the event was rescheduled for another download attempt.
    async fn document(&self, event: &mut StoredEvent) -> Option<Document> {
        if let Some(name) = &event.document {
            let path = self.events.inner.spool_dir.join(name);
            match tokio::fs::read(&path).await {
                Ok(pdf) => return Some(Document::Pdf(pdf)),
                Err(err) => {
                    tracing::warn!(fax_id = %event.fax_id, path = %path.display(), error = %err, "cannot read the received fax file; downloading it");
                }
            }
        }

        match self.backend.fax_file(&event.fax_id).await {
            Ok(pdf) => {
                match self.events.write_pdf(&event.id, &pdf).await {
                    Ok(name) => {
                        if let Err(err) = self.events.set_document(&event.id, &name).await {
                            tracing::warn!(fax_id = %event.fax_id, error = %err, "cannot record the downloaded fax file");
                        }
                        event.document = Some(name);
                    }
                    Err(err) => {
                        tracing::warn!(fax_id = %event.fax_id, error = %err, "cannot spool the downloaded fax file")
                    }
                }
                tracing::info!(fax_id = %event.fax_id, bytes = pdf.len(), "downloaded the received fax from the fax API");
                Some(Document::Pdf(pdf))
            }
            Err(err) if err.is_permanent() => {
                let reason = format!("cannot download the fax: {err}");
                tracing::error!(event = "INCOMING_FAX", fax_id = %event.fax_id, error = %reason, "received fax has no document; the receivers get the notice without it");
                Some(Document::Unavailable(reason))
            }
            Err(err) => {
                let attempts = event.attempts + 1;
                let delay = err.retry_after().unwrap_or_else(|| self.policy.backoff(attempts));
                let next = crate::queue::ms_from_time(SystemTime::now() + delay);
                if next >= event.expires_at {
                    let reason = format!("gave up downloading the fax after {attempts} attempts: {err}");
                    tracing::error!(event = "INCOMING_FAX", fax_id = %event.fax_id, error = %reason, "received fax has no document; the receivers get the notice without it");
                    return Some(Document::Unavailable(reason));
                }
                tracing::warn!(fax_id = %event.fax_id, error = %err, attempts, retry_in_ms = delay.as_millis() as u64, "cannot download the received fax; will retry");
                if let Err(db_err) = self.events.reschedule(&event.id, next, &err.to_string()).await {
                    tracing::error!(fax_id = %event.fax_id, error = %db_err, "cannot reschedule the received fax");
                }
                None
            }
        }
    }

    async fn finish(&self, event: &StoredEvent, state: &str, error: Option<&str>) {
        if let Err(err) = self.events.finish(event, state, error).await {
            tracing::error!(fax_id = %event.fax_id, state, error = %err, "cannot record the received fax's state");
        }
    }
}

/// The document of a received fax, or the reason there is none.
enum Document {
    Pdf(Vec<u8>),
    /// The fax API cannot provide the file: a permanent error such as 404, or a
    /// download retried until `fax.max_queue_lifetime`.
    Unavailable(String),
}

/// Renders the email for one receiver of a received fax: from `+<caller>@<first gateway
/// domain>` (so that a reply faxes the caller back), with the PDF attached unchanged as
/// `fax-<fax id>.pdf`. Without a document the email still reports that the fax came,
/// and why the document is missing.
fn render_inbound(
    config: &Config,
    details: &FaxDetails,
    event_time: Option<&str>,
    to: &Number,
    receiver: &str,
    document: &Document,
) -> Result<(EmailRequest, Vec<u8>), String> {
    let domain = config.gateway.domains.first().map(String::as_str).unwrap_or(config.gateway.hostname.as_str());
    let caller = details.from.as_deref().and_then(|from| from.parse::<Number>().ok());
    let from = match &caller {
        Some(number) => format!("{}@{domain}", number.as_str()),
        // NOTE: a withheld or invalid caller id cannot be faxed back, so the email
        // comes from relay.from instead.
        None => config.relay.from.clone(),
    };
    let caller_text = caller
        .as_ref()
        .map(Number::to_string)
        .unwrap_or_else(|| details.from.clone().filter(|f| !f.is_empty()).unwrap_or_else(|| "unknown".to_string()));
    let time = details
        .time
        .clone()
        .or_else(|| event_time.map(str::to_string))
        .unwrap_or_else(|| format_utc(SystemTime::now()));
    let pages = details.pages.map(|p| p.to_string()).unwrap_or_else(|| "unknown".to_string());
    let subject = format!("Fax received on {to}");
    let closing = match document {
        Document::Pdf(_) => "The fax is attached as a PDF. Reply to this email to fax the caller back.".to_string(),
        Document::Unavailable(reason) => format!(
            "The fax document is not attached: faxgate could not get it from the fax API.\r\n\
             Reason:  {reason}\r\n\r\nThe Sinch dashboard may still have it under the fax id above."
        ),
    };
    let body = format!(
        "A fax arrived on {to}.\r\n\r\nFrom:    {caller_text}\r\nTo:      {to}\r\nPages:   {pages}\r\n\
         Time:    {time} (UTC)\r\nFax id:  {}\r\n\r\n{closing}\r\n",
        details.id
    );

    let message_id = new_message_id(&config.gateway.hostname);
    let builder = Message::builder()
        .from(from.parse().map_err(|err| format!("sender {from:?}: {err}"))?)
        .to(receiver.parse().map_err(|err| format!("recipient {receiver:?}: {err}"))?)
        .subject(subject.clone())
        .date_now()
        .message_id(Some(format!("<{message_id}>")));
    let message = match document {
        Document::Pdf(pdf) => builder.multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(body))
                .singlepart(pdf_attachment(&attachment_name(&details.id), pdf)?),
        ),
        Document::Unavailable(_) => builder.singlepart(SinglePart::plain(body)),
    }
    .map_err(|err| err.to_string())?;
    let request = EmailRequest {
        kind: EmailKind::Inbound,
        source: format!("INCOMING_FAX:{}:{receiver}", details.id),
        reverse_path: config.relay.from.clone(),
        recipient: receiver.to_string(),
        message_id,
        subject,
    };
    Ok((request, message.formatted()))
}

