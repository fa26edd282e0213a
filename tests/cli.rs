//! Runs the real `faxgate` binary against a temporary configuration (a copy of
//! `config.example.toml` with `data_dir` in a temporary folder) and checks its output,
//! its stderr lines and its exit statuses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use faxgate::mappings::Mappings;
use faxgate::store::Store;

/// A temporary folder with a configuration file whose store lives inside it.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let example = std::fs::read_to_string(example_config()).unwrap();
        let data_dir = dir.path().join("data");
        let text = example.replace(
            "data_dir = \"./faxgate-data\"",
            &format!("data_dir = {:?}", data_dir.display().to_string()),
        );
        assert_ne!(text, example, "config.example.toml no longer sets data_dir = \"./faxgate-data\"");
        let config = dir.path().join("faxgate.toml");
        std::fs::write(&config, text).unwrap();
        Setup { dir, config }
    }

    /// Runs `faxgate ARGS --config <this config>`.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        let config = self.config.to_str().unwrap();
        all.extend(["--config", config]);
        faxgate(&all, stdin, None)
    }

    fn database(&self) -> PathBuf {
        self.dir.path().join("data").join("faxgate.db")
    }
}

fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml")
}

/// Runs the binary with `args`, `stdin` as its standard input, and `$FAXGATE_CONFIG`
/// set to `config_env` or removed.
fn faxgate(args: &[&str], stdin: &str, config_env: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_faxgate"));
    command
        .args(args)
        .env_remove("FAXGATE_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = config_env {
        command.env("FAXGATE_CONFIG", path);
    }
    let mut child = command.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Asserts the exit status and that stderr is one `faxgate: ` line containing each
/// of `fragments`.
fn assert_error(output: &Output, status: i32, fragments: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(status), "stderr: {err}");
    assert!(err.starts_with("faxgate: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for fragment in fragments {
        assert!(err.contains(fragment), "expected {fragment:?} in {err}");
    }
}

fn assert_success(output: &Output) {
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(output));
}

#[test]
fn emails_round_trip() {
    let setup = Setup::new();

    let added = setup.run(&["emails", "add", "Alice@Example.com", "--number", "+14155550100:send", "--number", "4155550101"]);
    assert_success(&added);
    assert_eq!(stdout(&added), "added alice@example.com  +14155550100:send +14155550101:both\n");

    let added = setup.run(&["emails", "add", "bob@example.com", "--number", "1-415-555-0100:receive"]);
    assert_success(&added);

    let listed = setup.run(&["emails", "list"]);
    assert_success(&listed);
    assert_eq!(
        stdout(&listed),
        "alice@example.com  +14155550100:send +14155550101:both\nbob@example.com  +14155550100:receive\n"
    );

    let filtered = setup.run(&["emails", "list", "--number", "+14155550101"]);
    assert_success(&filtered);
    assert_eq!(stdout(&filtered), "alice@example.com  +14155550100:send +14155550101:both\n");

    let set = setup.run(&["emails", "set", "bob@example.com", "--number", "+14155550101:both", "--number", "+14155550100:send"]);
    assert_success(&set);
    assert_eq!(stdout(&set), "updated bob@example.com  +14155550101:both +14155550100:send\n");

    let password = setup.run_with_stdin(&["emails", "password", "alice@example.com"], "correct horse\nsecond line\n");
    assert_success(&password);
    assert_eq!(stdout(&password), "password set for alice@example.com\n");
    assert!(!stdout(&password).contains("correct horse"));
    assert!(!stderr(&password).contains("correct horse"));

    let removed = setup.run(&["emails", "remove", "BOB@example.com"]);
    assert_success(&removed);
    assert_eq!(stdout(&removed), "removed bob@example.com\n");

    let listed = setup.run(&["emails", "list"]);
    assert_success(&listed);
    assert_eq!(stdout(&listed), "alice@example.com  +14155550100:send +14155550101:both\n");
}

#[tokio::test]
async fn password_is_argon2_and_verifies() {
    let setup = Setup::new();
    assert_success(&setup.run(&["emails", "add", "alice@example.com", "--number", "+14155550100"]));
    // A CRLF line ending is not part of the password.
    assert_success(&setup.run_with_stdin(&["emails", "password", "alice@example.com"], "s3cret pw\r\n"));

    let store = Store::open(&setup.database()).await.unwrap();
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM mappings WHERE email = 'alice@example.com'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("s3cret"));

    let mappings = Mappings::new(store);
    assert!(mappings.verify_password("alice@example.com", "s3cret pw").await.unwrap());
    assert!(!mappings.verify_password("alice@example.com", "s3cret pw\r").await.unwrap());
    assert!(!mappings.verify_password("alice@example.com", "wrong").await.unwrap());
}

#[test]
fn password_empty_or_unmapped() {
    let setup = Setup::new();
    assert_success(&setup.run(&["emails", "add", "alice@example.com", "--number", "+14155550100"]));

    let empty = setup.run_with_stdin(&["emails", "password", "alice@example.com"], "\n");
    assert_error(&empty, 2, &["password for alice@example.com is empty"]);
    let no_input = setup.run_with_stdin(&["emails", "password", "alice@example.com"], "");
    assert_error(&no_input, 2, &["is empty"]);

    let unmapped = setup.run_with_stdin(&["emails", "password", "bob@example.com"], "pw\n");
    assert_error(&unmapped, 1, &["bob@example.com has no mapping", "faxgate emails add"]);
}

#[test]
fn add_existing_email_fails() {
    let setup = Setup::new();
    assert_success(&setup.run(&["emails", "add", "alice@example.com", "--number", "+14155550100"]));
    let again = setup.run(&["emails", "add", "ALICE@example.com", "--number", "+14155550101"]);
    assert_error(
        &again,
        1,
        &["faxgate: alice@example.com already has a mapping; use \"faxgate emails set\" to change its numbers"],
    );
}

#[test]
fn set_or_remove_unknown_email_fails() {
    let setup = Setup::new();
    let set = setup.run(&["emails", "set", "carol@example.com", "--number", "+14155550100"]);
    assert_error(&set, 1, &["carol@example.com has no mapping", "faxgate emails add"]);
    let removed = setup.run(&["emails", "remove", "carol@example.com"]);
    assert_error(&removed, 1, &["carol@example.com has no mapping", "faxgate emails list"]);
}

#[test]
fn invalid_number_is_named() {
    let setup = Setup::new();
    let output = setup.run(&["emails", "add", "alice@example.com", "--number", "555"]);
    assert_error(&output, 2, &["invalid fax number \"555\"", "E.164", "+14155550100"]);
    let output = setup.run(&["emails", "add", "alice@example.com", "--number", "+15550001111:send"]);
    assert_error(&output, 2, &["invalid fax number \"+15550001111\"", "not a valid phone number"]);
    let output = setup.run(&["emails", "list", "--number", "fax"]);
    assert_error(&output, 2, &["invalid fax number \"fax\""]);
    // Nothing was stored by the failed commands.
    assert_eq!(stdout(&setup.run(&["emails", "list"])), "");
}

#[test]
fn unknown_permission_is_named() {
    let setup = Setup::new();
    let output = setup.run(&["emails", "add", "alice@example.com", "--number", "+14155550100:sned"]);
    assert_error(&output, 2, &["invalid permission \"sned\"", "send, receive or both"]);
}

#[test]
fn duplicate_number_is_rejected() {
    let setup = Setup::new();
    let output = setup.run(&["emails", "add", "alice@example.com", "--number", "+14155550100:send", "--number", "4155550100"]);
    assert_error(&output, 2, &["+14155550100 is given more than once"]);
}

#[test]
fn invalid_email_is_named() {
    let setup = Setup::new();
    let output = setup.run(&["emails", "add", "alice.example.com", "--number", "+14155550100"]);
    assert_error(&output, 2, &["invalid email address \"alice.example.com\"", "alice@example.com"]);
}

#[test]
fn usage_errors_exit_2() {
    let setup = Setup::new();
    let missing_number = setup.run(&["emails", "add", "alice@example.com"]);
    assert_eq!(missing_number.status.code(), Some(2));
    assert!(stderr(&missing_number).contains("--number"), "{}", stderr(&missing_number));
    let unknown_command = setup.run(&["emails", "rename"]);
    assert_eq!(unknown_command.status.code(), Some(2));
    let no_command = faxgate(&[], "", None);
    assert_eq!(no_command.status.code(), Some(2));
}

#[test]
fn check_config_example_masks_secrets() {
    let example = example_config();
    let output = faxgate(&["check-config", "--config", example.to_str().unwrap()], "", None);
    assert_success(&output);
    let printed = stdout(&output);
    assert!(printed.contains("[gateway]"), "{printed}");
    assert!(printed.contains("hostname = \"fax.example.com\""), "{printed}");
    assert!(printed.contains("max_message_pixels = 1000000000"), "{printed}");

    let setup = Setup::new();
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let with_secrets = text
        .replace("key_secret = \"\"", "key_secret = \"sinch-topsecret\"")
        .replace("username = \"admin\"\npassword = \"\"", "username = \"admin\"\npassword = \"api-topsecret\"");
    assert!(with_secrets.contains("api-topsecret"), "config.example.toml changed its [api] lines");
    std::fs::write(&setup.config, with_secrets).unwrap();
    let output = setup.run(&["check-config"]);
    assert_success(&output);
    let printed = stdout(&output);
    assert!(!printed.contains("topsecret"), "{printed}");
    assert!(printed.contains("key_secret = \"********\""), "{printed}");
}

#[test]
fn unknown_config_key_is_named() {
    let setup = Setup::new();
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replace("[senders]\n", "[senders]\ncolour = \"blue\"\n");
    std::fs::write(&setup.config, text).unwrap();
    for args in [&["check-config"][..], &["emails", "list"][..]] {
        let output = setup.run(args);
        assert_error(&output, 2, &["`colour`", "faxgate.toml"]);
        assert_eq!(stdout(&output), "");
    }
}

#[test]
fn missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.toml");
    let missing_text = missing.to_str().unwrap();

    let output = faxgate(&["check-config", "--config", missing_text], "", None);
    assert_error(&output, 2, &[missing_text, "not found", "--config"]);

    let output = faxgate(&["emails", "list"], "", Some(&missing));
    assert_error(&output, 2, &[missing_text, "$FAXGATE_CONFIG", "--config"]);

    // An empty $FAXGATE_CONFIG falls back to the default path.
    let default = Path::new("/etc/faxgate/faxgate.toml");
    if !default.exists() {
        let output = faxgate(&["check-config"], "", Some(Path::new("")));
        assert_error(&output, 2, &["/etc/faxgate/faxgate.toml (the default path) not found", "--config"]);
    }
}

#[test]
fn config_from_environment() {
    let setup = Setup::new();
    assert_success(&setup.run(&["emails", "add", "alice@example.com", "--number", "+14155550100"]));
    let output = faxgate(&["emails", "list"], "", Some(&setup.config));
    assert_success(&output);
    assert_eq!(stdout(&output), "alice@example.com  +14155550100:both\n");
}

#[test]
fn list_prints_more_than_one_page() {
    let setup = Setup::new();
    // Adding more mappings than one page contains through the binary would take too
    // long, so they go in through the library.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = Store::open(&setup.database()).await.unwrap();
        let mappings = Mappings::new(store);
        let number: faxgate::number::Number = "+14155550100".parse().unwrap();
        for i in 0..1001 {
            let email = format!("user{i:04}@example.com");
            mappings.add(&email, &[(number.clone(), Default::default())]).await.unwrap();
        }
    });
    let output = setup.run(&["emails", "list"]);
    assert_success(&output);
    let printed = stdout(&output);
    assert_eq!(printed.lines().count(), 1001);
    assert_eq!(printed.lines().last(), Some("user1000@example.com  +14155550100:both"));
}

#[tokio::test]
async fn emails_work_while_store_open() {
    let setup = Setup::new();
    // The test process holds the store open as the daemon would, with a read
    // transaction in progress while the CLI writes.
    let store = Store::open(&setup.database()).await.unwrap();
    let mappings = Mappings::new(store.clone());
    let mut reader = store.pool().begin().await.unwrap();
    let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mappings").fetch_one(&mut *reader).await.unwrap();
    assert_eq!(before, 0);

    let added = setup.run(&["emails", "add", "alice@example.com", "--number", "+14155550100"]);
    assert_success(&added);
    reader.rollback().await.unwrap();

    let mapping = mappings.get("alice@example.com").await.unwrap().expect("the CLI's mapping is visible");
    assert_eq!(mapping.numbers_display(), "+14155550100:both");
    assert_success(&setup.run(&["emails", "remove", "alice@example.com"]));
    assert_eq!(mappings.get("alice@example.com").await.unwrap(), None);
}

#[tokio::test]
async fn password_at_terminal_is_not_echoed() {
    use std::io::Write;

    let setup = Setup::new();
    assert_success(&setup.run(&["emails", "add", "alice@example.com", "--number", "+14155550100"]));
    // script(1) gives the command a pseudo-terminal, which echoes typed input unless
    // the program turns echo off.
    let command = format!(
        "{} emails password alice@example.com --config {}",
        env!("CARGO_BIN_EXE_faxgate"),
        setup.config.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux is installed");
    // Type only once the prompt is shown, which is after the program asked for input.
    let mut screen_out = child.stdout.take().unwrap();
    let mut screen = String::new();
    let mut buffer = [0u8; 256];
    while !screen.contains("Password for") {
        let n = std::io::Read::read(&mut screen_out, &mut buffer).unwrap();
        assert!(n > 0, "no prompt before the end of output: {screen}");
        screen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.stdin.take().unwrap().write_all(b"typed secret\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut screen_out, &mut rest).unwrap();
    screen.push_str(&rest);
    let status = child.wait().unwrap();
    assert!(status.success(), "{screen}");
    assert!(screen.contains("Password for alice@example.com: "), "{screen}");
    assert!(!screen.contains("typed secret"), "the password was echoed: {screen}");

    let mappings = Mappings::new(Store::open(&setup.database()).await.unwrap());
    assert!(mappings.verify_password("alice@example.com", "typed secret").await.unwrap());
}

impl Setup {
    /// Rewrites the configuration file with `from` replaced by `to`.
    fn edit(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert!(text.contains(from), "config.example.toml no longer contains {from:?}");
        std::fs::write(&self.config, text.replacen(from, to, 1)).unwrap();
    }
}

/// Asserts that `check-config` and `run` both fail with status 2, naming `key` once and
/// each of `fragments`.
fn assert_config_error(setup: &Setup, key: &str, fragments: &[&str]) {
    for args in [&["check-config"][..], &["run"][..]] {
        let output = setup.run(args);
        assert_error(&output, 2, fragments);
        let err = stderr(&output);
        assert_eq!(err.matches(key).count(), 1, "expected {key:?} once in {err}");
        assert_eq!(stdout(&output), "", "{args:?}");
    }
}

#[test]
fn missing_tls_certificate_is_config_error() {
    let setup = Setup::new();
    let missing = setup.dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    setup.edit(
        "# tls_cert = \"/etc/faxgate/tls/fullchain.pem\"\n# tls_key = \"/etc/faxgate/tls/privkey.pem\"",
        &format!("tls_cert = {missing:?}\ntls_key = {missing:?}"),
    );
    assert_config_error(&setup, "smtp.tls_cert", &[missing]);
    let err = stderr(&setup.run(&["check-config"]));
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    // Commands that never use the certificate still work.
    assert_success(&setup.run(&["emails", "list"]));
}

#[test]
fn unreadable_tls_key_is_config_error() {
    let setup = Setup::new();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = setup.dir.path().join("cert.pem");
    let key = setup.dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, "not a key\n").unwrap();
    setup.edit(
        "# tls_cert = \"/etc/faxgate/tls/fullchain.pem\"\n# tls_key = \"/etc/faxgate/tls/privkey.pem\"",
        &format!("tls_cert = {:?}\ntls_key = {:?}", cert.to_str().unwrap(), key.to_str().unwrap()),
    );
    assert_config_error(&setup, "smtp.tls_key", &[key.to_str().unwrap()]);

    // A valid pair passes, and a bad certificate names the certificate key.
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    assert_success(&setup.run(&["check-config"]));
    std::fs::write(&cert, "not a certificate\n").unwrap();
    assert_config_error(&setup, "smtp.tls_cert", &[cert.to_str().unwrap()]);
}

#[test]
fn webhooks_tls_files_are_checked() {
    let setup = Setup::new();
    let missing = setup.dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    setup.edit(
        "[webhooks]\n",
        &format!("[webhooks]\ntls_cert = {missing:?}\ntls_key = {missing:?}\n"),
    );
    assert_config_error(&setup, "webhooks.tls_cert", &[missing]);
}

#[test]
fn invalid_relay_ca_file_is_config_error() {
    let setup = Setup::new();
    let ca = setup.dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate\n").unwrap();
    setup.edit("ca_file = \"\"", &format!("ca_file = {:?}", ca.to_str().unwrap()));
    // The maildir backend does not read the CA file.
    assert_success(&setup.run(&["check-config"]));
    setup.edit("backend = \"maildir\"", "backend = \"smtp\"");
    assert_config_error(&setup, "relay.ca_file", &[ca.to_str().unwrap(), "BEGIN CERTIFICATE"]);

    std::fs::remove_file(&ca).unwrap();
    assert_config_error(&setup, "relay.ca_file", &["No such file or directory"]);
}

#[test]
fn shared_listener_address_names_both_keys() {
    let setup = Setup::new();
    setup.edit("address = \"127.0.0.1:8025\"", "address = \"127.0.0.1:8080\"");
    assert_config_error(&setup, "api.address", &["webhooks.address", "127.0.0.1:8080"]);

    let setup = Setup::new();
    setup.edit("address = \"127.0.0.1:2525\"", "address = \"0.0.0.0:8025\"");
    assert_config_error(&setup, "api.address", &["smtp.listeners[0].address"]);
}

#[test]
fn check_config_output_reads_back() {
    let example = example_config();
    let output = faxgate(&["check-config", "--config", example.to_str().unwrap()], "", None);
    assert_success(&output);
    let printed = stdout(&output);
    assert!(printed.contains("[fax.outbox]"), "{printed}");
    assert!(printed.contains("ca_file = \"\""), "{printed}");

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("printed.toml");
    std::fs::write(&copy, &printed).unwrap();
    let output = faxgate(&["check-config", "--config", copy.to_str().unwrap()], "", None);
    assert_success(&output);
    assert_eq!(stdout(&output), printed);
}
