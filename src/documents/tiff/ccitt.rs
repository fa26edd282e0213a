//! A strict CCITT T.4/T.6 decoder, used to check fax data before it is passed through
//! to a PDF `/CCITTFaxDecode` filter, and to draw it for tests.
//!
//! [`Params`] mirror the filter's `/DecodeParms` (K, EncodedByteAlign, EndOfLine,
//! Columns, Rows), and the row start follows what xpdf-derived readers (poppler, pdf.js)
//! do with them. The decoder accepts less than those readers: every row must reach
//! exactly `columns` pixels, required EOL codes must be preceded by zero fill bits only,
//! and the data must contain all `rows` rows. Data that decodes here therefore decodes
//! the same way in such a reader. The code tables come from the `fax` crate.

use fax::BitReader;
use fax::maps::{Mode, black, white, mode};

/// Decoding parameters with the meaning of the PDF `/DecodeParms` keys of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Params {
    /// Negative for pure 2-D coding (Group 4), 0 for 1-D coding, positive for mixed
    /// coding with a tag bit after each EOL (Group 3 2-D).
    pub(crate) k: i32,
    /// Rows without EOL start at a byte boundary (TIFF Compression 2, Modified Huffman).
    pub(crate) byte_align: bool,
    /// Every row starts with an EOL code.
    pub(crate) end_of_line: bool,
    pub(crate) columns: u32,
    pub(crate) rows: u32,
    /// Repair rows the way libtiff does: a run that reaches the row's end on a make-up
    /// code needs no terminating code, and a row cut short by an EOL code is completed in
    /// its last colour. xpdf-derived readers report such rows as damaged, so data that
    /// needs this is transcoded rather than passed through.
    pub(crate) lenient: bool,
}

/// Facts about decoded data that the PDF parameters need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// The maximum number of rows in one group of a 1-D row and the 2-D rows after it,
    /// which is the minimum `/K` that describes mixed data.
    pub(crate) max_group: u32,
}

/// Reads bits most significant first. Bits past the end read as zero, but consuming
/// them fails.
struct Bits<'a> {
    data: &'a [u8],
    position: usize,
}

impl BitReader for Bits<'_> {
    type Error = ();

    fn peek(&self, bits: u8) -> Option<u16> {
        if self.position >= self.data.len() * 8 || bits > 16 {
            return None;
        }
        let byte = self.position / 8;
        let window = (0..3).fold(0u32, |acc, i| acc << 8 | u32::from(*self.data.get(byte + i).unwrap_or(&0)));
        let shift = 24 - (self.position % 8) as u32 - u32::from(bits);
        Some(((window >> shift) & ((1u32 << bits) - 1)) as u16)
    }

    fn consume(&mut self, bits: u8) -> Result<(), ()> {
        let end = self.position + usize::from(bits);
        if end > self.data.len() * 8 {
            return Err(());
        }
        self.position = end;
        Ok(())
    }

    fn bits_to_byte_boundary(&self) -> u8 {
        ((8 - self.position % 8) % 8) as u8
    }
}

impl Bits<'_> {
    fn align(&mut self) {
        self.position = self.position.div_ceil(8) * 8;
    }

    /// Skips zero fill bits and one EOL code (eleven zeros and a one). Returns whether an
    /// EOL was found; nothing is consumed when it was not.
    fn skip_eol(&mut self) -> bool {
        let start = self.position;
        let mut zeros = 0usize;
        while self.peek(1) == Some(0) {
            self.position += 1;
            zeros += 1;
        }
        if zeros >= 11 && self.peek(1) == Some(1) {
            self.position += 1;
            return true;
        }
        self.position = start;
        false
    }

    /// Skips an optional EOL the way xpdf-derived readers do without EndOfLine: zero
    /// bits while the next twelve are zero, then the EOL if it follows. Returns whether
    /// an EOL was skipped.
    fn skip_optional_eol(&mut self) -> bool {
        let start = self.position;
        while self.peek(12) == Some(0) {
            self.position += 1;
        }
        if self.peek(12) == Some(1) {
            self.position += 12;
            true
        } else {
            self.position = start;
            false
        }
    }
}

/// The reason data does not decode with the given parameters, for the log.
pub(crate) type DecodeError = String;

/// Decodes `data` and calls `on_row` with the changing elements of each row: the
/// columns where the colour changes, starting from white, strictly increasing and below
/// `columns`.
pub(crate) fn decode(data: &[u8], params: Params, mut on_row: impl FnMut(&[u32])) -> Result<Decoded, DecodeError> {
    if params.columns == 0 || params.columns > u32::from(u16::MAX) {
        return Err(format!("{} columns is outside 1 to 65535", params.columns));
    }
    let mut bits = Bits { data, position: 0 };
    let mut reference: Vec<u32> = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    let mut decoded = Decoded::default();
    let mut group = 0u32;

    for row in 0..params.rows {
        let two_dimensional = if params.k < 0 {
            true
        } else {
            if params.byte_align && !params.end_of_line {
                bits.align();
            } else if params.end_of_line {
                if !bits.skip_eol() {
                    return Err(format!("row {row} does not start with an EOL code"));
                }
            } else if params.lenient {
                // libtiff takes a run of EOL codes as one.
                while bits.skip_optional_eol() {}
            } else {
                bits.skip_optional_eol();
            }
            if params.k > 0 {
                let tag = bits.peek(1).ok_or_else(|| format!("data ends before row {row}"))?;
                bits.consume(1).map_err(|()| format!("data ends before row {row}"))?;
                tag == 0
            } else {
                false
            }
        };

        current.clear();
        if two_dimensional {
            decode_2d(&mut bits, &reference, &mut current, params.columns, params.lenient)
                .map_err(|error| format!("row {row}, bit {}: {error}", bits.position))?;
            group += 1;
        } else {
            decode_1d(&mut bits, &mut current, params.columns, params.lenient)
                .map_err(|error| format!("row {row}, bit {}: {error}", bits.position))?;
            group = 1;
        }
        decoded.max_group = decoded.max_group.max(group);
        normalize(&mut current, params.columns);
        on_row(&current);
        std::mem::swap(&mut reference, &mut current);
    }
    Ok(decoded)
}

/// Reads one run length: make-up codes followed by a terminating code. With
/// `lenient_end`, a run whose make-up codes reach exactly that length may lack the
/// terminating code.
fn read_run(bits: &mut Bits<'_>, is_white: bool, lenient_end: Option<u32>) -> Result<u32, DecodeError> {
    let mut total = 0u32;
    // A row of at most 65535 columns needs at most 26 make-up codes of 2560.
    for _ in 0..32 {
        if total > 0 && lenient_end == Some(total) {
            let mut ahead = Bits { data: bits.data, position: bits.position };
            let code = if is_white { white::decode(&mut ahead) } else { black::decode(&mut ahead) };
            if code != Some(0) {
                return Ok(total);
            }
        }
        let code = if is_white { white::decode(bits) } else { black::decode(bits) };
        let length = code.ok_or_else(|| format!("invalid {} run code", if is_white { "white" } else { "black" }))?;
        total += u32::from(length);
        if length < 64 {
            return Ok(total);
        }
    }
    Err("run too long".to_string())
}

fn decode_1d(bits: &mut Bits<'_>, current: &mut Vec<u32>, columns: u32, lenient: bool) -> Result<(), DecodeError> {
    let mut position = 0u32;
    let mut is_white = true;
    while position < columns {
        if lenient && bits.peek(9) == Some(0) {
            // An EOL code (eleven zeros) where a run code should be: the row ends early.
            return Ok(());
        }
        position += read_run(bits, is_white, lenient.then(|| columns - position))?;
        if position > columns {
            return Err(format!("runs reach column {position}, past the width of {columns}"));
        }
        current.push(position);
        is_white = !is_white;
    }
    Ok(())
}

fn decode_2d(
    bits: &mut Bits<'_>,
    reference: &[u32],
    current: &mut Vec<u32>,
    columns: u32,
    lenient: bool,
) -> Result<(), DecodeError> {
    // a0 starts on an imaginary white element before the first column.
    let mut a0: i64 = -1;
    let mut is_white = true;
    let columns_i = i64::from(columns);
    while a0 < columns_i {
        if lenient && bits.peek(9) == Some(0) {
            // An EOL code (eleven zeros) where a mode code should be: the row ends early.
            return Ok(());
        }
        let code = mode::decode(bits).ok_or("invalid mode code")?;
        let (b1, b2) = changing_elements(reference, a0, is_white, columns);
        match code {
            Mode::Pass => {
                if i64::from(b2) <= a0 {
                    return Err("pass mode does not advance".to_string());
                }
                a0 = i64::from(b2);
            }
            Mode::Horizontal => {
                let start = a0.max(0);
                let remaining = |from: i64| lenient.then(|| (columns_i - from).max(0) as u32);
                let a1 = start + i64::from(read_run(bits, is_white, remaining(start))?);
                let a2 = a1 + i64::from(read_run(bits, !is_white, remaining(a1))?);
                if a2 > columns_i {
                    return Err(format!("horizontal runs reach column {a2}, past the width of {columns}"));
                }
                current.push(a1 as u32);
                current.push(a2 as u32);
                a0 = a2;
            }
            Mode::Vertical(delta) => {
                let a1 = i64::from(b1) + i64::from(delta);
                if a1 < a0.max(0) || a1 > columns_i {
                    return Err(format!("vertical mode puts a change at column {a1}"));
                }
                current.push(a1 as u32);
                a0 = a1;
                is_white = !is_white;
            }
            Mode::Extension => return Err("uncompressed mode is not supported".to_string()),
            Mode::EOF => return Err("EOL code inside a row".to_string()),
        }
    }
    Ok(())
}

/// Returns b1 and b2 of T.4: b1 is the first change on the reference row right of `a0`
/// to the colour opposite the current one, and b2 is the change after it. Either is
/// `columns` when no such change exists.
fn changing_elements(reference: &[u32], a0: i64, is_white: bool, columns: u32) -> (u32, u32) {
    // Changes at even indexes turn black, so they are the ones opposite to white.
    let parity = if is_white { 0 } else { 1 };
    let first = reference.partition_point(|&change| i64::from(change) <= a0);
    let mut index = first;
    if index % 2 != parity {
        index += 1;
    }
    let b1 = reference.get(index).copied().unwrap_or(columns);
    let b2 = reference.get(index + 1).copied().unwrap_or(columns);
    (b1, b2)
}

/// Removes zero-length runs (two changes at one column) and changes at the right edge,
/// so the row can serve as the reference of the next.
fn normalize(row: &mut Vec<u32>, columns: u32) {
    let mut kept: Vec<u32> = Vec::with_capacity(row.len());
    for &change in row.iter() {
        if kept.last() == Some(&change) {
            kept.pop();
        } else {
            kept.push(change);
        }
    }
    while kept.last().is_some_and(|&change| change >= columns) {
        kept.pop();
    }
    *row = kept;
}

/// Fills a packed 1-bit row, most significant bit first, with 1 for white and 0 for
/// black (DeviceGray), from its changing elements.
pub(crate) fn fill_row(changes: &[u32], columns: u32, row: &mut [u8]) {
    row.fill(0xFF);
    let mut start = None;
    for (index, &change) in changes.iter().enumerate() {
        if index % 2 == 0 {
            start = Some(change);
        } else if let Some(from) = start.take() {
            clear_bits(row, from, change);
        }
    }
    if let Some(from) = start {
        clear_bits(row, from, columns);
    }
}

fn clear_bits(row: &mut [u8], from: u32, to: u32) {
    for column in from..to {
        let byte = (column / 8) as usize;
        if let Some(value) = row.get_mut(byte) {
            *value &= !(0x80 >> (column % 8));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes to rows of `#` (black) and `.` (white).
    fn draw(data: &[u8], params: Params) -> Result<Vec<String>, DecodeError> {
        let mut rows = Vec::new();
        decode(data, params, |changes| {
            let mut packed = vec![0u8; params.columns.div_ceil(8) as usize];
            fill_row(changes, params.columns, &mut packed);
            let row = (0..params.columns)
                .map(|column| if packed[(column / 8) as usize] & (0x80 >> (column % 8)) != 0 { '.' } else { '#' })
                .collect();
            rows.push(row);
        })?;
        Ok(rows)
    }

    fn params(k: i32, byte_align: bool, end_of_line: bool, columns: u32, rows: u32) -> Params {
        Params { k, byte_align, end_of_line, columns, rows, lenient: false }
    }

    #[test]
    fn one_dimensional_rows() {
        // White 2 (0111), black 3 (10), white 3 (1000): 0111 1010 00 plus padding.
        let data = [0b0111_1010, 0b0000_0000];
        assert_eq!(draw(&data, params(0, false, false, 8, 1)).unwrap(), vec!["..###..."]);
    }

    #[test]
    fn modified_huffman_rows_are_byte_aligned() {
        // Row 1: white 8 (10011), row 2 the same, each padded to a byte.
        let data = [0b1001_1000, 0b1001_1000];
        assert_eq!(draw(&data, params(0, true, false, 8, 2)).unwrap(), vec!["........", "........"]);
        assert!(draw(&data, params(0, false, true, 8, 2)).is_err(), "no EOL codes in the data");
    }

    #[test]
    fn two_dimensional_vertical_copies_reference() {
        // From the all-white reference above the first row, V0 puts a1 at b1, the right
        // edge, which ends the row white.
        let data = [0b1000_0000];
        assert_eq!(draw(&data, params(-1, false, false, 8, 1)).unwrap(), vec!["........"]);
    }

    #[test]
    fn missing_terminating_code_only_lenient() {
        // Width 64: white make-up 64 (11011) with no terminating code, then an EOL.
        let data = [0b1101_1000, 0b0000_0000, 0b0100_0000];
        let strict = params(0, false, false, 64, 1);
        assert!(draw(&data, strict).is_err());
        assert_eq!(draw(&data, Params { lenient: true, ..strict }).unwrap(), vec![".".repeat(64)]);
    }

    #[test]
    fn short_data_rejected() {
        let data = [0b1001_1000];
        assert!(draw(&data, params(0, true, false, 8, 3)).is_err());
    }
}
