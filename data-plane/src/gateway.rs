//! The running proxy: the one `ArcSwap` of compiled config, the bound ports, and `apply`.
//!
//! `apply` is the only way config changes: file reloads and (later) control-plane snapshots
//! both call it. It binds new ports first, so a port that cannot be bound rejects the whole
//! snapshot and nothing is half-applied; then it compiles the routes (taking rate-limit
//! buckets from the store that outlives configs), swaps the runtime in one store, and lets
//! removed ports stop accepting and drain. In-flight requests keep the runtime they loaded.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tollgate_shared::{Snapshot, SnapshotSource};

use crate::mcp::Sessions;
use crate::metrics::Metrics;
use crate::proxy::{self, upstream::HttpClient};
use crate::ratelimit::{BucketKey, RateLimits};
use crate::runtime::Runtime;
use crate::telemetry::{Sinks, Telemetry};

/// Largest request head (request line and headers) accepted; larger ones get 431.
const MAX_HEAD_SIZE: usize = 64 * 1024;
/// A client must send its request head within this time.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

struct PortHandle {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

pub struct Gateway {
    /// Gateway name, the `gateway` metric label.
    pub name: Arc<str>,
    pub metrics: Arc<Metrics>,
    pub client: HttpClient,
    /// Rate-limit buckets, kept across applies.
    pub rate_limits: RateLimits,
    /// MCP sessions and their children, kept across applies.
    pub mcp: Arc<Sessions>,
    /// The access-log writer and the trace exporter, kept across applies.
    pub sinks: Sinks,
    listen_ip: IpAddr,
    runtime: ArcSwapOption<Runtime>,
    ports: Mutex<HashMap<u16, PortHandle>>,
    ready: AtomicBool,
}

impl Gateway {
    pub fn new(name: &str, listen_ip: IpAddr, metrics: Arc<Metrics>) -> Arc<Gateway> {
        Arc::new(Gateway {
            name: name.into(),
            mcp: Arc::new(Sessions::new(metrics.clone())),
            sinks: Sinks::new(),
            metrics,
            client: proxy::upstream::client(),
            rate_limits: RateLimits::default(),
            listen_ip,
            runtime: ArcSwapOption::empty(),
            ports: Mutex::new(HashMap::new()),
            ready: AtomicBool::new(false),
        })
    }

    /// The config in force; requests call this once.
    pub fn runtime(&self) -> Option<Arc<Runtime>> {
        self.runtime.load_full()
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
        let mut ports = self.ports.lock();
        // Bind first: the only step that can fail, so a failure leaves everything as it was.
        let mut fresh = Vec::new();
        for port in wanted.iter().filter(|p| !ports.contains_key(p)) {
            let addr = SocketAddr::new(self.listen_ip, *port);
            // On error the sockets bound so far close as `fresh` drops.
            fresh.push((
                *port,
                bind(addr).map_err(|source| ApplyError::Bind { addr, source })?,
            ));
        }
        let mut seen = Vec::new();
        let settings = &snapshot.config.settings;
        tollgate_shared::process::set_log_level(settings.logging.level.as_deref());
        let telemetry = Telemetry::compile(settings, &self.sinks, &self.metrics);
        let runtime = Runtime::compile(
            snapshot,
            source,
            telemetry,
            &mut |listener, route, position, limit| {
                let key = BucketKey {
                    gateway: self.name.to_string(),
                    listener: listener.to_string(),
                    route: route.to_string(),
                    position,
                    kind: limit.kind,
                };
                self.rate_limits.bucket(key, limit, &mut seen)
            },
        );
        self.rate_limits.retain(&seen);
        let removed: Vec<u16> = ports
            .keys()
            .filter(|p| !wanted.contains(p))
            .copied()
            .collect();
        let runtime = Arc::new(runtime);
        self.runtime.store(Some(runtime.clone()));
        self.metrics.config_info.reset();
        self.metrics
            .config_info
            .with_label_values(&[&runtime.snapshot.version, &runtime.source.to_string()])
            .set(1);
        self.mcp.reconcile(&runtime);
        for (port, listener) in fresh {
            let stop = CancellationToken::new();
            let task = tokio::spawn(accept_loop(
                self.clone(),
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
        self.mcp.end_streams();
        for h in handles {
            let _ = h.task.await;
        }
        self.mcp.shutdown().await;
        self.sinks.shutdown();
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

async fn accept_loop(
    gw: Arc<Gateway>,
    listener: TcpListener,
    port: u16,
    stop: CancellationToken,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let force_close = CancellationToken::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let watcher = graceful.watcher();
                    let force_close = force_close.clone();
                    let gw = gw.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let gw = gw.clone();
                            async move { Ok::<_, Infallible>(proxy::serve(gw, req, port, peer).await) }
                        });
                        let mut builder = auto::Builder::new(TokioExecutor::new());
                        builder
                            .http1()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEAD_TIMEOUT)
                            .max_buf_size(MAX_HEAD_SIZE);
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        tokio::select! {
                            _ = watcher.watch(conn) => {}
                            _ = force_close.cancelled() => {}
                        }
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
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            port,
            "connections still open after the drain timeout; closing them"
        );
        force_close.cancel();
    }
}
