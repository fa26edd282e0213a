//! The fields of a Sinch Fax object that reports and received-fax emails show, read
//! from a webhook's `fax` or from `GET /faxes/{id}`.
//!
//! Sinch's SDKs disagree on some types (`numberOfPages` and `errorCode` appear as numbers
//! and as strings), so every count is read from either.

use serde_json::Value;

use super::{FaxRecord, FaxStatus, JOB_LABEL};

/// A fax as the API describes it. Missing fields are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxDetails {
    pub id: String,
    pub status: FaxStatus,
    /// `INBOUND` or `OUTBOUND`.
    pub direction: Option<String>,
    /// The caller for a received fax, the sending account number for a sent one.
    pub from: Option<String>,
    pub to: Option<String>,
    /// `numberOfPages`: the pages of the document.
    pub pages: Option<u64>,
    /// `pagesSentSuccessfully`.
    pub pages_sent: Option<u64>,
    pub error_type: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// `completedTime`, or `createTime` when there is none, as the API wrote it (ISO 8601, UTC).
    pub time: Option<String>,
    /// The `faxgateJob` label: the job that submitted the fax.
    pub job_label: Option<String>,
}

impl FaxDetails {
    /// Reads a Fax object. `None` when it has no string `id`.
    pub fn from_json(fax: &Value) -> Option<FaxDetails> {
        let id = fax.get("id").and_then(Value::as_str).filter(|id| !id.is_empty())?.to_string();
        let text = |key: &str| fax.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        Some(FaxDetails {
            id,
            status: FaxStatus::parse(fax.get("status").and_then(Value::as_str).unwrap_or("")),
            direction: text("direction"),
            from: text("from"),
            to: text("to"),
            pages: fax.get("numberOfPages").and_then(count),
            pages_sent: fax.get("pagesSentSuccessfully").and_then(count),
            error_type: text("errorType"),
            error_code: fax.get("errorCode").and_then(|code| match code {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                _ => None,
            }),
            error_message: text("errorMessage"),
            time: text("completedTime").or_else(|| text("createTime")),
            job_label: fax.pointer(&format!("/labels/{JOB_LABEL}")).and_then(Value::as_str).map(str::to_string),
        })
    }

    /// Details known from a bare record, as the outbox backend gives.
    pub fn from_record(record: &FaxRecord) -> FaxDetails {
        FaxDetails {
            id: record.id.clone(),
            status: record.status.clone(),
            direction: None,
            from: None,
            to: None,
            pages: None,
            pages_sent: None,
            error_type: None,
            error_code: None,
            error_message: record.error.clone(),
            time: None,
            job_label: None,
        }
    }

    /// Builds the record the queue stores. Its error is the API's message, or the error
    /// type and code when there is no message.
    pub fn record(&self) -> FaxRecord {
        let error = self.error_message.clone().or_else(|| {
            let error_type = self.error_type.as_ref()?;
            Some(match &self.error_code {
                Some(code) => format!("{error_type} {code}"),
                None => error_type.clone(),
            })
        });
        FaxRecord { id: self.id.clone(), status: self.status.clone(), error }
    }
}

fn count(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_accept_numbers_and_strings() {
        let fax = serde_json::json!({
            "id": "01HX", "status": "FAILURE", "numberOfPages": "3", "pagesSentSuccessfully": 1,
            "errorType": "CALL_ERROR", "errorCode": 17, "labels": {"faxgateJob": "J1"},
            "completedTime": "2026-01-01T00:00:00Z"
        });
        let details = FaxDetails::from_json(&fax).unwrap();
        assert_eq!(details.pages, Some(3));
        assert_eq!(details.pages_sent, Some(1));
        assert_eq!(details.error_code.as_deref(), Some("17"));
        assert_eq!(details.job_label.as_deref(), Some("J1"));
        assert_eq!(details.record().error.as_deref(), Some("CALL_ERROR 17"));
    }

    #[test]
    fn details_need_an_id() {
        assert!(FaxDetails::from_json(&serde_json::json!({"status": "COMPLETED"})).is_none());
        assert!(FaxDetails::from_json(&serde_json::json!({"id": ""})).is_none());
    }
}
