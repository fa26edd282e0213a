//! Email to fax against the real daemon over TCP: what an SMTP client sends becomes
//! files in the outbox, and every rejection has its exact reply code.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::daemon::{DOMAIN, Setup, TestDaemon, wait_for};
use support::pdf::{A4, LEGAL, LETTER, fit_scales, make_pdf, message_with_pdfs, page_rotations, page_sizes};
use support::mail::queued_ids;
use support::smtp_client::{Client, Reply};

const ALICE: &str = "alice@example.com";
const ALICE_NUMBER: &str = "+14155550100";

fn daemon_with_alice(setup: Setup) -> TestDaemon {
    let daemon = TestDaemon::start(setup);
    daemon.add_mapping(ALICE, &[&format!("{ALICE_NUMBER}:send")]);
    daemon
}

/// Reads `<id>.json` and `<id>.pdf` from the outbox once both exist.
fn outbox_job(daemon: &TestDaemon, id: &str) -> (serde_json::Value, Vec<u8>) {
    let json_path = daemon.outbox().join(format!("{id}.json"));
    let pdf_path = daemon.outbox().join(format!("{id}.pdf"));
    wait_for("the outbox files", Duration::from_secs(30), || {
        (json_path.exists() && pdf_path.exists()).then_some(())
    });
    let json = serde_json::from_slice(&std::fs::read(json_path).unwrap()).unwrap();
    (json, std::fs::read(pdf_path).unwrap())
}

/// Sends one message with the test client; returns the reply to the message.
fn send(daemon: &TestDaemon, from: &str, to: &str, message: &[u8]) -> Reply {
    let (mut client, greeting) = Client::connect(daemon.smtp_addr());
    assert_eq!(greeting.code, 220);
    assert_eq!(client.command("EHLO client.example").code, 250);
    let mail = client.command(&format!("MAIL FROM:<{from}>"));
    if mail.code != 250 {
        return mail;
    }
    let rcpt = client.command(&format!("RCPT TO:<{to}>"));
    if rcpt.code != 250 {
        return rcpt;
    }
    let (start, end) = client.data(message);
    end.unwrap_or(start)
}

#[test]
fn swaks_message_reaches_outbox() {
    let daemon = daemon_with_alice(Setup::default());
    let pdf_path = daemon.dir.path().join("three-pages.pdf");
    std::fs::write(&pdf_path, make_pdf(&[LETTER, LETTER, LETTER])).unwrap();
    let output = Command::new("swaks")
        .args(["--server", &daemon.smtp_addr().to_string()])
        .args(["--from", ALICE, "--to", &format!("14155552222@{DOMAIN}")])
        .arg("--attach")
        .arg(format!("@{}", pdf_path.display()))
        .output()
        .expect("swaks is installed (apt-get install swaks)");
    let transcript = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "swaks failed:\n{transcript}\n{}", daemon.log());
    let line = transcript.lines().find(|l| l.contains("<-  250 2.0.0 queued as ")).expect(&transcript);
    let ids: Vec<String> = line.rsplit("queued as ").next().unwrap().split(',').map(|s| s.trim().to_string()).collect();
    assert_eq!(ids.len(), 1, "{line}");

    let (json, pdf) = outbox_job(&daemon, &ids[0]);
    assert_eq!(json["to"], "+14155552222");
    assert_eq!(json["from"], ALICE_NUMBER);
    assert_eq!(json["labels"]["faxgateJob"], ids[0].as_str());
    assert_eq!(page_sizes(&pdf).len(), 3);
}

#[test]
fn two_pdfs_merge_in_mime_order() {
    let daemon = daemon_with_alice(Setup::default());
    let first = make_pdf(&[A4, A4]);
    let second = make_pdf(&[LEGAL, LETTER, LEGAL]);
    let to = format!("+14155552222@{DOMAIN}");
    let message = message_with_pdfs(ALICE, &to, "report", &[("a.pdf", first), ("b.pdf", second)]);
    let reply = send(&daemon, ALICE, &to, &message);
    assert!(reply.is(250, "2.0.0"), "{reply:?}\n{}", daemon.log());
    let ids = queued_ids(&reply);
    let (_, pdf) = outbox_job(&daemon, &ids[0]);
    // Every page is fitted to the default Letter paper, and the scale of each fit
    // shows that the pages are in MIME order.
    assert_eq!(page_sizes(&pdf), vec![LETTER; 5]);
    assert_eq!(page_rotations(&pdf), vec![0; 5]);
    let scales = fit_scales(&pdf);
    let a4_scale = f64::from(LETTER.1 / A4.1);
    let legal_scale = f64::from(LETTER.1 / LEGAL.1);
    let expected = [a4_scale, a4_scale, legal_scale, 1.0, legal_scale];
    for (number, (scale, expected)) in scales.iter().zip(expected).enumerate() {
        assert!((scale - expected).abs() < 1e-4, "page {}: scale {scale}, expected {expected}", number + 1);
    }
}

#[test]
fn each_recipient_gets_its_own_job() {
    let daemon = daemon_with_alice(Setup::default());
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO client.example");
    assert_eq!(client.command(&format!("MAIL FROM:<{ALICE}>")).code, 250);
    assert_eq!(client.command(&format!("RCPT TO:<14155552222@{DOMAIN}>")).code, 250);
    assert_eq!(client.command(&format!("RCPT TO:<\"+1 (415) 555-2223\"@{DOMAIN}>")).code, 250);
    let message = message_with_pdfs(ALICE, "x@fax.example.com", "", &[("a.pdf", make_pdf(&[LETTER]))]);
    let (_, end) = client.data(&message);
    let end = end.unwrap();
    assert!(end.is(250, "2.0.0"), "{end:?}");
    let ids = queued_ids(&end);
    assert_eq!(ids.len(), 2);
    let (first, _) = outbox_job(&daemon, &ids[0]);
    let (second, _) = outbox_job(&daemon, &ids[1]);
    let mut numbers = vec![first["to"].as_str().unwrap().to_string(), second["to"].as_str().unwrap().to_string()];
    numbers.sort();
    assert_eq!(numbers, vec!["+14155552222", "+14155552223"]);
}

#[test]
fn envelope_rejections_have_exact_codes() {
    let daemon = daemon_with_alice(Setup {
        smtp_extra: "max_message_size = 100000".into(),
        ..Setup::default()
    });
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO client.example");

    // The null sender.
    assert!(client.command("MAIL FROM:<>").is(550, "5.7.1"));

    // SIZE declared over the limit.
    let reply = client.command(&format!("MAIL FROM:<{ALICE}> SIZE=200000"));
    assert!(reply.is(552, "5.3.4"), "{reply:?}");

    assert_eq!(client.command(&format!("MAIL FROM:<{ALICE}> SIZE=1000")).code, 250);
    // Unknown domain.
    let reply = client.command("RCPT TO:<14155552222@other.example>");
    assert!(reply.is(550, "5.7.1"), "{reply:?}");
    assert!(reply.text.contains("other.example"), "{reply:?}");
    // Local part that is not a number.
    let reply = client.command(&format!("RCPT TO:<sales@{DOMAIN}>"));
    assert!(reply.is(550, "5.1.3"), "{reply:?}");
    assert!(reply.text.contains("sales"), "{reply:?}");
    assert!(reply.text.contains("<number>@"), "{reply:?}");
    // A denied premium-rate prefix.
    let reply = client.command(&format!("RCPT TO:<+19005550100@{DOMAIN}>"));
    assert!(reply.is(550, "5.7.1"), "{reply:?}");
    assert!(reply.text.contains("+1900"), "{reply:?}");
    assert_eq!(client.command("RSET").code, 250);

    // An unmapped sender.
    assert_eq!(client.command("MAIL FROM:<mallory@example.com>").code, 250);
    let reply = client.command(&format!("RCPT TO:<14155552222@{DOMAIN}>"));
    assert!(reply.is(550, "5.7.1"), "{reply:?}");
    assert!(reply.text.contains("mallory@example.com"), "{reply:?}");
}

#[test]
fn name_recipient_gets_plain_rejection() {
    let daemon = daemon_with_alice(Setup::default());
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO client.example");
    assert_eq!(client.command(&format!("MAIL FROM:<{ALICE}>")).code, 250);

    let reply = client.command(&format!("RCPT TO:<info@{DOMAIN}>"));
    assert!(reply.is(550, "5.1.3"), "{reply:?}");
    assert_eq!(
        reply.text,
        format!(
            "5.1.3 \"info\" is not a fax number; address faxes as <number>@{DOMAIN}, such as 14155552222@{DOMAIN}"
        )
    );

    // Without relay.postmaster there is no mailbox for the postmaster.
    let reply = client.command(&format!("RCPT TO:<Postmaster@{DOMAIN}>"));
    assert!(reply.is(550, "5.1.1"), "{reply:?}");
    assert!(reply.text.contains("has no mailbox here"), "{reply:?}");

    // A dialled number with a pause still names the pause.
    let reply = client.command(&format!("RCPT TO:<1415p5552222@{DOMAIN}>"));
    assert!(reply.is(550, "5.1.3"), "{reply:?}");
    assert!(reply.text.contains("pause or tone"), "{reply:?}");
}

#[test]
fn country_rejection_names_number_first() {
    let daemon = daemon_with_alice(Setup { fax_extra: "allowed_countries = [\"US\", \"CA\"]".into(), ..Setup::default() });
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO client.example");
    assert_eq!(client.command(&format!("MAIL FROM:<{ALICE}>")).code, 250);

    let reply = client.command(&format!("RCPT TO:<+442079460000@{DOMAIN}>"));
    assert!(reply.is(550, "5.7.1"), "{reply:?}");
    assert_eq!(reply.text, "5.7.1 +442079460000 is in GB; faxes may be sent only to US, CA");
}

#[test]
fn receive_only_sender_is_rejected() {
    let daemon = TestDaemon::start(Setup::default());
    daemon.add_mapping("bob@example.com", &["+14155550101:receive"]);
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO client.example");
    client.command("MAIL FROM:<bob@example.com>");
    let reply = client.command(&format!("RCPT TO:<14155552222@{DOMAIN}>"));
    assert!(reply.is(550, "5.7.1"), "{reply:?}");
}

#[test]
fn message_rejections_have_exact_codes() {
    let daemon = daemon_with_alice(Setup {
        smtp_extra: "max_message_size = 300000".into(),
        ..Setup::default()
    });
    let to = format!("14155552222@{DOMAIN}");
    let pdf = make_pdf(&[LETTER]);

    // Header From differs from the envelope sender.
    let message = message_with_pdfs("eve@example.com", &to, "", &[("a.pdf", pdf.clone())]);
    let reply = send(&daemon, ALICE, &to, &message);
    assert!(reply.is(550, "5.7.1"), "{reply:?}");

    // Subject naming a number the sender may not send from.
    let message = message_with_pdfs(ALICE, &to, "+14155550199", &[("a.pdf", pdf.clone())]);
    let reply = send(&daemon, ALICE, &to, &message);
    assert!(reply.is(550, "5.7.1"), "{reply:?}");
    assert!(reply.text.contains("+14155550199"), "{reply:?}");

    // No document.
    let message = message_with_pdfs(ALICE, &to, "", &[]);
    let reply = send(&daemon, ALICE, &to, &message);
    assert!(reply.is(554, "5.6.0"), "{reply:?}");

    // A PDF that needs a user password.
    let protected = std::fs::read(sample("pdf/pypdf-r6-user-password-required.pdf")).unwrap();
    let message = message_with_pdfs(ALICE, &to, "", &[("secret.pdf", protected)]);
    let reply = send(&daemon, ALICE, &to, &message);
    assert!(reply.is(550, "5.6.1"), "{reply:?}");
    assert!(reply.text.contains("secret.pdf"), "{reply:?}");
    assert!(reply.text.contains("password"), "{reply:?}");

    // An automatic reply.
    let mut auto = b"Auto-Submitted: auto-replied\r\n".to_vec();
    auto.extend(message_with_pdfs(ALICE, &to, "", &[("a.pdf", pdf.clone())]));
    let reply = send(&daemon, ALICE, &to, &auto);
    assert!(reply.is(550, "5.7.1"), "{reply:?}");

    // Counted size over the limit during DATA, with no SIZE declared.
    let big = message_with_pdfs(ALICE, &to, "", &[("big.pdf", vec![b'x'; 400_000])]);
    let reply = send(&daemon, ALICE, &to, &big);
    assert!(reply.is(552, "5.3.4"), "{reply:?}");

    // Nothing was queued by any of these.
    let outbox_files = std::fs::read_dir(daemon.outbox()).map(|d| d.count()).unwrap_or(0);
    assert_eq!(outbox_files, 0);
}

#[test]
fn subject_selects_from_number() {
    let daemon = TestDaemon::start(Setup::default());
    daemon.add_mapping(ALICE, &["+14155550100:send", "+14155550101:both"]);
    let to = format!("14155552222@{DOMAIN}");
    let message = message_with_pdfs(ALICE, &to, "1-415-555-0101", &[("a.pdf", make_pdf(&[LETTER]))]);
    let reply = send(&daemon, ALICE, &to, &message);
    assert!(reply.is(250, "2.0.0"), "{reply:?}");
    let (json, _) = outbox_job(&daemon, &queued_ids(&reply)[0]);
    assert_eq!(json["from"], "+14155550101");
}

#[test]
fn srs_envelope_sender_is_unwrapped() {
    let daemon = daemon_with_alice(Setup { senders_check: "envelope", ..Setup::default() });
    let to = format!("14155552222@{DOMAIN}");
    let srs = "SRS0=HHH=TT=example.com=alice@forwarder.example";
    let message = message_with_pdfs(srs, &to, "", &[("a.pdf", make_pdf(&[LETTER]))]);
    let reply = send(&daemon, srs, &to, &message);
    assert!(reply.is(250, "2.0.0"), "{reply:?}\n{}", daemon.log());
}

#[test]
fn pipelined_transaction_is_answered_in_order() {
    let daemon = daemon_with_alice(Setup::default());
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    let ehlo = client.command("EHLO client.example");
    assert!(ehlo.text.contains("PIPELINING"), "{ehlo:?}");
    let message = message_with_pdfs(ALICE, "x@fax.example.com", "", &[("a.pdf", make_pdf(&[LETTER]))]);
    let mut batch = format!(
        "MAIL FROM:<{ALICE}>\r\nRCPT TO:<sales@{DOMAIN}>\r\nRCPT TO:<14155552222@{DOMAIN}>\r\nDATA\r\n"
    )
    .into_bytes();
    client.send(&batch);
    assert_eq!(client.read_reply().code, 250);
    assert_eq!(client.read_reply().code, 550);
    assert_eq!(client.read_reply().code, 250);
    assert_eq!(client.read_reply().code, 354);
    batch = message;
    batch.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
    client.send(&batch);
    assert!(client.read_reply().is(250, "2.0.0"));
    assert_eq!(client.read_reply().code, 221);
}

#[test]
fn bdat_message_is_queued() {
    let daemon = daemon_with_alice(Setup::default());
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    let ehlo = client.command("EHLO client.example");
    assert!(ehlo.text.contains("CHUNKING"), "{ehlo:?}");
    let message = message_with_pdfs(ALICE, "x@fax.example.com", "", &[("a.pdf", make_pdf(&[LETTER, LETTER]))]);
    let (head, tail) = message.split_at(message.len() / 2);
    let mut batch = format!("MAIL FROM:<{ALICE}>\r\nRCPT TO:<14155552222@{DOMAIN}>\r\nBDAT {}\r\n", head.len()).into_bytes();
    batch.extend_from_slice(head);
    batch.extend_from_slice(format!("BDAT {} LAST\r\n", tail.len()).as_bytes());
    batch.extend_from_slice(tail);
    client.send(&batch);
    assert_eq!(client.read_reply().code, 250);
    assert_eq!(client.read_reply().code, 250);
    assert_eq!(client.read_reply().code, 250);
    let last = client.read_reply();
    assert!(last.is(250, "2.0.0"), "{last:?}");
    let (_, pdf) = outbox_job(&daemon, &queued_ids(&last)[0]);
    assert_eq!(page_sizes(&pdf).len(), 2);
}

#[test]
fn huge_line_rejected_in_bounded_memory() {
    let daemon = daemon_with_alice(Setup::default());
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO client.example");
    let chunk = vec![b'A'; 1 << 20];
    for _ in 0..200 {
        client.send(&chunk);
    }
    client.send(b"\r\n");
    let reply = client.read_reply();
    assert!(reply.is(500, "5.5.2"), "{reply:?}");
    // The session is still usable after the refusal.
    assert_eq!(client.command("NOOP").code, 250);
    let peak_mib = daemon.peak_rss_kib() / 1024;
    assert!(peak_mib < 100, "daemon peak RSS {peak_mib} MiB after a 200 MiB line");
}

#[test]
fn ip_cap_spares_other_clients() {
    let daemon = daemon_with_alice(Setup {
        smtp_extra: "max_connections_per_ip = 3".into(),
        ..Setup::default()
    });
    let mut idle = Vec::new();
    for _ in 0..3 {
        let (client, greeting) = Client::connect(daemon.smtp_addr());
        assert_eq!(greeting.code, 220);
        idle.push(client);
    }
    let (mut over, greeting) = Client::connect(daemon.smtp_addr());
    assert!(greeting.is(421, "4.7.0"), "{greeting:?}");
    assert!(over.is_closed());

    // A client from another address still gets through and can send.
    let stream = connect_from("127.0.0.2", daemon.smtp_addr());
    let (mut other, greeting) = Client::from_stream(stream);
    assert_eq!(greeting.code, 220);
    assert_eq!(other.command("EHLO other.example").code, 250);
    assert_eq!(other.command(&format!("MAIL FROM:<{ALICE}>")).code, 250);
    assert_eq!(other.command(&format!("RCPT TO:<14155552222@{DOMAIN}>")).code, 250);
    drop(idle);
}

#[test]
fn sigterm_stops_daemon_cleanly() {
    let mut daemon = daemon_with_alice(Setup::default());
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO client.example");
    assert_eq!(daemon.terminate(), Some(0), "{}", daemon.log());
    let reply = client.read_reply();
    assert!(reply.is(421, "4.3.0"), "{reply:?}");
}

/// Connects to `to` from the loopback address `source`, such as 127.0.0.2.
fn connect_from(source: &str, to: std::net::SocketAddr) -> std::net::TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let stream = runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(std::net::SocketAddr::new(source.parse().unwrap(), 0))?;
            socket.connect(to).await?.into_std()
        })
        .unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

fn sample(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples").join(relative)
}

#[test]
fn number_comes_from_envelope_not_header() {
    let daemon = daemon_with_alice(Setup::default());
    let to = format!("14155552222@{DOMAIN}");
    // The To header names another number; only the envelope recipient counts.
    let message = message_with_pdfs(ALICE, &format!("14155559999@{DOMAIN}"), "", &[("a.pdf", make_pdf(&[LETTER]))]);
    let reply = send(&daemon, ALICE, &to, &message);
    assert!(reply.is(250, "2.0.0"), "{reply:?}");
    let (json, _) = outbox_job(&daemon, &queued_ids(&reply)[0]);
    assert_eq!(json["to"], "+14155552222");
}

#[test]
fn subject_number_is_not_a_destination() {
    let daemon = daemon_with_alice(Setup::default());
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO client.example");
    client.command(&format!("MAIL FROM:<{ALICE}>"));
    // A mailbox address with the number in the Subject is not our address format.
    let reply = client.command(&format!("RCPT TO:<fax@{DOMAIN}>"));
    assert!(reply.is(550, "5.1.3"), "{reply:?}");
    assert!(reply.text.contains("<number>@"), "{reply:?}");
}

#[test]
fn subdomain_sender_does_not_match_domain_mapping() {
    let daemon = daemon_with_alice(Setup::default());
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO client.example");
    client.command("MAIL FROM:<alice@mail.example.com>");
    let reply = client.command(&format!("RCPT TO:<14155552222@{DOMAIN}>"));
    assert!(reply.is(550, "5.7.1"), "{reply:?}");
}

#[test]
fn bare_lf_message_from_device_is_faxed() {
    let daemon = daemon_with_alice(Setup::default());
    let to = format!("14155552222@{DOMAIN}");
    let crlf = message_with_pdfs(ALICE, &to, "", &[("scan.pdf", make_pdf(&[LETTER, LETTER]))]);
    // Scanners and small devices often end lines with a bare LF.
    let bare_lf = String::from_utf8(crlf).unwrap().replace("\r\n", "\n").into_bytes();
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO scanner.example");
    client.command(&format!("MAIL FROM:<{ALICE}>"));
    client.command(&format!("RCPT TO:<{to}>"));
    assert_eq!(client.command("DATA").code, 354);
    client.send(&bare_lf);
    client.send(b"\r\n.\r\n");
    let reply = client.read_reply();
    assert!(reply.is(250, "2.0.0"), "{reply:?}");
    let (_, pdf) = outbox_job(&daemon, &queued_ids(&reply)[0]);
    assert_eq!(page_sizes(&pdf).len(), 2);
}

/// Sends `message` and then CR LF `.` CR LF as they are, so a message that already ends
/// with CR LF arrives with one more, as some clients send it.
fn send_with_extra_crlf(daemon: &TestDaemon, to: &str, message: &[u8]) -> Reply {
    let (mut client, _) = Client::connect(daemon.smtp_addr());
    client.command("EHLO client.example");
    client.command(&format!("MAIL FROM:<{ALICE}>"));
    client.command(&format!("RCPT TO:<{to}>"));
    assert_eq!(client.command("DATA").code, 354);
    client.send(message);
    client.send(b"\r\n.\r\n");
    client.read_reply()
}

/// Returns the sample with a `message/rfc822` part that is not a message, with Alice as
/// the sender.
fn broken_forward_from_alice() -> String {
    let sample = std::fs::read_to_string(sample("eml/broken-rfc822-attachment.eml")).unwrap();
    assert!(sample.ends_with("--BOUND--\r\n"), "the sample ends with its closing boundary and CR LF");
    sample.replace("From: a@example.com", &format!("From: {ALICE}"))
}

#[test]
fn unreadable_forward_named_in_rejection() {
    let daemon = daemon_with_alice(Setup::default());
    let to = format!("14155552222@{DOMAIN}");
    let message = broken_forward_from_alice();

    let reply = send(&daemon, ALICE, &to, message.as_bytes());
    assert!(reply.is(554, "5.6.0"), "{reply:?}");
    assert!(reply.text.contains("broken.eml (forwarded message that cannot be read)"), "{reply:?}");

    let reply = send_with_extra_crlf(&daemon, &to, message.as_bytes());
    assert!(reply.is(554, "5.6.0"), "{reply:?}");
    assert!(reply.text.contains("broken.eml (forwarded message that cannot be read)"), "{reply:?}");
}

#[test]
fn unreadable_forward_named_when_accepted() {
    let daemon = daemon_with_alice(Setup::default());
    let to = format!("14155552222@{DOMAIN}");
    let pdf = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, make_pdf(&[LETTER]));
    let pdf_part = format!(
        "--BOUND\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"after.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{pdf}\r\n--BOUND--\r\n"
    );
    let message = broken_forward_from_alice().replace("--BOUND--\r\n", &pdf_part);

    for extra_crlf in [false, true] {
        let reply = if extra_crlf {
            send_with_extra_crlf(&daemon, &to, message.as_bytes())
        } else {
            send(&daemon, ALICE, &to, message.as_bytes())
        };
        assert!(reply.is(250, "2.0.0"), "extra CR LF {extra_crlf}: {reply:?}");
        let lines: Vec<&str> = reply.text.lines().collect();
        assert_eq!(lines.len(), 2, "extra CR LF {extra_crlf}: {reply:?}");
        assert_eq!(
            lines[0],
            "2.0.0 not faxed, forwarded message that cannot be read: broken.eml. Attach the documents directly"
        );
        assert!(lines[1].starts_with("2.0.0 queued as "), "{reply:?}");
        let (_, pdf) = outbox_job(&daemon, &queued_ids(&reply)[0]);
        assert_eq!(page_sizes(&pdf).len(), 1);
    }
}

/// Renders a base64 PNG attachment of a white image of `width` x `height` pixels.
fn png_part(name: &str, width: u32, height: u32) -> String {
    let image = image::GrayImage::from_pixel(width, height, image::Luma([255]));
    let mut png = std::io::Cursor::new(Vec::new());
    image.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, png.into_inner());
    format!(
        "--m\r\nContent-Type: image/png; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n"
    )
}

#[test]
fn images_over_pixel_budget_rejected() {
    let daemon = daemon_with_alice(Setup {
        documents_extra: "max_message_pixels = 200000".into(),
        ..Setup::default()
    });
    let to = format!("14155552222@{DOMAIN}");
    // Each image has 90,000 pixels. Two fit the budget of 200,000, and the third
    // passes it.
    let message = format!(
        "From: {ALICE}\r\nTo: {to}\r\nSubject: scans\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
         --m\r\nContent-Type: text/plain\r\n\r\nthree scans\r\n{}{}{}--m--\r\n",
        png_part("first.png", 300, 300),
        png_part("second.png", 300, 300),
        png_part("third.png", 300, 300),
    );

    let reply = send(&daemon, ALICE, &to, message.as_bytes());

    assert!(reply.is(550, "5.6.1"), "{reply:?}");
    assert!(reply.text.contains("cannot fax third.png: "), "{reply:?}");
    assert!(reply.text.contains("more than the maximum of 200000 pixels together"), "{reply:?}");
    let outbox_files = std::fs::read_dir(daemon.outbox()).map(|d| d.count()).unwrap_or(0);
    assert_eq!(outbox_files, 0);
}
