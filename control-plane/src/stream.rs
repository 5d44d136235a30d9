//! The config stream (DESIGN §8): one task per proxy, xDS-style ACK/NACK.
//!
//! Each push carries the gateway's newest version and a fresh nonce. An ACK or NACK counts
//! only when its nonce is the last one sent (stale ones are ignored); a NACKed version is not
//! resent on that stream. A proxy that says it applies deltas gets the version's delta when
//! its last ACK on this stream is the delta's base (so the first push on a stream, as after a
//! reconnect, is full); when it cannot apply one it asks to resync and gets a full push. A
//! full push is compressed to a proxy that says it decompresses. Keepalives let both sides
//! notice dead streams, and every send has a
//! timeout, so a proxy that stops reading loses its stream instead of holding anything up.
//!
//! Before anything is read, the caller's credential is checked ([`Authenticator`]); its hello
//! must name a gateway the credential allows and a file defines, or the stream is refused and
//! nothing is kept for it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tollgate_shared::proto::v1 as pb;
use tollgate_shared::proto::v1::config_stream_server::ConfigStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Authenticator;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::store::{Published, Store, Updates};

/// Longest gateway name or node id a hello may carry.
const MAX_NAME_LEN: usize = 253;

/// How long a caller has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

pub struct StreamService {
    pub auth: Authenticator,
    pub store: Arc<Store>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub keepalive: Duration,
    pub send_timeout: Duration,
}

type Outbound = Pin<Box<dyn Stream<Item = Result<pb::ServerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl ConfigStream for StreamService {
    type StreamStream = Outbound;

    async fn stream(
        &self,
        req: Request<Streaming<pb::ProxyMessage>>,
    ) -> Result<Response<Outbound>, Status> {
        let identity = self.auth.identify(&req)?;
        let address = req
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a: SocketAddr| a.to_string());
        let mut inbound = req.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(pb::ProxyMessage {
                kind: Some(pb::proxy_message::Kind::Hello(h)),
            }))) => h,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(Status::deadline_exceeded(format!(
                    "no hello within {}s",
                    HELLO_TIMEOUT.as_secs()
                )));
            }
            _ => {
                return Err(Status::invalid_argument(
                    "the first message must be a hello",
                ));
            }
        };
        if hello.gateway.is_empty() {
            return Err(Status::invalid_argument("hello.gateway is empty"));
        }
        if [&hello.gateway, &hello.node_id, &hello.build]
            .iter()
            .any(|s| s.len() > MAX_NAME_LEN)
        {
            return Err(Status::invalid_argument(format!(
                "hello.gateway, hello.node_id and hello.build are at most {MAX_NAME_LEN} bytes"
            )));
        }
        if !identity.gateways.allows(&hello.gateway) {
            tracing::warn!(identity = %identity.name, gateway = %hello.gateway, "a subscription outside the credential's gateways was refused");
            return Err(Status::permission_denied(format!(
                "`{}` may not subscribe to gateway `{}`",
                identity.name, hello.gateway
            )));
        }
        let Some(updates) = self.store.subscribe(&hello.gateway) else {
            return Err(Status::not_found(format!(
                "no file defines gateway `{}` on this control plane",
                hello.gateway
            )));
        };
        let registration = self
            .registry
            .register(&hello, &identity.name, address)
            .map_err(Status::resource_exhausted)?;
        let (tx, rx) = mpsc::channel(1);
        tracing::info!(node = %hello.node_id, gateway = %hello.gateway, identity = %identity.name, "proxy connected");
        let session = Session {
            id: registration.id,
            replaced: registration.replaced,
            gateway: hello.gateway,
            accepts_delta: hello.accepts_delta,
            accepts_compressed: hello.accepts_compressed,
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            keepalive: self.keepalive,
            send_timeout: self.send_timeout,
            tx,
        };
        tokio::spawn(session.run(inbound, updates));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Session {
    id: u64,
    replaced: Arc<tokio::sync::Notify>,
    gateway: String,
    accepts_delta: bool,
    accepts_compressed: bool,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    keepalive: Duration,
    send_timeout: Duration,
    tx: mpsc::Sender<Result<pb::ServerMessage, Status>>,
}

/// The last push on a stream.
struct Sent {
    version: String,
    nonce: String,
    at: Instant,
}

/// What a stream knows of its proxy.
#[derive(Default)]
struct Progress {
    sent: Option<Sent>,
    /// The version last ACKed on this stream: the base a delta may build on.
    acked: Option<String>,
    /// Not resent on this stream.
    nacked: Option<String>,
}

impl Session {
    async fn send(&self, kind: pb::server_message::Kind) -> bool {
        let msg = pb::ServerMessage { kind: Some(kind) };
        tokio::time::timeout(self.send_timeout, self.tx.send(Ok(msg)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The push of `p`: its delta when the proxy holds the delta's base, else the config,
    /// compressed when the proxy decompresses.
    fn push(&self, p: &Published, progress: &Progress, nonce: String) -> pb::Push {
        let delta = p.delta.as_ref().filter(|d| {
            self.accepts_delta && progress.acked.as_deref() == Some(d.base_version.as_str())
        });
        let compressed = delta.is_none() && self.accepts_compressed;
        pb::Push {
            version: p.version.clone(),
            nonce,
            config: if delta.is_some() || compressed {
                Bytes::new()
            } else {
                p.encoded.clone()
            },
            delta: delta.cloned(),
            compressed: compressed.then(|| p.compressed.clone()),
        }
    }

    async fn run(self, mut inbound: Streaming<pb::ProxyMessage>, mut updates: Updates) {
        self.metrics.connected_proxies.inc();
        let mut progress = Progress::default();
        let mut nonce = 0u64;
        let mut keepalive = tokio::time::interval(self.keepalive);
        keepalive.tick().await;
        loop {
            let current = updates.borrow_and_update().clone();
            if let Some(p) = current
                && progress
                    .sent
                    .as_ref()
                    .is_none_or(|s| s.version != p.version)
                && progress.nacked.as_deref() != Some(p.version.as_str())
            {
                nonce += 1;
                let push = self.push(&p, &progress, nonce.to_string());
                if !self.send(pb::server_message::Kind::Push(push)).await {
                    tracing::warn!(gateway = %self.gateway, "proxy is not reading its stream; closing it");
                    break;
                }
                self.metrics.pushes.inc();
                self.registry.sent(self.id, &p.version);
                #[expect(
                    clippy::disallowed_methods,
                    reason = "push-to-ack latency is a wall-time metric"
                )]
                let at = Instant::now();
                progress.sent = Some(Sent {
                    version: p.version.clone(),
                    nonce: nonce.to_string(),
                    at,
                });
            }
            tokio::select! {
                changed = updates.changed() => if changed.is_err() { break },
                msg = inbound.message() => match msg {
                    Ok(Some(m)) => self.handle(m, &mut progress),
                    Ok(None) | Err(_) => break,
                },
                () = self.replaced.notified() => {
                    tracing::info!(gateway = %self.gateway, "a newer stream of the same proxy replaced this one");
                    break;
                }
                _ = keepalive.tick() => if !self.send(pb::server_message::Kind::Keepalive(pb::Keepalive {})).await { break },
            }
        }
        self.registry.unregister(self.id);
        self.metrics.connected_proxies.dec();
    }

    fn handle(&self, msg: pb::ProxyMessage, progress: &mut Progress) {
        use pb::proxy_message::Kind;
        let current = |sent: &Option<Sent>, nonce: &str| {
            sent.as_ref()
                .filter(|s| s.nonce == nonce)
                .map(|s| (s.version.clone(), s.at))
        };
        match msg.kind {
            Some(Kind::Ack(a)) => {
                if let Some((version, at)) = current(&progress.sent, &a.nonce) {
                    self.registry.acked(self.id, &version);
                    self.metrics.acks.inc();
                    self.metrics.push_to_ack.observe(at.elapsed().as_secs_f64());
                    progress.acked = Some(version);
                }
            }
            Some(Kind::Nack(n)) => {
                if let Some((version, _)) = current(&progress.sent, &n.nonce) {
                    let detail = crate::registry::bounded(&n.error_detail);
                    tracing::warn!(gateway = %self.gateway, %version, error = %detail, "proxy rejected a snapshot");
                    self.registry.nacked(self.id, &version, detail);
                    self.metrics.nacks.inc();
                    progress.nacked = Some(version);
                }
            }
            Some(Kind::Resync(r)) => {
                if current(&progress.sent, &r.nonce).is_some() {
                    let reason = crate::registry::bounded(&r.reason);
                    tracing::info!(gateway = %self.gateway, %reason, "proxy asked for a full push");
                    // With no base and nothing sent, the loop pushes the newest version in full.
                    progress.sent = None;
                    progress.acked = None;
                }
            }
            Some(Kind::Status(st)) => self.registry.status_report(self.id, &st),
            Some(Kind::Hello(_)) | None => {}
        }
    }
}
