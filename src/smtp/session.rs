//! One SMTP session: the command loop, the session state and the commands that do not
//! carry a message or credentials. MAIL and RCPT are in `envelope`, DATA and BDAT in
//! `data`, AUTH in `auth` and STARTTLS in `starttls`.
//!
//! Pipelining: the session replies to every complete command in the input buffer in
//! order, and sends the queued replies when the buffer contains no further complete
//! command, that is right before it waits for the network.

use std::sync::Arc;
use std::time::Duration;

use smtp_proto::Request;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span};

use super::connection::{Connection, Deadlines, Line, ReadError};
use super::reply::{self, parse_error_reply, quote, trim_line_end};
use super::tls::TlsConfig;
use super::transfer::Body;
use super::{Handler, MAX_LINE_LENGTH, Recipient, Reply, SessionInfo};
use crate::config::{self, AuthMode, TlsMode};

/// How long the closing reply (221 or 421) may take to send before the connection is
/// dropped anyway. Short, because the session is over either way.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings and handles shared by every session of a server.
pub struct ServerContext<H> {
    pub settings: Arc<config::Smtp>,
    /// Name in the greeting and in closing replies.
    pub hostname: Arc<str>,
    /// Needed by listeners with `tls = "starttls"` or `"implicit"`.
    pub tls: Option<TlsConfig>,
    pub handler: Arc<H>,
    /// Shutdown flag: `true` makes sessions close with `421 4.3.0` between commands
    /// once no mail transaction is open.
    pub shutdown: watch::Receiver<bool>,
}

impl<H> Clone for ServerContext<H> {
    fn clone(&self) -> Self {
        ServerContext {
            settings: Arc::clone(&self.settings),
            hostname: Arc::clone(&self.hostname),
            tls: self.tls.clone(),
            handler: Arc::clone(&self.handler),
            shutdown: self.shutdown.clone(),
        }
    }
}

/// Reason a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client sent QUIT and got `221`.
    Quit,
    /// The client closed the connection without QUIT.
    ClientClosed,
    /// `421 4.4.2`: no command within `command_timeout`.
    CommandTimeout,
    /// `421 4.4.2`: a message transfer took longer than `message_timeout`.
    MessageTimeout,
    /// `421 4.7.0`: `max_errors` commands failed.
    TooManyErrors,
    /// `421 4.3.0`: the server is shutting down.
    Shutdown,
    /// The TLS handshake failed or timed out.
    TlsFailed,
    /// Reading or writing failed.
    Io(std::io::ErrorKind),
}

/// Protocol state of a session.
pub(super) enum State {
    /// Before EHLO or HELO, also right after STARTTLS.
    AwaitingHelo,
    /// After EHLO or HELO, outside a mail transaction.
    Ready,
    /// After an accepted MAIL FROM.
    Mail(Transaction),
}

/// One mail transaction, from MAIL FROM to the reply on the message.
pub(super) struct Transaction {
    pub reverse_path: String,
    /// Accepted recipients, each once.
    pub recipients: Vec<Recipient>,
    /// Set by the first BDAT of the transaction.
    pub chunks: Option<Chunks>,
}

/// A BDAT message being received over several commands.
pub(super) struct Chunks {
    pub body: Body,
    /// End of the message timeout, counted from the first BDAT.
    pub deadline: Instant,
}

/// One SMTP session over a stream such as a `TcpStream` or a `tokio::io::duplex` end.
pub struct Session<S, H> {
    pub(super) conn: Connection<S>,
    pub(super) context: ServerContext<H>,
    pub(super) listener_tls: TlsMode,
    pub(super) listener_auth: AuthMode,
    pub(super) info: SessionInfo,
    pub(super) state: State,
    /// Commands that got a 4xx or 5xx reply, not counting decisions on whole messages.
    errors: u32,
    pub(super) messages_accepted: u32,
    pub(super) messages_rejected: u32,
}

impl<S, H> Session<S, H>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    pub fn new(stream: S, peer: std::net::SocketAddr, listener: &config::Listener, context: ServerContext<H>) -> Self {
        Session {
            conn: Connection::new(stream),
            context,
            listener_tls: listener.tls,
            listener_auth: listener.auth,
            info: SessionInfo {
                session_id: ulid::Ulid::new().to_string(),
                peer,
                helo: None,
                tls: false,
                auth_identity: None,
            },
            state: State::AwaitingHelo,
            errors: 0,
            messages_accepted: 0,
            messages_rejected: 0,
        }
    }

    pub fn session_id(&self) -> &str {
        &self.info.session_id
    }

    /// Largest number of received bytes held unprocessed at once. Stays at most
    /// [`MAX_LINE_LENGTH`] plus one read of 16 KiB, whatever the client sends.
    pub fn peak_buffered(&self) -> usize {
        self.conn.peak_input
    }

    /// Runs the session until it ends, in its own `smtp` tracing span.
    pub async fn run(&mut self) -> SessionEnd {
        let span = info_span!("smtp", session_id = %self.info.session_id, peer = %self.info.peer);
        let end = self.converse().instrument(span.clone()).await;
        span.in_scope(|| {
            info!(
                end = ?end,
                tls = self.info.tls,
                auth_identity = self.info.auth_identity.as_deref(),
                messages_accepted = self.messages_accepted,
                messages_rejected = self.messages_rejected,
                "session ended"
            );
        });
        end
    }

    async fn converse(&mut self) -> SessionEnd {
        debug!(listener_tls = ?self.listener_tls, "session started");
        let end = match self.greet_and_serve().await {
            Ok(()) => SessionEnd::Quit,
            Err(end) => end,
        };
        if let Some(farewell) = self.farewell(end) {
            self.conn.queue(&farewell);
        }
        self.conn.shutdown(Instant::now() + FAREWELL_TIMEOUT).await;
        end
    }

    async fn greet_and_serve(&mut self) -> Result<(), SessionEnd> {
        if self.listener_tls == TlsMode::Implicit {
            self.handshake().await?;
        }
        let greeting = format!("{} ESMTP faxgate", self.context.hostname);
        self.conn.queue(&Reply::new(220, "", greeting));
        loop {
            let line = self.next_line(true).await?;
            if self.dispatch(line).await? == Flow::Quit {
                return Ok(());
            }
        }
    }

    /// Returns the reply to send before closing, if the way the session ends calls for one.
    fn farewell(&self, end: SessionEnd) -> Option<Reply> {
        let hostname = &self.context.hostname;
        match end {
            SessionEnd::Quit => Some(Reply::new(221, "2.0.0", format!("{hostname} closing connection"))),
            SessionEnd::CommandTimeout => {
                Some(Reply::new(421, "4.4.2", format!("{hostname} timeout, closing connection")))
            }
            SessionEnd::MessageTimeout => Some(Reply::new(
                421,
                "4.4.2",
                format!(
                    "{hostname} timeout, the message did not arrive within {} seconds, closing connection",
                    self.context.settings.message_timeout.as_secs()
                ),
            )),
            SessionEnd::TooManyErrors => Some(Reply::new(421, "4.7.0", "too many errors, closing connection")),
            SessionEnd::Shutdown => Some(Reply::new(421, "4.3.0", format!("{hostname} shutting down"))),
            SessionEnd::ClientClosed | SessionEnd::TlsFailed | SessionEnd::Io(_) => None,
        }
    }

    /// Waits for the next command line, or for the next line of an AUTH exchange when
    /// `between_commands` is false. Shutdown ends the wait only between commands and
    /// outside a mail transaction, so that an exchange or a transaction in progress can
    /// finish. The listener cuts sessions still open when the shutdown grace period ends.
    pub(super) async fn next_line(&mut self, between_commands: bool) -> Result<Line, SessionEnd> {
        let command_deadline = Instant::now() + self.context.settings.command_timeout;
        let in_transaction = matches!(self.state, State::Mail(_));
        let watch_shutdown = between_commands && !in_transaction;
        loop {
            if watch_shutdown && *self.context.shutdown.borrow() {
                return Err(SessionEnd::Shutdown);
            }
            if let Some(line) = self.conn.take_line() {
                return Ok(line);
            }
            let deadlines = Deadlines { command: command_deadline, message: self.message_deadline() };
            let shutdown = watch_shutdown.then_some(&mut self.context.shutdown);
            self.conn.fill(deadlines, shutdown).await.map_err(read_end)?;
        }
    }

    /// Reads more input inside a message transfer.
    pub(super) async fn fill_message(&mut self, message_deadline: Instant) -> Result<(), SessionEnd> {
        let deadlines = Deadlines {
            command: Instant::now() + self.context.settings.command_timeout,
            message: Some(message_deadline),
        };
        self.conn.fill(deadlines, None).await.map_err(read_end)
    }

    fn message_deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Mail(Transaction { chunks: Some(chunks), .. }) => Some(chunks.deadline),
            _ => None,
        }
    }

    /// Queues the reply to a command, and counts it against `max_errors` when negative.
    pub(super) fn reply(&mut self, reply: Reply) -> Result<(), SessionEnd> {
        let failed = !reply.is_positive();
        self.conn.queue(&reply);
        if failed {
            self.errors += 1;
            if self.errors >= self.context.settings.max_errors {
                info!(errors = self.errors, "too many errors");
                return Err(SessionEnd::TooManyErrors);
            }
        }
        Ok(())
    }

    /// Queues a reply that is not counted against `max_errors`, such as the decision on
    /// a whole message.
    pub(super) fn queue(&mut self, reply: &Reply) {
        self.conn.queue(reply);
    }

    async fn dispatch(&mut self, line: Line) -> Result<Flow, SessionEnd> {
        let line = match line {
            Line::Complete(line) => line,
            Line::TooLong => {
                debug!(max = MAX_LINE_LENGTH, "command line too long");
                self.reply(reply::line_too_long(MAX_LINE_LENGTH))?;
                return Ok(Flow::Continue);
            }
        };
        let request = match Request::parse(&mut line.iter()) {
            Ok(request) => request.into_owned(),
            Err(err) => {
                let reply = parse_error_reply(&line, err);
                debug!(command = %quote(trim_line_end(&line)), reply = %reply, "invalid command");
                self.reply(reply)?;
                return Ok(Flow::Continue);
            }
        };
        match request {
            Request::Ehlo { host } => self.hello(host, true)?,
            Request::Helo { host } => self.hello(host, false)?,
            Request::Mail { from } => self.mail(from).await?,
            Request::Rcpt { to } => self.rcpt(to).await?,
            Request::Data => self.data().await?,
            Request::Bdat { chunk_size, is_last } => self.bdat(chunk_size, is_last).await?,
            Request::Auth { mechanism, initial_response } => self.auth(mechanism, initial_response).await?,
            Request::StartTls => self.starttls().await?,
            Request::Rset => {
                self.reset_transaction();
                self.reply(reply::ok("OK"))?;
            }
            Request::Noop { .. } => self.reply(reply::ok("OK"))?,
            Request::Quit => return Ok(Flow::Quit),
            Request::Vrfy { .. } => {
                self.reply(Reply::new(252, "2.5.0", "cannot VRFY user, but will accept message and attempt delivery"))?
            }
            Request::Help { .. } => {
                let help = self.help_text();
                self.reply(Reply::new(214, "2.0.0", help))?
            }
            other => {
                let name = other.name();
                debug!(command = name, "command not implemented");
                self.reply(Reply::new(502, "5.5.1", format!("command {name} is not implemented")))?;
            }
        }
        Ok(Flow::Continue)
    }

    fn hello(&mut self, host: String, extended: bool) -> Result<(), SessionEnd> {
        let hostname = Arc::clone(&self.context.hostname);
        let helo_domain = quote(host.as_bytes());
        self.reset_transaction();
        self.state = State::Ready;
        self.info.helo = Some(host);
        if !extended {
            return self.reply(Reply::new(250, "", format!("{hostname} Hello {helo_domain}")));
        }
        let mut lines = vec![
            format!("{hostname} Hello {helo_domain}"),
            "PIPELINING".to_string(),
            format!("SIZE {}", self.context.settings.max_message_size),
            "8BITMIME".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "SMTPUTF8".to_string(),
            "CHUNKING".to_string(),
        ];
        if self.starttls_offered() && !self.info.tls {
            lines.push("STARTTLS".to_string());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        self.reply(Reply::new(250, "", lines.join("\n")))
    }

    /// Lists the commands this session accepts now; STARTTLS and AUTH only when EHLO
    /// would advertise them.
    fn help_text(&self) -> String {
        let mut text = "commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP".to_string();
        if self.starttls_offered() && !self.info.tls {
            text.push_str(" STARTTLS");
        }
        if self.auth_offered() {
            text.push_str(" AUTH");
        }
        text
    }

    pub(super) fn starttls_offered(&self) -> bool {
        self.listener_tls == TlsMode::Starttls && self.context.tls.is_some()
    }

    /// AUTH is offered only over TLS, so that passwords never cross the network in clear.
    pub(super) fn auth_offered(&self) -> bool {
        self.listener_auth != AuthMode::None && self.info.tls
    }

    /// Ends the mail transaction, keeping EHLO and AUTH.
    pub(super) fn reset_transaction(&mut self) {
        if let State::Mail(_) = self.state {
            self.state = State::Ready;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

pub(super) fn read_end(err: ReadError) -> SessionEnd {
    match err {
        ReadError::Closed => SessionEnd::ClientClosed,
        ReadError::CommandTimeout => SessionEnd::CommandTimeout,
        ReadError::MessageTimeout => SessionEnd::MessageTimeout,
        ReadError::Shutdown => SessionEnd::Shutdown,
        ReadError::Io(err) => {
            debug!(error = %err, "connection failed");
            SessionEnd::Io(err.kind())
        }
    }
}
