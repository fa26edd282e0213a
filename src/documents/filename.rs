//! File names of MIME parts. mail-parser decodes RFC 2047 and RFC 2231 names. This module
//! repairs from the raw header the two cases it reads wrong, and normalizes the result.
//! The two cases are unquoted names folded over several lines (Outlook) and raw 8-bit
//! names that are not UTF-8 (read as Latin-1).

use mail_parser::{HeaderName, Message, MessagePart, MimeHeaders};
use unicode_normalization::UnicodeNormalization;

/// Returns the part's file name: decoded, repaired from the raw header where mail-parser
/// cut or garbled it, in Unicode NFC (Apple Mail sends decomposed accents), without any
/// directory path or control characters. `None` when the part has no name.
pub(crate) fn file_name(message: &Message<'_>, part: &MessagePart<'_>) -> Option<String> {
    let parsed = part.attachment_name()?;
    let name = match raw_file_name(message, part) {
        Some(raw) if repairs(parsed, &raw) => raw,
        _ => parsed.to_string(),
    };

    let base = name.rsplit(['/', '\\']).next().unwrap_or(&name);
    let cleaned: String = base.nfc().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_string())
}

/// Whether the name read from the raw header should replace mail-parser's: the raw one
/// continues a name that mail-parser cut at a folded line, or decodes the bytes that
/// mail-parser replaced with U+FFFD.
fn repairs(parsed: &str, raw: &str) -> bool {
    let cut = raw.len() > parsed.len() && raw.starts_with(parsed.trim_end());
    let garbled = parsed.contains('\u{FFFD}') && !raw.contains('\u{FFFD}');
    cut || garbled
}

/// Reads the plain `filename` parameter of Content-Disposition, else the `name`
/// parameter of Content-Type, from the raw header bytes. Values with RFC 2047 encoded
/// words are left to mail-parser.
fn raw_file_name(message: &Message<'_>, part: &MessagePart<'_>) -> Option<String> {
    let raw_header = |wanted: HeaderName<'_>| {
        part.headers
            .iter()
            .find(|header| header.name == wanted)
            .and_then(|header| message.raw_message.get(header.offset_start as usize..header.offset_end as usize))
    };
    let value = raw_header(HeaderName::ContentDisposition)
        .and_then(|raw| parameter(raw, "filename"))
        .or_else(|| raw_header(HeaderName::ContentType).and_then(|raw| parameter(raw, "name")))?;
    (!value.contains("=?")).then_some(value)
}

/// Returns the value of the parameter `parameter_name` in a raw header value such as
/// `attachment; filename="a b.pdf"`. Folded lines are joined first. A quoted value may
/// contain `;`. An unquoted value ends at `;`, keeps its inner spaces (runs collapsed to
/// one) and is read as UTF-8, or as Latin-1 when it is not valid UTF-8.
pub(crate) fn parameter(raw: &[u8], parameter_name: &str) -> Option<String> {
    let unfolded: Vec<u8> = raw.iter().copied().filter(|&byte| byte != b'\r' && byte != b'\n').collect();
    let mut rest = &unfolded[..];

    // The first segment is the disposition or media type itself.
    rest = &rest[rest.iter().position(|&byte| byte == b';')? + 1..];
    loop {
        let (name, after_name) = split_at_byte(rest, b'=')?;
        let after_name = trim_start(after_name);
        let (value, next) = if let Some(inside) = after_name.strip_prefix(b"\"") {
            let (value, after_quote) = quoted(inside);
            (value, after_quote.and_then(|after| split_at_byte(after, b';')).map(|(_, next)| next))
        } else {
            match split_at_byte(after_name, b';') {
                Some((value, next)) => (collapse_spaces(trim(value)), Some(next)),
                None => (collapse_spaces(trim(after_name)), None),
            }
        };
        if trim(name).eq_ignore_ascii_case(parameter_name.as_bytes()) {
            return Some(decode_text(&value));
        }
        rest = next?;
    }
}

/// Splits a quoted string after its opening quote into the unescaped value and the
/// bytes after the closing quote (`None` when the quote is not closed).
fn quoted(bytes: &[u8]) -> (Vec<u8>, Option<&[u8]>) {
    let mut value = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'\\' if at + 1 < bytes.len() => {
                value.push(bytes[at + 1]);
                at += 2;
            }
            b'"' => return (value, Some(&bytes[at + 1..])),
            byte => {
                value.push(byte);
                at += 1;
            }
        }
    }
    (value, None)
}

fn split_at_byte(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&byte| byte == separator)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|byte| !byte.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|byte| !byte.is_ascii_whitespace()).map_or(start, |at| at + 1);
    &bytes[start..end]
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|byte| !byte.is_ascii_whitespace()).unwrap_or(bytes.len());
    &bytes[start..]
}

fn collapse_spaces(bytes: &[u8]) -> Vec<u8> {
    let mut collapsed = Vec::with_capacity(bytes.len());
    for &byte in bytes {
        let is_space = byte == b' ' || byte == b'\t';
        if is_space && collapsed.last() == Some(&b' ') {
            continue;
        }
        collapsed.push(if is_space { b' ' } else { byte });
    }
    collapsed
}

/// Decodes raw header bytes as UTF-8, or as Latin-1 when they are not valid UTF-8.
fn decode_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&byte| char::from(byte)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_part_name(raw: &[u8]) -> Option<String> {
        let message = mail_parser::MessageParser::default().parse(raw).unwrap();
        file_name(&message, &message.parts[1])
    }

    fn in_mixed(part_headers: &str) -> Vec<u8> {
        format!("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n{part_headers}\r\n\r\nx\r\n--b--\r\n")
            .into_bytes()
    }

    #[test]
    fn parameter_reads_quoted_and_unquoted_values() {
        assert_eq!(parameter(b" attachment; filename=\"semi;colon.txt\"", "filename").unwrap(), "semi;colon.txt");
        assert_eq!(parameter(b" attachment; filename=invoice.pdf; size=12345", "filename").unwrap(), "invoice.pdf");
        assert_eq!(parameter(b" attachment; size=1; FILENAME=\"a\\\"b.pdf\"", "filename").unwrap(), "a\"b.pdf");
        assert_eq!(parameter(b" application/pdf; name=x.pdf", "filename"), None);
        assert_eq!(parameter(b" attachment", "filename"), None);
    }

    #[test]
    fn folded_unquoted_name_joined() {
        let raw = in_mixed(
            "Content-Type: application/pdf\r\nContent-Disposition: attachment; \
             filename=Partnership Marketing Agreement \r\n Form - Acme - Week 11.pdf",
        );
        assert_eq!(first_part_name(&raw).unwrap(), "Partnership Marketing Agreement Form - Acme - Week 11.pdf");
    }

    #[test]
    fn latin1_raw_name_decoded() {
        let mut raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf; name=Z".to_vec();
        raw.extend_from_slice(b"\xe4hler.pdf\r\n\r\nx\r\n--b--\r\n");
        assert_eq!(first_part_name(&raw).unwrap(), "Zähler.pdf");
    }

    #[test]
    fn rfc2231_and_rfc2047_names_normalized() {
        let raw = in_mixed(
            "Content-Type: image/png; name=\"=?utf-8?B?Q2FwdHVyZSBk4oCZZcyBY3Jhbi5w?=\r\n =?utf-8?B?bmc=?=\"\r\n\
             Content-Disposition: inline; filename*=utf-8''Capture%20d%E2%80%99e%CC%81cran.png",
        );
        // The sender's decomposed "e" plus combining acute accent becomes one "é".
        assert_eq!(first_part_name(&raw).unwrap(), "Capture d\u{2019}\u{e9}cran.png");
    }

    #[test]
    fn rfc2231_continuations_with_encoded_words() {
        let raw = in_mixed(
            "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; \
             filename*0=\"=?UTF-8?Q?=F0=9F=98=80?=\"; filename*1=\"=?UTF-8?Q?_doc?=\"; filename*2=\".docx\"",
        );
        assert_eq!(first_part_name(&raw).unwrap(), "\u{1F600} doc.docx");
    }

    #[test]
    fn unquoted_tspecials_kept() {
        let raw = in_mixed("Content-Type: application/pdf; name=Invoice_(302232133150612).pdf");
        assert_eq!(first_part_name(&raw).unwrap(), "Invoice_(302232133150612).pdf");
    }

    #[test]
    fn directory_path_removed() {
        let raw = in_mixed("Content-Type: application/pdf; name=\"C:\\\\Users\\\\kim\\\\scan.pdf\"");
        assert_eq!(first_part_name(&raw).unwrap(), "scan.pdf");
    }
}
