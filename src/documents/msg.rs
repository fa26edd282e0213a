//! Outlook message files (`.msg`): taking the attachments out of them, so they go
//! through the same pipeline as the files inside `winmail.dat`.
//!
//! A `.msg` file is an OLE2 compound file (the MS-OXMSG format). The message's MAPI
//! properties are in `__properties_version1.0`, and each attachment is a storage named
//! `__attach_version1.0_#` and eight hex digits. In an attachment storage the stream
//! `__substg1.0_37010102` contains the content, and `__substg1.0_3707001F` (long name)
//! or `__substg1.0_3704001F` (short name) the file name in UTF-16LE. The `…001E` forms
//! of the names contain 8-bit text in the sender's code page. An attached message is a storage
//! `__substg1.0_3701000D` laid out like a whole message, whose attachments are taken in
//! turn. The message body is never taken, as with TNEF.

use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use cfb::CompoundFile;
use tracing::{debug, warn};

use super::Limits;
use super::tnef::{TnefFile, code_page_text};

/// The stream that every message storage has, which marks a compound file as a message.
const PROPERTIES_STREAM: &str = "__properties_version1.0";

/// Name prefix of attachment storages, compared case-insensitively.
const ATTACHMENT_PREFIX: &str = "__attach_version1.0_#";

/// `PidTagAttachDataBinary`: the content of an attachment.
const DATA_STREAM: &str = "__substg1.0_37010102";

/// `PidTagAttachDataObject` as a storage: an attached message (or an OLE object).
const OBJECT_STORAGE: &str = "__substg1.0_3701000D";

/// Name properties in order of preference: `PidTagAttachLongFilename`,
/// `PidTagAttachFilename` (8.3) and `PidTagDisplayName`.
const NAME_PROPERTIES: [&str; 3] = ["3707", "3704", "3001"];

/// Maximum bytes of a file name stream read.
const MAX_NAME_BYTES: u64 = 2048;

/// Returns whether `data` is an Outlook message: a compound file with a message
/// property stream at its root.
pub(crate) fn is_outlook_message(data: &[u8]) -> bool {
    // The compound file reader is not known to be panic-free on hostile input, and
    // detection runs outside the per-document panic guard.
    catch_unwind(|| {
        CompoundFile::open(Cursor::new(data)).is_ok_and(|file| file.is_stream(Path::new("/").join(PROPERTIES_STREAM)))
    })
    .unwrap_or(false)
}

/// Decodes an Outlook message file and returns its attachments in order, those of
/// attached messages included. Fails, with the reason for the sender, when the file
/// cannot be read, or has more attachments, bytes or nesting than the limits allow.
pub(crate) fn decode(data: &[u8], limits: &Limits) -> Result<Vec<TnefFile>, String> {
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        let mut file = CompoundFile::open(Cursor::new(data)).map_err(|error| damaged(&error))?;
        let mut walk = Walk { limits, files: Vec::new(), total_bytes: 0 };
        walk.message(&mut file, Path::new("/"), 0)?;
        Ok(walk.files)
    }));
    decoded.unwrap_or_else(|_| {
        warn!("reading an Outlook message file panicked");
        Err("the Outlook message file is damaged and cannot be read".to_string())
    })
}

fn damaged(error: &std::io::Error) -> String {
    debug!(%error, "Outlook message file cannot be read");
    "the Outlook message file is damaged and cannot be read".to_string()
}

struct Walk<'l> {
    limits: &'l Limits,
    files: Vec<TnefFile>,
    total_bytes: usize,
}

impl Walk<'_> {
    /// Takes the attachments of the message stored at `storage`.
    fn message<F: Read + std::io::Seek>(
        &mut self,
        file: &mut CompoundFile<F>,
        storage: &Path,
        depth: usize,
    ) -> Result<(), String> {
        if depth >= self.limits.max_depth {
            return Err(format!(
                "its attached messages are nested more than {} levels deep",
                self.limits.max_depth
            ));
        }
        let mut attachments: Vec<PathBuf> = file
            .read_storage(storage)
            .map_err(|error| damaged(&error))?
            .filter(|entry| entry.is_storage() && has_prefix(entry.name(), ATTACHMENT_PREFIX))
            .map(|entry| entry.path().to_path_buf())
            .collect();
        // The eight hex digits number the attachments, so name order is their order.
        attachments.sort_by_key(|path| path.to_string_lossy().to_ascii_lowercase());

        for attachment in attachments {
            self.attachment(file, &attachment, depth)?;
        }
        Ok(())
    }

    fn attachment<F: Read + std::io::Seek>(
        &mut self,
        file: &mut CompoundFile<F>,
        attachment: &Path,
        depth: usize,
    ) -> Result<(), String> {
        let name = read_name(file, attachment);
        let object = attachment.join(OBJECT_STORAGE);
        if file.is_storage(&object) {
            if file.is_stream(object.join(PROPERTIES_STREAM)) {
                return self.message(file, &object, depth + 1);
            }
            return Err(format!(
                "its attachment {} is an embedded OLE object, which cannot be faxed; attach the document itself",
                name.as_deref().unwrap_or("without a name")
            ));
        }

        if self.files.len() >= self.limits.max_parts {
            return Err(format!("the Outlook message file has more than {} attachments", self.limits.max_parts));
        }
        let data_path = attachment.join(DATA_STREAM);
        if !file.is_stream(&data_path) {
            // Attachments by reference (a link to a file share) carry no content.
            return Err(format!(
                "its attachment {} has no content, such as a link to a file; attach the document itself",
                name.as_deref().unwrap_or("without a name")
            ));
        }
        let length = file.entry(&data_path).map_err(|error| damaged(&error))?.len();
        let too_large = || {
            format!("the Outlook message file holds more than the maximum of {} bytes", self.limits.max_document_bytes)
        };
        if length > self.limits.max_document_bytes as u64 {
            return Err(too_large());
        }
        let data = read_stream(file, &data_path, length)?;
        self.total_bytes = self.total_bytes.saturating_add(data.len());
        if self.total_bytes > self.limits.max_total_bytes {
            return Err(too_large());
        }
        self.files.push(TnefFile { name: name.unwrap_or_default(), data });
        Ok(())
    }
}

fn has_prefix(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len()).is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// Reads at most `max` bytes of a stream.
fn read_stream<F: Read + std::io::Seek>(file: &mut CompoundFile<F>, path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let stream = file.open_stream(path).map_err(|error| damaged(&error))?;
    let mut data = Vec::new();
    stream.take(max).read_to_end(&mut data).map_err(|error| damaged(&error))?;
    Ok(data)
}

/// Returns the attachment's file name from the first name property present, without
/// trailing NULs, or `None` when it has none.
fn read_name<F: Read + std::io::Seek>(file: &mut CompoundFile<F>, attachment: &Path) -> Option<String> {
    for property in NAME_PROPERTIES {
        let unicode = attachment.join(format!("__substg1.0_{property}001F"));
        if file.is_stream(&unicode)
            && let Ok(bytes) = read_stream(file, &unicode, MAX_NAME_BYTES)
        {
            let units: Vec<u16> = bytes.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]])).collect();
            let name = String::from_utf16_lossy(&units).trim_end_matches('\0').trim().to_string();
            if !name.is_empty() {
                return Some(name);
            }
        }
        let code_page = attachment.join(format!("__substg1.0_{property}001E"));
        if file.is_stream(&code_page)
            && let Ok(bytes) = read_stream(file, &code_page, MAX_NAME_BYTES)
        {
            let name = code_page_text(&bytes).trim().to_string();
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
    None
}
