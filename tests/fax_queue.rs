//! The queue on a real store: durability across handles, administration (list, retry,
//! delete), the outbox backend, results reported later, and the fake Sinch server's
//! callbacks.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use faxgate::config::{FaxBackendKind, SinchAuth};
use faxgate::fax::{Backend, FaxRecord, FaxStatus};
use faxgate::queue::{JobState, Queue, QueueError};
use faxgate::store::Store;
use sha2::{Digest, Sha256};

use support::fake_sinch::{CallbackFormat, FakeSinch};
use support::{FROM, Harness, PDF, TO, TO_2, fast_policy, request, sinch_backend};

const TIMEOUT: Duration = Duration::from_secs(5);

fn outbox_backend(harness: &Harness) -> Backend {
    let fax = support::fax_settings(FaxBackendKind::Outbox, None, SinchAuth::Oauth2, harness.outbox_dir());
    Backend::from_config(&fax, &support::webhooks(support::WEBHOOK_URL)).unwrap()
}

#[tokio::test]
async fn enqueue_is_visible_to_second_store() {
    let harness = Harness::new(Duration::from_secs(3600)).await;
    let ids = harness.queue.enqueue_faxes(request(&[TO, TO_2]), PDF).await.unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "the ids of one message sort in recipient order");

    let other_store = Store::open(&harness.database_path()).await.unwrap();
    let other = Queue::new(other_store, harness.dir.path().join("spool"));
    let job = other.job(&ids[0]).await.unwrap().expect("job visible through another handle");

    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.to_number.as_str(), TO);
    assert_eq!(job.from_number.as_str(), FROM);
    assert_eq!(job.session_id, "session-1");
    assert_eq!(job.message_id.as_deref(), Some("<m1@example.com>"));
    assert_eq!(job.reverse_path, "alice@example.com");
    assert_eq!(job.sender, "alice@example.com");
    assert_eq!(job.pages, 1);
    assert_eq!(job.attempts, 0);
    assert!(job.fax_id.is_none());
    let lifetime = job.expires_at.duration_since(job.created_at).unwrap();
    assert_eq!(lifetime, Duration::from_secs(3600));
    assert_eq!(std::fs::read(&job.document).unwrap(), PDF);
    assert!(job.document.starts_with(harness.dir.path().join("spool")));

    let second = other.job(&ids[1]).await.unwrap().unwrap();
    assert_eq!(second.to_number.as_str(), TO_2);
    assert_eq!(second.document, job.document, "the jobs of one message share its document");

    let history = other.history(&ids[0]).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].state, JobState::Queued);
    assert_eq!(history[0].reason, "accepted from <alice@example.com> in SMTP session session-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_all_commit() {
    const SESSIONS: usize = 50;
    let harness = Harness::new(Duration::from_secs(3600)).await;
    let document = |session: usize| format!("%PDF-1.4 document of session {session}").into_bytes();

    let mut tasks = tokio::task::JoinSet::new();
    for session in 0..SESSIONS {
        let queue = harness.queue.clone();
        let pdf = document(session);
        tasks.spawn(async move {
            let mut request = request(&[TO]);
            request.session_id = format!("session-{session}");
            (session, queue.enqueue_faxes(request, &pdf).await)
        });
    }
    let results = tasks.join_all().await;

    assert_eq!(results.len(), SESSIONS);
    for (session, result) in results {
        let ids = result.unwrap_or_else(|err| panic!("enqueue of session {session} failed: {err}"));
        assert_eq!(ids.len(), 1, "session {session}");
        let job = harness.queue.job(&ids[0]).await.unwrap().expect("the returned id is stored");
        assert_eq!(job.session_id, format!("session-{session}"));
        assert_eq!(std::fs::read(&job.document).unwrap(), document(session), "session {session}");
    }
    assert_eq!(harness.queue.list(None).await.unwrap().len(), SESSIONS);
    let spool_files = std::fs::read_dir(harness.dir.path().join("spool")).unwrap().count();
    assert_eq!(spool_files, SESSIONS, "one document per message and no temporary files");
}

#[tokio::test]
async fn enqueue_rejects_empty_request() {
    let harness = Harness::new(Duration::from_secs(60)).await;
    let err = harness.queue.enqueue_faxes(request(&[]), PDF).await.unwrap_err();
    assert!(matches!(err, QueueError::NoRecipients), "{err}");
    let err = harness.queue.enqueue_faxes(request(&[TO]), b"").await.unwrap_err();
    assert!(matches!(err, QueueError::EmptyDocument), "{err}");
    assert!(harness.queue.list(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn outbox_writes_pdf_and_request() {
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(outbox_backend(&harness), fast_policy(), 1);

    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    let job = harness.wait_for_state(&ids[0], JobState::Completed).await;

    assert_eq!(job.fax_id, Some(format!("outbox-{}", ids[0])));
    let outbox = harness.outbox_dir();
    assert_eq!(std::fs::read(outbox.join(format!("{}.pdf", ids[0]))).unwrap(), PDF);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(outbox.join(format!("{}.json", ids[0]))).unwrap()).unwrap();
    assert_eq!(json["to"], TO);
    assert_eq!(json["from"], FROM);
    assert_eq!(json["files"][0]["fileType"], "PDF");
    assert_eq!(json["files"][0]["size"], PDF.len());
    assert_eq!(json["files"][0]["sha256"], hex::encode(Sha256::digest(PDF)));
    assert!(json["files"][0].get("file").is_none(), "no base64 content in the outbox request");
    assert_eq!(json["callbackUrl"], "https://sinch:********@fax.example.com/webhooks/sinch");
    assert_eq!(json["headerText"], "faxgate test");
    assert_eq!(json["resolution"], "SUPERFINE");
    assert_eq!(json["serviceId"], "test-service");
    assert_eq!(json["labels"]["faxgateJob"], ids[0].as_str());

    let names: Vec<String> =
        std::fs::read_dir(&outbox).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 2, "only the two files, no temporary ones: {names:?}");
    // The document is removed right after the state change is committed.
    support::wait_until("the spooled document is removed", || !job.document.exists()).await;
    harness.stop_workers().await;
}

#[tokio::test]
async fn list_filters_by_state() {
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    let ids = harness.queue.enqueue_faxes(request(&[TO, TO_2]), PDF).await.unwrap();
    harness.queue.delete(&ids[1]).await.unwrap();

    let queued = harness.queue.list(Some("queued")).await.unwrap();
    assert_eq!(queued.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), [ids[0].as_str()]);
    let deleted = harness.queue.list(Some("deleted")).await.unwrap();
    assert_eq!(deleted.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), [ids[1].as_str()]);
    assert_eq!(harness.queue.list(None).await.unwrap().len(), 2);

    let counts = harness.queue.count_by_state().await.unwrap();
    assert_eq!(counts.len(), 6);
    assert!(counts.contains(&(JobState::Queued, 1)), "{counts:?}");
    assert!(counts.contains(&(JobState::Deleted, 1)), "{counts:?}");
    assert!(counts.contains(&(JobState::Failed, 0)), "{counts:?}");

    let err = harness.queue.list(Some("sent")).await.unwrap_err();
    assert!(matches!(err, QueueError::UnknownState(ref s) if s == "sent"), "{err}");
    harness.stop_workers().await;
}

#[tokio::test]
async fn deleted_job_is_never_submitted() {
    let fake = FakeSinch::start().await;
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    let ids = harness.queue.enqueue_faxes(request(&[TO, TO_2]), PDF).await.unwrap();
    harness.queue.delete(&ids[0]).await.unwrap();

    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 2);
    harness.wait_for_state(&ids[1], JobState::Submitted).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let deleted = harness.queue.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!(deleted.state, JobState::Deleted);
    let sends = fake.send_requests();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].json()["to"], TO_2);
    let history = harness.queue.history(&ids[0]).await.unwrap();
    assert_eq!(history.last().unwrap().state, JobState::Deleted);
    assert_eq!(history.last().unwrap().reason, "deleted by an administrator");

    let err = harness.queue.delete(&ids[1]).await.unwrap_err();
    assert_eq!(err.to_string(), format!("cannot delete job {}: it is submitted", ids[1]));
    let err = harness.queue.delete("01NOSUCHJOB").await.unwrap_err();
    assert!(matches!(err, QueueError::NotFound(_)), "{err}");
    let err = harness.queue.retry(&ids[0]).await.unwrap_err();
    assert_eq!(err.to_string(), format!("cannot retry job {}: it is deleted", ids[0]));
    harness.stop_workers().await;
}

#[tokio::test]
async fn retry_makes_queued_job_due_now() {
    let harness = Harness::new(Duration::from_secs(60)).await;
    let ids = harness.queue.enqueue_faxes(request(&[TO, TO_2]), PDF).await.unwrap();
    // As if both jobs had failed twice and waited an hour for their next attempt.
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    let later_ms = i64::try_from(later.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap();
    sqlx::query("UPDATE fax_jobs SET attempts = 2, next_attempt_at = ?")
        .bind(later_ms)
        .execute(harness.store.pool())
        .await
        .unwrap();
    let before = harness.queue.job(&ids[0]).await.unwrap().unwrap();

    harness.queue.retry(&ids[0]).await.unwrap();
    let job = harness.queue.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.attempts, 2, "making a queued job due keeps its attempt count");
    assert!(job.next_attempt_at <= std::time::SystemTime::now(), "the job is not due now");
    assert_eq!(job.expires_at, before.expires_at, "making a queued job due keeps its lifetime");
    let history = harness.queue.history(&ids[0]).await.unwrap();
    assert_eq!(history.last().unwrap().reason, "made due now by an administrator");

    let retried = harness.queue.retry_all().await.unwrap();
    assert_eq!(retried.len(), 2, "{retried:?}");
    let other = harness.queue.job(&ids[1]).await.unwrap().unwrap();
    assert!(other.next_attempt_at <= std::time::SystemTime::now(), "retry_all left a queued job waiting");
    assert_eq!(other.attempts, 2);
}

#[tokio::test]
async fn document_kept_until_all_jobs_end() {
    let harness = Harness::new(Duration::from_secs(60)).await;
    let ids = harness.queue.enqueue_faxes(request(&[TO, TO_2]), PDF).await.unwrap();
    let document = harness.queue.job(&ids[0]).await.unwrap().unwrap().document;

    harness.queue.delete(&ids[0]).await.unwrap();
    assert!(document.exists(), "the second job still needs the document");
    harness.queue.delete(&ids[1]).await.unwrap();
    assert!(!document.exists(), "no job needs the document any more");
}

#[tokio::test]
async fn reported_result_completes_job() {
    let fake = FakeSinch::start().await;
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 2);
    let ids = harness.queue.enqueue_faxes(request(&[TO, TO_2]), PDF).await.unwrap();
    let first = harness.wait_for_state(&ids[0], JobState::Submitted).await;
    let second = harness.wait_for_state(&ids[1], JobState::Submitted).await;

    let waiting = harness.queue.submitted_without_result(Duration::ZERO).await.unwrap();
    let mut waiting_ids: Vec<&str> = waiting.iter().map(|j| j.id.as_str()).collect();
    waiting_ids.sort();
    assert_eq!(waiting_ids, [ids[0].as_str(), ids[1].as_str()]);
    assert!(harness.queue.submitted_without_result(Duration::from_secs(3600)).await.unwrap().is_empty());

    let backend = sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT);
    let first_fax = first.fax_id.clone().unwrap();
    fake.set_status(&first_fax, "COMPLETED", None);
    let record = backend.fax(&first_fax).await.unwrap();
    assert_eq!(record.status, FaxStatus::Completed);
    let job = harness.queue.record_fax_result(&record).await.unwrap().expect("job of the fax");
    assert_eq!(job.state, JobState::Completed);
    assert!(first.document.exists(), "the second job is still submitted");

    let second_fax = second.fax_id.clone().unwrap();
    fake.set_status(&second_fax, "FAILURE", Some(("CALL_ERROR", 17, "The line was busy")));
    let record = backend.fax(&second_fax).await.unwrap();
    let job = harness.queue.record_fax_result(&record).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.last_error.as_deref(), Some("The line was busy"));

    let again = harness.queue.record_fax_result(&record).await.unwrap();
    assert!(again.is_none(), "a repeated result changes nothing");
    let unknown = FaxRecord { id: "01UNKNOWN".to_string(), status: FaxStatus::Completed, error: None };
    assert!(harness.queue.record_fax_result(&unknown).await.unwrap().is_none());
    harness.stop_workers().await;
}

#[tokio::test]
async fn workers_stop_on_shutdown() {
    let fake = FakeSinch::start().await;
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 3);
    tokio::time::sleep(Duration::from_millis(50)).await;
    harness.stop_workers().await;

    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(harness.queue.job(&ids[0]).await.unwrap().unwrap().state, JobState::Queued);
    assert!(fake.send_requests().is_empty());
}

/// The callback the fake posted, as a test receiver saw it.
#[derive(Debug, Clone)]
struct ReceivedCallback {
    headers: HeaderMap,
    body: Bytes,
}

async fn start_receiver() -> (String, Arc<Mutex<Vec<ReceivedCallback>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    let router = axum::Router::new().route(
        "/webhooks/sinch",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push(ReceivedCallback { headers, body });
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/sinch", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, received)
}

#[tokio::test]
async fn fake_posts_fax_completed_callbacks() {
    let fake = FakeSinch::start().await;
    let (receiver_url, received) = start_receiver().await;
    let mut fax = support::fax_settings(FaxBackendKind::Sinch, Some(&fake), SinchAuth::Oauth2, Default::default());
    fax.sinch.request_timeout = TIMEOUT;
    let backend = Backend::from_config(&fax, &support::webhooks(&receiver_url)).unwrap();
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(backend, fast_policy(), 1);
    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    let job = harness.wait_for_state(&ids[0], JobState::Submitted).await;
    let fax_id = job.fax_id.unwrap();

    let status = fake.send_fax_completed(&fax_id, CallbackFormat::Multipart).await.unwrap();
    assert_eq!(status, 200);
    let status = fake.send_fax_completed(&fax_id, CallbackFormat::Json).await.unwrap();
    assert_eq!(status, 200);

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    let expected_auth = format!("Basic {}", BASE64.encode(format!("sinch:{}", support::WEBHOOK_PASSWORD)));
    for callback in &received {
        assert_eq!(callback.headers["authorization"].to_str().unwrap(), expected_auth);
    }

    let multipart = &received[0];
    let content_type = multipart.headers["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("multipart/form-data; boundary="), "{content_type}");
    let body = String::from_utf8_lossy(&multipart.body);
    assert!(body.contains("name=\"event\"\r\n\r\nFAX_COMPLETED\r\n"));
    assert!(body.contains(&format!("\"id\":\"{fax_id}\"")));
    assert!(body.contains(&format!("filename=\"{fax_id}.pdf\"")));
    assert!(body.contains("%PDF-1.4"));

    let json: serde_json::Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(json["event"], "FAX_COMPLETED");
    assert_eq!(json["fax"]["id"], fax_id.as_str());
    assert_eq!(json["fax"]["status"], "COMPLETED");
    assert_eq!(json["fax"]["labels"]["faxgateJob"], ids[0].as_str());
    assert_eq!(BASE64.decode(json["file"].as_str().unwrap()).unwrap(), PDF);
    harness.stop_workers().await;
}

#[tokio::test]
async fn fax_file_downloads_pdf() {
    let fake = FakeSinch::start().await;
    let backend = sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT);
    let fax_id = fake.insert_fax(TO, FROM, "job-1", support::WEBHOOK_URL);

    let pdf = backend.fax_file(&fax_id).await.unwrap();
    assert_eq!(pdf, fake.pdf(&fax_id).unwrap());
    let file_requests: Vec<String> =
        fake.requests().into_iter().filter(|r| r.path.contains("/file")).map(|r| r.path).collect();
    assert_eq!(file_requests, [format!("/v3/projects/test-project/faxes/{fax_id}/file")]);

    fake.serve_legacy_file_path_only();
    let pdf = backend.fax_file(&fax_id).await.unwrap();
    assert_eq!(pdf, fake.pdf(&fax_id).unwrap());
    let file_requests: Vec<String> =
        fake.requests().into_iter().filter(|r| r.path.contains("/file")).map(|r| r.path).collect();
    assert_eq!(file_requests.len(), 3);
    assert_eq!(file_requests[2], format!("/v3/projects/test-project/faxes/{fax_id}/file.pdf"));

    let err = backend.fax_file("01NOSUCHFAX").await.unwrap_err();
    assert_eq!(err.http_status(), Some(404));
    assert!(err.is_permanent());
}

#[tokio::test]
async fn outbox_fax_lookups() {
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(outbox_backend(&harness), fast_policy(), 1);
    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    let job = harness.wait_for_state(&ids[0], JobState::Completed).await;
    let fax_id = job.fax_id.unwrap();

    let backend = outbox_backend(&harness);
    let record = backend.fax(&fax_id).await.unwrap();
    assert_eq!(record.status, FaxStatus::Completed);
    assert_eq!(backend.fax_file(&fax_id).await.unwrap(), PDF);
    let found = backend.find(&ids[0], &support::number(TO)).await.unwrap();
    assert_eq!(found.map(|r| r.id), Some(fax_id));
    assert!(backend.find("01OTHERJOB", &support::number(TO)).await.unwrap().is_none());
    assert_eq!(backend.fax("outbox-01OTHERJOB").await.unwrap_err().http_status(), Some(404));
    harness.stop_workers().await;
}

#[tokio::test]
async fn unused_spool_files_removed_at_start() {
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    // A failed job keeps its document and is not touched by the workers.
    harness.force_state(&ids[0], "failed").await;
    let document = harness.queue.job(&ids[0]).await.unwrap().unwrap().document;

    let spool = harness.dir.path().join("spool");
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    let write_file = |name: &str, old: bool| {
        let path = spool.join(name);
        std::fs::write(&path, PDF).unwrap();
        if old {
            std::fs::File::options().write(true).open(&path).unwrap().set_modified(two_hours_ago).unwrap();
        }
        path
    };
    let orphan = write_file("01ORPHANORPHANORPHANORPHAN.pdf", true);
    let temporary = write_file(".01INTERRUPTED.pdf.01TMP.tmp", true);
    let fresh = write_file("01FRESHFRESHFRESHFRESHFRES.pdf", false);
    std::fs::File::options().write(true).open(&document).unwrap().set_modified(two_hours_ago).unwrap();

    harness.start_workers(outbox_backend(&harness), fast_policy(), 1);
    support::wait_until("the unused spool file is removed", || !orphan.exists()).await;

    assert!(!temporary.exists(), "an old temporary file is removed");
    assert!(fresh.exists(), "a recent file may belong to an enqueue in progress");
    assert!(document.exists(), "a file that a job uses is kept");
    harness.stop_workers().await;
}

#[tokio::test]
async fn shutdown_finishes_submission_in_progress() {
    let fake = FakeSinch::start().await;
    fake.script_next_send(support::fake_sinch::SendScript::AcceptThenStall(Duration::from_millis(500)));
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 1);

    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    support::wait_until("the fake received the fax", || !fake.faxes().is_empty()).await;
    assert_eq!(harness.queue.job(&ids[0]).await.unwrap().unwrap().state, JobState::Submitting);
    harness.stop_workers().await;

    let job = harness.queue.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Submitted, "the submission in progress was recorded before the workers stopped");
    assert_eq!(job.fax_id.as_deref(), fake.faxes()[0]["id"].as_str());
}

#[tokio::test]
async fn backend_rejects_invalid_urls() {
    let fake = FakeSinch::start().await;
    let mut fax = support::fax_settings(FaxBackendKind::Sinch, Some(&fake), SinchAuth::Oauth2, Default::default());
    fax.sinch.auth_url = String::new();
    let err = Backend::from_config(&fax, &support::webhooks(support::WEBHOOK_URL)).unwrap_err();
    assert_eq!(err.to_string(), "invalid fax.sinch.auth_url \"\": relative URL without a base");

    fax.sinch.auth = SinchAuth::Basic;
    assert!(
        Backend::from_config(&fax, &support::webhooks(support::WEBHOOK_URL)).is_ok(),
        "basic auth needs no token URL"
    );

    let err = Backend::from_config(&fax, &support::webhooks("mailto:fax@example.com")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid webhooks.public_url \"mailto:fax@example.com\": the URL cannot carry a username"
    );
}
