//! Sanitizing HTML attachments before LibreOffice converts them.
//!
//! LibreOffice 7.4 fetches the external resources an HTML file names, such as images and
//! style sheets, while it converts it (the control run in `html_attachment_fetches_nothing`
//! shows this), and its command line has no option against it. A fetch would tell the
//! sender's server that the message was opened, reach hosts on our network, or put
//! local images on the fax. So the HTML is rebuilt with `ammonia` from an allow list of
//! elements and attributes, and the only URLs left are `data:` URLs of PNG, JPEG and GIF
//! images. Style sheets, scripts, frames, forms and links are dropped, and so is layout
//! that only CSS gives. Tables, headings, lists, fonts and colours given as attributes
//! remain.

use std::borrow::Cow;
use std::collections::HashSet;

use ammonia::{Builder, UrlRelative};
use encoding_rs::Encoding;

use super::kind::Refusal;

/// Maximum `<` characters in an HTML attachment, which bounds its tags. The HTML parser
/// (html5ever) takes time that grows with the square of the nesting depth: 20,000
/// nested `<div>` tags took 4 s to sanitize in a debug build on a 2-core machine, and
/// 100,000 took 115 s. Receipts and letters have a few thousand tags.
const MAX_TAGS: usize = 20_000;

/// Bytes searched for a `charset` declaration, as the HTML standard's prescan does.
const CHARSET_PRESCAN_BYTES: usize = 1024;

/// Image types allowed in `data:` URLs. SVG is left out because an SVG image can itself
/// name external resources.
const DATA_IMAGE_PREFIXES: [&str; 4] = ["data:image/png", "data:image/jpeg", "data:image/jpg", "data:image/gif"];

/// Rebuilds an HTML file as a UTF-8 document without references to external resources.
/// A file of more than [`MAX_TAGS`] tags is rejected.
pub(crate) fn sanitize(data: &[u8]) -> Result<Vec<u8>, Refusal> {
    let tags = data.iter().filter(|&&byte| byte == b'<').count();
    if tags > MAX_TAGS {
        return Err(Refusal::Rejected(format!(
            "the HTML has {tags} tags, more than the maximum of {MAX_TAGS}; print the page to PDF and send that"
        )));
    }
    let text = decode(data);
    let body = builder().clean(&text).to_string();
    let document =
        format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n{body}\n</body></html>\n");
    Ok(document.into_bytes())
}

fn builder() -> Builder<'static> {
    let mut builder = Builder::default();
    builder
        .add_tags(["font"])
        .add_tag_attributes("font", ["color", "face", "size"])
        .add_generic_attributes([
            "align",
            "valign",
            "width",
            "height",
            "bgcolor",
            "border",
            "cellpadding",
            "cellspacing",
            "colspan",
            "rowspan",
            "nowrap",
        ])
        // The text of a title would otherwise appear at the top of the page.
        .add_clean_content_tags(["title"])
        .rm_tags(["area", "map"])
        .url_schemes(HashSet::from(["data"]))
        .url_relative(UrlRelative::Deny)
        .link_rel(None)
        .attribute_filter(|_element, attribute, value| match attribute {
            // Links do nothing on paper.
            "href" | "cite" => None,
            "src" if !is_data_image(value) => None,
            _ => Some(Cow::Borrowed(value)),
        });
    builder
}

fn is_data_image(url: &str) -> bool {
    let url = url.trim_start();
    DATA_IMAGE_PREFIXES
        .iter()
        .any(|prefix| url.get(..prefix.len()).is_some_and(|start| start.eq_ignore_ascii_case(prefix)))
}

/// Decodes the file by its byte order mark, else as UTF-8 when it is valid, else by the
/// `charset` it declares near its start, else as Windows-1252, which browsers assume for
/// HTML without a declaration.
fn decode(data: &[u8]) -> Cow<'_, str> {
    if let Some((encoding, bom_length)) = Encoding::for_bom(data) {
        return encoding.decode_without_bom_handling(&data[bom_length..]).0;
    }
    if let Ok(text) = std::str::from_utf8(data) {
        return Cow::Borrowed(text);
    }
    let encoding = declared_charset(&data[..data.len().min(CHARSET_PRESCAN_BYTES)])
        .and_then(|label| Encoding::for_label(label.as_bytes()))
        .unwrap_or(encoding_rs::WINDOWS_1252);
    encoding.decode_without_bom_handling(data).0
}

/// Finds `charset=NAME` in a `<meta>` declaration, with or without quotes.
fn declared_charset(start: &[u8]) -> Option<String> {
    let lower = start.to_ascii_lowercase();
    let at = lower.windows(8).position(|window| window == b"charset=")? + 8;
    let rest = &lower[at..];
    let rest = rest.strip_prefix(b"\"").or_else(|| rest.strip_prefix(b"'")).unwrap_or(rest);
    let end = rest.iter().position(|&byte| matches!(byte, b'"' | b'\'' | b';' | b'>' | b' ' | b'/')).unwrap_or(rest.len());
    let label = String::from_utf8_lossy(&rest[..end]).trim().to_string();
    (!label.is_empty()).then_some(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sanitized(html: &str) -> String {
        String::from_utf8(sanitize(html.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn external_references_removed() {
        let html = r#"<html><head><title>Receipt</title>
            <link rel="stylesheet" href="http://127.0.0.1:9/style.css">
            <style>@import url("http://127.0.0.1:9/imported.css");</style>
            <base href="http://127.0.0.1:9/">
            <meta http-equiv="refresh" content="0; url=http://127.0.0.1:9/">
            <script src="http://127.0.0.1:9/x.js"></script></head>
            <body background="http://127.0.0.1:9/bg.png" style="background: url(http://127.0.0.1:9/bg2.png)">
            <h1>Receipt 4711</h1>
            <img src="http://127.0.0.1:9/x.png" srcset="http://127.0.0.1:9/y.png 2x" alt="logo">
            <img src="file:///etc/hostname"><img src="../../etc/hostname"><img src="//127.0.0.1:9/z.png">
            <iframe src="http://127.0.0.1:9/frame.html"></iframe>
            <object data="http://127.0.0.1:9/o.swf"></object><embed src="http://127.0.0.1:9/e.swf">
            <svg><image href="http://127.0.0.1:9/s.png"/></svg>
            <a href="http://127.0.0.1:9/link">details</a>
            <table background="http://127.0.0.1:9/t.png"><tr><td style="background-image: url(http://127.0.0.1:9/c.png)">42.00</td></tr></table>
            </body></html>"#;

        let output = sanitized(html);

        assert!(!output.contains("127.0.0.1"), "{output}");
        assert!(!output.contains("etc/hostname"), "{output}");
        assert!(!output.contains("src="), "{output}");
        assert!(!output.contains("<title>"), "{output}");
        assert!(!output.contains(">Receipt<"), "{output}");
        assert!(output.contains("<h1>Receipt 4711</h1>"), "{output}");
        assert!(output.contains("details"), "{output}");
        assert!(output.contains("42.00"), "{output}");
    }

    #[test]
    fn data_images_and_table_layout_kept() {
        let html = r##"<table border="1" cellpadding="4"><tr><td align="right" bgcolor="#eeeeee">1</td></tr></table>
            <img src="data:image/png;base64,iVBORw0KGgo=" width="10"><img src="data:image/svg+xml,<svg/>">"##;

        let output = sanitized(html);

        assert!(output.contains(r#"<table border="1" cellpadding="4">"#), "{output}");
        assert!(output.contains(r##"<td align="right" bgcolor="#eeeeee">"##), "{output}");
        assert!(output.contains(r#"src="data:image/png;base64,iVBORw0KGgo=""#), "{output}");
        assert_eq!(output.matches("src=").count(), 1, "{output}");
    }

    #[test]
    fn declared_charset_used_for_non_utf8() {
        let mut html = b"<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-15\"></head><body>".to_vec();
        html.extend_from_slice(b"Preis: 10 \xA4</body></html>");

        let output = String::from_utf8(sanitize(&html).unwrap()).unwrap();

        assert!(output.contains("Preis: 10 \u{20AC}"), "{output}");
        assert!(output.contains(r#"<meta charset="utf-8">"#), "{output}");
    }

    #[test]
    fn undeclared_legacy_bytes_read_as_windows_1252() {
        let output = String::from_utf8(sanitize(b"<p>caf\xE9 \x80</p>").unwrap()).unwrap();

        assert!(output.contains("<p>caf\u{E9} \u{20AC}</p>"), "{output}");
    }

    #[test]
    fn too_many_tags_rejected() {
        let nested = "<div>".repeat(MAX_TAGS + 1);

        match sanitize(nested.as_bytes()) {
            Err(Refusal::Rejected(reason)) => {
                assert_eq!(
                    reason,
                    "the HTML has 20001 tags, more than the maximum of 20000; print the page to PDF and send that"
                );
            }
            Err(Refusal::TooManyPages { .. } | Refusal::Busy) | Ok(_) => panic!("expected a rejection"),
        }
        assert!(sanitize("<br>".repeat(MAX_TAGS).as_bytes()).is_ok());
    }
}
