//! `faxgate queue` against the running daemon's store. `show` lists the history of a
//! job sent with swaks, a retried failed job is submitted again, and a deleted queued
//! job is never submitted. Unknown ids and wrong states fail with one line.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::daemon::{DOMAIN, Setup, TestDaemon, wait_for};
use support::fake_sinch::FakeSinch;
use support::mail::{queued_ids, send_fax};
use support::fake_sinch_config::sinch_table;

const ALICE: &str = "alice@example.com";
const TO: &str = "+14155552222";

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `faxgate queue ARGS...` and fails the test unless it exits 0.
fn queue_ok(daemon: &TestDaemon, args: &[&str]) -> String {
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    let output = daemon.cli(&all);
    assert!(output.status.success(), "queue {args:?} failed: {}", stderr(&output));
    stdout(&output)
}

/// Runs `faxgate queue ARGS...`, checks that it fails with `status` and one stderr
/// line, and returns that line.
fn queue_fails(daemon: &TestDaemon, args: &[&str], status: i32) -> String {
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    let output = daemon.cli(&all);
    assert_eq!(output.status.code(), Some(status), "queue {args:?}: {}{}", stdout(&output), stderr(&output));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    text
}

/// Returns the value of a `name:` line of `faxgate queue show`.
fn field(show: &str, name: &str) -> String {
    let prefix = format!("{name}:");
    show.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.trim().to_string())
        .unwrap_or_else(|| panic!("no {name:?} in:\n{show}"))
}

/// Polls `faxgate queue show ID` until the job is in `state`; returns the output.
fn wait_for_state(daemon: &TestDaemon, id: &str, state: &str) -> String {
    wait_for(&format!("job {id} in state {state}"), Duration::from_secs(30), || {
        let show = queue_ok(daemon, &["show", id]);
        (field(&show, "state") == state).then_some(show)
    })
}

/// Returns the history lines of `faxgate queue show` as (state, reason).
fn history(show: &str) -> Vec<(String, String)> {
    show.lines()
        .skip_while(|line| *line != "history:")
        .skip(1)
        .map(|line| {
            let mut parts = line.split_whitespace();
            let _time = parts.next().expect("a time");
            let state = parts.next().expect("a state").to_string();
            (state, parts.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

fn sinch_daemon(fake: &FakeSinch) -> TestDaemon {
    let daemon = TestDaemon::start(Setup { sinch: Some(sinch_table(fake)), ..Setup::default() });
    daemon.add_mapping(ALICE, &["+14155550100:send"]);
    daemon
}

fn sends_for(fake: &FakeSinch, job_id: &str) -> usize {
    fake.send_requests().iter().filter(|r| r.json()["labels"]["faxgateJob"] == job_id).count()
}

#[test]
fn show_lists_state_changes_of_swaks_job() {
    let daemon = TestDaemon::start(Setup::default());
    daemon.add_mapping(ALICE, &["+14155550100:send"]);
    let pdf_path = daemon.dir.path().join("page.pdf");
    std::fs::write(&pdf_path, support::pdf::make_pdf(&[support::pdf::LETTER])).unwrap();
    let output = Command::new("swaks")
        .args(["--server", &daemon.smtp_addr().to_string()])
        .args(["--from", ALICE, "--to", &format!("14155552222@{DOMAIN}")])
        .arg("--attach")
        .arg(format!("@{}", pdf_path.display()))
        .output()
        .expect("swaks is installed (apt-get install swaks)");
    let transcript = stdout(&output);
    assert!(output.status.success(), "swaks failed:\n{transcript}");
    let line = transcript.lines().find(|l| l.contains("<-  250 2.0.0 queued as ")).expect(&transcript);
    let id = line.rsplit("queued as ").next().unwrap().trim().to_string();

    let show = wait_for_state(&daemon, &id, "completed");
    assert_eq!(field(&show, "id"), id);
    assert_eq!(field(&show, "kind"), "fax");
    assert_eq!(field(&show, "to"), TO);
    assert_eq!(field(&show, "from"), "+14155550100");
    assert_eq!(field(&show, "sender"), ALICE);
    assert_eq!(field(&show, "attempts"), "1");
    assert_eq!(field(&show, "next try"), "-");
    assert_eq!(field(&show, "fax id"), format!("outbox-{id}"));
    let states: Vec<String> = history(&show).into_iter().map(|(state, _)| state).collect();
    assert_eq!(states, ["queued", "submitting", "completed"], "{show}");
    let reasons = history(&show);
    assert!(reasons[0].1.contains(&format!("<{ALICE}>")), "{show}");
    assert!(reasons[1].1.contains("attempt 1"), "{show}");

    // The delivery report to the sender is an email job of its own; only the fax
    // lines are checked here.
    let list = queue_ok(&daemon, &["list"]);
    let lines: Vec<&str> = list.lines().filter(|l| l.contains("  fax  ")).collect();
    assert_eq!(lines.len(), 1, "{list}");
    let columns: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(columns, [id.as_str(), "fax", "completed", "attempts", "1", "next", "try", "-", "to", TO], "{list}");

    assert!(queue_ok(&daemon, &["list", "--state", "completed"]).contains(&id));
    let queued = queue_ok(&daemon, &["list", "--state", "queued"]);
    assert!(!queued.contains("  fax  "), "{queued}");
    // clap reports the invalid value, with its usage hint on further lines.
    let invalid = daemon.cli(&["queue", "list", "--state", "stuck"]);
    assert_eq!(invalid.status.code(), Some(2));
    let message = stderr(&invalid);
    assert!(message.contains("\"stuck\""), "{message}");
    assert!(message.contains("queued, submitting"), "{message}");
}

#[test]
fn unknown_id_and_wrong_state_fail() {
    let daemon = TestDaemon::start(Setup::default());
    daemon.add_mapping(ALICE, &["+14155550100:send"]);

    for args in [["show", "01NOSUCHJOB"], ["retry", "01NOSUCHJOB"], ["delete", "01NOSUCHJOB"]] {
        let message = queue_fails(&daemon, &args, 1);
        assert!(message.contains("01NOSUCHJOB"), "{message}");
        assert!(message.contains("faxgate queue list"), "{message}");
    }
    assert_eq!(queue_ok(&daemon, &["retry", "--all"]), "no failed jobs to retry\n");

    let reply = send_fax(daemon.smtp_addr(), ALICE, TO);
    assert!(reply.is(250, "2.0.0"), "{reply:?}");
    let id = queued_ids(&reply).remove(0);
    wait_for_state(&daemon, &id, "completed");

    let message = queue_fails(&daemon, &["delete", &id], 1);
    assert!(message.contains(&format!("cannot delete job {id}: it is completed")), "{message}");
    assert!(message.contains("only queued or failed jobs can be deleted"), "{message}");
    let message = queue_fails(&daemon, &["retry", &id], 1);
    assert!(message.contains(&format!("cannot retry job {id}: it is completed")), "{message}");
    assert!(message.contains("only failed jobs can be retried"), "{message}");
    // The refused commands changed nothing.
    assert_eq!(history(&queue_ok(&daemon, &["show", &id])).len(), 3);

    // clap's usage error for a missing argument spans several lines.
    assert_eq!(daemon.cli(&["queue", "retry"]).status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_resubmits_failed_job() {
    let fake = FakeSinch::start().await;
    // A 422 is permanent: the job fails at its first attempt.
    fake.fail_next_sends(1, 422, None);
    let daemon = sinch_daemon(&fake);

    tokio::task::block_in_place(|| {
        let reply = send_fax(daemon.smtp_addr(), ALICE, TO);
        assert!(reply.is(250, "2.0.0"), "{reply:?}");
        let id = queued_ids(&reply).remove(0);
        let failed = wait_for_state(&daemon, &id, "failed");
        assert_eq!(sends_for(&fake, &id), 1);
        assert!(field(&failed, "last error").contains("422"), "{failed}");
        assert_eq!(queue_ok(&daemon, &["list", "--state", "failed"]).lines().count(), 1);

        let retried_at = Instant::now();
        assert_eq!(queue_ok(&daemon, &["retry", &id]), format!("retried {id}: queued, due now\n"));
        // The daemon's workers poll the store, so the job is sent again within seconds.
        wait_for("the second fax request", Duration::from_secs(30), || (sends_for(&fake, &id) == 2).then_some(()));
        let delay = retried_at.elapsed();
        assert!(delay < Duration::from_secs(8), "the retried job was sent after {delay:?}");

        let submitted = wait_for_state(&daemon, &id, "submitted");
        let states: Vec<(String, String)> = history(&submitted);
        let names: Vec<&str> = states.iter().map(|(state, _)| state.as_str()).collect();
        assert_eq!(names, ["queued", "submitting", "failed", "queued", "submitting", "submitted"], "{submitted}");
        assert_eq!(states[3].1, "retried by an administrator", "{submitted}");
        assert_eq!(field(&submitted, "attempts"), "1", "{submitted}");
        assert_ne!(field(&submitted, "fax id"), "-", "{submitted}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_stops_queued_job() {
    let fake = FakeSinch::start().await;
    // A 503 is transient: the job goes back to the queue, due again after Retry-After.
    const RETRY_AFTER: u64 = 5;
    fake.fail_next_sends(1, 503, Some(RETRY_AFTER));
    let daemon = sinch_daemon(&fake);

    tokio::task::block_in_place(|| {
        let reply = send_fax(daemon.smtp_addr(), ALICE, TO);
        assert!(reply.is(250, "2.0.0"), "{reply:?}");
        let id = queued_ids(&reply).remove(0);
        let queued = wait_for("the failed attempt", Duration::from_secs(30), || {
            let show = queue_ok(&daemon, &["show", &id]);
            (field(&show, "state") == "queued" && field(&show, "attempts") == "1").then_some(show)
        });
        assert_ne!(field(&queued, "next try"), "-", "{queued}");
        assert_eq!(sends_for(&fake, &id), 1);

        assert_eq!(queue_ok(&daemon, &["delete", &id]), format!("deleted {id}\n"));
        let deleted = queue_ok(&daemon, &["show", &id]);
        assert_eq!(field(&deleted, "state"), "deleted");
        assert_eq!(history(&deleted).last().unwrap().1, "deleted by an administrator", "{deleted}");

        // Past the Retry-After and a worker poll, no second request came.
        std::thread::sleep(Duration::from_secs(RETRY_AFTER + 4));
        assert_eq!(sends_for(&fake, &id), 1, "{}", daemon.log());
        assert_eq!(field(&queue_ok(&daemon, &["show", &id]), "state"), "deleted");

        let message = queue_fails(&daemon, &["delete", &id], 1);
        assert!(message.contains("it is deleted"), "{message}");
    });
}

#[test]
fn email_jobs_are_listed_and_shown() {
    use support::fake_sinch::CallbackFormat;
    use support::webhook_client::{Webhook, incoming_fax};

    let daemon = TestDaemon::start(Setup::default());
    daemon.add_mapping(ALICE, &["+14155550100:receive"]);
    let pdf = support::pdf::make_pdf(&[support::pdf::LETTER]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reply = runtime.block_on(async {
        let fax = incoming_fax("01FAXQUEUECLI0000000000000", "+14155550177", "+14155550100", 1);
        Webhook::for_daemon(&daemon).post("INCOMING_FAX", &fax, Some(&pdf), CallbackFormat::Json).await
    });
    assert_eq!(reply.status, 200);

    let line = wait_for("the email job in the list", Duration::from_secs(30), || {
        let out = daemon.cli(&["queue", "list", "--state", "sent"]);
        stdout(&out).lines().find(|l| l.contains(ALICE)).map(str::to_string)
    });
    assert!(line.contains("  inbound  "), "{line}");
    let id = line.split_whitespace().next().unwrap();

    let show = daemon.cli(&["queue", "show", id]);
    assert!(show.status.success(), "{}", stderr(&show));
    let text = stdout(&show);
    assert!(text.contains("kind:         inbound"), "{text}");
    assert!(text.contains("Fax received on +14155550100"), "{text}");
    assert!(text.lines().any(|l| l.contains(" sent ")), "{text}");

    // A sent email can be neither retried nor deleted.
    let delete = daemon.cli(&["queue", "delete", id]);
    assert_eq!(delete.status.code(), Some(1));
    assert!(stderr(&delete).contains("only queued or failed emails can be deleted"), "{}", stderr(&delete));
}
