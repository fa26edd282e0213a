//! TIFF files, fax TIFFs above all, as PDF pages of the same physical size.
//!
//! The image file directories (IFDs) are walked here with loop detection and budgets:
//! every IFD in the chain is a page, whatever the PageNumber and SubfileType tags contain.
//! CCITT data (Modified Huffman, Group 3 1-D and 2-D, Group 4) is passed through
//! undecoded as `/CCITTFaxDecode` image data after [`ccitt`] has decoded it with the
//! parameters the PDF will carry. A page of one strip becomes one image of the strip's
//! bytes. The strips of a Group 3 page are joined into one image when the joined bytes
//! decode to the same rows, and otherwise into as few images as do. A Group 4 page of
//! several strips cannot be joined, because each strip codes its first row against a
//! white row, so its decoded rows are re-encoded as one Group 4 image and checked by
//! decoding it back. The Compression and T4Options tags are not trusted:
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
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use ::tiff::ColorType;
use ::tiff::decoder::{Decoder, DecodingResult};
use lopdf::{Stream, dictionary};
use tracing::{debug, warn};

use super::Limits;
use super::image::{ImagePage, MAX_DOCUMENT_PIXELS, MAX_PAGE_PIXELS, PlacedImage, build_document, flate_image};
use super::kind::Refusal;
use super::pagefit;
use super::limits::PixelBudget;
use super::pdf::PdfPages;

use ccitt::Params as CcittParams;
use ccitt::{Group4Encoder, fill_row, row_changes};

/// Maximum entries in one IFD. Real files have 10 to 40; 65535 fit the count field.
const MAX_IFD_ENTRIES: u16 = 1000;

/// Maximum strips of one page.
const MAX_STRIPS: usize = 100_000;

/// Maximum images of one CCITT page whose strips do not all join into one image. A page
/// that would need more (some writers put one row in each strip) is re-encoded as one
/// Group 4 image, because a page drawn from thousands of images is slow to render.
const MAX_PASS_THROUGH_STRIPS: usize = 64;

/// Maximum threads converting the pages of one fax TIFF. The conversion pool already
/// runs one conversion per CPU, so more threads would mostly compete with other jobs.
const MAX_PAGE_THREADS: usize = 2;

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

    // Pages are checked against the pixel limits in order, and only the pages before
    // the first that fails are converted, so the error returned is the first in page
    // order, as if each page were checked and converted in turn.
    let mut total_pixels = 0u64;
    let mut over_limit = None;
    for (position, page) in pages.iter().enumerate() {
        if let Err(refusal) =
            check_pixels(page, &mut total_pixels).and_then(|()| message_pixels.take(page.width, page.length))
        {
            over_limit = Some((position, refusal));
            break;
        }
    }
    let convertible = over_limit.as_ref().map_or(pages.len(), |(position, _)| *position);
    let mut built = Vec::with_capacity(convertible);
    for result in convert_pages(&file, &pages[..convertible], &structure_starts) {
        built.push(result?);
    }
    if let Some((_, refusal)) = over_limit {
        return Err(refusal);
    }
    debug!(pages = built.len(), "TIFF converted");
    Ok(build_document(built))
}

/// Checks a page's pixels against the page maximum, and adds them to `total_pixels`,
/// checked against the document maximum.
fn check_pixels(page: &Page, total_pixels: &mut u64) -> Result<(), Refusal> {
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
    *total_pixels += pixels;
    if *total_pixels > MAX_DOCUMENT_PIXELS {
        return Err(Refusal::Rejected(format!(
            "its pages have more than the maximum of {MAX_DOCUMENT_PIXELS} pixels together"
        )));
    }
    Ok(())
}

/// Converts pages and returns their results in page order, up to and including the
/// first that fails. A file whose pages are all CCITT (fax TIFFs) is converted by up to
/// [`MAX_PAGE_THREADS`] threads, each taking the next page, because checking fax data
/// takes most of the time. Such a page needs at most its strips, a bitmap of one bit per
/// pixel and its output, so memory stays bounded. Pages of other compressions may need
/// hundreds of megabytes to decode and are converted one at a time.
fn convert_pages(file: &File<'_>, pages: &[Page], structure_starts: &[usize]) -> Vec<Result<ImagePage, Refusal>> {
    let all_ccitt = pages.iter().all(|page| (2..=4).contains(&page.compression));
    let threads = if all_ccitt {
        std::thread::available_parallelism().map_or(1, |count| count.get()).min(MAX_PAGE_THREADS).min(pages.len())
    } else {
        1
    };
    if threads <= 1 {
        let mut results = Vec::with_capacity(pages.len());
        for page in pages {
            let result = convert_page(file, page, structure_starts);
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        return results;
    }

    let next = AtomicUsize::new(0);
    // The position of the first page that failed; pages after it are not converted.
    let first_failure = AtomicUsize::new(usize::MAX);
    let span = tracing::Span::current();
    let mut converted: Vec<(usize, Result<ImagePage, Refusal>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let _entered = span.enter();
                    let mut done = Vec::new();
                    loop {
                        let position = next.fetch_add(1, Ordering::Relaxed);
                        if position >= pages.len() || position > first_failure.load(Ordering::Relaxed) {
                            return done;
                        }
                        let result = convert_page(file, &pages[position], structure_starts);
                        if result.is_err() {
                            first_failure.fetch_min(position, Ordering::Relaxed);
                        }
                        done.push((position, result));
                    }
                })
            })
            .collect();
        // A panic in a worker is raised again here, where the conversion pool catches it.
        workers.into_iter().flat_map(|worker| worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    converted.sort_by_key(|(position, _)| *position);
    let mut results = Vec::with_capacity(converted.len());
    for (_, result) in converted {
        let failed = result.is_err();
        results.push(result);
        if failed {
            break;
        }
    }
    results
}

fn convert_page(file: &File<'_>, page: &Page, structure_starts: &[usize]) -> Result<ImagePage, Refusal> {
    let images = match page.compression {
        2..=4 => ccitt_images(file, page, structure_starts)?,
        6 => {
            return Err(Refusal::Rejected(
                "old-style JPEG compression in TIFF (Compression 6) is not supported; send a PDF".to_string(),
            ));
        }
        _ => vec![decoded_image(file.data, page)?],
    };
    let (width, height) = page_size(page);
    Ok(ImagePage { width, height, images: orient(images, page, width, height) })
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

/// Builds the `/CCITTFaxDecode` images of a page: one image when the page has one strip,
/// when its Group 3 strips join into one stream that decodes to the same rows, or when
/// it is re-encoded as Group 4. Group 3 strips that do not join are passed through in
/// groups that do, each placed in its band of the page's unit square.
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
        strips.push(Strip { bytes, rows });
    }

    // A page of several strips keeps its decoded rows, to compare joined or re-encoded
    // data with.
    let mut bitmap = (strips.len() > 1).then(|| Bitmap::new(page.width, page.length));
    let (params, k) = match choose_params(page, &strips, false, bitmap.as_mut()) {
        Some(chosen) => chosen,
        None => {
            let (params, _) = choose_params(page, &strips, true, None).ok_or_else(|| {
                Refusal::Rejected(format!("the TIFF is damaged: the fax data of page {page_number} cannot be decoded"))
            })?;
            warn!(page = page_number, ?params, "CCITT data decodes only leniently; transcoding it");
            return Ok(vec![transcode(page, &strips, params)]);
        }
    };
    let Some(bitmap) = bitmap else {
        debug!(page = page_number, ?params, k, "CCITT data passed through");
        let strip = strips.pop().ok_or_else(|| damaged(&format!("page {page_number} has no strips")))?;
        return Ok(vec![ccitt_image(page, strip.bytes, 0, strip.rows, params, k)]);
    };

    if params.k >= 0 {
        let joined = Joined::new(&strips);
        if let Some(groups) = join_strips(page, &strips, &joined, params, k, &bitmap) {
            debug!(page = page_number, ?params, strips = strips.len(), images = groups.len(), "CCITT strips passed through");
            let mut images = Vec::with_capacity(groups.len());
            let mut first_row = 0;
            for group in groups {
                let rows = strips[group.strips.clone()].iter().map(|strip| strip.rows).sum();
                let bytes = joined.bytes(group.strips.start, group.strips.end).to_vec();
                images.push(ccitt_image(page, bytes, first_row, rows, params, group.k));
                first_row += rows;
            }
            return Ok(images);
        }
        debug!(page = page_number, strips = strips.len(), "CCITT strips do not join into few images; re-encoding the page");
    }
    match group4_data(&bitmap) {
        Some(bytes) => {
            debug!(page = page_number, ?params, strips = strips.len(), "CCITT page re-encoded as one Group 4 image");
            let group4 = CcittParams { k: -1, byte_align: false, end_of_line: false, ..params };
            Ok(vec![ccitt_image(page, bytes, 0, page.length, group4, -1)])
        }
        None => {
            warn!(page = page_number, "the Group 4 encoding of a page does not decode to its rows; transcoding it");
            Ok(vec![transcode(page, &strips, params)])
        }
    }
}

/// The data of one strip, most significant bit first, and its number of rows.
struct Strip {
    bytes: Vec<u8>,
    rows: u32,
}

/// Consecutive strips passed through as one image, with the `/K` of their data.
struct StripGroup {
    strips: Range<usize>,
    k: i32,
}

/// The bytes of all strips of a page one after the other, so that any run of
/// consecutive strips is one slice.
struct Joined {
    data: Vec<u8>,
    /// The offset of each strip in `data`, and then the end of the last.
    starts: Vec<usize>,
}

impl Joined {
    fn new(strips: &[Strip]) -> Self {
        let mut starts = Vec::with_capacity(strips.len() + 1);
        let mut data = Vec::with_capacity(strips.iter().map(|strip| strip.bytes.len()).sum());
        for strip in strips {
            starts.push(data.len());
            data.extend_from_slice(&strip.bytes);
        }
        starts.push(data.len());
        Joined { data, starts }
    }

    /// Returns the bytes of strips `first` to `end` (exclusive).
    fn bytes(&self, first: usize, end: usize) -> &[u8] {
        let from = self.starts.get(first).copied().unwrap_or(self.data.len());
        let to = self.starts.get(end).copied().unwrap_or(self.data.len());
        self.data.get(from..to).unwrap_or_default()
    }
}

/// The rows of a page as packed 1-bit rows, 1 for the white of the CCITT data.
struct Bitmap {
    columns: u32,
    row_bytes: usize,
    data: Vec<u8>,
}

impl Bitmap {
    fn new(columns: u32, rows: u32) -> Self {
        let row_bytes = columns.div_ceil(8) as usize;
        Bitmap { columns, row_bytes, data: Vec::with_capacity(row_bytes * rows as usize) }
    }

    fn push(&mut self, changes: &[u32]) {
        let start = self.data.len();
        self.data.resize(start + self.row_bytes, 0);
        fill_row(changes, self.columns, &mut self.data[start..]);
    }

    fn rows(&self) -> usize {
        self.data.len() / self.row_bytes
    }

    fn row(&self, index: usize) -> Option<&[u8]> {
        self.data.get(index * self.row_bytes..(index + 1) * self.row_bytes)
    }

    /// Returns whether row `index` has these changing elements; `scratch` is reused
    /// between calls.
    fn row_equals(&self, index: usize, changes: &[u32], scratch: &mut Vec<u8>) -> bool {
        scratch.resize(self.row_bytes, 0);
        fill_row(changes, self.columns, scratch);
        self.row(index) == Some(scratch.as_slice())
    }

    /// Decodes `data` and returns how many of its rows, from row `first_row` of the
    /// bitmap on, equal the bitmap's, and the result of the decoding. Decoding stops at
    /// the first row that differs.
    fn matching_rows(&self, data: &[u8], params: CcittParams, first_row: usize) -> (usize, Result<ccitt::Decoded, ccitt::DecodeError>) {
        let mut scratch = Vec::new();
        let mut matched = 0;
        let result = ccitt::decode(data, params, |changes| {
            let equal = self.row_equals(first_row + matched, changes, &mut scratch);
            if equal {
                matched += 1;
            }
            equal
        });
        (matched, result)
    }
}

/// Splits the strips of a Group 3 page into runs whose joined bytes decode to the same
/// rows as the strips one by one. This holds when each strip starts its rows anew: with
/// EOL codes before every row (zero fill bits before an EOL are allowed), or with
/// byte-aligned rows, and with a 1-D row first where rows are mixed. Returns None when
/// more images than [`MAX_PASS_THROUGH_STRIPS`] would be needed.
fn join_strips(
    page: &Page,
    strips: &[Strip],
    joined: &Joined,
    params: CcittParams,
    k: i32,
    bitmap: &Bitmap,
) -> Option<Vec<StripGroup>> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut first_row = 0usize;
    while start < strips.len() {
        if groups.len() == MAX_PASS_THROUGH_STRIPS {
            return None;
        }
        // Decode all remaining strips as one stream and keep the strips whose rows all
        // come out the same.
        let remaining_rows = bitmap.rows() - first_row;
        let all_rows = CcittParams { rows: remaining_rows as u32, ..params };
        let (matched, result) = bitmap.matching_rows(joined.bytes(start, strips.len()), all_rows, first_row);
        let mut end = start;
        let mut rows = 0usize;
        while end < strips.len() && rows + strips[end].rows as usize <= matched {
            rows += strips[end].rows as usize;
            end += 1;
        }

        let group_k = match result {
            Ok(decoded) if end == strips.len() => k_of(params, decoded),
            _ if end > start + 1 => {
                // The group's own bytes must decode alone the same way: its last row may
                // have read bits of the strip after it.
                let group_params = CcittParams { rows: rows as u32, ..params };
                match bitmap.matching_rows(joined.bytes(start, end), group_params, first_row) {
                    (matched, Ok(decoded)) if matched == rows => k_of(params, decoded),
                    _ => {
                        end = start + 1;
                        k
                    }
                }
            }
            // A strip alone decodes as choose_params decoded it.
            _ => {
                end = start + 1;
                k
            }
        };
        if end - start > 1 {
            debug!(page = page.index + 1, first = start + 1, last = end, "CCITT strips joined");
        }
        first_row += strips[start..end].iter().map(|strip| strip.rows as usize).sum::<usize>();
        groups.push(StripGroup { strips: start..end, k: group_k });
        start = end;
    }
    Some(groups)
}

/// Returns the `/K` for data decoded with `params`: the sign of K, or for mixed data the
/// longest group of rows it contains.
fn k_of(params: CcittParams, decoded: ccitt::Decoded) -> i32 {
    if params.k > 0 { decoded.max_group.max(1) as i32 } else { params.k }
}

/// Encodes the rows of a bitmap as Group 4 data, and returns it when it decodes back to
/// the same rows.
fn group4_data(bitmap: &Bitmap) -> Option<Vec<u8>> {
    let mut encoder = Group4Encoder::new(bitmap.columns);
    let mut changes = Vec::new();
    for index in 0..bitmap.rows() {
        row_changes(bitmap.row(index)?, bitmap.columns, &mut changes);
        encoder.encode_row(&changes);
    }
    let data = encoder.finish();
    let params = CcittParams {
        k: -1,
        byte_align: false,
        end_of_line: false,
        columns: bitmap.columns,
        rows: bitmap.rows() as u32,
        lenient: false,
    };
    let (matched, result) = bitmap.matching_rows(&data, params, 0);
    (result.is_ok() && matched == bitmap.rows()).then_some(data)
}

/// Builds a `/CCITTFaxDecode` image of `rows` rows, placed from row `first_row` of the
/// page down.
fn ccitt_image(page: &Page, bytes: Vec<u8>, first_row: u32, rows: u32, params: CcittParams, k: i32) -> PlacedImage {
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
    // The image's band of the page: rows first_row .. first_row + rows from the top.
    let length = f64::from(page.length);
    let bottom = 1.0 - f64::from(first_row + rows) / length;
    let band = [1.0, 0.0, 0.0, f64::from(rows) / length, 0.0, bottom];
    PlacedImage { stream: Stream::new(dict, bytes).with_compression(false), matrix: band }
}

/// Finds the decoding parameters under which every strip decodes to its rows, trying
/// the ones the tags name first. Returns them with the `/K` to write. The rows of the
/// parameters that succeed are left in `bitmap`.
fn choose_params(page: &Page, strips: &[Strip], lenient: bool, mut bitmap: Option<&mut Bitmap>) -> Option<(CcittParams, i32)> {
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
        if let Some(bitmap) = bitmap.as_deref_mut() {
            bitmap.data.clear();
        }
        let mut max_group = 1;
        let decodes = strips.iter().all(|strip| {
            let strip_params = CcittParams { rows: strip.rows, ..candidate };
            let result = ccitt::decode(&strip.bytes, strip_params, |changes| {
                if let Some(bitmap) = bitmap.as_deref_mut() {
                    bitmap.push(changes);
                }
                true
            });
            match result {
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
fn transcode(page: &Page, strips: &[Strip], params: CcittParams) -> PlacedImage {
    let row_bytes = page.width.div_ceil(8) as usize;
    let mut samples = vec![0u8; row_bytes * page.length as usize];
    let mut rows = samples.chunks_mut(row_bytes);
    for strip in strips {
        // choose_params decoded every strip with these parameters already.
        let _ = ccitt::decode(&strip.bytes, CcittParams { rows: strip.rows, ..params }, |changes| {
            if let Some(row) = rows.next() {
                fill_row(changes, page.width, row);
            }
            true
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
        .map(|image| PlacedImage { matrix: pagefit::concat(image.matrix, whole), stream: image.stream })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a 1728-pixel-wide page of one strip per entry of `strips`, each of
    /// `rows_per_strip` rows, stored one after the other from offset 8.
    fn fax_page(compression: u32, t4_options: u32, rows_per_strip: u32, strips: &[Vec<u8>]) -> (Vec<u8>, Page) {
        let mut data = b"II*\0\0\0\0\0".to_vec();
        let mut strip_offsets = Vec::new();
        let mut strip_byte_counts = Vec::new();
        for strip in strips {
            strip_offsets.push(data.len() as u32);
            strip_byte_counts.push(strip.len() as u32);
            data.extend_from_slice(strip);
        }
        let page = Page {
            index: 0,
            width: FAX_WIDTH,
            length: rows_per_strip * strips.len() as u32,
            bits_per_sample: 1,
            samples_per_pixel: 1,
            compression,
            photometric: 0,
            fill_order: 1,
            orientation: 1,
            rows_per_strip,
            strip_offsets,
            strip_byte_counts,
            resolution: None,
            t4_options,
            tiled: false,
        };
        (data, page)
    }

    fn images_of(data: &[u8], page: &Page) -> Vec<PlacedImage> {
        ccitt_images(&File { data, little_endian: true }, page, &[]).unwrap()
    }

    fn parameter(image: &PlacedImage, key: &[u8]) -> Option<i64> {
        let parms = image.stream.dict.get(b"DecodeParms").ok()?.as_dict().ok()?;
        parms.get(key).ok()?.as_i64().ok()
    }

    /// Decodes an image's data with its own parameters and returns its rows.
    fn decoded_rows(image: &PlacedImage) -> Vec<Vec<u32>> {
        let params = CcittParams {
            k: parameter(image, b"K").unwrap() as i32,
            byte_align: image.stream.dict.get(b"DecodeParms").unwrap().as_dict().unwrap().has(b"EncodedByteAlign"),
            end_of_line: image.stream.dict.get(b"DecodeParms").unwrap().as_dict().unwrap().has(b"EndOfLine"),
            columns: parameter(image, b"Columns").unwrap() as u32,
            rows: parameter(image, b"Rows").unwrap() as u32,
            lenient: false,
        };
        let mut rows = Vec::new();
        ccitt::decode(&image.stream.content, params, |changes| {
            rows.push(changes.to_vec());
            true
        })
        .unwrap();
        rows
    }

    /// One 1-D row of 1728 white pixels without EOL: make-up 1728 (010011011) and
    /// terminating 0 (00110101), 17 bits padded with zeros to three bytes.
    const WHITE_ROW_1D: [u8; 3] = [0b0100_1101, 0b1001_1010, 0b1000_0000];

    #[test]
    fn modified_huffman_strips_joined_into_one_image() {
        // Modified Huffman rows start on a byte, so the strips join as they are.
        let strips: Vec<Vec<u8>> = (0..10).map(|_| WHITE_ROW_1D.to_vec()).collect();
        let (data, page) = fax_page(2, 0, 1, &strips);
        let images = images_of(&data, &page);
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].stream.content, strips.concat());
        assert_eq!(parameter(&images[0], b"Rows"), Some(10));
        assert_eq!(decoded_rows(&images[0]), vec![Vec::<u32>::new(); 10]);
    }

    #[test]
    fn unaligned_group3_strips_passed_through_one_by_one() {
        // Without EOL codes, the zero bits that pad a strip would be read as the start
        // of the next row's first code, so no two strips join.
        let strips: Vec<Vec<u8>> = (0..5).map(|_| WHITE_ROW_1D.to_vec()).collect();
        let (data, page) = fax_page(3, 0, 1, &strips);
        let images = images_of(&data, &page);
        assert_eq!(images.len(), 5);
        for image in &images {
            assert_eq!(image.stream.content, WHITE_ROW_1D);
            assert_eq!(parameter(image, b"K"), Some(0));
        }
    }

    #[test]
    fn many_unjoinable_group3_strips_reencoded_as_group4() {
        let strips: Vec<Vec<u8>> = (0..MAX_PASS_THROUGH_STRIPS + 1).map(|_| WHITE_ROW_1D.to_vec()).collect();
        let (data, page) = fax_page(3, 0, 1, &strips);
        let images = images_of(&data, &page);
        assert_eq!(images.len(), 1);
        assert_eq!(parameter(&images[0], b"K"), Some(-1));
        assert_eq!(decoded_rows(&images[0]), vec![Vec::<u32>::new(); MAX_PASS_THROUGH_STRIPS + 1]);
    }

    #[test]
    fn group4_strips_reencoded_as_one_image() {
        // Each strip is coded from a white reference row, as TIFF requires.
        let rows: Vec<Vec<u32>> = (0..12u32).map(|row| vec![row * 10, row * 10 + 5 + row, 1000]).collect();
        let strips: Vec<Vec<u8>> = rows
            .chunks(4)
            .map(|chunk| {
                let mut encoder = Group4Encoder::new(FAX_WIDTH);
                chunk.iter().for_each(|row| encoder.encode_row(row));
                encoder.finish()
            })
            .collect();
        let (data, page) = fax_page(4, 0, 4, &strips);
        let images = images_of(&data, &page);
        assert_eq!(images.len(), 1);
        assert_eq!(parameter(&images[0], b"K"), Some(-1));
        assert_eq!(parameter(&images[0], b"Rows"), Some(12));
        assert_ne!(images[0].stream.content, strips.concat(), "joined Group 4 strips would decode differently");
        assert_eq!(decoded_rows(&images[0]), rows);
    }

    #[test]
    fn single_group4_strip_passed_through() {
        let rows: Vec<Vec<u32>> = (0..6u32).map(|row| vec![row * 3, 1700]).collect();
        let mut encoder = Group4Encoder::new(FAX_WIDTH);
        rows.iter().for_each(|row| encoder.encode_row(row));
        let strip = encoder.finish();
        let (data, page) = fax_page(4, 0, 6, &[strip.clone()]);
        let images = images_of(&data, &page);
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].stream.content, strip);
    }

    #[test]
    fn pages_converted_in_order_up_to_first_failure() {
        // Six one-strip Modified Huffman pages, the fourth and sixth damaged: their
        // short runs end with the data, far from the row's 1728 columns.
        let mut strips: Vec<Vec<u8>> = (0..6).map(|_| WHITE_ROW_1D.to_vec()).collect();
        strips[3] = vec![0xFF; 3];
        strips[5] = vec![0xFF; 3];
        let (data, whole) = fax_page(2, 0, 1, &strips);
        let pages: Vec<Page> = (0..6)
            .map(|index| Page {
                index,
                length: 1,
                strip_offsets: vec![whole.strip_offsets[index]],
                strip_byte_counts: vec![whole.strip_byte_counts[index]],
                ..whole.clone()
            })
            .collect();
        let results = convert_pages(&File { data: &data, little_endian: true }, &pages, &[]);
        assert_eq!(results.len(), 4, "the pages after the first failure are left out");
        assert!(results[..3].iter().all(|result| result.is_ok()));
        match &results[3] {
            Err(Refusal::Rejected(reason)) => assert!(reason.contains("page 4"), "{reason}"),
            _ => panic!("page 4 should be rejected"),
        }
    }
}
