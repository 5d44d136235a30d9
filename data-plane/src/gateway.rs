//! The running proxy's lifecycle: the bound ports, their accept loops, drain, readiness and
//! `apply`. What requests need lives in [`Services`], which the gateway holds.
//!
//! `apply` is the only way config changes: file reloads and control-plane snapshots both call
//! it. It reads the TLS files and binds new ports first, so a certificate that cannot be read
//! or a port that cannot be bound rejects the whole snapshot and nothing is half-applied; then [`Services::install`] compiles the routes and swaps the
//! runtime in one store, and removed ports stop accepting and drain. In-flight requests keep
//! the runtime they loaded.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tollgate_shared::config::model::FrontendPolicies;
use tollgate_shared::{Snapshot, SnapshotSource};

use crate::connection;
use crate::htpasswd::{HtpasswdError, HtpasswdFiles};
use crate::jwt::{JwksError, Verifiers};
use crate::mcp::openapi::{OpenApiError, OpenApiSpecs};
use crate::metrics::Metrics;
use crate::runtime::{Files, Runtime};
use crate::services::Services;
use crate::telemetry::Sinks;
use crate::tls::{Tls, TlsError};
use crate::workers;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Jwks(#[from] JwksError),
    #[error(transparent)]
    Htpasswd(#[from] HtpasswdError),
    #[error(transparent)]
    OpenApi(#[from] OpenApiError),
    #[error(transparent)]
    Credentials(#[from] crate::llm::credentials::CredentialFileError),
}

struct PortHandle {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct Gateway {
    pub services: Arc<Services>,
    listen_ip: IpAddr,
    ports: Mutex<HashMap<u16, PortHandle>>,
    ready: AtomicBool,
}

impl Gateway {
    pub fn new(name: &str, listen_ip: IpAddr, metrics: Arc<Metrics>) -> Arc<Gateway> {
        Arc::new(Gateway {
            services: Arc::new(Services::new(name, metrics, Sinks::stdout())),
            listen_ip,
            ports: Mutex::new(HashMap::new()),
            ready: AtomicBool::new(false),
        })
    }

    /// The config in force; requests call this once.
    pub fn runtime(&self) -> Option<Arc<Runtime>> {
        self.services.runtime()
    }

    /// True once a first config has been applied.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Makes `snapshot` the config in force, or changes nothing and says why.
    pub fn apply(
        self: &Arc<Self>,
        snapshot: Snapshot,
        source: SnapshotSource,
    ) -> Result<(), ApplyError> {
        let drain = snapshot.config.settings.drain_timeout;
        let wanted: Vec<u16> = snapshot.config.binds.iter().map(|b| b.port).collect();
        // Read the TLS, JWKS, htpasswd, OpenAPI and cloud credential files (fetched JWKS arrive
        // on their own) and bind first: the steps that can fail, so a failure leaves everything
        // as it was.
        let tls = Tls::load(&snapshot.config)?;
        let jwt = Verifiers::load(&snapshot.config, &self.services.jwks)?;
        let htpasswd = HtpasswdFiles::load(&snapshot.config)?;
        let openapi = OpenApiSpecs::load(&snapshot.config)?;
        crate::llm::credentials::check_files(&snapshot.config)?;
        let mut ports = self.ports.lock();
        let mut fresh = Vec::new();
        for port in wanted.iter().filter(|p| !ports.contains_key(p)) {
            let addr = SocketAddr::new(self.listen_ip, *port);
            // On error the sockets bound so far close as `fresh` drops.
            fresh.push((
                *port,
                bind(addr).map_err(|source| ApplyError::Bind { addr, source })?,
            ));
        }
        tollgate_shared::process::set_log_level(snapshot.config.settings.logging.level.as_deref());
        let removed: Vec<u16> = ports
            .keys()
            .filter(|p| !wanted.contains(p))
            .copied()
            .collect();
        let files = Files { tls, openapi };
        self.services
            .install(snapshot, source, files, &jwt, htpasswd);
        for (port, listener) in fresh {
            let stop = CancellationToken::new();
            let task = tokio::spawn(accept_loop(
                self.services.clone(),
                listener,
                port,
                stop.clone(),
                drain,
            ));
            ports.insert(port, PortHandle { stop, task });
        }
        for port in removed {
            if let Some(handle) = ports.remove(&port) {
                tracing::info!(port, "port removed from config; draining its connections");
                handle.stop.cancel();
            }
        }
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops accepting everywhere and waits (bounded by the drain timeout) for requests to end.
    pub async fn shutdown(&self) {
        let handles: Vec<PortHandle> = {
            let mut ports = self.ports.lock();
            ports.drain().map(|(_, h)| h).collect()
        };
        for h in &handles {
            h.stop.cancel();
        }
        self.services.mcp.end_streams();
        for h in handles {
            let _ = h.task.await;
        }
        self.services.mcp.shutdown().await;
        self.services.sinks.shutdown();
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Accepts connections on one port until `stop`, at most `frontendPolicies.tcp.maxConnections`
/// open at once (past it a new one is closed at once), then drains them.
async fn accept_loop(
    services: Arc<Services>,
    listener: TcpListener,
    port: u16,
    stop: CancellationToken,
    drain: Duration,
) {
    let connections = TaskTracker::new();
    let force_close = CancellationToken::new();
    let mut refusing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let runtime = services.runtime();
                    let default_frontend = FrontendPolicies::default();
                    let frontend = runtime
                        .as_ref()
                        .map_or(&default_frontend, |rt| &rt.snapshot.config.frontend_policies);
                    let policy = connection::ConnectionPolicy {
                        http: frontend.http,
                        keepalives: frontend.tcp.keepalives,
                        proxy_protocol: frontend.proxy_protocol,
                        network_authorization: runtime.as_ref().and_then(|rt| rt.network_authorization.clone()),
                    };
                    let limit = frontend.tcp.max_connections as usize;
                    let tls = runtime.as_ref().and_then(|rt| rt.tls.binds.get(&port).cloned());
                    if connections.len() >= limit {
                        if !refusing {
                            tracing::warn!(port, limit, "connection limit reached (frontendPolicies.tcp.maxConnections); closing new connections");
                            refusing = true;
                        }
                        drop(stream);
                        continue;
                    }
                    refusing = false;
                    let (services, drain, force_close) = (services.clone(), stop.clone(), force_close.clone());
                    workers::serve(&connections, stream, peer.ip(), move |stream| {
                        let accepted = connection::Accepted { stream, peer, port, drain, force_close };
                        connection::accept(services, accepted, policy, tls)
                    });
                }
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(port, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            port,
            "connections still open after the drain timeout; closing them"
        );
        force_close.cancel();
        connections.wait().await;
    }
}
