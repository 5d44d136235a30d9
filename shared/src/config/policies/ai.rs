//! `policies.ai`: how `ai` backends read requests; today the path -> route-type map.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::convert::{self, InvalidSnapshot, enum_value};
use crate::proto::v1 as pb;

/// `policies.ai`: today only the path -> route-type map.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawAiPolicy {
    #[serde(default)]
    pub routes: IndexMap<String, RouteType>,
}

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl Validator<'_> {
    pub fn ai_policy(&mut self, raw: &RawAiPolicy, path: &YamlPath) -> Option<RouteTypes> {
        Some(self.route_types(&raw.routes, &path.key("routes")))
    }

    pub fn route_types(
        &mut self,
        raw: &IndexMap<String, RouteType>,
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
            entries.push((suffix.clone(), *t));
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
                };
                Ok((e.suffix, kind))
            })
            .collect::<convert::Result<Vec<_>>>()?;
        Ok(RouteTypes::new(entries))
    }
}
