//! STARTTLS, implicit TLS, certificate reload and AUTH, over real TLS handshakes with
//! a certificate made by rcgen.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::*;

/// A self-signed certificate for `localhost`, written as PEM files.
struct TestCertificate {
    dir: tempfile::TempDir,
    der: rustls::pki_types::CertificateDer<'static>,
}

impl TestCertificate {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certificate = TestCertificate { dir, der: rustls::pki_types::CertificateDer::from(Vec::new()) };
        certificate.regenerate()
    }

    /// Writes a new certificate and key over the files.
    fn regenerate(mut self) -> Self {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(self.cert_path(), generated.cert.pem()).unwrap();
        std::fs::write(self.key_path(), generated.signing_key.serialize_pem()).unwrap();
        self.der = generated.cert.der().clone();
        self
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    fn load(&self) -> TlsConfig {
        TlsConfig::load(&self.cert_path(), &self.key_path()).unwrap()
    }

    fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

async fn connect_tls(certificate: &TestCertificate, client: Client<DuplexStream>) -> Client<TlsStream<DuplexStream>> {
    assert!(!client.has_buffered(), "the server sent bytes between 220 and the TLS handshake");
    let server_name = ServerName::try_from("localhost").unwrap();
    let stream = certificate.connector().connect(server_name, client.into_inner()).await.unwrap();
    Client::new(stream)
}

/// A session on a STARTTLS listener, after STARTTLS and EHLO over TLS.
async fn start_after_starttls(auth: AuthMode) -> (Harness, Client<TlsStream<DuplexStream>>, TestCertificate) {
    let certificate = TestCertificate::new();
    let mut harness = start(settings(), listener(TlsMode::Starttls, auth), Some(certificate.load()));
    harness.client.expect("220 ").await;
    harness.client.command("EHLO client.example", "250").await;
    harness.client.command("STARTTLS", "220 2.0.0").await;
    let plain = std::mem::replace(&mut harness.client, Client::new(tokio::io::duplex(1).0));
    let mut client = connect_tls(&certificate, plain).await;
    client.command("EHLO client.example", "250").await;
    (harness, client, certificate)
}

fn plain_response(username: &str, password: &str) -> String {
    BASE64.encode(format!("\0{username}\0{password}"))
}

#[tokio::test]
async fn starttls_discards_injected_commands_and_resets() {
    let certificate = TestCertificate::new();
    let mut harness = start(settings(), listener(TlsMode::Starttls, AuthMode::Optional), Some(certificate.load()));
    harness.client.expect("220 ").await;
    let ehlo = harness.client.command("EHLO client.example", "250").await;
    assert!(ehlo.lines().any(|line| line.ends_with("STARTTLS")), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "AUTH offered before TLS: {ehlo}");
    harness.client.command("MAIL FROM:<sender@example.com>", "250").await;

    harness.client.send("STARTTLS\r\nRSET\r\n").await;
    assert_eq!(harness.client.reply().await, "220 2.0.0 Ready to start TLS");
    let plain = std::mem::replace(&mut harness.client, Client::new(tokio::io::duplex(1).0));
    let mut client = connect_tls(&certificate, plain).await;

    // The first reply over TLS answers this command: RSET was never answered. MAIL is
    // out of order because STARTTLS forgot EHLO.
    client.command("MAIL FROM:<sender@example.com>", "503 5.5.1").await;
    let ehlo = client.command("EHLO client.example", "250-").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(ehlo.lines().any(|line| line.ends_with("AUTH PLAIN LOGIN")), "{ehlo}");
    client.command("STARTTLS", "503 5.5.1").await;

    client.command("MAIL FROM:<sender@example.com>", "250").await;
    client.command("RCPT TO:<+14155550100@fax.example.com>", "250").await;
    client.command("DATA", "354").await;
    client.send("x\r\n.\r\n").await;
    client.expect("250 2.0.0").await;
    let messages = harness.handler.messages();
    assert!(matches!(messages.as_slice(), [Call::Data { tls: true, .. }]), "{messages:?}");
}

#[tokio::test]
async fn starttls_not_offered_without_tls_listener() {
    let mut harness = start_plain().await;
    harness.client.command("STARTTLS", "502 5.5.1").await;
}

#[tokio::test]
async fn failed_handshake_ends_session() {
    let certificate = TestCertificate::new();
    let mut harness = start(settings(), listener(TlsMode::Starttls, AuthMode::None), Some(certificate.load()));
    harness.client.expect("220 ").await;
    harness.client.command("STARTTLS", "220 2.0.0").await;
    harness.client.send("this is not a TLS client hello\r\n").await;
    let (end, _) = harness.task.await.unwrap();
    assert_eq!(end, SessionEnd::TlsFailed);
}

#[tokio::test]
async fn implicit_tls_greets_over_tls() {
    let certificate = TestCertificate::new();
    let harness = start(settings(), listener(TlsMode::Implicit, AuthMode::Optional), Some(certificate.load()));
    let mut client = connect_tls(&certificate, harness.client).await;
    client.expect("220 fax.example.com ESMTP").await;
    let ehlo = client.command("EHLO client.example", "250").await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
}

#[tokio::test]
async fn reload_replaces_certificate_and_keeps_old_on_error() {
    let certificate = TestCertificate::new();
    let config = certificate.load();
    let before = config.server_config();
    let certificate = certificate.regenerate();
    config.reload().unwrap();
    assert!(!Arc::ptr_eq(&before, &config.server_config()));

    let current = config.server_config();
    std::fs::write(certificate.key_path(), "not a key").unwrap();
    let err = config.reload().unwrap_err();
    assert!(err.to_string().contains("key.pem"), "{err}");
    assert!(Arc::ptr_eq(&current, &config.server_config()));

    // Handshakes go on with the kept configuration, which trusts the new certificate.
    let harness = start(settings(), listener(TlsMode::Implicit, AuthMode::None), Some(config));
    let mut client = connect_tls(&certificate, harness.client).await;
    client.expect("220 ").await;
}

#[tokio::test]
async fn load_reports_missing_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("empty.pem");
    std::fs::write(&cert, "").unwrap();
    let err = TlsConfig::load(&cert, &dir.path().join("key.pem")).unwrap_err();
    assert!(err.to_string().contains("empty.pem"), "{err}");
}

#[tokio::test]
async fn auth_before_tls_refused() {
    let certificate = TestCertificate::new();
    let mut harness = start(settings(), listener(TlsMode::Starttls, AuthMode::Optional), Some(certificate.load()));
    harness.client.expect("220 ").await;
    harness.client.command("EHLO client.example", "250").await;
    let reply =
        harness.client.command(&format!("AUTH PLAIN {}", plain_response("alice@example.com", PASSWORD)), "538").await;
    assert!(reply.starts_with("538 5.7.11 Encryption required"), "{reply}");
    assert!(harness.handler.calls().is_empty());
}

#[tokio::test]
async fn auth_not_offered_on_auth_none_listener() {
    let (_harness, mut client, _certificate) = start_after_starttls(AuthMode::None).await;
    client.command("AUTH PLAIN", "502 5.5.1").await;
}

#[tokio::test]
async fn auth_plain_succeeds_and_survives_rset() {
    let (harness, mut client, _certificate) = start_after_starttls(AuthMode::Optional).await;
    let response = plain_response("Alice@Example.com", PASSWORD);
    client.command(&format!("AUTH PLAIN {response}"), "235 2.7.0").await;
    client.command("RSET", "250").await;
    client.command("AUTH PLAIN", "503 5.5.1").await;
    client.command("MAIL FROM:<alice@example.com>", "250").await;
    assert_eq!(
        harness.handler.calls().last(),
        Some(&Call::MailFrom {
            reverse_path: "alice@example.com".to_string(),
            auth_identity: Some("alice@example.com".to_string()),
        })
    );
}

#[tokio::test]
async fn auth_plain_with_continuation_wrong_password() {
    let (harness, mut client, _certificate) = start_after_starttls(AuthMode::Optional).await;
    assert_eq!(client.command("AUTH PLAIN", "334").await, "334 ");
    let reply = client.command(&plain_response("alice@example.com", "wrong"), "535").await;
    assert_eq!(reply, "535 5.7.8 authentication credentials invalid");
    assert_eq!(client.command("AUTH PLAIN", "334").await, "334 ");
    client.command(&plain_response("alice@example.com", PASSWORD), "235 2.7.0").await;
    let attempts = harness.handler.calls().iter().filter(|c| matches!(c, Call::Authenticate { .. })).count();
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn auth_login_succeeds() {
    let (_harness, mut client, _certificate) = start_after_starttls(AuthMode::Optional).await;
    assert_eq!(client.command("AUTH LOGIN", "334").await, "334 VXNlcm5hbWU6");
    assert_eq!(client.command(&BASE64.encode("alice@example.com"), "334").await, "334 UGFzc3dvcmQ6");
    client.command(&BASE64.encode(PASSWORD), "235 2.7.0").await;
}

#[tokio::test]
async fn auth_login_with_initial_username_fails() {
    let (_harness, mut client, _certificate) = start_after_starttls(AuthMode::Optional).await;
    let username = BASE64.encode("alice@example.com");
    client.command(&format!("AUTH LOGIN {username}"), "334 UGFzc3dvcmQ6").await;
    client.command(&BASE64.encode("wrong"), "535 5.7.8").await;
}

#[tokio::test]
async fn auth_cancel_and_bad_input() {
    let (_harness, mut client, _certificate) = start_after_starttls(AuthMode::Optional).await;
    client.command("AUTH LOGIN", "334").await;
    client.command("*", "501 5.0.0").await;
    client.command("AUTH PLAIN", "334").await;
    client.command("%%%", "501 5.5.2").await;
    client.command("AUTH CRAM-MD5", "504 5.5.4").await;
    client.command("AUTH PLAIN", "334").await;
    client.command(&plain_response("down@example.com", "x"), "454 4.7.0").await;
}

#[tokio::test]
async fn auth_required_blocks_mail_until_auth() {
    let certificate = TestCertificate::new();
    let mut harness = start(settings(), listener(TlsMode::Starttls, AuthMode::Required), Some(certificate.load()));
    harness.client.expect("220 ").await;
    harness.client.command("EHLO client.example", "250").await;
    harness.client.command("MAIL FROM:<alice@example.com>", "530 5.7.0 Authentication required").await;
    harness.client.command("STARTTLS", "220").await;
    let plain = std::mem::replace(&mut harness.client, Client::new(tokio::io::duplex(1).0));
    let mut client = connect_tls(&certificate, plain).await;
    client.command("EHLO client.example", "250").await;
    client.command("MAIL FROM:<alice@example.com>", "530 5.7.0 Authentication required").await;
    client.command(&format!("AUTH PLAIN {}", plain_response("alice@example.com", PASSWORD)), "235").await;
    client.command("MAIL FROM:<alice@example.com>", "250 2.1.0").await;
    client.command("RCPT TO:<+14155550100@fax.example.com>", "250").await;
    client.command("DATA", "354").await;
    client.send("x\r\n.\r\n").await;
    client.expect("250 2.0.0").await;
    let messages = harness.handler.messages();
    let [Call::Data { auth_identity, tls, .. }] = messages.as_slice() else {
        panic!("expected one message, got {messages:?}");
    };
    assert_eq!(auth_identity.as_deref(), Some("alice@example.com"));
    assert!(tls);
}

#[tokio::test]
async fn implicit_tls_listener_rejects_inside_tls() {
    let certificate = TestCertificate::new();
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let mut implicit = listener(TlsMode::Implicit, AuthMode::None);
    implicit.allowed_clients = vec!["192.0.2.0/24".parse().unwrap()];
    let (shutdown, shutdown_rx) = watch::channel(false);
    let tls = Some(certificate.load());
    let handler = Arc::new(FakeHandler::default());
    let server = tokio::spawn(async move {
        crate::smtp::serve(vec![(socket, implicit)], Arc::new(settings()), HOSTNAME, tls, handler, shutdown_rx).await
    });

    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let server_name = ServerName::try_from("localhost").unwrap();
    let stream = certificate.connector().connect(server_name, stream).await.unwrap();
    let mut client = Client::new(stream);
    assert_eq!(client.reply().await, "554 5.7.1 127.0.0.1 is not allowed to connect");
    assert!(client.is_closed().await);

    shutdown.send(true).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn help_lists_only_offered_extensions() {
    let certificate = TestCertificate::new();
    let mut harness = start(settings(), listener(TlsMode::Starttls, AuthMode::Optional), Some(certificate.load()));
    harness.client.expect("220 ").await;
    let help = harness.client.command("HELP", "214 2.0.0").await;
    assert!(help.contains("STARTTLS"), "{help}");
    assert!(!help.contains("AUTH"), "AUTH is offered only over TLS: {help}");

    let (_harness, mut client, _certificate) = start_after_starttls(AuthMode::Optional).await;
    let help = client.command("HELP", "214 2.0.0").await;
    assert!(help.contains("AUTH"), "{help}");
    assert!(!help.contains("STARTTLS"), "TLS is already active: {help}");
}
