//! PDF pages fitted to the fax paper: a message mixing page sizes, landscape pages,
//! rotated pages and cropped pages gives only portrait pages of `documents.paper`, with
//! the whole visible area of each page drawn, turned the documented way. Checked with
//! lopdf, with poppler's `pdfinfo` and by rendering with `pdftoppm`.

mod support;

use std::path::Path;
use std::process::Command;

use faxgate::config::Paper;
use faxgate::documents::{Limits, files_to_pdf, message_to_pdf};
use lopdf::{Document, Object, Stream, dictionary};
use support::pdf::message_with_pdfs;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples");

/// Resolution of the test renders, in dots per inch: enough to find a corner mark.
const RENDER_DPI: f64 = 20.0;

/// Gray level under which a rendered pixel counts as dark.
const DARK: u8 = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

/// One test page: its boxes as written in the file, its /Rotate, and where the mark of
/// its top-left corner must end up on the fitted page.
struct PageSpec {
    label: &'static str,
    media_box: [f64; 4],
    crop_box: Option<[f64; 4]>,
    rotate: i64,
    /// Content put before the marks, such as an unmatched `Q`.
    prefix: &'static str,
    top_left_lands: Corner,
}

/// Returns the pages of the mixed message, in order.
fn mixed_pages() -> Vec<PageSpec> {
    let page = |label, media_box, rotate, top_left_lands| PageSpec {
        label,
        media_box,
        crop_box: None,
        rotate,
        prefix: "",
        top_left_lands,
    };
    vec![
        page("A4 portrait", [0.0, 0.0, 595.28, 841.89], 0, Corner::TopLeft),
        PageSpec { prefix: "Q Q\n", ..page("Legal with unmatched Q", [0.0, 0.0, 612.0, 1008.0], 0, Corner::TopLeft) },
        page("A3 portrait", [0.0, 0.0, 841.89, 1190.55], 0, Corner::TopLeft),
        // Turned a quarter turn counter-clockwise: the top edge goes to the left.
        page("Letter landscape", [0.0, 0.0, 792.0, 612.0], 0, Corner::BottomLeft),
        // Shown a quarter turn clockwise, then turned back.
        page("Letter rotated 90", [0.0, 0.0, 612.0, 792.0], 90, Corner::TopLeft),
        // Shown a quarter turn counter-clockwise (top edge on the left), then turned a
        // further quarter turn counter-clockwise: upside down.
        page("Letter rotated -90", [0.0, 0.0, 612.0, 792.0], -90, Corner::BottomRight),
        page("A4 landscape rotated 180", [0.0, 0.0, 841.89, 595.28], 180, Corner::TopRight),
        PageSpec {
            crop_box: Some([500.0, 800.0, 100.0, 200.0]),
            ..page("CropBox offset", [0.0, 0.0, 1000.0, 1000.0], 0, Corner::TopLeft)
        },
        page("Letter with offset origin", [312.0, 392.0, -300.0, -400.0], 0, Corner::TopLeft),
        page("Letter portrait", [0.0, 0.0, 612.0, 792.0], 0, Corner::TopLeft),
    ]
}

/// Index in [`mixed_pages`] of the plain Letter portrait page.
const LETTER_PAGE: usize = 9;

/// Index in [`mixed_pages`] of the page with a CropBox.
const CROPPED_PAGE: usize = 7;

fn normalized(rect: [f64; 4]) -> [f64; 4] {
    [rect[0].min(rect[2]), rect[1].min(rect[3]), rect[0].max(rect[2]), rect[1].max(rect[3])]
}

/// Returns the content of a test page. Everything outside the visible area is black,
/// the visible area white, and each of its corners has a black square mark. The mark
/// of the top-left corner is larger, so a render shows where that corner went.
fn page_content(spec: &PageSpec) -> String {
    let [media_left, media_bottom, media_right, media_top] = normalized(spec.media_box);
    let [left, bottom, right, top] =
        spec.crop_box.map(normalized).unwrap_or([media_left, media_bottom, media_right, media_top]);
    let (width, height) = (right - left, top - bottom);
    let small = width.min(height) * 0.1;
    let large = width.min(height) * 0.25;
    let mut content = spec.prefix.to_string();
    content.push_str(&format!(
        "0 g {media_left} {media_bottom} {} {} re f\n",
        media_right - media_left,
        media_top - media_bottom
    ));
    content.push_str(&format!("1 g {left} {bottom} {width} {height} re f\n0 g\n"));
    content.push_str(&format!("{left} {} {large} {large} re f\n", top - large));
    content.push_str(&format!("{} {} {small} {small} re f\n", right - small, top - small));
    content.push_str(&format!("{left} {bottom} {small} {small} re f\n"));
    content.push_str(&format!("{} {bottom} {small} {small} re f\n", right - small));
    content
}

fn real_array(values: [f64; 4]) -> Vec<Object> {
    values.iter().map(|&value| Object::Real(value as f32)).collect()
}

/// Builds a PDF of the given pages.
fn build_pdf(specs: &[&PageSpec]) -> Vec<u8> {
    let mut document = Document::with_version("1.4");
    let pages_id = document.new_object_id();
    let mut kids = Vec::new();
    for spec in specs {
        let content_id = document.add_object(Stream::new(dictionary! {}, page_content(spec).into_bytes()));
        let mut page = dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "MediaBox" => real_array(spec.media_box),
            "Contents" => content_id,
            "Resources" => dictionary! {},
        };
        if let Some(crop_box) = spec.crop_box {
            page.set("CropBox", real_array(crop_box));
        }
        if spec.rotate != 0 {
            page.set("Rotate", spec.rotate);
        }
        kids.push(Object::Reference(document.add_object(page)));
    }
    let count = kids.len() as i64;
    document
        .objects
        .insert(pages_id, Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }));
    let catalog_id = document.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    document.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();
    bytes
}

/// Converts the mixed pages, sent as three PDF attachments of one message.
fn convert_mixed(paper: Paper) -> Vec<u8> {
    let specs = mixed_pages();
    let all: Vec<&PageSpec> = specs.iter().collect();
    let attachments = [
        ("sizes.pdf", build_pdf(&all[..3])),
        ("turned.pdf", build_pdf(&all[3..7])),
        ("boxes.pdf", build_pdf(&all[7..])),
    ];
    let message = message_with_pdfs("alice@example.com", "14155552222@fax.example.com", "", &attachments);
    let limits = Limits { paper, ..Limits::default() };
    let converted = message_to_pdf(&message, &limits).unwrap();
    assert_eq!(converted.pages as usize, specs.len());
    converted.pdf
}

/// The size and rotation of one page as `pdfinfo` prints them.
#[derive(Debug)]
struct PdfinfoPage {
    width: f64,
    height: f64,
    rotation: i64,
}

/// Runs `pdfinfo -f 1 -l N` and returns every page's size and rotation.
fn pdfinfo_pages(pdf: &Path, count: usize) -> Vec<PdfinfoPage> {
    let output = Command::new("pdfinfo")
        .args(["-f", "1", "-l", &count.to_string()])
        .arg(pdf)
        .output()
        .expect("pdfinfo runs (install poppler-utils)");
    assert!(output.status.success(), "pdfinfo failed: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let mut pages = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("Page") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        match words.as_slice() {
            [_, "size:", width, "x", height, "pts", ..] => {
                pages.push(PdfinfoPage { width: width.parse().unwrap(), height: height.parse().unwrap(), rotation: -1 })
            }
            [_, "rot:", rotation] => {
                pages.last_mut().expect("size line before rot line").rotation = rotation.parse().unwrap()
            }
            _ => {}
        }
    }
    pages
}

fn assert_all_pages(pdf: &Path, count: usize, paper: (f64, f64)) {
    let pages = pdfinfo_pages(pdf, count);
    assert_eq!(pages.len(), count, "{pages:?}");
    for (index, page) in pages.iter().enumerate() {
        let number = index + 1;
        assert!((page.width - paper.0).abs() < 0.01, "page {number} width: {page:?}");
        assert!((page.height - paper.1).abs() < 0.01, "page {number} height: {page:?}");
        assert_eq!(page.rotation, 0, "page {number} rotation: {page:?}");
    }
}

/// A rendered page: gray levels, row by row from the top.
struct Render {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Render {
    fn dark_in(&self, columns: std::ops::Range<usize>, rows: std::ops::Range<usize>) -> usize {
        rows.flat_map(|row| columns.clone().map(move |column| (row, column)))
            .filter(|&(row, column)| self.pixels[row * self.width + column] < DARK)
            .count()
    }

    /// Counts the dark pixels of each quarter of the page.
    fn dark_by_corner(&self) -> [(Corner, usize); 4] {
        let (half_width, half_height) = (self.width / 2, self.height / 2);
        [
            (Corner::TopLeft, self.dark_in(0..half_width, 0..half_height)),
            (Corner::TopRight, self.dark_in(half_width..self.width, 0..half_height)),
            (Corner::BottomLeft, self.dark_in(0..half_width, half_height..self.height)),
            (Corner::BottomRight, self.dark_in(half_width..self.width, half_height..self.height)),
        ]
    }
}

/// Renders one page with `pdftoppm -r 20 -gray` and reads the binary PGM it writes.
fn render(pdf: &Path, number: usize) -> Render {
    let output = Command::new("pdftoppm")
        .args(["-r", &RENDER_DPI.to_string(), "-gray"])
        .args(["-f", &number.to_string(), "-l", &number.to_string()])
        .arg(pdf)
        .output()
        .expect("pdftoppm runs (install poppler-utils)");
    assert!(output.status.success(), "pdftoppm failed: {}", String::from_utf8_lossy(&output.stderr));
    let data = output.stdout;
    // "P5\n<width> <height>\n255\n" and then one byte per pixel.
    let mut header = Vec::new();
    let mut at = 0;
    while header.len() < 4 {
        while data[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !data[at].is_ascii_whitespace() {
            at += 1;
        }
        header.push(String::from_utf8(data[start..at].to_vec()).unwrap());
    }
    assert_eq!(header[0], "P5");
    let width: usize = header[1].parse().unwrap();
    let height: usize = header[2].parse().unwrap();
    let pixels = data[at + 1..].to_vec();
    assert_eq!(pixels.len(), width * height);
    Render { width, height, pixels }
}

/// Checks that every corner mark of a fitted test page shows, and that the large
/// top-left mark is where the page's turn puts it.
fn assert_marks(pdf: &Path, number: usize, spec: &PageSpec, paper: (f64, f64)) {
    let render = render(pdf, number);
    let expected_width = (paper.0 / 72.0 * RENDER_DPI).round() as usize;
    let expected_height = (paper.1 / 72.0 * RENDER_DPI).round() as usize;
    assert!(render.width.abs_diff(expected_width) <= 1, "{}: render width {}", spec.label, render.width);
    assert!(render.height.abs_diff(expected_height) <= 1, "{}: render height {}", spec.label, render.height);

    let corners = render.dark_by_corner();
    for (corner, dark) in corners {
        assert!(dark > 0, "{}: no mark in the {corner:?} quarter, so the page was cropped: {corners:?}", spec.label);
    }
    let (largest, _) = corners.iter().copied().max_by_key(|&(_, dark)| dark).unwrap();
    assert_eq!(largest, spec.top_left_lands, "{}: the top-left mark is in the wrong quarter: {corners:?}", spec.label);
}

#[test]
fn mixed_pages_fitted_to_letter() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("letter.pdf");
    std::fs::write(&path, convert_mixed(Paper::Letter)).unwrap();
    let specs = mixed_pages();

    assert_all_pages(&path, specs.len(), (612.0, 792.0));
    for (index, spec) in specs.iter().enumerate() {
        assert_marks(&path, index + 1, spec, (612.0, 792.0));
    }
}

#[test]
fn mixed_pages_fitted_to_a4() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("a4.pdf");
    std::fs::write(&path, convert_mixed(Paper::A4)).unwrap();
    let specs = mixed_pages();

    assert_all_pages(&path, specs.len(), (595.28, 841.89));
    for (index, spec) in specs.iter().enumerate() {
        assert_marks(&path, index + 1, spec, (595.28, 841.89));
    }
}

#[test]
fn content_outside_crop_box_stays_hidden() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("letter.pdf");
    std::fs::write(&path, convert_mixed(Paper::Letter)).unwrap();

    // The 400 x 600 visible area is scaled to the paper's height, which leaves white
    // margins of 42 points at the left and right. The black outside the CropBox must
    // not show in them.
    let render = render(&path, CROPPED_PAGE + 1);
    let margin = (42.0 / 72.0 * RENDER_DPI) as usize - 1;
    assert_eq!(render.dark_in(0..margin, 0..render.height), 0, "left margin");
    assert_eq!(render.dark_in(render.width - margin..render.width, 0..render.height), 0, "right margin");
}

#[test]
fn letter_page_left_untouched() {
    let specs = mixed_pages();
    let original_content = page_content(&specs[LETTER_PAGE]);

    let pdf = convert_mixed(Paper::Letter);

    let document = Document::load_mem(&pdf).unwrap();
    let page_id = document.get_pages()[&(LETTER_PAGE as u32 + 1)];
    let page = document.get_dictionary(page_id).unwrap();
    let contents = page.get(b"Contents").unwrap();
    let stream_id = contents.as_reference().expect("the Letter page keeps its one content stream");
    let stream = document.get_object(stream_id).unwrap().as_stream().unwrap();
    assert_eq!(stream.content, original_content.as_bytes(), "content stream changed");
    let media_box: Vec<f32> =
        page.get(b"MediaBox").unwrap().as_array().unwrap().iter().map(|value| value.as_float().unwrap()).collect();
    assert_eq!(media_box, vec![0.0, 0.0, 612.0, 792.0]);
    // The same page on A4 paper is fitted.
    let a4 = Document::load_mem(&convert_mixed(Paper::A4)).unwrap();
    let a4_page = a4.get_dictionary(a4.get_pages()[&(LETTER_PAGE as u32 + 1)]).unwrap();
    assert!(matches!(a4_page.get(b"Contents"), Ok(Object::Array(_))), "Letter page on A4 paper not fitted");
}

#[test]
fn rotated_and_a4_samples_fitted() {
    let files = vec![
        ("rotate.pdf".to_string(), std::fs::read(format!("{SAMPLES}/pdf/qpdf-inherited-rotate.pdf")).unwrap()),
        ("a4.pdf".to_string(), std::fs::read(format!("{SAMPLES}/pdf/pypdf-r4-owner-password-only.pdf")).unwrap()),
        ("letter.pdf".to_string(), std::fs::read(format!("{SAMPLES}/pdf/qpdf-page-inherit-mediabox.pdf")).unwrap()),
    ];
    let folder = tempfile::tempdir().unwrap();

    let letter = files_to_pdf(&files, &Limits::default()).unwrap();
    let letter_path = folder.path().join("letter.pdf");
    std::fs::write(&letter_path, &letter.pdf).unwrap();
    assert_eq!(letter.pages, 5);
    assert_all_pages(&letter_path, 5, (612.0, 792.0));
    // The sample's /Rotate 90 page has "Potato" at its top left. Shown a quarter turn
    // clockwise and turned back, it stays at the top left of the faxed page.
    let render = render(&letter_path, 1);
    let corners = render.dark_by_corner();
    assert!(corners[0].1 > 0, "no text at the top left: {corners:?}");
    assert!(corners[1..].iter().all(|&(_, dark)| dark == 0), "text outside the top left: {corners:?}");

    let a4 = files_to_pdf(&files, &Limits { paper: Paper::A4, ..Limits::default() }).unwrap();
    let a4_path = folder.path().join("a4.pdf");
    std::fs::write(&a4_path, &a4.pdf).unwrap();
    let pages = pdfinfo_pages(&a4_path, 5);
    assert_eq!(pages.len(), 5, "{pages:?}");
    for (index, page) in pages.iter().enumerate() {
        // The A4 sample's 595.3 x 841.9 is within a point of the paper, so it is left
        // as it is, and the others are fitted to exactly 595.28 x 841.89.
        let tolerance = if index == 1 { 0.1 } else { 0.01 };
        assert!((page.width - 595.28).abs() < tolerance, "page {} width: {page:?}", index + 1);
        assert!((page.height - 841.89).abs() < tolerance, "page {} height: {page:?}", index + 1);
        assert_eq!(page.rotation, 0, "page {} rotation: {page:?}", index + 1);
    }
}

#[test]
fn tiff_keeps_size_beside_fitted_pdf() {
    let specs = mixed_pages();
    let landscape = build_pdf(&[&specs[3]]);
    let tiff = std::fs::read(format!("{SAMPLES}/tiff/tm-204x98-ccitt-mh-rle.tiff")).unwrap();
    let files = vec![("landscape.pdf".to_string(), landscape), ("fax.tiff".to_string(), tiff)];
    let folder = tempfile::tempdir().unwrap();

    let converted = files_to_pdf(&files, &Limits::default()).unwrap();
    let path = folder.path().join("mixed.pdf");
    std::fs::write(&path, &converted.pdf).unwrap();

    let pages = pdfinfo_pages(&path, 2);
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert_eq!((pages[0].width, pages[0].height, pages[0].rotation), (612.0, 792.0, 0), "PDF page");
    // 1728 x 1146 pixels at 204 x 98 dpi: 8.47 x 11.69 inches, not the Letter paper.
    assert!((pages[1].width - 1728.0 / 204.0 * 72.0).abs() < 0.5, "TIFF page width: {:?}", pages[1]);
    assert!((pages[1].height - 1146.0 / 98.0 * 72.0).abs() < 0.5, "TIFF page height: {:?}", pages[1]);
}

/// Builds a Letter landscape page filled with a gray gradient pattern that runs from
/// black at its left edge to white at its right edge.
fn gradient_pdf() -> Vec<u8> {
    let mut document = Document::with_version("1.4");
    let pages_id = document.new_object_id();
    let shading = dictionary! {
        "ShadingType" => 2,
        "ColorSpace" => "DeviceGray",
        "Coords" => vec![0.into(), 0.into(), 792.into(), 0.into()],
        "Function" => dictionary! {
            "FunctionType" => 2,
            "Domain" => vec![0.into(), 1.into()],
            "C0" => vec![0.into()],
            "C1" => vec![1.into()],
            "N" => 1,
        },
        "Extend" => vec![true.into(), true.into()],
    };

    let pattern_id = document.add_object(dictionary! { "PatternType" => 2, "Shading" => shading });
    let content = b"/Pattern cs /P0 scn 0 0 792 612 re f".to_vec();
    let content_id = document.add_object(Stream::new(dictionary! {}, content));
    let page_id = document.add_object(dictionary! {
        "Type" => "Page",
        "Parent" => pages_id,
        "MediaBox" => vec![0.into(), 0.into(), 792.into(), 612.into()],
        "Contents" => content_id,
        "Resources" => dictionary! { "Pattern" => dictionary! { "P0" => pattern_id } },
    });

    document.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1 }),
    );
    let catalog_id = document.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    document.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();
    bytes
}

#[test]
fn gradient_pattern_turns_with_page() {
    let folder = tempfile::tempdir().unwrap();
    let converted = files_to_pdf(&[("gradient.pdf".to_string(), gradient_pdf())], &Limits::default()).unwrap();
    let path = folder.path().join("gradient.pdf");
    std::fs::write(&path, &converted.pdf).unwrap();

    let render = render(&path, 1);

    // The page's left edge is now its bottom edge, so the gradient runs from black at
    // the bottom of the paper to white at the top, and is even from left to right.
    let mean = |columns: std::ops::Range<usize>, rows: std::ops::Range<usize>| {
        let count = columns.len() * rows.len();
        let sum: usize = rows
            .flat_map(|row| columns.clone().map(move |column| (row, column)))
            .map(|(row, column)| usize::from(render.pixels[row * render.width + column]))
            .sum();
        sum / count
    };
    let (width, height) = (render.width, render.height);
    let top = mean(0..width, 2..12);
    let bottom = mean(0..width, height - 12..height - 2);
    let left = mean(2..12, 0..height);
    let right = mean(width - 12..width - 2, 0..height);
    assert!(top > 200, "top of the paper is not white: {top}");
    assert!(bottom < 55, "bottom of the paper is not black: {bottom}");
    assert!(left.abs_diff(right) < 20, "gradient runs across the paper: left {left}, right {right}");
}
