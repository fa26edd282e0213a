//! The byte stream under a session: plain or TLS, with a bounded input buffer, an
//! output buffer of queued replies, and reads that end at a deadline or at shutdown.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use super::reply::{self, quote};
use super::{MAX_LINE_LENGTH, Reply};

/// Bytes read from the network at once. The input buffer contains at most
/// [`MAX_LINE_LENGTH`] plus this many bytes.
pub(super) const READ_CHUNK: usize = 16 * 1024;

/// A plain stream, or the same stream after a TLS handshake.
pub(super) enum Stream<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    /// After a failed handshake, which consumes the plain stream.
    Closed,
}

/// Reason a read returned no bytes.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The peer closed the connection.
    Closed,
    /// No command arrived within the command timeout.
    CommandTimeout,
    /// The message transfer did not end within the message timeout.
    MessageTimeout,
    /// The server is shutting down and the session is between commands.
    Shutdown,
    Io(io::Error),
}

/// One unit of command input.
pub(super) enum Line {
    /// A complete line, with its line ending.
    Complete(Vec<u8>),
    /// A line longer than [`MAX_LINE_LENGTH`], already discarded up to its LF.
    TooLong,
}

/// Deadlines of one read.
#[derive(Clone, Copy)]
pub(super) struct Deadlines {
    pub command: Instant,
    pub message: Option<Instant>,
}

pub(super) struct Connection<S> {
    pub stream: Stream<S>,
    /// Bytes received and not yet processed.
    pub input: Vec<u8>,
    /// Replies queued and not yet sent.
    output: Vec<u8>,
    chunk: Box<[u8]>,
    /// Whether the input is inside a line longer than [`MAX_LINE_LENGTH`], whose bytes
    /// are dropped up to its LF.
    discarding_line: bool,
    /// Largest size the input buffer reached.
    pub peak_input: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S) -> Self {
        Connection {
            stream: Stream::Plain(stream),
            input: Vec::with_capacity(READ_CHUNK),
            output: Vec::new(),
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
            discarding_line: false,
            peak_input: 0,
        }
    }

    pub fn queue(&mut self, reply: &Reply) {
        reply::encode(reply, &mut self.output);
    }

    /// Sends the queued replies; gives up at the command deadline, because a client
    /// that does not read must not hold the session forever.
    pub async fn flush(&mut self, deadline: Instant) -> Result<(), ReadError> {
        if self.output.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.output).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout_at(deadline, write).await {
            Ok(Ok(())) => {
                self.output.clear();
                Ok(())
            }
            Ok(Err(err)) => Err(ReadError::Io(err)),
            Err(_) => Err(ReadError::CommandTimeout),
        }
    }

    /// Takes the next command line from the input, if a whole one is there. Bytes of an
    /// over-long line are dropped as they arrive, so memory stays bounded.
    pub fn take_line(&mut self) -> Option<Line> {
        let newline = self.input.iter().position(|&b| b == b'\n');
        if self.discarding_line {
            return match newline {
                Some(pos) => {
                    self.input.drain(..=pos);
                    self.discarding_line = false;
                    Some(Line::TooLong)
                }
                None => {
                    self.input.clear();
                    None
                }
            };
        }
        match newline {
            Some(pos) if pos < MAX_LINE_LENGTH => Some(Line::Complete(self.input.drain(..=pos).collect())),
            Some(pos) => {
                self.input.drain(..=pos);
                Some(Line::TooLong)
            }
            None if self.input.len() >= MAX_LINE_LENGTH => {
                self.input.clear();
                self.discarding_line = true;
                None
            }
            None => None,
        }
    }

    /// Flushes the queued replies, then reads more input. With `shutdown`, a shutdown
    /// signal ends the wait too.
    pub async fn fill(
        &mut self,
        deadlines: Deadlines,
        shutdown: Option<&mut watch::Receiver<bool>>,
    ) -> Result<(), ReadError> {
        self.flush(deadlines.command).await?;
        let (deadline, timeout) = match deadlines.message {
            Some(message) if message < deadlines.command => (message, ReadError::MessageTimeout),
            _ => (deadlines.command, ReadError::CommandTimeout),
        };
        let read = tokio::time::timeout_at(deadline, self.stream.read(&mut self.chunk));
        let result = match shutdown {
            Some(shutdown) => tokio::select! {
                biased;
                () = signalled(shutdown) => return Err(ReadError::Shutdown),
                result = read => result,
            },
            None => read.await,
        };
        let count = match result {
            Err(_) => return Err(timeout),
            Ok(Err(err)) => return Err(ReadError::Io(err)),
            Ok(Ok(0)) => return Err(ReadError::Closed),
            Ok(Ok(count)) => count,
        };
        self.input.extend_from_slice(&self.chunk[..count]);
        self.peak_input = self.peak_input.max(self.input.len());
        Ok(())
    }

    /// Drops buffered input; returns a printable sample of it for the log.
    pub fn discard_input(&mut self) -> Option<String> {
        if self.input.is_empty() {
            return None;
        }
        let sample = quote(&self.input);
        self.input.clear();
        self.discarding_line = false;
        Some(sample)
    }

    /// Sends the queued replies and closes the write side, so the peer reads end of file.
    pub async fn shutdown(&mut self, deadline: Instant) {
        let _ = self.flush(deadline).await;
        let _ = tokio::time::timeout_at(deadline, self.stream.shutdown()).await;
    }
}

/// Completes once the shutdown flag is true. A dropped sender never signals.
pub(super) async fn signalled(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed after a failed TLS handshake")
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}
