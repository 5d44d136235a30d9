//! `policies.ai`: how `ai` backends read requests: the path -> route-type map, and the
//! request edits agentgateway's `prompts`, `modelAliases`, `defaults` and `overrides` make.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::model::Invalid;
use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot, enum_value};
use crate::proto::v1 as pb;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAiPolicy {
    #[serde(default)]
    pub routes: IndexMap<String, RawRouteType>,
    pub prompts: Option<RawPrompts>,
    #[serde(default)]
    pub model_aliases: IndexMap<String, String>,
    #[serde(default)]
    pub defaults: IndexMap<String, Value>,
    #[serde(default)]
    pub overrides: IndexMap<String, Value>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawPrompts {
    #[serde(default)]
    pub prepend: Vec<PromptMessage>,
    #[serde(default)]
    pub append: Vec<PromptMessage>,
}

/// A message the gateway adds to a request (`prompts.prepend` / `append`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptMessage {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// `prompts`: messages put before and after the client's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Prompts {
    pub prepend: Vec<PromptMessage>,
    pub append: Vec<PromptMessage>,
}

/// `policies.ai`. Each part is set or not on its own: levels combine part by part (see
/// [`AiPolicy::effective`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AiPolicy {
    /// `routes`: the path -> route-type map.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<RouteTypes>,
    /// `prompts`: messages added to chat requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompts: Option<Prompts>,
    /// `modelAliases`: requested model (exact, or a pattern with `*`) -> model sent.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub model_aliases: IndexMap<String, String>,
    /// `defaults`: top-level request fields set when the client did not.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub defaults: IndexMap<String, Value>,
    /// `overrides`: top-level request fields set whatever the client sent.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub overrides: IndexMap<String, Value>,
}

impl AiPolicy {
    /// The parts in force where every level applies, least specific first: per part, the last
    /// level that sets it.
    pub fn effective<'a>(
        levels: impl DoubleEndedIterator<Item = &'a AiPolicy> + Clone,
    ) -> Option<AiPolicy> {
        fn last<'a, T: Clone + 'a>(
            levels: impl DoubleEndedIterator<Item = &'a AiPolicy>,
            part: impl Fn(&'a AiPolicy) -> Option<&'a T>,
        ) -> Option<T> {
            levels.rev().find_map(part).cloned()
        }
        let merged = AiPolicy {
            routes: last(levels.clone(), |a| a.routes.as_ref()),
            prompts: last(levels.clone(), |a| a.prompts.as_ref()),
            model_aliases: last(levels.clone(), |a| {
                Some(&a.model_aliases).filter(|m| !m.is_empty())
            })
            .unwrap_or_default(),
            defaults: last(levels.clone(), |a| {
                Some(&a.defaults).filter(|m| !m.is_empty())
            })
            .unwrap_or_default(),
            overrides: last(levels, |a| Some(&a.overrides).filter(|m| !m.is_empty()))
                .unwrap_or_default(),
        };
        (merged != AiPolicy::default()).then_some(merged)
    }

    /// Whether the policy changes request bodies (beyond choosing the route type).
    pub fn edits_requests(&self) -> bool {
        self.prompts.is_some()
            || !self.model_aliases.is_empty()
            || !self.defaults.is_empty()
            || !self.overrides.is_empty()
    }

    fn new(policy: AiPolicy) -> Result<AiPolicy, Vec<Invalid>> {
        let mut problems = Vec::new();
        if let Some(prompts) = &policy.prompts {
            for (list, messages) in [("prepend", &prompts.prepend), ("append", &prompts.append)] {
                for (i, m) in messages.iter().enumerate() {
                    if !ROLES.contains(&m.role.as_str()) {
                        problems.push(Invalid::at(
                            &format!("prompts.{list}[{i}].role"),
                            format!(
                                "unknown role `{}`; expected one of {}",
                                m.role,
                                ROLES.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        for (from, to) in &policy.model_aliases {
            if from.is_empty() || to.is_empty() || to.contains('*') {
                problems.push(Invalid::at(
                    &format!("modelAliases.{from}"),
                    "an alias maps a model name (or a pattern with `*`) to a model name",
                ));
            }
        }
        for (part, fields) in [
            ("defaults", &policy.defaults),
            ("overrides", &policy.overrides),
        ] {
            for name in fields
                .keys()
                .filter(|n| RESERVED_FIELDS.contains(&n.as_str()))
            {
                problems.push(Invalid::at(
                    &format!("{part}.{name}"),
                    format!("`{name}` is the API's own structure and cannot be set here"),
                ));
            }
        }
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(problems)
        }
    }
}

/// Roles a prompt message may have.
const ROLES: [&str; 4] = ["system", "developer", "user", "assistant"];

/// Fields `defaults` and `overrides` may not set: the conversation itself (`prompts` adds to
/// it) and how the answer is framed, which the gateway reads.
const RESERVED_FIELDS: [&str; 3] = ["messages", "system", "stream"];

/// Path-suffix -> route type, longest suffix first and `*` last.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteTypes(pub Vec<(String, RouteType)>);

impl RouteTypes {
    /// Orders `entries` longest suffix first and `*` last; equal lengths keep their order.
    pub(crate) fn new(mut entries: Vec<(String, RouteType)>) -> RouteTypes {
        entries.sort_by(|a, b| {
            (a.0 == "*")
                .cmp(&(b.0 == "*"))
                .then(b.0.len().cmp(&a.0.len()))
        });
        RouteTypes(entries)
    }

    /// The type for a request path; `completions` when nothing matches.
    pub fn classify(&self, path: &str) -> RouteType {
        self.0
            .iter()
            .find(|(suffix, _)| suffix == "*" || path.ends_with(suffix.as_str()))
            .map_or(RouteType::Completions, |(_, t)| *t)
    }
}

/// How an `ai` backend treats a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RouteType {
    /// OpenAI chat completions, translated for the provider.
    Completions,
    /// Anthropic messages, translated for the provider.
    Messages,
    /// The model list.
    Models,
    /// Forwarded as is.
    Passthrough,
    /// The OpenAI Responses API, to OpenAI providers.
    Responses,
    /// OpenAI embeddings, to OpenAI providers.
    Embeddings,
    /// Anthropic `/v1/messages/count_tokens`, to Anthropic providers; no tokens debited.
    AnthropicTokenCount,
    /// Forwarded as is, with the model and usage read from whatever format it is in.
    Detect,
}

/// A route type as written: [`RouteType`]s and the ones Tollgate refuses.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RawRouteType {
    Completions,
    Messages,
    Models,
    Passthrough,
    Responses,
    Embeddings,
    AnthropicTokenCount,
    Detect,
    /// OpenAI's realtime WebSocket API: not supported.
    Realtime,
}

impl RawRouteType {
    /// The supported type, `None` for `realtime`.
    fn supported(self) -> Option<RouteType> {
        Some(match self {
            RawRouteType::Completions => RouteType::Completions,
            RawRouteType::Messages => RouteType::Messages,
            RawRouteType::Models => RouteType::Models,
            RawRouteType::Passthrough => RouteType::Passthrough,
            RawRouteType::Responses => RouteType::Responses,
            RawRouteType::Embeddings => RouteType::Embeddings,
            RawRouteType::AnthropicTokenCount => RouteType::AnthropicTokenCount,
            RawRouteType::Detect => RouteType::Detect,
            RawRouteType::Realtime => return None,
        })
    }
}

impl Validator<'_> {
    pub fn ai_policy(&mut self, raw: &RawAiPolicy, path: &YamlPath) -> Option<AiPolicy> {
        let routes =
            (!raw.routes.is_empty()).then(|| self.route_types(&raw.routes, &path.key("routes")));
        let prompts = raw.prompts.as_ref().map(|p| Prompts {
            prepend: p.prepend.clone(),
            append: p.append.clone(),
        });
        let built = AiPolicy::new(AiPolicy {
            routes,
            prompts,
            model_aliases: raw.model_aliases.clone(),
            defaults: raw.defaults.clone(),
            overrides: raw.overrides.clone(),
        });
        self.checked(built, path)
    }

    pub fn route_types(
        &mut self,
        raw: &IndexMap<String, RawRouteType>,
        path: &YamlPath,
    ) -> RouteTypes {
        let mut entries = Vec::new();
        for (suffix, t) in raw {
            if suffix.is_empty() {
                self.key_error(
                    &path.key(suffix.clone()),
                    "an empty path suffix matches nothing; use `*`",
                );
                continue;
            }
            let Some(kind) = t.supported() else {
                self.key_error(
                    &path.key(suffix.clone()),
                    "the `realtime` route type (OpenAI's WebSocket API) is not supported by Tollgate yet",
                );
                continue;
            };
            entries.push((suffix.clone(), kind));
        }
        RouteTypes::new(entries)
    }
}

impl From<&RouteTypes> for pb::RouteTypes {
    fn from(t: &RouteTypes) -> Self {
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
                        RouteType::Responses => pb::RouteType::Responses,
                        RouteType::Embeddings => pb::RouteType::Embeddings,
                        RouteType::AnthropicTokenCount => pb::RouteType::AnthropicTokenCount,
                        RouteType::Detect => pb::RouteType::Detect,
                    } as i32,
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::RouteTypes> for RouteTypes {
    type Error = InvalidSnapshot;

    fn try_from(t: pb::RouteTypes) -> convert::Result<RouteTypes> {
        let entries = t
            .entries
            .into_iter()
            .map(|e| {
                let kind = match enum_value::<pb::RouteType>(e.route_type, "")? {
                    pb::RouteType::Completions => RouteType::Completions,
                    pb::RouteType::Messages => RouteType::Messages,
                    pb::RouteType::Models => RouteType::Models,
                    pb::RouteType::Passthrough => RouteType::Passthrough,
                    pb::RouteType::Responses => RouteType::Responses,
                    pb::RouteType::Embeddings => RouteType::Embeddings,
                    pb::RouteType::AnthropicTokenCount => RouteType::AnthropicTokenCount,
                    pb::RouteType::Detect => RouteType::Detect,
                };
                Ok((e.suffix, kind))
            })
            .collect::<convert::Result<Vec<_>>>()?;
        Ok(RouteTypes::new(entries))
    }
}

impl From<&PromptMessage> for pb::PromptMessage {
    fn from(m: &PromptMessage) -> Self {
        pb::PromptMessage {
            role: m.role.clone(),
            content: m.content.clone(),
        }
    }
}

fn json_fields(fields: &IndexMap<String, Value>) -> Vec<pb::JsonField> {
    fields
        .iter()
        .map(|(name, value)| pb::JsonField {
            name: name.clone(),
            json: value.to_string(),
        })
        .collect()
}

fn from_json_fields(
    fields: Vec<pb::JsonField>,
    at: &str,
) -> convert::Result<IndexMap<String, Value>> {
    fields
        .into_iter()
        .map(|f| match serde_json::from_str(&f.json) {
            Ok(value) => Ok((f.name, value)),
            Err(e) => convert::invalid(&format!("{at}.{}", f.name), e.to_string()),
        })
        .collect()
}

impl From<&AiPolicy> for pb::AiPolicy {
    fn from(a: &AiPolicy) -> Self {
        pb::AiPolicy {
            routes: a.routes.as_ref().map(Into::into),
            prompts: a.prompts.as_ref().map(|p| pb::Prompts {
                prepend: p.prepend.iter().map(Into::into).collect(),
                append: p.append.iter().map(Into::into).collect(),
            }),
            model_aliases: a
                .model_aliases
                .iter()
                .map(|(from, to)| pb::ModelAlias {
                    from: from.clone(),
                    to: to.clone(),
                })
                .collect(),
            defaults: json_fields(&a.defaults),
            overrides: json_fields(&a.overrides),
        }
    }
}

impl TryFrom<pb::AiPolicy> for AiPolicy {
    type Error = InvalidSnapshot;

    fn try_from(a: pb::AiPolicy) -> convert::Result<AiPolicy> {
        let message = |m: pb::PromptMessage| PromptMessage {
            role: m.role,
            content: m.content,
        };
        AiPolicy::new(AiPolicy {
            routes: convert::optional(a.routes, "routes")?,
            prompts: a.prompts.map(|p| Prompts {
                prepend: p.prepend.into_iter().map(message).collect(),
                append: p.append.into_iter().map(message).collect(),
            }),
            model_aliases: a
                .model_aliases
                .into_iter()
                .map(|m| (m.from, m.to))
                .collect(),
            defaults: from_json_fields(a.defaults, "defaults")?,
            overrides: from_json_fields(a.overrides, "overrides")?,
        })
        .map_err(InvalidSnapshot::from)
    }
}
