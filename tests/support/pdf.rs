//! Test documents: PDFs built with lopdf, their page sizes read back, and MIME
//! messages built with lettre.

#![allow(dead_code)]

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Message, MultiPart, SinglePart};
use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};

/// Builds a PDF with one page per entry of `sizes` (width, height in points). Each page
/// shows its number as text, so pages can be distinguished.
pub fn make_pdf(sizes: &[(f32, f32)]) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut kids = Vec::new();
    for (i, (width, height)) in sizes.iter().enumerate() {
        let content = Content {
            operations: vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 24.into()]),
                Operation::new("Td", vec![72.into(), 72.into()]),
                Operation::new("Tj", vec![Object::string_literal(format!("Page {}", i + 1))]),
                Operation::new("ET", vec![]),
            ],
        };
        let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), (*width).into(), (*height).into()],
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(pages_id, Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }));
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

pub const LETTER: (f32, f32) = (612.0, 792.0);
pub const A4: (f32, f32) = (595.0, 842.0);
pub const LEGAL: (f32, f32) = (612.0, 1008.0);

/// Returns the width and height of every page's MediaBox, in page order. A MediaBox
/// missing on the page itself fails the test, because faxgate writes it on each page.
pub fn page_sizes(pdf: &[u8]) -> Vec<(f32, f32)> {
    let doc = Document::load_mem(pdf).expect("output is a readable PDF");
    doc.get_pages()
        .values()
        .map(|id| {
            let page = doc.get_dictionary(*id).unwrap();
            let media_box = page.get(b"MediaBox").expect("page has its own MediaBox").as_array().unwrap();
            let n: Vec<f32> = media_box.iter().map(|o| o.as_float().unwrap()).collect();
            (n[2] - n[0], n[3] - n[1])
        })
        .collect()
}

/// Returns every page's own /Rotate, in page order. A page without one fails the test,
/// because faxgate writes it on each page.
pub fn page_rotations(pdf: &[u8]) -> Vec<i64> {
    let doc = Document::load_mem(pdf).expect("output is a readable PDF");
    doc.get_pages()
        .values()
        .map(|id| doc.get_dictionary(*id).unwrap().get(b"Rotate").expect("page has its own Rotate").as_i64().unwrap())
        .collect()
}

/// Returns, for every page in order, the scale of the `q a b c d e f cm` that fitting
/// to the paper put before its content (the length of (a, b)), or 1 for a page that
/// was left as it is.
pub fn fit_scales(pdf: &[u8]) -> Vec<f64> {
    let doc = Document::load_mem(pdf).expect("output is a readable PDF");
    doc.get_pages()
        .values()
        .map(|id| {
            let page = doc.get_dictionary(*id).unwrap();
            let Ok(Object::Array(streams)) = page.get(b"Contents") else {
                return 1.0;
            };
            let first = doc.get_object(streams[0].as_reference().unwrap()).unwrap().as_stream().unwrap();
            let text = String::from_utf8_lossy(&first.content).into_owned();
            let words: Vec<&str> = text.split_whitespace().collect();
            if words.len() < 8 || words[0] != "q" || words[7] != "cm" {
                return 1.0;
            }
            let a: f64 = words[1].parse().unwrap();
            let b: f64 = words[2].parse().unwrap();
            a.hypot(b)
        })
        .collect()
}

/// Builds a message with a text body and the given PDF attachments, in that order.
pub fn message_with_pdfs(from: &str, to: &str, subject: &str, pdfs: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut parts = MultiPart::mixed().singlepart(SinglePart::plain("Please fax the attached.".to_string()));
    for (name, bytes) in pdfs {
        parts = parts.singlepart(
            Attachment::new(name.to_string()).body(bytes.clone(), ContentType::parse("application/pdf").unwrap()),
        );
    }
    Message::builder()
        .from(from.parse().unwrap())
        .to(to.parse().unwrap())
        .subject(subject)
        .multipart(parts)
        .unwrap()
        .formatted()
}
