//! Email addresses: the syntax check and lower-casing of mapped addresses, and the
//! removal of SRS and BATV tagging from envelope senders.

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

/// Returns whether `tag` can be a BATV tag. Standard tags are ten characters (a key
/// digit, three day digits and six hex digits), but any run of ASCII letters and digits
/// is accepted, so that variants are removed too.
fn is_batv_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
