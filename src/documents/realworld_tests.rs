//! Tests of inputs that broke other mail-to-fax gateways, mail parsers and PDF tools:
//! MIME structures, header and transfer encodings, and damaged or unusual PDFs.

use lopdf::{Document, Object, Stream, dictionary};

use super::tests::{
    build_pdf, expect_no_document, expect_rejected, message, multipart, part, pdf_attachment, sample,
    skip_reason, text_part,
};
use super::*;

fn faxed_names(converted: &Converted) -> Vec<&str> {
    converted
        .parts
        .iter()
        .filter(|report| matches!(report.outcome, PartOutcome::Faxed { .. }))
        .map(|report| report.name.as_str())
        .collect()
}

/// Builds a one-page PDF by hand whose only cross-reference data is a stream encoded
/// with `/ASCIIHexDecode`, stating `declared_size` as its `/Size` (6 is right).
fn pdf_with_hex_xref_stream(declared_size: usize) -> Vec<u8> {
    let content = "0 0 m 100 100 l S";
    let bodies = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 400] /Contents 4 0 R /Resources << >> >>".to_string(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
    ];
    let mut pdf = b"%PDF-1.5\n".to_vec();
    let mut offsets = Vec::new();
    for (index, body) in bodies.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", index + 1).as_bytes());
    }
    let xref_offset = pdf.len();
    offsets.push(xref_offset);

    // Entries with /W [1 4 2]: type, offset, generation.
    let mut hex = String::from("0000000000FFFF");
    for offset in offsets {
        hex.push_str(&format!("01{offset:08X}0000"));
    }
    hex.push('>');
    pdf.extend_from_slice(
        format!(
            "5 0 obj\n<< /Type /XRef /Size {declared_size} /W [1 4 2] /Index [0 6] /Root 1 0 R \
             /Filter /ASCIIHexDecode /Length {} >>\nstream\n{hex}\nendstream\nendobj\n\
             startxref\n{xref_offset}\n%%EOF\n",
            hex.len()
        )
        .as_bytes(),
    );
    pdf
}

/// Builds a two-page PDF whose page content streams are Flate-compressed.
fn compressed_pdf() -> Document {
    let mut document = Document::load_mem(&build_pdf("flate", &[(100, 100), (100, 100)])).unwrap();
    for page_id in document.get_pages().into_values() {
        let content_id = document.get_dictionary(page_id).unwrap().get(b"Contents").unwrap().as_reference().unwrap();
        if let Ok(Object::Stream(stream)) = document.get_object_mut(content_id) {
            let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut encoder, &stream.content).unwrap();
            stream.set_content(encoder.finish().unwrap());
            stream.dict.set("Filter", Object::Name(b"FlateDecode".to_vec()));
        }
    }
    document
}

fn save(document: &mut Document) -> Vec<u8> {
    let mut bytes = Vec::new();
    document.save_to(&mut bytes).unwrap();
    bytes
}

// MIME structure

#[test]
fn single_pdf_without_text_is_faxed() {
    let root = multipart(
        "mixed",
        "only",
        &[part(
            "application/pdf; x-unix-mode=0644; x-mac-creator=4341524F; name=\"scan.pdf\"",
            Some("inline; filename=\"scan.pdf\""),
            &build_pdf("only", &[(100, 100)]),
        )],
    );

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
    assert_eq!(faxed_names(&converted), vec!["scan.pdf"]);
}

#[test]
fn attachment_inside_alternative_found() {
    let html = "Content-Type: text/html\r\n\r\n<p>Dear Sir</p>\r\n".to_string();
    let alternative =
        multipart("alternative", "alt", &[text_part("Dear Sir"), html, pdf_attachment("deep.pdf", &build_pdf("d", &[(100, 100)]))]);
    let related = multipart("related", "rel", &[alternative]);
    let root = multipart("mixed", "mix", &[related]);

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(faxed_names(&converted), vec!["deep.pdf"]);
}

#[test]
fn unsupported_attachment_named_in_reply() {
    let root = multipart(
        "mixed",
        "b",
        &[
            text_part("hi"),
            pdf_attachment("letter.pdf", &build_pdf("l", &[(100, 100)])),
            part("audio/x-wav; name=\"bang.wav\"", Some("attachment; filename=\"bang.wav\""), b"RIFF....WAVEfmt "),
        ],
    );

    let error = message_to_pdf(&message(&root), &Limits::default()).unwrap_err();

    let reply = error.smtp_reply();
    assert_eq!(reply.code, 550);
    assert_eq!(reply.text, "cannot fax bang.wav: audio files cannot be faxed");
}

#[test]
fn base64_forwarded_message_opened() {
    let inner = message(&multipart("mixed", "inner", &[text_part("x"), pdf_attachment("inner.pdf", &build_pdf("i", &[(100, 100)]))]));
    let forwarded = part("message/rfc822", Some("attachment; filename=\"fwd.eml\""), &inner);
    let root = multipart("mixed", "outer", &[text_part("fwd"), forwarded]);

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(faxed_names(&converted), vec!["inner.pdf"]);
}

#[test]
fn broken_forwarded_message_skipped() {
    let broken = "Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"broken.eml\"\r\n\r\n\
                  this attachment is not a valid eml, sorry!\r\n"
        .to_string();
    let root = multipart(
        "mixed",
        "b",
        &[text_part("hi"), broken, pdf_attachment("after.pdf", &build_pdf("a", &[(100, 100)]))],
    );

    let mut with_extra_crlf = message(&root);
    with_extra_crlf.extend_from_slice(b"\r\n");

    for raw in [message(&root), with_extra_crlf] {
        let converted = message_to_pdf(&raw, &Limits::default()).unwrap();

        assert_eq!(faxed_names(&converted), vec!["after.pdf"]);
        assert_eq!(skip_reason(&converted.parts, "broken.eml"), "forwarded message that cannot be read");
        assert_eq!(
            converted.unread_forwarded_notice().as_deref(),
            Some("not faxed, forwarded message that cannot be read: broken.eml. Attach the documents directly")
        );
    }
}

#[test]
fn pgp_signed_message_faxes_pdf() {
    let content = multipart("mixed", "content", &[text_part("signed"), pdf_attachment("s.pdf", &build_pdf("s", &[(100, 100)]))]);
    let signature = "Content-Type: application/pgp-signature; name=signature.asc\r\n\r\n\
                     -----BEGIN PGP SIGNATURE-----\r\n-----END PGP SIGNATURE-----\r\n"
        .to_string();
    let root = format!(
        "Content-Type: multipart/signed; micalg=pgp-sha256; protocol=\"application/pgp-signature\"; boundary=\"s\"\r\n\r\n\
         --s\r\n{content}--s\r\n{signature}--s--\r\n"
    );

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(faxed_names(&converted), vec!["s.pdf"]);
    assert_eq!(skip_reason(&converted.parts, "signature.asc"), "signature");
}

#[test]
fn enveloped_smime_rejected() {
    let root = part(
        "application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m",
        Some("attachment; filename=smime.p7m"),
        b"0\x80\x06\x09",
    );

    let (file, reason) = expect_rejected(message_to_pdf(&message(&root), &Limits::default()));

    assert_eq!(file, "smime.p7m");
    assert!(reason.contains("S/MIME messages are not supported"), "{reason}");
}

#[test]
fn winmail_dat_without_attachments_has_no_document() {
    let root = multipart(
        "mixed",
        "b",
        &[
            text_part("see attached"),
            part("application/ms-tnef; name=\"winmail.dat\"", Some("attachment; filename=\"winmail.dat\""), &sample("tnef/garbage-at-end.tnef")),
        ],
    );

    let result = message_to_pdf(&message(&root), &Limits::default());

    let Err(DocumentError::NoDocument { skipped }) = result else {
        panic!("expected no document, got {result:?}");
    };
    assert_eq!(skip_reason(&skipped, "winmail.dat"), "winmail.dat without attachments");
}

#[test]
fn uuencoded_pdf_in_body_is_faxed() {
    let pdf = build_pdf("uu", &[(250, 350), (250, 350)]);
    let body = format!("Hello,\r\n\r\n{}\r\nBest regards\r\n", super::uuencode::tests::encode("old.pdf", &pdf));

    let converted = message_to_pdf(&message(&text_part(&body)), &Limits::default()).unwrap();

    assert_eq!(converted.pages, 2);
    assert_eq!(faxed_names(&converted), vec!["old.pdf"]);
}

#[test]
fn truncated_uuencoded_pdf_rejected() {
    let encoded = super::uuencode::tests::encode("cut.pdf", &build_pdf("uu", &[(100, 100)]));
    let cut = &encoded[..encoded.len() / 2];
    let body = format!("Hello,\r\n\r\n{cut}");

    let (file, reason) = expect_rejected(message_to_pdf(&message(&text_part(&body)), &Limits::default()));

    assert_eq!(file, "cut.pdf");
    assert!(reason.ends_with("(its transfer encoding is damaged)"), "{reason}");
}

#[test]
fn text_attachment_read_from_disposition() {
    let csv = "Content-Type: text/plain; name=\"test.csv\"\r\nContent-Disposition: attachment; filename=\"test.csv\"\r\n\r\na,b\r\n1,2\r\n";
    let root = multipart("mixed", "b", &[text_part("numbers attached"), csv.to_string()]);

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
    assert_eq!(faxed_names(&converted), vec!["test.csv"]);
}

// MIME encoding and header syntax

fn first_faxed_name(part_headers: &str) -> String {
    let pdf = build_pdf("n", &[(100, 100)]);
    let encoded = super::tests::part("application/pdf", None, &pdf);
    // Replace the generic Content-Type line with the headers under test.
    let attachment = encoded.replacen("Content-Type: application/pdf\r\n", &format!("{part_headers}\r\n"), 1);
    let root = multipart("mixed", "b", &[text_part("hi"), attachment]);
    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();
    faxed_names(&converted)[0].to_string()
}

#[test]
fn rfc2231_name_preferred_and_normalized() {
    let name = first_faxed_name(
        "Content-Type: application/pdf; name=\"=?utf-8?B?d3Jvbmc=?=.pdf\"\r\n\
         Content-Disposition: inline; filename*=utf-8''Capture%20d%E2%80%99e%CC%81cran.pdf",
    );

    assert_eq!(name, "Capture d\u{2019}\u{e9}cran.pdf");
}

#[test]
fn rfc2231_continuations_joined() {
    let name = first_faxed_name(
        "Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n \
         filename*0*=utf-8''Quarterly%20;\r\n filename*1=\" report.pdf\"",
    );

    assert_eq!(name, "Quarterly  report.pdf");
}

#[test]
fn parameter_syntax_variants() {
    let cases = [
        ("Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"semi;colon.pdf\"", "semi;colon.pdf"),
        ("Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=invoice.pdf; size=12345", "invoice.pdf"),
        (
            "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=Partnership Marketing \r\n Form - Week 11.pdf",
            "Partnership Marketing Form - Week 11.pdf",
        ),
        ("Content-Type: application/pdf; name=Invoice_(302232133150612).pdf", "Invoice_(302232133150612).pdf"),
    ];
    for (headers, expected) in cases {
        assert_eq!(first_faxed_name(headers), expected, "{headers}");
    }
}

#[test]
fn latin1_file_name_decoded() {
    let pdf = build_pdf("l", &[(100, 100)]);
    let mut raw = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
        Content-Type: application/pdf; name=Z"
        .to_vec();
    raw.extend_from_slice(b"\xe4hler.pdf\r\nContent-Transfer-Encoding: binary\r\n\r\n");
    raw.extend_from_slice(&pdf);
    raw.extend_from_slice(b"\r\n--b--\r\n");

    let converted = message_to_pdf(&raw, &Limits::default()).unwrap();

    assert_eq!(faxed_names(&converted), vec!["Zähler.pdf"]);
}

#[test]
fn missing_final_boundary_still_faxed() {
    let mut root = multipart("mixed", "open", &[text_part("hi"), pdf_attachment("last.pdf", &build_pdf("x", &[(100, 100)]))]);
    root.truncate(root.rfind("--open--").unwrap());

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(faxed_names(&converted), vec!["last.pdf"]);
}

#[test]
fn message_cut_inside_pdf_rejected() {
    let root = multipart("mixed", "open", &[text_part("hi"), pdf_attachment("cut.pdf", &build_pdf("x", &[(100, 100); 4]))]);
    let cut = &root[..root.len() * 2 / 3];

    let (file, reason) = expect_rejected(message_to_pdf(&message(cut), &Limits::default()));

    assert_eq!(file, "cut.pdf");
    assert!(reason.contains("damaged"), "{reason}");
}

#[test]
fn similar_boundaries_kept_apart() {
    let inner = multipart("alternative", "frontier_alt", &[text_part("--frontier_x is not a delimiter"), text_part("plain")]);
    let root = multipart(
        "mixed",
        "frontier",
        &[inner, pdf_attachment("one.pdf", &build_pdf("one", &[(100, 100)])), pdf_attachment("two.pdf", &build_pdf("two", &[(200, 200)]))],
    );

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(faxed_names(&converted), vec!["one.pdf", "two.pdf"]);
}

#[test]
fn transfer_encoding_with_spaces_and_case() {
    let encoded = pdf_attachment("spaces.pdf", &build_pdf("s", &[(100, 100)]));
    let attachment = encoded.replace("Content-Transfer-Encoding: base64\r\n", "Content-Transfer-Encoding: Base64  \r\n");
    let root = multipart("mixed", "b", &[text_part("hi"), attachment]);

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(faxed_names(&converted), vec!["spaces.pdf"]);
}

#[test]
fn damaged_base64_pdf_recovered() {
    let encoded = pdf_attachment("noisy.pdf", &build_pdf("n", &[(100, 100)]));
    let (headers, body) = encoded.split_once("\r\n\r\n").unwrap();
    // An illegal character in the middle and one dangling character at the end.
    let middle = body.len() / 2;
    let noisy_body = format!("{}*{}A\r\n", &body[..middle], body[middle..].trim_end());
    let root = multipart("mixed", "b", &[text_part("hi"), format!("{headers}\r\n\r\n{noisy_body}")]);

    let converted = message_to_pdf(&message(&root), &Limits::default()).unwrap();

    assert_eq!(faxed_names(&converted), vec!["noisy.pdf"]);
}

#[test]
fn base64_label_on_raw_pdf_rejected() {
    let mut raw = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
        Content-Type: application/pdf; name=raw.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(&build_pdf("raw", &[(100, 100)]));
    raw.extend_from_slice(b"\r\n--b--\r\n");

    let (file, reason) = expect_rejected(message_to_pdf(&raw, &Limits::default()));

    assert_eq!(file, "raw.pdf");
    assert!(reason.ends_with("(its transfer encoding is damaged)"), "{reason}");
}

#[test]
fn binary_pdf_labelled_7bit_taken_as_is() {
    let pdf = build_pdf("binary", &[(100, 100), (200, 200)]);
    assert!(pdf.iter().any(|&byte| byte >= 0x80), "test PDF has no 8-bit bytes");
    let mut raw = b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
        Content-Type: application/pdf; name=bin.pdf\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(&pdf);
    raw.extend_from_slice(b"\r\n--b--\r\n");

    let converted = message_to_pdf(&raw, &Limits::default()).unwrap();

    assert_eq!(converted.pages, 2);
}

#[test]
fn report_without_boundary_has_no_document() {
    let skipped = expect_no_document(message_to_pdf(&sample("eml/multipart-without-boundary.eml"), &Limits::default()));

    assert!(skipped.iter().all(PartReport::is_body), "{skipped:?}");
}

// PDF input and merging

#[test]
fn hex_encoded_xref_stream_read() {
    let pdf = pdf_with_hex_xref_stream(6);
    let direct = Document::load_mem(&pdf).unwrap();
    assert_eq!(direct.xref_recovery, None, "the cross-reference stream was not read as written");

    let converted = files_to_pdf(&[("hex.pdf".to_string(), pdf)], &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
}

#[test]
fn xref_stream_with_short_size_read() {
    let converted = files_to_pdf(&[("short.pdf".to_string(), pdf_with_hex_xref_stream(5))], &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
}

#[test]
fn pdf_without_pages_rejected() {
    let mut document = Document::load_mem(&build_pdf("none", &[(100, 100)])).unwrap();
    let pages_id = document.catalog().unwrap().get(b"Pages").unwrap().as_reference().unwrap();
    let pages = document.get_dictionary_mut(pages_id).unwrap();
    pages.set("Kids", Vec::<Object>::new());
    pages.set("Count", 0);

    let (_, reason) = expect_rejected(files_to_pdf(&[("empty.pdf".to_string(), save(&mut document))], &Limits::default()));

    assert_eq!(reason, "the PDF has no pages");
}

#[test]
fn junk_before_header_within_window() {
    let mut near = vec![b'j'; 1000];
    near.extend_from_slice(&build_pdf("junk", &[(100, 100)]));
    let mut far = vec![b'j'; 2000];
    far.extend_from_slice(&build_pdf("junk", &[(100, 100)]));

    assert_eq!(files_to_pdf(&[("near.pdf".to_string(), near)], &Limits::default()).unwrap().pages, 1);
    let (_, reason) = expect_rejected(files_to_pdf(&[("far.pdf".to_string(), far)], &Limits::default()));
    assert!(reason.contains("no %PDF- header"), "{reason}");
}

#[test]
fn page_tree_self_reference_rejected() {
    let mut document = Document::load_mem(&build_pdf("self", &[(100, 100)])).unwrap();
    let pages_id = document.catalog().unwrap().get(b"Pages").unwrap().as_reference().unwrap();
    let page_id = document.get_pages()[&1];
    let pages = document.get_dictionary_mut(pages_id).unwrap();
    pages.set("Kids", vec![Object::Reference(page_id), Object::Reference(pages_id)]);

    let (_, reason) = expect_rejected(files_to_pdf(&[("self.pdf".to_string(), save(&mut document))], &Limits::default()));

    assert!(reason.contains("loop"), "{reason}");
}

#[test]
fn page_tree_too_deep_rejected() {
    let mut document = Document::load_mem(&build_pdf("deep", &[(100, 100)])).unwrap();
    let root_id = document.catalog().unwrap().get(b"Pages").unwrap().as_reference().unwrap();
    let page_id = document.get_pages()[&1];
    let mut child = Object::Reference(page_id);
    for _ in 0..100 {
        let node = document.add_object(dictionary! { "Type" => "Pages", "Kids" => vec![child], "Count" => 1 });
        child = Object::Reference(node);
    }
    document.get_dictionary_mut(root_id).unwrap().set("Kids", vec![child]);

    let (_, reason) = expect_rejected(files_to_pdf(&[("deep.pdf".to_string(), save(&mut document))], &Limits::default()));

    assert!(reason.contains("nested too deep"), "{reason}");
}

#[test]
fn compressed_content_checked() {
    let mut document = compressed_pdf();

    let converted = files_to_pdf(&[("ok.pdf".to_string(), save(&mut document))], &Limits::default()).unwrap();

    assert_eq!(converted.pages, 2);
}

#[test]
fn broken_content_stream_rejected() {
    type Corruption = fn(&mut Vec<u8>);
    let corruptions: [(&str, Corruption); 2] = [
        ("cut", |content| content.truncate(content.len() / 2)),
        ("garbled", |content| content.iter_mut().skip(2).for_each(|byte| *byte ^= 0x5A)),
    ];
    for (label, corrupt) in corruptions {
        let mut document = compressed_pdf();
        let page_id = document.get_pages()[&2];
        let content_id = document.get_dictionary(page_id).unwrap().get(b"Contents").unwrap().as_reference().unwrap();
        if let Ok(Object::Stream(stream)) = document.get_object_mut(content_id) {
            let mut content = stream.content.clone();
            corrupt(&mut content);
            stream.set_content(content);
        }

        let files = [("broken.pdf".to_string(), save(&mut document))];
        let (file, reason) = expect_rejected(files_to_pdf(&files, &Limits::default()));

        assert_eq!(file, "broken.pdf", "{label}");
        assert_eq!(reason, "the PDF is damaged: the content of page 2 cannot be decoded", "{label}");
    }
}

#[test]
fn wrong_stream_length_recovered() {
    let mut document = Document::load_mem(&build_pdf("length", &[(100, 100)])).unwrap();
    let page_id = document.get_pages()[&1];
    let content_id = document.get_dictionary(page_id).unwrap().get(b"Contents").unwrap().as_reference().unwrap();
    let bytes = save(&mut document);
    let header = format!("{} 0 obj\n<</Length ", content_id.0);
    let at = super::kind::find(&bytes, header.as_bytes()).expect("content stream header") + header.len();
    let digits = bytes[at..].iter().position(|byte| !byte.is_ascii_digit()).unwrap();
    // The same number of digits keeps every offset in the cross-reference table right.
    let mut broken = bytes.clone();
    broken[at..at + digits].fill(b'9');

    let converted = files_to_pdf(&[("length.pdf".to_string(), broken)], &Limits::default()).unwrap();

    let merged = Document::load_mem(&converted.pdf).unwrap();
    let content = merged.get_page_content(merged.get_pages()[&1]);
    assert!(String::from_utf8_lossy(&content).contains("length page 1"));
}

#[test]
fn merge_of_mixed_sizes_fits_each() {
    let files = vec![
        ("letter.pdf".to_string(), build_pdf("l", &[(612, 792)])),
        ("landscape.pdf".to_string(), build_pdf("w", &[(842, 595)])),
        ("a3.pdf".to_string(), build_pdf("a3", &[(842, 1191)])),
    ];

    let converted = files_to_pdf(&files, &Limits::default()).unwrap();

    assert_eq!(super::tests::page_sizes(&converted.pdf), vec![(612.0, 792.0); 3]);
    assert_eq!(super::tests::page_rotations(&converted.pdf), vec![0; 3]);
    assert_eq!(super::tests::fit_matrix_of(&converted.pdf, 1), None, "the Letter page is left as it is");
    // The A4 landscape page is turned a quarter turn counter-clockwise, so its x axis
    // runs up the paper. After the turn it is 595 x 842, scaled to the paper's height
    // and centred across.
    let landscape = super::tests::fit_matrix_of(&converted.pdf, 2).unwrap();
    let scale = 792.0 / 842.0;
    let margin = (612.0 - 595.0 * scale) / 2.0;
    super::tests::assert_matrix(landscape, [0.0, scale, -scale, 0.0, margin + 595.0 * scale, 0.0]);
    let a3 = super::tests::fit_matrix_of(&converted.pdf, 3).unwrap();
    let scale = 792.0 / 1191.0;
    super::tests::assert_matrix(a3, [scale, 0.0, 0.0, scale, (612.0 - 842.0 * scale) / 2.0, 0.0]);
}


#[test]
fn filled_form_flattened() {
    // A Letter page, which fitting leaves as it is, so the link annotation stays.
    let mut document = Document::load_mem(&build_pdf("form", &[(612, 792)])).unwrap();
    let page_id = document.get_pages()[&1];
    let font = document.get_dictionary(page_id).unwrap().get_deref(b"Resources", &document).unwrap().as_dict().unwrap().clone();
    let appearance = document.add_object(Stream::new(
        dictionary! {
            "Type" => "XObject",
            "Subtype" => "Form",
            "BBox" => vec![0.into(), 0.into(), 100.into(), 20.into()],
            "Resources" => font,
        },
        b"BT /F1 10 Tf 2 5 Td (Kim Example) Tj ET".to_vec(),
    ));
    let hidden_appearance = document.add_object(Stream::new(
        dictionary! { "Subtype" => "Form", "BBox" => vec![0.into(), 0.into(), 10.into(), 10.into()] },
        b"0 0 10 10 re f".to_vec(),
    ));
    let visible = document.add_object(dictionary! {
        "Type" => "Annot", "Subtype" => "Widget", "FT" => "Tx", "F" => 4,
        "Rect" => vec![50.into(), 200.into(), 150.into(), 220.into()],
        "AP" => dictionary! { "N" => appearance },
    });
    let hidden = document.add_object(dictionary! {
        "Type" => "Annot", "Subtype" => "Widget", "FT" => "Tx", "F" => 6,
        "Rect" => vec![50.into(), 100.into(), 60.into(), 110.into()],
        "AP" => dictionary! { "N" => hidden_appearance },
    });
    let link = document.add_object(dictionary! {
        "Type" => "Annot", "Subtype" => "Link",
        "Rect" => vec![0.into(), 0.into(), 10.into(), 10.into()],
    });
    document.get_dictionary_mut(page_id).unwrap().set(
        "Annots",
        vec![Object::Reference(visible), Object::Reference(hidden), Object::Reference(link)],
    );
    let form = document.add_object(dictionary! { "Fields" => vec![Object::Reference(visible), Object::Reference(hidden)] });
    document.catalog_mut().unwrap().set("AcroForm", form);

    let converted = files_to_pdf(&[("form.pdf".to_string(), save(&mut document))], &Limits::default()).unwrap();

    let merged = Document::load_mem(&converted.pdf).unwrap();
    let page_id = merged.get_pages()[&1];
    let page = merged.get_dictionary(page_id).unwrap();
    let annotations = page.get_deref(b"Annots", &merged).unwrap().as_array().unwrap();
    assert_eq!(annotations.len(), 1, "only the link annotation stays");
    let content = String::from_utf8_lossy(&merged.get_page_content(page_id)).into_owned();
    let drawn = format!("q 1 0 0 1 50 200 cm /FaxgateFlat{} Do Q", appearance.0);
    assert!(content.contains(&drawn), "{content}");
    assert!(content.contains("form page 1"), "the page's own content is lost: {content}");
    assert_eq!(content.matches(" Do Q").count(), 1, "the hidden widget was drawn: {content}");
    let xobjects = page.get_deref(b"Resources", &merged).unwrap().as_dict().unwrap().get_deref(b"XObject", &merged).unwrap();
    assert_eq!(xobjects.as_dict().unwrap().len(), 1);
}

#[test]
fn annotations_drawn_on_fitted_page() {
    let mut document = Document::load_mem(&build_pdf("notes", &[(792, 612)])).unwrap();
    let page_id = document.get_pages()[&1];
    let stamp_appearance = document.add_object(Stream::new(
        dictionary! { "Subtype" => "Form", "BBox" => vec![0.into(), 0.into(), 50.into(), 30.into()] },
        b"0 0 50 30 re f".to_vec(),
    ));
    let comment_appearance = document.add_object(Stream::new(
        dictionary! { "Subtype" => "Form", "BBox" => vec![0.into(), 0.into(), 20.into(), 20.into()] },
        b"0 0 20 20 re S".to_vec(),
    ));
    let stamp = document.add_object(dictionary! {
        "Type" => "Annot", "Subtype" => "Stamp", "F" => 4,
        "Rect" => vec![600.into(), 500.into(), 700.into(), 560.into()],
        "AP" => dictionary! { "N" => stamp_appearance },
    });
    // Without the Print flag, so a printer leaves it out.
    let comment = document.add_object(dictionary! {
        "Type" => "Annot", "Subtype" => "Text", "F" => 0,
        "Rect" => vec![10.into(), 10.into(), 30.into(), 30.into()],
        "AP" => dictionary! { "N" => comment_appearance },
    });
    let link = document.add_object(dictionary! {
        "Type" => "Annot", "Subtype" => "Link", "F" => 4,
        "Rect" => vec![0.into(), 0.into(), 10.into(), 10.into()],
    });
    document.get_dictionary_mut(page_id).unwrap().set(
        "Annots",
        vec![Object::Reference(stamp), Object::Reference(comment), Object::Reference(link)],
    );

    let converted = files_to_pdf(&[("notes.pdf".to_string(), save(&mut document))], &Limits::default()).unwrap();

    let merged = Document::load_mem(&converted.pdf).unwrap();
    let page_id = merged.get_pages()[&1];
    let page = merged.get_dictionary(page_id).unwrap();
    assert!(!page.has(b"Annots"), "annotations left with rectangles in the old coordinates");
    let content = String::from_utf8_lossy(&merged.get_page_content(page_id)).into_owned();
    // The stamp's 50 x 30 box is mapped onto its 100 x 60 rectangle in the page's own
    // coordinates, inside the transformation that turns the page.
    let drawn = format!("q 2 0 0 2 600 500 cm /FaxgateFlat{} Do Q", stamp_appearance.0);
    let drawn_at = content.find(&drawn).unwrap_or_else(|| panic!("stamp not drawn: {content}"));
    let fit_at = content.find(" cm ").unwrap();
    assert!(fit_at < drawn_at, "stamp drawn outside the fit: {content}");
    assert_eq!(content.matches(" Do Q").count(), 1, "the comment without the Print flag was drawn: {content}");
    assert!(content.contains("notes page 1"), "the page's own content is lost: {content}");
    assert_eq!(super::tests::page_sizes(&converted.pdf), vec![(612.0, 792.0)]);
}

/// Encrypts a one-page PDF with lopdf: RC4 128-bit (revision 3), AES-128 (revision 4) or
/// AES-256 (revision 6), with the given passwords.
fn encrypted_pdf(revision: u8, owner_password: &str, user_password: &str) -> Vec<u8> {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use lopdf::encryption::crypt_filters::{Aes128CryptFilter, Aes256CryptFilter, CryptFilter};
    use lopdf::{EncryptionState, EncryptionVersion, Permissions};

    let mut document = Document::load_mem(&build_pdf("sealed", &[(200, 300)])).unwrap();
    let id = Object::string_literal(b"faxgate-test-id!".to_vec());
    document.trailer.set("ID", vec![id.clone(), id]);
    let permissions = Permissions::PRINTABLE;
    let file_encryption_key = [7u8; 32];
    let version = match revision {
        3 => EncryptionVersion::V2 { document: &document, owner_password, user_password, key_length: 128, permissions },
        4 => {
            let filter: Arc<dyn CryptFilter> = Arc::new(Aes128CryptFilter);
            EncryptionVersion::V4 {
                document: &document,
                encrypt_metadata: true,
                crypt_filters: BTreeMap::from([(b"StdCF".to_vec(), filter)]),
                stream_filter: b"StdCF".to_vec(),
                string_filter: b"StdCF".to_vec(),
                owner_password,
                user_password,
                permissions,
            }
        }
        _ => {
            let filter: Arc<dyn CryptFilter> = Arc::new(Aes256CryptFilter);
            EncryptionVersion::V5 {
                encrypt_metadata: true,
                crypt_filters: BTreeMap::from([(b"StdCF".to_vec(), filter)]),
                file_encryption_key: &file_encryption_key,
                stream_filter: b"StdCF".to_vec(),
                string_filter: b"StdCF".to_vec(),
                owner_password,
                user_password,
                permissions,
            }
        }
    };
    let state = EncryptionState::try_from(version).unwrap();
    document.encrypt(&state).unwrap();
    save(&mut document)
}

#[test]
fn owner_password_only_encryptions_faxed() {
    for revision in [3, 4, 6] {
        let pdf = encrypted_pdf(revision, "owner secret", "");
        assert!(super::kind::find(&pdf, b"/Encrypt").is_some(), "revision {revision} is not encrypted");

        let converted = files_to_pdf(&[("sealed.pdf".to_string(), pdf)], &Limits::default())
            .unwrap_or_else(|error| panic!("revision {revision}: {error}"));

        let merged = Document::load_mem(&converted.pdf).unwrap();
        assert!(!merged.is_encrypted(), "revision {revision}");
        let content = String::from_utf8_lossy(&merged.get_page_content(merged.get_pages()[&1])).into_owned();
        assert!(content.contains("sealed page 1"), "revision {revision}: {content}");
    }
}

#[test]
fn user_password_encryptions_rejected() {
    for revision in [3, 4, 6] {
        let pdf = encrypted_pdf(revision, "owner secret", "user secret");

        let (_, reason) = expect_rejected(files_to_pdf(&[("sealed.pdf".to_string(), pdf)], &Limits::default()));

        assert!(reason.contains("password-protected"), "revision {revision}: {reason}");
    }
}

#[test]
fn newer_dictionaries_in_old_version_accepted() {
    let mut document = Document::load_mem(&build_pdf("old", &[(100, 100)])).unwrap();
    document.version = "1.3".to_string();
    document.catalog_mut().unwrap().set("ViewerPreferences", dictionary! { "PickTrayByPDFSize" => true });

    let converted = files_to_pdf(&[("old.pdf".to_string(), save(&mut document))], &Limits::default()).unwrap();

    assert_eq!(converted.pages, 1);
}
