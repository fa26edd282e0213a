//! Received faxes against the running daemon. `INCOMING_FAX` webhooks in each payload
//! shape become one email per receiving address, delivered through a real SMTP relay
//! (aiosmtpd) that requires STARTTLS with a test CA. Repeats give no second email, a fax
//! whose document cannot be downloaded still reaches its receivers, and bad requests are
//! rejected without queuing anything.

mod support;

use std::time::Duration;

use support::daemon::{Setup, TestDaemon, wait_for};
use support::fake_sinch::{CallbackFormat, FakeSinch};
use support::fake_sinch_config::sinch_table;
use support::pdf::{A4, LETTER, make_pdf};
use support::relay_server::{RelayServer, RelayTls, RelayedMail};
use support::webhook_client::{JsonFile, PASSWORD, USER, Webhook, incoming_fax, multipart_body};

const CALLER: &str = "+14155550100";
const ACCOUNT: &str = "+14155552222";
const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const POSTMASTER: &str = "postmaster@example.com";

/// Starts a daemon relaying through `relay`, with alice receiving, bob receiving and
/// sending, and carol only sending on the account number.
fn daemon_with_receivers(relay: &RelayServer, setup: Setup) -> TestDaemon {
    let daemon = TestDaemon::start(Setup { relay: Some(relay.relay_table(POSTMASTER)), ..setup });
    daemon.add_mapping(ALICE, &[&format!("{ACCOUNT}:receive")]);
    daemon.add_mapping(BOB, &[&format!("{ACCOUNT}:both")]);
    daemon.add_mapping(CAROL, &[&format!("{ACCOUNT}:send")]);
    daemon
}

/// Waits until the relay has stored `count` messages for `recipient`.
async fn wait_for_mail(relay: &RelayServer, recipient: &str, count: usize, daemon: &TestDaemon) -> Vec<RelayedMail> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mails = relay.messages_to(recipient);
        if mails.len() >= count {
            return mails;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{count} emails to {recipient} did not arrive:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks one received-fax email.
fn check_fax_email(mail: &RelayedMail, fax_id: &str, pdf: &[u8]) {
    assert_eq!(mail.header("From").as_deref(), Some("+14155550100@fax.example.com"));
    assert_eq!(mail.subject(), format!("Fax received on {ACCOUNT}"));
    assert!(
        mail.header("Message-ID").is_some_and(|id| id.ends_with("@fax.example.com>")),
        "{:?}",
        mail.header("Message-ID")
    );
    assert!(mail.header("Date").is_some());
    assert_eq!(mail.header("MIME-Version").as_deref(), Some("1.0"));
    let attachments = mail.attachments();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].0, format!("fax-{fax_id}.pdf"));
    assert!(attachments[0].1 == pdf, "the attached PDF differs from the posted one");
    let body = mail.body_text();
    assert!(body.contains(CALLER), "{body}");
    assert!(body.contains(fax_id), "{body}");
    assert!(body.contains("Pages:   2"), "{body}");
    assert!(body.contains("2026-01-02T03:04:35Z"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_multipart_fax_reaches_receiver() {
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let daemon = tokio::task::block_in_place(|| daemon_with_receivers(&relay, Setup::default()));
    // A received fax's PDF can be larger than 2 MiB, axum's default body limit. The
    // comment line after the document keeps the PDF valid.
    let mut pdf = make_pdf(&[LETTER, LETTER]);
    pdf.extend_from_slice(b"%");
    pdf.extend(std::iter::repeat_n(b'x', 5 * 1024 * 1024));
    pdf.extend_from_slice(b"\n");

    let fax_id = "01FAXLARGEMULTIPART0000000";
    let fax = incoming_fax(fax_id, CALLER, ACCOUNT, 2);
    let reply = Webhook::for_daemon(&daemon).post("INCOMING_FAX", &fax, Some(&pdf), CallbackFormat::Multipart).await;
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, daemon.log());
    assert_eq!(reply.json()["result"], "queued");

    let mails = wait_for_mail(&relay, ALICE, 1, &daemon).await;
    check_fax_email(&mails[0], fax_id, &pdf);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_payload_shapes_reach_receivers() {
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let daemon = tokio::task::block_in_place(|| daemon_with_receivers(&relay, Setup::default()));
    let webhook = Webhook::for_daemon(&daemon);

    let cases = [
        ("01FAXMULTIPART000000000000", make_pdf(&[LETTER, LETTER]), None),
        ("01FAXJSONFILE0000000000000", make_pdf(&[A4, A4]), Some(JsonFile::TopLevel)),
        ("01FAXJSONFILES000000000000", make_pdf(&[LETTER, A4]), Some(JsonFile::FilesArray)),
    ];
    for (fax_id, pdf, json) in &cases {
        let fax = incoming_fax(fax_id, CALLER, ACCOUNT, 2);
        let reply = match json {
            None => webhook.post("INCOMING_FAX", &fax, Some(pdf), CallbackFormat::Multipart).await,
            Some(place) => webhook.post_json("INCOMING_FAX", &fax, Some(pdf), *place).await,
        };
        assert_eq!(reply.status, 200, "{}\n{}", reply.body, daemon.log());
        assert_eq!(reply.json()["result"], "queued");
    }

    for receiver in [ALICE, BOB] {
        let mails = wait_for_mail(&relay, receiver, cases.len(), &daemon).await;
        for (fax_id, pdf, _) in &cases {
            let mail = mails
                .iter()
                .find(|m| m.subject().contains(ACCOUNT) && m.body_text().contains(fax_id))
                .unwrap_or_else(|| panic!("no email for fax {fax_id} to {receiver}"));
            assert_eq!(mail.header("To").as_deref(), Some(receiver));
            assert!(mail.tls, "the relay took the message outside TLS");
            assert_eq!(mail.mail_from, "fax@fax.example.com");
            check_fax_email(mail, fax_id, pdf);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(relay.messages_to(CAROL).is_empty(), "a send-only mapping received a fax");
    assert_eq!(relay.messages().len(), 2 * cases.len(), "each message goes to exactly one recipient");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_webhooks_give_one_email() {
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let daemon = tokio::task::block_in_place(|| daemon_with_receivers(&relay, Setup::default()));
    let webhook = std::sync::Arc::new(Webhook::for_daemon(&daemon));
    let fax_id = "01FAXDUPLICATE000000000000";
    let pdf = make_pdf(&[LETTER, LETTER]);
    let fax = incoming_fax(fax_id, CALLER, ACCOUNT, 2);

    let mut posts = Vec::new();
    for i in 0..5 {
        let (webhook, fax, pdf) = (webhook.clone(), fax.clone(), pdf.clone());
        let format = if i % 2 == 0 { CallbackFormat::Multipart } else { CallbackFormat::Json };
        posts.push(tokio::spawn(async move { webhook.post("INCOMING_FAX", &fax, Some(&pdf), format).await }));
    }
    let mut results = Vec::new();
    for post in posts {
        let reply = post.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        results.push(reply.json()["result"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(results.iter().filter(|r| *r == "queued").count(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|r| *r == "duplicate").count(), 4, "{results:?}");

    wait_for_mail(&relay, ALICE, 1, &daemon).await;
    wait_for_mail(&relay, BOB, 1, &daemon).await;
    for _ in 0..3 {
        let reply = webhook.post("INCOMING_FAX", &fax, Some(&pdf), CallbackFormat::Json).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["result"], "duplicate");
    }
    // Give a wrongly queued repeat time to arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(relay.messages_to(ALICE).len(), 1, "{}", daemon.log());
    assert_eq!(relay.messages_to(BOB).len(), 1);
}

/// Counts the stored webhook events in the daemon's database.
async fn stored_events(daemon: &TestDaemon) -> i64 {
    let options =
        sqlx::sqlite::SqliteConnectOptions::new().filename(daemon.data_dir().join("faxgate.db")).read_only(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let count = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events").fetch_one(&pool).await.unwrap();
    pool.close().await;
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_rejected() {
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let setup = Setup { webhooks_extra: "max_body_size = 20000".to_string(), ..Setup::default() };
    let daemon = tokio::task::block_in_place(|| daemon_with_receivers(&relay, setup));
    let webhook = Webhook::for_daemon(&daemon);
    let pdf = make_pdf(&[LETTER]);
    let fax = incoming_fax("01FAXBAD000000000000000000", CALLER, ACCOUNT, 1);
    let (content_type, body) = multipart_body("INCOMING_FAX", &fax, Some(&pdf));

    let missing = webhook.post_raw(&content_type, body.clone(), None).await;
    assert_eq!(missing.status, 401);
    // The body was left unread, so the connection must not be reused.
    assert_eq!(missing.headers.get("connection").and_then(|v| v.to_str().ok()), Some("close"));
    assert!(missing.headers.get("www-authenticate").is_some_and(|v| v.to_str().unwrap().starts_with("Basic")));
    let wrong = webhook.post_raw(&content_type, body.clone(), Some((USER, "wrong"))).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["code"], "401");

    let cases: &[(&str, &[u8], &str)] = &[
        ("application/json", b"{not json", "invalid JSON"),
        ("application/json", br#"{"event":"INCOMING_FAX"}"#, "missing field fax"),
        (
            "application/json",
            br#"{"event":"INCOMING_FAX","fax":{"id":"X1","to":"+14155552222"},"file":"aGVsbG8="}"#,
            "not a PDF",
        ),
        ("application/json", br#"{"event":"INCOMING_FAX","fax":{"id":"X2","to":"nobody"}}"#, "fax.to"),
        ("multipart/form-data; boundary=nothing", b"garbage", "multipart"),
        ("text/plain", b"hello", "Content-Type"),
    ];
    for (content_type, body, reason) in cases {
        let reply = webhook.post_raw(content_type, body.to_vec(), Some((USER, PASSWORD))).await;
        assert_eq!(reply.status, 400, "{reply:?}");
        let json = reply.json();
        assert_eq!(json["code"], "400");
        assert_eq!(json["error"], "Bad Request");
        assert!(json["message"].as_str().unwrap().contains(reason), "{reason}: {json}");
    }

    // Trailing bytes after %%EOF keep the magic bytes right and make the body large.
    let mut big = make_pdf(&[LETTER]);
    big.extend(std::iter::repeat_n(b'\n', 30_000));
    // The daemon replies 413 before it reads the body and then closes the connection,
    // so the client may see a reset instead of the reply. Such attempts are repeated.
    let (content_type, body) = multipart_body("INCOMING_FAX", &fax, Some(&big));
    let mut too_large = None;
    for _ in 0..5 {
        if let Ok(reply) = webhook.try_post_raw(&content_type, body.clone(), Some((USER, PASSWORD))).await {
            too_large = Some(reply);
            break;
        }
    }
    let too_large = too_large.expect("a reply to the large request");
    assert_eq!(too_large.status, 413, "{too_large:?}");
    assert_eq!(too_large.json()["code"], "413");

    let unknown = webhook.post_json("FAX_SOMETHING_NEW", &fax, None, JsonFile::TopLevel).await;
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.json()["result"], "ignored");

    assert_eq!(stored_events(&daemon).await, 0, "a rejected request was stored");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(relay.messages().is_empty(), "a rejected request produced an email");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_number_goes_to_postmaster() {
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let daemon = tokio::task::block_in_place(|| daemon_with_receivers(&relay, Setup::default()));
    let webhook = Webhook::for_daemon(&daemon);
    let pdf = make_pdf(&[LETTER, LETTER]);
    let fax = incoming_fax("01FAXUNMAPPED0000000000000", CALLER, "+14155552223", 2);
    let reply = webhook.post("INCOMING_FAX", &fax, Some(&pdf), CallbackFormat::Json).await;
    assert_eq!(reply.status, 200);

    let mails = wait_for_mail(&relay, POSTMASTER, 1, &daemon).await;
    assert_eq!(mails[0].subject(), "Fax received on +14155552223");
    assert_eq!(mails[0].attachments()[0].1, pdf);
    assert!(relay.messages_to(ALICE).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_file_is_downloaded() {
    let fake = FakeSinch::start().await;
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let sinch = sinch_table(&fake);
    let daemon =
        tokio::task::block_in_place(|| daemon_with_receivers(&relay, Setup { sinch: Some(sinch), ..Setup::default() }));
    let pdf = make_pdf(&[A4, A4]);
    let fax_id = fake.insert_incoming_fax(CALLER, ACCOUNT, &pdf);
    let fax = incoming_fax(&fax_id, CALLER, ACCOUNT, 2);

    let reply = Webhook::for_daemon(&daemon).post("INCOMING_FAX", &fax, None, CallbackFormat::Multipart).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let mails = wait_for_mail(&relay, ALICE, 1, &daemon).await;
    check_fax_email(&mails[0], &fax_id, &pdf);
    let downloads = fake.requests().iter().filter(|r| r.path.ends_with(&format!("/faxes/{fax_id}/file"))).count();
    assert_eq!(downloads, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undownloadable_fax_still_reaches_receivers() {
    let fake = FakeSinch::start().await;
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    let sinch = sinch_table(&fake);
    let daemon =
        tokio::task::block_in_place(|| daemon_with_receivers(&relay, Setup { sinch: Some(sinch), ..Setup::default() }));
    // The fake API does not know this fax, so both download paths return 404, a
    // permanent error.
    let fax_id = "01FAXNODOCUMENT00000000000";
    let fax = incoming_fax(fax_id, CALLER, ACCOUNT, 2);

    let reply = Webhook::for_daemon(&daemon).post("INCOMING_FAX", &fax, None, CallbackFormat::Multipart).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let mails = wait_for_mail(&relay, ALICE, 1, &daemon).await;
    let mail = &mails[0];
    assert_eq!(mail.subject(), format!("Fax received on {ACCOUNT}"));
    assert!(mail.attachments().is_empty(), "an email without a document has an attachment");
    let body = mail.body_text();
    assert!(body.contains(fax_id), "{body}");
    assert!(body.contains("not attached"), "{body}");
    assert!(body.contains("404"), "{body}");
    let bob_mails = wait_for_mail(&relay, BOB, 1, &daemon).await;
    assert_eq!(bob_mails.len(), 1);
}

#[test]
fn maildir_relay_stores_in_new() {
    let daemon = TestDaemon::start(Setup::default());
    daemon.add_mapping(ALICE, &[&format!("{ACCOUNT}:receive")]);
    let pdf = make_pdf(&[LETTER, LETTER]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reply = runtime.block_on(async {
        let fax = incoming_fax("01FAXMAILDIR00000000000000", CALLER, ACCOUNT, 2);
        Webhook::for_daemon(&daemon).post("INCOMING_FAX", &fax, Some(&pdf), CallbackFormat::Json).await
    });
    assert_eq!(reply.status, 200);

    let maildir = daemon.data_dir().join("maildir");
    let file = wait_for("the email in maildir/new", Duration::from_secs(30), || {
        std::fs::read_dir(maildir.join("new")).ok()?.next().map(|e| e.unwrap().path())
    });
    let data = std::fs::read(file).unwrap();
    let mail = RelayedMail { mail_from: String::new(), helo: String::new(), rcpt_tos: vec![], tls: true, data };
    check_fax_email(&mail, "01FAXMAILDIR00000000000000", &pdf);
    assert_eq!(std::fs::read_dir(maildir.join("tmp")).unwrap().count(), 0);
    assert!(maildir.join("cur").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_served_over_https() {
    let relay = RelayServer::start(RelayTls::RequireStarttls);
    // The daemon's test certificate for localhost, written next to its configuration.
    let setup =
        Setup { webhooks_extra: "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"".to_string(), ..Setup::default() };
    let daemon = tokio::task::block_in_place(|| daemon_with_receivers(&relay, setup));

    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(daemon.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/webhooks/sinch", daemon.webhook_addr.port());
    let pdf = make_pdf(&[LETTER, LETTER]);
    let fax = incoming_fax("01FAXHTTPS0000000000000000", CALLER, ACCOUNT, 2);
    let (content_type, body) = multipart_body("INCOMING_FAX", &fax, Some(&pdf));
    let response = client
        .post(&url)
        .basic_auth(USER, Some(PASSWORD))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("the HTTPS webhook answers");
    assert_eq!(response.status().as_u16(), 200);

    let plain = reqwest::Client::new().post(format!("http://{}/webhooks/sinch", daemon.webhook_addr)).send().await;
    assert!(plain.is_err() || plain.unwrap().status().as_u16() != 200, "plain HTTP was served");

    let mails = wait_for_mail(&relay, ALICE, 1, &daemon).await;
    check_fax_email(&mails[0], "01FAXHTTPS0000000000000000", &pdf);
}
