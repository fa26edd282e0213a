//! The Emails endpoints, with the paths and JSON shapes of the Sinch Fax API v3, under
//! `/v3/projects/{projectId}/services/{serviceId}`. Every input check comes from
//! [`rules`], the same functions the CLI and the SMTP intake use.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::info;

use super::ApiState;
use super::error::ApiError;
use crate::mappings::rules::{self, FieldViolation};
use crate::mappings::{Mapping, Permission};
use crate::number::Number;

/// `page` and `pageSize` as written in the query, checked by [`paging`].
#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    page: Option<String>,
    #[serde(rename = "pageSize")]
    page_size: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct EmailPath {
    email: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct NumberPath {
    #[serde(rename = "phoneNumber")]
    phone_number: String,
}

/// One entry of `phoneNumbers` in a request. Missing fields are left to the rules, so
/// that a missing number is a 422 naming `phoneNumbers[i].number`.
#[derive(Debug, Deserialize)]
pub(super) struct PhoneNumberEntry {
    #[serde(default)]
    number: String,
    permissions: Option<String>,
}

/// The body of `POST /emails`. Other fields of the Sinch Email object are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AddRequest {
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone_numbers: Vec<PhoneNumberEntry>,
}

/// The body of `PUT /emails/{email}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SetRequest {
    #[serde(default)]
    phone_numbers: Vec<PhoneNumberEntry>,
}

/// The Sinch Email object.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EmailObject {
    email: String,
    phone_numbers: Vec<NumberWithPermissions>,
    project_id: String,
}

#[derive(Debug, Serialize)]
struct NumberWithPermissions {
    number: String,
    permissions: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PhoneNumberItem {
    phone_number: String,
    permissions: &'static str,
}

/// A page of a list. `items` is flattened, so the list appears under its own key
/// (`emails` or `phoneNumbers`) beside the paging fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Page<T: Serialize> {
    #[serde(flatten)]
    items: T,
    page: u32,
    total_pages: u64,
    page_size: u32,
    total_items: u64,
}

#[derive(Debug, Serialize)]
struct Emails<T> {
    emails: Vec<T>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PhoneNumbers {
    phone_numbers: Vec<PhoneNumberItem>,
}

impl EmailObject {
    fn new(mapping: Mapping, project_id: &str) -> EmailObject {
        let phone_numbers = mapping
            .numbers
            .into_iter()
            .map(|(number, permissions)| NumberWithPermissions {
                number: number.as_str().to_string(),
                permissions: permissions.as_str(),
            })
            .collect();
        EmailObject { email: mapping.email, phone_numbers, project_id: project_id.to_string() }
    }
}

/// Reads `page` (default 1) and `pageSize` (default `default_size`) and checks them
/// with [`rules::check_page`]. Text that is not a whole number is a 422 on its field.
fn paging(query: &PageQuery, default_size: u32) -> Result<(u32, u32), ApiError> {
    let read = |value: &Option<String>, field: &str, default: u32, expected: &str| match value {
        None => Ok(default),
        Some(text) => text.trim().parse::<u32>().map_err(|_| {
            ApiError::invalid(FieldViolation {
                field: field.to_string(),
                description: format!("invalid {field} {text:?}: expected {expected}"),
            })
        }),
    };
    let page = read(&query.page, "page", 1, "a whole number from 1")?;
    let max = rules::MAX_PAGE_SIZE;
    let page_size = read(&query.page_size, "pageSize", default_size, &format!("a whole number from 1 to {max}"))?;
    rules::check_page(page, page_size).map_err(|err| ApiError::invalid(err.into()))?;
    Ok((page, page_size))
}

fn page_of<T: Serialize>(items: T, page: u32, page_size: u32, total_items: u64) -> Page<T> {
    Page { items, page, total_pages: rules::total_pages(total_items, page_size), page_size, total_items }
}

/// Reads the entries of `phoneNumbers` with [`rules::parse_api_phone_numbers`].
fn phone_numbers(entries: &[PhoneNumberEntry]) -> Result<Vec<(Number, Permission)>, ApiError> {
    let pairs = entries.iter().map(|entry| (entry.number.as_str(), entry.permissions.as_deref()));
    rules::parse_api_phone_numbers(pairs).map_err(ApiError::invalid)
}

/// `GET /emails`: one page of mappings ordered by email.
pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let (page, page_size) = paging(&query, rules::DEFAULT_PAGE_SIZE)?;
    let (mappings, total) =
        state.mappings.list(None, page, page_size).await.map_err(|err| ApiError::from_mapping(err, "list mappings"))?;
    let emails = mappings.into_iter().map(|mapping| EmailObject::new(mapping, &state.project_id)).collect();
    Ok(Json(page_of(Emails { emails }, page, page_size, total)).into_response())
}

/// `POST /emails`: adds a mapping; 201 with it, or 409 when the email has one.
pub(super) async fn add(
    State(state): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    body: Result<Json<AddRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let email = rules::parse_api_email(&body.email).map_err(ApiError::invalid)?;
    let numbers = phone_numbers(&body.phone_numbers)?;
    let mapping =
        state.mappings.add(&email, &numbers).await.map_err(|err| ApiError::from_mapping(err, "add the mapping"))?;
    info!(%method, path = uri.path(), email = %mapping.email, numbers = %mapping.numbers_display(), "mapping added");
    Ok((StatusCode::CREATED, Json(EmailObject::new(mapping, &state.project_id))).into_response())
}

/// `PUT /emails/{email}`: replaces the numbers of a mapping; 404 when there is none.
pub(super) async fn set(
    State(state): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    path: Result<Path<EmailPath>, PathRejection>,
    body: Result<Json<SetRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Path(path) = path?;
    let Json(body) = body?;
    let email = rules::parse_api_email(&path.email).map_err(ApiError::invalid)?;
    let numbers = phone_numbers(&body.phone_numbers)?;
    let mapping =
        state.mappings.set(&email, &numbers).await.map_err(|err| ApiError::from_mapping(err, "replace the numbers"))?;
    info!(%method, path = uri.path(), email = %mapping.email, numbers = %mapping.numbers_display(), "mapping numbers replaced");
    Ok(Json(EmailObject::new(mapping, &state.project_id)).into_response())
}

/// `DELETE /emails/{email}`: removes a mapping with its password; 204, or 404.
pub(super) async fn remove(
    State(state): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    path: Result<Path<EmailPath>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(path) = path?;
    let email = rules::parse_api_email(&path.email).map_err(ApiError::invalid)?;
    state.mappings.remove(&email).await.map_err(|err| ApiError::from_mapping(err, "remove the mapping"))?;
    info!(%method, path = uri.path(), email = %email, "mapping removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /emails/{email}/numbers`: one page of the numbers of a mapping, in mapping
/// order; 404 when the email has none.
pub(super) async fn numbers_of(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<EmailPath>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(path) = path?;
    let Query(query) = query?;
    let email = rules::parse_api_email(&path.email).map_err(ApiError::invalid)?;
    let (page, page_size) = paging(&query, rules::DEFAULT_NUMBERS_PAGE_SIZE)?;
    let (numbers, total) = state
        .mappings
        .numbers_of(&email, page, page_size)
        .await
        .map_err(|err| ApiError::from_mapping(err, "list the numbers"))?;
    let phone_numbers = numbers
        .into_iter()
        .map(|(number, permissions)| PhoneNumberItem {
            phone_number: number.as_str().to_string(),
            permissions: permissions.as_str(),
        })
        .collect();
    Ok(Json(page_of(PhoneNumbers { phone_numbers }, page, page_size, total)).into_response())
}

/// `GET /numbers/{phoneNumber}/emails`: one page of the emails mapped to a number in
/// any permission; an empty list when there are none.
pub(super) async fn emails_of(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<NumberPath>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(path) = path?;
    let Query(query) = query?;
    let number = path.phone_number.parse::<Number>().map_err(|err| {
        ApiError::invalid(FieldViolation { field: "phoneNumber".to_string(), description: err.to_string() })
    })?;
    let (page, page_size) = paging(&query, rules::DEFAULT_PAGE_SIZE)?;
    let (emails, total) = state
        .mappings
        .emails_for_number(&number, page, page_size)
        .await
        .map_err(|err| ApiError::from_mapping(err, "list the emails"))?;
    Ok(Json(page_of(Emails { emails }, page, page_size, total)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(page: Option<&str>, page_size: Option<&str>) -> PageQuery {
        PageQuery { page: page.map(str::to_string), page_size: page_size.map(str::to_string) }
    }

    #[test]
    fn paging_defaults_and_limits() {
        assert_eq!(paging(&query(None, None), 100).unwrap(), (1, 100));
        assert_eq!(paging(&query(None, None), 20).unwrap(), (1, 20));
        assert_eq!(paging(&query(Some("3"), Some("1000")), 100).unwrap(), (3, 1000));
        for (page, page_size, status) in [
            (Some("0"), None, 422),
            (Some("-1"), None, 422),
            (Some("x"), None, 422),
            (None, Some("1001"), 422),
            (None, Some("0"), 422),
            (None, Some("99999999999"), 422),
        ] {
            let err = paging(&query(page, page_size), 100).unwrap_err();
            assert_eq!(err.status().as_u16(), status, "{page:?} {page_size:?}");
        }
    }
}
