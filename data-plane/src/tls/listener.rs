//! HTTPS binds: the handshake picks a listener by SNI, then serves that listener's
//! certificate under its versions, ALPN and client-certificate rule.
//!
//! Each listener's certificate sits in a [`CertCell`] behind an `ArcSwap`: a renewed pair on
//! disk is swapped in whole (`source::certs` watches the files), so new connections see it and
//! a handshake never mixes an old certificate with a new key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, ServerConfig, SignatureScheme, SupportedProtocolVersion};
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;
use tollgate_shared::config::model::{Bind, FrontendTls, Listener, TlsVersion};
use tollgate_shared::tls::{TlsError, load_certs, load_key, load_roots, provider};

use super::parsed_subject_alt_names;
use crate::proxy::route::host_rank;
use crate::runtime::HostPattern;
use crate::telemetry::record::ClientIdentity;

/// A listener's certificate and key, and the roots its clients' certificates must chain to
/// (`tls.root`), each swapped whole when its files are renewed.
pub struct CertCell {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub root: Option<PathBuf>,
    current: ArcSwap<CertifiedKey>,
    /// With `root`: the verifier built from the roots, and the roots it was built from.
    clients: Option<ArcSwap<ClientRoots>>,
}

/// Client-certificate roots and their verifier.
struct ClientRoots {
    roots: Vec<rustls::pki_types::TrustAnchor<'static>>,
    verifier: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for CertCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertCell")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl CertCell {
    fn load(cert: &Path, key: &Path, root: Option<&Path>) -> Result<CertCell, TlsError> {
        Ok(CertCell {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            root: root.map(Path::to_path_buf),
            current: ArcSwap::from_pointee(certified_key(cert, key)?),
            clients: root
                .map(|r| client_roots(r).map(ArcSwap::from_pointee))
                .transpose()?,
        })
    }

    /// Reads the files again; on success new handshakes use them, on error the last good
    /// ones stay (all or nothing). `Ok(false)` when nothing changed.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let fresh = certified_key(&self.cert, &self.key)?;
        let roots = match (&self.root, &self.clients) {
            (Some(root), Some(clients)) => {
                Some(client_roots(root)?).filter(|r| r.roots != clients.load().roots)
            }
            _ => None,
        };
        let renewed = fresh.cert != self.current.load().cert;
        if renewed {
            self.current.store(Arc::new(fresh));
        }
        let rerooted = roots.is_some();
        if let (Some(roots), Some(clients)) = (roots, &self.clients) {
            clients.store(Arc::new(roots));
        }
        Ok(renewed || rerooted)
    }
}

impl ResolvesServerCert for CertCell {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn client_roots(root: &Path) -> Result<ClientRoots, TlsError> {
    let store = load_roots(root, "CA certificate file")?;
    let roots = store.roots.clone();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider())
        .build()
        .map_err(|e| TlsError {
            subject: format!("CA certificate file {}", root.display()),
            reason: format!("client certificate roots: {e}"),
        })?;
    Ok(ClientRoots { roots, verifier })
}

/// The verifier of a listener with `root`, following its renewals. Root hints are not sent
/// (they would have to outlive a swap): clients offer the certificate they are given.
#[derive(Debug)]
struct RenewedRoots(Arc<CertCell>);

impl RenewedRoots {
    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        let clients = self
            .0
            .clients
            .as_ref()
            .expect("built only for listeners with roots");
        clients.load().verifier.clone()
    }
}

impl ClientCertVerifier for RenewedRoots {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

fn certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = load_certs(cert, "certificate file")?;
    let key_der = load_key(key, "private key file")?;
    CertifiedKey::from_der(chain, key_der, &provider())
        .map_err(|e| TlsError::key_mismatch(cert, key, e))
}

/// One HTTPS listener of a bind.
struct ListenerTls {
    name: Arc<str>,
    hostname: Option<HostPattern>,
    config: Arc<ServerConfig>,
    cert: Arc<CertCell>,
}

/// The TLS side of one HTTPS bind.
pub struct BindTls {
    listeners: Vec<ListenerTls>,
    handshake_timeout: Duration,
}

/// Which listener a TLS connection was accepted for and who the client proved to be; every
/// request of the connection carries it as an extension.
#[derive(Debug, Clone)]
pub struct TlsSession {
    pub listener: Arc<str>,
    pub identity: Option<Arc<ClientIdentity>>,
}

/// The identity of a verified client certificate.
fn identity(cert: &rustls::pki_types::CertificateDer<'_>) -> Option<ClientIdentity> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(ClientIdentity {
        subject: parsed.subject().to_string(),
        issuer: parsed.issuer().to_string(),
        subject_alt_names: parsed_subject_alt_names(&parsed),
    })
}

/// Why a client connection got no TLS session.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no TLS handshake within {0:?} (frontendPolicies.tls.handshakeTimeout)")]
    Timeout(Duration),
    #[error("no listener for server name `{0}`")]
    UnknownName(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Vec<&'static SupportedProtocolVersion> {
    [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| min.is_none_or(|m| *v >= m) && max.is_none_or(|m| *v <= m))
    .map(|(_, v)| v)
    .collect()
}

/// The TLS of `listener` if it is HTTPS: its certificate read, its server config built.
fn listener_tls(
    listener: &Listener,
    frontend: &FrontendTls,
) -> Result<Option<ListenerTls>, TlsError> {
    let Some(tls) = &listener.tls else {
        return Ok(None);
    };
    let invalid = |reason: String| TlsError {
        subject: format!("listener `{}`", listener.name),
        reason,
    };
    let (min, max) = frontend.versions(tls);
    let versions = versions(min, max);
    if versions.is_empty() {
        return Err(invalid(
            "its TLS versions and frontendPolicies.tls leave no version to speak".into(),
        ));
    }
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions)
        .map_err(|e| invalid(e.to_string()))?;
    let cert = Arc::new(CertCell::load(&tls.cert, &tls.key, tls.root.as_deref())?);
    let builder = if tls.root.is_some() {
        builder.with_client_cert_verifier(Arc::new(RenewedRoots(cert.clone())))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_cert_resolver(cert.clone());
    config.alpn_protocols = frontend
        .alpn
        .ids()
        .into_iter()
        .map(|id| id.as_bytes().to_vec())
        .collect();
    Ok(Some(ListenerTls {
        name: listener.name.as_str().into(),
        hostname: listener.hostname.as_deref().map(HostPattern::new),
        config: Arc::new(config),
        cert,
    }))
}

impl BindTls {
    /// The TLS of `bind` if its listeners are HTTPS (validation makes them all or none).
    pub fn load(bind: &Bind, frontend: &FrontendTls) -> Result<Option<BindTls>, TlsError> {
        let mut listeners = Vec::new();
        for l in &bind.listeners {
            listeners.extend(listener_tls(l, frontend)?);
        }
        Ok((!listeners.is_empty()).then_some(BindTls {
            listeners,
            handshake_timeout: frontend.handshake_timeout,
        }))
    }

    /// The certificate cells of this bind, for the file watcher.
    pub fn cells(&self) -> impl Iterator<Item = &Arc<CertCell>> {
        self.listeners.iter().map(|l| &l.cert)
    }

    /// The listener for a client's SNI: exact hostname, then wildcard, then one without a
    /// hostname; without SNI, a listener without hostname or else the first.
    fn listener_for(&self, sni: Option<&str>) -> Result<&ListenerTls, HandshakeError> {
        let Some(name) = sni.map(str::to_ascii_lowercase) else {
            return Ok(self
                .listeners
                .iter()
                .find(|l| l.hostname.is_none())
                .unwrap_or(&self.listeners[0]));
        };
        self.listeners
            .iter()
            .filter_map(|l| host_rank(l.hostname.as_slice(), &name).map(|r| (r, l)))
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, l)| l)
            .ok_or(HandshakeError::UnknownName(name))
    }

    /// The handshake of one client connection, within the handshake timeout.
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(TlsStream<TcpStream>, TlsSession), HandshakeError> {
        let handshake = async {
            let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
            let listener = self.listener_for(start.client_hello().server_name())?;
            let stream = start.into_stream(listener.config.clone()).await?;
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(identity)
                .map(Arc::new);
            Ok((
                stream,
                TlsSession {
                    listener: listener.name.clone(),
                    identity,
                },
            ))
        };
        tokio::time::timeout(self.handshake_timeout, handshake)
            .await
            .map_err(|_| HandshakeError::Timeout(self.handshake_timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_range() {
        assert_eq!(versions(None, None).len(), 2);
        assert_eq!(
            versions(Some(TlsVersion::Tls13), None),
            vec![&rustls::version::TLS13]
        );
        assert_eq!(
            versions(None, Some(TlsVersion::Tls12)),
            vec![&rustls::version::TLS12]
        );
        assert!(versions(Some(TlsVersion::Tls13), Some(TlsVersion::Tls12)).is_empty());
    }
}
