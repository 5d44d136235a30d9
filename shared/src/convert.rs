//! Model <-> proto at the boundary of the config stream.
//!
//! `From<&Config> for pb::Config` is what the control plane sends; `TryFrom<pb::Config>` is
//! what a proxy accepts, with an [`InvalidSnapshot`] naming the field when the message is
//! malformed. Each section converts its own types beside them (`config::settings`,
//! `config::listeners`, `config::policies::*`, `config::backends::*`), building model values
//! through the same constructors as validation; this file holds the root and the helpers.
//! Secrets arrive as references; [`Config::resolve_secrets`] fills them in from the proxy's
//! own environment. The data plane never routes on these generated types.

use std::time::Duration;

use crate::config::model::{Config, Invalid};
use crate::proto::v1 as pb;

/// Why a config message from the control plane was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidSnapshot {
    /// A required field is absent.
    #[error("{0}: missing")]
    Missing(String),
    /// A field's value breaks an invariant of the model.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl InvalidSnapshot {
    /// The same error seen from the message that holds it under `field`.
    pub(crate) fn within(self, field: &str) -> InvalidSnapshot {
        let join = |path: String| match (field.is_empty(), path.is_empty()) {
            (true, _) => path,
            (false, true) => field.to_string(),
            (false, false) => format!("{field}.{path}"),
        };
        match self {
            InvalidSnapshot::Missing(path) => InvalidSnapshot::Missing(join(path)),
            InvalidSnapshot::Invalid { path, message } => InvalidSnapshot::Invalid {
                path: join(path),
                message,
            },
        }
    }
}

impl From<Invalid> for InvalidSnapshot {
    fn from(e: Invalid) -> Self {
        InvalidSnapshot::Invalid {
            path: e.field.to_string(),
            message: e.message,
        }
    }
}

/// The first broken invariant (constructors fail with at least one).
impl From<Vec<Invalid>> for InvalidSnapshot {
    fn from(problems: Vec<Invalid>) -> Self {
        problems.into_iter().next().map_or_else(
            || InvalidSnapshot::Invalid {
                path: String::new(),
                message: "invalid value".to_string(),
            },
            Into::into,
        )
    }
}

pub(crate) type Result<T> = std::result::Result<T, InvalidSnapshot>;

/// A file path as the proto carries it.
pub(crate) fn path_string(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

pub(crate) fn missing<T>(path: &str) -> Result<T> {
    Err(InvalidSnapshot::Missing(path.to_string()))
}

pub(crate) fn invalid<T>(path: &str, message: impl Into<String>) -> Result<T> {
    Err(InvalidSnapshot::Invalid {
        path: path.to_string(),
        message: message.into(),
    })
}

/// A sub-message, converted; errors are named under `field`.
pub(crate) fn nested<P, M>(value: P, field: &str) -> Result<M>
where
    M: TryFrom<P, Error = InvalidSnapshot>,
{
    M::try_from(value).map_err(|e| e.within(field))
}

/// A required sub-message, converted; errors are named under `field`.
pub(crate) fn required<P, M>(value: Option<P>, field: &str) -> Result<M>
where
    M: TryFrom<P, Error = InvalidSnapshot>,
{
    match value {
        Some(v) => nested(v, field),
        None => missing(field),
    }
}

/// An optional sub-message, converted when present; errors are named under `field`.
pub(crate) fn optional<P, M>(value: Option<P>, field: &str) -> Result<Option<M>>
where
    M: TryFrom<P, Error = InvalidSnapshot>,
{
    value.map(|v| nested(v, field)).transpose()
}

/// A repeated sub-message, converted element by element; errors are named `field[i]`.
pub(crate) fn each<P, M>(list: Vec<P>, field: &str) -> Result<Vec<M>>
where
    M: TryFrom<P, Error = InvalidSnapshot>,
{
    list.into_iter()
        .enumerate()
        .map(|(i, v)| nested(v, &format!("{field}[{i}]")))
        .collect()
}

/// A proto enum's number, or an error naming `path` when the number is unknown.
pub(crate) fn enum_value<E: TryFrom<i32>>(v: i32, path: &str) -> Result<E> {
    E::try_from(v).or_else(|_| invalid(path, format!("unknown enum value {v}")))
}

pub(crate) fn nanos(d: Duration) -> u64 {
    d.as_nanos().min(u128::from(u64::MAX)) as u64
}

pub(crate) fn duration(n: u64) -> Duration {
    Duration::from_nanos(n)
}

impl From<&Config> for pb::Config {
    fn from(c: &Config) -> Self {
        pb::Config {
            settings: Some((&c.settings).into()),
            binds: c.binds.iter().map(Into::into).collect(),
            frontend_policies: Some((&c.frontend_policies).into()),
        }
    }
}

impl TryFrom<pb::Config> for Config {
    type Error = InvalidSnapshot;

    fn try_from(c: pb::Config) -> Result<Config> {
        Ok(Config {
            settings: required(c.settings, "settings")?,
            binds: each(c.binds, "binds")?,
            frontend_policies: optional(c.frontend_policies, "frontendPolicies")?
                .unwrap_or_default(),
        })
    }
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
    fn header_modifier_secrets_travel_as_references() {
        let yaml = "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{host: 'a:1'}]\n      policies:\n        requestHeaderModifier:\n          set: [{name: x-upstream-key, value: 'k-$HDR_TOKEN'}]\n";
        let env = HashMap::from([("HDR_TOKEN".to_string(), "s3cret".to_string())]);
        let config = load_str_with(yaml, "f", &env, LoadMode::DeferSecrets).unwrap();
        let wire = pb::Config::from(&config);
        assert!(!format!("{wire:?}").contains("s3cret"), "{wire:?}");
        let mut back = Config::try_from(wire).unwrap();
        back.resolve_secrets(&env).unwrap();
        let route = &back.binds[0].listeners[0].routes[0];
        let set = &route.policies.request_header_modifier.as_ref().unwrap().set;
        assert_eq!(set[0].1.expose(), "k-s3cret");
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
    fn broken_invariants_are_refused_with_the_validator_wording() {
        let mut wire = pb::Config::from(
            &load_str_with(
                &seed("local-rate-limit.yaml"),
                "f",
                &HashMap::new(),
                LoadMode::DeferSecrets,
            )
            .unwrap(),
        );
        let route = &mut wire.binds[0].listeners[0].routes[0];
        route.policies.as_mut().unwrap().local_rate_limit[0].max_tokens = 0;
        assert_eq!(
            Config::try_from(wire).unwrap_err(),
            InvalidSnapshot::Invalid {
                path: "binds[0].listeners[0].routes[0].policies.localRateLimit[0].maxTokens".into(),
                message: "maxTokens must be at least 1".into(),
            }
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
