//! The webhook listener: `POST /webhooks/sinch` receives Sinch's `INCOMING_FAX` and
//! `FAX_COMPLETED` events, over HTTPS when `webhooks.tls_cert` and `tls_key` are set.
//!
//! Sinch documents no request signature, only Basic credentials in the URL it posts
//! to. So every request must carry `webhooks.username` and `webhooks.password`, which
//! are compared in constant time. Other requests get 401 and nothing is stored.
//!
//! Replies, in Sinch's error shape `{"code","error","message"}` for errors:
//! - 200 once the event is durably stored (`INCOMING_FAX`) or its result recorded
//!   (`FAX_COMPLETED`), for a repeat of an event already stored, and for events this
//!   version does not handle, so that Sinch stops retrying them;
//! - 400 for a body that cannot be read as either payload shape, naming the problem;
//! - 401 for missing or wrong credentials, with `WWW-Authenticate`;
//! - 413 for a body over `webhooks.max_body_size`;
//! - 503 when the store fails, so that Sinch retries later.

mod inbound;
mod payload;

pub use inbound::{Dispatcher, InboundEvents, SCHEMA, run_inbound_dispatcher};
pub use payload::{Payload, PayloadError};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::IncomingStream;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config;
use crate::reports::Reporter;
use crate::smtp::TlsConfig;

/// The path Sinch posts to.
pub const PATH: &str = "/webhooks/sinch";

/// Maximum time for a TLS handshake before the connection is dropped, so that a client
/// that stalls cannot hold a handshake slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The state shared by the handlers.
#[derive(Clone)]
pub struct WebhookState {
    pub settings: Arc<config::Webhooks>,
    pub events: InboundEvents,
    pub reporter: Reporter,
}

/// Builds the router with the one webhook route.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(PATH, post(receive))
        // The handler reads the body itself with `webhooks.max_body_size` as the limit.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves the router on `listener` until `shutdown` turns true, over TLS when `tls`
/// is given. Requests in progress at shutdown are allowed to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsConfig>,
    state: WebhookState,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = router(state);
    let stop = async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    let service = app.into_make_service_with_connect_info::<Peer>();
    match tls {
        None => axum::serve(listener, service).with_graceful_shutdown(stop).await,
        Some(tls) => axum::serve(TlsListener::start(listener, tls), service).with_graceful_shutdown(stop).await,
    }
}

/// The client address of a webhook request, for logs.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Accepts TCP connections and completes their TLS handshakes in separate tasks, so
/// that one slow handshake does not hold up the others.
struct TlsListener {
    address: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    fn start(listener: TcpListener, tls: TlsConfig) -> TlsListener {
        let address = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let (sender, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "webhook listener cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor: TlsAcceptor = tls.acceptor();
                let ready = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = ready.send((stream, peer)).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%peer, error = %err, "webhook TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "webhook TLS handshake timed out"),
                    }
                });
                if sender.is_closed() {
                    return;
                }
            }
        });
        TlsListener { address, ready }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends when this listener is gone, so this wait
            // never ends while the server runs.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.address)
    }
}

/// Handles `POST /webhooks/sinch`.
async fn receive(State(state): State<WebhookState>, request: Request) -> Response {
    let peer = request.extensions().get::<ConnectInfo<Peer>>().map(|info| info.0.0.to_string()).unwrap_or_default();
    if !authorized(request.headers(), &state.settings) {
        tracing::warn!(%peer, "webhook request rejected: missing or wrong credentials");
        let mut response = unread_body_reply(error(StatusCode::UNAUTHORIZED, "missing or wrong credentials"));
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"faxgate webhooks\""));
        return response;
    }

    let limit = state.settings.max_body_size;
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        tracing::warn!(%peer, limit, "webhook request rejected: body over webhooks.max_body_size");
        return unread_body_reply(too_large(limit));
    }
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX)).await {
        Ok(body) => body,
        Err(err) if is_length_limit(&err) => {
            tracing::warn!(%peer, limit, "webhook request rejected: body over webhooks.max_body_size");
            return unread_body_reply(too_large(limit));
        }
        Err(err) => {
            tracing::warn!(%peer, error = %err, "webhook request rejected: cannot read the body");
            return error(StatusCode::BAD_REQUEST, &format!("cannot read the request body: {err}"));
        }
    };

    let payload = match Payload::parse(&content_type, body, parts.extensions).await {
        Ok(payload) => payload,
        Err(err) => {
            tracing::warn!(%peer, error = %err, "webhook request rejected: malformed body");
            return error(StatusCode::BAD_REQUEST, &err.to_string());
        }
    };
    crate::metrics::webhook(&payload.event);

    match payload.event.as_str() {
        "INCOMING_FAX" => incoming_fax(&state, payload).await,
        "FAX_COMPLETED" => fax_completed(&state, payload).await,
        other => {
            tracing::info!(event = other, fax_id = %payload.details.id, "webhook event ignored: not handled by this version");
            accepted("ignored")
        }
    }
}

async fn incoming_fax(state: &WebhookState, payload: Payload) -> Response {
    let fax_id = payload.details.id.clone();
    if let Err(err) = payload.check_incoming() {
        tracing::warn!(event = "INCOMING_FAX", fax_id = %fax_id, error = %err, "webhook request rejected: malformed body");
        return error(StatusCode::BAD_REQUEST, &err.to_string());
    }
    match state.events.record(&payload).await {
        Ok(Some(event_id)) => {
            tracing::info!(
                event = "INCOMING_FAX",
                fax_id = %fax_id,
                event_id = %event_id,
                from = payload.details.from.as_deref().unwrap_or(""),
                to = payload.details.to.as_deref().unwrap_or(""),
                has_file = payload.file.is_some(),
                "webhook received: fax queued for delivery by email"
            );
            accepted("queued")
        }
        Ok(None) => {
            tracing::info!(event = "INCOMING_FAX", fax_id = %fax_id, "webhook repeated: the event is queued already");
            accepted("duplicate")
        }
        Err(err) => {
            tracing::error!(event = "INCOMING_FAX", fax_id = %fax_id, error = %err, "cannot store a received fax");
            error(StatusCode::SERVICE_UNAVAILABLE, "cannot store the event now; retry later")
        }
    }
}

async fn fax_completed(state: &WebhookState, payload: Payload) -> Response {
    let details = &payload.details;
    match state.reporter.record_result(details).await {
        Ok(Some(job)) => {
            tracing::info!(
                event = "FAX_COMPLETED",
                fax_id = %details.id,
                job_id = %job.id,
                message_id = job.message_id.as_deref().unwrap_or(""),
                status = ?details.status,
                state = job.state.as_str(),
                "webhook received: fax result recorded"
            );
            accepted("recorded")
        }
        Ok(None) => {
            tracing::info!(
                event = "FAX_COMPLETED",
                fax_id = %details.id,
                job_id = details.job_label.as_deref().unwrap_or(""),
                status = ?details.status,
                "webhook received: no submitted job waits for this fax; the result is kept for a later match"
            );
            accepted("recorded")
        }
        Err(err) => {
            tracing::error!(event = "FAX_COMPLETED", fax_id = %details.id, error = %err, "cannot record a fax result");
            error(StatusCode::SERVICE_UNAVAILABLE, "cannot record the result now; retry later")
        }
    }
}

/// Checks the Basic credentials. Both values are hashed before the comparison, so the
/// time taken depends on neither their content nor their length.
/// Checks the Basic credentials. With an empty `webhooks.password` every request is
/// refused, so a forgotten password cannot open the webhook to anyone who guesses the
/// user name.
/// Marks a reply sent before the request body was read with `Connection: close`. The
/// server closes such a connection after the reply, and without the header a client
/// may send its next request on it and see the connection drop instead of a reply.
fn unread_body_reply(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    response
}

fn authorized(headers: &HeaderMap, settings: &config::Webhooks) -> bool {
    if settings.password.is_empty() {
        return false;
    }
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else {
        return false;
    };
    let Ok(decoded) = BASE64.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", settings.username, settings.password.expose());
    constant_time_eq(&decoded, expected.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter().zip(b.iter()).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(cause) = source {
        if cause.to_string().contains("length limit exceeded") {
            return true;
        }
        source = cause.source();
    }
    false
}

fn accepted(result: &str) -> Response {
    (StatusCode::OK, axum::Json(json!({ "result": result }))).into_response()
}

fn too_large(limit: u64) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the body exceeds the limit of {limit} bytes (webhooks.max_body_size)"),
    )
}

/// Builds an error reply in Sinch's error shape.
fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "code": status.as_u16().to_string(),
        "error": status.canonical_reason().unwrap_or("Error"),
        "message": message,
    });
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> config::Webhooks {
        config::Webhooks {
            address: "127.0.0.1:0".parse().unwrap(),
            public_url: "https://fax.example.com/webhooks/sinch".into(),
            username: "sinch".into(),
            password: config::Secret::new("secret"),
            tls_cert: None,
            tls_key: None,
            max_body_size: 1024,
        }
    }

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn basic_credentials_checked() {
        let good = format!("Basic {}", BASE64.encode("sinch:secret"));
        let wrong = format!("Basic {}", BASE64.encode("sinch:secreT"));
        assert!(authorized(&with_authorization(&good), &settings()));
        assert!(!authorized(&with_authorization(&wrong), &settings()));
        assert!(!authorized(&with_authorization("Bearer abc"), &settings()));
        assert!(!authorized(&HeaderMap::new(), &settings()));
    }

    #[test]
    fn empty_password_refuses_everyone() {
        let settings = config::Webhooks { password: config::Secret::default(), ..settings() };
        let user_only = format!("Basic {}", BASE64.encode("sinch:"));
        assert!(!authorized(&with_authorization(&user_only), &settings));
    }
}
