//! Decoding YAML into the raw types, the serde mirror of the file as users write it
//! (agentgateway's local config format). Each section's raw types live in its own file; the
//! document root is here.
//!
//! Nothing raw is trusted: validation turns it into the model. Lists and policies are
//! wrapped in [`Lenient`] so that one bad element does not hide the errors of its siblings.

use std::cell::Cell;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::frontend::RawFrontendPolicies;
use super::listeners::RawBind;
use super::path::{Segment, YamlPath};
use super::route_groups::RawRouteGroup;
use super::settings::RawSettings;

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

/// The schema of a size: bytes, or text such as `10MiB`.
pub(crate) fn byte_size_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}],
        "description": "bytes, or a size such as `10MiB`"
    })
}

/// The schema of a sampling rate: a boolean, a fraction 0.0-1.0, or a CEL expression.
pub(crate) fn sampling_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [
            {"type": "boolean"},
            {"type": "number", "minimum": 0, "maximum": 1},
            {"type": "string"}
        ]
    })
}

/// Decoded leniently, written as `T`: the schema is `T`'s.
impl<T: schemars::JsonSchema> schemars::JsonSchema for Lenient<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }

    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

thread_local! {
    /// Set while [`decode`] tries a value in one strict pass: each [`Lenient`] inside then
    /// decodes its `T` in place instead of copying its subtree to decode it on its own.
    static STRICT: Cell<bool> = const { Cell::new(false) };
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if STRICT.get() {
            return T::deserialize(d).map(|v| Lenient {
                value: Some(v),
                errors: Vec::new(),
            });
        }
        let value = yaml_serde::Value::deserialize(d)?;
        Ok(decode(&value))
    }
}

/// `value` as `T` in one strict pass, if it has no error at all. The lenient pass would give
/// the same value with no errors; it copies each `Lenient` subtree, once per nesting level,
/// which made a 10,000-route file three times slower to load. A value with YAML tags (rare in
/// a config) takes the lenient pass as before.
fn strictly<T: DeserializeOwned>(value: &yaml_serde::Value) -> Option<T> {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            STRICT.set(self.0);
        }
    }
    if has_tags(value) {
        return None;
    }
    let _restore = Restore(STRICT.replace(true));
    T::deserialize(value).ok()
}

fn has_tags(value: &yaml_serde::Value) -> bool {
    match value {
        yaml_serde::Value::Tagged(_) => true,
        yaml_serde::Value::Sequence(s) => s.iter().any(has_tags),
        yaml_serde::Value::Mapping(m) => m.iter().any(|(k, v)| has_tags(k) || has_tags(v)),
        _ => false,
    }
}

/// Decodes `value` into `T`, keeping the path of every error.
pub fn decode<T: DeserializeOwned>(value: &yaml_serde::Value) -> Lenient<T> {
    if let Some(v) = strictly(value) {
        return Lenient {
            value: Some(v),
            errors: Vec::new(),
        };
    }
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
        let removable = at_key && remove_at(current.to_mut(), &path.segments());
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
fn remove_at(value: &mut yaml_serde::Value, path: &[&Segment]) -> bool {
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

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawConfig {
    #[serde(default)]
    pub config: Option<Lenient<RawSettings>>,
    #[serde(default)]
    pub binds: Vec<Lenient<RawBind>>,
    #[serde(default)]
    pub frontend_policies: Option<Lenient<RawFrontendPolicies>>,
    /// Groups of routes that routes delegate to (`routeGroup` backends).
    #[serde(default)]
    pub route_groups: Vec<Lenient<RawRouteGroup>>,
}
