//! Prometheus metrics with agentgateway's names, so its dashboards and alerts work unchanged.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use http::Method;
use parking_lot::{Mutex, RwLock};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use tollgate_shared::config::model::REQUEST_LABELS;

pub struct Metrics {
    registry: Registry,
    /// The per-request vectors, re-registered when `config.metrics.fields` changes their labels.
    request_vecs: Mutex<Arc<RequestVecs>>,
    removed: Mutex<Vec<String>>,
    /// Time the gateway itself adds: time to the response head minus upstream time.
    pub overhead: HistogramVec,
    pub retries: IntCounterVec,
    /// `requestMirror` copies, by result.
    pub mirrors: IntCounterVec,
    pub reloads: IntCounterVec,
    /// Listener certificate renewals read from disk, by result; apart from config loads.
    pub tls_certificate_reloads: IntCounterVec,
    pub gen_ai_token_usage: HistogramVec,
    pub gen_ai_request_duration: HistogramVec,
    pub config_synchronized: IntGauge,
    /// Tokens left per rate-limit bucket; one series per configured bucket (not per caller).
    pub bucket_tokens: IntGaugeVec,
    /// Callers with a bucket of their own, per keyed rate limit.
    pub ratelimit_keys: IntGaugeVec,
    /// Callers' full buckets evicted to keep a keyed rate limit within `maxKeys`.
    pub ratelimit_key_evictions: IntCounterVec,
    pub mcp_requests: IntCounterVec,
    /// MCP targets that failed to start or answer and were skipped (fail-open) or failed a call.
    pub mcp_target_failures: IntCounterVec,
    pub mcp_sessions: IntGauge,
    pub a2a_requests: IntCounterVec,
    /// 1, labelled with the applied config's version and source.
    pub config_info: IntGaugeVec,
    /// Label values that come from requests, bounded per route.
    pub client_labels: Arc<ClientLabels>,
}

/// Labels of `agentgateway_mcp_requests_total`, in order.
pub const MCP_LABELS: [&str; 8] = [
    "bind",
    "gateway",
    "listener",
    "route",
    "method",
    "resource_type",
    "server",
    "resource",
];

impl Metrics {
    pub fn new() -> Metrics {
        let retries = IntCounterVec::new(
            Opts::new(
                "agentgateway_retries_total",
                "Upstream attempts after the first.",
            ),
            &["bind", "gateway", "listener", "route", "backend"],
        )
        .expect("valid metric");
        let mirrors = IntCounterVec::new(
            Opts::new(
                "tollgate_mirror_requests_total",
                "requestMirror copies: sent (answered), failed, or skipped (too many in flight, body too large).",
            ),
            &["bind", "gateway", "listener", "route", "result"],
        )
        .expect("valid metric");
        let reloads = IntCounterVec::new(
            Opts::new(
                "agentgateway_config_reloads_total",
                "Config loads by source and result.",
            ),
            &["source", "result"],
        )
        .expect("valid metric");
        let tls_certificate_reloads = IntCounterVec::new(
            Opts::new(
                "tollgate_tls_certificate_reloads_total",
                "Listener certificate renewals read from disk, by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let gen_ai_token_usage = HistogramVec::new(
            HistogramOpts::new(
                "agentgateway_gen_ai_client_token_usage",
                "Tokens used per LLM request.",
            )
            .buckets((0..14).map(|i| 4f64.powi(i)).collect()),
            &[
                "gen_ai_token_type",
                "gen_ai_operation_name",
                "gen_ai_system",
                "gen_ai_request_model",
                "gen_ai_response_model",
            ],
        )
        .expect("valid metric");
        let gen_ai_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "agentgateway_gen_ai_server_request_duration",
                "Seconds from the LLM request to the end of its response.",
            )
            .buckets(vec![
                0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
                81.92,
            ]),
            &[
                "gen_ai_operation_name",
                "gen_ai_system",
                "gen_ai_request_model",
                "gen_ai_response_model",
            ],
        )
        .expect("valid metric");
        let config_synchronized = IntGauge::new(
            "agentgateway_config_synchronized",
            "1 when the last config change was applied, 0 when it was rejected.",
        )
        .expect("valid metric");
        let bucket_tokens = IntGaugeVec::new(
            Opts::new(
                "agentgateway_ratelimit_bucket_tokens",
                "Tokens left in each local rate-limit bucket.",
            ),
            &["gateway", "listener", "route", "position", "type"],
        )
        .expect("valid metric");
        let bucket_labels = ["gateway", "listener", "route", "position", "type"];
        let ratelimit_keys = IntGaugeVec::new(
            Opts::new(
                "tollgate_ratelimit_keys",
                "Callers with a bucket of their own, per keyed local rate limit.",
            ),
            &bucket_labels,
        )
        .expect("valid metric");
        let ratelimit_key_evictions = IntCounterVec::new(
            Opts::new(
                "tollgate_ratelimit_key_evictions_total",
                "Full caller buckets evicted to keep a keyed local rate limit within maxKeys.",
            ),
            &bucket_labels,
        )
        .expect("valid metric");
        let mcp_requests = IntCounterVec::new(
            Opts::new(
                "agentgateway_mcp_requests_total",
                "MCP requests from clients, by method, target server and resource.",
            ),
            &MCP_LABELS,
        )
        .expect("valid metric");
        let mcp_target_failures = IntCounterVec::new(
            Opts::new(
                "tollgate_mcp_target_failures_total",
                "MCP targets that failed to start, initialize or answer, by route and server.",
            ),
            &["gateway", "listener", "route", "server"],
        )
        .expect("valid metric");
        let mcp_sessions = IntGauge::new("tollgate_mcp_sessions", "Live MCP client sessions.")
            .expect("valid metric");
        let a2a_requests = IntCounterVec::new(
            Opts::new(
                "tollgate_a2a_requests_total",
                "Requests of `a2a` routes: JSON-RPC calls by method, and agent card fetches.",
            ),
            &["bind", "gateway", "listener", "route", "method"],
        )
        .expect("valid metric");
        let overhead = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_gateway_overhead_seconds",
                "Time the gateway adds to a request: time to the response head minus the upstream's.",
            )
            .buckets(vec![
                0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
            ]),
            &["bind", "gateway", "listener", "route"],
        )
        .expect("valid metric");
        let config_info = IntGaugeVec::new(
            Opts::new(
                "tollgate_config_info",
                "The applied config: 1, labelled with its version and source.",
            ),
            &["version", "source"],
        )
        .expect("valid metric");
        let registry = tollgate_shared::process::registry(vec![
            Box::new(config_info.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(bucket_tokens.clone()),
            Box::new(ratelimit_keys.clone()),
            Box::new(ratelimit_key_evictions.clone()),
            Box::new(overhead.clone()),
            Box::new(retries.clone()),
            Box::new(mirrors.clone()),
            Box::new(reloads.clone()),
            Box::new(tls_certificate_reloads.clone()),
            Box::new(config_synchronized.clone()),
            Box::new(gen_ai_token_usage.clone()),
            Box::new(gen_ai_request_duration.clone()),
            Box::new(mcp_requests.clone()),
            Box::new(mcp_target_failures.clone()),
            Box::new(mcp_sessions.clone()),
            Box::new(a2a_requests.clone()),
        ]);
        let request_vecs = RequestVecs::new(Vec::new());
        Metrics {
            registry,
            request_vecs: Mutex::new(Arc::new(request_vecs)),
            removed: Mutex::new(Vec::new()),
            overhead,
            retries,
            mirrors,
            reloads,
            tls_certificate_reloads,
            gen_ai_token_usage,
            gen_ai_request_duration,
            config_synchronized,
            bucket_tokens,
            ratelimit_keys,
            ratelimit_key_evictions,
            mcp_requests,
            mcp_target_failures,
            mcp_sessions,
            a2a_requests,
            config_info,
            client_labels: Arc::default(),
        }
    }

    /// Refreshes the bucket gauges from the live buckets (at scrape time, so removed buckets
    /// disappear and the hot path never touches the gauges). Callers' buckets are counted,
    /// not listed: one series each would be unbounded.
    pub fn set_bucket_levels(&self, limits: &crate::ratelimit::RateLimits) {
        self.bucket_tokens.reset();
        self.ratelimit_keys.reset();
        for b in limits.unkeyed() {
            self.bucket_tokens
                .with_label_values(&bucket_labels(&b.key))
                .set(b.level().remaining as i64);
        }
        for entry in limits.keyed_entries() {
            self.ratelimit_keys
                .with_label_values(&bucket_labels(&entry.key))
                .set(entry.callers() as i64);
        }
    }

    /// The eviction counter of the keyed rate limit `key`.
    pub fn key_evictions(&self, key: &crate::ratelimit::BucketKey) -> prometheus::IntCounter {
        self.ratelimit_key_evictions
            .with_label_values(&bucket_labels(key))
    }

    /// Metric families left out of `/metrics` (`config.metrics.remove`).
    pub fn set_removed(&self, names: Vec<String>) {
        *self.removed.lock() = names;
    }

    /// The request vectors with `extra` labels after the standard ones: the current ones when
    /// their labels match, else new ones (their series restart: a registry cannot change a
    /// metric's labels, so these live in a registry of their own).
    pub fn request_vecs(&self, extra: Vec<String>) -> Arc<RequestVecs> {
        let mut current = self.request_vecs.lock();
        if current.extra != extra {
            *current = Arc::new(RequestVecs::new(extra));
        }
        current.clone()
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let skip = self.removed.lock().clone();
        let requests = self.request_vecs.lock().clone();
        tollgate_shared::process::render(&[&self.registry, &requests.registry], &skip)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `agentgateway_requests_total` and `agentgateway_request_duration_seconds`, whose label set
/// is the standard one plus the config's `metrics.fields.add` names.
pub struct RequestVecs {
    registry: Registry,
    pub extra: Vec<String>,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
}

impl RequestVecs {
    fn new(extra: Vec<String>) -> RequestVecs {
        let labels: Vec<&str> = REQUEST_LABELS
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
            .collect();
        let requests = IntCounterVec::new(
            Opts::new(
                "agentgateway_requests_total",
                "Requests handled, by route and outcome.",
            ),
            &labels,
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "agentgateway_request_duration_seconds",
                "Time from request received to response completed.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ]),
            &labels,
        )
        .expect("valid metric");
        let registry = tollgate_shared::process::registry(vec![
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
        ]);
        RequestVecs {
            registry,
            extra,
            requests,
            duration,
        }
    }
}

/// The `method` label of a request: the standard methods by name, any other `OTHER`, so
/// made-up methods cannot add series.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// Distinct values a route keeps per client-chosen label (models, MCP methods, CEL fields
/// over the request); later values are counted as [`OTHER_VALUE`].
pub const CLIENT_LABEL_LIMIT: usize = 32;
/// Longer values are [`OTHER_VALUE`] from the start.
pub const CLIENT_LABEL_MAX_LEN: usize = 128;
/// The label value of everything past the bound.
pub const OTHER_VALUE: &str = "other";

/// Label values a client chooses, admitted as series up to [`CLIENT_LABEL_LIMIT`] per route
/// and label, so requests cannot grow `/metrics` (and the registry) without bound.
#[derive(Default)]
pub struct ClientLabels {
    /// label -> route -> values seen.
    seen: RwLock<HashMap<String, HashMap<String, HashSet<String>>>>,
}

impl ClientLabels {
    /// `value` when it is (or may become) one of the route's first values of `label`, else
    /// [`OTHER_VALUE`]. Known values cost a read lock and no allocation.
    pub fn admit<'v>(&self, label: &str, route: &str, value: &'v str) -> &'v str {
        if value.len() > CLIENT_LABEL_MAX_LEN {
            return OTHER_VALUE;
        }
        if let Some(values) = self.seen.read().get(label).and_then(|r| r.get(route)) {
            if values.contains(value) {
                return value;
            }
            if values.len() >= CLIENT_LABEL_LIMIT {
                return OTHER_VALUE;
            }
        }
        let mut seen = self.seen.write();
        let values = seen
            .entry(label.to_string())
            .or_default()
            .entry(route.to_string())
            .or_default();
        if values.len() < CLIENT_LABEL_LIMIT {
            values.insert(value.to_string());
        }
        if values.contains(value) {
            value
        } else {
            OTHER_VALUE
        }
    }

    /// Forgets the routes a new config no longer has, so pushes cannot grow the table.
    pub fn retain_routes(&self, keep: &HashSet<&str>) {
        for routes in self.seen.write().values_mut() {
            routes.retain(|route, _| keep.contains(route.as_str()));
        }
    }
}

/// The label values of a bucket's series: gateway, listener, route, position, type.
fn bucket_labels(k: &crate::ratelimit::BucketKey) -> [String; 5] {
    let kind = match k.kind {
        tollgate_shared::config::model::RateLimitKind::Requests => "requests",
        tollgate_shared::config::model::RateLimitKind::Tokens => "tokens",
    };
    [
        k.gateway.clone(),
        k.listener.clone(),
        k.route.clone(),
        k.position.to_string(),
        kind.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "OTHER");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }

    #[test]
    fn client_labels_keep_the_first_values_per_route() {
        let labels = ClientLabels::default();
        let values: Vec<String> = (0..CLIENT_LABEL_LIMIT + 5)
            .map(|i| format!("m{i}"))
            .collect();
        let admitted: Vec<&str> = values
            .iter()
            .map(|v| labels.admit("model", "r", v))
            .collect();
        assert_eq!(admitted[..CLIENT_LABEL_LIMIT], values[..CLIENT_LABEL_LIMIT]);
        assert!(
            admitted[CLIENT_LABEL_LIMIT..]
                .iter()
                .all(|v| *v == OTHER_VALUE)
        );
        assert_eq!(labels.admit("model", "r", "m0"), "m0", "known values stay");
        assert_eq!(
            labels.admit("model", "other-route", "new"),
            "new",
            "per route"
        );
        assert_eq!(labels.admit("model", "r", &"x".repeat(200)), OTHER_VALUE);
    }

    #[test]
    fn routes_a_config_drops_are_forgotten() {
        let labels = ClientLabels::default();
        labels.admit("model", "old", "m");
        labels.admit("model", "kept", "m");
        labels.retain_routes(&HashSet::from(["kept"]));
        let seen = labels.seen.read();
        let routes: Vec<&String> = seen["model"].keys().collect();
        assert_eq!(routes, ["kept"]);
    }
}
