//! `$VAR`, `${VAR}` and `${VAR:-default}` inside string values, never in keys or comments.
//!
//! Expansion runs on the parsed tree rather than the raw text (as agentgateway does), so a
//! value can never change the YAML structure and a variable in a comment is harmless.

use std::collections::HashMap;

use super::path::YamlPath;

/// Where variables come from: the process environment, or a map in tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// The variables `text` reads, in order (`${A:-x}` reads `A`).
pub(crate) fn variables(text: &str) -> Vec<String> {
    struct Reads(std::cell::RefCell<Vec<String>>);
    impl Env for Reads {
        fn var(&self, name: &str) -> Option<String> {
            self.0.borrow_mut().push(name.to_string());
            None
        }
    }
    let reads = Reads(Default::default());
    let _ = expand(text, &reads);
    reads.0.into_inner()
}

/// Expands one string; `Err` lists the variables that are unset and have no default.
pub fn expand(text: &str, env: &dyn Env) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                out.push_str(&rest[i..]);
                rest = "";
                break;
            };
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if !is_name(name) {
                out.push_str(&rest[i..i + 2 + end + 1]);
            } else {
                match (
                    env.var(name).filter(|v| !v.is_empty() || default.is_none()),
                    default,
                ) {
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => missing.push(name.to_string()),
                }
            }
            rest = &body[end + 1..];
        } else {
            let len = after
                .char_indices()
                .find(|&(j, c)| {
                    !(c == '_' || c.is_ascii_alphanumeric() && (j > 0 || c.is_ascii_alphabetic()))
                })
                .map_or(after.len(), |(j, _)| j);
            if len == 0 {
                out.push('$');
            } else {
                match env.var(&after[..len]) {
                    Some(v) => out.push_str(&v),
                    None => missing.push(after[..len].to_string()),
                }
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Strings that referenced variables, by path, as written (so secrets can be shown as `$VAR`).
pub type Templates = HashMap<YamlPath, String>;

/// Expands every string value in the tree; unset variables are reported with their path.
/// With `defer_secrets`, secret fields keep their references (recorded as templates).
pub fn expand_tree(
    value: &mut yaml_serde::Value,
    path: &mut YamlPath,
    env: &dyn Env,
    defer_secrets: bool,
    templates: &mut Templates,
    missing: &mut Vec<(YamlPath, String)>,
) {
    use super::path::Segment;
    match value {
        yaml_serde::Value::String(s) if s.contains('$') && defer_secrets && is_secret(path) => {
            templates.insert(path.clone(), s.clone());
        }
        yaml_serde::Value::String(s) if s.contains('$') => match expand(s, env) {
            Ok(expanded) => {
                if expanded != *s {
                    templates.insert(path.clone(), std::mem::replace(s, expanded));
                }
            }
            Err(names) => {
                missing.extend(names.into_iter().map(|n| (path.clone(), n)));
            }
        },
        yaml_serde::Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(Segment::Index(i));
                expand_tree(item, path, env, defer_secrets, templates, missing);
                path.pop();
            }
        }
        yaml_serde::Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = match k {
                    yaml_serde::Value::String(s) => s.clone(),
                    other => yaml_serde::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                path.push(Segment::Key(key));
                expand_tree(v, path, env, defer_secrets, templates, missing);
                path.pop();
            }
        }
        yaml_serde::Value::Tagged(t) => {
            expand_tree(&mut t.value, path, env, defer_secrets, templates, missing)
        }
        _ => {}
    }
}

/// `…backendAuth.key`, `…clientSecret.client_secret`, `…backendAuth.aws`'s keys, `…apiKey.keys[i].key`, `…stdio.env.NAME`, `…stdio.args[i]` and header-modifier values: the
/// fields that hold credentials and need no validation on the control plane.
fn is_secret(path: &YamlPath) -> bool {
    use super::path::Segment::{Index, Key};
    match path.segments().as_slice() {
        [.., Key(a), Key(b)] if a == "backendAuth" && b == "key" => true,
        [.., Key(a), Key(b)] if a == "clientSecret" && b == "client_secret" => true,
        [.., Key(a), Key(b), Key(c)] if a == "backendAuth" && b == "aws" => {
            matches!(
                c.as_str(),
                "accessKeyId" | "secretAccessKey" | "sessionToken"
            )
        }
        [.., Key(a), Key(k), Index(_), Key(b)] if a == "apiKey" && k == "keys" && b == "key" => {
            true
        }
        [.., Key(m), Key(op), Index(_), Key(v)] if v == "value" => {
            matches!(
                m.as_str(),
                "requestHeaderModifier" | "responseHeaderModifier"
            ) && matches!(op.as_str(), "add" | "set")
        }
        [.., Key(a), Key(b), Key(_)] => a == "stdio" && b == "env",
        [.., Key(a), Key(b), Index(_)] => a == "stdio" && b == "args",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> HashMap<String, String> {
        HashMap::from([("A".into(), "1".into()), ("EMPTY".into(), String::new())])
    }

    #[test]
    fn forms() {
        let e = env();
        assert_eq!(expand("x$A-y", &e).unwrap(), "x1-y");
        assert_eq!(expand("${A}b", &e).unwrap(), "1b");
        assert_eq!(expand("${NOPE:-dflt}", &e).unwrap(), "dflt");
        assert_eq!(variables("${A:-x}-$B-$$C"), ["A", "B"]);
        assert_eq!(expand("${EMPTY:-dflt}", &e).unwrap(), "dflt");
        assert_eq!(expand("${A:-dflt}", &e).unwrap(), "1");
        assert_eq!(expand("$$A costs $5", &e).unwrap(), "$A costs $5");
        assert_eq!(expand("trailing $", &e).unwrap(), "trailing $");
    }

    #[test]
    fn missing_are_named() {
        assert_eq!(
            expand("$NOPE and ${ALSO}", &env()).unwrap_err(),
            vec!["NOPE", "ALSO"]
        );
    }
}
