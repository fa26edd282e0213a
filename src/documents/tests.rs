//! Tests of the whole pipeline: messages and files in, merged PDF out. Test PDFs are
//! built with lopdf; real-world samples are read from the shared samples folder beside
//! the repository.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use lopdf::{Document, Object, Stream, dictionary};

use super::*;

/// A message that makes [`message_to_pdf`] panic, to test the pool's panic handling.
pub(crate) const MESSAGE_PANIC_TRIGGER: &[u8] = b"faxgate test: panic outside any document";

pub(super) const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples");

pub(super) fn sample(path: &str) -> Vec<u8> {
    let full = format!("{SAMPLES}/{path}");
    std::fs::read(&full).unwrap_or_else(|error| panic!("cannot read sample {full}: {error}"))
}

/// Builds a PDF with one page per size; each page shows `label` and its number.
pub(crate) fn build_pdf(label: &str, sizes: &[(i64, i64)]) -> Vec<u8> {
    let mut document = Document::with_version("1.5");
    let pages_id = document.new_object_id();
    let font_id = document.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
    });
    let mut kids = Vec::new();
    for (index, &(width, height)) in sizes.iter().enumerate() {
        let text = format!("BT /F1 12 Tf 72 72 Td ({label} page {}) Tj ET", index + 1);
        let content_id = document.add_object(Stream::new(dictionary! {}, text.into_bytes()));
        let page_id = document.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "MediaBox" => vec![0.into(), 0.into(), width.into(), height.into()],
            "Contents" => content_id,
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
        });
        kids.push(Object::Reference(page_id));
    }

    document.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Count" => sizes.len() as i64,
            "Kids" => kids,
        }),
    );
    let catalog_id = document.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    document.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();
    bytes
}

/// Builds a PDF whose pages inherit MediaBox, Rotate and Resources from an intermediate
/// page tree node, with no attributes of their own.
pub(super) fn build_inheriting_pdf(pages: usize, media_box: (i64, i64), rotate: i64) -> Vec<u8> {
    let mut document = Document::with_version("1.4");
    let root_id = document.new_object_id();
    let middle_id = document.new_object_id();
    let font_id = document.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier",
    });

    let mut kids = Vec::new();
    for index in 0..pages {
        let content = format!("BT /F1 12 Tf 72 72 Td (inherited {index}) Tj ET");
        let content_id = document.add_object(Stream::new(dictionary! {}, content.into_bytes()));
        let page_id = document.add_object(dictionary! {
            "Type" => "Page", "Parent" => middle_id, "Contents" => content_id,
        });
        kids.push(Object::Reference(page_id));
    }

    document.objects.insert(
        middle_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Parent" => root_id,
            "Count" => pages as i64,
            "Kids" => kids,
            "MediaBox" => vec![0.into(), 0.into(), media_box.0.into(), media_box.1.into()],
            "Rotate" => rotate,
        }),
    );
    document.objects.insert(
        root_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Count" => pages as i64,
            "Kids" => vec![Object::Reference(middle_id)],
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
        }),
    );
    let catalog_id = document.add_object(dictionary! { "Type" => "Catalog", "Pages" => root_id });
    document.trailer.set("Root", catalog_id);

    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();
    bytes
}

/// Renders a MIME part with base64 content.
pub(super) fn part(content_type: &str, disposition: Option<&str>, data: &[u8]) -> String {
    let mut encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut lines = String::new();
    while encoded.len() > 76 {
        let rest = encoded.split_off(76);
        lines.push_str(&encoded);
        lines.push_str("\r\n");
        encoded = rest;
    }
    lines.push_str(&encoded);
    let disposition = disposition.map(|value| format!("Content-Disposition: {value}\r\n")).unwrap_or_default();
    format!("Content-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n{disposition}\r\n{lines}\r\n")
}

pub(super) fn pdf_attachment(name: &str, data: &[u8]) -> String {
    part(
        &format!("application/pdf; name=\"{name}\""),
        Some(&format!("attachment; filename=\"{name}\"")),
        data,
    )
}

pub(super) fn text_part(text: &str) -> String {
    format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n")
}

/// Renders a multipart body (headers of the multipart itself included).
pub(super) fn multipart(subtype: &str, boundary: &str, parts: &[String]) -> String {
    let mut body = format!("Content-Type: multipart/{subtype}; boundary=\"{boundary}\"\r\n\r\n");
    for part in parts {
        body.push_str(&format!("--{boundary}\r\n{part}"));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body
}

/// Prepends message headers to a rendered root part.
pub(super) fn message(root: &str) -> Vec<u8> {
    format!(
        "From: alice@example.com\r\nTo: 14155550100@fax.example.net\r\nSubject: fax\r\n\
         MIME-Version: 1.0\r\n{root}"
    )
    .into_bytes()
}

/// Reloads a merged PDF and returns each page's own MediaBox as (width, height).
pub(super) fn page_sizes(pdf: &[u8]) -> Vec<(f32, f32)> {
    let document = Document::load_mem(pdf).expect("merged PDF reloads");
    document
        .get_pages()
        .values()
        .map(|&page_id| {
            let page = document.get_dictionary(page_id).unwrap();
            let media_box = page.get_deref(b"MediaBox", &document).expect("page has its own MediaBox");
            let numbers: Vec<f32> =
                media_box.as_array().unwrap().iter().map(|n| n.as_float().unwrap()).collect();
            (numbers[2] - numbers[0], numbers[3] - numbers[1])
        })
        .collect()
}

/// Reloads a merged PDF and returns each page's own /Rotate.
pub(super) fn page_rotations(pdf: &[u8]) -> Vec<i64> {
    let document = Document::load_mem(pdf).expect("merged PDF reloads");
    document
        .get_pages()
        .values()
        .map(|&page_id| {
            let page = document.get_dictionary(page_id).unwrap();
            page.get(b"Rotate").expect("page has its own Rotate").as_i64().unwrap()
        })
        .collect()
}

/// Returns the matrix of the `q <matrix> cm` that fitting put before the content of
/// page `number` (from 1), or `None` when the page was not fitted.
pub(super) fn fit_matrix_of(pdf: &[u8], number: u32) -> Option<[f64; 6]> {
    let document = Document::load_mem(pdf).expect("merged PDF reloads");
    let page = document.get_dictionary(document.get_pages()[&number]).unwrap();
    let first = match page.get(b"Contents").ok()? {
        Object::Array(items) => items.first()?.as_reference().ok()?,
        _ => return None,
    };
    let stream = document.get_object(first).ok()?.as_stream().ok()?;
    let text = String::from_utf8(stream.content.clone()).ok()?;
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.first() != Some(&"q") || words.get(7) != Some(&"cm") {
        return None;
    }
    let numbers: Vec<f64> = words[1..7].iter().map(|word| word.parse().unwrap()).collect();
    numbers.try_into().ok()
}

/// Asserts that two matrices agree to within 1e-4 in every number.
pub(super) fn assert_matrix(actual: [f64; 6], expected: [f64; 6]) {
    let close = actual.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-4);
    assert!(close, "matrix {actual:?}, expected {expected:?}");
}

pub(super) fn unlimited_images() -> Limits {
    Limits { min_image_pixels: 0, ..Limits::default() }
}

pub(super) fn expect_rejected(result: Result<Converted, DocumentError>) -> (String, String) {
    match result {
        Err(DocumentError::Rejected { file, reason }) => (file, reason),
        Err(other) => panic!("expected a rejection, got {other:?}"),
        Ok(converted) => panic!("expected a rejection, got {} pages: {:?}", converted.pages, converted.parts),
    }
}

pub(super) fn expect_no_document(result: Result<Converted, DocumentError>) -> Vec<PartReport> {
    match result {
        Err(DocumentError::NoDocument { skipped }) => skipped,
        Err(other) => panic!("expected no document, got {other:?}"),
        Ok(converted) => panic!("expected no document, got {} pages: {:?}", converted.pages, converted.parts),
    }
}

pub(super) fn skip_reason<'a>(reports: &'a [PartReport], name: &str) -> &'a str {
    let report = reports.iter().find(|report| report.name == name).unwrap_or_else(|| {
        panic!("no report for {name} in {reports:?}");
    });
    match &report.outcome {
        PartOutcome::Skipped { reason } => reason,
        other => panic!("{name} was not skipped: {other:?}"),
    }
}

// Merging

#[test]
fn two_pdfs_merge_in_mime_order() {
    let first = build_pdf("first", &[(100, 200), (110, 210)]);
    let second = build_pdf("second", &[(300, 400), (310, 410), (320, 420)]);
    let root = multipart(
        "mixed",
        "outer",
        &[text_part("please fax"), pdf_attachment("a.pdf", &first), pdf_attachment("b.pdf", &second)],
    );

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(converted.pages, 5);
    // Every page is fitted to the default Letter paper, so the scale shows the order.
    assert_eq!(page_sizes(&converted.pdf), vec![(612.0, 792.0); 5]);
    assert_eq!(page_rotations(&converted.pdf), vec![0; 5]);
    let scales: Vec<f64> = (1..=5).map(|number| fit_matrix_of(&converted.pdf, number).unwrap()[0]).collect();
    let expected = [(100.0, 200.0), (110.0, 210.0), (300.0, 400.0), (310.0, 410.0), (320.0, 420.0)]
        .map(|(width, height): (f64, f64)| (612.0 / width).min(792.0 / height));
    for (number, (scale, expected)) in scales.iter().zip(expected).enumerate() {
        assert!((scale - expected).abs() < 1e-4, "page {}: scale {scale}, expected {expected}", number + 1);
    }
    let faxed: Vec<(&str, &PartOutcome)> =
        converted.parts.iter().map(|report| (report.name.as_str(), &report.outcome)).collect();
    assert_eq!(
        faxed,
        vec![
            (BODY_NAME, &PartOutcome::Skipped { reason: "message body".to_string() }),
            ("a.pdf", &PartOutcome::Faxed { pages: 2 }),
            ("b.pdf", &PartOutcome::Faxed { pages: 3 }),
        ]
    );
}

#[test]
fn merged_pages_keep_their_content() {
    let first = build_pdf("alpha", &[(200, 200)]);
    let second = build_pdf("omega", &[(200, 200)]);
    let files = vec![("a.pdf".to_string(), first), ("b.pdf".to_string(), second)];

    let converted = files_to_pdf(&files, &Limits::default()).unwrap();

    let document = Document::load_mem(&converted.pdf).unwrap();
    let pages: Vec<_> = document.get_pages().into_values().collect();
    let first_text = String::from_utf8_lossy(&document.get_page_content(pages[0])).into_owned();
    let second_text = String::from_utf8_lossy(&document.get_page_content(pages[1])).into_owned();
    assert!(first_text.contains("alpha page 1"), "{first_text}");
    assert!(second_text.contains("omega page 1"), "{second_text}");
}

#[test]
fn merged_output_has_one_clean_page_tree() {
    let files = vec![
        ("a.pdf".to_string(), build_pdf("a", &[(100, 100)])),
        ("b.pdf".to_string(), sample("pdf/qpdf-c-linearized.pdf")),
        ("c.pdf".to_string(), sample("pdf/pypdf-r4-owner-password-only.pdf")),
    ];

    let converted = files_to_pdf(&files, &Limits::default()).unwrap();

    assert_eq!(converted.pages, 32);
    let document = Document::load_mem(&converted.pdf).unwrap();
    assert_eq!(document.get_pages().len(), 32);
    assert!(!document.is_encrypted());
    assert!(document.trailer.get(b"Encrypt").is_err());
    let linearized = document
        .objects
        .values()
        .filter_map(|object| object.as_dict().ok())
        .any(|dictionary| dictionary.has(b"Linearized"));
    assert!(!linearized, "a /Linearized dictionary was copied");
    assert!(kind::find(&converted.pdf, b"\nxref\n").is_some(), "no classic cross-reference table");
    assert!(kind::find(&converted.pdf, b"/XRef").is_none(), "a cross-reference stream was written");
    let root = document.catalog().unwrap().get(b"Pages").unwrap().as_reference().unwrap();
    for page_id in document.get_pages().values() {
        let page = document.get_dictionary(*page_id).unwrap();
        assert_eq!(page.get(b"Parent").unwrap().as_reference().unwrap(), root);
    }
}

#[test]
fn inherited_attributes_written_on_pages() {
    let pdf = build_inheriting_pdf(3, (500, 700), 90);

    let converted = files_to_pdf(&[("inherit.pdf".to_string(), pdf)], &Limits::default()).unwrap();

    assert_eq!(converted.pages, 3);
    assert_eq!(page_sizes(&converted.pdf), vec![(612.0, 792.0); 3]);
    assert_eq!(page_rotations(&converted.pdf), vec![0; 3]);
    // The inherited /Rotate 90 shows the 500 x 700 page as landscape, so fitting turns
    // it back: it is drawn upright, scaled by 792 / 700 and centred across.
    let scale = 792.0 / 700.0;
    for number in 1..=3 {
        let matrix = fit_matrix_of(&converted.pdf, number).expect("page was fitted");
        assert_matrix(matrix, [scale, 0.0, 0.0, scale, (612.0 - 500.0 * scale) / 2.0, 0.0]);
    }
    let document = Document::load_mem(&converted.pdf).unwrap();
    for page_id in document.get_pages().values() {
        let page = document.get_dictionary(*page_id).unwrap();
        let resources = page.get_deref(b"Resources", &document).unwrap().as_dict().unwrap();
        assert!(resources.has(b"Font"), "page lost its inherited fonts");
    }
}

#[test]
fn sample_with_inherited_mediabox() {
    let files = vec![("inherit.pdf".to_string(), sample("pdf/qpdf-page-inherit-mediabox.pdf"))];

    let converted = files_to_pdf(&files, &Limits::default()).unwrap();

    assert_eq!(converted.pages, 3);
    assert_eq!(page_sizes(&converted.pdf), vec![(612.0, 792.0); 3]);
    let document = Document::load_mem(&converted.pdf).unwrap();
    for page_id in document.get_pages().values() {
        let page = document.get_dictionary(*page_id).unwrap();
        assert!(page.has(b"Resources"), "page {page_id:?} has no own Resources");
    }
}

#[test]
fn sample_with_inherited_rotate() {
    let files = vec![("rotate.pdf".to_string(), sample("pdf/qpdf-inherited-rotate.pdf"))];

    let converted = files_to_pdf(&files, &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
    assert_eq!(page_sizes(&converted.pdf), vec![(612.0, 792.0)]);
    assert_eq!(page_rotations(&converted.pdf), vec![0]);
    // The page's own /Rotate 90 overrides the /Rotate 270 of its parent. The Letter page
    // shown a quarter turn clockwise is turned back counter-clockwise, so it is drawn as
    // stored. With the parent's 270 it would be drawn upside down.
    let matrix = fit_matrix_of(&converted.pdf, 1).expect("rotated page was fitted");
    assert_matrix(matrix, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn duplicate_page_reference_faxed_twice() {
    let mut document = Document::load_mem(&build_pdf("dup", &[(100, 100)])).unwrap();
    let pages_id = document.catalog().unwrap().get(b"Pages").unwrap().as_reference().unwrap();
    let page_id = document.get_pages()[&1];
    let pages = document.get_dictionary_mut(pages_id).unwrap();
    pages.set("Kids", vec![Object::Reference(page_id), Object::Reference(page_id)]);
    pages.set("Count", 2);
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();

    let converted = files_to_pdf(&[("dup.pdf".to_string(), bytes)], &Limits::default()).unwrap();

    assert_eq!(converted.pages, 2);
    assert_eq!(page_sizes(&converted.pdf).len(), 2);
}

// PDF input

/// Samples that poppler's pdfinfo opens, with the page count it reports.
const READABLE_SAMPLES: &[(&str, u32)] = &[
    ("qpdf-leading-junk.pdf", 30),
    ("qpdf-bad-xref.pdf", 1),
    ("pypdf-issue-297-bad-startxref.pdf", 1),
    ("qpdf-c-object-streams.pdf", 30),
    ("qpdf-hybrid-xref.pdf", 30),
    ("qpdf-incremental-1.pdf", 1),
    ("qpdf-c-linearized.pdf", 30),
    ("qpdf-page-inherit-mediabox.pdf", 3),
    ("qpdf-inherited-rotate.pdf", 1),
    ("pypdf-r4-owner-password-only.pdf", 1),
];

#[test]
fn readable_samples_load_and_merge() {
    for &(name, pages) in READABLE_SAMPLES {
        let files = vec![(name.to_string(), sample(&format!("pdf/{name}")))];
        let converted = match files_to_pdf(&files, &Limits::default()) {
            Ok(converted) => converted,
            Err(error) => panic!("{name}: {error}"),
        };
        assert_eq!(converted.pages, pages, "{name}");
        let reloaded = Document::load_mem(&converted.pdf).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(reloaded.get_pages().len() as u32, pages, "{name} after reload");
    }
}

#[test]
fn all_readable_samples_merge_into_one() {
    let files: Vec<(String, Vec<u8>)> = READABLE_SAMPLES
        .iter()
        .map(|&(name, _)| (name.to_string(), sample(&format!("pdf/{name}"))))
        .collect();
    let expected: u32 = READABLE_SAMPLES.iter().map(|&(_, pages)| pages).sum();

    let converted = files_to_pdf(&files, &Limits::default()).unwrap();

    assert_eq!(converted.pages, expected);
    assert_eq!(Document::load_mem(&converted.pdf).unwrap().get_pages().len() as u32, expected);
}

#[test]
fn incremental_update_shows_newest_content() {
    let files = vec![("incremental.pdf".to_string(), sample("pdf/qpdf-incremental-1.pdf"))];

    let converted = files_to_pdf(&files, &Limits::default()).unwrap();

    // The first revision draws "Potato"; the third replaces the page content with "Salad".
    let merged = Document::load_mem(&converted.pdf).unwrap();
    let content = String::from_utf8_lossy(&merged.get_page_content(merged.get_pages()[&1])).into_owned();
    assert!(content.contains("(Salad) Tj"), "{content}");
    assert!(!content.contains("Potato"), "{content}");
}

#[test]
fn owner_password_only_pdf_is_faxed_decrypted() {
    let files = vec![("owner.pdf".to_string(), sample("pdf/pypdf-r4-owner-password-only.pdf"))];

    let converted = files_to_pdf(&files, &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
    let document = Document::load_mem(&converted.pdf).unwrap();
    assert!(!document.is_encrypted());
    assert!(!document.was_encrypted(), "output was written encrypted");
    let content = document.get_page_content(document.get_pages()[&1]);
    assert!(
        content.windows(2).any(|window| window == b"Tf" || window == b"Do" || window == b"re"),
        "page content is not readable operators: {:?}",
        String::from_utf8_lossy(&content[..content.len().min(80)])
    );
}

#[test]
fn user_password_pdf_is_rejected() {
    let files = vec![("secret.pdf".to_string(), sample("pdf/pypdf-r6-user-password-required.pdf"))];

    let (file, reason) = expect_rejected(files_to_pdf(&files, &Limits::default()));

    assert_eq!(file, "secret.pdf");
    assert!(reason.contains("password-protected"), "{reason}");
}

#[test]
fn page_tree_loop_is_rejected() {
    let files = vec![("loop.pdf".to_string(), sample("pdf/qpdf-pages-loop.pdf"))];

    let (file, reason) = expect_rejected(files_to_pdf(&files, &Limits::default()));

    assert_eq!(file, "loop.pdf");
    assert!(reason.contains("loop"), "{reason}");
}

#[test]
fn garbage_named_pdf_is_rejected() {
    let garbage: Vec<u8> = (0..4096u32).map(|n| (n.wrapping_mul(2654435761) >> 13) as u8).collect();
    let root = multipart("mixed", "b", &[text_part("hi"), pdf_attachment("scan.pdf", &garbage)]);

    let (file, reason) = expect_rejected(message_to_pdf(&message(&root), &Limits::default()));

    assert_eq!(file, "scan.pdf");
    assert!(reason.contains("not a PDF"), "{reason}");
}

#[test]
fn truncated_pdf_is_rejected() {
    let pdf = build_pdf("cut", &[(100, 100), (100, 100), (100, 100)]);
    let truncated = pdf[..pdf.len() / 2].to_vec();

    let (file, reason) = expect_rejected(files_to_pdf(&[("cut.pdf".to_string(), truncated)], &Limits::default()));

    assert_eq!(file, "cut.pdf");
    assert!(reason.contains("damaged"), "{reason}");
}

#[test]
fn page_count_over_limit() {
    let files = vec![
        ("a.pdf".to_string(), build_pdf("a", &[(100, 100); 3])),
        ("b.pdf".to_string(), build_pdf("b", &[(100, 100); 3])),
    ];
    let limits = Limits { max_pages: 4, ..Limits::default() };

    match files_to_pdf(&files, &limits) {
        Err(DocumentError::TooManyPages { pages, max }) => {
            assert_eq!(pages, 6);
            assert_eq!(max, 4);
        }
        other => panic!("expected too many pages, got {other:?}"),
    }
}

#[test]
fn page_count_at_limit_is_faxed() {
    let files = vec![("a.pdf".to_string(), build_pdf("a", &[(100, 100); 4]))];
    let limits = Limits { max_pages: 4, ..Limits::default() };

    assert_eq!(files_to_pdf(&files, &limits).unwrap().pages, 4);
}

#[test]
fn oversized_document_is_rejected() {
    let files = vec![("a.pdf".to_string(), build_pdf("a", &[(100, 100)]))];
    let limits = Limits { max_document_bytes: 100, max_total_bytes: 100, ..Limits::default() };

    let (file, reason) = expect_rejected(files_to_pdf(&files, &limits));

    assert_eq!(file, "a.pdf");
    assert!(reason.contains("larger than"), "{reason}");
}

#[test]
fn empty_attachment_is_rejected() {
    let (file, reason) = expect_rejected(files_to_pdf(&[("empty.pdf".to_string(), Vec::new())], &Limits::default()));

    assert_eq!(file, "empty.pdf");
    assert_eq!(reason, "the file is empty");
}

#[test]
fn dynamic_xfa_form_is_rejected() {
    let mut document = Document::load_mem(&build_pdf("xfa", &[(100, 100)])).unwrap();
    let form_id = document.add_object(dictionary! { "NeedsRendering" => true, "Fields" => Vec::<Object>::new() });
    document.catalog_mut().unwrap().set("AcroForm", form_id);
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();

    let (_, reason) = expect_rejected(files_to_pdf(&[("form.pdf".to_string(), bytes)], &Limits::default()));

    assert!(reason.contains("XFA"), "{reason}");
}

#[test]
fn missing_page_content_is_rejected() {
    let mut document = Document::load_mem(&build_pdf("lost", &[(100, 100), (100, 100)])).unwrap();
    let page_id = document.get_pages()[&2];
    let content_id = document.get_dictionary(page_id).unwrap().get(b"Contents").unwrap().as_reference().unwrap();
    document.objects.remove(&content_id);
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();

    let (_, reason) = expect_rejected(files_to_pdf(&[("lost.pdf".to_string(), bytes)], &Limits::default()));

    assert!(reason.contains("page 2"), "{reason}");
}

#[test]
fn page_count_mismatch_is_rejected() {
    let mut document = Document::load_mem(&build_pdf("count", &[(100, 100), (100, 100)])).unwrap();
    let pages_id = document.catalog().unwrap().get(b"Pages").unwrap().as_reference().unwrap();
    document.get_dictionary_mut(pages_id).unwrap().set("Count", 3);
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();

    let (_, reason) = expect_rejected(files_to_pdf(&[("count.pdf".to_string(), bytes)], &Limits::default()));

    assert!(reason.contains("declares 3 pages but contains 2"), "{reason}");
}

// MIME structure

#[test]
fn message_without_attachment_has_no_document() {
    let skipped = expect_no_document(message_to_pdf(&message(&text_part("just text")), &Limits::default()));

    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].is_body());
}

#[test]
fn message_without_headers_has_no_document() {
    expect_no_document(message_to_pdf(b"", &Limits::default()));
}

#[test]
fn pdf_as_root_part_is_faxed() {
    let root = part(
        "application/pdf; name=\"scan0001.pdf\"",
        None,
        &build_pdf("scan", &[(595, 842)]),
    );

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
    assert_eq!(converted.parts[0].name, "scan0001.pdf");
}

#[test]
fn apple_mail_inline_pdf_is_faxed() {
    let inline_pdf = part(
        "application/pdf; x-unix-mode=0644; x-mac-type=50444620; name=\"Invoice 12.pdf\"",
        Some("inline; filename=\"Invoice 12.pdf\""),
        &build_pdf("apple", &[(612, 792), (612, 792)]),
    );
    let html = "Content-Type: text/html; charset=us-ascii\r\n\r\n<html><body>see</body></html>\r\n".to_string();
    let mixed = multipart("mixed", "apple-mixed", &[html.clone(), inline_pdf, html]);
    let root = multipart("alternative", "apple-alt", &[text_part("see attached"), mixed]);

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(converted.pages, 2);
    let names: Vec<&str> = converted.parts.iter().map(|report| report.name.as_str()).collect();
    assert_eq!(names, vec![BODY_NAME, BODY_NAME, "Invoice 12.pdf", BODY_NAME]);
}

#[test]
fn octet_stream_pdf_without_disposition_is_faxed() {
    let root = multipart(
        "mixed",
        "b",
        &[
            text_part("hi"),
            part("application/octet-stream; name=\"SCAN.PDF\"", None, &build_pdf("o", &[(100, 100)])),
        ],
    );

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
    assert_eq!(converted.parts[1].detected, "application/pdf");
}

#[test]
fn invalid_media_type_is_sniffed() {
    let root = multipart(
        "mixed",
        "b",
        &[text_part("hi"), part("application-x-gzip", Some("attachment"), &build_pdf("g", &[(100, 100)]))],
    );

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
    assert_eq!(converted.parts[1].name, "attachment-2");
}

#[test]
fn forwarded_message_documents_in_order() {
    let inner = message(&multipart(
        "mixed",
        "inner",
        &[text_part("original"), pdf_attachment("inner.pdf", &build_pdf("inner", &[(200, 200)]))],
    ));
    let forwarded = format!(
        "Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n{}\r\n",
        String::from_utf8(inner).unwrap()
    );
    let root = multipart(
        "mixed",
        "outer",
        &[
            text_part("fwd"),
            forwarded,
            pdf_attachment("outer.pdf", &build_pdf("outer", &[(300, 300)])),
        ],
    );

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(page_sizes(&converted.pdf), vec![(612.0, 792.0); 2]);
    let document = Document::load_mem(&converted.pdf).unwrap();
    let pages: Vec<_> = document.get_pages().into_values().collect();
    let first = String::from_utf8_lossy(&document.get_page_content(pages[0])).into_owned();
    let second = String::from_utf8_lossy(&document.get_page_content(pages[1])).into_owned();
    assert!(first.contains("inner page 1"), "{first}");
    assert!(second.contains("outer page 1"), "{second}");
}

#[test]
fn signed_message_faxes_signed_content() {
    let signed_content =
        multipart("mixed", "content", &[text_part("signed"), pdf_attachment("signed.pdf", &build_pdf("s", &[(100, 100)]))]);
    let signature = part(
        "application/pkcs7-signature; name=\"smime.p7s\"",
        Some("attachment; filename=\"smime.p7s\""),
        b"not really a signature",
    );
    let root = format!(
        "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"sig\"\r\n\r\n\
         --sig\r\n{signed_content}--sig\r\n{signature}--sig--\r\n"
    );

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
    assert_eq!(skip_reason(&converted.parts, "smime.p7s"), "signature");
}

#[test]
fn encrypted_message_is_rejected() {
    let root = "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"e\"\r\n\r\n\
        --e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\
        --e\r\nContent-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n--e--\r\n";

    let (file, reason) = expect_rejected(message_to_pdf(&message(root), &Limits::default()));

    assert_eq!(file, "");
    assert!(reason.contains("encrypted"), "{reason}");
}

#[test]
fn opaque_smime_is_rejected() {
    let root = part(
        "application/pkcs7-mime; smime-type=signed-data; name=\"smime.p7m\"",
        Some("attachment; filename=\"smime.p7m\""),
        b"0\x82\x01\x00",
    );

    let (file, reason) = expect_rejected(message_to_pdf(&message(&root), &Limits::default()));

    assert_eq!(file, "smime.p7m");
    assert!(reason.contains("S/MIME"), "{reason}");
}

#[test]
fn vcard_and_calendar_are_skipped() {
    let root = multipart(
        "mixed",
        "b",
        &[
            text_part("hi"),
            "Content-Type: text/vcard; name=\"kim.vcf\"\r\n\r\nBEGIN:VCARD\r\nEND:VCARD\r\n".to_string(),
            "Content-Type: text/calendar; method=REQUEST\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".to_string(),
            pdf_attachment("doc.pdf", &build_pdf("d", &[(100, 100)])),
        ],
    );

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
    assert_eq!(skip_reason(&converted.parts, "kim.vcf"), "vCard");
    assert_eq!(skip_reason(&converted.parts, "attachment-3"), "calendar");
}

#[test]
fn cid_image_skipped_but_pdf_faxed() {
    let html = "Content-Type: text/html\r\n\r\n<img src=\"cid:logo@example.com\">\r\n".to_string();
    let mut logo = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\x02\0\0\0\x02\0".to_vec();
    logo.extend_from_slice(&[0; 32]);
    let image = format!(
        "Content-ID: <logo@example.com>\r\n{}",
        part("image/png; name=\"image001.png\"", Some("inline; filename=\"image001.png\""), &logo)
    );
    let related = multipart("related", "rel", &[html, image]);
    let root =
        multipart("mixed", "mix", &[related, pdf_attachment("real.pdf", &build_pdf("r", &[(100, 100)]))]);

    let converted = message_to_pdf(&message(&root), &unlimited_images()).unwrap();

    assert_eq!(converted.pages, 1);
    assert_eq!(skip_reason(&converted.parts, "image001.png"), "image referenced by the HTML body");
}

#[test]
fn too_many_parts_rejected() {
    let parts: Vec<String> = (0..20).map(|n| text_part(&format!("part {n}"))).collect();
    let root = multipart("mixed", "many", &parts);
    let limits = Limits { max_parts: 10, ..Limits::default() };

    let (file, reason) = expect_rejected(message_to_pdf(&message(&root), &limits));

    assert_eq!(file, "");
    assert!(reason.contains("more than 10 MIME parts"), "{reason}");
}

#[test]
fn deep_nesting_rejected() {
    let mut root = pdf_attachment("deep.pdf", &build_pdf("deep", &[(100, 100)]));
    for level in 0..10 {
        root = multipart("mixed", &format!("level{level}"), &[root]);
    }
    let limits = Limits { max_depth: 5, ..Limits::default() };

    let (_, reason) = expect_rejected(message_to_pdf(&message(&root), &limits));
    assert!(reason.contains("nested more than 5 levels"), "{reason}");

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();
    assert_eq!(converted.pages, 1);
}

#[test]
fn unnamed_attachment_gets_numbered_name() {
    let root = multipart(
        "mixed",
        "b",
        &[text_part("hi"), part("application/pdf", Some("attachment"), &build_pdf("u", &[(100, 100)]))],
    );

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(converted.parts[1].name, "attachment-2");
}

#[test]
fn unsupported_kinds_rejected_with_reason() {
    let cases: &[(&str, &[u8], &str)] = &[
        ("fax.tif", b"II*\0\x08\0\0\0", "the TIFF is damaged"),
        ("letter.docx", b"", "the file is not a valid Word document"),
        ("files.zip", b"PK\x03\x04rest", "archives cannot be faxed"),
        ("setup.exe", b"MZ\x90\0", "executable files cannot be faxed"),
        ("IMG_0001.HEIC", b"\0\0\0\x18ftypheic", "HEIC photos cannot be faxed"),
    ];
    for &(name, data, expected) in cases {
        let data = if data.is_empty() { b"x".as_slice() } else { data };
        let (file, reason) = expect_rejected(files_to_pdf(&[(name.to_string(), data.to_vec())], &Limits::default()));
        assert_eq!(file, name);
        assert!(reason.starts_with(expected), "{name}: {reason}");
    }
}

#[test]
fn files_skip_signatures() {
    let files = vec![
        ("doc.pdf".to_string(), build_pdf("d", &[(100, 100)])),
        ("signature.asc".to_string(), b"-----BEGIN PGP SIGNATURE-----\n".to_vec()),
    ];

    let converted = files_to_pdf(&files, &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
    assert_eq!(skip_reason(&converted.parts, "signature.asc"), "signature");
}

// Samples of real-world messages

#[test]
fn eml_html_related_logo_plus_attachment() {
    for name in ["html-related-inline-logo-plus-attachment.eml", "alternative-related-inline-logo-plus-attachment.eml"] {
        let eml = sample(&format!("eml/{name}"));

        let skipped = expect_no_document(message_to_pdf(&eml, &Limits::default()));
        assert_eq!(skip_reason(&skipped, "kigaaldcbanejcbi.png"), "image referenced by the HTML body", "{name}");
        assert!(skip_reason(&skipped, "attach2.png").contains("below the minimum"), "{name}");

        // Without the pixel minimum the attachment is faxed, but the logo is not.
        let converted = message_to_pdf(&eml, &unlimited_images()).unwrap();
        assert_eq!(converted.pages, 1, "{name}");
        assert_eq!(skip_reason(&converted.parts, "kigaaldcbanejcbi.png"), "image referenced by the HTML body");
    }
}

#[test]
fn eml_unquoted_tspecials_name_truncated_pdf() {
    let eml = sample("eml/unquoted-tspecials-pdf-name-cdo.eml");

    let (file, reason) = expect_rejected(message_to_pdf(&eml, &Limits::default()));

    // The sanitised sample keeps only the first 524 bytes of the invoice.
    assert_eq!(file, "Invoice_(100200300400500).pdf");
    assert!(reason.contains("damaged"), "{reason}");
}

#[test]
fn eml_bad_final_boundary_finds_attachment() {
    let eml = sample("eml/bad-final-boundary.eml");

    let (file, reason) = expect_rejected(message_to_pdf(&eml, &Limits::default()));

    assert_eq!(file, "foo_9E5D72.zip");
    assert!(reason.contains("archives"), "{reason}");
}

#[test]
fn eml_malformed_base64_decoded_leniently() {
    let eml = sample("eml/malformed-base64-attachment.eml");

    let (file, reason) = expect_rejected(message_to_pdf(&eml, &Limits::default()));

    assert_eq!(file, "some.doc");
    assert!(reason.contains("not a valid Word document"), "{reason}");
    assert!(reason.contains("transfer encoding is damaged"), "{reason}");
}

#[test]
fn eml_attachment_as_root_part() {
    let eml = sample("eml/attachment-as-root-part.eml");

    let skipped = expect_no_document(message_to_pdf(&eml, &Limits::default()));
    assert!(skip_reason(&skipped, "screenshot.png").contains("23x31 pixels"));

    let converted = message_to_pdf(&eml, &unlimited_images()).unwrap();
    assert_eq!(converted.pages, 1);
    assert!(converted.parts.iter().any(|part| part.name == "screenshot.png" && part.outcome == PartOutcome::Faxed { pages: 1 }));
}

#[test]
fn eml_single_part_image_sniffed() {
    let eml = sample("eml/single-part-image-no-disposition.eml");

    let converted = message_to_pdf(&eml, &unlimited_images()).unwrap();

    // Declared image/jpeg, but the content is a PNG.
    let part = converted.parts.iter().find(|part| part.name == "favicon.jpg").unwrap();
    assert_eq!(part.detected, "image/png");
    assert_eq!(part.outcome, PartOutcome::Faxed { pages: 1 });
}

#[test]
fn eml_raw_utf8_file_name() {
    let eml = sample("eml/raw-8bit-utf8-filename.eml");

    let (file, _) = expect_rejected(message_to_pdf(&eml, &Limits::default()));

    assert_eq!(file, "管理.doc");
}

#[test]
fn eml_signed_pgp_skips_signature() {
    let eml = sample("eml/multipart-signed-pgp.eml");

    let skipped = expect_no_document(message_to_pdf(&eml, &Limits::default()));

    assert_eq!(skip_reason(&skipped, "signature.asc"), "signature");
}

#[test]
fn eml_without_documents() {
    for name in [
        "broken-rfc822-attachment.eml",
        "empty-rfc822-part-8bit.eml",
        "empty-multipart-alternative-outlook.eml",
        "multipart-without-boundary.eml",
        "mixed-related-alternative-nesting.eml",
        "base64-extra-character.eml",
    ] {
        let eml = sample(&format!("eml/{name}"));
        match message_to_pdf(&eml, &Limits::default()) {
            Err(DocumentError::NoDocument { .. }) => {}
            other => panic!("{name}: expected no document, got {other:?}"),
        }
    }
}

// Pixel budget of a message

/// Encodes a white grey image of `width` x `height` pixels in `format`.
fn encoded_image(width: u32, height: u32, format: ::image::ImageFormat) -> Vec<u8> {
    let image = ::image::GrayImage::from_pixel(width, height, ::image::Luma([255]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn png_attachment(name: &str, data: &[u8]) -> String {
    part(&format!("image/png; name=\"{name}\""), Some(&format!("attachment; filename=\"{name}\"")), data)
}

#[test]
fn images_over_message_pixel_budget_rejected() {
    // Three images of 90,000 pixels each. Each fits the budget of 200,000 alone, and
    // the third passes it after the first two.
    let png = encoded_image(300, 300, ::image::ImageFormat::Png);
    let root = multipart(
        "mixed",
        "b",
        &[
            text_part("three scans"),
            png_attachment("first.png", &png),
            png_attachment("second.png", &png),
            png_attachment("third.png", &png),
        ],
    );
    let limits = Limits { max_message_pixels: 200_000, ..Limits::default() };

    let error = message_to_pdf(&message(&root), &limits).unwrap_err();

    let reply = error.smtp_reply();
    assert_eq!(reply.code, 550, "{}", reply.text);
    assert_eq!(reply.status, "5.6.1");
    assert!(reply.text.starts_with("cannot fax third.png: "), "{}", reply.text);
    assert!(reply.text.contains("more than the maximum of 200000 pixels together"), "{}", reply.text);

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();
    assert_eq!(converted.pages, 3, "the default budget takes all three");
}

#[test]
fn each_image_alone_fits_pixel_budget() {
    let png = encoded_image(300, 300, ::image::ImageFormat::Png);
    let limits = Limits { max_message_pixels: 200_000, ..Limits::default() };

    for name in ["first.png", "second.png", "third.png"] {
        let root = multipart("mixed", "b", &[text_part("one scan"), png_attachment(name, &png)]);
        let converted = message_to_pdf(&message(&root), &limits).unwrap();
        assert_eq!(converted.pages, 1, "{name}");
    }
}

#[test]
fn ccitt_tiff_pages_count_against_pixel_budget() {
    // Three G3 pages of 1728 x 2200 pixels: 11.4 million together.
    let tiff = sample("tiff/pillow-g3-fine-multipage-pagecount0.tif");
    let files = vec![("fax.tif".to_string(), tiff)];

    let limits = Limits { max_message_pixels: 5_000_000, ..Limits::default() };
    let (file, reason) = expect_rejected(files_to_pdf(&files, &limits));
    assert_eq!(file, "fax.tif");
    assert!(reason.contains("maximum of 5000000 pixels"), "{reason}");

    let limits = Limits { max_message_pixels: 12_000_000, ..Limits::default() };
    assert_eq!(files_to_pdf(&files, &limits).unwrap().pages, 3);
}

#[test]
fn passed_through_jpeg_not_counted_in_pixel_budget() {
    let jpeg = encoded_image(300, 300, ::image::ImageFormat::Jpeg);
    let png = encoded_image(300, 300, ::image::ImageFormat::Png);
    let limits = Limits { max_message_pixels: 100_000, ..Limits::default() };

    let files = vec![
        ("photo1.jpg".to_string(), jpeg.clone()),
        ("photo2.jpg".to_string(), jpeg),
        ("scan.png".to_string(), png.clone()),
    ];
    assert_eq!(files_to_pdf(&files, &limits).unwrap().pages, 3);

    let files = vec![("scan1.png".to_string(), png.clone()), ("scan2.png".to_string(), png)];
    let (file, _) = expect_rejected(files_to_pdf(&files, &limits));
    assert_eq!(file, "scan2.png");
}

#[test]
fn unreadable_forward_reported_with_or_without_final_crlf() {
    // mail-parser returns the broken part as text without the extra CR LF, and as a
    // message without header fields with it. Both must be reported the same way.
    let eml = sample("eml/broken-rfc822-attachment.eml");
    let mut with_extra_crlf = eml.clone();
    with_extra_crlf.extend_from_slice(b"\r\n");

    for (label, raw) in [("as saved", eml), ("with an extra CR LF", with_extra_crlf)] {
        let error = message_to_pdf(&raw, &Limits::default()).unwrap_err();
        let reply = error.smtp_reply();
        assert_eq!(reply.code, 554, "{label}: {}", reply.text);
        assert!(reply.text.contains("skipped: broken.eml (forwarded message that cannot be read)"), "{label}: {}", reply.text);

        let DocumentError::NoDocument { skipped } = error else {
            panic!("{label}: expected no document");
        };
        assert_eq!(skip_reason(&skipped, "broken.eml"), "forwarded message that cannot be read", "{label}");
        let report = skipped.iter().find(|part| part.name == "broken.eml").unwrap();
        assert_eq!(report.detected, "message/rfc822", "{label}");
    }
}

// Panics and the pool

#[test]
fn panic_in_conversion_rejects_document() {
    let files = vec![("boom.pdf".to_string(), super::kind::tests::PANIC_TRIGGER.to_vec())];

    let (file, reason) = expect_rejected(files_to_pdf(&files, &Limits::default()));

    assert_eq!(file, "boom.pdf");
    assert!(reason.contains("internal error"), "{reason}");
}

#[tokio::test]
async fn pool_converts_message() {
    let root = multipart("mixed", "b", &[text_part("hi"), pdf_attachment("a.pdf", &build_pdf("a", &[(100, 100)]))]);

    let converted = convert_message(message(&root), Arc::new(Limits::default())).await.unwrap();

    assert_eq!(converted.pages, 1);
}

#[tokio::test]
async fn pool_turns_panic_into_error() {
    let result = convert_message(MESSAGE_PANIC_TRIGGER.to_vec(), Arc::new(Limits::default())).await;

    match result {
        Err(DocumentError::Internal(message)) => assert!(message.contains("triggered by a test"), "{message}"),
        other => panic!("expected an internal error, got {other:?}"),
    }
}

#[tokio::test]
async fn pool_panic_in_document_names_file() {
    let root = multipart(
        "mixed",
        "b",
        &[text_part("hi"), part("application/pdf; name=\"boom.pdf\"", Some("attachment"), super::kind::tests::PANIC_TRIGGER)],
    );

    let result = convert_message(message(&root), Arc::new(Limits::default())).await;

    match result {
        Err(DocumentError::Rejected { file, .. }) => assert_eq!(file, "boom.pdf"),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn pool_full_is_busy() {
    let workers = u32::try_from(pool::workers()).unwrap();
    let _all_workers = pool::POOL.acquire_many(workers).await.unwrap();
    let root = multipart("mixed", "b", &[pdf_attachment("a.pdf", &build_pdf("a", &[(100, 100)]))]);
    let limits = Limits { queue_timeout: Duration::from_millis(20), ..Limits::default() };

    let result = convert_message(message(&root), Arc::new(limits)).await;

    assert!(matches!(result, Err(DocumentError::Busy)), "expected busy, got {:?}", result.map(|c| c.parts));
}

