//! TIFF files, fax TIFFs above all, as PDF pages of the same physical size.
//!
//! The image file directories (IFDs) are walked here with loop detection and budgets:
//! every IFD in the chain is a page, whatever the PageNumber and SubfileType tags contain. CCITT data
//! (Modified Huffman, Group 3 1-D and 2-D, Group 4) is passed through undecoded as
//! `/CCITTFaxDecode` image data, one image per strip, after [`ccitt`] has decoded it with
//! the parameters the PDF will carry. The Compression and T4Options tags are not trusted:
//! data labelled Group 3 that only decodes as Modified Huffman or without EOL codes is
//! passed through with the parameters that decode it, and data that decodes with none
//! is rejected. Other compressions are decoded with the `tiff` crate and embedded with
//! Flate, except old-style JPEG (Compression 6), which is rejected.
//!
//! A page is as wide as ImageWidth / XResolution and as high as ImageLength /
//! YResolution, because fax pixels are not square. A page without a usable resolution
//! is taken as 204 x 196 dpi when it is 1728 pixels wide (the fax width), else 72 dpi.

mod ccitt;

use std::collections::HashSet;
use std::io::Cursor;

use ::tiff::ColorType;
use ::tiff::decoder::{Decoder, DecodingResult};
use lopdf::{Stream, dictionary};
use tracing::{debug, warn};

use super::Limits;
use super::image::{ImagePage, MAX_DOCUMENT_PIXELS, MAX_PAGE_PIXELS, PlacedImage, build_document, flate_image};
use super::kind::Refusal;
use super::limits::PixelBudget;
use super::pdf::PdfPages;

use ccitt::Params as CcittParams;
use ccitt::fill_row;

/// Maximum entries in one IFD. Real files have 10 to 40; 65535 fit the count field.
const MAX_IFD_ENTRIES: u16 = 1000;

/// Maximum strips of one page.
const MAX_STRIPS: usize = 100_000;

/// Maximum strips of a CCITT page passed through as one image each. A page of more
/// strips (some writers put one row in each) is transcoded into one image, because a
/// page drawn from thousands of images is slow to render.
const MAX_PASS_THROUGH_STRIPS: usize = 64;

/// The width of a fax page at 204 dpi (ITU-T T.4 A4 width), used to guess the resolution
/// of a TIFF that states none.
const FAX_WIDTH: u32 = 1728;

/// The largest page side in points that Acrobat accepts (200 inches). Larger pages are
/// shrunk to it.
const MAX_PAGE_POINTS: f64 = 14_400.0;

const TAG_WIDTH: u16 = 256;
const TAG_LENGTH: u16 = 257;
const TAG_BITS_PER_SAMPLE: u16 = 258;
const TAG_COMPRESSION: u16 = 259;
const TAG_PHOTOMETRIC: u16 = 262;
const TAG_FILL_ORDER: u16 = 266;
const TAG_STRIP_OFFSETS: u16 = 273;
const TAG_ORIENTATION: u16 = 274;
const TAG_SAMPLES_PER_PIXEL: u16 = 277;
const TAG_ROWS_PER_STRIP: u16 = 278;
const TAG_STRIP_BYTE_COUNTS: u16 = 279;
const TAG_X_RESOLUTION: u16 = 282;
const TAG_Y_RESOLUTION: u16 = 283;
const TAG_T4_OPTIONS: u16 = 292;
const TAG_RESOLUTION_UNIT: u16 = 296;
const TAG_TILE_WIDTH: u16 = 322;

/// One IFD entry: its type, count and the file offset of its value.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: u16,
    field_type: u16,
    count: u32,
    value_offset: usize,
}

/// A TIFF file's byte order and bytes.
struct File<'a> {
    data: &'a [u8],
    little_endian: bool,
}

/// The tags of one page that the converter uses.
#[derive(Debug, Clone)]
struct Page {
    index: usize,
    width: u32,
    length: u32,
    bits_per_sample: u32,
    samples_per_pixel: u32,
    compression: u32,
    photometric: u32,
    fill_order: u32,
    orientation: u16,
    rows_per_strip: u32,
    strip_offsets: Vec<u32>,
    strip_byte_counts: Vec<u32>,
    resolution: Option<(f64, f64)>,
    t4_options: u32,
    tiled: bool,
}

impl<'a> File<'a> {
    fn u16_at(&self, at: usize) -> Option<u16> {
        let bytes: [u8; 2] = self.data.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.little_endian { u16::from_le_bytes(bytes) } else { u16::from_be_bytes(bytes) })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let bytes: [u8; 4] = self.data.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.little_endian { u32::from_le_bytes(bytes) } else { u32::from_be_bytes(bytes) })
    }

    /// Reads the entries of the IFD at `offset` and the offset of the next IFD.
    fn ifd(&self, offset: usize) -> Option<(Vec<Entry>, usize)> {
        let count = self.u16_at(offset)?;
        if count > MAX_IFD_ENTRIES {
            return None;
        }
        let mut entries = Vec::with_capacity(usize::from(count));
        for index in 0..usize::from(count) {
            let at = offset + 2 + index * 12;
            let field_type = self.u16_at(at + 2)?;
            let count = self.u32_at(at + 4)?;
            let size = u64::from(field_size(field_type)) * u64::from(count);
            let value_offset = if size <= 4 { at + 8 } else { self.u32_at(at + 8)? as usize };
            entries.push(Entry { tag: self.u16_at(at)?, field_type, count, value_offset });
        }
        let next = self.u32_at(offset + 2 + usize::from(count) * 12)? as usize;
        Some((entries, next))
    }

    /// Reads up to `max` integer values of an entry (BYTE, SHORT, LONG or IFD).
    fn integers(&self, entry: &Entry, max: usize) -> Option<Vec<u32>> {
        let count = (entry.count as usize).min(max);
        (0..count)
            .map(|index| match entry.field_type {
                1 | 7 => self.data.get(entry.value_offset + index).map(|&byte| u32::from(byte)),
                3 => self.u16_at(entry.value_offset + index * 2).map(u32::from),
                4 | 13 => self.u32_at(entry.value_offset + index * 4),
                _ => None,
            })
            .collect()
    }

    fn rational(&self, entry: &Entry) -> Option<f64> {
        match entry.field_type {
            5 => {
                let numerator = self.u32_at(entry.value_offset)?;
                let denominator = self.u32_at(entry.value_offset + 4)?;
                (denominator != 0).then(|| f64::from(numerator) / f64::from(denominator))
            }
            3 | 4 => self.integers(entry, 1)?.first().map(|&value| f64::from(value)),
            _ => None,
        }
    }
}

/// Returns the size in bytes of one value of a TIFF field type (0 for unknown types).
fn field_size(field_type: u16) -> u32 {
    match field_type {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 => 8,
        _ => 0,
    }
}

fn damaged(detail: &str) -> Refusal {
    Refusal::Rejected(format!("the TIFF is damaged: {detail}"))
}

/// Converts a TIFF file to PDF pages, one per IFD. Every page takes its pixels from
/// `message_pixels`, CCITT pages included.
pub(crate) fn load(
    data: &[u8],
    limits: &Limits,
    page_budget: u32,
    message_pixels: &PixelBudget,
) -> Result<PdfPages, Refusal> {
    let little_endian = match data.get(..4) {
        Some(b"II*\0") => true,
        Some(b"MM\0*") => false,
        Some(b"II+\0") | Some(b"MM\0+") => {
            return Err(Refusal::Rejected("BigTIFF files are not supported; send a PDF or a classic TIFF".to_string()));
        }
        _ => return Err(Refusal::Rejected("the file is not a TIFF: it has no TIFF header".to_string())),
    };
    let file = File { data, little_endian };
    let pages = read_pages(&file, page_budget.min(limits.max_pages))?;
    let structure_starts = structure_starts(&file, &pages);

    let mut total_pixels = 0u64;
    let mut built = Vec::with_capacity(pages.len());
    for page in &pages {
        let pixels = u64::from(page.width) * u64::from(page.length);
        if page.width == 0 || page.length == 0 {
            return Err(damaged(&format!("page {} has no pixels", page.index + 1)));
        }
        if pixels > MAX_PAGE_PIXELS {
            return Err(Refusal::Rejected(format!(
                "page {} has {}x{} pixels, more than the maximum of {MAX_PAGE_PIXELS} pixels",
                page.index + 1,
                page.width,
                page.length
            )));
        }
        total_pixels += pixels;
        if total_pixels > MAX_DOCUMENT_PIXELS {
            return Err(Refusal::Rejected(format!(
                "its pages have more than the maximum of {MAX_DOCUMENT_PIXELS} pixels together"
            )));
        }
        message_pixels.take(page.width, page.length)?;
        let images = match page.compression {
            2..=4 => ccitt_images(&file, page, &structure_starts)?,
            6 => {
                return Err(Refusal::Rejected(
                    "old-style JPEG compression in TIFF (Compression 6) is not supported; send a PDF".to_string(),
                ));
            }
            _ => vec![decoded_image(data, page)?],
        };
        let (width, height) = page_size(page);
        built.push(ImagePage { width, height, images: orient(images, page, width, height) });
    }
    debug!(pages = built.len(), "TIFF converted");
    Ok(build_document(built))
}

/// Walks the IFD chain. A chain that returns to an IFD, leaves the file or has more than
/// `page_budget` IFDs is not converted.
fn read_pages(file: &File<'_>, page_budget: u32) -> Result<Vec<Page>, Refusal> {
    let mut offset = file.u32_at(4).ok_or_else(|| damaged("the header is cut off"))? as usize;
    let mut visited = HashSet::new();
    let mut pages = Vec::new();
    while offset != 0 {
        if !visited.insert(offset) {
            return Err(damaged("its chain of image directories (IFDs) contains a loop"));
        }
        if pages.len() >= page_budget as usize {
            return Err(Refusal::TooManyPages { pages: page_budget.saturating_add(1) });
        }
        let index = pages.len();
        let (entries, next) =
            file.ifd(offset).ok_or_else(|| damaged(&format!("image directory {} cannot be read", index + 1)))?;
        pages.push(page_tags(file, index, &entries)?);
        offset = next;
    }
    if pages.is_empty() {
        return Err(damaged("it has no image directory"));
    }
    Ok(pages)
}

fn page_tags(file: &File<'_>, index: usize, entries: &[Entry]) -> Result<Page, Refusal> {
    let find = |tag: u16| entries.iter().find(|entry| entry.tag == tag);
    let integer = |tag: u16| find(tag).and_then(|entry| file.integers(entry, 1)).and_then(|values| values.first().copied());
    let missing = |name: &str| damaged(&format!("page {} has no {name}", index + 1));

    let width = integer(TAG_WIDTH).ok_or_else(|| missing("ImageWidth"))?;
    let length = integer(TAG_LENGTH).ok_or_else(|| missing("ImageLength"))?;
    let strip_offsets = find(TAG_STRIP_OFFSETS).and_then(|entry| file.integers(entry, MAX_STRIPS)).unwrap_or_default();
    let strip_byte_counts =
        find(TAG_STRIP_BYTE_COUNTS).and_then(|entry| file.integers(entry, MAX_STRIPS)).unwrap_or_default();
    let x = find(TAG_X_RESOLUTION).and_then(|entry| file.rational(entry));
    let y = find(TAG_Y_RESOLUTION).and_then(|entry| file.rational(entry));
    let unit = integer(TAG_RESOLUTION_UNIT).unwrap_or(2);
    let per_inch = match unit {
        2 => Some(1.0),
        3 => Some(2.54),
        _ => None,
    };
    let resolution = match (x, y, per_inch) {
        (Some(x), Some(y), Some(factor)) if x >= 1.0 && y >= 1.0 && x.is_finite() && y.is_finite() => {
            Some((x * factor, y * factor))
        }
        _ => None,
    };
    Ok(Page {
        index,
        width,
        length,
        bits_per_sample: integer(TAG_BITS_PER_SAMPLE).unwrap_or(1),
        samples_per_pixel: integer(TAG_SAMPLES_PER_PIXEL).unwrap_or(1),
        compression: integer(TAG_COMPRESSION).unwrap_or(1),
        photometric: integer(TAG_PHOTOMETRIC).unwrap_or(0),
        fill_order: integer(TAG_FILL_ORDER).unwrap_or(1),
        orientation: integer(TAG_ORIENTATION).and_then(|value| u16::try_from(value).ok()).unwrap_or(1),
        rows_per_strip: integer(TAG_ROWS_PER_STRIP).unwrap_or(u32::MAX).clamp(1, length.max(1)),
        strip_offsets,
        strip_byte_counts,
        resolution,
        t4_options: integer(TAG_T4_OPTIONS).unwrap_or(0),
        tiled: find(TAG_TILE_WIDTH).is_some(),
    })
}

/// Returns the sorted file offsets where IFDs, strips and tag values start. A strip whose
/// byte count is missing or zero ends at the next of them, or at the end of the file.
fn structure_starts(file: &File<'_>, pages: &[Page]) -> Vec<usize> {
    let mut starts: Vec<usize> = pages
        .iter()
        .flat_map(|page| page.strip_offsets.iter().map(|&offset| offset as usize))
        .collect();
    let mut offset = file.u32_at(4).unwrap_or(0) as usize;
    let mut visited = HashSet::new();
    while offset != 0 && visited.insert(offset) {
        starts.push(offset);
        let Some((entries, next)) = file.ifd(offset) else {
            break;
        };
        starts.extend(entries.iter().filter(|entry| entry.count as u64 * u64::from(field_size(entry.field_type)) > 4).map(|entry| entry.value_offset));
        offset = next;
    }
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// Returns the bytes of one strip, with its byte count clamped to the file and a missing
/// or zero count replaced by the distance to the next structure.
fn strip_bytes<'a>(file: &File<'a>, page: &Page, strip: usize, structure_starts: &[usize]) -> Result<&'a [u8], Refusal> {
    let start = *page
        .strip_offsets
        .get(strip)
        .ok_or_else(|| damaged(&format!("page {} lacks the offset of strip {}", page.index + 1, strip + 1)))?
        as usize;
    if start >= file.data.len() {
        return Err(damaged(&format!("strip {} of page {} is outside the file", strip + 1, page.index + 1)));
    }
    let declared = page.strip_byte_counts.get(strip).copied().unwrap_or(0) as usize;
    let end = if declared == 0 {
        let next = structure_starts.iter().copied().find(|&offset| offset > start).unwrap_or(file.data.len());
        warn!(page = page.index + 1, strip = strip + 1, "TIFF strip has no byte count; reading to the next structure");
        next.min(file.data.len())
    } else {
        start.saturating_add(declared).min(file.data.len())
    };
    Ok(&file.data[start..end])
}

/// Builds one `/CCITTFaxDecode` image per strip, each placed in its band of the page's
/// unit square.
fn ccitt_images(file: &File<'_>, page: &Page, structure_starts: &[usize]) -> Result<Vec<PlacedImage>, Refusal> {
    let page_number = page.index + 1;
    if page.bits_per_sample != 1 || page.samples_per_pixel != 1 {
        return Err(damaged(&format!("page {page_number} has CCITT compression but not one bit per pixel")));
    }
    if page.tiled {
        return Err(Refusal::Rejected(format!(
            "page {page_number} of the TIFF stores CCITT data in tiles, which is not supported; send a PDF"
        )));
    }
    let strip_count = page.length.div_ceil(page.rows_per_strip) as usize;
    if strip_count > MAX_STRIPS {
        return Err(damaged(&format!("page {page_number} has too many strips")));
    }
    let mut strips = Vec::with_capacity(strip_count);
    for strip in 0..strip_count {
        let bytes = strip_bytes(file, page, strip, structure_starts)?;
        // PDF readers take CCITT data most significant bit first (FillOrder 1).
        let bytes: Vec<u8> = if page.fill_order == 2 { bytes.iter().map(|byte| byte.reverse_bits()).collect() } else { bytes.to_vec() };
        let rows = page.rows_per_strip.min(page.length - strip as u32 * page.rows_per_strip);
        strips.push((bytes, rows));
    }

    let (params, k) = match choose_params(page, &strips, false) {
        Some(chosen) => chosen,
        None => {
            let (params, _) = choose_params(page, &strips, true).ok_or_else(|| {
                Refusal::Rejected(format!("the TIFF is damaged: the fax data of page {page_number} cannot be decoded"))
            })?;
            warn!(page = page_number, ?params, "CCITT data decodes only leniently; transcoding it");
            return Ok(vec![transcode(page, &strips, params)]);
        }
    };
    if strips.len() > MAX_PASS_THROUGH_STRIPS {
        debug!(page = page_number, strips = strips.len(), "CCITT page has many strips; transcoding it");
        return Ok(vec![transcode(page, &strips, params)]);
    }
    debug!(page = page_number, ?params, k, strips = strips.len(), "CCITT data passed through");

    let mut images = Vec::with_capacity(strips.len());
    let mut first_row = 0u32;
    for (bytes, rows) in strips {
        let mut parms = dictionary! {
            "K" => i64::from(k),
            "Columns" => i64::from(page.width),
            "Rows" => i64::from(rows),
        };
        if params.byte_align {
            parms.set("EncodedByteAlign", true);
        }
        if params.end_of_line {
            parms.set("EndOfLine", true);
        }
        // TIFF MinIsBlack (1) data shows its white runs black, which BlackIs1 does.
        if page.photometric == 1 {
            parms.set("BlackIs1", true);
        }
        let dict = dictionary! {
            "Type" => "XObject",
            "Subtype" => "Image",
            "Width" => i64::from(page.width),
            "Height" => i64::from(rows),
            "ColorSpace" => "DeviceGray",
            "BitsPerComponent" => 1,
            "Filter" => "CCITTFaxDecode",
            "DecodeParms" => parms,
        };
        // The strip's band of the image: rows first_row .. first_row + rows from the top.
        let length = f64::from(page.length);
        let bottom = 1.0 - f64::from(first_row + rows) / length;
        let band = [1.0, 0.0, 0.0, f64::from(rows) / length, 0.0, bottom];
        images.push(PlacedImage { stream: Stream::new(dict, bytes).with_compression(false), matrix: band });
        first_row += rows;
    }
    Ok(images)
}

/// Finds the decoding parameters under which every strip decodes to its rows, trying
/// the ones the tags name first. Returns them with the `/K` to write.
fn choose_params(page: &Page, strips: &[(Vec<u8>, u32)], lenient: bool) -> Option<(CcittParams, i32)> {
    let params = |k: i32, byte_align: bool, end_of_line: bool| CcittParams {
        k,
        byte_align,
        end_of_line,
        columns: page.width,
        rows: 0,
        lenient,
    };
    let modified_huffman = params(0, true, false);
    let one_d_eol = params(0, false, true);
    let one_d_bare = params(0, false, false);
    let candidates = match page.compression {
        4 => vec![params(-1, false, false)],
        2 => vec![modified_huffman, one_d_bare],
        _ if page.t4_options & 1 == 1 => vec![params(1, false, true), params(1, false, false)],
        _ => vec![one_d_eol, one_d_bare, modified_huffman],
    };
    for candidate in candidates {
        let mut max_group = 1;
        let decodes = strips.iter().all(|(bytes, rows)| {
            let strip_params = CcittParams { rows: *rows, ..candidate };
            match ccitt::decode(bytes, strip_params, |_| {}) {
                Ok(decoded) => {
                    max_group = max_group.max(decoded.max_group);
                    true
                }
                Err(error) => {
                    debug!(page = page.index + 1, ?candidate, %error, "CCITT data does not decode with these parameters");
                    false
                }
            }
        });
        if decodes {
            if candidate.k == 0 && page.compression == 3 && candidate != one_d_eol {
                warn!(page = page.index + 1, ?candidate, "TIFF data labelled Group 3 decodes only as another variant");
            }
            let k = if candidate.k > 0 { max_group.max(1) as i32 } else { candidate.k };
            return Some((candidate, k));
        }
    }
    None
}

/// Decodes CCITT strips with `params` into one Flate image of the whole page, for data
/// that PDF readers would not decode the way libtiff does.
fn transcode(page: &Page, strips: &[(Vec<u8>, u32)], params: CcittParams) -> PlacedImage {
    let row_bytes = page.width.div_ceil(8) as usize;
    let mut samples = vec![0u8; row_bytes * page.length as usize];
    let mut rows = samples.chunks_mut(row_bytes);
    for (bytes, strip_rows) in strips {
        // choose_params decoded every strip with these parameters already.
        let _ = ccitt::decode(bytes, CcittParams { rows: *strip_rows, ..params }, |changes| {
            if let Some(row) = rows.next() {
                fill_row(changes, page.width, row);
            }
        });
    }
    // TIFF MinIsBlack (1) data shows its white runs black.
    if page.photometric == 1 {
        samples.iter_mut().for_each(|byte| *byte = !*byte);
    }
    PlacedImage {
        stream: flate_image(page.width, page.length, "DeviceGray", 1, &samples),
        matrix: [1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
    }
}

/// Decodes a page with the `tiff` crate into a Flate image.
fn decoded_image(data: &[u8], page: &Page) -> Result<PlacedImage, Refusal> {
    let page_number = page.index + 1;
    let failed = |error: ::tiff::TiffError| {
        warn!(page = page_number, %error, "TIFF page cannot be decoded");
        match error {
            ::tiff::TiffError::UnsupportedError(detail) => {
                Refusal::Rejected(format!("page {page_number} of the TIFF uses an unsupported feature: {detail}"))
            }
            _ => damaged(&format!("page {page_number} cannot be decoded")),
        }
    };
    let mut limits = ::tiff::decoder::Limits::default();
    limits.decoding_buffer_size = (MAX_PAGE_PIXELS * 4) as usize;
    limits.intermediate_buffer_size = (MAX_PAGE_PIXELS * 4) as usize;
    let mut decoder = Decoder::new(Cursor::new(data)).map_err(failed)?.with_limits(limits);
    decoder.seek_to_image(page.index).map_err(failed)?;
    let (width, height) = decoder.dimensions().map_err(failed)?;
    let color = decoder.colortype().map_err(failed)?;
    let result = decoder.read_image().map_err(failed)?;

    let samples = match result {
        DecodingResult::U8(samples) => samples,
        // 16-bit samples keep their high byte.
        DecodingResult::U16(samples) => samples.iter().map(|&sample| (sample >> 8) as u8).collect(),
        _ => return Err(Refusal::Rejected(format!("page {page_number} of the TIFF has samples that are not 8 or 16-bit integers"))),
    };
    let pixels = width as usize * height as usize;

    let stream = match color {
        ColorType::Gray(1) => flate_image(width, height, "DeviceGray", 1, &samples),
        ColorType::Gray(8 | 16) => flate_image(width, height, "DeviceGray", 8, &samples),
        ColorType::RGB(8 | 16) => flate_image(width, height, "DeviceRGB", 8, &samples),
        ColorType::CMYK(8 | 16) => flate_image(width, height, "DeviceCMYK", 8, &samples),
        ColorType::GrayA(8 | 16) => {
            let gray: Vec<u8> = samples.chunks_exact(2).map(|pair| blend(pair[0], pair[1])).collect();
            flate_image(width, height, "DeviceGray", 8, &gray)
        }
        ColorType::RGBA(8 | 16) => {
            let rgb: Vec<u8> = samples
                .chunks_exact(4)
                .flat_map(|pixel| [blend(pixel[0], pixel[3]), blend(pixel[1], pixel[3]), blend(pixel[2], pixel[3])])
                .collect();
            flate_image(width, height, "DeviceRGB", 8, &rgb)
        }
        ColorType::Palette(bits @ (1 | 2 | 4 | 8)) => {
            let rgb = expand_palette(data, page, &samples, width, u32::from(bits), pixels)?;
            flate_image(width, height, "DeviceRGB", 8, &rgb)
        }
        other => {
            return Err(Refusal::Rejected(format!(
                "page {page_number} of the TIFF has an unsupported colour type ({other:?}); send a PDF"
            )));
        }
    };
    Ok(PlacedImage { stream, matrix: [1.0, 0.0, 0.0, 1.0, 0.0, 0.0] })
}

fn blend(value: u8, alpha: u8) -> u8 {
    let (value, alpha) = (u32::from(value), u32::from(alpha));
    ((value * alpha + 255 * (255 - alpha) + 127) / 255) as u8
}

/// Expands palette indexes (rows packed to whole bytes) to RGB with the ColorMap, whose
/// 16-bit entries list all reds, then all greens, then all blues.
fn expand_palette(data: &[u8], page: &Page, samples: &[u8], width: u32, bits: u32, pixels: usize) -> Result<Vec<u8>, Refusal> {
    let little_endian = data.starts_with(b"II");
    let file = File { data, little_endian };
    let entries = {
        let mut offset = file.u32_at(4).unwrap_or(0) as usize;
        let mut found = None;
        for _ in 0..=page.index {
            let Some((entries, next)) = file.ifd(offset) else { break };
            found = Some(entries);
            offset = next;
        }
        found.unwrap_or_default()
    };
    let colors = 1usize << bits;
    let map = entries
        .iter()
        .find(|entry| entry.tag == 320)
        .and_then(|entry| file.integers(entry, colors * 3))
        .filter(|map| map.len() == colors * 3)
        .ok_or_else(|| damaged(&format!("page {} has a palette without a ColorMap", page.index + 1)))?;
    let row_bytes = (width * bits).div_ceil(8) as usize;
    let mut rgb = Vec::with_capacity(pixels * 3);
    for row in samples.chunks(row_bytes) {
        for column in 0..width as usize {
            let bit = column * bits as usize;
            let byte = row.get(bit / 8).copied().unwrap_or(0);
            let index = (usize::from(byte) >> (8 - bits as usize - bit % 8)) & (colors - 1);
            rgb.extend([map[index], map[colors + index], map[2 * colors + index]].map(|value| (value >> 8) as u8));
        }
    }
    Ok(rgb)
}

/// Returns the page size in points from the resolution, with the sides swapped for the
/// orientations that turn the image a quarter.
fn page_size(page: &Page) -> (f64, f64) {
    let (x_dpi, y_dpi) = page.resolution.unwrap_or(if page.width == FAX_WIDTH { (204.0, 196.0) } else { (72.0, 72.0) });
    let mut width = f64::from(page.width) / x_dpi * 72.0;
    let mut height = f64::from(page.length) / y_dpi * 72.0;
    // A page larger than PDF readers accept is shrunk, keeping its proportions.
    let largest = width.max(height);
    if largest > MAX_PAGE_POINTS {
        width *= MAX_PAGE_POINTS / largest;
        height *= MAX_PAGE_POINTS / largest;
    }
    if page.orientation > 4 && page.orientation <= 8 { (height, width) } else { (width, height) }
}

/// Places each image's band matrix inside the page, applying the TIFF Orientation tag
/// the way EXIF orientation is applied to photos.
fn orient(images: Vec<PlacedImage>, page: &Page, width: f64, height: f64) -> Vec<PlacedImage> {
    let whole = super::image::orientation_matrix(page.orientation, [0.0, 0.0, width, height]);
    images
        .into_iter()
        .map(|image| PlacedImage { matrix: concat(image.matrix, whole), stream: image.stream })
        .collect()
}

/// Returns the matrix that applies `first`, then `second` (PDF order: `second cm first cm`).
fn concat(first: [f64; 6], second: [f64; 6]) -> [f64; 6] {
    let [a1, b1, c1, d1, e1, f1] = first;
    let [a2, b2, c2, d2, e2, f2] = second;
    [
        a1 * a2 + b1 * c2,
        a1 * b2 + b1 * d2,
        c1 * a2 + d1 * c2,
        c1 * b2 + d1 * d2,
        e1 * a2 + f1 * c2 + e2,
        e1 * b2 + f1 * d2 + f2,
    ]
}
