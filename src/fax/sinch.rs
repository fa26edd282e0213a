//! The Sinch Fax API v3 client: send a fax, look one up by id or by its job label.
//!
//! Requests are JSON, because multipart cannot carry `labels` reliably. Authentication
//! uses an OAuth2 client-credentials token, fetched from `auth_url` with the key as Basic
//! auth, shared by all workers and renewed 60 s before it expires. The alternative is
//! the key as Basic auth on every call, which Sinch documents as rate-limited and meant
//! for testing. Every request is bounded by `fax.sinch.request_timeout`.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde_json::Value;
use tokio::sync::Mutex;

use super::error::error_chain;
use super::{BackendError, FaxRecord, FaxStatus, FaxSubmission, JOB_LABEL, RequestSettings, SubmitError};
use crate::config::{self, Secret, SinchAuth};
use crate::number::Number;

/// How long before its expiry a cached token is replaced. The Sinch Node SDK uses the
/// same margin.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Token lifetime assumed when the token response has no `expires_in`. Sinch documents
/// tokens as lasting about one hour.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Faxes per page when a job's fax is searched for; the API's default page size.
const LOOKUP_PAGE_SIZE: u32 = 100;

/// Pages read before a search gives up, so that a number with thousands of faxes in the
/// last week cannot hold a worker for long. A fax beyond this many pages is not found.
const LOOKUP_MAX_PAGES: u32 = 20;

/// Maximum characters of an error body quoted in an error message when it is not
/// Sinch's JSON error shape.
const MAX_QUOTED_BODY: usize = 200;

/// A client for one Sinch project, cheap to share between workers.
pub struct SinchClient {
    http: reqwest::Client,
    faxes_url: Url,
    key_id: String,
    key_secret: Secret,
    auth: SinchAuth,
    auth_url: String,
    settings: RequestSettings,
    /// The cached OAuth2 token. Its lock is held while a new token is fetched, so that
    /// workers needing one at the same time share a single token request.
    token: Mutex<Option<AccessToken>>,
}

struct AccessToken {
    value: String,
    refresh_at: Instant,
}

impl std::fmt::Debug for SinchClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinchClient")
            .field("faxes_url", &self.faxes_url.as_str())
            .field("key_id", &self.key_id)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl SinchClient {
    pub fn from_config(fax: &config::Fax, webhooks: &config::Webhooks) -> Result<SinchClient, BackendError> {
        let sinch = &fax.sinch;
        // reqwest is built without a bundled crypto provider. The daemon installs ring at
        // start; installing it here too covers tests and tools, and fails harmlessly when
        // one is already installed. ring is deprecated in rustls 0.23.48 only for lacking
        // post-quantum key exchange, and it is the provider this crate is built with.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(sinch.request_timeout)
            .user_agent(concat!("faxgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| BackendError::HttpClient(error_chain(&err)))?;

        let invalid =
            |reason: String| BackendError::InvalidUrl { key: "fax.sinch.api_url", url: sinch.api_url.clone(), reason };
        let mut faxes_url = Url::parse(&sinch.api_url).map_err(|err| invalid(err.to_string()))?;
        faxes_url
            .path_segments_mut()
            .map_err(|()| invalid("it cannot have a path".to_string()))?
            .pop_if_empty()
            .extend(["v3", "projects", &sinch.project_id, "faxes"]);
        if sinch.auth == SinchAuth::Oauth2 {
            Url::parse(&sinch.auth_url).map_err(|err| BackendError::InvalidUrl {
                key: "fax.sinch.auth_url",
                url: sinch.auth_url.clone(),
                reason: err.to_string(),
            })?;
        }

        Ok(SinchClient {
            http,
            faxes_url,
            key_id: sinch.key_id.clone(),
            key_secret: sinch.key_secret.clone(),
            auth: sinch.auth,
            auth_url: sinch.auth_url.clone(),
            settings: RequestSettings::from_config(fax, webhooks)?,
            token: Mutex::new(None),
        })
    }

    /// Sends one fax with `POST /v3/projects/{projectId}/faxes` and returns the Fax
    /// object of the response.
    pub(crate) async fn submit(&self, fax: FaxSubmission<'_>) -> Result<FaxRecord, SubmitError> {
        let files = serde_json::json!([{ "file": BASE64.encode(fax.pdf), "fileType": "PDF" }]);
        let body = self.settings.request_json(&fax, files);
        let url = self.faxes_url.clone();
        let response =
            self.send(|| self.http.request(Method::POST, url.clone()).json(&body), "sending the fax", true).await?;
        let response = check_status(response).await?;
        // From here on the API has accepted the fax. A response that cannot be read is
        // ambiguous, so that the queue looks the fax up instead of sending it again.
        let fax_object: Value = response.json().await.map_err(|err| {
            SubmitError::ambiguous(
                format!("reading the response to a sent fax: {}", error_chain(&err)),
                err.is_timeout(),
            )
        })?;
        parse_fax(&fax_object)
            .ok_or_else(|| SubmitError::ambiguous("the fax API accepted the fax but its response has no fax id", false))
    }

    /// Reads one fax with `GET /v3/projects/{projectId}/faxes/{id}`.
    pub(crate) async fn fax(&self, fax_id: &str) -> Result<FaxRecord, SubmitError> {
        let fax_object = self.fax_json(fax_id).await?;
        parse_fax(&fax_object)
            .ok_or_else(|| SubmitError::transient(format!("the response for fax {fax_id} has no fax id")))
    }

    /// Reads one fax with all the fields a delivery report shows.
    pub(crate) async fn fax_details(&self, fax_id: &str) -> Result<super::FaxDetails, SubmitError> {
        let fax_object = self.fax_json(fax_id).await?;
        super::FaxDetails::from_json(&fax_object)
            .ok_or_else(|| SubmitError::transient(format!("the response for fax {fax_id} has no fax id")))
    }

    async fn fax_json(&self, fax_id: &str) -> Result<Value, SubmitError> {
        let mut url = self.faxes_url.clone();
        url.path_segments_mut().expect("the faxes URL has a path").push(fax_id);
        let response = self.send(|| self.http.get(url.clone()), "reading a fax", false).await?;
        let response = check_status(response).await?;
        response
            .json()
            .await
            .map_err(|err| SubmitError::transient(format!("reading fax {fax_id}: {}", error_chain(&err))))
    }

    /// Downloads a fax's PDF with `GET /faxes/{id}/file`. When that path is not found,
    /// the deprecated `GET /faxes/{id}/file.pdf` is tried, because older API versions and
    /// Sinch's .NET SDK still use it.
    pub(crate) async fn fax_file(&self, fax_id: &str) -> Result<Vec<u8>, SubmitError> {
        let mut not_found = None;
        for file_name in ["file", "file.pdf"] {
            let mut url = self.faxes_url.clone();
            url.path_segments_mut().expect("the faxes URL has a path").push(fax_id).push(file_name);
            let build = || self.http.get(url.clone()).header(reqwest::header::ACCEPT, "application/pdf");
            let response = self.send(build, "downloading a fax", false).await?;
            match check_status(response).await {
                Ok(response) => {
                    let bytes = response.bytes().await.map_err(|err| {
                        SubmitError::transient(format!("downloading fax {fax_id}: {}", error_chain(&err)))
                    })?;
                    return Ok(bytes.to_vec());
                }
                Err(err) if err.http_status() == Some(404) => not_found = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(not_found.expect("the loop tried at least one path"))
    }

    /// Searches the faxes sent to `to` for the one labelled with `job_id`.
    ///
    /// The list endpoint filters `to` by prefix and, without a date filter, covers the
    /// last week, so the labels are compared here.
    /// NOTE: a fax created more than a week before the search is not found. That is safe
    /// while `fax.max_queue_lifetime` stays under a week (the default is 5 days).
    pub(crate) async fn find(&self, job_id: &str, to: &Number) -> Result<Option<FaxRecord>, SubmitError> {
        let mut page: Option<u64> = None;
        for _ in 0..LOOKUP_MAX_PAGES {
            let mut url = self.faxes_url.clone();
            {
                let mut query = url.query_pairs_mut();
                query.append_pair("to", to.as_str()).append_pair("pageSize", &LOOKUP_PAGE_SIZE.to_string());
                if let Some(page) = page {
                    query.append_pair("page", &page.to_string());
                }
            }
            let response = self.send(|| self.http.get(url.clone()), "searching for a sent fax", false).await?;
            let response = check_status(response).await?;
            let list: Value = response
                .json()
                .await
                .map_err(|err| SubmitError::transient(format!("reading the fax list: {}", error_chain(&err))))?;

            let faxes = list.get("faxes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let found = faxes
                .iter()
                .find(|fax| fax.pointer(&format!("/labels/{JOB_LABEL}")).and_then(Value::as_str) == Some(job_id));
            if let Some(fax) = found {
                return Ok(parse_fax(fax));
            }

            // Older responses name the current page `pageNumber`, newer ones `page`. The
            // next page is `page + 1` while `page < totalPages`, as in Sinch's Node SDK;
            // with 0-based numbering that reads one empty page at the end, which stops
            // the loop.
            let current = list.get("page").or_else(|| list.get("pageNumber")).and_then(as_u64);
            let total = list.get("totalPages").and_then(as_u64);
            match (current, total) {
                (Some(current), Some(total)) if !faxes.is_empty() && current < total => {
                    page = Some(current + 1);
                }
                _ => return Ok(None),
            }
        }
        tracing::warn!(job_id, number = %to, pages = LOOKUP_MAX_PAGES, "fax search stopped at the page limit without a match");
        Ok(None)
    }

    /// Sends a request built by `build` with credentials. With OAuth2, a 401 response to a
    /// cached token drops the token and repeats the request once with a new one, because
    /// Sinch may revoke a token before its `expires_in`.
    async fn send(
        &self,
        build: impl Fn() -> RequestBuilder,
        action: &str,
        sent_effect: bool,
    ) -> Result<Response, SubmitError> {
        let mut retried = false;
        loop {
            let (request, token) = match self.auth {
                SinchAuth::Basic => (build().basic_auth(&self.key_id, Some(self.key_secret.expose())), None),
                SinchAuth::Oauth2 => {
                    let (token, cached) = self.access_token().await?;
                    (build().bearer_auth(&token), cached.then_some(token))
                }
            };
            let response = request.send().await.map_err(|err| SubmitError::from_reqwest(&err, action, sent_effect))?;
            if let Some(token) = token.filter(|_| response.status() == StatusCode::UNAUTHORIZED && !retried) {
                tracing::warn!("fax API rejected the cached access token; fetching a new one");
                let mut cached = self.token.lock().await;
                // Another worker may have replaced the token in the meantime; keep that one.
                if cached.as_ref().is_some_and(|t| t.value == token) {
                    *cached = None;
                }
                retried = true;
                continue;
            }
            return Ok(response);
        }
    }

    /// Returns a valid OAuth2 token and whether it came from the cache.
    async fn access_token(&self) -> Result<(String, bool), SubmitError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok((token.value.clone(), true));
        }

        let response = self
            .http
            .post(&self.auth_url)
            .basic_auth(&self.key_id, Some(self.key_secret.expose()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|err| SubmitError::from_reqwest(&err, "requesting an access token", false))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(SubmitError::status(
                status.as_u16(),
                "the token endpoint rejected the access key; check fax.sinch.key_id and fax.sinch.key_secret",
                None,
            ));
        }
        let response = check_status(response).await?;
        let token_response: Value = response.json().await.map_err(|err| {
            SubmitError::transient(format!("reading the access token response: {}", error_chain(&err)))
        })?;
        let value = token_response
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| SubmitError::transient("the token response has no access_token"))?
            .to_string();
        let lifetime = token_response
            .get("expires_in")
            .and_then(as_u64)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let usable = if lifetime > TOKEN_REFRESH_MARGIN * 2 { lifetime - TOKEN_REFRESH_MARGIN } else { lifetime / 2 };
        tracing::info!(expires_in = lifetime.as_secs(), "fetched a fax API access token");

        *cached = Some(AccessToken { value: value.clone(), refresh_at: Instant::now() + usable });
        Ok((value, false))
    }
}

/// Passes a success response through and turns an error response into a [`SubmitError`]
/// that carries the API's `message`, its field violations and `Retry-After`.
async fn check_status(response: Response) -> Result<Response, SubmitError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // NOTE: only the delta-seconds form of Retry-After is read; an HTTP date falls back
    // to the queue's own backoff.
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    Err(SubmitError::status(status.as_u16(), error_message(status, &body), retry_after))
}

/// Extracts the explanation from Sinch's error shape
/// `{"code":"422","error":"Invalid parameters","message":"...","details":{"fieldViolations":[{"field","description"}]}}`.
fn error_message(status: StatusCode, body: &str) -> String {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        let quoted: String = body.trim().chars().take(MAX_QUOTED_BODY).collect();
        return if quoted.is_empty() {
            status.canonical_reason().unwrap_or("no explanation").to_string()
        } else {
            quoted
        };
    };
    let mut message = json
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .or_else(|| json.get("error").and_then(Value::as_str))
        .or(status.canonical_reason())
        .unwrap_or("no explanation")
        .to_string();
    let violations: Vec<String> = json
        .pointer("/details/fieldViolations")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            let description = v.get("description").and_then(Value::as_str)?;
            if message.contains(description) {
                return None;
            }
            Some(match v.get("field").and_then(Value::as_str) {
                Some(field) => format!("{field}: {description}"),
                None => description.to_string(),
            })
        })
        .collect();
    if !violations.is_empty() {
        message = format!("{message} ({})", violations.join("; "));
    }
    message
}

/// Reads the fields of a Fax object that the queue uses. `None` when it has no `id`.
fn parse_fax(fax: &Value) -> Option<FaxRecord> {
    let id = fax.get("id").and_then(Value::as_str)?.to_string();
    let status = FaxStatus::parse(fax.get("status").and_then(Value::as_str).unwrap_or(""));
    let error = fax.get("errorMessage").and_then(Value::as_str).map(str::to_string).or_else(|| {
        let error_type = fax.get("errorType").and_then(Value::as_str)?;
        let code = fax.get("errorCode").map(|c| format!(" {c}")).unwrap_or_default();
        Some(format!("{error_type}{code}"))
    });
    Some(FaxRecord { id, status, error })
}

/// Reads a count that the API may write as a number or as a string.
fn as_u64(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_takes_message_and_violations() {
        let body = r#"{"code":"422","error":"Invalid parameters","message":"Invalid request",
            "details":{"fieldViolations":[{"field":"to","description":"The (+15551) is not a valid phone number"}]}}"#;
        assert_eq!(
            error_message(StatusCode::UNPROCESSABLE_ENTITY, body),
            "Invalid request (to: The (+15551) is not a valid phone number)"
        );
    }

    #[test]
    fn error_message_of_plain_body() {
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, "upstream down\n"), "upstream down");
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, ""), "Bad Gateway");
    }

    #[test]
    fn parse_fax_reads_error_fields() {
        let fax = serde_json::json!({"id": "01HX", "status": "FAILURE", "errorType": "CALL_ERROR", "errorCode": 17});
        let record = parse_fax(&fax).unwrap();
        assert_eq!(record.status, FaxStatus::Failure);
        assert_eq!(record.error.as_deref(), Some("CALL_ERROR 17"));
    }
}
