//! The document pipeline: finds the documents in an email and merges them into one
//! fax-ready PDF.
//!
//! [`convert_message`] is what the SMTP intake calls: it runs [`message_to_pdf`] on a
//! bounded pool of blocking threads. [`files_to_pdf`] serves `faxgate convert` for files
//! given directly. A message is faxed whole or not at all: the first document that
//! cannot be faxed rejects the message, and the error names it.
//!
//! Stages: `mime` walks the MIME tree (with `filename` for names and `uuencode`
//! for files inside text bodies). `tnef` and `msg` replace `winmail.dat` and Outlook
//! `.msg` files by their attachments. Then `kind` detects each document's kind and
//! dispatches it to a converter: `pdf`, `tiff`, `image`, `text`, or `office`. The `pdf`
//! converter uses `flatten` for filled-in forms and `pagefit` to fit its pages to the
//! portrait paper. `office` runs LibreOffice, with `html` to sanitize HTML attachments,
//! and its PDF goes through `pdf`. Last, `merge` joins the pages.

mod error;
mod filename;
mod flatten;
mod html;
mod image;
mod kind;
mod limits;
mod merge;
mod mime;
mod msg;
pub mod office;
mod pagefit;
mod pdf;
mod pool;
mod text;
mod tiff;
mod tnef;
mod uuencode;

use std::panic::{AssertUnwindSafe, catch_unwind};

use mail_parser::MessageParser;
use tracing::{debug, error, info};

pub use error::DocumentError;
pub use limits::{DEFAULT_MAX_MESSAGE_PIXELS, Limits};
pub use pool::convert_message;

use crate::config::BodyMode;
use kind::{Kind, Refusal};
use limits::PixelBudget;
use mime::{Attachment, Item};

/// Name reported for the text/HTML body parts of a message.
pub const BODY_NAME: &str = "(message body)";

/// The merged fax document and what became of each part.
#[derive(Debug, Clone)]
pub struct Converted {
    pub pdf: Vec<u8>,
    pub pages: u32,
    /// Every part in MIME order (or every file in the given order), faxed or skipped.
    pub parts: Vec<PartReport>,
}

/// The outcome for one part of a message or one given file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartReport {
    /// The decoded file name, `attachment-N` for the N-th leaf part without one, or
    /// [`BODY_NAME`] for the message body.
    pub name: String,
    /// The detected MIME type, such as `application/pdf`.
    pub detected: String,
    pub outcome: PartOutcome,
}

/// The decision about one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartOutcome {
    Faxed { pages: u32 },
    /// Left out of the fax without rejecting the message, such as a signature.
    Skipped { reason: String },
    /// Not produced yet: a part that cannot be faxed ends the conversion with
    /// [`DocumentError::Rejected`] instead.
    Rejected { reason: String },
}

impl PartReport {
    /// Returns whether this report is for the text/HTML body rather than an attachment.
    pub fn is_body(&self) -> bool {
        self.name == BODY_NAME
    }

    /// Returns whether this part is a forwarded message that was skipped because it
    /// cannot be read, so any documents inside it are missing from the fax.
    pub fn is_unread_forwarded_message(&self) -> bool {
        self.detected == Kind::Message.mime_type() && matches!(self.outcome, PartOutcome::Skipped { .. })
    }
}

impl Converted {
    /// Returns a line for the SMTP reply that accepts this message, naming the forwarded
    /// messages that were skipped because they cannot be read. `None` when there are
    /// none. The line is printable ASCII.
    pub fn unread_forwarded_notice(&self) -> Option<String> {
        error::unread_forwarded_text(&self.parts)
    }
}

/// Converts the documents in a raw RFC 5322 message into one PDF. Synchronous and
/// CPU-bound: async callers use [`convert_message`].
pub fn message_to_pdf(message: &[u8], limits: &Limits) -> Result<Converted, DocumentError> {
    #[cfg(test)]
    if message == tests::MESSAGE_PANIC_TRIGGER {
        panic!("message panic triggered by a test");
    }

    let Some(parsed) = MessageParser::default().parse(message) else {
        debug!("message has no header section");
        return Err(DocumentError::NoDocument { skipped: Vec::new() });
    };
    let mut items = tnef::expand(mime::extract(&parsed, limits)?, limits)?;
    if limits.body == BodyMode::Cover {
        text::add_cover(&parsed, &mut items);
    }
    convert_items(items, limits)
}

/// Converts files given by name and content, in order, into one PDF; the preview of
/// `faxgate convert`. The kind comes from the content and the name's extension.
/// Signatures, vCards and calendars are skipped as in a message; `min_image_pixels` does
/// not apply.
pub fn files_to_pdf(files: &[(String, Vec<u8>)], limits: &Limits) -> Result<Converted, DocumentError> {
    let items = files
        .iter()
        .map(|(name, data)| {
            let kind = kind::detect(data, None, Some(name));
            match kind.skip_reason() {
                Some(reason) => Item::Skipped(PartReport {
                    name: name.clone(),
                    detected: kind.mime_type().to_string(),
                    outcome: PartOutcome::Skipped { reason: reason.to_string() },
                }),
                None => Item::Document(Attachment {
                    name: name.clone(),
                    data: data.as_slice().into(),
                    kind,
                    damaged_encoding: false,
                }),
            }
        })
        .collect();
    let items = tnef::expand(items, limits)?;
    convert_items(items, limits)
}

/// Converts the documents among `items` in order and merges them.
fn convert_items(items: Vec<Item<'_>>, limits: &Limits) -> Result<Converted, DocumentError> {
    let mut reports = Vec::with_capacity(items.len());
    let mut documents = Vec::new();
    let mut total_pages: u32 = 0;
    let mut total_bytes: usize = 0;
    let pixels = PixelBudget::new(limits.max_message_pixels);

    for item in items {
        let attachment = match item {
            Item::Skipped(report) => {
                reports.push(report);
                continue;
            }
            Item::Document(attachment) => attachment,
        };
        let rejected = |reason: String| DocumentError::Rejected { file: attachment.name.clone(), reason };

        if attachment.data.is_empty() {
            return Err(rejected("the file is empty".to_string()));
        }
        total_bytes = total_bytes.saturating_add(attachment.data.len());
        if total_bytes > limits.max_total_bytes {
            return Err(rejected(format!(
                "the documents together are larger than the maximum of {} bytes",
                limits.max_total_bytes
            )));
        }

        let page_budget = limits.max_pages.saturating_sub(total_pages);
        let converted = catch_unwind(AssertUnwindSafe(|| {
            kind::convert(attachment.kind, &attachment.data, limits, page_budget, &pixels)
        }));
        let pages = match converted {
            Ok(Ok(pages)) => pages,
            Ok(Err(Refusal::Rejected(reason))) => {
                let reason = if attachment.damaged_encoding {
                    format!("{reason} (its transfer encoding is damaged)")
                } else {
                    reason
                };
                info!(name = %attachment.name, reason = %reason, "document rejected");
                return Err(rejected(reason));
            }
            Ok(Err(Refusal::Busy)) => {
                info!(name = %attachment.name, "converter busy; message deferred");
                return Err(DocumentError::Busy);
            }
            Ok(Err(Refusal::TooManyPages { pages })) => {
                return Err(DocumentError::TooManyPages {
                    pages: total_pages.saturating_add(pages),
                    max: limits.max_pages,
                });
            }
            Err(panic) => {
                error!(name = %attachment.name, panic = %panic_message(&*panic), "conversion panicked");
                return Err(rejected("an internal error occurred while converting it".to_string()));
            }
        };

        let page_count = pages.pages.len() as u32;
        total_pages += page_count;
        reports.push(PartReport {
            name: attachment.name,
            detected: attachment.kind.mime_type().to_string(),
            outcome: PartOutcome::Faxed { pages: page_count },
        });
        documents.push(pages);
    }

    if documents.is_empty() {
        return Err(DocumentError::NoDocument { skipped: reports });
    }
    let merged = catch_unwind(AssertUnwindSafe(|| merge::merge(documents)))
        .map_err(|panic| DocumentError::Internal(format!("merge panicked: {}", panic_message(&*panic))))?
        .map_err(|error| DocumentError::Internal(format!("writing the merged PDF failed: {error}")))?;
    debug!(pages = merged.pages, bytes = merged.pdf.len(), "documents merged");
    Ok(Converted { pdf: merged.pdf, pages: merged.pages, parts: reports })
}

/// Returns the text of a panic payload, which is a `&str` or a `String` for panics
/// raised with a message.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        return (*text).to_string();
    }
    if let Some(text) = payload.downcast_ref::<String>() {
        return text.clone();
    }
    "panic without a message".to_string()
}

#[cfg(test)]
mod realworld_tests;
#[cfg(test)]
mod tests;
