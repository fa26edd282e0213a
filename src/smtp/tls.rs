//! The server certificate for STARTTLS and implicit TLS, loaded from PEM files and
//! replaceable at run time (the daemon calls [`TlsConfig::reload`] on SIGHUP).
//!
//! Each connection takes the configuration current at its handshake, so a reload
//! affects new handshakes only and never an open session.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A shared, reloadable TLS server configuration. Clones share the same certificate.
#[derive(Clone)]
pub struct TlsConfig {
    inner: Arc<Inner>,
}

struct Inner {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

/// The cause is part of each message and deliberately not a `source`, so that a caller
/// printing the whole chain (`{:#}`) shows it once.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate file {path}: {}", describe_pem_error(.cause))]
    Certificate { path: PathBuf, cause: pem::Error },
    #[error("no certificate in {path}; expected PEM blocks starting with -----BEGIN CERTIFICATE-----")]
    NoCertificate { path: PathBuf },
    #[error("cannot read TLS private key file {path}: {}", describe_pem_error(.cause))]
    Key { path: PathBuf, cause: pem::Error },
    #[error("TLS certificate {cert} and key {key} cannot be used: {cause}")]
    Unusable { cert: PathBuf, key: PathBuf, cause: rustls::Error },
}

impl TlsConfig {
    /// Loads the certificate chain (leaf first) and the private key from PEM files.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<TlsConfig, TlsError> {
        let config = build(cert_path, key_path)?;
        Ok(TlsConfig {
            inner: Arc::new(Inner {
                cert_path: cert_path.to_path_buf(),
                key_path: key_path.to_path_buf(),
                current: RwLock::new(config),
            }),
        })
    }

    /// Reads the files again and replaces the configuration for new handshakes. On
    /// error the previous configuration stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.inner.cert_path, &self.inner.key_path)?;
        // A poisoned lock still holds a complete Arc, so it is safe to replace.
        let mut current = self.inner.current.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = config;
        Ok(())
    }

    /// Creates an acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.server_config())
    }

    /// Returns the current configuration.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let current = self.inner.current.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&current)
    }
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert_path", &self.inner.cert_path)
            .field("key_path", &self.inner.key_path)
            .finish_non_exhaustive()
    }
}

fn build(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certificate_error = |cause| TlsError::Certificate { path: cert_path.to_path_buf(), cause };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(certificate_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(certificate_error)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path.to_path_buf() });
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|cause| TlsError::Key { path: key_path.to_path_buf(), cause })?;
    let unusable = |cause| TlsError::Unusable { cert: cert_path.to_path_buf(), key: key_path.to_path_buf(), cause };
    // NOTE: rustls 0.23.48 deprecates the ring provider because it lacks post-quantum
    // key exchange. It is kept because the crate builds rustls with ring only.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(unusable)?;
    Ok(Arc::new(config))
}

/// Formats a PEM error without the "I/O error" prefix, which adds nothing to an OS error.
pub(crate) fn describe_pem_error(err: &pem::Error) -> String {
    match err {
        pem::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}
