//! Reading a Sinch webhook body in either shape Sinch sends:
//!
//! - `multipart/form-data` with the fields `event`, `eventTime`, `fax` (the Fax object
//!   as a JSON string) and a part `file` with the PDF;
//! - `application/json` with `event`, `eventTime`, `fax` (an object), and the PDF as
//!   base64 either in `file` (with `fileType`) or in `files[0].file`.
//!
//! The file may be missing, for example when the Sinch service does not keep documents.

use axum::body::Bytes;
use axum::http::Extensions;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use crate::fax::FaxDetails;
use crate::number::Number;

/// The start of every PDF file.
const PDF_MAGIC: &[u8] = b"%PDF-";

/// One webhook event as received.
#[derive(Debug, Clone)]
pub struct Payload {
    pub event: String,
    pub event_time: Option<String>,
    /// The Fax object as sent, kept to render emails later.
    pub fax: Value,
    pub details: FaxDetails,
    /// The PDF, when the request carried one.
    pub file: Option<Vec<u8>>,
}

/// The reason a webhook body was rejected. Its message goes into the 400 reply.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(String);

fn invalid(message: impl Into<String>) -> PayloadError {
    PayloadError(message.into())
}

impl Payload {
    /// Parses a body by its `Content-Type`. `extensions` are those of the request the
    /// body came from. They carry the router's `DefaultBodyLimit::disable()`, without
    /// which axum's multipart reader caps the body at its default of 2 MiB instead of
    /// `webhooks.max_body_size`.
    pub async fn parse(content_type: &str, body: Bytes, extensions: Extensions) -> Result<Payload, PayloadError> {
        let media_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match media_type.as_str() {
            "application/json" => Payload::from_json(&body),
            "multipart/form-data" => Payload::from_multipart(content_type, body, extensions).await,
            "" => Err(invalid("missing Content-Type; expected application/json or multipart/form-data")),
            other => Err(invalid(format!(
                "unsupported Content-Type {other:?}; expected application/json or multipart/form-data"
            ))),
        }
    }

    fn from_json(body: &[u8]) -> Result<Payload, PayloadError> {
        let json: Value = serde_json::from_slice(body).map_err(|err| invalid(format!("invalid JSON: {err}")))?;
        if !json.is_object() {
            return Err(invalid("the JSON body must be an object"));
        }
        let event = text_field(&json, "event")?;
        let event_time = json.get("eventTime").and_then(Value::as_str).map(str::to_string);
        let fax = match json.get("fax") {
            Some(Value::Object(_)) => json["fax"].clone(),
            // Accept the multipart convention of a JSON string here too.
            Some(Value::String(text)) => {
                serde_json::from_str(text).map_err(|err| invalid(format!("field fax is not a JSON object: {err}")))?
            }
            Some(_) => return Err(invalid("field fax must be a JSON object")),
            None => return Err(invalid("missing field fax")),
        };

        let encoded = match (json.get("file"), json.get("files")) {
            (Some(file), _) if !file.is_null() => {
                check_file_type(json.get("fileType"), "fileType")?;
                Some(file.as_str().ok_or_else(|| invalid("field file must be a base64 string"))?.to_string())
            }
            (_, Some(Value::Array(files))) if !files.is_empty() => {
                let first = &files[0];
                check_file_type(first.get("fileType"), "files[0].fileType")?;
                let file = first
                    .get("file")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("files[0].file must be a base64 string"))?;
                Some(file.to_string())
            }
            (_, Some(Value::Array(_)) | None) => None,
            (_, Some(_)) => return Err(invalid("field files must be an array")),
        };
        let file = match encoded {
            Some(text) => {
                let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                let bytes =
                    BASE64.decode(compact).map_err(|err| invalid(format!("the file is not valid base64: {err}")))?;
                Some(bytes)
            }
            None => None,
        };
        Payload::build(event, event_time, fax, file)
    }

    async fn from_multipart(content_type: &str, body: Bytes, extensions: Extensions) -> Result<Payload, PayloadError> {
        let mut request = axum::http::Request::builder()
            .header(axum::http::header::CONTENT_TYPE, content_type)
            .body(axum::body::Body::from(body))
            .map_err(|err| invalid(format!("invalid request: {err}")))?;
        *request.extensions_mut() = extensions;
        let mut multipart = <axum::extract::Multipart as axum::extract::FromRequest<()>>::from_request(request, &())
            .await
            .map_err(|err| invalid(format!("invalid multipart body: {}", err.body_text())))?;

        let (mut event, mut event_time, mut fax, mut file) = (None, None, None, None);
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|err| invalid(format!("invalid multipart body: {}", err.body_text())))?
        {
            let name = field.name().unwrap_or("").to_string();
            let bytes = field
                .bytes()
                .await
                .map_err(|err| invalid(format!("cannot read multipart field {name:?}: {}", err.body_text())))?;
            let text = || String::from_utf8(bytes.to_vec()).map_err(|_| invalid(format!("field {name} is not UTF-8")));
            match name.as_str() {
                "event" => event = Some(text()?.trim().to_string()),
                "eventTime" => event_time = Some(text()?.trim().to_string()),
                "fax" => {
                    let value: Value = serde_json::from_str(&text()?)
                        .map_err(|err| invalid(format!("field fax is not a JSON object: {err}")))?;
                    fax = Some(value);
                }
                "file" => file = Some(bytes.to_vec()),
                _ => {}
            }
        }
        let event = event.filter(|e| !e.is_empty()).ok_or_else(|| invalid("missing field event"))?;
        let fax = fax.ok_or_else(|| invalid("missing field fax"))?;
        Payload::build(event, event_time, fax, file.filter(|f| !f.is_empty()))
    }

    fn build(
        event: String,
        event_time: Option<String>,
        fax: Value,
        file: Option<Vec<u8>>,
    ) -> Result<Payload, PayloadError> {
        if !fax.is_object() {
            return Err(invalid("field fax must be a JSON object"));
        }
        let details = FaxDetails::from_json(&fax).ok_or_else(|| invalid("field fax has no id"))?;
        if let Some(file) = &file
            && !file.starts_with(PDF_MAGIC)
        {
            return Err(invalid("the file is not a PDF: it does not start with %PDF-"));
        }
        Ok(Payload { event, event_time, fax, details, file })
    }

    /// Checks what an `INCOMING_FAX` needs: the receiving number `fax.to` in E.164
    /// form.
    pub fn check_incoming(&self) -> Result<Number, PayloadError> {
        let to = self.details.to.as_deref().ok_or_else(|| invalid("field fax.to is missing"))?;
        to.parse::<Number>().map_err(|err| invalid(format!("field fax.to {to:?} is not a fax number: {err}")))
    }
}

fn text_field(json: &Value, key: &str) -> Result<String, PayloadError> {
    match json.get(key) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Some(_) => Err(invalid(format!("field {key} must be a non-empty string"))),
        None => Err(invalid(format!("missing field {key}"))),
    }
}

fn check_file_type(value: Option<&Value>, key: &str) -> Result<(), PayloadError> {
    match value.and_then(Value::as_str) {
        None => Ok(()),
        Some(kind) if kind.eq_ignore_ascii_case("PDF") => Ok(()),
        Some(kind) => Err(invalid(format!("{key} {kind:?} is not supported; only PDF is"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDF: &[u8] = b"%PDF-1.4\n%%EOF\n";

    #[tokio::test]
    async fn json_with_top_level_file() {
        let body = serde_json::json!({
            "event": "INCOMING_FAX", "eventTime": "2026-01-01T00:00:00Z",
            "fax": {"id": "F1", "from": "+14155550100", "to": "+14155552222"},
            "file": BASE64.encode(PDF), "fileType": "PDF"
        });
        let payload = Payload::parse("application/json", Bytes::from(body.to_string()), Extensions::new())
            .await
            .unwrap();
        assert_eq!(payload.event, "INCOMING_FAX");
        assert_eq!(payload.file.as_deref(), Some(PDF));
        assert_eq!(payload.check_incoming().unwrap().as_str(), "+14155552222");
    }

    #[tokio::test]
    async fn json_with_files_array() {
        let body = serde_json::json!({
            "event": "FAX_COMPLETED", "fax": {"id": "F1"},
            "files": [{"file": BASE64.encode(PDF), "fileType": "PDF"}]
        });
        let payload = Payload::parse("application/json; charset=utf-8", Bytes::from(body.to_string()), Extensions::new())
            .await
            .unwrap();
        assert_eq!(payload.file.as_deref(), Some(PDF));
    }

    #[tokio::test]
    async fn multipart_with_file_part() {
        let body = "--XX\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\nINCOMING_FAX\r\n\
                    --XX\r\nContent-Disposition: form-data; name=\"fax\"\r\n\r\n{\"id\":\"F2\",\"to\":\"+14155552222\"}\r\n\
                    --XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\n%%EOF\n\r\n--XX--\r\n";
        let payload = Payload::parse("multipart/form-data; boundary=XX", Bytes::from(body), Extensions::new())
            .await
            .unwrap();
        assert_eq!(payload.details.id, "F2");
        assert_eq!(payload.file.as_deref(), Some(PDF));
    }

    #[tokio::test]
    async fn malformed_bodies_name_the_problem() {
        let cases: &[(&str, &str, &str)] = &[
            ("application/json", "{", "invalid JSON"),
            ("application/json", r#"{"fax":{"id":"1"}}"#, "missing field event"),
            ("application/json", r#"{"event":"INCOMING_FAX"}"#, "missing field fax"),
            ("application/json", r#"{"event":"INCOMING_FAX","fax":{}}"#, "no id"),
            ("application/json", r#"{"event":"INCOMING_FAX","fax":{"id":"1"},"file":"!!"}"#, "base64"),
            ("application/json", r#"{"event":"INCOMING_FAX","fax":{"id":"1"},"file":"aGVsbG8="}"#, "not a PDF"),
            (
                "application/json",
                r#"{"event":"INCOMING_FAX","fax":{"id":"1"},"file":"JVBERi0=","fileType":"TIFF"}"#,
                "only PDF",
            ),
            ("text/plain", "hello", "unsupported Content-Type"),
        ];
        for (content_type, body, expected) in cases {
            let err = Payload::parse(content_type, Bytes::from(body.to_string()), Extensions::new()).await.unwrap_err();
            assert!(err.to_string().contains(expected), "{body}: {err}");
        }
    }
}
