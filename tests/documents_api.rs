//! The document pipeline through its public API, as the SMTP intake and `faxgate convert`
//! call it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use faxgate::config::{BodyMode, Documents, Paper};
use faxgate::documents::{DocumentError, Limits, PartOutcome, convert_message, files_to_pdf, message_to_pdf};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples");

fn sample(path: &str) -> Vec<u8> {
    let full = format!("{SAMPLES}/{path}");
    std::fs::read(&full).unwrap_or_else(|error| panic!("cannot read sample {full}: {error}"))
}

fn settings() -> Documents {
    Documents {
        paper: Paper::A4,
        body: BodyMode::Ignore,
        max_pages: 50,
        min_image_pixels: 1_000,
        max_message_pixels: 5_000_000,
        office_converter: "soffice".to_string(),
        office_timeout: Duration::from_secs(30),
    }
}

/// Builds a message with a text body and the given PDF attachments.
fn message_with(attachments: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut message = String::from(
        "From: alice@example.com\r\nTo: 14155550100@fax.example.net\r\nSubject: fax\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplease fax\r\n",
    );
    for (name, data) in attachments {
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        message.push_str(&format!(
            "--b\r\nContent-Type: application/pdf; name=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{encoded}\r\n"
        ));
    }
    message.push_str("--b--\r\n");
    message.into_bytes()
}

#[test]
fn limits_follow_settings() {
    let limits = Limits::from_settings(&settings(), 10_000_000);

    assert_eq!(limits.max_pages, 50);
    assert_eq!(limits.min_image_pixels, 1_000);
    assert_eq!(limits.max_message_pixels, 5_000_000);
    assert_eq!(limits.paper, Paper::A4);
    assert_eq!(limits.max_document_bytes, 10_000_000);
    assert_eq!(limits.max_total_bytes, 10_000_000);
    assert_eq!(limits.office_timeout, Duration::from_secs(30));
}

#[tokio::test]
async fn message_converted_on_pool() {
    let message = message_with(&[
        ("streams.pdf", sample("pdf/qpdf-c-object-streams.pdf")),
        ("inherit.pdf", sample("pdf/qpdf-page-inherit-mediabox.pdf")),
    ]);
    let limits = Arc::new(Limits::from_settings(&settings(), 25 * 1024 * 1024));

    let converted = convert_message(message, limits).await.unwrap();

    assert_eq!(converted.pages, 33);
    assert!(converted.pdf.starts_with(b"%PDF-"));
    let faxed: Vec<(&str, &PartOutcome)> =
        converted.parts.iter().filter(|part| !part.is_body()).map(|part| (part.name.as_str(), &part.outcome)).collect();
    assert_eq!(
        faxed,
        vec![("streams.pdf", &PartOutcome::Faxed { pages: 30 }), ("inherit.pdf", &PartOutcome::Faxed { pages: 3 })]
    );
}

#[test]
fn password_protected_reply() {
    let message = message_with(&[("Contract.pdf", sample("pdf/pypdf-r6-user-password-required.pdf"))]);

    let error = message_to_pdf(&message, &Limits::from_settings(&settings(), 25 * 1024 * 1024)).unwrap_err();

    let reply = error.smtp_reply();
    assert_eq!(reply.code, 550);
    assert_eq!(reply.status, "5.6.1");
    assert_eq!(reply.text, "cannot fax Contract.pdf: the PDF is password-protected; send it without a password");
}

#[test]
fn page_limit_from_settings() {
    let message = message_with(&[
        ("a.pdf", sample("pdf/qpdf-c-linearized.pdf")),
        ("b.pdf", sample("pdf/qpdf-hybrid-xref.pdf")),
    ]);

    let error = message_to_pdf(&message, &Limits::from_settings(&settings(), 25 * 1024 * 1024)).unwrap_err();

    assert!(matches!(error, DocumentError::TooManyPages { pages: 60, max: 50 }), "{error:?}");
    assert_eq!(error.smtp_reply().code, 552);
}

#[test]
fn preview_of_files() {
    let files = vec![("scan.pdf".to_string(), sample("pdf/qpdf-leading-junk.pdf"))];

    let converted = files_to_pdf(&files, &Limits::default()).unwrap();

    assert_eq!(converted.pages, 30);
}
