//! Pieces shared by the emails faxgate writes: `Message-ID`s, the `Auto-Submitted`
//! header, the envelope sender and the PDF attachment.

use lettre::message::SinglePart;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};

/// The `Auto-Submitted` header of RFC 3834, which requests that mail systems do not
/// reply to the message automatically.
#[derive(Debug, Clone)]
pub struct AutoSubmitted(pub String);

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted(s.trim().to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// Returns a new `Message-ID` value without angle brackets: a ULID at `hostname`.
pub fn new_message_id(hostname: &str) -> String {
    format!("{}@{}", ulid::Ulid::new(), hostname)
}

/// Puts a stored Message-ID (kept without brackets) into angle brackets for
/// `In-Reply-To` and `References`.
pub fn bracketed(message_id: &str) -> String {
    let bare = message_id.trim().trim_start_matches('<').trim_end_matches('>');
    format!("<{bare}>")
}

/// Maximum number of id characters kept in the attachment's file name, so that the
/// name always fits a plain quoted `filename` parameter on one header line.
const MAX_NAME_ID_CHARS: usize = 64;

/// Returns `fax-<id>.pdf`, with every character of the id other than ASCII letters,
/// digits, `-` and `_` replaced by `_` and the id cut to [`MAX_NAME_ID_CHARS`].
pub fn attachment_name(id: &str) -> String {
    let id: String = id
        .chars()
        .take(MAX_NAME_ID_CHARS)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    format!("fax-{id}.pdf")
}

/// Builds the PDF part with the file name as a plain quoted `filename` and a `name`
/// parameter on the Content-Type, the forms that mail readers decode most widely.
/// lettre's own attachment writes a name longer than about 30 characters, as every
/// Sinch fax id makes it, as an RFC 2231 continuation (`filename*0=`) and sets no
/// `name`. `file_name` must be ASCII without quotes or backslashes, as
/// [`attachment_name`] makes it.
pub fn pdf_attachment(file_name: &str, pdf: &[u8]) -> Result<SinglePart, String> {
    let content_type =
        ContentType::parse(&format!("application/pdf; name=\"{file_name}\"")).map_err(|err| err.to_string())?;
    Ok(SinglePart::builder()
        .header(content_type)
        .header(AttachmentDisposition(file_name.to_string()))
        .body(pdf.to_vec()))
}

/// A `Content-Disposition: attachment` header with a plain quoted file name, folded
/// after the `;` so the line stays short. The name must be ASCII without quotes or
/// backslashes.
#[derive(Debug, Clone)]
struct AttachmentDisposition(String);

impl Header for AttachmentDisposition {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Disposition")
    }

    fn parse(text: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let name = text
            .split_once("filename=\"")
            .and_then(|(_, rest)| rest.strip_suffix('"'))
            .ok_or("expected attachment; filename=\"NAME\"")?;
        Ok(AttachmentDisposition(name.to_string()))
    }

    fn display(&self) -> HeaderValue {
        let raw = format!("attachment; filename=\"{}\"", self.0);
        let encoded = format!("attachment;\r\n filename=\"{}\"", self.0);
        HeaderValue::dangerous_new_pre_encoded(Self::name(), raw, encoded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(part: &SinglePart) -> String {
        let text = String::from_utf8(part.formatted()).unwrap();
        text.split("\r\n\r\n").next().unwrap().to_string()
    }

    #[test]
    fn attachment_name_is_a_plain_parameter() {
        let name = attachment_name("01HXVD9FPQ8MAJ2650W0KTY7D4");
        let head = head_of(&pdf_attachment(&name, b"%PDF-1.4\n").unwrap());
        assert!(
            head.contains("Content-Disposition: attachment;\r\n filename=\"fax-01HXVD9FPQ8MAJ2650W0KTY7D4.pdf\""),
            "{head}"
        );
        assert!(head.contains("name=\"fax-01HXVD9FPQ8MAJ2650W0KTY7D4.pdf\""), "{head}");
        assert!(!head.contains("filename*"), "{head}");
        assert!(head.lines().all(|line| line.len() <= 78), "{head}");
    }

    #[test]
    fn attachment_name_replaces_and_cuts_the_id() {
        assert_eq!(attachment_name("a/b\"c"), "fax-a_b_c.pdf");
        let long = attachment_name(&"x".repeat(500));
        assert_eq!(long.len(), "fax-.pdf".len() + MAX_NAME_ID_CHARS);
        let head = head_of(&pdf_attachment(&long, b"%PDF-1.4\n").unwrap());
        assert!(head.lines().all(|line| line.len() <= 998), "{head}");
    }

    #[test]
    fn pdf_part_decodes_to_the_same_bytes() {
        let pdf = b"%PDF-1.4\n\x00\xff binary\n%%EOF\n".to_vec();
        let part = pdf_attachment("fax-1.pdf", &pdf).unwrap();
        let message = format!("MIME-Version: 1.0\r\n{}", String::from_utf8(part.formatted()).unwrap());
        let parsed = mail_parser::MessageParser::default().parse(message.as_bytes()).unwrap();
        let attachment = parsed.root_part();
        assert_eq!(mail_parser::MimeHeaders::attachment_name(attachment), Some("fax-1.pdf"));
        assert_eq!(attachment.contents(), pdf.as_slice());
    }

    #[test]
    fn bracketed_adds_brackets_once() {
        assert_eq!(bracketed("a@b"), "<a@b>");
        assert_eq!(bracketed("<a@b>"), "<a@b>");
    }
}
