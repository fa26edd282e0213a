//! The checks on the arguments of a mapping change or a list request: the CLI's
//! `N[:PERM]` values, a mapping's number list, paging, and the field checks of an HTTP
//! API body.

use phonenumber::country::Id as Region;

use super::address::normalize_email;
use crate::mappings::{Permission, PermissionError};
use crate::number::{Number, NumberError};

/// Default `pageSize` of the HTTP API's lists of mappings and of emails.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Default `pageSize` of the HTTP API's list of the numbers of one email.
pub const DEFAULT_NUMBERS_PAGE_SIZE: u32 = 20;

/// Maximum `pageSize` the HTTP API accepts; larger values get 422.
pub const MAX_PAGE_SIZE: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberPermissionError {
    #[error(transparent)]
    Number(#[from] NumberError),
    #[error("invalid permission {permission:?} in {written:?}: expected send, receive or both")]
    Permission { written: String, permission: String },
}

/// Parses the CLI's `N[:send|:receive|:both]`: a number in any accepted spelling (read
/// with `region` when national) and an optional permission, `both` when left out.
pub fn parse_number_permission(written: &str, region: Region) -> Result<(Number, Permission), NumberPermissionError> {
    let (number_text, permission) = match written.split_once(':') {
        Some((number_text, permission_text)) => {
            let permission = permission_text.trim().parse::<Permission>().map_err(|PermissionError { written: p }| {
                NumberPermissionError::Permission { written: written.to_string(), permission: p }
            })?;
            (number_text, permission)
        }
        None => (written, Permission::default()),
    };
    let number = Number::parse(number_text, region)?;
    Ok((number, permission))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumbersError {
    #[error("a mapping needs at least one number")]
    Empty,
    /// `index` is the 0-based position of the second occurrence, so the HTTP API can
    /// name the field `phoneNumbers[index].number`.
    #[error("the number {number} is given more than once")]
    Duplicate { number: Number, index: usize },
}

/// Checks the numbers of a new or replaced mapping: at least one, none twice.
pub fn check_numbers(numbers: &[(Number, Permission)]) -> Result<(), NumbersError> {
    if numbers.is_empty() {
        return Err(NumbersError::Empty);
    }
    for (index, (number, _)) in numbers.iter().enumerate() {
        if numbers[..index].iter().any(|(earlier, _)| earlier == number) {
            return Err(NumbersError::Duplicate { number: number.clone(), index });
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("invalid page {0}: pages start at 1")]
    Page(u32),
    #[error("invalid pageSize {0}: expected 1 to {MAX_PAGE_SIZE}")]
    PageSize(u32),
}

impl PageError {
    /// Returns the query parameter at fault, as named in the HTTP API.
    pub fn field(&self) -> &'static str {
        match self {
            PageError::Page(_) => "page",
            PageError::PageSize(_) => "pageSize",
        }
    }
}

/// Checks the `page` (1-based) and `pageSize` (1 to [`MAX_PAGE_SIZE`]) of a list request.
pub fn check_page(page: u32, page_size: u32) -> Result<(), PageError> {
    if page == 0 {
        return Err(PageError::Page(page));
    }
    if page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(PageError::PageSize(page_size));
    }
    Ok(())
}

/// Returns the number of pages needed for `total_items`; 0 when there are none.
pub fn total_pages(total_items: u64, page_size: u32) -> u64 {
    if page_size == 0 {
        return 0;
    }
    total_items.div_ceil(u64::from(page_size))
}

/// One invalid field of an HTTP API request, as listed in the `fieldViolations` of the
/// Sinch error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {description}")]
pub struct FieldViolation {
    /// The field path, such as `phoneNumbers[0].number`.
    pub field: String,
    pub description: String,
}

impl From<PageError> for FieldViolation {
    fn from(err: PageError) -> Self {
        FieldViolation { field: err.field().to_string(), description: err.to_string() }
    }
}

/// Checks the `email` of an HTTP API request and returns it lower case.
pub fn parse_api_email(written: &str) -> Result<String, FieldViolation> {
    normalize_email(written).map_err(|err| FieldViolation { field: "email".to_string(), description: err.to_string() })
}

/// Checks the `phoneNumbers` of an HTTP API request, given as `(number, permissions)`
/// pairs in request order. Each number must be in E.164 form, because the API takes
/// no default region, and each permission `send`, `receive` or `both` (`both` when
/// absent). The list needs at least one entry and no number twice.
pub fn parse_api_phone_numbers<'a>(
    entries: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<Vec<(Number, Permission)>, FieldViolation> {
    let mut numbers = Vec::new();
    for (index, (number_text, permission_text)) in entries.into_iter().enumerate() {
        let number = number_text.parse::<Number>().map_err(|err| FieldViolation {
            field: format!("phoneNumbers[{index}].number"),
            description: err.to_string(),
        })?;
        let permission = match permission_text {
            Some(text) => text.parse::<Permission>().map_err(|err| FieldViolation {
                field: format!("phoneNumbers[{index}].permissions"),
                description: err.to_string(),
            })?,
            None => Permission::default(),
        };
        numbers.push((number, permission));
    }

    check_numbers(&numbers).map_err(|err| {
        let field = match &err {
            NumbersError::Empty => "phoneNumbers".to_string(),
            NumbersError::Duplicate { index, .. } => format!("phoneNumbers[{index}].number"),
        };
        FieldViolation { field, description: err.to_string() }
    })?;
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(e164: &str) -> Number {
        e164.parse().unwrap()
    }

    #[test]
    fn parse_number_permission_forms() {
        let cases = [
            ("+14155550100", "+14155550100", Permission::Both),
            ("+14155550100:send", "+14155550100", Permission::Send),
            ("+14155550100:receive", "+14155550100", Permission::Receive),
            ("+14155550100:both", "+14155550100", Permission::Both),
            ("+14155550100:SEND", "+14155550100", Permission::Send),
            ("4155550100:send", "+14155550100", Permission::Send),
            ("1-415-555-0100:receive", "+14155550100", Permission::Receive),
        ];
        for (written, e164, permission) in cases {
            let parsed = parse_number_permission(written, Region::US).unwrap();
            assert_eq!(parsed, (number(e164), permission), "{written}");
        }
    }

    #[test]
    fn parse_number_permission_errors() {
        let err = parse_number_permission("+14155550100:sned", Region::US).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid permission \"sned\" in \"+14155550100:sned\": expected send, receive or both"
        );
        assert!(matches!(
            parse_number_permission("+14155550100:", Region::US),
            Err(NumberPermissionError::Permission { .. })
        ));
        let err = parse_number_permission("555:send", Region::US).unwrap_err();
        assert!(matches!(&err, NumberPermissionError::Number(e) if e.written == "555"), "{err}");
        assert!(err.to_string().starts_with("invalid fax number \"555\""), "{err}");
    }

    #[test]
    fn check_numbers_rejects_empty_and_duplicates() {
        assert_eq!(check_numbers(&[]), Err(NumbersError::Empty));
        let one = [(number("+14155550100"), Permission::Send)];
        assert_eq!(check_numbers(&one), Ok(()));
        let twice = [
            (number("+14155550100"), Permission::Send),
            (number("+14155550101"), Permission::Send),
            (number("+14155550100"), Permission::Receive),
        ];
        assert_eq!(
            check_numbers(&twice),
            Err(NumbersError::Duplicate { number: number("+14155550100"), index: 2 })
        );
    }

    #[test]
    fn check_page_limits() {
        assert_eq!(check_page(1, 1), Ok(()));
        assert_eq!(check_page(7, MAX_PAGE_SIZE), Ok(()));
        assert_eq!(check_page(0, 100), Err(PageError::Page(0)));
        assert_eq!(check_page(1, 0), Err(PageError::PageSize(0)));
        assert_eq!(check_page(1, MAX_PAGE_SIZE + 1), Err(PageError::PageSize(1001)));
        assert_eq!(PageError::Page(0).field(), "page");
        assert_eq!(PageError::PageSize(0).field(), "pageSize");
    }

    #[test]
    fn total_pages_rounds_up() {
        assert_eq!(total_pages(0, 100), 0);
        assert_eq!(total_pages(1, 100), 1);
        assert_eq!(total_pages(100, 100), 1);
        assert_eq!(total_pages(101, 100), 2);
        assert_eq!(total_pages(5, 0), 0);
    }

    #[test]
    fn api_phone_numbers_accepted() {
        let parsed =
            parse_api_phone_numbers([("+14155550100", Some("send")), ("+14155550101", None), ("+14155550102", Some("receive"))])
                .unwrap();
        assert_eq!(
            parsed,
            [
                (number("+14155550100"), Permission::Send),
                (number("+14155550101"), Permission::Both),
                (number("+14155550102"), Permission::Receive),
            ]
        );
    }

    #[test]
    fn api_phone_numbers_field_violations() {
        let cases: [(Vec<(&str, Option<&str>)>, &str, &str); 5] = [
            (vec![], "phoneNumbers", "at least one number"),
            (vec![("+14155550100", None), ("4155550101", None)], "phoneNumbers[1].number", "E.164"),
            (vec![("+15550001111", None)], "phoneNumbers[0].number", "not a valid phone number"),
            (vec![("+14155550100", Some("sned"))], "phoneNumbers[0].permissions", "\"sned\""),
            (
                vec![("+14155550100", None), ("+14155550101", None), ("+14155550100", Some("send"))],
                "phoneNumbers[2].number",
                "more than once",
            ),
        ];
        for (entries, field, fragment) in cases {
            let violation = parse_api_phone_numbers(entries.clone()).unwrap_err();
            assert_eq!(violation.field, field, "{entries:?}");
            assert!(violation.description.contains(fragment), "{entries:?}: {violation}");
        }
    }

    #[test]
    fn api_email_and_page_violations() {
        assert_eq!(parse_api_email("Alice@Example.com").as_deref(), Ok("alice@example.com"));
        let violation = parse_api_email("alice").unwrap_err();
        assert_eq!(violation.field, "email");
        assert!(violation.description.contains("\"alice\""), "{violation}");
        let violation = FieldViolation::from(check_page(1, 1001).unwrap_err());
        assert_eq!(violation.field, "pageSize");
        assert!(violation.description.contains("1001"), "{violation}");
    }
}
