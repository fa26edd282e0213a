//! Office documents through headless LibreOffice. A .docx and an .odt, made at test time
//! by LibreOffice itself from a text file, convert for real. A missing converter gets a
//! reply that says so, and a hanging one is killed with its whole process group.
//!
//! The conversion tests need LibreOffice (`apt-get install libreoffice-writer-nogui`);
//! the missing and hanging converter tests do not.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use faxgate::config::Paper;
use faxgate::documents::{Limits, PartOutcome, files_to_pdf, office};
use support::daemon::{DOMAIN, Setup, TestDaemon, wait_for};
use support::pdf::{page_rotations, page_sizes};
use support::smtp_client::{Client, Reply};

const ALICE: &str = "alice@example.com";

/// Bytes that type as a .docx by their ZIP signature and name, without being one.
const FAKE_DOCX: &[u8] = b"PK\x03\x04\x14\x00\x00\x00\x08\x00 not really a document";

/// Converts a text file to `extension` with LibreOffice and returns the document.
fn make_office_file(text: &str, extension: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("letter.txt");
    std::fs::write(&input, text).unwrap();
    let output = Command::new("soffice")
        .arg(format!("-env:UserInstallation=file://{}/profile", dir.path().display()))
        .args(["--headless", "--norestore", "--convert-to", extension, "--outdir"])
        .arg(dir.path())
        .arg(&input)
        .env("HOME", dir.path())
        .output()
        .expect("LibreOffice is installed (apt-get install libreoffice-writer-nogui)");
    assert!(output.status.success(), "soffice failed: {}", String::from_utf8_lossy(&output.stderr));
    std::fs::read(dir.path().join(format!("letter.{extension}"))).unwrap()
}

fn pdf_text(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fax.pdf");
    std::fs::write(&path, pdf).unwrap();
    let output = Command::new("pdftotext").args(["-enc", "UTF-8"]).arg(&path).arg("-").output().unwrap();
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn docx_and_odt_convert() {
    let docx = make_office_file("Quarterly report\nGrüße aus Köln\n", "docx");
    let odt = make_office_file("Minutes of the meeting\n", "odt");
    let files = vec![("report.docx".to_string(), docx), ("minutes.odt".to_string(), odt)];

    let converted = files_to_pdf(&files, &Limits::default()).unwrap();

    assert_eq!(converted.pages, 2);
    assert_eq!(converted.parts[0].outcome, PartOutcome::Faxed { pages: 1 });
    assert_eq!(converted.parts[1].outcome, PartOutcome::Faxed { pages: 1 });
    let text = pdf_text(&converted.pdf);
    assert!(text.contains("Quarterly report"), "{text}");
    assert!(text.contains("Grüße aus Köln"), "{text}");
    assert!(text.contains("Minutes of the meeting"), "{text}");
}

#[test]
fn office_output_fitted_to_paper() {
    let odt = make_office_file("Minutes of the meeting\n", "odt");
    let files = vec![("minutes.odt".to_string(), odt)];

    // LibreOffice picks Letter or A4 from the locale, so one of the two papers needs a
    // fit and the other leaves the page as it is, to within a point.
    for (paper, size) in [(Paper::Letter, (612.0, 792.0)), (Paper::A4, (595.28, 841.89))] {
        let converted = files_to_pdf(&files, &Limits { paper, ..Limits::default() }).unwrap();

        let sizes = page_sizes(&converted.pdf);
        assert_eq!(sizes.len(), 1);
        assert!((sizes[0].0 - size.0).abs() < 0.05, "{paper:?} width {sizes:?}");
        assert!((sizes[0].1 - size.1).abs() < 0.05, "{paper:?} height {sizes:?}");
        assert_eq!(page_rotations(&converted.pdf), vec![0]);
        assert!(pdf_text(&converted.pdf).contains("Minutes of the meeting"), "{paper:?}");
    }
}

#[test]
fn probe_reports_version() {
    let version = office::probe(&Limits::default()).expect("soffice runs");
    assert!(version.starts_with("LibreOffice"), "{version}");

    let missing = Limits { office_converter: "/nonexistent/soffice".to_string(), ..Limits::default() };
    assert_eq!(office::probe(&missing), None);
}

fn daemon(documents_extra: String) -> TestDaemon {
    let daemon = TestDaemon::start(Setup { documents_extra, ..Setup::default() });
    daemon.add_mapping(ALICE, &["+14155550100:send"]);
    daemon
}

/// Builds a message with one attachment.
fn message_with(name: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    format!(
        "From: {ALICE}\r\nTo: 14155552222@{DOMAIN}\r\nSubject: report\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nPlease fax the attached.\r\n\
         --b\r\nContent-Type: {content_type}; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b--\r\n"
    )
    .into_bytes()
}

fn send(daemon: &TestDaemon, message: &[u8]) -> Reply {
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    assert_eq!(client.command("EHLO client.example").code, 250);
    assert_eq!(client.command(&format!("MAIL FROM:<{ALICE}>")).code, 250);
    assert_eq!(client.command(&format!("RCPT TO:<14155552222@{DOMAIN}>")).code, 250);
    let (start, end) = client.data(message);
    end.unwrap_or(start)
}

const DOCX_TYPE: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

#[test]
fn daemon_faxes_docx() {
    let daemon = daemon(String::new());
    let docx = make_office_file("Faxed through the daemon\n", "docx");

    let reply = send(&daemon, &message_with("report.docx", DOCX_TYPE, &docx));

    assert!(reply.is(250, "2.0.0"), "{reply:?}\n{}", daemon.log());
    let id = reply.text.rsplit("queued as ").next().unwrap().trim().to_string();
    let pdf_path = daemon.outbox().join(format!("{id}.pdf"));
    wait_for("the outbox PDF", Duration::from_secs(30), || pdf_path.exists().then_some(()));
    assert!(pdf_text(&std::fs::read(pdf_path).unwrap()).contains("Faxed through the daemon"));
}

#[test]
fn daemon_without_converter_rejects_naming_file() {
    let daemon = daemon("office_converter = \"/nonexistent/soffice\"".to_string());

    let reply = send(&daemon, &message_with("report.docx", DOCX_TYPE, FAKE_DOCX));

    assert!(reply.is(550, "5.6.1"), "{reply:?}");
    assert_eq!(
        reply.text,
        "5.6.1 cannot fax report.docx: Office documents cannot be converted on this server; send PDF, TIFF, JPEG or PNG"
    );
}

#[test]
fn daemon_kills_hanging_converter() {
    let scripts = tempfile::tempdir().unwrap();
    let script = scripts.path().join("hanging-soffice");
    let pid_file = scripts.path().join("pid");
    // The script records its PID, which is its process group ID, then waits on a child
    // so that the group has more than one process to kill.
    std::fs::write(&script, format!("#!/bin/sh\necho $$ > {}\nsleep 300 &\nwait\n", pid_file.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let daemon = daemon(format!("office_converter = \"{}\"\noffice_timeout = 2", script.display()));

    let started = Instant::now();
    let reply = send(&daemon, &message_with("report.docx", DOCX_TYPE, FAKE_DOCX));

    assert!(reply.is(550, "5.6.1"), "{reply:?}");
    assert_eq!(reply.text, "5.6.1 cannot fax report.docx: the conversion timed out after 2 s");
    assert!(started.elapsed() < Duration::from_secs(30), "reply took {:?}", started.elapsed());
    let group: String = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    assert_eq!(live_members(&group), Vec::<String>::new(), "processes left in group {group}");
}

/// Returns the PIDs of processes in process group `group` that are not zombies. A
/// killed child that init has not reaped yet stays a zombie, which runs no code.
fn live_members(group: &str) -> Vec<String> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(Path::new(&entry.path()).join("stat")) else {
            continue;
        };
        // After the command name in parentheses: state, ppid, pgrp.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == group && fields[0] != "Z" {
            members.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    members
}

/// Returns a receipt as shops attach it, naming a style sheet, an image and a frame on
/// `origin` (such as `http://127.0.0.1:PORT`).
fn receipt_html(origin: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>Your receipt</title>\n\
         <link rel=\"stylesheet\" href=\"{origin}/style.css\">\n\
         <style>@import url(\"{origin}/imported.css\"); body {{ background: url({origin}/bg.png); }}</style>\n\
         </head><body>\n<h1>Receipt 4711</h1>\n<p>Total paid: 42.00 EUR</p>\n\
         <img src=\"{origin}/logo.png\" width=\"100\" height=\"100\">\n\
         <iframe src=\"{origin}/frame.html\"></iframe>\n\
         <table border=\"1\"><tr><td>Widget</td><td>42.00</td></tr></table>\n</body></html>\n"
    )
}

/// A loopback listener that counts the connections made to it.
struct Listener {
    origin: String,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn start() -> Listener {
        use std::sync::atomic::Ordering;
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let origin = format!("http://{}", socket.local_addr().unwrap());
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (counted, stopped) = (connections.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match socket.accept() {
                    Ok((mut stream, _)) => {
                        counted.fetch_add(1, Ordering::SeqCst);
                        let _ = std::io::Write::write_all(
                            &mut stream,
                            b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Listener { origin, connections, stop, thread: Some(thread) }
    }

    /// Stops listening and returns the number of connections made.
    fn finish(mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn html_attachment_fetches_nothing() {
    let listener = Listener::start();
    let html = receipt_html(&listener.origin);
    let files = vec![("receipt.html".to_string(), html.clone().into_bytes())];

    let converted = files_to_pdf(&files, &Limits::default()).unwrap();

    assert!(converted.pages >= 1);
    assert_eq!(listener.finish(), 0, "LibreOffice fetched a resource of the sanitized HTML");
    let text = pdf_text(&converted.pdf);
    assert!(text.contains("Receipt 4711"), "{text}");
    assert!(text.contains("Total paid: 42.00 EUR"), "{text}");

    // The same file given to LibreOffice unsanitized does reach the listener, so the
    // count above can catch a fetch.
    let control = Listener::start();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("receipt.html");
    std::fs::write(&input, receipt_html(&control.origin)).unwrap();
    let output = Command::new("soffice")
        .arg(format!("-env:UserInstallation=file://{}/profile", dir.path().display()))
        .args(["--headless", "--norestore", "--convert-to", "pdf", "--outdir"])
        .arg(dir.path())
        .arg(&input)
        .env("HOME", dir.path())
        .output()
        .expect("LibreOffice is installed (apt-get install libreoffice-writer-nogui)");
    assert!(output.status.success(), "soffice failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(control.finish() > 0, "unsanitized HTML made no request, so the listener proves nothing");
}

#[test]
fn daemon_faxes_html_attachment_not_body() {
    let daemon = daemon(String::new());
    let receipt = base64::engine::general_purpose::STANDARD.encode(receipt_html("http://127.0.0.1:9"));
    let message = format!(
        "From: {ALICE}\r\nTo: 14155552222@{DOMAIN}\r\nSubject: receipt\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
         --m\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n\
         --a\r\nContent-Type: text/plain\r\n\r\nBody text not for the fax\r\n\
         --a\r\nContent-Type: text/html\r\n\r\n<p>Body HTML not for the fax</p>\r\n--a--\r\n\
         --m\r\nContent-Type: text/html; name=\"receipt.html\"\r\n\
         Content-Disposition: attachment; filename=\"receipt.html\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{receipt}\r\n--m--\r\n"
    );

    let reply = send(&daemon, message.as_bytes());

    assert!(reply.is(250, "2.0.0"), "{reply:?}\n{}", daemon.log());
    let id = reply.text.rsplit("queued as ").next().unwrap().trim().to_string();
    let pdf_path = daemon.outbox().join(format!("{id}.pdf"));
    wait_for("the outbox PDF", Duration::from_secs(30), || pdf_path.exists().then_some(()));
    let text = pdf_text(&std::fs::read(pdf_path).unwrap());
    assert!(text.contains("Receipt 4711"), "{text}");
    assert!(!text.contains("not for the fax"), "{text}");
}

#[test]
fn html_without_converter_rejected_naming_file() {
    let limits = Limits { office_converter: "/nonexistent/soffice".to_string(), ..Limits::default() };
    let files = vec![("receipt.html".to_string(), receipt_html("http://127.0.0.1:9").into_bytes())];

    let error = files_to_pdf(&files, &limits).unwrap_err();

    let reply = error.smtp_reply();
    assert_eq!(reply.code, 550);
    assert_eq!(reply.status, "5.6.1");
    assert_eq!(
        reply.text,
        "cannot fax receipt.html: HTML documents cannot be converted on this server; print the page to PDF and send that"
    );
}
