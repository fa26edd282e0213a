//! The shipped systemd unit passes `systemd-analyze verify`.

use std::process::Command;

#[test]
fn unit_verifies_cleanly() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/faxgate.service")).unwrap();
    assert!(unit.contains("Type=notify"));
    assert!(unit.contains("WatchdogSec="));
    // The unit names the installed binary; verify checks that it exists, so the
    // copy under test points at the binary this test run built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("faxgate.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/faxgate", env!("CARGO_BIN_EXE_faxgate"))).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{report}");
    assert_eq!(report.trim(), "", "systemd-analyze verify reported problems");
}

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use support::daemon::{Setup, TestDaemon};

/// Collects the datagrams the daemon sends to `socket` until `until` is among them.
fn collect_until(socket: &UnixDatagram, until: &str, messages: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buffer = [0u8; 4096];
    while !messages.iter().any(|m| m.lines().any(|l| l == until)) {
        assert!(Instant::now() < deadline, "no {until} from the daemon; got {messages:?}");
        if let Ok(n) = socket.recv(&mut buffer) {
            messages.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
    }
}

#[test]
fn daemon_notifies_ready_watchdog_and_stopping() {
    // The configuration of a test daemon, run here by hand with the variables that
    // systemd sets for a Type=notify unit with WatchdogSec=.
    let mut configured = TestDaemon::start(Setup::default());
    configured.terminate();
    let socket_path = configured.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();

    // systemd names the main process in WATCHDOG_PID; the shell's pid becomes the
    // daemon's through exec.
    let child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\"")
        .arg(support::daemon::binary())
        .arg(&configured.config_path)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut messages = Vec::new();
    collect_until(&socket, "READY=1", &mut messages);
    collect_until(&socket, "WATCHDOG=1", &mut messages);
    // READY is sent only once the SMTP listener accepts connections.
    assert!(std::net::TcpStream::connect(configured.smtp_addr()).is_ok());

    Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    collect_until(&socket, "STOPPING=1", &mut messages);
    assert!(child.0.wait().unwrap().success());
}

/// A child process that is killed when the test ends, also when it fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
