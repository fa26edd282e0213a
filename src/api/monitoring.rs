//! `GET /healthz` and `GET /metrics`, served without credentials so that a load
//! balancer or Prometheus can poll them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ApiState;
use crate::metrics::{self, QueueGauge};

/// The content type of the Prometheus text exposition format 0.0.4.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether each listener of the daemon is serving, by name (`api`, `smtp`, ...), as
/// reported on `/healthz`. Cheap to clone; the clones share the states.
#[derive(Clone, Debug, Default)]
pub struct ListenerHealth {
    states: Arc<Mutex<BTreeMap<&'static str, bool>>>,
}

impl ListenerHealth {
    /// Records whether the listener `name` is serving.
    pub fn set(&self, name: &'static str, serving: bool) {
        self.states.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(name, serving);
    }

    fn snapshot(&self) -> BTreeMap<&'static str, bool> {
        self.states.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

#[derive(Debug, Serialize)]
struct Health {
    /// `ok`, or `unavailable` when the store or a listener fails.
    status: &'static str,
    /// `ok` or `failed`.
    store: &'static str,
    /// `serving` or `stopped`, by listener name.
    listeners: BTreeMap<&'static str, &'static str>,
}

/// `GET /healthz`: 200 when the store responds and every listener serves, else 503.
/// A store error is logged and not sent, because the endpoint needs no credentials.
pub(super) async fn healthz(State(state): State<Arc<ApiState>>) -> Response {
    let store_ok = match state.store.ping().await {
        Ok(()) => true,
        Err(err) => {
            tracing::error!(error = %err, "health check: the store does not respond");
            false
        }
    };
    let listeners = state.listeners.snapshot();
    let healthy = store_ok && listeners.values().all(|serving| *serving);
    let body = Health {
        status: if healthy { "ok" } else { "unavailable" },
        store: if store_ok { "ok" } else { "failed" },
        listeners: listeners
            .into_iter()
            .map(|(name, serving)| (name, if serving { "serving" } else { "stopped" }))
            .collect(),
    };
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: the process counters and the queue gauge read from the store now.
pub(super) async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let gauges = queue_gauges(&state).await;
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], metrics::render(&gauges)).into_response()
}

/// Reads the `faxgate_queue_jobs` rows: one per job kind and state. A kind whose count
/// fails is logged and left out, so the counters are still served.
async fn queue_gauges(state: &ApiState) -> Vec<QueueGauge> {
    let mut rows = Vec::new();
    match state.queue.count_by_state().await {
        Ok(counts) => rows.extend(counts.into_iter().map(|(job_state, jobs)| QueueGauge {
            kind: "fax".to_string(),
            state: job_state.as_str().to_string(),
            jobs,
        })),
        Err(err) => tracing::error!(error = %err, "metrics: cannot count the fax jobs"),
    }
    match state.emails.count_by_kind_state().await {
        Ok(counts) => rows.extend(counts.into_iter().map(|(kind, job_state, jobs)| QueueGauge {
            kind: kind.as_str().to_string(),
            state: job_state.as_str().to_string(),
            jobs,
        })),
        Err(err) => tracing::error!(error = %err, "metrics: cannot count the email jobs"),
    }
    rows
}
