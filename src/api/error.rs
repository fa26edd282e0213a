//! Errors of the management API, sent in the error shape of the Sinch Fax API:
//! `{"code":"422","error":"Invalid parameters","message":"...","details":{"fieldViolations":[...]}}`.
//! `code` is the HTTP status as a string, as in Sinch's own responses.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::mappings::MappingError;
use crate::mappings::rules::FieldViolation;

/// The realm sent in `WWW-Authenticate` with every 401.
pub(crate) const REALM: &str = "faxgate";

/// The message of an error response, kept in the response's extensions so that the
/// request log can name it.
#[derive(Debug, Clone)]
pub(crate) struct ErrorMessage(pub String);

/// An error response of the management API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    violations: Vec<FieldViolation>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: String,
    error: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Details<'a> {
    field_violations: Vec<Violation<'a>>,
}

#[derive(Serialize)]
struct Violation<'a> {
    field: &'a str,
    description: &'a str,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), violations: Vec::new() }
    }

    /// Returns a 400 for a body or path that cannot be read, such as malformed JSON.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// Returns a 401 for missing or wrong credentials.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "this method is not allowed on this path")
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// Returns a 422 that names the field at fault in `details.fieldViolations`.
    pub fn invalid(violation: FieldViolation) -> ApiError {
        let message = violation.description.clone();
        ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, message, violations: vec![violation] }
    }

    /// Logs a store failure and returns a 500. The cause is logged and not sent, because the
    /// client cannot act on it.
    pub fn internal(action: &str, err: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "management API cannot {action}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot {action}; the server log has the cause"))
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Maps a store error: an existing mapping is 409, a missing one 404, invalid input
    /// 422 with its field, and anything else 500.
    pub fn from_mapping(err: MappingError, action: &str) -> ApiError {
        match err {
            MappingError::Exists { .. } => ApiError::conflict(err.to_string()),
            MappingError::NotFound { .. } => ApiError::not_found(err.to_string()),
            MappingError::InvalidEmail(ref email) => {
                ApiError::invalid(FieldViolation { field: "email".to_string(), description: email.to_string() })
            }
            MappingError::InvalidNumbers(ref numbers) => ApiError::invalid(FieldViolation {
                field: "phoneNumbers".to_string(),
                description: numbers.to_string(),
            }),
            other => ApiError::internal(action, &other),
        }
    }
}

/// Returns the `error` text Sinch sends with each status.
fn reason_phrase(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        422 => "Invalid parameters",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let details = (!self.violations.is_empty()).then(|| Details {
            field_violations: self
                .violations
                .iter()
                .map(|v| Violation { field: &v.field, description: &v.description })
                .collect(),
        });
        let body = Body {
            code: self.status.as_u16().to_string(),
            error: reason_phrase(self.status),
            message: &self.message,
            details,
        };
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorMessage(self.message.clone()));
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = format!("Basic realm=\"{REALM}\", charset=\"UTF-8\"");
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
            // Credentials are checked before the body is read, and the server closes
            // a connection whose body it left unread. The header lets the client know,
            // so it does not send its next request on that connection.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    /// Maps an unreadable body to 400, as Sinch documents for malformed JSON and missing
    /// fields, and a missing JSON content type to 415.
    fn from(rejection: JsonRejection) -> ApiError {
        let status = match rejection {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}
