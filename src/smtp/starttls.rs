//! STARTTLS and the TLS handshake, also used right after accept on implicit TLS
//! listeners.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::{debug, error};

use super::connection::Stream;
use super::reply;
use super::session::{Session, SessionEnd, State, read_end};
use super::{Handler, Reply};

impl<S, H> Session<S, H>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    pub(super) async fn starttls(&mut self) -> Result<(), SessionEnd> {
        if !self.starttls_offered() {
            return self.reply(Reply::new(502, "5.5.1", "STARTTLS is not offered on this listener"));
        }
        if self.info.tls {
            return self.reply(reply::bad_sequence("TLS is already active"));
        }
        self.conn.queue(&Reply::new(220, "2.0.0", "Ready to start TLS"));
        self.conn.flush(Instant::now() + self.context.settings.command_timeout).await.map_err(read_end)?;
        // Bytes sent after STARTTLS before the handshake could be commands injected by a
        // man in the middle, which must not run as if they came over TLS.
        if let Some(discarded) = self.conn.discard_input() {
            debug!(discarded = %discarded, "discarded input sent after STARTTLS");
        }
        self.handshake().await?;
        // The client must start over as if newly connected.
        self.state = State::AwaitingHelo;
        self.info.helo = None;
        self.info.auth_identity = None;
        Ok(())
    }

    pub(super) async fn handshake(&mut self) -> Result<(), SessionEnd> {
        let Some(tls) = &self.context.tls else {
            error!("no TLS certificate loaded for a TLS listener; set smtp.tls_cert and smtp.tls_key");
            return Err(SessionEnd::TlsFailed);
        };
        let acceptor = tls.acceptor();
        let Stream::Plain(plain) = std::mem::replace(&mut self.conn.stream, Stream::Closed) else {
            return Err(SessionEnd::TlsFailed);
        };
        let timeout = self.context.settings.command_timeout;
        match tokio::time::timeout(timeout, acceptor.accept(plain)).await {
            Ok(Ok(stream)) => {
                self.conn.stream = Stream::Tls(Box::new(stream));
                self.info.tls = true;
                debug!("TLS established");
                Ok(())
            }
            Ok(Err(err)) => {
                debug!(error = %err, "TLS handshake failed");
                Err(SessionEnd::TlsFailed)
            }
            Err(_) => {
                debug!("TLS handshake timed out");
                Err(SessionEnd::TlsFailed)
            }
        }
    }
}
