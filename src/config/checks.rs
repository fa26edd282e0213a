//! Checks that need more than single values: no two listeners may share an address,
//! checked during validation, and the files named in the configuration must be
//! readable PEM, checked by `run` and `check-config` through [`Config::check_files`].

use std::net::SocketAddr;
use std::path::Path;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::InvalidKey;
use super::settings::{Config, RelayBackendKind};
use crate::smtp::{TlsConfig, TlsError, describe_pem_error};

/// Loads every certificate, key and CA file that the daemon loads at start-up with
/// these settings.
pub(super) fn check_files(config: &Config) -> Result<(), InvalidKey> {
    check_tls_pair("smtp", config.smtp.tls_cert.as_deref(), config.smtp.tls_key.as_deref())?;
    check_tls_pair("webhooks", config.webhooks.tls_cert.as_deref(), config.webhooks.tls_key.as_deref())?;
    // The maildir backend never reads the CA file, so it does not stop the daemon.
    if config.relay.backend == RelayBackendKind::Smtp
        && let Some(path) = &config.relay.ca_file
    {
        check_ca_file(path)?;
    }
    Ok(())
}

/// Rejects two listeners that cannot both be bound: the same port on the same IP
/// address, or on any address when either of them is the unspecified address.
pub(super) fn check_addresses(config: &Config) -> Result<(), InvalidKey> {
    let mut listeners: Vec<(String, SocketAddr)> = Vec::new();
    for (i, listener) in config.smtp.listeners.iter().enumerate() {
        listeners.push((format!("smtp.listeners[{i}].address"), listener.address));
    }
    listeners.push(("webhooks.address".to_string(), config.webhooks.address));
    listeners.push(("api.address".to_string(), config.api.address));

    for (i, (first_key, first)) in listeners.iter().enumerate() {
        for (second_key, second) in &listeners[i + 1..] {
            if overlaps(*first, *second) {
                return Err(InvalidKey::new(
                    second_key,
                    format!(
                        "{second} is also used by {first_key} ({first}); give each listener its own address or port"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Port 0 requests any free port from the system, so it never collides.
fn overlaps(first: SocketAddr, second: SocketAddr) -> bool {
    first.port() != 0
        && first.port() == second.port()
        && (first.ip() == second.ip() || first.ip().is_unspecified() || second.ip().is_unspecified())
}

fn check_tls_pair(table: &str, cert: Option<&Path>, key: Option<&Path>) -> Result<(), InvalidKey> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(());
    };
    TlsConfig::load(cert, key).map(drop).map_err(|err| {
        let name = match err {
            TlsError::Key { .. } => "tls_key",
            TlsError::Certificate { .. } | TlsError::NoCertificate { .. } | TlsError::Unusable { .. } => "tls_cert",
        };
        InvalidKey::new(&format!("{table}.{name}"), err.to_string())
    })
}

fn check_ca_file(path: &Path) -> Result<(), InvalidKey> {
    let invalid = |message: String| InvalidKey::new("relay.ca_file", message);
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|err| invalid(format!("cannot read {}: {}", path.display(), describe_pem_error(&err))))?;
    if certificates.is_empty() {
        return Err(invalid(format!(
            "no certificate in {}; expected PEM blocks starting with -----BEGIN CERTIFICATE-----",
            path.display()
        )));
    }
    Ok(())
}
