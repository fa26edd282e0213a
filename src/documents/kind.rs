//! The kind of a document: detected from its content (magic bytes) first, then its
//! declared MIME type, then its file name extension. [`convert`] dispatches each kind to
//! its converter. A kind without a converter is rejected with a reason that names what
//! to send instead.

use super::limits::PixelBudget;
use super::pdf::{self, PdfPages};
use super::{Limits, image, msg, office, text, tiff};

/// Maximum offset of `%PDF-` in a PDF file. Mail clients and gateways sometimes put junk
/// before the header, and this window bounds the search for it.
pub(crate) const PDF_HEADER_WINDOW: usize = 1024;

/// The kind of one part or file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Pdf,
    Tiff,
    Jpeg,
    Png,
    Gif,
    Bmp,
    Webp,
    Heic,
    /// Plain text, rendered as pages.
    Text,
    /// An HTML file sent as an attachment.
    Html,
    Office(Office),
    /// Outlook's `winmail.dat` container.
    Tnef,
    /// An Outlook message file (`.msg`), opened for its attachments like `winmail.dat`.
    OutlookMessage,
    Archive,
    Executable,
    Audio,
    Video,
    /// A detached S/MIME or PGP signature: never faxed.
    Signature,
    /// An opaque-signed or encrypted S/MIME body (`smime.p7m`).
    SmimeBody,
    VCard,
    Calendar,
    /// A forwarded message that could not be parsed as one.
    Message,
    Unknown,
}

/// Office document formats, converted by LibreOffice when it is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Office {
    Doc,
    Docx,
    Xls,
    Xlsx,
    Ppt,
    Pptx,
    Odt,
    Ods,
    Odp,
    Rtf,
    /// An OLE2 compound file whose application is not known (`.doc`, `.xls`, `.ppt`).
    Ole,
}

/// A converter's reason for not faxing one document.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The document cannot be faxed; the text is the reason shown to the sender.
    Rejected(String),
    /// The document has `pages` pages, more than the pages left under the limit.
    TooManyPages { pages: u32 },
    /// A shared converter was busy for too long; a later retry can succeed.
    Busy,
}

impl Kind {
    /// Returns the MIME type reported for this kind.
    pub(crate) fn mime_type(self) -> &'static str {
        match self {
            Kind::Pdf => "application/pdf",
            Kind::Tiff => "image/tiff",
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Gif => "image/gif",
            Kind::Bmp => "image/bmp",
            Kind::Webp => "image/webp",
            Kind::Heic => "image/heic",
            Kind::Text => "text/plain",
            Kind::Html => "text/html",
            Kind::Office(office) => office.mime_type(),
            Kind::Tnef => "application/ms-tnef",
            Kind::OutlookMessage => "application/vnd.ms-outlook",
            Kind::Archive => "application/zip",
            Kind::Executable => "application/x-msdownload",
            Kind::Audio => "audio/*",
            Kind::Video => "video/*",
            Kind::Signature => "application/pkcs7-signature",
            Kind::SmimeBody => "application/pkcs7-mime",
            Kind::VCard => "text/vcard",
            Kind::Calendar => "text/calendar",
            Kind::Message => "message/rfc822",
            Kind::Unknown => "application/octet-stream",
        }
    }

    /// Returns whether the kind is a raster image, the kinds that `min_image_pixels` and
    /// the `cid:` rule apply to.
    pub(crate) fn is_image(self) -> bool {
        matches!(self, Kind::Tiff | Kind::Jpeg | Kind::Png | Kind::Gif | Kind::Bmp | Kind::Webp | Kind::Heic)
    }

    /// Returns why a part of this kind is left out of the fax without rejecting the
    /// message, or `None` for kinds that are faxed or rejected.
    pub(crate) fn skip_reason(self) -> Option<&'static str> {
        match self {
            Kind::Signature => Some("signature"),
            Kind::VCard => Some("vCard"),
            Kind::Calendar => Some("calendar"),
            Kind::Message => Some("forwarded message that cannot be read"),
            _ => None,
        }
    }
}

impl Office {
    fn mime_type(self) -> &'static str {
        match self {
            Office::Doc => "application/msword",
            Office::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Office::Xls => "application/vnd.ms-excel",
            Office::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Office::Ppt => "application/vnd.ms-powerpoint",
            Office::Pptx => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            Office::Odt => "application/vnd.oasis.opendocument.text",
            Office::Ods => "application/vnd.oasis.opendocument.spreadsheet",
            Office::Odp => "application/vnd.oasis.opendocument.presentation",
            Office::Rtf => "application/rtf",
            Office::Ole => "application/x-ole-storage",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Office::Doc | Office::Docx => "Word",
            Office::Xls | Office::Xlsx => "Excel",
            Office::Ppt | Office::Pptx => "PowerPoint",
            Office::Odt | Office::Ods | Office::Odp => "OpenDocument",
            Office::Rtf => "RTF",
            Office::Ole => "Microsoft Office",
        }
    }
}

/// Detects the kind of a part from its content, then its declared MIME type (as sent,
/// any case, possibly invalid), then the extension of its file name.
pub(crate) fn detect(data: &[u8], declared: Option<&str>, name: Option<&str>) -> Kind {
    let from_declared = declared.and_then(from_mime_type);
    let from_name = name.and_then(from_file_name);
    match sniff(data) {
        // A ZIP or OLE2 container shows only its family, so the declared type or the
        // extension decides the application.
        Some(Sniffed::Zip) => refine_zip(data, from_declared.or(from_name)),
        Some(Sniffed::Ole) => refine_ole(data, from_declared.or(from_name)),
        Some(Sniffed::Kind(kind)) => kind,
        None => from_declared.or(from_name).unwrap_or(Kind::Unknown),
    }
}

/// Converts one document to PDF pages. `page_budget` is the number of pages the fax may
/// still take, and `message_pixels` the pixels its images and TIFF pages may still use.
pub(crate) fn convert(
    kind: Kind,
    data: &[u8],
    limits: &Limits,
    page_budget: u32,
    message_pixels: &PixelBudget,
) -> Result<PdfPages, Refusal> {
    #[cfg(test)]
    if data == tests::PANIC_TRIGGER {
        panic!("conversion panic triggered by a test");
    }

    match kind {
        Kind::Pdf => pdf::load(data, limits, page_budget),
        Kind::Tiff => tiff::load(data, limits, page_budget, message_pixels),
        Kind::Jpeg | Kind::Png | Kind::Gif | Kind::Bmp | Kind::Webp => {
            image::load(kind, data, limits, page_budget, message_pixels)
        }
        Kind::Text => text::render(data, limits, page_budget),
        Kind::Html => office::convert_html(data, limits, page_budget),
        Kind::Office(format) => office::convert(format, data, limits, page_budget),
        // The pipeline replaces TNEF files by their attachments before conversion, so
        // only a caller that skips that step gets here.
        Kind::Tnef => Err(Refusal::Rejected("winmail.dat (TNEF) files are opened before conversion".to_string())),
        Kind::OutlookMessage => Err(Refusal::Rejected(
            "Outlook message files are opened before conversion; forward the message itself or attach its documents"
                .to_string(),
        )),
        Kind::Heic => Err(Refusal::Rejected("HEIC photos cannot be faxed; send a JPEG or a PDF".to_string())),
        Kind::Archive => Err(Refusal::Rejected(
            "archives cannot be faxed; send the documents themselves as PDF attachments".to_string(),
        )),
        Kind::Executable => Err(Refusal::Rejected("executable files cannot be faxed".to_string())),
        Kind::Audio => Err(Refusal::Rejected("audio files cannot be faxed".to_string())),
        Kind::Video => Err(Refusal::Rejected("video files cannot be faxed".to_string())),
        Kind::SmimeBody => Err(Refusal::Rejected(
            "encrypted or opaque-signed S/MIME messages are not supported; send the message \
             unencrypted, with a detached signature or none"
                .to_string(),
        )),
        Kind::Unknown => Err(Refusal::Rejected("the file type is not supported; send a PDF".to_string())),
        // The MIME walk skips these kinds before conversion; a caller that passes one
        // anyway gets a rejection naming it.
        Kind::Signature | Kind::VCard | Kind::Calendar | Kind::Message => Err(Refusal::Rejected(format!(
            "{} files are not faxed",
            kind.skip_reason().unwrap_or("these")
        ))),
    }
}

/// Result of sniffing the first bytes of a file.
enum Sniffed {
    Kind(Kind),
    /// A ZIP archive, which may be an OOXML or OpenDocument file.
    Zip,
    /// An OLE2 compound file, which may be a Word, Excel, PowerPoint or Outlook file.
    Ole,
}

/// Detects a kind from magic bytes alone.
fn sniff(data: &[u8]) -> Option<Sniffed> {
    let window = &data[..data.len().min(PDF_HEADER_WINDOW)];
    if find(window, b"%PDF-").is_some() {
        return Some(Sniffed::Kind(Kind::Pdf));
    }

    let kind = if data.starts_with(b"II*\0") || data.starts_with(b"MM\0*") {
        Kind::Tiff
    } else if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Kind::Jpeg
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Kind::Png
    } else if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        Kind::Gif
    } else if is_bmp(data) {
        Kind::Bmp
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        Kind::Webp
    } else if is_heif(data) {
        Kind::Heic
    } else if data.starts_with(b"PK\x03\x04") {
        return Some(Sniffed::Zip);
    } else if data.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Some(Sniffed::Ole);
    } else if data.starts_with(b"{\\rtf") {
        Kind::Office(Office::Rtf)
    } else if data.starts_with(&[0x78, 0x9F, 0x3E, 0x22]) {
        Kind::Tnef
    } else if data.starts_with(b"MZ") || data.starts_with(b"\x7fELF") {
        Kind::Executable
    } else if data.starts_with(&[0x1F, 0x8B])
        || data.starts_with(b"Rar!\x1a\x07")
        || data.starts_with(&[0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C])
    {
        Kind::Archive
    } else if data.starts_with(b"-----BEGIN PGP SIGNATURE-----") {
        Kind::Signature
    } else if starts_with_ignore_case(data, b"BEGIN:VCARD") {
        Kind::VCard
    } else if starts_with_ignore_case(data, b"BEGIN:VCALENDAR") {
        Kind::Calendar
    } else {
        return None;
    };
    Some(Sniffed::Kind(kind))
}

/// A BMP starts with `BM`, which plain text can too, so the DIB header size must also be
/// one of the sizes that exist.
fn is_bmp(data: &[u8]) -> bool {
    if data.len() < 18 || !data.starts_with(b"BM") {
        return false;
    }
    let header_size = u32::from_le_bytes([data[14], data[15], data[16], data[17]]);
    matches!(header_size, 12 | 40 | 52 | 56 | 64 | 108 | 124)
}

/// HEIF files (HEIC photos from iPhones) are ISO base media files with a HEIF brand.
fn is_heif(data: &[u8]) -> bool {
    if data.len() < 12 || &data[4..8] != b"ftyp" {
        return false;
    }
    matches!(&data[8..12], b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"mif1" | b"msf1")
}

fn refine_zip(data: &[u8], hint: Option<Kind>) -> Kind {
    // An OpenDocument file stores an uncompressed `mimetype` entry first, so its type
    // appears in clear at offset 38 (30-byte local header plus the 8-byte name).
    if data.get(30..38) == Some(b"mimetype") {
        let rest = &data[38..data.len().min(38 + 80)];
        if rest.starts_with(b"application/vnd.oasis.opendocument.text") {
            return Kind::Office(Office::Odt);
        }
        if rest.starts_with(b"application/vnd.oasis.opendocument.spreadsheet") {
            return Kind::Office(Office::Ods);
        }
        if rest.starts_with(b"application/vnd.oasis.opendocument.presentation") {
            return Kind::Office(Office::Odp);
        }
    }
    if let Some(Kind::Office(office @ (Office::Docx | Office::Xlsx | Office::Pptx))) = hint {
        return Kind::Office(office);
    }
    // OOXML names its parts in the local file headers, which are not compressed.
    if find(data, b"[Content_Types].xml").is_some() {
        if find(data, b"word/").is_some() {
            return Kind::Office(Office::Docx);
        }
        if find(data, b"xl/").is_some() {
            return Kind::Office(Office::Xlsx);
        }
        if find(data, b"ppt/").is_some() {
            return Kind::Office(Office::Pptx);
        }
    }
    Kind::Archive
}

fn refine_ole(data: &[u8], hint: Option<Kind>) -> Kind {
    // An Outlook message is recognized by its content, because mail clients send .msg
    // files as application/octet-stream and under any name.
    if msg::is_outlook_message(data) {
        return Kind::OutlookMessage;
    }
    match hint {
        Some(Kind::Office(office @ (Office::Doc | Office::Xls | Office::Ppt))) => Kind::Office(office),
        Some(kind @ (Kind::Tnef | Kind::OutlookMessage)) => kind,
        _ => Kind::Office(Office::Ole),
    }
}

/// Maps a declared MIME type to a kind. Generic types (octet-stream) and invalid types
/// without a slash (`application-x-gzip`) give `None`, so detection falls through to the
/// file name.
pub(crate) fn from_mime_type(declared: &str) -> Option<Kind> {
    let essence = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let (top, sub) = essence.split_once('/')?;
    let kind = match (top, sub) {
        ("application", "pdf" | "x-pdf" | "acrobat" | "vnd.pdf" | "x-bzpdf" | "x-gzpdf")
        | ("applications", "vnd.pdf")
        | ("text", "pdf" | "x-pdf") => Kind::Pdf,
        ("image", "tiff" | "tif" | "x-tiff" | "x-tif") | ("application", "tif" | "x-tif" | "tiff" | "x-tiff") => {
            Kind::Tiff
        }
        ("image", "jpeg" | "jpg" | "pjpeg" | "jfif") => Kind::Jpeg,
        ("image", "png" | "x-png" | "apng") => Kind::Png,
        ("image", "gif") => Kind::Gif,
        ("image", "bmp" | "x-bmp" | "x-ms-bmp" | "x-windows-bmp") => Kind::Bmp,
        ("image", "webp") => Kind::Webp,
        ("image", "heic" | "heif" | "heic-sequence" | "heif-sequence") => Kind::Heic,
        ("text", "vcard" | "x-vcard" | "directory") => Kind::VCard,
        ("text", "calendar" | "x-vcalendar") | ("application", "ics") => Kind::Calendar,
        ("text", "html") => Kind::Html,
        ("text", "rtf" | "richtext") | ("application", "rtf" | "x-rtf") => Kind::Office(Office::Rtf),
        ("text", _) => Kind::Text,
        ("application", "msword") => Kind::Office(Office::Doc),
        ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document") => Kind::Office(Office::Docx),
        ("application", "vnd.ms-excel") => Kind::Office(Office::Xls),
        ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet") => Kind::Office(Office::Xlsx),
        ("application", "vnd.ms-powerpoint") => Kind::Office(Office::Ppt),
        ("application", "vnd.openxmlformats-officedocument.presentationml.presentation") => {
            Kind::Office(Office::Pptx)
        }
        ("application", "vnd.oasis.opendocument.text") => Kind::Office(Office::Odt),
        ("application", "vnd.oasis.opendocument.spreadsheet") => Kind::Office(Office::Ods),
        ("application", "vnd.oasis.opendocument.presentation") => Kind::Office(Office::Odp),
        ("application", "ms-tnef" | "vnd.ms-tnef") => Kind::Tnef,
        ("application", "vnd.ms-outlook" | "x-msg") => Kind::OutlookMessage,
        ("application", "pkcs7-signature" | "x-pkcs7-signature" | "pgp-signature") => Kind::Signature,
        ("application", "pkcs7-mime" | "x-pkcs7-mime") => Kind::SmimeBody,
        (
            "application",
            "zip" | "x-zip" | "x-zip-compressed" | "gzip" | "x-gzip" | "x-tar" | "x-gtar" | "x-rar-compressed"
            | "vnd.rar" | "x-7z-compressed" | "x-bzip2" | "x-xz",
        ) => Kind::Archive,
        (
            "application",
            "x-msdownload" | "x-msdos-program" | "x-executable" | "x-dosexec" | "x-ms-installer"
            | "vnd.microsoft.portable-executable" | "x-sh" | "javascript" | "x-javascript",
        ) => Kind::Executable,
        ("audio", _) => Kind::Audio,
        ("video", _) => Kind::Video,
        ("message", _) => Kind::Message,
        _ => return None,
    };
    Some(kind)
}

/// Maps the extension of a file name (any case) to a kind.
pub(crate) fn from_file_name(name: &str) -> Option<Kind> {
    let name = name.trim().to_ascii_lowercase();
    if name == "winmail.dat" || name == "win.dat" {
        return Some(Kind::Tnef);
    }
    let (_, extension) = name.rsplit_once('.')?;
    let kind = match extension {
        "pdf" => Kind::Pdf,
        "tif" | "tiff" => Kind::Tiff,
        "jpg" | "jpeg" | "jpe" | "jfif" => Kind::Jpeg,
        "png" => Kind::Png,
        "gif" => Kind::Gif,
        "bmp" | "dib" => Kind::Bmp,
        "webp" => Kind::Webp,
        "heic" | "heif" => Kind::Heic,
        "txt" | "text" | "csv" | "log" => Kind::Text,
        "htm" | "html" => Kind::Html,
        "rtf" => Kind::Office(Office::Rtf),
        "msg" => Kind::OutlookMessage,
        "doc" | "dot" => Kind::Office(Office::Doc),
        "docx" | "docm" | "dotx" => Kind::Office(Office::Docx),
        "xls" | "xlt" => Kind::Office(Office::Xls),
        "xlsx" | "xlsm" => Kind::Office(Office::Xlsx),
        "ppt" | "pps" => Kind::Office(Office::Ppt),
        "pptx" | "ppsx" => Kind::Office(Office::Pptx),
        "odt" => Kind::Office(Office::Odt),
        "ods" => Kind::Office(Office::Ods),
        "odp" => Kind::Office(Office::Odp),
        "zip" | "gz" | "tgz" | "tar" | "rar" | "7z" | "bz2" | "xz" => Kind::Archive,
        "exe" | "com" | "bat" | "cmd" | "scr" | "msi" | "dll" | "js" | "vbs" | "ps1" | "jar" => Kind::Executable,
        "p7s" | "asc" | "sig" => Kind::Signature,
        "p7m" => Kind::SmimeBody,
        "vcf" | "vcard" => Kind::VCard,
        "ics" | "vcs" => Kind::Calendar,
        "mp3" | "wav" | "m4a" | "ogg" | "amr" => Kind::Audio,
        "mp4" | "mov" | "avi" | "mkv" => Kind::Video,
        _ => return None,
    };
    Some(kind)
}

/// Reads the width and height in pixels of a PNG, GIF, JPEG, BMP or WebP from its header,
/// without decoding it. `None` for other kinds and for damaged headers.
pub(crate) fn image_dimensions(kind: Kind, data: &[u8]) -> Option<(u32, u32)> {
    match kind {
        Kind::Png => {
            let width = u32::from_be_bytes(data.get(16..20)?.try_into().ok()?);
            let height = u32::from_be_bytes(data.get(20..24)?.try_into().ok()?);
            Some((width, height))
        }
        Kind::Gif => {
            let width = u16::from_le_bytes(data.get(6..8)?.try_into().ok()?);
            let height = u16::from_le_bytes(data.get(8..10)?.try_into().ok()?);
            Some((u32::from(width), u32::from(height)))
        }
        Kind::Bmp => {
            let width = i32::from_le_bytes(data.get(18..22)?.try_into().ok()?);
            let height = i32::from_le_bytes(data.get(22..26)?.try_into().ok()?);
            // A negative height marks a top-down bitmap.
            Some((width.unsigned_abs(), height.unsigned_abs()))
        }
        Kind::Jpeg => jpeg_dimensions(data),
        Kind::Webp => ::image::ImageReader::with_format(std::io::Cursor::new(data), ::image::ImageFormat::WebP)
            .into_dimensions()
            .ok(),
        _ => None,
    }
}

/// Walks the JPEG markers up to the first start-of-frame segment, which contains the
/// size.
fn jpeg_dimensions(data: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while *data.get(at)? == 0xFF && *data.get(at + 1)? == 0xFF {
            at += 1;
        }
        if *data.get(at)? != 0xFF {
            return None;
        }
        let marker = *data.get(at + 1)?;
        let length = usize::from(u16::from_be_bytes(data.get(at + 2..at + 4)?.try_into().ok()?));
        let is_start_of_frame = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_start_of_frame {
            let height = u16::from_be_bytes(data.get(at + 5..at + 7)?.try_into().ok()?);
            let width = u16::from_be_bytes(data.get(at + 7..at + 9)?.try_into().ok()?);
            return Some((u32::from(width), u32::from(height)));
        }
        if length < 2 {
            return None;
        }
        at += 2 + length;
    }
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

fn starts_with_ignore_case(data: &[u8], prefix: &[u8]) -> bool {
    data.len() >= prefix.len() && data[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Content that makes [`convert`] panic, to test that a panic becomes an error.
    pub(crate) const PANIC_TRIGGER: &[u8] = b"faxgate test: panic inside conversion";

    #[test]
    fn magic_bytes_win_over_declared_type_and_name() {
        assert_eq!(detect(b"%PDF-1.4\n...", Some("image/png"), Some("scan.doc")), Kind::Pdf);
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n....", Some("image/jpeg"), Some("favicon.jpg")), Kind::Png);
        assert_eq!(detect(b"II*\0\x08\0\0\0", Some("application/octet-stream"), None), Kind::Tiff);
        assert_eq!(detect(b"MM\0*\0\0\0\x08", None, None), Kind::Tiff);
        assert_eq!(detect(&[0xFF, 0xD8, 0xFF, 0xE0], None, Some("x.pdf")), Kind::Jpeg);
        assert_eq!(detect(b"GIF89a\x01\0\x01\0", None, None), Kind::Gif);
    }

    #[test]
    fn pdf_header_found_after_junk() {
        let mut data = vec![b'x'; 1000];
        data.extend_from_slice(b"%PDF-1.7\n");
        assert_eq!(detect(&data, None, None), Kind::Pdf);

        let mut late = vec![b'x'; PDF_HEADER_WINDOW];
        late.extend_from_slice(b"%PDF-1.7\n");
        assert_eq!(detect(&late, None, None), Kind::Unknown);
    }

    #[test]
    fn declared_type_aliases() {
        for declared in ["application/pdf", "application/x-pdf", "application/acrobat", "Application/PDF; name=a"] {
            assert_eq!(detect(b"", Some(declared), None), Kind::Pdf, "{declared}");
        }
        assert_eq!(detect(b"", Some("image/x-tiff"), None), Kind::Tiff);
        assert_eq!(detect(b"", Some("application/msword"), Some("x.pdf")), Kind::Office(Office::Doc));
    }

    #[test]
    fn generic_types_use_file_name() {
        assert_eq!(detect(b"", Some("application/octet-stream"), Some("Invoice.PDF")), Kind::Pdf);
        assert_eq!(detect(b"", Some("application-x-gzip"), Some("a.Pdf")), Kind::Pdf);
        assert_eq!(detect(b"", Some("application-x-gzip"), None), Kind::Unknown);
        assert_eq!(detect(b"", None, Some("FAX.TIFF")), Kind::Tiff);
        assert_eq!(detect(b"", None, Some("winmail.dat")), Kind::Tnef);
        assert_eq!(detect(b"", None, Some("no-extension")), Kind::Unknown);
    }

    #[test]
    fn containers_refined_by_hint_or_content() {
        let mut docx = b"PK\x03\x04".to_vec();
        docx.extend_from_slice(&[0; 26]);
        docx.extend_from_slice(b"[Content_Types].xml....word/document.xml");
        assert_eq!(detect(&docx, Some("application/octet-stream"), None), Kind::Office(Office::Docx));

        let zip = b"PK\x03\x04plain archive".to_vec();
        assert_eq!(detect(&zip, Some("application/pdf"), Some("a.pdf")), Kind::Archive);

        let ole = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0];
        assert_eq!(detect(&ole, None, Some("Budget.XLS")), Kind::Office(Office::Xls));
        assert_eq!(detect(&ole, None, None), Kind::Office(Office::Ole));
        // A damaged compound file named or declared as an Outlook message stays one, so
        // it is rejected as a damaged message rather than sent to LibreOffice.
        assert_eq!(detect(&ole, None, Some("Fwd.MSG")), Kind::OutlookMessage);
        assert_eq!(detect(&ole, Some("application/vnd.ms-outlook"), None), Kind::OutlookMessage);
    }

    #[test]
    fn signatures_and_cards_detected() {
        assert_eq!(detect(b"", Some("application/pgp-signature"), Some("signature.asc")), Kind::Signature);
        assert_eq!(detect(b"", Some("application/x-pkcs7-signature"), None), Kind::Signature);
        assert_eq!(detect(b"", Some("application/octet-stream"), Some("smime.p7s")), Kind::Signature);
        assert_eq!(detect(b"BEGIN:VCARD\r\nVERSION:3.0", Some("text/plain"), None), Kind::VCard);
        assert_eq!(detect(b"", Some("text/calendar; method=REQUEST"), None), Kind::Calendar);
        assert_eq!(detect(b"", Some("application/pkcs7-mime; smime-type=enveloped-data"), None), Kind::SmimeBody);
    }

    #[test]
    fn image_dimensions_from_headers() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x0e\0\0\0\x0f";
        assert_eq!(image_dimensions(Kind::Png, png), Some((14, 15)));

        let gif = b"GIF89a\x20\x01\x10\x00";
        assert_eq!(image_dimensions(Kind::Gif, gif), Some((288, 16)));

        // SOI, an APP0 segment of length 4, then SOF0 with height 0x0102 and width 0x0304.
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xC0, 0, 17, 8, 1, 2, 3, 4];
        assert_eq!(image_dimensions(Kind::Jpeg, &jpeg), Some((0x0304, 0x0102)));

        assert_eq!(image_dimensions(Kind::Png, b"\x89PNG"), None);
    }
}
