//! Configuration: the TOML file is read into [`raw::RawConfig`], which rejects unknown
//! keys, then checked and turned into [`Config`], whose values are ready to use (paths
//! resolved against `data_dir`, durations as [`Duration`], secrets read from their
//! `<key>_file`). Every error names the key and what to write instead.

mod checks;
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

/// Reads and checks the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(&text, path)
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

/// Formats a TOML error as one line: the line number, the table it is in, and the
/// message, which names an unknown key and lists the keys expected there.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().replace('\n', " ");
    let Some(span) = err.span() else {
        return message;
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| format!(" in {l}"))
        .unwrap_or_default();
    format!("line {line}{table}: {message}")
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
        assert!(err.contains("`gatway`"), "{err}");
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
