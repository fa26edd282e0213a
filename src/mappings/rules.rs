//! The rules for mappings and senders, as pure functions: the SMTP intake, the CLI and
//! the management HTTP API all call these, so an address or a number means the same
//! thing everywhere.
//!
//! - [`normalize_email`] checks the syntax of a mapped address and lower-cases it.
//! - [`strip_tags`] removes SRS and BATV rewriting from an envelope sender.
//! - [`parse_number_permission`] reads the CLI's `N[:send|:receive|:both]`.
//! - [`check_numbers`] and [`check_page`] are the checks on a request's number list and
//!   paging, and [`parse_api_email`] and [`parse_api_phone_numbers`] apply them to an
//!   HTTP API body, naming the field at fault as a [`FieldViolation`].
//! - [`sender_address`], [`authorize_envelope`] and [`authorize_sender`] decide whether
//!   a message may be faxed and from which number.

use phonenumber::country::Id as Region;

use super::{Mapping, Permission, PermissionError};
use crate::config::SenderCheck;
use crate::number::{Number, NumberError};
use crate::smtp::Reply;

/// Maximum length of an address in octets: the 256-octet path limit of RFC 5321 minus
/// the angle brackets.
pub const MAX_EMAIL_LENGTH: usize = 254;

/// Maximum length of the part before `@` in octets (RFC 5321).
pub const MAX_LOCAL_PART_LENGTH: usize = 64;

/// Characters rejected anywhere in an address. They are only valid inside a quoted local
/// part or an address literal, which mappings do not support, and `<` `>` usually mean
/// that a display name or brackets were pasted with the address.
const SPECIAL_CHARACTERS: &str = "<>()[]\\,;:\"";

/// Layers of SRS or BATV tagging removed from one address. A forwarder may add SRS over
/// a BATV-tagged address; deeper nesting does not occur in practice.
const MAX_TAG_LAYERS: usize = 4;

/// Default `pageSize` of the HTTP API's mapping lists, as in the Sinch Fax API.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Default `pageSize` of the numbers of one email, as in the Sinch Fax API.
pub const DEFAULT_NUMBERS_PAGE_SIZE: u32 = 20;

/// Maximum `pageSize` the HTTP API accepts; larger values get 422.
pub const MAX_PAGE_SIZE: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid email address {written:?}: {reason}")]
pub struct EmailError {
    pub written: String,
    pub reason: String,
}

impl EmailError {
    fn new(written: &str, reason: impl Into<String>) -> Self {
        EmailError { written: written.to_string(), reason: reason.into() }
    }
}

/// Checks the syntax of an email address and returns it lower case, the form in which
/// mappings are stored and compared.
///
/// Accepted: one `@` with a non-empty local part (at most 64 octets) and a domain of
/// non-empty dot-separated labels, at most 254 octets in all, without spaces, control
/// characters or `<>()[]\,;:"`. Quoted local parts and address literals such as
/// `user@[192.0.2.1]` are rejected. Leading and trailing spaces are removed first.
pub fn normalize_email(written: &str) -> Result<String, EmailError> {
    let address = written.trim();
    if address.is_empty() {
        return Err(EmailError::new(written, "it is empty"));
    }
    if address.len() > MAX_EMAIL_LENGTH {
        return Err(EmailError::new(
            written,
            format!("it is longer than the {MAX_EMAIL_LENGTH} characters an address may have"),
        ));
    }
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EmailError::new(written, "it contains a space or a control character"));
    }
    if let Some(c) = address.chars().find(|c| SPECIAL_CHARACTERS.contains(*c)) {
        return Err(EmailError::new(
            written,
            format!("the character {c:?} is not allowed; write the bare address, such as alice@example.com"),
        ));
    }

    let (local, domain) = match address.matches('@').count() {
        0 => return Err(EmailError::new(written, "it has no \"@\"")),
        1 => address.split_once('@').expect("one @ was counted"),
        _ => return Err(EmailError::new(written, "it has more than one \"@\"")),
    };
    if local.is_empty() {
        return Err(EmailError::new(written, "the part before \"@\" is empty"));
    }
    if local.len() > MAX_LOCAL_PART_LENGTH {
        return Err(EmailError::new(
            written,
            format!("the part before \"@\" is longer than {MAX_LOCAL_PART_LENGTH} characters"),
        ));
    }
    if domain.is_empty() {
        return Err(EmailError::new(written, "the domain after \"@\" is empty"));
    }
    if domain.split('.').any(str::is_empty) {
        return Err(EmailError::new(written, format!("the domain {domain:?} has an empty label")));
    }

    Ok(address.to_lowercase())
}

/// Removes SRS and BATV tagging from an envelope sender, returning the original address.
///
/// - SRS0 `SRS0=HHH=TT=domain=local@forwarder` becomes `local@domain`.
/// - SRS1 `SRS1=HHH=forwarder==HHH=TT=domain=local@forwarder2` becomes `local@domain`.
/// - BATV `prvs=TAG=local@domain` and the older `prvs=local/TAG@domain` become
///   `local@domain`.
///
/// Prefixes are matched in any letter case and `+` or `-` may replace the `=` after
/// `SRS0`/`SRS1`. The hashes and timestamps are not verified, because only the
/// forwarder has the key. An address that does not have one of these forms is returned
/// unchanged, and so is the letter case of the result.
pub fn strip_tags(address: &str) -> String {
    let mut current = address.to_string();
    for _ in 0..MAX_TAG_LAYERS {
        match strip_one_tag(&current) {
            Some(original) => current = original,
            None => break,
        }
    }
    current
}

fn strip_one_tag(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    strip_srs(local).or_else(|| strip_batv(local, domain))
}

fn strip_srs(local: &str) -> Option<String> {
    let scheme = local.get(..4)?;
    let separator = local.get(4..5)?;
    if !matches!(separator, "=" | "+" | "-") {
        return None;
    }
    let rest = &local[5..];
    if scheme.eq_ignore_ascii_case("SRS0") {
        return parse_srs0_body(rest);
    }
    if scheme.eq_ignore_ascii_case("SRS1") {
        // SRS1 keeps the first forwarder's SRS0 body after a second separator:
        // HHH=forwarder=<separator>HHH=TT=domain=local.
        let mut parts = rest.splitn(3, '=');
        let hash = parts.next()?;
        let forwarder = parts.next()?;
        let inner = parts.next()?;
        if hash.is_empty() || forwarder.is_empty() {
            return None;
        }
        return parse_srs0_body(inner.strip_prefix(['=', '+', '-'])?);
    }
    None
}

/// Reads `HHH=TT=domain=local`; the local part may itself contain `=`.
fn parse_srs0_body(body: &str) -> Option<String> {
    let mut parts = body.splitn(4, '=');
    let hash = parts.next()?;
    let timestamp = parts.next()?;
    let domain = parts.next()?;
    let local = parts.next()?;
    if [hash, timestamp, domain, local].iter().any(|part| part.is_empty()) {
        return None;
    }
    Some(format!("{local}@{domain}"))
}

fn strip_batv(local: &str, domain: &str) -> Option<String> {
    let prefix = local.get(..5)?;
    if !prefix.eq_ignore_ascii_case("prvs=") {
        return None;
    }
    let rest = &local[5..];
    let original = match rest.split_once('=') {
        Some((tag, original)) => is_batv_tag(tag).then_some(original)?,
        None => {
            let (original, tag) = rest.rsplit_once('/')?;
            is_batv_tag(tag).then_some(original)?
        }
    };
    if original.is_empty() {
        return None;
    }
    Some(format!("{original}@{domain}"))
}

/// A BATV tag is ten characters: a key digit, three day digits and six hex digits. Any
/// run of ASCII letters and digits is accepted, so that variants are removed too.
fn is_batv_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.chars().all(|c| c.is_ascii_alphanumeric())
}

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

/// The reason a sender may not fax. Each variant's text is the text of the SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SenderError {
    #[error("the null sender <> may not send faxes")]
    NullSender,
    #[error("invalid sender address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },
    #[error("sender {sender} is not allowed to send faxes: it has no mapping")]
    NoMapping { sender: String },
    #[error("sender {sender} is not allowed to send faxes: none of its numbers has send permission")]
    NoSendPermission { sender: String },
    #[error("the message has no From address, and it must be {sender}")]
    MissingHeaderFrom { sender: String },
    #[error("header From {header_from} differs from the envelope sender {envelope_sender}")]
    HeaderFromNotEnvelope { header_from: String, envelope_sender: String },
    #[error("header From {header_from} differs from the authenticated user {auth_identity}")]
    HeaderFromNotAuthenticated { header_from: String, auth_identity: String },
    #[error("sender {sender} may not send from {number}, the number in the Subject")]
    SubjectNumberNotAllowed { sender: String, number: Number },
}

impl SenderError {
    /// Returns the SMTP reply: `553 5.1.7` for an address that is not valid syntax,
    /// `550 5.7.1` for every policy refusal.
    pub fn smtp_reply(&self) -> Reply {
        match self {
            SenderError::InvalidAddress { .. } => Reply::new(553, "5.1.7", self.to_string()),
            _ => Reply::new(550, "5.7.1", self.to_string()),
        }
    }
}

/// Returns the address whose mapping decides a message: the AUTH identity on an
/// authenticated session, else the envelope sender with SRS and BATV tagging removed.
/// Both come back lower case.
///
/// `reverse_path` is the `MAIL FROM` address without brackets, empty for `<>`. The null
/// sender is refused even on an authenticated session, because bounces are never faxed.
pub fn sender_address(reverse_path: &str, auth_identity: Option<&str>) -> Result<String, SenderError> {
    if reverse_path.trim().is_empty() {
        return Err(SenderError::NullSender);
    }
    let address = match auth_identity {
        Some(identity) => identity.to_string(),
        None => strip_tags(reverse_path.trim()),
    };
    normalize_email(&address)
        .map_err(|EmailError { written, reason }| SenderError::InvalidAddress { address: written, reason })
}

/// Checks what the envelope alone decides, at `MAIL FROM` or `RCPT TO`: `mapping` is
/// the one of `sender` (from [`sender_address`]), and it must have a number with send
/// permission. [`authorize_sender`] repeats this check.
pub fn authorize_envelope(mapping: Option<&Mapping>, sender: &str) -> Result<(), SenderError> {
    let mapping = match mapping {
        Some(mapping) if mapping.email.eq_ignore_ascii_case(sender) => mapping,
        _ => return Err(SenderError::NoMapping { sender: sender.to_string() }),
    };
    if mapping.send_numbers().next().is_none() {
        return Err(SenderError::NoSendPermission { sender: mapping.email.clone() });
    }
    Ok(())
}

/// The input of [`authorize_sender`]: the sender facts of one message, read after DATA,
/// and the settings that apply.
#[derive(Debug, Clone, Copy)]
pub struct SenderCheckInput<'a> {
    /// The `MAIL FROM` address with tagging removed by [`strip_tags`]; empty for `<>`.
    pub envelope_sender: &'a str,
    /// The address of the header `From`, without a display name; `None` when the
    /// message has no `From` address.
    pub header_from: Option<&'a str>,
    /// The address authenticated with SMTP AUTH, when the session is authenticated.
    pub auth_identity: Option<&'a str>,
    /// The Subject with RFC 2047 encoded words decoded.
    pub subject: Option<&'a str>,
    /// The `senders.check` setting.
    pub check: SenderCheck,
    /// The `gateway.default_region` setting, for a Subject with a national number.
    pub region: Region,
}

/// Decides whether the message may be faxed and returns the number to send from.
///
/// `mapping` is the one of the sender, that is the AUTH identity when authenticated and
/// else the envelope sender. Checked in this order:
/// 1. the envelope sender is not the null sender;
/// 2. on an authenticated session the header `From` is the AUTH identity. Otherwise,
///    with `SenderCheck::Both`, it is the envelope sender;
/// 3. the sender has a mapping with at least one number it may send from;
/// 4. a Subject that is a valid number (any spelling, national ones read with `region`)
///    must be one of those numbers, and selects it. Any other Subject selects the first
///    such number in mapping order.
///
/// Addresses are compared case-insensitively.
pub fn authorize_sender(mapping: Option<&Mapping>, input: &SenderCheckInput<'_>) -> Result<Number, SenderError> {
    let sender = sender_address(input.envelope_sender, input.auth_identity)?;

    let must_match_header = input.auth_identity.is_some() || input.check == SenderCheck::Both;
    if must_match_header {
        let Some(header_from) = input.header_from else {
            return Err(SenderError::MissingHeaderFrom { sender });
        };
        if !same_address(header_from, &sender) {
            return Err(match input.auth_identity {
                Some(_) => SenderError::HeaderFromNotAuthenticated {
                    header_from: header_from.trim().to_string(),
                    auth_identity: sender,
                },
                None => SenderError::HeaderFromNotEnvelope {
                    header_from: header_from.trim().to_string(),
                    envelope_sender: sender,
                },
            });
        }
    }

    authorize_envelope(mapping, &sender)?;
    let mapping = mapping.expect("authorize_envelope returned Ok, so there is a mapping");
    let mut send_numbers = mapping.send_numbers();

    let subject = input.subject.map(str::trim).unwrap_or_default();
    if let Ok(selected) = Number::parse(subject, input.region) {
        return if send_numbers.any(|n| *n == selected) {
            Ok(selected)
        } else {
            Err(SenderError::SubjectNumberNotAllowed { sender, number: selected })
        };
    }
    Ok(send_numbers.next().expect("authorize_envelope found a send number").clone())
}

/// Compares two addresses case-insensitively. An address that is not valid syntax is
/// compared as written, lower-cased.
fn same_address(a: &str, b: &str) -> bool {
    let normalize = |address: &str| normalize_email(address).unwrap_or_else(|_| address.trim().to_lowercase());
    normalize(a) == normalize(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(e164: &str) -> Number {
        e164.parse().unwrap()
    }

    fn mapping(email: &str, numbers: &[(&str, Permission)]) -> Mapping {
        Mapping {
            email: email.to_string(),
            numbers: numbers.iter().map(|(n, p)| (number(n), *p)).collect(),
            has_password: false,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn normalize_email_accepts_and_lowercases() {
        let cases = [
            ("alice@example.com", "alice@example.com"),
            ("Alice@Example.COM", "alice@example.com"),
            ("  bob@example.com \t", "bob@example.com"),
            ("first.last+fax@sub.example.co.uk", "first.last+fax@sub.example.co.uk"),
            ("o'brien@example.com", "o'brien@example.com"),
            ("Jörg@Bücher.example", "jörg@bücher.example"),
            ("a@localhost", "a@localhost"),
        ];
        for (written, expected) in cases {
            assert_eq!(normalize_email(written).as_deref(), Ok(expected), "{written}");
        }
    }

    #[test]
    fn normalize_email_rejects_with_reason() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_address = format!("{}@{}.example", "a".repeat(60), "b".repeat(200));
        let cases: [(&str, &str); 14] = [
            ("", "it is empty"),
            ("   ", "it is empty"),
            ("alice", "no \"@\""),
            ("alice@@example.com", "more than one \"@\""),
            ("a@b@example.com", "more than one \"@\""),
            ("@example.com", "before \"@\" is empty"),
            ("alice@", "domain after \"@\" is empty"),
            ("alice@example..com", "empty label"),
            ("alice@.example.com", "empty label"),
            ("alice@example.com.", "empty label"),
            ("al ice@example.com", "space or a control character"),
            ("alice\u{7}@example.com", "space or a control character"),
            ("<alice@example.com>", "'<' is not allowed"),
            ("Alice <alice@example.com>", "space or a control character"),
        ];
        for (written, reason) in cases {
            let err = normalize_email(written).unwrap_err();
            assert!(err.reason.contains(reason), "{written:?}: {err}");
            assert_eq!(err.written, written);
        }
        assert!(normalize_email(&long_local).unwrap_err().reason.contains("longer than 64"));
        assert!(normalize_email(&long_address).unwrap_err().reason.contains("254"));
    }

    #[test]
    fn normalize_email_error_names_value() {
        let err = normalize_email("alice").unwrap_err();
        assert_eq!(err.to_string(), "invalid email address \"alice\": it has no \"@\"");
    }

    #[test]
    fn strip_tags_removes_srs_and_batv() {
        let cases = [
            // Untagged addresses stay as they are.
            ("alice@example.com", "alice@example.com"),
            ("Alice@Example.com", "Alice@Example.com"),
            ("srs@example.com", "srs@example.com"),
            ("prvs@example.com", "prvs@example.com"),
            // SRS0, with each separator and in any case.
            ("SRS0=HHH=TT=example.com=alice@forwarder.example", "alice@example.com"),
            ("srs0=hhh=tt=example.com=alice@forwarder.example", "alice@example.com"),
            ("SRS0+HHH=TT=example.com=alice@forwarder.example", "alice@example.com"),
            ("SRS0-HHH=TT=example.com=alice@forwarder.example", "alice@example.com"),
            ("SRS0=HHH=TT=example.com=a=b@forwarder.example", "a=b@example.com"),
            // SRS1 wraps the first forwarder's SRS0 body.
            ("SRS1=XXX=forwarder1.example==HHH=TT=example.com=alice@forwarder2.example", "alice@example.com"),
            ("SRS1=XXX=forwarder1.example=+HHH=TT=example.com=alice@forwarder2.example", "alice@example.com"),
            // BATV in both forms.
            ("prvs=0123abcdef=alice@example.com", "alice@example.com"),
            ("PRVS=0123ABCDEF=alice@example.com", "alice@example.com"),
            ("prvs=alice/0123abcdef@example.com", "alice@example.com"),
            ("prvs=0123abcdef=a=b@example.com", "a=b@example.com"),
            // SRS over BATV.
            ("SRS0=HHH=TT=example.com=prvs=0123abcdef=alice@forwarder.example", "alice@example.com"),
            // Malformed tags are left alone.
            ("SRS0=HHH=TT=example.com@forwarder.example", "SRS0=HHH=TT=example.com@forwarder.example"),
            ("SRS0==TT=example.com=alice@forwarder.example", "SRS0==TT=example.com=alice@forwarder.example"),
            ("SRS0xHHH=TT=example.com=alice@forwarder.example", "SRS0xHHH=TT=example.com=alice@forwarder.example"),
            ("SRS2=HHH=TT=example.com=alice@forwarder.example", "SRS2=HHH=TT=example.com=alice@forwarder.example"),
            ("prvs==alice@example.com", "prvs==alice@example.com"),
            ("prvs=0123abcdef=@example.com", "prvs=0123abcdef=@example.com"),
            ("prvs=tag-x=alice@example.com", "prvs=tag-x=alice@example.com"),
            ("prvs=alice@example.com", "prvs=alice@example.com"),
            ("no-at-sign", "no-at-sign"),
            ("", ""),
            ("SRSé=HHH=TT=example.com=alice@forwarder.example", "SRSé=HHH=TT=example.com=alice@forwarder.example"),
        ];
        for (tagged, original) in cases {
            assert_eq!(strip_tags(tagged), original, "{tagged}");
        }
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

    #[test]
    fn sender_address_cases() {
        assert_eq!(sender_address("", None), Err(SenderError::NullSender));
        assert_eq!(sender_address("", Some("alice@example.com")), Err(SenderError::NullSender));
        assert_eq!(sender_address("Alice@Example.com", None).as_deref(), Ok("alice@example.com"));
        assert_eq!(
            sender_address("SRS0=HHH=TT=Example.com=Alice@forwarder.example", None).as_deref(),
            Ok("alice@example.com")
        );
        assert_eq!(
            sender_address("scanner@example.com", Some("Alice@example.com")).as_deref(),
            Ok("alice@example.com")
        );
        let err = sender_address("not-an-address", None).unwrap_err();
        assert!(matches!(err, SenderError::InvalidAddress { .. }), "{err}");
        assert_eq!(err.smtp_reply().status, "5.1.7");
    }

    #[test]
    fn authorize_envelope_cases() {
        let sender = mapping("alice@example.com", &[("+14155550100", Permission::Send)]);
        let receiver = mapping("bob@example.com", &[("+14155550100", Permission::Receive)]);
        assert_eq!(authorize_envelope(Some(&sender), "alice@example.com"), Ok(()));
        assert_eq!(
            authorize_envelope(None, "carol@example.com"),
            Err(SenderError::NoMapping { sender: "carol@example.com".into() })
        );
        assert_eq!(
            authorize_envelope(Some(&sender), "carol@example.com"),
            Err(SenderError::NoMapping { sender: "carol@example.com".into() })
        );
        assert_eq!(
            authorize_envelope(Some(&receiver), "bob@example.com"),
            Err(SenderError::NoSendPermission { sender: "bob@example.com".into() })
        );
    }

    /// One case of `authorize_sender`: the input and the expected outcome,
    /// an E.164 number or a fragment of the error text.
    struct Case {
        name: &'static str,
        envelope: &'static str,
        header_from: Option<&'static str>,
        auth: Option<&'static str>,
        subject: Option<&'static str>,
        check: SenderCheck,
        expected: Result<&'static str, &'static str>,
    }

    const fn case(name: &'static str, envelope: &'static str, header_from: Option<&'static str>) -> Case {
        Case {
            name,
            envelope,
            header_from,
            auth: None,
            subject: None,
            check: SenderCheck::Both,
            expected: Ok("+14155550101"),
        }
    }

    #[test]
    fn authorize_sender_table() {
        let alice = mapping(
            "alice@example.com",
            &[
                ("+14155550100", Permission::Receive),
                ("+14155550101", Permission::Send),
                ("+14155550102", Permission::Both),
            ],
        );
        let bob = mapping("bob@example.com", &[("+14155550100", Permission::Receive)]);
        let a = "alice@example.com";

        let cases = [
            Case { ..case("first send number by default", a, Some(a)) },
            Case { ..case("addresses compare without case", "Alice@EXAMPLE.com", Some("ALICE@example.com")) },
            Case { subject: Some("+14155550102"), expected: Ok("+14155550102"), ..case("subject selects", a, Some(a)) },
            Case {
                subject: Some("  (415) 555-0102 "),
                expected: Ok("+14155550102"),
                ..case("subject in national spelling", a, Some(a))
            },
            Case {
                subject: Some("1.415.555.0101"),
                expected: Ok("+14155550101"),
                ..case("subject with dots", a, Some(a))
            },
            Case {
                subject: Some("+14155550100"),
                expected: Err("may not send from +14155550100"),
                ..case("subject number with receive only", a, Some(a))
            },
            Case {
                subject: Some("+14155550199"),
                expected: Err("may not send from +14155550199"),
                ..case("subject number not mapped", a, Some(a))
            },
            Case { subject: Some("Invoice 4711"), ..case("subject that is text", a, Some(a)) },
            Case { subject: Some("Fax to +14155550102"), ..case("subject with a number inside", a, Some(a)) },
            Case { subject: Some("555"), ..case("subject too short for a number", a, Some(a)) },
            Case { subject: Some(""), ..case("empty subject", a, Some(a)) },
            Case { expected: Err("null sender"), ..case("null sender", "", Some(a)) },
            Case {
                expected: Err("sender carol@example.com is not allowed to send faxes: it has no mapping"),
                ..case("unmapped sender", "carol@example.com", Some("carol@example.com"))
            },
            Case {
                expected: Err("none of its numbers has send permission"),
                ..case("receive-only sender", "bob@example.com", Some("bob@example.com"))
            },
            Case {
                expected: Err("header From mallory@example.com differs from the envelope sender alice@example.com"),
                ..case("header from differs", a, Some("mallory@example.com"))
            },
            Case {
                check: SenderCheck::Envelope,
                ..case("envelope check ignores header from", a, Some("mallory@example.com"))
            },
            Case { check: SenderCheck::Envelope, ..case("envelope check without header from", a, None) },
            Case { expected: Err("has no From address"), ..case("missing header from", a, None) },
            Case {
                auth: Some("alice@example.com"),
                ..case("auth identity is the sender", "scanner@example.com", Some(a))
            },
            Case {
                auth: Some("alice@example.com"),
                expected: Err("header From scanner@example.com differs from the authenticated user alice@example.com"),
                ..case("header from differs from auth", "scanner@example.com", Some("scanner@example.com"))
            },
            Case {
                auth: Some("alice@example.com"),
                check: SenderCheck::Envelope,
                expected: Err("differs from the authenticated user"),
                ..case("auth checks header from with envelope setting", a, Some("mallory@example.com"))
            },
            Case {
                auth: Some("carol@example.com"),
                expected: Err("sender carol@example.com is not allowed to send faxes: it has no mapping"),
                ..case("auth identity without mapping", a, Some("carol@example.com"))
            },
            Case { ..case("srs envelope sender is stripped", "SRS0=h=tt=example.com=alice@fwd.example", Some(a)) },
        ];

        for case in cases {
            let sender = sender_address(case.envelope, case.auth).unwrap_or_default();
            let mapping = [&alice, &bob].into_iter().find(|m| m.email == sender);
            let input = SenderCheckInput {
                envelope_sender: case.envelope,
                header_from: case.header_from,
                auth_identity: case.auth,
                subject: case.subject,
                check: case.check,
                region: Region::US,
            };
            let result = authorize_sender(mapping, &input);
            match (case.expected, result) {
                (Ok(expected), Ok(from)) => assert_eq!(from.as_str(), expected, "{}", case.name),
                (Err(fragment), Err(err)) => {
                    assert!(err.to_string().contains(fragment), "{}: {err}", case.name);
                    assert_eq!(err.smtp_reply().code, 550, "{}", case.name);
                    assert_eq!(err.smtp_reply().status, "5.7.1", "{}", case.name);
                }
                (expected, result) => panic!("{}: expected {expected:?}, got {result:?}", case.name),
            }
        }
    }
}
