//! The management HTTP API on `api.address`: the Emails endpoints of the Sinch Fax API
//! v3 (same paths and JSON) to manage mappings, plus `/healthz` and `/metrics`.
//!
//! The Emails endpoints live under `/v3/projects/{projectId}/services/{serviceId}` and
//! need HTTP Basic credentials ([`auth`]). `{projectId}` must be `api.project_id` and
//! `{serviceId}` the fax service id (see [`service_id`]); other ids get 404. Every
//! error has the Sinch error shape ([`ApiError`]). The monitoring endpoints need no
//! credentials.

mod auth;
mod emails;
mod error;
mod monitoring;

pub use error::ApiError;
pub use monitoring::ListenerHealth;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, FaxBackendKind};
use crate::mappings::Mappings;
use crate::queue::{EmailQueue, Queue};
use crate::store::Store;

/// The service id of the outbox backend, which has no Sinch service.
pub const LOCAL_SERVICE_ID: &str = "local";

/// The prefix of every Emails endpoint.
const SERVICE_PREFIX: &str = "/v3/projects/{projectId}/services/{serviceId}";

/// Returns the `{serviceId}` the API accepts: `fax.sinch.service_id` with the Sinch
/// backend, [`LOCAL_SERVICE_ID`] with the outbox.
pub fn service_id(config: &Config) -> String {
    match config.fax.backend {
        FaxBackendKind::Sinch => config.fax.sinch.service_id.clone(),
        FaxBackendKind::Outbox => LOCAL_SERVICE_ID.to_string(),
    }
}

/// The state shared by the handlers.
pub struct ApiState {
    project_id: String,
    service_id: String,
    mappings: Mappings,
    queue: Queue,
    emails: EmailQueue,
    store: Store,
    listeners: ListenerHealth,
    credentials: Arc<auth::Credentials>,
}

impl ApiState {
    pub fn new(config: &Config, store: Store, queue: Queue, listeners: ListenerHealth) -> ApiState {
        ApiState {
            project_id: config.api.project_id.clone(),
            service_id: service_id(config),
            mappings: Mappings::new(store.clone()),
            queue,
            emails: EmailQueue::from_config(store.clone(), config),
            store,
            listeners,
            credentials: Arc::new(auth::Credentials::from_config(&config.api)),
        }
    }
}

/// Builds the router of every endpoint. Unknown paths and methods get 404 and 405 in
/// the Sinch error shape.
pub fn router(state: Arc<ApiState>) -> Router {
    let emails = Router::new()
        .route(&format!("{SERVICE_PREFIX}/emails"), get(emails::list).post(emails::add))
        .route(&format!("{SERVICE_PREFIX}/emails/{{email}}"), axum::routing::put(emails::set).delete(emails::remove))
        .route(&format!("{SERVICE_PREFIX}/emails/{{email}}/numbers"), get(emails::numbers_of))
        .route(&format!("{SERVICE_PREFIX}/numbers/{{phoneNumber}}/emails"), get(emails::emails_of))
        // Layers run last-added first: credentials, then the ids.
        .route_layer(middleware::from_fn_with_state(state.clone(), check_service))
        .route_layer(middleware::from_fn_with_state(state.credentials.clone(), auth::require_credentials));
    let monitoring =
        Router::new().route("/healthz", get(monitoring::healthz)).route("/metrics", get(monitoring::metrics));
    emails
        .merge(monitoring)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_rejected))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` turns true or its sender is dropped;
/// requests in progress then finish.
pub async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) -> std::io::Result<()> {
    let stop = async move {
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
    };
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(stop).await
}

/// Middleware that responds with 404 unless `{projectId}` and `{serviceId}` are ours.
async fn check_service(
    State(state): State<Arc<ApiState>>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    let params = match params {
        Ok(params) => params,
        Err(rejection) => return ApiError::bad_request(rejection.body_text()).into_response(),
    };
    for (name, value) in &params {
        let (expected, what) = match name {
            "projectId" => (&state.project_id, "project"),
            "serviceId" => (&state.service_id, "service"),
            _ => continue,
        };
        if value != expected.as_str() {
            return ApiError::not_found(format!("{what} {value} not found")).into_response();
        }
    }
    next.run(request).await
}

/// Middleware that logs each request rejected with a 4xx, with its method, path,
/// status and message: failed changes at info, failed reads at debug. A 401 is logged
/// by the credentials check, and a 5xx where it happens.
async fn log_rejected(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;

    let status = response.status();
    if !status.is_client_error() || status == StatusCode::UNAUTHORIZED {
        return response;
    }
    let message = response.extensions().get::<error::ErrorMessage>().map(|m| m.0.as_str()).unwrap_or_default();
    if method == Method::GET || method == Method::HEAD {
        tracing::debug!(%method, %path, status = status.as_u16(), message, "management API request rejected");
    } else {
        tracing::info!(%method, %path, status = status.as_u16(), message, "management API request rejected");
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
