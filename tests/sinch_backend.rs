//! The queue and its workers against a fake Sinch Fax API: what is sent, how failures
//! are retried or end a job, and that a fax is never sent twice after a timeout or a
//! crash.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use faxgate::config::SinchAuth;
use faxgate::queue::JobState;
use reqwest::Method;

use support::fake_sinch::{FakeSinch, SendScript};
use support::{FROM, Harness, PDF, TO, TO_2, TO_3, fast_policy, request, sinch_backend};

const TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn send_request_carries_fax_fields() {
    let fake = FakeSinch::start().await;
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 2);

    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    let job = harness.wait_for_state(&ids[0], JobState::Submitted).await;

    let sends = fake.send_requests();
    assert_eq!(sends.len(), 1);
    let send = &sends[0];
    assert_eq!(send.path, "/v3/projects/test-project/faxes");
    assert!(send.header("content-type").unwrap().starts_with("application/json"));
    assert!(send.header("authorization").unwrap().starts_with("Bearer token-1-"));

    let body = send.json();
    assert_eq!(body["to"], TO);
    assert_eq!(body["from"], FROM);
    assert_eq!(body["files"].as_array().unwrap().len(), 1);
    assert_eq!(body["files"][0]["fileType"], "PDF");
    let file = BASE64.decode(body["files"][0]["file"].as_str().unwrap()).unwrap();
    assert_eq!(file, PDF);
    assert_eq!(body["callbackUrl"], "https://sinch:p%40ss%3Aw%2Frd@fax.example.com/webhooks/sinch");
    assert_eq!(body["labels"]["faxgateJob"], ids[0].as_str());
    assert_eq!(body["headerText"], "faxgate test");
    assert_eq!(body["resolution"], "SUPERFINE");
    assert_eq!(body["serviceId"], "test-service");

    let faxes = fake.faxes();
    assert_eq!(faxes.len(), 1);
    assert_eq!(job.fax_id.as_deref(), faxes[0]["id"].as_str());
    assert_eq!(job.attempts, 1);
    assert!(job.last_error.is_none());

    let states: Vec<JobState> = harness.queue.history(&ids[0]).await.unwrap().iter().map(|e| e.state).collect();
    assert_eq!(states, [JobState::Queued, JobState::Submitting, JobState::Submitted]);
    harness.stop_workers().await;
}

#[tokio::test]
async fn oauth2_token_serves_several_faxes() {
    let fake = FakeSinch::start().await;
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 3);

    let ids = harness.queue.enqueue_faxes(request(&[TO, TO_2, TO_3]), PDF).await.unwrap();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        harness.wait_for_state(id, JobState::Submitted).await;
    }

    assert_eq!(fake.tokens_issued(), 1);
    assert_eq!(fake.faxes().len(), 3);
    let token_requests: Vec<_> = fake.requests().into_iter().filter(|r| r.path == "/oauth2/token").collect();
    assert_eq!(token_requests.len(), 1);
    let form = String::from_utf8_lossy(&token_requests[0].body).into_owned();
    assert_eq!(form, "grant_type=client_credentials");
    let expected_basic = format!("Basic {}", BASE64.encode("test-key:test-secret"));
    assert_eq!(token_requests[0].header("authorization"), Some(expected_basic.as_str()));
    harness.stop_workers().await;
}

#[tokio::test]
async fn revoked_token_is_replaced_once() {
    let fake = FakeSinch::start().await;
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 1);

    let first = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    harness.wait_for_state(&first[0], JobState::Submitted).await;
    fake.revoke_tokens();
    let second = harness.queue.enqueue_faxes(request(&[TO_2]), PDF).await.unwrap();
    let job = harness.wait_for_state(&second[0], JobState::Submitted).await;

    assert_eq!(fake.tokens_issued(), 2);
    assert_eq!(fake.faxes().len(), 2);
    // One refused send with the revoked token, then one accepted with the new token.
    assert_eq!(fake.send_requests().len(), 3);
    assert_eq!(job.attempts, 1);
    harness.stop_workers().await;
}

#[tokio::test]
async fn basic_auth_sends_key_on_each_call() {
    let fake = FakeSinch::start().await;
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Basic, TIMEOUT), fast_policy(), 1);

    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    harness.wait_for_state(&ids[0], JobState::Submitted).await;

    assert_eq!(fake.tokens_issued(), 0);
    let expected = format!("Basic {}", BASE64.encode("test-key:test-secret"));
    assert_eq!(fake.send_requests()[0].header("authorization"), Some(expected.as_str()));
    harness.stop_workers().await;
}

#[tokio::test]
async fn server_errors_are_retried() {
    let fake = FakeSinch::start().await;
    fake.fail_next_sends(2, 503, None);
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 1);

    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    let job = harness.wait_for_state(&ids[0], JobState::Submitted).await;

    assert_eq!(fake.faxes().len(), 1);
    assert_eq!(fake.send_requests().len(), 3);
    assert_eq!(job.attempts, 3);
    assert_eq!(job.fax_id.as_deref(), fake.faxes()[0]["id"].as_str());
    assert_eq!(job.last_error.as_deref(), Some("fax API returned 503: Service temporarily unavailable"));

    let history = harness.queue.history(&ids[0]).await.unwrap();
    let retries: Vec<_> = history.iter().filter(|e| e.state == JobState::Queued && e.reason.contains("503")).collect();
    assert_eq!(retries.len(), 2);
    harness.stop_workers().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let fake = FakeSinch::start().await;
    fake.fail_next_sends(1, 429, Some(1));
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Basic, TIMEOUT), fast_policy(), 1);

    let started = Instant::now();
    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    let job = harness.wait_for_state(&ids[0], JobState::Submitted).await;

    // The policy alone would retry after 20 ms; the API asked for 1 s.
    assert!(started.elapsed() >= Duration::from_millis(950), "retried after {:?}", started.elapsed());
    assert_eq!(job.attempts, 2);
    assert_eq!(fake.faxes().len(), 1);
    harness.stop_workers().await;
}

#[tokio::test]
async fn invalid_parameters_fail_without_retry() {
    let fake = FakeSinch::start().await;
    fake.script_next_send(SendScript::Fail {
        status: 422,
        message: "The (+14155552222) is not a valid phone number".to_string(),
        retry_after: None,
    });
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 1);

    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    let job = harness.wait_for_state(&ids[0], JobState::Failed).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(job.last_error.as_deref(), Some("fax API returned 422: The (+14155552222) is not a valid phone number"));
    assert_eq!(job.attempts, 1);
    assert_eq!(fake.send_requests().len(), 1);
    assert!(fake.faxes().is_empty());
    assert_eq!(harness.queue.job(&ids[0]).await.unwrap().unwrap().state, JobState::Failed);
    harness.stop_workers().await;
}

#[tokio::test]
async fn field_violations_reach_last_error() {
    let fake = FakeSinch::start().await;
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 1);

    let ids = harness.queue.enqueue_faxes(request(&[TO]), b"not a pdf").await.unwrap();
    let job = harness.wait_for_state(&ids[0], JobState::Failed).await;

    assert_eq!(
        job.last_error.as_deref(),
        Some("fax API returned 422: Invalid request (files[0].file: the file is not a PDF)")
    );
    assert_eq!(fake.send_requests().len(), 1);
    harness.stop_workers().await;
}

#[tokio::test]
async fn timeout_after_accept_sends_once() {
    let fake = FakeSinch::start().await;
    fake.script_next_send(SendScript::AcceptThenStall(Duration::from_millis(1500)));
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, Duration::from_millis(300)), fast_policy(), 1);

    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    let job = harness.wait_for_state(&ids[0], JobState::Submitted).await;

    assert_eq!(fake.send_requests().len(), 1);
    let faxes = fake.faxes();
    assert_eq!(faxes.len(), 1);
    assert_eq!(job.fax_id.as_deref(), faxes[0]["id"].as_str());
    assert_eq!(job.attempts, 2);
    assert!(!job.needs_lookup);

    let lookups: Vec<_> =
        fake.requests().into_iter().filter(|r| r.method == Method::GET && r.path.ends_with("/faxes")).collect();
    assert_eq!(lookups.len(), 1);
    let query = lookups[0].query.clone().unwrap();
    assert!(query.contains("to=%2B14155552222"), "query {query}");

    let history = harness.queue.history(&ids[0]).await.unwrap();
    assert!(history.iter().any(|e| e.state == JobState::Queued && e.reason.contains("timed out")), "{history:#?}");
    harness.stop_workers().await;
}

#[tokio::test]
async fn interrupted_job_found_is_not_resent() {
    let fake = FakeSinch::start().await;
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    harness.force_state(&ids[0], "submitting").await;
    let fax_id = fake.insert_fax(TO, FROM, &ids[0], support::WEBHOOK_URL);

    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 1);
    let job = harness.wait_for_state(&ids[0], JobState::Submitted).await;

    assert_eq!(job.fax_id.as_deref(), Some(fax_id.as_str()));
    assert!(fake.send_requests().is_empty());
    assert_eq!(fake.faxes().len(), 1);
    let history = harness.queue.history(&ids[0]).await.unwrap();
    assert!(history.iter().any(|e| e.reason.contains("stopped during submission")), "{history:#?}");
    assert!(history.last().unwrap().reason.contains("found at the fax API"));
    harness.stop_workers().await;
}

#[tokio::test]
async fn interrupted_job_not_found_is_sent_once() {
    let fake = FakeSinch::start().await;
    // Another job's fax to the same number must not be taken for this one.
    fake.insert_fax(TO, FROM, "some-other-job", support::WEBHOOK_URL);
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    harness.force_state(&ids[0], "submitting").await;

    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 1);
    let job = harness.wait_for_state(&ids[0], JobState::Submitted).await;

    let requests = fake.requests();
    let lookup = requests.iter().position(|r| r.method == Method::GET && r.path.ends_with("/faxes"));
    let send = requests.iter().position(|r| r.method == Method::POST && r.path.ends_with("/faxes"));
    assert!(lookup.unwrap() < send.unwrap(), "the lookup comes before the send");
    assert_eq!(fake.send_requests().len(), 1);
    assert_eq!(fake.faxes().len(), 2);
    assert_eq!(job.fax_id.as_deref(), fake.faxes()[1]["id"].as_str());
    harness.stop_workers().await;
}

#[tokio::test]
async fn lookup_reads_later_pages() {
    let fake = FakeSinch::start().await;
    fake.use_page_number_field();
    fake.insert_unrelated_faxes(TO, 150);
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    harness.force_state(&ids[0], "submitting").await;
    let fax_id = fake.insert_fax(TO, FROM, &ids[0], support::WEBHOOK_URL);

    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 1);
    let job = harness.wait_for_state(&ids[0], JobState::Submitted).await;

    assert_eq!(job.fax_id.as_deref(), Some(fax_id.as_str()));
    assert!(fake.send_requests().is_empty());
    let pages: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::GET && r.path.ends_with("/faxes"))
        .map(|r| r.query.unwrap_or_default())
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[1].contains("page=2"), "{pages:?}");
    harness.stop_workers().await;
}

#[tokio::test]
async fn lifetime_ends_retries() {
    let fake = FakeSinch::start().await;
    fake.fail_next_sends(1000, 503, None);
    let policy = faxgate::queue::RetryPolicy {
        first: Duration::from_millis(50),
        max: Duration::from_millis(100),
        lifetime: Duration::from_millis(1000),
    };
    let mut harness = Harness::new(policy.lifetime).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), policy, 1);

    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    let job = harness.wait_for_state(&ids[0], JobState::Failed).await;

    let sends = fake.send_requests().len();
    assert!(sends >= 2, "{sends} sends");
    assert_eq!(job.attempts as usize, sends);
    assert_eq!(
        job.last_error.unwrap(),
        format!("gave up after {sends} attempts: fax API returned 503: Service temporarily unavailable")
    );
    assert!(fake.faxes().is_empty());
    harness.stop_workers().await;
}

#[tokio::test]
async fn failed_job_retry_sends_it() {
    let fake = FakeSinch::start().await;
    fake.script_next_send(SendScript::Fail { status: 402, message: "Payment required".to_string(), retry_after: None });
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 1);

    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    harness.wait_for_state(&ids[0], JobState::Failed).await;
    let spooled = harness.queue.job(&ids[0]).await.unwrap().unwrap().document;
    assert!(spooled.exists(), "a failed job keeps its document for a retry");

    harness.queue.retry(&ids[0]).await.unwrap();
    let job = harness.wait_for_state(&ids[0], JobState::Submitted).await;

    assert_eq!(job.attempts, 1, "a retry resets the attempt count");
    assert_eq!(fake.faxes().len(), 1);
    assert_eq!(fake.send_requests().len(), 2);
    let err = harness.queue.retry(&ids[0]).await.unwrap_err();
    assert_eq!(err.to_string(), format!("cannot retry job {}: it is submitted", ids[0]));
    harness.stop_workers().await;
}

#[tokio::test]
async fn token_renewed_before_expiry() {
    let fake = FakeSinch::start().await;
    // A token that lasts 1 s is used for half of that.
    fake.set_token_lifetime(1);
    let mut harness = Harness::new(Duration::from_secs(60)).await;
    harness.start_workers(sinch_backend(&fake, SinchAuth::Oauth2, TIMEOUT), fast_policy(), 1);

    let first = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    harness.wait_for_state(&first[0], JobState::Submitted).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = harness.queue.enqueue_faxes(request(&[TO_2]), PDF).await.unwrap();
    harness.wait_for_state(&second[0], JobState::Submitted).await;

    assert_eq!(fake.tokens_issued(), 2);
    assert_eq!(fake.send_requests().len(), 2, "no send was refused for an expired token");
    harness.stop_workers().await;
}

#[tokio::test]
async fn connection_refused_is_retried_without_lookup() {
    let fake = FakeSinch::start().await;
    let mut backend_settings = support::fax_settings(
        faxgate::config::FaxBackendKind::Sinch,
        Some(&fake),
        SinchAuth::Basic,
        Default::default(),
    );
    // Port 1 (tcpmux) is unused on loopback. A port that was free a moment ago is not
    // safe here, because another test's server may bind it meanwhile.
    backend_settings.sinch.api_url = "http://127.0.0.1:1".to_string();
    let backend =
        faxgate::fax::Backend::from_config(&backend_settings, &support::webhooks(support::WEBHOOK_URL)).unwrap();
    let policy = faxgate::queue::RetryPolicy {
        first: Duration::from_millis(20),
        max: Duration::from_millis(50),
        lifetime: Duration::from_millis(1000),
    };
    let mut harness = Harness::new(policy.lifetime).await;
    harness.start_workers(backend, policy, 1);

    let ids = harness.queue.enqueue_faxes(request(&[TO]), PDF).await.unwrap();
    let job = harness.wait_for_state(&ids[0], JobState::Failed).await;

    assert!(job.attempts >= 2, "{} attempts", job.attempts);
    assert!(!job.needs_lookup, "nothing was sent, so nothing needs a lookup");
    let error = job.last_error.unwrap();
    assert!(
        error.starts_with(&format!("gave up after {} attempts: sending the fax: cannot connect", job.attempts)),
        "{error}"
    );
    harness.stop_workers().await;
}
