//! The email-to-fax decision, made for each SMTP session before it replies.
//!
//! Each step rejects as early as the envelope allows. The null sender is rejected at
//! `MAIL FROM`, or at `RCPT TO` when a postmaster is set, because bounces to the
//! postmaster come from it. The domain, number and sender mapping are checked at
//! `RCPT TO`, and the header checks, the documents and the queueing come at the end of
//! the message. A positive reply to the
//! message is sent only after [`Queue::enqueue_faxes`] returned, which is after the
//! jobs and their PDF are on disk.
//!
//! `postmaster@<gateway domain>` (and `<postmaster>`) is accepted from any sender when
//! `relay.postmaster` is set, as mail servers owe, and the message is queued unchanged
//! for that address, with a `Received` field added. A message to the postmaster and to
//! fax numbers is faxed as usual, and its reply is the faxes' reply. The postmaster's
//! copy is queued first, so it is kept even when the faxes are then rejected.

use std::sync::Arc;

use mail_parser::MimeHeaders;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::documents::{self, Limits};
use crate::mappings::rules::{self, SenderError};
use crate::mappings::Mappings;
use crate::metrics;
use crate::number::{DestinationPolicy, Number};
use crate::queue::{EmailKind, EmailQueue, EmailRequest, FaxRequest, Queue};
use crate::smtp::{Handler, Recipient, Reply, SessionInfo};

/// The SMTP handler of the daemon.
pub struct Intake {
    config: Arc<Config>,
    mappings: Mappings,
    queue: Queue,
    /// The queue of messages to the postmaster.
    emails: EmailQueue,
    limits: Arc<Limits>,
    destinations: DestinationPolicy,
}

impl Intake {
    pub fn new(config: Arc<Config>, mappings: Mappings, queue: Queue, emails: EmailQueue) -> Intake {
        let limits = Arc::new(Limits::from_settings(&config.documents, config.smtp.max_message_size));
        let destinations = DestinationPolicy {
            allowed_countries: config.fax.allowed_countries.clone(),
            denied_prefixes: config.fax.denied_prefixes.clone(),
        };
        Intake { config, mappings, queue, emails, limits, destinations }
    }
}

/// Logs a store failure and returns the temporary reply that lets the client retry.
fn store_unavailable(session: &SessionInfo, err: impl std::fmt::Display) -> Rejection {
    error!(session_id = %session.session_id, error = %err, "store unavailable");
    Rejection::new("store", Reply::new(451, "4.3.0", "temporary failure of the job store, try again later"))
}

/// A refusal with the short reason counted in `faxgate_smtp_messages_total`.
struct Rejection {
    reason: &'static str,
    reply: Reply,
}

impl Rejection {
    fn new(reason: &'static str, reply: Reply) -> Self {
        Rejection { reason, reply }
    }

    fn sender(err: SenderError) -> Self {
        Rejection::new("sender", err.smtp_reply())
    }
}

/// Counts a refusal in the metrics and returns its reply. A refusal at RCPT counts once
/// per refused recipient, as Postfix logs one reject per recipient: the transaction may
/// still go on with other recipients, so no single message decision exists yet.
fn count_rejection(rejection: Rejection) -> Reply {
    metrics::smtp_message("rejected", rejection.reason);
    rejection.reply
}

impl Intake {
    async fn check_recipient(
        &self,
        session: &SessionInfo,
        reverse_path: &str,
        forward_path: &str,
    ) -> Result<Recipient, Rejection> {
        let first_domain = &self.config.gateway.domains[0];
        if self.is_postmaster(forward_path) {
            if self.config.relay.postmaster.is_empty() {
                let text = format!("{forward_path:?} has no mailbox here, and faxes go to <number>@{first_domain}");
                return Err(Rejection::new("recipient", Reply::new(550, "5.1.1", text)));
            }
            return Ok(Recipient::Postmaster);
        }
        if reverse_path.is_empty() {
            return Err(Rejection::sender(SenderError::NullSender));
        }
        let Some((local_part, domain)) = forward_path.rsplit_once('@') else {
            let text = format!("{forward_path:?} has no domain; address faxes as <number>@{first_domain}");
            return Err(Rejection::new("recipient", Reply::new(550, "5.1.3", text)));
        };
        if !self.config.is_gateway_domain(domain) {
            let text = format!("relaying to {domain} is not permitted");
            return Err(Rejection::new("relaying", Reply::new(550, "5.7.1", text)));
        }
        let number = Number::parse(local_part, self.config.gateway.default_region).map_err(|err| {
            let usage = format!("address faxes as <number>@{domain}, such as 14155552222@{domain}");
            // A name such as postmaster was never meant as a number, so the parser's
            // reason about single characters would only mislead.
            let text = if local_part.trim_start_matches('"').starts_with(|c: char| c.is_alphabetic()) {
                format!("{local_part:?} is not a fax number; {usage}")
            } else {
                format!("{local_part:?} is not a fax number ({}); {usage}", err.reason)
            };
            Rejection::new("recipient", Reply::new(550, "5.1.3", text))
        })?;
        if let Some(reason) = self.destinations.check(&number) {
            return Err(Rejection::new("destination", Reply::new(550, "5.7.1", reason)));
        }

        // The envelope already decides whether the sender may fax at all; the header
        // From and Subject are checked at the end of the message.
        let sender = rules::sender_address(reverse_path, session.auth_identity.as_deref()).map_err(Rejection::sender)?;
        let mapping = self.mappings.get(&sender).await.map_err(|err| store_unavailable(session, err))?;
        rules::authorize_envelope(mapping.as_ref(), &sender).map_err(|err| {
            info!(session_id = %session.session_id, sender = %sender, reason = %err, "sender rejected");
            Rejection::sender(err)
        })?;
        Ok(Recipient::Fax(number))
    }

    /// Returns whether `forward_path` is `<postmaster>` (which the parser leaves empty)
    /// or `postmaster@` a gateway domain, in any case.
    fn is_postmaster(&self, forward_path: &str) -> bool {
        match forward_path.rsplit_once('@') {
            None => forward_path.is_empty() || forward_path.eq_ignore_ascii_case("postmaster"),
            Some((local_part, domain)) => {
                local_part.eq_ignore_ascii_case("postmaster") && self.config.is_gateway_domain(domain)
            }
        }
    }

    /// Queues the message unchanged for `relay.postmaster`, with a `Received` field on
    /// top, and returns the email job id.
    async fn forward_to_postmaster(
        &self,
        session: &SessionInfo,
        reverse_path: &str,
        message: &[u8],
        headers: &Headers,
    ) -> Result<String, Rejection> {
        let received = received_field(&self.config.gateway.hostname, session, reverse_path);
        let mut forwarded = Vec::with_capacity(received.len() + message.len());
        forwarded.extend_from_slice(received.as_bytes());
        forwarded.extend_from_slice(message);
        let request = EmailRequest {
            kind: EmailKind::Postmaster,
            source: format!("smtp:{}:{}", session.session_id, ulid::Ulid::new()),
            reverse_path: self.config.relay.from.clone(),
            recipient: self.config.relay.postmaster.clone(),
            message_id: headers.message_id.clone().unwrap_or_default(),
            subject: headers.subject.clone().unwrap_or_default(),
        };
        let id = self.emails.enqueue(request, &forwarded).await.map_err(|err| store_unavailable(session, err))?;
        // The source is new for every message, so a job is always created.
        let id = id.unwrap_or_default();
        info!(
            session_id = %session.session_id,
            email_job_id = %id,
            reverse_path,
            message_id = headers.message_id.as_deref().unwrap_or(""),
            "message to the postmaster queued"
        );
        Ok(id)
    }

    async fn decide_message(
        &self,
        session: &SessionInfo,
        reverse_path: &str,
        recipients: &[Recipient],
        message: Vec<u8>,
    ) -> Result<Reply, Rejection> {
        let headers = Headers::read(&message);
        let numbers: Vec<Number> = recipients
            .iter()
            .filter_map(|recipient| match recipient {
                Recipient::Fax(number) => Some(number.clone()),
                Recipient::Postmaster => None,
            })
            .collect();
        if !recipients.contains(&Recipient::Postmaster) {
            return self.decide_faxes(session, reverse_path, &numbers, message, &headers).await;
        }
        // The postmaster's copy is queued first: if the faxes were queued first and the
        // copy then failed, the client's retry would send the faxes twice.
        let email_job = self.forward_to_postmaster(session, reverse_path, &message, &headers).await?;
        if numbers.is_empty() {
            return Ok(Reply::new(250, "2.0.0", format!("queued as {email_job} for the postmaster")));
        }
        self.decide_faxes(session, reverse_path, &numbers, message, &headers).await
    }

    /// Checks the headers, converts the documents and queues one fax job per number.
    async fn decide_faxes(
        &self,
        session: &SessionInfo,
        reverse_path: &str,
        numbers: &[Number],
        message: Vec<u8>,
        headers: &Headers,
    ) -> Result<Reply, Rejection> {
        if let Some(value) = headers.auto_submitted.as_deref().filter(|v| !v.eq_ignore_ascii_case("no")) {
            let text = format!("automatic messages (Auto-Submitted: {value}) are not faxed");
            return Err(Rejection::new("automatic", Reply::new(550, "5.7.1", text)));
        }
        if headers.is_report {
            let text = "delivery reports (multipart/report) are not faxed";
            return Err(Rejection::new("automatic", Reply::new(550, "5.7.1", text)));
        }

        let sender = rules::sender_address(reverse_path, session.auth_identity.as_deref()).map_err(Rejection::sender)?;
        let mapping = self.mappings.get(&sender).await.map_err(|err| store_unavailable(session, err))?;
        let check = rules::SenderCheckInput {
            envelope_sender: &sender,
            header_from: headers.from.as_deref(),
            auth_identity: session.auth_identity.as_deref(),
            subject: headers.subject.as_deref(),
            check: self.config.senders.check,
            region: self.config.gateway.default_region,
        };
        let from_number = rules::authorize_sender(mapping.as_ref(), &check).map_err(|err| {
            info!(session_id = %session.session_id, sender = %sender, reason = %err, "sender rejected");
            Rejection::sender(err)
        })?;

        let converted = documents::convert_message(message, self.limits.clone()).await.map_err(|err| {
            info!(session_id = %session.session_id, sender = %sender, reason = %err, "documents rejected");
            Rejection::new("document", err.smtp_reply())
        })?;

        let request = FaxRequest {
            session_id: session.session_id.clone(),
            message_id: headers.message_id.clone(),
            reverse_path: reverse_path.to_string(),
            sender: sender.clone(),
            from_number,
            recipients: numbers.to_vec(),
            pages: converted.pages,
        };
        let ids = self.queue.enqueue_faxes(request, &converted.pdf).await.map_err(|err| store_unavailable(session, err))?;
        info!(
            session_id = %session.session_id,
            job_ids = %ids.join(","),
            message_id = headers.message_id.as_deref().unwrap_or(""),
            pages = converted.pages,
            "message queued"
        );
        // The reply's last line stays `queued as <ids>`, and a line before it names the
        // forwarded messages that could not be read, as their documents are not faxed.
        let queued = format!("queued as {}", ids.join(","));
        let text = match converted.unread_forwarded_notice() {
            Some(notice) => format!("{notice}\n{queued}"),
            None => queued,
        };
        Ok(Reply::new(250, "2.0.0", text))
    }
}

impl Handler for Intake {
    async fn mail_from(&self, _session: &SessionInfo, reverse_path: &str) -> Result<(), Reply> {
        // Without a postmaster to take bounces, the null sender has nothing to send to.
        if reverse_path.is_empty() && self.config.relay.postmaster.is_empty() {
            return Err(count_rejection(Rejection::sender(SenderError::NullSender)));
        }
        Ok(())
    }

    async fn rcpt_to(&self, session: &SessionInfo, reverse_path: &str, forward_path: &str) -> Result<Recipient, Reply> {
        self.check_recipient(session, reverse_path, forward_path).await.map_err(count_rejection)
    }

    async fn data(&self, session: &SessionInfo, reverse_path: &str, recipients: &[Recipient], message: Vec<u8>) -> Reply {
        match self.decide_message(session, reverse_path, recipients, message).await {
            Ok(reply) => {
                metrics::smtp_message("accepted", "");
                reply
            }
            Err(rejection) => count_rejection(rejection),
        }
    }

    async fn authenticate(&self, session: &SessionInfo, username: &str, password: &str) -> Result<bool, Reply> {
        let Ok(email) = rules::normalize_email(username) else {
            return Ok(false);
        };
        let verified = self
            .mappings
            .verify_password(&email, password)
            .await
            .map_err(|err| store_unavailable(session, err).reply)?;
        if !verified {
            warn!(session_id = %session.session_id, username = %email, "authentication failed");
        }
        Ok(verified)
    }
}

/// Returns the trace field added on top of a message passed on to the postmaster, in
/// the usual `from <EHLO name> ([<IP>])` form. An EHLO name with characters that do not
/// belong in a host name or address literal is left out rather than copied into a
/// header.
fn received_field(hostname: &str, session: &SessionInfo, reverse_path: &str) -> String {
    let mut headers = lettre::message::header::Headers::new();
    headers.set(lettre::message::header::Date::now());
    let date = headers.get_raw("Date").unwrap_or_default();
    let protocol = if session.tls { "ESMTPS" } else { "ESMTP" };
    let ip = session.peer.ip();
    let helo = session
        .helo
        .as_deref()
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || ".-_[]:".contains(c)))
        .unwrap_or("unknown");
    format!(
        "Received: from {helo} ([{ip}])\r\n\tby {hostname} with {protocol} id {id}\r\n\tenvelope-from <{reverse_path}>;\r\n\t{date}\r\n",
        id = session.session_id,
    )
}

/// The header fields the decision needs.
#[derive(Debug, Default)]
struct Headers {
    /// Address of the first mailbox of `From`, lower case.
    from: Option<String>,
    subject: Option<String>,
    message_id: Option<String>,
    auto_submitted: Option<String>,
    /// Whether the top-level type is `multipart/report` (a bounce or receipt).
    is_report: bool,
}

impl Headers {
    fn read(message: &[u8]) -> Headers {
        let Some(parsed) = mail_parser::MessageParser::new().parse_headers(message) else {
            return Headers::default();
        };
        let is_report = parsed.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("multipart") && ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("report"))
        });
        Headers {
            from: parsed
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .map(|a| a.trim().to_ascii_lowercase()),
            subject: parsed.subject().map(str::to_string),
            message_id: parsed.message_id().map(str::to_string),
            auto_submitted: parsed.header_raw("Auto-Submitted").map(|v| v.trim().to_string()),
            is_report,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read() {
        let message = b"From: Alice <Alice@Example.com>\r\nSubject: +14155550100\r\nMessage-ID: <m1@example.com>\r\nAuto-Submitted: auto-replied\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\nbody";
        let headers = Headers::read(message);
        assert_eq!(headers.from.as_deref(), Some("alice@example.com"));
        assert_eq!(headers.subject.as_deref(), Some("+14155550100"));
        assert_eq!(headers.message_id.as_deref(), Some("m1@example.com"));
        assert_eq!(headers.auto_submitted.as_deref(), Some("auto-replied"));
        assert!(headers.is_report);
    }

    #[test]
    fn plain_message_is_not_a_report() {
        let headers = Headers::read(b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n");
        assert!(!headers.is_report);
        assert!(headers.auto_submitted.is_none());
    }
}
