//! uuencoded files inside a plain-text body (`begin 644 name` ... `end`), which old
//! Outlook versions and some scripts send instead of MIME attachments. They are taken
//! as documents so the encoded text never reaches the fax as a text page.

use super::mime::decode_base64_leniently;

/// One uuencoded file found in a text.
pub(crate) struct Block {
    pub(crate) name: String,
    pub(crate) data: Vec<u8>,
    /// False when the text ended before the `end` line, so `data` may be cut short.
    pub(crate) complete: bool,
}

/// Finds the uuencoded files in `text`, in order. A `begin` line counts only when a
/// valid encoded line follows it, so prose that starts a line with "begin 644" is not
/// taken for a file. `begin-base64` blocks (`uuencode -m`) are read too.
pub(crate) fn find_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(|line| line.trim_end_matches('\r')).peekable();

    while let Some(line) = lines.next() {
        let Some((base64, name)) = begin_line(line) else {
            continue;
        };
        let first_is_data = lines.peek().is_some_and(|next| {
            if base64 { !next.is_empty() && next.bytes().all(is_base64_byte) } else { is_uuencoded_line(next) }
        });
        if !first_is_data {
            continue;
        }

        let mut encoded = Vec::new();
        let mut complete = false;
        for line in lines.by_ref() {
            let is_end = if base64 { line == "====" } else { line == "end" };
            if is_end {
                complete = true;
                break;
            }
            encoded.push(line);
        }
        let data = if base64 {
            decode_base64_leniently(encoded.concat().as_bytes())
        } else {
            encoded.iter().flat_map(|line| decode_line(line)).collect()
        };
        blocks.push(Block { name, data, complete });
    }
    blocks
}

/// Parses `begin 644 name` or `begin-base64 644 name`, returning whether the block is
/// base64 and the file name.
fn begin_line(line: &str) -> Option<(bool, String)> {
    let (base64, rest) = if let Some(rest) = line.strip_prefix("begin-base64 ") {
        (true, rest)
    } else {
        (false, line.strip_prefix("begin ")?)
    };
    let (mode, name) = rest.split_once(' ')?;
    let is_mode = (3..=4).contains(&mode.len()) && mode.bytes().all(|byte| (b'0'..=b'7').contains(&byte));
    let name = name.trim();
    (is_mode && !name.is_empty()).then(|| (base64, name.to_string()))
}

fn is_base64_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'=')
}

/// Returns whether `line` is a uuencoded line: a length character, then at least the
/// characters that length needs, all in the printable range uuencode uses.
fn is_uuencoded_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    let length = usize::from(first.wrapping_sub(b' ') & 0x3F);
    length > 0 && bytes.len() > length.div_ceil(3) * 4 && bytes.iter().all(|&byte| (b' '..=b'`').contains(&byte))
}

/// Decodes one uuencoded line into the number of bytes its length character states.
fn decode_line(line: &str) -> Vec<u8> {
    let bytes = line.as_bytes();
    let Some(&first) = bytes.first() else {
        return Vec::new();
    };
    let length = usize::from(first.wrapping_sub(b' ') & 0x3F);
    let value = |byte: u8| u32::from(byte.wrapping_sub(b' ') & 0x3F);

    let mut decoded = Vec::with_capacity(length + 2);
    for group in bytes[1..].chunks(4) {
        if decoded.len() >= length {
            break;
        }
        let mut quantum = 0u32;
        for index in 0..4 {
            quantum = (quantum << 6) | group.get(index).map_or(0, |&byte| value(byte));
        }
        decoded.extend_from_slice(&quantum.to_be_bytes()[1..]);
    }
    decoded.truncate(length);
    decoded
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes `data` the way `uuencode` does, for tests.
    pub(crate) fn encode(name: &str, data: &[u8]) -> String {
        let character = |value: u32| -> char {
            let value = (value & 0x3F) as u8;
            if value == 0 { '`' } else { char::from(value + b' ') }
        };
        let mut text = format!("begin 644 {name}\n");
        for chunk in data.chunks(45) {
            text.push(character(chunk.len() as u32));
            for group in chunk.chunks(3) {
                let quantum = group.iter().enumerate().fold(0u32, |acc, (index, &byte)| {
                    acc | (u32::from(byte) << (16 - 8 * index))
                });
                for shift in [18, 12, 6, 0] {
                    text.push(character(quantum >> shift));
                }
            }
            text.push('\n');
        }
        text.push_str("`\nend\n");
        text
    }

    #[test]
    fn round_trip_through_encoder() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let text = format!("Hello,\nthe file:\n\n{}\nregards\n", encode("scan.pdf", &data));

        let blocks = find_blocks(&text);

        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].name, "scan.pdf");
        assert!(blocks[0].complete);
        assert_eq!(blocks[0].data, data);
    }

    #[test]
    fn known_encoding_decoded() {
        // "Cat" encodes as "#0V%T" in uuencode.
        let blocks = find_blocks("begin 644 cat.txt\r\n#0V%T\r\n`\r\nend\r\n");

        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].data, b"Cat");
    }

    #[test]
    fn prose_is_not_a_block() {
        assert!(find_blocks("begin 644 is a file mode\nthat means rw-r--r--\n").is_empty());
        assert!(find_blocks("begin the meeting at 9\n").is_empty());
    }

    #[test]
    fn truncated_block_marked_incomplete() {
        let text = encode("a.bin", &[1; 100]);
        let cut = &text[..text.len() - 10];

        let blocks = find_blocks(cut);

        assert_eq!(blocks.len(), 1);
        assert!(!blocks[0].complete);
    }

    #[test]
    fn base64_block_decoded() {
        let blocks = find_blocks("begin-base64 644 hi.txt\nSGVsbG8=\n====\n");

        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].data, b"Hello");
    }
}
