//! Raster images as fax pages, and the page building shared with the TIFF converter.
//!
//! A JPEG is passed through undecoded as `/DCTDecode` data. Its size, components and
//! EXIF orientation are read from the markers, and the orientation is applied by the
//! placement matrix rather than by re-encoding. PNG, GIF (first frame), BMP and WebP are
//! decoded, composited over white where they have alpha, and embedded with Flate.
//!
//! Each image gets one portrait page of `paper`, with a margin of [`MARGIN_POINTS`]. An
//! image wider than tall is turned a quarter turn counter-clockwise, so its top is at
//! the left edge, as PDF pages are turned by [`super::pagefit`]. It is scaled up or down
//! to the largest size that fits, keeping its aspect ratio, and centred.

use std::io::{Cursor, Write};

use flate2::Compression;
use flate2::write::ZlibEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use lopdf::{Dictionary, Document, Object, Stream, dictionary};
use tracing::{debug, warn};

use super::Limits;
use super::kind::{Kind, Refusal};
use super::pagefit;
use super::limits::PixelBudget;
use super::pdf::PdfPages;
use crate::config::Paper;

/// Margin around an image on its page: a quarter inch, inside the printable area of fax
/// machines.
pub(crate) const MARGIN_POINTS: f64 = 18.0;

/// Maximum pixels (width times height) of one image or TIFF page. A decoded image takes
/// up to 4 bytes per pixel, so this caps one decode near 200 MB. 50 million pixels is
/// an 8-inch by 10-inch page scanned at 790 dpi, far beyond a fax's 204 x 391 dpi.
pub(crate) const MAX_PAGE_PIXELS: u64 = 50_000_000;

/// Maximum pixels of all pages of one TIFF together: the pages of the default 200-page
/// limit at fax "fine" resolution (1728 x 2200) use 760 million. All documents of a
/// message together are bounded by `max_message_pixels`.
pub(crate) const MAX_DOCUMENT_PIXELS: u64 = 1_000_000_000;

/// An image XObject placed on a page by a transformation matrix from the unit square.
pub(crate) struct PlacedImage {
    pub(crate) stream: Stream,
    pub(crate) matrix: [f64; 6],
}

/// One page of images.
pub(crate) struct ImagePage {
    /// Page width in points.
    pub(crate) width: f64,
    /// Page height in points.
    pub(crate) height: f64,
    pub(crate) images: Vec<PlacedImage>,
}

/// Converts a JPEG, PNG, GIF, BMP or WebP file to one page. Decoded formats take their
/// pixels from `message_pixels`, but a JPEG is passed through and takes none.
pub(crate) fn load(
    kind: Kind,
    data: &[u8],
    limits: &Limits,
    page_budget: u32,
    message_pixels: &PixelBudget,
) -> Result<PdfPages, Refusal> {
    if page_budget == 0 {
        return Err(Refusal::TooManyPages { pages: 1 });
    }
    let (stream, size, orientation) = match kind {
        Kind::Jpeg => jpeg_stream(data)?,
        Kind::Png => decoded_stream(data, ImageFormat::Png, message_pixels)?,
        Kind::Gif => decoded_stream(data, ImageFormat::Gif, message_pixels)?,
        Kind::Bmp => decoded_stream(data, ImageFormat::Bmp, message_pixels)?,
        Kind::Webp => decoded_stream(data, ImageFormat::WebP, message_pixels)?,
        _ => return Err(Refusal::Rejected(format!("{} is not an image type", kind.mime_type()))),
    };
    let displayed = if orientation > 4 { (size.1, size.0) } else { size };
    let (width, height, matrix) = place_on_paper(limits.paper, displayed, orientation);
    debug!(?kind, width = size.0, height = size.1, orientation, "image placed on a page");
    Ok(build_document(vec![ImagePage { width, height, images: vec![PlacedImage { stream, matrix }] }]))
}

/// Builds a document of image pages, each with its attributes set and no `/Parent`, as
/// [`super::merge`] expects.
pub(crate) fn build_document(pages: Vec<ImagePage>) -> PdfPages {
    let mut document = Document::with_version("1.4");
    let mut page_ids = Vec::with_capacity(pages.len());
    for page in pages {
        let mut xobjects = Dictionary::new();
        let mut content = String::new();
        for (index, image) in page.images.into_iter().enumerate() {
            let name = format!("Im{index}");
            let id = document.add_object(image.stream);
            xobjects.set(name.as_bytes(), id);
            let matrix: Vec<String> = image.matrix.iter().map(|&value| number(value)).collect();
            content.push_str(&format!("q {} cm /{name} Do Q\n", matrix.join(" ")));
        }
        let content_id = document.add_object(Stream::new(Dictionary::new(), content.into_bytes()));
        let page_id = document.add_object(dictionary! {
            "Type" => "Page",
            "MediaBox" => vec![0.into(), 0.into(), Object::Real(page.width as f32), Object::Real(page.height as f32)],
            "Resources" => dictionary! { "XObject" => xobjects },
            "Contents" => content_id,
            "Rotate" => 0,
        });
        page_ids.push(page_id);
    }
    PdfPages { document, pages: page_ids }
}

/// Formats a number for a content stream: at most four decimals, no exponent.
fn number(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".to_string() } else { text.to_string() }
}

/// Returns the portrait page size and the matrix that draws an image stored with EXIF
/// `orientation` and `displayed` pixels wide and high (after orientation) upright on it,
/// or, when it is wider than tall, turned a quarter turn counter-clockwise.
pub(crate) fn place_on_paper(paper: Paper, displayed: (u32, u32), orientation: u16) -> (f64, f64, [f64; 6]) {
    let turned = displayed.0 > displayed.1;
    let on_page = if turned { (displayed.1, displayed.0) } else { displayed };
    let (page_width, page_height, frame) = fit_to_paper(paper, on_page);
    if !turned {
        return (page_width, page_height, orientation_matrix(orientation, frame));
    }
    // Draw the image upright in a landscape frame at the origin, then turn that frame
    // into the portrait one.
    let [left, bottom, frame_width, frame_height] = frame;
    let upright = orientation_matrix(orientation, [0.0, 0.0, frame_height, frame_width]);
    let turn = pagefit::concat(
        pagefit::quarter_turn_counterclockwise(frame_width),
        [1.0, 0.0, 0.0, 1.0, left, bottom],
    );
    (page_width, page_height, pagefit::concat(upright, turn))
}

/// Returns the portrait page size for an image of `displayed` pixels (after orientation
/// and any turn) and the frame `[x, y, width, height]` in points it is drawn into.
pub(crate) fn fit_to_paper(paper: Paper, displayed: (u32, u32)) -> (f64, f64, [f64; 4]) {
    let (page_width, page_height) = pagefit::paper_size(paper);
    let box_width = page_width - 2.0 * MARGIN_POINTS;
    let box_height = page_height - 2.0 * MARGIN_POINTS;
    let (pixels_wide, pixels_high) = (f64::from(displayed.0.max(1)), f64::from(displayed.1.max(1)));
    let scale = (box_width / pixels_wide).min(box_height / pixels_high);
    let (width, height) = (pixels_wide * scale, pixels_high * scale);
    let frame = [(page_width - width) / 2.0, (page_height - height) / 2.0, width, height];
    (page_width, page_height, frame)
}

/// Returns the matrix that draws an image stored with EXIF/TIFF `orientation` (1 to 8;
/// others count as 1) upright into `frame` (`[x, y, width, height]` of the displayed
/// image, in points).
///
/// The image's unit square has the first stored row at the top (v = 1). Each orientation
/// maps the stored column c = u and row r = 1 - v to displayed coordinates X (left to
/// right) and Y (top to bottom), both from 0 to 1; 6 is a quarter turn clockwise.
pub(crate) fn orientation_matrix(orientation: u16, frame: [f64; 4]) -> [f64; 6] {
    // (X, Y) as affine functions of (u, v): [coefficient of u, of v, constant].
    let (x, y): ([f64; 3], [f64; 3]) = match orientation {
        2 => ([-1.0, 0.0, 1.0], [0.0, -1.0, 1.0]),
        3 => ([-1.0, 0.0, 1.0], [0.0, 1.0, 0.0]),
        4 => ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
        5 => ([0.0, -1.0, 1.0], [1.0, 0.0, 0.0]),
        6 => ([0.0, 1.0, 0.0], [1.0, 0.0, 0.0]),
        7 => ([0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]),
        8 => ([0.0, -1.0, 1.0], [-1.0, 0.0, 1.0]),
        _ => ([1.0, 0.0, 0.0], [0.0, -1.0, 1.0]),
    };
    let [left, bottom, width, height] = frame;
    // Page x = left + X * width; page y = bottom + (1 - Y) * height.
    [
        x[0] * width,
        -y[0] * height,
        x[1] * width,
        -y[1] * height,
        left + x[2] * width,
        bottom + height - y[2] * height,
    ]
}

/// Compresses image samples with Flate into an image XObject.
pub(crate) fn flate_image(
    width: u32,
    height: u32,
    color_space: &str,
    bits_per_component: u8,
    samples: &[u8],
) -> Stream {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing to a Vec fails only when memory runs out, which aborts anyway.
    let _ = encoder.write_all(samples);
    let compressed = encoder.finish().unwrap_or_default();
    let dict = dictionary! {
        "Type" => "XObject",
        "Subtype" => "Image",
        "Width" => i64::from(width),
        "Height" => i64::from(height),
        "ColorSpace" => Object::Name(color_space.as_bytes().to_vec()),
        "BitsPerComponent" => i64::from(bits_per_component),
        "Filter" => "FlateDecode",
    };
    Stream::new(dict, compressed).with_compression(false)
}

fn check_pixels(width: u32, height: u32) -> Result<(), Refusal> {
    let pixels = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 {
        return Err(Refusal::Rejected("the image is damaged: it has no pixels".to_string()));
    }
    if pixels > MAX_PAGE_PIXELS {
        return Err(Refusal::Rejected(format!(
            "the image has {width}x{height} pixels, more than the maximum of {MAX_PAGE_PIXELS} pixels"
        )));
    }
    Ok(())
}

/// The facts of a JPEG read from its markers.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct JpegInfo {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) components: u8,
    /// The start-of-frame marker, 0xC0 to 0xCF.
    pub(crate) frame_marker: u8,
    pub(crate) precision: u8,
    /// EXIF orientation, 1 when absent.
    pub(crate) orientation: u16,
    /// An Adobe APP14 segment is present, which marks inverted CMYK data.
    pub(crate) adobe: bool,
}

/// Reads the markers up to the start of scan. `None` when they are damaged or there is
/// no frame or scan.
pub(crate) fn jpeg_info(data: &[u8]) -> Option<JpegInfo> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut info = JpegInfo { orientation: 1, ..JpegInfo::default() };
    let mut at = 2;
    loop {
        while *data.get(at)? == 0xFF && *data.get(at + 1)? == 0xFF {
            at += 1;
        }
        if *data.get(at)? != 0xFF {
            return None;
        }
        let marker = *data.get(at + 1)?;
        if matches!(marker, 0xD0..=0xD7 | 0x01) {
            at += 2;
            continue;
        }
        let length = usize::from(u16::from_be_bytes(data.get(at + 2..at + 4)?.try_into().ok()?));
        if length < 2 {
            return None;
        }
        let segment = data.get(at + 4..at + 2 + length)?;
        match marker {
            0xDA => return (info.components > 0).then_some(info),
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                info.frame_marker = marker;
                info.precision = *segment.first()?;
                info.height = u32::from(u16::from_be_bytes(segment.get(1..3)?.try_into().ok()?));
                info.width = u32::from(u16::from_be_bytes(segment.get(3..5)?.try_into().ok()?));
                info.components = *segment.get(5)?;
            }
            0xE1 if segment.starts_with(b"Exif\0\0") => {
                if let Some(orientation) = Orientation::from_exif_chunk(&segment[6..]) {
                    info.orientation = u16::from(orientation.to_exif());
                }
            }
            0xEE if segment.starts_with(b"Adobe") => info.adobe = true,
            _ => {}
        }
        at += 2 + length;
    }
}

/// Builds the DCT image XObject of a JPEG from its own bytes, unchanged.
fn jpeg_stream(data: &[u8]) -> Result<(Stream, (u32, u32), u16), Refusal> {
    let damaged = || Refusal::Rejected("the JPEG is damaged: its headers cannot be read".to_string());
    let info = jpeg_info(data).ok_or_else(damaged)?;
    // Baseline (C0), extended (C1) and progressive (C2) Huffman JPEGs of 8 bits are what
    // PDF readers decode; lossless, hierarchical and arithmetic-coded ones often not.
    if !matches!(info.frame_marker, 0xC0..=0xC2) || info.precision != 8 {
        return Err(Refusal::Rejected(
            "the JPEG uses 12-bit, lossless, hierarchical or arithmetic coding, which fax services cannot print; \
             save it as an ordinary JPEG or a PDF"
                .to_string(),
        ));
    }
    if !data.windows(2).rev().take(4096).any(|window| window == [0xFF, 0xD9]) {
        return Err(Refusal::Rejected("the JPEG is damaged: it is cut off before its end marker".to_string()));
    }
    check_pixels(info.width, info.height)?;
    let (color_space, decode) = match info.components {
        1 => ("DeviceGray", None),
        3 => ("DeviceRGB", None),
        // Adobe applications write CMYK JPEGs inverted, and mark them with APP14.
        4 if info.adobe => ("DeviceCMYK", Some(vec![1, 0, 1, 0, 1, 0, 1, 0])),
        4 => ("DeviceCMYK", None),
        other => return Err(Refusal::Rejected(format!("the JPEG has {other} colour components; send a PDF"))),
    };
    let mut dict = dictionary! {
        "Type" => "XObject",
        "Subtype" => "Image",
        "Width" => i64::from(info.width),
        "Height" => i64::from(info.height),
        "ColorSpace" => Object::Name(color_space.as_bytes().to_vec()),
        "BitsPerComponent" => 8,
        "Filter" => "DCTDecode",
    };
    if let Some(decode) = decode {
        dict.set("Decode", decode.into_iter().map(Object::Integer).collect::<Vec<_>>());
    }
    let stream = Stream::new(dict, data.to_vec()).with_compression(false);
    Ok((stream, (info.width, info.height), info.orientation))
}

/// Decodes a PNG, GIF, BMP or WebP and builds a Flate image XObject of it.
fn decoded_stream(
    data: &[u8],
    format: ImageFormat,
    message_pixels: &PixelBudget,
) -> Result<(Stream, (u32, u32), u16), Refusal> {
    let label = match format {
        ImageFormat::Png => "PNG",
        ImageFormat::Gif => "GIF",
        ImageFormat::Bmp => "BMP",
        _ => "WebP",
    };
    let damaged = |error: image::ImageError| {
        warn!(%error, format = %label, "image cannot be decoded");
        Refusal::Rejected(format!("the {label} image is damaged and cannot be decoded"))
    };
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PAGE_PIXELS * 4 + 64 * 1024 * 1024);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(damaged)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height)?;
    message_pixels.take(width, height)?;
    let orientation = decoder.orientation().map(|orientation| u16::from(orientation.to_exif())).unwrap_or(1);
    let image = DynamicImage::from_decoder(decoder).map_err(damaged)?;

    let rgb: Vec<u8> = image.into_rgba8().pixels().flat_map(|pixel| over_white(pixel.0)).collect();
    // A picture without colour, as most scans and many logos are, is sent as gray: a
    // third of the samples, and what a fax prints anyway.
    let is_gray = rgb.chunks_exact(3).all(|pixel| pixel[0] == pixel[1] && pixel[1] == pixel[2]);
    let stream = if is_gray {
        let gray: Vec<u8> = rgb.chunks_exact(3).map(|pixel| pixel[0]).collect();
        flate_image(width, height, "DeviceGray", 8, &gray)
    } else {
        flate_image(width, height, "DeviceRGB", 8, &rgb)
    };
    Ok((stream, (width, height), orientation))
}

/// Composites an RGBA pixel over white.
fn over_white([red, green, blue, alpha]: [u8; 4]) -> [u8; 3] {
    [blend(red, alpha), blend(green, alpha), blend(blue, alpha)]
}

fn blend(value: u8, alpha: u8) -> u8 {
    let (value, alpha) = (u32::from(value), u32::from(alpha));
    ((value * alpha + 255 * (255 - alpha) + 127) / 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(matrix: [f64; 6], (u, v): (f64, f64)) -> (f64, f64) {
        let [a, b, c, d, e, f] = matrix;
        (a * u + c * v + e, b * u + d * v + f)
    }

    #[test]
    fn orientation_moves_first_pixel() {
        // The first stored pixel is the top-left corner of the unit square (0, 1).
        let frame = [0.0, 0.0, 100.0, 200.0];
        let first = (0.0, 1.0);
        assert_eq!(apply(orientation_matrix(1, frame), first), (0.0, 200.0), "upright: top left");
        assert_eq!(apply(orientation_matrix(6, frame), first), (100.0, 200.0), "turned clockwise: top right");
        assert_eq!(apply(orientation_matrix(3, frame), first), (100.0, 0.0), "turned over: bottom right");
        assert_eq!(apply(orientation_matrix(8, frame), first), (0.0, 0.0), "turned anticlockwise: bottom left");
        assert_eq!(apply(orientation_matrix(2, frame), first), (100.0, 200.0), "mirrored: top right");
    }

    #[test]
    fn fit_keeps_aspect_and_centres() {
        let (width, height, [x, y, w, h]) = fit_to_paper(Paper::Letter, (500, 1000));
        assert_eq!((width, height), (612.0, 792.0), "portrait page");
        assert!((h / w - 2.0).abs() < 1e-9);
        assert!((x - (width - w - x)).abs() < 1e-9, "centred horizontally");
        assert!((y - (height - h - y)).abs() < 1e-9, "centred vertically");
        assert!(x >= MARGIN_POINTS - 1e-9, "left margin");
        assert!(y >= MARGIN_POINTS - 1e-9, "bottom margin");
    }

    #[test]
    fn wide_image_turned_counterclockwise() {
        let (width, height, matrix) = place_on_paper(Paper::Letter, (1000, 500), 1);
        assert_eq!((width, height), (612.0, 792.0), "portrait page");
        // The image's top-left corner (0, 1) lands at the bottom left of the drawn area
        // and its top-right corner (1, 1) at the top left.
        let (top_left, top_right) = (apply(matrix, (0.0, 1.0)), apply(matrix, (1.0, 1.0)));
        let (bottom_right, bottom_left) = (apply(matrix, (1.0, 0.0)), apply(matrix, (0.0, 0.0)));
        assert!(top_left.0 < bottom_left.0, "top edge left of the bottom edge: {matrix:?}");
        assert!(top_left.1 < top_right.1, "left edge at the bottom: {matrix:?}");
        assert!((top_left.0 - top_right.0).abs() < 1e-9, "top edge vertical: {matrix:?}");
        assert!((bottom_right.1 - top_right.1).abs() < 1e-9, "right edge at the top: {matrix:?}");
        for (x, y) in [top_left, top_right, bottom_left, bottom_right] {
            assert!((MARGIN_POINTS - 1e-9..=width - MARGIN_POINTS + 1e-9).contains(&x), "x {x} inside the margins");
            assert!((MARGIN_POINTS - 1e-9..=height - MARGIN_POINTS + 1e-9).contains(&y), "y {y} inside the margins");
        }
        let drawn_width = (bottom_left.0 - top_left.0).abs();
        let drawn_height = (top_right.1 - top_left.1).abs();
        assert!((drawn_height / drawn_width - 2.0).abs() < 1e-9, "aspect ratio kept");
        assert!((drawn_height - (height - 2.0 * MARGIN_POINTS)).abs() < 1e-9, "fills the height");
    }

    #[test]
    fn tall_image_not_turned() {
        let (_, _, matrix) = place_on_paper(Paper::A4, (500, 1000), 1);
        let top_left = apply(matrix, (0.0, 1.0));
        let bottom_right = apply(matrix, (1.0, 0.0));
        assert!(top_left.0 < bottom_right.0, "left edge at the left: {matrix:?}");
        assert!(top_left.1 > bottom_right.1, "top edge at the top: {matrix:?}");
    }

    #[test]
    fn alpha_composited_over_white() {
        assert_eq!(over_white([0, 0, 0, 0]), [255, 255, 255]);
        assert_eq!(over_white([0, 0, 0, 255]), [0, 0, 0]);
        assert_eq!(over_white([0, 0, 0, 128]), [127, 127, 127]);
    }

    #[test]
    fn jpeg_markers_read() {
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0, 2, 0, 3, 1, 1, 0x11, 0, 0xFF, 0xDA, 0, 2, 0xFF, 0xD9,
        ];
        let info = jpeg_info(&jpeg).unwrap();
        assert_eq!((info.width, info.height, info.components, info.orientation), (3, 2, 1, 1));
        assert_eq!(jpeg_info(&jpeg[..10]), None);
    }
}
