//! The accept loop: client filtering, connection caps, one task per session, and
//! graceful shutdown.
//!
//! Rejections at accept time are written with a non-blocking `try_write` and the socket
//! is dropped, so a client that does not read can never stall the loop. On implicit TLS
//! listeners the rejection goes inside TLS, from a task of its own with a short
//! handshake timeout, so a TLS client can read it. Each session
//! runs in its own task, so idle connections cost memory but never delay other clients.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use super::connection::signalled;
use super::reply;
use super::session::{ServerContext, Session, SessionEnd};
use super::tls::TlsConfig;
use super::{Handler, Reply};
use crate::config::{self, TlsMode};

/// Pause after a failed accept, such as when the process is out of file descriptors,
/// so that the loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Time a rejected client of an implicit TLS listener has to complete the handshake and
/// read the rejection before the connection is closed.
const REJECTION_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Rejections sent over TLS at the same time. Past it, a rejected client of an implicit
/// TLS listener is closed without a reply, so that rejected clients cannot make the
/// server do many handshakes.
const MAX_TLS_REJECTIONS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "SMTP listener {address} uses tls = \"{mode}\" but no TLS certificate is loaded; set smtp.tls_cert and smtp.tls_key"
    )]
    TlsMissing { address: SocketAddr, mode: &'static str },
}

/// Serves SMTP on already bound listeners until `shutdown` turns true.
///
/// On shutdown it stops accepting, and sessions between commands with no mail
/// transaction open get `421 4.3.0` and close. A session with a transaction open is
/// served until the transaction ends, then gets `421 4.3.0`. Sessions still open when
/// `shutdown_grace` ends are cut. Returns when every session task has ended.
pub async fn serve<H: Handler>(
    listeners: Vec<(TcpListener, config::Listener)>,
    settings: Arc<config::Smtp>,
    hostname: &str,
    tls: Option<TlsConfig>,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    if tls.is_none()
        && let Some((_, listener)) = listeners.iter().find(|(_, l)| l.tls != TlsMode::None)
    {
        let mode = if listener.tls == TlsMode::Starttls { "starttls" } else { "implicit" };
        return Err(ServeError::TlsMissing { address: listener.address, mode });
    }
    let context = ServerContext {
        settings: Arc::clone(&settings),
        hostname: Arc::from(hostname),
        tls,
        handler,
        shutdown: shutdown.clone(),
    };
    let limits = Arc::new(ConnectionLimits::new(settings.max_connections, settings.max_connections_per_ip));
    let tls_rejections = Arc::new(Semaphore::new(MAX_TLS_REJECTIONS));
    let mut sessions = JoinSet::new();
    for (socket, listener) in &listeners {
        let address = socket.local_addr().map_or(listener.address, |a| a);
        info!(%address, tls = ?listener.tls, auth = ?listener.auth, "SMTP listener ready");
    }

    let mut next_listener = 0;
    loop {
        while let Some(joined) = sessions.try_join_next() {
            log_panic(joined);
        }
        let accepted = tokio::select! {
            biased;
            () = signalled(&mut shutdown) => break,
            accepted = accept_any(&listeners, &mut next_listener) => accepted,
        };
        let (index, stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                error!(error = %err, "accepting an SMTP connection failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let listener = &listeners[index].1;
        let ip = peer.ip().to_canonical();
        if !listener.allowed_clients.is_empty() && !listener.allowed_clients.iter().any(|net| net.contains(&ip)) {
            info!(%peer, "connection rejected, client not in allowed_clients");
            let reply = Reply::new(554, "5.7.1", format!("{ip} is not allowed to connect"));
            reject(stream, &reply, listener.tls, context.tls.as_ref(), &tls_rejections);
            continue;
        }
        let slot = match limits.acquire(ip) {
            Ok(slot) => slot,
            Err(limit) => {
                info!(%peer, limit = %limit, "connection rejected, too many connections");
                let reply = Reply::new(421, "4.7.0", format!("too many connections {limit}, try again later"));
                reject(stream, &reply, listener.tls, context.tls.as_ref(), &tls_rejections);
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            debug!(%peer, error = %err, "cannot set TCP_NODELAY");
        }
        let mut session = Session::new(stream, peer, listener, context.clone());
        sessions.spawn(async move {
            let _slot = slot;
            session.run().await
        });
    }

    drop(listeners);
    let open = sessions.len();
    info!(open_sessions = open, grace_seconds = settings.shutdown_grace.as_secs(), "SMTP shutting down");
    let drained = tokio::time::timeout(settings.shutdown_grace, async {
        while let Some(joined) = sessions.join_next().await {
            log_panic(joined);
        }
    })
    .await;
    if drained.is_err() {
        warn!(cut_sessions = sessions.len(), "SMTP sessions still open after the shutdown grace period, cutting them");
        sessions.shutdown().await;
    }
    info!("SMTP stopped");
    Ok(())
}

/// Logs a session task that panicked; sessions end normally otherwise.
fn log_panic(joined: Result<SessionEnd, tokio::task::JoinError>) {
    if let Err(err) = joined
        && err.is_panic()
    {
        error!(error = %err, "SMTP session task panicked");
    }
}

/// Accepts from whichever listener is ready, starting the scan at a rotating index so
/// that a busy listener cannot starve the others.
async fn accept_any(
    listeners: &[(TcpListener, config::Listener)],
    next: &mut usize,
) -> io::Result<(usize, TcpStream, SocketAddr)> {
    if listeners.is_empty() {
        std::future::pending::<()>().await;
    }
    poll_fn(|cx| {
        let count = listeners.len();
        for offset in 0..count {
            let index = (*next + offset) % count;
            if let Poll::Ready(result) = listeners[index].0.poll_accept(cx) {
                *next = (index + 1) % count;
                return Poll::Ready(result.map(|(stream, peer)| (index, stream, peer)));
            }
        }
        Poll::Pending
    })
    .await
}

/// Sends a one-line rejection and closes the connection, without making the accept
/// loop wait. On an implicit TLS listener the reply is sent after the handshake, by a
/// task bounded by [`REJECTION_HANDSHAKE_TIMEOUT`].
fn reject(stream: TcpStream, reply: &Reply, mode: TlsMode, tls: Option<&TlsConfig>, tls_rejections: &Arc<Semaphore>) {
    let mut bytes = Vec::new();
    reply::encode(reply, &mut bytes);
    if mode != TlsMode::Implicit {
        if let Err(err) = stream.try_write(&bytes) {
            debug!(error = %err, "could not send the rejection");
        }
        return;
    }

    // A reply in clear text would reach a TLS client as a handshake error.
    let Some(tls) = tls else {
        return;
    };
    let Ok(permit) = Arc::clone(tls_rejections).try_acquire_owned() else {
        debug!("too many rejections in TLS at once, closing without a reply");
        return;
    };
    let acceptor = tls.acceptor();
    tokio::spawn(async move {
        let _permit = permit;
        let sent = tokio::time::timeout(REJECTION_HANDSHAKE_TIMEOUT, async {
            let mut stream = acceptor.accept(stream).await?;
            stream.write_all(&bytes).await?;
            stream.shutdown().await
        })
        .await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(err)) => debug!(error = %err, "could not send the rejection over TLS"),
            Err(_) => debug!("TLS handshake for the rejection timed out"),
        }
    });
}

/// Open connection counts, over all listeners and per client IP.
struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// The reason a connection is over a cap, phrased to follow "too many connections".
#[derive(Debug)]
enum LimitExceeded {
    Total(usize),
    PerIp(IpAddr, usize),
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitExceeded::Total(max) => write!(f, "to this server (limit {max})"),
            LimitExceeded::PerIp(ip, max) => write!(f, "from {ip} (limit {max})"),
        }
    }
}

impl ConnectionLimits {
    fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnectionLimits { max_total, max_per_ip, counts: Mutex::new(Counts::default()) }
    }

    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, LimitExceeded> {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if counts.total >= self.max_total {
            return Err(LimitExceeded::Total(self.max_total));
        }
        let per_ip = counts.per_ip.entry(ip).or_insert(0);
        if *per_ip >= self.max_per_ip {
            return Err(LimitExceeded::PerIp(ip, self.max_per_ip));
        }
        *per_ip += 1;
        counts.total += 1;
        Ok(ConnectionSlot { limits: Arc::clone(self), ip })
    }
}

/// One open connection in [`ConnectionLimits`]; released on drop, also when the session
/// task is aborted.
struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.limits.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(count) = counts.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}
