//! Fax backends: where the queue's workers hand a job's PDF.
//!
//! [`sinch::SinchClient`] sends it to the Sinch Fax API v3. [`outbox::Outbox`] writes
//! the request it would have sent into a folder and reports the fax completed, so the
//! whole flow runs on one machine without an account.
//!
//! Every submission carries the job id as the label `faxgateJob`. After an ambiguous
//! failure, such as a timeout after the request was sent or a restart in the middle of
//! a submission, [`Backend::find`] uses that label to check whether the fax exists
//! before the queue sends it again.

pub mod details;
pub mod error;
pub mod outbox;
pub mod sinch;

use crate::config;
use crate::number::Number;

pub use details::FaxDetails;
pub use error::SubmitError;

/// The label that carries the faxgate job id on every fax.
pub const JOB_LABEL: &str = "faxgateJob";

/// A configured fax backend.
// The daemon keeps one backend behind an `Arc`, so the size of the larger variant costs
// nothing worth a `Box`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Backend {
    Outbox(outbox::Outbox),
    Sinch(sinch::SinchClient),
}

/// One fax to send: one job, one recipient.
#[derive(Debug, Clone, Copy)]
pub struct FaxSubmission<'a> {
    pub job_id: &'a str,
    pub to: &'a Number,
    pub from: &'a Number,
    pub pdf: &'a [u8],
}

/// The state of a fax that the backend accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxRecord {
    /// The fax id given by the backend.
    pub id: String,
    pub status: FaxStatus,
    /// The API's `errorMessage` (or `errorType` and `errorCode`) for a failed fax.
    pub error: Option<String>,
}

/// The status of a fax at the fax API. The Sinch flow is
/// `QUEUED -> IN_PROGRESS -> COMPLETED | FAILURE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaxStatus {
    Queued,
    InProgress,
    Completed,
    Failure,
    /// A status this version does not know, kept as the API wrote it.
    Other(String),
}

impl FaxStatus {
    pub fn parse(value: &str) -> FaxStatus {
        match value {
            "QUEUED" => FaxStatus::Queued,
            "IN_PROGRESS" => FaxStatus::InProgress,
            "COMPLETED" => FaxStatus::Completed,
            "FAILURE" => FaxStatus::Failure,
            other => FaxStatus::Other(other.to_string()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("invalid {key} {url:?}: {reason}")]
    InvalidUrl { key: &'static str, url: String, reason: String },
    #[error("cannot build the HTTP client for the fax API: {0}")]
    HttpClient(String),
}

impl Backend {
    /// Builds the backend chosen by `fax.backend`.
    pub fn from_config(fax: &config::Fax, webhooks: &config::Webhooks) -> Result<Backend, BackendError> {
        match fax.backend {
            config::FaxBackendKind::Outbox => Ok(Backend::Outbox(outbox::Outbox::from_config(fax, webhooks)?)),
            config::FaxBackendKind::Sinch => Ok(Backend::Sinch(sinch::SinchClient::from_config(fax, webhooks)?)),
        }
    }

    /// Short name for logs: `outbox` or `sinch`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Outbox(_) => "outbox",
            Backend::Sinch(_) => "sinch",
        }
    }

    /// Sends one fax and returns the backend's record of it, with status `QUEUED` for
    /// Sinch and `COMPLETED` for the outbox.
    pub async fn submit(&self, fax: FaxSubmission<'_>) -> Result<FaxRecord, SubmitError> {
        match self {
            Backend::Outbox(outbox) => outbox.submit(fax).await,
            Backend::Sinch(client) => client.submit(fax).await,
        }
    }

    /// Looks for the fax a job created, by its `faxgateJob` label. `Ok(None)` means the
    /// backend has no such fax, so sending it cannot duplicate one.
    pub async fn find(&self, job_id: &str, to: &Number) -> Result<Option<FaxRecord>, SubmitError> {
        match self {
            Backend::Outbox(outbox) => outbox.find(job_id).await,
            Backend::Sinch(client) => client.find(job_id, to).await,
        }
    }

    /// Reads the current state of a fax by its id, for status polls when no callback
    /// came.
    pub async fn fax(&self, fax_id: &str) -> Result<FaxRecord, SubmitError> {
        match self {
            Backend::Outbox(outbox) => outbox.fax(fax_id).await,
            Backend::Sinch(client) => client.fax(fax_id).await,
        }
    }

    /// Reads a fax by its id with the fields a delivery report shows.
    pub async fn fax_details(&self, fax_id: &str) -> Result<FaxDetails, SubmitError> {
        match self {
            Backend::Outbox(outbox) => outbox.fax(fax_id).await.map(|record| FaxDetails::from_record(&record)),
            Backend::Sinch(client) => client.fax_details(fax_id).await,
        }
    }

    /// Downloads the PDF of a fax that the backend stored.
    pub async fn fax_file(&self, fax_id: &str) -> Result<Vec<u8>, SubmitError> {
        match self {
            Backend::Outbox(outbox) => outbox.fax_file(fax_id).await,
            Backend::Sinch(client) => client.fax_file(fax_id).await,
        }
    }
}

/// The fields every fax request carries besides the recipient, sender and file.
#[derive(Debug, Clone)]
pub(crate) struct RequestSettings {
    pub header_text: String,
    pub resolution: &'static str,
    pub service_id: String,
    pub callback_url: String,
}

impl RequestSettings {
    fn from_config(fax: &config::Fax, webhooks: &config::Webhooks) -> Result<RequestSettings, BackendError> {
        Ok(RequestSettings {
            header_text: fax.header_text.clone(),
            resolution: fax.resolution.as_str(),
            service_id: fax.sinch.service_id.clone(),
            callback_url: callback_url(webhooks)?,
        })
    }

    /// Builds the JSON body of a send request with `files` as its `files` array.
    /// `headerText` and `serviceId` are left out when empty, so that the API applies the
    /// service's defaults.
    pub(crate) fn request_json(&self, fax: &FaxSubmission<'_>, files: serde_json::Value) -> serde_json::Value {
        let mut body = serde_json::json!({
            "to": fax.to.as_str(),
            "from": fax.from.as_str(),
            "files": files,
            "callbackUrl": self.callback_url,
            "resolution": self.resolution,
            "labels": { JOB_LABEL: fax.job_id },
        });
        if !self.header_text.is_empty() {
            body["headerText"] = serde_json::Value::from(self.header_text.clone());
        }
        if !self.service_id.is_empty() {
            body["serviceId"] = serde_json::Value::from(self.service_id.clone());
        }
        body
    }
}

/// Builds the `callbackUrl` sent with every fax: `webhooks.public_url` with the webhook
/// username and password inserted as URL credentials (percent-encoded by `Url`), so
/// that Sinch's callbacks pass the webhook listener's Basic auth.
pub fn callback_url(webhooks: &config::Webhooks) -> Result<String, BackendError> {
    let invalid = |reason: String| BackendError::InvalidUrl {
        key: "webhooks.public_url",
        url: webhooks.public_url.clone(),
        reason,
    };
    let mut url = reqwest::Url::parse(&webhooks.public_url).map_err(|err| invalid(err.to_string()))?;
    if !webhooks.username.is_empty() {
        url.set_username(&webhooks.username).map_err(|()| invalid("the URL cannot carry a username".to_string()))?;
    }
    if !webhooks.password.is_empty() {
        url.set_password(Some(webhooks.password.expose()))
            .map_err(|()| invalid("the URL cannot carry a password".to_string()))?;
    }
    Ok(url.to_string())
}
