//! Sender authorization: whether a message may be faxed and from which number.

use phonenumber::country::Id as Region;

use super::address::{EmailError, normalize_email, strip_tags};
use crate::config::SenderCheck;
use crate::mappings::Mapping;
use crate::number::Number;
use crate::smtp::Reply;

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
    use crate::mappings::Permission;

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
