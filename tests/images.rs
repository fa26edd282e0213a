//! Photos and pictures as fax pages: JPEG passed through with its EXIF orientation,
//! decoded formats composited over white, every image fitted to the portrait paper
//! (turned when wider than tall), and images in a message body left out.

use std::io::{Cursor, Read};

use base64::Engine;
use faxgate::config::Paper;
use faxgate::documents::{Limits, PartOutcome, files_to_pdf, message_to_pdf};
use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use lopdf::{Document, Stream};

/// Margin the converter keeps around an image, in points.
const MARGIN: f64 = 18.0;

fn encode(image: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn gradient(width: u32, height: u32) -> image::DynamicImage {
    image::DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| Rgb([(x * 4) as u8, (y * 4) as u8, 128])))
}

/// The one page of a converted image: its size, its image XObject and the matrix of the
/// `cm` operator that places it.
struct ImagePage {
    width: f64,
    height: f64,
    image: Stream,
    matrix: [f64; 6],
}

fn convert_one(name: &str, data: Vec<u8>, limits: &Limits) -> ImagePage {
    let converted = files_to_pdf(&[(name.to_string(), data)], limits).unwrap();
    assert_eq!(converted.pages, 1, "{name}");
    let document = Document::load_mem(&converted.pdf).unwrap();
    let page_id = *document.get_pages().values().next().unwrap();
    let page = document.get_dictionary(page_id).unwrap();
    let media_box: Vec<f64> =
        page.get(b"MediaBox").unwrap().as_array().unwrap().iter().map(|value| value.as_float().unwrap() as f64).collect();
    let resources = page.get_deref(b"Resources", &document).unwrap().as_dict().unwrap();
    let xobjects = resources.get_deref(b"XObject", &document).unwrap().as_dict().unwrap();
    let (_, reference) = xobjects.iter().next().unwrap();
    let image = document.get_object(reference.as_reference().unwrap()).unwrap().as_stream().unwrap().clone();
    let content = document.get_page_content(page_id);
    let text = String::from_utf8(content).unwrap();
    let numbers: Vec<f64> = text.split_whitespace().skip(1).take(6).map(|number| number.parse().unwrap()).collect();
    ImagePage { width: media_box[2], height: media_box[3], image, matrix: numbers.try_into().unwrap() }
}

/// Returns the box `[left, bottom, right, top]` that the matrix maps the unit square to.
fn placed_box(matrix: [f64; 6]) -> [f64; 4] {
    let [a, b, c, d, e, f] = matrix;
    let corners = [(e, f), (a + e, b + f), (c + e, d + f), (a + c + e, b + d + f)];
    let xs = corners.map(|(x, _)| x);
    let ys = corners.map(|(_, y)| y);
    let min = |values: [f64; 4]| values.iter().copied().fold(f64::MAX, f64::min);
    let max = |values: [f64; 4]| values.iter().copied().fold(f64::MIN, f64::max);
    [min(xs), min(ys), max(xs), max(ys)]
}

/// Checks that the image lies inside the margins, centred, with its aspect ratio, and
/// touches the margins on one axis.
fn assert_fitted(page: &ImagePage, displayed: (f64, f64), what: &str) {
    let [left, bottom, right, top] = placed_box(page.matrix);
    let epsilon = 0.01;
    assert!(left >= MARGIN - epsilon, "{what}: inside the left margin");
    assert!(bottom >= MARGIN - epsilon, "{what}: inside the bottom margin");
    assert!(right <= page.width - MARGIN + epsilon, "{what}: inside the right margin");
    assert!(top <= page.height - MARGIN + epsilon, "{what}: inside the top margin");
    assert!((left - (page.width - right)).abs() < epsilon, "{what}: centred across");
    assert!((bottom - (page.height - top)).abs() < epsilon, "{what}: centred up and down");
    let aspect = (right - left) / (top - bottom);
    assert!((aspect - displayed.0 / displayed.1).abs() < 0.01, "{what}: aspect {aspect}");
    let touches = (left - MARGIN).abs() < epsilon || (bottom - MARGIN).abs() < epsilon;
    assert!(touches, "{what}: fills the paper on one axis");
}

#[test]
fn jpeg_passed_through_undecoded() {
    let jpeg = encode(&gradient(64, 48), ImageFormat::Jpeg);

    let page = convert_one("photo.jpg", jpeg.clone(), &Limits::default());

    assert_eq!(page.image.content, jpeg);
    assert_eq!(page.image.dict.get(b"Filter").unwrap().as_name().unwrap(), b"DCTDecode");
    assert_eq!(page.image.dict.get(b"Width").unwrap().as_i64().unwrap(), 64);
    assert_eq!(page.image.dict.get(b"ColorSpace").unwrap().as_name().unwrap(), b"DeviceRGB");
    // Wider than tall: turned a quarter turn counter-clockwise on a portrait Letter
    // page, so the image's x axis runs up the page and its top edge is at the left.
    assert_eq!((page.width, page.height), (612.0, 792.0));
    let [a, b, c, d, _, _] = page.matrix;
    assert_eq!((a, d), (0.0, 0.0), "a quarter turn has no scale on the diagonal");
    assert!(b > 0.0, "the image's x axis runs up the page: {:?}", page.matrix);
    assert!(c < 0.0, "the image's y axis runs to the left: {:?}", page.matrix);
    assert_fitted(&page, (48.0, 64.0), "jpeg");
}

/// Inserts an APP1 Exif segment with the given orientation after the SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&u32::from(orientation).to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut segment = b"Exif\0\0".to_vec();
    segment.extend_from_slice(&tiff);

    let mut output = jpeg[..2].to_vec();
    output.extend_from_slice(&[0xFF, 0xE1]);
    output.extend_from_slice(&((segment.len() + 2) as u16).to_be_bytes());
    output.extend_from_slice(&segment);
    output.extend_from_slice(&jpeg[2..]);
    output
}

#[test]
fn exif_orientation_turns_placement() {
    let jpeg = with_exif_orientation(&encode(&gradient(64, 48), ImageFormat::Jpeg), 6);

    let page = convert_one("camera.jpg", jpeg.clone(), &Limits::default());

    // Still the file's own bytes, turned by the matrix instead.
    assert_eq!(page.image.content, jpeg);
    // A quarter turn clockwise shows the 64 x 48 photo 48 wide and 64 high.
    assert_eq!((page.width, page.height), (612.0, 792.0));
    let [a, b, c, d, _, _] = page.matrix;
    assert_eq!((a, d), (0.0, 0.0), "a quarter turn has no scale on the diagonal");
    assert!(b < 0.0, "stored columns run down the page: {:?}", page.matrix);
    assert!(c > 0.0, "stored rows run right to left, the first at the right: {:?}", page.matrix);
    assert_fitted(&page, (48.0, 64.0), "turned jpeg");
}

fn decoded_samples(stream: &Stream) -> Vec<u8> {
    assert_eq!(stream.dict.get(b"Filter").unwrap().as_name().unwrap(), b"FlateDecode");
    let mut samples = Vec::new();
    flate2::read::ZlibDecoder::new(stream.content.as_slice()).read_to_end(&mut samples).unwrap();
    samples
}

#[test]
fn png_alpha_composited_over_white() {
    // Left half transparent, right half opaque black.
    let image = RgbaImage::from_fn(4, 2, |x, _| if x < 2 { Rgba([0, 0, 0, 0]) } else { Rgba([0, 0, 0, 255]) });
    let png = encode(&image::DynamicImage::ImageRgba8(image), ImageFormat::Png);

    let page = convert_one("logo.png", png, &Limits::default());

    let samples = decoded_samples(&page.image);
    // No colour, so one gray sample per pixel.
    assert_eq!(page.image.dict.get(b"ColorSpace").unwrap().as_name().unwrap(), b"DeviceGray");
    assert_eq!(samples, vec![255, 255, 0, 0, 255, 255, 0, 0]);
    // Wider than tall, so turned onto the portrait page.
    assert_eq!((page.width, page.height), (612.0, 792.0));
    assert_fitted(&page, (2.0, 4.0), "png");
}

#[test]
fn gif_bmp_webp_convert_fitted() {
    let source = gradient(30, 50);
    let cases = [("anim.gif", ImageFormat::Gif), ("scan.bmp", ImageFormat::Bmp), ("photo.webp", ImageFormat::WebP)];
    for (name, format) in cases {
        let data = encode(&source, format);
        let limits = Limits { paper: Paper::A4, ..Limits::default() };

        let page = convert_one(name, data, &limits);

        assert!((page.width - 595.28).abs() < 0.01, "{name}: A4 width {}", page.width);
        assert!((page.height - 841.89).abs() < 0.01, "{name}: A4 height {}", page.height);
        assert_eq!(decoded_samples(&page.image).len(), 30 * 50 * 3, "{name}");
        assert_fitted(&page, (30.0, 50.0), name);
    }
}

#[test]
fn damaged_image_rejected() {
    let mut png = encode(&gradient(40, 40), ImageFormat::Png);
    png.truncate(png.len() / 2);
    let result = files_to_pdf(&[("cut.png".to_string(), png)], &Limits::default());
    let error = result.map(|converted| converted.pages).unwrap_err().to_string();
    assert!(error.contains("cut.png"), "{error}");
    assert!(error.contains("damaged"), "{error}");

    let jpeg = encode(&gradient(40, 40), ImageFormat::Jpeg);
    let cut = jpeg[..jpeg.len() - 200].to_vec();
    let error = files_to_pdf(&[("cut.jpg".to_string(), cut)], &Limits::default()).unwrap_err().to_string();
    assert!(error.contains("damaged"), "{error}");
}

#[test]
fn heic_rejected_with_reason() {
    let error = files_to_pdf(&[("IMG_0001.HEIC".to_string(), b"\0\0\0\x18ftypheic\0\0\0\0".to_vec())], &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("HEIC photos cannot be faxed; send a JPEG or a PDF"), "{error}");
}

/// Builds a two-page PDF with lopdf.
fn two_page_pdf() -> Vec<u8> {
    use lopdf::{Object, dictionary};
    let mut document = Document::with_version("1.4");
    let pages_id = document.new_object_id();
    let mut kids = Vec::new();
    for _ in 0..2 {
        let content = document.add_object(Stream::new(dictionary! {}, b"0 0 m 100 100 l S".to_vec()));
        let page = document.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        });
        kids.push(Object::Reference(page));
    }
    document.objects.insert(pages_id, Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => 2 }));
    let catalog = document.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    document.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();
    bytes
}

#[test]
fn inline_logo_and_signature_not_faxed() {
    let base64 = |data: &[u8]| base64::engine::general_purpose::STANDARD.encode(data);
    // A logo big enough to pass the pixel minimum, so only the cid: reference keeps it
    // out, and a signature image below the minimum.
    let logo = encode(&gradient(300, 200), ImageFormat::Png);
    let signature = encode(&gradient(120, 40), ImageFormat::Png);
    let pdf = two_page_pdf();
    let message = format!(
        "From: alice@example.com\r\nTo: 14155550100@fax.example.net\r\nSubject: contract\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"mixed\"\r\n\r\n\
         --mixed\r\nContent-Type: multipart/related; boundary=\"related\"\r\n\r\n\
         --related\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <p>Please fax the contract.</p><img src=\"cid:logo@example.com\"><p>Alice</p>\r\n\
         --related\r\nContent-Type: image/png; name=\"image001.png\"\r\nContent-ID: <logo@example.com>\r\n\
         Content-Disposition: inline; filename=\"image001.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --related\r\nContent-Type: image/png; name=\"signature.png\"\r\n\
         Content-Disposition: inline; filename=\"signature.png\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --related--\r\n\
         --mixed\r\nContent-Type: application/pdf; name=\"contract.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"contract.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --mixed--\r\n",
        base64(&logo),
        base64(&signature),
        base64(&pdf),
    );

    let converted = message_to_pdf(message.as_bytes(), &Limits::default()).unwrap();

    assert_eq!(converted.pages, 2);
    let outcome = |name: &str| converted.parts.iter().find(|part| part.name == name).unwrap().outcome.clone();
    assert_eq!(outcome("contract.pdf"), PartOutcome::Faxed { pages: 2 });
    assert!(matches!(outcome("image001.png"), PartOutcome::Skipped { .. }));
    assert!(matches!(outcome("signature.png"), PartOutcome::Skipped { .. }));
}

#[test]
fn tiny_webp_in_message_skipped() {
    let webp = encode(&gradient(20, 20), ImageFormat::WebP);
    let pdf = two_page_pdf();
    let base64 = |data: &[u8]| base64::engine::general_purpose::STANDARD.encode(data);
    let message = format!(
        "From: alice@example.com\r\nTo: 14155550100@fax.example.net\r\nSubject: fax\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: image/webp; name=\"icon.webp\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
         --b\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        base64(&webp),
        base64(&pdf),
    );

    let converted = message_to_pdf(message.as_bytes(), &Limits::default()).unwrap();

    assert_eq!(converted.pages, 2);
    let icon = converted.parts.iter().find(|part| part.name == "icon.webp").unwrap();
    assert!(matches!(&icon.outcome, PartOutcome::Skipped { reason } if reason.contains("20x20 pixels")), "{icon:?}");
}
