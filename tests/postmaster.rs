//! Mail to the postmaster of the gateway domain: accepted from any sender, the null
//! sender included, and passed on unchanged to `relay.postmaster` through the relay,
//! here a real SMTP server that requires STARTTLS.

mod support;

use std::time::{Duration, Instant};

use support::daemon::{DOMAIN, Setup, TestDaemon};
use support::mail::queued_ids;
use support::pdf::{LETTER, make_pdf, message_with_pdfs};
use support::relay_server::{RelayServer, RelayTls, RelayedMail};
use support::smtp_client::Client;

const ADMIN: &str = "admin@example.com";
const ALICE: &str = "alice@example.com";
const ALICE_NUMBER: &str = "+14155550100";

/// A bounce as a remote mail server would send it to the postmaster.
const BOUNCE: &str = "From: MAILER-DAEMON@remote.example\r\n\
    To: postmaster@fax.example.com\r\n\
    Subject: Undelivered Mail Returned to Sender\r\n\
    Auto-Submitted: auto-replied\r\n\
    Message-ID: <bounce-1@remote.example>\r\n\
    Content-Type: text/plain\r\n\
    \r\n\
    The mail system could not deliver your message.\r\n";

fn wait_for_mail(relay: &RelayServer, recipient: &str, daemon: &TestDaemon) -> RelayedMail {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(mail) = relay.messages_to(recipient).pop() {
            return mail;
        }
        assert!(Instant::now() < deadline, "no email to {recipient}:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn bounce_from_null_sender_reaches_postmaster() {
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let daemon = TestDaemon::start(Setup { relay: Some(relay.relay_table(ADMIN)), ..Setup::default() });
    daemon.add_mapping(ALICE, &[&format!("{ALICE_NUMBER}:both")]);

    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO remote.example");
    assert_eq!(client.command("MAIL FROM:<>").code, 250);
    // The null sender may still not fax.
    let reply = client.command(&format!("RCPT TO:<14155552222@{DOMAIN}>"));
    assert!(reply.is(550, "5.7.1"), "{reply:?}");
    let reply = client.command(&format!("RCPT TO:<PostMaster@{DOMAIN}>"));
    assert!(reply.is(250, "2.1.5"), "{reply:?}");
    assert!(reply.text.ends_with("OK, the postmaster"), "{reply:?}");
    let (_, end) = client.data(BOUNCE.as_bytes());
    let end = end.expect("a reply to the message");
    assert!(end.is(250, "2.0.0"), "{end:?}");
    assert!(end.text.ends_with("for the postmaster"), "{end:?}");

    let mail = wait_for_mail(&relay, ADMIN, &daemon);
    assert_eq!(mail.mail_from, "fax@fax.example.com", "sent with relay.from as the envelope sender");
    assert!(mail.tls);
    let text = String::from_utf8_lossy(&mail.data);
    assert!(text.starts_with("Received: from remote.example ([127.0.0.1])\r\n\tby "), "{text}");
    assert!(text.contains("envelope-from <>;"), "{text}");
    // The original message follows the trace field byte for byte.
    assert!(text.contains(BOUNCE), "{text}");
    assert_eq!(relay.messages().len(), 1);
}

#[test]
fn postmaster_without_domain_and_with_fax_numbers() {
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let daemon = TestDaemon::start(Setup { relay: Some(relay.relay_table(ADMIN)), ..Setup::default() });
    daemon.add_mapping(ALICE, &[&format!("{ALICE_NUMBER}:both")]);

    let to = format!("14155552222@{DOMAIN}");
    let message = message_with_pdfs(ALICE, &to, "contract", &[("contract.pdf", make_pdf(&[LETTER]))]);
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO client.example");
    assert_eq!(client.command(&format!("MAIL FROM:<{ALICE}>")).code, 250);
    assert_eq!(client.command("RCPT TO:<Postmaster>").code, 250);
    assert_eq!(client.command(&format!("RCPT TO:<{to}>")).code, 250);
    let (_, end) = client.data(&message);
    let end = end.expect("a reply to the message");
    assert!(end.is(250, "2.0.0"), "{end:?}");
    // The reply is the faxes' reply: one fax job.
    assert_eq!(queued_ids(&end).len(), 1, "{end:?}");

    let mail = wait_for_mail(&relay, ADMIN, &daemon);
    let parsed = mail.parsed();
    assert_eq!(parsed.subject(), Some("contract"));
    assert_eq!(parsed.attachments().count(), 1, "the attachment is passed on");
}

#[test]
fn postmaster_unset_refuses_null_sender_and_postmaster() {
    let daemon = TestDaemon::start(Setup::default());
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO remote.example");
    let reply = client.command("MAIL FROM:<>");
    assert!(reply.is(550, "5.7.1"), "{reply:?}");
    assert_eq!(client.command(&format!("MAIL FROM:<{ALICE}>")).code, 250);
    let reply = client.command("RCPT TO:<postmaster>");
    assert!(reply.is(550, "5.1.1"), "{reply:?}");
}
