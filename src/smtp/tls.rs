//! The server certificate for STARTTLS and implicit TLS, loaded from PEM files and
//! replaceable at run time (the daemon calls [`TlsConfig::reload`] on SIGHUP).
//!
//! Each connection takes the configuration current at its handshake, so a reload
//! affects new handshakes only and never an open session.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
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

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate file {path}: {source}")]
    Certificate { path: PathBuf, source: rustls_pki_types::pem::Error },
    #[error("no certificate in {path}; expected PEM blocks starting with -----BEGIN CERTIFICATE-----")]
    NoCertificate { path: PathBuf },
    #[error("cannot read TLS private key file {path}: {source}")]
    Key { path: PathBuf, source: rustls_pki_types::pem::Error },
    #[error("TLS certificate {cert} and key {key} cannot be used: {source}")]
    Unusable { cert: PathBuf, key: PathBuf, source: rustls::Error },
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
    let certificate_error = |source| TlsError::Certificate { path: cert_path.to_path_buf(), source };
    let chain = CertificateDer::pem_file_iter(cert_path)
        .map_err(certificate_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(certificate_error)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path.to_path_buf() });
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|source| TlsError::Key { path: key_path.to_path_buf(), source })?;
    let unusable = |source| TlsError::Unusable { cert: cert_path.to_path_buf(), key: key_path.to_path_buf(), source };
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
