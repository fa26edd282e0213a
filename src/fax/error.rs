//! The error of a fax backend call, classified the way the queue needs it: retry later
//! (transient) or give up now (permanent). An ambiguous error means the fax may exist
//! even though the call failed, so it must be looked up before any resend.

use std::fmt;
use std::time::Duration;

/// A failed call to a fax backend.
///
/// Classification by HTTP status: 400, 401, 402, 403, 404, 422 and any other 4xx except
/// 408 and 429 are permanent; 408, 429 and 5xx are transient. Network failures are
/// transient. For a send, a timeout or a broken connection after the request went out,
/// and a success response that cannot be read, are also ambiguous.
#[derive(Debug)]
pub struct SubmitError {
    kind: Kind,
    message: String,
    retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The API responded with this status.
    Status(u16),
    /// No connection could be made, so the request was never sent.
    Connect,
    /// The request may have reached the API and changed something there: a timeout, a
    /// reset connection or an unreadable success response to a send.
    Ambiguous { timeout: bool },
    /// A failure that a retry may cure and that cannot have created a fax, such as a
    /// timed-out lookup or a full disk.
    Transient { timeout: bool },
    /// A failure that a retry cannot cure, such as an invalid setting.
    Permanent,
}

impl SubmitError {
    /// Creates the error for an error response from the API. `message` is the API's own
    /// explanation when its body had one.
    pub fn status(status: u16, message: impl Into<String>, retry_after: Option<Duration>) -> SubmitError {
        SubmitError { kind: Kind::Status(status), message: message.into(), retry_after }
    }

    pub fn connect(message: impl Into<String>) -> SubmitError {
        SubmitError { kind: Kind::Connect, message: message.into(), retry_after: None }
    }

    pub fn ambiguous(message: impl Into<String>, timeout: bool) -> SubmitError {
        SubmitError { kind: Kind::Ambiguous { timeout }, message: message.into(), retry_after: None }
    }

    pub fn transient(message: impl Into<String>) -> SubmitError {
        SubmitError { kind: Kind::Transient { timeout: false }, message: message.into(), retry_after: None }
    }

    pub fn permanent(message: impl Into<String>) -> SubmitError {
        SubmitError { kind: Kind::Permanent, message: message.into(), retry_after: None }
    }

    /// Classifies a `reqwest` failure of a request that was built and handed to the
    /// client. `sent_effect` is true when the request changes state on the server (a
    /// POST that creates a fax): only then is a failure after sending ambiguous.
    pub(crate) fn from_reqwest(err: &reqwest::Error, action: &str, sent_effect: bool) -> SubmitError {
        let detail = error_chain(err);
        if err.is_connect() {
            return SubmitError::connect(format!("{action}: cannot connect: {detail}"));
        }
        let timeout = err.is_timeout();
        let message = if timeout { format!("{action}: timed out: {detail}") } else { format!("{action}: {detail}") };
        let kind = if sent_effect { Kind::Ambiguous { timeout } } else { Kind::Transient { timeout } };
        SubmitError { kind, message, retry_after: None }
    }

    /// Returns whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self.kind {
            Kind::Status(status) => status == 408 || status == 429 || status >= 500,
            Kind::Connect | Kind::Ambiguous { .. } | Kind::Transient { .. } => true,
            Kind::Permanent => false,
        }
    }

    /// Returns whether the job should fail now without another attempt.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }

    /// Returns whether the fax may have been created although the call failed, so that
    /// it must be looked up before it is sent again.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self.kind, Kind::Ambiguous { .. })
    }

    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, Kind::Ambiguous { timeout: true } | Kind::Transient { timeout: true })
    }

    /// Returns the HTTP status of an error response.
    pub fn http_status(&self) -> Option<u16> {
        match self.kind {
            Kind::Status(status) => Some(status),
            _ => None,
        }
    }

    /// Returns the wait the API requested with `Retry-After` (in seconds on the wire).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Returns the explanation without the status prefix: for an API error, the API's
    /// `message`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Status(status) => write!(f, "fax API returned {status}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for SubmitError {}

/// Joins an error and its sources with `: `, because `reqwest::Error`'s own Display
/// leaves out the cause (such as "connection refused").
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        for status in [400, 401, 402, 403, 404, 409, 422] {
            assert!(SubmitError::status(status, "x", None).is_permanent(), "{status} should be permanent");
        }
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(SubmitError::status(status, "x", None).is_transient(), "{status} should be transient");
        }
    }

    #[test]
    fn ambiguous_is_transient() {
        let err = SubmitError::ambiguous("timed out", true);
        assert!(err.is_transient());
        assert!(err.is_ambiguous());
        assert!(err.is_timeout());
        assert!(!SubmitError::connect("refused").is_ambiguous());
    }

    #[test]
    fn display_includes_status_and_message() {
        let err = SubmitError::status(422, "The (+15551) is not a valid phone number", None);
        assert_eq!(err.to_string(), "fax API returned 422: The (+15551) is not a valid phone number");
    }
}
