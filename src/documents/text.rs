//! Rendering plain text as PDF pages: text attachments (`.txt`, `.csv`, `text/plain`)
//! and, with `documents.body = "cover"`, the message body as a cover page.
//!
//! The text is set in DejaVu Sans Mono, bundled under `assets/fonts/` and embedded as a
//! subset (a Type0 font over a CIDFontType2 with Identity-H encoding and a ToUnicode
//! map, so `pdftotext` and screen readers get the text back). Lines wrap at the right
//! margin, after a space where one is near. Tabs expand to 8 columns, a form feed starts
//! a new page, and other control characters are removed. A character the font lacks is
//! drawn as U+FFFD (or `?`) and is no error.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;
use lopdf::{Dictionary, Document, Object, ObjectId, Stream, dictionary};
use unicode_normalization::UnicodeNormalization;

use super::kind::{Kind, Refusal};
use super::mime::{Attachment, Item};
use super::pdf::PdfPages;
use super::{BODY_NAME, Limits};

/// DejaVu Sans Mono 2.37 from Debian's `fonts-dejavu-core`, under the Bitstream Vera
/// license in `assets/fonts/LICENSE-DejaVu.txt`.
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");

/// PostScript name of the embedded font, after the 6-letter subset tag.
const FONT_NAME: &str = "DejaVuSansMono";

/// Font size in points. At 10 pt a line fits 83 characters on Letter and 81 on A4
/// within the margins, about as many as a typewritten page.
const FONT_SIZE: f32 = 10.0;

/// Distance between baselines in points.
const LINE_HEIGHT: f32 = 12.0;

/// Page margin on every side in points (0.75 inch), inside the unprintable border that
/// fax machines leave.
const MARGIN: f32 = 54.0;

/// Columns between tab stops.
const TAB_WIDTH: usize = 8;

/// Renders text bytes (see [`decode`] for the charsets) into pages ready to merge.
pub(crate) fn render(data: &[u8], limits: &Limits, page_budget: u32) -> Result<PdfPages, Refusal> {
    let text = decode(data);
    render_text(&text, limits, page_budget)
}

/// Puts the message's text body (or its HTML body as text) first among `items` as a
/// cover page, for `documents.body = "cover"`. The cover comes only with a document: a
/// message without one still has nothing to fax. Uuencoded files in the body are left
/// out of the cover, as they are faxed as documents of their own.
pub(crate) fn add_cover<'m>(message: &mail_parser::Message<'_>, items: &mut Vec<Item<'m>>) {
    if !items.iter().any(|item| matches!(item, Item::Document(_))) {
        return;
    }
    let Some(body) = message.body_text(0) else {
        return;
    };
    let body = without_uuencoded_files(&body);
    if is_blank(body.as_bytes()) {
        return;
    }
    items.retain(|item| !matches!(item, Item::Skipped(report) if report.is_body()));
    items.insert(
        0,
        Item::Document(Attachment {
            name: BODY_NAME.to_string(),
            data: std::borrow::Cow::Owned(body.into_bytes()),
            kind: Kind::Text,
            damaged_encoding: false,
        }),
    );
}

/// Removes the lines from `begin <mode> <name>` through `end` of uuencoded files.
fn without_uuencoded_files(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if !inside && is_uuencode_begin(trimmed) {
            inside = true;
            continue;
        }
        if inside {
            if trimmed == "end" {
                inside = false;
            }
            continue;
        }
        kept.push_str(line);
    }
    kept
}

fn is_uuencode_begin(line: &str) -> bool {
    let mut words = line.splitn(3, ' ');
    words.next() == Some("begin")
        && words.next().is_some_and(|mode| (3..=4).contains(&mode.len()) && mode.bytes().all(|b| (b'0'..=b'7').contains(&b)))
        && words.next().is_some_and(|name| !name.trim().is_empty())
}

/// Returns whether the text has no visible character, such as the whitespace-only
/// footers some mail servers add as `ATT00001.txt`. Such a part is not faxed.
pub(crate) fn is_blank(data: &[u8]) -> bool {
    decode(data).chars().all(|c| c.is_whitespace() || c.is_control() || c == '\u{FEFF}')
}

/// Renders decoded text; `render` after charset decoding.
pub(crate) fn render_text(text: &str, limits: &Limits, page_budget: u32) -> Result<PdfPages, Refusal> {
    let face = ttf_parser::Face::parse(FONT, 0)
        .map_err(|error| Refusal::Rejected(format!("the bundled font cannot be read: {error}")))?;
    let (page_width, page_height) = limits.paper.size_points();
    let advance = f32::from(face.glyph_hor_advance(ttf_parser::GlyphId(0)).unwrap_or(1233));
    let char_width = advance * FONT_SIZE / f32::from(face.units_per_em());
    let columns = (((page_width - 2.0 * MARGIN) / char_width).floor() as usize).max(1);
    let lines_per_page = (((page_height - 2.0 * MARGIN) / LINE_HEIGHT).floor() as usize).max(1);

    let pages = layout(text, columns, lines_per_page, page_budget)?;
    build(&face, &pages, page_width, page_height)
}

/// Decodes text bytes: UTF-8 (with or without a byte order mark), UTF-16 with a byte
/// order mark, and otherwise Windows-1252, the usual charset of unlabeled text from
/// Windows mail clients.
fn decode(data: &[u8]) -> String {
    if let Some(rest) = data.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8_lossy(rest).into_owned();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        return text.to_string();
    }
    if let Some(rest) = data.strip_prefix(b"\xFF\xFE") {
        let units: Vec<u16> = rest.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]])).collect();
        return String::from_utf16_lossy(&units);
    }
    if let Some(rest) = data.strip_prefix(b"\xFE\xFF") {
        let units: Vec<u16> = rest.chunks_exact(2).map(|pair| u16::from_be_bytes([pair[0], pair[1]])).collect();
        return String::from_utf16_lossy(&units);
    }
    data.iter().map(|&byte| windows_1252(byte)).collect()
}

/// Maps one Windows-1252 byte to its character; the five unassigned bytes become U+FFFD.
pub(crate) fn windows_1252(byte: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{FFFD}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{FFFD}', 'Ž', '\u{FFFD}',
        '\u{FFFD}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{FFFD}', 'ž', 'Ÿ',
    ];
    match byte {
        0x80..=0x9F => HIGH[usize::from(byte - 0x80)],
        _ => char::from(byte),
    }
}

/// Splits the text into pages of at most `lines_per_page` lines of at most `columns`
/// characters each. Fails when it needs more than `page_budget` pages.
fn layout(text: &str, columns: usize, lines_per_page: usize, page_budget: u32) -> Result<Vec<Vec<String>>, Refusal> {
    let mut pages: Vec<Vec<String>> = vec![Vec::new()];
    let normalized: String = text.nfc().collect();
    let normalized = normalized.replace("\r\n", "\n").replace('\r', "\n");

    for (index, section) in normalized.split('\u{0C}').enumerate() {
        if index > 0 && !pages.last().is_some_and(Vec::is_empty) {
            pages.push(Vec::new());
        }
        for line in section.split('\n') {
            for wrapped in wrap(&clean_line(line), columns) {
                if pages.last().is_some_and(|page| page.len() >= lines_per_page) {
                    pages.push(Vec::new());
                }
                if pages.len() as u64 > u64::from(page_budget) {
                    return Err(Refusal::TooManyPages { pages: pages.len() as u32 });
                }
                if let Some(page) = pages.last_mut() {
                    page.push(wrapped);
                }
            }
        }
    }

    // A text that ends with a newline or form feed leaves blank lines or an empty page
    // at the end, which are not faxed.
    while let Some(page) = pages.last_mut() {
        while page.last().is_some_and(|line| line.trim().is_empty()) {
            page.pop();
        }
        if page.is_empty() && pages.len() > 1 {
            pages.pop();
        } else {
            break;
        }
    }
    Ok(pages)
}

/// Expands tabs and removes control characters (and the byte order mark) from one line.
fn clean_line(line: &str) -> Vec<char> {
    let mut chars = Vec::with_capacity(line.len());
    for c in line.chars() {
        if c == '\t' {
            let spaces = TAB_WIDTH - chars.len() % TAB_WIDTH;
            chars.extend(std::iter::repeat_n(' ', spaces));
        } else if !c.is_control() && c != '\u{FEFF}' {
            chars.push(c);
        }
    }
    while chars.last() == Some(&' ') {
        chars.pop();
    }
    chars
}

/// Wraps one line at `columns` characters, breaking after the last space when one lies
/// in the second half of the line, else in the middle of the word.
fn wrap(chars: &[char], columns: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut rest = chars;
    while rest.len() > columns {
        let window = &rest[..=columns];
        let cut = match window.iter().rposition(|&c| c == ' ') {
            Some(space) if space >= columns / 2 => space,
            _ => columns,
        };
        lines.push(rest[..cut].iter().collect::<String>().trim_end().to_string());
        rest = &rest[cut..];
        while rest.first() == Some(&' ') {
            rest = &rest[1..];
        }
    }
    lines.push(rest.iter().collect());
    lines
}

/// Builds the PDF objects: the subset font once, then one page per entry of `pages`.
fn build(face: &ttf_parser::Face<'_>, pages: &[Vec<String>], width: f32, height: f32) -> Result<PdfPages, Refusal> {
    let replacement = face.glyph_index('\u{FFFD}').or_else(|| face.glyph_index('?')).unwrap_or(ttf_parser::GlyphId(0));

    // Glyph IDs of the subset are assigned in order of first use; 0 stays .notdef.
    let mut remapper = subsetter::GlyphRemapper::new();
    let mut to_unicode: BTreeMap<u16, char> = BTreeMap::new();
    let mut encoded_pages = Vec::with_capacity(pages.len());
    for page in pages {
        let mut encoded_lines = Vec::with_capacity(page.len());
        for line in page {
            let mut hex = String::with_capacity(line.len() * 4);
            for c in line.chars() {
                let (glyph, shown) = match face.glyph_index(c) {
                    Some(glyph) if glyph.0 != 0 => (glyph, c),
                    _ => (replacement, '\u{FFFD}'),
                };
                let new_id = remapper.remap(glyph.0);
                to_unicode.entry(new_id).or_insert(shown);
                hex.push_str(&format!("{new_id:04X}"));
            }
            encoded_lines.push(hex);
        }
        encoded_pages.push(encoded_lines);
    }

    let subset = subsetter::subset(FONT, 0, &remapper)
        .map_err(|error| Refusal::Rejected(format!("subsetting the bundled font failed: {error}")))?;
    let mut document = Document::with_version("1.4");
    let font_id = add_font(&mut document, face, &remapper, &to_unicode, &subset);

    let mut page_ids = Vec::with_capacity(encoded_pages.len());
    for lines in &encoded_pages {
        let content = page_content(lines, height);
        let content_id = document.add_object(Stream::new(Dictionary::new(), content));
        let page = dictionary! {
            "Type" => "Page",
            "MediaBox" => vec![0.into(), 0.into(), Object::Real(width), Object::Real(height)],
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
            "Contents" => content_id,
        };
        page_ids.push(document.add_object(page));
    }
    Ok(PdfPages { document, pages: page_ids })
}

/// Returns the content stream that shows `lines` (hex glyph IDs) from the top margin.
fn page_content(lines: &[String], height: f32) -> Vec<u8> {
    let mut content = format!("BT\n/F1 {FONT_SIZE} Tf\n{LINE_HEIGHT} TL\n{MARGIN} {} Td\n", height - MARGIN - FONT_SIZE);
    for line in lines {
        content.push_str(&format!("<{line}> Tj T*\n"));
    }
    content.push_str("ET\n");
    content.into_bytes()
}

/// Adds the Type0 font with its descendant CIDFont, descriptor, font file and ToUnicode
/// map; returns the Type0 font's object ID.
fn add_font(
    document: &mut Document,
    face: &ttf_parser::Face<'_>,
    remapper: &subsetter::GlyphRemapper,
    to_unicode: &BTreeMap<u16, char>,
    subset: &[u8],
) -> ObjectId {
    let scale = 1000.0 / f32::from(face.units_per_em());
    let scaled = |value: i16| Object::Integer((f32::from(value) * scale).round() as i64);
    let bbox = face.global_bounding_box();
    let tag = subset_tag(subset);
    let base_font = format!("{tag}+{FONT_NAME}");

    let mut file = Stream::new(dictionary! { "Length1" => subset.len() as i64 }, compress(subset));
    file.dict.set("Filter", "FlateDecode");
    let file_id = document.add_object(file);

    let descriptor_id = document.add_object(dictionary! {
        "Type" => "FontDescriptor",
        "FontName" => Object::Name(base_font.clone().into_bytes()),
        // Fixed pitch (1) and nonsymbolic (32).
        "Flags" => 33,
        "FontBBox" => vec![scaled(bbox.x_min), scaled(bbox.y_min), scaled(bbox.x_max), scaled(bbox.y_max)],
        "ItalicAngle" => 0,
        "Ascent" => scaled(face.ascender()),
        "Descent" => scaled(face.descender()),
        "CapHeight" => scaled(face.capital_height().unwrap_or(face.ascender())),
        "StemV" => 80,
        "FontFile2" => file_id,
    });

    // Widths per new glyph ID, as `W` lists them: `first [w1 w2 ...]`.
    let widths: Vec<Object> = remapper
        .remapped_gids()
        .map(|old| {
            let advance = face.glyph_hor_advance(ttf_parser::GlyphId(old)).unwrap_or(0);
            Object::Integer((f32::from(advance) * scale).round() as i64)
        })
        .collect();
    let cid_font_id = document.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "CIDFontType2",
        "BaseFont" => Object::Name(base_font.clone().into_bytes()),
        "CIDSystemInfo" => dictionary! {
            "Registry" => Object::string_literal("Adobe"),
            "Ordering" => Object::string_literal("Identity"),
            "Supplement" => 0,
        },
        "FontDescriptor" => descriptor_id,
        "W" => vec![0.into(), Object::Array(widths)],
        "CIDToGIDMap" => "Identity",
    });

    let to_unicode_id = document.add_object(Stream::new(Dictionary::new(), to_unicode_cmap(to_unicode)));
    document.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type0",
        "BaseFont" => Object::Name(base_font.into_bytes()),
        "Encoding" => "Identity-H",
        "DescendantFonts" => vec![cid_font_id.into()],
        "ToUnicode" => to_unicode_id,
    })
}

/// Derives the six upper-case letters that mark a subset font's name from its content,
/// so different subsets get different names.
fn subset_tag(subset: &[u8]) -> String {
    let mut hash: u32 = 2_166_136_261;
    for &byte in subset {
        hash = (hash ^ u32::from(byte)).wrapping_mul(16_777_619);
    }
    (0..6)
        .map(|_| {
            let letter = char::from(b'A' + (hash % 26) as u8);
            hash /= 26;
            letter
        })
        .collect()
}

/// Returns a ToUnicode CMap from two-byte glyph IDs to the characters they show.
fn to_unicode_cmap(map: &BTreeMap<u16, char>) -> Vec<u8> {
    let mut cmap = String::from(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
    );
    let entries: Vec<(&u16, &char)> = map.iter().collect();
    // A bfchar block holds at most 100 entries.
    for chunk in entries.chunks(100) {
        cmap.push_str(&format!("{} beginbfchar\n", chunk.len()));
        for (glyph, character) in chunk {
            let mut units = [0u16; 2];
            let hex: String = character.encode_utf16(&mut units).iter().map(|unit| format!("{unit:04X}")).collect();
            cmap.push_str(&format!("<{glyph:04X}> <{hex}>\n"));
        }
        cmap.push_str("endbfchar\n");
    }
    cmap.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
    cmap.into_bytes()
}

fn compress(data: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(data.len() / 2), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_prefers_spaces() {
        let line: Vec<char> = "aaaa bbbb cccc".chars().collect();
        assert_eq!(wrap(&line, 10), vec!["aaaa bbbb", "cccc"]);
        let word: Vec<char> = "abcdefghijkl".chars().collect();
        assert_eq!(wrap(&word, 5), vec!["abcde", "fghij", "kl"]);
    }

    #[test]
    fn tabs_expand_and_controls_vanish() {
        let cleaned: String = clean_line("a\tb\u{7}c\u{1B}[0m").into_iter().collect();
        assert_eq!(cleaned, "a       bc[0m");
    }

    #[test]
    fn layout_paginates_and_honours_form_feed() {
        let text = (1..=25).map(|n| n.to_string()).collect::<Vec<_>>().join("\n");
        let pages = layout(&text, 80, 10, 100).unwrap();
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[2].len(), 5);

        let pages = layout("one\u{0C}two\n\n\u{0C}", 80, 10, 100).unwrap();
        assert_eq!(pages, vec![vec!["one".to_string()], vec!["two".to_string()]]);
    }

    #[test]
    fn layout_stops_at_page_budget() {
        let text = "x\n".repeat(1000);
        match layout(&text, 80, 10, 5) {
            Err(Refusal::TooManyPages { pages }) => assert_eq!(pages, 6),
            other => panic!("expected TooManyPages, got {:?}", other.map(|pages| pages.len())),
        }
    }

    #[test]
    fn decode_charsets() {
        assert_eq!(decode("Grüße".as_bytes()), "Grüße");
        assert_eq!(decode(b"Gr\xFC\xDFe \x80"), "Grüße €");
        assert_eq!(decode(b"\xFF\xFEh\0i\0"), "hi");
    }

    #[test]
    fn uuencoded_files_left_out_of_cover() {
        let body = "Hello,\nbegin 644 a.pdf\n#86)C\n`\nend\nRegards\n";
        assert_eq!(without_uuencoded_files(body), "Hello,\nRegards\n");
    }

    #[test]
    fn blank_text_detected() {
        assert!(is_blank(b" \r\n\t\r\n"));
        assert!(!is_blank(b"\r\n x"));
    }

    #[test]
    fn render_handles_missing_glyphs() {
        let pages = render_text("中文 ✓ 🙂 Привет", &Limits::default(), 10).unwrap();
        assert_eq!(pages.pages.len(), 1);
    }

    #[test]
    fn empty_text_gives_one_page() {
        let pages = render_text("", &Limits::default(), 10).unwrap();
        assert_eq!(pages.pages.len(), 1);
    }
}
