//! Outlook's TNEF container (`winmail.dat`, `application/ms-tnef`): decoding it and
//! putting the files inside through the same type detection as other attachments.
//! [`expand`] opens Outlook message files (`.msg`, read by `msg`) the same way.
//!
//! A TNEF stream is a signature (0x223E9F78, little-endian), a 16-bit key and a list of
//! attribute records: a level byte, a 32-bit attribute ID, a 32-bit length, the data and
//! a 16-bit checksum. Each attachment starts with `attAttachRendData`; its content is
//! `attAttachData` and its name `attAttachTitle`, unless the MAPI properties of
//! `attAttachment` carry a long file name. The message body (RTF or HTML, kept in MAPI
//! properties) is never taken, so a TNEF without attachments contributes nothing.
//!
//! Bytes after the last complete record are ignored, because some mail systems append
//! junk to `winmail.dat`. A record that claims more bytes than remain makes the stream
//! truncated, which rejects it.

use std::borrow::Cow;

use tracing::{debug, warn};

use super::kind::{self, Kind};
use super::mime::{Attachment, Item};
use super::msg;
use super::text::windows_1252;
use super::{DocumentError, Limits, PartOutcome, PartReport};

/// The TNEF signature as stored: 0x223E9F78 in little-endian byte order.
const SIGNATURE: [u8; 4] = [0x78, 0x9F, 0x3E, 0x22];

/// Bytes of the signature and the key before the first record.
const HEADER_LEN: usize = 6;


/// Records at attachment level (`LVL_ATTACHMENT`); level 1 is the message.
const LEVEL_ATTACHMENT: u8 = 2;

/// `attAttachRendData`: starts a new attachment.
const ATT_ATTACH_REND_DATA: u32 = 0x0006_9002;
/// `attAttachData`: the attachment's content.
const ATT_ATTACH_DATA: u32 = 0x0006_800F;
/// `attAttachTitle`: the attachment's short (often 8.3) file name, in the sender's code
/// page, NUL-terminated.
const ATT_ATTACH_TITLE: u32 = 0x0001_8010;
/// `attAttachment`: the attachment's MAPI properties.
const ATT_ATTACHMENT: u32 = 0x0006_9005;

/// MAPI `PR_ATTACH_LONG_FILENAME`.
const PR_ATTACH_LONG_FILENAME: u16 = 0x3707;
/// MAPI `PR_ATTACH_FILENAME`, the 8.3 name.
const PR_ATTACH_FILENAME: u16 = 0x3704;
/// MAPI `PR_ATTACH_DATA_OBJ`, which some writers use instead of `attAttachData`.
const PR_ATTACH_DATA_OBJ: u16 = 0x3701;

/// Maximum attachments taken from one TNEF stream; the number of MIME parts a message
/// may have, because each attachment becomes a part of its own.
fn max_attachments(limits: &Limits) -> usize {
    limits.max_parts
}

/// Maximum MAPI properties read from one `attAttachment` record, far above the few
/// dozen Outlook writes (an estimate). More are not read, and the names found so far
/// are used.
const MAX_MAPI_PROPERTIES: u32 = 4096;

/// One file taken from a TNEF stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TnefFile {
    /// The long file name, else the short one, else empty.
    pub(crate) name: String,
    pub(crate) data: Vec<u8>,
}

/// Decodes a TNEF stream and returns its attachments in order. Fails, with the reason
/// for the sender, when the stream has no TNEF signature, is truncated, or has more
/// attachments or bytes than the limits allow.
pub(crate) fn decode(data: &[u8], limits: &Limits) -> Result<Vec<TnefFile>, String> {
    if data.len() < HEADER_LEN || data[..4] != SIGNATURE {
        return Err("the winmail.dat (TNEF) file has no TNEF signature".to_string());
    }
    let mut files: Vec<PendingFile> = Vec::new();
    let mut total_bytes: usize = 0;
    let mut at = HEADER_LEN;

    while at < data.len() {
        let Some(record) = read_record(data, at) else {
            // Fewer bytes than a record header: trailing garbage, or a record cut in its
            // header. Nothing of value is lost by stopping here.
            debug!(ignored_bytes = data.len() - at, "ignoring bytes after the last TNEF record");
            break;
        };
        let record = match record {
            Ok(record) => record,
            Err(Truncated) => {
                if is_plausible_record_start(data, at) {
                    return Err("the winmail.dat (TNEF) file is truncated".to_string());
                }
                debug!(ignored_bytes = data.len() - at, "ignoring bytes after the last TNEF record");
                break;
            }
        };
        at = record.next;

        if record.level != LEVEL_ATTACHMENT {
            continue;
        }
        match record.id {
            ATT_ATTACH_REND_DATA => {
                if files.len() >= max_attachments(limits) {
                    return Err(format!(
                        "the winmail.dat (TNEF) file has more than {} attachments",
                        max_attachments(limits)
                    ));
                }
                files.push(PendingFile::default());
            }
            ATT_ATTACH_DATA => {
                total_bytes = total_bytes.saturating_add(record.data.len());
                if record.data.len() > limits.max_document_bytes || total_bytes > limits.max_total_bytes {
                    return Err(format!(
                        "the winmail.dat (TNEF) file holds more than the maximum of {} bytes",
                        limits.max_document_bytes
                    ));
                }
                current(&mut files).data = Some(record.data.to_vec());
            }
            ATT_ATTACH_TITLE => {
                let title = code_page_text(record.data);
                current(&mut files).title = (!title.trim().is_empty()).then_some(title);
            }
            ATT_ATTACHMENT => {
                let properties = read_mapi_properties(record.data);
                let file = current(&mut files);
                file.long_name = properties.long_name.or(file.long_name.take());
                file.short_name = properties.short_name.or(file.short_name.take());
                if file.data.is_none()
                    && let Some(object) = properties.data_object
                    && object.len() <= limits.max_document_bytes
                {
                    file.data = Some(object);
                }
            }
            _ => {}
        }
    }

    Ok(files
        .into_iter()
        .filter_map(|file| {
            let data = file.data?;
            let name = file.long_name.or(file.title).or(file.short_name).unwrap_or_default();
            Some(TnefFile { name: name.trim().to_string(), data })
        })
        .collect())
}

/// Replaces each TNEF document among `items` with the files inside it, typed by their
/// content and name like any attachment. Nested TNEF streams are opened up to
/// `limits.max_depth` levels. A TNEF without attachments leaves a skipped report.
pub(crate) fn expand<'m>(items: Vec<Item<'m>>, limits: &Limits) -> Result<Vec<Item<'m>>, DocumentError> {
    let mut expanded = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::Document(attachment) if is_container(attachment.kind) => {
                expand_one(&attachment.name, attachment.kind, &attachment.data, limits, 0, &mut expanded)?;
            }
            other => expanded.push(other),
        }
    }
    Ok(expanded)
}

/// Returns whether files of this kind are replaced by the files inside them.
fn is_container(kind: Kind) -> bool {
    matches!(kind, Kind::Tnef | Kind::OutlookMessage)
}

/// Replaces a TNEF stream or an Outlook message file (`container_kind`) by the files
/// inside it, opening containers inside it in turn.
fn expand_one<'m>(
    container: &str,
    container_kind: Kind,
    data: &[u8],
    limits: &Limits,
    depth: usize,
    output: &mut Vec<Item<'m>>,
) -> Result<(), DocumentError> {
    let rejected = |reason: String| DocumentError::Rejected { file: container.to_string(), reason };
    if depth >= limits.max_depth {
        return Err(rejected(format!(
            "its winmail.dat and Outlook message files are nested more than {} levels deep",
            limits.max_depth
        )));
    }
    let (files, empty_reason) = match container_kind {
        Kind::OutlookMessage => (msg::decode(data, limits), "Outlook message without attachments"),
        _ => (decode(data, limits), "winmail.dat without attachments"),
    };
    let files = files.map_err(|reason| {
        warn!(name = %container, reason = %reason, "container file rejected");
        rejected(reason)
    })?;
    debug!(name = %container, kind = ?container_kind, attachments = files.len(), "container file opened");
    if files.is_empty() {
        output.push(Item::Skipped(PartReport {
            name: container.to_string(),
            detected: container_kind.mime_type().to_string(),
            outcome: PartOutcome::Skipped { reason: empty_reason.to_string() },
        }));
        return Ok(());
    }

    for (index, file) in files.into_iter().enumerate() {
        let name = if file.name.is_empty() { format!("{container} attachment {}", index + 1) } else { file.name };
        let mut kind = kind::detect(&file.data, None, Some(&name));
        // TNEF stores no MIME type, which for a MIME part would declare text/plain, so a
        // file of unknown kind whose content is text is taken as text.
        if kind == Kind::Unknown && looks_like_text(&file.data) {
            kind = Kind::Text;
        }
        if is_container(kind) {
            expand_one(&name, kind, &file.data, limits, depth + 1, output)?;
            continue;
        }
        let detected = kind.mime_type().to_string();
        if let Some(reason) = kind.skip_reason() {
            output.push(Item::Skipped(PartReport {
                name,
                detected,
                outcome: PartOutcome::Skipped { reason: reason.to_string() },
            }));
            continue;
        }
        if let Some((width, height)) = kind::image_dimensions(kind, &file.data)
            && u64::from(width) * u64::from(height) < limits.min_image_pixels
        {
            let reason = format!(
                "image of {width}x{height} pixels, below the minimum of {} pixels",
                limits.min_image_pixels
            );
            output.push(Item::Skipped(PartReport { name, detected, outcome: PartOutcome::Skipped { reason } }));
            continue;
        }
        output.push(Item::Document(Attachment {
            name,
            data: Cow::Owned(file.data),
            kind,
            damaged_encoding: false,
        }));
    }
    Ok(())
}

/// Returns whether the data is text: no NUL bytes and no control characters other than
/// whitespace and form feed.
fn looks_like_text(data: &[u8]) -> bool {
    data.iter().all(|&byte| byte >= 0x20 || matches!(byte, b'\t' | b'\n' | b'\r' | 0x0C))
}

#[derive(Default)]
struct PendingFile {
    title: Option<String>,
    long_name: Option<String>,
    short_name: Option<String>,
    data: Option<Vec<u8>>,
}

/// Returns the attachment being read. Writers put `attAttachRendData` first, but a
/// stream without it still has its first attachment taken.
fn current(files: &mut Vec<PendingFile>) -> &mut PendingFile {
    if files.is_empty() {
        files.push(PendingFile::default());
    }
    let last = files.len() - 1;
    &mut files[last]
}

struct Record<'d> {
    level: u8,
    id: u32,
    data: &'d [u8],
    /// Offset of the next record.
    next: usize,
}

/// A record header that promises more bytes than the stream has.
struct Truncated;

/// Reads the record at `at`: `None` when fewer bytes than a record header remain.
fn read_record(data: &[u8], at: usize) -> Option<Result<Record<'_>, Truncated>> {
    let header = data.get(at..at.checked_add(9)?)?;
    let level = header[0];
    let id = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    let length = u32::from_le_bytes([header[5], header[6], header[7], header[8]]) as usize;
    let start = at + 9;
    let Some(end) = start.checked_add(length) else {
        return Some(Err(Truncated));
    };
    let Some(next) = end.checked_add(2).filter(|&next| next <= data.len()) else {
        return Some(Err(Truncated));
    };
    // The checksum (sum of the data bytes modulo 65536) is not verified, because a wrong
    // one does not make the content unusable.
    Some(Ok(Record { level, id, data: &data[start..end], next }))
}

/// Returns whether the bytes at `at` look like the start of a record (a known level
/// and an attribute type in the ID's high word), which distinguishes a record cut short
/// from junk after the stream.
fn is_plausible_record_start(data: &[u8], at: usize) -> bool {
    let Some(header) = data.get(at..at + 5) else {
        return false;
    };
    let level = header[0];
    let attribute_type = u16::from_le_bytes([header[3], header[4]]);
    matches!(level, 1 | 2) && (1..=9).contains(&attribute_type)
}

/// Decodes a NUL-terminated name in the sender's code page. UTF-8 is taken as is, other
/// bytes as Windows-1252, the code page of most Western Outlook installations.
pub(crate) fn code_page_text(data: &[u8]) -> String {
    let end = data.iter().position(|&byte| byte == 0).unwrap_or(data.len());
    let bytes = &data[..end];
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&byte| windows_1252(byte)).collect(),
    }
}

#[derive(Default)]
struct MapiProperties {
    long_name: Option<String>,
    short_name: Option<String>,
    data_object: Option<Vec<u8>>,
}

/// Reads the MAPI properties of `attAttachment` that matter here. A malformed list
/// ends the reading and keeps what was read before it.
fn read_mapi_properties(data: &[u8]) -> MapiProperties {
    let mut properties = MapiProperties::default();
    let mut reader = Reader { data, at: 0 };
    let Some(count) = reader.u32() else {
        return properties;
    };
    for _ in 0..count.min(MAX_MAPI_PROPERTIES) {
        let Some(property) = read_mapi_property(&mut reader) else {
            break;
        };
        match (property.id, property.value) {
            (PR_ATTACH_LONG_FILENAME, MapiValue::Text(text)) => properties.long_name = Some(text),
            (PR_ATTACH_FILENAME, MapiValue::Text(text)) => properties.short_name = Some(text),
            (PR_ATTACH_DATA_OBJ, MapiValue::Binary(bytes)) => properties.data_object = Some(bytes),
            _ => {}
        }
    }
    properties
}

struct MapiProperty {
    id: u16,
    value: MapiValue,
}

enum MapiValue {
    Text(String),
    Binary(Vec<u8>),
    Other,
}

/// MAPI property types (`PT_*`) that the property reader names; the fixed-size ones
/// are listed by size in [`read_mapi_property`].
const PT_STRING8: u16 = 0x001E;
const PT_UNICODE: u16 = 0x001F;
const PT_BINARY: u16 = 0x0102;
const PT_OBJECT: u16 = 0x000D;
const PT_CLSID: u16 = 0x0048;
const MV_FLAG: u16 = 0x1000;

fn read_mapi_property(reader: &mut Reader<'_>) -> Option<MapiProperty> {
    let property_type = reader.u16()?;
    let id = reader.u16()?;
    if id >= 0x8000 {
        // A named property: a GUID, then a numeric ID or a UTF-16 name.
        reader.skip(16)?;
        match reader.u32()? {
            0 => {
                reader.u32()?;
            }
            1 => {
                let length = reader.u32()? as usize;
                reader.skip_padded(length)?;
            }
            _ => return None,
        }
    }

    let base_type = property_type & !MV_FLAG;
    let is_variable = matches!(base_type, PT_STRING8 | PT_UNICODE | PT_BINARY | PT_OBJECT);
    // Variable-length values always carry a count in TNEF, even single ones.
    let values = if property_type & MV_FLAG != 0 || is_variable { reader.u32()? } else { 1 };
    let mut value = MapiValue::Other;
    for index in 0..values {
        if is_variable {
            let length = reader.u32()? as usize;
            let bytes = reader.take_padded(length)?;
            if index == 0 {
                value = match base_type {
                    PT_STRING8 => MapiValue::Text(code_page_text(bytes)),
                    PT_UNICODE => MapiValue::Text(utf16_text(bytes)),
                    PT_BINARY => MapiValue::Binary(bytes.to_vec()),
                    _ => MapiValue::Other,
                };
            }
        } else {
            let size = match base_type {
                0x0002 | 0x0003 | 0x0004 | 0x000A | 0x000B => 4,
                0x0005 | 0x0006 | 0x0007 | 0x0014 | 0x0040 => 8,
                PT_CLSID => 16,
                0x0000 | 0x0001 => 0,
                _ => return None,
            };
            reader.skip(size)?;
        }
    }
    Some(MapiProperty { id, value })
}

fn utf16_text(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]])).collect();
    let end = units.iter().position(|&unit| unit == 0).unwrap_or(units.len());
    String::from_utf16_lossy(&units[..end])
}

/// A bounds-checked little-endian reader; every read past the end returns `None`.
struct Reader<'d> {
    data: &'d [u8],
    at: usize,
}

impl<'d> Reader<'d> {
    fn take(&mut self, length: usize) -> Option<&'d [u8]> {
        let end = self.at.checked_add(length)?;
        let bytes = self.data.get(self.at..end)?;
        self.at = end;
        Some(bytes)
    }

    /// Takes `length` bytes and skips the padding to the next multiple of 4.
    fn take_padded(&mut self, length: usize) -> Option<&'d [u8]> {
        let bytes = self.take(length)?;
        let padding = (4 - length % 4) % 4;
        self.skip(padding)?;
        Some(bytes)
    }

    fn skip(&mut self, length: usize) -> Option<()> {
        self.take(length).map(|_| ())
    }

    fn skip_padded(&mut self, length: usize) -> Option<()> {
        self.take_padded(length).map(|_| ())
    }

    fn u16(&mut self) -> Option<u16> {
        let bytes = self.take(2)?;
        Some(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        let bytes = self.take(4)?;
        Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one TNEF record with a correct checksum.
    fn record(level: u8, id: u32, data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![level];
        bytes.extend_from_slice(&id.to_le_bytes());
        bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(data);
        let checksum = data.iter().fold(0u16, |sum, &byte| sum.wrapping_add(u16::from(byte)));
        bytes.extend_from_slice(&checksum.to_le_bytes());
        bytes
    }

    fn stream(records: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0x01, 0x00]);
        for record in records {
            bytes.extend_from_slice(record);
        }
        bytes
    }

    #[test]
    fn attachment_with_title() {
        let data = stream(&[
            record(1, 0x0009_8008, b"IPM.Microsoft Mail.Note\0"),
            record(2, ATT_ATTACH_REND_DATA, &[0; 14]),
            record(2, ATT_ATTACH_TITLE, b"REPORT.PDF\0"),
            record(2, ATT_ATTACH_DATA, b"%PDF-1.4 x"),
        ]);
        let files = decode(&data, &Limits::default()).unwrap();
        assert_eq!(files, vec![TnefFile { name: "REPORT.PDF".to_string(), data: b"%PDF-1.4 x".to_vec() }]);
    }

    #[test]
    fn long_file_name_from_mapi() {
        let name = "Quarterly report.pdf\0";
        let mut properties = 1u32.to_le_bytes().to_vec();
        properties.extend_from_slice(&PT_STRING8.to_le_bytes());
        properties.extend_from_slice(&PR_ATTACH_LONG_FILENAME.to_le_bytes());
        properties.extend_from_slice(&1u32.to_le_bytes());
        properties.extend_from_slice(&(name.len() as u32).to_le_bytes());
        properties.extend_from_slice(name.as_bytes());
        properties.extend_from_slice(&[0; 3]);
        let data = stream(&[
            record(2, ATT_ATTACH_REND_DATA, &[0; 14]),
            record(2, ATT_ATTACH_TITLE, b"QUARTE~1.PDF\0"),
            record(2, ATT_ATTACH_DATA, b"%PDF-1.4 x"),
            record(2, ATT_ATTACHMENT, &properties),
        ]);
        let files = decode(&data, &Limits::default()).unwrap();
        assert_eq!(files[0].name, "Quarterly report.pdf");
    }

    #[test]
    fn truncated_stream_rejected() {
        let mut data = stream(&[record(2, ATT_ATTACH_REND_DATA, &[0; 14]), record(2, ATT_ATTACH_DATA, &[7; 100])]);
        data.truncate(data.len() - 50);
        assert_eq!(decode(&data, &Limits::default()).unwrap_err(), "the winmail.dat (TNEF) file is truncated");
    }

    #[test]
    fn trailing_garbage_ignored() {
        let mut data = stream(&[record(2, ATT_ATTACH_REND_DATA, &[0; 14]), record(2, ATT_ATTACH_DATA, b"abc")]);
        data.extend_from_slice(b"\r\n\r\n-- garbage after the stream, long enough for a header");
        let files = decode(&data, &Limits::default()).unwrap();
        assert_eq!(files.len(), 1);
    }

    #[test]
    fn no_signature_rejected() {
        assert!(decode(b"not tnef at all", &Limits::default()).is_err());
        assert!(decode(b"", &Limits::default()).is_err());
    }

    #[test]
    fn body_only_stream_has_no_files() {
        let data = stream(&[record(1, 0x0006_9003, b"{\\rtf1 body}")]);
        assert!(decode(&data, &Limits::default()).unwrap().is_empty());
    }
}

#[cfg(test)]
mod sample_tests {
    use super::*;

    fn sample(name: &str) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/tnef/");
        std::fs::read(format!("{path}{name}")).unwrap()
    }

    #[test]
    fn sample_files_names_and_sizes() {
        let files = decode(&sample("missing-filenames.tnef"), &Limits::default()).unwrap();
        let found: Vec<(&str, usize)> = files.iter().map(|file| (file.name.as_str(), file.data.len())).collect();
        assert_eq!(
            found,
            vec![
                ("generpts.src", 61210),
                ("TechlibDEC99.doc", 33792),
                ("TechlibDEC99-JAN00.doc", 34304),
                ("TechlibNOV99.doc", 33792),
            ]
        );
        for file in &files[1..] {
            assert!(file.data.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]), "{} is not an OLE2 file", file.name);
        }
    }

    #[test]
    fn sample_read_receipt_has_no_files() {
        // A read receipt: message attributes only, then one byte of garbage.
        let files = decode(&sample("garbage-at-end.tnef"), &Limits::default()).unwrap();
        assert!(files.is_empty());
    }

    #[test]
    fn sample_cut_short_rejected() {
        let data = sample("missing-filenames.tnef");
        let result = decode(&data[..100_000], &Limits::default());
        assert_eq!(result.unwrap_err(), "the winmail.dat (TNEF) file is truncated");
    }
}
