//! HTTP Basic authentication of the management API with `api.username` and
//! `api.password`. An empty `api.password` turns the API off: every request gets 401,
//! so that a fresh install never serves the mappings without credentials.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::config::{Api, Secret};

/// Minimum time between two log lines about wrong credentials, so that a password
/// guessing run cannot flood the log. The lines in between are counted.
const WRONG_CREDENTIALS_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The credentials a request must present.
pub(crate) struct Credentials {
    username: String,
    password: Secret,
    /// When a wrong-credentials line was last logged.
    last_logged: Mutex<Option<Instant>>,
    /// Wrong-credentials requests not logged since then.
    unlogged: AtomicU64,
}

impl Credentials {
    pub(crate) fn from_config(api: &Api) -> Credentials {
        Credentials::new(&api.username, api.password.clone())
    }

    fn new(username: &str, password: Secret) -> Credentials {
        Credentials {
            username: username.to_string(),
            password,
            last_logged: Mutex::new(None),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Logs a request with wrong credentials, at most once per
    /// [`WRONG_CREDENTIALS_LOG_INTERVAL`], with the count of those not logged.
    fn log_wrong(&self, peer: &str, path: &str, username: &str) {
        let mut last_logged = self.last_logged.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if last_logged.is_some_and(|at| now.duration_since(at) < WRONG_CREDENTIALS_LOG_INTERVAL) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last_logged = Some(now);
        let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
        tracing::warn!(%peer, %path, %username, unlogged, "management API request with wrong credentials");
    }

    pub(crate) fn is_disabled(&self) -> bool {
        self.password.is_empty()
    }

    /// Checks a username and password in time independent of where they differ.
    fn accepts(&self, username: &str, password: &str) -> bool {
        let user_ok = same_digest(username.as_bytes(), self.username.as_bytes());
        let password_ok = same_digest(password.as_bytes(), self.password.expose().as_bytes());
        user_ok & password_ok
    }
}

/// Compares the SHA-256 digests of `a` and `b` byte by byte without an early exit, so
/// the time taken does not reveal how much of a guess was right.
fn same_digest(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter().zip(b.iter()).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Splits an `Authorization: Basic ...` value into username and password; `None` when
/// the header is not Basic or not valid base64 and UTF-8 with a colon.
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = BASE64.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    Some((username.to_string(), password.to_string()))
}

/// Middleware that passes a request on only with the configured credentials.
pub(crate) async fn require_credentials(
    State(credentials): State<Arc<Credentials>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    let peer = peer.map(|addr| addr.to_string()).unwrap_or_default();
    let path = request.uri().path().to_string();

    if credentials.is_disabled() {
        tracing::debug!(%peer, %path, "management API request rejected: api.password is not set");
        return ApiError::unauthorized("the management API is disabled until api.password is set").into_response();
    }

    let header_value = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let Some(header_value) = header_value else {
        tracing::debug!(%peer, %path, "management API request without credentials");
        return ApiError::unauthorized(
            "missing credentials: send api.username and api.password with HTTP Basic authentication",
        )
        .into_response();
    };
    match parse_basic(header_value) {
        Some((username, password)) if credentials.accepts(&username, &password) => next.run(request).await,
        Some((username, _)) => {
            credentials.log_wrong(&peer, &path, &username);
            ApiError::unauthorized("wrong username or password: send api.username and api.password").into_response()
        }
        None => {
            tracing::debug!(%peer, %path, "management API request with an unreadable Authorization header");
            ApiError::unauthorized(
                "invalid Authorization header: send api.username and api.password with HTTP Basic authentication",
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_parsing() {
        let encoded = BASE64.encode("admin:pa:ss");
        assert_eq!(parse_basic(&format!("Basic {encoded}")), Some(("admin".into(), "pa:ss".into())));
        assert_eq!(parse_basic(&format!("basic {encoded}")), Some(("admin".into(), "pa:ss".into())));
        assert_eq!(parse_basic(&format!("Bearer {encoded}")), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic(&format!("Basic {}", BASE64.encode("nocolon"))), None);
    }

    #[test]
    fn credentials_compare_both_fields() {
        let credentials = Credentials::new("admin", Secret::new("secret"));
        assert!(credentials.accepts("admin", "secret"));
        assert!(!credentials.accepts("admin", "secreT"));
        assert!(!credentials.accepts("root", "secret"));
        assert!(!credentials.accepts("admin", ""));
    }
}
