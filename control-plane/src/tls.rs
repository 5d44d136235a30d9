//! TLS for the control plane: its files, read once at start, and the admin API's listener
//! whose connections are already TLS-terminated; handshakes run concurrently, at most
//! [`MAX_HANDSHAKES`] at a time, so slow clients can neither stall `accept` nor pile up tasks.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tollgate_shared::tls::{PemFile, TlsError, provider};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Admin API handshakes in progress at once; further connections wait in the backlog.
pub const MAX_HANDSHAKES: usize = 256;

/// `--tls-cert`, `--tls-key` and `--client-ca`, read and checked once; errors name the flag
/// and the path.
pub struct TlsFiles {
    cert: PemFile,
    key: PemFile,
    client_ca: Option<PemFile>,
    chain: Vec<CertificateDer<'static>>,
    private_key: PrivateKeyDer<'static>,
}

impl TlsFiles {
    pub fn read(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<TlsFiles, TlsError> {
        let cert = PemFile::read(cert, "--tls-cert")?;
        let key = PemFile::read(key, "--tls-key")?;
        let client_ca = client_ca
            .map(|ca| PemFile::read(ca, "--client-ca"))
            .transpose()?;
        if let Some(ca) = &client_ca {
            ca.roots()?;
        }
        Ok(TlsFiles {
            chain: cert.certs()?,
            private_key: key.key()?,
            cert,
            key,
            client_ca,
        })
    }

    /// The admin API's rustls config: the chain and key, ALPN http/1.1.
    pub fn admin_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::new("--tls-cert", &self.cert.path, e))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.private_key.clone_key())
            .map_err(|e| TlsError::key_mismatch(&self.cert.path, &self.key.path, e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The config stream's TLS: the same identity, and `--client-ca` for client certificates.
    pub fn stream_config(&self) -> ServerTlsConfig {
        let config =
            ServerTlsConfig::new().identity(Identity::from_pem(&self.cert.pem, &self.key.pem));
        match &self.client_ca {
            Some(ca) => config.client_ca_root(Certificate::from_pem(&ca.pem)),
            None => config,
        }
    }
}

/// Accepted TLS connections, for `axum::serve`.
pub struct TlsListener {
    local: SocketAddr,
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: rustls::ServerConfig) -> std::io::Result<Self> {
        Self::with_limit(listener, config, MAX_HANDSHAKES)
    }

    fn with_limit(
        listener: TcpListener,
        config: rustls::ServerConfig,
        max_handshakes: usize,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, accepted) = mpsc::channel(64);
        let handshakes = Arc::new(Semaphore::new(max_handshakes));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = handshakes.clone().acquire_owned().await else {
                    return;
                };
                let Ok((tcp, peer)) = listener.accept().await else {
                    // Out of file descriptors, most likely: let some close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                    let done = handshake.await;
                    drop(permit);
                    if let Ok(Ok(tls)) = done {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener { local, accepted })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(conn) => conn,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use rustls::RootCertStore;
    use rustls::pki_types::ServerName;

    use super::*;

    #[tokio::test]
    async fn handshakes_beyond_the_bound_wait_until_one_ends() {
        let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert = issued.cert.der().clone();
        let key = PrivateKeyDer::try_from(issued.signing_key.serialize_der()).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut listener = TlsListener::with_limit(tcp, server, 2).unwrap();

        // Two clients that never say hello hold both permits.
        let silent = TcpStream::connect(addr).await.unwrap();
        let _silent = TcpStream::connect(addr).await.unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let third = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            connector.connect(name, tcp).await.map(drop)
        });
        let early = tokio::time::timeout(
            Duration::from_millis(300),
            axum::serve::Listener::accept(&mut listener),
        )
        .await;
        assert!(
            early.is_err(),
            "a third handshake ran while two were in progress"
        );

        drop(silent);
        tokio::time::timeout(
            Duration::from_secs(10),
            axum::serve::Listener::accept(&mut listener),
        )
        .await
        .expect("the third handshake runs once a permit is free");
        third.await.unwrap().unwrap();
    }
}
