//! Outlook `winmail.dat` (TNEF) attachments through the public document API: the files
//! inside are typed and converted like any attachment, a TNEF without attachments is no
//! document, and a truncated one is rejected naming it.
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
