//! `examples/kitchen-sink.yaml` sets every model field, so a field forgotten in validation or
//! in the proto conversion fails here. New fields in later issues extend that file.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::model::Config;
use super::{LoadMode, load_str_with};
use crate::proto::v1 as pb;

const KITCHEN_SINK: &str = include_str!("../../../examples/kitchen-sink.yaml");

/// Fields the model has but a valid config can never fill (validation rejects them).
const ALWAYS_EMPTY: [&str; 1] = [
    // Labels cannot be removed from metrics; `metrics.remove` drops whole metrics instead.
    "settings.metrics.fields.remove",
];

fn load(mode: LoadMode) -> Config {
    load_str_with(KITCHEN_SINK, "kitchen-sink.yaml", &HashMap::new(), mode)
        .unwrap_or_else(|e| panic!("the kitchen sink must be valid:\n{e}"))
}

#[test]
fn round_trips_through_the_proto() {
    let deferred = load(LoadMode::DeferSecrets);
    let back = Config::try_from(pb::Config::from(&deferred)).unwrap();
    assert_eq!(back, deferred);

    let expanded = load(LoadMode::ExpandAll);
    let mut resolved = Config::try_from(pb::Config::from(&expanded)).unwrap();
    resolved.resolve_secrets(&HashMap::new()).unwrap();
    assert_eq!(resolved, expanded);
}

#[test]
fn normalised_model_is_pinned() {
    let json = serde_json::to_string_pretty(&load(LoadMode::ExpandAll)).unwrap();
    insta::assert_snapshot!("kitchen_sink_model", json);
}

#[test]
fn every_field_is_set() {
    let json = serde_json::to_value(load(LoadMode::ExpandAll)).unwrap();
    let mut filled = BTreeMap::new();
    walk(&json, String::new(), &mut filled);
    let unset: Vec<&String> = filled
        .iter()
        .filter(|(path, set)| !**set && !ALWAYS_EMPTY.contains(&path.as_str()))
        .map(|(path, _)| path)
        .collect();
    assert!(
        unset.is_empty(),
        "examples/kitchen-sink.yaml leaves these model fields unset or empty: {unset:#?}"
    );
}

/// Records, for every path under `value`, whether it holds something other than `null`, an
/// empty list or an empty map somewhere. List elements share one path (`routes[]`): one
/// element setting a field is enough.
fn walk(value: &Value, path: String, filled: &mut BTreeMap<String, bool>) {
    let set = match value {
        Value::Null => false,
        Value::Array(items) => {
            for item in items {
                walk(item, format!("{path}[]"), filled);
            }
            !items.is_empty()
        }
        Value::Object(fields) => {
            for (key, v) in fields {
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(v, p, filled);
            }
            !fields.is_empty()
        }
        _ => true,
    };
    *filled.entry(path).or_default() |= set;
}
