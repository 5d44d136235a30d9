//! `ai` backends: LLM providers, one inline or several in priority `groups` (failover).

use std::collections::HashSet;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::config::model::Invalid;
use crate::config::path::YamlPath;
use crate::config::policies::{
    AiPolicy, BackendAuth, BackendTls, HealthPolicy, Policies, RawAiPolicy, RawBackendAuth,
    RawBackendTls, RawHealth, RawRouteType,
};
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot, enum_value};
use crate::proto::v1 as pb;

/// An `ai` backend: one provider (fields inline) or priority `groups` of providers.
/// Group members use the same shape; validation rejects `groups` nested inside them.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
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

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAiGroup {
    pub providers: Vec<RawAi>,
}

/// A provider's own `policies` (the backend level): the three it accepts today.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBackendPolicies {
    pub backend_auth: Option<RawBackendAuth>,
    pub ai: Option<RawAiPolicy>,
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<RawBackendTls>,
    pub health: Option<RawHealth>,
}

/// Exactly one of the fields.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProviderKind {
    #[serde(rename = "openAI")]
    pub open_ai: Option<RawModel>,
    pub anthropic: Option<RawModel>,
    pub gemini: Option<RawModel>,
    pub azure: Option<RawAzure>,
    pub vertex: Option<RawVertex>,
    pub bedrock: Option<RawBedrock>,
}

/// `provider.vertex`, agentgateway's spelling.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawVertex {
    pub model: Option<String>,
    pub region: Option<String>,
    pub project_id: String,
}

/// A Vertex AI provider's project and region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Vertex {
    pub project_id: String,
    /// `None` is `global` (`aiplatform.googleapis.com`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// `provider.bedrock`, agentgateway's spelling.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawBedrock {
    pub model: Option<String>,
    pub region: String,
    pub guardrail_identifier: Option<String>,
    pub guardrail_version: Option<String>,
}

/// A Bedrock provider's region and guardrail.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bedrock {
    /// `bedrock-runtime.{region}.amazonaws.com`, and the signing region by default.
    pub region: String,
    /// Sent in each Converse request's `guardrailConfig` (with `guardrailVersion`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardrail_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guardrail_version: Option<String>,
}

/// `provider.azure`, agentgateway's spelling.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAzure {
    pub model: Option<String>,
    pub resource_name: String,
    pub resource_type: AzureResourceType,
    pub api_version: Option<String>,
    pub project_name: Option<String>,
}

/// Which Azure endpoint a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum AzureResourceType {
    /// Azure OpenAI: `{resourceName}.openai.azure.com`.
    #[serde(rename = "openAI")]
    OpenAi,
    /// Azure AI Foundry: `{resourceName}-resource.services.ai.azure.com`, project paths.
    #[serde(rename = "foundry", alias = "aiServices")]
    Foundry,
}

/// An Azure provider's endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Azure {
    pub resource_name: String,
    pub resource_type: AzureResourceType,
    /// `v1` (the default), `preview`, or a dated version (deployment paths).
    pub api_version: String,
    /// Foundry's project (the resource name when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawModel {
    pub model: Option<String>,
}

/// Providers in priority tiers: `groups[0]` first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AiBackend {
    /// Never empty, no group empty, provider names unique across groups.
    pub groups: Vec<Vec<AiProvider>>,
}

impl AiBackend {
    /// Non-empty groups of uniquely named providers.
    pub(crate) fn new(groups: Vec<Vec<AiProvider>>) -> Result<AiBackend, Vec<Invalid>> {
        let mut problems = Vec::new();
        if groups.is_empty() {
            problems.push(Invalid::at("groups", "`groups` needs at least one group"));
        }
        for (i, group) in groups.iter().enumerate() {
            if group.is_empty() {
                problems.push(Invalid::at(
                    &format!("groups[{i}].providers"),
                    "a group needs at least one provider",
                ));
            }
        }
        let mut names = HashSet::new();
        for p in groups.iter().flatten() {
            if !names.insert(p.name.clone()) {
                problems.push(Invalid::at(
                    "",
                    format!("provider name `{}` is used twice in this backend", p.name),
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(AiBackend { groups })
    }
}

/// One LLM provider of an `ai` backend.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AiProvider {
    /// Unique in the backend; the metric and log label.
    pub name: String,
    /// Which API it speaks.
    pub provider: Provider,
    /// Model sent upstream, replacing the client's; `None` keeps the client's.
    pub model: Option<String>,
    /// `host:port` instead of the provider's public endpoint.
    pub host_override: Option<String>,
    /// Path sent upstream instead of the provider's.
    pub path_override: Option<String>,
    /// Prefix put before the provider's path.
    pub path_prefix: Option<String>,
    /// Backend-level `policies.ai` (its `routes` may also be written inline as `routes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ai: Option<AiPolicy>,
    /// Backend-level `backendAuth` (inline or `policies.backendAuth`).
    pub backend_auth: Option<BackendAuth>,
    /// Backend-level `policies.backendTLS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "backendTLS")]
    pub backend_tls: Option<BackendTls>,
    /// `policies.health`: when the provider is evicted; unset, a failed provider is ejected
    /// for 10 s, doubling on each repeat up to 5 min.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthPolicy>,
    /// `provider.azure`'s endpoint (Azure providers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azure: Option<Azure>,
    /// `provider.vertex`'s project and region (Vertex providers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vertex: Option<Vertex>,
    /// `provider.bedrock`'s region and guardrail (Bedrock providers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bedrock: Option<Bedrock>,
}

impl AiProvider {
    /// A provider `name` of kind `provider` with nothing else set (its API's defaults).
    pub fn named(name: &str, provider: Provider) -> AiProvider {
        AiProvider {
            name: name.into(),
            provider,
            model: None,
            host_override: None,
            path_override: None,
            path_prefix: None,
            ai: None,
            health: None,
            azure: None,
            vertex: None,
            bedrock: None,
            backend_auth: None,
            backend_tls: None,
        }
    }

    /// The policies attached to this provider (the backend level), to be combined with the
    /// route's by [`Policies::effective`].
    pub fn policies(&self) -> Policies {
        Policies {
            backend_auth: self.backend_auth.clone(),
            ai: self.ai.clone(),
            backend_tls: self.backend_tls.clone(),
            ..Policies::default()
        }
    }
}

/// `provider`: the API an `ai` provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Provider {
    /// `openAI`: OpenAI's chat completions API.
    #[serde(rename = "openAI")]
    OpenAi,
    /// `anthropic`: Anthropic's messages API.
    Anthropic,
    /// `gemini`: Google AI Studio, through its OpenAI-compatible API (as agentgateway).
    Gemini,
    /// `azure`: Azure OpenAI or AI Foundry (OpenAI's API on Azure's paths, `api-key`).
    Azure,
    /// `vertex`: Vertex AI, Gemini models (OpenAI-compatible endpoint) and Anthropic models
    /// (`rawPredict`), with Google access tokens.
    Vertex,
    /// `bedrock`: Amazon Bedrock's Converse API, requests signed with SigV4.
    Bedrock,
}

impl Validator<'_> {
    pub fn ai(&mut self, raw: &RawAi, path: &YamlPath) -> Option<AiBackend> {
        let Some(raw_groups) = &raw.groups else {
            let provider = self.ai_provider(raw, path)?;
            return self.checked(AiBackend::new(vec![vec![provider]]), path);
        };
        if raw.provider.is_some() || raw.name.is_some() {
            self.error(
                path,
                "an `ai` backend has either `groups` or one inline provider, not both",
            );
        }
        let mut groups = Vec::new();
        for (gi, g) in raw_groups.iter().enumerate() {
            let gp = path.key("groups").index(gi);
            let mut tier = Vec::new();
            for (pi, p) in g.providers.iter().enumerate() {
                let pp = gp.key("providers").index(pi);
                if p.groups.is_some() {
                    self.key_error(
                        &pp.key("groups"),
                        "groups cannot be nested inside a provider",
                    );
                }
                tier.extend(self.ai_provider(p, &pp));
            }
            groups.push(tier);
        }
        let built = AiBackend::new(groups).map_err(|problems| {
            // A group whose providers were written but failed is reported already.
            problems
                .into_iter()
                .filter(|p| {
                    !raw_groups.iter().enumerate().any(|(i, g)| {
                        !g.providers.is_empty() && p.is_at(&format!("groups[{i}].providers"))
                    })
                })
                .collect()
        });
        self.checked(built, path)
    }

    fn ai_provider(&mut self, raw: &RawAi, path: &YamlPath) -> Option<AiProvider> {
        let Some(name) = raw.name.clone() else {
            self.error(path, "missing field `name`");
            return None;
        };
        let Some(kind) = &raw.provider else {
            self.error(
                path,
                "missing field `provider` (openAI, anthropic, gemini, azure, vertex or bedrock)",
            );
            return None;
        };
        let options = [
            ("openAI", kind.open_ai.is_some()),
            ("anthropic", kind.anthropic.is_some()),
            ("gemini", kind.gemini.is_some()),
            ("azure", kind.azure.is_some()),
            ("vertex", kind.vertex.is_some()),
            ("bedrock", kind.bedrock.is_some()),
        ];
        if !self.exactly_one(&path.key("provider"), "a provider", &options) {
            return None;
        }
        let azure = kind.azure.as_ref().map(|a| Azure {
            resource_name: a.resource_name.clone(),
            resource_type: a.resource_type,
            api_version: a.api_version.clone().unwrap_or_else(|| "v1".to_string()),
            project_name: a.project_name.clone(),
        });
        let vertex = kind.vertex.as_ref().map(|v| Vertex {
            project_id: v.project_id.clone(),
            region: v.region.clone(),
        });
        let (provider, model) = match (&kind.open_ai, &kind.anthropic, &kind.gemini, &kind.azure) {
            (Some(m), ..) => (Provider::OpenAi, m.model.clone()),
            (None, Some(m), ..) => (Provider::Anthropic, m.model.clone()),
            (None, None, Some(m), _) => (Provider::Gemini, m.model.clone()),
            (None, None, None, Some(a)) => (Provider::Azure, a.model.clone()),
            (None, None, None, None) => match (&kind.vertex, &kind.bedrock) {
                (Some(v), _) => (Provider::Vertex, v.model.clone()),
                (None, b) => (Provider::Bedrock, b.as_ref()?.model.clone()),
            },
        };
        if let Some(v) = &kind.vertex {
            // Both become part of the host name and path.
            let label =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            let vp = path.key("provider").key("vertex");
            if !label(&v.project_id) {
                self.error(
                    &vp.key("projectId"),
                    "`projectId` is a Google Cloud project id (letters, digits and `-`)",
                );
                return None;
            }
            if let Some(r) = &v.region
                && !label(r)
            {
                self.error(
                    &vp.key("region"),
                    "`region` is a Google Cloud location (`us-central1`, `global`)",
                );
                return None;
            }
        }
        let bedrock = kind
            .bedrock
            .as_ref()
            .map(|b| self.bedrock(b, &path.key("provider").key("bedrock")));
        if let Some(a) = &azure
            && (a.resource_name.is_empty()
                || a.resource_name
                    .contains(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        {
            self.error(
                &path.key("provider").key("azure").key("resourceName"),
                "`resourceName` is an Azure resource name (letters, digits and `-`)",
            );
            return None;
        }
        let host_override = match &raw.host_override {
            Some(h) => Some(self.authority(h, &path.key("hostOverride"))?),
            None => None,
        };
        for (key, v) in [
            ("pathOverride", &raw.path_override),
            ("pathPrefix", &raw.path_prefix),
        ] {
            if let Some(v) = v {
                self.absolute(v, &path.key(key));
            }
        }
        let policies = raw.policies.as_ref();
        let inline_routes = raw
            .routes
            .as_ref()
            .map(|r| self.route_types(r, &path.key("routes")));
        let mut ai = policies
            .and_then(|p| p.ai.as_ref())
            .and_then(|a| self.ai_policy(a, &path.key("policies").key("ai")));
        if inline_routes.is_some() && ai.as_ref().is_some_and(|a| a.routes.is_some()) {
            self.error(
                path,
                "route types are set both in `routes` and `policies.ai.routes`; keep one",
            );
        }
        if let Some(routes) = inline_routes {
            ai.get_or_insert_default().routes = Some(routes);
        }
        let auth = match (
            &raw.backend_auth,
            policies.and_then(|p| p.backend_auth.as_ref()),
        ) {
            (Some(_), Some(_)) => {
                self.error(
                    path,
                    "backendAuth is set both inline and under `policies`; keep one",
                );
                None
            }
            (Some(a), None) => self.backend_auth(a, &path.key("backendAuth")),
            (None, Some(a)) => self.backend_auth(a, &path.key("policies").key("backendAuth")),
            (None, None) => None,
        };
        if matches!(auth, Some(BackendAuth::Aws(_))) && provider != Provider::Bedrock {
            self.error(
                path,
                "backendAuth.aws signs requests to bedrock providers only",
            );
        }
        if let Some(BackendAuth::Passthrough { .. }) = auth {
            self.error(
                path,
                "backendAuth.passthrough is a route policy (the route's `policies`), not a provider's",
            );
        }
        let backend_tls = policies
            .and_then(|p| p.backend_tls.as_ref())
            .and_then(|t| self.backend_tls(t, &path.key("policies").key("backendTLS")));
        let health = policies
            .and_then(|p| p.health.as_ref())
            .and_then(|h| self.health(h, &path.key("policies").key("health")));
        Some(AiProvider {
            azure,
            vertex,
            bedrock,
            health,
            name,
            provider,
            model,
            host_override,
            path_override: raw.path_override.clone(),
            path_prefix: raw.path_prefix.clone(),
            ai,
            backend_auth: auth,
            backend_tls,
        })
    }
}

impl Validator<'_> {
    fn bedrock(&mut self, raw: &RawBedrock, path: &YamlPath) -> Bedrock {
        self.aws_region(&raw.region, &path.key("region"));
        if raw.guardrail_identifier.is_some() != raw.guardrail_version.is_some() {
            self.error(
                path,
                "`guardrailIdentifier` and `guardrailVersion` go together",
            );
        }
        Bedrock {
            region: raw.region.clone(),
            guardrail_identifier: raw.guardrail_identifier.clone(),
            guardrail_version: raw.guardrail_version.clone(),
        }
    }
}

impl From<&AiBackend> for pb::AiBackend {
    fn from(ai: &AiBackend) -> Self {
        pb::AiBackend {
            groups: ai
                .groups
                .iter()
                .map(|g| pb::ProviderGroup {
                    providers: g.iter().map(Into::into).collect(),
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::AiBackend> for AiBackend {
    type Error = InvalidSnapshot;

    fn try_from(ai: pb::AiBackend) -> convert::Result<AiBackend> {
        let groups = ai
            .groups
            .into_iter()
            .enumerate()
            .map(|(i, g)| {
                convert::each(g.providers, "providers")
                    .map_err(|e| e.within(&format!("groups[{i}]")))
            })
            .collect::<convert::Result<Vec<_>>>()?;
        AiBackend::new(groups).map_err(InvalidSnapshot::from)
    }
}

impl From<&AiProvider> for pb::AiProvider {
    fn from(p: &AiProvider) -> Self {
        pb::AiProvider {
            name: p.name.clone(),
            provider: match p.provider {
                Provider::OpenAi => pb::Provider::Openai,
                Provider::Anthropic => pb::Provider::Anthropic,
                Provider::Gemini => pb::Provider::Gemini,
                Provider::Azure => pb::Provider::Azure,
                Provider::Vertex => pb::Provider::Vertex,
                Provider::Bedrock => pb::Provider::Bedrock,
            } as i32,
            model: p.model.clone(),
            host_override: p.host_override.clone(),
            path_override: p.path_override.clone(),
            path_prefix: p.path_prefix.clone(),
            ai: p.ai.as_ref().map(Into::into),
            health: p.health.as_ref().map(Into::into),
            azure: p.azure.as_ref().map(|a| pb::Azure {
                resource_name: a.resource_name.clone(),
                foundry: a.resource_type == AzureResourceType::Foundry,
                api_version: a.api_version.clone(),
                project_name: a.project_name.clone(),
            }),
            vertex: p.vertex.as_ref().map(|v| pb::Vertex {
                project_id: v.project_id.clone(),
                region: v.region.clone(),
            }),
            bedrock: p.bedrock.as_ref().map(|b| pb::Bedrock {
                region: b.region.clone(),
                guardrail_identifier: b.guardrail_identifier.clone(),
                guardrail_version: b.guardrail_version.clone(),
            }),
            backend_auth: p.backend_auth.as_ref().map(Into::into),
            backend_tls: p.backend_tls.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<pb::AiProvider> for AiProvider {
    type Error = InvalidSnapshot;

    fn try_from(p: pb::AiProvider) -> convert::Result<AiProvider> {
        if p.provider == pb::Provider::Azure as i32 && p.azure.is_none() {
            return convert::missing("azure");
        }
        if p.provider == pb::Provider::Vertex as i32 && p.vertex.is_none() {
            return convert::missing("vertex");
        }
        if p.provider == pb::Provider::Bedrock as i32 && p.bedrock.is_none() {
            return convert::missing("bedrock");
        }
        Ok(AiProvider {
            provider: match enum_value(p.provider, "provider")? {
                pb::Provider::Openai => Provider::OpenAi,
                pb::Provider::Anthropic => Provider::Anthropic,
                pb::Provider::Gemini => Provider::Gemini,
                pb::Provider::Azure => Provider::Azure,
                pb::Provider::Vertex => Provider::Vertex,
                pb::Provider::Bedrock => Provider::Bedrock,
            },
            vertex: p.vertex.map(|v| Vertex {
                project_id: v.project_id,
                region: v.region,
            }),
            bedrock: p.bedrock.map(|b| Bedrock {
                region: b.region,
                guardrail_identifier: b.guardrail_identifier,
                guardrail_version: b.guardrail_version,
            }),
            azure: p.azure.map(|a| Azure {
                resource_name: a.resource_name,
                resource_type: if a.foundry {
                    AzureResourceType::Foundry
                } else {
                    AzureResourceType::OpenAi
                },
                api_version: a.api_version,
                project_name: a.project_name,
            }),
            name: p.name,
            model: p.model,
            host_override: p.host_override,
            path_override: p.path_override,
            path_prefix: p.path_prefix,
            ai: convert::optional(p.ai, "ai")?,
            health: convert::optional(p.health, "health")?,
            backend_auth: convert::optional(p.backend_auth, "backendAuth")?,
            backend_tls: convert::optional(p.backend_tls, "backendTLS")?,
        })
    }
}
