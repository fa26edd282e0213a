//! A fake Sinch Fax API v3 for tests, served by axum on 127.0.0.1 at a random port.
//!
//! It implements the OAuth2 token endpoint and, under `/v3/projects/{projectId}`,
//! `POST /faxes`, `GET /faxes` (with `to` prefix filter and pagination),
//! `GET /faxes/{id}` and `GET /faxes/{id}/file` (and the older `/file.pdf`). Requests
//! are checked the way the real API is documented to check them, and refused with
//! Sinch's error shape `{"code","error","message","details":{"fieldViolations":[..]}}`.
//! Every request is recorded, failures can be scripted for the next sends, and the
//! fake can post a `FAX_COMPLETED` callback to a fax's `callbackUrl`, either when a
//! test calls for it or on its own after each send ([`FakeSinch::complete_sends`]). It can also
//! hold received faxes, whose files the daemon downloads.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

pub const PROJECT_ID: &str = "test-project";
pub const SERVICE_ID: &str = "test-service";
pub const KEY_ID: &str = "test-key";
pub const KEY_SECRET: &str = "test-secret";

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RecordedRequest {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("recorded body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the fake does with the next fax send.
#[derive(Debug, Clone)]
pub enum SendScript {
    /// Respond with this status and a Sinch error body, without storing the fax.
    Fail { status: u16, message: String, retry_after: Option<u64> },
    /// Store the fax, then wait this long before responding, so that a client with a
    /// shorter timeout gives up after the fax exists.
    AcceptThenStall(Duration),
}

/// What the fake does on its own after it stores a sent fax.
#[derive(Debug, Clone)]
pub struct AutoResult {
    /// `COMPLETED` or `FAILURE`.
    pub status: &'static str,
    /// `errorType`, `errorCode` and `errorMessage` for `FAILURE`.
    pub error: Option<(&'static str, u32, &'static str)>,
    /// The format of the `FAX_COMPLETED` callback; `None` suppresses the callback, so
    /// only a status poll finds the result.
    pub callback: Option<CallbackFormat>,
}

/// The format of a callback the fake posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackFormat {
    Multipart,
    Json,
}

#[derive(Default)]
struct Shared {
    requests: Vec<RecordedRequest>,
    scripts: VecDeque<SendScript>,
    tokens: HashSet<String>,
    tokens_issued: usize,
    token_lifetime_secs: u64,
    /// Faxes in creation order, as the API returns them.
    faxes: Vec<Value>,
    pdfs: HashMap<String, Vec<u8>>,
    /// The `callbackUrl` of each fax as sent, with credentials; the stored fax object
    /// masks them as Sinch does.
    callback_urls: HashMap<String, String>,
    /// Whether `GET /faxes/{id}/file` responds with 404, as before the path existed, so that
    /// only the older `/file.pdf` serves the PDF.
    legacy_file_path_only: bool,
    /// Name of the list response's page field: `page` (current) or `pageNumber` (older).
    page_field: &'static str,
    /// The result each new fax gets shortly after it is stored.
    auto_result: Option<AutoResult>,
}

pub struct FakeSinch {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSinch {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeSinch {
    pub async fn start() -> FakeSinch {
        let shared =
            Arc::new(Mutex::new(Shared { token_lifetime_secs: 3600, page_field: "page", ..Shared::default() }));
        let router = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Sinch server");
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("fake Sinch server failed");
        });
        FakeSinch { addr, shared, server }
    }

    /// Returns the base URL to use as `fax.sinch.api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Returns the URL to use as `fax.sinch.auth_url`.
    pub fn auth_url(&self) -> String {
        format!("http://{}/oauth2/token", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap()
    }

    /// Makes the next `count` sends fail with `status` (no fax is stored).
    pub fn fail_next_sends(&self, count: usize, status: u16, retry_after: Option<u64>) {
        let mut shared = self.lock();
        for _ in 0..count {
            shared.scripts.push_back(SendScript::Fail {
                status,
                message: "Service temporarily unavailable".to_string(),
                retry_after,
            });
        }
    }

    pub fn script_next_send(&self, script: SendScript) {
        self.lock().scripts.push_back(script);
    }

    pub fn set_token_lifetime(&self, secs: u64) {
        self.lock().token_lifetime_secs = secs;
    }

    /// Revokes every issued token, so that the next API call with one gets 401.
    pub fn revoke_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Names the list response's page field `pageNumber`, as older API versions did.
    pub fn use_page_number_field(&self) {
        self.lock().page_field = "pageNumber";
    }

    /// Serves fax files only at the deprecated `/faxes/{id}/file.pdf`.
    pub fn serve_legacy_file_path_only(&self) {
        self.lock().legacy_file_path_only = true;
    }

    pub fn tokens_issued(&self) -> usize {
        self.lock().tokens_issued
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Returns the fax sends received, whatever the response.
    pub fn send_requests(&self) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.method == Method::POST && r.path.ends_with("/faxes")).collect()
    }

    /// Returns the faxes stored, as the API would return them.
    pub fn faxes(&self) -> Vec<Value> {
        self.lock().faxes.clone()
    }

    pub fn pdf(&self, fax_id: &str) -> Option<Vec<u8>> {
        self.lock().pdfs.get(fax_id).cloned()
    }

    /// Stores a fax as if it had been sent earlier with the label `faxgateJob = job_id`.
    pub fn insert_fax(&self, to: &str, from: &str, job_id: &str, callback_url: &str) -> String {
        let body = json!({
            "to": to,
            "from": from,
            "labels": { "faxgateJob": job_id },
            "callbackUrl": callback_url,
            "resolution": "FINE",
        });
        let mut shared = self.lock();
        store_fax(&mut shared, &body, b"%PDF-1.4 inserted".to_vec())
    }

    /// Stores `count` faxes to `to` with other labels, to push a fax onto a later page.
    pub fn insert_unrelated_faxes(&self, to: &str, count: usize) {
        for i in 0..count {
            self.insert_fax(to, "+14155550100", &format!("other-{i}"), "https://example.invalid/hook");
        }
    }

    /// Gives every fax sent from now on `result` shortly after the send: the status is
    /// set and, unless `result.callback` is `None`, a `FAX_COMPLETED` callback posted.
    pub fn complete_sends(&self, result: AutoResult) {
        self.lock().auto_result = Some(result);
    }

    /// Stores a received fax (direction `INBOUND`) with its PDF and returns its id.
    pub fn insert_incoming_fax(&self, from: &str, to: &str, pdf: &[u8]) -> String {
        let body = json!({ "to": to, "from": from });
        let mut shared = self.lock();
        let id = store_fax(&mut shared, &body, pdf.to_vec());
        let fax = shared.faxes.iter_mut().find(|f| f["id"] == id.as_str()).unwrap();
        fax["direction"] = json!("INBOUND");
        fax["status"] = json!("COMPLETED");
        id
    }

    /// Sets a stored fax's status, with an error for `FAILURE`.
    pub fn set_status(&self, fax_id: &str, status: &str, error: Option<(&str, u32, &str)>) {
        let mut shared = self.lock();
        let fax = shared.faxes.iter_mut().find(|f| f["id"] == fax_id).expect("fax exists");
        fax["status"] = json!(status);
        fax["completedTime"] = json!("2026-01-01T00:00:00Z");
        if let Some((error_type, code, message)) = error {
            fax["errorType"] = json!(error_type);
            fax["errorCode"] = json!(code);
            fax["errorMessage"] = json!(message);
        }
    }

    /// Posts a `FAX_COMPLETED` event for a stored fax to its `callbackUrl`, with the Basic
    /// credentials taken from that URL, and returns the receiver's status code.
    pub async fn send_fax_completed(&self, fax_id: &str, format: CallbackFormat) -> Result<u16, String> {
        post_fax_completed(&self.shared, fax_id, format).await
    }
}

/// Posts a `FAX_COMPLETED` event for a stored fax; see [`FakeSinch::send_fax_completed`].
async fn post_fax_completed(shared: &Mutex<Shared>, fax_id: &str, format: CallbackFormat) -> Result<u16, String> {
    let (fax, pdf, callback_url) = {
        let mut shared = shared.lock().unwrap();
        let fax = shared.faxes.iter_mut().find(|f| f["id"] == fax_id).ok_or("no such fax")?;
        if fax["status"] == "QUEUED" || fax["status"] == "IN_PROGRESS" {
            fax["status"] = json!("COMPLETED");
            fax["completedTime"] = json!("2026-01-01T00:00:00Z");
        }
        let fax = fax.clone();
        (fax, shared.pdfs[fax_id].clone(), shared.callback_urls[fax_id].clone())
    };
    let mut url = reqwest::Url::parse(&callback_url).map_err(|e| e.to_string())?;
    let username = url.username().to_string();
    let password = url.password().map(str::to_string);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let username = percent_decode(&username, false);
    let password = password.map(|p| percent_decode(&p, false));

    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let mut request = client.post(url);
    if !username.is_empty() || password.is_some() {
        request = request.basic_auth(username, password);
    }
    let event_time = "2026-01-01T00:00:00Z";
    let request = match format {
        CallbackFormat::Json => request.json(&json!({
            "event": "FAX_COMPLETED",
            "eventTime": event_time,
            "fax": fax,
            "file": BASE64.encode(&pdf),
            "fileType": "PDF",
        })),
        CallbackFormat::Multipart => {
            let boundary = format!("fakesinch{}", ulid::Ulid::new());
            let mut body = Vec::new();
            for (name, value) in [
                ("event", "FAX_COMPLETED".to_string()),
                ("eventTime", event_time.to_string()),
                ("fax", fax.to_string()),
            ] {
                body.extend_from_slice(
                    format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{fax_id}.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(&pdf);
            body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
            request.header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={boundary}")).body(body)
        }
    };
    let response = request.send().await.map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = RecordedRequest {
        method: method.clone(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers.clone(),
        body: body.clone(),
    };
    shared.lock().unwrap().requests.push(request);

    if uri.path() == "/oauth2/token" {
        return issue_token(&shared, &method, &headers, &body);
    }

    let prefix = format!("/v3/projects/{PROJECT_ID}/faxes");
    let Some(rest) = uri.path().strip_prefix(&prefix) else {
        return sinch_error(404, "Not Found", "no such resource", vec![]);
    };
    if let Err(response) = check_api_auth(&shared, &headers) {
        return response;
    }
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segments.as_slice()) {
        (Method::POST, []) => send_fax(&shared, &headers, &body).await,
        (Method::GET, []) => list_faxes(&shared, uri.query().unwrap_or("")),
        (Method::GET, [id]) => {
            let shared = shared.lock().unwrap();
            match shared.faxes.iter().find(|f| f["id"] == *id) {
                Some(fax) => axum::Json(fax.clone()).into_response(),
                None => sinch_error(404, "Not Found", &format!("fax {id} not found"), vec![]),
            }
        }
        (Method::GET, [id, file_name @ ("file" | "file.pdf")]) => {
            let shared = shared.lock().unwrap();
            if shared.legacy_file_path_only && *file_name == "file" {
                return sinch_error(404, "Not Found", "no such resource", vec![]);
            }
            match shared.pdfs.get(*id) {
                Some(pdf) => (
                    [
                        (header::CONTENT_TYPE, "application/pdf".to_string()),
                        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{id}.pdf\"")),
                    ],
                    pdf.clone(),
                )
                    .into_response(),
                None => sinch_error(404, "Not Found", &format!("fax {id} not found"), vec![]),
            }
        }
        _ => sinch_error(404, "Not Found", "no such resource", vec![]),
    }
}

fn issue_token(shared: &Mutex<Shared>, method: &Method, headers: &HeaderMap, body: &[u8]) -> Response {
    if method != Method::POST {
        return sinch_error(405, "Method Not Allowed", "use POST", vec![]);
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return sinch_error(400, "Bad Request", "expected a form body", vec![]);
    }
    if basic_credentials(headers).as_ref() != Some(&(KEY_ID.to_string(), KEY_SECRET.to_string())) {
        return sinch_error(401, "Unauthorized", "invalid client credentials", vec![]);
    }
    let form = String::from_utf8_lossy(body);
    if !form.split('&').any(|pair| pair == "grant_type=client_credentials") {
        return sinch_error(400, "Bad Request", "grant_type must be client_credentials", vec![]);
    }
    let mut shared = shared.lock().unwrap();
    shared.tokens_issued += 1;
    let token = format!("token-{}-{}", shared.tokens_issued, ulid::Ulid::new());
    shared.tokens.insert(token.clone());
    axum::Json(json!({
        "access_token": token,
        "expires_in": shared.token_lifetime_secs,
        "scope": "",
        "token_type": "bearer",
    }))
    .into_response()
}

#[allow(clippy::result_large_err)]
fn check_api_auth(shared: &Mutex<Shared>, headers: &HeaderMap) -> Result<(), Response> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(token) = authorization.strip_prefix("Bearer ") {
        if shared.lock().unwrap().tokens.contains(token) {
            return Ok(());
        }
    } else if basic_credentials(headers) == Some((KEY_ID.to_string(), KEY_SECRET.to_string())) {
        return Ok(());
    }
    Err(sinch_error(401, "Unauthorized", "missing or invalid credentials", vec![]))
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let decoded = BASE64.decode(value.strip_prefix("Basic ")?).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Gives a sent fax its scripted result a moment after the send, as the telephone
/// side would, and posts the callback unless it is suppressed.
async fn finish_fax(shared: Arc<Mutex<Shared>>, fax_id: String, result: AutoResult) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let mut shared = shared.lock().unwrap();
        let Some(fax) = shared.faxes.iter_mut().find(|f| f["id"] == fax_id.as_str()) else { return };
        fax["status"] = json!(result.status);
        fax["completedTime"] = json!("2026-01-01T00:00:00Z");
        let pages = fax["numberOfPages"].clone();
        if let Some((error_type, code, message)) = result.error {
            fax["errorType"] = json!(error_type);
            fax["errorCode"] = json!(code);
            fax["errorMessage"] = json!(message);
            fax["pagesSentSuccessfully"] = json!(0);
        } else {
            fax["pagesSentSuccessfully"] = pages;
        }
    }
    if let Some(format) = result.callback {
        let _ = post_fax_completed(&shared, &fax_id, format).await;
    }
}

async fn send_fax(shared: &Arc<Mutex<Shared>>, headers: &HeaderMap, body: &[u8]) -> Response {
    let script = shared.lock().unwrap().scripts.pop_front();
    if let Some(SendScript::Fail { status, message, retry_after }) = &script {
        let mut response = sinch_error(*status, "Scripted failure", message, vec![]);
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
        }
        return response;
    }

    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/json") {
        return sinch_error(400, "Bad Request", &format!("unsupported content type {content_type:?}"), vec![]);
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return sinch_error(400, "Bad Request", "the body is not valid JSON", vec![]);
    };
    let (violations, pdf) = validate_send(&request);
    if !violations.is_empty() {
        return sinch_error(422, "Invalid parameters", "Invalid request", violations);
    }

    let fax = {
        let mut shared = shared.lock().unwrap();
        let id = store_fax(&mut shared, &request, pdf.expect("validated PDF"));
        shared.faxes.iter().find(|f| f["id"] == id).unwrap().clone()
    };
    let auto_result = shared.lock().unwrap().auto_result.clone();
    if let Some(result) = auto_result {
        let fax_id = fax["id"].as_str().unwrap().to_string();
        let shared = Arc::clone(shared);
        tokio::spawn(async move { finish_fax(shared, fax_id, result).await });
    }
    if let Some(SendScript::AcceptThenStall(delay)) = script {
        tokio::time::sleep(delay).await;
    }
    axum::Json(fax).into_response()
}

/// Checks a send request against the documented rules and returns the field violations
/// and the decoded PDF.
fn validate_send(request: &Value) -> (Vec<(String, String)>, Option<Vec<u8>>) {
    let mut violations = Vec::new();
    let mut violation = |field: &str, description: String| violations.push((field.to_string(), description));

    match request.get("to").and_then(Value::as_str) {
        Some(to) if is_e164(to) => {}
        Some(to) => violation("to", format!("The ({to}) is not a valid phone number")),
        None => violation("to", "to is required and must be a string".to_string()),
    }
    match request.get("from") {
        None => {}
        Some(Value::String(from)) if is_e164(from) => {}
        Some(from) => violation("from", format!("The ({from}) is not a valid phone number")),
    }

    let mut pdf = None;
    match request.get("files").and_then(Value::as_array).and_then(|files| files.first()) {
        None => violation("files", "at least one file is required".to_string()),
        Some(file) => {
            if file.get("fileType").and_then(Value::as_str) != Some("PDF") {
                violation("files[0].fileType", "must be PDF".to_string());
            }
            match file.get("file").and_then(Value::as_str).map(|b64| BASE64.decode(b64)) {
                Some(Ok(bytes)) if bytes.starts_with(b"%PDF-") => pdf = Some(bytes),
                Some(Ok(_)) => violation("files[0].file", "the file is not a PDF".to_string()),
                Some(Err(err)) => violation("files[0].file", format!("invalid base64: {err}")),
                None => violation("files[0].file", "file is required".to_string()),
            }
        }
    }

    match request.get("labels") {
        None => {}
        Some(Value::Object(labels)) if labels.values().all(Value::is_string) => {}
        Some(_) => violation("labels", "labels must be a map of strings".to_string()),
    }
    match request.get("callbackUrl").and_then(Value::as_str) {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {}
        _ => violation("callbackUrl", "callbackUrl is required by this fake".to_string()),
    }
    if let Some(text) = request.get("headerText")
        && text.as_str().is_none_or(|t| t.chars().count() > 50)
    {
        violation("headerText", "at most 50 characters".to_string());
    }
    if let Some(resolution) = request.get("resolution")
        && !matches!(resolution.as_str(), Some("FINE" | "SUPERFINE"))
    {
        violation("resolution", "must be FINE or SUPERFINE".to_string());
    }
    (violations, pdf)
}

fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
    })
}

fn store_fax(shared: &mut Shared, request: &Value, pdf: Vec<u8>) -> String {
    let id = ulid::Ulid::new().to_string();
    let callback_url = request.get("callbackUrl").and_then(Value::as_str).unwrap_or("").to_string();
    let fax = json!({
        "id": id,
        "direction": "OUTBOUND",
        "from": request.get("from").cloned().unwrap_or(json!("")),
        "to": request["to"],
        "numberOfPages": count_pages(&pdf),
        "status": "QUEUED",
        "createTime": "2026-01-01T00:00:00Z",
        "headerText": request.get("headerText").cloned().unwrap_or(json!("-")),
        "labels": request.get("labels").cloned().unwrap_or(json!({})),
        "callbackUrl": mask_credentials(&callback_url),
        "resolution": request.get("resolution").cloned().unwrap_or(json!("FINE")),
        "hasFile": true,
        "projectId": PROJECT_ID,
        "serviceId": request.get("serviceId").cloned().unwrap_or(json!(SERVICE_ID)),
    });
    shared.faxes.push(fax);
    shared.pdfs.insert(id.clone(), pdf);
    shared.callback_urls.insert(id.clone(), callback_url);
    id
}

/// Counts a PDF's pages; 1 when it cannot be read, as for the tests' tiny PDFs.
fn count_pages(pdf: &[u8]) -> usize {
    lopdf::Document::load_mem(pdf).map(|doc| doc.get_pages().len()).unwrap_or(1).max(1)
}

fn list_faxes(shared: &Mutex<Shared>, query: &str) -> Response {
    let params: HashMap<String, String> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k, true), percent_decode(v, true)))
        .collect();
    let page: usize = params.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let page_size: usize = params.get("pageSize").and_then(|p| p.parse().ok()).unwrap_or(100);
    if page == 0 || page_size == 0 || page_size > 1000 {
        return sinch_error(400, "Bad Request", "invalid page or pageSize", vec![]);
    }
    let shared = shared.lock().unwrap();
    let matching: Vec<&Value> = shared
        .faxes
        .iter()
        .filter(|f| params.get("to").is_none_or(|to| f["to"].as_str().is_some_and(|n| n.starts_with(to.as_str()))))
        .collect();
    let total_pages = matching.len().div_ceil(page_size);
    let faxes: Vec<Value> = matching.into_iter().skip((page - 1) * page_size).take(page_size).cloned().collect();
    let mut response = json!({
        "faxes": faxes,
        "pageSize": page_size,
        "totalItems": shared.faxes.len(),
        "totalPages": total_pages,
    });
    response[shared.page_field] = json!(page);
    axum::Json(response).into_response()
}

fn sinch_error(status: u16, error: &str, message: &str, violations: Vec<(String, String)>) -> Response {
    let mut body = json!({ "code": status.to_string(), "error": error, "message": message });
    if !violations.is_empty() {
        let list: Vec<Value> =
            violations.iter().map(|(field, description)| json!({"field": field, "description": description})).collect();
        body["details"] = json!({ "fieldViolations": list });
    }
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// Replaces the password in a URL with `****`, as Sinch does when it returns a fax.
fn mask_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("****"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Decodes `%XX` escapes; with `plus_as_space`, also `+` as a space, as in query strings.
fn percent_decode(text: &str, plus_as_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
        } else {
            out.push(if plus_as_space && bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
