//! `policies.requestHeaderModifier` and `policies.responseHeaderModifier`: headers added, set
//! and removed on the way up or down.

use indexmap::IndexMap;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use super::Secret;
use crate::config::path::YamlPath;
use crate::config::redact;
use crate::config::validate::Validator;
use crate::proto::v1 as pb;

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHeaderModifier {
    #[serde(default)]
    pub add: RawHeaders,
    #[serde(default)]
    pub set: RawHeaders,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Headers as agentgateway writes them (`{name: value}`), or as a list of `{name, value}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(
    untagged,
    expecting = "headers as a map of name: value (text), or a list of {name, value}"
)]
pub enum RawHeaders {
    Map(IndexMap<String, String>),
    List(Vec<RawHeader>),
}

impl Default for RawHeaders {
    fn default() -> Self {
        RawHeaders::List(Vec::new())
    }
}

impl RawHeaders {
    /// `(name, value, the name's path, the value's path)` in the order written.
    fn pairs(&self, at: &YamlPath) -> Vec<(&str, &str, YamlPath, YamlPath)> {
        match self {
            RawHeaders::Map(map) => map
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str(), at.key(name), at.key(name)))
                .collect(),
            RawHeaders::List(list) => list
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let entry = at.index(i);
                    (
                        h.name.as_str(),
                        h.value.as_str(),
                        entry.key("name"),
                        entry.key("value"),
                    )
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHeader {
    pub name: String,
    pub value: String,
}

/// A header modifier; names are lower-case. Values may be keys for the upstream, so they are
/// held as [`Secret`]s and dumps show them as written only when they are plainly not one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HeaderModifier {
    /// `(name, value)` appended, keeping existing values.
    #[serde(serialize_with = "shown_headers")]
    pub add: Vec<(String, Secret)>,
    /// `(name, value)` replacing existing values.
    #[serde(serialize_with = "shown_headers")]
    pub set: Vec<(String, Secret)>,
    /// Names removed.
    pub remove: Vec<String>,
}

/// A value as dumps show it: its `$VAR` reference, `<redacted>` when the header's name or the
/// value looks like a credential, else the value.
fn shown<'a>(name: &str, value: &'a Secret) -> &'a str {
    match value.reference() {
        Some(reference) => reference,
        None if redact::is_credential_name(name)
            || redact::looks_like_credential(value.expose()) =>
        {
            redact::REDACTED
        }
        None => value.expose(),
    }
}

/// Header pairs serialized as dumps show them (see [`shown`]).
pub(crate) fn shown_headers<S: Serializer>(
    pairs: &[(String, Secret)],
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(pairs.len()))?;
    for (name, value) in pairs {
        seq.serialize_element(&(name, shown(name, value)))?;
    }
    seq.end()
}

impl Validator<'_> {
    /// Valid header names (lower-cased) with their values held as secrets, in the order
    /// written; a bad name or value is reported at its entry.
    pub(crate) fn headers(
        &mut self,
        headers: &RawHeaders,
        path: &YamlPath,
    ) -> Vec<(String, Secret)> {
        let mut out = Vec::new();
        for (name, value, name_at, value_at) in headers.pairs(path) {
            if !self.header_name(name, &name_at) {
                continue;
            }
            if http::HeaderValue::from_str(value).is_err() {
                self.error(
                    &value_at,
                    "the value contains characters not allowed in a header",
                );
            } else {
                let value = self.secret(value, &value_at);
                out.push((name.to_ascii_lowercase(), value));
            }
        }
        out
    }

    pub fn header_modifier(
        &mut self,
        raw: &RawHeaderModifier,
        path: &YamlPath,
    ) -> Option<HeaderModifier> {
        let add = self.headers(&raw.add, &path.key("add"));
        let set = self.headers(&raw.set, &path.key("set"));
        for (i, name) in raw.remove.iter().enumerate() {
            self.header_name(name, &path.key("remove").index(i));
        }
        Some(HeaderModifier {
            add,
            set,
            remove: raw.remove.iter().map(|n| n.to_ascii_lowercase()).collect(),
        })
    }
}

impl From<&HeaderModifier> for pb::HeaderModifier {
    fn from(h: &HeaderModifier) -> Self {
        let pairs = |v: &[(String, Secret)]| {
            v.iter()
                .map(|(n, val)| pb::Header {
                    name: n.clone(),
                    value: val.expose().to_string(),
                    reference: val.reference().unwrap_or_default().to_string(),
                })
                .collect()
        };
        pb::HeaderModifier {
            add: pairs(&h.add),
            set: pairs(&h.set),
            remove: h.remove.clone(),
        }
    }
}

impl From<pb::HeaderModifier> for HeaderModifier {
    fn from(h: pb::HeaderModifier) -> Self {
        let pairs = |v: Vec<pb::Header>| {
            v.into_iter()
                .map(|h| {
                    let reference = (!h.reference.is_empty()).then_some(h.reference);
                    (h.name, Secret::new(h.value, reference))
                })
                .collect()
        };
        HeaderModifier {
            add: pairs(h.add),
            set: pairs(h.set),
            remove: h.remove,
        }
    }
}
