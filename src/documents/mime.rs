//! Finding the documents in an email. A depth-first walk of the MIME tree in MIME order
//! opens multiparts, forwarded messages and the signed part of `multipart/signed`. It
//! decides for each leaf part whether it is a document, skipped or rejected.
//!
//! Not documents: the text/HTML body, images the HTML body references by `cid:`, images
//! below `min_image_pixels`, signatures, vCards, calendars and parts that are neither
//! attachments nor named nor of a document type.

use std::borrow::Cow;
use std::collections::HashSet;

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};
use tracing::{debug, warn};

use super::filename::file_name;
use super::kind::{self, Kind};
use super::{text, uuencode};
use super::{BODY_NAME, DocumentError, Limits, PartOutcome, PartReport};

/// One part of the message in MIME order: a document to convert, or a part left out.
pub(crate) enum Item<'m> {
    Document(Attachment<'m>),
    Skipped(PartReport),
}

/// A part taken as a document.
pub(crate) struct Attachment<'m> {
    /// The decoded file name, or `attachment-N` for the N-th leaf part without one.
    pub(crate) name: String,
    pub(crate) data: Cow<'m, [u8]>,
    pub(crate) kind: Kind,
    /// Whether the transfer encoding was damaged (base64 that mail-parser could not
    /// decode, or a uuencoded file cut short), so `data` may be incomplete.
    pub(crate) damaged_encoding: bool,
}

/// Walks the message and returns its parts in MIME order. Fails when the message passes
/// the part or depth limits, or is encrypted as a whole.
pub(crate) fn extract<'m>(message: &'m Message<'m>, limits: &Limits) -> Result<Vec<Item<'m>>, DocumentError> {
    let mut walk = Walk { limits, parts_seen: 0, leaves_seen: 0, items: Vec::new() };
    walk.message(message, 0)?;
    Ok(walk.items)
}

struct Walk<'l, 'm> {
    limits: &'l Limits,
    parts_seen: usize,
    leaves_seen: usize,
    items: Vec<Item<'m>>,
}

impl<'m> Walk<'_, 'm> {
    fn message(&mut self, message: &'m Message<'m>, depth: usize) -> Result<(), DocumentError> {
        if message.parts.is_empty() {
            return Ok(());
        }
        let referenced = referenced_content_ids(message);
        self.part(message, 0, depth, &referenced)
    }

    fn part(
        &mut self,
        message: &'m Message<'m>,
        part_id: u32,
        depth: usize,
        referenced: &HashSet<String>,
    ) -> Result<(), DocumentError> {
        self.parts_seen += 1;
        if self.parts_seen > self.limits.max_parts {
            return Err(message_rejected(format!("it has more than {} MIME parts", self.limits.max_parts)));
        }
        if depth > self.limits.max_depth {
            return Err(message_rejected(format!(
                "its MIME parts are nested more than {} levels deep",
                self.limits.max_depth
            )));
        }
        let Some(part) = message.parts.get(part_id as usize) else {
            return Ok(());
        };

        match &part.body {
            PartType::Multipart(children) => self.multipart(message, part, children, depth, referenced),
            PartType::Message(nested) => {
                if !is_unreadable(nested) {
                    return self.message(nested, depth + 1);
                }
                self.unreadable_message(message, part);
                // mail-parser may have read the parts after the damaged start, such as the
                // next attachment, into the nested message. Those parts are still walked.
                if has_header_fields(nested) {
                    return self.message(nested, depth + 1);
                }
                Ok(())
            }
            _ => {
                self.leaf(message, part, referenced);
                Ok(())
            }
        }
    }

    fn multipart(
        &mut self,
        message: &'m Message<'m>,
        part: &'m MessagePart<'m>,
        children: &[u32],
        depth: usize,
        referenced: &HashSet<String>,
    ) -> Result<(), DocumentError> {
        let subtype = part
            .content_type()
            .and_then(|content_type| content_type.subtype())
            .unwrap_or("mixed")
            .to_ascii_lowercase();
        match subtype.as_str() {
            "encrypted" => Err(message_rejected(
                "it is encrypted; send it unencrypted".to_string(),
            )),
            // The first part is the signed content; the others are the signature.
            "signed" => {
                let Some((&content, signatures)) = children.split_first() else {
                    return Ok(());
                };
                self.part(message, content, depth + 1, referenced)?;
                for &signature in signatures {
                    self.parts_seen += 1;
                    if let Some(part) = message.parts.get(signature as usize) {
                        self.leaves_seen += 1;
                        let name =
                            file_name(message, part).unwrap_or_else(|| format!("attachment-{}", self.leaves_seen));
                        let detected = declared_type(part).unwrap_or_else(|| Kind::Signature.mime_type().to_string());
                        self.skip(name, detected, "signature".to_string());
                    }
                }
                Ok(())
            }
            _ => {
                for &child in children {
                    self.part(message, child, depth + 1, referenced)?;
                }
                Ok(())
            }
        }
    }

    fn leaf(&mut self, message: &Message<'_>, part: &'m MessagePart<'m>, referenced: &HashSet<String>) {
        self.leaves_seen += 1;
        let declared = declared_type(part);
        let name = file_name(message, part);
        let is_attachment = part.content_disposition().is_some_and(|disposition| disposition.is_attachment());

        if name.is_none() && !is_attachment && is_body_type(declared.as_deref()) {
            // With `documents.body = "cover"` the body text is added as a cover page after
            // the walk, so the parts are reported as skipped here in either mode.
            let detected = declared.unwrap_or_else(|| "text/plain".to_string());
            self.skip(BODY_NAME.to_string(), detected, "message body".to_string());
            if let PartType::Text(text) = &part.body {
                self.uuencoded_files(text);
            }
            return;
        }

        let (data, damaged_encoding) = part_data(part);
        let kind = kind::detect(&data, declared.as_deref(), name.as_deref());
        if kind.is_image() && part.content_id().is_some_and(|id| referenced.contains(&normalize_content_id(id))) {
            let name = name.unwrap_or_else(|| format!("attachment-{}", self.leaves_seen));
            self.skip(name, kind.mime_type().to_string(), "image referenced by the HTML body".to_string());
            return;
        }
        let is_named = name.is_some();
        let name = name.unwrap_or_else(|| format!("attachment-{}", self.leaves_seen));
        if kind == Kind::Unknown && !is_named && !is_attachment {
            self.skip(name, kind.mime_type().to_string(), "inline part that is not a document".to_string());
            return;
        }
        self.document(Attachment { name, data, kind, damaged_encoding });
    }

    /// Reports a forwarded message that does not start with a header section. It is
    /// skipped like a `message/rfc822` part that mail-parser could not parse at all, so
    /// the reply names it either way.
    fn unreadable_message(&mut self, message: &Message<'_>, part: &'m MessagePart<'m>) {
        self.leaves_seen += 1;
        let name = file_name(message, part).unwrap_or_else(|| format!("attachment-{}", self.leaves_seen));
        warn!(name = %name, "forwarded message does not start with a header section; skipped");
        let reason = Kind::Message.skip_reason().unwrap_or("forwarded message that cannot be read");
        self.skip(name, Kind::Message.mime_type().to_string(), reason.to_string());
    }

    /// Takes the uuencoded files in a plain-text body as documents, in order.
    fn uuencoded_files(&mut self, text: &str) {
        for block in uuencode::find_blocks(text) {
            if !block.complete {
                warn!(bytes = block.data.len(), "uuencoded file in the body ends without an end line");
            }
            let kind = kind::detect(&block.data, None, Some(&block.name));
            self.document(Attachment {
                name: block.name,
                data: Cow::Owned(block.data),
                kind,
                damaged_encoding: !block.complete,
            });
        }
    }

    /// Adds a document, unless its kind is never faxed or it is an image below the pixel
    /// minimum.
    fn document(&mut self, attachment: Attachment<'m>) {
        let detected = attachment.kind.mime_type().to_string();
        if let Some(reason) = attachment.kind.skip_reason() {
            self.skip(attachment.name, detected, reason.to_string());
            return;
        }
        if attachment.kind == Kind::Text && text::is_blank(&attachment.data) {
            self.skip(attachment.name, detected, "text without visible characters".to_string());
            return;
        }
        if let Some((width, height)) = kind::image_dimensions(attachment.kind, &attachment.data)
            && u64::from(width) * u64::from(height) < self.limits.min_image_pixels
        {
            let reason = format!(
                "image of {width}x{height} pixels, below the minimum of {} pixels",
                self.limits.min_image_pixels
            );
            self.skip(attachment.name, detected, reason);
            return;
        }

        debug!(name = %attachment.name, detected = %detected, bytes = attachment.data.len(), "document found");
        self.items.push(Item::Document(attachment));
    }

    fn skip(&mut self, name: String, detected: String, reason: String) {
        debug!(name = %name, detected = %detected, reason = %reason, "part skipped");
        self.items.push(Item::Skipped(PartReport { name, detected, outcome: PartOutcome::Skipped { reason } }));
    }
}

/// Returns whether a forwarded message does not start with a header field, so its
/// content is not a message.
///
/// mail-parser 0.11 returns such a `message/rfc822` part in one of three ways, depending
/// on the bytes around it. It can be a text part, or a nested message without header
/// fields, which an extra CR LF after the closing boundary gives (some SMTP clients send
/// one). It can also be a nested message that took the header fields of the next part.
/// The last two are checked here on the raw content where the nested header section
/// starts.
fn is_unreadable(nested: &Message<'_>) -> bool {
    let Some(root) = nested.parts.first() else {
        return true;
    };
    let content = nested.raw_message.get(root.offset_header as usize..).unwrap_or_default();
    !has_header_fields(nested) || !starts_with_header_field(content)
}

fn has_header_fields(nested: &Message<'_>) -> bool {
    nested.parts.first().is_some_and(|root| !root.headers.is_empty())
}

/// Returns whether the first line is a header field (a name of printable ASCII without
/// a colon, then a colon) or the `From ` line of an mbox file.
fn starts_with_header_field(content: &[u8]) -> bool {
    let line_end = content.iter().position(|&byte| byte == b'\n').unwrap_or(content.len());
    let line = &content[..line_end];
    if line.starts_with(b"From ") {
        return true;
    }
    let Some(colon) = line.iter().position(|&byte| byte == b':') else {
        return false;
    };
    // The obsolete syntax of RFC 5322 allows white space between the name and the colon.
    let name = line[..colon].trim_ascii_end();
    !name.is_empty() && name.iter().all(|&byte| (33..=126).contains(&byte))
}

fn message_rejected(reason: String) -> DocumentError {
    DocumentError::Rejected { file: String::new(), reason }
}

/// Returns the declared MIME type as sent, lower case, without parameters. An invalid
/// type without a slash is returned as is, so detection can ignore it.
fn declared_type(part: &MessagePart<'_>) -> Option<String> {
    let content_type = part.content_type()?;
    let essence = match content_type.subtype() {
        Some(subtype) => format!("{}/{}", content_type.ctype(), subtype),
        None => content_type.ctype().to_string(),
    };
    Some(essence.to_ascii_lowercase())
}

/// Returns whether an unnamed inline part of this declared type is message text. A
/// multipart without a boundary is read as one text part.
fn is_body_type(declared: Option<&str>) -> bool {
    let Some(declared) = declared else {
        return true;
    };
    let top = declared.split('/').next().unwrap_or("");
    let special = matches!(kind::from_mime_type(declared), Some(Kind::VCard | Kind::Calendar));
    (top == "text" || top == "multipart") && !special
}

/// Returns the decoded content of a leaf part and whether its encoding was damaged. When
/// mail-parser cannot decode the base64 of a part, it keeps the encoded text, which is
/// decoded here leniently.
fn part_data<'m>(part: &'m MessagePart<'m>) -> (Cow<'m, [u8]>, bool) {
    // NOTE: mail-parser converts text/* parts from their charset to UTF-8, so a binary
    // file declared as text/* with a non-UTF-8 charset arrives altered.
    let contents = part.contents();
    let is_base64 = part
        .content_transfer_encoding()
        .is_some_and(|encoding| encoding.trim().eq_ignore_ascii_case("base64"));
    if part.is_encoding_problem && is_base64 {
        warn!(bytes = contents.len(), "damaged base64 in a part; decoding it leniently");
        return (Cow::Owned(decode_base64_leniently(contents)), true);
    }
    (Cow::Borrowed(contents), false)
}

/// Decodes base64 while skipping every character outside the alphabet, `=` included,
/// and dropping a dangling last character, as MIME readers such as enmime do for
/// damaged attachments. Non-zero padding bits are accepted.
pub(crate) fn decode_base64_leniently(encoded: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(encoded.len() / 4 * 3);
    let mut quantum: u32 = 0;
    let mut count = 0;
    for &byte in encoded {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        quantum = (quantum << 6) | u32::from(value);
        count += 1;
        if count == 4 {
            decoded.extend_from_slice(&quantum.to_be_bytes()[1..]);
            quantum = 0;
            count = 0;
        }
    }
    match count {
        2 => decoded.push((quantum >> 4) as u8),
        3 => decoded.extend_from_slice(&[(quantum >> 10) as u8, (quantum >> 2) as u8]),
        _ => {}
    }
    decoded
}

/// Collects the content IDs that the HTML bodies of this message (not of messages
/// nested in it) reference with `cid:` URLs, normalized for comparison.
fn referenced_content_ids(message: &Message<'_>) -> HashSet<String> {
    let mut referenced = HashSet::new();
    for part in &message.parts {
        let PartType::Html(html) = &part.body else {
            continue;
        };
        let lower = html.to_ascii_lowercase();
        let mut rest = lower.as_str();
        while let Some(at) = rest.find("cid:") {
            rest = &rest[at + 4..];
            let end = rest
                .find(['"', '\'', '<', '>', ')', ' ', '\t', '\r', '\n'])
                .unwrap_or(rest.len());
            referenced.insert(normalize_content_id(&percent_decode(&rest[..end])));
            rest = &rest[end..];
        }
    }
    referenced
}

/// Content IDs compare without angle brackets and case-insensitively.
fn normalize_content_id(id: &str) -> String {
    id.trim().trim_start_matches('<').trim_end_matches('>').to_ascii_lowercase()
}

/// Decodes `%XX` escapes, which a `cid:` URL uses for characters not allowed in URLs
/// (RFC 2392).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%'
            && let Some(hex) = text.get(at + 1..at + 3)
            && let Ok(value) = u8::from_str_radix(hex, 16)
        {
            decoded.push(value);
            at += 3;
            continue;
        }
        decoded.push(bytes[at]);
        at += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_base64_skips_invalid_characters() {
        assert_eq!(decode_base64_leniently(b"PGh0*bWw+Cg=="), b"<html>\n");
        assert_eq!(decode_base64_leniently(b"SGVsbG8gV29ybGQhA"), b"Hello World!");
        assert_eq!(decode_base64_leniently(b"SGk\r\n=\r\n"), b"Hi");
    }

    #[test]
    fn cid_references_found_in_html() {
        let raw = b"Content-Type: multipart/related; boundary=b\r\n\r\n--b\r\n\
            Content-Type: text/html\r\n\r\n<img src=\"CID:Logo%40x\"><img src='cid:two@x'>\r\n--b--\r\n";
        let message = mail_parser::MessageParser::default().parse(raw).unwrap();
        let referenced = referenced_content_ids(&message);
        assert!(referenced.contains("logo@x"), "{referenced:?}");
        assert!(referenced.contains("two@x"), "{referenced:?}");
    }

    #[test]
    fn header_field_lines_recognized() {
        assert!(starts_with_header_field(b"From: a@example.com\r\nSubject: x\r\n"));
        assert!(starts_with_header_field(b"Subject : obsolete spacing\r\n"));
        assert!(starts_with_header_field(b"From alice@example.com Sat Dec  5 00:00:00 2026\n"));
        assert!(!starts_with_header_field(b"this attachment is not a valid eml, sorry!\r\n"));
        assert!(!starts_with_header_field(b"\r\nbody without header fields\r\n"));
        assert!(!starts_with_header_field(b": no name\r\n"));
        assert!(!starts_with_header_field(b""));
    }

    #[test]
    fn body_types() {
        assert!(is_body_type(None));
        assert!(is_body_type(Some("text/plain")));
        assert!(is_body_type(Some("text/html")));
        assert!(is_body_type(Some("multipart/report")));
        assert!(!is_body_type(Some("text/calendar")));
        assert!(!is_body_type(Some("application/pdf")));
    }
}
