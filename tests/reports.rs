//! Delivery reports end to end. swaks sends a message and the daemon submits it to the
//! fake Sinch server. The fake reports the result by callback, or only when polled. The
//! sender's report arrives at a real SMTP relay that requires STARTTLS.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::daemon::{DOMAIN, Setup, TestDaemon};
use support::fake_sinch::{AutoResult, CallbackFormat, FakeSinch};
use support::fake_sinch_config::sinch_table;
use support::pdf::{LETTER, make_pdf};
use support::relay_server::{RelayServer, RelayTls, RelayedMail};

const ALICE: &str = "alice@example.com";
const MESSAGE_ID: &str = "<report-test-1@client.example>";

fn start_daemon(fake: &FakeSinch, relay: &RelayServer, setup: Setup) -> TestDaemon {
    let setup = Setup { sinch: Some(sinch_table(fake)), relay: Some(relay.relay_table("")), ..setup };
    let daemon = TestDaemon::start(setup);
    daemon.add_mapping(ALICE, &["+14155550100:send"]);
    daemon
}

/// Sends a three-page PDF to +14155552222 with swaks and returns the queued job id.
fn send_with_swaks(daemon: &TestDaemon) -> String {
    let pdf_path = daemon.dir.path().join("three-pages.pdf");
    std::fs::write(&pdf_path, make_pdf(&[LETTER, LETTER, LETTER])).unwrap();
    let output = Command::new("swaks")
        .args(["--server", &daemon.smtp_addr().to_string()])
        .args(["--from", ALICE, "--to", &format!("14155552222@{DOMAIN}")])
        .args(["--header", &format!("Message-Id: {MESSAGE_ID}")])
        .arg("--attach")
        .arg(format!("@{}", pdf_path.display()))
        .output()
        .expect("swaks is installed (apt-get install swaks)");
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "swaks failed:\n{transcript}\n{}", daemon.log());
    let line = transcript.lines().find(|l| l.contains("<-  250 2.0.0 queued as ")).expect(&transcript);
    line.rsplit("queued as ").next().unwrap().trim().to_string()
}

async fn wait_for_report(relay: &RelayServer, daemon: &TestDaemon, timeout: Duration) -> RelayedMail {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(mail) = relay.messages_to(ALICE).pop() {
            return mail;
        }
        assert!(Instant::now() < deadline, "no report to {ALICE}:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks what every report carries.
fn check_report_headers(mail: &RelayedMail) {
    assert!(mail.tls, "the report went out without TLS");
    assert_eq!(mail.helo, "fax.example.com", "EHLO must name gateway.hostname");
    assert_eq!(mail.mail_from, "fax@fax.example.com");
    assert_eq!(mail.header("From").as_deref(), Some("fax@fax.example.com"));
    assert_eq!(mail.header("To").as_deref(), Some(ALICE));
    assert_eq!(mail.header("In-Reply-To").as_deref(), Some(MESSAGE_ID));
    assert_eq!(mail.header("References").as_deref(), Some(MESSAGE_ID));
    assert_eq!(mail.header("Auto-Submitted").as_deref(), Some("auto-replied"));
    assert!(mail.header("Message-ID").is_some_and(|id| id.ends_with("@fax.example.com>")));
    assert!(mail.header("Date").is_some());
    assert_eq!(mail.header("MIME-Version").as_deref(), Some("1.0"));
    assert!(mail.attachments().is_empty(), "attach_copy is off, yet the report has an attachment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_report_after_callback() {
    let fake = FakeSinch::start().await;
    fake.complete_sends(AutoResult { status: "COMPLETED", error: None, callback: Some(CallbackFormat::Multipart) });
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let daemon = tokio::task::block_in_place(|| start_daemon(&fake, &relay, Setup::default()));
    let job_id = tokio::task::block_in_place(|| send_with_swaks(&daemon));

    let mail = wait_for_report(&relay, &daemon, Duration::from_secs(60)).await;
    check_report_headers(&mail);
    assert_eq!(mail.subject(), "Fax to +14155552222 delivered (3 pages)");
    let body = mail.body_text();
    let fax_id = fake.faxes()[0]["id"].as_str().unwrap().to_string();
    assert!(body.contains("+14155552222"), "{body}");
    assert!(body.contains("Pages sent:  3 of 3"), "{body}");
    assert!(body.contains(&fax_id), "{body}");
    assert!(body.contains(&job_id), "{body}");
    assert!(body.contains("2026-01-01T00:00:00Z"), "{body}");

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(relay.messages().len(), 1, "one report per fax");
    assert!(!daemon.log().contains("polled the fax status"), "the callback came, yet the daemon polled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_report_after_callback() {
    let fake = FakeSinch::start().await;
    fake.complete_sends(AutoResult {
        status: "FAILURE",
        error: Some(("CALL_ERROR", 17, "The line was busy")),
        callback: Some(CallbackFormat::Json),
    });
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let daemon = tokio::task::block_in_place(|| start_daemon(&fake, &relay, Setup::default()));
    tokio::task::block_in_place(|| send_with_swaks(&daemon));

    let mail = wait_for_report(&relay, &daemon, Duration::from_secs(60)).await;
    check_report_headers(&mail);
    assert_eq!(mail.subject(), "Fax to +14155552222 failed: The line was busy");
    let body = mail.body_text();
    assert!(body.contains("Error type:  CALL_ERROR"), "{body}");
    assert!(body.contains("Error code:  17"), "{body}");
    assert!(body.contains("Message:     The line was busy"), "{body}");
    assert!(body.contains("Pages sent:  0 of 3"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_by_poll_without_callback() {
    let fake = FakeSinch::start().await;
    fake.complete_sends(AutoResult { status: "COMPLETED", error: None, callback: None });
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let setup = Setup { fax_extra: "report_poll_after = 2".to_string(), ..Setup::default() };
    let daemon = tokio::task::block_in_place(|| start_daemon(&fake, &relay, setup));
    tokio::task::block_in_place(|| send_with_swaks(&daemon));

    let mail = wait_for_report(&relay, &daemon, Duration::from_secs(60)).await;
    check_report_headers(&mail);
    assert_eq!(mail.subject(), "Fax to +14155552222 delivered (3 pages)");
    assert!(daemon.log().contains("polled the fax status"), "{}", daemon.log());
    let polls = fake.requests().iter().filter(|r| r.method == "GET" && r.path.contains("/faxes/")).count();
    assert!(polls >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_submission_failure_reported() {
    let fake = FakeSinch::start().await;
    fake.script_next_send(support::fake_sinch::SendScript::Fail {
        status: 402,
        message: "Insufficient balance".to_string(),
        retry_after: None,
    });
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let daemon = tokio::task::block_in_place(|| start_daemon(&fake, &relay, Setup::default()));
    tokio::task::block_in_place(|| send_with_swaks(&daemon));

    let mail = wait_for_report(&relay, &daemon, Duration::from_secs(60)).await;
    check_report_headers(&mail);
    let subject = mail.subject();
    assert!(subject.starts_with("Fax to +14155552222 failed: "), "{subject}");
    assert!(subject.contains("Insufficient balance"), "{subject}");
    assert!(mail.body_text().contains("not accepted"), "{}", mail.body_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_job_gets_failure_report() {
    let fake = FakeSinch::start().await;
    // The first submission is refused for an hour, so the job waits in the queue.
    fake.fail_next_sends(1, 503, Some(3600));
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let daemon = tokio::task::block_in_place(|| start_daemon(&fake, &relay, Setup::default()));
    let job_id = tokio::task::block_in_place(|| send_with_swaks(&daemon));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon.log().contains("fax submission failed; will retry") {
        assert!(Instant::now() < deadline, "the submission did not fail:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let delete = tokio::task::block_in_place(|| daemon.cli(&["queue", "delete", &job_id]));
    assert!(delete.status.success(), "{}", String::from_utf8_lossy(&delete.stderr));
    let mail = wait_for_report(&relay, &daemon, Duration::from_secs(60)).await;
    check_report_headers(&mail);
    assert_eq!(mail.subject(), "Fax to +14155552222 failed: deleted by an administrator");
    assert!(mail.body_text().contains(&format!("Job:         {job_id}")), "{}", mail.body_text());

    // One report only, and no fax was sent after the deletion.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(relay.messages_to(ALICE).len(), 1, "{}", daemon.log());
    assert!(fake.faxes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_copy_and_disabled_success_reports() {
    let fake = FakeSinch::start().await;
    fake.complete_sends(AutoResult { status: "COMPLETED", error: None, callback: Some(CallbackFormat::Json) });
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let setup = Setup { notifications: Some("attach_copy = true\n".to_string()), ..Setup::default() };
    let daemon = tokio::task::block_in_place(|| start_daemon(&fake, &relay, setup));
    let job_id = tokio::task::block_in_place(|| send_with_swaks(&daemon));

    let mail = wait_for_report(&relay, &daemon, Duration::from_secs(60)).await;
    let attachments = mail.attachments();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].0, format!("fax-{job_id}.pdf"));
    // A plain quoted name, which every mail reader decodes, not an RFC 2231 continuation.
    let raw = String::from_utf8_lossy(&mail.data);
    assert!(raw.contains(&format!("filename=\"fax-{job_id}.pdf\"")), "{raw}");
    assert!(!raw.contains("filename*"), "{raw}");
    let sent = fake.pdf(fake.faxes()[0]["id"].as_str().unwrap()).unwrap();
    assert!(attachments[0].1 == sent, "the attached copy differs from the faxed PDF");

    let fake = FakeSinch::start().await;
    fake.complete_sends(AutoResult { status: "COMPLETED", error: None, callback: Some(CallbackFormat::Json) });
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let setup = Setup { notifications: Some("on_success = false\n".to_string()), ..Setup::default() };
    let daemon = tokio::task::block_in_place(|| start_daemon(&fake, &relay, setup));
    tokio::task::block_in_place(|| send_with_swaks(&daemon));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon.log().contains("webhook received: fax result recorded") {
        assert!(Instant::now() < deadline, "the fax did not complete:\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(relay.messages().is_empty(), "on_success = false, yet a report was sent");
}
