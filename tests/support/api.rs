//! A client of the management API for tests: HTTP Basic credentials of the test
//! daemon, paths relative to the Emails prefix, and responses read as JSON.

#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::daemon::TestDaemon;

/// The credentials [`TestDaemon`] configures: the default `api.username` and the
/// `api.password` it writes.
pub const USERNAME: &str = "admin";
pub const PASSWORD: &str = "api-secret";

/// The ids of a daemon with the outbox backend and the default `api.project_id`.
pub const PROJECT_ID: &str = "local";
pub const SERVICE_ID: &str = "local";

/// One response: status, headers and the body, parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl ApiResponse {
    /// Returns the body as JSON and fails the test when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|err| panic!("body is not JSON ({err}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub struct ApiClient {
    pub base_url: String,
    pub prefix: String,
    client: reqwest::Client,
}

impl ApiClient {
    /// Creates a client of `daemon`'s API with the project and service ids of an outbox
    /// daemon.
    pub fn new(daemon: &TestDaemon) -> ApiClient {
        ApiClient::for_service(&daemon.api_url(), PROJECT_ID, SERVICE_ID)
    }

    pub fn for_service(base_url: &str, project_id: &str, service_id: &str) -> ApiClient {
        // reqwest is built without a TLS provider and needs one even for plain http.
        // The ring provider is the one the daemon uses.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        ApiClient {
            base_url: base_url.to_string(),
            prefix: format!("/v3/projects/{project_id}/services/{service_id}"),
            client: reqwest::Client::new(),
        }
    }

    /// Sends a request to `prefix + path` with the test credentials.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> ApiResponse {
        self.send(method, &format!("{}{path}", self.prefix), body, Some((USERNAME, PASSWORD))).await
    }

    pub async fn get(&self, path: &str) -> ApiResponse {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> ApiResponse {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> ApiResponse {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> ApiResponse {
        self.call(Method::DELETE, path, None).await
    }

    /// Sends a request to the absolute `path` with the given credentials, or none.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        credentials: Option<(&str, &str)>,
    ) -> ApiResponse {
        let mut request = self.client.request(method, format!("{}{path}", self.base_url));
        if let Some((username, password)) = credentials {
            request = request.basic_auth(username, Some(password));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.read(request).await
    }

    /// Sends a prepared request, for bodies that are not JSON values.
    pub async fn read(&self, request: reqwest::RequestBuilder) -> ApiResponse {
        let response = request.send().await.expect("the management API responds");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("the response body is readable");
        ApiResponse { status, headers, text }
    }

    /// Starts a request to `prefix + path` with the test credentials, to be finished by
    /// the caller and sent with [`ApiClient::read`].
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}{path}", self.base_url, self.prefix))
            .basic_auth(USERNAME, Some(PASSWORD))
    }

    /// Returns the `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = self.send(Method::GET, "/metrics", None, None).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        response.text
    }
}

/// Returns the value of the metric line that starts with `series` (name and labels),
/// or 0 when the series is absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|value| value.trim().parse().expect("metric value is a number"))
        .unwrap_or(0.0)
}
