//! Wire form of replies, and the replies that the session sends on its own account
//! (sequence and syntax errors, limits, closing).

use smtp_proto::Error as ParseError;

use super::Reply;

/// Maximum characters of client input quoted back in a reply or a log line. Enough to
/// recognize a command or an address, few enough to keep replies short.
const MAX_QUOTED_CHARS: usize = 64;

/// Appends `reply` to `out` in wire form.
///
/// A text with line breaks becomes a multi-line reply (`250-...` lines, then `250 ...`),
/// so a handler cannot inject a second reply by putting CR LF in its text. An empty
/// status omits the enhanced status code, as in the greeting and the EHLO reply.
pub(super) fn encode(reply: &Reply, out: &mut Vec<u8>) {
    let lines: Vec<&str> = reply.text.split('\n').map(|line| line.trim_end_matches('\r')).collect();
    let last = lines.len() - 1;
    for (i, line) in lines.iter().enumerate() {
        let separator = if i == last { ' ' } else { '-' };
        let line = if reply.status.is_empty() {
            format!("{}{separator}{line}\r\n", reply.code)
        } else {
            format!("{}{separator}{} {line}\r\n", reply.code, reply.status)
        };
        out.extend_from_slice(line.as_bytes());
    }
}

/// Makes client input safe to quote in a reply or a log line: printable ASCII only,
/// other bytes as `?`, cut at [`MAX_QUOTED_CHARS`].
pub(super) fn quote(input: &[u8]) -> String {
    let mut quoted: String =
        input.iter().take(MAX_QUOTED_CHARS).map(|&b| if (0x20..0x7f).contains(&b) { b as char } else { '?' }).collect();
    if input.len() > MAX_QUOTED_CHARS {
        quoted.push_str("...");
    }
    quoted
}

/// `503 5.5.1`: a command that is valid but not at this point of the session.
pub(super) fn bad_sequence(text: impl Into<String>) -> Reply {
    Reply::new(503, "5.5.1", text)
}

pub(super) fn ok(text: impl Into<String>) -> Reply {
    Reply::new(250, "2.0.0", text)
}

/// `552 5.3.4` for a message of `size` bytes, declared or counted.
pub(super) fn message_too_large(size: u64, max: u64) -> Reply {
    Reply::new(552, "5.3.4", format!("message size {size} exceeds the limit of {max} bytes"))
}

pub(super) fn line_too_long(max: usize) -> Reply {
    Reply::new(500, "5.5.2", format!("line too long, the limit is {max} bytes"))
}

pub(super) fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Returns the first word of a command line, for replies that name the command.
fn verb(line: &[u8]) -> String {
    let line = trim_line_end(line);
    let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    quote(&line[..end]).to_ascii_uppercase()
}

/// Returns the text between `<` and `>` of a command line, for replies that name an
/// address.
fn bracketed(line: &[u8]) -> String {
    let line = trim_line_end(line);
    let Some(start) = line.iter().position(|&b| b == b'<') else {
        return String::new();
    };
    let rest = &line[start + 1..];
    let end = rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
    quote(&rest[..end])
}

pub(super) fn parse_error_reply(line: &[u8], err: ParseError) -> Reply {
    let verb = verb(line);
    if verb.is_empty() {
        return Reply::new(500, "5.5.2", "empty command line");
    }
    match err {
        ParseError::UnknownCommand => Reply::new(500, "5.5.1", format!("command {verb} not recognized")),
        ParseError::SyntaxError { syntax } => {
            Reply::new(501, "5.5.4", format!("invalid {verb} command, expected {syntax}"))
        }
        ParseError::InvalidSenderAddress => {
            Reply::new(501, "5.1.7", format!("invalid sender address <{}>", bracketed(line)))
        }
        ParseError::InvalidRecipientAddress => {
            Reply::new(501, "5.1.3", format!("invalid recipient address <{}>", bracketed(line)))
        }
        ParseError::InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("invalid value for parameter {param} of {verb}"))
        }
        ParseError::UnsupportedParameter { param } => {
            Reply::new(555, "5.5.4", format!("parameter {} of {verb} is not supported", quote(param.as_bytes())))
        }
        _ => Reply::new(501, "5.5.2", format!("syntax error in {verb} command")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_single_line() {
        let mut out = Vec::new();
        encode(&Reply::new(250, "2.1.0", "sender OK"), &mut out);
        assert_eq!(out, b"250 2.1.0 sender OK\r\n");
    }

    #[test]
    fn encode_line_breaks_as_multi_line_reply() {
        let mut out = Vec::new();
        encode(&Reply::new(554, "5.6.0", "first\r\nsecond"), &mut out);
        assert_eq!(out, b"554-5.6.0 first\r\n554 5.6.0 second\r\n");
    }

    #[test]
    fn encode_without_status() {
        let mut out = Vec::new();
        encode(&Reply::new(250, "", "fax.example.com\nPIPELINING"), &mut out);
        assert_eq!(out, b"250-fax.example.com\r\n250 PIPELINING\r\n");
    }

    #[test]
    fn quote_replaces_control_bytes_and_cuts() {
        assert_eq!(quote(b"FOO\r\x00bar"), "FOO??bar");
        let long = vec![b'a'; 100];
        assert_eq!(quote(&long), format!("{}...", "a".repeat(64)));
    }
}
