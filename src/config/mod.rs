//! Configuration: the TOML file is read into [`raw::RawConfig`], which rejects unknown
//! keys, then checked and turned into [`Config`], whose values are ready to use (paths
//! resolved against `data_dir`, durations as [`Duration`], secrets read from their
//! `<key>_file`). Every error names the key and what to write instead.

mod checks;
mod print;
mod raw;
mod settings;

use std::path::{Path, PathBuf};

pub use settings::*;

/// The file read when neither `--config` nor `$FAXGATE_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/faxgate/faxgate.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: invalid value for `{key}`: {message}")]
    Invalid { path: PathBuf, key: String, message: String },
}

/// A value error before the file path is known; [`load`] adds the path.
#[derive(Debug)]
pub(crate) struct InvalidKey {
    pub key: String,
    pub message: String,
}

impl InvalidKey {
    pub(crate) fn new(key: &str, message: impl Into<String>) -> Self {
        InvalidKey { key: key.to_string(), message: message.into() }
    }
}

/// Reads and checks the configuration file at `path`. Relative paths in the file are
/// resolved against its absolute folder, so the settings do not depend on the working
/// directory once loaded.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    parse(&text, &absolute)
}

/// Parses configuration text; `path` is used in messages and to resolve relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(text).map_err(|err| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: describe_toml_error(text, &err),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    settings::validate(raw, base).map_err(|invalid| ConfigError::Invalid {
        path: path.to_path_buf(),
        key: invalid.key,
        message: invalid.message,
    })
}

impl Config {
    /// Loads every certificate, key and CA file named in the configuration, as the
    /// daemon does at start-up. It is a step of its own, not part of [`load`], so that
    /// commands that never use these files work for a user who cannot read them.
    /// `path` is the configuration file, named in the error.
    pub fn check_files(&self, path: &Path) -> Result<(), ConfigError> {
        checks::check_files(self).map_err(|invalid| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: invalid.key,
            message: invalid.message,
        })
    }
}

/// Formats a TOML error as one line: the line number, the table it is in, and the
/// message, which names an unknown key or table and lists the names expected there,
/// or names the key whose value has the wrong type and the type expected.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().replace('\n', " ");
    let Some(span) = err.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_number = text[..start].matches('\n').count() + 1;
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let table = enclosing_table(&text[..line_start]);

    // An unknown table is reported at its own header line, as an unknown field of the
    // table above it.
    if let Some(header) = table_header(line) {
        if let Some(expected) = message.strip_prefix("unknown field ").and_then(|rest| rest.split_once(", expected ")) {
            let names = expected.1.trim_start_matches("one of ").replace('`', "");
            return format!("line {line_number}: unknown table [{header}]; expected one of {names}");
        }
        return format!("line {line_number} in [{header}]: {message}");
    }

    if let Some((_, expected)) = message.strip_prefix("invalid type: ").and_then(|rest| rest.split_once(", expected "))
        && let Some((key, _)) = line.split_once('=')
    {
        let key = key.trim().trim_matches('"');
        let full_key = match &table {
            Some(table) => format!("{table}.{key}"),
            None => key.to_string(),
        };
        let value = text.get(span.clone()).unwrap_or("").trim();
        return format!(
            "line {line_number}: invalid value {value} for {full_key}; expected {}",
            describe_expected(expected, key)
        );
    }

    match table {
        Some(table) => format!("line {line_number} in [{table}]: {message}"),
        None => format!("line {line_number}: {message}"),
    }
}

/// Returns the name of the table a line belongs to, from the last header in `before`.
/// An array of tables, such as `[[smtp.listeners]]`, is named with the index of its
/// current entry, as in `smtp.listeners[1]`.
fn enclosing_table(before: &str) -> Option<String> {
    let header = before.lines().rev().map(str::trim).find_map(table_header)?;
    let array_header = format!("[[{header}]]");
    let entries = before.lines().filter(|l| l.trim().starts_with(&array_header)).count();
    if entries == 0 { Some(header.to_string()) } else { Some(format!("{header}[{}]", entries - 1)) }
}

/// Returns the dotted name in a `[table]` or `[[array]]` header line.
fn table_header(line: &str) -> Option<&str> {
    let line = line.split('#').next()?.trim();
    let inner = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]"));
    let inner = inner.or_else(|| line.strip_prefix('[').and_then(|l| l.strip_suffix(']')))?.trim();
    // A line of a multi-line array, such as `["a", "b"]`, is not a header.
    let is_key = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    (!inner.is_empty() && inner.chars().all(is_key)).then_some(inner)
}

/// Replaces serde's Rust type names with the TOML form a user writes. For a whole
/// number the example fits `key`: sizes are in bytes and durations in seconds, so a
/// value such as `"25M"` or `"5m"` gets an example in the unit the key takes.
fn describe_expected(expected: &str, key: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => {
            let is_duration = ["_timeout", "_lifetime", "_after", "_grace"].iter().any(|end| key.ends_with(end));
            if key.ends_with("_size") {
                "a whole number of bytes without quotes, such as 26214400 for 25 MiB".to_string()
            } else if is_duration {
                "a whole number of seconds without quotes, such as 300 for five minutes".to_string()
            } else {
                "a whole number without quotes, such as 20".to_string()
            }
        }
        "i8" | "i16" | "i32" | "i64" | "isize" => "a number without quotes".to_string(),
        "a string" => "a string in double quotes".to_string(),
        "a boolean" => "true or false".to_string(),
        "a sequence" => "a list in square brackets, such as [\"a\", \"b\"]".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("/etc/faxgate/faxgate.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = parse_str("").unwrap();
        assert_eq!(config.smtp.max_message_size, 26_214_400);
        assert_eq!(config.smtp.max_recipients, 20);
        assert_eq!(config.fax.denied_prefixes, vec!["+1900", "+1976"]);
        assert_eq!(config.gateway.data_dir, PathBuf::from("/var/lib/faxgate"));
        assert_eq!(config.fax.outbox_dir, PathBuf::from("/var/lib/faxgate/outbox"));
    }

    #[test]
    fn example_file_is_valid() {
        let text = include_str!("../../config.example.toml");
        let config = parse(text, Path::new("config.example.toml")).unwrap();
        assert_eq!(config.gateway.data_dir, PathBuf::from("./faxgate-data"));
        assert_eq!(config.smtp.listeners.len(), 1);
        assert_eq!(config.fax.backend, FaxBackendKind::Outbox);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse_str("[gateway]\nhostname = \"a.example\"\ncolour = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`colour`"), "{text}");
        assert!(text.contains("line 3 in [gateway]"), "{text}");
    }

    #[test]
    fn unknown_table_is_named() {
        let err = parse_str("[gatway]\n").unwrap_err().to_string();
        assert!(err.contains("line 1: unknown table [gatway]; expected one of gateway, smtp,"), "{err}");
    }

    #[test]
    fn unknown_table_after_others_is_named() {
        let err = parse_str("[gateway]\nhostname = \"a.example\"\n\n[sender]\ncheck = \"both\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 4: unknown table [sender]; expected one of"), "{err}");
        assert!(err.contains("senders"), "{err}");
        assert!(!err.contains("in ["), "{err}");
    }

    #[test]
    fn unknown_nested_table_is_named() {
        let err = parse_str("[fax.outbx]\ndir = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("line 1: unknown table [fax.outbx]; expected one of"), "{err}");
        assert!(err.contains("outbox"), "{err}");
    }

    #[test]
    fn named_values_accepted_in_any_case() {
        let config = parse_str("[documents]\npaper = \"A4\"\nbody = \"Cover\"\n").unwrap();
        assert_eq!(config.documents.paper, Paper::A4);
        assert_eq!(config.documents.body, BodyMode::Cover);
        let err = parse_str("[documents]\npaper = \"A5\"\n").unwrap_err().to_string();
        assert!(err.contains("\"A5\" is not one of \"letter\", \"a4\""), "{err}");
    }

    #[test]
    fn wrong_value_type_names_key() {
        let err = parse_str("[smtp]\nmax_message_size = \"25MB\"\n").unwrap_err().to_string();
        assert!(err.contains("line 2: invalid value \"25MB\" for smtp.max_message_size"), "{err}");
        assert!(err.contains("expected a whole number of bytes without quotes, such as 26214400"), "{err}");
        assert!(!err.contains("u64"), "{err}");
    }

    #[test]
    fn wrong_value_type_example_fits_the_unit() {
        let err = parse_str("[smtp]\ncommand_timeout = \"5m\"\n").unwrap_err().to_string();
        assert!(err.contains("expected a whole number of seconds without quotes, such as 300"), "{err}");
        let err = parse_str("[smtp]\nmax_recipients = \"20\"\n").unwrap_err().to_string();
        assert!(err.contains("expected a whole number without quotes, such as 20"), "{err}");
        assert!(!err.contains("seconds"), "{err}");
        assert!(!err.contains("bytes"), "{err}");
    }

    #[test]
    fn wrong_value_type_in_listener_names_entry() {
        let err = parse_str(
            "[[smtp.listeners]]\naddress = \"127.0.0.1:2525\"\n\n[[smtp.listeners]]\naddress = 25\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 5: invalid value 25 for smtp.listeners[1].address"), "{err}");
        assert!(err.contains("expected a string in double quotes"), "{err}");
    }

    #[test]
    fn listener_values_are_checked() {
        let err = parse_str(
            "[[smtp.listeners]]\naddress = \"127.0.0.1:2525\"\ntls = \"always\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("smtp.listeners[0].tls"), "{err}");
        assert!(err.contains("\"always\""), "{err}");
    }

    #[test]
    fn tls_listener_needs_certificate() {
        let err = parse_str(
            "[[smtp.listeners]]\naddress = \"127.0.0.1:2525\"\ntls = \"starttls\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("smtp.tls_cert"), "{err}");
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let text = format!("[api]\npassword_file = \"{}\"\n", secret.display());
        let config = parse_str(&text).unwrap();
        assert_eq!(config.api.password.expose(), "s3cret");
    }

    #[test]
    fn secret_and_secret_file_conflict() {
        let err = parse_str("[api]\npassword = \"a\"\npassword_file = \"/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("api.password"), "{err}");
    }

    #[test]
    fn secrets_are_masked_when_printed() {
        let config = parse_str("[fax.sinch]\nkey_secret = \"topsecret\"\n").unwrap();
        let printed = config.to_masked_toml();
        assert!(!printed.contains("topsecret"), "{printed}");
        assert!(printed.contains("key_secret = \"********\""), "{printed}");
    }

    #[test]
    fn printed_config_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let example = include_str!("../../config.example.toml");
        let text = format!(
            "{example}\n[[smtp.listeners]]\naddress = \"127.0.0.1:2526\"\nallowed_clients = [\"192.0.2.0/24\", \"::1\"]\n"
        )
        .replace("ca_file = \"\"", "ca_file = \"ca.pem\"")
        .replace("key_secret = \"\"", &format!("key_secret_file = {:?}", secret.display().to_string()));
        std::fs::write(dir.path().join("ca.pem"), test_certificate_pem()).unwrap();
        let path = dir.path().join("faxgate.toml");

        let first = parse(&text, &path).unwrap();
        let printed = first.to_masked_toml();
        assert!(printed.contains("[fax.outbox]\ndir = \"outbox\""), "{printed}");
        assert!(printed.contains("key_secret_file = "), "{printed}");
        assert!(!printed.contains("outbox_dir"), "{printed}");

        let second = parse(&printed, &path).unwrap();
        assert_eq!(second.to_masked_toml(), printed);
        assert_eq!(format!("{second:?}"), format!("{first:?}"));
        assert_eq!(second.fax.sinch.key_secret.expose(), "s3cret");
    }

    #[test]
    fn printed_config_masks_inline_secrets() {
        let path = Path::new("/etc/faxgate/faxgate.toml");
        let first = parse("[api]\npassword = \"topsecret\"\n", path).unwrap();
        let printed = first.to_masked_toml();
        assert!(printed.contains("password = \"********\""), "{printed}");
        let second = parse(&printed, path).unwrap();
        assert_eq!(second.to_masked_toml(), printed);
    }

    fn test_certificate_pem() -> String {
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap().cert.pem()
    }

    #[test]
    fn relative_data_dir_follows_config_file() {
        let config = parse(
            "[gateway]\ndata_dir = \"./faxgate-data\"\n",
            Path::new("/srv/fax/config.toml"),
        )
        .unwrap();
        assert_eq!(config.gateway.data_dir, PathBuf::from("/srv/fax/./faxgate-data"));
    }

    #[test]
    fn bad_region_and_prefix_are_named() {
        let err = parse_str("[gateway]\ndefault_region = \"XX\"\n").unwrap_err().to_string();
        assert!(err.contains("gateway.default_region"), "{err}");
        let err = parse_str("[fax]\ndenied_prefixes = [\"1900\"]\n").unwrap_err().to_string();
        assert!(err.contains("fax.denied_prefixes"), "{err}");
    }
}
