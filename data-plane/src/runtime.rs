//! The compiled form of a snapshot that requests read: per-port route tables in precedence order.
//!
//! Built once per apply, then shared read-only behind the gateway's single `ArcSwap`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use tollgate_shared::config::model::{
    BackendKind, Cors, Listener, McpBackend, PathMatch, Policies, RateLimit, Route, RouteMatch,
};
use tollgate_shared::{Snapshot, SnapshotSource};

use crate::api_key::ApiKeys;
use crate::authz::Rules;
use crate::clock;
use crate::health::{Answer, HealthRule, HealthState};
use crate::htpasswd::{BasicAuthPolicy, HtpasswdFiles};
use crate::jwt::{Verifier, Verifiers};
use crate::llm::failover::ProviderPool;
use crate::mcp::openapi::OpenApiSpecs;
use crate::ratelimit::{Bucket, EntryBuckets, KeyedBuckets};
use crate::telemetry::record::CredentialNames;
use crate::telemetry::{RequestLabels, Telemetry};
use crate::tls::{BackendClients, PolicyClients, Tls};

/// Everything a request needs from the config, swapped as one unit.
pub struct Runtime {
    pub snapshot: Snapshot,
    pub source: SnapshotSource,
    pub applied_at: SystemTime,
    pub ports: HashMap<u16, Arc<PortTable>>,
    pub telemetry: Telemetry,
    /// Listener certificates and `backendTLS` clients, read when the config was applied.
    pub tls: Tls,
    /// Labels of a request on no known port: the gateway only.
    pub labels: Arc<RequestLabels>,
    /// A request's CEL variables are read before it ends (rate-limit keys, `authorization` or
    /// `mcpAuthorization` rules): its record keeps the headers for `request.headers`.
    pub reads_requests: bool,
    /// Where the routes read client credentials: redacted in every request's record.
    pub credential_names: CredentialNames,
    /// The `basicAuth` htpasswd files, read when the config was applied and watched since.
    pub htpasswd: HtpasswdFiles,
    /// `frontendPolicies.networkAuthorization`, decided once per connection.
    pub network_authorization: Option<Arc<Rules>>,
    /// The `openapi` MCP targets' tools, read when the config was applied.
    pub openapi: OpenApiSpecs,
}

/// What the config's files held when it was applied, besides client authentication's.
pub struct Files {
    pub tls: Tls,
    pub openapi: OpenApiSpecs,
}

pub struct PortTable {
    pub port: u16,
    /// Labels of a request no route matched: bind (`bind/<port>`) and gateway.
    pub labels: Arc<RequestLabels>,
    pub listeners: Vec<ListenerTable>,
}

pub struct ListenerTable {
    pub name: Arc<str>,
    pub hostname: Option<HostPattern>,
    pub routes: Vec<Arc<CompiledRoute>>,
    /// Every (route, match) pair, most specific first.
    pub entries: Vec<Entry>,
}

pub struct Entry {
    pub route: usize,
    pub matcher: RouteMatch,
}

pub struct CompiledRoute {
    pub name: Arc<str>,
    /// Bind, gateway, listener and route: the labels of every request metric of this route.
    pub labels: Arc<RequestLabels>,
    /// One bucket per unkeyed `localRateLimit` entry, shared with the gateway's bucket store.
    pub limits: Vec<Arc<Bucket>>,
    /// The keyed entries: each request takes from its caller's bucket.
    pub keyed_limits: Vec<KeyedLimit>,
    pub hostnames: Vec<HostPattern>,
    pub policies: Policies,
    /// The clients of the route's `backendTLS` policy, if it has one (`https` to `host`
    /// backends, the reqwest client for remote MCP targets).
    pub backend_tls: Option<PolicyClients>,
    /// The `jwtAuth` policy's keys, parsed when the config was applied.
    pub jwt: Option<Arc<Verifier>>,
    /// The `mcpAuthentication` policy's keys.
    pub mcp_auth: Option<Arc<Verifier>>,
    /// The `apiKey` policy's keys, hashed when the config was applied.
    pub api_keys: Option<ApiKeys>,
    /// The `basicAuth` policy and its htpasswd users.
    pub basic_auth: Option<BasicAuthPolicy>,
    /// The `authorization` rules, compiled.
    pub authorization: Option<Rules>,
    /// The `mcpAuthorization` rules, compiled.
    pub mcp_authorization: Option<Arc<Rules>>,
    pub backends: Vec<CompiledBackend>,
    pub total_weight: u32,
}

/// A keyed `localRateLimit` entry: its buckets and the compiled key.
pub struct KeyedLimit {
    pub buckets: Arc<KeyedBuckets>,
    pub key: cel::Program,
    /// The identity members the key reads (`jwt.sub`: null when absent).
    pub identity_members: Vec<String>,
}

pub struct CompiledBackend {
    pub weight: u32,
    /// The `backend` metric label.
    pub label: Arc<str>,
    pub target: Target,
    /// A `host` backend's `policies.health` and its state.
    pub health: Option<(HealthRule, HealthState)>,
}

impl CompiledBackend {
    /// Whether the backend may be chosen (not evicted).
    pub fn available(&self) -> bool {
        self.health
            .as_ref()
            .is_none_or(|(_, state)| state.available())
    }

    /// Feeds an attempt's answer to the backend's health; returns the eviction it caused.
    pub fn record(&self, answer: Answer) -> Option<std::time::Duration> {
        let (rule, state) = self.health.as_ref()?;
        state.record(rule, answer)
    }
}

pub enum Target {
    /// A plain HTTP upstream, `host:port`.
    Host(String),
    /// LLM providers, with their health for failover.
    Ai(ProviderPool),
    Mcp(McpBackend),
}

/// A hostname condition: `api.example.com` or `*.example.com`.
#[derive(Debug, Clone)]
pub enum HostPattern {
    Exact(String),
    /// The suffix after `*`, e.g. `.example.com`.
    Wildcard(String),
}

impl HostPattern {
    pub fn new(text: &str) -> HostPattern {
        let lower = text.to_ascii_lowercase();
        match lower.strip_prefix('*') {
            Some(suffix) => HostPattern::Wildcard(suffix.to_string()),
            None => HostPattern::Exact(lower),
        }
    }

    /// 0 for an exact match, 1 for a wildcard match.
    pub fn rank(&self, host: &str) -> Option<u8> {
        match self {
            HostPattern::Exact(h) => (h == host).then_some(0),
            HostPattern::Wildcard(s) => {
                (host.len() > s.len() && host.ends_with(s.as_str())).then_some(1)
            }
        }
    }
}

/// What client authentication read from files when the config was applied.
#[derive(Clone, Copy)]
pub struct ClientAuth<'a> {
    /// The `jwtAuth` and `mcpAuthentication` keys.
    pub jwt: &'a Verifiers,
    /// The `basicAuth` users.
    pub htpasswd: &'a HtpasswdFiles,
}

/// Hands out the rate-limit buckets for (listener, route, position, limit).
pub type BucketSource<'a> = dyn FnMut(&str, &str, usize, &RateLimit) -> EntryBuckets + 'a;

impl Runtime {
    /// Compiles `snapshot` for the gateway named `gateway`.
    pub fn compile(
        snapshot: Snapshot,
        source: SnapshotSource,
        telemetry: Telemetry,
        Files { tls, openapi }: Files,
        auth: ClientAuth<'_>,
        gateway: &Arc<str>,
        buckets: &mut BucketSource<'_>,
    ) -> Runtime {
        let ports = snapshot
            .config
            .binds
            .iter()
            .map(|b| {
                let labels = RequestLabels {
                    bind: Some(format!("bind/{}", b.port).into()),
                    gateway: gateway.clone(),
                    listener: None,
                    route: None,
                    series: Default::default(),
                };
                let table = PortTable {
                    port: b.port,
                    listeners: b
                        .listeners
                        .iter()
                        .map(|l| compile_listener(l, &labels, &tls.backends, auth, buckets))
                        .collect(),
                    labels: Arc::new(labels),
                };
                (b.port, Arc::new(table))
            })
            .collect::<HashMap<_, _>>();
        let reads_requests = ports
            .values()
            .flat_map(|t| &t.listeners)
            .flat_map(|l| &l.routes)
            .any(|r| {
                !r.keyed_limits.is_empty()
                    || r.authorization.is_some()
                    || r.mcp_authorization.is_some()
            });
        let policies = snapshot
            .config
            .binds
            .iter()
            .flat_map(|b| &b.listeners)
            .flat_map(|l| &l.routes)
            .map(|r| &r.policies);
        let credential_names = CredentialNames::of(policies.flat_map(|p| {
            let jwt = p.jwt_auth.iter().map(|j| &j.location);
            let mcp = p.mcp_authentication.iter().map(|m| &m.jwt.location);
            let key = p.api_key.iter().map(|k| &k.location);
            let basic = p.basic_auth.iter().map(|b| &b.authorization_location);
            jwt.chain(mcp).chain(key).chain(basic)
        }));
        let network_authorization = snapshot
            .config
            .frontend_policies
            .network_authorization
            .as_ref()
            .map(|set| Arc::new(Rules::compile(set)));
        Runtime {
            network_authorization,
            credential_names,
            reads_requests: reads_requests || telemetry.uses_cel(),
            snapshot,
            source,
            applied_at: SystemTime::now(),
            ports,
            telemetry,
            tls,
            labels: Arc::new(RequestLabels {
                bind: None,
                gateway: gateway.clone(),
                listener: None,
                route: None,
                series: Default::default(),
            }),
            htpasswd: auth.htpasswd.clone(),
            openapi,
        }
    }
}

fn compile_listener(
    l: &Listener,
    port: &RequestLabels,
    clients: &BackendClients,
    auth: ClientAuth<'_>,
    buckets: &mut BucketSource<'_>,
) -> ListenerTable {
    let listener: Arc<str> = l.name.as_str().into();
    let routes: Vec<Arc<CompiledRoute>> = l
        .routes
        .iter()
        .map(|r| {
            let (mut limits, mut keyed_limits) = (Vec::new(), Vec::new());
            for (i, limit) in r.policies.local_rate_limit.iter().enumerate() {
                match buckets(&l.name, &r.name, i, limit) {
                    EntryBuckets::One(b) => limits.push(b),
                    EntryBuckets::PerKey(b) => {
                        let expr = limit.key.as_ref().map_or("", |k| k.expression.as_str());
                        // `RateLimit::new` (validation and proto alike) compiled it.
                        let key = cel::Program::compile(expr)
                            .expect("a validated rate-limit key compiles");
                        let identity_members =
                            crate::telemetry::fields::identity_members_read([expr]);
                        keyed_limits.push(KeyedLimit {
                            buckets: b,
                            key,
                            identity_members,
                        });
                    }
                }
            }
            let labels = RequestLabels {
                bind: port.bind.clone(),
                gateway: port.gateway.clone(),
                listener: Some(listener.clone()),
                route: Some(r.name.as_str().into()),
                series: Default::default(),
            };
            Arc::new(compile_route(
                r,
                labels,
                (limits, keyed_limits),
                clients,
                auth,
            ))
        })
        .collect();
    let mut entries: Vec<Entry> = l
        .routes
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.matches.iter().map(move |m| Entry {
                route: i,
                matcher: m.clone(),
            })
        })
        .collect();
    // Gateway API precedence; the sort is stable, so file order breaks the remaining ties.
    entries.sort_by_key(|e| precedence(&e.matcher));
    ListenerTable {
        name: listener,
        hostname: l.hostname.as_deref().map(HostPattern::new),
        routes,
        entries,
    }
}

fn compile_route(
    r: &Route,
    labels: RequestLabels,
    (limits, keyed_limits): (Vec<Arc<Bucket>>, Vec<KeyedLimit>),
    clients: &BackendClients,
    ClientAuth { jwt, htpasswd }: ClientAuth<'_>,
) -> CompiledRoute {
    let mut policies = r.policies.clone();
    let serves_mcp = r
        .backends
        .iter()
        .any(|b| matches!(b.kind, BackendKind::Mcp(_)));
    if serves_mcp && let Some(cors) = &mut policies.cors {
        mcp_cors(cors);
    }
    CompiledRoute {
        name: r.name.as_str().into(),
        labels: Arc::new(labels),
        limits,
        keyed_limits,
        hostnames: r.hostnames.iter().map(|h| HostPattern::new(h)).collect(),
        backend_tls: clients.get(&r.policies),
        // `Verifiers::load` walked these same routes: a policy without its verifier would
        // serve the route unauthenticated, so it is a bug, not a case.
        jwt: r.policies.jwt_auth.as_ref().map(|p| {
            jwt.get(p)
                .expect("Verifiers::load read every route's jwtAuth")
                .clone()
        }),
        mcp_auth: r.policies.mcp_authentication.as_ref().map(|p| {
            jwt.get(&p.jwt)
                .expect("Verifiers::load read every route's mcpAuthentication")
                .clone()
        }),
        api_keys: r.policies.api_key.as_ref().map(ApiKeys::compile),
        // `HtpasswdFiles::load` read every route's file, as `Verifiers::load` did the JWKS.
        basic_auth: r.policies.basic_auth.as_ref().map(|p| BasicAuthPolicy {
            policy: p.clone(),
            users: htpasswd
                .get(&p.htpasswd)
                .expect("HtpasswdFiles::load read every route's basicAuth file")
                .clone(),
        }),
        authorization: r.policies.authorization.as_ref().map(Rules::compile),
        mcp_authorization: r
            .policies
            .mcp_authorization
            .as_ref()
            .map(|p| Arc::new(Rules::compile(p))),
        policies,
        backends: r
            .backends
            .iter()
            .map(|b| CompiledBackend {
                health: b
                    .health
                    .as_ref()
                    .map(|h| (HealthRule::compile(h), HealthState::new(clock::system()))),
                weight: b.weight,
                label: b.kind.label().into(),
                target: match &b.kind {
                    BackendKind::Host(h) => Target::Host(h.clone()),
                    BackendKind::Ai(ai) => Target::Ai(ProviderPool::new(ai, &r.policies, clients)),
                    BackendKind::Mcp(m) => Target::Mcp(m.clone()),
                },
            })
            .collect(),
        total_weight: r.backends.iter().map(|b| b.weight).sum(),
    }
}

/// Browser MCP clients must send and read the session and protocol headers (and end their
/// session with DELETE), whatever the route's CORS lists say.
fn mcp_cors(cors: &mut Cors) {
    const SEND: [&str; 3] = ["mcp-session-id", "mcp-protocol-version", "last-event-id"];
    const READ: [&str; 2] = ["mcp-session-id", "mcp-protocol-version"];
    let add = |list: &mut Vec<String>, names: &[&str]| {
        if list.iter().any(|h| h == "*") {
            return;
        }
        for name in names {
            if !list.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                list.push(name.to_string());
            }
        }
    };
    add(&mut cors.allow_headers, &SEND);
    add(&mut cors.expose_headers, &READ);
    if !cors.allow_methods.is_empty() {
        add(&mut cors.allow_methods, &["DELETE"]);
    }
}

/// Exact before prefix before regex; longer paths first; then more method/header/query
/// conditions first.
fn precedence(
    m: &RouteMatch,
) -> (
    u8,
    std::cmp::Reverse<usize>,
    bool,
    std::cmp::Reverse<usize>,
    std::cmp::Reverse<usize>,
) {
    let (kind, len) = match &m.path {
        PathMatch::Exact(p) => (0, p.len()),
        PathMatch::PathPrefix(p) => (1, p.len()),
        PathMatch::Regex(r) => (2, r.as_str().len()),
    };
    (
        kind,
        std::cmp::Reverse(len),
        m.method.is_none(),
        std::cmp::Reverse(m.headers.len()),
        std::cmp::Reverse(m.query.len()),
    )
}
