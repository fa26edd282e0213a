//! A strict CCITT T.4/T.6 decoder, used to check fax data before it is passed through
//! to a PDF `/CCITTFaxDecode` filter, and a Group 4 encoder for pages that are
//! re-encoded.
//!
//! [`Params`] mirror the filter's `/DecodeParms` (K, EncodedByteAlign, EndOfLine,
//! Columns, Rows), and the row start follows what xpdf-derived readers (poppler, pdf.js)
//! do with them. The decoder accepts less than those readers: every row must reach
//! exactly `columns` pixels, required EOL codes must be preceded by zero fill bits only,
//! and the data must contain all `rows` rows. Data that decodes here therefore decodes
//! the same way in such a reader. The code tables come from the `fax` crate and are
//! expanded into lookup tables indexed by the next 13 bits, so each code is read with
//! one lookup.

use std::sync::OnceLock;

use fax::maps::{Mode, black, mode, white};

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

/// The reason data does not decode with the given parameters, for the log.
pub(crate) type DecodeError = String;

/// Bits of the longest run code (black make-up codes), and the width of the lookups.
const LOOKUP_BITS: u32 = 13;

/// Bits of the longest mode code other than EOL (the extension code).
const MODE_BITS: u32 = 7;

/// A decoded mode code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Pass,
    Horizontal,
    Vertical(i8),
    Extension,
}

/// Lookup tables built once from the `fax` crate's code lists.
struct Tables {
    /// Run length and code length of the run code that starts each 13-bit value, or a
    /// code length of 0 where no code does.
    white_runs: Vec<(u16, u8)>,
    black_runs: Vec<(u16, u8)>,
    /// The mode code that starts each 7-bit value, with its length.
    modes: [Option<(Step, u8)>; 1 << MODE_BITS],
    /// Codes of terminating runs 0 to 63, then of make-up runs 64 to 2560 in steps of 64,
    /// as (bits, length), for the encoder.
    white_codes: Vec<(u16, u8)>,
    black_codes: Vec<(u16, u8)>,
    pass_code: (u16, u8),
    horizontal_code: (u16, u8),
    /// Vertical codes for a1 - b1 from -3 to 3.
    vertical_codes: [(u16, u8); 7],
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(build_tables)
}

fn build_tables() -> Tables {
    let runs = |entries: &[(u16, fax::Bits)]| {
        let mut lookup = vec![(0u16, 0u8); 1 << LOOKUP_BITS];
        let mut codes = vec![(0u16, 0u8); 64 + 40];
        for &(run, bits) in entries {
            let free = LOOKUP_BITS - u32::from(bits.len);
            let first = usize::from(bits.data) << free;
            lookup[first..first + (1 << free)].fill((run, bits.len));
            let index = if run < 64 { usize::from(run) } else { 63 + usize::from(run / 64) };
            codes[index] = (bits.data, bits.len);
        }
        (lookup, codes)
    };
    let (white_runs, white_codes) = runs(&white::ENTRIES);
    let (black_runs, black_codes) = runs(&black::ENTRIES);

    let mut modes = [None; 1 << MODE_BITS];
    let mut pass_code = (0, 0);
    let mut horizontal_code = (0, 0);
    let mut vertical_codes = [(0, 0); 7];
    for &(code, bits) in &mode::ENTRIES {
        let step = match code {
            Mode::Pass => {
                pass_code = (bits.data, bits.len);
                Step::Pass
            }
            Mode::Horizontal => {
                horizontal_code = (bits.data, bits.len);
                Step::Horizontal
            }
            Mode::Vertical(delta) => {
                vertical_codes[(delta + 3) as usize] = (bits.data, bits.len);
                Step::Vertical(delta)
            }
            Mode::Extension => Step::Extension,
            // EOL is longer than the mode lookup; decode_2d checks for it when no mode
            // code matches.
            Mode::EOF => continue,
        };
        let free = MODE_BITS - u32::from(bits.len);
        let first = usize::from(bits.data) << free;
        modes[first..first + (1 << free)].fill(Some((step, bits.len)));
    }
    Tables { white_runs, black_runs, modes, white_codes, black_codes, pass_code, horizontal_code, vertical_codes }
}

/// Reads bits most significant first. Bits past the end read as zero, but consuming
/// them fails.
#[derive(Clone, Copy)]
struct Bits<'a> {
    data: &'a [u8],
    position: usize,
    end: usize,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits { data, position: 0, end: data.len() * 8 }
    }

    fn at_end(&self) -> bool {
        self.position >= self.end
    }

    /// Returns the next `count` bits (1 to 25) without consuming them.
    fn peek(&self, count: u32) -> u32 {
        let byte = self.position / 8;
        let window = match self.data.get(byte..byte + 4) {
            Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
            _ => (0..4).fold(0u32, |window, i| window << 8 | u32::from(self.data.get(byte + i).copied().unwrap_or(0))),
        };
        (window << (self.position % 8)) >> (32 - count)
    }

    fn consume(&mut self, count: u32) -> Result<(), ()> {
        let end = self.position + count as usize;
        if end > self.end {
            return Err(());
        }
        self.position = end;
        Ok(())
    }

    fn align(&mut self) {
        self.position = self.position.div_ceil(8) * 8;
    }

    /// Returns how many of the next 16 bits are one before the first zero.
    fn leading_ones(&self) -> u32 {
        if self.at_end() {
            return 0;
        }
        (!self.peek(16) << 16).leading_zeros().min(16)
    }

    /// Returns the position of the next one bit, if any.
    fn next_one(&self) -> Option<usize> {
        let mut byte = self.position / 8;
        let first = *self.data.get(byte)? & (0xFF >> (self.position % 8));
        if first != 0 {
            return Some(byte * 8 + first.leading_zeros() as usize);
        }
        byte += 1;
        let rest = self.data.get(byte..)?;
        let offset = rest.iter().position(|&value| value != 0)?;
        Some((byte + offset) * 8 + rest[offset].leading_zeros() as usize)
    }

    /// Skips zero fill bits and one EOL code (at least eleven zeros, then a one), as
    /// required at the start of every row with EndOfLine. Without EndOfLine,
    /// xpdf-derived readers skip zeros while the next twelve bits are zero and then an
    /// EOL if one follows, which has the same effect. Returns whether an EOL was found;
    /// nothing is consumed when it was not.
    fn skip_eol(&mut self) -> bool {
        match self.next_one() {
            Some(one) if one - self.position >= 11 => {
                self.position = one + 1;
                true
            }
            _ => false,
        }
    }

    /// Reads one code from a 13-bit lookup table.
    fn run_code(&mut self, lookup: &[(u16, u8)]) -> Option<u16> {
        if self.at_end() {
            return None;
        }
        let (run, length) = *lookup.get(self.peek(LOOKUP_BITS) as usize)?;
        if length == 0 {
            return None;
        }
        self.consume(u32::from(length)).ok()?;
        Some(run)
    }

    fn mode_code(&mut self, tables: &Tables) -> Result<Step, DecodeError> {
        if self.at_end() {
            return Err("data ends inside a row".to_string());
        }
        match tables.modes.get(self.peek(MODE_BITS) as usize).copied().flatten() {
            Some((step, length)) => {
                self.consume(u32::from(length)).map_err(|()| "data ends inside a mode code".to_string())?;
                Ok(step)
            }
            None if self.peek(12) == 1 => Err("EOL code inside a row".to_string()),
            None => Err("invalid mode code".to_string()),
        }
    }
}

/// Decodes `data` and calls `on_row` with the changing elements of each row: the
/// columns where the colour changes, starting from white, strictly increasing and below
/// `columns`. Decoding stops with an error when `on_row` returns false.
pub(crate) fn decode(data: &[u8], params: Params, mut on_row: impl FnMut(&[u32]) -> bool) -> Result<Decoded, DecodeError> {
    if params.columns == 0 || params.columns > u32::from(u16::MAX) {
        return Err(format!("{} columns is outside 1 to 65535", params.columns));
    }
    let mut bits = Bits::new(data);
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
                while bits.skip_eol() {}
            } else {
                bits.skip_eol();
            }
            if params.k > 0 {
                if bits.at_end() {
                    return Err(format!("data ends before row {row}"));
                }
                let tag = bits.peek(1);
                bits.position += 1;
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
        if !on_row(&current) {
            return Err(format!("stopped at row {row}"));
        }
        std::mem::swap(&mut reference, &mut current);
    }
    Ok(decoded)
}

/// Reads one run length: make-up codes followed by a terminating code. With
/// `lenient_end`, a run whose make-up codes reach exactly that length may lack the
/// terminating code.
fn read_run(bits: &mut Bits<'_>, tables: &Tables, is_white: bool, lenient_end: Option<u32>) -> Result<u32, DecodeError> {
    let lookup = if is_white { &tables.white_runs } else { &tables.black_runs };
    let mut total = 0u32;
    // A row of at most 65535 columns needs at most 26 make-up codes of 2560.
    for _ in 0..32 {
        if total > 0 && lenient_end == Some(total) {
            let mut ahead = *bits;
            if ahead.run_code(lookup) != Some(0) {
                return Ok(total);
            }
        }
        let length = bits
            .run_code(lookup)
            .ok_or_else(|| format!("invalid {} run code", if is_white { "white" } else { "black" }))?;
        total += u32::from(length);
        if length < 64 {
            return Ok(total);
        }
    }
    Err("run too long".to_string())
}

/// Returns whether the next bits are the nine zeros an EOL code starts with, where a
/// lenient decoder ends a row early.
fn eol_ahead(bits: &Bits<'_>) -> bool {
    !bits.at_end() && bits.peek(9) == 0
}

fn decode_1d(bits: &mut Bits<'_>, current: &mut Vec<u32>, columns: u32, lenient: bool) -> Result<(), DecodeError> {
    let tables = tables();
    let mut position = 0u32;
    let mut is_white = true;
    while position < columns {
        if lenient && eol_ahead(bits) {
            return Ok(());
        }
        position += read_run(bits, tables, is_white, lenient.then(|| columns - position))?;
        if position > columns {
            return Err(format!("runs reach column {position}, past the width of {columns}"));
        }
        current.push(position);
        is_white = !is_white;
    }
    Ok(())
}

/// Finds b1 and b2 of T.4 on a reference row for a moving a0: b1 is the first change
/// right of a0 to the colour opposite the current one, and b2 is the change after it.
/// Either is `columns` when no such change exists. a0 never moves left within a row,
/// so the search resumes where the last one stopped.
struct ReferenceScan<'a> {
    reference: &'a [u32],
    next: usize,
}

impl ReferenceScan<'_> {
    fn b1_b2(&mut self, a0: i64, is_white: bool, columns: u32) -> (u32, u32) {
        while self.reference.get(self.next).is_some_and(|&change| i64::from(change) <= a0) {
            self.next += 1;
        }
        // Changes at even indexes turn black, so they are the ones opposite to white.
        let mut index = self.next;
        if index % 2 != usize::from(!is_white) {
            index += 1;
        }
        let b1 = self.reference.get(index).copied().unwrap_or(columns);
        let b2 = self.reference.get(index + 1).copied().unwrap_or(columns);
        (b1, b2)
    }
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
    let tables = tables();
    let mut scan = ReferenceScan { reference, next: 0 };
    while a0 < columns_i {
        // V0, the commonest code, is a single one bit, and a run of them copies the
        // reference row's changes one by one, so such runs skip the mode lookup.
        let ones = bits.leading_ones();
        if ones > 0 {
            for _ in 0..ones {
                let (b1, _) = scan.b1_b2(a0, is_white, columns);
                current.push(b1);
                bits.position += 1;
                a0 = i64::from(b1);
                is_white = !is_white;
                if a0 >= columns_i {
                    break;
                }
            }
            continue;
        }
        if lenient && eol_ahead(bits) {
            return Ok(());
        }
        let step = bits.mode_code(tables)?;
        let (b1, b2) = scan.b1_b2(a0, is_white, columns);
        match step {
            Step::Pass => {
                if i64::from(b2) <= a0 {
                    return Err("pass mode does not advance".to_string());
                }
                a0 = i64::from(b2);
            }
            Step::Horizontal => {
                let start = a0.max(0);
                let remaining = |from: i64| lenient.then(|| (columns_i - from).max(0) as u32);
                let a1 = start + i64::from(read_run(bits, tables, is_white, remaining(start))?);
                let a2 = a1 + i64::from(read_run(bits, tables, !is_white, remaining(a1))?);
                if a2 > columns_i {
                    return Err(format!("horizontal runs reach column {a2}, past the width of {columns}"));
                }
                current.push(a1 as u32);
                current.push(a2 as u32);
                a0 = a2;
            }
            Step::Vertical(delta) => {
                let a1 = i64::from(b1) + i64::from(delta);
                if a1 < a0.max(0) || a1 > columns_i {
                    return Err(format!("vertical mode puts a change at column {a1}"));
                }
                current.push(a1 as u32);
                a0 = a1;
                is_white = !is_white;
            }
            Step::Extension => return Err("uncompressed mode is not supported".to_string()),
        }
    }
    Ok(())
}

/// Removes zero-length runs (two changes at one column) and changes at the right edge,
/// so the row can serve as the reference of the next.
fn normalize(row: &mut Vec<u32>, columns: u32) {
    let mut kept = 0;
    for index in 0..row.len() {
        let change = row[index];
        if kept > 0 && row[kept - 1] == change {
            kept -= 1;
        } else {
            row[kept] = change;
            kept += 1;
        }
    }
    row.truncate(kept);
    while row.last().is_some_and(|&change| change >= columns) {
        row.pop();
    }
}

/// Fills a packed 1-bit row, most significant bit first, with 1 for white and 0 for
/// black (DeviceGray), from its changing elements.
pub(crate) fn fill_row(changes: &[u32], columns: u32, row: &mut [u8]) {
    row.fill(0xFF);
    for black in changes.chunks(2) {
        let from = black[0];
        let to = black.get(1).copied().unwrap_or(columns);
        clear_bits(row, from, to);
    }
}

/// Clears the bits of columns `from` to `to` (exclusive), whole bytes at a time where
/// it can.
fn clear_bits(row: &mut [u8], from: u32, to: u32) {
    let (from, to) = (from as usize, (to as usize).min(row.len() * 8));
    if from >= to {
        return;
    }
    let (first, last) = (from / 8, (to - 1) / 8);
    let head = 0xFFu8 >> (from % 8);
    let tail = 0xFFu8 << (7 - (to - 1) % 8);
    if first == last {
        row[first] &= !(head & tail);
        return;
    }
    row[first] &= !head;
    row[first + 1..last].fill(0);
    row[last] &= !tail;
}

/// Replaces `changes` with the changing elements of a packed row as [`fill_row`] writes
/// it. The row is read 64 bits at a time, because most of a fax row is white.
pub(crate) fn row_changes(row: &[u8], columns: u32, changes: &mut Vec<u32>) {
    changes.clear();
    let mut white = true;
    for (index, chunk) in row.chunks(8).enumerate() {
        // Bytes past the row's end read as white, and a change there is past `columns`.
        let mut bytes = [0xFFu8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        let word = u64::from_be_bytes(bytes);
        // Bits that differ from the current colour; each one found flips the colour.
        let mut differing = if white { !word } else { word };
        while differing != 0 {
            let bit = differing.leading_zeros();
            let column = index as u32 * 64 + bit;
            if column >= columns {
                return;
            }
            changes.push(column);
            white = !white;
            // From this bit on, the pixels are compared with the new colour.
            differing = !differing & (u64::MAX >> bit);
        }
    }
}

/// Writes codes most significant bit first.
struct BitWriter {
    data: Vec<u8>,
    pending: u32,
    pending_bits: u32,
}

impl BitWriter {
    fn put(&mut self, (code, length): (u16, u8)) {
        self.pending = self.pending << length | u32::from(code);
        self.pending_bits += u32::from(length);
        while self.pending_bits >= 8 {
            self.pending_bits -= 8;
            self.data.push((self.pending >> self.pending_bits) as u8);
        }
        self.pending &= (1 << self.pending_bits) - 1;
    }

    fn put_run(&mut self, is_white: bool, mut run: u32) {
        let codes = if is_white { &tables().white_codes } else { &tables().black_codes };
        while run >= 2560 {
            self.put(codes[103]);
            run -= 2560;
        }
        if run >= 64 {
            self.put(codes[63 + (run / 64) as usize]);
            run %= 64;
        }
        self.put(codes[run as usize]);
    }
}

/// Encodes rows, given as changing elements (as [`decode`] returns them: strictly
/// increasing, below `columns`), as Group 4 (T.6) data ending with an EOFB code and
/// padded to a byte.
pub(crate) struct Group4Encoder {
    writer: BitWriter,
    reference: Vec<u32>,
    columns: u32,
}

impl Group4Encoder {
    pub(crate) fn new(columns: u32) -> Self {
        Group4Encoder { writer: BitWriter { data: Vec::new(), pending: 0, pending_bits: 0 }, reference: Vec::new(), columns }
    }

    pub(crate) fn encode_row(&mut self, current: &[u32]) {
        let tables = tables();
        let columns = self.columns;
        let columns_i = i64::from(columns);
        let mut scan = ReferenceScan { reference: &self.reference, next: 0 };
        let mut a0: i64 = -1;
        let mut is_white = true;
        // current[next] is a1, the first change right of a0.
        let mut next = 0usize;
        while a0 < columns_i {
            let a1 = current.get(next).copied().unwrap_or(columns);
            let (b1, b2) = scan.b1_b2(a0, is_white, columns);
            if b2 < a1 {
                self.writer.put(tables.pass_code);
                a0 = i64::from(b2);
                continue;
            }
            let delta = i64::from(a1) - i64::from(b1);
            if delta.abs() <= 3 {
                self.writer.put(tables.vertical_codes[(delta + 3) as usize]);
                a0 = i64::from(a1);
                next += 1;
                is_white = !is_white;
            } else {
                let a2 = current.get(next + 1).copied().unwrap_or(columns);
                self.writer.put(tables.horizontal_code);
                self.writer.put_run(is_white, (i64::from(a1) - a0.max(0)) as u32);
                self.writer.put_run(!is_white, a2 - a1);
                a0 = i64::from(a2);
                next += 2;
            }
        }
        self.reference.clear();
        self.reference.extend_from_slice(current);
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        // EOFB: two EOL codes.
        self.writer.put((1, 12));
        self.writer.put((1, 12));
        if self.writer.pending_bits > 0 {
            let padding = 8 - self.writer.pending_bits as u8;
            self.writer.put((0, padding));
        }
        self.writer.data
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
            true
        })?;
        Ok(rows)
    }

    fn params(k: i32, byte_align: bool, end_of_line: bool, columns: u32, rows: u32) -> Params {
        Params { k, byte_align, end_of_line, columns, rows, lenient: false }
    }

    /// Packs a string of `0` and `1` (other characters ignored) into bytes, most
    /// significant bit first, padded with zeros.
    fn packed(bits: &str) -> Vec<u8> {
        let bits: Vec<bool> = bits.chars().filter(|c| matches!(c, '0' | '1')).map(|c| c == '1').collect();
        bits.chunks(8)
            .map(|chunk| chunk.iter().enumerate().fold(0u8, |byte, (i, &bit)| byte | (u8::from(bit) << (7 - i))))
            .collect()
    }

    const EOL: &str = "000000000001";

    /// Rows of changing elements from a seed: runs of 1 to 40 pixels, some rows copied
    /// or shifted from the row above so that every 2-D mode occurs.
    fn sample_rows(columns: u32, rows: usize, seed: u64) -> Vec<Vec<u32>> {
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut all: Vec<Vec<u32>> = Vec::new();
        for row in 0..rows {
            let choice = next() % 4;
            let changes: Vec<u32> = match (choice, all.last()) {
                (0, Some(above)) => above.clone(),
                (1, Some(above)) => {
                    let mut shifted: Vec<u32> = above.iter().map(|&change| (change + (row as u32 % 3)).min(columns)).collect();
                    normalize(&mut shifted, columns);
                    shifted
                }
                (2, _) if row % 5 == 0 => Vec::new(),
                _ => {
                    let mut changes = Vec::new();
                    let mut column = (next() % 3) as u32;
                    while column < columns {
                        changes.push(column);
                        column += 1 + (next() % 40) as u32;
                    }
                    normalize(&mut changes, columns);
                    changes
                }
            };
            all.push(changes);
        }
        all
    }

    fn encode_g4(rows: &[Vec<u32>], columns: u32) -> Vec<u8> {
        let mut encoder = Group4Encoder::new(columns);
        rows.iter().for_each(|row| encoder.encode_row(row));
        encoder.finish()
    }

    fn decode_all(data: &[u8], params: Params) -> Result<Vec<Vec<u32>>, DecodeError> {
        let mut rows = Vec::new();
        decode(data, params, |changes| {
            rows.push(changes.to_vec());
            true
        })?;
        Ok(rows)
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
    fn group3_one_dimensional_with_eol_and_fill() {
        // Each row: EOL, white 2 (0111), black 3 (10), white 3 (1000). The second EOL
        // has fill zeros before it, which are allowed.
        let data = packed(&format!("{EOL} 0111 10 1000 0000000 {EOL} 0111 10 1000"));
        let rows = draw(&data, params(0, false, true, 8, 2)).unwrap();
        assert_eq!(rows, vec!["..###...", "..###..."]);
        // Without EndOfLine, xpdf-derived readers skip an EOL where one is.
        assert_eq!(draw(&data, params(0, false, false, 8, 2)).unwrap(), rows);
    }

    #[test]
    fn group3_eol_after_nonzero_fill_rejected() {
        let data = packed(&format!("{EOL} 0111 10 1000 0001 {EOL} 0111 10 1000"));
        let error = draw(&data, params(0, false, true, 8, 2)).unwrap_err();
        assert!(error.contains("row 1 does not start with an EOL code"), "{error}");
    }

    #[test]
    fn group3_two_dimensional_rows() {
        // Row 1: EOL, tag 1 (1-D), white 2, black 3, white 3. Row 2: EOL, tag 0 (2-D),
        // VR1 (011) moves the first change right, V0 (1) keeps the second, V0 for the
        // right edge.
        let data = packed(&format!("{EOL}1 0111 10 1000 {EOL}0 011 1 1"));
        let rows = draw(&data, params(1, false, true, 8, 2)).unwrap();
        assert_eq!(rows, vec!["..###...", "...##..."]);
        // K = 0 reads the tag bit as part of a run code.
        assert!(draw(&data, params(0, false, true, 8, 2)).is_err());
    }

    #[test]
    fn two_dimensional_vertical_copies_reference() {
        // From the all-white reference above the first row, V0 puts a1 at b1, the right
        // edge, which ends the row white.
        let data = [0b1000_0000];
        assert_eq!(draw(&data, params(-1, false, false, 8, 1)).unwrap(), vec!["........"]);
    }

    #[test]
    fn group4_pass_and_horizontal_modes() {
        // Row 1: horizontal (001), white 2 (0111), black 3 (10), then V0 (1) for the
        // right edge. Row 2: pass (0001) moves a0 under the end of the black run above,
        // then horizontal white 1 (000111) and black 2 (11) from there.
        let data = packed("001 0111 10 1 0001 001 000111 11");
        let rows = draw(&data, params(-1, false, false, 8, 2)).unwrap();
        assert_eq!(rows, vec!["..###...", "......##"]);
        // White 3 (1000) from column 5 and then black 1 (010) pass the right edge.
        let data = packed("001 0111 10 1 0001 001 1000 010");
        let error = draw(&data, params(-1, false, false, 8, 2)).unwrap_err();
        assert!(error.contains("past the width"), "{error}");
    }

    #[test]
    fn damaged_data_rejected() {
        let cases: [(&str, Params, &str); 5] = [
            // A black run of 3 (10) where 8 columns leave room for 6 after white 2.
            ("0111 10 0111 10", params(0, false, false, 4, 1), "past the width"),
            // No white code starts with eight zeros and a one.
            ("0000 0000 1111", params(0, false, false, 8, 1), "invalid white run code"),
            // Group 4 with the uncompressed-mode extension code.
            ("0000001 111", params(-1, false, false, 8, 1), "uncompressed mode"),
            // An EOL where a mode code should be.
            ("0000 0000 0001 1", params(-1, false, false, 8, 1), "EOL code inside a row"),
            // Mixed coding whose data ends right after the EOL, which fill bits align
            // to the end of a byte.
            ("0000 0000 0000 0001", params(1, false, true, 8, 1), "data ends before row 0"),
        ];
        for (bits, params, expected) in cases {
            let error = draw(&packed(bits), params).unwrap_err();
            assert!(error.contains(expected), "{bits}: {error}");
        }
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

    #[test]
    fn decoding_stops_when_callback_returns_false() {
        let data = [0b1001_1000, 0b1001_1000];
        let mut seen = 0;
        let result = decode(&data, params(0, true, false, 8, 2), |_| {
            seen += 1;
            false
        });
        assert!(result.is_err());
        assert_eq!(seen, 1);
    }

    #[test]
    fn group4_encoding_round_trips() {
        for (columns, rows, seed) in [(1, 5, 1), (7, 20, 2), (64, 30, 3), (1728, 200, 4), (2600, 40, 5), (9000, 10, 6)] {
            let original = sample_rows(columns, rows, seed);
            let data = encode_g4(&original, columns);
            let decoded = decode_all(&data, params(-1, false, false, columns, rows as u32)).unwrap();
            assert_eq!(decoded, original, "{columns} columns");
        }
    }

    #[test]
    fn group4_encoding_matches_fax_crate_decoder() {
        // The fax crate's own decoder, written apart from this one, reads the same pixels.
        let columns = 1728;
        let original = sample_rows(columns, 100, 7);
        let data = encode_g4(&original, columns);
        let mut decoded = Vec::new();
        let done = fax::decoder::decode_g4(data.iter().copied(), columns as u16, Some(100), |changes| {
            let pixels: Vec<bool> =
                fax::decoder::pels(changes, columns as u16).map(|color| color == fax::Color::Black).collect();
            decoded.push(pixels);
        });
        assert!(done.is_some());
        assert_eq!(decoded.len(), 100);
        for (row, (pixels, changes)) in decoded.iter().zip(&original).enumerate() {
            let mut packed = vec![0u8; columns.div_ceil(8) as usize];
            fill_row(changes, columns, &mut packed);
            let expected: Vec<bool> = (0..columns).map(|c| packed[(c / 8) as usize] & (0x80 >> (c % 8)) == 0).collect();
            assert_eq!(pixels, &expected, "row {row}");
        }
    }

    #[test]
    fn group4_encoding_of_edge_rows() {
        // All black, black only at either edge, all white, and runs longer than the
        // largest make-up code (2560).
        let cases: [(u32, Vec<Vec<u32>>); 2] = [
            (100, vec![vec![0], vec![99], vec![], vec![0, 1], vec![0], vec![98, 99], vec![], vec![50]]),
            (9000, vec![vec![], vec![0], vec![100, 8000], vec![2600, 2601], vec![5200], vec![8999], vec![]]),
        ];
        for (columns, rows) in cases {
            let data = encode_g4(&rows, columns);
            let decoded = decode_all(&data, params(-1, false, false, columns, rows.len() as u32)).unwrap();
            assert_eq!(decoded, rows, "{columns} columns");
        }
    }

    #[test]
    fn packed_rows_round_trip_through_changes() {
        for (columns, seed) in [(1, 1), (8, 2), (13, 3), (1728, 4), (1731, 5)] {
            for changes in sample_rows(columns, 20, seed) {
                let mut packed = vec![0u8; columns.div_ceil(8) as usize];
                fill_row(&changes, columns, &mut packed);
                let mut found = Vec::new();
                row_changes(&packed, columns, &mut found);
                assert_eq!(found, changes, "{columns} columns");
            }
        }
    }
}
