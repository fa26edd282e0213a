//! TLS and AUTH against the real daemon, with lettre as the client: STARTTLS,
//! implicit TLS, AUTH PLAIN required on a submission listener and refused before TLS.

mod support;

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use support::daemon::{DOMAIN, ListenerSpec, Setup, TestDaemon, wait_for};
use support::pdf::{LETTER, make_pdf, message_with_pdfs, page_sizes};
use support::smtp_client::Client;

const ALICE: &str = "alice@example.com";
const PASSWORD: &str = "correct horse battery staple";

fn tls_daemon() -> TestDaemon {
    let daemon = TestDaemon::start(Setup {
        listeners: vec![
            ListenerSpec { tls: "starttls", auth: "optional" },
            ListenerSpec { tls: "implicit", auth: "optional" },
            ListenerSpec { tls: "starttls", auth: "required" },
        ],
        ..Setup::default()
    });
    daemon.add_mapping(ALICE, &["+14155550100:both"]);
    let out = daemon.cli_with_stdin(&["emails", "password", ALICE], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    daemon
}

fn tls_parameters(daemon: &TestDaemon) -> TlsParameters {
    TlsParameters::builder("localhost".to_string())
        .add_root_certificate(Certificate::from_pem(daemon.ca_pem.as_bytes()).unwrap())
        .build_rustls()
        .unwrap()
}

fn envelope() -> Envelope {
    Envelope::new(Some(ALICE.parse().unwrap()), vec![format!("14155552222@{DOMAIN}").parse().unwrap()]).unwrap()
}

fn message() -> Vec<u8> {
    message_with_pdfs(ALICE, &format!("14155552222@{DOMAIN}"), "", &[("a.pdf", make_pdf(&[LETTER]))])
}

fn assert_queued_in_outbox(daemon: &TestDaemon, reply_text: &str) {
    let id = reply_text.rsplit("queued as ").next().unwrap().trim().to_string();
    let pdf = daemon.outbox().join(format!("{id}.pdf"));
    wait_for("the outbox PDF", Duration::from_secs(30), || pdf.exists().then_some(()));
    assert_eq!(page_sizes(&std::fs::read(pdf).unwrap()).len(), 1);
}

#[tokio::test]
async fn starttls_delivers() {
    let daemon = tls_daemon();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(daemon.addresses[0].port())
        .tls(Tls::Required(tls_parameters(&daemon)))
        .build();
    let response = transport.send_raw(&envelope(), &message()).await.unwrap();
    assert_eq!(u16::from(response.code()), 250);
    let text = response.message().collect::<Vec<_>>().join(" ");
    assert!(text.starts_with("2.0.0 queued as "), "{text}");
    assert_queued_in_outbox(&daemon, &text);
}

#[tokio::test]
async fn implicit_tls_delivers() {
    let daemon = tls_daemon();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(daemon.addresses[1].port())
        .tls(Tls::Wrapper(tls_parameters(&daemon)))
        .build();
    let response = transport.send_raw(&envelope(), &message()).await.unwrap();
    let text = response.message().collect::<Vec<_>>().join(" ");
    assert!(text.starts_with("2.0.0 queued as "), "{text}");
    assert_queued_in_outbox(&daemon, &text);
}

#[tokio::test]
async fn auth_plain_after_starttls_delivers() {
    let daemon = tls_daemon();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(daemon.addresses[2].port())
        .tls(Tls::Required(tls_parameters(&daemon)))
        .credentials(Credentials::new(ALICE.into(), PASSWORD.into()))
        .authentication(vec![Mechanism::Plain])
        .build();
    let response = transport.send_raw(&envelope(), &message()).await.unwrap();
    let text = response.message().collect::<Vec<_>>().join(" ");
    assert!(text.starts_with("2.0.0 queued as "), "{text}");
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let daemon = tls_daemon();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(daemon.addresses[2].port())
        .tls(Tls::Required(tls_parameters(&daemon)))
        .credentials(Credentials::new(ALICE.into(), "wrong".into()))
        .authentication(vec![Mechanism::Plain])
        .build();
    let err = transport.send_raw(&envelope(), &message()).await.unwrap_err();
    assert_eq!(err.status().map(u16::from), Some(535), "{err}");
}

#[test]
fn auth_is_refused_before_tls() {
    let daemon = tls_daemon();
    let (mut client, _) = Client::connect(daemon.addresses[2]);
    let ehlo = client.command("EHLO client.example");
    assert!(ehlo.text.contains("STARTTLS"), "{ehlo:?}");
    assert!(!ehlo.text.contains("AUTH"), "AUTH advertised before TLS: {ehlo:?}");
    let reply = client.command("AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==");
    assert!(reply.code == 538 || reply.code == 530, "{reply:?}");
    assert!(reply.status().starts_with("5.7."), "{reply:?}");
    // A listener with auth = required refuses mail without AUTH.
    let reply = client.command(&format!("MAIL FROM:<{ALICE}>"));
    assert!(reply.is(530, "5.7.0"), "{reply:?}");
}

#[tokio::test]
async fn auth_required_listener_refuses_unauthenticated_mail() {
    let daemon = tls_daemon();
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(daemon.addresses[2].port())
        .tls(Tls::Required(tls_parameters(&daemon)))
        .build();
    let err = transport.send_raw(&envelope(), &message()).await.unwrap_err();
    assert_eq!(err.status().map(u16::from), Some(530), "{err}");
}
