//! The reasons a message cannot be faxed, and the SMTP reply that reports each one to
//! the sender.

use crate::smtp::Reply;

use super::{PartOutcome, PartReport};

/// Maximum skipped parts named in the reply to a message without a faxable document.
const MAX_SKIPPED_NAMED: usize = 3;

/// Maximum characters of a file name in a reply.
const MAX_NAME_CHARS: usize = 60;

/// Maximum characters of a reply text, so that the reply stays within the 512-octet SMTP
/// reply line (RFC 5321 section 4.5.3.1.5) with room for the codes.
const MAX_REPLY_CHARS: usize = 400;

/// A failure of the document pipeline. Its `Display` text is the reason given to the
/// sender, both in the SMTP reply and on stderr of `faxgate convert`.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The message contains nothing to fax. `skipped` lists every part and why it was
    /// not faxed, message bodies included.
    #[error("{}", no_document_text(skipped))]
    NoDocument { skipped: Vec<PartReport> },

    /// A document cannot be faxed, so the whole message is rejected. `file` is the name
    /// of the document, or empty when the reason concerns the whole message (such as
    /// too many MIME parts).
    #[error("{}", rejected_text(file, reason))]
    Rejected { file: String, reason: String },

    /// The documents together have more than `max` pages. `pages` counts the pages
    /// found up to the document that passed the limit.
    #[error("the documents have {pages} pages, more than the maximum of {max} pages per fax")]
    TooManyPages { pages: u32, max: u32 },

    /// No conversion worker became free in time, or the conversion timed out. A retry
    /// later can succeed.
    #[error("document conversion is busy; try again later")]
    Busy,

    /// A bug: a panic outside any single document, or a failure to write the merged
    /// PDF. The detail goes to the log, and the reply carries a generic text.
    #[error("internal error while converting the documents: {0}")]
    Internal(String),
}

impl DocumentError {
    /// Returns the SMTP reply to the end of DATA for this failure. The text names the
    /// file and the reason, reduced to printable ASCII because a reply line may carry
    /// nothing else without SMTPUTF8.
    pub fn smtp_reply(&self) -> Reply {
        match self {
            DocumentError::NoDocument { .. } => Reply::new(554, "5.6.0", reply_text(&self.to_string())),
            DocumentError::Rejected { .. } => Reply::new(550, "5.6.1", reply_text(&self.to_string())),
            // 552 5.3.4 is the reply for a message over a size limit, which a page cap is.
            DocumentError::TooManyPages { .. } => Reply::new(552, "5.3.4", reply_text(&self.to_string())),
            DocumentError::Busy => Reply::new(451, "4.3.0", reply_text(&self.to_string())),
            // A temporary reply, so a message that hit a bug is retried after a fix
            // instead of bounced; the detail stays in the log.
            DocumentError::Internal(_) => Reply::new(
                451,
                "4.3.0",
                "internal error while converting the documents; try again later",
            ),
        }
    }
}

/// Builds the text for a message without a faxable document, naming the attachments
/// that were skipped. Message bodies are left out because the sender wrote them.
fn no_document_text(skipped: &[PartReport]) -> String {
    let mut text = String::from("no faxable document in the message; attach a PDF");
    let named: Vec<String> = skipped
        .iter()
        .filter_map(|part| match &part.outcome {
            PartOutcome::Skipped { reason } if !part.is_body() => {
                Some(format!("{} ({})", short_name(&part.name), reason))
            }
            _ => None,
        })
        .collect();
    if named.is_empty() {
        return text;
    }

    text.push_str("; skipped: ");
    text.push_str(&named.iter().take(MAX_SKIPPED_NAMED).cloned().collect::<Vec<_>>().join(", "));
    if named.len() > MAX_SKIPPED_NAMED {
        text.push_str(&format!(" and {} more", named.len() - MAX_SKIPPED_NAMED));
    }
    text
}

/// Builds the line that an accepting SMTP reply adds for forwarded messages that were
/// skipped because they cannot be read, or `None` when there are none. Such a message
/// may have contained documents that the fax now lacks, so the reply names it.
pub(super) fn unread_forwarded_text(parts: &[PartReport]) -> Option<String> {
    let named: Vec<String> = parts
        .iter()
        .filter(|part| part.is_unread_forwarded_message())
        .map(|part| short_name(&part.name))
        .collect();
    if named.is_empty() {
        return None;
    }

    let mut text = String::from("not faxed, forwarded message that cannot be read: ");
    text.push_str(&named.iter().take(MAX_SKIPPED_NAMED).cloned().collect::<Vec<_>>().join(", "));
    if named.len() > MAX_SKIPPED_NAMED {
        text.push_str(&format!(" and {} more", named.len() - MAX_SKIPPED_NAMED));
    }
    text.push_str(". Attach the documents directly");
    Some(reply_text(&text))
}

fn rejected_text(file: &str, reason: &str) -> String {
    if file.is_empty() {
        format!("cannot fax the message: {reason}")
    } else {
        format!("cannot fax {}: {reason}", short_name(file))
    }
}

fn short_name(name: &str) -> String {
    if name.chars().count() <= MAX_NAME_CHARS {
        return name.to_string();
    }
    let mut short: String = name.chars().take(MAX_NAME_CHARS - 3).collect();
    short.push_str("...");
    short
}

/// Reduces `text` to printable ASCII, other characters becoming `?`, and to at most
/// [`MAX_REPLY_CHARS`] characters.
fn reply_text(text: &str) -> String {
    let ascii: String = text.chars().map(|c| if c == ' ' || c.is_ascii_graphic() { c } else { '?' }).collect();
    if ascii.len() <= MAX_REPLY_CHARS {
        return ascii;
    }
    format!("{}...", &ascii[..MAX_REPLY_CHARS - 3])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skipped(name: &str, detected: &str, reason: &str) -> PartReport {
        PartReport {
            name: name.to_string(),
            detected: detected.to_string(),
            outcome: PartOutcome::Skipped { reason: reason.to_string() },
        }
    }

    #[test]
    fn no_document_reply_lists_skipped_attachments() {
        let error = DocumentError::NoDocument {
            skipped: vec![
                skipped(super::super::BODY_NAME, "text/plain", "message body"),
                skipped("logo.png", "image/png", "image referenced by the HTML body"),
                skipped("card.vcf", "text/vcard", "vCard"),
            ],
        };
        let reply = error.smtp_reply();
        assert_eq!(reply.code, 554);
        assert_eq!(reply.status, "5.6.0");
        assert_eq!(
            reply.text,
            "no faxable document in the message; attach a PDF; skipped: \
             logo.png (image referenced by the HTML body), card.vcf (vCard)"
        );
    }

    #[test]
    fn no_document_reply_without_attachments() {
        let error = DocumentError::NoDocument { skipped: vec![] };
        assert_eq!(error.smtp_reply().text, "no faxable document in the message; attach a PDF");
    }

    #[test]
    fn rejected_reply_names_file_in_ascii() {
        let error = DocumentError::Rejected {
            file: "Zeugnis März\r\n.pdf".to_string(),
            reason: "the PDF is password-protected".to_string(),
        };
        let reply = error.smtp_reply();
        assert_eq!(reply.code, 550);
        assert_eq!(reply.status, "5.6.1");
        assert_eq!(reply.text, "cannot fax Zeugnis M?rz??.pdf: the PDF is password-protected");
    }

    #[test]
    fn rejected_reply_for_whole_message() {
        let error = DocumentError::Rejected {
            file: String::new(),
            reason: "it has more than 500 MIME parts".to_string(),
        };
        assert_eq!(error.smtp_reply().text, "cannot fax the message: it has more than 500 MIME parts");
    }

    #[test]
    fn other_replies_have_their_codes() {
        let pages = DocumentError::TooManyPages { pages: 250, max: 200 }.smtp_reply();
        assert_eq!((pages.code, pages.status.as_str()), (552, "5.3.4"));
        assert_eq!(pages.text, "the documents have 250 pages, more than the maximum of 200 pages per fax");

        let busy = DocumentError::Busy.smtp_reply();
        assert_eq!((busy.code, busy.status.as_str()), (451, "4.3.0"));

        let internal = DocumentError::Internal("index out of bounds".to_string()).smtp_reply();
        assert_eq!((internal.code, internal.status.as_str()), (451, "4.3.0"));
        assert!(!internal.text.contains("index"), "internal detail leaked: {}", internal.text);
    }

    #[test]
    fn long_skipped_list_fits_reply_line() {
        let long_reason = "image of 10000x3 pixels, below the minimum of 40000 pixels";
        let skipped = (0..20).map(|n| skipped(&format!("{n}{}", "y".repeat(200)), "image/png", long_reason)).collect();
        let reply = DocumentError::NoDocument { skipped }.smtp_reply();

        assert!(reply.to_string().len() <= 510, "reply is {} octets", reply.to_string().len());
        assert!(reply.text.ends_with("..."), "{}", reply.text);
    }

    #[test]
    fn long_names_are_shortened() {
        let error = DocumentError::Rejected { file: "x".repeat(300), reason: "damaged".to_string() };
        let text = error.smtp_reply().text;
        assert!(text.len() < 120, "reply too long: {} characters", text.len());
        assert!(text.contains("xxx...: damaged"));
    }
}
