//! The Emails endpoints of the management API against the real daemon over HTTP:
//! shapes, paging, field violations, credentials, and unknown project or service ids.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::api::{ApiClient, PASSWORD, USERNAME};
use support::daemon::{Setup, TestDaemon};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const N1: &str = "+14155550100";
const N2: &str = "+14155550101";
const N3: &str = "+14155550102";

fn start() -> (TestDaemon, ApiClient) {
    let daemon = TestDaemon::start(Setup::default());
    let api = ApiClient::new(&daemon);
    (daemon, api)
}

/// Checks the Sinch error shape and returns the body.
fn assert_error(response: &support::api::ApiResponse, status: u16) -> Value {
    assert_eq!(response.status.as_u16(), status, "{}", response.text);
    let body = response.json();
    assert_eq!(body["code"], status.to_string(), "{body}");
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

/// Checks a 422 with one field violation on `field` and returns its description.
fn assert_violation(response: &support::api::ApiResponse, field: &str) -> String {
    let body = assert_error(response, 422);
    assert_eq!(body["error"], "Invalid parameters", "{body}");
    let violations = body["details"]["fieldViolations"].as_array().expect("fieldViolations is a list");
    assert_eq!(violations.len(), 1, "{body}");
    assert_eq!(violations[0]["field"], field, "{body}");
    violations[0]["description"].as_str().expect("description is text").to_string()
}

fn mapping(email: &str, numbers: &[(&str, &str)]) -> Value {
    let numbers: Vec<Value> = numbers.iter().map(|(n, p)| json!({"number": n, "permissions": p})).collect();
    json!({"email": email, "phoneNumbers": numbers, "projectId": "local"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_round_trip() {
    let (daemon, api) = start();

    // Permissions default to both, and the email is stored lower case.
    let added = api
        .post("/emails", json!({"email": "Alice@Example.com", "phoneNumbers": [{"number": N1, "permissions": "send"}, {"number": N2}]}))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(added.json(), mapping(ALICE, &[(N1, "send"), (N2, "both")]));

    let listed = api.get("/emails").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(
        listed.json(),
        json!({"emails": [mapping(ALICE, &[(N1, "send"), (N2, "both")])], "page": 1, "totalPages": 1, "pageSize": 100, "totalItems": 1})
    );

    let replaced = api
        .put(
            &format!("/emails/{ALICE}"),
            json!({"phoneNumbers": [{"number": N3, "permissions": "receive"}, {"number": N1}]}),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    assert_eq!(replaced.json(), mapping(ALICE, &[(N3, "receive"), (N1, "both")]));

    let numbers = api.get(&format!("/emails/{ALICE}/numbers")).await;
    assert_eq!(numbers.status, StatusCode::OK, "{}", numbers.text);
    assert_eq!(
        numbers.json(),
        json!({
            "phoneNumbers": [{"phoneNumber": N3, "permissions": "receive"}, {"phoneNumber": N1, "permissions": "both"}],
            "page": 1, "totalPages": 1, "pageSize": 20, "totalItems": 2
        })
    );

    let emails = api.get(&format!("/numbers/{N1}/emails")).await;
    assert_eq!(emails.status, StatusCode::OK, "{}", emails.text);
    assert_eq!(emails.json(), json!({"emails": [ALICE], "page": 1, "totalPages": 1, "pageSize": 100, "totalItems": 1}));
    // A `+` written percent-encoded means the same number.
    let encoded = api.get(&format!("/numbers/%2B{}/emails", &N1[1..])).await;
    assert_eq!(encoded.json()["emails"], json!([ALICE]), "{}", encoded.text);

    let removed = api.delete(&format!("/emails/{ALICE}")).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text);
    assert!(removed.text.is_empty(), "{}", removed.text);
    let listed = api.get("/emails").await.json();
    assert_eq!(listed["emails"], json!([]), "{listed}");
    assert_eq!(listed["totalItems"], 0, "{listed}");

    // Each change is logged with its method, path and email.
    let log = daemon.log();
    for event in ["mapping added", "mapping numbers replaced", "mapping removed"] {
        let line = log.lines().find(|line| line.contains(event)).unwrap_or_else(|| panic!("no {event:?} in:\n{log}"));
        assert!(line.contains(ALICE), "{line}");
        assert!(line.contains("/v3/projects/local/services/local/emails"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_email_not_found() {
    let (_daemon, api) = start();

    let body = assert_error(&api.put(&format!("/emails/{BOB}"), json!({"phoneNumbers": [{"number": N1}]})).await, 404);
    assert!(body["message"].as_str().unwrap().contains(BOB), "{body}");
    assert_error(&api.delete(&format!("/emails/{BOB}")).await, 404);
    assert_error(&api.get(&format!("/emails/{BOB}/numbers")).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_email_conflicts() {
    let (daemon, api) = start();
    let body = json!({"email": ALICE, "phoneNumbers": [{"number": N1}]});
    assert_eq!(api.post("/emails", body.clone()).await.status, StatusCode::CREATED);

    let again = api.post("/emails", json!({"email": "ALICE@example.com", "phoneNumbers": [{"number": N2}]})).await;
    let error = assert_error(&again, 409);
    assert!(error["message"].as_str().unwrap().contains(ALICE), "{error}");
    let log = daemon.log();
    let line = log.lines().find(|line| line.contains("management API request rejected")).expect(&log);
    assert!(line.contains("409"), "{line}");
    // The first mapping is unchanged.
    let numbers = api.get(&format!("/emails/{ALICE}/numbers")).await.json();
    assert_eq!(numbers["phoneNumbers"], json!([{"phoneNumber": N1, "permissions": "both"}]), "{numbers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn number_without_emails_is_empty() {
    let (_daemon, api) = start();
    let response = api.get(&format!("/numbers/{N3}/emails")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    assert_eq!(response.json(), json!({"emails": [], "page": 1, "totalPages": 0, "pageSize": 100, "totalItems": 0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_limits_and_past_end() {
    let (_daemon, api) = start();
    for email in [CAROL, ALICE, BOB] {
        let response = api
            .post("/emails", json!({"email": email, "phoneNumbers": [{"number": N1}, {"number": N2}, {"number": N3}]}))
            .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.text);
    }

    // pageSize 1 walks the mappings in email order.
    for (page, email) in [(1, ALICE), (2, BOB), (3, CAROL)] {
        let body = api.get(&format!("/emails?page={page}&pageSize=1")).await.json();
        assert_eq!(body["emails"].as_array().unwrap().len(), 1, "{body}");
        assert_eq!(body["emails"][0]["email"], email, "{body}");
        assert_eq!(body["page"], page, "{body}");
        assert_eq!(body["pageSize"], 1, "{body}");
        assert_eq!(body["totalPages"], 3, "{body}");
        assert_eq!(body["totalItems"], 3, "{body}");
    }

    let past_end = api.get("/emails?page=4&pageSize=1").await;
    assert_eq!(past_end.status, StatusCode::OK, "{}", past_end.text);
    assert_eq!(past_end.json(), json!({"emails": [], "page": 4, "totalPages": 3, "pageSize": 1, "totalItems": 3}));

    let largest = api.get("/emails?pageSize=1000").await.json();
    assert_eq!(largest["emails"].as_array().unwrap().len(), 3, "{largest}");
    assert_eq!(largest["pageSize"], 1000, "{largest}");

    let description = assert_violation(&api.get("/emails?pageSize=1001").await, "pageSize");
    assert!(description.contains("1001"), "{description}");
    assert_violation(&api.get("/emails?pageSize=0").await, "pageSize");
    assert_violation(&api.get("/emails?page=0").await, "page");
    assert_violation(&api.get("/emails?page=first").await, "page");

    // The same rules on the other two lists.
    let numbers = api.get(&format!("/emails/{ALICE}/numbers?page=2&pageSize=2")).await.json();
    assert_eq!(numbers["phoneNumbers"], json!([{"phoneNumber": N3, "permissions": "both"}]), "{numbers}");
    assert_eq!(numbers["totalPages"], 2, "{numbers}");
    let past_end = api.get(&format!("/emails/{ALICE}/numbers?page=3&pageSize=2")).await.json();
    assert_eq!(past_end["phoneNumbers"], json!([]), "{past_end}");
    assert_violation(&api.get(&format!("/emails/{ALICE}/numbers?pageSize=1001")).await, "pageSize");

    let emails = api.get(&format!("/numbers/{N2}/emails?page=2&pageSize=2")).await.json();
    assert_eq!(emails["emails"], json!([CAROL]), "{emails}");
    assert_eq!(emails["totalItems"], 3, "{emails}");
    let past_end = api.get(&format!("/numbers/{N2}/emails?page=9")).await.json();
    assert_eq!(past_end["emails"], json!([]), "{past_end}");
    assert_violation(&api.get(&format!("/numbers/{N2}/emails?page=0")).await, "page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_names_the_field() {
    let (_daemon, api) = start();

    let cases = [
        (json!({"email": ALICE, "phoneNumbers": [{"number": "4155550100"}]}), "phoneNumbers[0].number", "E.164"),
        (
            json!({"email": ALICE, "phoneNumbers": [{"number": "+15550001111"}]}),
            "phoneNumbers[0].number",
            "+15550001111",
        ),
        (
            json!({"email": ALICE, "phoneNumbers": [{"number": N1, "permissions": "sned"}]}),
            "phoneNumbers[0].permissions",
            "sned",
        ),
        (
            json!({"email": ALICE, "phoneNumbers": [{"number": N1}, {"number": N2, "permissions": "all"}]}),
            "phoneNumbers[1].permissions",
            "all",
        ),
        (json!({"email": ALICE, "phoneNumbers": [{"permissions": "send"}]}), "phoneNumbers[0].number", ""),
        (
            json!({"email": ALICE, "phoneNumbers": [{"number": N1}, {"number": N1}]}),
            "phoneNumbers[1].number",
            "more than once",
        ),
        (json!({"email": ALICE, "phoneNumbers": []}), "phoneNumbers", "at least one"),
        (json!({"email": ALICE}), "phoneNumbers", "at least one"),
        (json!({"email": "alice", "phoneNumbers": [{"number": N1}]}), "email", "alice"),
        (json!({"phoneNumbers": [{"number": N1}]}), "email", ""),
    ];
    for (body, field, fragment) in cases {
        let description = assert_violation(&api.post("/emails", body.clone()).await, field);
        assert!(description.contains(fragment), "{body}: {description}");
    }
    // Nothing was stored by the rejected requests.
    assert_eq!(api.get("/emails").await.json()["totalItems"], 0);

    assert_eq!(
        api.post("/emails", json!({"email": ALICE, "phoneNumbers": [{"number": N1}]})).await.status,
        StatusCode::CREATED
    );
    let put =
        api.put(&format!("/emails/{ALICE}"), json!({"phoneNumbers": [{"number": N1, "permissions": "fax"}]})).await;
    assert_violation(&put, "phoneNumbers[0].permissions");
    let put = api.put(&format!("/emails/{ALICE}"), json!({"phoneNumbers": [{"number": "555"}]})).await;
    assert_violation(&put, "phoneNumbers[0].number");

    let description = assert_violation(&api.get("/numbers/4155550100/emails").await, "phoneNumber");
    assert!(description.contains("E.164"), "{description}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_bad_request() {
    let (_daemon, api) = start();

    let request = api.request(Method::POST, "/emails").header("content-type", "application/json").body("{\"email\": ");
    let body = assert_error(&api.read(request).await, 400);
    assert_eq!(body["error"], "Bad Request", "{body}");

    // A number given as a JSON number is the wrong type.
    let wrong_type = api.post("/emails", json!({"email": ALICE, "phoneNumbers": [{"number": 14155550100u64}]})).await;
    assert_error(&wrong_type, 400);

    let request =
        api.request(Method::PUT, &format!("/emails/{ALICE}")).header("content-type", "application/json").body("[1,");
    assert_error(&api.read(request).await, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_required() {
    let (daemon, api) = start();
    let path = format!("{}/emails", api.prefix);

    let missing = api.send(Method::GET, &path, None, None).await;
    assert_error(&missing, 401);
    let challenge = missing.header("www-authenticate").expect("401 has WWW-Authenticate");
    assert!(challenge.starts_with("Basic realm="), "{challenge}");

    let wrong_password = api.send(Method::GET, &path, None, Some((USERNAME, "wrong"))).await;
    assert_error(&wrong_password, 401);
    assert!(wrong_password.header("www-authenticate").is_some());
    let wrong_user = api.send(Method::GET, &path, None, Some(("root", PASSWORD))).await;
    assert_error(&wrong_user, 401);

    // Without credentials nothing changes, whatever the request.
    let post =
        api.send(Method::POST, &path, Some(json!({"email": ALICE, "phoneNumbers": [{"number": N1}]})), None).await;
    assert_error(&post, 401);
    assert_eq!(api.get("/emails").await.json()["totalItems"], 0);

    // Monitoring needs no credentials.
    assert_eq!(api.send(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
    assert_eq!(api.send(Method::GET, "/metrics", None, None).await.status, StatusCode::OK);

    assert!(!daemon.log().contains(PASSWORD), "the log contains the API password");
    assert!(!daemon.log().contains("wrong\""), "the log contains a tried password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_project_or_service_not_found() {
    let (daemon, api) = start();
    assert_eq!(
        api.post("/emails", json!({"email": ALICE, "phoneNumbers": [{"number": N1}]})).await.status,
        StatusCode::CREATED
    );

    for (project, service) in [("other", "local"), ("local", "other"), ("other", "other")] {
        let other = ApiClient::for_service(&daemon.api_url(), project, service);
        let body = assert_error(&other.get("/emails").await, 404);
        assert_eq!(body["error"], "Not Found", "{body}");
        assert_error(&other.post("/emails", json!({"email": BOB, "phoneNumbers": [{"number": N1}]})).await, 404);
        assert_error(&other.delete(&format!("/emails/{ALICE}")).await, 404);
        assert_error(&other.get(&format!("/numbers/{N1}/emails")).await, 404);
    }
    // The mapping is still there and nothing was added.
    assert_eq!(api.get("/emails").await.json()["totalItems"], 1);

    let unknown = api.send(Method::GET, "/v3/projects/local/faxes", None, Some((USERNAME, PASSWORD))).await;
    assert_error(&unknown, 404);
    let wrong_method = api.call(Method::PATCH, "/emails", None).await;
    assert_error(&wrong_method, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_password_disables_api() {
    let (mut daemon, api) = start();
    tokio::task::block_in_place(|| {
        assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log());
        let config = std::fs::read_to_string(&daemon.config_path).unwrap();
        let without = config.replace(&format!("password = \"{PASSWORD}\""), "password = \"\"");
        assert_ne!(config, without);
        std::fs::write(&daemon.config_path, without).unwrap();
        daemon.spawn();
    });

    let path = format!("{}/emails", api.prefix);
    for credentials in [None, Some((USERNAME, "")), Some((USERNAME, PASSWORD))] {
        let response = api.send(Method::GET, &path, None, credentials).await;
        let body = assert_error(&response, 401);
        assert!(body["message"].as_str().unwrap().contains("api.password"), "{body}");
    }
    assert_eq!(api.send(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
    assert!(daemon.log().contains("management API is disabled until api.password is set"), "{}", daemon.log());

    // The client's idle keep-alive connection does not hold up a stop.
    let started = std::time::Instant::now();
    let status = tokio::task::block_in_place(|| daemon.terminate());
    assert_eq!(status, Some(0), "{}", daemon.log());
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "stopping took {:?}", started.elapsed());
}
