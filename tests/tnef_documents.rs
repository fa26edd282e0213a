//! Outlook `winmail.dat` (TNEF) attachments through the public document API: the files
//! inside are typed and converted like any attachment, a TNEF without attachments is no
//! document, and a truncated one is rejected naming it. Outlook message files (`.msg`),
//! built here with the `cfb` crate, have their attachments taken the same way.
//!
//! The sample with Word documents needs LibreOffice (`apt-get install
//! libreoffice-writer-nogui`).

use base64::Engine;
use faxgate::documents::{DocumentError, Limits, PartOutcome, files_to_pdf, message_to_pdf};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples/tnef");

fn sample(name: &str) -> Vec<u8> {
    let path = format!("{SAMPLES}/{name}");
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read sample {path}: {error}"))
}

/// Builds a message with a text body and `winmail.dat` as an `application/ms-tnef` part.
fn message_with_tnef(tnef: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(tnef);
    format!(
        "From: alice@example.com\r\nSubject: fax\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
         --b\r\nContent-Type: application/ms-tnef; name=\"winmail.dat\"\r\n\
         Content-Disposition: attachment; filename=\"winmail.dat\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b--\r\n"
    )
    .into_bytes()
}

#[test]
fn word_documents_inside_converted() {
    let converted = message_to_pdf(&message_with_tnef(&sample("missing-filenames.tnef")), &Limits::default()).unwrap();

    let faxed: Vec<(&str, &str)> = converted
        .parts
        .iter()
        .filter(|part| matches!(part.outcome, PartOutcome::Faxed { .. }))
        .map(|part| (part.name.as_str(), part.detected.as_str()))
        .collect();
    assert_eq!(
        faxed,
        vec![
            ("generpts.src", "text/plain"),
            ("TechlibDEC99.doc", "application/msword"),
            ("TechlibDEC99-JAN00.doc", "application/msword"),
            ("TechlibNOV99.doc", "application/msword"),
        ]
    );
    assert!(converted.pages >= 4, "{} pages", converted.pages);
}

#[test]
fn winmail_without_attachments_is_no_document() {
    let result = message_to_pdf(&message_with_tnef(&sample("garbage-at-end.tnef")), &Limits::default());

    let Err(DocumentError::NoDocument { skipped }) = result else {
        panic!("expected no document, got {result:?}");
    };
    let winmail = skipped.iter().find(|part| part.name == "winmail.dat").expect("winmail.dat reported");
    assert_eq!(winmail.outcome, PartOutcome::Skipped { reason: "winmail.dat without attachments".to_string() });
}

#[test]
fn truncated_winmail_rejected() {
    let data = sample("missing-filenames.tnef");

    let result = message_to_pdf(&message_with_tnef(&data[..90_000]), &Limits::default());

    let Err(DocumentError::Rejected { file, reason }) = result else {
        panic!("expected a rejection, got {result:?}");
    };
    assert_eq!(file, "winmail.dat");
    assert_eq!(reason, "the winmail.dat (TNEF) file is truncated");
}

#[test]
fn winmail_given_as_file() {
    let files = vec![("winmail.dat".to_string(), sample("garbage-at-end.tnef"))];

    let result = files_to_pdf(&files, &Limits::default());

    assert!(matches!(result, Err(DocumentError::NoDocument { .. })), "{result:?}");
}

/// Builds a TNEF stream with one attachment at attachment level.
fn tnef_with(name: &str, data: &[u8]) -> Vec<u8> {
    let record = |level: u8, id: u32, body: &[u8]| {
        let mut bytes = vec![level];
        bytes.extend_from_slice(&id.to_le_bytes());
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(body);
        let checksum = body.iter().fold(0u16, |sum, &byte| sum.wrapping_add(u16::from(byte)));
        bytes.extend_from_slice(&checksum.to_le_bytes());
        bytes
    };
    let mut stream = vec![0x78, 0x9F, 0x3E, 0x22, 0x01, 0x00];
    stream.extend(record(2, 0x0006_9002, &[0; 14]));
    stream.extend(record(2, 0x0001_8010, format!("{name}\0").as_bytes()));
    stream.extend(record(2, 0x0006_800F, data));
    stream
}

#[test]
fn winmail_in_forwarded_messages() {
    // winmail.dat inside a message forwarded inside another forwarded message.
    let inner = String::from_utf8(message_with_tnef(&tnef_with("memo.txt", b"Memo from Outlook\r\n"))).unwrap();
    let middle = format!(
        "From: bob@example.com\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
         --m\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n\
         --m\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--m--\r\n"
    );
    let outer = format!(
        "From: alice@example.com\r\nSubject: Fwd: Fwd\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\n\
         --o\r\nContent-Type: text/plain\r\n\r\nplease fax\r\n\
         --o\r\nContent-Type: message/rfc822\r\n\r\n{middle}\r\n--o--\r\n"
    );

    let converted = message_to_pdf(outer.as_bytes(), &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
    let faxed: Vec<&str> = converted
        .parts
        .iter()
        .filter(|part| matches!(part.outcome, PartOutcome::Faxed { .. }))
        .map(|part| part.name.as_str())
        .collect();
    assert_eq!(faxed, vec!["memo.txt"]);
}

#[test]
fn winmail_inside_winmail_opened() {
    let inner = tnef_with("memo.txt", b"Memo\r\n");
    let outer = tnef_with("winmail.dat", &inner);

    let converted = files_to_pdf(&[("winmail.dat".to_string(), outer)], &Limits::default()).unwrap();

    assert_eq!(converted.parts.len(), 1);
    assert_eq!(converted.parts[0].name, "memo.txt");
    assert_eq!(converted.parts[0].outcome, PartOutcome::Faxed { pages: 1 });
}

/// One attachment of an Outlook message file built by [`outlook_message`].
enum MsgAttachment<'a> {
    File(&'a str, &'a [u8]),
    Message(Vec<MsgAttachment<'a>>),
    /// An embedded OLE object: an object storage without message properties.
    OleObject(&'a str),
}

/// Builds an Outlook message file (an OLE2 compound file of version 3, with 512-byte
/// sectors, as Outlook writes) with `attachments`.
fn outlook_message(attachments: &[MsgAttachment<'_>]) -> Vec<u8> {
    let mut file =
        cfb::CompoundFile::create_with_version(cfb::Version::V3, std::io::Cursor::new(Vec::new())).unwrap();
    write_message(&mut file, "", attachments);
    file.flush().unwrap();
    file.into_inner().into_inner()
}

fn write_stream(file: &mut cfb::CompoundFile<std::io::Cursor<Vec<u8>>>, path: &str, data: &[u8]) {
    use std::io::Write;
    file.create_stream(path).unwrap().write_all(data).unwrap();
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect()
}

fn write_message(file: &mut cfb::CompoundFile<std::io::Cursor<Vec<u8>>>, storage: &str, attachments: &[MsgAttachment<'_>]) {
    // A property stream starts with a header of 32 bytes at the top level and 24 in an
    // attached message. The reader only checks that the stream exists, so zeros do.
    write_stream(file, &format!("{storage}/__properties_version1.0"), &[0; 32]);
    write_stream(file, &format!("{storage}/__substg1.0_0037001F"), &utf16("the subject, never faxed"));
    for (index, attachment) in attachments.iter().enumerate() {
        let path = format!("{storage}/__attach_version1.0_#{index:08X}");
        file.create_storage(&path).unwrap();
        write_stream(file, &format!("{path}/__properties_version1.0"), &[0; 8]);
        match attachment {
            MsgAttachment::File(name, data) => {
                write_stream(file, &format!("{path}/__substg1.0_3707001F"), &utf16(name));
                write_stream(file, &format!("{path}/__substg1.0_37010102"), data);
            }
            MsgAttachment::Message(inner) => {
                let object = format!("{path}/__substg1.0_3701000D");
                file.create_storage(&object).unwrap();
                write_message(file, &object, inner);
            }
            MsgAttachment::OleObject(name) => {
                write_stream(file, &format!("{path}/__substg1.0_3707001F"), &utf16(name));
                let object = format!("{path}/__substg1.0_3701000D");
                file.create_storage(&object).unwrap();
                write_stream(file, &format!("{object}/CONTENTS"), b"not a message");
            }
        }
    }
}

/// Builds a message with one attachment declared as `application/octet-stream`.
fn message_with_attachment(name: &str, data: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    format!(
        "From: alice@example.com\r\nSubject: fax\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
         --b\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b--\r\n"
    )
    .into_bytes()
}

fn faxed_names(converted: &faxgate::documents::Converted) -> Vec<&str> {
    converted
        .parts
        .iter()
        .filter(|part| matches!(part.outcome, PartOutcome::Faxed { .. }))
        .map(|part| part.name.as_str())
        .collect()
}

#[test]
fn outlook_message_attachments_faxed_in_order() {
    let msg = outlook_message(&[
        MsgAttachment::File("memo.txt", b"Memo from Outlook\r\n"),
        MsgAttachment::Message(vec![MsgAttachment::File("note.txt", b"Note inside the attached message\r\n")]),
        MsgAttachment::File("last.txt", b"Last page\r\n"),
    ]);

    // No extension: the content alone shows it is an Outlook message.
    let converted = message_to_pdf(&message_with_attachment("Re invoice", &msg), &Limits::default()).unwrap();

    assert_eq!(faxed_names(&converted), vec!["memo.txt", "note.txt", "last.txt"]);
    assert_eq!(converted.pages, 3);
}

#[test]
fn outlook_message_inside_winmail_opened() {
    let msg = outlook_message(&[MsgAttachment::File("memo.txt", b"Memo\r\n")]);
    let winmail = tnef_with("forwarded.msg", &msg);

    let converted = files_to_pdf(&[("winmail.dat".to_string(), winmail)], &Limits::default()).unwrap();

    assert_eq!(faxed_names(&converted), vec!["memo.txt"]);
    assert_eq!(converted.pages, 1);
}

#[test]
fn outlook_message_without_attachments_skipped() {
    let msg = outlook_message(&[]);

    let result = message_to_pdf(&message_with_attachment("forwarded.msg", &msg), &Limits::default());

    let Err(error @ DocumentError::NoDocument { .. }) = result else {
        panic!("expected no document, got {result:?}");
    };
    let reply = error.smtp_reply();
    assert_eq!(reply.code, 554);
    assert!(reply.text.contains("forwarded.msg (Outlook message without attachments)"), "{}", reply.text);
}

#[test]
fn outlook_message_with_ole_object_rejected() {
    let msg = outlook_message(&[
        MsgAttachment::File("memo.txt", b"Memo\r\n"),
        MsgAttachment::OleObject("chart"),
    ]);

    let result = message_to_pdf(&message_with_attachment("forwarded.msg", &msg), &Limits::default());

    let Err(DocumentError::Rejected { file, reason }) = result else {
        panic!("expected a rejection, got {result:?}");
    };
    assert_eq!(file, "forwarded.msg");
    assert_eq!(
        reason,
        "its attachment chart is an embedded OLE object, which cannot be faxed; attach the document itself"
    );
}

#[test]
fn outlook_message_limits_enforced() {
    let nested = outlook_message(&[MsgAttachment::Message(vec![MsgAttachment::Message(vec![MsgAttachment::File(
        "deep.txt",
        b"Deep\r\n",
    )])])]);
    let limits = Limits { max_depth: 2, ..Limits::default() };

    let result = files_to_pdf(&[("nested.msg".to_string(), nested)], &limits);

    let Err(DocumentError::Rejected { file, reason }) = result else {
        panic!("expected a rejection, got {result:?}");
    };
    assert_eq!(file, "nested.msg");
    assert_eq!(reason, "its attached messages are nested more than 2 levels deep");

    let large = outlook_message(&[MsgAttachment::File("big.txt", &[b'x'; 2000])]);
    let limits = Limits { max_document_bytes: 1000, ..Limits::default() };
    let result = files_to_pdf(&[("large.msg".to_string(), large)], &limits);
    let Err(DocumentError::Rejected { reason, .. }) = result else {
        panic!("expected a rejection, got {result:?}");
    };
    assert_eq!(reason, "the Outlook message file holds more than the maximum of 1000 bytes");

    let damaged = outlook_message(&[MsgAttachment::File("memo.txt", b"Memo\r\n")]);
    let result = files_to_pdf(&[("cut.msg".to_string(), damaged[..1000].to_vec())], &Limits::default());
    let Err(DocumentError::Rejected { file, reason }) = result else {
        panic!("expected a rejection, got {result:?}");
    };
    assert_eq!(file, "cut.msg");
    assert_eq!(reason, "the Outlook message file is damaged and cannot be read");
}
