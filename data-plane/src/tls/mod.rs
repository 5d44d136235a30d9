//! TLS built from a config when it is applied: listener certificates and client-certificate
//! verification ([`listener`]), clients for `backendTLS` policies ([`backend`]). Files are read
//! here, from the proxy's own filesystem, so a file that cannot be read or parsed rejects the
//! config like any other error; errors name the file, never its contents.

pub mod backend;
pub mod listener;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use tollgate_shared::config::model::Config;
pub use tollgate_shared::tls::TlsError;
use x509_parser::certificate::X509Certificate;

pub use backend::{BackendClients, PolicyClients};
pub use listener::{BindTls, TlsSession};

/// The names a certificate is issued for: DNS names, URIs, IP addresses and e-mail addresses,
/// as text; empty when the certificate cannot be parsed.
pub fn subject_alt_names(cert: &CertificateDer<'_>) -> Vec<String> {
    match x509_parser::parse_x509_certificate(cert.as_ref()) {
        Ok((_, parsed)) => parsed_subject_alt_names(&parsed),
        Err(_) => Vec::new(),
    }
}

/// [`subject_alt_names`] of a certificate already parsed.
fn parsed_subject_alt_names(parsed: &X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
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
