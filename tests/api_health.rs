//! `/healthz`: healthy on the real daemon, and 503 from the same router when the store
//! does not respond or a listener stopped.

mod support;

use std::sync::Arc;

use faxgate::api::{self, ApiState, ListenerHealth};
use faxgate::queue::Queue;
use faxgate::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::api::ApiClient;
use support::daemon::{Setup, TestDaemon};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_is_healthy() {
    let daemon = TestDaemon::start(Setup::default());
    let api = ApiClient::new(&daemon);
    let response = api.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(
        response.json(),
        json!({"status": "ok", "store": "ok", "listeners": {"api": "serving", "smtp": "serving", "webhooks": "serving"}})
    );
}

/// Serves the API router on a fresh store in `dir`, on a free loopback port. Returns the
/// store, the base URL and the sender that stops the server.
async fn serve_router(dir: &tempfile::TempDir, listeners: ListenerHealth) -> (Store, String, watch::Sender<bool>) {
    let config_path = dir.path().join("faxgate.toml");
    let text = format!("[gateway]\ndata_dir = {:?}\n[api]\npassword = \"secret\"\n", dir.path().display().to_string());
    let config = faxgate::config::parse(&text, &config_path).expect("valid configuration");
    let store = Store::open(&config.database_path()).await.expect("open the store");
    let queue = Queue::new(store.clone(), config.spool_dir());
    let state = ApiState::new(&config, store.clone(), queue, listeners);

    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", socket.local_addr().unwrap());
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(api::serve(socket, api::router(Arc::new(state)), shutdown));
    (store, url, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_store_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let listeners = ListenerHealth::default();
    listeners.set("api", true);
    let (store, url, _stop) = serve_router(&dir, listeners).await;
    let client = ApiClient::for_service(&url, "local", "local");

    let healthy = client.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(healthy.status, StatusCode::OK, "{}", healthy.text);

    store.pool().close().await;
    let failed = client.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "{}", failed.text);
    assert_eq!(failed.json(), json!({"status": "unavailable", "store": "failed", "listeners": {"api": "serving"}}));

    // The counters are still served without the queue gauge rows.
    let metrics = client.send(Method::GET, "/metrics", None, None).await;
    assert_eq!(metrics.status, StatusCode::OK, "{}", metrics.text);
    assert!(metrics.text.contains("# TYPE faxgate_queue_jobs gauge"), "{}", metrics.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_listener_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let listeners = ListenerHealth::default();
    listeners.set("api", true);
    listeners.set("smtp", true);
    let (_store, url, _stop) = serve_router(&dir, listeners.clone()).await;
    let client = ApiClient::for_service(&url, "local", "local");

    listeners.set("smtp", false);
    let response = client.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{}", response.text);
    assert_eq!(
        response.json(),
        json!({"status": "unavailable", "store": "ok", "listeners": {"api": "serving", "smtp": "stopped"}})
    );
}
