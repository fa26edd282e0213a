//! `faxgate run`: opens the store, binds the listeners, starts the queue workers, the
//! management API and the SMTP server, notifies systemd when it is ready, and handles
//! signals.
//!
//! SIGTERM and SIGINT stop accepting connections; open sessions get the grace period of
//! `smtp.shutdown_grace`, the workers finish the submissions in flight, and the process
//! exits. SIGHUP reloads the TLS certificate and key.

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
use crate::queue::{self, Queue, RetryPolicy};
use crate::smtp;
use crate::store::Store;

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
        backend,
        RetryPolicy::from_config(&config.fax),
        config.fax.workers,
        shutdown_rx.clone(),
    ));
    let intake = Arc::new(Intake::new(config.clone(), mappings, queue));
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
    let watchdog = start_watchdog(store.clone());
    info!(data_dir = %config.gateway.data_dir.display(), backend = ?config.fax.backend, "faxgate started");

    wait_for_stop(tls.as_ref()).await;
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
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    info!("faxgate stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT, reloading TLS on each SIGHUP meanwhile.
async fn wait_for_stop(tls: Option<&smtp::TlsConfig>) {
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
                match tls {
                    Some(tls) => match tls.reload() {
                        Ok(()) => info!("TLS certificate reloaded"),
                        Err(err) => error!(error = %err, "TLS reload failed; the previous certificate stays in use"),
                    },
                    None => info!("SIGHUP: no TLS certificate configured, nothing to reload"),
                }
                notify_systemd(&[sd_notify::NotifyState::Ready]);
            }
        }
    }
}

fn notify_systemd(state: &[sd_notify::NotifyState]) {
    if let Err(err) = sd_notify::notify(false, state) {
        warn!(error = %err, "cannot notify systemd");
    }
}

/// Pings the systemd watchdog at half its interval when `WatchdogSec=` is set, and
/// only while the store answers a query, so systemd restarts a daemon whose runtime
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
