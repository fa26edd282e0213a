//! The outbox backend: instead of calling the fax API, it writes `<job id>.pdf` and
//! `<job id>.json` into a folder and reports the fax completed at once.
//!
//! The JSON is the request the Sinch backend would have sent, except that the base64
//! file is replaced by its `size` and `sha256`, and the webhook password inside
//! `callbackUrl` is masked as `********` so that the folder contains no secret. Both files
//! are written to a temporary name, flushed to disk and renamed, the PDF first, so a
//! present JSON file means the fax is complete, which the lookup by job id relies on.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{BackendError, FaxRecord, FaxStatus, FaxSubmission, RequestSettings, SubmitError};
use crate::config;
use crate::queue::write_atomic;

/// Prefix of the fax ids the outbox gives, followed by the job id.
const FAX_ID_PREFIX: &str = "outbox-";

#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    settings: RequestSettings,
}

impl Outbox {
    pub fn new(dir: PathBuf, fax: &config::Fax, webhooks: &config::Webhooks) -> Result<Outbox, BackendError> {
        let mut masked = webhooks.clone();
        if !masked.password.is_empty() {
            masked.password = config::Secret::new("********");
        }
        Ok(Outbox { dir, settings: RequestSettings::from_config(fax, &masked)? })
    }

    pub fn from_config(fax: &config::Fax, webhooks: &config::Webhooks) -> Result<Outbox, BackendError> {
        Outbox::new(fax.outbox_dir.clone(), fax, webhooks)
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub(crate) async fn submit(&self, fax: FaxSubmission<'_>) -> Result<FaxRecord, SubmitError> {
        let file = serde_json::json!([{
            "fileType": "PDF",
            "size": fax.pdf.len(),
            "sha256": hex::encode(Sha256::digest(fax.pdf)),
        }]);
        let request = self.settings.request_json(&fax, file);
        let mut json = serde_json::to_vec_pretty(&request)
            .map_err(|err| SubmitError::permanent(format!("cannot encode the outbox request: {err}")))?;
        json.push(b'\n');

        let dir = self.dir.clone();
        let job_id = fax.job_id.to_string();
        let pdf = fax.pdf.to_vec();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            write_atomic(&dir, &format!("{job_id}.pdf"), &pdf)?;
            write_atomic(&dir, &format!("{job_id}.json"), &json)?;
            Ok(())
        })
        .await
        .map_err(|err| SubmitError::transient(format!("outbox writer task failed: {err}")))?
        .map_err(|err| SubmitError::transient(format!("cannot write to the outbox {}: {err}", self.dir.display())))?;

        Ok(completed(fax.job_id))
    }

    pub(crate) async fn find(&self, job_id: &str) -> Result<Option<FaxRecord>, SubmitError> {
        let path = self.dir.join(format!("{job_id}.json"));
        match tokio::fs::try_exists(&path).await {
            Ok(true) => Ok(Some(completed(job_id))),
            Ok(false) => Ok(None),
            Err(err) => Err(SubmitError::transient(format!("cannot read {}: {err}", path.display()))),
        }
    }

    pub(crate) async fn fax(&self, fax_id: &str) -> Result<FaxRecord, SubmitError> {
        let not_found = || SubmitError::status(404, format!("fax {fax_id} is not in the outbox"), None);
        let job_id = fax_id.strip_prefix(FAX_ID_PREFIX).ok_or_else(not_found)?;
        self.find(job_id).await?.ok_or_else(not_found)
    }
}

impl Outbox {
    pub(crate) async fn fax_file(&self, fax_id: &str) -> Result<Vec<u8>, SubmitError> {
        let not_found = || SubmitError::status(404, format!("fax {fax_id} is not in the outbox"), None);
        let job_id = fax_id.strip_prefix(FAX_ID_PREFIX).ok_or_else(not_found)?;
        let path = self.dir.join(format!("{job_id}.pdf"));
        match tokio::fs::read(&path).await {
            Ok(pdf) => Ok(pdf),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(not_found()),
            Err(err) => Err(SubmitError::transient(format!("cannot read {}: {err}", path.display()))),
        }
    }
}

fn completed(job_id: &str) -> FaxRecord {
    FaxRecord { id: format!("{FAX_ID_PREFIX}{job_id}"), status: FaxStatus::Completed, error: None }
}
