//! Converting Office documents (Word, Excel, PowerPoint, OpenDocument, RTF) and HTML
//! attachments to PDF with headless LibreOffice (`documents.office_converter`, `soffice`
//! by default). HTML is sanitized by [`html`] before LibreOffice opens it.
//!
//! Each conversion runs in a temporary folder of its own with a fresh LibreOffice
//! profile (`-env:UserInstallation`) and a private HOME and TMPDIR, because concurrent
//! conversions that share a profile block each other or fail. The converter runs in a
//! process group of its own. After `documents.office_timeout` the whole group is killed
//! with SIGKILL and reaped, because `soffice` starts `soffice.bin`, which a kill of the
//! first process alone would leave running. At most [`MAX_CONCURRENT`] conversions run
//! at once. The output goes through the same checks as an attached PDF.
//!
//! The folders are named after the process id (`faxgate-office-<pid>-...` in the
//! system's temporary folder), so that a daemon killed with SIGKILL, which leaves its
//! folders behind, has them removed by the next start.
//!
//! Without the converter such documents are rejected with a reply that says so. A
//! conversion that times out is rejected (`550 5.6.1`) naming the timeout rather than
//! deferred, because the same document would time out again on every retry.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::kind::{Office, Refusal};
use super::{Limits, html};
use super::pdf::{self, PdfPages};

/// Maximum LibreOffice conversions at once. Each keeps a CPU busy and, as an estimate,
/// needs a few hundred MB of memory, so more at once would crowd out the daemon.
pub const MAX_CONCURRENT: usize = 2;

/// Maximum run time of `soffice --version` at start-up; a first start of LibreOffice
/// takes a few seconds.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Start of every working folder's name; the process id and a random part follow.
const FOLDER_PREFIX: &str = "faxgate-office-";

/// Interval between checks whether the converter has exited.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Maximum bytes of the converter's output kept for the log.
const MAX_LOGGED_OUTPUT: usize = 2000;

/// Reason given when the converter is not installed.
pub(crate) const NOT_AVAILABLE: &str =
    "Office documents cannot be converted on this server; send PDF, TIFF, JPEG or PNG";

/// Reason given for an HTML attachment when the converter is not installed.
pub(crate) const HTML_NOT_AVAILABLE: &str =
    "HTML documents cannot be converted on this server; print the page to PDF and send that";

static SLOTS: Slots = Slots { used: Mutex::new(0), freed: Condvar::new() };

/// A counting semaphore for blocking threads: conversions run on the blocking pool, not
/// on the async runtime.
struct Slots {
    used: Mutex<usize>,
    freed: Condvar,
}

struct Slot;

impl Slots {
    /// Takes a slot, waiting at most `timeout`; `None` when none became free in time.
    fn acquire(&'static self, timeout: Duration) -> Option<Slot> {
        let deadline = Instant::now() + timeout;
        let mut used = self.used.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while *used >= MAX_CONCURRENT {
            let left = deadline.checked_duration_since(Instant::now())?;
            used = self.freed.wait_timeout(used, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
        *used += 1;
        Some(Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut used = SLOTS.used.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *used = used.saturating_sub(1);
        SLOTS.freed.notify_one();
    }
}

/// Checks that the office converter runs and returns its version line (such as
/// `LibreOffice 7.4.7.2 40(Build:2)`), or `None` when it is not installed or fails.
/// The daemon calls this once at start-up to log whether Office documents convert.
pub fn probe(limits: &Limits) -> Option<String> {
    let program = find_program(&limits.office_converter)?;
    let folder = working_folder().ok()?;
    let mut command = Command::new(&program);
    command.arg("--version");
    let run = run_isolated(command, folder.path(), PROBE_TIMEOUT.max(limits.office_timeout));
    match run {
        Ok(Run::Exited { status, output }) if status.success() => {
            let version = output.lines().find(|line| !line.trim().is_empty()).unwrap_or("").trim().to_string();
            Some(if version.is_empty() { program.display().to_string() } else { version })
        }
        Ok(Run::Exited { status, output }) => {
            warn!(converter = %program.display(), %status, output = %output, "office converter failed its version check");
            None
        }
        Ok(Run::TimedOut) => {
            warn!(converter = %program.display(), "office converter timed out in its version check");
            None
        }
        Err(error) => {
            warn!(converter = %program.display(), %error, "office converter cannot be started");
            None
        }
    }
}

/// Creates a working folder named after this process, removed when it is dropped.
fn working_folder() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix(&format!("{FOLDER_PREFIX}{}-", std::process::id())).tempdir()
}

/// Removes the working folders in `temp_dir` left by processes that no longer run, such
/// as a daemon killed during a conversion, and returns how many it removed.
pub fn remove_stale_folders(temp_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(temp_dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| name.strip_prefix(FOLDER_PREFIX)).and_then(|rest| {
            let (pid, _) = rest.split_once('-')?;
            pid.parse::<u32>().ok()
        }) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => removed += 1,
            Err(error) => warn!(folder = %entry.path().display(), %error, "cannot remove a stale office folder"),
        }
    }
    removed
}

/// Converts one Office document to PDF pages.
pub(crate) fn convert(office: Office, data: &[u8], limits: &Limits, page_budget: u32) -> Result<PdfPages, Refusal> {
    check_container(office, data)?;
    let input = Input { extension: extension(office), import_filter: None, convert_to: "pdf", label: office.label() };
    run_conversion(&input, data, limits, page_budget, NOT_AVAILABLE)
}

/// Converts an HTML attachment to PDF pages. The HTML is sanitized first, so LibreOffice
/// finds no external resource to fetch.
pub(crate) fn convert_html(data: &[u8], limits: &Limits, page_budget: u32) -> Result<PdfPages, Refusal> {
    let sanitized = html::sanitize(data)?;
    // Without an import filter LibreOffice opens HTML in Writer/Web, whose PDF export
    // (LibreOffice 7.4) drops headings and breaks pages early. The Writer import filter
    // lays the HTML out on ordinary pages.
    // The pages come out in the locale's default size (A4 under C.UTF-8) and are
    // fitted to `documents.paper` when the PDF is loaded, as for other Office files.
    let input = Input {
        extension: "html",
        import_filter: Some("HTML (StarWriter)"),
        convert_to: "pdf:writer_pdf_Export",
        label: "HTML",
    };
    run_conversion(&input, &sanitized, limits, page_budget, HTML_NOT_AVAILABLE)
}

/// The input file of one conversion and the import filter that opens it.
struct Input {
    /// File name extension of the input file.
    extension: &'static str,
    /// LibreOffice import filter, when the one it picks by content is not wanted.
    import_filter: Option<&'static str>,
    /// Argument of `--convert-to`: the output format, with the export filter when the
    /// import filter needs a matching one.
    convert_to: &'static str,
    /// Format name for the log.
    label: &'static str,
}

/// Runs the converter on `data` and checks its output as an attached PDF.
/// `not_available` is the reason given when the converter is not installed.
fn run_conversion(
    input: &Input,
    data: &[u8],
    limits: &Limits,
    page_budget: u32,
    not_available: &str,
) -> Result<PdfPages, Refusal> {
    let Some(program) = find_program(&limits.office_converter) else {
        info!(converter = %limits.office_converter, "office converter not found");
        return Err(Refusal::Rejected(not_available.to_string()));
    };
    let Some(_slot) = SLOTS.acquire(limits.office_timeout) else {
        warn!(wait = ?limits.office_timeout, "no office conversion slot became free in time");
        return Err(Refusal::Busy);
    };

    let folder = working_folder()
        .map_err(|error| internal(format!("creating a temporary folder failed: {error}")))?;
    let input_path = folder.path().join(format!("document.{}", input.extension));
    let output_dir = folder.path().join("out");
    std::fs::write(&input_path, data).map_err(|error| internal(format!("writing the document failed: {error}")))?;

    let mut command = Command::new(&program);
    command
        .arg(format!("-env:UserInstallation={}", file_url(&folder.path().join("profile"))))
        .args(["--headless", "--invisible", "--nologo", "--norestore", "--nodefault", "--nolockcheck"]);
    if let Some(filter) = input.import_filter {
        command.arg(format!("--infilter={filter}"));
    }
    command.args(["--convert-to", input.convert_to, "--outdir"]).arg(&output_dir).arg(&input_path);

    let started = Instant::now();
    let run = run_isolated(command, folder.path(), limits.office_timeout)
        .map_err(|error| internal(format!("starting {} failed: {error}", program.display())))?;
    let output = match run {
        Run::TimedOut => {
            warn!(timeout = ?limits.office_timeout, "office conversion timed out; converter killed");
            return Err(Refusal::Rejected(format!(
                "the conversion timed out after {} s",
                limits.office_timeout.as_secs()
            )));
        }
        Run::Exited { status, output } => {
            debug!(%status, elapsed = ?started.elapsed(), output = %output, "office converter exited");
            if !status.success() {
                warn!(%status, output = %output, "office conversion failed");
                return Err(Refusal::Rejected(format!(
                    "LibreOffice could not convert it ({status}); send it as a PDF"
                )));
            }
            output
        }
    };

    let pdf_path = output_dir.join("document.pdf");
    let pdf_data = match std::fs::read(&pdf_path) {
        Ok(bytes) => bytes,
        Err(error) => {
            warn!(%error, output = %output, "office converter wrote no PDF");
            return Err(Refusal::Rejected("LibreOffice could not convert it; send it as a PDF".to_string()));
        }
    };
    let pages = pdf::load(&pdf_data, limits, page_budget)?;
    if pages.pages.is_empty() {
        return Err(Refusal::Rejected("the converted document has no pages".to_string()));
    }
    info!(format = input.label, pages = pages.pages.len(), elapsed = ?started.elapsed(), "office document converted");
    Ok(pages)
}

/// Checks that the content has the container of its format: ZIP for OOXML and
/// OpenDocument, OLE2 for the binary Office formats, `{\rtf` for RTF. LibreOffice opens
/// anything else as plain text, so a damaged or mislabeled file would otherwise be faxed
/// as pages of raw bytes.
fn check_container(office: Office, data: &[u8]) -> Result<(), Refusal> {
    let valid = match office {
        Office::Docx | Office::Xlsx | Office::Pptx | Office::Odt | Office::Ods | Office::Odp => {
            data.starts_with(b"PK\x03\x04")
        }
        Office::Doc | Office::Xls | Office::Ppt | Office::Ole => {
            data.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1])
        }
        Office::Rtf => data.starts_with(b"{\\rtf"),
    };
    if valid {
        Ok(())
    } else {
        Err(Refusal::Rejected(format!("the file is not a valid {} document; it may be damaged", office.label())))
    }
}

/// The outcome of running the converter.
enum Run {
    /// It exited in time; `output` is the start of its stdout and stderr.
    Exited { status: ExitStatus, output: String },
    /// It ran past the timeout and its process group was killed.
    TimedOut,
}

/// Runs `command` in a process group of its own with HOME and TMPDIR inside `folder`,
/// waits at most `timeout`, and kills the whole group at the end, also when the first
/// process exited and left children behind.
fn run_isolated(mut command: Command, folder: &Path, timeout: Duration) -> std::io::Result<Run> {
    let home = folder.join("home");
    let tmp = folder.join("tmp");
    std::fs::create_dir_all(&home)?;
    std::fs::create_dir_all(&tmp)?;
    let log_path = folder.join("converter.log");
    let log = std::fs::File::create(&log_path)?;

    command
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    let mut child = command.spawn()?;
    let group = child.id();
    let deadline = Instant::now() + timeout;

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(POLL_INTERVAL),
            Err(error) => {
                kill_group(group, &mut child);
                return Err(error);
            }
        }
    };
    kill_group(group, &mut child);

    let output = read_start(&log_path);
    Ok(match status {
        Some(status) => Run::Exited { status, output },
        None => Run::TimedOut,
    })
}

/// Sends SIGKILL to every process in the group and reaps the group leader.
fn kill_group(group: u32, child: &mut Child) {
    let Ok(group) = libc::pid_t::try_from(group) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals a process group and touches no memory.
    // The group was created for this child by process_group(0), so it holds only the
    // converter and its descendants. ESRCH (group already gone) is expected.
    let result = unsafe { libc::kill(-group, libc::SIGKILL) };
    if result != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ESRCH) {
            warn!(group, %error, "killing the office converter's process group failed");
        }
    }
    if let Err(error) = child.wait() {
        warn!(group, %error, "reaping the office converter failed");
    }
}

fn read_start(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(MAX_LOGGED_OUTPUT as u64).read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// Finds the converter: a path containing `/` is used as is when it is a file, and a
/// bare name is looked up in PATH.
fn find_program(program: &str) -> Option<PathBuf> {
    if program.trim().is_empty() {
        return None;
    }
    if program.contains('/') {
        let path = PathBuf::from(program);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|folder| folder.join(program)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// Returns a `file://` URL for an absolute path, percent-encoding what a URL cannot
/// carry, as LibreOffice expects for `-env:UserInstallation`.
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => url.push(char::from(*byte)),
            _ => url.push_str(&format!("%{byte:02X}")),
        }
    }
    url
}

/// Returns the file name extension the input file gets. LibreOffice detects the format
/// by content, so the extension matters only for formats with weak signatures (RTF).
fn extension(office: Office) -> &'static str {
    match office {
        Office::Doc | Office::Ole => "doc",
        Office::Docx => "docx",
        Office::Xls => "xls",
        Office::Xlsx => "xlsx",
        Office::Ppt => "ppt",
        Office::Pptx => "pptx",
        Office::Odt => "odt",
        Office::Ods => "ods",
        Office::Odp => "odp",
        Office::Rtf => "rtf",
    }
}

fn internal(detail: String) -> Refusal {
    warn!(detail = %detail, "office conversion could not run");
    Refusal::Rejected("an internal error occurred while converting it".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_url_escapes() {
        assert_eq!(file_url(Path::new("/tmp/a b/profile")), "file:///tmp/a%20b/profile");
    }

    #[test]
    fn missing_converter_rejected() {
        let limits = Limits { office_converter: "/nonexistent/soffice".to_string(), ..Limits::default() };
        match convert(Office::Docx, b"PK\x03\x04", &limits, 10) {
            Err(Refusal::Rejected(reason)) => assert_eq!(reason, NOT_AVAILABLE),
            Err(Refusal::TooManyPages { .. } | Refusal::Busy) | Ok(_) => panic!("expected a rejection"),
        }
        match convert(Office::Doc, b"plain text", &limits, 10) {
            Err(Refusal::Rejected(reason)) => assert!(reason.starts_with("the file is not a valid Word"), "{reason}"),
            Err(Refusal::TooManyPages { .. } | Refusal::Busy) | Ok(_) => panic!("expected a rejection"),
        }
        assert_eq!(probe(&limits), None);
    }

    #[test]
    fn stale_folders_of_ended_processes_removed() {
        let temp = tempfile::tempdir().unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let ended = child.id();
        child.wait().unwrap();
        let own = std::process::id();
        for name in [format!("faxgate-office-{ended}-abc"), format!("faxgate-office-{own}-def"), "other".into()] {
            std::fs::create_dir_all(temp.path().join(name).join("profile")).unwrap();
        }

        assert_eq!(remove_stale_folders(temp.path()), 1);
        assert!(!temp.path().join(format!("faxgate-office-{ended}-abc")).exists());
        assert!(temp.path().join(format!("faxgate-office-{own}-def")).exists());
        assert!(temp.path().join("other").exists());
    }

    #[test]
    fn hanging_converter_killed_with_children() {
        let folder = tempfile::tempdir().unwrap();
        let script = folder.path().join("hang.sh");
        let pid_file = folder.path().join("pid");
        std::fs::write(&script, format!("#!/bin/sh\necho $$ > {}\nsleep 300 &\nsleep 300\n", pid_file.display()))
            .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let limits = Limits {
            office_converter: script.display().to_string(),
            office_timeout: Duration::from_secs(1),
            ..Limits::default()
        };

        let started = Instant::now();
        match convert(Office::Docx, b"PK\x03\x04", &limits, 10) {
            Err(Refusal::Rejected(reason)) => assert_eq!(reason, "the conversion timed out after 1 s"),
            Err(Refusal::TooManyPages { .. } | Refusal::Busy) | Ok(_) => panic!("expected a timeout"),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

        let group: libc::pid_t = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        // The reparented `sleep` may stay a zombie until init reaps it; a zombie runs no
        // code, so only processes in other states count. A process that got SIGKILL can
        // still show as running for a moment while the kernel ends it, so the group is
        // polled until it is empty or a generous deadline passes.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut left = live_members(group);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            left = live_members(group);
        }
        assert!(left.is_empty(), "processes left in group {group}: {left:?}");
    }

    /// Returns the PIDs of processes in process group `group` that are not zombies.
    fn live_members(group: libc::pid_t) -> Vec<String> {
        let mut members = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // Fields after the command name in parentheses: state, ppid, pgrp.
            let Some(after_name) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
                continue;
            };
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            if fields.len() > 2 && fields[2] == group.to_string() && fields[0] != "Z" {
                members.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        members
    }
}
