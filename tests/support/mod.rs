//! Shared helpers for the integration tests: a real daemon, an SMTP client for exact
//! replies, test documents, a fake Sinch server, settings that point at it, and a queue
//! on a real store in a temporary folder with its workers.

#![allow(dead_code)]

pub mod api;
pub mod daemon;
pub mod fake_sinch;
pub mod fake_sinch_config;
pub mod mail;
pub mod pdf;
pub mod relay_server;
pub mod smtp_client;
pub mod webhook_client;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faxgate::config::{self, FaxBackendKind, Resolution, Secret, SinchAuth};
use faxgate::fax::Backend;
use faxgate::number::Number;
use faxgate::queue::{FaxRequest, Job, JobState, Queue, RetryPolicy, run_workers};
use faxgate::store::Store;
use tokio::sync::watch;

use fake_sinch::FakeSinch;

/// A small but well-formed PDF.
pub const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

pub const FROM: &str = "+14155550100";
pub const TO: &str = "+14155552222";
pub const TO_2: &str = "+14155552223";
pub const TO_3: &str = "+19898989898";

pub const WEBHOOK_URL: &str = "https://fax.example.com/webhooks/sinch";
pub const WEBHOOK_USER: &str = "sinch";
/// Contains characters that must be percent-encoded in a URL's credentials.
pub const WEBHOOK_PASSWORD: &str = "p@ss:w/rd";

/// Prints the daemon's logs when `RUST_LOG` is set.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn number(text: &str) -> Number {
    text.parse().expect("valid test number")
}

pub fn webhooks(public_url: &str) -> config::Webhooks {
    config::Webhooks {
        address: "127.0.0.1:0".parse().unwrap(),
        public_url: public_url.to_string(),
        username: WEBHOOK_USER.to_string(),
        password: Secret::new(WEBHOOK_PASSWORD),
        tls_cert: None,
        tls_key: None,
        max_body_size: 10 << 20,
    }
}

/// Fax settings for `backend`, pointing at `fake` when given.
pub fn fax_settings(
    backend: FaxBackendKind,
    fake: Option<&FakeSinch>,
    auth: SinchAuth,
    outbox_dir: PathBuf,
) -> config::Fax {
    config::Fax {
        backend,
        header_text: "faxgate test".to_string(),
        resolution: Resolution::Superfine,
        allowed_countries: vec![],
        denied_prefixes: vec![],
        max_queue_lifetime: Duration::from_secs(60),
        report_poll_after: Duration::from_secs(1800),
        workers: 2,
        sinch: config::Sinch {
            project_id: fake_sinch::PROJECT_ID.to_string(),
            service_id: fake_sinch::SERVICE_ID.to_string(),
            key_id: fake_sinch::KEY_ID.to_string(),
            key_secret: Secret::new(fake_sinch::KEY_SECRET),
            auth,
            api_url: fake.map(FakeSinch::api_url).unwrap_or_default(),
            auth_url: fake.map(FakeSinch::auth_url).unwrap_or_default(),
            request_timeout: Duration::from_secs(5),
        },
        outbox_dir,
    }
}

/// Retries after 20 ms, doubling up to 200 ms, for 60 s.
pub fn fast_policy() -> RetryPolicy {
    RetryPolicy { first: Duration::from_millis(20), max: Duration::from_millis(200), lifetime: Duration::from_secs(60) }
}

pub fn request(recipients: &[&str]) -> FaxRequest {
    FaxRequest {
        session_id: "session-1".to_string(),
        message_id: Some("<m1@example.com>".to_string()),
        reverse_path: "alice@example.com".to_string(),
        sender: "alice@example.com".to_string(),
        from_number: number(FROM),
        recipients: recipients.iter().map(|n| number(n)).collect(),
        pages: 1,
    }
}

/// A queue on a fresh store in a temporary folder, with workers started on demand.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub queue: Queue,
    shutdown: Option<watch::Sender<bool>>,
    workers: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub async fn new(lifetime: Duration) -> Harness {
        init_logging();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("faxgate.db")).await.expect("open the store");
        let queue = Queue::new(store.clone(), dir.path().join("spool")).with_lifetime(lifetime);
        Harness { dir, store, queue, shutdown: None, workers: None }
    }

    pub fn database_path(&self) -> PathBuf {
        self.dir.path().join("faxgate.db")
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    pub fn start_workers(&mut self, backend: Backend, policy: RetryPolicy, workers: usize) {
        let (sender, receiver) = watch::channel(false);
        let handle = tokio::spawn(run_workers(self.queue.clone(), Arc::new(backend), policy, workers, receiver));
        self.shutdown = Some(sender);
        self.workers = Some(handle);
    }

    /// Signals shutdown and waits for the workers to stop.
    pub async fn stop_workers(&mut self) {
        if let Some(sender) = self.shutdown.take() {
            sender.send(true).unwrap();
        }
        if let Some(handle) = self.workers.take() {
            tokio::time::timeout(Duration::from_secs(10), handle)
                .await
                .expect("workers stop within 10 s")
                .expect("workers did not panic");
        }
    }

    /// Waits until job `id` is in `state`, and panics with its history otherwise.
    pub async fn wait_for_state(&self, id: &str, state: JobState) -> Job {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let job = self.queue.job(id).await.unwrap().expect("job exists");
            if job.state == state {
                return job;
            }
            if Instant::now() > deadline {
                let history = self.queue.history(id).await.unwrap();
                panic!("job {id} is {} and not {state} after 10 s; history: {history:#?}", job.state);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sets a job's state directly in the database, as a crash would have left it.
    pub async fn force_state(&self, id: &str, state: &str) {
        let updated = sqlx::query("UPDATE fax_jobs SET state = ? WHERE id = ?")
            .bind(state)
            .bind(id)
            .execute(self.store.pool())
            .await
            .unwrap();
        assert_eq!(updated.rows_affected(), 1);
    }
}

/// Builds a Sinch backend pointing at `fake`.
pub fn sinch_backend(fake: &FakeSinch, auth: SinchAuth, timeout: Duration) -> Backend {
    let mut fax = fax_settings(FaxBackendKind::Sinch, Some(fake), auth, PathBuf::new());
    fax.sinch.request_timeout = timeout;
    Backend::from_config(&fax, &webhooks(WEBHOOK_URL)).expect("build the Sinch backend")
}

/// Waits up to 10 s for `condition` to become true, and panics with `what` otherwise.
pub async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
