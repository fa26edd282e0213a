//! Interoperability of the SMTP front end with a real client: lettre sends over a
//! loopback socket with STARTTLS and AUTH PLAIN to `faxgate::smtp::serve`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use faxgate::config::{AuthMode, Listener, Smtp, TlsMode};
use faxgate::number::Number;
use faxgate::smtp::{Handler, Recipient, Reply, SessionInfo, TlsConfig, serve};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A received message with the session facts the handler saw.
#[derive(Debug, Clone)]
struct Received {
    reverse_path: String,
    recipients: Vec<String>,
    message: Vec<u8>,
    tls: bool,
    auth_identity: Option<String>,
}

/// Accepts `alice@example.com` with password `secret` and numbers at `fax.example.com`.
#[derive(Default)]
struct RecordingHandler {
    received: Mutex<Vec<Received>>,
}

impl Handler for RecordingHandler {
    async fn mail_from(&self, _session: &SessionInfo, _reverse_path: &str) -> Result<(), Reply> {
        Ok(())
    }

    async fn rcpt_to(&self, _session: &SessionInfo, _reverse_path: &str, forward_path: &str) -> Result<Recipient, Reply> {
        let (local, domain) = forward_path.rsplit_once('@').unwrap_or((forward_path, ""));
        if domain != "fax.example.com" {
            return Err(Reply::new(550, "5.7.1", format!("relaying to {domain} is not permitted")));
        }
        Number::parse(local, phonenumber::country::Id::US)
            .map(Recipient::Fax)
            .map_err(|err| Reply::new(550, "5.1.3", format!("{err}, expected <number>@fax.example.com")))
    }

    async fn data(&self, session: &SessionInfo, reverse_path: &str, recipients: &[Recipient], message: Vec<u8>) -> Reply {
        self.received.lock().unwrap().push(Received {
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
        Reply::new(250, "2.0.0", "queued as job-1")
    }

    async fn authenticate(&self, _session: &SessionInfo, username: &str, password: &str) -> Result<bool, Reply> {
        Ok(username == "alice@example.com" && password == "secret")
    }
}

fn settings() -> Smtp {
    Smtp {
        max_message_size: 1024 * 1024,
        max_recipients: 5,
        max_connections: 10,
        max_connections_per_ip: 5,
        command_timeout: Duration::from_secs(30),
        message_timeout: Duration::from_secs(60),
        max_errors: 10,
        shutdown_grace: Duration::from_secs(2),
        tls_cert: None,
        tls_key: None,
        listeners: Vec::new(),
    }
}

#[tokio::test]
async fn lettre_sends_over_starttls_with_auth() {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, generated.cert.pem()).unwrap();
    std::fs::write(&key_path, generated.signing_key.serialize_pem()).unwrap();
    let tls = TlsConfig::load(&cert_path, &key_path).unwrap();

    let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let listener = Listener {
        address: socket.local_addr().unwrap(),
        tls: TlsMode::Starttls,
        auth: AuthMode::Required,
        allowed_clients: Vec::new(),
    };
    let handler = Arc::new(RecordingHandler::default());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let server = tokio::spawn(serve(
        vec![(socket, listener)],
        Arc::new(settings()),
        "fax.example.com",
        Some(tls),
        Arc::clone(&handler),
        shutdown_rx,
    ));

    let certificate = Certificate::from_pem(generated.cert.pem().as_bytes()).unwrap();
    let parameters =
        TlsParameters::builder("localhost".to_string()).add_root_certificate(certificate).build_rustls().unwrap();
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(Tls::Required(parameters))
        .credentials(Credentials::new("alice@example.com".to_string(), "secret".to_string()))
        .authentication(vec![Mechanism::Plain])
        .build();

    let from: Mailbox = "Alice <alice@example.com>".parse().unwrap();
    let email = Message::builder()
        .from(from.clone())
        .to("+14155550100@fax.example.com".parse().unwrap())
        .subject("fax")
        .body(".a line starting with a dot\r\nsecond line\r\n".to_string())
        .unwrap();
    let response = mailer.send(email).await.unwrap();
    assert!(response.is_positive());
    assert!(response.message().any(|line| line.contains("queued as job-1")));

    let rejected = Message::builder()
        .from(from)
        .to("someone@other.example".parse().unwrap())
        .subject("not a fax")
        .body("x".to_string())
        .unwrap();
    let err = mailer.send(rejected).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(err.to_string().contains("relaying to other.example is not permitted"), "{err}");

    let received = handler.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let message = &received[0];
    assert_eq!(message.reverse_path, "alice@example.com");
    assert_eq!(message.recipients, vec!["+14155550100".to_string()]);
    assert!(message.tls);
    assert_eq!(message.auth_identity.as_deref(), Some("alice@example.com"));
    let text = String::from_utf8_lossy(&message.message);
    assert!(text.contains("\r\n.a line starting with a dot\r\n"), "{text}");

    shutdown.send(true).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
}
