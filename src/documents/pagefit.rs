//! Fitting PDF pages to the fax paper (`documents.paper`).
//!
//! Every page of a PDF attachment, and of the PDF that LibreOffice makes of an Office
//! file, is rewritten so that its MediaBox is the portrait paper `[0 0 W H]` and its
//! `/Rotate` is 0. The area a viewer shows (the CropBox clipped to the MediaBox) is
//! turned as its `/Rotate` asks. When it is then wider than tall, it is turned a further
//! quarter turn counter-clockwise, so the top of a landscape page ends up on the left
//! edge of the paper. Last, it is scaled up or down to the largest size that fits the
//! paper with its aspect ratio kept, and centred. Nothing is cropped.
//!
//! The content itself is not rewritten. A new content stream `q <matrix> cm`, with a
//! clip to the visible area, goes before the page's streams and one with `Q` after
//! them. Patterns, whose matrices are relative to the page rather than to the content,
//! get the same transformation. Annotations that remain after form flattening are drawn
//! into the content first (see [`fit_page`] for why).
//!
//! A page that is already the portrait paper to within [`SIZE_TOLERANCE`], with
//! rotation 0 and no smaller CropBox, is left exactly as it is.
//!
//! Only the PDF path calls this. Image pages are built portrait with the same turn by
//! [`super::image`], text pages are set on the paper, and TIFF pages keep the physical
//! size their resolutions give.

use lopdf::{Dictionary, Document, Object, ObjectId, Stream};
use tracing::{debug, warn};

use super::flatten;
use crate::config::Paper;

/// An affine transformation `[a b c d e f]` as PDF writes it: a point (x, y) maps to
/// (a x + c y + e, b x + d y + f).
pub(crate) type Matrix = [f64; 6];

/// A rectangle `[left bottom right top]` in points, with left < right and bottom < top.
type Rect = [f64; 4];

/// Difference in points up to which a page counts as already the paper size. Producers
/// write A4 as 595 x 842 as well as 595.28 x 841.89, and such a page needs no change.
const SIZE_TOLERANCE: f64 = 1.0;

/// MediaBox assumed for a page whose own is unusable (not four numbers, or empty): US
/// Letter, the default that the PDF loader gives a page without a MediaBox.
const FALLBACK_MEDIA_BOX: Rect = [0.0, 0.0, 612.0, 792.0];

/// Smallest side in points of a usable page box. A thinner box shows nothing, and one
/// of zero width or height would make the scale that fits it infinite.
const MIN_BOX_SIDE: f64 = 0.01;

/// Maximum number of `Q` operators without a matching `q` that the wrapping absorbs.
/// Each needs one extra `q` before the content. A page with more is still fitted, but
/// the content after the excess `Q` operators is drawn untransformed.
const MAX_UNMATCHED_RESTORES: usize = 64;

/// Fits every page of `pages` to `paper`. `max_stream_bytes` bounds the decoding of a
/// content stream when counting its `q` and `Q` operators.
pub(crate) fn fit_pages(document: &mut Document, pages: &[ObjectId], paper: Paper, max_stream_bytes: usize) {
    let fitted = pages.iter().filter(|&&page_id| fit_page(document, page_id, paper, max_stream_bytes)).count();
    if fitted > 0 {
        debug!(fitted, pages = pages.len(), ?paper, "PDF pages fitted to the paper");
    }
}

/// Fits one page to `paper` in place and returns whether it changed.
///
/// Annotations left after form flattening (comments, stamps, links) have their `/Rect`
/// in the old coordinates. The printable ones are drawn into the content before it is
/// wrapped, and `/Annots` is removed. That is simpler than moving each `/Rect` and
/// keeping its appearance matrix consistent with a quarter turn, and it matches a
/// print, where only annotations with the Print flag appear. Links are dropped, as they
/// do nothing on paper.
pub(crate) fn fit_page(document: &mut Document, page_id: ObjectId, paper: Paper, max_stream_bytes: usize) -> bool {
    let Ok(page) = document.get_dictionary(page_id) else {
        return false;
    };
    let media_box = page_box(document, page, b"MediaBox").unwrap_or_else(|| {
        warn!(?page_id, "PDF page has an unusable MediaBox; fitting it as US Letter");
        FALLBACK_MEDIA_BOX
    });
    let visible = page_box(document, page, b"CropBox")
        .and_then(|crop_box| intersection(crop_box, media_box))
        .unwrap_or(media_box);
    let rotation = effective_rotation(document, page);
    let has_user_unit = page
        .get_deref(b"UserUnit", document)
        .and_then(Object::as_float)
        .is_ok_and(|unit| (unit - 1.0).abs() > f32::EPSILON);
    let (paper_width, paper_height) = paper_size(paper);
    let paper_box = [0.0, 0.0, paper_width, paper_height];
    if rotation == 0 && !has_user_unit && near(media_box, paper_box) && near(visible, paper_box) {
        return false;
    }

    let matrix = fit_matrix(visible, rotation, (paper_width, paper_height));
    flatten::flatten_annotations(document, page_id);
    let unmatched = unmatched_restores(document, page_id, max_stream_bytes);
    if unmatched.excess > MAX_UNMATCHED_RESTORES {
        warn!(
            ?page_id,
            unmatched = unmatched.excess,
            "PDF page content has more unmatched Q operators than can be absorbed; part of it may be drawn unfitted"
        );
    }
    wrap_contents(document, page_id, matrix, visible, unmatched);
    transform_patterns(document, page_id, matrix);

    let Ok(page) = document.get_dictionary_mut(page_id) else {
        return false;
    };
    page.set("MediaBox", vec![0.into(), 0.into(), Object::Real(paper_width as f32), Object::Real(paper_height as f32)]);
    page.set("Rotate", 0);
    for key in [b"CropBox".as_slice(), b"BleedBox", b"TrimBox", b"ArtBox", b"UserUnit"] {
        page.remove(key);
    }
    debug!(?page_id, ?visible, rotation, "PDF page fitted to the paper");
    true
}

/// Returns the paper's portrait width and height in points.
pub(crate) fn paper_size(paper: Paper) -> (f64, f64) {
    let (width, height) = paper.size_points();
    (f64::from(width), f64::from(height))
}

/// Returns the matrix that maps the `visible` area of a page shown with `rotation`
/// (0, 90, 180 or 270 degrees clockwise) onto the centre of a portrait `paper` of
/// (width, height) points, turned to portrait and scaled to fit.
pub(crate) fn fit_matrix(visible: Rect, rotation: u16, paper: (f64, f64)) -> Matrix {
    let [left, bottom, right, top] = visible;
    let (width, height) = (right - left, top - bottom);
    let mut matrix = [1.0, 0.0, 0.0, 1.0, -left, -bottom];

    // The page as a viewer shows it: a clockwise turn moves the top edge to the right.
    let (mut shown_width, mut shown_height) = (width, height);
    match rotation {
        90 => {
            matrix = concat(matrix, [0.0, -1.0, 1.0, 0.0, 0.0, width]);
            (shown_width, shown_height) = (height, width);
        }
        180 => matrix = concat(matrix, [-1.0, 0.0, 0.0, -1.0, width, height]),
        270 => {
            matrix = concat(matrix, [0.0, 1.0, -1.0, 0.0, height, 0.0]);
            (shown_width, shown_height) = (height, width);
        }
        _ => {}
    }
    if shown_width > shown_height {
        matrix = concat(matrix, quarter_turn_counterclockwise(shown_height));
        (shown_width, shown_height) = (shown_height, shown_width);
    }

    let (paper_width, paper_height) = paper;
    let scale = (paper_width / shown_width).min(paper_height / shown_height);
    let offset_x = (paper_width - scale * shown_width) / 2.0;
    let offset_y = (paper_height - scale * shown_height) / 2.0;
    concat(matrix, [scale, 0.0, 0.0, scale, offset_x, offset_y])
}

/// Returns the matrix that turns a drawing a quarter turn counter-clockwise about the
/// origin and then moves it right by its `height` in points. A drawing with its lower
/// left corner at the origin keeps it there, and its top edge becomes the left edge.
pub(crate) fn quarter_turn_counterclockwise(height: f64) -> Matrix {
    [0.0, 1.0, -1.0, 0.0, height, 0.0]
}

/// Returns the matrix that applies `first`, then `second`.
pub(crate) fn concat(first: Matrix, second: Matrix) -> Matrix {
    let [a1, b1, c1, d1, e1, f1] = first;
    let [a2, b2, c2, d2, e2, f2] = second;
    [
        a2 * a1 + c2 * b1,
        b2 * a1 + d2 * b1,
        a2 * c1 + c2 * d1,
        b2 * c1 + d2 * d1,
        a2 * e1 + c2 * f1 + e2,
        b2 * e1 + d2 * f1 + f2,
    ]
}

/// Returns the page's rotation in clockwise degrees: 0, 90, 180 or 270. Negative values
/// and values of 360 or more are taken modulo 360. The PDF format allows only multiples
/// of 90, so any other value counts as 0, as its intended turn is unknown.
fn effective_rotation(document: &Document, page: &Dictionary) -> u16 {
    let degrees = match page.get_deref(b"Rotate", document) {
        Ok(Object::Integer(degrees)) => *degrees,
        Ok(Object::Real(degrees)) if degrees.is_finite() && degrees.fract() == 0.0 => *degrees as i64,
        _ => 0,
    };
    if degrees % 90 != 0 {
        debug!(degrees, "PDF page rotation is not a multiple of 90; ignoring it");
        return 0;
    }
    degrees.rem_euclid(360) as u16
}

/// Reads a page box as a normalized rectangle. Corners may come in any order. `None`
/// when the entry is missing, not four numbers, or thinner than [`MIN_BOX_SIDE`].
fn page_box(document: &Document, page: &Dictionary, key: &[u8]) -> Option<Rect> {
    let items = page.get_deref(key, document).and_then(Object::as_array).ok()?;
    let [x1, y1, x2, y2] = <[&Object; 4]>::try_from(items.iter().collect::<Vec<_>>()).ok()?.map(|item| {
        document
            .dereference(item)
            .ok()
            .and_then(|(_, value)| value.as_float().ok())
            .map(f64::from)
            .filter(|value| value.is_finite())
    });
    let rect = [x1?.min(x2?), y1?.min(y2?), x1?.max(x2?), y1?.max(y2?)];
    usable(rect)
}

fn usable(rect: Rect) -> Option<Rect> {
    let [left, bottom, right, top] = rect;
    (right - left >= MIN_BOX_SIDE && top - bottom >= MIN_BOX_SIDE).then_some(rect)
}

/// Returns the overlap of two rectangles, or `None` when it is empty or too thin.
fn intersection(first: Rect, second: Rect) -> Option<Rect> {
    usable([first[0].max(second[0]), first[1].max(second[1]), first[2].min(second[2]), first[3].min(second[3])])
}

fn near(first: Rect, second: Rect) -> bool {
    first.iter().zip(second).all(|(a, b)| (a - b).abs() <= SIZE_TOLERANCE)
}

/// Net effect of the page's content on the graphics state stack.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct StackBalance {
    /// The most `Q` operators that, at some point, have no matching `q` before them.
    excess: usize,
    /// Saved states left open at the end, counted from the deepest excess `Q`.
    open: usize,
}

/// Counts the unmatched `q` and `Q` operators of the page's content streams read in
/// order as one. A stream that cannot be decoded counts as balanced; the loader has
/// already rejected damaged Flate streams, so only filters lopdf lacks get there.
fn unmatched_restores(document: &Document, page_id: ObjectId, max_stream_bytes: usize) -> StackBalance {
    let mut depth: i64 = 0;
    let mut lowest: i64 = 0;
    for id in content_stream_ids(document, page_id) {
        let Ok(Object::Stream(stream)) = document.get_object(id) else {
            continue;
        };
        let decoded;
        let content = if stream.filters().is_ok_and(|filters| !filters.is_empty()) {
            match stream.decompressed_content_with_limit(max_stream_bytes) {
                Ok(content) => {
                    decoded = content;
                    decoded.as_slice()
                }
                Err(_) => continue,
            }
        } else {
            stream.content.as_slice()
        };
        track_stack_depth(content, &mut depth, &mut lowest);
    }
    let excess = usize::try_from(-lowest).unwrap_or(0);
    let open = usize::try_from(depth - lowest).unwrap_or(0);
    StackBalance { excess, open }
}

/// Returns the ids of the page's content streams, in order.
fn content_stream_ids(document: &Document, page_id: ObjectId) -> Vec<ObjectId> {
    let Ok(contents) = document.get_dictionary(page_id).and_then(|page| page.get(b"Contents")) else {
        return Vec::new();
    };
    let items = match contents {
        Object::Reference(id) => match document.get_object(*id) {
            Ok(Object::Array(items)) => items.as_slice(),
            _ => return vec![*id],
        },
        Object::Array(items) => items.as_slice(),
        _ => return Vec::new(),
    };
    items.iter().filter_map(|item| item.as_reference().ok()).collect()
}

/// Follows the `q` and `Q` operators of a content stream: `depth` is the nesting of
/// saved graphics states and `lowest` the least it has been. Strings, comments, names
/// and inline image data are skipped, so an operator-like byte inside them is not
/// counted.
fn track_stack_depth(content: &[u8], depth: &mut i64, lowest: &mut i64) {
    let mut at = 0;
    while at < content.len() {
        let byte = content[at];
        if is_whitespace(byte) {
            at += 1;
            continue;
        }
        match byte {
            b'%' => at = skip_comment(content, at),
            b'(' => at = skip_literal_string(content, at),
            b'<' if content.get(at + 1) == Some(&b'<') => at += 2,
            b'<' => at = find_byte(content, at, b'>').map_or(content.len(), |end| end + 1),
            b'>' | b'[' | b']' | b'{' | b'}' | b')' => at += 1,
            b'/' => at = skip_regular(content, at + 1),
            _ => {
                let end = skip_regular(content, at).max(at + 1);
                match &content[at..end] {
                    b"q" => *depth += 1,
                    b"Q" => {
                        *depth -= 1;
                        *lowest = (*lowest).min(*depth);
                    }
                    b"ID" => {
                        at = skip_inline_image_data(content, end);
                        continue;
                    }
                    _ => {}
                }
                at = end;
            }
        }
    }
}

fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b'\0' | b'\t' | b'\n' | b'\x0C' | b'\r' | b' ')
}

fn is_delimiter(byte: u8) -> bool {
    matches!(byte, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%')
}

fn skip_regular(content: &[u8], from: usize) -> usize {
    content[from..]
        .iter()
        .position(|&byte| is_whitespace(byte) || is_delimiter(byte))
        .map_or(content.len(), |offset| from + offset)
}

fn skip_comment(content: &[u8], from: usize) -> usize {
    content[from..]
        .iter()
        .position(|&byte| byte == b'\r' || byte == b'\n')
        .map_or(content.len(), |offset| from + offset)
}

fn find_byte(content: &[u8], from: usize, wanted: u8) -> Option<usize> {
    content[from..].iter().position(|&byte| byte == wanted).map(|offset| from + offset)
}

/// Skips a literal string starting at the `(` at `from`: parentheses nest, and a
/// backslash escapes the next byte.
fn skip_literal_string(content: &[u8], from: usize) -> usize {
    let mut nesting = 0usize;
    let mut at = from;
    while at < content.len() {
        match content[at] {
            b'\\' => at += 1,
            b'(' => nesting += 1,
            b')' => {
                nesting = nesting.saturating_sub(1);
                if nesting == 0 {
                    return at + 1;
                }
            }
            _ => {}
        }
        at += 1;
    }
    content.len()
}

/// Skips the data of an inline image after its `ID` operator: up to an `EI` with
/// whitespace on both sides, or to the end of the stream. The data has no length, so an
/// `EI` that occurs by chance inside binary data ends it early.
fn skip_inline_image_data(content: &[u8], from: usize) -> usize {
    let mut at = from + 1;
    while at + 1 < content.len() {
        let ends_data = content[at] == b'E'
            && content[at + 1] == b'I'
            && is_whitespace(content[at - 1])
            && content.get(at + 2).is_none_or(|&byte| is_whitespace(byte));
        if ends_data {
            return at + 2;
        }
        at += 1;
    }
    content.len()
}

/// Encloses the page's content streams between `q <matrix> cm` and `Q`. The content is
/// clipped to the `visible` area, because what lay outside it would otherwise show in
/// the paper's margins. An extra `q` goes before the content for each of its unmatched
/// `Q` operators, so they pop those instead of the transformation. The closing stream
/// restores the states left open, up to [`MAX_UNMATCHED_RESTORES`] of them, so the
/// content of an ordinary page is balanced as a whole.
fn wrap_contents(document: &mut Document, page_id: ObjectId, matrix: Matrix, visible: Rect, balance: StackBalance) {
    let existing = flatten::content_streams(document, page_id);
    let guards = balance.excess.min(MAX_UNMATCHED_RESTORES);
    // Past the cap, the excess `Q` operators also pop the transformation, so only the
    // states opened after the deepest point are left to close.
    let restores = if balance.excess <= MAX_UNMATCHED_RESTORES { 1 + balance.open } else { balance.open };

    let numbers: Vec<String> = matrix.iter().map(|&value| number(value)).collect();
    let [left, bottom, right, top] = visible;
    let clip = [left, bottom, right - left, top - bottom].map(number).join(" ");
    let mut opening = format!("q {} cm {clip} re W n", numbers.join(" "));
    opening.push_str(&" q".repeat(guards));
    opening.push('\n');
    let mut closing = "\n".to_string();
    closing.push_str(&vec!["Q"; restores.clamp(1, MAX_UNMATCHED_RESTORES + 1)].join(" "));
    closing.push('\n');

    let opening = document.add_object(Stream::new(Dictionary::new(), opening.into_bytes()));
    let closing = document.add_object(Stream::new(Dictionary::new(), closing.into_bytes()));
    let mut contents = Vec::with_capacity(existing.len() + 2);
    contents.push(Object::Reference(opening));
    contents.extend(existing);
    contents.push(Object::Reference(closing));
    if let Ok(page) = document.get_dictionary_mut(page_id) {
        page.set("Contents", contents);
    }
}

/// Moves the page's patterns with its content. A pattern's `/Matrix` maps pattern space
/// to the page's default coordinates, which a `cm` in the content does not change, so
/// without this a gradient or hatch fill would stay where it was on the old page. The
/// patterns and the resource dictionaries on the way to them are copied, as other pages
/// may share them. Patterns used inside form XObjects are relative to the form and
/// follow the `cm` already.
fn transform_patterns(document: &mut Document, page_id: ObjectId, matrix: Matrix) {
    let Ok(resources) = document
        .get_dictionary(page_id)
        .and_then(|page| page.get_deref(b"Resources", document))
        .and_then(Object::as_dict)
    else {
        return;
    };
    let Ok(patterns) = resources.get_deref(b"Pattern", document).and_then(Object::as_dict) else {
        return;
    };
    let mut resources = resources.clone();
    let mut moved_patterns = patterns.clone();

    for (_, value) in moved_patterns.iter_mut() {
        let Ok((_, pattern)) = document.dereference(value) else {
            continue;
        };
        let mut pattern = pattern.clone();
        let dictionary = match &mut pattern {
            Object::Stream(stream) => &mut stream.dict,
            Object::Dictionary(dictionary) => dictionary,
            _ => continue,
        };
        let old_matrix = dictionary
            .get_deref(b"Matrix", document)
            .and_then(Object::as_array)
            .ok()
            .and_then(|items| {
                let numbers: Option<Vec<f64>> = items.iter().map(|item| item.as_float().ok().map(f64::from)).collect();
                <[f64; 6]>::try_from(numbers?).ok()
            })
            .unwrap_or([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        let moved = concat(old_matrix, matrix);
        dictionary.set("Matrix", moved.iter().map(|&number| Object::Real(number as f32)).collect::<Vec<_>>());
        *value = Object::Reference(document.add_object(pattern));
    }

    resources.set("Pattern", moved_patterns);
    if let Ok(page) = document.get_dictionary_mut(page_id) {
        page.set("Resources", resources);
    }
}

/// Formats a matrix number for a content stream: no exponent, which PDF does not allow,
/// and up to 8 decimals, so the scale of a page hundreds of times the paper keeps its
/// precision.
fn number(value: f64) -> String {
    let text = format!("{value:.8}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" || text.is_empty() { "0".to_string() } else { text.to_string() }
}

#[cfg(test)]
mod tests {
    use lopdf::dictionary;

    use super::*;

    const LETTER: (f64, f64) = (612.0, 792.0);

    fn apply(matrix: Matrix, (x, y): (f64, f64)) -> (f64, f64) {
        let [a, b, c, d, e, f] = matrix;
        (a * x + c * y + e, b * x + d * y + f)
    }

    fn assert_point(actual: (f64, f64), expected: (f64, f64), what: &str) {
        let close = (actual.0 - expected.0).abs() < 1e-6 && (actual.1 - expected.1).abs() < 1e-6;
        assert!(close, "{what}: got {actual:?}, expected {expected:?}");
    }

    fn balance(content: &[u8]) -> (i64, i64) {
        let (mut depth, mut lowest) = (0, 0);
        track_stack_depth(content, &mut depth, &mut lowest);
        (depth, lowest)
    }

    #[test]
    fn landscape_page_turned_counterclockwise() {
        // A Letter landscape page: its top-left corner goes to the paper's bottom-left
        // corner and its top-right corner to the paper's top-left corner.
        let matrix = fit_matrix([0.0, 0.0, 792.0, 612.0], 0, LETTER);
        assert_point(apply(matrix, (0.0, 612.0)), (0.0, 0.0), "top left");
        assert_point(apply(matrix, (792.0, 612.0)), (0.0, 792.0), "top right");
        assert_point(apply(matrix, (0.0, 0.0)), (612.0, 0.0), "bottom left");
        assert_point(apply(matrix, (792.0, 0.0)), (612.0, 792.0), "bottom right");
    }

    #[test]
    fn rotated_portrait_page_drawn_upright() {
        // /Rotate 90 shows a portrait page as landscape, and the counter-clockwise turn
        // undoes it, so the page is drawn as stored.
        let matrix = fit_matrix([0.0, 0.0, 612.0, 792.0], 90, LETTER);
        assert_point(apply(matrix, (0.0, 792.0)), (0.0, 792.0), "top left");
        assert_point(apply(matrix, (612.0, 0.0)), (612.0, 0.0), "bottom right");
    }

    #[test]
    fn upside_down_page_turned_over() {
        let matrix = fit_matrix([0.0, 0.0, 612.0, 792.0], 180, LETTER);
        assert_point(apply(matrix, (0.0, 792.0)), (612.0, 0.0), "top left");
    }

    #[test]
    fn rotation_270_of_landscape_gives_portrait() {
        // A landscape box shown a quarter turn counter-clockwise is portrait already:
        // its top-left corner is shown at the bottom left.
        let matrix = fit_matrix([0.0, 0.0, 792.0, 612.0], 270, LETTER);
        assert_point(apply(matrix, (0.0, 612.0)), (0.0, 0.0), "top left");
        assert_point(apply(matrix, (792.0, 0.0)), (612.0, 792.0), "bottom right");
    }

    #[test]
    fn offset_box_scaled_and_centred() {
        // A4 with its origin at (100, 200), onto Letter: scaled by 792 / 842 and
        // centred across.
        let matrix = fit_matrix([100.0, 200.0, 695.0, 1042.0], 0, LETTER);
        let scale = 792.0 / 842.0;
        let margin = (612.0 - 595.0 * scale) / 2.0;
        assert_point(apply(matrix, (100.0, 200.0)), (margin, 0.0), "bottom left");
        assert_point(apply(matrix, (695.0, 1042.0)), (612.0 - margin, 792.0), "top right");
    }

    #[test]
    fn small_page_scaled_up() {
        let matrix = fit_matrix([0.0, 0.0, 306.0, 396.0], 0, LETTER);
        assert_point(apply(matrix, (306.0, 396.0)), (612.0, 792.0), "top right");
    }

    #[test]
    fn rotation_values_normalized() {
        let document = Document::with_version("1.4");
        let rotation = |value: Object| {
            let mut page = Dictionary::new();
            page.set("Rotate", value);
            effective_rotation(&document, &page)
        };
        assert_eq!(rotation(Object::Integer(90)), 90);
        assert_eq!(rotation(Object::Integer(-90)), 270);
        assert_eq!(rotation(Object::Integer(450)), 90);
        assert_eq!(rotation(Object::Integer(-720)), 0);
        assert_eq!(rotation(Object::Integer(45)), 0);
        assert_eq!(rotation(Object::Integer(i64::MIN)), 0);
        assert_eq!(rotation(Object::Real(180.0)), 180);
        assert_eq!(rotation(Object::Real(90.5)), 0);
        assert_eq!(rotation(Object::Name(b"90".to_vec())), 0);
        assert_eq!(effective_rotation(&document, &Dictionary::new()), 0);
    }

    #[test]
    fn page_box_normalized_and_checked() {
        let document = Document::with_version("1.4");
        let read = |values: Vec<Object>| {
            let mut page = Dictionary::new();
            page.set("MediaBox", values);
            page_box(&document, &page, b"MediaBox")
        };
        assert_eq!(read(vec![612.into(), 792.into(), 0.into(), 0.into()]), Some([0.0, 0.0, 612.0, 792.0]));
        assert_eq!(read(vec![10.into(), Object::Real(20.5), (-5).into(), 30.into()]), Some([-5.0, 20.5, 10.0, 30.0]));
        assert_eq!(read(vec![0.into(), 0.into(), 612.into()]), None, "three numbers");
        assert_eq!(read(vec![0.into(), 0.into(), 0.into(), 792.into()]), None, "no width");
        assert_eq!(read(vec![0.into(), 0.into(), "x".into(), 792.into()]), None, "not a number");
    }

    #[test]
    fn crop_box_clipped_to_media_box() {
        assert_eq!(
            intersection([0.0, 0.0, 612.0, 792.0], [-50.0, 100.0, 300.0, 900.0]),
            Some([0.0, 100.0, 300.0, 792.0])
        );
        assert_eq!(intersection([0.0, 0.0, 100.0, 100.0], [200.0, 200.0, 300.0, 300.0]), None);
    }

    #[test]
    fn stack_depth_counts_operators_only() {
        assert_eq!(balance(b"q 1 0 0 1 0 0 cm Q"), (0, 0));
        assert_eq!(balance(b"Q Q q"), (-1, -2));
        assert_eq!(balance(b"q q"), (2, 0));
        // Operands and names that look like operators.
        assert_eq!(balance(b"BT (Q\\) Q (q)) Tj <51> Tj /Q gs ET"), (0, 0));
        assert_eq!(balance(b"% Q Q\nq"), (1, 0));
        assert_eq!(balance(b"[(a) -10 (Q)] TJ Qx"), (0, 0));
        // Inline image data that contains a Q byte.
        assert_eq!(balance(b"q BI /W 2 /H 1 /BPC 8 /CS /G ID Q\x00 EI Q"), (0, 0));
    }

    #[test]
    fn wrapping_absorbs_unmatched_restores() {
        let mut document = Document::with_version("1.4");
        let content = document.add_object(Stream::new(Dictionary::new(), b"Q Q 0 0 10 10 re f q".to_vec()));
        let page_id = document.add_object(dictionary! { "Type" => "Page", "Contents" => content });

        let balance = unmatched_restores(&document, page_id, 1 << 20);
        assert_eq!(balance, StackBalance { excess: 2, open: 1 });
        wrap_contents(&mut document, page_id, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 10.0, 20.0], balance);

        let whole = document.get_page_content(page_id);
        let (depth, lowest) = self::balance(&whole);
        assert_eq!(depth, 0, "content balanced: {}", String::from_utf8_lossy(&whole));
        assert!(lowest >= 0, "no Q pops the transformation: {}", String::from_utf8_lossy(&whole));
        assert!(whole.starts_with(b"q 1 0 0 1 0 0 cm 0 0 10 20 re W n q q\n"), "{}", String::from_utf8_lossy(&whole));
    }

    #[test]
    fn stack_depth_survives_cut_content() {
        // Content cut inside each kind of token, and pseudo-random bytes.
        for content in [&b"("[..], b"(\\", b"(a\\", b"<", b"<<", b"/", b"%", b"BI ID", b"BI ID ", b"q ID \x00E", b"Q"] {
            track_stack_depth(content, &mut 0, &mut 0);
        }
        let alphabet = b"qQ()<>[]{}/%\\ \nIDEI";
        let mut state: u32 = 1;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                alphabet[(state >> 16) as usize % alphabet.len()]
            })
            .collect();
        let (mut depth, mut lowest) = (0, 0);
        track_stack_depth(&noise, &mut depth, &mut lowest);
        assert!(lowest <= depth, "lowest depth {lowest} above the final depth {depth}");
    }

    #[test]
    fn page_without_contents_fitted() {
        let mut document = Document::with_version("1.4");
        let page_id = document.add_object(dictionary! {
            "Type" => "Page",
            "MediaBox" => vec![0.into(), 0.into(), 0.into(), 0.into()],
            "CropBox" => vec![0.into(), 0.into(), 100.into(), 100.into()],
            "Rotate" => 90,
        });

        assert!(fit_page(&mut document, page_id, Paper::A4, 1 << 20));

        let page = document.get_dictionary(page_id).unwrap();
        let media_box: Vec<f32> =
            page.get(b"MediaBox").unwrap().as_array().unwrap().iter().map(|value| value.as_float().unwrap()).collect();
        assert_eq!(media_box, vec![0.0, 0.0, 595.28, 841.89]);
        assert_eq!(page.get(b"Rotate").unwrap().as_i64().unwrap(), 0);
        assert!(!page.has(b"CropBox"));
        // The empty MediaBox counts as Letter, and the CropBox inside it is what shows.
        let content = String::from_utf8(document.get_page_content(page_id)).unwrap();
        assert!(content.contains(" cm 0 0 100 100 re W n"), "{content}");
        assert!(content.trim_end().ends_with('Q'), "{content}");
    }

    #[test]
    fn paper_sized_page_left_untouched() {
        let mut document = Document::with_version("1.4");
        let content = document.add_object(Stream::new(Dictionary::new(), b"0 0 10 10 re f".to_vec()));
        let page = dictionary! {
            "Type" => "Page",
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            "Contents" => content,
            "Rotate" => 0,
        };
        let page_id = document.add_object(page.clone());

        assert!(!fit_page(&mut document, page_id, Paper::A4, 1 << 20), "A4 within a point is left as it is");
        assert_eq!(document.get_dictionary(page_id).unwrap(), &page);
        assert!(fit_page(&mut document, page_id, Paper::Letter, 1 << 20), "A4 on Letter paper is fitted");
    }

    #[test]
    fn numbers_written_without_exponent() {
        assert_eq!(number(0.000_000_12), "0.00000012");
        assert_eq!(number(-0.0), "0");
        assert_eq!(number(612.0), "612");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(-1e-12), "0");
    }
}
