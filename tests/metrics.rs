//! `/metrics` on the real daemon: the counters move by exactly what one accepted and
//! one rejected SMTP message add, and the queue gauge follows the fax jobs.

mod support;

use std::time::{Duration, Instant};

use support::api::{ApiClient, metric_value};
use support::daemon::{Setup, TestDaemon};
use support::mail::send_fax;

const ALICE: &str = "alice@example.com";
const MALLORY: &str = "mallory@example.com";
const TO: &str = "+14155552222";

const ACCEPTED: &str = r#"faxgate_smtp_messages_total{result="accepted",reason=""}"#;
const REJECTED_SENDER: &str = r#"faxgate_smtp_messages_total{result="rejected",reason="sender"}"#;
const COMPLETED_JOBS: &str = r#"faxgate_queue_jobs{kind="fax",state="completed"}"#;
const COMPLETED_FAXES: &str = r#"faxgate_faxes_total{status="completed"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_counters_follow_messages() {
    let daemon = TestDaemon::start(Setup::default());
    daemon.add_mapping(ALICE, &["+14155550100:send"]);
    let api = ApiClient::new(&daemon);

    let before = api.metrics().await;
    let smtp = daemon.smtp_addr();
    let accepted = tokio::task::block_in_place(|| send_fax(smtp, ALICE, TO));
    assert!(accepted.is(250, "2.0.0"), "{accepted:?}\n{}", daemon.log());
    let rejected = tokio::task::block_in_place(|| send_fax(smtp, MALLORY, TO));
    assert!(rejected.is(550, "5.7.1"), "{rejected:?}");
    let after = api.metrics().await;

    assert_eq!(metric_value(&after, ACCEPTED) - metric_value(&before, ACCEPTED), 1.0, "{after}");
    assert_eq!(metric_value(&after, REJECTED_SENDER) - metric_value(&before, REJECTED_SENDER), 1.0, "{after}");
    let rejected_total = |text: &str| -> f64 {
        text.lines()
            .filter(|line| line.starts_with(r#"faxgate_smtp_messages_total{result="rejected""#))
            .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(rejected_total(&after) - rejected_total(&before), 1.0, "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_gauge_and_fax_counter() {
    let daemon = TestDaemon::start(Setup::default());
    daemon.add_mapping(ALICE, &["+14155550100:send"]);
    let api = ApiClient::new(&daemon);

    let response = api.send(reqwest::Method::GET, "/metrics", None, None).await;
    let content_type = response.header("content-type").unwrap_or_default().to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let before = response.text;
    for family in [
        "# TYPE faxgate_smtp_messages_total counter",
        "# TYPE faxgate_faxes_total counter",
        "# TYPE faxgate_webhooks_total counter",
        "# TYPE faxgate_relay_deliveries_total counter",
        "# TYPE faxgate_queue_jobs gauge",
    ] {
        assert!(before.contains(family), "missing {family:?}:\n{before}");
    }
    // Every fax job state has a row, 0 when no job is in it.
    for state in ["queued", "submitting", "submitted", "completed", "failed", "deleted"] {
        let series = format!(r#"faxgate_queue_jobs{{kind="fax",state="{state}"}} 0"#);
        assert!(before.lines().any(|line| line == series), "missing {series:?}:\n{before}");
    }

    let smtp = daemon.smtp_addr();
    let accepted = tokio::task::block_in_place(|| send_fax(smtp, ALICE, TO));
    assert!(accepted.is(250, "2.0.0"), "{accepted:?}");

    // The outbox backend completes the job at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let text = api.metrics().await;
        if metric_value(&text, COMPLETED_JOBS) == 1.0 {
            break text;
        }
        assert!(Instant::now() < deadline, "no completed job in the gauge after 30 s:\n{text}\n{}", daemon.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(metric_value(&after, COMPLETED_FAXES) - metric_value(&before, COMPLETED_FAXES), 1.0, "{after}");
}
