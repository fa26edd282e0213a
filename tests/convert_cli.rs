//! `faxgate convert` as a user runs it: the per-part lines on stdout, the PDF written,
//! and the exit status 0 (written), 1 (rejected, with the reason on stderr) or 2 (usage).

use std::path::Path;
use std::process::{Command, Output};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/samples");

fn faxgate(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faxgate"))
        // An empty variable means the default path, which test machines do not have.
        .env("FAXGATE_CONFIG", "")
        .env_remove("RUST_LOG")
        .args(arguments)
        .output()
        .expect("faxgate runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn page_count(pdf: &Path) -> u32 {
    let output = Command::new("pdfinfo").arg(pdf).output().expect("pdfinfo runs (install poppler-utils)");
    let info = text(&output.stdout);
    let line = info.lines().find(|line| line.starts_with("Pages:")).expect("pdfinfo prints the page count");
    line["Pages:".len()..].trim().parse().unwrap()
}

#[test]
fn files_converted_with_part_lines() {
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("out.pdf");
    let signature = folder.path().join("signature.asc");
    std::fs::write(&signature, "-----BEGIN PGP SIGNATURE-----\n").unwrap();

    let output = faxgate(&[
        "convert",
        &format!("{SAMPLES}/tiff/pillow-g3-fine-multipage-pagecount0.tif"),
        &format!("{SAMPLES}/pdf/qpdf-page-inherit-mediabox.pdf"),
        signature.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);

    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "pillow-g3-fine-multipage-pagecount0.tif\timage/tiff\t3 pages");
    assert_eq!(lines[1], "qpdf-page-inherit-mediabox.pdf\tapplication/pdf\t3 pages");
    assert_eq!(lines[2], "signature.asc\tapplication/pkcs7-signature\tskipped: signature");
    assert_eq!(lines[3], format!("wrote {} (6 pages)", out.display()));
    assert_eq!(text(&output.stderr), "");
    assert_eq!(page_count(&out), 6);
}

#[test]
fn rejected_file_exits_one_with_reason() {
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("out.pdf");

    let output = faxgate(&[
        "convert",
        &format!("{SAMPLES}/tiff/pillow-ifd-loop-multipage.tiff"),
        "-o",
        out.to_str().unwrap(),
    ]);

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "faxgate: cannot fax pillow-ifd-loop-multipage.tiff: the TIFF is damaged: \
         its chain of image directories (IFDs) contains a loop\n"
    );
    assert!(!out.exists(), "no PDF is written for a rejected input");
}

#[test]
fn rejection_keeps_non_ascii_file_name() {
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("out.pdf");
    let eml = format!("{SAMPLES}/eml/raw-8bit-utf8-filename.eml");

    let output = faxgate(&["convert", "--eml", &eml, "-o", out.to_str().unwrap()]);

    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("cannot fax 管理.doc: "), "{stderr}");
}

#[test]
fn message_converted_or_rejected() {
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("out.pdf");

    // The logo is referenced by the HTML body and the attachment is below the default
    // pixel minimum, so nothing is faxable.
    let eml = format!("{SAMPLES}/eml/html-related-inline-logo-plus-attachment.eml");
    let output = faxgate(&["convert", "--eml", &eml, "-o", out.to_str().unwrap()]);

    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("kigaaldcbanejcbi.png\timage/png\tskipped: image referenced by the HTML body"), "{stdout}");
    let stderr = text(&output.stderr);
    assert!(stderr.starts_with("faxgate: no faxable document in the message"), "{stderr}");

    // A configuration with a lower minimum faxes the attachment.
    let config = folder.path().join("faxgate.toml");
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")).unwrap();
    std::fs::write(&config, example.replace("min_image_pixels = 40000", "min_image_pixels = 100")).unwrap();
    let output = faxgate(&["convert", "--config", config.to_str().unwrap(), "--eml", &eml, "-o", out.to_str().unwrap()]);

    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("attach2.png\timage/png\t1 page"), "{}", text(&output.stdout));
    assert_eq!(page_count(&out), 1);
}

#[test]
fn usage_errors_exit_two() {
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("out.pdf");
    let out = out.to_str().unwrap();
    let pdf = format!("{SAMPLES}/pdf/qpdf-page-inherit-mediabox.pdf");
    let eml = format!("{SAMPLES}/eml/attachment-as-root-part.eml");

    let cases: [(&str, Vec<&str>); 4] = [
        ("no output", vec!["convert", &pdf]),
        ("no input", vec!["convert", "-o", out]),
        ("files and a message", vec!["convert", &pdf, "--eml", &eml, "-o", out]),
        ("missing file", vec!["convert", "/nonexistent/scan.pdf", "-o", out]),
    ];
    for (case, arguments) in cases {
        let output = faxgate(&arguments);
        assert_eq!(output.status.code(), Some(2), "{case}: {}", text(&output.stderr));
        assert!(!text(&output.stderr).is_empty(), "{case}: a message on stderr");
    }
    let output = faxgate(&["convert", "/nonexistent/scan.pdf", "-o", out]);
    assert_eq!(text(&output.stderr), "faxgate: cannot read /nonexistent/scan.pdf: No such file or directory (os error 2); check the path\n");
}

#[test]
fn unreadable_forward_listed_as_skipped() {
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("out.pdf");
    // The saved sample, and the same bytes with one more CR LF, as an SMTP client may
    // deliver them: both list the broken part and name it in the reason.
    let saved = std::fs::read(format!("{SAMPLES}/eml/broken-rfc822-attachment.eml")).unwrap();
    let mut extra = saved.clone();
    extra.extend_from_slice(b"\r\n");
    let extra_path = folder.path().join("extra-crlf.eml");
    std::fs::write(&extra_path, extra).unwrap();

    for eml in [format!("{SAMPLES}/eml/broken-rfc822-attachment.eml"), extra_path.display().to_string()] {
        let output = faxgate(&["convert", "--eml", &eml, "-o", out.to_str().unwrap()]);

        assert_eq!(output.status.code(), Some(1), "{eml}");
        let stdout = text(&output.stdout);
        assert!(
            stdout.contains("broken.eml\tmessage/rfc822\tskipped: forwarded message that cannot be read"),
            "{eml}: {stdout}"
        );
        let stderr = text(&output.stderr);
        assert!(stderr.contains("broken.eml (forwarded message that cannot be read)"), "{eml}: {stderr}");
    }
}
