//! Message bodies: the dot-stuffed DATA stream and the counted BDAT chunks, both with
//! the size limit applied while the bytes arrive.
//!
//! DATA ends only on CR LF `.` CR LF. A dot after a bare LF, or a dot followed by a
//! bare LF, is content: treating those as the end is what SMTP smuggling exploits,
//! where a second message hidden in the body is read as commands. Bare LF in the body
//! is kept as it is.

/// A message body being received, which stops storing bytes once it is over the limit
/// but keeps counting them, so memory stays bounded and the reply can name the size.
pub(super) struct Body {
    bytes: Vec<u8>,
    size: u64,
    max_size: u64,
}

impl Body {
    pub fn new(max_size: u64) -> Self {
        Body { bytes: Vec::new(), size: 0, max_size }
    }

    /// Counted size in bytes, including bytes dropped after the limit was passed.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_over_limit(&self) -> bool {
        self.size > self.max_size
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.is_over_limit() {
            if !self.bytes.is_empty() {
                self.bytes = Vec::new();
            }
        } else {
            self.bytes.extend_from_slice(bytes);
        }
    }

    /// Counts bytes that are to be dropped, such as the rest of a BDAT chunk that makes
    /// the message too large.
    pub fn count_dropped(&mut self, count: u64) {
        self.size = self.size.saturating_add(count);
        if self.is_over_limit() {
            self.bytes = Vec::new();
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Position of the DATA decoder relative to line starts and the end marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DotState {
    /// Right after CR LF, or at the start of the body.
    LineStart,
    /// Inside a line, after a byte other than CR.
    InLine,
    /// Inside a line, right after CR.
    AfterCr,
    /// After a `.` at a line start, which is dropped (dot-unstuffing).
    Dot,
    /// After `.` CR at a line start: an LF now ends the body.
    DotCr,
}

/// Decodes a DATA body: dot-unstuffing and detection of the end marker.
pub(super) struct DotDecoder {
    state: DotState,
}

impl DotDecoder {
    /// Creates a decoder at the start of the body, which counts as a line start because
    /// the DATA command line ended with CR LF.
    pub fn new() -> Self {
        DotDecoder { state: DotState::LineStart }
    }

    /// Decodes `input` into `body`. Returns the number of bytes of `input` up to and
    /// including the end marker, or `None` when all of `input` is body.
    pub fn decode(&mut self, input: &[u8], body: &mut Body) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            if self.state == DotState::InLine {
                // Copy the run up to the next CR at once: only CR can start a line end.
                let run_end = input[i..].iter().position(|&b| b == b'\r').map_or(input.len(), |p| i + p);
                body.push(&input[i..run_end]);
                i = run_end;
                if i < input.len() {
                    body.push(b"\r");
                    self.state = DotState::AfterCr;
                    i += 1;
                }
                continue;
            }
            let byte = input[i];
            i += 1;
            self.state = match (self.state, byte) {
                (DotState::LineStart, b'.') => DotState::Dot,
                (DotState::Dot, b'\r') => DotState::DotCr,
                (DotState::DotCr, b'\n') => {
                    self.state = DotState::LineStart;
                    return Some(i);
                }
                (DotState::DotCr, _) => {
                    // The CR held back after the dot was content after all.
                    body.push(b"\r");
                    body.push(&[byte]);
                    if byte == b'\r' { DotState::AfterCr } else { DotState::InLine }
                }
                (DotState::AfterCr, b'\n') => {
                    body.push(b"\n");
                    DotState::LineStart
                }
                (_, b'\r') => {
                    body.push(b"\r");
                    DotState::AfterCr
                }
                (_, _) => {
                    body.push(&[byte]);
                    DotState::InLine
                }
            };
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one by one; returns the body and the bytes left after the end.
    fn decode_chunks(chunks: &[&[u8]]) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut decoder = DotDecoder::new();
        let mut body = Body::new(u64::MAX);
        for (n, chunk) in chunks.iter().enumerate() {
            if let Some(used) = decoder.decode(chunk, &mut body) {
                let mut rest = chunk[used..].to_vec();
                for later in &chunks[n + 1..] {
                    rest.extend_from_slice(later);
                }
                return Some((body.into_bytes(), rest));
            }
        }
        None
    }

    #[test]
    fn data_ends_on_crlf_dot_crlf() {
        let (body, rest) = decode_chunks(&[b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n"]).unwrap();
        assert_eq!(body, b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn data_empty_body_ends_at_once() {
        let (body, rest) = decode_chunks(&[b".\r\n"]).unwrap();
        assert!(body.is_empty());
        assert!(rest.is_empty());
    }

    #[test]
    fn data_end_marker_split_over_reads() {
        let (body, _) = decode_chunks(&[b"a\r", b"\n", b".", b"\r", b"\n"]).unwrap();
        assert_eq!(body, b"a\r\n");
    }

    #[test]
    fn data_dot_unstuffing() {
        let (body, _) = decode_chunks(&[b"..one\r\n..\r\n.two\r\n", b"\r\n.\r\n"]).unwrap();
        assert_eq!(body, b".one\r\n.\r\ntwo\r\n\r\n");
    }

    #[test]
    fn data_smuggling_variants_are_content() {
        for marker in [&b"\n.\n"[..], b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r\r\n"] {
            let mut input = b"x".to_vec();
            input.extend_from_slice(marker);
            input.extend_from_slice(b"MAIL FROM:<a@b.example>\r\n");
            let decoded = decode_chunks(&[&input]);
            assert!(decoded.is_none(), "{marker:?} ended the body");
        }
    }

    #[test]
    fn data_bare_lf_kept() {
        let (body, _) = decode_chunks(&[b"a\nb\n.c\r\n.\r\n"]).unwrap();
        assert_eq!(body, b"a\nb\n.c\r\n");
    }

    #[test]
    fn body_over_limit_drops_bytes_and_counts() {
        let mut body = Body::new(4);
        body.push(b"abc");
        body.push(b"defg");
        assert!(body.is_over_limit());
        assert_eq!(body.size(), 7);
        assert!(body.into_bytes().is_empty());
    }
}
