//! Pieces shared by the emails faxgate writes: `Message-ID`s, the `Auto-Submitted`
//! header, and the envelope sender.

use lettre::message::header::{Header, HeaderName, HeaderValue};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracketed_adds_brackets_once() {
        assert_eq!(bracketed("a@b"), "<a@b>");
        assert_eq!(bracketed("<a@b>"), "<a@b>");
    }
}
