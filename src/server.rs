//! `faxgate run`: opens the store, binds the listeners, starts the queue workers, the
//! management API, the SMTP server and the fax-to-email side (webhook listener,
//! received-fax dispatcher, delivery reports, email workers), notifies systemd when it
//! is ready, and handles signals.
//!
//! SIGTERM and SIGINT stop accepting connections; open sessions get the grace period of
//! `smtp.shutdown_grace`, the workers finish the submissions in flight, and the process
//! exits. SIGHUP reloads the TLS certificates and keys.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::api;
use crate::config::Config;
use crate::fax;
use crate::intake::Intake;
use crate::mappings::Mappings;
use crate::queue::{self, EmailQueue, Queue, RetryPolicy};
use crate::relay::{Postmaster, Relay, run_email_workers};
use crate::reports::Reporter;
use crate::smtp;
use crate::store::Store;
use crate::webhooks::{self, Dispatcher, InboundEvents, WebhookState};

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    for dir in [&config.gateway.data_dir, &config.spool_dir(), &config.fax.outbox_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let store = Store::open(&config.database_path()).await?;
    let mappings = Mappings::new(store.clone());
    let queue = Queue::new(store.clone(), config.spool_dir()).with_lifetime(config.fax.max_queue_lifetime);
    let backend = Arc::new(fax::Backend::from_config(&config.fax, &config.webhooks)?);

    let tls = match (&config.smtp.tls_cert, &config.smtp.tls_key) {
        (Some(cert), Some(key)) => Some(smtp::TlsConfig::load(cert, key)?),
        _ => None,
    };

    // The management API is bound first, so that it accepts connections by the time
    // the SMTP listeners do and before systemd hears READY.
    let listener_health = api::ListenerHealth::default();
    let api_socket = bind_api(&config).await?;

    let mut listeners = Vec::new();
    for listener in &config.smtp.listeners {
        let socket = TcpListener::bind(listener.address)
            .await
            .with_context(|| format!("cannot listen on {} (smtp.listeners)", listener.address))?;
        info!(address = %listener.address, tls = ?listener.tls, auth = ?listener.auth, "SMTP listener bound");
        listeners.push((socket, listener.clone()));
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let api_server = {
        let state = api::ApiState::new(&config, store.clone(), queue.clone(), listener_health.clone());
        let (health, shutdown) = (listener_health.clone(), shutdown_rx.clone());
        health.set("api", true);
        tokio::spawn(async move {
            let result = api::serve(api_socket, api::router(Arc::new(state)), shutdown).await;
            health.set("api", false);
            result
        })
    };

    let workers = tokio::spawn(queue::run_workers(
        queue.clone(),
        backend.clone(),
        RetryPolicy::from_config(&config.fax),
        config.fax.workers,
        shutdown_rx.clone(),
    ));

    // Fax to email and delivery reports: the webhook listener, the dispatcher of
    // received faxes, the report task and the email workers.
    let emails = EmailQueue::from_config(store.clone(), &config);
    let (fax_to_email, webhook_tls) =
        start_fax_to_email(&config, &store, &mappings, &queue, &emails, &backend, &listener_health, &shutdown_rx)
            .await?;

    let intake = Arc::new(Intake::new(config.clone(), mappings, queue, emails));
    let smtp_server = {
        let settings = Arc::new(config.smtp.clone());
        let hostname = config.gateway.hostname.clone();
        let (tls, shutdown) = (tls.clone(), shutdown_rx.clone());
        let health = listener_health.clone();
        health.set("smtp", true);
        tokio::spawn(async move {
            let result = smtp::serve(listeners, settings, &hostname, tls, intake, shutdown).await;
            health.set("smtp", false);
            result
        })
    };

    notify_systemd(&[sd_notify::NotifyState::Ready]);
    probe_office_converter(&config);
    let watchdog = start_watchdog(store.clone());
    info!(data_dir = %config.gateway.data_dir.display(), backend = ?config.fax.backend, "faxgate started");

    let mut certificates = Vec::new();
    certificates.extend(tls.as_ref().map(|tls| ("smtp", tls)));
    certificates.extend(webhook_tls.as_ref().map(|tls| ("webhooks", tls)));
    wait_for_stop(&certificates).await;
    info!("stopping: no new connections, open sessions may finish");
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    let _ = shutdown_tx.send(true);

    match smtp_server.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => error!(error = %err, "SMTP server failed"),
        Err(err) => error!(error = %err, "SMTP server task failed"),
    }
    match api_server.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => error!(error = %err, "management API server failed"),
        Err(err) => error!(error = %err, "management API server task failed"),
    }
    if let Err(err) = workers.await {
        error!(error = %err, "queue workers failed");
    }
    for (name, task) in fax_to_email {
        if let Err(err) = task.await {
            error!(task = name, error = %err, "task failed");
        }
    }
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    info!("faxgate stopped");
    Ok(())
}

/// Binds the webhook listener and starts the tasks of the fax-to-email side. Returns
/// them by name, so that shutdown can wait for each, and the webhook TLS certificate
/// for SIGHUP to reload.
async fn start_fax_to_email(
    config: &Arc<Config>,
    store: &Store,
    mappings: &Mappings,
    queue: &Queue,
    emails: &EmailQueue,
    backend: &Arc<fax::Backend>,
    health: &api::ListenerHealth,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<(Vec<(&'static str, tokio::task::JoinHandle<()>)>, Option<smtp::TlsConfig>)> {
    let policy = RetryPolicy::from_config(&config.fax);
    let emails = emails.clone();
    let events =
        InboundEvents::new(store.clone(), config.gateway.data_dir.join("inbound"), config.fax.max_queue_lifetime);
    queue.keep_completed_documents(config.notifications.attach_copy && config.notifications.on_success);
    let reporter = Reporter::new(store.clone(), queue.clone(), emails.clone(), backend.clone(), config.clone());
    let relay = Arc::new(Relay::from_config(&config.relay, &config.gateway.hostname)?);

    let webhook_tls = match (&config.webhooks.tls_cert, &config.webhooks.tls_key) {
        (Some(cert), Some(key)) => Some(smtp::TlsConfig::load(cert, key)?),
        _ => None,
    };
    let listener = TcpListener::bind(config.webhooks.address)
        .await
        .with_context(|| format!("cannot listen on {} (webhooks.address)", config.webhooks.address))?;
    if config.webhooks.password.is_empty() {
        warn!("webhooks.password is empty: every webhook request is refused with 401 until a password is set");
    }
    info!(address = %config.webhooks.address, tls = webhook_tls.is_some(), "webhook listener bound");

    let state = WebhookState {
        settings: Arc::new(config.webhooks.clone()),
        events: events.clone(),
        reporter: reporter.clone(),
    };
    let webhook_shutdown = shutdown.clone();
    let served_tls = webhook_tls.clone();
    let health = health.clone();
    health.set("webhooks", true);
    let webhook_server = tokio::spawn(async move {
        if let Err(err) = webhooks::serve(listener, served_tls, state, webhook_shutdown).await {
            error!(error = %err, "webhook listener failed");
        }
        health.set("webhooks", false);
    });
    let dispatcher = Dispatcher {
        events,
        emails: emails.clone(),
        mappings: mappings.clone(),
        backend: backend.clone(),
        config: config.clone(),
        policy,
    };
    let postmaster = (!config.relay.postmaster.is_empty()).then(|| Postmaster {
        address: config.relay.postmaster.clone(),
        from: config.relay.from.clone(),
        hostname: config.gateway.hostname.clone(),
    });
    info!(relay = relay.name(), "email relay configured");
    let tasks = vec![
        ("webhook listener", webhook_server),
        ("received-fax dispatcher", tokio::spawn(webhooks::run_inbound_dispatcher(dispatcher, shutdown.clone()))),
        ("delivery reports", tokio::spawn(reporter.run(shutdown.clone()))),
        ("email worker", tokio::spawn(run_email_workers(emails, relay, policy, postmaster, shutdown.clone()))),
    ];
    Ok((tasks, webhook_tls))
}

/// Waits for SIGTERM or SIGINT, reloading each named TLS certificate on each SIGHUP
/// meanwhile.
async fn wait_for_stop(certificates: &[(&str, &smtp::TlsConfig)]) {
    let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
        warn!("cannot install signal handlers; stop with Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = tokio::signal::ctrl_c() => return,
            _ = hup.recv() => {
                notify_systemd(&[sd_notify::NotifyState::Reloading]);
                if certificates.is_empty() {
                    info!("SIGHUP: no TLS certificate configured, nothing to reload");
                }
                for (listener, tls) in certificates {
                    match tls.reload() {
                        Ok(()) => info!(listener, "TLS certificate reloaded"),
                        Err(err) => error!(listener, error = %err, "TLS reload failed; the previous certificate stays in use"),
                    }
                }
                notify_systemd(&[sd_notify::NotifyState::Ready]);
            }
        }
    }
}

/// Removes the office working folders of ended processes and logs whether Office
/// documents can be converted, in the background: the first start of LibreOffice can
/// take many seconds, so it does not delay readiness.
fn probe_office_converter(config: &Config) {
    let limits = crate::documents::Limits::from_settings(&config.documents, config.smtp.max_message_size);
    tokio::task::spawn_blocking(move || {
        let removed = crate::documents::office::remove_stale_folders(&std::env::temp_dir());
        if removed > 0 {
            info!(removed, "removed office working folders left by ended processes");
        }
        report_office_converter(&limits);
    });
}

/// Logs whether the office converter runs, and its version.
fn report_office_converter(limits: &crate::documents::Limits) {
    match crate::documents::office::probe(limits) {
        Some(version) => info!(converter = %limits.office_converter, version = %version, "Office documents will be converted"),
        None => warn!(
            converter = %limits.office_converter,
            "office converter not found; Office attachments will be rejected (install LibreOffice or set documents.office_converter)"
        ),
    }
}

fn notify_systemd(state: &[sd_notify::NotifyState]) {
    if let Err(err) = sd_notify::notify(false, state) {
        warn!(error = %err, "cannot notify systemd");
    }
}

/// Pings the systemd watchdog at half its interval when `WatchdogSec=` is set, and
/// only while the store responds to a query, so systemd restarts a daemon whose runtime
/// or database is stuck.
fn start_watchdog(store: Store) -> Option<tokio::task::JoinHandle<()>> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let period = Duration::from_micros(usec) / 2;
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        loop {
            ticker.tick().await;
            match tokio::time::timeout(period, store.ping()).await {
                Ok(Ok(())) => notify_systemd(&[sd_notify::NotifyState::Watchdog]),
                Ok(Err(err)) => error!(error = %err, "store check failed; not pinging the watchdog"),
                Err(_) => error!("store check timed out; not pinging the watchdog"),
            }
        }
    }))
}

/// Binds `api.address`, and warns when the API turns every request away because
/// `api.password` is empty.
async fn bind_api(config: &Config) -> anyhow::Result<TcpListener> {
    let address = config.api.address;
    let socket = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (api.address)"))?;
    if config.api.password.is_empty() {
        warn!(
            %address,
            "the management API is disabled until api.password is set: its Emails endpoints answer 401; \
             /healthz and /metrics still work"
        );
    }
    info!(%address, project_id = %config.api.project_id, service_id = %api::service_id(config), "management API listener bound");
    Ok(socket)
}
