//! The SMTP front end: listeners, sessions, TLS and AUTH.
//!
//! A session speaks the protocol and enforces the limits. Every decision about a
//! sender, a recipient or a message is delegated to a [`Handler`], so the same session
//! code serves the daemon and the tests.

mod auth;
mod connection;
mod data;
mod envelope;
mod listener;
mod reply;
mod session;
mod starttls;
mod tls;
mod transfer;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;

pub use listener::{ServeError, serve};
pub use session::{ServerContext, Session, SessionEnd};
pub use tls::{TlsConfig, TlsError};
pub(crate) use tls::describe_pem_error;

use crate::number::Number;

/// Maximum length of a command line, and of an AUTH response line, in bytes including
/// CR LF. RFC 5321 sets 512 for commands; extensions such as AUTH and long parameter
/// lists need more, and 4096 is what common servers accept. A longer line is discarded
/// without being buffered and rejected with `500 5.5.2`.
pub const MAX_LINE_LENGTH: usize = 4096;

/// An SMTP reply: a code, an enhanced status code and a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// RFC 3463 status such as `5.7.1`.
    pub status: String,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, status: &str, text: impl Into<String>) -> Self {
        Reply { code, status: status.to_string(), text: text.into() }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.code, self.status, self.text)
    }
}

/// What a handler may know about the session it decides for.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Short unique id, also the `session_id` field of the session's tracing span.
    pub session_id: String,
    pub peer: SocketAddr,
    /// The name the client gave in its last EHLO or HELO.
    pub helo: Option<String>,
    /// Whether TLS is active on the connection.
    pub tls: bool,
    /// The address authenticated with SMTP AUTH, lower case.
    pub auth_identity: Option<String>,
}

/// An accepted recipient of a mail transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A fax number to send the message's documents to.
    Fax(Number),
    /// The gateway's postmaster: the message is passed on unchanged to the configured
    /// postmaster address.
    Postmaster,
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recipient::Fax(number) => write!(f, "fax to {number}"),
            Recipient::Postmaster => f.write_str("the postmaster"),
        }
    }
}

/// The decisions of the email-to-fax gateway, asked by each SMTP session.
pub trait Handler: Send + Sync + 'static {
    /// Decides on `MAIL FROM`; `reverse_path` is empty for the null sender `<>`.
    fn mail_from(&self, session: &SessionInfo, reverse_path: &str) -> impl Future<Output = Result<(), Reply>> + Send;

    /// Decides on one `RCPT TO` and returns the recipient. `forward_path` is empty for
    /// `<postmaster>` without a domain (the parser does not keep the name).
    fn rcpt_to(
        &self,
        session: &SessionInfo,
        reverse_path: &str,
        forward_path: &str,
    ) -> impl Future<Output = Result<Recipient, Reply>> + Send;

    /// Decides on a whole message after DATA or `BDAT LAST`. The reply is sent as is:
    /// a positive one only after the jobs are durably stored.
    fn data(
        &self,
        session: &SessionInfo,
        reverse_path: &str,
        recipients: &[Recipient],
        message: Vec<u8>,
    ) -> impl Future<Output = Reply> + Send;

    /// Checks SMTP AUTH credentials. `Ok(false)` means wrong credentials; `Err` a
    /// temporary failure such as an unavailable store.
    fn authenticate(
        &self,
        session: &SessionInfo,
        username: &str,
        password: &str,
    ) -> impl Future<Output = Result<bool, Reply>> + Send;
}
