//! SMTP AUTH with the PLAIN and LOGIN mechanisms (RFC 4954, RFC 4616), offered only
//! over TLS because both send the password in clear inside the TLS channel.
//!
//! The session checks order and syntax; the handler checks the credentials. Failed
//! attempts count against `max_errors`, which bounds password guessing per connection.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info};

use super::connection::Line;
use super::reply::{self, quote};
use super::session::{Session, SessionEnd, State};
use super::{Handler, MAX_LINE_LENGTH, Reply};
use crate::config::AuthMode;

/// A user name and password sent by the client.
struct Credentials {
    username: String,
    password: String,
}

impl<S, H> Session<S, H>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    pub(super) async fn auth(&mut self, mechanism: u64, initial_response: String) -> Result<(), SessionEnd> {
        if self.listener_auth == AuthMode::None {
            return self.reply(Reply::new(502, "5.5.1", "AUTH is not offered on this listener"));
        }
        if !self.auth_offered() {
            return self.reply(Reply::new(
                538,
                "5.7.11",
                "Encryption required for requested authentication mechanism, send STARTTLS first",
            ));
        }
        match self.state {
            State::AwaitingHelo => return self.reply(reply::bad_sequence("send EHLO first")),
            State::Mail(_) => return self.reply(reply::bad_sequence("AUTH is not allowed in a mail transaction")),
            State::Ready => {}
        }
        if self.info.auth_identity.is_some() {
            return self.reply(reply::bad_sequence("already authenticated"));
        }
        let exchange = match mechanism {
            smtp_proto::AUTH_PLAIN => self.exchange_plain(initial_response).await?,
            smtp_proto::AUTH_LOGIN => self.exchange_login(initial_response).await?,
            _ => {
                return self.reply(Reply::new(
                    504,
                    "5.5.4",
                    "authentication mechanism not supported, use PLAIN or LOGIN",
                ));
            }
        };
        let credentials = match exchange {
            Ok(credentials) => credentials,
            Err(rejection) => {
                debug!(reply = %rejection, "AUTH exchange failed");
                return self.reply(rejection);
            }
        };
        let username = credentials.username;
        match self.context.handler.authenticate(&self.info, &username, &credentials.password).await {
            Ok(true) => {
                let identity = username.to_lowercase();
                info!(auth_identity = %identity, "authenticated");
                self.info.auth_identity = Some(identity);
                self.reply(Reply::new(235, "2.7.0", "authentication succeeded"))
            }
            Ok(false) => {
                info!(username = %quote(username.as_bytes()), "authentication failed");
                self.reply(Reply::new(535, "5.7.8", "authentication credentials invalid"))
            }
            Err(rejection) => {
                info!(username = %quote(username.as_bytes()), reply = %rejection, "authentication not checked");
                self.reply(rejection)
            }
        }
    }

    /// PLAIN: one response `authzid NUL authcid NUL password`, sent with the command or
    /// after an empty `334` challenge.
    async fn exchange_plain(&mut self, initial_response: String) -> Result<Result<Credentials, Reply>, SessionEnd> {
        let response = if initial_response.is_empty() {
            match self.challenge("").await? {
                Ok(response) => response,
                Err(rejection) => return Ok(Err(rejection)),
            }
        } else {
            match decode_response(initial_response.as_bytes()) {
                Ok(response) => response,
                Err(rejection) => return Ok(Err(rejection)),
            }
        };
        Ok(parse_plain(&response))
    }

    /// LOGIN: the user name (possibly sent with the command) and the password, each in
    /// answer to a challenge.
    async fn exchange_login(&mut self, initial_response: String) -> Result<Result<Credentials, Reply>, SessionEnd> {
        let username = if initial_response.is_empty() {
            // "Username:" in base64.
            self.challenge("VXNlcm5hbWU6").await?
        } else {
            decode_response(initial_response.as_bytes())
        };
        let username = match username.and_then(utf8) {
            Ok(username) => username,
            Err(rejection) => return Ok(Err(rejection)),
        };
        // "Password:" in base64.
        let password = match self.challenge("UGFzc3dvcmQ6").await?.and_then(utf8) {
            Ok(password) => password,
            Err(rejection) => return Ok(Err(rejection)),
        };
        Ok(Ok(Credentials { username, password }))
    }

    /// Sends a `334` challenge and returns the decoded response line.
    async fn challenge(&mut self, challenge: &str) -> Result<Result<Vec<u8>, Reply>, SessionEnd> {
        self.queue(&Reply::new(334, "", challenge));
        match self.next_line(false).await? {
            Line::TooLong => Ok(Err(reply::line_too_long(MAX_LINE_LENGTH))),
            Line::Complete(line) => Ok(decode_response(&line)),
        }
    }
}

/// Decodes one base64 response line; `*` cancels the exchange and `=` is empty.
fn decode_response(line: &[u8]) -> Result<Vec<u8>, Reply> {
    let line = line.trim_ascii();
    match line {
        b"*" => Err(Reply::new(501, "5.0.0", "authentication cancelled")),
        b"=" => Ok(Vec::new()),
        _ => BASE64.decode(line).map_err(|_| Reply::new(501, "5.5.2", "invalid base64 in the AUTH response")),
    }
}

fn utf8(bytes: Vec<u8>) -> Result<String, Reply> {
    String::from_utf8(bytes).map_err(|_| Reply::new(501, "5.5.2", "the AUTH response is not valid UTF-8"))
}

fn parse_plain(response: &[u8]) -> Result<Credentials, Reply> {
    let invalid = || Reply::new(501, "5.5.2", "invalid PLAIN response, expected authzid NUL authcid NUL password");
    let mut parts = response.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let authzid = utf8(authzid.to_vec())?;
    let username = utf8(authcid.to_vec())?;
    let password = utf8(password.to_vec())?;
    if username.is_empty() {
        return Err(invalid());
    }
    // Acting for another identity (proxy authorization) is not supported.
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(&username) {
        return Err(Reply::new(
            535,
            "5.7.8",
            format!("user {} may not act as {}", quote(username.as_bytes()), quote(authzid.as_bytes())),
        ));
    }
    Ok(Credentials { username, password })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_response_with_and_without_authzid() {
        let credentials = parse_plain(b"\0alice@example.com\0secret").unwrap();
        assert_eq!(credentials.username, "alice@example.com");
        assert_eq!(credentials.password, "secret");
        let credentials = parse_plain(b"alice@example.com\0alice@example.com\0secret").unwrap();
        assert_eq!(credentials.username, "alice@example.com");
    }

    #[test]
    fn plain_response_malformed() {
        assert_eq!(parse_plain(b"alice\0secret").err().map(|r| r.code), Some(501));
        assert_eq!(parse_plain(b"\0\0secret").err().map(|r| r.code), Some(501));
        assert_eq!(parse_plain(b"bob\0alice\0secret").err().map(|r| r.code), Some(535));
    }

    #[test]
    fn response_cancel_and_bad_base64() {
        assert_eq!(decode_response(b"*\r\n").err().map(|r| r.code), Some(501));
        assert_eq!(decode_response(b"not base64!\r\n").err().map(|r| r.status), Some("5.5.2".to_string()));
        assert_eq!(decode_response(b"=\r\n"), Ok(Vec::new()));
    }
}
