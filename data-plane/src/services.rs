//! What every request needs, apart from the gateway's lifecycle: the pipeline and the backends
//! take this (or parts of it), never the `Gateway`, so they can run without ports.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tollgate_shared::{Snapshot, SnapshotSource};

use crate::fetch::{DocumentCache, Fetcher, OtlpHttp};
use crate::htpasswd::HtpasswdFiles;
use crate::http::budget::ParseBudget;
use crate::http::client::{self, HttpClient};
use crate::http::mirror::Mirrors;
use crate::jwt::Verifiers;
use crate::jwt::remote::RemoteKeySets;
use crate::mcp::Sessions;
use crate::metrics::Metrics;
use crate::ratelimit::{BucketKey, EntryBuckets, RateLimits};
use crate::runtime::{ClientAuth, Files, Runtime};
use crate::telemetry::{Sinks, Telemetry};

pub struct Services {
    /// Gateway name, the `gateway` metric label.
    pub name: Arc<str>,
    pub metrics: Arc<Metrics>,
    pub client: HttpClient,
    /// `requestMirror` copies in flight, bounded over every route.
    pub mirrors: Mirrors,
    /// Rate-limit buckets, kept across applies.
    pub rate_limits: RateLimits,
    /// MCP sessions and their children, kept across applies.
    pub mcp: Arc<Sessions>,
    /// Bytes of large LLM requests parsed at once.
    pub llm_budget: ParseBudget,
    /// The access-log writer and the trace exporter, kept across applies.
    pub sinks: Sinks,
    /// The gateway's own HTTP calls (OAuth metadata for MCP clients).
    pub fetcher: Fetcher,
    /// Authorization servers' metadata served to MCP clients, kept across applies.
    pub oauth_documents: DocumentCache,
    /// Fetched JWKS (`jwks.url`), kept across applies with their refresh tasks.
    pub jwks: RemoteKeySets,
    runtime: ArcSwapOption<Runtime>,
    /// Told after each install (the certificate watcher follows the config in force).
    applied: tokio::sync::watch::Sender<()>,
}

impl Services {
    pub fn new(name: &str, metrics: Arc<Metrics>, sinks: Sinks) -> Services {
        let client = client::client();
        let mirrors = Mirrors::new(client.clone(), metrics.mirrors.clone());
        let fetcher = Fetcher::default();
        let otlp_http = OtlpHttp::new(fetcher.clone())
            .map(|c| Arc::new(c) as Arc<dyn opentelemetry_http::HttpClient>);
        Services {
            name: name.into(),
            mcp: Arc::new(Sessions::new(metrics.clone())),
            llm_budget: crate::llm::budget(),
            sinks: sinks.with_otlp_http(otlp_http),
            metrics,
            fetcher,
            oauth_documents: DocumentCache::default(),
            jwks: RemoteKeySets::default(),
            mirrors,
            client,
            rate_limits: RateLimits::default(),
            runtime: ArcSwapOption::empty(),
            applied: tokio::sync::watch::Sender::new(()),
        }
    }

    /// The config in force; requests call this once.
    pub fn runtime(&self) -> Option<Arc<Runtime>> {
        self.runtime.load_full()
    }

    /// Resolves after each later install.
    pub fn applied(&self) -> tokio::sync::watch::Receiver<()> {
        self.applied.subscribe()
    }

    /// Compiles `snapshot` with its loaded `tls` (taking rate-limit buckets from the store
    /// that outlives configs) and makes it the config requests load; MCP sessions whose route
    /// changed are retired.
    pub fn install(
        &self,
        snapshot: Snapshot,
        source: SnapshotSource,
        files: Files,
        jwt: &Verifiers,
        htpasswd: HtpasswdFiles,
    ) -> Arc<Runtime> {
        for warning in snapshot.config.warnings() {
            tracing::warn!(source = %source, "config warning: {warning}");
        }
        let mut seen = Vec::new();
        let telemetry = Telemetry::compile(&snapshot.config.settings, &self.sinks, &self.metrics);
        let runtime = Runtime::compile(
            snapshot,
            source,
            telemetry,
            files,
            ClientAuth {
                jwt,
                htpasswd: &htpasswd,
            },
            &self.name,
            &mut |listener, route, position, limit| {
                let key = BucketKey {
                    gateway: self.name.to_string(),
                    listener: listener.to_string(),
                    route: route.to_string(),
                    position,
                    kind: limit.kind,
                    value: None,
                };
                match &limit.key {
                    None => EntryBuckets::One(self.rate_limits.bucket(key, limit, &mut seen)),
                    Some(k) => {
                        let shown = names_an_identity(&k.expression);
                        let evictions = self.metrics.key_evictions(&key);
                        let keyed = self
                            .rate_limits
                            .keyed(key, limit, shown, evictions, &mut seen);
                        EntryBuckets::PerKey(keyed)
                    }
                }
            },
        );
        self.rate_limits.retain(&seen);
        let runtime = Arc::new(runtime);
        retire(self.runtime.swap(Some(runtime.clone())));
        self.metrics.config_info.reset();
        self.metrics
            .config_info
            .with_label_values(&[&runtime.snapshot.version, &runtime.source.to_string()])
            .set(1);
        let routes = runtime
            .ports
            .values()
            .flat_map(|p| &p.listeners)
            .flat_map(|l| &l.routes)
            .map(|r| r.name.as_ref())
            .collect();
        self.metrics.client_labels.retain_routes(&routes);
        self.mcp.reconcile(&runtime);
        self.applied.send_replace(());
        runtime
    }
}

/// Frees a replaced runtime off the apply path: a 10,000-route one took 15% of an apply.
/// Requests that still hold it keep it alive either way.
fn retire(replaced: Option<Arc<Runtime>>) {
    if let Some(old) = replaced
        && let Ok(handle) = tokio::runtime::Handle::try_current()
    {
        handle.spawn_blocking(move || drop(old));
    }
}

/// Whether a rate-limit key is a caller's identity name (`jwt.sub`, `jwt.email`,
/// `apiKey.name`, `basicAuth.username`...), shown as is in the admin API and to the control
/// plane; any other value (an address, a header) is shown as a short hash.
fn names_an_identity(expr: &str) -> bool {
    let field = |rest: &str| {
        !rest.is_empty()
            && rest
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    };
    let expr = expr.trim();
    match expr.split_once('.') {
        Some(("jwt", rest)) => field(rest),
        Some(("apiKey", rest)) => field(rest) && rest != "key",
        _ => expr == "basicAuth.username",
    }
}

#[cfg(test)]
mod tests {
    use super::names_an_identity;

    #[test]
    fn identity_names_are_shown_and_other_keys_hashed() {
        for shown in [
            "jwt.sub",
            "jwt.org.team",
            "apiKey.name",
            "basicAuth.username",
        ] {
            assert!(names_an_identity(shown), "{shown}");
        }
        for hashed in [
            "source.address",
            "apiKey.key",
            "request.headers[\"x-user\"]",
            "jwt.sub + source.address",
            "jwt",
        ] {
            assert!(!names_an_identity(hashed), "{hashed}");
        }
    }
}
