//! `policies.requestHeaderModifier` and `policies.responseHeaderModifier`: headers added, set
//! and removed on the way up or down.

use serde::{Deserialize, Serialize};

use crate::config::path::YamlPath;
use crate::config::validate::Validator;
use crate::proto::v1 as pb;

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

/// A header modifier; names are lower-case.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HeaderModifier {
    /// `(name, value)` appended, keeping existing values.
    pub add: Vec<(String, String)>,
    /// `(name, value)` replacing existing values.
    pub set: Vec<(String, String)>,
    /// Names removed.
    pub remove: Vec<String>,
}

impl Validator<'_> {
    pub fn header_modifier(
        &mut self,
        raw: &RawHeaderModifier,
        path: &YamlPath,
    ) -> Option<HeaderModifier> {
        let mut pairs = |list: &[RawHeader], key: &str| -> Vec<(String, String)> {
            let mut out = Vec::new();
            for (i, h) in list.iter().enumerate() {
                let hp = path.key(key).index(i);
                if !self.header_name(&h.name, &hp.key("name")) {
                    continue;
                }
                if http::HeaderValue::from_str(&h.value).is_err() {
                    self.error(
                        &hp.key("value"),
                        "the value contains characters not allowed in a header",
                    );
                } else {
                    out.push((h.name.to_ascii_lowercase(), h.value.clone()));
                }
            }
            out
        };
        let add = pairs(&raw.add, "add");
        let set = pairs(&raw.set, "set");
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
}

impl From<pb::HeaderModifier> for HeaderModifier {
    fn from(h: pb::HeaderModifier) -> Self {
        let pairs = |v: Vec<pb::Header>| v.into_iter().map(|h| (h.name, h.value)).collect();
        HeaderModifier {
            add: pairs(h.add),
            set: pairs(h.set),
            remove: h.remove,
        }
    }
}
