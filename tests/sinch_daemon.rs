//! The daemon with the Sinch backend against the fake Sinch server: what an SMTP client
//! sends arrives as one fax request, also when the daemon is killed with SIGKILL.

mod support;

use std::time::Duration;

use base64::Engine;
use support::daemon::{DOMAIN, Setup, TestDaemon, wait_for};
use support::fake_sinch::{FakeSinch, SERVICE_ID, SendScript};
use support::fake_sinch_config::sinch_table;
use support::pdf::{A4, LETTER, fit_scales, make_pdf, message_with_pdfs, page_sizes};
use support::smtp_client::Client;

const ALICE: &str = "alice@example.com";

fn sinch_daemon(fake: &FakeSinch) -> TestDaemon {
    let sinch = sinch_table(fake);
    let daemon = TestDaemon::start(Setup { sinch: Some(sinch), ..Setup::default() });
    daemon.add_mapping(ALICE, &["+14155550100:send"]);
    daemon
}

/// Sends a two-document message and returns the id of the queued job.
fn send_fax(daemon: &TestDaemon) -> String {
    let to = format!("14155552222@{DOMAIN}");
    let message = message_with_pdfs(ALICE, &to, "", &[("a.pdf", make_pdf(&[LETTER])), ("b.pdf", make_pdf(&[A4, A4]))]);
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO client.example");
    assert_eq!(client.command(&format!("MAIL FROM:<{ALICE}>")).code, 250);
    assert_eq!(client.command(&format!("RCPT TO:<{to}>")).code, 250);
    let (_, end) = client.data(&message);
    let end = end.unwrap();
    assert!(end.is(250, "2.0.0"), "{end:?}\n{}", daemon.log());
    end.text.rsplit("queued as ").next().unwrap().trim().to_string()
}

/// Returns the send requests the fake received for `job_id`.
fn sends_for(fake: &FakeSinch, job_id: &str) -> Vec<serde_json::Value> {
    fake.send_requests()
        .iter()
        .map(|r| r.json())
        .filter(|body| body["labels"]["faxgateJob"] == job_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_becomes_one_sinch_request() {
    let fake = FakeSinch::start().await;
    let daemon = sinch_daemon(&fake);
    let job_id = tokio::task::block_in_place(|| send_fax(&daemon));

    let body = wait_for("the fax request", Duration::from_secs(30), || sends_for(&fake, &job_id).pop());
    assert_eq!(body["to"], "+14155552222");
    assert_eq!(body["from"], "+14155550100");
    assert_eq!(body["files"][0]["fileType"], "PDF");
    let pdf = base64::engine::general_purpose::STANDARD.decode(body["files"][0]["file"].as_str().unwrap()).unwrap();
    // The A4 pages are fitted to the default Letter paper.
    assert_eq!(page_sizes(&pdf), vec![LETTER; 3]);
    let scales = fit_scales(&pdf);
    assert_eq!(scales[0], 1.0, "the Letter page is left as it is");
    assert!((scales[1] - f64::from(LETTER.1 / A4.1)).abs() < 1e-4, "A4 scale {}", scales[1]);
    let callback = body["callbackUrl"].as_str().unwrap();
    assert!(callback.starts_with("http://sinch:hook-secret@127.0.0.1:"), "{callback}");
    assert_eq!(body["serviceId"], SERVICE_ID);
    assert_eq!(fake.tokens_issued(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_after_queued_reply_submits_once() {
    let fake = FakeSinch::start().await;
    let mut daemon = sinch_daemon(&fake);
    let job_id = tokio::task::block_in_place(|| {
        let job_id = send_fax(&daemon);
        daemon.kill9();
        daemon.spawn();
        job_id
    });

    wait_for("the fax request", Duration::from_secs(30), || (!sends_for(&fake, &job_id).is_empty()).then_some(()));
    // Give a wrongly repeated submission time to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sends_for(&fake, &job_id).len(), 1, "{}", daemon.log());
    let faxes = fake.faxes().into_iter().filter(|f| f["labels"]["faxgateJob"] == job_id.as_str()).count();
    assert_eq!(faxes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_submission_submits_once() {
    let fake = FakeSinch::start().await;
    // The fake stores the fax and then holds the response, so the daemon dies while
    // its request is in flight and cannot know whether the fax exists.
    fake.script_next_send(SendScript::AcceptThenStall(Duration::from_secs(20)));
    let mut daemon = sinch_daemon(&fake);
    let job_id = tokio::task::block_in_place(|| send_fax(&daemon));
    wait_for("the first fax request", Duration::from_secs(30), || (!sends_for(&fake, &job_id).is_empty()).then_some(()));

    tokio::task::block_in_place(|| {
        daemon.kill9();
        daemon.spawn();
    });
    // After the restart the daemon must look the fax up instead of sending it again.
    wait_for("the lookup after restart", Duration::from_secs(30), || {
        fake.requests().iter().any(|r| r.method == "GET" && r.path.ends_with("/faxes")).then_some(())
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sends_for(&fake, &job_id).len(), 1, "{}", daemon.log());
}
