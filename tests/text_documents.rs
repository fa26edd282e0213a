//! Text rendering through the public document API: text attachments become pages with
//! an embedded font whose text `pdftotext` (poppler-utils) reads back, and
//! `documents.body = "cover"` puts the message body in front.

mod support;

use std::process::Command;

use base64::Engine;
use faxgate::config::{BodyMode, Paper};
use faxgate::documents::{DocumentError, Limits, PartOutcome, files_to_pdf, message_to_pdf};
use support::pdf::{LETTER, make_pdf, page_sizes};

/// Returns the text of the PDF, pages separated by form feeds.
fn pdf_text(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fax.pdf");
    std::fs::write(&path, pdf).unwrap();
    let output = Command::new("pdftotext")
        .args(["-enc", "UTF-8", "-layout"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext is installed (apt-get install poppler-utils)");
    assert!(output.status.success(), "pdftotext failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// Builds a multipart/mixed message: a text/plain body, then attachments given as
/// (content type, file name, bytes).
fn message(body: &str, attachments: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut raw = String::from(
        "From: alice@example.com\r\nTo: 14155552222@fax.example.com\r\nSubject: fax\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
    raw.push_str(body);
    raw.push_str("\r\n");
    for (content_type, name, data) in attachments {
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        raw.push_str(&format!(
            "--b\r\nContent-Type: {content_type}; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n"
        ));
    }
    raw.push_str("--b--\r\n");
    raw.into_bytes()
}

fn faxed(parts: &[faxgate::documents::PartReport]) -> Vec<(String, u32)> {
    parts
        .iter()
        .filter_map(|part| match part.outcome {
            PartOutcome::Faxed { pages } => Some((part.name.clone(), pages)),
            _ => None,
        })
        .collect()
}

#[test]
fn text_attachment_extractable_with_non_ascii() {
    let text = "Grüße, Привет\r\nZweite Zeile\twith a tab\r\n";

    let converted = files_to_pdf(&[("note.txt".to_string(), text.as_bytes().to_vec())], &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
    let extracted = pdf_text(&converted.pdf);
    assert!(extracted.contains("Grüße, Привет"), "{extracted}");
    assert!(extracted.contains("Zweite Zeile"), "{extracted}");
    assert_eq!(page_sizes(&converted.pdf), vec![LETTER]);
}

#[test]
fn long_text_paginates_on_paper() {
    // 57 lines fit a Letter page and 60 an A4 page at 12 pt line spacing.
    let text: String = (1..=150).map(|n| format!("line {n}\n")).collect();
    let file = vec![("lines.txt".to_string(), text.into_bytes())];

    let letter = files_to_pdf(&file, &Limits::default()).unwrap();
    let a4 = files_to_pdf(&file, &Limits { paper: Paper::A4, ..Limits::default() }).unwrap();

    assert_eq!(letter.pages, 3);
    assert_eq!(a4.pages, 3);
    let (width, height) = page_sizes(&a4.pdf)[0];
    assert!((width - 595.28).abs() < 0.5, "A4 width {width}");
    assert!((height - 841.89).abs() < 0.5, "A4 height {height}");
    let extracted = pdf_text(&letter.pdf);
    let pages: Vec<&str> = extracted.split('\u{0C}').collect();
    assert!(pages[0].contains("line 57"), "{}", pages[0]);
    assert!(!pages[0].contains("line 58"), "{}", pages[0]);
    assert!(pages[1].contains("line 58"), "{}", pages[1]);
    assert!(pages[2].contains("line 150"), "{}", pages[2]);
}

#[test]
fn long_lines_wrap_within_page() {
    let words = "word ".repeat(100);

    let converted = files_to_pdf(&[("long.txt".to_string(), words.into_bytes())], &Limits::default()).unwrap();

    let extracted = pdf_text(&converted.pdf);
    let lines: Vec<&str> = extracted.lines().filter(|line| !line.trim().is_empty()).collect();
    assert_eq!(lines.len(), 7, "{extracted}");
    assert!(lines.iter().all(|line| line.trim().len() <= 83), "{extracted}");
}

#[test]
fn text_over_page_limit_rejected() {
    let text = "x\n".repeat(57 * 5);

    let result = files_to_pdf(&[("big.txt".to_string(), text.into_bytes())], &Limits { max_pages: 3, ..Limits::default() });

    assert!(matches!(result, Err(DocumentError::TooManyPages { max: 3, .. })), "{result:?}");
}

#[test]
fn missing_glyphs_and_control_characters() {
    let text = "emoji 🙂 and CJK 中文\u{7}\u{1B} end";

    let converted = files_to_pdf(&[("odd.txt".to_string(), text.as_bytes().to_vec())], &Limits::default()).unwrap();

    let extracted = pdf_text(&converted.pdf);
    assert!(extracted.contains("emoji \u{FFFD} and CJK \u{FFFD}\u{FFFD} end"), "{extracted}");
}

#[test]
fn csv_attachment_faxed() {
    let message = message("numbers attached", &[("text/csv", "test.csv", b"a,b\r\n1,2\r\n")]);

    let converted = message_to_pdf(&message, &Limits::default()).unwrap();

    assert_eq!(faxed(&converted.parts), vec![("test.csv".to_string(), 1)]);
    assert!(pdf_text(&converted.pdf).contains("1,2"));
}

#[test]
fn blank_footer_attachment_skipped() {
    let pdf = make_pdf(&[LETTER]);
    let message =
        message("see attached", &[("application/pdf", "a.pdf", &pdf), ("text/plain", "ATT00001.txt", b" \r\n\r\n")]);

    let converted = message_to_pdf(&message, &Limits::default()).unwrap();

    assert_eq!(faxed(&converted.parts), vec![("a.pdf".to_string(), 1)]);
}

#[test]
fn body_not_faxed_by_default() {
    let pdf = make_pdf(&[LETTER, LETTER]);
    let message = message("Please fax this to Bob.", &[("application/pdf", "a.pdf", &pdf)]);

    let converted = message_to_pdf(&message, &Limits::default()).unwrap();

    assert_eq!(converted.pages, 2);
    assert!(!pdf_text(&converted.pdf).contains("Bob"));
}

#[test]
fn body_cover_page_comes_first() {
    let pdf = make_pdf(&[LETTER, LETTER]);
    let message = message("Attention: Bob\r\nPlease sign and return. Grüße", &[("application/pdf", "a.pdf", &pdf)]);
    let limits = Limits { body: BodyMode::Cover, ..Limits::default() };

    let converted = message_to_pdf(&message, &limits).unwrap();

    assert_eq!(converted.pages, 3);
    assert_eq!(
        faxed(&converted.parts),
        vec![("(message body)".to_string(), 1), ("a.pdf".to_string(), 2)]
    );
    let extracted = pdf_text(&converted.pdf);
    let first_page = extracted.split('\u{0C}').next().unwrap();
    assert!(first_page.contains("Attention: Bob"), "{first_page}");
    assert!(first_page.contains("Please sign and return. Grüße"), "{first_page}");
}

#[test]
fn html_body_cover_as_text() {
    let pdf = make_pdf(&[LETTER]);
    let raw = format!(
        "From: alice@example.com\r\nSubject: fax\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <html><body><p>Hello <b>Bob</b></p><p>Second paragraph</p></body></html>\r\n\
         --b\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        base64::engine::general_purpose::STANDARD.encode(&pdf)
    );
    let limits = Limits { body: BodyMode::Cover, ..Limits::default() };

    let converted = message_to_pdf(raw.as_bytes(), &limits).unwrap();

    assert_eq!(converted.pages, 2);
    let first_page = pdf_text(&converted.pdf);
    assert!(first_page.contains("Hello Bob"), "{first_page}");
    assert!(!first_page.contains("<b>"), "{first_page}");
}

#[test]
fn cover_without_document_is_no_document() {
    let message = message("Only a body, nothing attached.", &[]);
    let limits = Limits { body: BodyMode::Cover, ..Limits::default() };

    let result = message_to_pdf(&message, &limits);

    assert!(matches!(result, Err(DocumentError::NoDocument { .. })), "{result:?}");
}

#[test]
fn uuencoded_file_not_on_cover() {
    let pdf = make_pdf(&[LETTER]);
    let body = format!("Hello Bob,\r\n\r\n{}\r\nRegards\r\n", uuencode("scan.pdf", &pdf));
    let raw = format!(
        "From: alice@example.com\r\nSubject: fax\r\nContent-Type: text/plain\r\n\r\n{body}"
    );
    let limits = Limits { body: BodyMode::Cover, ..Limits::default() };

    let converted = message_to_pdf(raw.as_bytes(), &limits).unwrap();

    assert_eq!(faxed(&converted.parts), vec![("(message body)".to_string(), 1), ("scan.pdf".to_string(), 1)]);
    let cover = pdf_text(&converted.pdf);
    let cover = cover.split('\u{0C}').next().unwrap();
    assert!(cover.contains("Hello Bob"), "{cover}");
    assert!(cover.contains("Regards"), "{cover}");
    assert!(!cover.contains("begin 644"), "{cover}");
}

/// Encodes `data` as a uuencoded block (`begin 644 name` ... `end`).
fn uuencode(name: &str, data: &[u8]) -> String {
    let encode = |value: u8| if value == 0 { '`' } else { char::from(value + 32) };
    let mut text = format!("begin 644 {name}\r\n");
    for chunk in data.chunks(45) {
        text.push(encode(chunk.len() as u8));
        for triple in chunk.chunks(3) {
            let bytes = [triple[0], *triple.get(1).unwrap_or(&0), *triple.get(2).unwrap_or(&0)];
            text.push(encode(bytes[0] >> 2));
            text.push(encode(((bytes[0] & 0x03) << 4) | (bytes[1] >> 4)));
            text.push(encode(((bytes[1] & 0x0F) << 2) | (bytes[2] >> 6)));
            text.push(encode(bytes[2] & 0x3F));
        }
        text.push_str("\r\n");
    }
    text.push_str("`\r\nend\r\n");
    text
}

#[test]
fn daemon_cover_from_config() {
    use support::daemon::{DOMAIN, Setup, TestDaemon, wait_for};
    use support::smtp_client::Client;

    let daemon = TestDaemon::start(Setup { documents_extra: "body = \"cover\"".to_string(), ..Setup::default() });
    daemon.add_mapping("alice@example.com", &["+14155550100:send"]);
    let pdf = make_pdf(&[LETTER]);
    let message = message("Cover note for Bob, Grüße", &[("application/pdf", "a.pdf", &pdf)]);

    let (mut client, _) = Client::connect(daemon.smtp_addr());
    assert_eq!(client.command("EHLO client.example").code, 250);
    assert_eq!(client.command("MAIL FROM:<alice@example.com>").code, 250);
    assert_eq!(client.command(&format!("RCPT TO:<14155552222@{DOMAIN}>")).code, 250);
    let (start, end) = client.data(&message);
    let reply = end.unwrap_or(start);

    assert!(reply.is(250, "2.0.0"), "{reply:?}\n{}", daemon.log());
    let id = reply.text.rsplit("queued as ").next().unwrap().trim().to_string();
    let pdf_path = daemon.outbox().join(format!("{id}.pdf"));
    wait_for("the outbox PDF", std::time::Duration::from_secs(30), || pdf_path.exists().then_some(()));
    let faxed = std::fs::read(pdf_path).unwrap();
    assert_eq!(page_sizes(&faxed).len(), 2);
    let extracted = pdf_text(&faxed);
    assert!(extracted.split('\u{0C}').next().unwrap().contains("Cover note for Bob, Grüße"), "{extracted}");
}
