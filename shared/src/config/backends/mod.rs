//! `backends[]` of a route: a plain `host`, an `ai` backend or an `mcp` backend. The
//! envelope (weight, which kind) is here; each kind has its file.

mod ai;
mod mcp;

use serde::{Deserialize, Serialize};

pub use ai::{AiBackend, AiProvider, Azure, AzureResourceType, Bedrock, Provider, RawAi, Vertex};
pub use mcp::{
    FailureMode, McpBackend, McpTarget, McpTargetKind, OpenApiSchema, PrefixMode, RawMcp,
};

use super::path::YamlPath;
use super::policies::{HealthPolicy, RawHealth};
use super::validate::Validator;
use crate::convert::{self, InvalidSnapshot, missing};
use crate::proto::v1 as pb;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackend {
    pub weight: Option<u32>,
    pub host: Option<String>,
    pub ai: Option<RawAi>,
    pub mcp: Option<RawMcp>,
    /// A route group the route delegates to (its only backend; resolved with the route).
    pub route_group: Option<String>,
    pub policies: Option<RawHostPolicies>,
}

/// A `host` backend's own policies (an `ai` provider's are under `ai.policies`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHostPolicies {
    pub health: Option<RawHealth>,
}

/// `backends[]`: where a route's requests go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backend {
    /// Share of requests relative to the route's other backends (default 1).
    pub weight: u32,
    /// What the backend is.
    #[serde(flatten)]
    pub kind: BackendKind,
    /// `policies.health` of a `host` backend: when it is evicted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthPolicy>,
}

/// Exactly one of `host`, `ai` or `mcp`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BackendKind {
    /// A plain HTTP upstream, `host:port`.
    Host(String),
    /// LLM providers in priority groups.
    Ai(AiBackend),
    /// MCP servers multiplexed behind one endpoint.
    Mcp(McpBackend),
}

impl BackendKind {
    /// A short name for logs and metric labels.
    pub fn label(&self) -> String {
        match self {
            BackendKind::Host(h) => h.clone(),
            BackendKind::Ai(ai) => ai
                .groups
                .iter()
                .flatten()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            BackendKind::Mcp(_) => "mcp".to_string(),
        }
    }
}

impl Validator<'_> {
    pub fn backend(&mut self, raw: &RawBackend, path: &YamlPath) -> Option<Backend> {
        let weight = raw.weight.unwrap_or(1);
        let options = [
            ("host", raw.host.is_some()),
            ("ai", raw.ai.is_some()),
            ("mcp", raw.mcp.is_some()),
            ("routeGroup", raw.route_group.is_some()),
        ];
        if !self.exactly_one(path, "a backend", &options) || raw.route_group.is_some() {
            return None;
        }
        let health = raw.policies.as_ref().and_then(|p| p.health.as_ref());
        let health_path = path.key("policies").key("health");
        let health = match health {
            Some(_) if raw.host.is_none() => {
                self.error(
                    &health_path,
                    "a backend's `policies.health` applies to `host` backends; an `ai` provider's goes under `ai.policies.health`",
                );
                None
            }
            Some(h) => self.health(h, &health_path),
            None => None,
        };
        let kind = if let Some(h) = &raw.host {
            BackendKind::Host(self.authority(h, &path.key("host"))?)
        } else if let Some(ai) = &raw.ai {
            BackendKind::Ai(self.ai(ai, &path.key("ai"))?)
        } else {
            BackendKind::Mcp(self.mcp(raw.mcp.as_ref()?, &path.key("mcp"))?)
        };
        Some(Backend {
            weight,
            kind,
            health,
        })
    }
}

impl From<&Backend> for pb::Backend {
    fn from(b: &Backend) -> Self {
        use pb::backend::Kind;
        pb::Backend {
            weight: b.weight,
            kind: Some(match &b.kind {
                BackendKind::Host(h) => Kind::Host(h.clone()),
                BackendKind::Ai(ai) => Kind::Ai(ai.into()),
                BackendKind::Mcp(m) => Kind::Mcp(m.into()),
            }),
            health: b.health.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<pb::Backend> for Backend {
    type Error = InvalidSnapshot;

    fn try_from(b: pb::Backend) -> convert::Result<Backend> {
        use pb::backend::Kind;
        let kind = match b.kind {
            Some(Kind::Host(h)) => BackendKind::Host(h),
            Some(Kind::Ai(ai)) => BackendKind::Ai(convert::nested(ai, "ai")?),
            Some(Kind::Mcp(m)) => BackendKind::Mcp(convert::nested(m, "mcp")?),
            None => return missing(""),
        };
        Ok(Backend {
            weight: b.weight,
            kind,
            health: convert::optional(b.health, "health")?,
        })
    }
}
