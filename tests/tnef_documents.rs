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
