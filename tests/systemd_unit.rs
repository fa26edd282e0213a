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
