//! Snapshots from `tollgate-cp` over the config stream (DESIGN §8).
//!
//! One background task owns the stream: it says hello, applies every push through the same
//! `Gateway::apply` as a file reload (so buckets and connections survive exactly as there),
//! answers ACK or NACK, and reports bucket levels every few seconds. A push may be a delta
//! from the config last applied on this stream: rebuilt into the full encoded config first,
//! or, when that fails, answered with a resync (the server then pushes in full). A full push
//! may come compressed: a block that does not decompress within the bound is NACKed like
//! any malformed snapshot. When the stream breaks it
//! reconnects with jittered exponential backoff, reset only after a message arrives; the last
//! good config keeps serving meanwhile.
//!
//! The stream is TLS for `https://` URLs (never downgraded), optionally with a client
//! certificate and a bearer token; plain `http://` needs `--insecure-control-plane`. A push
//! must also pass the proxy's [`PushAllowList`] before it is applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use rand::Rng;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tollgate_shared::config::model::{Config, RateLimitKind};
use tollgate_shared::config::redact;
use tollgate_shared::files;
use tollgate_shared::proto::v1 as pb;
use tollgate_shared::proto::v1::config_stream_client::ConfigStreamClient;
use tollgate_shared::{ProcessEnv, Snapshot, SnapshotSource};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::gateway::Gateway;
use crate::ratelimit::LISTED_CALLERS;
use crate::source::allow::PushAllowList;
use crate::source::{Outcome, report};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(15);
const STATUS_EVERY: Duration = Duration::from_secs(3);

/// How to reach the control plane and prove who this proxy is.
pub struct Connection {
    pub url: String,
    endpoint: Endpoint,
    /// Sent as `authorization: Bearer …`.
    token: Option<MetadataValue<Ascii>>,
}

/// The proxy's control-plane flags (no `Debug`: it holds the token).
pub struct ConnectionOptions {
    pub url: String,
    /// `--insecure-control-plane`: a plaintext `http://` URL is accepted.
    pub insecure: bool,
    /// `--control-plane-ca`: the CA that signed the control plane's certificate (else the
    /// public web roots).
    pub ca: Option<PathBuf>,
    /// `--control-plane-cert` and `--control-plane-key`: this proxy's client certificate.
    pub identity: Option<(PathBuf, PathBuf)>,
    pub token: Option<String>,
}

impl Connection {
    /// Refuses a plaintext URL without `insecure`, and TLS settings on a plaintext URL.
    pub fn new(opts: ConnectionOptions) -> anyhow::Result<Connection> {
        let read = |flag: &str, path: &Path| {
            files::read(path, files::MAX_SECRET)
                .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))
        };
        let mut endpoint = Endpoint::from_shared(opts.url.clone())
            .map_err(|e| anyhow::anyhow!("--control-plane `{}`: {e}", redact::url(&opts.url)))?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        match opts.url.split_once("://").map(|(scheme, _)| scheme) {
            Some("https") => {
                let mut tls = ClientTlsConfig::new();
                tls = match &opts.ca {
                    Some(ca) => {
                        tls.ca_certificate(Certificate::from_pem(read("--control-plane-ca", ca)?))
                    }
                    None => tls.with_webpki_roots(),
                };
                if let Some((cert, key)) = &opts.identity {
                    tls = tls.identity(Identity::from_pem(
                        read("--control-plane-cert", cert)?,
                        read("--control-plane-key", key)?,
                    ));
                }
                endpoint = endpoint
                    .tls_config(tls)
                    .map_err(|e| anyhow::anyhow!("control-plane TLS: {e}"))?;
            }
            Some("http") if opts.insecure => {
                if opts.ca.is_some() || opts.identity.is_some() {
                    anyhow::bail!(
                        "--control-plane-ca/--control-plane-cert need an https:// control plane"
                    );
                }
                tracing::warn!(url = %redact::url(&opts.url), "--insecure-control-plane: the config stream is plaintext");
            }
            Some("http") => anyhow::bail!(
                "refusing a plaintext control plane ({}): use https://, or pass --insecure-control-plane",
                redact::url(&opts.url)
            ),
            _ => anyhow::bail!("--control-plane needs an https:// URL"),
        }
        let token = opts
            .token
            .map(|t| {
                let mut value = MetadataValue::try_from(format!("Bearer {t}")).map_err(|_| {
                    anyhow::anyhow!("the control-plane token has characters a header cannot carry")
                })?;
                value.set_sensitive(true);
                anyhow::Ok(value)
            })
            .transpose()?;
        Ok(Connection {
            url: opts.url,
            endpoint,
            token,
        })
    }
}

pub struct ControlPlaneSource {
    pub connection: Connection,
    pub gateway: String,
    pub node_id: String,
    pub allow: PushAllowList,
}

impl ControlPlaneSource {
    /// Runs until the process ends.
    pub async fn run(self, gw: Arc<Gateway>) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let mut got_message = false;
            if let Err(e) = self.session(&gw, &mut got_message).await {
                tracing::warn!(url = %redact::url(&self.connection.url), error = %e, "config stream lost; the last good config keeps serving");
            }
            if got_message {
                backoff = MIN_BACKOFF;
            }
            let jitter = rand::rng().random_range(0.5..1.5);
            tokio::time::sleep(backoff.mul_f64(jitter)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn session(&self, gw: &Arc<Gateway>, got_message: &mut bool) -> anyhow::Result<()> {
        let channel = self.connection.endpoint.connect().await?;
        let mut client = ConfigStreamClient::new(channel);
        let (tx, rx) = mpsc::channel(8);
        let hello = pb::Hello {
            node_id: self.node_id.clone(),
            gateway: self.gateway.clone(),
            build: env!("CARGO_PKG_VERSION").to_string(),
            accepts_delta: true,
            accepts_compressed: true,
        };
        tx.send(message(pb::proxy_message::Kind::Hello(hello)))
            .await?;
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        if let Some(token) = &self.connection.token {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        let mut inbound = client.stream(request).await?.into_inner();
        let mut status = tokio::time::interval(STATUS_EVERY);
        // What deltas on this stream build on.
        let mut base: Option<Base> = None;
        loop {
            tokio::select! {
                msg = inbound.message() => {
                    let Some(msg) = msg? else { return Ok(()) };
                    *got_message = true;
                    if let Some(pb::server_message::Kind::Push(push)) = msg.kind {
                        let reply = self.apply(gw, push, &mut base);
                        tx.send(message(reply)).await?;
                    }
                }
                _ = status.tick() => {
                    tx.send(message(pb::proxy_message::Kind::Status(status_report(gw)))).await?;
                }
            }
        }
    }

    fn apply(
        &self,
        gw: &Arc<Gateway>,
        push: pb::Push,
        base: &mut Option<Base>,
    ) -> pb::proxy_message::Kind {
        let compressed = push.compressed.filter(|_| push.delta.is_none());
        let encoded = match rebuild(push.config, push.delta, base.as_ref()) {
            Ok(encoded) => encoded,
            Err(reason) => {
                tracing::info!(version = %push.version, %reason, "cannot apply a delta push; asking for a full one");
                return pb::proxy_message::Kind::Resync(pb::Resync {
                    nonce: push.nonce,
                    reason,
                });
            }
        };
        let previous = gw
            .runtime()
            .map(|r| r.snapshot.version.clone())
            .unwrap_or_default();
        let version = push.version.clone();
        let source = SnapshotSource::ControlPlane(redact::url(&self.connection.url));
        let result = (|| -> Result<Bytes, String> {
            let encoded = match compressed {
                Some(c) => tollgate_shared::compress::decompress(&c)
                    .map_err(|e| format!("malformed snapshot: {e}"))?,
                None => encoded,
            };
            let wire = pb::Config::decode(encoded.as_ref())
                .map_err(|e| format!("malformed snapshot: {e}"))?;
            let mut config =
                Config::try_from(wire).map_err(|e| format!("malformed snapshot: {e}"))?;
            self.allow.check(&config)?;
            config.resolve_secrets(&ProcessEnv).map_err(|names| {
                format!(
                    "environment variable(s) not set on this proxy: {}",
                    names.join(", ")
                )
            })?;
            gw.apply(
                Snapshot::with_version(config, version.clone()),
                source.clone(),
            )
            .map_err(|e| e.to_string())?;
            Ok(encoded)
        })();
        match result {
            Ok(encoded) => {
                *base = Some(Base {
                    version: version.clone(),
                    encoded,
                });
                report(
                    &gw.services.metrics,
                    &source,
                    Outcome::Applied { version: &version },
                );
                pb::proxy_message::Kind::Ack(pb::Ack {
                    version,
                    nonce: push.nonce,
                })
            }
            Err(error) => {
                let outcome = Outcome::Rejected {
                    version: Some(&version),
                    error: &error,
                };
                report(&gw.services.metrics, &source, outcome);
                pb::proxy_message::Kind::Nack(pb::Nack {
                    version: previous,
                    nonce: push.nonce,
                    error_detail: error,
                })
            }
        }
    }
}

/// The config last applied from this stream, as encoded on the wire.
struct Base {
    version: String,
    encoded: Bytes,
}

/// The full encoded config of a push: its `config`, or its delta rebuilt on `base`.
fn rebuild(config: Bytes, delta: Option<pb::Delta>, base: Option<&Base>) -> Result<Bytes, String> {
    let Some(delta) = delta else {
        return Ok(config);
    };
    let base = base
        .filter(|b| b.version == delta.base_version)
        .ok_or("the delta builds on a version this stream has not applied")?;
    tollgate_shared::delta::apply(&base.encoded, &delta).map_err(|e| e.to_string())
}

fn message(kind: pb::proxy_message::Kind) -> pb::ProxyMessage {
    pb::ProxyMessage { kind: Some(kind) }
}

fn status_report(gw: &Gateway) -> pb::Status {
    let buckets = gw
        .services
        .rate_limits
        .all(LISTED_CALLERS)
        .iter()
        .map(|b| {
            let level = b.level();
            pb::BucketLevel {
                listener: b.key.listener.clone(),
                route: b.key.route.clone(),
                position: b.key.position as u32,
                kind: match b.key.kind {
                    RateLimitKind::Requests => pb::RateLimitKind::Requests,
                    RateLimitKind::Tokens => pb::RateLimitKind::Tokens,
                } as i32,
                max_tokens: level.limit,
                level: level.remaining,
                seconds_to_refill: level.reset_secs,
                key: b.key.value.clone(),
            }
        })
        .collect();
    pb::Status {
        buckets,
        mcp_sessions: gw.services.mcp.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(version: &str, encoded: &[u8]) -> Base {
        Base {
            version: version.into(),
            encoded: Bytes::copy_from_slice(encoded),
        }
    }

    fn delta_on(base_version: &str, from: &[u8], to: &[u8]) -> pb::Delta {
        let mut delta = tollgate_shared::delta::diff(from, to);
        delta.base_version = base_version.into();
        delta
    }

    #[test]
    fn a_full_push_is_taken_as_is_and_a_delta_is_rebuilt_on_its_base() {
        let full = Bytes::from_static(b"the whole config");
        assert_eq!(rebuild(full.clone(), None, None).unwrap(), full);
        let (old, new) = (vec![7u8; 4096], [vec![7u8; 4000], vec![8u8; 96]].concat());
        let held = base("v1", &old);
        let delta = delta_on("v1", &old, &new);
        assert_eq!(
            rebuild(Bytes::new(), Some(delta), Some(&held)).unwrap(),
            new
        );
    }

    #[test]
    fn a_delta_on_another_base_asks_for_a_resync() {
        let text = |edited: usize| -> Vec<u8> {
            (0..300)
                .flat_map(|i| format!("route {i} tag {};", u8::from(i == edited)).into_bytes())
                .collect()
        };
        let (old, new, other) = (text(1_000), text(150), text(20));
        let delta = delta_on("v1", &old, &new);
        for held in [None, Some(base("v0", &old)), Some(base("v1", &other))] {
            let error = rebuild(Bytes::new(), Some(delta.clone()), held.as_ref()).unwrap_err();
            assert!(
                error.contains("has not applied") || error.contains("SHA-256"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_hostile_delta_is_refused_with_a_short_reason() {
        let held = base("v1", &[0u8; 1024]);
        let copy = pb::DeltaOp {
            op: Some(pb::delta_op::Op::Copy(pb::CopyRange {
                offset: 0,
                len: 1024,
            })),
        };
        let bomb = pb::Delta {
            base_version: "v1".into(),
            ops: vec![copy; 1 << 17],
            sha256: Bytes::new(),
        };
        let error = rebuild(Bytes::new(), Some(bomb), Some(&held)).unwrap_err();
        assert!(error.contains("more than"), "{error}");
        assert!(error.len() < 100);
    }

    fn source() -> ControlPlaneSource {
        let connection = Connection::new(ConnectionOptions {
            url: "http://127.0.0.1:9".into(),
            insecure: true,
            ca: None,
            identity: None,
            token: None,
        })
        .unwrap();
        ControlPlaneSource {
            connection,
            gateway: "gw".into(),
            node_id: "proxy-1".into(),
            allow: PushAllowList::default(),
        }
    }

    fn compressed_push(version: &str, compressed: pb::Compressed) -> pb::Push {
        pb::Push {
            version: version.into(),
            nonce: format!("nonce-{version}"),
            compressed: Some(compressed),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_corrupt_compressed_push_is_nacked_and_the_last_good_config_serves() {
        let yaml = "config:\n  logging:\n    level: warn\n";
        let config =
            tollgate_shared::config::load_str(yaml, "cp.yaml", &std::collections::HashMap::new())
                .unwrap();
        let good = tollgate_shared::compress::compress(&pb::Config::from(&config).encode_to_vec());
        let gw = Gateway::new(
            "gw",
            std::net::Ipv4Addr::LOCALHOST.into(),
            Arc::new(crate::metrics::Metrics::new()),
        );
        let source = source();
        let mut base = None;
        let reply = source.apply(&gw, compressed_push("v1", good.clone()), &mut base);
        assert!(
            matches!(reply, pb::proxy_message::Kind::Ack(_)),
            "{reply:?}"
        );
        let truncated = pb::Compressed {
            lz4: good.lz4.slice(..good.lz4.len() / 2),
            ..good.clone()
        };
        let short = pb::Compressed {
            size: good.size + 64,
            ..good.clone()
        };
        let bomb = pb::Compressed {
            size: 1 << 40,
            ..good
        };
        let cases = [
            ("v2", truncated, "a compressed snapshot is corrupt"),
            ("v3", short, "not the"),
            (
                "v4",
                bomb,
                "a compressed snapshot claims 1099511627776 bytes",
            ),
        ];
        for (version, bad, why) in cases {
            let reply = source.apply(&gw, compressed_push(version, bad), &mut base);
            let pb::proxy_message::Kind::Nack(nack) = reply else {
                panic!("{version} was not refused: {reply:?}");
            };
            assert!(
                nack.error_detail.starts_with("malformed snapshot")
                    && nack.error_detail.contains(why),
                "{version}: {}",
                nack.error_detail
            );
            assert_eq!(nack.version, "v1", "a NACK names the version still serving");
            assert_eq!(gw.runtime().unwrap().snapshot.version, "v1");
            assert_eq!(base.as_ref().map(|b| b.version.as_str()), Some("v1"));
        }
    }
}
