//! `backendTLS`: one rustls client config per distinct policy, built when the config is
//! applied (its files read then), and the upstream clients that use it: the pooled HTTP client
//! for `host` and LLM backends, a `reqwest` client for remote MCP targets.

use std::collections::HashMap;
use std::sync::Arc;

use hyper_rustls::{FixedServerNameResolver, HttpsConnector, ResolveServerName};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tollgate_shared::config::model::{BackendKind, BackendTls, Config, Policies, Verification};
use tollgate_shared::tls::{TlsError, load_certs, load_key, load_roots, provider};

use super::subject_alt_names;
use crate::http::client::{self, HttpClient};

/// The clients of one `backendTLS` policy.
#[derive(Clone)]
pub struct PolicyClients {
    /// For `host` and LLM backends (`https` URIs).
    pub http: HttpClient,
    /// For remote MCP targets.
    pub mcp: reqwest::Client,
}

/// The clients of every distinct `backendTLS` policy of a config.
#[derive(Default)]
pub struct BackendClients {
    by_policy: HashMap<BackendTls, PolicyClients>,
}

impl BackendClients {
    /// A client pair per distinct policy (route level, and each provider's own over its
    /// route's), each built once.
    pub fn load(config: &Config) -> Result<BackendClients, TlsError> {
        let mut by_policy = HashMap::new();
        let routes = config
            .binds
            .iter()
            .flat_map(|b| &b.listeners)
            .flat_map(|l| &l.routes);
        for route in routes {
            let mut policies: Vec<&BackendTls> = route.policies.backend_tls.iter().collect();
            for backend in &route.backends {
                if let BackendKind::Ai(ai) = &backend.kind {
                    policies.extend(
                        ai.groups
                            .iter()
                            .flatten()
                            .filter_map(|p| p.backend_tls.as_ref()),
                    );
                }
            }
            for policy in policies {
                if !by_policy.contains_key(policy) {
                    by_policy.insert(policy.clone(), PolicyClients::build(policy)?);
                }
            }
        }
        Ok(BackendClients { by_policy })
    }

    /// The clients for `policies` (effective at the backend), looked up once when the config
    /// is compiled; `None` = the default clients.
    pub fn get(&self, policies: &Policies) -> Option<PolicyClients> {
        self.by_policy.get(policies.backend_tls.as_ref()?).cloned()
    }
}

impl PolicyClients {
    fn build(policy: &BackendTls) -> Result<PolicyClients, TlsError> {
        let config = Arc::new(client_config(policy)?);
        let names: Arc<dyn ResolveServerName + Send + Sync> = match sni(policy) {
            Some(name) => Arc::new(FixedServerNameResolver::new(name)),
            None => Arc::new(hyper_rustls::DefaultServerNameResolver::default()),
        };
        let https = HttpsConnector::new(client::connector(), config.clone(), true, names);
        let mcp = crate::mcp::reqwest_client((*config).clone()).map_err(|e| TlsError {
            subject: "backendTLS".into(),
            reason: e.to_string(),
        })?;
        Ok(PolicyClients {
            http: client::pooled(https),
            mcp,
        })
    }
}

/// The client config without a policy: the public web roots, no client certificate.
pub fn default_client_config() -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(web_roots())
        .with_no_client_auth()
}

fn web_roots() -> RootCertStore {
    RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned())
}

/// `hostname`, as the name sent in SNI.
fn sni(policy: &BackendTls) -> Option<ServerName<'static>> {
    ServerName::try_from(policy.hostname.clone()?).ok()
}

/// The rustls client config of a policy: its roots (or the public web roots), its checks,
/// its client certificate and ALPN.
fn client_config(policy: &BackendTls) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let roots = match &policy.root {
        Some(root) => load_roots(root, "CA certificate file")?,
        None => web_roots(),
    };
    let invalid = |reason: String| TlsError {
        subject: "backendTLS".into(),
        reason,
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    let verifier = Arc::new(BackendVerifier {
        webpki,
        verification: policy.verification,
        name: sni(policy),
        subject_alt_names: policy.subject_alt_names.clone(),
        provider: provider.clone(),
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&policy.cert, &policy.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(
                load_certs(cert, "client certificate file")?,
                load_key(key, "private key file")?,
            )
            .map_err(|e| TlsError::key_mismatch(cert, key, e))?,
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = match &policy.alpn {
        Some(alpn) => alpn.iter().map(|p| p.as_bytes().to_vec()).collect(),
        None => vec![b"http/1.1".to_vec()],
    };
    Ok(config)
}

/// The chain checked against the roots; then the name (`hostname` or the backend's host), any
/// of `subjectAltNames` instead, no name (`insecureHost`), or nothing at all (`insecure`).
#[derive(Debug)]
struct BackendVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    verification: Verification,
    name: Option<ServerName<'static>>,
    subject_alt_names: Vec<String>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for BackendVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.verification == Verification::Insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let name = self.name.as_ref().unwrap_or(server_name);
        let checked = self
            .webpki
            .verify_server_cert(end_entity, intermediates, name, ocsp, now);
        let any_name =
            self.verification == Verification::InsecureHost || !self.subject_alt_names.is_empty();
        match checked {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if any_name => {}
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        if !self.subject_alt_names.is_empty() {
            let presented = subject_alt_names(end_entity);
            let listed = |san: &String| {
                self.subject_alt_names
                    .iter()
                    .any(|want| want.eq_ignore_ascii_case(san))
            };
            if !presented.iter().any(listed) {
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName,
                ));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
