//! A real faxgate daemon for tests: the built binary, started with a configuration in
//! a temporary folder, on free loopback ports.

#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for the daemon to bind its listeners. Generous because CI
/// machines are shared; a healthy start takes well under a second.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub const DOMAIN: &str = "fax.example.com";

/// One `[[smtp.listeners]]` entry.
#[derive(Clone, Debug)]
pub struct ListenerSpec {
    pub tls: &'static str,
    pub auth: &'static str,
}

impl ListenerSpec {
    pub fn plain() -> Self {
        ListenerSpec { tls: "none", auth: "none" }
    }
}

/// What differs between test daemons.
#[derive(Clone, Debug)]
pub struct Setup {
    pub listeners: Vec<ListenerSpec>,
    /// Extra `key = value` lines for the `[smtp]` table.
    pub smtp_extra: String,
    /// Extra lines for the `[fax]` table (before `[fax.sinch]`).
    pub fax_extra: String,
    /// The `[fax.sinch]` table body, when the backend is Sinch.
    pub sinch: Option<String>,
    pub senders_check: &'static str,
    /// The `[relay]` table body; `None` keeps the defaults (maildir in the data folder).
    pub relay: Option<String>,
    /// The `[notifications]` table body; `None` keeps the defaults.
    pub notifications: Option<String>,
    /// Extra lines for the `[webhooks]` table.
    pub webhooks_extra: String,
    /// Extra `key = value` lines for the `[documents]` table.
    pub documents_extra: String,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            listeners: vec![ListenerSpec::plain()],
            smtp_extra: String::new(),
            fax_extra: String::new(),
            sinch: None,
            senders_check: "both",
            relay: None,
            notifications: None,
            webhooks_extra: String::new(),
            documents_extra: String::new(),
        }
    }
}

pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    /// The listeners' addresses, in the order of `Setup::listeners`.
    pub addresses: Vec<SocketAddr>,
    /// PEM of the self-signed certificate for "localhost" the TLS listeners use.
    pub ca_pem: String,
    /// The webhook listener's address.
    pub webhook_addr: SocketAddr,
    child: Option<Child>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_faxgate")
}

/// Returns a loopback port that was free a moment ago, for a server started later.
///
/// Ports come from below Linux's ephemeral range (32768 and up by default). So the
/// client sockets of tests running at the same time cannot take the port between this
/// check and the server's bind, as happened with ports the kernel picked. A counter
/// hands out each port once per test process, from a start that differs per process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % COUNT;
    for _ in 0..COUNT {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT;
        let port = u16::try_from(FIRST + offset).expect("test ports fit in u16");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {FIRST} and {}", FIRST + COUNT);
}

impl TestDaemon {
    /// Writes the configuration and starts the daemon; returns once every listener
    /// accepts connections.
    pub fn start(setup: Setup) -> TestDaemon {
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path, ca_pem) = write_certificate(dir.path());
        let addresses: Vec<SocketAddr> =
            setup.listeners.iter().map(|_| SocketAddr::from(([127, 0, 0, 1], free_port()))).collect();
        let mut listeners = String::new();
        for (spec, address) in setup.listeners.iter().zip(&addresses) {
            listeners.push_str(&format!(
                "[[smtp.listeners]]\naddress = \"{address}\"\ntls = \"{}\"\nauth = \"{}\"\n\n",
                spec.tls, spec.auth
            ));
        }
        let fax = match &setup.sinch {
            Some(sinch) => format!("[fax]\nbackend = \"sinch\"\n{}\n[fax.sinch]\n{sinch}\n", setup.fax_extra),
            None => format!("[fax]\nbackend = \"outbox\"\n{}\n", setup.fax_extra),
        };
        let webhook_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let relay = setup.relay.as_ref().map(|table| format!("[relay]\n{table}\n")).unwrap_or_default();
        let notifications =
            setup.notifications.as_ref().map(|table| format!("[notifications]\n{table}\n")).unwrap_or_default();
        let config = format!(
            r#"[gateway]
hostname = "{DOMAIN}"
domains = ["{DOMAIN}"]
default_region = "US"
data_dir = "data"

[smtp]
tls_cert = "{cert}"
tls_key = "{key}"
{smtp_extra}

{listeners}
[senders]
check = "{check}"

[documents]
{documents_extra}

{fax}
[webhooks]
address = "{webhook_addr}"
public_url = "http://{webhook_addr}/webhooks/sinch"
username = "sinch"
password = "hook-secret"
{webhooks_extra}

{relay}
{notifications}

[api]
address = "127.0.0.1:{api_port}"
password = "api-secret"
"#,
            cert = cert_path.display(),
            key = key_path.display(),
            smtp_extra = setup.smtp_extra,
            check = setup.senders_check,
            documents_extra = setup.documents_extra,
            webhooks_extra = setup.webhooks_extra,
            api_port = free_port(),
        );
        let config_path = dir.path().join("faxgate.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut daemon = TestDaemon { dir, config_path, addresses, ca_pem, webhook_addr, child: None };
        daemon.spawn();
        daemon
    }

    pub fn smtp_addr(&self) -> SocketAddr {
        self.addresses[0]
    }

    /// Returns `api.address` as written in the configuration file.
    pub fn api_addr(&self) -> SocketAddr {
        faxgate::config::load(&self.config_path).expect("the test configuration is valid").api.address
    }

    /// Returns the base URL of the management API, such as `http://127.0.0.1:41234`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn outbox(&self) -> PathBuf {
        self.data_dir().join("outbox")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon is running").id()
    }

    /// Starts the daemon process on the existing configuration and data.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        let child = Command::new(binary())
            .args(["run", "--config"])
            .arg(&self.config_path)
            .env("RUST_LOG", "faxgate=debug,info")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        for address in self.addresses.iter().copied().chain([self.webhook_addr]) {
            while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("daemon exited with {status} before listening:\n{}", self.log());
                }
                assert!(Instant::now() < deadline, "daemon did not listen on {address}:\n{}", self.log());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("daemon did not stop after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `faxgate ARGS... --config <this config>` and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_stdin(args, "")
    }

    pub fn cli_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Adds a mapping with the CLI and fails the test when the CLI fails.
    pub fn add_mapping(&self, email: &str, numbers: &[&str]) {
        let mut args = vec!["emails", "add", email];
        for n in numbers {
            args.push("--number");
            args.push(n);
        }
        let out = self.cli(&args);
        assert!(out.status.success(), "emails add failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Peak resident memory of the daemon in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        let mut text = String::new();
        std::fs::File::open(format!("/proc/{}/status", self.pid())).unwrap().read_to_string(&mut text).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes a self-signed certificate for `localhost` and 127.0.0.1; returns the paths
/// of the certificate and key and the certificate PEM for clients to trust.
fn write_certificate(dir: &Path) -> (PathBuf, PathBuf, String) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    let cert_pem = certified.cert.pem();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    (cert_path, key_path, cert_pem)
}

/// Waits until `check` returns `Some`, polling; panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
