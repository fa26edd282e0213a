//! Resource limits and settings for one conversion: the page cap, the MIME walk bounds,
//! byte and pixel budgets, the waits of the conversion pool and the settings later
//! converters read.

use std::cell::Cell;
use std::time::Duration;

use super::kind::Refusal;
use crate::config::{BodyMode, Documents, Paper};

/// Default maximum number of MIME parts walked in one message, far above the few dozen
/// that ordinary mail has (an estimate). A message over the limit is rejected with
/// `550 5.6.1` rather than faxed in part.
pub const DEFAULT_MAX_PARTS: usize = 500;

/// Default maximum nesting of multiparts and forwarded messages, well above the ten
/// levels that long forwarded chains reach (an estimate). Deeper nesting is rejected
/// with `550 5.6.1`.
pub const DEFAULT_MAX_DEPTH: usize = 32;

/// Default maximum size of one decoded document: the 25 MiB SMTP message size default,
/// as no decoded attachment can be larger than the message that carried it.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 25 * 1024 * 1024;

/// Default maximum size of one decompressed PDF object or cross-reference stream while a
/// document loads. The bound stops a small compressed file from inflating to gigabytes.
pub const DEFAULT_MAX_STREAM_BYTES: usize = 64 * 1024 * 1024;

/// Default maximum pixels (width times height) of all images and TIFF pages of one
/// message together. The 200 pages of the default page limit at fax "fine" resolution
/// (1728 x 2200) use 760 million, so any fax-sized message fits. Each decoded pixel
/// costs CPU time to decode and compress, so the budget bounds the work one message
/// causes: without it, many images each under the per-image maximum could add up to
/// minutes of CPU. A message over the budget is rejected with `550 5.6.1`.
/// `documents.max_message_pixels` overrides it.
pub const DEFAULT_MAX_MESSAGE_PIXELS: u64 = 1_000_000_000;

/// Default maximum wait for a free conversion worker before the message gets
/// `451 4.3.0`. An SMTP client waits 10 minutes for the reply to DATA (RFC 5321
/// section 4.5.3.2.6), so this wait plus [`DEFAULT_CONVERSION_TIMEOUT`] stays below that.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(120);

/// Default maximum time one message conversion may take before the message gets
/// `451 4.3.0`.
pub const DEFAULT_CONVERSION_TIMEOUT: Duration = Duration::from_secs(300);

/// Bounds and settings for converting one message or a set of files.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Maximum pages of the merged fax; more give [`super::DocumentError::TooManyPages`].
    pub max_pages: u32,
    /// Maximum MIME parts walked in one message, nested messages included.
    pub max_parts: usize,
    /// Maximum nesting of multiparts and forwarded messages.
    pub max_depth: usize,
    /// Maximum size in bytes of one decoded document.
    pub max_document_bytes: usize,
    /// Maximum size in bytes of all decoded documents of one message together.
    pub max_total_bytes: usize,
    /// Maximum decompressed size in bytes of one PDF object or cross-reference stream.
    pub max_stream_bytes: usize,
    /// Maximum pixels of all images and TIFF pages of one message together.
    /// [`PixelBudget`] lists which images count.
    pub max_message_pixels: u64,
    /// Images inside messages with fewer pixels (width times height) are not faxed, so
    /// signature logos and tracking pixels stay out of the fax. Files given directly to
    /// [`super::files_to_pdf`] are not filtered by it.
    pub min_image_pixels: u64,
    /// Portrait paper that PDF, Office, image and text pages are fitted to. TIFF pages
    /// keep the size their resolutions give.
    pub paper: Paper,
    /// Whether the text/HTML body is faxed as a cover page.
    pub body: BodyMode,
    /// Program that converts office documents (LibreOffice `soffice`).
    pub office_converter: String,
    /// Maximum run time of one office conversion.
    pub office_timeout: Duration,
    /// Maximum wait for a free conversion worker in [`super::convert_message`].
    pub queue_timeout: Duration,
    /// Maximum run time of one message conversion in [`super::convert_message`].
    pub conversion_timeout: Duration,
}

impl Limits {
    /// Builds the limits from the `[documents]` settings and the SMTP maximum message
    /// size, which also bounds the decoded documents.
    pub fn from_settings(settings: &Documents, max_message_size: u64) -> Limits {
        let max_bytes = usize::try_from(max_message_size).unwrap_or(usize::MAX);
        Limits {
            max_pages: settings.max_pages,
            max_document_bytes: max_bytes,
            max_total_bytes: max_bytes,
            min_image_pixels: settings.min_image_pixels,
            max_message_pixels: settings.max_message_pixels,
            paper: settings.paper,
            body: settings.body,
            office_converter: settings.office_converter.clone(),
            office_timeout: settings.office_timeout,
            ..Limits::default()
        }
    }
}

impl Default for Limits {
    /// Returns the limits of the default configuration.
    fn default() -> Limits {
        Limits {
            max_pages: 200,
            max_parts: DEFAULT_MAX_PARTS,
            max_depth: DEFAULT_MAX_DEPTH,
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            max_total_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            max_stream_bytes: DEFAULT_MAX_STREAM_BYTES,
            max_message_pixels: DEFAULT_MAX_MESSAGE_PIXELS,
            min_image_pixels: 40_000,
            paper: Paper::Letter,
            body: BodyMode::Ignore,
            office_converter: "soffice".to_string(),
            office_timeout: Duration::from_secs(120),
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            conversion_timeout: DEFAULT_CONVERSION_TIMEOUT,
        }
    }
}

/// The pixels that the images and TIFF pages of one message may still use, taken from
/// [`Limits::max_message_pixels`] as each one is converted.
///
/// Decoded images (PNG, GIF, BMP, WebP and TIFF pages in other compressions) count by
/// their dimensions before they are decoded. CCITT TIFF pages count too although they
/// are passed through, because every row is decoded to check the data. Their cost grows
/// with their pixels, and a few kilobytes of CCITT data can describe millions of white
/// pixels. JPEGs do not count: they are passed through with only their markers
/// read, so their cost is bounded by their bytes (`max_total_bytes`), not their pixels.
pub(crate) struct PixelBudget {
    max: u64,
    used: Cell<u64>,
}

impl PixelBudget {
    pub(crate) fn new(max: u64) -> PixelBudget {
        PixelBudget { max, used: Cell::new(0) }
    }

    /// Takes `width` x `height` pixels from the budget, or rejects the document whose
    /// image or page would pass the maximum.
    pub(crate) fn take(&self, width: u32, height: u32) -> Result<(), Refusal> {
        let used = self.used.get().saturating_add(u64::from(width) * u64::from(height));
        if used > self.max {
            return Err(Refusal::Rejected(format!(
                "the images and TIFF pages of the message have more than the maximum of {} pixels together; \
                 send fewer or smaller images, or a PDF",
                self.max
            )));
        }
        self.used.set(used);
        Ok(())
    }
}
