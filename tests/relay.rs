//! The SMTP relay against the running daemon. A relay that is down delays delivery
//! until it is back. A SIGKILL between the webhook's 200 and the delivery still gives
//! exactly one email. A relay without STARTTLS never gets a message in clear text, and
//! a relay whose certificate is a self-signed CA gets none either, and the log line
//! names the certificate change to make.
//!
//! The first retry of a failed delivery comes 30 s after the failure, so the outage
//! tests take about that long.

mod support;

use std::time::{Duration, Instant};

use support::daemon::{Setup, TestDaemon};
use support::fake_sinch::CallbackFormat;
use support::pdf::{LETTER, make_pdf};
use support::relay_server::{RelayServer, RelayTls, RelayedMail};
use support::webhook_client::{Webhook, incoming_fax};

const CALLER: &str = "+14155550100";
const ACCOUNT: &str = "+14155552222";
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";

/// Maximum wait for an email, because the first retry comes after 30 s.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);

fn daemon_for(relay: &RelayServer, postmaster: &str) -> TestDaemon {
    let daemon = TestDaemon::start(Setup { relay: Some(relay.relay_table(postmaster)), ..Setup::default() });
    daemon.add_mapping(ALICE, &[&format!("{ACCOUNT}:receive")]);
    daemon.add_mapping(BOB, &[&format!("{ACCOUNT}:both")]);
    daemon
}

async fn post_fax(daemon: &TestDaemon, fax_id: &str, pdf: &[u8]) {
    let fax = incoming_fax(fax_id, CALLER, ACCOUNT, 1);
    let reply = Webhook::for_daemon(daemon).post("INCOMING_FAX", &fax, Some(pdf), CallbackFormat::Multipart).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, daemon.log());
}

async fn wait_for_mail(relay: &RelayServer, recipient: &str, daemon: &TestDaemon) -> RelayedMail {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        if let Some(mail) = relay.messages_to(recipient).pop() {
            return mail;
        }
        assert!(Instant::now() < deadline, "no email to {recipient}:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_outage_delays_delivery() {
    let mut relay = RelayServer::prepare(RelayTls::RequireStarttls);
    let daemon = tokio::task::block_in_place(|| daemon_for(&relay, ""));
    let pdf = make_pdf(&[LETTER]);
    post_fax(&daemon, "01FAXOUTAGE000000000000000", &pdf).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon.log().contains("email delivery failed; will retry") {
        assert!(Instant::now() < deadline, "no failed attempt was logged:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    relay.spawn();

    let mail = wait_for_mail(&relay, ALICE, &daemon).await;
    assert_eq!(mail.attachments()[0].1, pdf);
    wait_for_mail(&relay, BOB, &daemon).await;
    assert_eq!(relay.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_before_delivery_sends_once() {
    let mut relay = RelayServer::prepare(RelayTls::RequireStarttls);
    let mut daemon = tokio::task::block_in_place(|| daemon_for(&relay, ""));
    let pdf = make_pdf(&[LETTER]);
    post_fax(&daemon, "01FAXKILL00000000000000000", &pdf).await;

    // The relay is down, so nothing can have been delivered before the kill.
    tokio::task::block_in_place(|| {
        daemon.kill9();
        relay.spawn();
        daemon.spawn();
    });

    wait_for_mail(&relay, ALICE, &daemon).await;
    wait_for_mail(&relay, BOB, &daemon).await;
    // Give a wrongly repeated delivery time to show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(relay.messages_to(ALICE).len(), 1, "{}", daemon.log());
    assert_eq!(relay.messages_to(BOB).len(), 1, "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_right_after_reply_sends_once() {
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let mut daemon = tokio::task::block_in_place(|| daemon_for(&relay, ""));
    let pdf = make_pdf(&[LETTER]);
    post_fax(&daemon, "01FAXKILLNOW00000000000000", &pdf).await;
    tokio::task::block_in_place(|| {
        daemon.kill9();
        daemon.spawn();
    });

    wait_for_mail(&relay, ALICE, &daemon).await;
    wait_for_mail(&relay, BOB, &daemon).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Delivery is at least once: a kill after the relay took a message but before the
    // job was marked sent would repeat it. The relay here is fast, so one is expected.
    assert_eq!(relay.messages_to(ALICE).len(), 1, "{}", daemon.log());
    assert_eq!(relay.messages_to(BOB).len(), 1, "{}", daemon.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_without_starttls_gets_nothing() {
    let relay = RelayServer::start(RelayTls::None);
    let daemon = tokio::task::block_in_place(|| daemon_for(&relay, ""));
    post_fax(&daemon, "01FAXCLEARTEXT000000000000", &make_pdf(&[LETTER])).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon.log().contains("TLS failure at the relay; will retry") {
        assert!(Instant::now() < deadline, "no TLS failure was logged:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = daemon.log();
    assert!(log.contains("STARTTLS"), "{log}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(relay.messages().is_empty(), "a message went out without TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_ca_relay_gets_hint() {
    let mut relay = RelayServer::prepare(RelayTls::RequireStarttls);
    relay.use_self_signed_ca_certificate();
    relay.spawn();
    let daemon = tokio::task::block_in_place(|| daemon_for(&relay, ""));
    post_fax(&daemon, "01FAXSELFSIGNEDCA000000000", &make_pdf(&[LETTER])).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon.log().contains("TLS failure at the relay; will retry") {
        assert!(Instant::now() < deadline, "no TLS failure was logged:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = daemon.log();
    assert!(log.contains("CaUsedAsEndEntity"), "{log}");
    assert!(log.contains("give the relay a certificate with CA:FALSE"), "{log}");
    assert!(relay.messages().is_empty(), "a message went out over an unverified connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_relay_delivers() {
    let relay = RelayServer::start(RelayTls::Implicit);
    let daemon = tokio::task::block_in_place(|| daemon_for(&relay, ""));
    let pdf = make_pdf(&[LETTER]);
    post_fax(&daemon, "01FAXIMPLICIT0000000000000", &pdf).await;

    let mail = wait_for_mail(&relay, ALICE, &daemon).await;
    assert_eq!(mail.attachments()[0].1, pdf);
    assert_eq!(mail.subject(), format!("Fax received on {ACCOUNT}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_email_tells_postmaster_once() {
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let daemon = tokio::task::block_in_place(|| {
        let daemon =
            TestDaemon::start(Setup { relay: Some(relay.relay_table("postmaster@example.com")), ..Setup::default() });
        daemon.add_mapping("reject-me@example.com", &[&format!("{ACCOUNT}:receive")]);
        daemon
    });
    post_fax(&daemon, "01FAXREJECTED0000000000000", &make_pdf(&[LETTER])).await;

    let notice = wait_for_mail(&relay, "postmaster@example.com", &daemon).await;
    assert_eq!(notice.subject(), "Undelivered fax email to reject-me@example.com");
    assert_eq!(notice.mail_from, "<>", "the notice goes with the null reverse path");
    assert_eq!(notice.header("Auto-Submitted").as_deref(), Some("auto-generated"));
    let body = notice.body_text();
    assert!(body.contains("550"), "{body}");
    assert!(body.contains("Kind:        inbound"), "{body}");

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(relay.messages().len(), 1, "{}", daemon.log());
    assert!(daemon.log().contains("email rejected by the relay"));
}
