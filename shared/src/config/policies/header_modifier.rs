//! `policies.requestHeaderModifier` and `policies.responseHeaderModifier`: headers added, set
//! and removed on the way up or down.

use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use super::Secret;
use crate::config::path::YamlPath;
use crate::config::redact;
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

fn shown_headers<S: Serializer>(pairs: &[(String, Secret)], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(pairs.len()))?;
    for (name, value) in pairs {
        seq.serialize_element(&(name, shown(name, value)))?;
    }
    seq.end()
}

impl Validator<'_> {
    pub fn header_modifier(
        &mut self,
        raw: &RawHeaderModifier,
        path: &YamlPath,
    ) -> Option<HeaderModifier> {
        let mut pairs = |list: &[RawHeader], key: &str| -> Vec<(String, Secret)> {
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
                    let value = self.secret(&h.value, &hp.key("value"));
                    out.push((h.name.to_ascii_lowercase(), value));
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
