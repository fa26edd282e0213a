//! Session and server tests: sessions driven over `tokio::io::duplex` with a recording
//! handler, and `serve` over loopback sockets.

mod commands;
mod limits;
mod listener;
mod message;
mod tls;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Handler, Recipient, Reply, ServerContext, Session, SessionEnd, SessionInfo, TlsConfig};
use crate::config::{self, AuthMode, TlsMode};
use crate::number::Number;

pub(super) const HOSTNAME: &str = "fax.example.com";
pub(super) const PASSWORD: &str = "secret";

/// A handler call, as the fake handler recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Call {
    MailFrom { reverse_path: String, auth_identity: Option<String> },
    RcptTo { reverse_path: String, forward_path: String },
    Data { reverse_path: String, recipients: Vec<String>, message: Vec<u8>, tls: bool, auth_identity: Option<String> },
    Authenticate { username: String },
}

/// A handler that records calls. It rejects the sender `blocked@example.com`,
/// recipients outside `fax.example.com` and local parts that are not numbers, takes
/// `<postmaster>` as the postmaster, and
/// accepts the user `alice@example.com` with [`PASSWORD`].
#[derive(Default)]
pub(super) struct FakeHandler {
    calls: Mutex<Vec<Call>>,
    jobs: AtomicU32,
}

impl FakeHandler {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn messages(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|call| matches!(call, Call::Data { .. })).collect()
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }
}

impl Handler for FakeHandler {
    async fn mail_from(&self, session: &SessionInfo, reverse_path: &str) -> Result<(), Reply> {
        self.record(Call::MailFrom {
            reverse_path: reverse_path.to_string(),
            auth_identity: session.auth_identity.clone(),
        });
        if reverse_path == "blocked@example.com" {
            return Err(Reply::new(550, "5.7.1", format!("sender {reverse_path} may not send faxes")));
        }
        Ok(())
    }

    async fn rcpt_to(&self, _session: &SessionInfo, reverse_path: &str, forward_path: &str) -> Result<Recipient, Reply> {
        self.record(Call::RcptTo { reverse_path: reverse_path.to_string(), forward_path: forward_path.to_string() });
        if forward_path.is_empty() {
            return Ok(Recipient::Postmaster);
        }
        let (local, domain) = forward_path.rsplit_once('@').unwrap_or((forward_path, ""));
        if domain != HOSTNAME {
            return Err(Reply::new(550, "5.7.1", format!("relaying to {domain} is not permitted")));
        }
        Number::parse(local, phonenumber::country::Id::US)
            .map(Recipient::Fax)
            .map_err(|err| Reply::new(550, "5.1.3", format!("{err}, expected <number>@{HOSTNAME}")))
    }

    async fn data(&self, session: &SessionInfo, reverse_path: &str, recipients: &[Recipient], message: Vec<u8>) -> Reply {
        self.record(Call::Data {
            reverse_path: reverse_path.to_string(),
            recipients: recipients
                .iter()
                .map(|recipient| match recipient {
                    Recipient::Fax(number) => number.to_string(),
                    Recipient::Postmaster => "postmaster".to_string(),
                })
                .collect(),
            message,
            tls: session.tls,
            auth_identity: session.auth_identity.clone(),
        });
        let job = self.jobs.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::new(250, "2.0.0", format!("queued as job-{job}"))
    }

    async fn authenticate(&self, _session: &SessionInfo, username: &str, password: &str) -> Result<bool, Reply> {
        self.record(Call::Authenticate { username: username.to_string() });
        if username == "down@example.com" {
            return Err(Reply::new(454, "4.7.0", "temporary authentication failure"));
        }
        Ok(username.eq_ignore_ascii_case("alice@example.com") && password == PASSWORD)
    }
}

/// Small limits, so that tests reach them quickly.
pub(super) fn settings() -> config::Smtp {
    config::Smtp {
        max_message_size: 1000,
        max_recipients: 3,
        max_connections: 10,
        max_connections_per_ip: 2,
        command_timeout: Duration::from_secs(30),
        message_timeout: Duration::from_secs(60),
        max_errors: 10,
        shutdown_grace: Duration::from_secs(5),
        tls_cert: None,
        tls_key: None,
        listeners: Vec::new(),
    }
}

pub(super) fn listener(tls: TlsMode, auth: AuthMode) -> config::Listener {
    config::Listener { address: "127.0.0.1:0".parse().unwrap(), tls, auth, allowed_clients: Vec::new() }
}

/// A session running in its own task, and the client end of its stream.
pub(super) struct Harness {
    pub client: Client<DuplexStream>,
    pub handler: Arc<FakeHandler>,
    pub shutdown: watch::Sender<bool>,
    /// Returns how the session ended and its peak input buffer size.
    pub task: JoinHandle<(SessionEnd, usize)>,
}

pub(super) fn start(settings: config::Smtp, listener: config::Listener, tls: Option<TlsConfig>) -> Harness {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let handler = Arc::new(FakeHandler::default());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let context = ServerContext {
        settings: Arc::new(settings),
        hostname: Arc::from(HOSTNAME),
        tls,
        handler: Arc::clone(&handler),
        shutdown: shutdown_rx,
    };
    let peer = "192.0.2.10:40000".parse().unwrap();
    let mut session = Session::new(server, peer, &listener, context);
    let task = tokio::spawn(async move {
        let end = session.run().await;
        (end, session.peak_buffered())
    });
    Harness { client: Client::new(client), handler, shutdown, task }
}

/// Starts a plain session with default settings and reads the greeting.
pub(super) async fn start_plain() -> Harness {
    let mut harness = start(settings(), listener(TlsMode::None, AuthMode::None), None);
    harness.client.expect("220 ").await;
    harness
}

/// An SMTP client that reads whole replies.
pub(super) struct Client<S> {
    stream: BufReader<S>,
}

/// Maximum wait for a reply, longer than every server timeout used in the tests.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Self {
        Client { stream: BufReader::new(stream) }
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.get_mut().write_all(bytes.as_ref()).await.unwrap();
    }

    /// Reads one reply; its lines are joined with `\n`, without CR LF.
    pub async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read_line(&mut line)).await;
            let count = read.expect("no reply in time").expect("reading a reply failed");
            assert!(count > 0, "connection closed, replies so far: {lines:?}");
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// Reads one reply and checks that it starts with `prefix`.
    pub async fn expect(&mut self, prefix: &str) -> String {
        let reply = self.reply().await;
        assert!(reply.starts_with(prefix), "expected a reply starting with {prefix:?}, got {reply:?}");
        reply
    }

    /// Sends `command` and checks that the reply starts with `prefix`.
    pub async fn command(&mut self, command: &str, prefix: &str) -> String {
        self.send(format!("{command}\r\n")).await;
        self.expect(prefix).await
    }

    /// Reports whether the server closed the connection with nothing more to read.
    pub async fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(REPLY_TIMEOUT, self.stream.read_to_end(&mut rest)).await;
        matches!(read, Ok(Ok(0)))
    }

    /// Reports whether bytes from the server are buffered but not read yet.
    pub fn has_buffered(&self) -> bool {
        !self.stream.buffer().is_empty()
    }

    pub fn into_inner(self) -> S {
        self.stream.into_inner()
    }
}

/// Sends EHLO, MAIL and one RCPT and checks the replies.
pub(super) async fn open_transaction<S: AsyncRead + AsyncWrite + Unpin>(client: &mut Client<S>) {
    client.command("EHLO client.example", "250").await;
    client.command("MAIL FROM:<sender@example.com>", "250 2.1.0").await;
    client.command("RCPT TO:<+14155550100@fax.example.com>", "250 2.1.5").await;
}
