//! TLS built from a config when it is applied: listener certificates and client-certificate
//! verification ([`listener`]), clients for `backendTLS` policies ([`backend`]). Files are read
//! here, from the proxy's own filesystem, so a file that cannot be read or parsed rejects the
//! config like any other error; errors name the file, never its contents.

pub mod backend;
pub mod listener;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tollgate_shared::config::model::Config;

pub use backend::BackendClients;
pub use listener::{BindTls, TlsSession};

/// A file a config names that cannot be used, or TLS settings that cannot work together.
#[derive(Debug, thiserror::Error)]
#[error("{subject}: {reason}")]
pub struct TlsError {
    /// What: `certificate file `a.pem``, `listener `x``.
    pub subject: String,
    pub reason: String,
}

impl TlsError {
    fn new(what: &str, path: &Path, reason: impl ToString) -> TlsError {
        TlsError {
            subject: format!("{what} `{}`", path.display()),
            reason: reason.to_string(),
        }
    }
}

/// The one crypto provider of the workspace.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM file, in order; none is an error.
pub fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::new(what, path, pem_reason(e)))?;
    if certs.is_empty() {
        return Err(TlsError::new(what, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsError::new("private key file", path, pem_reason(e)))
}

/// CA certificates for verifying peers.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "CA certificate file")? {
        roots
            .add(cert)
            .map_err(|e| TlsError::new("CA certificate file", path, e))?;
    }
    Ok(roots)
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

/// The names a certificate is issued for: DNS names, URIs, IP addresses and e-mail addresses,
/// as text; empty when the certificate cannot be parsed.
pub fn subject_alt_names(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(s) | GeneralName::URI(s) | GeneralName::RFC822Name(s) => {
                Some(s.to_string())
            }
            GeneralName::IPAddress(bytes) => ip_text(bytes),
            _ => None,
        })
        .collect()
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(ip.to_string())
}

/// What a config's TLS needs at run time, built when it is applied.
#[derive(Default)]
pub struct Tls {
    /// Per HTTPS bind: its listeners' certificates and handshake settings.
    pub binds: HashMap<u16, Arc<BindTls>>,
    /// One client per distinct `backendTLS` policy.
    pub backends: BackendClients,
}

impl Tls {
    /// Reads every certificate, key and root `config` names.
    pub fn load(config: &Config) -> Result<Tls, TlsError> {
        let mut binds = HashMap::new();
        for bind in &config.binds {
            if let Some(tls) = BindTls::load(bind, &config.frontend_policies.tls)? {
                binds.insert(bind.port, Arc::new(tls));
            }
        }
        Ok(Tls {
            binds,
            backends: BackendClients::load(config)?,
        })
    }
}
