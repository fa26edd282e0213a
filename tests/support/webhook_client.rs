//! Posts Sinch webhook events to a test daemon, in either payload shape Sinch uses:
//! multipart/form-data with the Fax object as a JSON string, or JSON with the PDF in
//! base64.

#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::daemon::TestDaemon;
use super::fake_sinch::CallbackFormat;

pub const USER: &str = "sinch";
pub const PASSWORD: &str = "hook-secret";

/// Where the file goes in a JSON payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonFile {
    /// Top-level `file` and `fileType`.
    TopLevel,
    /// `files: [{file, fileType}]`.
    FilesArray,
}

/// The response to a webhook request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

pub struct Webhook {
    pub url: String,
    client: reqwest::Client,
}

/// Builds a Fax object for a received fax.
pub fn incoming_fax(id: &str, from: &str, to: &str, pages: u32) -> Value {
    json!({
        "id": id,
        "direction": "INBOUND",
        "from": from,
        "to": to,
        "numberOfPages": pages,
        "status": "COMPLETED",
        "createTime": "2026-01-02T03:04:05Z",
        "completedTime": "2026-01-02T03:04:35Z",
        "hasFile": true,
        "projectId": "test-project",
        "serviceId": "test-service",
    })
}

impl Webhook {
    pub fn for_daemon(daemon: &TestDaemon) -> Webhook {
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        Webhook { url: format!("http://{}/webhooks/sinch", daemon.webhook_addr), client: reqwest::Client::new() }
    }

    /// Posts `event` for `fax` with the daemon's credentials, the PDF placed as Sinch
    /// does for `format`.
    pub async fn post(&self, event: &str, fax: &Value, pdf: Option<&[u8]>, format: CallbackFormat) -> Reply {
        match format {
            CallbackFormat::Json => self.post_json(event, fax, pdf, JsonFile::TopLevel).await,
            CallbackFormat::Multipart => {
                let (content_type, body) = multipart_body(event, fax, pdf);
                self.post_raw(&content_type, body, Some((USER, PASSWORD))).await
            }
        }
    }

    pub async fn post_json(&self, event: &str, fax: &Value, pdf: Option<&[u8]>, place: JsonFile) -> Reply {
        let mut body = json!({ "event": event, "eventTime": "2026-01-02T03:04:40Z", "fax": fax });
        if let Some(pdf) = pdf {
            match place {
                JsonFile::TopLevel => {
                    body["file"] = json!(BASE64.encode(pdf));
                    body["fileType"] = json!("PDF");
                }
                JsonFile::FilesArray => body["files"] = json!([{ "file": BASE64.encode(pdf), "fileType": "PDF" }]),
            }
        }
        self.post_raw("application/json", body.to_string().into_bytes(), Some((USER, PASSWORD))).await
    }

    /// Posts a body as given, with Basic credentials when `auth` is set.
    pub async fn post_raw(&self, content_type: &str, body: Vec<u8>, auth: Option<(&str, &str)>) -> Reply {
        self.try_post_raw(content_type, body, auth).await.expect("the webhook listener answers")
    }

    /// Posts a body as given and returns the transport error instead of failing.
    pub async fn try_post_raw(
        &self,
        content_type: &str,
        body: Vec<u8>,
        auth: Option<(&str, &str)>,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self.client.post(&self.url).header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        if let Some((user, password)) = auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        Ok(Reply { status, headers, body })
    }
}

/// Builds a multipart/form-data body with `event`, `eventTime`, `fax` (as a JSON
/// string) and, when given, the PDF part `file`. Returns the Content-Type and body.
pub fn multipart_body(event: &str, fax: &Value, pdf: Option<&[u8]>) -> (String, Vec<u8>) {
    let boundary = format!("webhooktest{}", ulid::Ulid::new());
    let mut body = Vec::new();
    for (name, value) in
        [("event", event.to_string()), ("eventTime", "2026-01-02T03:04:40Z".to_string()), ("fax", fax.to_string())]
    {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    if let Some(pdf) = pdf {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fax.pdf\"\r\n\
                 Content-Type: application/pdf\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(pdf);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
