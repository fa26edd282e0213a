//! A real SMTP relay for tests: `relay_smtp.py` on aiosmtpd, run with Debian's
//! `/usr/bin/python3` (package `python3-aiosmtpd`), on a loopback port.
//!
//! By default it requires STARTTLS with a certificate for 127.0.0.1 signed by a test
//! CA made here with rcgen. The daemon trusts that CA through `relay.ca_file`. It can
//! also run without STARTTLS, and be stopped and started again on the same port and
//! store, to play a relay outage.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use mail_parser::MimeHeaders;

/// The Python interpreter that has the Debian aiosmtpd package.
const PYTHON: &str = "/usr/bin/python3";

/// One message the relay accepted.
#[derive(Debug, Clone)]
pub struct RelayedMail {
    pub mail_from: String,
    /// The name the client gave in EHLO or HELO.
    pub helo: String,
    pub rcpt_tos: Vec<String>,
    /// Whether the session was inside TLS when the message came.
    pub tls: bool,
    pub data: Vec<u8>,
}

impl RelayedMail {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default().parse(&self.data).expect("the relayed message parses")
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or("").to_string()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let text = String::from_utf8_lossy(&self.data).into_owned();
        let head = text.split("\r\n\r\n").next().unwrap_or("").replace("\r\n ", " ").replace("\r\n\t", " ");
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim().to_string())
        })
    }

    /// Returns the attachments as (file name, bytes).
    pub fn attachments(&self) -> Vec<(String, Vec<u8>)> {
        let message = self.parsed();
        message
            .attachments()
            .map(|part| (part.attachment_name().unwrap_or("").to_string(), part.contents().to_vec()))
            .collect()
    }

    pub fn body_text(&self) -> String {
        self.parsed().body_text(0).map(|t| t.into_owned()).unwrap_or_default()
    }
}

/// Whether the relay offers STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTls {
    /// STARTTLS offered and required before MAIL.
    RequireStarttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
    /// No STARTTLS offered: a clear-text only server.
    None,
}

pub struct RelayServer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub mode: RelayTls,
    child: Option<Child>,
}

impl RelayServer {
    /// Prepares a relay (certificates and store) on a free port without starting it.
    pub fn prepare(mode: RelayTls) -> RelayServer {
        let dir = tempfile::tempdir().unwrap();
        write_certificates(dir.path());
        std::fs::create_dir_all(dir.path().join("store")).unwrap();
        RelayServer { dir, port: super::daemon::free_port(), mode, child: None }
    }

    /// Prepares and starts a relay.
    pub fn start(mode: RelayTls) -> RelayServer {
        let mut server = RelayServer::prepare(mode);
        server.spawn();
        server
    }

    /// Replaces the relay's certificate with a self-signed one for 127.0.0.1 that is
    /// marked as a CA, as `openssl req -x509` makes by default, and names that same
    /// certificate in `ca_file`. Call it before [`RelayServer::spawn`].
    pub fn use_self_signed_ca_certificate(&self) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "self-signed relay");
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(self.dir.path().join("server.pem"), cert.pem()).unwrap();
        std::fs::write(self.dir.path().join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(self.ca_file(), cert.pem()).unwrap();
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Path of the test CA's certificate, for `relay.ca_file`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Returns the `[relay]` table that makes the daemon send through this relay (with
    /// `tls = "implicit"` for an implicit-TLS relay, else `"starttls"`), from
    /// `fax@fax.example.com`, reporting failures to `postmaster`.
    pub fn relay_table(&self, postmaster: &str) -> String {
        let tls = if self.mode == RelayTls::Implicit { "implicit" } else { "starttls" };
        format!(
            "backend = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"{tls}\"\nfrom = \"fax@fax.example.com\"\n\
             postmaster = \"{postmaster}\"\nca_file = \"{}\"\n",
            self.port,
            self.ca_file().display()
        )
    }

    /// Starts the server process and waits until it accepts connections.
    pub fn spawn(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/relay_smtp.py");
        let mut command = Command::new(PYTHON);
        command
            .arg(&script)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--store")
            .arg(self.dir.path().join("store"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if self.mode != RelayTls::None {
            command.arg("--tls-cert").arg(self.dir.path().join("server.pem"));
            command.arg("--tls-key").arg(self.dir.path().join("server.key"));
        }
        if self.mode == RelayTls::Implicit {
            command.arg("--implicit");
        }
        let mut child =
            command.spawn().expect("start /usr/bin/python3 with aiosmtpd (apt-get install python3-aiosmtpd)");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(line.starts_with("ready"), "the test relay did not start: {line:?}");
        self.child = Some(child);
    }

    /// Stops the server process; the store stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            for _ in 0..100 {
                if child.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Returns the messages received so far, oldest first.
    pub fn messages(&self) -> Vec<RelayedMail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("store"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| {
                let record: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
                RelayedMail {
                    mail_from: record["mail_from"].as_str().unwrap_or("").to_string(),
                    helo: record["helo"].as_str().unwrap_or("").to_string(),
                    rcpt_tos: record["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap().to_string())
                        .collect(),
                    tls: record["tls"].as_bool().unwrap_or(false),
                    data: base64::engine::general_purpose::STANDARD.decode(record["data"].as_str().unwrap()).unwrap(),
                }
            })
            .collect()
    }

    /// Returns the messages whose envelope recipients include `recipient`.
    pub fn messages_to(&self, recipient: &str) -> Vec<RelayedMail> {
        self.messages().into_iter().filter(|m| m.rcpt_tos.iter().any(|r| r == recipient)).collect()
    }
}

impl Drop for RelayServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes `ca.pem` (a test CA) and `server.pem`/`server.key` (a certificate for
/// 127.0.0.1 and localhost signed by that CA).
fn write_certificates(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "faxgate test CA");
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();

    let server_key = rcgen::KeyPair::generate().unwrap();
    let mut server_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    server_params.distinguished_name.push(rcgen::DnType::CommonName, "test relay");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
}
