//! Mapping changes made through the management API take effect on the running
//! daemon's next SMTP message, without a restart.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::api::ApiClient;
use support::daemon::{Setup, TestDaemon};
use support::mail::{queued_ids, send_fax};

const ALICE: &str = "alice@example.com";
const ALICE_NUMBER: &str = "+14155550100";
const TO: &str = "+14155552222";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_mapping_applies_to_next_message() {
    let daemon = TestDaemon::start(Setup::default());
    let api = ApiClient::new(&daemon);
    let smtp = daemon.smtp_addr();

    let before = tokio::task::block_in_place(|| send_fax(smtp, ALICE, TO));
    assert!(before.is(550, "5.7.1"), "unmapped sender: {before:?}");

    let added = api
        .post("/emails", json!({"email": ALICE, "phoneNumbers": [{"number": ALICE_NUMBER, "permissions": "send"}]}))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);

    let after = tokio::task::block_in_place(|| send_fax(smtp, ALICE, TO));
    assert!(after.is(250, "2.0.0"), "{after:?}\n{}", daemon.log());
    assert_eq!(queued_ids(&after).len(), 1, "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_mapping_rejects_next_message() {
    let daemon = TestDaemon::start(Setup::default());
    let api = ApiClient::new(&daemon);
    let smtp = daemon.smtp_addr();
    let added = api.post("/emails", json!({"email": ALICE, "phoneNumbers": [{"number": ALICE_NUMBER}]})).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);

    let before = tokio::task::block_in_place(|| send_fax(smtp, ALICE, TO));
    assert!(before.is(250, "2.0.0"), "{before:?}\n{}", daemon.log());

    let removed = api.delete(&format!("/emails/{ALICE}")).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);

    let after = tokio::task::block_in_place(|| send_fax(smtp, ALICE, TO));
    assert!(after.is(550, "5.7.1"), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_only_permission_cannot_send() {
    let daemon = TestDaemon::start(Setup::default());
    let api = ApiClient::new(&daemon);
    let smtp = daemon.smtp_addr();
    let added = api
        .post("/emails", json!({"email": ALICE, "phoneNumbers": [{"number": ALICE_NUMBER, "permissions": "receive"}]}))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let rejected = tokio::task::block_in_place(|| send_fax(smtp, ALICE, TO));
    assert!(rejected.is(550, "5.7.1"), "{rejected:?}");

    let changed = api
        .put(&format!("/emails/{ALICE}"), json!({"phoneNumbers": [{"number": ALICE_NUMBER, "permissions": "both"}]}))
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let accepted = tokio::task::block_in_place(|| send_fax(smtp, ALICE, TO));
    assert!(accepted.is(250, "2.0.0"), "{accepted:?}\n{}", daemon.log());
}
