//! Anthropic Messages <-> Bedrock Converse bodies: every client format reaches Bedrock through
//! the Anthropic request the gateway already builds, and Bedrock's answers come back as
//! Anthropic messages.

use serde_json::{Map, Value, json};
use tollgate_shared::config::model::Bedrock;

/// The Converse request for an Anthropic Messages request body.
pub fn request(messages_request: &[u8], bedrock: &Bedrock) -> Result<Vec<u8>, String> {
    let req: Value =
        serde_json::from_slice(messages_request).map_err(|e| format!("not JSON: {e}"))?;
    let mut out = Map::new();
    let messages = req["messages"]
        .as_array()
        .ok_or("`messages` must be an array")?
        .iter()
        .map(message)
        .collect::<Result<Vec<_>, _>>()?;
    out.insert("messages".into(), messages.into());
    match &req["system"] {
        Value::String(s) => {
            out.insert("system".into(), json!([{"text": s}]));
        }
        Value::Array(blocks) => {
            let texts: Vec<Value> = blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .map(|t| json!({"text": t}))
                .collect();
            out.insert("system".into(), texts.into());
        }
        _ => {}
    }
    let mut inference = Map::new();
    for (from, to) in [
        ("max_tokens", "maxTokens"),
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("stop_sequences", "stopSequences"),
    ] {
        if let Some(v) = req.get(from).filter(|v| !v.is_null()) {
            inference.insert(to.into(), v.clone());
        }
    }
    if !inference.is_empty() {
        out.insert("inferenceConfig".into(), inference.into());
    }
    if let Some(tools) = req["tools"].as_array().filter(|t| !t.is_empty()) {
        let specs: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut spec =
                    json!({"name": t["name"], "inputSchema": {"json": t["input_schema"]}});
                if let Some(d) = t["description"].as_str() {
                    spec["description"] = d.into();
                }
                json!({"toolSpec": spec})
            })
            .collect();
        let mut config = json!({"tools": specs});
        // Converse has no `none`: the model then chooses (as agentgateway does).
        let choice = match req["tool_choice"]["type"].as_str() {
            Some("auto") => Some(json!({"auto": {}})),
            Some("any") => Some(json!({"any": {}})),
            Some("tool") => Some(json!({"tool": {"name": req["tool_choice"]["name"]}})),
            _ => None,
        };
        if let Some(choice) = choice {
            config["toolChoice"] = choice;
        }
        out.insert("toolConfig".into(), config);
    }
    let mut additional = Map::new();
    for field in ["top_k", "thinking"] {
        if let Some(v) = req.get(field).filter(|v| !v.is_null()) {
            additional.insert(field.into(), v.clone());
        }
    }
    if !additional.is_empty() {
        out.insert("additionalModelRequestFields".into(), additional.into());
    }
    if let (Some(id), Some(version)) = (&bedrock.guardrail_identifier, &bedrock.guardrail_version) {
        out.insert(
            "guardrailConfig".into(),
            json!({"guardrailIdentifier": id, "guardrailVersion": version, "trace": "enabled"}),
        );
    }
    serde_json::to_vec(&out).map_err(|e| e.to_string())
}

fn message(m: &Value) -> Result<Value, String> {
    let role = m["role"].as_str().ok_or("a message needs a `role`")?;
    let content = match &m["content"] {
        Value::String(s) => vec![json!({"text": s})],
        Value::Array(blocks) => blocks.iter().map(block).collect::<Result<Vec<_>, _>>()?,
        _ => return Err("a message's `content` is a string or an array".into()),
    };
    Ok(json!({"role": role, "content": content}))
}

/// One content block (Anthropic's `cache_control` hints have no Converse equivalent here).
fn block(b: &Value) -> Result<Value, String> {
    let kind = b["type"].as_str().unwrap_or_default();
    Ok(match kind {
        "text" => json!({"text": b["text"]}),
        "image" => image(b)?,
        "tool_use" => {
            json!({"toolUse": {"toolUseId": b["id"], "name": b["name"], "input": b["input"]}})
        }
        "tool_result" => {
            let content = match &b["content"] {
                Value::String(s) => vec![json!({"text": s})],
                Value::Array(parts) => parts
                    .iter()
                    .map(|p| match p["type"].as_str() {
                        Some("image") => image(p),
                        _ => Ok(json!({"text": p["text"]})),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => Vec::new(),
            };
            let status = if b["is_error"] == true {
                "error"
            } else {
                "success"
            };
            json!({"toolResult": {"toolUseId": b["tool_use_id"], "content": content, "status": status}})
        }
        "thinking" => json!({"reasoningContent": {"reasoningText": {
            "text": b["thinking"], "signature": b["signature"]
        }}}),
        "redacted_thinking" => json!({"reasoningContent": {"redactedContent": b["data"]}}),
        other => {
            return Err(format!(
                "Bedrock's Converse API has no `{other}` content block"
            ));
        }
    })
}

/// A base64 image; Converse takes no image URLs.
fn image(b: &Value) -> Result<Value, String> {
    let source = &b["source"];
    if source["type"] != "base64" {
        return Err("Bedrock takes images as base64 data, not URLs".into());
    }
    let media = source["media_type"].as_str().unwrap_or_default();
    let format = media.strip_prefix("image/").unwrap_or(media);
    Ok(json!({"image": {"format": format, "source": {"bytes": source["data"]}}}))
}

/// Converse `stopReason` -> Anthropic `stop_reason`.
pub fn stop_reason(converse: &str) -> &'static str {
    match converse {
        "tool_use" => "tool_use",
        "max_tokens" => "max_tokens",
        "stop_sequence" => "stop_sequence",
        "model_context_window_exceeded" => "model_context_window_exceeded",
        "guardrail_intervened" | "content_filtered" => "refusal",
        _ => "end_turn",
    }
}

/// Converse `usage` -> Anthropic `usage`.
pub fn usage(converse: &Value) -> Value {
    let mut usage = json!({
        "input_tokens": converse["inputTokens"].as_u64().unwrap_or(0),
        "output_tokens": converse["outputTokens"].as_u64().unwrap_or(0),
    });
    for (from, to) in [
        ("cacheReadInputTokens", "cache_read_input_tokens"),
        ("cacheWriteInputTokens", "cache_creation_input_tokens"),
    ] {
        if let Some(n) = converse[from].as_u64() {
            usage[to] = n.into();
        }
    }
    usage
}

/// The Anthropic message for a Converse answer to `model`.
pub fn response(converse: &[u8], model: &str, id: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_slice(converse).map_err(|e| format!("not JSON: {e}"))?;
    let blocks = v
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or("a Converse answer without `output.message.content`")?;
    let content: Vec<Value> = blocks
        .iter()
        .filter_map(|b| {
            if let Some(text) = b.get("text") {
                Some(json!({"type": "text", "text": text}))
            } else if let Some(t) = b.get("toolUse") {
                Some(
                    json!({"type": "tool_use", "id": t["toolUseId"], "name": t["name"], "input": t["input"]}),
                )
            } else if let Some(r) = b.pointer("/reasoningContent/reasoningText") {
                Some(json!({"type": "thinking", "thinking": r["text"], "signature": r["signature"]}))
            } else {
                b.pointer("/reasoningContent/redactedContent")
                    .map(|data| json!({"type": "redacted_thinking", "data": data}))
            }
        })
        .collect();
    Ok(json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(v["stopReason"].as_str().unwrap_or_default()),
        "stop_sequence": null,
        "usage": usage(&v["usage"]),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bedrock(guardrail: bool) -> Bedrock {
        Bedrock {
            region: "us-east-1".into(),
            guardrail_identifier: guardrail.then(|| "gr-1".into()),
            guardrail_version: guardrail.then(|| "2".into()),
        }
    }

    #[test]
    fn request_maps_every_part() {
        let anthropic = json!({
            "model": "m", "max_tokens": 100, "temperature": 0.5, "top_p": 0.9, "top_k": 5,
            "stop_sequences": ["END"], "stream": true,
            "system": [{"type": "text", "text": "be brief"}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "t1", "name": "get", "input": {"q": 1}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "42", "is_error": false},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
                ]}
            ],
            "tools": [{"name": "get", "description": "d", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "get"}
        });
        let out: Value = serde_json::from_slice(
            &request(anthropic.to_string().as_bytes(), &bedrock(true)).unwrap(),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({
                "messages": [
                    {"role": "user", "content": [{"text": "hi"}]},
                    {"role": "assistant", "content": [
                        {"text": "calling"},
                        {"toolUse": {"toolUseId": "t1", "name": "get", "input": {"q": 1}}}
                    ]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "t1", "content": [{"text": "42"}], "status": "success"}},
                        {"image": {"format": "png", "source": {"bytes": "AAAA"}}}
                    ]}
                ],
                "system": [{"text": "be brief"}],
                "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]},
                "toolConfig": {
                    "tools": [{"toolSpec": {"name": "get", "description": "d", "inputSchema": {"json": {"type": "object"}}}}],
                    "toolChoice": {"tool": {"name": "get"}}
                },
                "additionalModelRequestFields": {"top_k": 5},
                "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "2", "trace": "enabled"}
            })
        );
    }

    #[test]
    fn image_urls_and_unknown_blocks_are_refused() {
        let url = json!({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
        ]}]});
        assert!(
            request(url.to_string().as_bytes(), &bedrock(false))
                .unwrap_err()
                .contains("base64")
        );
        let doc = json!({"messages": [{"role": "user", "content": [{"type": "document"}]}]});
        assert!(
            request(doc.to_string().as_bytes(), &bedrock(false))
                .unwrap_err()
                .contains("`document`")
        );
    }

    #[test]
    fn response_becomes_an_anthropic_message() {
        let converse = json!({
            "output": {"message": {"role": "assistant", "content": [
                {"text": "hello"},
                {"toolUse": {"toolUseId": "t9", "name": "get", "input": {"a": 1}}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10, "cacheReadInputTokens": 2},
            "metrics": {"latencyMs": 5}
        });
        let out = response(converse.to_string().as_bytes(), "m", "msg_1").unwrap();
        assert_eq!(
            out,
            json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                "content": [
                    {"type": "text", "text": "hello"},
                    {"type": "tool_use", "id": "t9", "name": "get", "input": {"a": 1}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 2}
            })
        );
        assert_eq!(stop_reason("guardrail_intervened"), "refusal");
        assert!(response(b"{}", "m", "x").is_err());
    }
}
