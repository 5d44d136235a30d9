//! PEM files and the crypto provider of both binaries, so that certificates load, and fail, the
//! same way everywhere: errors name the flag or field and the file, never the file's contents.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

static PROVIDER: LazyLock<Arc<CryptoProvider>> =
    LazyLock::new(|| Arc::new(rustls::crypto::ring::default_provider()));

/// The one crypto provider of the workspace (ring).
pub fn provider() -> Arc<CryptoProvider> {
    PROVIDER.clone()
}

/// A file that cannot be used, or TLS settings that cannot work together.
#[derive(Debug, thiserror::Error)]
#[error("{subject}: {reason}")]
pub struct TlsError {
    /// What: `certificate file `a.pem``, `--tls-cert `a.pem``, `listener `x``.
    pub subject: String,
    pub reason: String,
}

impl TlsError {
    /// An error about the file at `path`, which `what` (a field or flag) names.
    pub fn new(what: &str, path: &Path, reason: impl ToString) -> TlsError {
        TlsError {
            subject: format!("{what} `{}`", path.display()),
            reason: reason.to_string(),
        }
    }

    /// A private key that is not the one of its certificate.
    pub fn key_mismatch(cert: &Path, key: &Path, reason: impl std::fmt::Display) -> TlsError {
        TlsError {
            subject: format!("private key file `{}`", key.display()),
            reason: format!("does not fit certificate `{}`: {reason}", cert.display()),
        }
    }
}

/// A PEM file read whole, named by the flag or field that gave its path.
pub struct PemFile {
    pub path: PathBuf,
    what: &'static str,
    /// The file as read, for APIs that want PEM.
    pub pem: Vec<u8>,
}

impl PemFile {
    pub fn read(path: &Path, what: &'static str) -> Result<PemFile, TlsError> {
        let pem = crate::files::read(path, crate::files::MAX_SECRET)
            .map_err(|e| TlsError::new(what, path, e))?;
        Ok(PemFile {
            path: path.to_path_buf(),
            what,
            pem,
        })
    }

    fn error(&self, reason: impl ToString) -> TlsError {
        TlsError::new(self.what, &self.path, reason)
    }

    /// Every certificate of the file, in order; none is an error.
    pub fn certs(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certs = CertificateDer::pem_slice_iter(&self.pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(pem_reason(e)))?;
        if certs.is_empty() {
            return Err(self.error("no PEM certificate in the file"));
        }
        Ok(certs)
    }

    /// The private key of the file (PKCS#8, PKCS#1 or SEC1).
    pub fn key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(&self.pem).map_err(|e| self.error(pem_reason(e)))
    }

    /// The file's certificates as roots for verifying peers.
    pub fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in self.certs()? {
            roots.add(cert).map_err(|e| self.error(e))?;
        }
        Ok(roots)
    }
}

/// Every certificate of a PEM file, in order; none is an error.
pub fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    PemFile::read(path, what)?.certs()
}

/// The private key of a PEM file.
pub fn load_key(path: &Path, what: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PemFile::read(path, what)?.key()
}

/// CA certificates of a PEM file, for verifying peers.
pub fn load_roots(path: &Path, what: &'static str) -> Result<RootCertStore, TlsError> {
    PemFile::read(path, what)?.roots()
}

/// A PEM error without any of the file's bytes.
fn pem_reason(e: rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no PEM item of the expected kind in the file".to_string(),
        _ => "not valid PEM".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_flag_and_the_path_never_the_contents() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = load_certs(&missing, "--tls-cert").unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("--tls-cert `{}`: ", missing.display())),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem secret").unwrap();
        let err = load_certs(&empty, "--client-ca").unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let err = load_key(&empty, "--tls-key").unwrap_err().to_string();
        assert!(err.starts_with("--tls-key `"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
}
