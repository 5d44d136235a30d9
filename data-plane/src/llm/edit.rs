//! `policies.ai` request edits (agentgateway's `overrides`, `defaults`, `modelAliases` and
//! `prompts`), compiled once per provider and applied to the client's request before it is
//! translated, so every provider format gets them.

use std::collections::HashMap;

use regex::Regex;
use serde_json::value::{RawValue, to_raw_value};
use serde_json::{Value, json};
use tollgate_shared::config::model::{AiPolicy, PromptMessage};

use super::provider::Format;

/// A provider's edits, ready to apply.
#[derive(Debug)]
pub struct RequestEdits {
    overrides: Vec<(String, Box<RawValue>)>,
    defaults: Vec<(String, Box<RawValue>)>,
    exact_aliases: HashMap<String, String>,
    /// Patterns with `*`, longest pattern first (the most specific wins).
    pattern_aliases: Vec<(Regex, String)>,
    prepend: Vec<PromptMessage>,
    append: Vec<PromptMessage>,
}

fn raw(value: &Value) -> Box<RawValue> {
    to_raw_value(value).expect("a JSON value serializes")
}

impl RequestEdits {
    /// The edits of `policy`, or `None` when it changes no request.
    pub fn compile(policy: &AiPolicy) -> Option<RequestEdits> {
        if !policy.edits_requests() {
            return None;
        }
        let fields = |map: &indexmap::IndexMap<String, Value>| {
            map.iter().map(|(k, v)| (k.clone(), raw(v))).collect()
        };
        let (patterns, exact): (Vec<_>, Vec<_>) = policy
            .model_aliases
            .iter()
            .partition(|(from, _)| from.contains('*'));
        let mut pattern_aliases: Vec<(usize, Regex, String)> = patterns
            .into_iter()
            .map(|(from, to)| {
                let pattern = format!("^{}$", regex::escape(from).replace(r"\*", ".*"));
                let regex = Regex::new(&pattern).expect("an escaped pattern compiles");
                (from.len(), regex, to.clone())
            })
            .collect();
        pattern_aliases.sort_by_key(|(len, _, _)| std::cmp::Reverse(*len));
        let prompts = policy.prompts.clone().unwrap_or_default();
        Some(RequestEdits {
            overrides: fields(&policy.overrides),
            defaults: fields(&policy.defaults),
            exact_aliases: exact
                .into_iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            pattern_aliases: pattern_aliases
                .into_iter()
                .map(|(_, regex, to)| (regex, to))
                .collect(),
            prepend: prompts.prepend,
            append: prompts.append,
        })
    }

    /// The model sent for a requested one, when an alias names it.
    pub fn alias(&self, model: &str) -> Option<&str> {
        self.exact_aliases
            .get(model)
            .map(String::as_str)
            .or_else(|| {
                self.pattern_aliases
                    .iter()
                    .find(|(pattern, _)| pattern.is_match(model))
                    .map(|(_, to)| to.as_str())
            })
    }

    pub fn overrides(&self) -> &[(String, Box<RawValue>)] {
        &self.overrides
    }

    pub fn defaults(&self) -> &[(String, Box<RawValue>)] {
        &self.defaults
    }

    pub fn has_prompts(&self) -> bool {
        !self.prepend.is_empty() || !self.append.is_empty()
    }

    /// `messages` (and for Anthropic's API, `system`) with the prompts added: `None` when
    /// `messages` is not an array (the request is refused later for it).
    pub fn with_prompts(
        &self,
        format: Format,
        messages: &RawValue,
        system: Option<&RawValue>,
    ) -> Option<(Box<RawValue>, Option<Box<RawValue>>)> {
        let existing: Vec<&RawValue> = serde_json::from_str(messages.get()).ok()?;
        let is_system = |m: &&PromptMessage| {
            format == Format::Anthropic && matches!(m.role.as_str(), "system" | "developer")
        };
        let message = |m: &PromptMessage| raw(&json!({"role": m.role, "content": m.content}));
        let (pre, post): (Vec<Box<RawValue>>, Vec<Box<RawValue>>) = (
            self.prepend
                .iter()
                .filter(|m| !is_system(m))
                .map(message)
                .collect(),
            self.append
                .iter()
                .filter(|m| !is_system(m))
                .map(message)
                .collect(),
        );
        let all: Vec<&RawValue> = pre
            .iter()
            .map(AsRef::as_ref)
            .chain(existing)
            .chain(post.iter().map(AsRef::as_ref))
            .collect();
        let messages = to_raw_value(&all).expect("raw JSON values serialize");
        let block = |m: &PromptMessage| json!({"type": "text", "text": m.content});
        let pre_system: Vec<Value> = self.prepend.iter().filter(is_system).map(block).collect();
        let post_system: Vec<Value> = self.append.iter().filter(is_system).map(block).collect();
        if pre_system.is_empty() && post_system.is_empty() {
            return Some((messages, None));
        }
        // Anthropic's `system` is text or a list of text blocks: it becomes a list.
        let current: Vec<Value> = match system.map(|s| serde_json::from_str::<Value>(s.get())) {
            Some(Ok(Value::String(text))) => vec![json!({"type": "text", "text": text})],
            Some(Ok(Value::Array(blocks))) => blocks,
            _ => Vec::new(),
        };
        let system: Vec<Value> = pre_system
            .into_iter()
            .chain(current)
            .chain(post_system)
            .collect();
        Some((messages, Some(raw(&Value::Array(system)))))
    }

    /// A Responses API `input` with the prompts added around it as input messages (a text
    /// input becomes the user's message first), as agentgateway does; `None` when `input` is
    /// neither text nor a list.
    pub fn with_prompts_in_input(&self, input: &RawValue) -> Option<Box<RawValue>> {
        let message = |role: &str, content: &str| {
            raw(&json!({"type": "message", "role": role, "content": content}))
        };
        let existing: Vec<Box<RawValue>> = match serde_json::from_str::<Value>(input.get()).ok()? {
            Value::String(text) => vec![message("user", &text)],
            Value::Array(_) => serde_json::from_str(input.get()).ok()?,
            _ => return None,
        };
        let prompts = |list: &[PromptMessage]| -> Vec<Box<RawValue>> {
            list.iter().map(|m| message(&m.role, &m.content)).collect()
        };
        let all: Vec<Box<RawValue>> = prompts(&self.prepend)
            .into_iter()
            .chain(existing)
            .chain(prompts(&self.append))
            .collect();
        Some(to_raw_value(&all).expect("raw JSON values serialize"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edits(yaml_json: Value) -> RequestEdits {
        let policy: AiPolicy = AiPolicy {
            model_aliases: serde_json::from_value(yaml_json["modelAliases"].clone())
                .unwrap_or_default(),
            prompts: yaml_json
                .get("prompts")
                .map(|p| tollgate_shared::config::model::Prompts {
                    prepend: serde_json::from_value(p["prepend"].clone()).unwrap_or_default(),
                    append: serde_json::from_value(p["append"].clone()).unwrap_or_default(),
                }),
            ..AiPolicy::default()
        };
        RequestEdits::compile(&policy).unwrap()
    }

    #[test]
    fn exact_aliases_win_then_the_longest_pattern() {
        let e = edits(json!({"modelAliases": {
            "fast": "gpt-4o-mini",
            "claude-*": "claude-haiku",
            "claude-3-*": "claude-3-haiku",
            "claude-3-opus": "claude-opus"
        }}));
        assert_eq!(e.alias("fast"), Some("gpt-4o-mini"));
        assert_eq!(e.alias("claude-3-opus"), Some("claude-opus"));
        assert_eq!(e.alias("claude-3-sonnet"), Some("claude-3-haiku"));
        assert_eq!(e.alias("claude-sonnet-4"), Some("claude-haiku"));
        assert_eq!(e.alias("gpt-4o"), None);
        assert_eq!(e.alias("claude.3"), None, "only `*` is a wildcard");
    }

    #[test]
    fn prompts_surround_the_messages_and_anthropic_system_prompts_join_system() {
        let e = edits(json!({"prompts": {
            "prepend": [{"role": "system", "content": "be brief"}],
            "append": [{"role": "user", "content": "answer in French"}]
        }}));
        let messages = to_raw_value(&json!([{"role": "user", "content": "hi"}])).unwrap();
        let (out, system) = e.with_prompts(Format::OpenAi, &messages, None).unwrap();
        assert_eq!(
            out.get(),
            r#"[{"content":"be brief","role":"system"},{"content":"hi","role":"user"},{"content":"answer in French","role":"user"}]"#
        );
        assert!(system.is_none());
        let existing = to_raw_value(&json!("you are a bot")).unwrap();
        let (out, system) = e
            .with_prompts(Format::Anthropic, &messages, Some(&existing))
            .unwrap();
        assert_eq!(
            out.get(),
            r#"[{"content":"hi","role":"user"},{"content":"answer in French","role":"user"}]"#
        );
        assert_eq!(
            system.unwrap().get(),
            r#"[{"text":"be brief","type":"text"},{"text":"you are a bot","type":"text"}]"#
        );
        let not_a_list = to_raw_value(&json!("hi")).unwrap();
        assert!(e.with_prompts(Format::OpenAi, &not_a_list, None).is_none());
    }

    #[test]
    fn prompts_surround_a_responses_input_text_or_list() {
        let e = edits(json!({"prompts": {
            "prepend": [{"role": "developer", "content": "be brief"}],
            "append": [{"role": "system", "content": "emoji only"}]
        }}));
        let text = to_raw_value(&json!("hi")).unwrap();
        assert_eq!(
            e.with_prompts_in_input(&text).unwrap().get(),
            r#"[{"content":"be brief","role":"developer","type":"message"},{"content":"hi","role":"user","type":"message"},{"content":"emoji only","role":"system","type":"message"}]"#
        );
        let list = to_raw_value(
            &json!([{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}]),
        )
        .unwrap();
        let out = e.with_prompts_in_input(&list).unwrap();
        assert!(
            out.get()
                .contains(r#"{"content":[{"text":"hi","type":"input_text"}],"role":"user"}"#),
            "{}",
            out.get()
        );
        assert!(
            e.with_prompts_in_input(&to_raw_value(&json!(3)).unwrap())
                .is_none()
        );
    }
}
