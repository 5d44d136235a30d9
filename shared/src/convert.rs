//! Model <-> proto at the boundary of the config stream.
//!
//! `From<&Config> for pb::Config` is what the control plane sends; `TryFrom<pb::Config>` is
//! what a proxy accepts, with an [`InvalidSnapshot`] naming the field when the message is
//! malformed. Secrets arrive as references; [`Config::resolve_secrets`] fills them in from the
//! proxy's own environment. The data plane never routes on these generated types.

use std::time::Duration;

use indexmap::IndexMap;

use crate::config::model::*;
use crate::proto::v1 as pb;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidSnapshot {
    #[error("{0}: missing")]
    Missing(String),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

type Result<T> = std::result::Result<T, InvalidSnapshot>;

fn missing<T>(path: &str) -> Result<T> {
    Err(InvalidSnapshot::Missing(path.to_string()))
}

fn invalid<T>(path: &str, message: impl Into<String>) -> Result<T> {
    Err(InvalidSnapshot::Invalid {
        path: path.to_string(),
        message: message.into(),
    })
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

// === model -> proto ===

impl From<&Config> for pb::Config {
    fn from(c: &Config) -> Self {
        pb::Config {
            settings: Some((&c.settings).into()),
            binds: c.binds.iter().map(Into::into).collect(),
        }
    }
}

fn listen_addr(a: ListenAddr) -> pb::ListenAddr {
    use pb::listen_addr::Kind;
    pb::ListenAddr {
        kind: Some(match a {
            ListenAddr::Default => Kind::Default(true),
            ListenAddr::Off => Kind::Off(true),
            ListenAddr::At(addr) => Kind::At(addr.to_string()),
        }),
    }
}

fn fields(f: &Fields) -> pb::Fields {
    pb::Fields {
        add: f
            .add
            .iter()
            .map(|(n, e)| pb::Field {
                name: n.clone(),
                expression: e.clone(),
            })
            .collect(),
        remove: f.remove.clone(),
    }
}

impl From<&Settings> for pb::Settings {
    fn from(s: &Settings) -> Self {
        pb::Settings {
            admin_addr: Some(listen_addr(s.admin_addr)),
            stats_addr: Some(listen_addr(s.stats_addr)),
            readiness_addr: Some(listen_addr(s.readiness_addr)),
            max_body_size: s.max_body_size,
            drain_timeout_nanos: nanos(s.drain_timeout),
            mcp: Some(pb::McpSettings {
                session_ttl_nanos: nanos(s.mcp.session_ttl),
                max_sessions: s.mcp.max_sessions,
                max_children: s.mcp.max_children,
            }),
            tracing: s.tracing.as_ref().map(|t| pb::Tracing {
                otlp_endpoint: t.otlp_endpoint.clone(),
                random_sampling: t.random_sampling,
                client_sampling: t.client_sampling,
                fields: Some(fields(&t.fields)),
            }),
            metrics: Some(pb::Metrics {
                fields: Some(fields(&s.metrics.fields)),
                remove: s.metrics.remove.clone(),
            }),
            logging: Some(pb::Logging {
                filter: s.logging.filter.clone(),
                fields: Some(fields(&s.logging.fields)),
                level: s.logging.level.clone(),
                format: match s.logging.format {
                    LogFormat::Text => pb::LogFormat::Text,
                    LogFormat::Json => pb::LogFormat::Json,
                } as i32,
            }),
        }
    }
}

impl From<&Bind> for pb::Bind {
    fn from(b: &Bind) -> Self {
        pb::Bind {
            port: u32::from(b.port),
            listeners: b
                .listeners
                .iter()
                .map(|l| pb::Listener {
                    name: l.name.clone(),
                    hostname: l.hostname.clone(),
                    routes: l.routes.iter().map(Into::into).collect(),
                })
                .collect(),
        }
    }
}

fn string_match(m: &StringMatch) -> pb::StringMatch {
    use pb::string_match::Kind;
    pb::StringMatch {
        kind: Some(match m {
            StringMatch::Exact(s) => Kind::Exact(s.clone()),
            StringMatch::Regex(p) => Kind::Regex(p.as_str().to_string()),
        }),
    }
}

fn named(m: &NamedMatch) -> pb::NamedMatch {
    pb::NamedMatch {
        name: m.name.clone(),
        value: Some(string_match(&m.value)),
    }
}

impl From<&Route> for pb::Route {
    fn from(r: &Route) -> Self {
        use pb::path_match::Kind;
        pb::Route {
            name: r.name.clone(),
            hostnames: r.hostnames.clone(),
            matches: r
                .matches
                .iter()
                .map(|m| pb::RouteMatch {
                    path: Some(pb::PathMatch {
                        kind: Some(match &m.path {
                            PathMatch::Exact(p) => Kind::Exact(p.clone()),
                            PathMatch::PathPrefix(p) => Kind::PathPrefix(p.clone()),
                            PathMatch::Regex(p) => Kind::Regex(p.as_str().to_string()),
                        }),
                    }),
                    method: m.method.clone(),
                    headers: m.headers.iter().map(named).collect(),
                    query: m.query.iter().map(named).collect(),
                })
                .collect(),
            policies: Some((&r.policies).into()),
            backends: r.backends.iter().map(Into::into).collect(),
        }
    }
}

fn secret(s: &Secret) -> pb::Secret {
    use pb::secret::Kind;
    pb::Secret {
        kind: Some(match s.reference() {
            Some(r) => Kind::Reference(r.to_string()),
            None => Kind::Value(s.expose().to_string()),
        }),
    }
}

fn backend_auth(a: &BackendAuth) -> pb::BackendAuth {
    pb::BackendAuth {
        key: Some(secret(&a.key)),
    }
}

fn route_types(t: &RouteTypes) -> pb::RouteTypes {
    pb::RouteTypes {
        entries: t
            .0
            .iter()
            .map(|(suffix, kind)| pb::RouteTypeEntry {
                suffix: suffix.clone(),
                route_type: match kind {
                    RouteType::Completions => pb::RouteType::Completions,
                    RouteType::Messages => pb::RouteType::Messages,
                    RouteType::Models => pb::RouteType::Models,
                    RouteType::Passthrough => pb::RouteType::Passthrough,
                } as i32,
            })
            .collect(),
    }
}

fn header_modifier(h: &HeaderModifier) -> pb::HeaderModifier {
    let pairs = |v: &[(String, String)]| {
        v.iter()
            .map(|(n, val)| pb::Header {
                name: n.clone(),
                value: val.clone(),
            })
            .collect()
    };
    pb::HeaderModifier {
        add: pairs(&h.add),
        set: pairs(&h.set),
        remove: h.remove.clone(),
    }
}

impl From<&Policies> for pb::Policies {
    fn from(p: &Policies) -> Self {
        pb::Policies {
            cors: p.cors.as_ref().map(|c| pb::Cors {
                allow_origins: c.allow_origins.clone(),
                allow_headers: c.allow_headers.clone(),
                allow_methods: c.allow_methods.clone(),
                expose_headers: c.expose_headers.clone(),
                allow_credentials: c.allow_credentials,
                max_age_nanos: c.max_age.map(nanos),
            }),
            backend_auth: p.backend_auth.as_ref().map(backend_auth),
            local_rate_limit: p
                .local_rate_limit
                .iter()
                .map(|l| pb::RateLimit {
                    max_tokens: l.max_tokens,
                    tokens_per_fill: l.tokens_per_fill,
                    fill_interval_nanos: nanos(l.fill_interval),
                    kind: match l.kind {
                        RateLimitKind::Requests => pb::RateLimitKind::Requests,
                        RateLimitKind::Tokens => pb::RateLimitKind::Tokens,
                    } as i32,
                })
                .collect(),
            retry: p.retry.as_ref().map(|r| pb::Retry {
                attempts: r.attempts,
                codes: r.codes.iter().map(|c| u32::from(*c)).collect(),
                backoff_nanos: r.backoff.map(nanos),
            }),
            url_rewrite: p.url_rewrite.as_ref().map(|u| pb::UrlRewrite {
                kind: Some(match u {
                    UrlRewrite::Full(f) => pb::url_rewrite::Kind::Full(f.clone()),
                    UrlRewrite::Prefix(x) => pb::url_rewrite::Kind::Prefix(x.clone()),
                }),
            }),
            request_header_modifier: p.request_header_modifier.as_ref().map(header_modifier),
            response_header_modifier: p.response_header_modifier.as_ref().map(header_modifier),
            timeout: p.timeout.as_ref().map(|t| pb::Timeout {
                request_timeout_nanos: t.request_timeout.map(nanos),
                backend_request_timeout_nanos: t.backend_request_timeout.map(nanos),
            }),
            ai_routes: p.ai_routes.as_ref().map(route_types),
        }
    }
}

impl From<&Backend> for pb::Backend {
    fn from(b: &Backend) -> Self {
        use pb::backend::Kind;
        pb::Backend {
            weight: b.weight,
            kind: Some(match &b.kind {
                BackendKind::Host(h) => Kind::Host(h.clone()),
                BackendKind::Ai(ai) => Kind::Ai(pb::AiBackend {
                    groups: ai
                        .groups
                        .iter()
                        .map(|g| pb::ProviderGroup {
                            providers: g.iter().map(ai_provider).collect(),
                        })
                        .collect(),
                }),
                BackendKind::Mcp(m) => Kind::Mcp(pb::McpBackend {
                    targets: m.targets.iter().map(mcp_target).collect(),
                    prefix_mode: match m.prefix_mode {
                        PrefixMode::Conditional => pb::PrefixMode::Conditional,
                        PrefixMode::Always => pb::PrefixMode::Always,
                    } as i32,
                    failure_mode: match m.failure_mode {
                        FailureMode::FailOpen => pb::FailureMode::FailOpen,
                        FailureMode::FailClosed => pb::FailureMode::FailClosed,
                    } as i32,
                }),
            }),
        }
    }
}

fn ai_provider(p: &AiProvider) -> pb::AiProvider {
    pb::AiProvider {
        name: p.name.clone(),
        provider: match p.provider {
            Provider::OpenAi => pb::Provider::Openai,
            Provider::Anthropic => pb::Provider::Anthropic,
        } as i32,
        model: p.model.clone(),
        host_override: p.host_override.clone(),
        path_override: p.path_override.clone(),
        path_prefix: p.path_prefix.clone(),
        routes: p.routes.as_ref().map(route_types),
        backend_auth: p.backend_auth.as_ref().map(backend_auth),
    }
}

fn mcp_target(t: &McpTarget) -> pb::McpTarget {
    use pb::mcp_target::Kind;
    pb::McpTarget {
        name: t.name.clone(),
        kind: Some(match &t.kind {
            McpTargetKind::Stdio { cmd, args, env } => Kind::Stdio(pb::Stdio {
                cmd: cmd.clone(),
                args: args.clone(),
                env: env
                    .iter()
                    .map(|(n, v)| pb::EnvVar {
                        name: n.clone(),
                        value: Some(secret(v)),
                    })
                    .collect(),
            }),
            McpTargetKind::Sse { url } => Kind::SseUrl(url.clone()),
            McpTargetKind::Mcp { url } => Kind::McpUrl(url.clone()),
        }),
    }
}

// === proto -> model ===

fn enum_value<E: TryFrom<i32>>(v: i32, path: &str) -> Result<E> {
    E::try_from(v).or_else(|_| invalid(path, format!("unknown enum value {v}")))
}

fn duration(n: u64) -> Duration {
    Duration::from_nanos(n)
}

fn from_listen_addr(a: Option<pb::ListenAddr>, path: &str) -> Result<ListenAddr> {
    use pb::listen_addr::Kind;
    match a.and_then(|a| a.kind) {
        Some(Kind::Default(_)) => Ok(ListenAddr::Default),
        Some(Kind::Off(_)) => Ok(ListenAddr::Off),
        Some(Kind::At(s)) => s
            .parse()
            .map(ListenAddr::At)
            .or_else(|e| invalid(path, format!("`{s}`: {e}"))),
        None => missing(path),
    }
}

fn from_fields(f: Option<pb::Fields>) -> Fields {
    let f = f.unwrap_or_default();
    Fields {
        add: f.add.into_iter().map(|f| (f.name, f.expression)).collect(),
        remove: f.remove,
    }
}

fn pattern(source: &str, path: &str) -> Result<Pattern> {
    Pattern::new(source).or_else(|e| invalid(path, format!("invalid regex: {e}")))
}

fn from_string_match(m: Option<pb::StringMatch>, path: &str) -> Result<StringMatch> {
    use pb::string_match::Kind;
    match m.and_then(|m| m.kind) {
        Some(Kind::Exact(s)) => Ok(StringMatch::Exact(s)),
        Some(Kind::Regex(r)) => pattern(&r, path).map(StringMatch::Regex),
        None => missing(path),
    }
}

fn from_named(list: Vec<pb::NamedMatch>, path: &str) -> Result<Vec<NamedMatch>> {
    list.into_iter()
        .enumerate()
        .map(|(i, m)| {
            Ok(NamedMatch {
                name: m.name,
                value: from_string_match(m.value, &format!("{path}[{i}].value"))?,
            })
        })
        .collect()
}

fn from_secret(s: Option<pb::Secret>, path: &str) -> Result<Secret> {
    use pb::secret::Kind;
    match s.and_then(|s| s.kind) {
        Some(Kind::Reference(r)) => Ok(Secret::unresolved(r)),
        Some(Kind::Value(v)) => Ok(Secret::new(v, None)),
        None => missing(path),
    }
}

fn from_auth(a: pb::BackendAuth, path: &str) -> Result<BackendAuth> {
    Ok(BackendAuth {
        key: from_secret(a.key, &format!("{path}.key"))?,
    })
}

fn from_route_types(t: pb::RouteTypes, path: &str) -> Result<RouteTypes> {
    let entries = t
        .entries
        .into_iter()
        .map(|e| {
            let kind = match enum_value::<pb::RouteType>(e.route_type, path)? {
                pb::RouteType::Completions => RouteType::Completions,
                pb::RouteType::Messages => RouteType::Messages,
                pb::RouteType::Models => RouteType::Models,
                pb::RouteType::Passthrough => RouteType::Passthrough,
            };
            Ok((e.suffix, kind))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RouteTypes(entries))
}

fn from_header_modifier(h: pb::HeaderModifier) -> HeaderModifier {
    let pairs = |v: Vec<pb::Header>| v.into_iter().map(|h| (h.name, h.value)).collect();
    HeaderModifier {
        add: pairs(h.add),
        set: pairs(h.set),
        remove: h.remove,
    }
}

impl TryFrom<pb::Config> for Config {
    type Error = InvalidSnapshot;

    fn try_from(c: pb::Config) -> Result<Config> {
        let Some(s) = c.settings else {
            return missing("settings");
        };
        let tracing = match s.tracing {
            Some(t) => Some(Tracing {
                otlp_endpoint: t.otlp_endpoint,
                random_sampling: t.random_sampling,
                client_sampling: t.client_sampling,
                fields: from_fields(t.fields),
            }),
            None => None,
        };
        let metrics = s.metrics.unwrap_or_default();
        let logging = s.logging.unwrap_or_default();
        let settings = Settings {
            admin_addr: from_listen_addr(s.admin_addr, "settings.adminAddr")?,
            stats_addr: from_listen_addr(s.stats_addr, "settings.statsAddr")?,
            readiness_addr: from_listen_addr(s.readiness_addr, "settings.readinessAddr")?,
            max_body_size: s.max_body_size,
            drain_timeout: duration(s.drain_timeout_nanos),
            mcp: match s.mcp {
                Some(m) if m.max_sessions > 0 && m.max_children > 0 => McpSettings {
                    session_ttl: duration(m.session_ttl_nanos),
                    max_sessions: m.max_sessions,
                    max_children: m.max_children,
                },
                Some(_) => {
                    return invalid(
                        "settings.mcp",
                        "maxSessions and maxChildren must be at least 1",
                    );
                }
                None => McpSettings::default(),
            },
            tracing,
            metrics: Metrics {
                fields: from_fields(metrics.fields),
                remove: metrics.remove,
            },
            logging: Logging {
                format: match enum_value(logging.format, "settings.logging.format")? {
                    pb::LogFormat::Text => LogFormat::Text,
                    pb::LogFormat::Json => LogFormat::Json,
                },
                filter: logging.filter,
                fields: from_fields(logging.fields),
                level: logging.level,
            },
        };
        let binds = c
            .binds
            .into_iter()
            .enumerate()
            .map(|(i, b)| from_bind(b, &format!("binds[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Config { settings, binds })
    }
}

fn from_bind(b: pb::Bind, path: &str) -> Result<Bind> {
    let port = u16::try_from(b.port)
        .or_else(|_| invalid(&format!("{path}.port"), format!("{} is not a port", b.port)))?;
    let listeners = b
        .listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let lp = format!("{path}.listeners[{i}]");
            let routes = l
                .routes
                .into_iter()
                .enumerate()
                .map(|(j, r)| from_route(r, &format!("{lp}.routes[{j}]")))
                .collect::<Result<Vec<_>>>()?;
            Ok(Listener {
                name: l.name,
                hostname: l.hostname,
                routes,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Bind { port, listeners })
}

fn from_route(r: pb::Route, path: &str) -> Result<Route> {
    use pb::path_match::Kind;
    let matches = r
        .matches
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let mp = format!("{path}.matches[{i}]");
            let path_match = match m.path.and_then(|p| p.kind) {
                Some(Kind::Exact(p)) => PathMatch::Exact(p),
                Some(Kind::PathPrefix(p)) => PathMatch::PathPrefix(p),
                Some(Kind::Regex(r)) => PathMatch::Regex(pattern(&r, &format!("{mp}.path.regex"))?),
                None => return missing(&format!("{mp}.path")),
            };
            Ok(RouteMatch {
                path: path_match,
                method: m.method,
                headers: from_named(m.headers, &format!("{mp}.headers"))?,
                query: from_named(m.query, &format!("{mp}.query"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if matches.is_empty() {
        return missing(&format!("{path}.matches"));
    }
    let policies = from_policies(r.policies.unwrap_or_default(), &format!("{path}.policies"))?;
    let backends = r
        .backends
        .into_iter()
        .enumerate()
        .map(|(i, b)| from_backend(b, &format!("{path}.backends[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Route {
        name: r.name,
        hostnames: r.hostnames,
        matches,
        policies,
        backends,
    })
}

fn from_policies(p: pb::Policies, path: &str) -> Result<Policies> {
    let local_rate_limit = p
        .local_rate_limit
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let lp = format!("{path}.localRateLimit[{i}]");
            if l.fill_interval_nanos == 0 || l.max_tokens == 0 || l.max_tokens > u64::from(u32::MAX)
            {
                return invalid(
                    &lp,
                    "maxTokens must be in 1..=4294967295 and fillInterval positive",
                );
            }
            Ok(RateLimit {
                max_tokens: l.max_tokens,
                tokens_per_fill: l.tokens_per_fill,
                fill_interval: duration(l.fill_interval_nanos),
                kind: match enum_value(l.kind, &lp)? {
                    pb::RateLimitKind::Requests => RateLimitKind::Requests,
                    pb::RateLimitKind::Tokens => RateLimitKind::Tokens,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let retry = match p.retry {
        Some(r) => Some(Retry {
            attempts: r.attempts.max(1),
            codes: r
                .codes
                .into_iter()
                .map(|c| {
                    u16::try_from(c).or_else(|_| {
                        invalid(
                            &format!("{path}.retry.codes"),
                            format!("{c} is not a status"),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            backoff: r.backoff_nanos.map(duration),
        }),
        None => None,
    };
    let url_rewrite = match p.url_rewrite.map(|u| u.kind) {
        Some(Some(pb::url_rewrite::Kind::Full(f))) => Some(UrlRewrite::Full(f)),
        Some(Some(pb::url_rewrite::Kind::Prefix(x))) => Some(UrlRewrite::Prefix(x)),
        Some(None) => return missing(&format!("{path}.urlRewrite")),
        None => None,
    };
    Ok(Policies {
        cors: p.cors.map(|c| Cors {
            allow_origins: c.allow_origins,
            allow_headers: c.allow_headers,
            allow_methods: c.allow_methods,
            expose_headers: c.expose_headers,
            allow_credentials: c.allow_credentials,
            max_age: c.max_age_nanos.map(duration),
        }),
        backend_auth: p
            .backend_auth
            .map(|a| from_auth(a, &format!("{path}.backendAuth")))
            .transpose()?,
        local_rate_limit,
        retry,
        url_rewrite,
        request_header_modifier: p.request_header_modifier.map(from_header_modifier),
        response_header_modifier: p.response_header_modifier.map(from_header_modifier),
        timeout: p.timeout.map(|t| Timeout {
            request_timeout: t.request_timeout_nanos.map(duration),
            backend_request_timeout: t.backend_request_timeout_nanos.map(duration),
        }),
        ai_routes: p
            .ai_routes
            .map(|t| from_route_types(t, &format!("{path}.ai.routes")))
            .transpose()?,
    })
}

fn from_backend(b: pb::Backend, path: &str) -> Result<Backend> {
    use pb::backend::Kind;
    let kind = match b.kind {
        Some(Kind::Host(h)) => BackendKind::Host(h),
        Some(Kind::Ai(ai)) => {
            let groups = ai
                .groups
                .into_iter()
                .enumerate()
                .map(|(g, group)| {
                    group
                        .providers
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| {
                            from_provider(p, &format!("{path}.ai.groups[{g}].providers[{i}]"))
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()?;
            if groups.iter().all(Vec::is_empty) {
                return missing(&format!("{path}.ai.groups"));
            }
            BackendKind::Ai(AiBackend { groups })
        }
        Some(Kind::Mcp(m)) => BackendKind::Mcp(McpBackend {
            prefix_mode: match enum_value(m.prefix_mode, &format!("{path}.mcp.prefixMode"))? {
                pb::PrefixMode::Conditional => PrefixMode::Conditional,
                pb::PrefixMode::Always => PrefixMode::Always,
            },
            failure_mode: match enum_value(m.failure_mode, &format!("{path}.mcp.failureMode"))? {
                pb::FailureMode::FailOpen => FailureMode::FailOpen,
                pb::FailureMode::FailClosed => FailureMode::FailClosed,
            },
            targets: m
                .targets
                .into_iter()
                .enumerate()
                .map(|(i, t)| from_target(t, &format!("{path}.mcp.targets[{i}]")))
                .collect::<Result<Vec<_>>>()?,
        }),
        None => return missing(path),
    };
    Ok(Backend {
        weight: b.weight,
        kind,
    })
}

fn from_provider(p: pb::AiProvider, path: &str) -> Result<AiProvider> {
    Ok(AiProvider {
        provider: match enum_value(p.provider, &format!("{path}.provider"))? {
            pb::Provider::Openai => Provider::OpenAi,
            pb::Provider::Anthropic => Provider::Anthropic,
        },
        name: p.name,
        model: p.model,
        host_override: p.host_override,
        path_override: p.path_override,
        path_prefix: p.path_prefix,
        routes: p
            .routes
            .map(|t| from_route_types(t, &format!("{path}.routes")))
            .transpose()?,
        backend_auth: p
            .backend_auth
            .map(|a| from_auth(a, &format!("{path}.backendAuth")))
            .transpose()?,
    })
}

fn from_target(t: pb::McpTarget, path: &str) -> Result<McpTarget> {
    use pb::mcp_target::Kind;
    let kind = match t.kind {
        Some(Kind::Stdio(s)) => McpTargetKind::Stdio {
            cmd: s.cmd,
            args: s.args,
            env: s
                .env
                .into_iter()
                .map(|e| {
                    let value = from_secret(e.value, &format!("{path}.stdio.env.{}", e.name))?;
                    Ok((e.name, value))
                })
                .collect::<Result<IndexMap<_, _>>>()?,
        },
        Some(Kind::SseUrl(url)) => McpTargetKind::Sse { url },
        Some(Kind::McpUrl(url)) => McpTargetKind::Mcp { url },
        None => return missing(path),
    };
    Ok(McpTarget { name: t.name, kind })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::tests::seed;
    use crate::config::{LoadMode, load_str_with};

    #[test]
    fn every_seed_config_round_trips_and_secrets_travel_as_references() {
        for name in [
            "local-rate-limit.yaml",
            "model-failover.yaml",
            "metrics-testing.yaml",
            "mcp-endpoint.yaml",
            "model-failover.agw.yaml",
        ] {
            let config =
                load_str_with(&seed(name), name, &HashMap::new(), LoadMode::DeferSecrets).unwrap();
            let wire = pb::Config::from(&config);
            let text = format!("{wire:?}");
            assert!(!text.contains("sk-"), "{text}");
            let mut back = Config::try_from(wire).unwrap();
            assert_eq!(back, config, "{name}");
            let env = HashMap::from([
                ("OPENAI_API_KEY".to_string(), "sk-o".to_string()),
                ("ANTHROPIC_API_KEY".to_string(), "sk-a".to_string()),
            ]);
            back.resolve_secrets(&env).unwrap();
        }
    }

    #[test]
    fn malformed_messages_name_the_field() {
        let mut wire = pb::Config::from(
            &load_str_with(
                &seed("model-failover.yaml"),
                "f",
                &HashMap::new(),
                LoadMode::DeferSecrets,
            )
            .unwrap(),
        );
        wire.binds[0].listeners[0].routes[0].matches[0].path = None;
        assert_eq!(
            Config::try_from(wire).unwrap_err(),
            InvalidSnapshot::Missing("binds[0].listeners[0].routes[0].matches[0].path".into())
        );
    }

    #[test]
    fn unset_references_are_reported_by_resolve() {
        let config = load_str_with(
            &seed("local-rate-limit.yaml"),
            "f",
            &HashMap::new(),
            LoadMode::DeferSecrets,
        )
        .unwrap();
        let mut back = Config::try_from(pb::Config::from(&config)).unwrap();
        let err = back.resolve_secrets(&HashMap::new()).unwrap_err();
        assert_eq!(err, vec!["OPENAI_API_KEY".to_string()]);
    }
}
