//! Serde mirror of the YAML as users write it (agentgateway's local config format).
//!
//! Nothing here is trusted: `validate` turns these into the model. Lists and policies are
//! wrapped in [`Lenient`] so that one bad element does not hide the errors of its siblings.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::path::{Segment, YamlPath};

/// A value decoded on its own. Unknown keys are reported and skipped so decoding can go on
/// and find the remaining errors; any other error leaves no value.
#[derive(Debug)]
pub struct Lenient<T> {
    pub value: Option<T>,
    pub errors: Vec<DecodeError>,
}

/// A decoding error, with the path relative to the [`Lenient`] that caught it.
#[derive(Debug, Clone)]
pub struct DecodeError {
    pub path: YamlPath,
    pub message: String,
    /// The error is about a key (unknown field) rather than a value.
    pub at_key: bool,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = yaml_serde::Value::deserialize(d)?;
        Ok(decode(&value))
    }
}

/// Decodes `value` into `T`, keeping the path of every error.
pub fn decode<T: DeserializeOwned>(value: &yaml_serde::Value) -> Lenient<T> {
    let mut errors = Vec::new();
    let mut current = std::borrow::Cow::Borrowed(value);
    // Each round removes one unknown key; the bound only guards against a pathological file.
    for _ in 0..64 {
        let e = match serde_path_to_error::deserialize::<_, T>(current.as_ref()) {
            Ok(v) => {
                return Lenient {
                    value: Some(v),
                    errors,
                };
            }
            Err(e) => e,
        };
        let mut path = YamlPath::root();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => path.push(Segment::Index(*index)),
                serde_path_to_error::Segment::Map { key } => path.push(Segment::Key(key.clone())),
                serde_path_to_error::Segment::Enum { variant } => {
                    path.push(Segment::Key(variant.clone()))
                }
                _ => {}
            }
        }
        let (message, at_key) = explain(&e.inner().to_string(), &mut path);
        let removable = at_key && remove_at(current.to_mut(), path.segments());
        errors.push(DecodeError {
            path,
            message,
            at_key,
        });
        if !removable {
            break;
        }
    }
    Lenient {
        value: None,
        errors,
    }
}

/// Removes the mapping entry at `path`; false when there is none.
fn remove_at(value: &mut yaml_serde::Value, path: &[Segment]) -> bool {
    match path {
        [] => false,
        [Segment::Key(k)] => value
            .as_mapping_mut()
            .and_then(|m| m.remove(k.as_str()))
            .is_some(),
        [Segment::Index(_)] => false,
        [first, rest @ ..] => {
            let next = match first {
                Segment::Key(k) => value.as_mapping_mut().and_then(|m| m.get_mut(k.as_str())),
                Segment::Index(i) => value.as_sequence_mut().and_then(|s| s.get_mut(*i)),
            };
            next.is_some_and(|n| remove_at(n, rest))
        }
    }
}

/// Rewrites serde's messages for users: unknown names get a "did you mean".
fn explain(message: &str, path: &mut YamlPath) -> (String, bool) {
    for (prefix, what) in [("unknown field `", "field"), ("unknown variant `", "value")] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let Some((name, expected)) = rest.split_once('`') else {
            continue;
        };
        let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let hint = suggest(name, &candidates)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        let known = if candidates.is_empty() {
            String::new()
        } else {
            format!("; expected one of {}", candidates.join(", "))
        };
        let at_key = what == "field";
        if at_key && !path.ends_with_key(name) {
            path.push(Segment::Key(name.to_string()));
        }
        return (format!("unknown {what} `{name}`{hint}{known}"), at_key);
    }
    (message.to_string(), false)
}

/// The closest known name, when one is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfig {
    #[serde(default)]
    pub config: Option<Lenient<RawSettings>>,
    #[serde(default)]
    pub binds: Vec<Lenient<RawBind>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSettings {
    pub admin_addr: Option<String>,
    pub stats_addr: Option<String>,
    pub readiness_addr: Option<String>,
    /// Largest request body accepted, as bytes or a size such as `10MiB`.
    pub max_body_size: Option<yaml_serde::Value>,
    /// How long in-flight requests may take to finish on shutdown or port removal.
    pub drain_timeout: Option<String>,
    pub tracing: Option<Lenient<RawTracing>>,
    pub metrics: Option<Lenient<RawMetrics>>,
    pub logging: Option<Lenient<RawLogging>>,
    pub mcp: Option<Lenient<RawMcpSettings>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMcpSettings {
    /// Idle time after which a session is closed, e.g. `30m`.
    pub session_ttl: Option<String>,
    /// Most live sessions (each stdio target of a session is one child process).
    pub max_sessions: Option<u32>,
    /// Most stdio child processes across all sessions.
    pub max_children: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTracing {
    pub otlp_endpoint: String,
    pub otlp_protocol: Option<String>,
    pub random_sampling: Option<yaml_serde::Value>,
    pub client_sampling: Option<yaml_serde::Value>,
    pub fields: Option<RawFields>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawFields {
    #[serde(default)]
    pub add: IndexMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMetrics {
    pub fields: Option<RawFields>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawLogging {
    pub filter: Option<String>,
    pub fields: Option<RawFields>,
    pub level: Option<String>,
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBind {
    pub port: u16,
    pub listeners: Vec<Lenient<RawListener>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawListener {
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub protocol: Option<String>,
    #[serde(default)]
    pub routes: Vec<Lenient<RawRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRoute {
    pub name: Option<String>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub matches: Vec<Lenient<RawMatch>>,
    pub policies: Option<Lenient<RawPolicies>>,
    #[serde(default)]
    pub backends: Vec<Lenient<RawBackend>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMatch {
    pub path: Option<RawPathMatch>,
    pub method: Option<String>,
    #[serde(default)]
    pub headers: Vec<RawNamedMatch>,
    #[serde(default)]
    pub query: Vec<RawNamedMatch>,
}

/// Exactly one of the fields (checked by validation; serde's enum form needs YAML tags).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPathMatch {
    pub exact: Option<String>,
    pub path_prefix: Option<String>,
    pub regex: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawNamedMatch {
    pub name: String,
    pub value: RawStringMatch,
}

/// Exactly one of the fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawStringMatch {
    pub exact: Option<String>,
    pub regex: Option<String>,
}

/// Route policies. Each is decoded on its own so every bad one is reported.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPolicies {
    pub cors: Option<Lenient<RawCors>>,
    pub backend_auth: Option<Lenient<RawBackendAuth>>,
    pub local_rate_limit: Option<Vec<Lenient<RawRateLimit>>>,
    pub retry: Option<Lenient<RawRetry>>,
    pub url_rewrite: Option<Lenient<RawUrlRewrite>>,
    pub request_header_modifier: Option<Lenient<RawHeaderModifier>>,
    pub response_header_modifier: Option<Lenient<RawHeaderModifier>>,
    pub timeout: Option<Lenient<RawTimeout>>,
    pub ai: Option<Lenient<RawAiPolicy>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCors {
    #[serde(default)]
    pub allow_origins: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    pub max_age: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackendAuth {
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRateLimit {
    pub max_tokens: u64,
    pub tokens_per_fill: u64,
    pub fill_interval: String,
    #[serde(rename = "type")]
    pub kind: Option<RawRateLimitType>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RawRateLimitType {
    Requests,
    Tokens,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRetry {
    pub attempts: Option<u32>,
    pub codes: Vec<u16>,
    pub backoff: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawUrlRewrite {
    pub path: Option<RawPathRewrite>,
}

/// Exactly one of the fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPathRewrite {
    pub full: Option<String>,
    pub prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHeaderModifier {
    #[serde(default)]
    pub add: Vec<RawHeader>,
    #[serde(default)]
    pub set: Vec<RawHeader>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHeader {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTimeout {
    pub request_timeout: Option<String>,
    pub backend_request_timeout: Option<String>,
}

/// `policies.ai`: today only the path -> route-type map.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAiPolicy {
    #[serde(default)]
    pub routes: IndexMap<String, RawRouteType>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RawRouteType {
    Completions,
    Messages,
    Models,
    Passthrough,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackend {
    pub weight: Option<u32>,
    pub host: Option<String>,
    pub ai: Option<RawAi>,
    pub mcp: Option<RawMcp>,
}

/// An `ai` backend: one provider (fields inline) or priority `groups` of providers.
/// Group members use the same shape; validation rejects `groups` nested inside them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAi {
    pub groups: Option<Vec<RawAiGroup>>,
    pub name: Option<String>,
    pub provider: Option<RawProviderKind>,
    pub host_override: Option<String>,
    pub path_override: Option<String>,
    pub path_prefix: Option<String>,
    /// The seed's spelling of the route-type map (agentgateway v0.10).
    pub routes: Option<IndexMap<String, RawRouteType>>,
    pub backend_auth: Option<RawBackendAuth>,
    pub policies: Option<RawBackendPolicies>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAiGroup {
    pub providers: Vec<RawAi>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackendPolicies {
    pub backend_auth: Option<RawBackendAuth>,
    pub ai: Option<RawAiPolicy>,
}

/// Exactly one of the fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProviderKind {
    #[serde(rename = "openAI")]
    pub open_ai: Option<RawModel>,
    pub anthropic: Option<RawModel>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawModel {
    pub model: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMcp {
    pub targets: Vec<Lenient<RawMcpTarget>>,
    pub prefix_mode: Option<RawPrefixMode>,
    pub failure_mode: Option<RawFailureMode>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RawPrefixMode {
    Conditional,
    Always,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RawFailureMode {
    FailOpen,
    FailClosed,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMcpTarget {
    pub name: String,
    pub stdio: Option<RawStdio>,
    pub sse: Option<RawRemoteTarget>,
    pub mcp: Option<RawRemoteTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawStdio {
    pub cmd: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRemoteTarget {
    pub host: String,
}
