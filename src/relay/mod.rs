//! Outgoing email: where the email queue's workers hand each rendered message.
//!
//! Backend `maildir` writes each message into a standard Maildir (`tmp/`, `new/`,
//! `cur/`): the file is written and flushed in `tmp/`, then renamed into `new/`, and the
//! folder is flushed, so a reader never sees a partial message.
//!
//! Backend `smtp` sends through a smarthost with lettre. `tls = "starttls"` requires
//! STARTTLS (lettre's `Tls::Required`): a server that does not offer it fails the
//! attempt before any mail command, and the attempt counts as a temporary failure, so
//! the message is never sent in clear text. `tls = "implicit"` opens TLS at connect
//! (`Tls::Wrapper`). The certificate is always verified against the Web PKI roots and
//! the CA in `relay.ca_file`, if set.

pub mod message;
mod worker;

pub use worker::{Postmaster, run_email_workers};

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{self, RelayBackendKind, RelayTls};

/// Maximum time for one SMTP delivery step (connect, each command, the data), after
/// which the attempt fails as temporary. Sixty seconds is lettre's own default.
const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// The cause of a failed delivery attempt.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RelayError {
    message: String,
    permanent: bool,
    tls: bool,
}

impl RelayError {
    fn temporary(message: impl Into<String>) -> RelayError {
        RelayError { message: message.into(), permanent: false, tls: false }
    }

    fn permanent(message: impl Into<String>) -> RelayError {
        RelayError { message: message.into(), permanent: true, tls: false }
    }

    /// Reports whether retrying cannot help: the relay rejected the message with a 5xx
    /// reply, or the message or its addresses are invalid.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// Reports whether TLS could not be set up: STARTTLS missing, or a failed handshake
    /// or certificate check.
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

/// A configured relay backend.
pub enum Relay {
    Maildir(PathBuf),
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, host: String, port: u16 },
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Relay::Maildir(dir) => f.debug_tuple("Maildir").field(dir).finish(),
            Relay::Smtp { host, port, .. } => f.debug_struct("Smtp").field("host", host).field("port", port).finish(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayConfigError {
    #[error("cannot read relay.ca_file {path}: {source}")]
    CaFile { path: String, source: std::io::Error },
    #[error("relay.ca_file {path} is not a usable PEM certificate: {reason}")]
    CaCertificate { path: String, reason: String },
    #[error("cannot set up TLS for relay.host {host:?}: {reason}")]
    Tls { host: String, reason: String },
}

impl Relay {
    /// Builds the backend chosen by `relay.backend`. The SMTP backend greets the
    /// smarthost with `hostname` (`gateway.hostname`), because many smarthosts reject
    /// an address literal in EHLO.
    pub fn from_config(relay: &config::Relay, hostname: &str) -> Result<Relay, RelayConfigError> {
        match relay.backend {
            RelayBackendKind::Maildir => Ok(Relay::Maildir(relay.maildir.clone())),
            RelayBackendKind::Smtp => {
                let mut parameters = TlsParameters::builder(relay.host.clone());
                if let Some(path) = &relay.ca_file {
                    let path_text = path.display().to_string();
                    let pem = std::fs::read(path)
                        .map_err(|source| RelayConfigError::CaFile { path: path_text.clone(), source })?;
                    let certificate = Certificate::from_pem(&pem)
                        .map_err(|err| RelayConfigError::CaCertificate { path: path_text, reason: err.to_string() })?;
                    parameters = parameters.add_root_certificate(certificate);
                }
                let parameters = parameters
                    .build_rustls()
                    .map_err(|err| RelayConfigError::Tls { host: relay.host.clone(), reason: err.to_string() })?;
                let tls = match relay.tls {
                    RelayTls::Starttls => Tls::Required(parameters),
                    RelayTls::Implicit => Tls::Wrapper(parameters),
                };
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(relay.host.clone())
                    .port(relay.port)
                    .tls(tls)
                    .hello_name(ClientId::Domain(hostname.to_string()))
                    .timeout(Some(SMTP_TIMEOUT));
                if !relay.username.is_empty() {
                    builder = builder
                        .credentials(Credentials::new(relay.username.clone(), relay.password.expose().to_string()));
                }
                Ok(Relay::Smtp { transport: builder.build(), host: relay.host.clone(), port: relay.port })
            }
        }
    }

    /// Short name for logs: `maildir` or `smtp`.
    pub fn name(&self) -> &'static str {
        match self {
            Relay::Maildir(_) => "maildir",
            Relay::Smtp { .. } => "smtp",
        }
    }

    /// Delivers one message to `recipient` with `reverse_path` as the envelope sender
    /// (empty for the null reverse path).
    pub async fn deliver(&self, reverse_path: &str, recipient: &str, message: &[u8]) -> Result<(), RelayError> {
        match self {
            Relay::Maildir(dir) => {
                let dir = dir.clone();
                let bytes = message.to_vec();
                tokio::task::spawn_blocking(move || write_maildir(&dir, &bytes))
                    .await
                    .map_err(|err| RelayError::temporary(format!("maildir writer task failed: {err}")))?
            }
            Relay::Smtp { transport, host, port } => {
                let envelope = envelope(reverse_path, recipient)?;
                match transport.send_raw(&envelope, message).await {
                    Ok(_) => Ok(()),
                    Err(err) => Err(classify(&err, host, *port)),
                }
            }
        }
    }
}

fn envelope(reverse_path: &str, recipient: &str) -> Result<Envelope, RelayError> {
    let from = if reverse_path.is_empty() {
        None
    } else {
        Some(
            reverse_path
                .parse::<Address>()
                .map_err(|err| RelayError::permanent(format!("invalid envelope sender {reverse_path:?}: {err}")))?,
        )
    };
    let to = recipient
        .parse::<Address>()
        .map_err(|err| RelayError::permanent(format!("invalid recipient {recipient:?}: {err}")))?;
    Envelope::new(from, vec![to]).map_err(|err| RelayError::permanent(format!("invalid envelope: {err}")))
}

/// Sorts a lettre error: only a 5xx reply is permanent. Everything else (4xx replies,
/// connection and TLS errors, a server without STARTTLS, timeouts) is retried.
fn classify(err: &lettre::transport::smtp::Error, host: &str, port: u16) -> RelayError {
    // lettre reports a server without STARTTLS as an "internal client error". The
    // rest of its message names the actual cause, so only that part is kept.
    let detail = crate::fax::error::error_chain(err).replace("internal client error: ", "");
    let message = match certificate_hint(&detail) {
        Some(hint) => format!("relay {host}:{port}: {detail}; {hint}"),
        None => format!("relay {host}:{port}: {detail}"),
    };
    let tls = err.is_tls() || detail.contains("STARTTLS") || detail.to_ascii_lowercase().contains("certificate");
    RelayError { message, permanent: err.is_permanent(), tls }
}

/// Returns what to change for two certificate failures of private relays, or `None`
/// for other errors. rustls reports these two only by their variant names.
fn certificate_hint(detail: &str) -> Option<&'static str> {
    if detail.contains("CaUsedAsEndEntity") {
        // `openssl req -x509` marks a self-signed certificate as a CA by default, and
        // webpki rejects a CA certificate as the server's own.
        Some(
            "the relay presents a CA certificate (basicConstraints CA:TRUE, which `openssl req -x509` sets by \
             default) as its own, and that is not accepted even when it is in relay.ca_file; give the relay a \
             certificate with CA:FALSE, or one signed by a CA, and put that certificate or its CA in relay.ca_file",
        )
    } else if detail.contains("UnknownIssuer") {
        Some("no trusted CA signed the relay's certificate; set relay.ca_file to the PEM file of the CA that signed it")
    } else {
        None
    }
}

/// Writes `message` into the Maildir at `dir`, creating `tmp/`, `new/` and `cur/` when
/// missing. The name follows the usual `<time>.<unique>.<host>` form.
fn write_maildir(dir: &Path, message: &[u8]) -> Result<(), RelayError> {
    let io_error =
        |err: std::io::Error| RelayError::temporary(format!("cannot write to the maildir {}: {err}", dir.display()));
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(io_error)?;
    }
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let name = format!("{seconds}.{}_{}.faxgate", ulid::Ulid::new(), std::process::id());
    let temp = crate::queue::write_atomic(&dir.join("tmp"), &name, message).map_err(io_error)?;
    std::fs::rename(&temp, dir.join("new").join(&name)).map_err(io_error)?;
    std::fs::File::open(dir.join("new")).and_then(|d| d.sync_all()).map_err(io_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildir_write_lands_in_new() {
        let dir = tempfile::tempdir().unwrap();
        write_maildir(dir.path(), b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let new: Vec<_> = std::fs::read_dir(dir.path().join("new")).unwrap().collect();
        assert_eq!(new.len(), 1);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert!(dir.path().join("cur").is_dir());
    }

    #[test]
    fn certificate_failures_get_a_hint() {
        let ca_as_server = "Connection error: invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))";
        assert!(certificate_hint(ca_as_server).is_some_and(|hint| hint.contains("CA:FALSE")));
        let unknown = "Connection error: invalid peer certificate: UnknownIssuer";
        assert!(certificate_hint(unknown).is_some_and(|hint| hint.contains("relay.ca_file")));
        assert_eq!(certificate_hint("Connection error: connection refused"), None);
    }

    #[test]
    fn null_reverse_path_is_allowed() {
        let null_sender = envelope("", "bob@example.com").unwrap();
        assert!(null_sender.from().is_none());
        assert!(envelope("fax@example.com", "not an address").unwrap_err().is_permanent());
    }
}
