//! Vertex AI as agentgateway calls it: Gemini (and other non-Anthropic) models through the
//! OpenAI-compatible endpoint, Anthropic models through `rawPredict` / `streamRawPredict`
//! with Anthropic's body (`anthropic_version` inside, no `model`).

use serde_json::{Map, Value};
use tollgate_shared::config::model::{Provider, RouteType, Vertex};

use super::provider::Format;

/// The `anthropic_version` Vertex's Anthropic models require in the body.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// The regional endpoint's host (`global` and no region share one).
pub fn host(v: &Vertex) -> String {
    match v.region.as_deref() {
        None | Some("global") => "aiplatform.googleapis.com".to_string(),
        Some(region) => format!("{region}-aiplatform.googleapis.com"),
    }
}

/// Vertex's name of an Anthropic model, or `None` for other models: a `claude-` model (or
/// one prefixed `anthropic/` or `publishers/anthropic/models/`), its `-YYYYMMDD` date
/// written `@YYYYMMDD`.
pub fn anthropic_model(model: &str) -> Option<String> {
    let name = model
        .split_once("publishers/anthropic/models/")
        .map(|(_, m)| m)
        .or_else(|| model.strip_prefix("anthropic/"))
        .or_else(|| model.starts_with("claude-").then_some(model))?;
    match name.rsplit_once('-') {
        Some((base, date)) if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) => {
            Some(format!("{base}@{date}"))
        }
        _ => Some(name.to_string()),
    }
}

/// The path of a `kind` request for `model`.
pub fn path(v: &Vertex, kind: RouteType, model: &str, streaming: bool) -> String {
    let location = v.region.as_deref().unwrap_or("global");
    let base = format!("/v1/projects/{}/locations/{location}", v.project_id);
    match (kind, anthropic_model(model)) {
        (RouteType::AnthropicTokenCount, _) => {
            format!("{base}/publishers/anthropic/models/count-tokens:rawPredict")
        }
        (_, Some(m)) => {
            let method = if streaming {
                "streamRawPredict"
            } else {
                "rawPredict"
            };
            format!("{base}/publishers/anthropic/models/{m}:{method}")
        }
        (_, None) => format!("{base}/endpoints/openapi/chat/completions"),
    }
}

/// The body `provider` gets: Vertex's Anthropic models take [`anthropic_body`], every other
/// upstream `body` as it is.
pub fn upstream_body(
    provider: Provider,
    kind: RouteType,
    upstream: Format,
    body: Vec<u8>,
) -> Result<Vec<u8>, serde_json::Error> {
    if (provider, upstream) == (Provider::Vertex, Format::Anthropic) {
        anthropic_body(&body, kind)
    } else {
        Ok(body)
    }
}

/// An Anthropic body as Vertex takes it: `anthropic_version` set, `model` removed (it is in
/// the path; token counting keeps it), and the fields Vertex refuses dropped.
pub fn anthropic_body(body: &[u8], kind: RouteType) -> Result<Vec<u8>, serde_json::Error> {
    let mut body: Map<String, Value> = serde_json::from_slice(body)?;
    body.insert("anthropic_version".into(), ANTHROPIC_VERSION.into());
    if kind != RouteType::AnthropicTokenCount {
        body.remove("model");
    }
    body.remove("output_config");
    body.remove("output_format");
    // Vertex takes `cache_control` but not its `scope` (a beta of Anthropic's API).
    for value in body.values_mut() {
        drop_cache_scope(value);
    }
    serde_json::to_vec(&body)
}

fn drop_cache_scope(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(cache)) = map.get_mut("cache_control") {
                cache.remove("scope");
            }
            map.values_mut().for_each(drop_cache_scope);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_cache_scope),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn anthropic_models_are_told_apart_and_renamed() {
        for (model, expected) in [
            (
                "publishers/anthropic/models/claude-sonnet-4-5-20251001",
                Some("claude-sonnet-4-5@20251001"),
            ),
            (
                "anthropic/claude-haiku-4-5-20251001",
                Some("claude-haiku-4-5@20251001"),
            ),
            ("claude-opus-4-6", Some("claude-opus-4-6")),
            (
                "claude-haiku-4-5-2025abcd",
                Some("claude-haiku-4-5-2025abcd"),
            ),
            ("gemini-2.5-flash", None),
            ("google/gemini-2.5-flash", None),
        ] {
            assert_eq!(anthropic_model(model).as_deref(), expected, "{model}");
        }
    }

    #[test]
    fn hosts_and_paths() {
        let v = |region: Option<&str>| Vertex {
            project_id: "p".into(),
            region: region.map(str::to_string),
        };
        assert_eq!(host(&v(None)), "aiplatform.googleapis.com");
        assert_eq!(host(&v(Some("global"))), "aiplatform.googleapis.com");
        assert_eq!(
            host(&v(Some("us-east5"))),
            "us-east5-aiplatform.googleapis.com"
        );
        let east = v(Some("us-east5"));
        assert_eq!(
            path(
                &east,
                RouteType::Completions,
                "google/gemini-2.5-flash",
                true
            ),
            "/v1/projects/p/locations/us-east5/endpoints/openapi/chat/completions"
        );
        assert_eq!(
            path(
                &east,
                RouteType::Messages,
                "claude-sonnet-4-5-20250929",
                false
            ),
            "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
        );
        assert_eq!(
            path(&v(None), RouteType::Completions, "claude-opus-4-6", true),
            "/v1/projects/p/locations/global/publishers/anthropic/models/claude-opus-4-6:streamRawPredict"
        );
        assert_eq!(
            path(
                &east,
                RouteType::AnthropicTokenCount,
                "claude-opus-4-6",
                false
            ),
            "/v1/projects/p/locations/us-east5/publishers/anthropic/models/count-tokens:rawPredict"
        );
    }

    #[test]
    fn anthropic_bodies_carry_the_version_and_no_model() {
        let body = json!({
            "model": "claude-opus-4-6",
            "max_tokens": 10,
            "output_format": "markdown",
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "scope": "turn"}}],
            "messages": [{"role": "user", "content": "hi"}],
        });
        let out = anthropic_body(body.to_string().as_bytes(), RouteType::Messages).unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            out,
            json!({
                "anthropic_version": ANTHROPIC_VERSION,
                "max_tokens": 10,
                "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
                "messages": [{"role": "user", "content": "hi"}],
            })
        );
        let count =
            anthropic_body(body.to_string().as_bytes(), RouteType::AnthropicTokenCount).unwrap();
        let count: Value = serde_json::from_slice(&count).unwrap();
        assert_eq!(count["model"], "claude-opus-4-6");
        assert_eq!(count["anthropic_version"], ANTHROPIC_VERSION);
    }
}
